"""desired.compute: hardware_vtep rows -> desired data plane of one switch, and its problems."""

from __future__ import annotations

import pytest
from agent_vtepdb import VtepDb

from hwvtep.agent.desired import (
    INVALID_VLAN_MAP,
    UNSPECIFIED_FAULT,
    Desired,
    compute,
)
from hwvtep.agent.model import (
    FLOOD_MAC,
    Binding,
    Bridge,
    FdbEntry,
    LogicalSwitch,
    NodeState,
    Port,
    VlanIf,
    Vxlan,
)

PS = "ps1"
TIP = "192.0.2.1"


@pytest.fixture
def db() -> VtepDb:
    return VtepDb()


def node(db: VtepDb, **kw: object) -> Desired:
    return compute(db.tables, PS, "hv", **kw)  # type: ignore[arg-type]


def faults(d: Desired) -> dict[tuple[str, str], frozenset[str]]:
    return d.faults()


def test_empty_database_and_unknown_switch(db: VtepDb) -> None:
    d = node(db)
    assert d.ps_uuid is None and d.state == NodeState("hv") and not d.problems
    db.add_ps("other", [TIP])
    assert node(db).ps_uuid is None


def test_walkthrough_attach(db: VtepDb) -> None:
    """The walkthrough's attach_red2: one switch, port s2-eth1 vlan 0, one remote MAC."""
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "s2-eth1")
    red = db.add_ls("red", 5000)
    db.bind(port, 0, red)
    db.add_ucast_remote(red, "00:00:00:00:00:0A", "198.51.100.1")
    d = node(db)
    assert d.ps_uuid == ps and d.local_ip == TIP and not d.problems
    assert d.switches == {
        red: LogicalSwitch.make(
            5000, TIP, [Binding("s2-eth1")], {"00:00:00:00:00:0a": "198.51.100.1"}
        )
    }
    assert d.bindings == {Binding("s2-eth1"): red}
    assert d.state == NodeState(
        "hv",
        frozenset({Bridge("hvb5000")}),
        frozenset({Vxlan("hvx5000", 5000, TIP, "hvb5000")}),
        frozenset(),
        frozenset({Port("s2-eth1", "hvb5000", True)}),
        frozenset({FdbEntry("hvx5000", "00:00:00:00:00:0a", "198.51.100.1")}),
    )
    assert d.remotes() == {"198.51.100.1"}


def test_unbound_switches_are_not_realised(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    db.add_port(ps, "p1")
    ls = db.add_ls("idle", 7)
    db.add_ucast_remote(ls, "00:00:00:00:00:01", "198.51.100.1")
    d = node(db)
    assert d.switches == {} and d.state.bridges == frozenset() and not d.problems
    assert d.ports == {"p1": (next(iter(db.rows("Physical_Port"))),)}


def test_other_switch_ports_are_ignored(db: VtepDb) -> None:
    db.add_ps(PS, [TIP])
    other = db.add_ps("ps2", ["192.0.2.2"])
    ls = db.add_ls("ls", 7)
    db.bind(db.add_port(other, "p9"), 0, ls)
    assert node(db).switches == {}


def test_flooding_modes(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    ls = db.add_ls("ls", 9)
    db.bind(port, 0, ls)
    db.add_mcast_remote(ls, "unknown-dst", ["198.51.100.20", "198.51.100.3", TIP])
    # service_node (the default): one node, the lowest address, never ourselves
    assert node(db).switches[ls].flood == {"198.51.100.3"}
    db.update("Logical_Switch", ls, {"replication_mode": "service_node"})
    assert node(db).switches[ls].flood == {"198.51.100.3"}
    db.update("Logical_Switch", ls, {"replication_mode": "source_node"})
    d = node(db)
    assert d.switches[ls].flood == {"198.51.100.20", "198.51.100.3"}
    vx = "hvx9"
    assert {e for e in d.state.fdb if e.mac == FLOOD_MAC} == {
        FdbEntry(vx, FLOOD_MAC, "198.51.100.20"),
        FdbEntry(vx, FLOOD_MAC, "198.51.100.3"),
    }


def test_service_node_choice_is_the_lowest_address_and_ignores_bfd_status(db: VtepDb) -> None:
    """Without BFD every service node counts as healthy (see desired.py's docstring).

    The choice depends only on the addresses in the set: not on uuids or insertion order
    (so a restart, or another VTEP, picks the same one), and not on a Tunnel's bfd_status,
    a column only the switch itself writes (report.py sets it to enabled=false).
    """
    nodes = ["198.51.100.20", "198.51.100.3", "198.51.100.100"]
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    ls = db.add_ls("ls", 9)
    db.bind(port, 0, ls)
    db.add_mcast_remote(ls, "unknown-dst", nodes)
    assert node(db).switches[ls].flood == {"198.51.100.3"}

    # another database with the same content written in another order: same choice
    other = VtepDb()
    ps2 = other.add_ps(PS, [TIP])
    for ip in reversed(nodes):
        other.add_ucast_remote(other.add_ls(f"x{ip}", 1), "00:00:00:00:00:01", ip)
    ls2 = other.add_ls("ls", 9)
    other.bind(other.add_port(ps2, "p1"), 0, ls2)
    other.add_mcast_remote(ls2, "unknown-dst", list(reversed(nodes)))
    assert compute(other.tables, PS, "hv").switches[ls2].flood == {"198.51.100.3"}

    # a bfd_status saying forwarding=false (written behind the agent's back) changes nothing
    low = db.locator("198.51.100.3")
    local = db._loc(TIP, "l", None, ops := [])
    ops.append(
        {
            "op": "insert",
            "table": "Tunnel",
            "row": {
                "local": local,
                "remote": low,
                "bfd_status": ["map", [["enabled", "true"], ["forwarding", "false"]]],
            },
            "uuid-name": "t",
        }
    )
    ops.append(
        {
            "op": "mutate",
            "table": "Physical_Switch",
            "where": [["_uuid", "==", ["uuid", ps]]],
            "mutations": [["tunnels", "insert", ["set", [["named-uuid", "t"]]]]],
        }
    )
    db.transact(*ops)
    assert node(db).switches[ls].flood == {"198.51.100.3"}

    # the controller takes the node out of the set: the next lowest is used
    mcast = next(iter(db.rows("Mcast_Macs_Remote")))
    db.delete("Mcast_Macs_Remote", mcast)
    db.add_mcast_remote(ls, "unknown-dst", ["198.51.100.20", "198.51.100.100"])
    assert node(db).switches[ls].flood == {"198.51.100.20"}


def test_multicast_macs_and_several_tunnel_ips(db: VtepDb) -> None:
    ps = db.add_ps(PS, ["192.0.2.9", TIP, "2001:db8::1"])
    port = db.add_port(ps, "p1")
    ls = db.add_ls("ls", 9)
    db.bind(port, 0, ls)
    db.add_mcast_remote(ls, "01:00:5e:00:00:fb", ["198.51.100.1", "192.0.2.9"])
    db.add_ucast_remote(ls, "00:00:00:00:00:02", "192.0.2.9")  # one of ours: skipped
    d = node(db)
    # the first IPv4 address of the set (datums are sorted) is the local one
    assert d.local_ip == TIP
    assert d.tunnel_ips == {TIP, "192.0.2.9"}
    assert d.switches[ls].mcast == {("01:00:5e:00:00:fb", "198.51.100.1")}
    assert d.switches[ls].ucast == frozenset()
    assert faults(d) == {("Physical_Switch", ps): frozenset({UNSPECIFIED_FAULT})}
    assert [p.key for p in d.problems] == ["tunnel-ip 2001:db8::1"]


def test_tagged_bindings_and_vlan_support(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    a, b = db.add_ls("a", 1), db.add_ls("b", 2)
    db.bind(port, 0, a)
    db.bind(port, 10, b)
    d = node(db)
    assert d.state.vlans == {VlanIf("p1.10", "p1", 10, "hvb2")}
    assert d.bindings == {Binding("p1", 0): a, Binding("p1", 10): b}
    d = node(db, vlan_support=False)
    assert d.bindings == {Binding("p1", 0): a}
    assert d.state.vlans == frozenset() and set(d.switches) == {a}
    assert faults(d) == {("Physical_Port", port): frozenset({INVALID_VLAN_MAP})}
    assert "802.1Q" in d.problems[0].message


def test_switch_without_tunnel_key(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    ls = db.add_ls("nokey")
    db.bind(port, 0, ls)
    d = node(db)
    assert d.switches == {} and d.state == NodeState("hv")
    assert faults(d) == {("Physical_Port", port): frozenset({INVALID_VLAN_MAP})}
    assert "no tunnel_key" in d.problems[0].message


def test_vni_clash_drops_both(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    p1, p2, p3 = (db.add_port(ps, n) for n in ("p1", "p2", "p3"))
    a, b, c = db.add_ls("a", 5), db.add_ls("b", 5), db.add_ls("c", 6)
    db.bind(p1, 0, a)
    db.bind(p2, 0, b)
    db.bind(p3, 0, c)
    d = node(db)
    assert set(d.switches) == {c}
    assert faults(d) == {
        ("Physical_Port", p1): frozenset({INVALID_VLAN_MAP}),
        ("Physical_Port", p2): frozenset({INVALID_VLAN_MAP}),
    }
    assert all("share tunnel_key 5" in p.message for p in d.problems)


def test_vlan_clash_between_rows_of_one_port(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    r1, r2 = db.add_port(ps, "p1"), db.add_port(ps, "p1")
    a, b = db.add_ls("a", 5), db.add_ls("b", 6)
    db.bind(r1, 0, a)
    db.bind(r2, 0, b)
    db.bind(r1, 7, a)
    db.bind(r2, 7, a)  # the same binding twice is no clash
    d = node(db)
    assert d.bindings == {Binding("p1", 7): a}
    assert set(d.ports) == {"p1"} and set(d.ports["p1"]) == {r1, r2}
    assert faults(d) == {
        ("Physical_Port", r1): frozenset({INVALID_VLAN_MAP}),
        ("Physical_Port", r2): frozenset({INVALID_VLAN_MAP}),
    }


def test_bad_port_names_and_reserved_vlan(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    long = db.add_port(ps, "a-name-far-too-long")
    ours = db.add_port(ps, "hvb7")
    ok = db.add_port(ps, "p1")
    ls = db.add_ls("ls", 7)
    for p in (long, ours, ok):
        db.bind(p, 0, ls)
    db.bind(ok, 4095, ls)
    d = node(db)
    assert d.bindings == {Binding("p1", 0): ls}
    assert faults(d) == {
        ("Physical_Port", long): frozenset({UNSPECIFIED_FAULT}),
        ("Physical_Port", ours): frozenset({UNSPECIFIED_FAULT}),
        ("Physical_Port", ok): frozenset({INVALID_VLAN_MAP}),
    }


def test_no_tunnel_ip(db: VtepDb) -> None:
    ps = db.add_ps(PS, [])
    port = db.add_port(ps, "p1")
    db.bind(port, 0, db.add_ls("ls", 7))
    d = node(db)
    assert d.local_ip is None and d.switches == {} and d.state == NodeState("hv")
    assert faults(d) == {("Physical_Switch", ps): frozenset({UNSPECIFIED_FAULT})}


def test_bad_remote_entries_are_skipped(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    ls = db.add_ls("ls", 7)
    db.bind(port, 0, ls)
    db.add_ucast_remote(ls, "not-a-mac", "198.51.100.1")
    db.add_ucast_remote(ls, "01:00:5e:00:00:01", "198.51.100.1")  # group MAC in ucast
    db.add_ucast_remote(ls, "00:00:00:00:00:01", "not-an-ip")
    db.add_ucast_remote(ls, "00:00:00:00:00:02", "198.51.100.2", key=99)  # per-locator key
    db.add_ucast_remote(ls, "00:00:00:00:00:03", "198.51.100.3", key=7)  # agrees: fine
    db.add_ucast_remote(ls, "00:00:00:00:00:04", "198.51.100.5")
    db.add_ucast_remote(ls, "00:00:00:00:00:04", "198.51.100.4")  # twice: the lower wins
    db.add_mcast_remote(ls, "00:00:00:00:00:09", ["198.51.100.1"])  # unicast in mcast
    d = node(db)
    assert d.switches[ls].ucast == {
        ("00:00:00:00:00:03", "198.51.100.3"),
        ("00:00:00:00:00:04", "198.51.100.4"),
    }
    assert d.switches[ls].mcast == frozenset() and d.switches[ls].flood == frozenset()
    keys = sorted(p.key.split()[0] for p in d.problems)
    assert keys == [
        "locator-ip", "locator-key", "mcast-mac", "ucast-mac", "ucast-mcast", "ucast-twice",
    ]  # fmt: skip
    # only locator problems are switch faults; bad MACs are logged
    assert faults(d) == {("Physical_Switch", ps): frozenset({UNSPECIFIED_FAULT})}


def test_dangling_references_do_not_crash(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    ls = db.add_ls("ls", 7)
    db.bind(port, 0, ls)
    db.add_ucast_remote(ls, "00:00:00:00:00:01", "198.51.100.1")
    db.add_mcast_remote(ls, "unknown-dst", ["198.51.100.1"])
    # a replica can be caught between updates: drop rows behind the engine's back
    tables = {t: dict(rows) for t, rows in db.tables.items()}
    tables["Physical_Locator"] = {}
    tables["Physical_Locator_Set"] = {}
    tables["Physical_Port"][port] = dict(tables["Physical_Port"][port])
    tables["Physical_Port"][port]["vlan_bindings"] = (
        (0, ls),
        (3, "0" * 8 + "-0000-0000-0000-" + "0" * 12),
    )
    tables["Physical_Switch"][ps] = dict(tables["Physical_Switch"][ps])
    tables["Physical_Switch"][ps]["ports"] = (port, "1" * 8 + "-0000-0000-0000-" + "0" * 12)
    d = compute(tables, PS, "hv")
    assert d.switches[ls].ucast == frozenset() and d.switches[ls].flood == frozenset()
    keys = sorted(p.key.split()[0] for p in d.problems)
    assert keys == ["dangling-locator", "dangling-ls", "dangling-port", "dangling-set"]


def test_problem_keys_are_stable(db: VtepDb) -> None:
    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    db.bind(port, 0, db.add_ls("nokey"))
    first = node(db).problems
    db.add_ls("unrelated", 3)
    assert node(db).problems == first


def test_many_remote_macs_fast(db: VtepDb) -> None:
    import time

    ps = db.add_ps(PS, [TIP])
    port = db.add_port(ps, "p1")
    ls = db.add_ls("ls", 7)
    db.bind(port, 0, ls)
    loc = db.add_ucast_remote(ls, "00:00:00:00:00:01", "198.51.100.1")
    loc_uuid = db.rows("Ucast_Macs_Remote")[loc]["locator"][0]
    ops = [
        {
            "op": "insert",
            "table": "Ucast_Macs_Remote",
            "row": {
                "MAC": f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                "logical_switch": ["uuid", ls],
                "locator": ["uuid", loc_uuid],
            },
        }
        for i in range(20000)
    ]
    db.transact(*ops)
    t0 = time.perf_counter()
    d = node(db)
    elapsed = time.perf_counter() - t0
    assert len(d.state.fdb) == 20001
    assert elapsed < 2.0, f"20k remote MACs took {elapsed:.2f}s"
