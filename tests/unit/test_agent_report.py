"""report.report: the switch's own rows, written by transactions that the real engine runs.

Every scenario applies the operations to a database made by the project's transaction
engine and then checks that a second report on the result has nothing left to do.
"""

from __future__ import annotations

from typing import Any

import pytest
from agent_vtepdb import VtepDb

from hwvtep.agent.desired import INVALID_VLAN_MAP, UNSPECIFIED_FAULT, compute
from hwvtep.agent.model import Binding, Counters
from hwvtep.agent.report import DESCRIPTION, Observed, report

PS = "ps1"
TIP = "192.0.2.1"
REMOTE = "198.51.100.7"


@pytest.fixture
def db() -> VtepDb:
    return VtepDb()


def sync(db: VtepDb, obs: Observed, *, vlan_support: bool = True) -> list[dict[str, Any]]:
    """Report, apply, and prove the result needs nothing more; return the operations."""
    desired = compute(db.tables, PS, "hv", vlan_support=vlan_support)
    ops = report(db.tables, PS, desired, obs)
    if ops:
        db.transact(*ops)
    desired = compute(db.tables, PS, "hv", vlan_support=vlan_support)
    again = report(db.tables, PS, desired, obs)
    assert again == [], f"not idempotent: {again}"
    return ops


def col(row: dict[str, Any], name: str) -> Any:
    d = row[name]
    return d[0] if len(d) == 1 else d


def ps_row(db: VtepDb) -> tuple[str, dict[str, Any]]:
    return db.one("Physical_Switch", name=PS)


def port_row(db: VtepDb, name: str) -> tuple[str, dict[str, Any]]:
    return db.one("Physical_Port", name=name)


def loc_ip(db: VtepDb, loc: str) -> str:
    return str(col(db.rows("Physical_Locator")[loc], "dst_ip"))


def setup_bound(db: VtepDb, *ports: str) -> tuple[str, list[str], str]:
    ps = db.add_ps(PS, [TIP])
    rows = [db.add_port(ps, p) for p in ports]
    ls = db.add_ls("red", 5000)
    for r in rows:
        db.bind(r, 0, ls)
    return ps, rows, ls


def test_creates_switch_global_and_ports(db: VtepDb) -> None:
    obs = Observed(serve=frozenset({"eth1", "eth2"}), present=frozenset({"eth1", "eth2"}))
    ops = sync(db, obs)
    assert [o["table"] for o in ops if o["op"] == "insert"] == [
        "Physical_Port", "Physical_Port", "Physical_Switch", "Global",
    ]  # fmt: skip
    ps, row = ps_row(db)
    assert col(row, "description") == DESCRIPTION
    assert db.one("Global")[1]["switches"] == (ps,)
    names = {col(db.rows("Physical_Port")[u], "name") for u in row["ports"]}
    assert names == {"eth1", "eth2"}


def test_existing_switch_gets_description_and_new_ports_only(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    old = db.add_port(ps, "eth1")
    obs = Observed(serve=frozenset({"eth1", "eth2"}), present=frozenset({"eth1", "eth2"}))
    ops = sync(db, obs)
    assert [o["op"] for o in ops] == ["update", "insert", "mutate"]
    assert port_row(db, "eth1")[0] == old
    db.update("Physical_Switch", ps, {"description": "mine"})
    assert sync(db, obs) == []
    assert col(ps_row(db)[1], "description") == "mine"


def test_vanished_ports(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    ls = db.add_ls("red", 5)
    obs = Observed(
        serve=frozenset({"eth1", "eth2", "eth3"}),
        patterns=("eth*",),
        present=frozenset({"eth1", "eth2", "eth3"}),
    )
    sync(db, obs)
    db.bind(port_row(db, "eth2")[0], 0, ls)
    explicit = db.add_port(ps, "lo9")  # a row the user made, for a port we do not match
    obs = Observed(serve=frozenset({"eth3"}), patterns=("eth*",), present=frozenset({"eth3"}))
    sync(db, obs)
    # eth1 matched a pattern, is gone and carries nothing: the row goes, as ovs-vtep's
    assert not db.find("Physical_Port", name="eth1")
    # eth2 carries a binding: kept, faulted; lo9 kept and faulted too
    _, eth2 = port_row(db, "eth2")
    assert eth2["port_fault_status"] == (UNSPECIFIED_FAULT,)
    assert db.rows("Physical_Port")[explicit]["port_fault_status"] == (UNSPECIFIED_FAULT,)
    assert port_row(db, "eth3")[1]["port_fault_status"] == ()
    # it comes back: the fault is cleared
    obs = Observed(
        serve=frozenset({"eth2", "eth3"}),
        patterns=("eth*",),
        present=frozenset({"eth2", "eth3", "lo9"}),
    )
    sync(db, obs)
    assert port_row(db, "eth2")[1]["port_fault_status"] == ()
    assert db.rows("Physical_Port")[explicit]["port_fault_status"] == ()


def test_learned_macs_and_unknown_dst(db: VtepDb) -> None:
    _ps, (p1, p2), ls = setup_bound(db, "eth1", "eth2")
    present = frozenset({"eth1", "eth2"})
    macs = {Binding("eth1"): frozenset({"00:00:00:00:00:01"}), Binding("eth2"): frozenset()}
    ops = sync(db, Observed(present=present, learned=macs))
    inserted = [o["table"] for o in ops if o["op"] == "insert"]
    assert inserted.count("Physical_Locator") == 1
    (_, ucl), (_, mcl) = db.one("Ucast_Macs_Local"), db.one("Mcast_Macs_Local")
    assert col(ucl, "MAC") == "00:00:00:00:00:01" and col(ucl, "logical_switch") == ls
    assert loc_ip(db, col(ucl, "locator")) == TIP
    assert col(mcl, "MAC") == "unknown-dst" and col(mcl, "logical_switch") == ls
    (lset,) = mcl["locator_set"]
    assert db.rows("Physical_Locator_Set")[lset]["locators"] == ucl["locator"]
    # more MACs, one ages out
    macs = {
        Binding("eth1"): frozenset({"00:00:00:00:00:02"}),
        Binding("eth2"): frozenset({"00:00:00:00:00:03"}),
    }
    ops = sync(db, Observed(present=present, learned=macs))
    assert sorted(o["op"] for o in ops) == ["delete", "insert", "insert"]
    assert {col(r, "MAC") for r in db.rows("Ucast_Macs_Local").values()} == {
        "00:00:00:00:00:02",
        "00:00:00:00:00:03",
    }
    # unbinding the switch removes its local rows (and nothing keeps the locator alive)
    db.unbind(p1, 0)
    db.unbind(p2, 0)
    sync(db, Observed(present=present, learned={}))
    assert db.rows("Ucast_Macs_Local") == {} and db.rows("Mcast_Macs_Local") == {}
    assert db.rows("Physical_Locator") == {}


def test_reuses_controller_locators_and_leaves_others_alone(db: VtepDb) -> None:
    _ps, (_p1,), ls = setup_bound(db, "eth1")
    # the controller already made a locator for our address, and a set holding only it
    db.add_mcast_remote(ls, "01:00:5e:00:00:01", [TIP])
    (ours,) = db.rows("Physical_Locator")
    # another switch's local MAC in the same database
    other_loc = db.add_ucast_remote(ls, "00:00:00:00:00:99", "203.0.113.1")
    db.transact(
        {
            "op": "insert",
            "table": "Ucast_Macs_Local",
            "row": {
                "MAC": "00:00:00:00:00:98",
                "logical_switch": ["uuid", ls],
                "locator": ["uuid", db.rows("Ucast_Macs_Remote")[other_loc]["locator"][0]],
            },
        }
    )
    macs = {Binding("eth1"): frozenset({"00:00:00:00:00:01"})}
    ops = sync(db, Observed(present=frozenset({"eth1"}), learned=macs))
    assert not [o for o in ops if o["table"] in ("Physical_Locator", "Physical_Locator_Set")]
    assert len(db.rows("Physical_Locator")) == 2
    assert {col(r, "MAC") for r in db.rows("Ucast_Macs_Local").values()} == {
        "00:00:00:00:00:01",
        "00:00:00:00:00:98",
    }
    assert db.find("Ucast_Macs_Local", MAC="00:00:00:00:00:01")[0][1]["locator"] == (ours,)


def test_local_rows_repaired(db: VtepDb) -> None:
    """Rows of ours that drifted: MAC in capitals, a duplicate, an odd locator set."""
    _ps, (_p1,), ls = setup_bound(db, "eth1")
    obs = Observed(present=frozenset({"eth1"}), learned={Binding("eth1"): frozenset()})
    sync(db, obs)
    (loc,) = db.rows("Physical_Locator")
    for mac in ("00:00:00:00:00:AA", "00:00:00:00:00:aa"):
        db.transact(
            {
                "op": "insert",
                "table": "Ucast_Macs_Local",
                "row": {"MAC": mac, "logical_switch": ["uuid", ls], "locator": ["uuid", loc]},
            }
        )
    mcl, _ = db.one("Mcast_Macs_Local")
    db.add_mcast_remote(ls, "unknown-dst", [TIP, REMOTE])  # a set {ours, remote}
    big = next(u for u, r in db.rows("Physical_Locator_Set").items() if len(r["locators"]) == 2)
    db.update("Mcast_Macs_Local", mcl, {"locator_set": ["uuid", big]})
    obs = Observed(
        present=frozenset({"eth1"}), learned={Binding("eth1"): frozenset({"00:00:00:00:00:aa"})}
    )
    sync(db, obs)
    assert len(db.rows("Ucast_Macs_Local")) == 1
    _, row = db.one("Mcast_Macs_Local")
    assert db.rows("Physical_Locator_Set")[row["locator_set"][0]]["locators"] == (loc,)


def test_binding_stats(db: VtepDb) -> None:
    _ps, (p1,), _ls = setup_bound(db, "eth1")
    blue = db.add_ls("blue", 6000)
    db.bind(p1, 10, blue)
    present = frozenset({"eth1"})
    sync(db, Observed(present=present))
    stats = dict(port_row(db, "eth1")[1]["vlan_stats"])
    assert set(stats) == {0, 10}
    assert col(db.rows("Logical_Binding_Stats")[stats[0]], "packets_from_local") == 0
    counters = {
        Binding("eth1", 0): Counters(rx_packets=3, rx_bytes=300, tx_packets=4, tx_bytes=400),
        Binding("eth1", 10): Counters(1, 2, 3, 4),
    }
    ops = sync(db, Observed(present=present, counters=counters))
    assert [o["op"] for o in ops] == ["update", "update"]
    row = db.rows("Logical_Binding_Stats")[stats[0]]
    assert (
        col(row, "packets_from_local"),
        col(row, "bytes_from_local"),
        col(row, "packets_to_local"),
        col(row, "bytes_to_local"),
    ) == (3, 300, 4, 400)
    # same counters again: nothing to write
    assert report(db.tables, PS, compute(db.tables, PS, "hv"), Observed(present=present,
                  counters=counters)) == []  # fmt: skip
    db.unbind(p1, 10)
    sync(db, Observed(present=present))
    assert set(dict(port_row(db, "eth1")[1]["vlan_stats"])) == {0}
    assert len(db.rows("Logical_Binding_Stats")) == 1


def test_faults_set_and_cleared(db: VtepDb) -> None:
    ps, (p1, p2), _ls = setup_bound(db, "eth1", "eth2")
    db.bind(p1, 7, db.add_ls("tagged", 7))
    nokey = db.add_ls("nokey")
    db.bind(p2, 9, nokey)
    present = frozenset({"eth1", "eth2"})
    # eth2 held by a foreign bridge (blocked); tagged bindings impossible on this kernel
    obs = Observed(present=present, blocked=frozenset({Binding("eth2")}))
    sync(db, obs, vlan_support=False)
    assert port_row(db, "eth1")[1]["port_fault_status"] == (INVALID_VLAN_MAP,)
    assert port_row(db, "eth2")[1]["port_fault_status"] == (INVALID_VLAN_MAP,)
    assert set(dict(port_row(db, "eth1")[1]["vlan_stats"])) == {0}
    assert dict(port_row(db, "eth2")[1]["vlan_stats"]) == {}
    # the kernel refused an operation for eth1 vlan 0
    sync(db, Observed(present=present, failed={Binding("eth1"): "boom"}), vlan_support=False)
    assert dict(port_row(db, "eth1")[1]["vlan_stats"]) == {}
    # everything fixed
    db.unbind(p1, 7)
    db.unbind(p2, 9)
    sync(db, Observed(present=present))
    for name in ("eth1", "eth2"):
        _, row = port_row(db, name)
        assert row["port_fault_status"] == () and set(dict(row["vlan_stats"])) == {0}
    # switch fault: no usable tunnel IP
    db.update("Physical_Switch", ps, {"tunnel_ips": ["set", ["bogus"]]})
    sync(db, Observed(present=present, former_ips=frozenset({TIP})))
    assert ps_row(db)[1]["switch_fault_status"] == (UNSPECIFIED_FAULT,)
    assert db.rows("Mcast_Macs_Local") == {}
    db.update("Physical_Switch", ps, {"tunnel_ips": ["set", [TIP]]})
    sync(db, Observed(present=present))
    assert ps_row(db)[1]["switch_fault_status"] == ()


def test_tunnels_follow_remotes_in_use(db: VtepDb) -> None:
    _ps, (_p1,), ls = setup_bound(db, "eth1")
    present = frozenset({"eth1"})
    m1 = db.add_ucast_remote(ls, "00:00:00:00:00:01", REMOTE)
    db.add_mcast_remote(ls, "unknown-dst", [REMOTE, "198.51.100.8"])  # service node: .7 only
    sync(db, Observed(present=present))
    tunnels = ps_row(db)[1]["tunnels"]
    assert len(tunnels) == 1
    t = db.rows("Tunnel")[tunnels[0]]
    assert loc_ip(db, col(t, "local")) == TIP and loc_ip(db, col(t, "remote")) == REMOTE
    assert t["bfd_status"] == (("enabled", "false"),)
    db.update("Logical_Switch", ls, {"replication_mode": "source_node"})
    sync(db, Observed(present=present))
    remotes = {loc_ip(db, col(db.rows("Tunnel")[u], "remote")) for u in ps_row(db)[1]["tunnels"]}
    assert remotes == {REMOTE, "198.51.100.8"}
    # the remote rows go: so do their tunnels, and the locators they kept alive
    db.delete("Ucast_Macs_Remote", m1)
    db.delete("Mcast_Macs_Remote", db.one("Mcast_Macs_Remote")[0])
    sync(db, Observed(present=present))
    assert ps_row(db)[1]["tunnels"] == () and db.rows("Tunnel") == {}
    assert {loc_ip(db, u) for u in db.rows("Physical_Locator")} == {TIP}


def test_controller_bfd_status_is_overwritten_and_duplicates_dropped(db: VtepDb) -> None:
    ps, (_p1,), ls = setup_bound(db, "eth1")
    db.add_ucast_remote(ls, "00:00:00:00:00:01", REMOTE)
    present = frozenset({"eth1"})
    sync(db, Observed(present=present))
    (tun,) = ps_row(db)[1]["tunnels"]
    row = db.rows("Tunnel")[tun]
    db.transact(
        {
            "op": "insert",
            "table": "Tunnel",
            "row": {"local": ["uuid", col(row, "local")], "remote": ["uuid", col(row, "remote")]},
            "uuid-name": "t",
        },
        {
            "op": "mutate",
            "table": "Physical_Switch",
            "where": [["_uuid", "==", ["uuid", ps]]],
            "mutations": [["tunnels", "insert", ["set", [["named-uuid", "t"]]]]],
        },
    )
    db.update("Tunnel", tun, {"bfd_status": ["map", [["state", "up"]]]})
    sync(db, Observed(present=present))
    (left,) = ps_row(db)[1]["tunnels"]
    assert db.rows("Tunnel")[left]["bfd_status"] == (("enabled", "false"),)


def test_many_learned_macs_in_one_report(db: VtepDb) -> None:
    setup_bound(db, "eth1")
    macs = frozenset(f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}" for i in range(2000))
    ops = sync(db, Observed(present=frozenset({"eth1"}), learned={Binding("eth1"): macs}))
    assert len(db.rows("Ucast_Macs_Local")) == 2000
    assert sum(o["op"] == "insert" for o in ops) == 2000 + 2 + 1 + 1  # + locator, set, stats
