"""The transaction engine: what a commit changes, and what only a server (not ovsdb-tool)
can show: blocked waits and timeouts, locks, read-only mode, the Changes handed on.

Error wording and result shapes are compared with ovsdb-tool itself in
tests/integration/test_txn_differential.py; here are the behaviours behind them.
"""

from __future__ import annotations

import gc
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.schema import DatabaseSchema, bundled_schema
from hwvtep.ovsdb.transaction import TxnOutcome, execute, uuid4_str

TEST_SCHEMA = Path(__file__).parent.parent / "data" / "txn_test.ovsschema"
HV = "hardware_vtep"
T = "txntest"
VXLAN = "vxlan_over_ipv4"


def counter_uuids() -> Any:
    n = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(n):012x}"


@pytest.fixture
def hv() -> Database:
    return Database(bundled_schema(HV))


@pytest.fixture
def tdb() -> Database:
    return Database(DatabaseSchema.from_text(TEST_SCHEMA.read_text()))


def run(db: Database, *ops: Any, **kw: Any) -> TxnOutcome:
    out = execute(db, [db.schema.name, *ops], **kw)
    if out.changes is not None:
        db.apply(out.changes)
    assert db.consistency_errors() == []
    return out


def ok(db: Database, *ops: Any, **kw: Any) -> list[Any]:
    out = run(db, *ops, **kw)
    assert isinstance(out.result, list)
    assert all(r is not None and "error" not in r for r in out.result), out.result
    return out.result


def err(db: Database, *ops: Any, **kw: Any) -> dict[str, Any]:
    out = run(db, *ops, **kw)
    assert out.changes is None
    errors = [r for r in out.result if isinstance(r, dict) and "error" in r]
    assert len(errors) == 1, out.result
    return errors[0]


def ls(name: str, key: int | None = None, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, **kw}
    if key is not None:
        row["tunnel_key"] = key
    return {"op": "insert", "table": "Logical_Switch", "row": row}


def loc(ip: str, name: str) -> dict[str, Any]:
    return {"op": "insert", "table": "Physical_Locator", "uuid-name": name,
            "row": {"dst_ip": ip, "encapsulation_type": VXLAN}}


def ucast(mac: str, ls_ref: Any, loc_ref: Any) -> dict[str, Any]:
    return {"op": "insert", "table": "Ucast_Macs_Remote",
            "row": {"MAC": mac, "logical_switch": ls_ref, "locator": loc_ref}}


def nu(name: str) -> list[str]:
    return ["named-uuid", name]


# --- result shape ------------------------------------------------------------------------------

def test_results_one_per_operation_nulls_after_an_error(hv: Database) -> None:
    out = run(hv, ls("a"), {"op": "abort"}, ls("b"), ls("c"))
    assert len(out.result) == 4
    assert out.result[1] == {"error": "aborted", "details": "aborted by request"}
    assert out.result[2:] == [None, None]
    assert out.changes is None
    assert hv.tables["Logical_Switch"] == {}


def test_commit_error_is_one_more_element(hv: Database) -> None:
    out = run(hv, ls("a"), ls("a"))
    assert len(out.result) == 3
    assert out.result[2]["error"] == "constraint violation"


def test_malformed_params_give_one_error_object(hv: Database) -> None:
    assert execute(hv, {"x": 1}).result == {
        "error": "syntax error", "details": "array expected", "syntax": '{"x":1}'}
    assert execute(hv, ["other"]).result["details"] == (
        "database name expected as first parameter")
    assert execute(hv, [5]).result["error"] == "syntax error"
    assert execute(hv, [HV]).result == []


def test_insert_select_update_mutate_delete_results(hv: Database) -> None:
    new_uuid = counter_uuids()
    res = ok(hv, ls("a", 1), new_uuid=new_uuid)
    u = res[0]["uuid"][1]
    assert res == [{"uuid": ["uuid", "00000000-0000-4000-8000-000000000001"]}]
    res = ok(hv, {"op": "select", "table": "Logical_Switch", "where": [],
                  "columns": ["name", "tunnel_key", "_uuid"]},
             {"op": "update", "table": "Logical_Switch", "where": [], "row": {"tunnel_key": 2}},
             {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["tunnel_key", "+=", 1]]},
             {"op": "select", "table": "Logical_Switch", "where": [], "columns": ["tunnel_key"]},
             {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "zz"]]})
    assert res == [{"rows": [{"name": "a", "tunnel_key": 1, "_uuid": ["uuid", u]}]},
                   {"count": 1}, {"count": 1}, {"rows": [{"tunnel_key": 3}]}, {"count": 0}]
    assert hv.tables["Logical_Switch"][u]["tunnel_key"] == (3,)


# --- what a commit changes --------------------------------------------------------------------

def test_changes_of_insert_update_delete(hv: Database) -> None:
    out = run(hv, ls("a", 1), ls("b", 2))
    assert out.changes is not None
    rows = out.changes["Logical_Switch"]
    assert all(old is None and new is not None for old, new in rows.values())
    ua, ub = (r[0]["uuid"][1] for r in ([out.result[0]], [out.result[1]]))
    before_a = hv.tables["Logical_Switch"][ua]
    out = run(hv, {"op": "update", "table": "Logical_Switch", "where": [],
                   "row": {"tunnel_key": 2}},
              {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "zz"]]})
    assert out.changes is not None
    # b already had tunnel_key 2: only a changed.
    assert list(out.changes["Logical_Switch"]) == [ua]
    old, new = out.changes["Logical_Switch"][ua]
    assert old is before_a and new is not None
    assert new["tunnel_key"] == (2,) and old["tunnel_key"] == (1,)
    assert new["_version"] != old["_version"]
    assert hv.tables["Logical_Switch"][ub]["tunnel_key"] == (2,)
    old_b = hv.tables["Logical_Switch"][ub]
    out = run(hv, {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "b"]]})
    assert out.changes == {"Logical_Switch": {ub: (old_b, None)}}


def test_no_change_commits_nothing(hv: Database) -> None:
    ok(hv, ls("a", 1))
    before = dict(hv.tables["Logical_Switch"])
    out = run(hv, {"op": "update", "table": "Logical_Switch", "where": [],
                   "row": {"tunnel_key": 1}},
              {"op": "mutate", "table": "Logical_Switch", "where": [],
               "mutations": [["tunnel_key", "+=", 0]]})
    assert out.result == [{"count": 1}, {"count": 1}]
    assert out.changes is None
    assert hv.tables["Logical_Switch"] == before
    # Changed then changed back within the transaction: no change either.
    out = run(hv, {"op": "update", "table": "Logical_Switch", "where": [],
                   "row": {"tunnel_key": 5}},
              {"op": "update", "table": "Logical_Switch", "where": [],
               "row": {"tunnel_key": 1}})
    assert out.changes is None
    assert run(hv, {"op": "select", "table": "Logical_Switch", "where": []}).changes is None


def test_insert_then_delete_in_one_transaction_is_nothing(hv: Database) -> None:
    out = run(hv, ls("a"), {"op": "delete", "table": "Logical_Switch", "where": []})
    assert out.result[1] == {"count": 1}
    assert out.changes is None


def test_execute_does_not_touch_the_database(hv: Database) -> None:
    ok(hv, ls("a", 1))
    (u, row), = hv.tables["Logical_Switch"].items()
    snapshot = dict(row)
    out = execute(hv, [HV, {"op": "update", "table": "Logical_Switch", "where": [],
                            "row": {"tunnel_key": 9}},
                       {"op": "delete", "table": "Logical_Switch", "where": []}])
    assert out.changes is not None
    assert hv.tables["Logical_Switch"] == {u: row} and row == snapshot


def test_versions(hv: Database) -> None:
    new_uuid = counter_uuids()
    res = ok(hv, ls("a", 1), new_uuid=new_uuid)
    u = res[0]["uuid"][1]
    row = hv.tables["Logical_Switch"][u]
    assert row["_uuid"] == (u,)
    assert row["_version"] == ("00000000-0000-4000-8000-000000000002",)
    ok(hv, {"op": "update", "table": "Logical_Switch", "where": [], "row": {"name": "b"}},
       new_uuid=new_uuid)
    assert hv.tables["Logical_Switch"][u]["_version"] == ("00000000-0000-4000-8000-000000000003",)


def test_referenced_rows_keep_their_version(hv: Database) -> None:
    ok(hv, {**ls("ls1"), "uuid-name": "ls"}, loc("10.0.0.1", "l"),
       ucast("00:00:00:00:00:01", nu("ls"), nu("l")))
    ls_row = next(iter(hv.tables["Logical_Switch"].values()))
    out = run(hv, ucast("00:00:00:00:00:02", ["uuid", ls_row["_uuid"][0]],
                        ["uuid", next(iter(hv.tables["Physical_Locator"]))]))
    assert out.changes is not None and set(out.changes) == {"Ucast_Macs_Remote"}
    assert next(iter(hv.tables["Logical_Switch"].values())) is ls_row
    assert hv.ref_count("Logical_Switch", ls_row["_uuid"][0]) == 2


def test_scalar_references_share_the_target_uuid_datum(hv: Database) -> None:
    ok(hv, {**ls("ls1"), "uuid-name": "ls"}, loc("10.0.0.1", "l"),
       ucast("00:00:00:00:00:01", nu("ls"), nu("l")),
       ucast("00:00:00:00:00:02", nu("ls"), nu("l")))
    (ls_row,) = hv.tables["Logical_Switch"].values()
    for mac in hv.tables["Ucast_Macs_Remote"].values():
        assert mac["logical_switch"] is ls_row["_uuid"]


# --- garbage collection and references --------------------------------------------------------

def test_garbage_collection_cascades_and_is_in_the_changes(hv: Database) -> None:
    ok(hv, {**ls("ls1"), "uuid-name": "ls"}, loc("10.0.0.1", "l1"), loc("10.0.0.2", "l2"),
       {"op": "insert", "table": "Physical_Locator_Set", "uuid-name": "s",
        "row": {"locators": ["set", [nu("l1"), nu("l2")]]}},
       {"op": "insert", "table": "Mcast_Macs_Remote",
        "row": {"MAC": "unknown-dst", "logical_switch": nu("ls"), "locator_set": nu("s")}})
    assert len(hv.tables["Physical_Locator"]) == 2
    out = run(hv, {"op": "delete", "table": "Mcast_Macs_Remote", "where": []})
    assert out.changes is not None
    assert {t: len(r) for t, r in out.changes.items()} == {
        "Mcast_Macs_Remote": 1, "Physical_Locator_Set": 1, "Physical_Locator": 2}
    assert all(new is None for rows in out.changes.values() for _, new in rows.values())
    assert hv.tables["Physical_Locator"] == {} and hv.tables["Physical_Locator_Set"] == {}


def test_unreferenced_insert_is_collected_and_not_in_the_changes(hv: Database) -> None:
    out = run(hv, loc("10.0.0.1", "l"), ls("a"))
    assert out.result[0]["uuid"][0] == "uuid"
    assert out.changes is not None and set(out.changes) == {"Logical_Switch"}


def test_self_reference_does_not_keep_a_row(tdb: Database) -> None:
    out = run(tdb, {"op": "insert", "table": "Child", "uuid-name": "me",
                    "row": {"name": "self", "sibling": nu("me")}})
    assert out.changes is None
    assert tdb.tables["Child"] == {}


def test_referential_integrity_errors(hv: Database) -> None:
    e = err(hv, ucast("00:00:00:00:00:01", ["uuid", "11111111-2222-3333-4444-555555555555"],
                      nu("l")), loc("10.0.0.1", "l"))
    assert e["error"] == "referential integrity violation"
    assert "references nonexistent row 11111111-2222-3333-4444-555555555555 in table " \
           "Logical_Switch." in e["details"]
    res = ok(hv, {**ls("ls1"), "uuid-name": "ls"}, loc("10.0.0.1", "l"),
             ucast("00:00:00:00:00:01", nu("ls"), nu("l")),
             ucast("00:00:00:00:00:02", nu("ls"), nu("l")))
    e = err(hv, {"op": "delete", "table": "Logical_Switch", "where": []})
    assert e == {"error": "referential integrity violation",
                 "details": f"cannot delete Logical_Switch row {res[0]['uuid'][1]} because of "
                            f"2 remaining reference(s)"}


# --- weak references -----------------------------------------------------------------------

def test_weak_references_to_deleted_rows_go_and_the_holder_changes(tdb: Database) -> None:
    new_uuid = counter_uuids()
    res = ok(tdb, {"op": "insert", "table": "Target", "uuid-name": "t",
                   "row": {"a": 1, "b": "x"}},
             {"op": "insert", "table": "Root", "row": {"name": "r", "targets": nu("t"),
                                                      "target_map": ["map", [["k", nu("t")]]]}},
             new_uuid=new_uuid)
    t, r = res[0]["uuid"][1], res[1]["uuid"][1]
    assert tdb.weak_referrers("Target", t) == {("Root", r)}
    old_root = tdb.tables["Root"][r]
    out = run(tdb, {"op": "delete", "table": "Target", "where": []}, new_uuid=new_uuid)
    assert out.changes is not None
    old, new = out.changes["Root"][r]
    assert old is old_root and new is not None
    assert new["targets"] == () and new["target_map"] == ()
    assert new["_version"] != old["_version"]
    assert tdb.weak_in["Target"] == {}


def test_weak_reference_min_size(tdb: Database) -> None:
    e = err(tdb, {"op": "insert", "table": "Holder", "row": {}})
    assert "contained all-zeros UUID" in e["details"]
    ok(tdb, {"op": "insert", "table": "Target", "uuid-name": "t", "row": {"a": 1, "b": "x"}},
       {"op": "insert", "table": "Holder", "row": {"required": nu("t")}})
    e = err(tdb, {"op": "delete", "table": "Target", "where": []})
    assert e["details"].startswith("Deletion of 1 weak reference(s) to deleted (or "
                                   "never-existing) rows from column \"required\" in \"Holder\"")


# --- waits, locks, modes --------------------------------------------------------------------

WAIT_A = {"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["name"],
          "until": "==", "rows": [{"name": "a"}]}


def test_failing_wait_without_timeout_blocks_forever(hv: Database) -> None:
    out = run(hv, ls("x"), WAIT_A)
    assert out.blocked and out.timeout_ms is None and out.result is None
    assert out.changes is None
    assert hv.tables["Logical_Switch"] == {}


def test_failing_wait_with_timeout_blocks_until_it_passes(hv: Database) -> None:
    out = run(hv, {**WAIT_A, "timeout": 500}, {**WAIT_A, "timeout": 100, "until": "!=",
                                                "rows": []})
    assert out.blocked and out.timeout_ms == 500
    out = run(hv, {**WAIT_A, "timeout": 500}, elapsed_ms=499)
    assert out.blocked
    out = run(hv, {**WAIT_A, "timeout": 500}, elapsed_ms=600)
    assert out.result == [{"error": "timed out", "details": '"wait" timed out after 600 ms'}]
    out = run(hv, {**WAIT_A, "timeout": 500}, wait_expired=True)
    assert out.result == [{"error": "timed out", "details": '"where" clause test failed'}]
    out = run(hv, {**WAIT_A, "timeout": 0})
    assert out.result == [{"error": "timed out", "details": '"where" clause test failed'}]


def test_smallest_timeout_of_the_waits_seen(hv: Database) -> None:
    ok(hv, ls("a"))
    passing = {**WAIT_A, "timeout": 50}
    out = run(hv, passing, {**WAIT_A, "rows": [], "timeout": 200})
    assert out.blocked and out.timeout_ms == 50


def test_wait_that_holds_lets_the_transaction_commit(hv: Database) -> None:
    ok(hv, ls("a"))
    out = run(hv, WAIT_A, ls("b"))
    assert out.result[0] == {} and out.changes is not None


def test_without_triggers_a_blocking_wait_fails(hv: Database) -> None:
    out = run(hv, WAIT_A, triggers=False)
    assert out.result == [{"error": "not supported", "details": "triggers not supported"}]


def test_assert_uses_the_session_locks(hv: Database) -> None:
    assert ok(hv, {"op": "assert", "lock": "mine"}, has_lock=lambda n: n == "mine") == [{}]
    e = err(hv, {"op": "assert", "lock": "theirs"}, has_lock=lambda n: n == "mine")
    assert e == {"error": "not owner", "details": "Asserted lock theirs not held."}


def test_read_only_mode(hv: Database) -> None:
    out = run(hv, ls("a"), read_only=True)
    assert out.result == [{"error": "not allowed", "details": "insert operation not allowed "
                                                              "when database server is in read "
                                                              "only mode"}]
    assert ok(hv, {"op": "select", "table": "Logical_Switch", "where": []},
              {"op": "comment", "comment": "c"}, read_only=True) == [{"rows": []}, {}]


def test_durable_and_comments(hv: Database) -> None:
    out = run(hv, {"op": "comment", "comment": "one"}, ls("a"),
              {"op": "commit", "durable": True}, {"op": "comment", "comment": "two"})
    assert out.durable and out.comments == ("one", "two") and out.comment == "one\ntwo"
    out = run(hv, {"op": "commit", "durable": False})
    assert not out.durable and out.comment is None


# --- select details ---------------------------------------------------------------------------

def test_select_distinct_and_sorted(hv: Database) -> None:
    ok(hv, ls("a", 2, description="x"), ls("b", 1, description="x"), ls("c", 1))
    res = ok(hv, {"op": "select", "table": "Logical_Switch", "where": [],
                  "columns": ["description"]},
             {"op": "select", "table": "Logical_Switch", "where": [],
              "columns": ["name"], "sort": ["tunnel_key", "name"]})
    assert sorted(r["description"] for r in res[0]["rows"]) == ["", "x"]
    assert res[1]["rows"] == [{"name": "b"}, {"name": "c"}, {"name": "a"}]


def test_select_sorts_sets_by_size_first(tdb: Database) -> None:
    ok(tdb, {"op": "insert", "table": "Root", "row": {"name": "two",
                                                     "tags": ["set", ["a", "b"]]}},
       {"op": "insert", "table": "Root", "row": {"name": "one", "tags": "z"}})
    res = ok(tdb, {"op": "select", "table": "Root", "where": [], "columns": ["name"],
                   "sort": ["tags"]})
    assert res[0]["rows"] == [{"name": "one"}, {"name": "two"}]


# --- the UUIDs we make ------------------------------------------------------------------------

def test_uuid4_strings() -> None:
    made = [uuid4_str() for _ in range(3000)]
    assert len(set(made)) == len(made)
    pattern = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(pattern.fullmatch(u) for u in made)


def test_big_transactions_leave_the_garbage_collector_as_it_was(hv: Database) -> None:
    ops = [ls(f"ls{i}") for i in range(300)]
    assert gc.isenabled()
    assert len(ok(hv, *ops)) == 300
    assert gc.isenabled()
    gc.disable()
    try:
        ok(hv, *(ls(f"more{i}") for i in range(300)))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_own_uuid_in_another_table_is_not_a_self_reference(hv: Database) -> None:
    # ovsdb-server 3.1 skips any reference equal to the row's own UUID, so this ACL would
    # be stored referring to a missing ACL_entry; we report it.
    e = err(hv, {"op": "insert", "table": "ACL", "uuid-name": "a",
                 "row": {"acl_name": "x", "acl_entries": nu("a")}})
    assert e["error"] == "referential integrity violation"
    assert "references nonexistent row" in e["details"] and "in table ACL_entry." in e["details"]


# --- garbage in --------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
    | st.sampled_from(["", "a", "uuid", "named-uuid", "set", "map", "==", "includes", "+=",
                       "insert", "delete", "name", "_uuid", "tunnel_key", "other_config",
                       "00000000-0000-4000-8000-000000000001"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["name", "tunnel_key", "other_config", "description",
                                       "x", "_uuid"]), inner, max_size=3),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["insert", "select", "update", "mutate", "delete", "wait",
                            "commit", "abort", "comment", "assert", "x"])},
    optional={"table": st.sampled_from(["Logical_Switch", "Nope", 5]), "row": JSON,
              "where": JSON, "mutations": JSON, "columns": JSON, "until": JSON, "rows": JSON,
              "timeout": JSON, "durable": JSON, "comment": JSON, "lock": JSON,
              "uuid-name": JSON, "uuid": JSON, "sort": JSON}) | JSON, max_size=4))
def test_any_json_gives_results_not_exceptions(ops: list[Any]) -> None:
    db = Database(bundled_schema(HV))
    out = execute(db, [HV, *ops])
    if out.blocked:
        return
    assert isinstance(out.result, list)
    assert len(out.result) in (len(ops), len(ops) + 1)
    for r in out.result:
        assert r is None or isinstance(r, dict)
        if isinstance(r, dict) and "error" in r:
            assert isinstance(r["error"], str)
    if out.changes is not None:
        db.apply(out.changes)
        assert db.consistency_errors() == []


def test_forked_child_draws_new_uuids() -> None:
    import os

    uuid4_str()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, uuid4_str().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 100).decode()
    os.waitpid(pid, 0)
    os.close(r)
    assert child != uuid4_str()
