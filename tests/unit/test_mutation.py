"""Mutations: ovsdb-server's errors and results, C arithmetic, canonical results.

The recorded cases in ``tests/data/condmut_cases.json`` come from ``ovsdb-tool transact``
(``tests/integration/test_condmut_vs_ovs.py`` proves it); here they run on our code alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwvtep.ovsdb.data import Datum, datum_check, datum_from_json, datum_to_json, default_datum
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.mutation import Mutation, apply_mutations, parse_mutation, parse_mutations
from hwvtep.ovsdb.schema import DatabaseSchema, TableSchema
from hwvtep.ovsdb.types import INT64_MAX, INT64_MIN, format_real

DATA = Path(__file__).parent.parent / "data"
SCHEMA = DatabaseSchema.from_text((DATA / "condmut.ovsschema").read_text())
T = SCHEMA.tables["T"]
CASES = json.loads((DATA / "condmut_cases.json").read_text())
U1 = "550e8400-e29b-41d4-a716-446655440000"


def make_row(table: TableSchema, values: dict[str, Any]) -> dict[str, Datum]:
    row = {name: default_datum(c.type) for name, c in table.columns.items()}
    row.update({name: datum_from_json(table.columns[name].type, v) for name, v in values.items()})
    return row


CASE_ROW = make_row(T, CASES["row"])


def as_ovs_prints(col: str, datum: Datum) -> Any:
    """ovsdb-server prints reals with 15 significant digits; compare what a client sees."""
    ctype = T.columns[col].type
    if ctype.key.type == "real":
        datum = tuple(sorted(float(format_real(x)) for x in datum))
    return datum_to_json(ctype, datum)


def run(mutations_json: Any, row: dict[str, Datum] | None = None) -> dict[str, Datum]:
    return apply_mutations(T, row or CASE_ROW, parse_mutations(T, mutations_json))


@pytest.mark.parametrize(("mutations", "expected"), CASES["mutate"],
                         ids=[json.dumps(c[0])[:60] for c in CASES["mutate"]])
def test_open_vswitch_recorded_cases(mutations: list[Any], expected: dict[str, Any]) -> None:
    before = dict(CASE_ROW)
    if "error" in expected:
        with pytest.raises(OvsdbError) as e:
            run(mutations)
        assert e.value.to_json() == expected
    else:
        changed = run(mutations)
        new = {**CASE_ROW, **changed}
        assert {c: as_ovs_prints(c, new[c]) for c in expected["row"]} == expected["row"]
        for col, datum in changed.items():
            assert datum != CASE_ROW[col]
            datum_check(T.columns[col].type, datum)
    assert before == CASE_ROW


def test_recorded_cases_cover_every_mutator() -> None:
    seen = {m[1] for case in CASES["mutate"] if "row" in case[1] for m in case[0]}
    assert seen >= {"+=", "-=", "*=", "/=", "%=", "insert", "delete"}
    errors = {case[1]["error"] for case in CASES["mutate"] if "error" in case[1]}
    assert errors >= {"range error", "domain error", "constraint violation", "syntax error",
                      "unknown column", "unknown mutator", "ovsdb error"}


def test_only_changed_columns_come_back() -> None:
    assert run([["i", "+=", 0]]) == {}
    assert run([["si", "delete", 99], ["m", "insert", ["map", [["k1", "other"]]]]]) == {}
    assert run([["i", "+=", 1], ["i", "-=", 1]]) == {}
    assert run([["i", "+=", 1], ["i", "*=", 3], ["ss", "insert", "c"]]) == {
        "i": (18,), "ss": ("a", "b", "c")}


def test_map_delete_by_pairs_or_by_keys() -> None:
    assert run([["m", "delete", ["map", [["k1", "v1"], ["k2", "nope"]]]]]) == {
        "m": (("k2", "v2"),)}
    assert run([["m", "delete", ["set", ["k2", "k9"]]]]) == {"m": (("k1", "v1"),)}
    m = parse_mutation(T, ["m", "delete", "k2"])
    assert m.arg == ("k2",) and m.to_json() == ["m", "delete", "k2"]
    m = parse_mutation(T, ["m", "delete", ["map", [["k2", "v2"]]]])
    assert m.arg == (("k2", "v2"),)
    assert m.to_json() == ["m", "delete", ["map", [["k2", "v2"]]]]


def test_map_insert_never_overwrites() -> None:
    assert run([["m", "insert", ["map", [["k1", "x"], ["k0", "y"]]]]]) == {
        "m": (("k0", "y"), ("k1", "v1"), ("k2", "v2"))}


def test_mutations_are_values() -> None:
    a = parse_mutation(T, ["si", "insert", ["set", [2, 1]]])
    assert a == parse_mutation(T, ["si", "insert", ["set", [1, 2]]])
    assert isinstance(a, Mutation) and a.arg == (1, 2)
    assert a.to_json() == ["si", "insert", ["set", [1, 2]]]
    u = parse_mutation(T, ["su", "insert", ["named-uuid", "n"]], lambda name: U1)
    assert u.arg == (U1,)


def test_mutations_must_be_a_list() -> None:
    with pytest.raises(OvsdbError) as e:
        parse_mutations(T, {"i": 1})
    assert e.value.details == "Type mismatch for member 'mutations'."


def set_i(x: int) -> dict[str, Datum]:
    return {**CASE_ROW, "i": (x,)}


@pytest.mark.parametrize(("x", "y", "result"), [
    # ovsdb-server 3.1 reports "range error" for these exact products...
    (1, INT64_MAX, INT64_MAX),
    (3, INT64_MAX // 3, 3 * (INT64_MAX // 3)),
    (-1, -4_000_000_000, 4_000_000_000),
    # ...crashes (SIGFPE) on this one...
    (-5, 0, 0),
])
def test_products_that_fit_are_kept(x: int, y: int, result: int) -> None:
    assert run([["i", "*=", y]], set_i(x)) == {"i": (result,)}


@pytest.mark.parametrize(("x", "y"), [
    # ...and silently wraps these to INT64_MIN.
    (-(2**62), -2),
    (INT64_MIN, -1),
    (2**62, 2),
    (INT64_MIN, 2),
])
def test_products_that_overflow_are_range_errors(x: int, y: int) -> None:
    with pytest.raises(OvsdbError) as e:
        run([["i", "*=", y]], set_i(x))
    assert e.value.to_json() == {"error": "range error",
                                 "details": 'Result of "*=" operation is out of range.'}


@pytest.mark.parametrize("op", ["/=", "%="])
def test_int64_min_by_minus_one_is_a_range_error_as_in_ovs(op: str) -> None:
    with pytest.raises(OvsdbError) as e:
        run([["i", op, -1]], set_i(INT64_MIN))
    assert e.value.tag == "range error"
    assert run([["i", op, -1]], set_i(INT64_MIN + 1)) == {
        "i": (INT64_MAX if op == "/=" else 0,)}


def c_div(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y > 0) else -q


def c_mod(x: int, y: int) -> int:
    return x - y * c_div(x, y)


INT64 = st.integers(INT64_MIN, INT64_MAX)
SMALL = st.integers(-1000, 1000)


@settings(max_examples=400)
@given(x=st.one_of(INT64, SMALL), y=st.one_of(INT64, SMALL),
       op=st.sampled_from(["+=", "-=", "*=", "/=", "%="]))
def test_integer_arithmetic_is_c_arithmetic_checked_for_int64(x: int, y: int, op: str) -> None:
    exact = {"+=": lambda: x + y, "-=": lambda: x - y, "*=": lambda: x * y,
             "/=": lambda: c_div(x, y), "%=": lambda: c_mod(x, y)}
    try:
        got = run([["i", op, y]], set_i(x)).get("i", (x,))[0]
    except OvsdbError as e:
        if op in ("/=", "%=") and y == 0:
            assert e.to_json() == {"error": "domain error", "details": "Division by zero."}
        elif op in ("/=", "%=") and (x, y) == (INT64_MIN, -1):
            assert e.tag == "range error"
        else:
            r = exact[op]()
            assert not INT64_MIN <= r <= INT64_MAX
            assert e.details == f'Result of "{op}" operation is out of range.'
        return
    assert got == exact[op]()


@settings(max_examples=300)
@given(x=st.floats(allow_nan=False, allow_infinity=False),
       y=st.floats(allow_nan=False, allow_infinity=False),
       op=st.sampled_from(["+=", "-=", "*=", "/="]))
def test_real_arithmetic(x: float, y: float, op: str) -> None:
    row = {**CASE_ROW, "r": (x,)}
    try:
        got = run([["r", op, y]], row).get("r", (x,))[0]
    except OvsdbError as e:
        if op == "/=" and y == 0:
            assert e.tag == "domain error"
        else:
            assert e.tag == "range error"
        return
    expected = {"+=": x + y, "-=": x - y, "*=": x * y, "/=": x / y if y else 0.0}[op]
    assert got == expected and isinstance(got, float)


@st.composite
def int_sets(draw: st.DrawFn) -> list[int]:
    return draw(st.lists(st.integers(-20, 20), max_size=6, unique=True))


@settings(max_examples=300)
@given(values=int_sets(), y=st.integers(-5, 5),
       op=st.sampled_from(["+=", "-=", "*=", "/=", "%="]))
def test_set_arithmetic_is_elementwise_and_canonical(values: list[int], y: int, op: str) -> None:
    row = {**CASE_ROW, "si": tuple(sorted(values))}
    f = {"+=": lambda x: x + y, "-=": lambda x: x - y, "*=": lambda x: x * y,
         "/=": lambda x: c_div(x, y), "%=": lambda x: c_mod(x, y)}[op]
    try:
        got = run([["si", op, y]], row).get("si", row["si"])
    except OvsdbError as e:
        if values and op in ("/=", "%=") and y == 0:
            assert e.tag == "domain error"
        else:
            assert e.to_json() == {
                "error": "constraint violation",
                "details": f'Result of "{op}" operation contains duplicates.'}
            assert len({f(x) for x in values}) < len(values)
        return
    assert got == tuple(sorted({f(x) for x in values}))
    assert len(got) == len(values)


@settings(max_examples=300)
@given(values=int_sets(), y=st.integers(-12, 12), op=st.sampled_from(["+=", "-=", "*="]))
def test_constraints_apply_to_results(values: list[int], y: int, op: str) -> None:
    # cis holds integers in [1, 10].
    start = tuple(sorted({v % 10 + 1 for v in values}))
    row = {**CASE_ROW, "cis": start}
    f = {"+=": lambda x: x + y, "-=": lambda x: x - y, "*=": lambda x: x * y}[op]
    results = [f(x) for x in start]
    try:
        got = run([["cis", op, y]], row).get("cis", start)
    except OvsdbError as e:
        bad = [r for r in results if not 1 <= r <= 10]
        if bad:
            assert e.details == f"{bad[0]} is not in the valid range 1 to 10 (inclusive)"
        else:
            assert "contains duplicates" in str(e.details)
        return
    assert got == tuple(sorted(results))


STRS = st.sampled_from(["a", "b", "c", "d", "e"])


@settings(max_examples=300)
@given(start=st.dictionaries(STRS, STRS, max_size=5),
       muts=st.lists(st.tuples(st.sampled_from(["insert", "delete", "delete-keys"]),
                               st.dictionaries(STRS, STRS, max_size=3)), max_size=4))
def test_map_insert_and_delete_match_dict_reference(
        start: dict[str, str], muts: list[tuple[str, dict[str, str]]]) -> None:
    row = {**CASE_ROW, "m": tuple(sorted(start.items()))}
    mutations: list[Any] = []
    ref = dict(start)
    for kind, d in muts:
        if kind == "insert":
            mutations.append(["m", "insert", ["map", [[k, v] for k, v in d.items()]]])
            for k, v in d.items():
                ref.setdefault(k, v)
        elif kind == "delete":
            mutations.append(["m", "delete", ["map", [[k, v] for k, v in d.items()]]])
            for k, v in d.items():
                if ref.get(k) == v:
                    del ref[k]
        else:
            mutations.append(["m", "delete", ["set", list(d)]])
            for k in d:
                ref.pop(k, None)
    got = run(mutations, row).get("m", row["m"])
    assert got == tuple(sorted(ref.items()))


@settings(max_examples=300)
@given(start=st.lists(STRS, max_size=3, unique=True),
       muts=st.lists(st.tuples(st.booleans(), st.lists(STRS, max_size=3, unique=True)),
                     max_size=4))
def test_set_insert_and_delete_match_set_reference(
        start: list[str], muts: list[tuple[bool, list[str]]]) -> None:
    ref = set(start)
    mutations: list[Any] = []
    for insert, items in muts:
        mutations.append(["ss", "insert" if insert else "delete", ["set", items]])
        ref = ref | set(items) if insert else ref - set(items)
    row = {**CASE_ROW, "ss": tuple(sorted(start))}
    assert run(mutations, row).get("ss", row["ss"]) == tuple(sorted(ref))


@settings(max_examples=200)
@given(start=st.lists(st.integers(0, 6), min_size=1, max_size=3, unique=True),
       insert=st.booleans(), items=st.lists(st.integers(0, 6), max_size=3, unique=True))
def test_count_limits_after_the_mutation(start: list[int], insert: bool, items: list[int]
                                         ) -> None:
    row = {**CASE_ROW, "si3": tuple(sorted(start))}
    ref = set(start) | set(items) if insert else set(start) - set(items)
    muts = [["si3", "insert" if insert else "delete", ["set", items]]]
    if 1 <= len(ref) <= 3:
        assert run(muts, row).get("si3", row["si3"]) == tuple(sorted(ref))
    else:
        with pytest.raises(OvsdbError) as e:
            run(muts, row)
        assert e.value.to_json() == {
            "error": "constraint violation",
            "details": f"Attempted to store {len(ref)} elements in set of 1 to 3 integers."}


ANY_ATOM = st.one_of(st.integers(-3, 12), st.sampled_from([0.5, -1.5, 2.0]), STRS,
                     st.sampled_from(["", "toolong"]), st.booleans())
ANY_ARG = st.one_of(ANY_ATOM, st.lists(ANY_ATOM, max_size=3).map(lambda v: ["set", v]),
                    st.lists(st.tuples(ANY_ATOM, ANY_ATOM), max_size=3).map(
                        lambda v: ["map", [list(p) for p in v]]))
MUTABLE = sorted(c for c, s in T.columns.items() if s.mutable)


@settings(max_examples=500)
@given(muts=st.lists(st.tuples(st.sampled_from(MUTABLE),
                               st.sampled_from(["+=", "-=", "*=", "/=", "%=", "insert",
                                                "delete"]), ANY_ARG), min_size=1, max_size=3))
def test_any_mutation_gives_an_error_or_canonical_datums(muts: list[tuple[str, str, Any]]
                                                         ) -> None:
    before = dict(CASE_ROW)
    try:
        changed = run([list(m) for m in muts])
    except OvsdbError as e:
        assert e.to_json()["error"]
        return
    finally:
        assert before == CASE_ROW
    for col, datum in changed.items():
        ctype = T.columns[col].type
        datum_check(ctype, datum)
        keys = [p[0] for p in datum] if ctype.value is not None else list(datum)
        assert keys == sorted(set(keys))
        assert datum_from_json(ctype, datum_to_json(ctype, datum)) == datum
