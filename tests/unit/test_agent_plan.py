"""The reconcile model and planner against a pure simulation of the Linux data plane.

`Kernel` below plays the kernel: links with kind, master and admin state, and the vxlan
fdb. It rejects what Linux rejects (a master that does not exist, two vxlans on one VNI,
a sub-interface on a missing port, an fdb entry on a missing device, `replace` on a
non-unicast MAC) and, to prove the plan minimal and polite, also what Linux would accept
but a good plan never does: no-op changes, touching foreign links.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwvtep.agent.model import (
    FLOOD_MAC,
    IFNAMSIZ_MAX,
    VIA_BPF,
    Binding,
    Bridge,
    FdbEntry,
    LearnedMac,
    LogicalSwitch,
    ModelError,
    Naming,
    NodeState,
    Port,
    VlanIf,
    Vxlan,
    is_multicast_mac,
    subif_name,
)
from hwvtep.agent.plan import (
    CreateBridge,
    CreateVlan,
    CreateVxlan,
    DeleteLink,
    FdbAppend,
    FdbDelete,
    FdbReplace,
    Op,
    SetMaster,
    SetState,
    blocked,
    effective,
    plan,
    target,
)

PREFIX = "hv"
NAMING = Naming(PREFIX)
MARK = NAMING.mark
UNIVERSE = ("p1", "p2", "p3", "enp0s31f6port9")
FOREIGN = ("br-ext", "vx-ext", "p1.99")


class SimError(AssertionError):
    pass


@dataclass
class Link:
    kind: str  # bridge | vxlan | vlan | port
    up: bool = True
    master: str | None = None
    alias: str = ""
    vni: int = 0
    local_ip: str = ""
    dstport: int = 4789
    learning: bool = False
    parent: str = ""
    tag: int = 0


@dataclass
class Kernel:
    links: dict[str, Link] = field(default_factory=dict)
    fdb: set[tuple[str, str, str]] = field(default_factory=set)

    def owned(self, name: str) -> bool:
        link = self.links[name]
        if link.alias != MARK:
            return False
        if link.kind == "bridge":
            return NAMING.vni_of_bridge(name) is not None
        if link.kind == "vxlan":
            return NAMING.vni_of_vxlan(name) is not None
        return link.kind == "vlan"

    def need(self, name: str | None, kind: str | None = None) -> Link:
        if name is None or name not in self.links:
            raise SimError(f"no such device {name}")
        link = self.links[name]
        if kind is not None and link.kind != kind:
            raise SimError(f"{name} is a {link.kind}, not a {kind}")
        return link

    def touchable(self, name: str) -> Link:
        link = self.need(name)
        if link.kind == "port":
            if link.master is not None and not self.owned(link.master):
                raise SimError(f"touched port {name} held by foreign {link.master}")
        elif not self.owned(name):
            raise SimError(f"touched foreign {link.kind} {name}")
        return link

    def create(self, name: str, link: Link) -> None:
        if name in self.links:
            raise SimError(f"{name} exists")
        if link.master is not None:
            self.need(link.master, "bridge")
        self.links[name] = link

    def step(self, op: Op) -> None:
        match op:
            case CreateBridge(name, alias, up):
                self.create(name, Link("bridge", up, alias=alias))
            case CreateVxlan(name, vni, local_ip, dstport, learning, master, alias, up):
                for other in self.links.values():
                    if other.kind == "vxlan" and (other.vni, other.dstport) == (vni, dstport):
                        raise SimError(f"VNI {vni} in use")
                self.create(
                    name, Link("vxlan", up, master, alias, vni, local_ip, dstport, learning)
                )
            case CreateVlan(name, port, vlan, master, alias, up):
                self.need(port, "port")
                for other in self.links.values():
                    if other.kind == "vlan" and (other.parent, other.tag) == (port, vlan):
                        raise SimError(f"{port} already has VLAN {vlan}")
                self.create(name, Link("vlan", up, master, alias, parent=port, tag=vlan))
            case DeleteLink(name):
                link = self.touchable(name)
                if link.kind == "port":
                    raise SimError(f"deleted physical port {name}")
                del self.links[name]
                for other in self.links.values():
                    if other.master == name:
                        other.master = None
                self.fdb = {e for e in self.fdb if e[0] != name}
            case SetMaster(name, master):
                link = self.touchable(name)
                if link.kind == "bridge":
                    raise SimError("bridge into bridge")
                if master is not None:
                    self.need(master, "bridge")
                if link.master == master:
                    raise SimError(f"no-op SetMaster {name}")
                link.master = master
            case SetState(name, up):
                link = self.touchable(name)
                if link.up == up:
                    raise SimError(f"no-op SetState {name}")
                link.up = up
            case FdbAppend(dev, mac, dst):
                self.touchable(dev)
                self.need(dev, "vxlan")
                if (dev, mac, dst) in self.fdb:
                    raise SimError(f"no-op append {mac} {dst}")
                self.fdb.add((dev, mac, dst))
            case FdbReplace(dev, mac, dst):
                self.touchable(dev)
                self.need(dev, "vxlan")
                if mac == FLOOD_MAC or is_multicast_mac(mac):
                    raise SimError("the kernel only replaces unicast vxlan fdb entries")
                olds = [e for e in self.fdb if e[:2] == (dev, mac)]
                if len(olds) != 1 or olds[0][2] == dst:
                    raise SimError(f"replace needs one other remote, have {olds}")
                self.fdb.discard(olds[0])
                self.fdb.add((dev, mac, dst))
            case FdbDelete(dev, mac, dst):
                self.touchable(dev)
                if (dev, mac, dst) not in self.fdb:
                    raise SimError(f"deleting absent fdb {mac} {dst}")
                self.fdb.discard((dev, mac, dst))
            case _:
                raise SimError(f"unknown op {op}")

    def read(self, ports: tuple[str, ...] = UNIVERSE) -> NodeState:
        """What linux.read_actual would return."""
        owned_br = {n for n, lk in self.links.items() if lk.kind == "bridge" and self.owned(n)}
        return NodeState(
            PREFIX,
            bridges=frozenset(Bridge(n, self.links[n].up) for n in owned_br),
            vxlans=frozenset(
                Vxlan(n, lk.vni, lk.local_ip, lk.master, lk.dstport, lk.learning, lk.up)
                for n, lk in self.links.items()
                if lk.kind == "vxlan" and self.owned(n)
            ),
            vlans=frozenset(
                VlanIf(n, lk.parent, lk.tag, lk.master, lk.up)
                for n, lk in self.links.items()
                if lk.kind == "vlan" and self.owned(n)
            ),
            ports=frozenset(
                Port(n, lk.master, lk.up)
                for n, lk in self.links.items()
                if lk.kind == "port" and (n in ports or lk.master in owned_br)
            ),
            fdb=frozenset(FdbEntry(*e) for e in self.fdb),
        )

    def run(self, ops: list[Op]) -> Kernel:
        for op in ops:
            self.step(op)
        return self


def kernel_with_ports(ports: tuple[str, ...] = UNIVERSE) -> Kernel:
    k = Kernel()
    k.links["br-ext"] = Link("bridge")
    for p in ports:
        k.links[p] = Link("port", up=False)
    return k


def converge(desired: NodeState, k: Kernel) -> NodeState:
    actual = k.read()
    ops = plan(desired, actual)
    after = k.run(ops).read()
    assert plan(desired, after) == [], "one plan must be enough"
    return after


def assert_realised(desired: NodeState, actual_before: NodeState, after: NodeState) -> None:
    want = effective(desired, actual_before)
    assert after.bridges == want.bridges
    assert after.vxlans == want.vxlans
    assert after.vlans == want.vlans
    assert after.fdb == want.fdb
    after_ports = {p.name: p for p in after.ports}
    for p in want.ports:
        assert after_ports[p.name] == p
    wanted = {p.name for p in want.ports}
    for p in after.ports:
        if p.name not in wanted:
            assert p.master not in {b.name for b in after.bridges}


# --- hypothesis strategies ----------------------------------------------------------------

VNIS = (1, 2, 300, 16777215)
IPS = ("10.0.0.1", "10.0.0.2", "10.9.9.9", "fd00::1")
UMACS = ("00:00:5e:00:53:01", "00:00:5e:00:53:02", "02:aa:bb:cc:dd:ee")
MMACS = ("01:00:5e:00:00:fb", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff")
TAGS = (0, 10, 4094)


@st.composite
def switches(draw: st.DrawFn) -> list[LogicalSwitch]:
    vnis = draw(st.lists(st.sampled_from(VNIS), unique=True, max_size=3))
    all_bindings = [Binding(p, t) for p in UNIVERSE for t in TAGS]
    taken: set[Binding] = set()
    out = []
    for vni in vnis:
        bindings = set(draw(st.lists(st.sampled_from(all_bindings), max_size=4))) - taken
        taken |= bindings
        out.append(
            LogicalSwitch(
                vni=vni,
                local_ip=draw(st.sampled_from(IPS[:2])),
                bindings=frozenset(bindings),
                ucast=draw(st.dictionaries(st.sampled_from(UMACS), st.sampled_from(IPS))),
                flood=frozenset(draw(st.sets(st.sampled_from(IPS)))),
                mcast=frozenset(
                    draw(st.sets(st.tuples(st.sampled_from(MMACS), st.sampled_from(IPS))))
                ),
                dstport=draw(st.sampled_from((4789, 4789, 8472))),
            )
        )
    return out


@st.composite
def desired_states(draw: st.DrawFn) -> NodeState:
    return NodeState.build(PREFIX, draw(switches()))


@st.composite
def kernels(draw: st.DrawFn) -> Kernel:
    """A messy kernel: partial, stale, hand-edited, with foreign devices around."""
    k = Kernel()
    k.links["br-ext"] = Link("bridge")
    k.links["vx-ext"] = Link("vxlan", vni=999, local_ip="10.0.0.1")
    present = draw(st.lists(st.sampled_from(UNIVERSE), unique=True))
    bridges = [NAMING.bridge(v) for v in draw(st.sets(st.sampled_from(VNIS)))]
    for b in bridges:
        k.links[b] = Link("bridge", up=draw(st.booleans()), alias=MARK)
    masters = st.sampled_from([None, "br-ext", *bridges])
    for p in present:
        k.links[p] = Link("port", up=draw(st.booleans()), master=draw(masters))
    if "p1" in present:
        k.links["p1.99"] = Link("vlan", master="br-ext", parent="p1", tag=99)
    used: set[tuple[int, int]] = set()
    for vni in draw(st.sets(st.sampled_from(VNIS))):
        real_vni = draw(st.sampled_from((vni, vni, vni, 77)))
        dstport = draw(st.sampled_from((4789, 4789, 8472)))
        if (real_vni, dstport) in used or real_vni == 999:
            continue
        used.add((real_vni, dstport))
        name = NAMING.vxlan(vni)
        k.links[name] = Link(
            "vxlan",
            up=draw(st.booleans()),
            master=draw(masters),
            alias=MARK,
            vni=real_vni,
            local_ip=draw(st.sampled_from(IPS[:2])),
            dstport=dstport,
            learning=draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 4))):
            mac = draw(st.sampled_from((FLOOD_MAC, *UMACS, *MMACS)))
            k.fdb.add((name, mac, draw(st.sampled_from(IPS))))
    for p in present:
        for tag in draw(st.sets(st.sampled_from((10, 20, 4094)))):
            k.links[subif_name(p, tag)] = Link(
                "vlan", draw(st.booleans()), draw(masters), MARK, parent=p, tag=tag
            )
    if present and draw(st.booleans()):
        # ours, but not what its name says (hand-made, or an old naming scheme)
        k.links.setdefault(
            subif_name(present[0], 10),
            Link("vlan", master=None, alias=MARK, parent=present[0], tag=11),
        )
    return k


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(desired_states(), kernels())
def test_plan_converges_any_kernel(desired: NodeState, k: Kernel) -> None:
    before = k.read()
    after = converge(desired, k)
    assert_realised(desired, before, after)
    assert all(k.links[f] is not None for f in FOREIGN if f in k.links)
    assert k.links["br-ext"].kind == "bridge" and k.links["vx-ext"].vni == 999


@settings(max_examples=100, deadline=None)
@given(desired_states())
def test_plan_from_scratch_builds_exactly_desired(desired: NodeState) -> None:
    k = kernel_with_ports()
    ops = plan(desired, k.read())
    assert not any(isinstance(op, DeleteLink | FdbDelete) for op in ops)
    after = k.run(ops).read()
    assert_realised(desired, desired, after)
    assert after.logical_switches() == desired.logical_switches()
    assert plan(desired, after) == []


@settings(max_examples=100, deadline=None)
@given(desired_states())
def test_plan_of_desired_against_itself_is_empty(desired: NodeState) -> None:
    assert plan(desired, desired) == []


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(desired_states(), desired_states())
def test_plan_between_two_programmed_states(old: NodeState, new: NodeState) -> None:
    k = kernel_with_ports()
    converge(old, k)
    before = k.read()
    ops = plan(new, before)
    deleted = {op.name for op in ops if isinstance(op, DeleteLink)}
    created = [op.name for op in ops if isinstance(op, CreateBridge | CreateVxlan | CreateVlan)]
    assert len(created) == len(set(created))
    # entries of a device that goes away are not removed one by one
    assert not any(isinstance(op, FdbDelete) and op.dev in deleted for op in ops)
    # deletions come before creations, fdb removals before any device deletion
    kinds = [type(op) for op in ops]
    if DeleteLink in kinds:
        first_delete = kinds.index(DeleteLink)
        assert FdbDelete not in kinds[first_delete:]
        assert not any(k in (CreateBridge, CreateVxlan, CreateVlan) for k in kinds[:first_delete])
    after = k.run(ops).read()
    assert_realised(new, before, after)
    assert plan(new, after) == []


@settings(max_examples=100, deadline=None)
@given(desired_states(), st.data())
def test_plan_is_minimal_when_only_things_are_missing(
    desired: NodeState, data: st.DataObject
) -> None:
    k = kernel_with_ports()
    converge(desired, k)
    full = k.read()
    # drop some fdb entries and bring some devices down: the plan only adds back
    dropped = data.draw(st.sets(st.sampled_from(sorted(full.fdb, key=repr)))) if full.fdb else set()
    k.fdb -= {(e.dev, e.mac, e.dst) for e in dropped}
    ops = plan(desired, k.read())
    assert not any(isinstance(op, DeleteLink | FdbDelete) for op in ops)
    assert len(ops) <= len(dropped)
    k.run(ops)
    assert k.read().fdb == full.fdb


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(desired_states(), kernels())
def test_plan_touches_only_owned_or_bound(desired: NodeState, k: Kernel) -> None:
    actual = k.read()
    allowed = {b.name for b in desired.bridges | actual.bridges}
    allowed |= {v.name for v in desired.vxlans | actual.vxlans}
    allowed |= {v.name for v in desired.vlans | actual.vlans}
    ours = {b.name for b in actual.bridges}
    allowed |= {p.name for p in actual.ports if p.master is None or p.master in ours}
    for op in plan(desired, actual):
        assert target(op) in allowed, op
        assert target(op) not in FOREIGN


# --- worked examples ----------------------------------------------------------------------


def ls(vni: int = 5, **kw: object) -> LogicalSwitch:
    kw.setdefault("local_ip", "10.0.0.1")
    return LogicalSwitch(vni=vni, **kw)  # type: ignore[arg-type]


def test_first_switch_exact_operations() -> None:
    desired = NodeState.build(
        PREFIX,
        [
            ls(
                5000,
                bindings={Binding("p1"), Binding("p2", 10)},
                ucast={"00:00:5E:00:53:01": "10.0.0.2"},
                flood={"10.0.0.2", "10.0.0.3"},
            )
        ],
    )
    ops = plan(desired, kernel_with_ports().read())
    assert ops == [
        CreateBridge("hvb5000", MARK),
        CreateVxlan("hvx5000", 5000, "10.0.0.1", 4789, False, "hvb5000", MARK),
        SetMaster("p1", "hvb5000"),
        SetState("p1", True),
        SetState("p2", True),
        CreateVlan("p2.10", "p2", 10, "hvb5000", MARK),
        FdbAppend("hvx5000", FLOOD_MAC, "10.0.0.2"),
        FdbAppend("hvx5000", FLOOD_MAC, "10.0.0.3"),
        FdbAppend("hvx5000", "00:00:5e:00:53:01", "10.0.0.2"),
    ]


def programmed(*switches_: LogicalSwitch) -> Kernel:
    k = kernel_with_ports()
    converge(NodeState.build(PREFIX, switches_), k)
    return k


def test_unicast_move_is_one_replace() -> None:
    k = programmed(ls(ucast={"00:00:5e:00:53:01": "10.0.0.2"}))
    new = NodeState.build(PREFIX, [ls(ucast={"00:00:5e:00:53:01": "10.0.0.3"})])
    assert plan(new, k.read()) == [FdbReplace("hvx5", "00:00:5e:00:53:01", "10.0.0.3")]


def test_flood_list_change_appends_and_deletes_one_remote() -> None:
    k = programmed(ls(flood={"10.0.0.2", "10.0.0.3"}))
    new = NodeState.build(PREFIX, [ls(flood={"10.0.0.3", "10.0.0.4"})])
    assert plan(new, k.read()) == [
        FdbDelete("hvx5", FLOOD_MAC, "10.0.0.2"),
        FdbAppend("hvx5", FLOOD_MAC, "10.0.0.4"),
    ]


def test_single_flood_remote_change_is_not_a_replace() -> None:
    # the kernel ignores NLM_F_REPLACE for the all-zero and multicast MACs
    k = programmed(ls(flood={"10.0.0.2"}))
    new = NodeState.build(PREFIX, [ls(flood={"10.0.0.4"})])
    assert plan(new, k.read()) == [
        FdbDelete("hvx5", FLOOD_MAC, "10.0.0.2"),
        FdbAppend("hvx5", FLOOD_MAC, "10.0.0.4"),
    ]


def test_tunnel_ip_change_recreates_vxlan_without_fdb_deletes() -> None:
    k = programmed(ls(ucast={"00:00:5e:00:53:01": "10.0.0.2"}, flood={"10.0.0.2"}))
    new = NodeState.build(
        PREFIX,
        [ls(local_ip="10.0.0.9", ucast={"00:00:5e:00:53:01": "10.0.0.2"}, flood={"10.0.0.2"})],
    )
    assert plan(new, k.read()) == [
        DeleteLink("hvx5"),
        CreateVxlan("hvx5", 5, "10.0.0.9", 4789, False, "hvb5", MARK),
        FdbAppend("hvx5", FLOOD_MAC, "10.0.0.2"),
        FdbAppend("hvx5", "00:00:5e:00:53:01", "10.0.0.2"),
    ]


def test_port_moves_between_switches_in_one_step() -> None:
    k = programmed(ls(5, bindings={Binding("p1")}), ls(6))
    new = NodeState.build(PREFIX, [ls(5), ls(6, bindings={Binding("p1")})])
    assert plan(new, k.read()) == [SetMaster("p1", "hvb6")]


def test_unbinding_releases_port_from_a_bridge_that_stays() -> None:
    k = programmed(ls(5, bindings={Binding("p1"), Binding("p2", 10)}))
    new = NodeState.build(PREFIX, [ls(5)])
    assert plan(new, k.read()) == [SetMaster("p1", None), DeleteLink("p2.10")]


def test_removing_a_switch_deletes_devices_only() -> None:
    k = programmed(ls(5, bindings={Binding("p1"), Binding("p2", 10)}, flood={"10.0.0.2"}), ls(6))
    new = NodeState.build(PREFIX, [ls(6)])
    assert plan(new, k.read()) == [DeleteLink("p2.10"), DeleteLink("hvx5"), DeleteLink("hvb5")]
    after = converge(new, k)
    assert {p.name: p.master for p in after.ports}["p1"] is None


def test_down_devices_are_brought_up() -> None:
    k = programmed(ls(5, bindings={Binding("p1"), Binding("p3", 10)}))
    for name in ("hvb5", "hvx5", "p1", "p3.10"):
        k.links[name].up = False
    ops = plan(
        NodeState.build(PREFIX, [ls(5, bindings={Binding("p1"), Binding("p3", 10)})]), k.read()
    )
    assert sorted(ops, key=repr) == sorted(
        [SetState(n, True) for n in ("hvb5", "hvx5", "p1", "p3.10")], key=repr
    )


def test_port_held_by_foreign_bridge_is_left_alone_and_reported() -> None:
    k = kernel_with_ports()
    k.links["p1"].master = "br-ext"
    desired = NodeState.build(PREFIX, [ls(5, bindings={Binding("p1"), Binding("p1", 10)})])
    actual = k.read()
    assert blocked(desired, actual) == {Binding("p1")}
    ops = plan(desired, actual)
    assert all(target(op) != "p1" for op in ops)
    assert CreateVlan("p1.10", "p1", 10, "hvb5", MARK) in ops


def test_missing_port_blocks_all_its_bindings() -> None:
    k = kernel_with_ports(("p1",))
    desired = NodeState.build(
        PREFIX, [ls(5, bindings={Binding("p9"), Binding("p9", 7), Binding("p1")})]
    )
    actual = k.read()
    assert blocked(desired, actual) == {Binding("p9"), Binding("p9", 7)}
    ops = plan(desired, actual)
    assert all("p9" not in target(op) for op in ops)
    after = k.run(ops).read()
    assert after.logical_switches()[5].bindings == {Binding("p1")}


def test_orphans_of_a_crash_are_adopted_or_removed() -> None:
    # crash between creating the bridge and the vxlan, and a sub-interface left unenslaved
    k = kernel_with_ports()
    k.links["hvb5"] = Link("bridge", alias=MARK)
    k.links["hvb6"] = Link("bridge", alias=MARK)
    k.links["p2.10"] = Link("vlan", master=None, alias=MARK, parent="p2", tag=10)
    desired = NodeState.build(PREFIX, [ls(5, bindings={Binding("p2", 10)})])
    ops = plan(desired, k.read())
    assert ops == [
        DeleteLink("hvb6"),
        CreateVxlan("hvx5", 5, "10.0.0.1", 4789, False, "hvb5", MARK),
        SetState("p2", True),
        SetMaster("p2.10", "hvb5"),
    ]


def test_unmarked_sub_interface_is_not_ours() -> None:
    k = kernel_with_ports()
    k.links["p2.10"] = Link("vlan", master=None, alias="", parent="p2", tag=10)
    actual = k.read()
    assert actual.vlans == frozenset()
    assert plan(NodeState.build(PREFIX, []), actual) == []


def test_other_agents_devices_are_invisible() -> None:
    k = kernel_with_ports()
    k.links["hvxb5"] = Link("bridge", alias="hwvtep:hvx")
    k.links["hvb05"] = Link("bridge", alias=MARK)
    k.links["hvb6"] = Link("bridge")  # named like ours, but nobody marked it
    assert k.read().bridges == frozenset()


def test_prefix_mismatch_is_refused() -> None:
    with pytest.raises(ValueError):
        plan(NodeState("aa"), NodeState("bb"))


# --- model ----------------------------------------------------------------------------------


def test_names_fit_ifnamsiz() -> None:
    n = Naming("abcdef")
    assert len(n.bridge(16777215)) == IFNAMSIZ_MAX
    assert n.vni_of_bridge(n.bridge(16777215)) == 16777215
    assert n.vni_of_vxlan(n.vxlan(0)) == 0
    assert n.vni_of_bridge("abcdefb") is None
    assert n.vni_of_bridge("abcdefx5") is None
    assert n.vni_of_bridge("abcdefb16777216") is None


@pytest.mark.parametrize("prefix", ["", "Hv", "1hv", "hvhvhvh", "h-v"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(ModelError):
        Naming(prefix)


def test_subif_names() -> None:
    assert subif_name("eth1", 100) == "eth1.100"
    assert subif_name("enp0s31f6", 4094) == "enp0s31f6.4094"
    long1 = subif_name("enp0s31f6port9", 4094)
    long2 = subif_name("enp0s31f6port8", 4094)
    assert len(long1) <= IFNAMSIZ_MAX and len(long2) <= IFNAMSIZ_MAX
    assert long1 != long2 and long1.endswith(".4094") and long1.startswith("enp0s3")
    assert subif_name("enp0s31f6port9", 4094) == long1
    assert Binding("enp0s31f6port9", 7).ifname == subif_name("enp0s31f6port9", 7)
    assert Binding("eth1").ifname == "eth1"


def test_logical_switch_validation() -> None:
    with pytest.raises(ModelError):
        ls(vni=1 << 24)
    with pytest.raises(ModelError):
        ls(vni=-1)
    with pytest.raises(ModelError):
        ls(local_ip="10.0.0")
    with pytest.raises(ModelError):
        ls(ucast={"01:00:5e:00:00:01": "10.0.0.2"})
    with pytest.raises(ModelError):
        ls(ucast={FLOOD_MAC: "10.0.0.2"})
    with pytest.raises(ModelError):
        ls(mcast={"00:00:5e:00:53:01": ["10.0.0.2"]})
    with pytest.raises(ModelError):
        ls(ucast={"00:00:5e:00:53": "10.0.0.2"})
    with pytest.raises(ModelError):
        Binding("p1", 4095)
    with pytest.raises(ModelError):
        Binding("a-very-long-port-name")
    s = ls(
        mcast={"01:00:5E:00:00:FB": ["10.0.0.2", "10.0.0.3"]},
        ucast=[("00-00-5e-00-53-01", "fd00:0::1")],
    )
    assert s.mcast == {("01:00:5e:00:00:fb", "10.0.0.2"), ("01:00:5e:00:00:fb", "10.0.0.3")}
    assert s.ucast == {("00:00:5e:00:53:01", "fd00::1")}
    made = LogicalSwitch.make(
        5,
        "10.0.0.1",
        mcast={"01:00:5E:00:00:FB": ["10.0.0.2", "10.0.0.3"]},
        ucast=[("00-00-5e-00-53-01", "fd00:0::1")],
    )
    assert made == s
    with pytest.raises(ModelError):
        LogicalSwitch.make(5, "10.0.0.1", mcast={"00:00:5e:00:53:01": ["10.0.0.2"]})


def test_build_rejects_clashes() -> None:
    with pytest.raises(ModelError, match="bound to VNIs"):
        NodeState.build(
            PREFIX, [ls(5, bindings={Binding("p1", 10)}), ls(6, bindings={Binding("p1", 10)})]
        )
    with pytest.raises(ModelError, match="two logical switches"):
        NodeState.build(PREFIX, [ls(5), ls(5)])
    with pytest.raises(ModelError, match="reserved"):
        NodeState(PREFIX, ports=frozenset({Port("hvb5", None, True)}))
    with pytest.raises(ModelError, match="not one of our vxlans"):
        NodeState(PREFIX, fdb=frozenset({FdbEntry("hvx5", FLOOD_MAC, "10.0.0.1")}))


def test_same_port_untagged_and_tagged_in_two_switches() -> None:
    state = NodeState.build(
        PREFIX, [ls(5, bindings={Binding("p1")}), ls(6, bindings={Binding("p1", 20)})]
    )
    assert Port("p1", "hvb5", True) in state.ports
    assert VlanIf("p1.20", "p1", 20, "hvb6") in state.vlans
    views = state.logical_switches()
    assert views[5].bindings == {Binding("p1")} and views[6].bindings == {Binding("p1", 20)}


def test_learned_macs_by_binding() -> None:
    state = replace(
        NodeState.build(PREFIX, [ls(5, bindings={Binding("p1"), Binding("p2", 10)})]),
        learned=frozenset(
            {
                LearnedMac("hvb5", "p1", "02:00:00:00:00:01"),
                LearnedMac("hvb5", "p2.10", "02:00:00:00:00:02"),
                LearnedMac("hvb5", "p2.10", "02:00:00:00:00:03"),
                LearnedMac("hvb5", "stranger", "02:00:00:00:00:04"),
            }
        ),
    )
    assert state.learned_by_binding() == {
        (5, Binding("p1")): {"02:00:00:00:00:01"},
        (5, Binding("p2", 10)): {"02:00:00:00:00:02", "02:00:00:00:00:03"},
    }
    assert plan(state, replace(state, learned=frozenset())) == []


def test_tagged_bindings_through_ebpf_pipes() -> None:
    """A kernel without 802.1Q: tagged bindings are built VIA_BPF; a damaged pipe gets one
    CreateVlan (repaired in place), a change of realisation re-creates the device."""
    switches_ = [ls(5, bindings={Binding("p1"), Binding("p1", 20)})]
    desired = NodeState.build(PREFIX, switches_, VIA_BPF)
    (vl,) = desired.vlans
    assert (vl.name, vl.via, vl.intact) == ("p1.20", VIA_BPF, True)
    ops = plan(desired, NodeState(PREFIX, ports=frozenset({Port("p1", None, True)})))
    assert CreateVlan("p1.20", "p1", 20, "hvb5", MARK, True, VIA_BPF) in ops
    damaged = replace(desired, vlans=frozenset({replace(vl, intact=False)}))
    assert plan(desired, damaged) == [CreateVlan("p1.20", "p1", 20, "hvb5", MARK, True, VIA_BPF)]
    assert plan(desired, desired) == []
    as_8021q = NodeState.build(PREFIX, switches_)
    assert plan(desired, as_8021q) == [
        DeleteLink("p1.20"),
        CreateVlan("p1.20", "p1", 20, "hvb5", MARK, True, VIA_BPF),
    ]
    # the plumbing end's name is the agent's: never taken for a port
    peer = Naming(PREFIX).pipe_peer("p1.20")
    assert Naming(PREFIX).owns_name(peer) and len(peer) <= IFNAMSIZ_MAX
    assert not Naming("zz").owns_name(peer)
    with pytest.raises(ModelError):
        VlanIf("p1.20", "p1", 20, None, via="qinq")
