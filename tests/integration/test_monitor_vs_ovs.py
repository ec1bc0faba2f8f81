"""Our monitors against ovsdb-server 3.1's, notification by notification.

Two ways of getting our side's commits: from OVS's own results (each database snapshot
diffed with the previous one), and from our transaction engine running the same
transactions in-process (rows get the same UUIDs through insert's "uuid").

A real ``ovsdb-server`` serves hardware_vtep on a unix socket in a temp dir. One raw
JSON-RPC connection opens monitors of every kind (``monitor``, ``monitor_cond``,
``monitor_cond_since``; column lists, per-column selects, conditions, literals) and runs
transactions. ovsdb-server flushes a session's monitors before it sends any reply, so the
notifications a transaction causes are all read before its reply.

After every transaction the test reads the whole database back with ``select`` and
diffs it with the previous snapshot: that gives the commit's ``Changes`` from OVS's own
results (rows with every column, OVS's UUIDs, no renumbering needed). Our
:class:`Monitor` for the same request then has to produce exactly the notification OVS
sent (or nothing when OVS sent nothing); initial replies are compared against the
snapshot, condition changes against the database at that moment. A clustered database
provides real transaction ids and history for ``monitor_cond_since``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvhelp import Rpc

from hwvtep.ovsdb.data import datum_from_json
from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.monitor import (
    CommitEncoder,
    Monitor,
    TxnHistory,
    create_monitor,
    parse_cond_change_params,
    tables_atoms,
)
from hwvtep.ovsdb.schema import DatabaseSchema
from hwvtep.ovsdb.transaction import execute
from hwvtep.ovsdb.types import ZERO_UUID

OVSDB_SERVER = "/usr/sbin/ovsdb-server"
OVSDB_TOOL = shutil.which("ovsdb-tool")
SCHEMA_FILE = Path("/usr/share/openvswitch/vtep.ovsschema")
DB = "hardware_vtep"

pytestmark = [
    pytest.mark.ovs,
    pytest.mark.skipif(
        OVSDB_TOOL is None or not os.access(OVSDB_SERVER, os.X_OK) or not SCHEMA_FILE.exists(),
        reason="Open vSwitch (ovsdb-server, ovsdb-tool, vtep.ovsschema) is not installed: "
               "cannot compare monitors with ovsdb-server"),
]

Row = dict[str, Any]
Tables = dict[str, dict[str, Row]]


class Server:
    def __init__(self, tmp: Path, clustered: bool) -> None:
        assert OVSDB_TOOL is not None
        db = tmp / "vtep.db"
        if clustered:
            subprocess.run([OVSDB_TOOL, "create-cluster", str(db), str(SCHEMA_FILE),
                            f"unix:{tmp}/raft.sock"], check=True, timeout=60)
        else:
            subprocess.run([OVSDB_TOOL, "create", str(db), str(SCHEMA_FILE)],
                           check=True, timeout=60)
        self.sock = str(tmp / "db.sock")
        self.proc = subprocess.Popen(
            [OVSDB_SERVER, str(db), f"--remote=punix:{self.sock}",
             f"--unixctl={tmp}/ovsdb-server.ctl", "--no-chdir", f"--log-file={tmp}/log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ovsdb-server exited: {(tmp / 'log').read_text()}")
            if os.path.exists(self.sock):
                try:
                    probe = Rpc(self.sock)
                    # A clustered db answers only once raft has elected itself leader.
                    if DB in probe.result("list_dbs", []):
                        ok = probe.call("transact", [DB])
                        probe.close()
                        if ok.get("error") is None:
                            break
                    else:
                        probe.close()
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("ovsdb-server did not come up")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path, clustered=False)
    yield s
    s.stop()


@pytest.fixture
def clustered(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path, clustered=True)
    yield s
    s.stop()


SCHEMA = DatabaseSchema.from_text(SCHEMA_FILE.read_text())


def snapshot(rpc: Rpc) -> Tables:
    names = list(SCHEMA.tables)
    results = rpc.result("transact", [DB, *({"op": "select", "table": t, "where": []}
                                            for t in names)])
    out: Tables = {}
    for tname, res in zip(names, results, strict=True):
        ts = SCHEMA.tables[tname]
        rows: dict[str, Row] = {}
        for rj in res["rows"]:
            row = {c: datum_from_json(ts.columns[c].type, v) for c, v in rj.items()}
            assert set(row) == set(ts.columns)
            rows[row["_uuid"][0]] = row
        out[tname] = rows
    return out


def diff(before: Tables, after: Tables) -> dict[str, dict[str, tuple[Row | None, Row | None]]]:
    changes: dict[str, dict[str, tuple[Row | None, Row | None]]] = {}
    for tname in SCHEMA.tables:
        b, a = before.get(tname, {}), after.get(tname, {})
        rows = {u: (b.get(u), a.get(u)) for u in b.keys() | a.keys() if b.get(u) != a.get(u)}
        if rows:
            changes[tname] = rows
    return changes


ALL_TABLES: dict[str, Any] = {t: {} for t in SCHEMA.tables}

# Distinct monitored specs (ovsdb-server shares its internal monitor between sessions
# whose table/column/select specs are equal, and then lets one session's condition
# columns leak into the others' change detection; equal specs here are deliberate).
MONITORS: list[tuple[str, str, Any]] = [
    ("v1_all", "monitor", ALL_TABLES),
    ("v1_sel", "monitor", {
        "Logical_Switch": [{"columns": ["_uuid", "name"], "select": {"modify": False}},
                           {"columns": ["description", "other_config"],
                            "select": {"initial": False, "delete": False}}],
        "Physical_Switch": {"columns": ["tunnel_ips", "name"], "select": {"insert": False}},
        "Physical_Locator": {"columns": ["dst_ip"], "select": {"delete": False}},
        "Manager": {"select": {"modify": False}}}),
    ("v2_all", "monitor_cond", ALL_TABLES),
    ("v2_cond", "monitor_cond", {
        "Logical_Switch": {"columns": ["name", "other_config"],
                           "where": [["tunnel_key", "==", 5]]},
        "Ucast_Macs_Remote": {"where": [["MAC", "==", "00:00:00:00:00:01"]]},
        "Physical_Locator": {"columns": ["dst_ip"], "where": [["dst_ip", "!=", "10.0.0.9"]]},
        "Physical_Switch": {"columns": ["tunnel_ips", "ports"],
                            "where": [["tunnel_ips", "includes", "1.1.1.1"]],
                            "select": {"delete": False}}}),
    ("v2_lit", "monitor_cond", {
        "Physical_Switch": {"where": [False]},
        "Global": {"where": [True, ["other_config", "includes", ["map", [["a", "b"]]]]]},
        "Manager": {"columns": ["is_connected", "inactivity_probe"],
                    "where": [["inactivity_probe", "<", 100], ["is_connected", "==", True]]}}),
    ("v3", "monitor_cond_since", {"Logical_Switch": {"columns": ["name", "tunnel_key"]},
                                  "Physical_Port": {}}),
    ("v2_condcol", "monitor_cond", {"Logical_Switch": {"columns": ["name"],
                                                       "where": [["tunnel_key", ">", 0]]}}),
    *((f"twin{i}", "monitor_cond", {"Logical_Switch": {"columns": ["name", "description"],
                                                       "where": [["name", "!=", "zz"]]}})
      for i in range(5)),
]


def params_for(mid: str, method: str, requests: Any) -> list[Any]:
    params: list[Any] = [DB, mid, requests]
    if method == "monitor_cond_since":
        params.append(ZERO_UUID)
    return params


TXNS: list[list[dict[str, Any]]] = [
    [{"op": "insert", "table": "Global", "row": {"other_config": ["map", [["a", "b"]]]},
      "uuid-name": "g"},
     {"op": "insert", "table": "Physical_Switch", "uuid-name": "ps",
      "row": {"name": "ps1", "tunnel_ips": ["set", ["1.1.1.1", "2.2.2.2"]]}},
     {"op": "mutate", "table": "Global", "where": [],
      "mutations": [["switches", "insert", ["set", [["named-uuid", "ps"]]]]]}],
    [{"op": "insert", "table": "Logical_Switch",
      "row": {"name": "ls1", "tunnel_key": 5, "other_config": ["map", [["k", "v"]]]}},
     {"op": "insert", "table": "Logical_Switch", "row": {"name": "ls2", "tunnel_key": 6}}],
    [{"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
      "row": {"dst_ip": "10.0.0.1", "encapsulation_type": "vxlan_over_ipv4"}},
     {"op": "insert", "table": "Ucast_Macs_Remote",
      "row": {"MAC": "00:00:00:00:00:01", "locator": ["named-uuid", "loc"],
              "logical_switch": ["uuid", "@ls1"]}}],
    [{"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls1"]],
      "row": {"description": "first"}}],
    [{"op": "mutate", "table": "Physical_Switch", "where": [],
      "mutations": [["tunnel_ips", "delete", "2.2.2.2"], ["tunnel_ips", "insert", "3.3.3.3"]]}],
    [{"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls1"]],
      "row": {"other_config": ["map", [["k", "w"], ["n", "1"]]]}}],
    [{"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls2"]],
      "row": {"tunnel_key": 5}},
     {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls1"]],
      "row": {"tunnel_key": ["set", []]}}],
    [{"op": "update", "table": "Logical_Switch", "where": [], "row": {"description": "first"}}],
    [{"op": "insert", "table": "Physical_Port", "uuid-name": "pp",
      "row": {"name": "p1", "vlan_bindings": ["map", [[0, ["uuid", "@ls1"]]]]}},
     {"op": "mutate", "table": "Physical_Switch", "where": [],
      "mutations": [["ports", "insert", ["set", [["named-uuid", "pp"]]]]]}],
    [{"op": "mutate", "table": "Physical_Switch", "where": [],
      "mutations": [["tunnel_ips", "delete", "1.1.1.1"]]}],
    [{"op": "insert", "table": "Manager", "uuid-name": "mgr",
      "row": {"target": "ptcp:6640", "inactivity_probe": 50, "is_connected": False}},
     {"op": "mutate", "table": "Global", "where": [],
      "mutations": [["managers", "insert", ["set", [["named-uuid", "mgr"]]]]]}],
    [{"op": "update", "table": "Manager", "where": [], "row": {"inactivity_probe": 500}}],
    [{"op": "update", "table": "Manager", "where": [], "row": {"is_connected": True}}],
    [{"op": "update", "table": "Global", "where": [],
      "row": {"other_config": ["map", [["x", "y"]]]}}],
    [{"op": "insert", "table": "Physical_Locator", "uuid-name": "loc9",
      "row": {"dst_ip": "10.0.0.9", "encapsulation_type": "vxlan_over_ipv4"}},
     {"op": "insert", "table": "Ucast_Macs_Remote",
      "row": {"MAC": "00:00:00:00:00:02", "locator": ["named-uuid", "loc9"],
              "logical_switch": ["uuid", "@ls1"], "ipaddr": "192.0.2.2"}}],
    [{"op": "delete", "table": "Ucast_Macs_Remote", "where": []}],  # GC of the locators
    [{"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls2"]],
      "row": {"name": "zz"}},
     {"op": "insert", "table": "Logical_Switch", "row": {"name": "ls3"}, "uuid-name": "l3"},
     {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls3"]],
      "row": {"description": "new", "tunnel_key": 5}}],
    [{"op": "mutate", "table": "Global", "where": [],
      "mutations": [["managers", "delete", ["set", []]], ["switches", "delete", ["set", []]]]},
     {"op": "update", "table": "Global", "where": [], "row": {"managers": ["set", []]}}],
    [{"op": "update", "table": "Logical_Switch", "where": [], "row": {"tunnel_key": 9}}],
    [{"op": "delete", "table": "Logical_Switch", "where": [["name", "!=", "ls1"]]},
     {"op": "update", "table": "Physical_Port", "where": [],
      "row": {"vlan_bindings": ["map", []]}}],
]


def substitute(ops: Any, names: dict[str, str]) -> Any:
    """Replace ["uuid", "@name"] by the UUID of the Logical_Switch with that name."""
    if isinstance(ops, list):
        if len(ops) == 2 and ops[0] == "uuid" and isinstance(ops[1], str) \
                and ops[1].startswith("@"):
            return ["uuid", names[ops[1][1:]]]
        return [substitute(o, names) for o in ops]
    if isinstance(ops, dict):
        return {k: substitute(v, names) for k, v in ops.items()}
    return ops


def ls_names(tables: Tables) -> dict[str, str]:
    return {r["name"][0]: u for u, r in tables["Logical_Switch"].items()}


def notifications_by_id(notes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for n in notes:
        assert n["id"] is None
        mid = n["params"][0]
        assert mid not in out, f"two notifications for {mid} from one transaction"
        out[mid] = n
    return out


def test_notifications_match_ovsdb_server(standalone: Server) -> None:
    rpc = Rpc(standalone.sock)
    tables = snapshot(rpc)
    ours: dict[str, Monitor] = {}

    def open_monitors(suffix: str) -> None:
        for mid, method, requests in MONITORS:
            mid = mid + suffix
            params = params_for(mid, method, requests)
            reply = rpc.result(method, params)
            m = create_monitor(SCHEMA, method, params, id_in_use=lambda i: i in ours)
            assert reply == m.reply(tables), mid
            ours[mid] = m

    open_monitors("")
    checked = 0
    for n, ops in enumerate(TXNS):
        results = rpc.result("transact", [DB, *substitute(ops, ls_names(tables))])
        assert all("error" not in r for r in results), (n, results)
        notes = notifications_by_id(rpc.notes())
        after = snapshot(rpc)
        changes = diff(tables, after)
        tables = after
        encoder = CommitEncoder(changes)
        for mid, m in ours.items():
            updates = m.on_commit(changes, encoder)
            got = notes.pop(mid, None)
            if updates is None:
                assert got is None, (n, mid, got)
                continue
            assert got is not None, (n, mid, updates)
            assert got == m.notification(updates, ZERO_UUID), (n, mid)
            checked += 1
        assert not notes
        if n == 8:
            # Initial contents of a database with rows in most tables.
            open_monitors("_late")
        if n == 12:
            # Condition changes: the rows entering and leaving the view, new ids.
            for mid, new_mid, requests in [
                ("v2_cond", "v2_cond2", {
                    "Logical_Switch": [{"where": [["tunnel_key", "==", 6]]},
                                       {"where": [["name", "includes", "ls1"], True]}],
                    "Physical_Switch": [{"where": [False]}]}),
                ("v2_lit_late", "v2_lit2", {"Manager": [{"where": [["is_connected", "==", False]]}],
                                            "Physical_Switch": [{"where": []}]}),
                # (A condition on a column the monitor did not read before crashes
                # ovsdb-server 3.1.0 when other sessions share its monitor; fixed in
                # OVS commit 469e98e16.)
                ("twin0", "twin0b", {"Logical_Switch": [{"where": [["description", "==",
                                                                    "first"]]}]}),
                ("v1_sel", "v1_sel2", {"Logical_Switch": [{"where": [False]}]}),
            ]:
                reply = rpc.result("monitor_cond_change", [mid, new_mid, requests])
                assert reply == {}
                m = ours.pop(mid)
                _, new_id, reqs = parse_cond_change_params([mid, new_mid, requests])
                updates = m.apply_cond_change(m.parse_cond_change(reqs), tables)
                m.monitor_id = new_id
                ours[new_mid] = m
                got = rpc.notes()
                if updates is None:
                    assert got == [], (mid, got)
                else:
                    assert got == [m.notification(updates, ZERO_UUID)], mid
                    checked += 1
    # The test really compared many notifications.
    assert checked > 60
    rpc.close()


BAD_REQUESTS: list[tuple[str, list[Any]]] = [
    ("monitor", [DB, "x", {"Nope": {}}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"columns": ["name", "name"]}}]),
    ("monitor", [DB, "x", {"Logical_Switch": [{"columns": ["name"]}, {}]}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"columns": ["zz"]}}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"select": {"foo": True}}}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"select": 3}}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"bogus": 1}}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"where": []}}]),
    ("monitor", [DB, "x", []]),
    ("monitor", [DB, "dup", {}]),
    ("monitor_cond", [DB, "x"]),
    ("monitor_cond", [DB, "x", {}, 1]),
    ("monitor_cond_since", [DB, "x", {}]),
    ("monitor_cond_since", [DB, "x", {}, "zz"]),
    ("monitor_cond_since", [DB, "x", {}, 3]),
    ("monitor_cond_since", [DB, "x", {"Nope": {}}, 3]),
    ("monitor", [DB, "x", {"Logical_Switch": {"columns": "name"}}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"columns": [1]}}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"columns": ["zz", 1]}}]),
    ("monitor", [DB, "x", {"Logical_Switch": {"select": {"insert": 1}}}]),
    ("monitor", [DB, "x", {"Logical_Switch": 5}]),
    ("monitor", [DB, "x", {"Logical_Switch": [5]}]),
    ("monitor_cond", [DB, "x", {"Logical_Switch": {"where": [["nm", "==", "a"]]}}]),
    ("monitor_cond", [DB, "x", {"Logical_Switch": {"where": 5, "columns": 1}}]),
    ("monitor_cond", [DB, "x", {"Logical_Switch": {"where": [["name", "<", "a"]]}}]),
    ("monitor_cond", [DB, "x", {"Logical_Switch": {"columns": ["zz"], "where": [7]}}]),
]


def test_request_errors_match_ovsdb_server(standalone: Server) -> None:
    rpc = Rpc(standalone.sock)
    rpc.result("monitor", [DB, "dup", {}])
    for method, params in BAD_REQUESTS:
        reply = rpc.call(method, params)
        with pytest.raises(OvsdbError) as e:
            create_monitor(SCHEMA, method, params, id_in_use=lambda i: i == "dup")
        assert reply["error"] == e.value.to_json(), (method, params)
    rpc.result("monitor_cond", [DB, "c", {"Logical_Switch": {}}])
    ours = create_monitor(SCHEMA, "monitor_cond", [DB, "c", {"Logical_Switch": {}}])
    for params in (["c", "c", {"Nope": []}], ["c", "c", {"Physical_Locator": []}],
                   ["c", "c", {"Logical_Switch": {}}], ["c", "c", []], ["c", "c"],
                   ["c", "c", {"Logical_Switch": [{"columns": []}]}],
                   ["c", "c", {"Logical_Switch": [{"where": [["zz", "==", 1]]}]}],
                   ["c", "c", {"Logical_Switch": [{"zz": 1}]}]):
        reply = rpc.call("monitor_cond_change", params)
        with pytest.raises(OvsdbError) as e:
            _, _, reqs = parse_cond_change_params(params)
            ours.parse_cond_change(reqs)
        assert reply["error"] == e.value.to_json(), params
    rpc.close()


def test_monitor_cond_since_with_a_transaction_history(clustered: Server) -> None:
    """Real txn ids from a clustered database: found / not found and the changes since."""
    rpc = Rpc(clustered.sock)
    tables = snapshot(rpc)
    watch = [DB, "watch", ALL_TABLES, ZERO_UUID]
    found, last, _ = rpc.result("monitor_cond_since", watch)
    assert found is False
    history = TxnHistory(db_atoms=tables_atoms(tables))
    # The record that created the clustered database is a transaction with no rows;
    # ovsdb-server keeps it in its history like any other.
    assert last != ZERO_UUID
    history.append(last, {})
    ids = [last]
    # A big row first: the history keeps no more atoms than the database holds.
    script = [
        [{"op": "insert", "table": "Global",
          "row": {"other_config": ["map", [[str(i), "v"] for i in range(60)]]}}],
        *TXNS[1:3], TXNS[3], TXNS[5], TXNS[6], TXNS[7], TXNS[16],
        [{"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "ls3"]]}],
        [{"op": "insert", "table": "Logical_Switch", "row": {"name": f"n{i}"}} for i in range(8)],
        [{"op": "delete", "table": "Logical_Switch", "where": [["name", "includes", "n1"]]}],
        [{"op": "update", "table": "Global", "where": [], "row": {"other_config": ["map", []]}}],
        [{"op": "update", "table": "Logical_Switch", "where": [], "row": {"description": "x"}}],
    ]
    specs = [("a", {"Logical_Switch": {"columns": ["name", "tunnel_key"]}}),
             ("b", {"Logical_Switch": {"columns": ["name", "description"],
                                       "where": [["tunnel_key", "==", 5]]},
                    "Global": {}, "Ucast_Macs_Remote": {"select": {"insert": False}}})]
    n_found = 0
    for step, ops in enumerate(script):
        results = rpc.result("transact", [DB, *substitute(ops, ls_names(tables))])
        assert all("error" not in r for r in results), (step, results)
        (note,) = rpc.notes()
        assert note["method"] == "update3" and note["params"][0] == "watch"
        txn_id = note["params"][1]
        after = snapshot(rpc)
        changes = diff(tables, after)
        tables = after
        history.append(txn_id, changes)
        assert history.last_txn_id == txn_id
        ids.append(txn_id)
        for since in ids:
            for name, requests in specs:
                mid = f"{name}-{step}-{since}"
                params = [DB, mid, requests, since]
                reply = rpc.result("monitor_cond_since", params)
                m = create_monitor(SCHEMA, "monitor_cond_since", params)
                assert reply == m.reply(tables, history), (step, since, name)
                n_found += reply[0]
                rpc.result("monitor_cancel", [mid])
    # Both outcomes happened: the bound dropped old transactions, recent ones were found.
    n_asked = 2 * sum(range(2, len(ids) + 1))
    assert n_found > 50 and n_asked - n_found > 50
    assert history.since(ids[0]) is None
    rpc.close()


def with_row_uuids(ops: list[dict[str, Any]], counter: Iterator[int]) -> list[dict[str, Any]]:
    """Give every insert an explicit "uuid" so OVS and our engine create the same rows."""
    out = []
    for op in ops:
        if op["op"] == "insert" and "uuid" not in op:
            op = {**op, "uuid": f"5eed0000-0000-4000-8000-{next(counter):012x}"}
        out.append(op)
    return out


def translate(j: Any, vmap: dict[str, str]) -> Any:
    if isinstance(j, str):
        return vmap.get(j, j)
    if isinstance(j, list):
        return [translate(x, vmap) for x in j]
    if isinstance(j, dict):
        return {k: translate(v, vmap) for k, v in j.items()}
    return j


def test_in_process_transactions_notify_as_ovsdb_server(standalone: Server) -> None:
    """The same transactions run by ovsdb-server and by our engine (transaction.py);
    our monitors fed with our own commits must send what ovsdb-server sent. Row UUIDs
    are shared through insert's "uuid"; _version UUIDs are translated row by row."""
    rpc = Rpc(standalone.sock)
    db = Database(SCHEMA)
    vmap: dict[str, str] = {}  # our _version -> ovsdb-server's
    ours: dict[str, Monitor] = {}
    counter = itertools.count(1)

    def open_monitors(suffix: str) -> None:
        for mid, method, requests in MONITORS:
            mid = mid + suffix
            params = params_for(mid, method, requests)
            reply = rpc.result(method, params)
            m = create_monitor(SCHEMA, method, params, id_in_use=lambda i: i in ours)
            assert translate(m.reply(db.tables), vmap) == reply, mid
            ours[mid] = m

    open_monitors("")
    checked = 0
    for n, ops in enumerate(TXNS):
        ops = substitute(with_row_uuids(ops, counter), ls_names(db.tables))
        results = rpc.result("transact", [DB, *ops])
        notes = notifications_by_id(rpc.notes())
        outcome = execute(db, [DB, *ops])
        assert outcome.result == results, n
        assert outcome.changes is not None
        db.apply(outcome.changes)
        ovs_tables = snapshot(rpc)
        for tname, rows in db.tables.items():
            assert rows.keys() == ovs_tables[tname].keys(), (n, tname)
            for u, row in rows.items():
                vmap[row["_version"][0]] = ovs_tables[tname][u]["_version"][0]
        encoder = CommitEncoder(outcome.changes)
        for mid, m in ours.items():
            updates = m.on_commit(outcome.changes, encoder)
            got = notes.pop(mid, None)
            if updates is None:
                assert got is None, (n, mid, got)
                continue
            assert got == translate(m.notification(updates, ZERO_UUID), vmap), (n, mid)
            checked += 1
        assert not notes
        if n == 8:
            open_monitors("_late")
        if n == 12:
            for mid, new_mid, requests in [
                ("v2_cond", "v2_cond2", {"Logical_Switch": [{"where": [["tunnel_key", "==", 6]]}]}),
                ("v2_lit_late", "v2_lit2", {"Physical_Switch": [{"where": []}]}),
            ]:
                assert rpc.result("monitor_cond_change", [mid, new_mid, requests]) == {}
                m = ours.pop(mid)
                updates = m.apply_cond_change(m.parse_cond_change(requests), db.tables)
                m.monitor_id = new_mid
                ours[new_mid] = m
                assert updates is not None
                assert rpc.notes() == [translate(m.notification(updates, ZERO_UUID), vmap)]
    assert checked > 60
    rpc.close()
