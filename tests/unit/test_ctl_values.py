"""Values as `hwvtep ctl` parses and prints them: Open vSwitch's command-line syntax.

Expected texts are what vtep-ctl 3.1 prints for the same input (recorded by running it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from hwvtep.ctl import jsonfast
from hwvtep.ctl.values import (
    CtlError,
    Schema,
    SymbolTable,
    Type,
    atom_to_string,
    compare_3way,
    datum_from_json,
    datum_from_string,
    datum_to_bare,
    datum_to_json,
    datum_to_string,
    format_real,
    includes_all,
    is_uuid,
    json_dumps,
    partial_uuid_len,
    str_to_double,
    subtract,
    token_parse,
    union,
)

SCHEMA = Schema(json.loads(
    (Path(__file__).parents[2] / "src/hwvtep/schemas/hardware_vtep.ovsschema").read_text()))


def col(table: str, column: str) -> Type:
    return SCHEMA.table(table).columns[column].type


LS_KEY = col("Logical_Switch", "tunnel_key")
OTHER = col("Logical_Switch", "other_config")
MODE = col("Logical_Switch", "replication_mode")
NAME = col("Logical_Switch", "name")
IPS = col("Physical_Switch", "management_ips")
BINDINGS = col("Physical_Port", "vlan_bindings")
LOCATORS = col("Physical_Locator_Set", "locators")


@pytest.mark.parametrize(("s", "expected"), [
    ("abc", False), ("a.b-c_d", False), ("_x9", False), ("", True), ("9a", True),
    ("a b", True), ("true", True), ("false", True), ("été", True), ("a:b", True),
    ("01234567-89ab-cdef-0123-456789abcdef", True), ('say "hi"', True),
])
def test_strings_are_quoted_when_needed(s: str, expected: bool) -> None:
    out = atom_to_string("string", s)
    assert (out != s) is expected
    if expected:
        assert json.loads(out) == s


@pytest.mark.parametrize(("t", "datum", "string", "bare"), [
    (NAME, ("ls1",), "ls1", "ls1"),
    (NAME, ("a b",), '"a b"', "a b"),
    (LS_KEY, (), "[]", ""),
    (LS_KEY, (5,), "5", "5"),
    (IPS, ("10.0.0.1", "10.0.0.2"), '["10.0.0.1", "10.0.0.2"]', "10.0.0.1 10.0.0.2"),
    (IPS, ("x",), "[x]", "x"),
    (OTHER, (), "{}", ""),
    (OTHER, (("a", "1"), ("b", "x y")), '{a="1", b="x y"}', "a=1 b=x y"),
    (BINDINGS, ((7, "01234567-89ab-cdef-0123-456789abcdef"),),
     "{7=01234567-89ab-cdef-0123-456789abcdef}", "7=01234567-89ab-cdef-0123-456789abcdef"),
])
def test_to_string_and_bare(t: Type, datum: tuple[Any, ...], string: str, bare: str) -> None:
    assert datum_to_string(t, datum) == string
    assert datum_to_bare(t, datum) == bare


def test_json_round_trip_with_the_servers_notation() -> None:
    j = ["map", [[7, ["uuid", "01234567-89ab-cdef-0123-456789abcdef"]]]]
    d = datum_from_json(BINDINGS, j)
    assert d == ((7, "01234567-89ab-cdef-0123-456789abcdef"),)
    assert datum_to_json(BINDINGS, d) == j
    assert datum_from_json(IPS, ["set", ["b", "a"]]) == ("a", "b")
    assert datum_to_json(IPS, ("a",)) == "a"
    assert datum_from_json(LS_KEY, ["set", []]) == ()


@pytest.mark.parametrize(("t", "text", "expected"), [
    (LS_KEY, "5", (5,)),
    (LS_KEY, "[]", ()),
    (LS_KEY, " [ 7 ] ", (7,)),
    (IPS, "b,a c", ("a", "b", "c")),
    (IPS, '["x y", z]', ("x y", "z")),
    (IPS, "[]", ()),
    (OTHER, "{a=1, b=\"x y\"}", (("a", "1"), ("b", "x y"))),
    (OTHER, "a=1 b=2", (("a", "1"), ("b", "2"))),
    (OTHER, "{}", ()),
    (OTHER, 'k="a\\tb\\u00e9"', (("k", "a\tb\u00e9"),)),
    (IPS, "a\\,b", ("a,b",)),
    (col("ACL_entry", "sequence"), "-5", (-5,)),
    (col("Physical_Port", "vlan_bindings").relaxed(1, 2**32 - 1),
     "{1=01234567-89ab-cdef-0123-456789ABCDEF}",
     ((1, "01234567-89ab-cdef-0123-456789abcdef"),)),
])
def test_from_string(t: Type, text: str, expected: tuple[Any, ...]) -> None:
    assert datum_from_string(t, text, None) == expected


def test_integer_ranges_in_sets() -> None:
    t = Type.from_json({"key": "integer", "min": 0, "max": "unlimited"})
    assert datum_from_string(t, "1-3,7", None) == (1, 2, 3, 7)
    assert datum_from_string(t, "-3--1", None) == (-3, -2, -1)


# Each message is vtep-ctl's for the same input.
@pytest.mark.parametrize(("t", "text", "message"), [
    (OTHER, "{a}", 'a}: syntax error at "}" expecting "="'),
    (OTHER, "a", 'a: syntax error at "'),
    (NAME, "", 'use "[]" to specify the empty set'),
    (OTHER, "", 'use "{}" to specify the empty map'),
    (NAME, '"', '": quoted string extends past end of argument'),
    (NAME, '"unterminated', '"unterminated: quoted string extends past end of argument'),
    (NAME, '"a\\qb"', '"a\\qb": bad escape \\q'),
    (NAME, '"\\u0000"', '"\\u0000": null bytes not supported in quoted strings'),
    (NAME, '"\\ud800x"', '"\\ud800x": malformed escaped surrogate pair'),
    (NAME, "a\\", "a\\: backslash at end of argument"),
    (LS_KEY, "x", '"x" is not a valid integer or range'),
    (LS_KEY, "1-5000", 'constraint violation: Range "1-5000" is too big. Maximum allowed '
     "size is 4096."),
    (LS_KEY, "5-1", '"5-1" is not a valid range. Range end cannot be before start.'),
    (LS_KEY, "[1,2]", "[1,2]: 2 value(s) specified but the maximum number is 1"),
    (NAME, "[]", "[]: 0 value(s) specified but the minimum number is 1"),
    (LOCATORS, "[]", "[]: 0 value(s) specified but the minimum number is 1"),
    (IPS, "[a,a]", "[a,a]: set contains duplicate value"),
    (OTHER, "{a=1,a=2}", "{a=1,a=2}: map contains duplicate key"),
    (OTHER, "{a=1} x", '{a=1} x: trailing garbage after "}"'),
    (IPS, "[a", '[a: missing "]" at end of data'),
    (OTHER, "[a=1]", '[a=1]: unexpected "[" parsing map of (string, string) pairs'),
    (MODE, "bogus", "constraint violation: bogus is not one of the allowed values "
     "([service_node, source_node])"),
    (col("Physical_Locator", "encapsulation_type"), "gre",
     "constraint violation: gre is not one of the allowed values ([vxlan_over_ipv4])"),
    (BINDINGS, "{5000=01234567-89ab-cdef-0123-456789abcdef}",
     "constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)"),
    (col("Manager", "max_backoff"), "5",
     "constraint violation: 5 is less than minimum allowed value 1000"),
    (BINDINGS, "{1=nope}", '"nope" is not a valid UUID'),
    (Type.from_json("boolean"), "maybe", '"maybe" is not a valid boolean (use "true" or '
     '"false")'),
    (Type.from_json("real"), "1e999", '"1e999" is not a valid real number'),
])
def test_from_string_errors(t: Type, text: str, message: str) -> None:
    with pytest.raises(CtlError) as e:
        datum_from_string(t, text, None)
    assert str(e.value) == message


def test_booleans_and_reals() -> None:
    b = Type.from_json("boolean")
    assert [datum_from_string(b, s, None) for s in ("yes", "on", "1", "off", "0")] == [
        (True,), (True,), (True,), (False,), (False,)]
    r = Type.from_json("real")
    assert datum_from_string(r, "1.5e3", None) == (1500.0,)
    assert datum_from_string(r, "-0", None) == (0.0,)
    assert str_to_double("0x10") == 16.0
    assert math.isinf(str_to_double("-inf") or 0)
    assert str_to_double("1_0") is None
    assert format_real(1.0) == "1" and format_real(1e20) == "1e+20"
    assert format_real(1 / 3) == "0.333333333333333" and format_real(1e-5) == "1e-05"


def test_symbols_are_created_and_marked_by_reference_kind() -> None:
    symtab = SymbolTable()
    d = datum_from_string(col("Global", "managers"), "[@m]", symtab)
    sym = symtab.get("@m")
    assert sym is not None and d == (sym.uuid,) and is_uuid(sym.uuid)
    assert sym.strong_ref and not sym.created
    with pytest.raises(CtlError, match='"@m" is not a valid UUID'):
        datum_from_string(col("Global", "managers"), "@m", None)


def test_token_parse() -> None:
    assert token_parse("abc:def=1", 0) == ("abc", 3)
    assert token_parse('"a:b"=c', 0) == ('"a:b"', 5)
    assert token_parse("a\\=b=c", 0) == ("a=b", 4)
    assert token_parse(":x", 0) == ("", 0)


def test_comparisons_follow_open_vswitch() -> None:
    # Size first, then all keys, then all values (not pairwise).
    assert compare_3way(IPS, ("a",), ("a", "b")) < 0
    assert compare_3way(OTHER, (("1", "b"), ("2", "a")), (("1", "a"), ("2", "z"))) > 0
    assert includes_all(OTHER, (("a", "1"),), (("a", "1"), ("b", "2")))
    assert not includes_all(OTHER, (("a", "2"),), (("a", "1"), ("b", "2")))
    assert union(OTHER, (("a", "new"),), (("a", "old"), ("b", "2"))) == (
        ("a", "new"), ("b", "2"))
    assert subtract(OTHER, (("a", "1"), ("b", "2")), ("a",), True) == (("b", "2"),)
    assert subtract(OTHER, (("a", "1"), ("b", "2")), (("a", "9"),), False) == (
        ("a", "1"), ("b", "2"))


def test_uuid_helpers() -> None:
    u = "01234567-89ab-cdef-0123-456789abcdef"
    assert is_uuid(u) and is_uuid(u.upper()) and not is_uuid(u[:-1] + "g")
    assert partial_uuid_len("0123") == 4 and partial_uuid_len("01234567-8") == 10
    assert partial_uuid_len("0123x") == 0 and partial_uuid_len("012345678") == 0


def test_json_output_like_open_vswitch() -> None:
    j = {"headings": ["a", "b"], "data": [[["uuid", "x"], 1.0, "é\n"]]}
    assert json_dumps(j) == '{"data":[[["uuid","x"],1,"é\\n"]],"headings":["a","b"]}'
    assert json_dumps(j, pretty=True) == (
        '{\n  "data": [\n    [\n      [\n        "uuid",\n        "x"],\n      1,\n'
        '      "é\\n"]],\n  "headings": [\n    "a",\n    "b"]}')
    assert json_dumps([]) == "[]" and json_dumps({"a": []}, pretty=True) == '{\n  "a": []}'
    assert json_dumps("\x01\x7f") == '"\\u0001\x7f"'


def test_fast_json_codec() -> None:
    v = {"id": 1, "method": "echo", "params": ["é", 1.5, None, True, [], {}]}
    text = jsonfast.dumps(v)
    assert json.loads(text) == v and "é" in text
    assert jsonfast.loads(" " + text + "\n") == v
    assert jsonfast.scan('{"a":1}{"b":2}') == ({"a": 1}, 7)
    for bad in ('{"a":', "", "{} x"):
        with pytest.raises(ValueError):
            jsonfast.loads(bad)
