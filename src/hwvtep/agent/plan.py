"""Diff a desired node state against the actual one into an ordered list of operations.

Pure: `plan(desired, actual)` only looks at the two values. `linux.py` carries the
operations out, idempotently, so a plan computed from a slightly stale actual state is
still safe to apply, and the next plan repairs what it missed.

Rules:
- Only the agent's own devices are created, changed or deleted: those in `actual` (read
  by name and mark) and those `desired` names. Physical ports only get their master and
  admin state set, and a port held by a master that is not one of our bridges is left
  alone (its vlan-0 binding is *blocked*); a port that does not exist blocks all its
  bindings. `blocked()` tells the agent which, for fault reporting.
- Order: fdb removals on devices that stay, then releases from bridges that stay, then
  device deletions (sub-interfaces and vxlans before bridges), then creations (bridges,
  vxlans, ports, sub-interfaces, each with master and state), then fdb additions.
- Minimal: a device whose fixed parameters (VNI, local IP, dstport, learning; port, tag
  and realisation of a sub-interface) differ is re-created, otherwise only master/state
  are set (an eBPF pipe missing a piece gets a `CreateVlan`, which repairs it); fdb
  entries of a device that is deleted are not removed one by one; a unicast MAC moving
  from one remote to another is one `FdbReplace`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from hwvtep.agent.model import (
    FLOOD_MAC,
    VIA_8021Q,
    Binding,
    NodeState,
    Port,
    is_multicast_mac,
)


@dataclass(frozen=True, slots=True)
class CreateBridge:
    name: str
    alias: str
    up: bool = True


@dataclass(frozen=True, slots=True)
class CreateVxlan:
    name: str
    vni: int
    local_ip: str
    dstport: int
    learning: bool
    master: str | None
    alias: str
    up: bool = True


@dataclass(frozen=True, slots=True)
class CreateVlan:
    """Make (or, for an eBPF pipe, make or repair) the device of a tagged binding."""

    name: str
    port: str
    vlan: int
    master: str | None
    alias: str
    up: bool = True
    via: str = VIA_8021Q


@dataclass(frozen=True, slots=True)
class DeleteLink:
    name: str


@dataclass(frozen=True, slots=True)
class SetMaster:
    """Enslave `name` to bridge `master`, or release it when `master` is None."""

    name: str
    master: str | None


@dataclass(frozen=True, slots=True)
class SetState:
    name: str
    up: bool


@dataclass(frozen=True, slots=True)
class FdbAppend:
    """`bridge fdb append MAC dev DEV dst DST` (creates the entry or adds a remote)."""

    dev: str
    mac: str
    dst: str


@dataclass(frozen=True, slots=True)
class FdbReplace:
    """`bridge fdb replace MAC dev DEV dst DST`: move a unicast MAC's single remote."""

    dev: str
    mac: str
    dst: str


@dataclass(frozen=True, slots=True)
class FdbDelete:
    """`bridge fdb del MAC dev DEV dst DST`: remove one remote of the entry."""

    dev: str
    mac: str
    dst: str


Op = (
    CreateBridge
    | CreateVxlan
    | CreateVlan
    | DeleteLink
    | SetMaster
    | SetState
    | FdbAppend
    | FdbReplace
    | FdbDelete
)


def _foreign_master(actual: NodeState, port: Port | None) -> bool:
    return (
        port is not None
        and port.master is not None
        and all(b.name != port.master for b in actual.bridges)
    )


def blocked(desired: NodeState, actual: NodeState) -> frozenset[Binding]:
    """Desired bindings the plan cannot realise: port missing, or held by a foreign master."""
    present = {p.name: p for p in actual.ports}
    out: set[Binding] = set()
    for p in desired.ports:
        ap = present.get(p.name)
        if ap is None:
            out.update(Binding(v.port, v.vlan) for v in desired.vlans if v.port == p.name)
            if p.master is not None:
                out.add(Binding(p.name, 0))
        elif p.master is not None and _foreign_master(actual, ap):
            out.add(Binding(p.name, 0))
    return frozenset(out)


def effective(desired: NodeState, actual: NodeState) -> NodeState:
    """The part of `desired` that `plan` realises against `actual` (blocked bindings out).

    A port held by a foreign master keeps its actual record: the plan does not touch it.
    """
    present = {p.name: p for p in actual.ports}
    ports: set[Port] = set()
    for p in desired.ports:
        ap = present.get(p.name)
        if ap is None:
            continue
        ports.add(ap if _foreign_master(actual, ap) else p)
    return replace(
        desired,
        vlans=frozenset(v for v in desired.vlans if v.port in present),
        ports=frozenset(ports),
        learned=frozenset(),
    )


def plan(desired: NodeState, actual: NodeState) -> list[Op]:
    """Ordered operations turning `actual` into `effective(desired, actual)`."""
    if desired.prefix != actual.prefix:
        raise ValueError(f"prefix mismatch: {desired.prefix} vs {actual.prefix}")
    want = effective(desired, actual)
    mark = desired.naming.mark

    a_br = {b.name: b for b in actual.bridges}
    d_br = {b.name: b for b in want.bridges}
    a_vx = {v.name: v for v in actual.vxlans}
    d_vx = {v.name: v for v in want.vxlans}
    a_vl = {v.name: v for v in actual.vlans}
    d_vl = {v.name: v for v in want.vlans}
    a_pt = {p.name: p for p in actual.ports}
    d_pt = {p.name: p for p in want.ports}

    gone_br = {n for n in a_br if n not in d_br}
    gone_vx = {n for n, v in a_vx.items() if n not in d_vx or d_vx[n].spec != v.spec}
    gone_vl = {n for n, v in a_vl.items() if n not in d_vl or d_vl[n].spec != v.spec}
    new_vx = {n for n in d_vx if n not in a_vx or n in gone_vx}
    new_vl = {n for n in d_vl if n not in a_vl or n in gone_vl or not a_vl[n].intact}

    removals: list[Op] = []
    releases: list[Op] = []
    deletions: list[Op] = []
    creations: list[Op] = []
    fdb_adds: list[Op] = []

    # fdb: per (device, MAC), the set of remotes
    a_fdb: dict[tuple[str, str], set[str]] = defaultdict(set)
    d_fdb: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in actual.fdb:
        if e.dev not in gone_vx:
            a_fdb[(e.dev, e.mac)].add(e.dst)
    for e in want.fdb:
        d_fdb[(e.dev, e.mac)].add(e.dst)
    for key in sorted(a_fdb.keys() | d_fdb.keys()):
        dev, mac = key
        have, need = a_fdb.get(key, set()), d_fdb.get(key, set())
        if have == need:
            continue
        unicast = mac != FLOOD_MAC and not is_multicast_mac(mac)
        if unicast and len(have) == 1 and len(need) == 1:
            fdb_adds.append(FdbReplace(dev, mac, next(iter(need))))
            continue
        removals.extend(FdbDelete(dev, mac, dst) for dst in sorted(have - need))
        fdb_adds.extend(FdbAppend(dev, mac, dst) for dst in sorted(need - have))

    def master_change(name: str, have: str | None, need: str | None, into: list[Op]) -> None:
        """Emit what moves `name` from master `have` to `need` (a deleted bridge frees it)."""
        if have == need or (need is None and have in gone_br):
            return
        (releases if need is None else into).append(SetMaster(name, need))

    def state_change(name: str, have: bool, need: bool, into: list[Op]) -> None:
        if have != need:
            into.append(SetState(name, need))

    # deletions: sub-interfaces, then vxlans, then bridges
    deletions.extend(DeleteLink(n) for n in sorted(gone_vl))
    deletions.extend(DeleteLink(n) for n in sorted(gone_vx))
    deletions.extend(DeleteLink(n) for n in sorted(gone_br))

    # bridges
    for name in sorted(d_br):
        want_br = d_br[name]
        if name not in a_br:
            creations.append(CreateBridge(name, mark, want_br.up))
        else:
            state_change(name, a_br[name].up, want_br.up, creations)

    # vxlans
    for name in sorted(d_vx):
        v = d_vx[name]
        if name in new_vx:
            creations.append(
                CreateVxlan(name, v.vni, v.local_ip, v.dstport, v.learning, v.master, mark, v.up)
            )
        else:
            av = a_vx[name]
            master_change(name, av.master, v.master, creations)
            state_change(name, av.up, v.up, creations)

    # physical ports (before sub-interfaces: a tagged binding needs its parent up)
    for name in sorted(a_pt.keys() | d_pt.keys()):
        ap, dp = a_pt.get(name), d_pt.get(name)
        if ap is None or _foreign_master(actual, ap):
            continue
        need_master = dp.master if dp is not None else None
        master_change(name, ap.master, need_master, creations)
        if dp is not None:
            state_change(name, ap.up, dp.up, creations)

    # sub-interfaces
    for name in sorted(d_vl):
        w = d_vl[name]
        if name in new_vl:
            creations.append(CreateVlan(name, w.port, w.vlan, w.master, mark, w.up, w.via))
        else:
            al = a_vl[name]
            master_change(name, al.master, w.master, creations)
            state_change(name, al.up, w.up, creations)
    return [*removals, *releases, *deletions, *creations, *fdb_adds]


def target(op: Op) -> str:
    """The interface an operation changes (for ownership checks and logs)."""
    if isinstance(op, FdbAppend | FdbReplace | FdbDelete):
        return op.dev
    return op.name


__all__ = [
    "CreateBridge",
    "CreateVlan",
    "CreateVxlan",
    "DeleteLink",
    "FdbAppend",
    "FdbDelete",
    "FdbReplace",
    "Op",
    "SetMaster",
    "SetState",
    "blocked",
    "effective",
    "plan",
    "target",
]
