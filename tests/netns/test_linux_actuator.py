"""The Linux actuator against a real kernel, in namespaces made for each test.

What is proven here: a plan applied by `LinuxDataPlane` builds exactly the desired state
(read back by our reader and cross-checked with iproute2's own output), re-applying is
harmless, a restarted agent finds nothing to do, foreign devices are left alone, and two
VTEP namespaces joined by an underlay veth really forward host traffic over VXLAN with
the static fdb entries we program, keep two logical switches with the same host IPs apart,
report learned MACs and fdb events, and stop forwarding when the state is removed.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from nshelp import Namespaces, kernel_has_8021q

from hwvtep.agent.linux import FdbEvent, LinuxDataPlane, NetlinkWatcher
from hwvtep.agent.model import (
    FLOOD_MAC,
    Binding,
    LearnedMac,
    LogicalSwitch,
    NodeState,
)
from hwvtep.agent.plan import CreateVlan, CreateVxlan, DeleteLink, effective, plan

pytestmark = pytest.mark.netns

P = "hv"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def converge(ns: str, desired: NodeState, ports: list[str]) -> NodeState:
    async with await LinuxDataPlane.open(ns) as dp:
        actual = await dp.read_actual(P, ports)
        failures = await dp.apply(plan(desired, actual))
        assert failures == []
        after = await dp.read_actual(P, ports)
    assert plan(desired, after) == []
    return after


def ping(spaces: Namespaces, ns: str, ip: str, tries: int = 2) -> bool:
    return any(spaces.exec(ns, "ping", "-c1", "-W1", ip).returncode == 0 for _ in range(tries))


def links_of(spaces: Namespaces, ns: str) -> set[str]:
    out = spaces.ip(ns, "-o", "link", "show").stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


# --- one node --------------------------------------------------------------------------------


def test_apply_builds_desired_and_removal_leaves_only_foreign(netns: Namespaces) -> None:
    ns = netns.make("node")
    for port in ("p1", "p2", "p3"):
        netns.veth(ns, port, ns, port + "h")
    # somebody else's devices, which must survive everything below
    netns.ip(ns, "link", "add", "br-ext", "type", "bridge")
    netns.ip(ns, "link", "set", "p3", "master", "br-ext")
    netns.ip(ns, "link", "add", "vx-ext", "type", "vxlan", "id", "999", "dstport", "4789")
    netns.ip(ns, "link", "add", "hvb9", "type", "bridge")  # our naming, but not our mark

    desired = NodeState.build(
        P,
        [
            LogicalSwitch(
                100,
                "10.200.0.1",
                frozenset({Binding("p1")}),
                ucast={"00:00:5e:00:53:01": "10.200.0.2", "00:00:5e:00:53:02": "10.200.0.3"},
                flood={"10.200.0.2", "10.200.0.3"},
                mcast={"01:00:5e:00:00:fb": ["10.200.0.2", "10.200.0.3"]},
            ),
            LogicalSwitch(
                16777215,
                "fd00::1",
                frozenset({Binding("p2")}),
                ucast={"00:00:5e:00:53:09": "fd00::2"},
                flood={"fd00::2"},
            ),
            # wants p3, which br-ext holds: blocked, not stolen
            LogicalSwitch(300, "10.200.0.1", frozenset({Binding("p3")})),
        ],
    )

    async def build() -> None:
        async with await LinuxDataPlane.open(ns) as dp:
            actual = await dp.read_actual(P, ["p1", "p2", "p3"])
            ops = plan(desired, actual)
            assert await dp.apply(ops) == []
            assert await dp.apply(ops) == [], "re-applying a plan must be harmless"
            after = await dp.read_actual(P, ["p1", "p2", "p3"])
            assert after == effective(desired, actual)
            assert after.logical_switches()[100] == desired.logical_switches()[100]
            assert after.logical_switches()[16777215] == desired.logical_switches()[16777215]
        # a restarted agent adopts everything and has nothing to do
        async with await LinuxDataPlane.open(ns) as dp:
            assert plan(desired, await dp.read_actual(P, ["p1", "p2", "p3"])) == []

    run(build())

    # iproute2's view agrees with ours
    vx = netns.ip(ns, "-d", "-o", "link", "show", "hvx100").stdout
    assert "vxlan id 100 local 10.200.0.1 " in vx and "dstport 4789" in vx
    assert "nolearning" in vx and "master hvb100" in vx and "alias hwvtep:hv" in vx
    vx6 = netns.ip(ns, "-d", "-o", "link", "show", "hvx16777215").stdout
    assert "vxlan id 16777215 local fd00::1 " in vx6
    fdb = netns.exec(ns, "bridge", "fdb", "show", "dev", "hvx100", check=True).stdout
    for line in (
        "00:00:00:00:00:00 dst 10.200.0.2 self permanent",
        "00:00:00:00:00:00 dst 10.200.0.3 self permanent",
        "00:00:5e:00:53:01 dst 10.200.0.2 self permanent",
        "01:00:5e:00:00:fb dst 10.200.0.3 self permanent",
    ):
        assert line in fdb
    assert "master hvb100" in netns.ip(ns, "-o", "link", "show", "p1").stdout
    assert "master br-ext" in netns.ip(ns, "-o", "link", "show", "p3").stdout

    async def remove() -> None:
        async with await LinuxDataPlane.open(ns) as dp:
            actual = await dp.read_actual(P, ["p1", "p2", "p3"])
            ops = plan(NodeState(P), actual)
            assert all(not isinstance(op, DeleteLink) or op.name != "hvb9" for op in ops)
            assert await dp.apply(ops) == []
            left = await dp.read_actual(P, ["p1", "p2", "p3"])
            assert (left.bridges, left.vxlans, left.vlans, left.fdb) == (frozenset(),) * 4
            assert {p.name: p.master for p in left.ports} == {
                "p1": None,
                "p2": None,
                "p3": "br-ext",
            }

    run(remove())
    assert links_of(netns, ns) == {
        "lo", "p1", "p1h", "p2", "p2h", "p3", "p3h", "br-ext", "vx-ext", "hvb9",
    }  # fmt: skip
    assert "master br-ext" in netns.ip(ns, "-o", "link", "show", "p3").stdout


def test_adopts_an_unmarked_leftover_and_refuses_a_squatter(netns: Namespaces) -> None:
    ns = netns.make("node")
    netns.ip(ns, "link", "add", "hvb7", "type", "bridge")  # as if we crashed before marking
    netns.ip(ns, "link", "add", "hvx7", "type", "bridge")  # right name, wrong kind
    netns.ip(ns, "link", "add", "hvb8", "type", "bridge")
    netns.ip(ns, "link", "set", "hvb8", "alias", "hwvtep:other")

    async def go() -> None:
        async with await LinuxDataPlane.open(ns) as dp:
            actual = await dp.read_actual(P, [])
            assert actual.bridges == frozenset()  # none of them is (yet) ours
            desired = NodeState.build(
                P, [LogicalSwitch(7, "10.0.0.1"), LogicalSwitch(8, "10.0.0.1")]
            )
            failures = await dp.apply(plan(desired, actual))
            by_name = {f.op.name: f for f in failures if hasattr(f.op, "name")}
            assert set(by_name) == {"hvx7", "hvb8", "hvx8"}
            assert by_name["hvx7"].errno == errno.EEXIST and "not ours" in by_name["hvx7"].message
            assert "hwvtep:other" in by_name["hvb8"].message
            after = await dp.read_actual(P, [])
            assert {b.name for b in after.bridges} == {"hvb7"}
            refused = await dp.apply([DeleteLink("hvx7")])
            assert len(refused) == 1 and "no hwvtep mark" in refused[0].message

    run(go())
    assert "alias hwvtep:hv" in netns.ip(ns, "-o", "link", "show", "hvb7").stdout
    assert {"hvx7", "hvb8"} <= links_of(netns, ns)


def test_missing_namespace_is_not_created() -> None:
    with pytest.raises(FileNotFoundError):
        run(LinuxDataPlane.open("hwt-no-such-namespace"))


def test_without_8021q_a_tagged_binding_fails_alone(netns: Namespaces) -> None:
    if kernel_has_8021q(netns):
        pytest.skip("this kernel has 802.1Q: test_vlan_tagged_attachment covers it")
    ns = netns.make("node")
    netns.veth(ns, "p1", ns, "p1h")
    desired = NodeState.build(
        P, [LogicalSwitch(5, "10.0.0.1", frozenset({Binding("p1", 10)}), flood={"10.0.0.2"})]
    )

    async def go() -> None:
        async with await LinuxDataPlane.open(ns) as dp:
            actual = await dp.read_actual(P, ["p1"])
            failures = await dp.apply(plan(desired, actual))
            assert [(type(f.op), f.errno) for f in failures] == [(CreateVlan, errno.EOPNOTSUPP)]
            assert "802.1Q" in failures[0].message
            after = await dp.read_actual(P, ["p1"])
            assert after.vlans == frozenset()
            assert after.fdb == desired.fdb and after.vxlans == desired.vxlans

    run(go())


# --- two VTEPs --------------------------------------------------------------------------------


@dataclass
class Lab:
    """vtep1 and vtep2 joined by an underlay veth; hosts a (LS red) and b (LS blue) on each."""

    spaces: Namespaces
    vtep1: str
    vtep2: str
    h1a: str
    h1b: str
    h2a: str
    h2b: str


UNDERLAY = {1: "10.200.0.1", 2: "10.200.0.2"}
RED, BLUE = 100, 200


def make_lab(spaces: Namespaces, tagged_h1a: int = 0) -> Lab:
    v1, v2 = spaces.make("vtep1"), spaces.make("vtep2")
    spaces.veth(v1, "u1", v2, "u2")
    spaces.up(v1, "u1", UNDERLAY[1] + "/24")
    spaces.up(v2, "u2", UNDERLAY[2] + "/24")
    hosts = {}
    for i, vtep in ((1, v1), (2, v2)):
        for letter, port in (("a", "p1"), ("b", "p2")):
            h = spaces.make(f"h{i}{letter}")
            hosts[f"h{i}{letter}"] = h
            spaces.veth(vtep, port, h, "eth0")
            # the same host addresses on both logical switches
            addr = f"10.10.0.{i}/24"
            if tagged_h1a and (i, letter) == (1, "a"):
                spaces.up(h, "eth0")
                spaces.ip(h, "link", "add", "link", "eth0", "name", "eth0.v",
                          "type", "vlan", "id", str(tagged_h1a))  # fmt: skip
                spaces.up(h, "eth0.v", addr)
            else:
                spaces.up(h, "eth0", addr)
    return Lab(spaces, v1, v2, hosts["h1a"], hosts["h1b"], hosts["h2a"], hosts["h2b"])


def host_mac(lab: Lab, host: str) -> str:
    dev = "eth0.v" if "eth0.v" in links_of(lab.spaces, host) else "eth0"
    return lab.spaces.mac(host, dev)


def vtep_state(
    lab: Lab, me: int, switches: dict[int, list[str]], *, flood: bool = True, ucast: bool = True,
    tags: dict[tuple[int, str], int] | None = None,
) -> NodeState:  # fmt: skip
    """What a controller would send VTEP `me` for the logical switches given as
    {vni: [host letters bound]}: bind p1/p2, remote MACs of the other side's hosts."""
    other = 3 - me
    port_of = {"a": "p1", "b": "p2"}
    out = []
    for vni, letters in switches.items():
        remote_macs = {
            host_mac(lab, getattr(lab, f"h{other}{letter}")): UNDERLAY[other] for letter in letters
        }
        out.append(
            LogicalSwitch(
                vni,
                UNDERLAY[me],
                frozenset(Binding(port_of[x], (tags or {}).get((me, x), 0)) for x in letters),
                ucast=remote_macs if ucast else {},
                flood={UNDERLAY[other]} if flood else set(),
            )
        )
    return NodeState.build(P, out)


def neighbour_mac(lab: Lab, host: str, ip: str) -> str:
    out = lab.spaces.ip(host, "neigh", "show", ip).stdout.split()
    return out[out.index("lladdr") + 1]


def test_two_vteps_forward_isolate_learn_and_unprogram(netns: Namespaces) -> None:
    lab = make_lab(netns)
    ports = ["p1", "p2"]

    async def go() -> None:
        async with await LinuxDataPlane.open(lab.vtep1) as dp1:
            watcher: NetlinkWatcher = await dp1.watch()
            try:
                # red only: h1a <-> h2a works, blue hosts are not connected at all
                await converge(lab.vtep1, vtep_state(lab, 1, {RED: ["a"]}), ports)
                await converge(lab.vtep2, vtep_state(lab, 2, {RED: ["a"]}), ports)
                assert ping(netns, lab.h1a, "10.10.0.2")
                assert not ping(netns, lab.h1b, "10.10.0.2", tries=1)
                # blue too, with the very same addresses: each host reaches its own peer
                await converge(lab.vtep1, vtep_state(lab, 1, {RED: ["a"], BLUE: ["b"]}), ports)
                await converge(lab.vtep2, vtep_state(lab, 2, {RED: ["a"], BLUE: ["b"]}), ports)
                assert ping(netns, lab.h1b, "10.10.0.2")
                assert ping(netns, lab.h1a, "10.10.0.2")
                assert neighbour_mac(lab, lab.h1a, "10.10.0.2") == host_mac(lab, lab.h2a)
                assert neighbour_mac(lab, lab.h1b, "10.10.0.2") == host_mac(lab, lab.h2b)
                assert neighbour_mac(lab, lab.h2b, "10.10.0.1") == host_mac(lab, lab.h1b)

                # learned MACs: local hosts on their ports, never the remote ones
                learned = await dp1.learned_macs(P)
                assert LearnedMac(f"{P}b{RED}", "p1", host_mac(lab, lab.h1a)) in learned
                assert LearnedMac(f"{P}b{BLUE}", "p2", host_mac(lab, lab.h1b)) in learned
                remote = {host_mac(lab, lab.h2a), host_mac(lab, lab.h2b)}
                assert not any(lm.mac in remote for lm in learned)
                by_binding = (await dp1.read_actual(P, ports)).learned_by_binding()
                assert host_mac(lab, lab.h1a) in by_binding[(RED, Binding("p1"))]

                # the watcher saw the bridge learn h1a's MAC on p1
                events = []
                for _ in range(20):
                    events += await watcher.next(timeout=0.2)
                    if any(
                        isinstance(e, FdbEvent) and e.learned and e.ifname == "p1" for e in events
                    ):
                        break
                learns = [e for e in events if isinstance(e, FdbEvent) and e.learned]
                assert any(
                    e.action == "add" and e.ifname == "p1" and e.mac == host_mac(lab, lab.h1a)
                    for e in learns
                ), learns
                counters = await dp1.counters(["p1", "p2", "nonexistent"])
                assert set(counters) == {"p1", "p2"}
                assert counters["p1"].rx_packets > 0 and counters["p1"].tx_packets > 0
            finally:
                watcher.close()

        # unprogram red on vtep1: red stops, blue goes on, red's devices are gone
        await converge(lab.vtep1, vtep_state(lab, 1, {BLUE: ["b"]}), ports)
        assert not ping(netns, lab.h1a, "10.10.0.2", tries=1)
        assert ping(netns, lab.h1b, "10.10.0.2")
        assert not {f"{P}b{RED}", f"{P}x{RED}"} & links_of(netns, lab.vtep1)
        # and everything
        await converge(lab.vtep1, NodeState(P), ports)
        assert not ping(netns, lab.h1b, "10.10.0.2", tries=1)
        assert links_of(netns, lab.vtep1) == {"lo", "u1", "p1", "p2"}

    run(go())


def test_static_unicast_entries_alone_carry_traffic(netns: Namespaces) -> None:
    """No flood list and static ARP on the hosts: only the remote MAC entries forward."""
    lab = make_lab(netns)
    ports = ["p1", "p2"]
    netns.ip(lab.h1a, "neigh", "add", "10.10.0.2", "lladdr", host_mac(lab, lab.h2a), "dev", "eth0")
    netns.ip(lab.h2a, "neigh", "add", "10.10.0.1", "lladdr", host_mac(lab, lab.h1a), "dev", "eth0")

    async def go() -> None:
        await converge(lab.vtep1, vtep_state(lab, 1, {RED: ["a"]}, flood=False), ports)
        await converge(lab.vtep2, vtep_state(lab, 2, {RED: ["a"]}, flood=False), ports)
        assert ping(netns, lab.h1a, "10.10.0.2")
        state = await converge(
            lab.vtep1, vtep_state(lab, 1, {RED: ["a"]}, flood=False, ucast=False), ports
        )
        assert state.fdb == frozenset()
        assert not ping(netns, lab.h1a, "10.10.0.2", tries=1)
        # moving the entry to a wrong remote breaks it too; back to the right one heals it
        wrong = NodeState.build(
            P,
            [
                LogicalSwitch(
                    RED,
                    UNDERLAY[1],
                    frozenset({Binding("p1")}),
                    ucast={host_mac(lab, lab.h2a): "10.200.0.99"},
                )
            ],
        )
        await converge(lab.vtep1, wrong, ports)
        assert not ping(netns, lab.h1a, "10.10.0.2", tries=1)
        async with await LinuxDataPlane.open(lab.vtep1) as dp:
            ops = plan(
                vtep_state(lab, 1, {RED: ["a"]}, flood=False), await dp.read_actual(P, ports)
            )
            assert [type(op).__name__ for op in ops] == ["FdbReplace"]
            assert await dp.apply(ops) == []
        assert ping(netns, lab.h1a, "10.10.0.2")

    run(go())


def test_vlan_tagged_attachment(netns: Namespaces) -> None:
    if not kernel_has_8021q(netns):
        pytest.skip(
            "SKIPPED LOUDLY: this kernel has no 802.1Q support (CONFIG_VLAN_8021Q), so VLAN "
            "sub-interfaces cannot be created; test_without_8021q_a_tagged_binding_fails_alone "
            "checks the failure is reported instead"
        )
    lab = make_lab(netns, tagged_h1a=42)
    ports = ["p1", "p2"]

    async def go() -> None:
        s1 = vtep_state(lab, 1, {RED: ["a"]}, tags={(1, "a"): 42})
        state = await converge(lab.vtep1, s1, ports)
        assert {(v.name, v.port, v.vlan, v.master) for v in state.vlans} == {
            ("p1.42", "p1", 42, f"{P}b{RED}")
        }
        await converge(lab.vtep2, vtep_state(lab, 2, {RED: ["a"]}), ports)
        assert ping(netns, lab.h1a, "10.10.0.2")
        async with await LinuxDataPlane.open(lab.vtep1) as dp:
            learned = await dp.learned_macs(P)
        assert LearnedMac(f"{P}b{RED}", "p1.42", host_mac(lab, lab.h1a)) in learned
        await converge(lab.vtep1, NodeState(P), ports)
        assert "p1.42" not in links_of(netns, lab.vtep1)
        assert not ping(netns, lab.h1a, "10.10.0.2", tries=1)

    run(go())


def test_flood_entries_are_appended_per_remote(netns: Namespaces) -> None:
    ns = netns.make("node")
    base = LogicalSwitch(5, "10.0.0.1", flood={"10.0.0.2"})

    async def go() -> None:
        await converge(ns, NodeState.build(P, [base]), [])
        grown = LogicalSwitch(5, "10.0.0.1", flood={"10.0.0.2", "10.0.0.3", "10.0.0.4"})
        after = await converge(ns, NodeState.build(P, [grown]), [])
        assert {e.dst for e in after.fdb if e.mac == FLOOD_MAC} == {
            "10.0.0.2",
            "10.0.0.3",
            "10.0.0.4",
        }
        async with await LinuxDataPlane.open(ns) as dp:
            shrunk = NodeState.build(P, [LogicalSwitch(5, "10.0.0.1", flood={"10.0.0.4"})])
            ops = plan(shrunk, await dp.read_actual(P, []))
            assert not any(isinstance(op, CreateVxlan | DeleteLink) for op in ops)
            assert await dp.apply(ops) == []
            assert {e.dst for e in (await dp.read_actual(P, [])).fdb} == {"10.0.0.4"}

    run(go())
