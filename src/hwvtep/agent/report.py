"""What the switch tells the database: the rows hardware_vtep expects a VTEP to maintain.

Pure: `report(tables, ps_name, desired, observed)` compares a snapshot of the database with
what the agent knows of its node (the desired state, the kernel's ports, learned MACs,
counters, bindings the kernel could not carry) and returns the transaction operations
that bring the switch's own parts of the database in line - nothing when they already
are, so running it again on the result gives no operations.

The parts a switch owns (the rest belongs to the controller and is never written):
- its Physical_Switch row (created with a Global row if needed; the description when
  empty) and `switch_fault_status`;
- Physical_Port rows for the ports it serves (created when a served port exists and has
  no row; removed only when the port matched a `--port` pattern, is gone and carries no
  binding), `port_fault_status` and `vlan_stats` with their Logical_Binding_Stats rows;
- Ucast_Macs_Local rows of learned MACs and one "unknown-dst" Mcast_Macs_Local per
  realised logical switch, all on the locator of the local tunnel address. Rows are
  recognised as ours by a locator whose address is one of the switch's tunnel_ips;
- Tunnel rows (local locator -> each remote locator in use), `bfd_status` "enabled"
  "false": the Linux data plane runs no BFD (so there is no health signal to choose a
  service node by: see desired.py).

Rows are changed with `mutate` where the controller may be writing the same row (sets
and maps of the switch and its ports), and existing Physical_Locator and
Physical_Locator_Set rows are reused: the locator index on (encapsulation_type, dst_ip,
tunnel_key) would refuse a duplicate anyway.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwvtep.agent.desired import (
    ENCAP,
    INVALID_VLAN_MAP,
    PHYSICAL_PORT,
    PHYSICAL_SWITCH,
    UNKNOWN_DST,
    UNSPECIFIED_FAULT,
    Desired,
    Row,
    Tables,
    find_switch,
    scalar,
)
from hwvtep.agent.model import Binding, Counters, ModelError, normalize_ip, normalize_mac

DESCRIPTION = "hwvtep VTEP emulator (Linux kernel data plane)"
BFD_STATUS = (("enabled", "false"),)

Op = dict[str, Any]


@dataclass(frozen=True, slots=True, eq=False)
class Observed:
    """What the agent saw of its node, for the report.

    `serve`: port names that must have a Physical_Port row (existing ports matching the
    patterns, and the names given without wildcards); `patterns`: the `--port` arguments;
    `present`: the port names that exist in the kernel (at least those of `serve` and of
    this switch's rows); `learned`: MACs learned per realised binding; `counters`: per
    realised binding, or None to leave the statistics alone this time; `blocked` and
    `failed`: realised bindings the kernel does not carry (port held by another master,
    refused operations, with the reason); `former_ips`: tunnel addresses the switch used
    before (tunnel_ips changed), whose local rows are then recognised as ours and removed.
    """

    serve: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    present: frozenset[str] = frozenset()
    learned: Mapping[Binding, frozenset[str]] = field(default_factory=dict)
    counters: Mapping[Binding, Counters] | None = None
    blocked: frozenset[Binding] = frozenset()
    failed: Mapping[Binding, str] = field(default_factory=dict)
    former_ips: frozenset[str] = frozenset()


def _uuid(uuid: str) -> list[str]:
    return ["uuid", uuid]


def _named(name: str) -> list[str]:
    return ["named-uuid", name]


def _where(uuid: str) -> list[list[Any]]:
    return [["_uuid", "==", ["uuid", uuid]]]


def _set(atoms: Iterable[Any]) -> list[Any]:
    return ["set", list(atoms)]


def _mac(text: Any) -> str | None:
    try:
        return normalize_mac(str(text))
    except ModelError:
        return None


def _ip(text: Any) -> str | None:
    try:
        return normalize_ip(str(text))
    except ModelError:
        return None


class _Txn:
    """Operations being built, with named-uuids for rows inserted in the same transaction."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._n = 0

    def insert(self, table: str, row: dict[str, Any], hint: str) -> list[str]:
        self._n += 1
        name = f"{hint}{self._n}"
        self.ops.append({"op": "insert", "table": table, "row": row, "uuid-name": name})
        return _named(name)

    def update(self, table: str, uuid: str, row: dict[str, Any]) -> None:
        self.ops.append({"op": "update", "table": table, "where": _where(uuid), "row": row})

    def mutate(self, table: str, uuid: str, mutations: list[list[Any]]) -> None:
        if mutations:
            self.ops.append(
                {"op": "mutate", "table": table, "where": _where(uuid), "mutations": mutations}
            )

    def delete(self, table: str, uuid: str) -> None:
        self.ops.append({"op": "delete", "table": table, "where": _where(uuid)})


class _Locators:
    """The switch's local locator and locator set, reused when they exist."""

    def __init__(self, tables: Tables, txn: _Txn, local_ip: str | None) -> None:
        self.txn = txn
        self.local_ip = local_ip
        self.by_ip: dict[str, list[tuple[bool, str]]] = defaultdict(list)
        for uuid, row in tables.get("Physical_Locator", {}).items():
            ip = _ip(scalar(row, "dst_ip") or "")
            if ip is not None and scalar(row, "encapsulation_type") == ENCAP:
                self.by_ip[ip].append((scalar(row, "tunnel_key") is not None, uuid))
        for v in self.by_ip.values():
            v.sort()
        self.sets = tables.get("Physical_Locator_Set", {})
        self._local: list[str] | None = None
        self._local_set: list[str] | None = None

    def existing(self, ip: str) -> str | None:
        """The locator of `ip` (one without a tunnel key preferred)."""
        found = self.by_ip.get(ip)
        return found[0][1] if found else None

    def local_uuid(self) -> str | None:
        """The existing keyless locator of the local address (the one we use), if any."""
        if self.local_ip is None:
            return None
        for keyed, uuid in self.by_ip.get(self.local_ip, ()):
            if not keyed:
                return uuid
        return None

    def local(self) -> list[str]:
        """A reference to the local locator, inserting it on first need."""
        if self._local is None:
            assert self.local_ip is not None
            have = self.local_uuid()
            self._local = (
                _uuid(have)
                if have is not None
                else self.txn.insert(
                    "Physical_Locator",
                    {"encapsulation_type": ENCAP, "dst_ip": self.local_ip},
                    "loc",
                )
            )
        return self._local

    def local_set(self) -> list[str]:
        if self._local_set is None:
            have = self.local_uuid()
            found = None
            if have is not None:
                for uuid, row in sorted(self.sets.items()):
                    if tuple(row.get("locators", ())) == (have,):
                        found = uuid
                        break
            self._local_set = (
                _uuid(found)
                if found is not None
                else self.txn.insert(
                    "Physical_Locator_Set", {"locators": _set([self.local()])}, "set"
                )
            )
        return self._local_set


def report(tables: Tables, ps_name: str, desired: Desired, observed: Observed) -> list[Op]:
    """Operations (for a `transact` on hardware_vtep) that make the switch's rows true."""
    txn = _Txn()
    found = find_switch(tables, ps_name)
    if found is None:
        _create_switch(tables, ps_name, observed, txn)
        return txn.ops
    ps_uuid, ps = found
    if not scalar(ps, "description"):
        txn.update(PHYSICAL_SWITCH, ps_uuid, {"description": DESCRIPTION})
    faults = desired.faults()
    _switch_faults(ps_uuid, ps, faults, txn)
    locators = _Locators(tables, txn, desired.local_ip)
    _ports(tables, ps_uuid, ps, desired, observed, faults, txn)
    own_ips = desired.tunnel_ips | observed.former_ips
    own_locators = {u for ip in own_ips for _, u in locators.by_ip.get(ip, ())}
    _ucast_local(tables, desired, observed, own_locators, locators, txn)
    _mcast_local(tables, desired, own_locators, locators, txn)
    _tunnels(tables, ps_uuid, ps, desired, locators, txn)
    return txn.ops


def _create_switch(tables: Tables, ps_name: str, observed: Observed, txn: _Txn) -> None:
    ports = [txn.insert(PHYSICAL_PORT, {"name": name}, "port") for name in sorted(observed.serve)]
    ps = txn.insert(
        PHYSICAL_SWITCH,
        {"name": ps_name, "description": DESCRIPTION, "ports": _set(ports)},
        "ps",
    )
    globals_ = sorted(tables.get("Global", {}))
    if globals_:
        txn.mutate("Global", globals_[0], [["switches", "insert", _set([ps])]])
    else:
        txn.insert("Global", {"switches": _set([ps])}, "global")


def _switch_faults(
    ps_uuid: str, ps: Row, faults: Mapping[tuple[str, str], frozenset[str]], txn: _Txn
) -> None:
    want = faults.get((PHYSICAL_SWITCH, ps_uuid), frozenset())
    if frozenset(ps.get("switch_fault_status", ())) != want:
        txn.update(PHYSICAL_SWITCH, ps_uuid, {"switch_fault_status": _set(sorted(want))})


def _ports(
    tables: Tables,
    ps_uuid: str,
    ps: Row,
    desired: Desired,
    observed: Observed,
    faults: Mapping[tuple[str, str], frozenset[str]],
    txn: _Txn,
) -> None:
    rows = tables.get(PHYSICAL_PORT, {})
    mine = {u: rows[u] for u in ps.get("ports", ()) if u in rows}
    names = {str(scalar(r, "name") or "") for r in mine.values()}
    new = [txn.insert(PHYSICAL_PORT, {"name": n}, "port") for n in sorted(observed.serve - names)]
    gone = [
        u
        for u, r in sorted(mine.items())
        if not r.get("vlan_bindings")
        and (name := str(scalar(r, "name") or "")) not in observed.present
        and name not in observed.serve
        and any(fnmatch.fnmatchcase(name, p) for p in observed.patterns)
    ]
    mutations: list[list[Any]] = []
    if new:
        mutations.append(["ports", "insert", _set(new)])
    if gone:
        mutations.append(["ports", "delete", _set(_uuid(u) for u in gone)])
    txn.mutate(PHYSICAL_SWITCH, ps_uuid, mutations)

    stats_rows = tables.get("Logical_Binding_Stats", {})
    for uuid, row in sorted(mine.items()):
        if uuid in gone:
            continue
        name = str(scalar(row, "name") or "")
        want = set(faults.get((PHYSICAL_PORT, uuid), frozenset()))
        missing = name not in observed.present
        if missing:
            want.add(UNSPECIFIED_FAULT)
        carried: dict[int, str] = {}
        for vlan, ls_uuid in row.get("vlan_bindings", ()):
            b = Binding(name, vlan) if 0 <= vlan <= 4094 and not missing else None
            if b is None or desired.bindings.get(b) != ls_uuid:
                continue
            if b in observed.blocked or b in observed.failed:
                want.add(INVALID_VLAN_MAP)
                continue
            carried[vlan] = ls_uuid
        if frozenset(row.get("port_fault_status", ())) != want:
            txn.update(PHYSICAL_PORT, uuid, {"port_fault_status": _set(sorted(want))})
        _stats(uuid, row, carried, observed, stats_rows, txn)


def _stats(
    port_uuid: str,
    row: Row,
    carried: Mapping[int, str],
    observed: Observed,
    stats_rows: Mapping[str, Row],
    txn: _Txn,
) -> None:
    name = str(scalar(row, "name") or "")
    have = dict(row.get("vlan_stats", ()))
    drop = sorted(v for v in have if v not in carried)
    add = []
    for vlan in sorted(carried):
        counters = (observed.counters or {}).get(Binding(name, vlan))
        values = _stat_values(counters) if counters is not None else {}
        stats_uuid = have.get(vlan)
        if stats_uuid is None or stats_uuid not in stats_rows:
            if stats_uuid is not None:
                drop.append(vlan)
            row_values: dict[str, Any] = values or {"packets_from_local": 0}
            add.append([vlan, txn.insert("Logical_Binding_Stats", row_values, "stats")])
            continue
        current = stats_rows[stats_uuid]
        changed = {k: v for k, v in values.items() if scalar(current, k) != v}
        if changed:
            txn.update("Logical_Binding_Stats", stats_uuid, changed)
    mutations: list[list[Any]] = []
    if drop:
        mutations.append(["vlan_stats", "delete", _set(drop)])
    if add:
        mutations.append(["vlan_stats", "insert", ["map", add]])
    txn.mutate(PHYSICAL_PORT, port_uuid, mutations)


def _stat_values(c: Counters) -> dict[str, int]:
    # rx on the bound device is what came from the local side
    return {
        "packets_from_local": c.rx_packets,
        "bytes_from_local": c.rx_bytes,
        "packets_to_local": c.tx_packets,
        "bytes_to_local": c.tx_bytes,
    }


def _ucast_local(
    tables: Tables,
    desired: Desired,
    observed: Observed,
    own_locators: set[str],
    locators: _Locators,
    txn: _Txn,
) -> None:
    want: set[tuple[str, str]] = set()
    for b, macs in observed.learned.items():
        ls_uuid = desired.bindings.get(b)
        if ls_uuid is not None and desired.local_ip is not None:
            want.update((ls_uuid, m) for m in macs)
    local = locators.local_uuid()
    for uuid, row in sorted(tables.get("Ucast_Macs_Local", {}).items()):
        if scalar(row, "locator") not in own_locators:
            continue
        key = (str(scalar(row, "logical_switch")), _mac(scalar(row, "MAC")) or "")
        if key not in want:
            txn.delete("Ucast_Macs_Local", uuid)  # aged out, unbound, or a duplicate
            continue
        want.discard(key)
        if scalar(row, "locator") != local:
            txn.update("Ucast_Macs_Local", uuid, {"locator": locators.local()})
    for ls_uuid, mac in sorted(want):
        txn.insert(
            "Ucast_Macs_Local",
            {"MAC": mac, "logical_switch": _uuid(ls_uuid), "locator": locators.local()},
            "ucl",
        )


def _mcast_local(
    tables: Tables,
    desired: Desired,
    own_locators: set[str],
    locators: _Locators,
    txn: _Txn,
) -> None:
    want = set(desired.switches) if desired.local_ip is not None else set()
    sets = tables.get("Physical_Locator_Set", {})
    local = locators.local_uuid()
    for uuid, row in sorted(tables.get("Mcast_Macs_Local", {}).items()):
        if scalar(row, "MAC") != UNKNOWN_DST:
            continue
        lset = sets.get(scalar(row, "locator_set") or "")
        members = tuple(lset.get("locators", ())) if lset is not None else ()
        if not own_locators.intersection(members):
            continue
        ls_uuid = str(scalar(row, "logical_switch"))
        if ls_uuid not in want:
            txn.delete("Mcast_Macs_Local", uuid)
            continue
        want.discard(ls_uuid)
        if local is None or members != (local,):
            txn.update("Mcast_Macs_Local", uuid, {"locator_set": locators.local_set()})
    for ls_uuid in sorted(want):
        txn.insert(
            "Mcast_Macs_Local",
            {
                "MAC": UNKNOWN_DST,
                "logical_switch": _uuid(ls_uuid),
                "locator_set": locators.local_set(),
            },
            "mcl",
        )


def _tunnels(
    tables: Tables, ps_uuid: str, ps: Row, desired: Desired, locators: _Locators, txn: _Txn
) -> None:
    rows = tables.get("Tunnel", {})
    loc_rows = tables.get("Physical_Locator", {})
    want = desired.remotes() if desired.local_ip is not None else frozenset()
    local = locators.local_uuid()
    drop: list[str] = []
    for uuid in sorted(ps.get("tunnels", ())):
        row = rows.get(uuid)
        if row is None:
            continue
        remote = loc_rows.get(scalar(row, "remote") or "")
        ip = _ip(scalar(remote, "dst_ip") or "") if remote is not None else None
        if ip is None or ip not in want:
            drop.append(uuid)  # not in use any more, or a second tunnel to one remote
            continue
        want = want - {ip}
        change: dict[str, Any] = {}
        if scalar(row, "local") != local:
            change["local"] = locators.local()
        if tuple(row.get("bfd_status", ())) != BFD_STATUS:
            change["bfd_status"] = ["map", [list(kv) for kv in BFD_STATUS]]
        if change:
            txn.update("Tunnel", uuid, change)
    add = []
    for ip in sorted(want):
        remote_uuid = locators.existing(ip)
        if remote_uuid is None:
            continue
        add.append(
            txn.insert(
                "Tunnel",
                {
                    "local": locators.local(),
                    "remote": _uuid(remote_uuid),
                    "bfd_status": ["map", [list(kv) for kv in BFD_STATUS]],
                },
                "tun",
            )
        )
    mutations: list[list[Any]] = []
    if drop:
        mutations.append(["tunnels", "delete", _set(_uuid(u) for u in drop)])
    if add:
        mutations.append(["tunnels", "insert", _set(add)])
    txn.mutate(PHYSICAL_SWITCH, ps_uuid, mutations)


__all__ = ["DESCRIPTION", "Observed", "Op", "report"]
