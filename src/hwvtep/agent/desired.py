"""What the data plane of one Physical_Switch should be, read from hardware_vtep rows.

Pure: `compute(tables, ps_name, prefix)` looks only at a snapshot of the database (table
-> uuid -> row, rows as in docs/core-contract.md) and returns the desired `NodeState`
with the facts `report.py` needs to write back (which logical switch each VNI and binding
came from) and the list of problems found on the way. A controller's mistake never raises:
the part that cannot be realised is left out and becomes a `Problem`, which the agent logs
once and reports as the fault status the schema defines for it.

Choices, where the schema leaves room:
- Only logical switches bound on one of this switch's ports are realised (as ovs-vtep
  does): a node does not build devices for switches it carries no traffic for.
- The local tunnel address is the first IPv4 address of `tunnel_ips`; every address in
  the column counts as this switch's own, so locators pointing at any of them are skipped.
- Only the tunnel key per Logical_Switch model is supported: a locator whose own
  `tunnel_key` disagrees with its switch's key is not programmed.
- Clashes drop every party (two logical switches with one VNI, two rows binding the same
  port and VLAN differently): without history a pure function cannot tell which came
  first, and half-honouring a conflicting configuration would hide it.
- In service_node replication, the flood target is the service node with the lowest
  IPv4 address (numerically) among the usable locators of the logical switch's
  `unknown-dst` Mcast_Macs_Remote set. The schema asks for one "known to be healthy and
  reachable, which could be determined by BFD", but this data plane runs no BFD and has
  no other health signal: the only health column, Tunnel `bfd_status`, is written by the
  VTEP itself (the controller writes `bfd_params`), and `report.py` sets it to
  {enabled: false} on every Tunnel row of this switch. So every service node counts as
  healthy. The choice depends on the database alone (not on uuids, row order or history):
  it is the same after a restart and on every VTEP given the same set, and moves only
  when the set changes. Nothing here notices a service node failing: the controller has
  to take it out of the set, and the next lowest address is then used.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwvtep.agent.model import (
    VIA_8021Q,
    VLAN_MAX,
    VNI_MAX,
    Binding,
    LogicalSwitch,
    ModelError,
    Naming,
    NodeState,
    check_ifname,
    is_multicast_mac,
    normalize_mac,
)

Datum = tuple[Any, ...]
Row = Mapping[str, Datum]
Tables = Mapping[str, Mapping[str, Row]]

ENCAP = "vxlan_over_ipv4"
UNKNOWN_DST = "unknown-dst"
SOURCE_NODE = "source_node"
SERVICE_NODE = "service_node"

# fault status values, from the schema documentation (vtep.xml)
INVALID_VLAN_MAP = "invalid_vlan_map"
UNSPECIFIED_FAULT = "unspecified_fault"

PHYSICAL_SWITCH = "Physical_Switch"
PHYSICAL_PORT = "Physical_Port"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in the database this switch cannot honour.

    `key` identifies the problem across recomputations (logged once while it lasts);
    `table`/`uuid` name the row whose fault status carries `fault`, or are None for a
    problem that is only logged.
    """

    key: str
    message: str
    table: str | None = None
    uuid: str | None = None
    fault: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Desired:
    """The desired data plane of one switch and where each part of it came from."""

    prefix: str
    ps_uuid: str | None
    local_ip: str | None
    tunnel_ips: frozenset[str]
    state: NodeState
    switches: Mapping[str, LogicalSwitch] = field(default_factory=dict)
    """Logical_Switch uuid -> the realised switch."""
    bindings: Mapping[Binding, str] = field(default_factory=dict)
    """Realised (port, vlan) -> Logical_Switch uuid."""
    ports: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Port name -> the uuids of this switch's Physical_Port rows with that name."""
    problems: tuple[Problem, ...] = ()

    def remotes(self) -> frozenset[str]:
        """Addresses of the remote VTEPs the realised switches send to."""
        out: set[str] = set()
        for ls in self.switches.values():
            out.update(ip for _, ip in ls.ucast)
            out.update(ls.flood)
            out.update(ip for _, ip in ls.mcast)
        return frozenset(out)

    def faults(self) -> dict[tuple[str, str], frozenset[str]]:
        """(table, uuid) -> fault status values, for the rows that have some."""
        acc: dict[tuple[str, str], set[str]] = defaultdict(set)
        for p in self.problems:
            if p.table is not None and p.uuid is not None and p.fault is not None:
                acc[(p.table, p.uuid)].add(p.fault)
        return {k: frozenset(v) for k, v in acc.items()}


def scalar(row: Row, column: str) -> Any:
    """The value of an optional or scalar column, None when empty (or absent)."""
    d = row.get(column, ())
    return d[0] if d else None


def _ipv4(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        return None


def find_switch(tables: Tables, ps_name: str) -> tuple[str, Row] | None:
    for uuid, row in tables.get(PHYSICAL_SWITCH, {}).items():
        if scalar(row, "name") == ps_name:
            return uuid, row
    return None


class _Locators:
    """Physical_Locator rows resolved to usable remote addresses, each checked once."""

    def __init__(
        self, tables: Tables, ps_uuid: str, own: frozenset[str], problems: list[Problem]
    ) -> None:
        self._rows = tables.get("Physical_Locator", {})
        self._ps = ps_uuid
        self._own = own
        self._problems = problems
        self._cache: dict[tuple[str, int], str | None] = {}

    def remote(self, uuid: str, vni: int, user: str) -> str | None:
        """The remote address of locator `uuid` for a switch on `vni`, or None."""
        key = (uuid, vni)
        if key in self._cache:
            return self._cache[key]
        self._cache[key] = ip = self._resolve(uuid, vni, user)
        return ip

    def _resolve(self, uuid: str, vni: int, user: str) -> str | None:
        row = self._rows.get(uuid)
        if row is None:
            self._problems.append(
                Problem(f"dangling-locator {uuid}", f"{user} refers to missing locator {uuid}")
            )
            return None
        encap = scalar(row, "encapsulation_type")
        dst = str(scalar(row, "dst_ip") or "")
        if encap != ENCAP:
            self._problems.append(
                Problem(
                    f"encap {uuid}",
                    f"locator {dst} uses unsupported encapsulation {encap!r}",
                    PHYSICAL_SWITCH,
                    self._ps,
                    UNSPECIFIED_FAULT,
                )
            )
            return None
        ip = _ipv4(dst)
        if ip is None:
            self._problems.append(
                Problem(
                    f"locator-ip {uuid}",
                    f"locator {uuid} has dst_ip {dst!r}, not an IPv4 address",
                    PHYSICAL_SWITCH,
                    self._ps,
                    UNSPECIFIED_FAULT,
                )
            )
            return None
        key = scalar(row, "tunnel_key")
        if key is not None and key != vni:
            self._problems.append(
                Problem(
                    f"locator-key {uuid} {vni}",
                    f"locator {ip} carries tunnel key {key} for a switch on VNI {vni}: "
                    "only the tunnel key per Logical_Switch model is supported",
                    PHYSICAL_SWITCH,
                    self._ps,
                    UNSPECIFIED_FAULT,
                )
            )
            return None
        if ip in self._own:
            return None  # one of our own addresses: nothing to send there
        return ip


def _local_ip(ps_uuid: str, ps: Row, problems: list[Problem]) -> tuple[str | None, frozenset[str]]:
    own: list[str] = []
    for text in ps.get("tunnel_ips", ()):
        ip = _ipv4(str(text))
        if ip is None:
            problems.append(
                Problem(
                    f"tunnel-ip {text}",
                    f"tunnel_ips entry {text!r} is not an IPv4 address",
                    PHYSICAL_SWITCH,
                    ps_uuid,
                    UNSPECIFIED_FAULT,
                )
            )
        else:
            own.append(ip)
    return (own[0] if own else None), frozenset(own)


def compute(
    tables: Tables,
    ps_name: str,
    prefix: str,
    *,
    vlan_support: bool = True,
    vlan_via: str = VIA_8021Q,
) -> Desired:
    """The desired data plane of Physical_Switch `ps_name` for an agent named `prefix`.

    `vlan_support` False (a kernel with neither 802.1Q nor eBPF) turns every tagged binding
    into an `invalid_vlan_map` problem instead of a device the kernel would refuse;
    `vlan_via` says how tagged bindings are realised (model.VIA_8021Q or VIA_BPF).
    """
    naming = Naming(prefix)
    problems: list[Problem] = []
    found = find_switch(tables, ps_name)
    if found is None:
        return Desired(prefix, None, None, frozenset(), NodeState(prefix))
    ps_uuid, ps = found
    local_ip, own = _local_ip(ps_uuid, ps, problems)

    ls_rows = tables.get("Logical_Switch", {})
    port_rows = tables.get(PHYSICAL_PORT, {})
    ports: dict[str, list[str]] = defaultdict(list)
    # (port, vlan) -> {ls uuid: [port row uuids]}
    wanted: dict[tuple[str, int], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))

    def port_fault(uuid: str, key: str, message: str, fault: str = INVALID_VLAN_MAP) -> None:
        problems.append(Problem(key, message, PHYSICAL_PORT, uuid, fault))

    for pu in ps.get("ports", ()):
        prow = port_rows.get(pu)
        if prow is None:
            problems.append(Problem(f"dangling-port {pu}", f"{ps_name} lists missing port {pu}"))
            continue
        name = str(scalar(prow, "name") or "")
        try:
            check_ifname(name)
            if naming.owns_name(name):
                raise ModelError(f"{name} is a name of this agent's own devices")
        except ModelError as e:
            port_fault(pu, f"port-name {pu}", f"port {name!r}: {e}", UNSPECIFIED_FAULT)
            continue
        ports[name].append(pu)
        for vlan, ls_uuid in prow.get("vlan_bindings", ()):
            where = f"port {name} vlan {vlan}"
            ls = ls_rows.get(ls_uuid)
            if ls is None:
                port_fault(pu, f"dangling-ls {pu} {vlan}", f"{where}: missing logical switch")
                continue
            ls_name = scalar(ls, "name")
            vni = scalar(ls, "tunnel_key")
            if vni is None:
                port_fault(
                    pu,
                    f"no-key {pu} {vlan} {ls_uuid}",
                    f"{where}: logical switch {ls_name} has no tunnel_key",
                )
                continue
            if not 0 <= vni <= VNI_MAX:
                port_fault(
                    pu,
                    f"bad-key {pu} {vlan} {ls_uuid} {vni}",
                    f"{where}: logical switch {ls_name} has tunnel_key {vni}, not a VNI",
                )
                continue
            if not 0 <= vlan <= VLAN_MAX:
                port_fault(pu, f"bad-vlan {pu} {vlan}", f"{where}: VLAN {vlan} is reserved")
                continue
            if vlan != 0 and not vlan_support:
                port_fault(
                    pu,
                    f"no-8021q {pu} {vlan}",
                    f"{where}: this kernel has no 802.1Q support for tagged bindings",
                )
                continue
            wanted[(name, vlan)][ls_uuid].append(pu)

    # (port, vlan) bound to two switches by two rows of one port name
    by_ls: dict[str, list[tuple[Binding, list[str]]]] = defaultdict(list)
    for (name, vlan), owners in wanted.items():
        if len(owners) > 1:
            names = sorted(str(scalar(ls_rows[u], "name")) for u in owners)
            for rows in owners.values():
                for pu in rows:
                    port_fault(
                        pu,
                        f"vlan-clash {name} {vlan}",
                        f"port {name} vlan {vlan} is bound to several logical switches: "
                        + ", ".join(names),
                    )
            continue
        ((ls_uuid, rows),) = owners.items()
        by_ls[ls_uuid].append((Binding(name, vlan), rows))

    by_vni: dict[int, list[str]] = defaultdict(list)
    for ls_uuid in by_ls:
        by_vni[scalar(ls_rows[ls_uuid], "tunnel_key")].append(ls_uuid)
    for vni, users in by_vni.items():
        if len(users) < 2:
            continue
        names = sorted(str(scalar(ls_rows[u], "name")) for u in users)
        for ls_uuid in users:
            for b, rows in by_ls.pop(ls_uuid):
                for pu in rows:
                    port_fault(
                        pu,
                        f"vni-clash {vni} {b.port} {b.vlan}",
                        f"port {b.port} vlan {b.vlan}: logical switches "
                        f"{', '.join(names)} share tunnel_key {vni}",
                    )

    if local_ip is None and by_ls:
        problems.append(
            Problem(
                "no-tunnel-ip",
                f"{ps_name} has bindings but no IPv4 address in tunnel_ips",
                PHYSICAL_SWITCH,
                ps_uuid,
                UNSPECIFIED_FAULT,
            )
        )
    switches: dict[str, LogicalSwitch] = {}
    bindings: dict[Binding, str] = {}
    if local_ip is not None and by_ls:
        locators = _Locators(tables, ps_uuid, own, problems)
        ucast_of, mcast_of = _macs_by_switch(tables, by_ls.keys(), problems)
        for ls_uuid, bound in by_ls.items():
            ls = ls_rows[ls_uuid]
            vni = int(scalar(ls, "tunnel_key"))
            ls_name = str(scalar(ls, "name"))
            ucast = _ucast(ucast_of.get(ls_uuid, ()), ls_name, vni, locators, problems)
            flood, mcast = _mcast(tables, mcast_of.get(ls_uuid, ()), ls, vni, locators, problems)
            switches[ls_uuid] = LogicalSwitch.make(
                vni, local_ip, (b for b, _ in bound), ucast, flood, mcast
            )
            bindings.update((b, ls_uuid) for b, _ in bound)
    state = NodeState.build(prefix, switches.values(), vlan_via)
    return Desired(
        prefix,
        ps_uuid,
        local_ip,
        own,
        state,
        switches,
        bindings,
        {k: tuple(v) for k, v in ports.items()},
        _dedup(problems),
    )


def _dedup(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    seen: dict[tuple[str, str | None], Problem] = {}
    for p in problems:
        seen.setdefault((p.key, p.uuid), p)
    return tuple(seen.values())


def _macs_by_switch(
    tables: Tables, switches: Iterable[str], problems: list[Problem]
) -> tuple[dict[str, list[Row]], dict[str, list[Row]]]:
    """The remote MAC rows of each realised switch; rows of a missing switch are problems."""
    wanted = set(switches)
    known = tables.get("Logical_Switch", {})
    ucast: dict[str, list[Row]] = defaultdict(list)
    mcast: dict[str, list[Row]] = defaultdict(list)
    for table, into in (("Ucast_Macs_Remote", ucast), ("Mcast_Macs_Remote", mcast)):
        for uuid, row in tables.get(table, {}).items():
            ls = scalar(row, "logical_switch")
            if ls in wanted:
                into[ls].append(row)
            elif ls not in known:
                mac = scalar(row, "MAC")
                problems.append(
                    Problem(
                        f"dangling-mac-ls {uuid}",
                        f"{table} {mac!r} refers to missing logical switch {ls}",
                    )
                )
    return ucast, mcast


def _ucast(
    rows: Iterable[Row], ls_name: str, vni: int, locators: _Locators, problems: list[Problem]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for row in rows:
        text = str(scalar(row, "MAC") or "")
        try:
            mac = normalize_mac(text)
        except ModelError:
            problems.append(
                Problem(f"ucast-mac {ls_name} {text}", f"{ls_name}: remote MAC {text!r} is bad")
            )
            continue
        if is_multicast_mac(mac):
            problems.append(
                Problem(
                    f"ucast-mcast {ls_name} {mac}",
                    f"{ls_name}: Ucast_Macs_Remote holds group address {mac}",
                )
            )
            continue
        loc = scalar(row, "locator")
        ip = locators.remote(loc, vni, f"{ls_name} MAC {mac}") if loc else None
        if ip is None:
            continue
        have = out.get(mac)
        if have is not None and have != ip:
            problems.append(
                Problem(
                    f"ucast-twice {ls_name} {mac}",
                    f"{ls_name}: remote MAC {mac} is at both {have} and {ip}; using the lower",
                )
            )
            ip = min(have, ip, key=ipaddress.IPv4Address)
        out[mac] = ip
    return out


def _mcast(
    tables: Tables,
    rows: Iterable[Row],
    ls: Row,
    vni: int,
    locators: _Locators,
    problems: list[Problem],
) -> tuple[set[str], dict[str, set[str]]]:
    ls_name = str(scalar(ls, "name"))
    sets = tables.get("Physical_Locator_Set", {})
    unknown: set[str] = set()
    mcast: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        text = str(scalar(row, "MAC") or "")
        set_uuid = scalar(row, "locator_set")
        lset = sets.get(set_uuid) if set_uuid else None
        if lset is None:
            problems.append(
                Problem(f"dangling-set {set_uuid}", f"{ls_name} {text}: missing locator set")
            )
            continue
        resolved = [
            ip
            for lu in lset.get("locators", ())
            if (ip := locators.remote(lu, vni, f"{ls_name} {text}")) is not None
        ]
        if text == UNKNOWN_DST:
            unknown.update(resolved)
            continue
        try:
            mac = normalize_mac(text)
        except ModelError:
            mac = ""
        if not mac or not is_multicast_mac(mac):
            problems.append(
                Problem(
                    f"mcast-mac {ls_name} {text}",
                    f"{ls_name}: Mcast_Macs_Remote MAC {text!r} is not a group address",
                )
            )
            continue
        mcast[mac].update(resolved)
    if not unknown:
        return set(), mcast
    if (scalar(ls, "replication_mode") or SERVICE_NODE) == SOURCE_NODE:
        return set(unknown), mcast
    # service_node: see the module docstring for why the lowest address is the one
    return {min(unknown, key=ipaddress.IPv4Address)}, mcast


__all__ = [
    "ENCAP",
    "INVALID_VLAN_MAP",
    "UNKNOWN_DST",
    "UNSPECIFIED_FAULT",
    "Desired",
    "Problem",
    "compute",
    "find_switch",
    "scalar",
]
