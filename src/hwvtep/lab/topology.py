"""YAML lab topology -> validated, immutable model.

`hwvtep lab up` must refuse a wrong topology before it creates anything, and tell the user
where the mistake is. So this module reads the YAML node tree itself (to keep each value's
line and column), checks every field and the cross-references between nodes and links, and
reports *all* problems at once as ``file:line:column: field: message``.

The schema is documented in docs/lab-topology.md. Pure: text in, model or error out; the
only file access is the thin :func:`load_file` wrapper.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

KINDS = ("host", "hypervisor", "hwvtep", "router", "controller")
IFNAMSIZ = 15  # the kernel's limit on interface names, without the trailing NUL
VXLAN_PORT = 4789
MAX_VNI = (1 << 24) - 1

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_DAEMON_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")
_SYSCTL_RE = re.compile(r"net(\.[A-Za-z0-9_-]+)+\Z")
LAB_NAME_MAX = 20
NODE_NAME_MAX = 24

_COMMON_FIELDS = ("kind", "interfaces", "routes", "gateway", "sysctls", "daemons")
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "host": (),
    "router": (),
    "controller": ("targets",),
    "hypervisor": ("tunnel_ip", "networks"),
    "hwvtep": ("tunnel_ip", "physical_switch", "physical_ports", "ovsdb"),
}
# the daemons `up` runs on every hwvtep node, under these names
HWVTEP_DAEMONS = ("ovsdb-server", "agent")

# Resolves a command name to the file that would run (None: not found). `parse` uses it to
# refuse a topology whose daemons cannot start, before anything is created.
ToolFinder = Callable[[str], str | None]


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    addresses: tuple[IPInterface, ...] = ()
    mac: str | None = None  # lowercase, colon separated; None lets the kernel choose


@dataclass(frozen=True, slots=True)
class Route:
    to: IPNetwork
    via: IPAddress


@dataclass(frozen=True, slots=True)
class OverlayNetwork:
    """A hypervisor's static VXLAN segment: local ports bridged to one VNI."""

    name: str
    vni: int
    ports: tuple[str, ...]
    remote_macs: tuple[tuple[str, IPAddress], ...] = ()  # MAC -> remote VTEP
    flood: tuple[IPAddress, ...] = ()  # VTEPs that get broadcast/unknown/multicast

    @property
    def bridge(self) -> str:
        return bridge_name(self.vni)

    @property
    def vxlan(self) -> str:
        return vxlan_name(self.vni)


@dataclass(frozen=True, slots=True)
class Daemon:
    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    kind: str
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    daemons: tuple[Daemon, ...] = ()
    tunnel_ip: IPAddress | None = None
    networks: tuple[OverlayNetwork, ...] = ()
    physical_switch: str | None = None
    physical_ports: tuple[str, ...] = ()
    ovsdb: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()

    @property
    def switch_name(self) -> str:
        """The Physical_Switch an hwvtep node's agent serves (default: the node's name)."""
        return self.physical_switch or self.name

    def interface(self, name: str) -> Interface:
        for iface in self.interfaces:
            if iface.name == name:
                return iface
        raise KeyError(f"node {self.name} has no interface {name}")

    def all_sysctls(self) -> tuple[tuple[str, str], ...]:
        """The sysctls to apply: the kind's own (forwarding for routers), then the user's."""
        base: dict[str, str] = {}
        if self.kind == "router":
            base["net.ipv4.ip_forward"] = "1"
            if any(a.version == 6 for i in self.interfaces for a in i.addresses):
                base["net.ipv6.conf.all.forwarding"] = "1"
        base.update(self.sysctls)
        return tuple(base.items())

    def addresses(self) -> Iterator[tuple[str, IPInterface]]:
        for iface in self.interfaces:
            for addr in iface.addresses:
                yield iface.name, addr


@dataclass(frozen=True, slots=True)
class Endpoint:
    node: str
    interface: str

    def __str__(self) -> str:
        return f"{self.node}:{self.interface}"


@dataclass(frozen=True, slots=True)
class Link:
    a: Endpoint
    b: Endpoint
    mtu: int | None = None


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    source: str = field(default="<topology>", compare=False)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"lab {self.name} has no node {name}")

    def ovsdb_endpoints(self, node: Node) -> tuple[str, ...]:
        """Where a controller reaches `node`'s OVSDB listeners (``tcp:IP:PORT``...)."""
        out: list[str] = []
        for remote in node.ovsdb:
            method, _, rest = remote.partition(":")
            if method == "punix":
                out.append(f"unix:{rest}")
                continue
            port, ip = _split_port_ip(rest)
            host: IPAddress | None = None
            if ip is not None and not ip.is_unspecified:
                host = ip
            elif node.tunnel_ip is not None:
                host = node.tunnel_ip
            else:
                host = next((a.ip for _, a in node.addresses()), None)
            text = "?" if host is None else (f"[{host}]" if host.version == 6 else str(host))
            out.append(f"{method[1:]}:{text}:{port}")
        return tuple(out)


    def address_to_reach(self, src: str, dst: str) -> IPAddress:
        """The address of node `dst` that node `src` should ping.

        `dst` may also be ``NODE:INTERFACE`` or an IP literal. A `dst` address on a subnet
        `src` is attached to wins (that is how red1 finds red2 across the overlay);
        otherwise the tunnel IP, otherwise the first address.
        """
        try:
            return ipaddress.ip_address(dst)
        except ValueError:
            pass
        node_name, _, iface_name = dst.partition(":")
        target = self.node(node_name)
        candidates = [a for name, a in target.addresses() if not iface_name or name == iface_name]
        if not candidates:
            raise KeyError(f"{dst} has no address")
        mine = [a.network for _, a in self.node(src).addresses()]
        for cand in candidates:
            if any(cand.version == net.version and cand.ip in net for net in mine):
                return cand.ip
        if not iface_name and target.tunnel_ip is not None:
            return target.tunnel_ip
        return candidates[0].ip


def bridge_name(vni: int) -> str:
    return f"br{vni}"


def vxlan_name(vni: int) -> str:
    return f"vx{vni}"


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    field: str  # dotted path, e.g. nodes.red1.interfaces.eth0.mac
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class TopologyError(Exception):
    """Every problem found in a topology file, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.column, p.field)))
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------- parsing

_Mark = tuple[int, int]
_NULL_TAG = "tag:yaml.org,2002:null"
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Reader:
    """Walks the composed YAML tree, remembering where every field was written."""

    def __init__(self, filename: str, loader: yaml.SafeLoader) -> None:
        self.file = filename
        self.loader = loader
        self.problems: list[Problem] = []
        self.marks: dict[str, _Mark] = {}

    # -- reporting
    def mark_of(self, node: yaml.Node) -> _Mark:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def error(self, where: yaml.Node | _Mark, path: str, message: str) -> None:
        line, col = self.mark_of(where) if isinstance(where, yaml.Node) else where
        self.problems.append(Problem(self.file, line, col, path, message))

    def error_at(self, path: str, message: str, fallback: _Mark = (1, 1)) -> None:
        self.error(self.marks.get(path, fallback), path, message)

    def line(self, path: str) -> int:
        return self.marks.get(path, (0, 0))[0]

    # -- shapes
    def mapping(self, node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        self.marks.setdefault(path, self.mark_of(node))
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, "expected a mapping")
            return None
        out = self._pairs(node, path, set())
        for key, (_, vnode) in out.items():
            self.marks[f"{path}.{key}" if path else key] = self.mark_of(vnode)
        return out

    def _pairs(
        self, node: yaml.MappingNode, path: str, active: set[int]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The mapping's keys, YAML merge keys (<<) applied: own keys override merged ones,
        an earlier merge source overrides a later one. The node tree is left untouched."""
        active = active | {id(node)}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            if knode.tag == _MERGE_TAG:
                sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                for src in sources:
                    if not isinstance(src, yaml.MappingNode) or id(src) in active:
                        self.error(src, path, "a merge (<<) takes a mapping or a list of them")
                        continue
                    for key, pair in self._pairs(src, path, active).items():
                        merged.setdefault(key, pair)
                continue
            if not isinstance(knode, yaml.ScalarNode) or knode.tag == _NULL_TAG:
                self.error(knode, path, "keys must be plain strings")
                continue
            key = knode.value
            if key in own:
                first = self.mark_of(own[key][0])[0]
                sub = f"{path}.{key}" if path else key
                self.error(knode, sub, f"duplicate key '{key}' (first at line {first})")
                continue
            own[key] = (knode, vnode)
        return {**merged, **own}

    def check_fields(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], allowed: tuple[str, ...],
        path: str, what: str,
    ) -> None:
        for key, (knode, _) in fields.items():
            if key not in allowed:
                sub = f"{path}.{key}" if path else key
                self.error(knode, sub, f"unknown field '{key}' for {what} "
                           f"(allowed: {', '.join(allowed)})")

    def sequence(self, node: yaml.Node, path: str, *, scalar_ok: bool = False) -> list[yaml.Node]:
        """A list; a lone scalar counts as a one-item list where `scalar_ok`."""
        self.marks.setdefault(path, self.mark_of(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.marks[f"{path}[{i}]"] = self.mark_of(item)
            return list(node.value)
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return []
        if scalar_ok and isinstance(node, yaml.ScalarNode):
            self.marks[f"{path}[0]"] = self.mark_of(node)
            return [node]
        self.error(node, path, "expected a list")
        return []

    def string(self, node: yaml.Node, path: str) -> str | None:
        """A scalar's text as written: `10:00:00:00:00:01` must not become a base-60 int."""
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, path, "expected a string")
            return None
        if node.tag == _NULL_TAG or node.value == "":
            self.error(node, path, "missing value")
            return None
        return str(node.value)

    def integer(self, node: yaml.Node, path: str, lo: int, hi: int, what: str) -> int | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT_TAG:
            self.error(node, path, f"{what} must be an integer")
            return None
        value = self.loader.construct_object(node)
        if not isinstance(value, int) or not lo <= value <= hi:
            self.error(node, path, f"{what} {node.value} is out of range {lo}..{hi}")
            return None
        return value

    def item(self, path: str, i: int) -> str:
        return f"{path}[{i}]"


def _split_port_ip(rest: str) -> tuple[int, IPAddress | None]:
    port_text, _, ip_text = rest.partition(":")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 1..65535")
    if not ip_text:
        return port, None
    if ip_text.startswith("[") and ip_text.endswith("]"):
        ip_text = ip_text[1:-1]
    return port, ipaddress.ip_address(ip_text)


def _interface_name_problem(name: str) -> str | None:
    if not name:
        return "interface name is empty"
    if len(name.encode()) > IFNAMSIZ:
        return f"interface name '{name}' is longer than {IFNAMSIZ} characters"
    if name in (".", "..") or any(c in name for c in "/:") or any(c.isspace() for c in name):
        return f"interface name '{name}' may not be '.', '..' or contain '/', ':' or spaces"
    if name == "lo":
        return "interface name 'lo' is the namespace's loopback"
    return None


def _parse_mac(r: _Reader, node: yaml.Node, path: str) -> str | None:
    text = r.string(node, path)
    if text is None:
        return None
    if not _MAC_RE.match(text):
        r.error(node, path, f"'{text}' is not a MAC address (six hex bytes separated by ':')")
        return None
    mac = text.lower()
    if int(mac[:2], 16) & 1:
        r.error(node, path, f"{mac} is a multicast MAC; an interface needs a unicast one")
        return None
    if mac == "00:00:00:00:00:00":
        r.error(node, path, "00:00:00:00:00:00 is not a usable MAC")
        return None
    return mac


def _parse_ip(r: _Reader, node: yaml.Node, path: str, what: str) -> IPAddress | None:
    text = r.string(node, path)
    if text is None:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        r.error(node, path, f"'{text}' is not a valid {what}")
        return None


def _parse_cidr(r: _Reader, node: yaml.Node, path: str) -> IPInterface | None:
    text = r.string(node, path)
    if text is None:
        return None
    if "/" not in text:
        r.error(node, path, f"'{text}' lacks a prefix length (write it as CIDR, e.g. {text}/24)")
        return None
    try:
        addr = ipaddress.ip_interface(text)
    except ValueError:
        r.error(node, path, f"'{text}' is not an IP address with a prefix length (CIDR)")
        return None
    net = addr.network
    if addr.version == 4 and net.prefixlen < 31:
        if addr.ip == net.network_address:
            r.error(node, path, f"{text} is the network address of {net}")
            return None
        if addr.ip == net.broadcast_address:
            r.error(node, path, f"{text} is the broadcast address of {net}")
            return None
    if addr.ip.is_multicast or addr.ip.is_unspecified or addr.ip.is_loopback:
        r.error(node, path, f"{text} is not a usable interface address")
        return None
    return addr


def _parse_interface(r: _Reader, name: str, node: yaml.Node, path: str) -> Interface | None:
    if isinstance(node, (yaml.ScalarNode, yaml.SequenceNode)) and node.tag != _NULL_TAG:
        # shorthand: `eth0: 10.0.0.1/24` or `eth0: [10.0.0.1/24, fd00::1/64]`
        addr_nodes = r.sequence(node, path + ".addresses", scalar_ok=True)
        mac = None
    else:
        fields = r.mapping(node, path)
        if fields is None:
            return None
        r.check_fields(fields, ("addresses", "mac"), path, "an interface")
        addr_nodes = (
            r.sequence(fields["addresses"][1], path + ".addresses", scalar_ok=True)
            if "addresses" in fields else []
        )
        mac = _parse_mac(r, fields["mac"][1], path + ".mac") if "mac" in fields else None
    addresses: list[IPInterface] = []
    for i, anode in enumerate(addr_nodes):
        apath = r.item(path + ".addresses", i)
        addr = _parse_cidr(r, anode, apath)
        if addr is not None:
            addresses.append(addr)
    return Interface(name=name, addresses=tuple(addresses), mac=mac)


def _parse_routes(
    r: _Reader, fields: dict[str, tuple[yaml.Node, yaml.Node]], path: str
) -> list[tuple[Route, str]]:
    routes: list[tuple[Route, str]] = []
    if "gateway" in fields:
        gpath = path + ".gateway"
        via = _parse_ip(r, fields["gateway"][1], gpath, "gateway address")
        if via is not None:
            default = ipaddress.ip_network("0.0.0.0/0" if via.version == 4 else "::/0")
            routes.append((Route(default, via), gpath))
    if "routes" in fields:
        rpath = path + ".routes"
        for i, rnode in enumerate(r.sequence(fields["routes"][1], rpath)):
            ipath = r.item(rpath, i)
            rfields = r.mapping(rnode, ipath)
            if rfields is None:
                continue
            r.check_fields(rfields, ("to", "via"), ipath, "a route")
            if "to" not in rfields or "via" not in rfields:
                missing = "to" if "to" not in rfields else "via"
                r.error(rnode, ipath, f"missing required field '{missing}'")
                continue
            to_text = r.string(rfields["to"][1], ipath + ".to")
            via = _parse_ip(r, rfields["via"][1], ipath + ".via", "next-hop address")
            if to_text is None or via is None:
                continue
            if to_text == "default":
                to_text = "0.0.0.0/0" if via.version == 4 else "::/0"
            try:
                to = ipaddress.ip_network(to_text)
            except ValueError as exc:
                r.error(rfields["to"][1], ipath + ".to",
                        f"'{to_text}' is not a destination network: {exc}")
                continue
            if to.version != via.version:
                r.error(rfields["via"][1], ipath + ".via",
                        f"next hop {via} is not of the same IP version as {to}")
                continue
            routes.append((Route(to, via), ipath))
    return routes


def _parse_daemons(r: _Reader, node: yaml.Node, path: str) -> list[Daemon]:
    out: list[Daemon] = []
    fields = r.mapping(node, path)
    for name, (knode, vnode) in (fields or {}).items():
        dpath = f"{path}.{name}"
        if not _DAEMON_RE.match(name):
            r.error(knode, dpath, f"daemon name '{name}' must be letters, digits, '.', '-', '_'")
            continue
        argv: list[str] = []
        if isinstance(vnode, yaml.SequenceNode):
            for i, item in enumerate(r.sequence(vnode, dpath)):
                text = r.string(item, r.item(dpath, i))
                if text is not None:
                    argv.append(text)
        else:
            text = r.string(vnode, dpath)
            if text is None:
                continue
            try:
                argv = shlex.split(text)
            except ValueError as exc:
                r.error(vnode, dpath, f"cannot split the command line: {exc}")
                continue
        if not argv:
            r.error(vnode, dpath, "empty command")
            continue
        out.append(Daemon(name, tuple(argv)))
    return out


def _parse_sysctls(r: _Reader, node: yaml.Node, path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, (knode, vnode) in (r.mapping(node, path) or {}).items():
        spath = f"{path}.{key}"
        if not _SYSCTL_RE.match(key):
            r.error(knode, spath,
                    f"sysctl '{key}' is not a per-namespace 'net.' setting")
            continue
        value = r.string(vnode, spath)
        if value is not None:
            out.append((key, value))
    return out


def _parse_network(
    r: _Reader, name: str, node: yaml.Node, path: str
) -> OverlayNetwork | None:
    fields = r.mapping(node, path)
    if fields is None:
        return None
    r.check_fields(fields, ("vni", "ports", "remote_macs", "flood"), path, "a network")
    if "vni" not in fields:
        r.error(node, path, "missing required field 'vni'")
        return None
    vni = r.integer(fields["vni"][1], path + ".vni", 1, MAX_VNI, "vni")
    ports: list[str] = []
    if "ports" in fields:
        for i, pnode in enumerate(r.sequence(fields["ports"][1], path + ".ports", scalar_ok=True)):
            text = r.string(pnode, r.item(path + ".ports", i))
            if text is not None:
                ports.append(text)
    remote: list[tuple[str, IPAddress]] = []
    if "remote_macs" in fields:
        mpath = path + ".remote_macs"
        for mac_text, (knode, vnode) in (r.mapping(fields["remote_macs"][1], mpath) or {}).items():
            mac = _parse_mac(r, knode, f"{mpath}.{mac_text}")
            ip = _parse_ip(r, vnode, f"{mpath}.{mac_text}", "remote VTEP address")
            if mac is not None and ip is not None:
                remote.append((mac, ip))
    flood: list[IPAddress] = []
    if "flood" in fields:
        fpath = path + ".flood"
        for i, fnode in enumerate(r.sequence(fields["flood"][1], fpath, scalar_ok=True)):
            ip = _parse_ip(r, fnode, r.item(fpath, i), "remote VTEP address")
            if ip is not None:
                flood.append(ip)
    if vni is None:
        return None
    return OverlayNetwork(name, vni, tuple(ports), tuple(remote), tuple(flood))


def _parse_node(r: _Reader, name: str, node: yaml.Node, path: str) -> Node | None:
    fields = r.mapping(node, path)
    if fields is None:
        return None
    if "kind" not in fields:
        r.error(node, path, f"missing required field 'kind' (one of: {', '.join(KINDS)})")
        return None
    kind = r.string(fields["kind"][1], path + ".kind")
    if kind is None:
        return None
    if kind not in KINDS:
        r.error(fields["kind"][1], path + ".kind",
                f"unknown kind '{kind}' (expected one of: {', '.join(KINDS)})")
        return None
    r.check_fields(fields, _COMMON_FIELDS + _KIND_FIELDS[kind], path, f"a node of kind {kind}")

    interfaces: list[Interface] = []
    if "interfaces" in fields:
        ipath = path + ".interfaces"
        for iname, (knode, vnode) in (r.mapping(fields["interfaces"][1], ipath) or {}).items():
            problem = _interface_name_problem(iname)
            if problem:
                r.error(knode, f"{ipath}.{iname}", problem)
                continue
            iface = _parse_interface(r, iname, vnode, f"{ipath}.{iname}")
            if iface is not None:
                interfaces.append(iface)

    routes = _parse_routes(r, fields, path)
    sysctls = _parse_sysctls(r, fields["sysctls"][1], path + ".sysctls") \
        if "sysctls" in fields else []
    daemons = _parse_daemons(r, fields["daemons"][1], path + ".daemons") \
        if "daemons" in fields else []

    tunnel_ip = None
    if kind in ("hypervisor", "hwvtep"):
        if "tunnel_ip" not in fields:
            r.error(node, path, "missing required field 'tunnel_ip'")
        else:
            tunnel_ip = _parse_ip(r, fields["tunnel_ip"][1], path + ".tunnel_ip", "tunnel IP")

    networks: list[OverlayNetwork] = []
    if "networks" in fields:
        npath = path + ".networks"
        for nname, (knode, vnode) in (r.mapping(fields["networks"][1], npath) or {}).items():
            if not _NAME_RE.match(nname):
                r.error(knode, f"{npath}.{nname}",
                        f"network name '{nname}' must be letters, digits, '-' or '_'")
                continue
            net = _parse_network(r, nname, vnode, f"{npath}.{nname}")
            if net is not None:
                networks.append(net)

    def strings(key: str) -> list[str]:
        if key not in fields:
            return []
        spath = f"{path}.{key}"
        out = []
        for i, snode in enumerate(r.sequence(fields[key][1], spath, scalar_ok=True)):
            text = r.string(snode, r.item(spath, i))
            if text is not None:
                out.append(text)
        return out

    return Node(
        name=name,
        kind=kind,
        interfaces=tuple(interfaces),
        routes=tuple(rt for rt, _ in routes),
        sysctls=tuple(sysctls),
        daemons=tuple(daemons),
        tunnel_ip=tunnel_ip,
        networks=tuple(networks),
        physical_switch=_parse_switch_name(r, fields, path),
        physical_ports=tuple(strings("physical_ports")),
        ovsdb=tuple(strings("ovsdb")),
        targets=tuple(strings("targets")),
    )


def _parse_switch_name(
    r: _Reader, fields: dict[str, tuple[yaml.Node, yaml.Node]], path: str
) -> str | None:
    if "physical_switch" not in fields:
        return None
    vnode = fields["physical_switch"][1]
    text = r.string(vnode, path + ".physical_switch")
    if text is not None and (not text.isprintable() or text != text.strip()):
        r.error(vnode, path + ".physical_switch",
                f"physical switch name {text!r} must be printable, without surrounding spaces")
        return None
    return text


def _parse_endpoint(r: _Reader, node: yaml.Node, path: str) -> Endpoint | None:
    text = r.string(node, path)
    if text is None:
        return None
    node_name, sep, iface = text.partition(":")
    if not sep or not node_name or not iface or ":" in iface:
        r.error(node, path, f"'{text}' is not NODE:INTERFACE")
        return None
    problem = _interface_name_problem(iface)
    if problem:
        r.error(node, path, problem)
        return None
    return Endpoint(node_name, iface)


def _parse_links(r: _Reader, node: yaml.Node) -> list[tuple[Link, str]]:
    links: list[tuple[Link, str]] = []
    for i, lnode in enumerate(r.sequence(node, "links")):
        path = r.item("links", i)
        mtu = None
        if isinstance(lnode, yaml.MappingNode):
            fields = r.mapping(lnode, path)
            if fields is None:
                continue
            r.check_fields(fields, ("endpoints", "mtu"), path, "a link")
            if "mtu" in fields:
                mtu = r.integer(fields["mtu"][1], path + ".mtu", 68, 65535, "mtu")
            if "endpoints" not in fields:
                r.error(lnode, path, "missing required field 'endpoints'")
                continue
            epath = path + ".endpoints"
            ends = r.sequence(fields["endpoints"][1], epath)
            enode: yaml.Node = fields["endpoints"][1]
        else:
            epath = path
            ends = r.sequence(lnode, path)
            enode = lnode
        if len(ends) != 2:
            if isinstance(enode, yaml.SequenceNode):
                r.error(enode, epath, f"a link joins exactly 2 endpoints, not {len(ends)}")
            continue
        a = _parse_endpoint(r, ends[0], r.item(epath, 0))
        b = _parse_endpoint(r, ends[1], r.item(epath, 1))
        if a is not None and b is not None:
            links.append((Link(a, b, mtu), epath))
    return links


# --------------------------------------------------------------------------- checks


def _check(r: _Reader, nodes: list[Node], links: list[tuple[Link, str]]) -> list[Node]:
    """Cross-reference checks; returns the nodes completed with link-implied interfaces."""
    by_name = {n.name: n for n in nodes}
    used: dict[tuple[str, str], str] = {}  # (node, iface) -> path of the link using it
    implied: dict[str, list[str]] = {n.name: [] for n in nodes}
    for link, epath in links:
        for i, end in enumerate((link.a, link.b)):
            path = r.item(epath, i)
            node = by_name.get(end.node)
            if node is None:
                r.error_at(path, f"no node named '{end.node}'")
                continue
            key = (end.node, end.interface)
            if key in used:
                r.error_at(path, f"interface {end} is already used by the link at line "
                           f"{r.line(used[key])}")
                continue
            used[key] = path
            if all(it.name != end.interface for it in node.interfaces):
                implied[end.node].append(end.interface)
                r.marks[_iface_path(f"nodes.{end.node}", end.interface)] = r.marks[path]

    done: list[Node] = []
    for node in nodes:
        npath = f"nodes.{node.name}"
        ifaces = node.interfaces + tuple(Interface(name) for name in implied[node.name])
        node = Node(**{**_fields(node), "interfaces": ifaces})
        for iface in node.interfaces:
            if (node.name, iface.name) not in used:
                r.error_at(f"{npath}.interfaces.{iface.name}",
                           f"interface {iface.name} of node {node.name} is not connected by "
                           "any link")
        _check_node(r, node, npath)
        done.append(node)

    _check_lab_wide(r, done, links)
    return done


def _fields(node: Node) -> dict[str, Any]:
    return {name: getattr(node, name) for name in Node.__slots__}


def _iface_path(npath: str, iface: str) -> str:
    return f"{npath}.interfaces.{iface}"


def _check_node(r: _Reader, node: Node, npath: str) -> None:
    names = {i.name for i in node.interfaces}
    # interfaces that are bridged (switch ports) may not carry addresses
    bridged: dict[str, str] = {}
    for net in node.networks:
        for i, port in enumerate(net.ports):
            bridged.setdefault(port, f"{npath}.networks.{net.name}.ports[{i}]")
    for i, port in enumerate(node.physical_ports):
        bridged.setdefault(port, f"{npath}.physical_ports[{i}]")

    # addresses: no duplicates and no overlapping subnets inside one node
    seen: list[tuple[IPInterface, str, str]] = []
    for iface in node.interfaces:
        for j, addr in enumerate(iface.addresses):
            apath = f"{_iface_path(npath, iface.name)}.addresses[{j}]"
            for other, oname, opath in seen:
                if other.version != addr.version:
                    continue
                if other.ip == addr.ip:
                    r.error_at(apath, f"address {addr.ip} is already on interface {oname} "
                               f"(line {r.line(opath)})")
                    break
                if other.network.overlaps(addr.network):
                    r.error_at(apath, f"{addr} overlaps {other.network} on interface {oname} "
                               f"(line {r.line(opath)})")
                    break
            seen.append((addr, iface.name, apath))

    routed_ifaces = [i for i in node.interfaces if i.name not in bridged]
    connected = [a for i in routed_ifaces for a in i.addresses]

    # routes
    dests: dict[IPNetwork, str] = {}
    for k, route in enumerate(node.routes):
        rpath = _route_path(r, npath, k, node)
        if route.to in dests:
            r.error_at(rpath, f"a route to {route.to} is already given at line "
                       f"{r.line(dests[route.to])}")
            continue
        dests[route.to] = rpath
        if not any(route.via in a.network for a in connected):
            r.error_at(rpath, f"next hop {route.via} is not in a subnet of any interface "
                       f"of node {node.name}")

    # kind specifics
    if node.tunnel_ip is not None:
        tpath = f"{npath}.tunnel_ip"
        owner = next((i.name for i in node.interfaces
                      if any(a.ip == node.tunnel_ip for a in i.addresses)), None)
        if owner is None:
            r.error_at(tpath, f"tunnel_ip {node.tunnel_ip} is not an address of any interface "
                       f"of node {node.name}")
        elif owner in bridged:
            r.error_at(tpath, f"tunnel_ip {node.tunnel_ip} is on {owner}, which is a bridged port")

    vnis: dict[int, str] = {}
    for net in node.networks:
        netpath = f"{npath}.networks.{net.name}"
        if net.vni in vnis:
            r.error_at(netpath + ".vni",
                       f"vni {net.vni} is already used by network {vnis[net.vni]}")
        vnis.setdefault(net.vni, net.name)
        for dev in (net.bridge, net.vxlan):
            if dev in names:
                r.error_at(_iface_path(npath, dev), f"interface name '{dev}' is reserved for "
                           f"network {net.name} (vni {net.vni})")
        for i, port in enumerate(net.ports):
            ppath = f"{netpath}.ports[{i}]"
            owner_path = bridged[port]
            if owner_path != ppath:
                r.error_at(ppath, f"port {port} is already in another network "
                           f"(line {r.line(owner_path)})")
        for mac, ip in net.remote_macs:
            _check_remote(r, node, ip, f"{netpath}.remote_macs.{mac}")
        for i, ip in enumerate(net.flood):
            _check_remote(r, node, ip, f"{netpath}.flood[{i}]")

    for i, port in enumerate(node.physical_ports):
        ppath = f"{npath}.physical_ports[{i}]"
        if bridged[port] != ppath:
            r.error_at(ppath, f"physical port {port} is listed twice")

    for port, ppath in bridged.items():
        if port not in names:
            r.error_at(ppath, f"port '{port}' is not an interface of node {node.name}")
        elif node.interface(port).addresses:
            r.error_at(ppath, f"port {port} is bridged and must not have addresses")

    for i, remote in enumerate(node.ovsdb):
        _check_remote_listener(r, node, remote, f"{npath}.ovsdb[{i}]")

    if node.kind == "hwvtep":
        for daemon in node.daemons:
            if daemon.name in HWVTEP_DAEMONS:
                r.error_at(f"{npath}.daemons.{daemon.name}",
                           f"daemon name '{daemon.name}' is taken by the hwvtep node's own "
                           f"daemons ({', '.join(HWVTEP_DAEMONS)})")


def _route_path(r: _Reader, npath: str, k: int, node: Node) -> str:
    # routes[] in the model start with the `gateway` shorthand when it was given
    if f"{npath}.gateway" in r.marks:
        return f"{npath}.gateway" if k == 0 else f"{npath}.routes[{k - 1}]"
    return f"{npath}.routes[{k}]"


def _check_remote(r: _Reader, node: Node, ip: IPAddress, path: str) -> None:
    if node.tunnel_ip is None:
        return
    if ip.version != node.tunnel_ip.version:
        r.error_at(path, f"remote VTEP {ip} is not of the same IP version as tunnel_ip "
                   f"{node.tunnel_ip}")
    elif ip == node.tunnel_ip:
        r.error_at(path, f"remote VTEP {ip} is this node's own tunnel_ip")


def _check_remote_listener(r: _Reader, node: Node, remote: str, path: str) -> None:
    method, sep, rest = remote.partition(":")
    expected = "expected ptcp:PORT[:IP], pssl:PORT[:IP] or punix:PATH"
    if not sep or method not in ("ptcp", "pssl", "punix") or not rest:
        r.error_at(path, f"'{remote}' is not a listener ({expected})")
        return
    if method == "punix":
        return
    try:
        _, ip = _split_port_ip(rest)
    except ValueError as exc:
        r.error_at(path, f"'{remote}' is not a listener: {exc}")
        return
    if ip is not None and not ip.is_unspecified and \
            not any(a.ip == ip for _, a in node.addresses()):
        r.error_at(path, f"listener address {ip} is not an address of node {node.name}")


def _check_lab_wide(r: _Reader, nodes: list[Node], links: list[tuple[Link, str]]) -> None:
    by_name = {n.name: n for n in nodes}
    macs: dict[str, tuple[str, str]] = {}  # MAC -> (its path, node:interface)
    tunnels: dict[IPAddress, str] = {}
    for node in nodes:
        npath = f"nodes.{node.name}"
        for iface in node.interfaces:
            if iface.mac is None:
                continue
            mpath = f"{_iface_path(npath, iface.name)}.mac"
            if iface.mac in macs:
                first, owner = macs[iface.mac]
                r.error_at(mpath, f"MAC {iface.mac} is already used by {owner} "
                           f"(line {r.line(first)})")
            else:
                macs[iface.mac] = (mpath, f"{node.name}:{iface.name}")
        if node.tunnel_ip is not None:
            tpath = f"{npath}.tunnel_ip"
            if node.tunnel_ip in tunnels:
                r.error_at(tpath, f"tunnel_ip {node.tunnel_ip} is also the tunnel_ip of node "
                           f"{tunnels[node.tunnel_ip]}")
            tunnels.setdefault(node.tunnel_ip, node.name)
        for i, target in enumerate(node.targets):
            tpath = f"{npath}.targets[{i}]"
            peer = by_name.get(target)
            if peer is None:
                r.error_at(tpath, f"no node named '{target}'")
            elif peer.kind != "hwvtep":
                r.error_at(tpath, f"target {target} is a {peer.kind}, not an hwvtep node")
            elif not peer.ovsdb:
                r.error_at(tpath, f"target {target} has no ovsdb listener")

    # the two ends of a link are on one L2 segment: their addresses must share a subnet
    for link, epath in links:
        na, nb = by_name.get(link.a.node), by_name.get(link.b.node)
        if na is None or nb is None:
            continue
        ia = next((i for i in na.interfaces if i.name == link.a.interface), None)
        ib = next((i for i in nb.interfaces if i.name == link.b.interface), None)
        if ia is None or ib is None:
            continue
        for version in (4, 6):
            aa = [a for a in ia.addresses if a.version == version]
            bb = [b for b in ib.addresses if b.version == version]
            if not aa or not bb:
                continue
            same = [a.ip for a in aa for b in bb if a.ip == b.ip]
            if same:
                r.error_at(epath, f"both ends of {link.a} -- {link.b} have address {same[0]}")
            elif not any(a.network.overlaps(b.network) for a in aa for b in bb):
                r.error_at(epath, f"{link.a} ({', '.join(map(str, aa))}) and {link.b} "
                           f"({', '.join(map(str, bb))}) share no subnet")


def _check_tools(r: _Reader, nodes: list[Node], tools: ToolFinder) -> None:
    """Every program `up` will start must exist: a missing one is refused, not half-run."""
    need_ip = False
    for node in nodes:
        npath = f"nodes.{node.name}"
        if node.kind == "hwvtep":
            need_ip = True
            if tools("hwvtep") is None:
                r.error_at(f"{npath}.kind", "an hwvtep node runs `hwvtep ovsdb-server` and "
                           "`hwvtep agent`, but the hwvtep command is not found")
        for daemon in node.daemons:
            need_ip = True
            program = daemon.argv[0]
            if tools(program) is None:
                what = "is not an executable file" if "/" in program else "is not found on PATH"
                r.error_at(f"{npath}.daemons.{daemon.name}", f"command '{program}' {what}")
    if need_ip and tools("ip") is None:
        r.error(r.marks.get("nodes", (1, 1)), "nodes", "command 'ip' (iproute2) is not found "
                "on PATH; the lab starts its daemons with `ip netns exec`")


# --------------------------------------------------------------------------- entry points


def parse(
    text: str, filename: str = "<topology>", *, tools: ToolFinder | None = None
) -> Topology:
    """Parse and validate a topology; raise :class:`TopologyError` listing every problem.

    With `tools`, also check that every program `up` would start can be found.
    """
    loader = yaml.SafeLoader(text)
    r = _Reader(filename, loader)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise TopologyError([Problem(filename, line, col, "",
                                         f"invalid YAML: {exc.problem or exc}")]) from None
    finally:
        loader.dispose()
    if root is None:
        raise TopologyError([Problem(filename, 1, 1, "", "the file is empty")])
    top = r.mapping(root, "")
    if top is None:
        raise TopologyError(r.problems)
    # like docker compose, `x-...` keys are free for YAML anchors the user reuses
    r.check_fields({k: v for k, v in top.items() if not k.startswith("x-")},
                   ("name", "nodes", "links"), "", "a topology")

    name = ""
    if "name" not in top:
        r.error(root, "name", "missing required field 'name'")
    else:
        name = r.string(top["name"][1], "name") or ""
        if name and (not _NAME_RE.match(name) or len(name) > LAB_NAME_MAX):
            r.error(top["name"][1], "name", f"lab name '{name}' must be 1-{LAB_NAME_MAX} "
                    "letters, digits, '-' or '_', starting with a letter or digit")

    nodes: list[Node] = []
    if "nodes" not in top:
        r.error(root, "nodes", "missing required field 'nodes'")
    else:
        node_fields = r.mapping(top["nodes"][1], "nodes") or {}
        if not node_fields and isinstance(top["nodes"][1], (yaml.MappingNode, yaml.ScalarNode)):
            r.error(top["nodes"][1], "nodes", "a lab needs at least one node")
        for nname, (knode, vnode) in node_fields.items():
            if not _NAME_RE.match(nname) or len(nname) > NODE_NAME_MAX:
                r.error(knode, f"nodes.{nname}", f"node name '{nname}' must be 1-{NODE_NAME_MAX} "
                        "letters, digits, '-' or '_', starting with a letter or digit")
                continue
            parsed = _parse_node(r, nname, vnode, f"nodes.{nname}")
            if parsed is not None:
                nodes.append(parsed)

    links = _parse_links(r, top["links"][1]) if "links" in top else []
    if not r.problems:
        nodes = _check(r, nodes, links)
    if not r.problems and tools is not None:
        _check_tools(r, nodes, tools)
    if r.problems:
        raise TopologyError(r.problems)
    return Topology(name, tuple(nodes), tuple(link for link, _ in links), filename)


def load_file(path: str | Path, *, tools: ToolFinder | None = None) -> Topology:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError([Problem(str(p), 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise TopologyError([Problem(str(p), 1, 1, "", "not UTF-8 text")]) from None
    return parse(text, str(p), tools=tools)
