"""What the controller writes that the agent cannot honour: skipped, reported, logged once.

Issue 5: "logical switches without tunnel_key, unsupported encapsulations and dangling
references are logged once and skipped, never crash the agent". The tables are made by
real transactions (agent_vtepdb); what the schema or the engine forbids - a locator with
another encapsulation, references to rows that are gone, as a replica caught between
updates could hold - is then planted in a copy of them, behind the engine's back.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from agent_vtepdb import SCHEMA, VtepDb

from hwvtep.agent.desired import UNSPECIFIED_FAULT, Desired, compute
from hwvtep.agent.linux import LinuxDataPlane
from hwvtep.agent.model import Binding
from hwvtep.agent.report import Observed, report
from hwvtep.agent.service import MONITOR, Agent, Settings
from hwvtep.client.api import Client
from hwvtep.client.connection import Session
from hwvtep.client.replica import Replica

PS = "ps1"
TIP = "192.0.2.1"
MISSING = "deadbeef-0000-4000-8000-000000000001"

Tables = dict[str, dict[str, dict[str, Any]]]


def copy(db: VtepDb) -> Tables:
    """The database's rows, every table and row a fresh dict that may be changed."""
    return {t: {u: dict(r) for u, r in rows.items()} for t, rows in db.tables.items()}


def keys(d: Desired) -> list[str]:
    return sorted(p.key.split()[0] for p in d.problems)


@pytest.fixture
def db() -> VtepDb:
    return VtepDb()


def bound(db: VtepDb, key: int = 7) -> tuple[str, str, str]:
    """Switch ps1 with port p1 bound (vlan 0) to logical switch 'ls': (ps, port, ls)."""
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    ls = db.add_ls("ls", key)
    db.bind(port, 0, ls)
    return ps, port, ls


def locator_of(db: VtepDb, ip: str) -> str:
    ref = db.locator(ip)
    assert ref, ip
    return str(ref[1])


# -- unsupported encapsulation ---------------------------------------------------------


def test_schema_allows_only_vxlan_over_ipv4() -> None:
    """Why the locator below is planted: the schema's enum refuses anything else."""
    col = SCHEMA.tables["Physical_Locator"].columns["encapsulation_type"]
    assert col.type.key.enum == ("vxlan_over_ipv4",)
    with pytest.raises(AssertionError, match="constraint"):
        VtepDb().transact(
            {
                "op": "insert",
                "table": "Physical_Locator",
                "row": {"encapsulation_type": "vxlan_over_ipv6", "dst_ip": "2001:db8::1"},
            }
        )


def test_unsupported_encapsulation_is_skipped_and_reported(db: VtepDb) -> None:
    ps, _, ls = bound(db)
    other = db.add_ls("other", 8)
    db.bind(db.add_port(ps, "p2"), 0, other)
    db.add_ucast_remote(ls, "00:00:00:00:00:01", "198.51.100.1")  # the odd locator
    db.add_ucast_remote(other, "00:00:00:00:00:03", "198.51.100.1")  # same locator, VNI 8
    db.add_ucast_remote(ls, "00:00:00:00:00:02", "198.51.100.2")  # a good one
    # service_node: the odd locator has the lower address, yet the good one is chosen
    db.add_mcast_remote(ls, "unknown-dst", ["198.51.100.1", "198.51.100.2"])
    odd = locator_of(db, "198.51.100.1")
    assert compute(db.tables, PS, "hv").problems == ()

    tables = copy(db)
    tables["Physical_Locator"][odd]["encapsulation_type"] = ("stt_over_ipv4",)
    d = compute(tables, PS, "hv")
    assert d.switches[ls].ucast == {("00:00:00:00:00:02", "198.51.100.2")}
    assert d.switches[ls].flood == {"198.51.100.2"}
    assert d.switches[other].ucast == frozenset()
    assert "198.51.100.1" not in d.remotes()
    # one problem for the locator, however many rows and switches use it
    (p,) = d.problems
    assert p.key == f"encap {odd}"
    assert "unsupported encapsulation 'stt_over_ipv4'" in p.message and "198.51.100.1" in p.message
    assert d.faults() == {("Physical_Switch", ps): frozenset({UNSPECIFIED_FAULT})}
    # and the report writes it as the switch's fault, and makes no tunnel to it
    ops = report(tables, PS, d, Observed(present=frozenset({"p1", "p2"})))
    assert {
        "op": "update",
        "table": "Physical_Switch",
        "where": [["_uuid", "==", ["uuid", ps]]],
        "row": {"switch_fault_status": ["set", [UNSPECIFIED_FAULT]]},
    } in ops
    tunnels = [o for o in ops if o["op"] == "insert" and o["table"] == "Tunnel"]
    assert [t["row"]["remote"] for t in tunnels] == [["uuid", locator_of(db, "198.51.100.2")]]


def test_encapsulation_missing_altogether(db: VtepDb) -> None:
    _, _, ls = bound(db)
    db.add_ucast_remote(ls, "00:00:00:00:00:01", "198.51.100.1")
    tables = copy(db)
    odd = locator_of(db, "198.51.100.1")
    tables["Physical_Locator"][odd]["encapsulation_type"] = ()
    d = compute(tables, PS, "hv")
    assert d.switches[ls].ucast == frozenset()
    assert [p.key for p in d.problems] == [f"encap {odd}"]


# -- dangling references ---------------------------------------------------------------


def test_ucast_remote_to_missing_locator(db: VtepDb) -> None:
    _, _, ls = bound(db)
    gone = db.add_ucast_remote(ls, "00:00:00:00:00:01", "198.51.100.1")
    db.add_ucast_remote(ls, "00:00:00:00:00:02", "198.51.100.2")
    tables = copy(db)
    tables["Ucast_Macs_Remote"][gone]["locator"] = (MISSING,)
    d = compute(tables, PS, "hv")
    assert d.switches[ls].ucast == {("00:00:00:00:00:02", "198.51.100.2")}
    (p,) = d.problems
    assert p.key == f"dangling-locator {MISSING}"
    assert "00:00:00:00:00:01" in p.message and "missing locator" in p.message
    assert d.faults() == {}  # only logged: no row of this switch is at fault


def test_ucast_remote_to_missing_logical_switch(db: VtepDb) -> None:
    _, _, ls = bound(db)
    gone = db.add_ucast_remote(ls, "00:00:00:00:00:01", "198.51.100.1")
    db.add_ucast_remote(ls, "00:00:00:00:00:02", "198.51.100.2")
    mgone = db.add_mcast_remote(ls, "01:00:5e:00:00:01", ["198.51.100.3"])
    tables = copy(db)
    tables["Ucast_Macs_Remote"][gone]["logical_switch"] = (MISSING,)
    tables["Mcast_Macs_Remote"][mgone]["logical_switch"] = (MISSING,)
    d = compute(tables, PS, "hv")
    assert d.switches[ls].ucast == {("00:00:00:00:00:02", "198.51.100.2")}
    assert d.switches[ls].mcast == frozenset()
    assert sorted(p.key for p in d.problems) == sorted(
        [f"dangling-mac-ls {gone}", f"dangling-mac-ls {mgone}"]
    )
    assert all(MISSING in p.message for p in d.problems)
    assert d.faults() == {}


def test_mcast_remote_to_missing_set_or_locator(db: VtepDb) -> None:
    _, _, ls = bound(db)
    flood = db.add_mcast_remote(ls, "unknown-dst", ["198.51.100.1", "198.51.100.2"])
    group = db.add_mcast_remote(ls, "01:00:5e:00:00:01", ["198.51.100.3"])
    tables = copy(db)
    set_uuid = tables["Mcast_Macs_Remote"][flood]["locator_set"][0]
    lost = locator_of(db, "198.51.100.1")
    # the set of unknown-dst lost one of its locators; the group's set is gone
    del tables["Physical_Locator"][lost]
    del tables["Physical_Locator_Set"][tables["Mcast_Macs_Remote"][group]["locator_set"][0]]
    d = compute(tables, PS, "hv")
    assert d.switches[ls].flood == {"198.51.100.2"}
    assert d.switches[ls].mcast == frozenset()
    assert keys(d) == ["dangling-locator", "dangling-set"]
    assert set_uuid not in {p.key.split()[1] for p in d.problems}


def test_binding_to_missing_logical_switch(db: VtepDb) -> None:
    _, port, ls = bound(db)
    db.bind(port, 10, db.add_ls("tagged", 8))
    tables = copy(db)
    tables["Physical_Port"][port]["vlan_bindings"] = ((0, ls), (10, MISSING))
    d = compute(tables, PS, "hv")
    assert d.bindings == {Binding("p1", 0): ls}
    assert [p.key for p in d.problems] == [f"dangling-ls {port} 10"]
    assert "missing logical switch" in d.problems[0].message
    assert d.faults() == {("Physical_Port", port): frozenset({"invalid_vlan_map"})}
    ops = report(tables, PS, d, Observed(present=frozenset({"p1"})))
    assert {
        "op": "update",
        "table": "Physical_Port",
        "where": [["_uuid", "==", ["uuid", port]]],
        "row": {"port_fault_status": ["set", ["invalid_vlan_map"]]},
    } in ops


def test_switch_listing_a_missing_port(db: VtepDb) -> None:
    ps, port, ls = bound(db)
    tables = copy(db)
    tables["Physical_Switch"][ps]["ports"] = (port, MISSING)
    d = compute(tables, PS, "hv")
    assert d.bindings == {Binding("p1", 0): ls}
    assert [p.key for p in d.problems] == [f"dangling-port {MISSING}"]
    report(tables, PS, d, Observed(present=frozenset({"p1"})))  # does not raise


# -- the agent logs each once, and says when it is resolved ----------------------------


def make_agent() -> Agent:
    """A real Agent that never connects: nothing opens a socket before `run`/`start`."""
    client = Client(Session("unix:/nonexistent/hwvtep-test.sock"))
    replica = Replica(client, "hardware_vtep", tables=MONITOR)
    return Agent(replica, LinuxDataPlane(None, None), Settings(PS))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def resolved(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("resolved: ")]


def test_problems_are_logged_once_and_resolved(
    db: VtepDb, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hwvtep.agent")
    _, port, ls = bound(db)
    nokey = db.add_ls("nokey")
    db.bind(port, 5, nokey)
    db.add_ucast_remote(ls, "00:00:00:00:00:01", "198.51.100.1")
    dangling = db.add_ucast_remote(ls, "00:00:00:00:00:02", "198.51.100.2")
    odd = locator_of(db, "198.51.100.1")
    agent = make_agent()

    def reconcile(tables: Tables) -> None:
        agent._log_problems(compute(tables, PS, "hv"))

    def broken() -> Tables:
        tables = copy(db)
        tables["Physical_Locator"][odd]["encapsulation_type"] = ("stt_over_ipv4",)
        tables["Ucast_Macs_Remote"][dangling]["locator"] = (MISSING,)
        return tables

    # three problems, and unrelated changes between reconciles
    for i in range(4):
        reconcile(broken())
        db.add_ls(f"unrelated{i}", 100 + i)
    logged = warnings(caplog)
    assert len(logged) == 3, logged
    assert sum("has no tunnel_key" in m for m in logged) == 1
    assert sum("unsupported encapsulation" in m for m in logged) == 1
    assert sum("missing locator" in m for m in logged) == 1
    assert resolved(caplog) == []

    # the controller gives the switch a key: that problem is resolved, once
    caplog.clear()
    db.update("Logical_Switch", nokey, {"tunnel_key": 55})
    for _ in range(3):
        reconcile(broken())
    assert warnings(caplog) == []
    (msg,) = resolved(caplog)
    assert "has no tunnel_key" in msg

    # the replica catches up and the locator is a good one again: all resolved
    caplog.clear()
    for _ in range(3):
        reconcile(copy(db))
    assert warnings(caplog) == []
    assert len(resolved(caplog)) == 2
    assert agent.problems == {}

    # a problem that comes back is logged again, once
    caplog.clear()
    for _ in range(3):
        reconcile(broken())
    assert len(warnings(caplog)) == 2
