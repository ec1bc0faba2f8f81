"""The data-plane state of one VTEP node, as values.

The same types describe what the agent wants (built from the hardware_vtep replica by
`desired.py` through `NodeState.build`) and what the kernel has (read by `linux.py`), so
that `plan.py` can diff them as plain data. The state is kept at the kernel's level of
detail - devices, their master, their admin state, vxlan fdb entries as (device, MAC,
remote IP) - because a half-applied or hand-edited kernel state must be representable for
a restart to repair it. `LogicalSwitch` is the per-VNI view of the same thing, the shape a
replica of hardware_vtep naturally produces.

Ownership: every device an agent creates carries its mark in the interface alias
(`Naming.mark`, "hwvtep:<prefix>"); bridges and vxlan devices are moreover named for the
agent (`Naming`: a short prefix, a letter, the VNI), VLAN sub-interfaces (or the bridge
side of an eBPF pipe, on a kernel without 802.1Q) for their port and tag.
Physical ports are never ours: only their master (one of our bridges or none) and their
admin state are managed.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

IFNAMSIZ_MAX = 15
"""Longest Linux interface name (IFNAMSIZ is 16 with the terminating NUL)."""

VXLAN_DSTPORT = 4789
FLOOD_MAC = "00:00:00:00:00:00"
"""The vxlan fdb's default entry: where frames for unknown or broadcast MACs go."""

VNI_MAX = (1 << 24) - 1
VLAN_MAX = 4094

_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,5}")
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_IFNAME_BAD = re.compile(r"[\s/:]")
_HEX = frozenset("0123456789abcdef")

VIA_8021Q = "8021q"
"""A tagged binding realised as an 802.1Q sub-interface."""
VIA_BPF = "bpf"
"""A tagged binding realised as an eBPF pipe, for kernels without 802.1Q (vlan_bpf.py)."""


class ModelError(ValueError):
    """A value that cannot describe a Linux data plane (bad name, VNI, MAC, clash)."""


def normalize_mac(mac: str) -> str:
    """Return `mac` in the kernel's spelling (lowercase, colon-separated) or raise."""
    low = mac.strip().lower().replace("-", ":")
    if not _MAC_RE.fullmatch(low):
        raise ModelError(f"not a MAC address: {mac!r}")
    return low


@functools.lru_cache(maxsize=8192)
def normalize_ip(ip: str) -> str:
    """Return an IPv4/IPv6 address in canonical text form or raise.

    Cached: a node has few remote VTEPs and each fdb entry names one of them.
    """
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        raise ModelError(f"not an IP address: {ip!r}") from None


def is_multicast_mac(mac: str) -> bool:
    """True for group addresses (broadcast included): the I/G bit of the first octet."""
    return bool(int(mac[:2], 16) & 1)


def check_ifname(name: str) -> str:
    if not name or len(name) > IFNAMSIZ_MAX or _IFNAME_BAD.search(name) or name in (".", ".."):
        raise ModelError(f"not a valid interface name: {name!r}")
    return name


def subif_name(port: str, vlan: int) -> str:
    """The VLAN sub-interface of `port` for `vlan`: `port.N`, shortened to fit IFNAMSIZ.

    A shortened name keeps the start of the port name and adds 4 hex digits of a hash of
    the whole port name, so that two long ports sharing a start do not collide.
    """
    plain = f"{port}.{vlan}"
    if len(plain) <= IFNAMSIZ_MAX:
        return plain
    digest = hashlib.sha1(port.encode()).hexdigest()[:4]
    keep = IFNAMSIZ_MAX - len(digest) - 1 - len(str(vlan))
    return f"{port[:keep]}{digest}.{vlan}"


@dataclass(frozen=True, slots=True)
class Naming:
    """Names of the devices one agent owns, from its prefix (1-6 chars, [a-z][a-z0-9]*).

    Bridge `<prefix>b<VNI>`, vxlan `<prefix>x<VNI>`: at most 6 + 1 + 8 = 15 characters.
    """

    prefix: str

    def __post_init__(self) -> None:
        if not _PREFIX_RE.fullmatch(self.prefix):
            raise ModelError(f"agent prefix must match [a-z][a-z0-9]{{0,5}}: {self.prefix!r}")

    @property
    def mark(self) -> str:
        """Interface alias put on every device the agent creates."""
        return f"hwvtep:{self.prefix}"

    def bridge(self, vni: int) -> str:
        return f"{self.prefix}b{check_vni(vni)}"

    def vxlan(self, vni: int) -> str:
        return f"{self.prefix}x{check_vni(vni)}"

    def vni_of_bridge(self, name: str) -> int | None:
        return self._vni_of(name, "b")

    def vni_of_vxlan(self, name: str) -> int | None:
        return self._vni_of(name, "x")

    def owns_name(self, name: str) -> bool:
        return (
            self.vni_of_bridge(name) is not None
            or self.vni_of_vxlan(name) is not None
            or self.is_pipe_peer(name)
        )

    def pipe_peer(self, ifname: str) -> str:
        """The plumbing end of the eBPF pipe whose bridge side is `ifname` (vlan_bpf.py):
        `<prefix>t` and 8 hex digits of a hash of `ifname`."""
        return f"{self.prefix}t{hashlib.sha1(ifname.encode()).hexdigest()[:8]}"

    def is_pipe_peer(self, name: str) -> bool:
        head = self.prefix + "t"
        digits = name[len(head) :]
        return name.startswith(head) and len(digits) == 8 and all(c in _HEX for c in digits)

    def _vni_of(self, name: str, letter: str) -> int | None:
        head = self.prefix + letter
        digits = name[len(head) :]
        if not name.startswith(head) or not digits.isdigit() or not digits.isascii():
            return None
        # One spelling per VNI: "hvb05" is not ours.
        if digits != str(int(digits)) or int(digits) > VNI_MAX:
            return None
        return int(digits)


def check_vni(vni: int) -> int:
    if isinstance(vni, bool) or not isinstance(vni, int) or not 0 <= vni <= VNI_MAX:
        raise ModelError(f"VNI out of range 0..{VNI_MAX}: {vni!r}")
    return vni


# --- devices as the kernel has them -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bridge:
    name: str
    up: bool = True

    def __post_init__(self) -> None:
        check_ifname(self.name)


@dataclass(frozen=True, slots=True)
class Vxlan:
    """`ip link add NAME type vxlan id VNI local IP dstport PORT nolearning` + master/up."""

    name: str
    vni: int
    local_ip: str
    master: str | None
    dstport: int = VXLAN_DSTPORT
    learning: bool = False
    up: bool = True

    def __post_init__(self) -> None:
        check_ifname(self.name)
        check_vni(self.vni)
        object.__setattr__(self, "local_ip", normalize_ip(self.local_ip))
        if not 1 <= self.dstport <= 65535:
            raise ModelError(f"bad vxlan dstport {self.dstport}")

    @property
    def spec(self) -> tuple[int, str, int, bool]:
        """What can only be changed by re-creating the device."""
        return (self.vni, self.local_ip, self.dstport, self.learning)


@dataclass(frozen=True, slots=True)
class VlanIf:
    """The device `name` of physical port `port` for tag `vlan`, the one in the bridge.

    `via` says how the kernel carries it: an 802.1Q sub-interface (VIA_8021Q) or, where
    the kernel has no 802.1Q, the bridge side of an eBPF pipe (VIA_BPF, see vlan_bpf.py).
    `intact` is False only in an actual state, for a pipe missing one of its pieces
    (a program, the port's dispatcher entry): the plan makes it again.
    """

    name: str
    port: str
    vlan: int
    master: str | None
    up: bool = True
    via: str = VIA_8021Q
    intact: bool = True

    def __post_init__(self) -> None:
        check_ifname(self.name)
        check_ifname(self.port)
        if not 1 <= self.vlan <= VLAN_MAX:
            raise ModelError(f"VLAN tag out of range 1..{VLAN_MAX}: {self.vlan}")
        if self.via not in (VIA_8021Q, VIA_BPF):
            raise ModelError(f"unknown VLAN realisation {self.via!r}")

    @property
    def spec(self) -> tuple[str, int, str]:
        return (self.port, self.vlan, self.via)


@dataclass(frozen=True, slots=True)
class Port:
    """A physical port (not ours): its master and admin state, the parts we manage."""

    name: str
    master: str | None
    up: bool

    def __post_init__(self) -> None:
        check_ifname(self.name)


@dataclass(frozen=True, slots=True)
class FdbEntry:
    """A static vxlan fdb entry: frames for `mac` on vxlan `dev` go to remote VTEP `dst`.

    The all-zero MAC is the flood list (one entry per remote, appended).
    """

    dev: str
    mac: str
    dst: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", normalize_mac(self.mac))
        object.__setattr__(self, "dst", normalize_ip(self.dst))


@dataclass(frozen=True, slots=True)
class LearnedMac:
    """A MAC the bridge learned on one of its ports (a local host behind a binding)."""

    bridge: str
    ifname: str
    mac: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", normalize_mac(self.mac))


@dataclass(frozen=True, slots=True)
class Counters:
    """Interface counters of a bound device (rx: from the local side, tx: to it)."""

    rx_packets: int
    rx_bytes: int
    tx_packets: int
    tx_bytes: int


# --- the per-logical-switch view ----------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Binding:
    """Physical port `port` carrying the logical switch untagged (vlan 0) or with tag `vlan`."""

    port: str
    vlan: int = 0

    def __post_init__(self) -> None:
        check_ifname(self.port)
        if isinstance(self.vlan, bool) or not 0 <= self.vlan <= VLAN_MAX:
            raise ModelError(f"VLAN out of range 0..{VLAN_MAX}: {self.vlan!r}")

    @property
    def ifname(self) -> str:
        """The device enslaved to the bridge: the port itself, or its sub-interface."""
        return self.port if self.vlan == 0 else subif_name(self.port, self.vlan)


def _pairs(
    value: Iterable[tuple[str, str]] | Mapping[str, str], what: str, *, multicast: bool
) -> frozenset[tuple[str, str]]:
    items = value.items() if isinstance(value, Mapping) else value
    out = set()
    for mac, ip in items:
        m = normalize_mac(mac)
        if m == FLOOD_MAC or is_multicast_mac(m) != multicast:
            raise ModelError(f"{what} entry needs a {what} MAC, got {mac}")
        out.add((m, normalize_ip(ip)))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class LogicalSwitch:
    """One logical switch as the data plane sees it: VNI, local tunnel IP, bindings, remotes.

    `ucast` holds (unicast MAC, remote VTEP IP) pairs (Ucast_Macs_Remote), `flood` the
    remote VTEPs that get unknown-destination and broadcast frames (Mcast_Macs_Remote
    "unknown-dst"), `mcast` (multicast MAC, remote VTEP IP) pairs. Mappings are accepted
    for `ucast` (MAC -> IP) and `mcast` (MAC -> IPs) and normalised to pair sets.
    """

    vni: int
    local_ip: str
    bindings: frozenset[Binding] = frozenset()
    ucast: frozenset[tuple[str, str]] = frozenset()
    flood: frozenset[str] = frozenset()
    mcast: frozenset[tuple[str, str]] = frozenset()
    dstport: int = VXLAN_DSTPORT

    def __post_init__(self) -> None:
        check_vni(self.vni)
        object.__setattr__(self, "local_ip", normalize_ip(self.local_ip))
        object.__setattr__(self, "bindings", frozenset(self.bindings))
        object.__setattr__(self, "ucast", _pairs(self.ucast, "unicast", multicast=False))
        mcast: Iterable[tuple[str, str]] | Mapping[str, Iterable[str]] = self.mcast
        if isinstance(mcast, Mapping):
            mcast = [(m, ip) for m, ips in mcast.items() for ip in ips]
        object.__setattr__(self, "mcast", _pairs(mcast, "multicast", multicast=True))
        object.__setattr__(self, "flood", frozenset(normalize_ip(ip) for ip in self.flood))

    @classmethod
    def make(
        cls,
        vni: int,
        local_ip: str,
        bindings: Iterable[Binding] = (),
        ucast: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        flood: Iterable[str] = (),
        mcast: Mapping[str, Iterable[str]] | Iterable[tuple[str, str]] = (),
        dstport: int = VXLAN_DSTPORT,
    ) -> LogicalSwitch:
        """The typed way to pass mappings and plain iterables."""
        if isinstance(mcast, Mapping):
            mcast = [(m, ip) for m, ips in mcast.items() for ip in ips]
        return cls(
            vni,
            local_ip,
            frozenset(bindings),
            _pairs(ucast, "unicast", multicast=False),
            frozenset(flood),
            _pairs(mcast, "multicast", multicast=True),
            dstport,
        )

    def fdb(self, dev: str) -> frozenset[FdbEntry]:
        entries = {FdbEntry(dev, FLOOD_MAC, ip) for ip in self.flood}
        entries.update(FdbEntry(dev, mac, ip) for mac, ip in self.ucast | self.mcast)
        return frozenset(entries)


# --- the node -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeState:
    """All the data-plane objects of one agent on one node, plus what it learned.

    In an actual state, `ports` lists the physical ports the agent was asked about that
    exist, and every other link enslaved to one of its bridges; in a desired state, the
    ports it binds. `learned` is empty in a desired state and ignored by the planner.
    """

    prefix: str
    bridges: frozenset[Bridge] = frozenset()
    vxlans: frozenset[Vxlan] = frozenset()
    vlans: frozenset[VlanIf] = frozenset()
    ports: frozenset[Port] = frozenset()
    fdb: frozenset[FdbEntry] = frozenset()
    learned: frozenset[LearnedMac] = frozenset()
    naming: Naming = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        naming = Naming(self.prefix)
        object.__setattr__(self, "naming", naming)
        seen: set[str] = set()
        devices: list[Bridge | Vxlan | VlanIf | Port] = [
            *self.bridges,
            *self.vxlans,
            *self.vlans,
            *self.ports,
        ]
        for dev in devices:
            if dev.name in seen:
                raise ModelError(f"interface {dev.name} described twice")
            seen.add(dev.name)
        for b in self.bridges:
            if naming.vni_of_bridge(b.name) is None:
                raise ModelError(f"bridge {b.name} is not named for agent {self.prefix}")
        for v in self.vxlans:
            if naming.vni_of_vxlan(v.name) is None:
                raise ModelError(f"vxlan {v.name} is not named for agent {self.prefix}")
        for p in self.ports:
            if naming.owns_name(p.name):
                raise ModelError(f"port {p.name} has a name reserved for agent devices")
        vx_names = {v.name for v in self.vxlans}
        for e in self.fdb:
            if e.dev not in vx_names:
                raise ModelError(f"fdb entry on {e.dev}, which is not one of our vxlans")
        vnis = [(v.vni, v.dstport) for v in self.vxlans]
        if len(vnis) != len(set(vnis)):
            raise ModelError("two vxlan devices with the same VNI and dstport")
        tags = [(v.port, v.vlan) for v in self.vlans]
        if len(tags) != len(set(tags)):
            raise ModelError("two sub-interfaces for the same port and VLAN")

    # -- construction from the per-switch view --

    @classmethod
    def build(
        cls, prefix: str, switches: Iterable[LogicalSwitch], vlan_via: str = VIA_8021Q
    ) -> NodeState:
        """The desired state for `switches`; raises ModelError on a clash between them.

        Every device comes up; a port is enslaved to the bridge of its vlan-0 binding, and a
        port carrying only tagged bindings is brought up but left without a master. Tagged
        bindings are realised `vlan_via` (VIA_8021Q or VIA_BPF).
        """
        naming = Naming(prefix)
        bridges: set[Bridge] = set()
        vxlans: set[Vxlan] = set()
        vlans: set[VlanIf] = set()
        fdb: set[FdbEntry] = set()
        port_master: dict[str, str | None] = {}
        owner: dict[Binding, int] = {}
        by_vni: dict[int, LogicalSwitch] = {}
        for ls in switches:
            if ls.vni in by_vni:
                raise ModelError(f"two logical switches with VNI {ls.vni}")
            by_vni[ls.vni] = ls
            br, vx = naming.bridge(ls.vni), naming.vxlan(ls.vni)
            bridges.add(Bridge(br))
            vxlans.add(Vxlan(vx, ls.vni, ls.local_ip, br, ls.dstport))
            fdb.update(ls.fdb(vx))
            for b in ls.bindings:
                if b in owner:
                    raise ModelError(
                        f"port {b.port} vlan {b.vlan} bound to VNIs {owner[b]} and {ls.vni}"
                    )
                owner[b] = ls.vni
                if b.vlan == 0:
                    port_master[b.port] = br
                else:
                    port_master.setdefault(b.port, None)
                    vlans.add(VlanIf(b.ifname, b.port, b.vlan, br, via=vlan_via))
        ports = frozenset(Port(name, master, True) for name, master in port_master.items())
        return cls(
            prefix,
            frozenset(bridges),
            frozenset(vxlans),
            frozenset(vlans),
            ports,
            frozenset(fdb),
        )

    # -- views --

    def logical_switches(self) -> dict[int, LogicalSwitch]:
        """Complete logical switches (bridge + vxlan enslaved to it), keyed by VNI."""
        naming = self.naming
        bridge_names = {b.name for b in self.bridges}
        out: dict[int, LogicalSwitch] = {}
        for vx in self.vxlans:
            vni = naming.vni_of_vxlan(vx.name)
            if vni is None or vx.master != naming.bridge(vni) or vx.master not in bridge_names:
                continue
            br = vx.master
            bindings = {Binding(p.name, 0) for p in self.ports if p.master == br}
            bindings.update(Binding(v.port, v.vlan) for v in self.vlans if v.master == br)
            entries = [e for e in self.fdb if e.dev == vx.name]
            out[vni] = LogicalSwitch(
                vni=vx.vni,
                local_ip=vx.local_ip,
                bindings=frozenset(bindings),
                ucast=frozenset(
                    (e.mac, e.dst)
                    for e in entries
                    if e.mac != FLOOD_MAC and not is_multicast_mac(e.mac)
                ),
                flood=frozenset(e.dst for e in entries if e.mac == FLOOD_MAC),
                mcast=frozenset(
                    (e.mac, e.dst)
                    for e in entries
                    if e.mac != FLOOD_MAC and is_multicast_mac(e.mac)
                ),
                dstport=vx.dstport,
            )
        return out

    def learned_by_binding(self) -> dict[tuple[int, Binding], frozenset[str]]:
        """Learned MACs per (VNI, binding), for Ucast_Macs_Local; unknown ports skipped."""
        naming = self.naming
        via_vlan = {v.name: Binding(v.port, v.vlan) for v in self.vlans}
        acc: dict[tuple[int, Binding], set[str]] = {}
        for lm in self.learned:
            vni = naming.vni_of_bridge(lm.bridge)
            if vni is None:
                continue
            binding = via_vlan.get(lm.ifname)
            if binding is None:
                if any(p.name == lm.ifname for p in self.ports):
                    binding = Binding(lm.ifname, 0)
                else:
                    continue
            acc.setdefault((vni, binding), set()).add(lm.mac)
        return {k: frozenset(v) for k, v in acc.items()}
