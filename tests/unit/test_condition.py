"""Where clauses: ovsdb-server's errors and results, and evaluation against a naive reference.

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

from hwvtep.ovsdb.condition import (
    MONITOR_TRUE,
    Condition,
    parse_monitor_condition,
    parse_where,
)
from hwvtep.ovsdb.data import Datum, datum_from_json, datum_to_json, default_datum
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.schema import DatabaseSchema, TableSchema

DATA = Path(__file__).parent.parent / "data"
SCHEMA = DatabaseSchema.from_text((DATA / "condmut.ovsschema").read_text())
T = SCHEMA.tables["T"]
CASES = json.loads((DATA / "condmut_cases.json").read_text())
U1 = "550e8400-e29b-41d4-a716-446655440000"
U2 = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
ROW_UUID = "11111111-2222-3333-4444-555555555555"
NAMED = "99999999-9999-4999-8999-999999999999"


def make_row(table: TableSchema, values: dict[str, Any], uuid: str = ROW_UUID) -> dict[str, Datum]:
    row = {name: default_datum(c.type) for name, c in table.columns.items()}
    row.update({name: datum_from_json(table.columns[name].type, v) for name, v in values.items()})
    row["_uuid"] = (uuid,)
    row["_version"] = (U2,)
    return row


CASE_ROW = make_row(T, CASES["row"])


def symtab(name: str) -> str:
    return NAMED


@pytest.mark.parametrize(("where", "expected"), CASES["where"],
                         ids=[json.dumps(c[0])[:60] for c in CASES["where"]])
def test_open_vswitch_recorded_cases(where: list[Any], expected: dict[str, Any]) -> None:
    if "error" in expected:
        with pytest.raises(OvsdbError) as e:
            parse_where(T, where, symtab)
        assert e.value.to_json() == expected
    else:
        assert parse_where(T, where, symtab).evaluate(CASE_ROW) is expected["match"]


def test_recorded_cases_cover_every_function_and_kind_of_column() -> None:
    seen = {(c[0][0][0], c[0][0][1]) for c in CASES["where"]
            if "match" in c[1] and len(c[0]) == 1 and isinstance(c[0][0], list)}
    for col in ("i", "r", "oi", "or"):
        for f in ("<", "<=", "==", "!=", ">=", ">", "includes", "excludes"):
            assert (col, f) in seen
    for col in ("b", "s", "u", "os", "si", "si3", "ss", "sr", "su", "m", "mi", "m1"):
        for f in ("==", "!=", "includes", "excludes"):
            assert (col, f) in seen


def test_empty_where_matches_every_row_and_literals_are_anded() -> None:
    assert parse_where(T, []).evaluate(CASE_ROW)
    assert parse_where(T, [True, ["i", "==", 5]]).evaluate(CASE_ROW)
    c = parse_where(T, [True, False])
    assert not c.evaluate(CASE_ROW)
    assert c.is_false and c.columns == frozenset()
    assert not parse_where(T, [["i", "==", 5]]).is_false


def test_uuid_eq_lets_callers_go_straight_to_the_row() -> None:
    c = parse_where(T, [["i", "==", 5], ["_uuid", "==", ["uuid", ROW_UUID.upper()]]])
    assert c.uuid_eq == ROW_UUID
    assert c.columns == frozenset({"i", "_uuid"})
    assert c.evaluate(CASE_ROW)
    assert not c.evaluate(make_row(T, CASES["row"], uuid=U1))
    # The other clauses still count: uuid_eq only narrows the search.
    assert not parse_where(T, [["_uuid", "==", ["uuid", ROW_UUID]], ["i", "==", 6]]).evaluate(
        CASE_ROW)
    assert parse_where(T, [["_uuid", "includes", ["uuid", ROW_UUID]]]).uuid_eq == ROW_UUID
    assert parse_where(T, [["_uuid", "==", ["named-uuid", "row"]]], symtab).uuid_eq == NAMED
    assert parse_where(T, [["_uuid", "!=", ["uuid", ROW_UUID]]]).uuid_eq is None
    assert parse_where(T, [["_version", "==", ["uuid", U2]]]).uuid_eq is None
    assert parse_where(T, [["_version", "==", ["uuid", U2]]]).evaluate(CASE_ROW)


def test_named_uuid_needs_a_transaction() -> None:
    with pytest.raises(OvsdbError) as e:
        parse_where(T, [["u", "==", ["named-uuid", "x"]]])
    assert e.value.to_json() == {"error": "syntax error", "details": 'expected ["uuid", <string>]',
                                 "syntax": '["named-uuid","x"]'}


@pytest.mark.parametrize("name", ["true", "false"])
def test_literal_names_are_not_functions(name: str) -> None:
    # ovsdb-server 3.1 accepts these names and then aborts; we refuse them.
    with pytest.raises(OvsdbError) as e:
        parse_where(T, [["i", name, 1]])
    assert e.value.to_json() == {"error": "unknown function",
                                 "details": f"No function named {name}."}


def test_where_must_be_a_list() -> None:
    with pytest.raises(OvsdbError) as e:
        parse_where(T, {})
    assert e.value.tag == "syntax error"
    assert e.value.details == "Type mismatch for member 'where'."


def test_to_json_gives_back_the_clauses() -> None:
    where = [["si", "includes", ["set", [1, 2]]], True, ["u", "==", ["uuid", U1]], ["i", "<", 3]]
    assert parse_where(T, where).to_json() == where
    assert isinstance(parse_where(T, where), Condition)


def test_conditions_are_values() -> None:
    a = parse_where(T, [["i", "==", 1]])
    assert a == parse_where(T, [["i", "==", 1]])
    assert a != parse_where(T, [["i", "==", 2]])


# --- monitor conditions ---------------------------------------------------------------

def test_monitor_condition_is_an_or_and_empty_means_true() -> None:
    other = make_row(T, {**CASES["row"], "i": 9, "s": "bye"})
    mc = parse_monitor_condition(T, [["i", "==", 9], ["s", "==", "hello"]])
    assert mc.evaluate(CASE_ROW) and mc.evaluate(other)
    assert not mc.is_true and not mc.is_false
    assert mc.columns == frozenset({"i", "s"})
    none = parse_monitor_condition(T, [["i", "==", 1], ["s", "==", "zz"]])
    assert not none.evaluate(CASE_ROW)
    assert parse_monitor_condition(T, []) == MONITOR_TRUE
    assert MONITOR_TRUE.is_true and MONITOR_TRUE.evaluate(CASE_ROW)


def test_monitor_literals() -> None:
    f = parse_monitor_condition(T, [False])
    assert f.is_false and not f.is_true and not f.evaluate(CASE_ROW)
    assert parse_monitor_condition(T, [False, False]).is_false
    t = parse_monitor_condition(T, [["i", "==", 1], True])
    assert t.is_true and not t.is_false and t.evaluate(CASE_ROW)
    mixed = parse_monitor_condition(T, [False, ["i", "==", 5]])
    assert not mixed.is_false and not mixed.is_true and mixed.evaluate(CASE_ROW)
    assert mixed.to_json() == [False, ["i", "==", 5]]


def test_monitor_conditions_compare_by_meaning_not_by_spelling() -> None:
    a = parse_monitor_condition(T, [["s", "==", "x"], ["i", "==", 1], ["i", "==", 1]])
    b = parse_monitor_condition(T, [["i", "==", 1], ["s", "==", "x"]])
    assert a == b
    assert a != parse_monitor_condition(T, [["i", "==", 2], ["s", "==", "x"]])
    # Open vSwitch's order: literals, "==", ..., "!="; _uuid first within a function.
    c = parse_monitor_condition(T, [["s", "!=", "x"], ["s", "==", "x"], True,
                                    ["_uuid", "==", ["uuid", U1]]])
    assert c.to_json() == [True, ["_uuid", "==", ["uuid", U1]], ["s", "==", "x"],
                           ["s", "!=", "x"]]


def test_monitor_conditions_reject_named_uuids() -> None:
    with pytest.raises(OvsdbError) as e:
        parse_monitor_condition(T, [["_uuid", "==", ["named-uuid", "a"]]])
    assert e.value.tag == "syntax error"


def test_many_uuids_in_one_monitor_condition() -> None:
    uuids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(500)]
    mc = parse_monitor_condition(T, [["_uuid", "==", ["uuid", u]] for u in uuids])
    assert mc.evaluate(make_row(T, CASES["row"], uuid=uuids[321]))
    assert not mc.evaluate(CASE_ROW)


# --- evaluation against a naive reference ---------------------------------------------

INTS = st.sampled_from([-3, 0, 1, 2])
REALS = st.sampled_from([-1.5, 0.0, 1.0, 2.5])
STRS = st.sampled_from(["", "a", "b", "ab"])
COLS = {
    "i": ("scalar", INTS), "r": ("scalar", REALS), "s": ("scalar", STRS),
    "b": ("scalar", st.booleans()),
    "oi": ("set", INTS, 1), "or": ("set", REALS, 1), "os": ("set", STRS, 1),
    "si": ("set", INTS, 5), "ss": ("set", STRS, 4), "sr": ("set", REALS, 4),
    "m": ("map", STRS, STRS, 4), "mi": ("map", INTS, STRS, 2),
}
ORDERED = {"i", "r", "oi", "or"}


def value_json(col: str) -> st.SearchStrategy[Any]:
    spec = COLS[col]
    if spec[0] == "scalar":
        return spec[1]
    if spec[0] == "set":
        return st.lists(spec[1], max_size=spec[2], unique=True).map(lambda v: ["set", v])
    return st.dictionaries(spec[1], spec[2], max_size=spec[3]).map(
        lambda d: ["map", [[k, v] for k, v in d.items()]])


@st.composite
def clause_json(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 15)) == 0:
        return draw(st.booleans())
    col = draw(st.sampled_from(sorted(COLS)))
    fns = ["==", "!=", "includes", "excludes"]
    if col in ORDERED:
        fns += ["<", "<=", ">", ">="]
    f = draw(st.sampled_from(fns))
    if f in ("<", "<=", ">", ">="):
        return [col, f, draw(COLS[col][1])]
    return [col, f, draw(value_json(col))]


@st.composite
def row_values(draw: st.DrawFn) -> dict[str, Any]:
    return {col: draw(value_json(col)) for col in COLS}


def reference(row: dict[str, Datum], clause: Any) -> bool:
    """RFC 7047 section 5.1 and ovsdb-server(7) read literally, with Python sets."""
    if isinstance(clause, bool):
        return clause
    col, f, arg_j = clause
    ctype = T.columns[col].type
    field = row[col]
    if ctype.value is not None:
        have = set(field)
        arg = {(k, v) for k, v in arg_j[1]}
    else:
        have = set(field)
        arg = set(arg_j[1]) if isinstance(arg_j, list) else {arg_j}
    if f in ("<", "<=", ">", ">="):
        if not field:
            return False
        x, (a,) = field[0], tuple(arg)
        return {"<": x < a, "<=": x <= a, ">": x > a, ">=": x >= a}[f]
    if f == "==":
        return have == arg
    if f == "!=":
        return have != arg
    if f == "includes":
        return arg <= have
    return not (arg & have)


@settings(max_examples=600, deadline=None)
@given(rows=st.lists(row_values(), min_size=1, max_size=4),
       where=st.lists(clause_json(), max_size=4))
def test_evaluation_matches_reference(rows: list[dict[str, Any]], where: list[Any]) -> None:
    try:
        cond = parse_where(T, where)
    except OvsdbError:
        # Only a scalar column refuses an empty or multi-valued argument.
        assert any(isinstance(c, list) and T.columns[c[0]].type.is_scalar for c in where)
        return
    mcond = parse_monitor_condition(T, where)
    singles = [parse_where(T, [c]) for c in where]
    for values in rows:
        row = make_row(T, values)
        expected = [reference(row, c) for c in where]
        assert [s.evaluate(row) for s in singles] == expected
        assert cond.evaluate(row) is all(expected)
        assert mcond.evaluate(row) is (any(expected) or not where)


@given(values=row_values(), uuids=st.lists(st.sampled_from([U1, U2, ROW_UUID]), max_size=3))
def test_or_of_equalities_matches_reference(values: dict[str, Any], uuids: list[str]) -> None:
    row = make_row(T, values)
    where: list[Any] = [["_uuid", "==", ["uuid", u]] for u in uuids]
    where += [["i", "==", values["i"]], ["s", "==", "ab"]]
    assert parse_monitor_condition(T, where).evaluate(row)
    mc2 = parse_monitor_condition(T, [["_uuid", "==", ["uuid", u]] for u in uuids]
                                  + [["s", "==", "ab"]])
    assert mc2.evaluate(row) is (ROW_UUID in uuids or row["s"] == ("ab",))


def test_argument_json_round_trips() -> None:
    for clause in (["m", "includes", ["map", [["a", "b"]]]], ["oi", "==", ["set", []]],
                   ["su", "excludes", ["set", [["uuid", U1], ["uuid", U2]]]]):
        c = parse_where(T, [clause]).clauses[0]
        assert c.ctype is not None
        assert c.to_json() == [clause[0], clause[1],
                               datum_to_json(c.ctype, datum_from_json(c.ctype, clause[2]))]
