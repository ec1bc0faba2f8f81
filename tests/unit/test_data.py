"""Datum notation both ways, canonical order, constraints and update2 diffs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwvtep.ovsdb.data import (
    datum_apply_diff,
    datum_diff,
    datum_from_json,
    datum_to_json,
    datum_to_string,
    default_datum,
)
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.types import UNLIMITED, BaseType, ColumnType

U1 = "550e8400-e29b-41d4-a716-446655440000"
U2 = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
STR_SET = ColumnType(BaseType("string"), None, 0, UNLIMITED)
STR_MAP = ColumnType(BaseType("string"), BaseType("string"), 0, UNLIMITED)
INT_MAP = ColumnType(BaseType("integer", min_integer=0, max_integer=4095),
                     BaseType("uuid"), 0, UNLIMITED)
OPT_INT = ColumnType(BaseType("integer"), None, 0, 1)


def test_one_element_set_is_a_bare_atom_both_ways() -> None:
    assert datum_from_json(STR_SET, "a") == ("a",)
    assert datum_from_json(STR_SET, ["set", ["a"]]) == ("a",)
    assert datum_to_json(STR_SET, ("a",)) == "a"
    assert datum_to_json(STR_SET, ()) == ["set", []]
    assert datum_to_json(STR_SET, ("a", "b")) == ["set", ["a", "b"]]


def test_canonical_order_and_uuid_notation() -> None:
    uset = ColumnType(BaseType("uuid"), None, 0, UNLIMITED)
    d = datum_from_json(uset, ["set", [["uuid", U2], ["uuid", U1.upper()]]])
    assert d == (U1, U2)
    assert datum_to_json(uset, d) == ["set", [["uuid", U1], ["uuid", U2]]]
    m = datum_from_json(INT_MAP, ["map", [[7, ["uuid", U2]], [0, ["uuid", U1]]]])
    assert m == ((0, U1), (7, U2))
    assert datum_to_json(INT_MAP, m) == ["map", [[0, ["uuid", U1]], [7, ["uuid", U2]]]]


def test_named_uuid_needs_a_symbol_table() -> None:
    col = ColumnType(BaseType("uuid"))
    with pytest.raises(OvsdbError):
        datum_from_json(col, ["named-uuid", "x"])
    assert datum_from_json(col, ["named-uuid", "x"], lambda n: U1) == (U1,)


@pytest.mark.parametrize(
    ("ctype", "j", "tag"),
    [
        (ColumnType(BaseType("integer")), "1", "syntax error"),
        (ColumnType(BaseType("integer")), 1.5, "syntax error"),
        (ColumnType(BaseType("integer")), True, "syntax error"),
        (ColumnType(BaseType("integer")), 2**63, "syntax error"),
        (ColumnType(BaseType("boolean")), 1, "syntax error"),
        (ColumnType(BaseType("uuid")), ["uuid", "nope"], "syntax error"),
        (STR_MAP, ["set", []], "syntax error"),
        (STR_MAP, ["map", [["a", "1"], ["a", "2"]]], "ovsdb error"),
        (STR_SET, ["set", ["a", "a"]], "ovsdb error"),
        # ovsdb-server 3.1 reports a wrong element count as a syntax error.
        (OPT_INT, ["set", [1, 2]], "syntax error"),
        (ColumnType(BaseType("integer")), ["set", []], "syntax error"),
        (INT_MAP, ["map", [[4096, ["uuid", U1]]]], "constraint violation"),
        (ColumnType(BaseType("string", enum=("a", "b"))), "c", "constraint violation"),
        (ColumnType(BaseType("string", min_length=2)), "c", "constraint violation"),
    ],
)
def test_bad_values_are_rfc7047_errors(ctype: ColumnType, j: Any, tag: str) -> None:
    with pytest.raises(OvsdbError) as e:
        datum_from_json(ctype, j)
    assert e.value.tag == tag
    assert "error" in e.value.to_json()


def test_constraint_texts_match_open_vswitch() -> None:
    ranged = ColumnType(BaseType("integer", min_integer=0, max_integer=4095))
    with pytest.raises(OvsdbError) as e:
        datum_from_json(ranged, 4096)
    assert e.value.details == "4096 is not in the valid range 0 to 4095 (inclusive)"
    enum = ColumnType(BaseType("string", enum=("service_node", "source_node")))
    with pytest.raises(OvsdbError) as e:
        datum_from_json(enum, "x")
    assert e.value.details == (
        "x is not one of the allowed values ([service_node, source_node])")


def test_defaults() -> None:
    assert default_datum(ColumnType(BaseType("integer"))) == (0,)
    assert default_datum(OPT_INT) == ()
    assert default_datum(ColumnType(BaseType("uuid"))) == ("00000000-0000-0000-0000-000000000000",)


def test_to_string_like_vtep_ctl() -> None:
    assert datum_to_string(STR_SET, ()) == "[]"
    assert datum_to_string(OPT_INT, ()) == "[]"
    assert datum_to_string(OPT_INT, (5,)) == "5"
    assert datum_to_string(STR_SET, ("1.2.3.4", "br0", "s2-eth1")) == '["1.2.3.4", br0, s2-eth1]'
    assert datum_to_string(STR_SET, ("550e8400-e29b-41d4-a716-446655440000", "true")) == (
        '["550e8400-e29b-41d4-a716-446655440000", "true"]')
    assert datum_to_string(STR_MAP, (("a", "true"), ("k", "x y"))) == '{a="true", k="x y"}'
    assert datum_to_string(ColumnType(BaseType("string")), ("",)) == '""'
    assert datum_to_string(ColumnType(BaseType("real")), (1.5,)) == "1.5"


atoms = st.text(alphabet="abcdef", max_size=3)


@given(st.frozensets(atoms, max_size=8), st.frozensets(atoms, max_size=8))
def test_set_diff_round_trip(a: frozenset[str], b: frozenset[str]) -> None:
    old, new = tuple(sorted(a)), tuple(sorted(b))
    diff = datum_diff(STR_SET, old, new)
    assert datum_apply_diff(STR_SET, old, diff) == new


@given(st.dictionaries(atoms, atoms, max_size=8), st.dictionaries(atoms, atoms, max_size=8))
def test_map_diff_round_trip(a: dict[str, str], b: dict[str, str]) -> None:
    old, new = tuple(sorted(a.items())), tuple(sorted(b.items()))
    diff = datum_diff(STR_MAP, old, new)
    assert datum_apply_diff(STR_MAP, old, diff) == new
    assert list(diff) == sorted(diff)
