"""The transaction builder: the JSON it writes, run through our transaction engine, and how
it reads results, errors and failed verifications."""

from __future__ import annotations

from typing import Any

import pytest

from hwvtep.client.errors import ProtocolViolation, TxnError
from hwvtep.client.txn import NamedUuid, Txn, TxnResult, is_conflict, where_uuid
from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.schema import bundled_schema
from hwvtep.ovsdb.transaction import execute

SCHEMA = bundled_schema("hardware_vtep")
DB = "hardware_vtep"


def run(db: Database, txn: Txn) -> TxnResult:
    """Commit like a server would (the engine never blocks on a zero-timeout wait)."""
    outcome = execute(db, txn.params())
    result = txn.result(outcome.result)
    if outcome.changes:
        db.apply(outcome.changes)
    return result


def test_operations_json() -> None:
    t = Txn(DB)
    ls = t.insert("Logical_Switch", {"name": "ls0", "tunnel_key": 5000})
    assert ls == NamedUuid("row1") and ls.to_json() == ["named-uuid", "row1"]
    assert t.update("Physical_Port", [["name", "==", "p1"]],
                    {"vlan_bindings": ["map", [[0, ls]]]}) == 1
    t.mutate("Global", [], [("switches", "insert", ["set", []])])
    t.delete("Tunnel", where_uuid("0f0e0d0c-0000-4000-8000-000000000001"))
    t.wait("Logical_Switch", [["name", "==", "ls0"]], [], columns=["name"], until="!=",
           timeout=None)
    t.select("Physical_Switch", columns=["name"])
    t.comment("hello")
    t.commit(durable=False)
    t.assert_lock("l")
    t.abort()
    assert t.params() == [DB,
        {"op": "insert", "table": "Logical_Switch",
         "row": {"name": "ls0", "tunnel_key": 5000}, "uuid-name": "row1"},
        {"op": "update", "table": "Physical_Port", "where": [["name", "==", "p1"]],
         "row": {"vlan_bindings": ["map", [[0, ["named-uuid", "row1"]]]]}},
        {"op": "mutate", "table": "Global", "where": [],
         "mutations": [["switches", "insert", ["set", []]]]},
        {"op": "delete", "table": "Tunnel",
         "where": [["_uuid", "==", ["uuid", "0f0e0d0c-0000-4000-8000-000000000001"]]]},
        {"op": "wait", "table": "Logical_Switch", "where": [["name", "==", "ls0"]],
         "rows": [], "until": "!=", "columns": ["name"]},
        {"op": "select", "table": "Physical_Switch", "where": [], "columns": ["name"]},
        {"op": "comment", "comment": "hello"},
        {"op": "commit", "durable": False},
        {"op": "assert", "lock": "l"},
        {"op": "abort"}]


def test_datums_become_json_with_the_schema() -> None:
    t = Txn(DB, SCHEMA)
    loc = t.insert("Physical_Locator", {"dst_ip": ("10.0.0.1",),
                                        "encapsulation_type": ("vxlan_over_ipv4",)},
                   uuid_name="loc")
    ls = t.insert("Logical_Switch", {"name": ("ls",), "tunnel_key": (7,)})
    t.insert("Mcast_Macs_Remote", {"MAC": ("unknown-dst",), "logical_switch": (ls,),
                                   "locator_set": (t.insert("Physical_Locator_Set",
                                                            {"locators": (loc,)}),)})
    t.mutate("Physical_Port", [("name", "==", ("p1",))],
             [("vlan_bindings", "insert", ((5, ls),)),
              ("vlan_bindings", "delete", (1, 2)),  # a set of keys for a map column
              ("port_fault_status", "insert", ("a", "b"))])
    ops = t.params()[1:]
    assert ops[0]["row"] == {"dst_ip": "10.0.0.1", "encapsulation_type": "vxlan_over_ipv4"}
    # The locator set's insert was added first (it is an argument of the next one).
    assert ops[2]["row"] == {"locators": ["named-uuid", "loc"]}
    assert ops[3]["row"] == {"MAC": "unknown-dst", "logical_switch": ["named-uuid", "row1"],
                             "locator_set": ["named-uuid", "row2"]}
    assert ops[4]["where"] == [["name", "==", "p1"]]
    assert ops[4]["mutations"] == [
        ["vlan_bindings", "insert", ["map", [[5, ["named-uuid", "row1"]]]]],
        ["vlan_bindings", "delete", ["set", [1, 2]]],
        ["port_fault_status", "insert", ["set", ["a", "b"]]]]
    with pytest.raises(TypeError):
        Txn(DB).insert("Logical_Switch", {"name": ("x",)})  # datums need the schema


def test_results_named_uuids_and_engine_round_trip() -> None:
    db = Database(SCHEMA)
    t = Txn(DB, SCHEMA)
    ps = t.insert("Physical_Switch", {"name": ("ps",), "tunnel_ips": ("1.1.1.1", "2.2.2.2")})
    t.insert("Global", {"switches": (ps,), "other_config": (("k", "v"),)})
    res = run(db, t)
    ps_uuid = res.uuid(ps)
    row = db.tables["Physical_Switch"][ps_uuid]
    assert row["tunnel_ips"] == ("1.1.1.1", "2.2.2.2")
    (g,) = db.tables["Global"].values()
    assert g["switches"] == (ps_uuid,) and g["other_config"] == (("k", "v"),)
    t2 = Txn(DB, SCHEMA)
    t2.update_row("Physical_Switch", ps_uuid, {"description": ("d",)})
    i = t2.select("Physical_Switch", [("_uuid", "==", ps_uuid)], ["description"])
    res2 = run(db, t2)
    assert res2.count(0) == 1 and res2.rows(i) == [{"description": "d"}]


def test_errors_carry_tag_index_and_results() -> None:
    db = Database(SCHEMA)
    t = Txn(DB, SCHEMA)
    t.insert("Logical_Switch", {"name": ("a",)})
    t.insert("Logical_Switch", {"name": ("a",)})
    with pytest.raises(TxnError) as ei:
        run(db, t)
    e = ei.value
    # Both inserts work; the commit fails on the index: one element past the operations.
    assert e.tag == "constraint violation" and e.index == 2 and len(e.results) == 3
    assert not e.conflict and not is_conflict(e)
    t = Txn(DB)
    t.insert("Logical_Switch", {"name": "b"})
    t.update("Logical_Switch", [], {"bogus": 1})
    t.insert("Logical_Switch", {"name": "c"})
    with pytest.raises(TxnError) as ei:
        run(db, t)
    assert ei.value.index == 1 and ei.value.tag == "unknown column"
    assert ei.value.results[2] is None
    with pytest.raises(ProtocolViolation):
        Txn(DB).result({"not": "a list"})
    t = Txn(DB)
    t.insert("Logical_Switch", {})
    with pytest.raises(ProtocolViolation):
        t.result([{}])  # an insert result without its uuid


def test_verifications_come_first_and_report_conflicts() -> None:
    db = Database(SCHEMA)
    t = Txn(DB, SCHEMA)
    ls = t.insert("Logical_Switch", {"name": ("ls",), "tunnel_key": (1,)})
    uuid = run(db, t).uuid(ls)
    row = dict(db.tables["Logical_Switch"][uuid])

    def bump(read: dict[str, Any]) -> Txn:
        t = Txn(DB, SCHEMA)
        t.verify("Logical_Switch", read, ["tunnel_key"])
        t.verify_rows("Logical_Switch", [("name", "==", ("other",))], [], [])
        t.update_row("Logical_Switch", uuid, {"tunnel_key": (read["tunnel_key"][0] + 1,)})
        return t

    t1 = bump(row)
    assert [op["op"] for op in t1.params()[1:]] == ["wait", "wait", "update"]
    assert t1.params()[1] == {
        "op": "wait", "table": "Logical_Switch", "timeout": 0,
        "where": [["_uuid", "==", ["uuid", uuid]]], "columns": ["tunnel_key"],
        "until": "==", "rows": [{"tunnel_key": 1}]}
    assert run(db, t1).results == [{"count": 1}]  # indexes count only our operations
    # Built from the old read: the value changed since, so the verification fails.
    with pytest.raises(TxnError) as ei:
        run(db, bump(row))
    assert ei.value.tag == "timed out" and ei.value.index == -1 and is_conflict(ei.value)
    assert db.tables["Logical_Switch"][uuid]["tunnel_key"] == (2,)
    # A row that matches verify_rows' "no such row" also conflicts.
    t = Txn(DB, SCHEMA)
    t.insert("Logical_Switch", {"name": ("other",)})
    run(db, t)
    with pytest.raises(TxnError) as ei:
        run(db, bump(db.tables["Logical_Switch"][uuid]))
    assert is_conflict(ei.value)
