"""The standalone file format (hwvtep.ovsdb.log), against facts recorded from OVS 3.1.

Expected strings here were produced by Debian's Open vSwitch 3.1 binaries (ovsdb-tool)
on the same inputs; tests/integration/test_tool.py and test_file_interop.py replay many of
them against the binaries themselves.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwvtep.ovsdb import log as ovlog
from hwvtep.ovsdb.data import default_datum
from hwvtep.ovsdb.database import Changes, Database, Row
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.schema import DatabaseSchema

SCHEMA_JSON: dict[str, Any] = {
    "name": "t",
    "version": "1.0.0",
    "tables": {
        "A": {"isRoot": True, "columns": {
            "name": {"type": "string"},
            "i": {"type": "integer"},
            "r": {"type": "real"},
            "b": {"type": "boolean"},
            "opt": {"type": {"key": "string", "min": 0, "max": 1}},
            "s": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
            "s2": {"type": {"key": "string", "min": 0, "max": 2}},
            "s1": {"type": {"key": "integer", "min": 1, "max": "unlimited"}},
            "m": {"type": {"key": "string", "value": "string", "min": 0,
                           "max": "unlimited"}},
            "eph": {"type": "string", "ephemeral": True},
            "ref": {"type": {"key": {"type": "uuid", "refTable": "B"}, "min": 0,
                             "max": "unlimited"}, "ephemeral": True},
        }},
        "B": {"columns": {"x": {"type": "integer"}}},
    },
}
SCHEMA = DatabaseSchema.from_json(SCHEMA_JSON)

U1 = "11111111-1111-4111-8111-111111111111"
U2 = "22222222-2222-4222-8222-222222222222"
B1 = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"


def row(table: str, uuid: str, **values: Any) -> Row:
    r: Row = {c.name: default_datum(c.type) for c in SCHEMA.tables[table].user_columns}
    r.update(values)
    r["_uuid"] = (uuid,)
    r["_version"] = ("00000000-0000-4000-8000-000000000000",)
    return r


def versions() -> Any:
    n = iter(range(10**6))
    return lambda: f"00000000-0000-4000-8000-{next(n):012d}"


# --- framing --------------------------------------------------------------------------

# A record ovsdb-tool 3.1 wrote (ovsdb-tool transact ... delete).
OVS_RECORD = (
    b"OVSDB JSON 159 2589c59cb10fdbfe6856f225b5fbc5ec9671d3b2\n"
    b'{"_date":1795580517667,"Global":{"5354dc20-d7c9-4163-b1c8-485440ff38f0":null},'
    b'"Physical_Switch":{"1c2f4d65-293d-4ba9-ad1d-dd9701376f86":null},"_is_diff":true}\n')


def test_ovs_record_reads_and_composes_back_to_the_same_bytes() -> None:
    r = ovlog.read_record(OVS_RECORD, 0, "x.db")
    assert isinstance(r, ovlog.Record)
    assert r.end == len(OVS_RECORD)
    assert r.json["_is_diff"] is True
    assert ovlog.compose_record(r.json) == OVS_RECORD


def test_length_and_sha1_cover_the_json_and_its_newline() -> None:
    rec = ovlog.compose_record({"a": 1})
    header, data = rec.split(b"\n", 1)
    assert data == b'{"a":1}\n'
    _, magic, length, digest = header.split(b" ")
    assert magic == b"JSON"
    assert int(length) == len(data)
    assert digest.decode() == hashlib.sha1(data).hexdigest()


BASE = ovlog.compose_record({"name": "t", "tables": {}})
OFF = len(BASE)


def _sha(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


# tail appended after a good record -> the error ovsdb-tool 3.1 prints (offsets relative)
CORRUPTIONS = [
    (b"garbage\n", 'syntax error: x.db: parse error at offset {o} in header line "garbage"'),
    (b"OVSDB JSON 4 " + b"0" * 40 + b"\n[1]\n",
     "syntax error: x.db: 4 bytes starting at offset {d} have SHA-1 hash "
     "6d7e0100a388d5914d5a530b405235ce85fea122 but should have hash " + "0" * 40),
    (b"OVSDB JSON 4 " + _sha(b"[1]\n").encode() + b"\n",
     "I/O error: x.db: error reading 4 bytes starting at offset {d} (End of file)"),
    (b"OVSDB JSON 0 " + b"0" * 40 + b"\n",
     'syntax error: x.db: parse error at offset {o} in header line "OVSDB JSON"'),
    (b"OVSDB CLUSTER 4 " + b"0" * 40 + b"\n",
     'syntax error: x.db: parse error at offset {o} in header line "OVSDB CLUSTER"'),
    (b"OVSDB JSON 4 " + b"0" * 39 + b"\n",
     'syntax error: x.db: parse error at offset {o} in header line "OVSDB JSON"'),
    (b"OVSDB JSON", 'syntax error: x.db: parse error at offset {o} in header line "OVSDB JSON"'),
    (b"OVSDB JSON 4 " + _sha(b"[1]\n").encode() + b"\n[1]\n",
     "syntax error: x.db: 4 bytes starting at offset {d} are not a JSON object"),
    (b"OVSDB JSON 4 " + _sha(b"xyz\n").encode() + b"\nxyz\n",
     "syntax error: x.db: 4 bytes starting at offset {d} are not valid JSON "
     "(line 0, column 3, byte 3: invalid keyword 'xyz')"),
    (b"OVSDB JSON 5 " + _sha(b'"ab"\n').encode() + b'\n"ab"\n',
     "syntax error: x.db: 5 bytes starting at offset {d} are not valid JSON "
     "(line 0, column 3, byte 3: syntax error at beginning of input)"),
    (b"OVSDB JSON 5 " + _sha(b"{}{}\n").encode() + b"\n{}{}\n",
     "syntax error: x.db: 5 bytes starting at offset {d} are not valid JSON "
     "(line 0, column 2, byte 2: trailing garbage at end of input)"),
    (b"OVSDB JSON 3 " + _sha(b"{}\n").encode() + b" \n{}\n",
     'syntax error: x.db: parse error at offset {o} in header line "OVSDB JSON"'),
    (b"OVSDB JSON 3 " + _sha(b"{}\n").encode() + b"\r\n{}\n",
     'syntax error: x.db: parse error at offset {o} in header line "OVSDB JSON"'),
    (b"\n", 'syntax error: x.db: parse error at offset {o} in header line ""'),
]


@pytest.mark.parametrize(("tail", "message"), CORRUPTIONS)
def test_scan_stops_at_the_first_bad_record_with_ovs_wording(tail: bytes, message: str) -> None:
    good = ovlog.compose_record({"_date": 1})
    data = BASE + good + tail
    scan = ovlog.scan_records(data, "x.db")
    assert [r.json for r in scan.records] == [{"name": "t", "tables": {}}, {"_date": 1}]
    assert scan.end == OFF + len(good)
    assert scan.error is not None
    o = OFF + len(good)
    header_len = tail.find(b"\n") + 1
    assert str(scan.error) == message.format(o=o, d=o + header_len)
    assert scan.error.offset == o


@pytest.mark.parametrize("header", [
    b"OVSDB JSON +3 ", b"OVSDB JSON 03 ", b"OVSDB JSON  3 "])
def test_header_number_is_read_like_strtoul(header: bytes) -> None:
    data = BASE + header + _sha(b"{}\n").encode() + b"\n{}\n"
    scan = ovlog.scan_records(data, "x.db")
    assert scan.error is None and len(scan.records) == 2


def test_header_sha1_may_be_upper_case() -> None:
    data = BASE + b"OVSDB JSON 3 " + _sha(b"{}\n").upper().encode() + b"\n{}\n"
    assert ovlog.scan_records(data, "x.db").error is None


def test_file_magic_checks_like_ovsdb_log_open() -> None:
    both = (ovlog.OVSDB_MAGIC, ovlog.RAFT_MAGIC)
    assert ovlog.file_magic(BASE, "x.db", both) == "JSON"
    assert ovlog.file_magic(b"", "x.db") == "JSON"
    with pytest.raises(ovlog.LogError) as e:
        ovlog.file_magic(b"", "x.db", both)
    assert str(e.value) == "ovsdb error: x.db: cannot identify file type"
    with pytest.raises(ovlog.LogError) as e:
        ovlog.file_magic(b"hello\n", "x.db", both)
    assert str(e.value) == "ovsdb error: x.db: unexpected file format"
    cluster = b"OVSDB CLUSTER 3 " + _sha(b"{}\n").encode() + b"\n{}\n"
    assert ovlog.file_magic(cluster, "x.db", both) == "CLUSTER"
    with pytest.raises(ovlog.LogError) as e:
        ovlog.file_magic(cluster, "x.db")
    assert str(e.value) == "ovsdb error: x.db: cannot identify file type"


# --- JSON as OVS parses and prints it ------------------------------------------------------

JSON_ERRORS = [
    (b"[", "line 0, column 1, byte 1: unexpected end of input"),
    (b"xyz\n", "line 0, column 3, byte 3: invalid keyword 'xyz'"),
    (b'{"a":\n', "line 1, column 0, byte 6: unexpected end of input"),
    (b'"ab"\n', "line 0, column 3, byte 3: syntax error at beginning of input"),
    (b"{}{}\n", "line 0, column 2, byte 2: trailing garbage at end of input"),
    (b"\n", "line 1, column 0, byte 1: empty input stream"),
    (b"", "line 0, column 0, byte 0: empty input stream"),
    (b"OVSDB", "line 0, column 0, byte 0: invalid character 'O'"),
    (b"[1", "line 0, column 3, byte 3: unexpected end of input"),
    (b"[1.]", "line 0, column 3, byte 3: decimal point must be followed by digit"),
    (b"[01]", "line 0, column 3, byte 3: leading zeros not allowed"),
    (b"[-]", "line 0, column 2, byte 2: '-' must be followed by digit"),
    (b"[1e]", "line 0, column 3, byte 3: exponent must contain at least one digit"),
    (b"[1e99999999999]", "line 0, column 14, byte 14: exponent outside valid range"),
    (b"[1e400]", "line 0, column 6, byte 6: number outside valid range"),
    (b'["\\u0000"]', "line 0, column 8, byte 8: null bytes not supported in quoted strings"),
    (b'["\\ud800"]', "line 0, column 8, byte 8: malformed escaped surrogate pair"),
    (b'["\\ud800\\u0041"]', "line 0, column 14, byte 14: second half of escaped surrogate "
                           "pair is not trailing surrogate"),
    (b'["\\q"]', "line 0, column 4, byte 4: bad escape \\q"),
    (b'["\\u12"]', "line 0, column 6, byte 6: quoted string ends within \\u escape"),
    (b'["\\u12g4"]', "line 0, column 8, byte 8: malformed \\u escape"),
    (b'["a\x01"]', "line 0, column 3, byte 3: U+0001 must be escaped in quoted string"),
    (b"[tru]", "line 0, column 4, byte 4: invalid keyword 'tru'"),
    (b"[True]", "line 0, column 1, byte 1: invalid character 'T'"),
    (b'{"a" 1}', "line 0, column 6, byte 6: syntax error parsing object expecting ':'"),
    (b"{1:2}", "line 0, column 2, byte 2: syntax error parsing object expecting string"),
    (b"[1 2]", "line 0, column 4, byte 4: syntax error expecting ']' or ','"),
    (b'{"a":1 "b"}', "line 0, column 9, byte 9: syntax error expecting '}' or ','"),
    (b"[,]", "line 0, column 1, byte 1: syntax error expecting value"),
    (b"[\x80]", "line 0, column 1, byte 1: invalid character U+0080"),
    (b"[NaN]", "line 0, column 1, byte 1: invalid character 'N'"),
    (b"[1]\n\n x", "line 2, column 2, byte 7: invalid keyword 'x'"),
    (b'{"a":[1,2,{"b":nul}]}', "line 0, column 18, byte 18: invalid keyword 'nul'"),
    (b"[1,\n2,\n3", "line 2, column 2, byte 9: unexpected end of input"),
    (b'["abc', "line 0, column 5, byte 5: unexpected end of input in quoted string"),
    (b'["abc\\', "line 0, column 6, byte 6: unexpected end of input in quoted string"),
    (b"[" * 1001, "line 0, column 1000, byte 1000: input exceeds maximum nesting depth 1000"),
]


@pytest.mark.parametrize(("text", "message"), JSON_ERRORS)
def test_json_errors_are_worded_and_placed_as_ovs_does(text: bytes, message: str) -> None:
    with pytest.raises(ovlog.OvsJsonError) as e:
        ovlog.ovs_json_loads(text)
    assert str(e.value) == message


@pytest.mark.parametrize(("text", "value"), [
    (b"  {  }  ", {}),
    (b"[-0]", [0]),
    (b"[18446744073709551616]", [1.8446744073709552e19]),
    (b"[9223372036854775808]", [9.223372036854776e18]),
    (b"[-9223372036854775808]", [-9223372036854775808]),
    (b"[1e-400]", [0.0]),
    (b'["\\ud83d\\ude00", "\\u00e9\\n"]', ["\U0001f600", "\u00e9\n"]),
    (b'{"a":1,"a":2}', {"a": 2}),
])
def test_json_values_as_ovs_reads_them(text: bytes, value: Any) -> None:
    assert ovlog.ovs_json_loads(text) == value


def test_ovs_reads_integral_reals_as_integers() -> None:
    # OVS's parser turns 1.0, 1e2 and 15e-1*10 into integers; orjson gives floats.
    v = ovlog.ovs_normalize_numbers(ovlog.ovs_json_loads(b'[1.0, 1e2, 1.5e1, 0.5, -0.0]'))
    assert v == [1, 100, 15, 0.5, 0]
    assert [type(x) for x in v] == [int, int, int, float, int]


def test_ovs_json_dumps_sorts_keys_and_prints_reals_with_15_digits() -> None:
    assert ovlog.ovs_json_dumps({"b": [1.0, 0.1, 1e20, 2.5e-7], "a": "\x01é"}) == \
        '{"a":"\\u0001é","b":[1,0.1,1e+20,2.5e-07]}'
    assert ovlog.ovs_json_dumps(0.30000000000000004) == "0.3"


# Orders printed by ovsdb-tool 3.1 show-log for records whose members were in the
# first order.
@pytest.mark.parametrize(("parsed", "walked"), [
    (["_date", "Global", "Physical_Switch", "_is_diff"],
     ["_date", "Physical_Switch", "Global", "_is_diff"]),
    (["_date", "Physical_Switch", "Global", "_is_diff", "_comment"],
     ["_date", "Global", "Physical_Switch", "_comment", "_is_diff"]),
    (["switches", "other_config"], ["switches", "other_config"]),
    (["name", "description", "tunnel_ips"], ["name", "description", "tunnel_ips"]),
])
def test_shash_order_matches_ovs(parsed: list[str], walked: list[str]) -> None:
    assert ovlog.shash_order(parsed) == walked


@given(st.lists(st.text(max_size=12), max_size=40))
def test_shash_order_is_a_permutation(keys: list[str]) -> None:
    assert sorted(ovlog.shash_order(keys)) == sorted(set(keys))


# --- schema record --------------------------------------------------------------------------

def test_schema_record_drops_ephemeral_of_forced_persistent_columns() -> None:
    j = ovlog.schema_to_json(SCHEMA)
    cols = j["tables"]["A"]["columns"]
    assert cols["eph"].get("ephemeral") is True
    assert "ephemeral" not in cols["ref"]
    assert ovlog.persistent_columns(SCHEMA, SCHEMA.tables["A"]) == [
        "name", "i", "r", "b", "opt", "s", "s2", "s1", "m", "ref"]
    assert j["version"] == "1.0.0"
    assert "version" not in ovlog.schema_to_json(SCHEMA, has_version=False)


# --- records <-> changes ----------------------------------------------------------------------

def test_insert_writes_non_default_persistent_columns_only() -> None:
    new = row("A", U1, name=("n",), s=("x", "y"), eph=("gone",), i=(0,), ref=(B1,))
    rec = ovlog.changes_to_record(SCHEMA, {"A": {U1: (None, new)}}, date_ms=5,
                                  comment="c")
    assert rec == {"A": {U1: {"name": "n", "s": ["set", ["x", "y"]], "ref": ["uuid", B1]}},
                   "_comment": "c", "_is_diff": True, "_date": 5}


def test_update_writes_diffs_for_sets_and_maps_and_values_otherwise() -> None:
    old = row("A", U1, name=("n",), opt=("a",), s=("x", "y"), m=(("k", "1"), ("l", "2")))
    new = row("A", U1, name=("n2",), opt=(), s=("y", "z"), m=(("k", "9"), ("n", "3")))
    rec = ovlog.changes_to_record(SCHEMA, {"A": {U1: (old, new)}}, date_ms=5)
    assert rec == {"A": {U1: {
        "name": "n2", "opt": ["set", []], "s": ["set", ["x", "z"]],
        "m": ["map", [["k", "9"], ["l", "2"], ["n", "3"]]]}},
        "_is_diff": True, "_date": 5}


def test_deletes_are_null_and_ephemeral_only_changes_write_nothing() -> None:
    old = row("A", U1, eph=("a",))
    assert ovlog.changes_to_record(SCHEMA, {"A": {U1: (old, None)}}, date_ms=1) == {
        "A": {U1: None}, "_is_diff": True, "_date": 1}
    new = dict(old, eph=("b",))
    assert ovlog.changes_to_record(SCHEMA, {"A": {U1: (old, new)}}, date_ms=1) is None


def test_diffs_ovs_31_would_misread_make_a_full_value_record() -> None:
    # s2 allows 2 elements: {a,b} -> {c,d} has a 4-element diff that OVS 3.1 rejects.
    old = row("A", U1, s2=("a", "b"))
    new = row("A", U1, s2=("c", "d"))
    rec = ovlog.changes_to_record(SCHEMA, {"A": {U1: (old, new)}}, date_ms=1)
    assert rec == {"A": {U1: {"s2": ["set", ["c", "d"]]}}, "_date": 1}
    # s1 (min 1) at its default [0]: OVS 3.1 would take the diff [5] as the value.
    old = row("A", U1)
    new = row("A", U1, s1=(0, 5))
    rec = ovlog.changes_to_record(SCHEMA, {"A": {U1: (old, new)}}, date_ms=1)
    assert rec == {"A": {U1: {"s1": ["set", [0, 5]]}}, "_date": 1}
    # Not at its default: a diff is fine.
    rec = ovlog.changes_to_record(SCHEMA, {"A": {U1: (new, row("A", U1, s1=(5,)))}},
                                  date_ms=1)
    assert rec == {"A": {U1: {"s1": 0}}, "_is_diff": True, "_date": 1}


def test_record_to_changes_reads_diff_and_full_records() -> None:
    db = Database(SCHEMA)
    v = versions()
    ins = {"A": {U1: {"name": "n", "s": ["set", ["x", "y"]], "m": ["map", [["k", "1"]]]}},
           "_date": 1}
    ch = ovlog.record_to_changes(SCHEMA, db.tables, ins, new_version=v)
    db.apply(ch)
    a = db.tables["A"][U1]
    assert a["s"] == ("x", "y") and a["m"] == (("k", "1"),) and a["s1"] == (0,)
    diff = {"A": {U1: {"s": ["set", ["x", "z"]], "m": ["map", [["k", "1"], ["j", "2"]]],
                       "name": "n2"}}, "_is_diff": True}
    db.apply(ovlog.record_to_changes(SCHEMA, db.tables, diff, new_version=v))
    a = db.tables["A"][U1]
    assert (a["s"], a["m"], a["name"]) == (("y", "z"), (("j", "2"),), ("n2",))
    full = {"A": {U1: {"s": ["set", ["x", "z"]]}}}
    db.apply(ovlog.record_to_changes(SCHEMA, db.tables, full, new_version=v))
    assert db.tables["A"][U1]["s"] == ("x", "z")
    ch = ovlog.record_to_changes(SCHEMA, db.tables, {"A": {U1: None}}, new_version=v)
    assert ch == {"A": {U1: (db.tables["A"][U1], None)}}


def test_diff_applies_to_a_non_empty_default_as_ovs_33_does() -> None:
    db = Database(SCHEMA)
    v = versions()
    db.apply(ovlog.record_to_changes(SCHEMA, db.tables, {"A": {U1: {}}}, new_version=v))
    rec = {"A": {U1: {"s1": 5}}, "_is_diff": True}
    db.apply(ovlog.record_to_changes(SCHEMA, db.tables, rec, new_version=v))
    assert db.tables["A"][U1]["s1"] == (0, 5)


@pytest.mark.parametrize(("record", "text"), [
    ({"Z": {}}, 'syntax "{"Z":{}}": unknown table: No table named Z.'),
    ({"A": []}, 'syntax "[]": syntax error: object expected'),
    ({"A": {"x": {}}}, 'syntax "{"x":{}}": syntax error: "x" is not a valid UUID'),
    ({"A": {U2: None}}, f"syntax error: transaction deletes row {U2} that does not exist"),
    ({"A": {U2: 1}}, 'syntax "1": syntax error: row must be JSON object'),
    ({"A": {U2: {"zz": 1}}}, 'syntax "{"zz":1}": unknown column: No column zz in table A.'),
    ({"A": {U2: {"i": "x"}}}, 'syntax ""x"": syntax error: expected integer'),
    ({"_date": "x"}, 'syntax "{"_date":"x"}": unknown table: No table named _date.'),
])
def test_record_errors(record: dict[str, Any], text: str) -> None:
    with pytest.raises(OvsdbError) as e:
        ovlog.record_to_changes(SCHEMA, {"A": {}, "B": {}}, record, new_version=versions())
    assert ovlog.error_to_string(e.value) == text


def test_converting_ignores_unknown_tables_and_columns() -> None:
    rec = {"Z": {U1: {}}, "A": {U1: {"zz": 1, "name": "n"}}, "_other": 1}
    ch = ovlog.record_to_changes(SCHEMA, {"A": {}}, rec, new_version=versions(),
                                 converting=True)
    new = ch["A"][U1][1]
    assert new is not None and new["name"] == ("n",)


def test_snapshot_record_as_compaction_writes_it() -> None:
    tables = {"A": {U1: row("A", U1, name=("n",), eph=("e",))}, "B": {}}
    assert ovlog.snapshot_record(SCHEMA, tables, date_ms=7, comment="compacted",
                                 is_diff=False) == {
        "A": {U1: {"name": "n"}}, "_comment": "compacted", "_date": 7}
    assert ovlog.snapshot_record(SCHEMA, {"A": {}, "B": {}}, date_ms=7, comment=None,
                                 is_diff=True) == {"_is_diff": True, "_date": 7}


# --- property: what we write reads back to the same rows ----------------------------------------

_strs = st.sampled_from(["a", "b", "c", "d", "é", "x y"])
_values = st.fixed_dictionaries({}, optional={
    "name": _strs.map(lambda s: (s,)),
    "i": st.integers(-5, 5).map(lambda i: (i,)),
    "r": st.sampled_from([0.0, 0.5, -1.25, 1e20]).map(lambda r: (r,)),
    "b": st.booleans().map(lambda b: (b,)),
    "opt": st.lists(_strs, max_size=1).map(tuple),
    "s": st.frozensets(_strs, max_size=4).map(lambda s: tuple(sorted(s))),
    "s2": st.frozensets(_strs, max_size=2).map(lambda s: tuple(sorted(s))),
    "s1": st.frozensets(st.integers(0, 4), min_size=1, max_size=3).map(
        lambda s: tuple(sorted(s))),
    "m": st.dictionaries(_strs, _strs, max_size=3).map(lambda d: tuple(sorted(d.items()))),
    "eph": _strs.map(lambda s: (s,)),
})
_step = st.tuples(st.sampled_from([U1, U2]), st.one_of(st.none(), _values))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_step, min_size=1, max_size=3), max_size=8))
def test_records_read_back_to_the_committed_rows(txns: list[list[Any]]) -> None:
    written = Database(SCHEMA)  # the rows as committed
    replayed = Database(SCHEMA)  # the rows as read back from the records
    v = versions()
    for steps in txns:
        changes: Changes = {}
        for uuid, values in steps:
            cur = changes.get("A", {}).get(uuid, (written.tables["A"].get(uuid),))[-1]
            old = written.tables["A"].get(uuid)
            if values is None:
                if old is None:
                    changes.get("A", {}).pop(uuid, None)
                    continue
                changes.setdefault("A", {})[uuid] = (old, None)
            else:
                base = dict(cur) if cur is not None else row("A", uuid)
                base.update(values)
                changes.setdefault("A", {})[uuid] = (old, base)
        changes = {t: {u: c for u, c in rows.items() if c[0] != c[1]}
                   for t, rows in changes.items()}
        record = ovlog.changes_to_record(SCHEMA, changes, date_ms=1)
        written.apply(changes)
        if record is None:
            continue
        text = ovlog.compose_record(record)
        parsed = ovlog.read_record(text, 0, "x")
        assert isinstance(parsed, ovlog.Record)
        replayed.apply(ovlog.record_to_changes(SCHEMA, replayed.tables, parsed.json,
                                               new_version=v))

    def persistent(db: Database) -> dict[str, dict[str, Any]]:
        return {u: {k: r[k] for k in r if k not in ("_version", "eph")}
                for u, r in db.tables["A"].items()}

    assert persistent(replayed) == persistent(written)
