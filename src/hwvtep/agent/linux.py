"""The Linux data plane: the only part of hwvtep that talks to the kernel (via pyroute2).

It reads what the agent owns into a `NodeState`, carries out a plan's operations, reads
learned MACs and interface counters, and watches netlink for link and bridge fdb events.
Everything runs in one network namespace (None: the caller's), so tests and the lab can
aim it at a namespace they made. Nothing here decides anything: `plan.py` does.

Operations are idempotent: "already exists" is success when the existing device is the one
asked for (adopting it, and marking it if a crash left it unmarked), "not found" is success
for removals. Anything else becomes an `OpFailure` in `apply`'s result rather than an
exception, so one bad port does not stop the rest of a plan and the agent can report it.

Ownership is checked again here, in the last place before the kernel: a device is deleted
only if it carries an agent mark (the interface alias "hwvtep:<prefix>").

pyroute2 0.9 notes: the sync `IPRoute` runs its own event loop (it cannot be used from a
coroutine), so this module uses `AsyncIPRoute`; `IPRoute(netns=...)` creates a missing
namespace unless `flags=0` is given; `fdb("replace")` does not default to NTF_SELF like
add/append/del do, so without explicit flags it edits the bridge's fdb, not the vxlan's;
an alias given to `link("add")` is ignored by the kernel, so it is set afterwards.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pyroute2 import AsyncIPRoute, IPRSocket
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK, RTMGRP_NEIGH

from hwvtep.agent.fdbnl import Action, FdbRequest, FdbSocket
from hwvtep.agent.model import (
    VIA_8021Q,
    VIA_BPF,
    Bridge,
    Counters,
    FdbEntry,
    LearnedMac,
    ModelError,
    Naming,
    NodeState,
    Port,
    VlanIf,
    Vxlan,
    normalize_mac,
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
)
from hwvtep.agent.vlan_bpf import PipeError, TagPipes, bpf_available

IFF_UP = 0x1
NTF_SELF = 0x02
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
MARK_PREFIX = "hwvtep:"


@dataclass(frozen=True, slots=True)
class OpFailure:
    """An operation the kernel refused; `errno` is 0 for a refusal of our own (conflict)."""

    op: Op
    errno: int
    message: str


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Link:
    index: int
    name: str
    kind: str | None
    master: int | None
    up: bool
    alias: str
    parent: int | None
    data: dict[str, Any]
    stats: dict[str, int]


def _link_from_msg(msg: Any) -> _Link:
    info = msg.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    data: dict[str, Any] = {}
    if info is not None:
        raw = info.get("IFLA_INFO_DATA")
        if raw is not None and hasattr(raw, "get"):
            for key in (
                "IFLA_VXLAN_ID",
                "IFLA_VXLAN_LOCAL",
                "IFLA_VXLAN_LOCAL6",
                "IFLA_VXLAN_PORT",
                "IFLA_VXLAN_LEARNING",
                "IFLA_VLAN_ID",
            ):
                value = raw.get(key)
                if value is not None:
                    data[key] = value
    return _Link(
        index=int(msg["index"]),
        name=str(msg.get("IFLA_IFNAME")),
        kind=kind,
        master=msg.get("IFLA_MASTER") or None,
        up=bool(msg["flags"] & IFF_UP),
        alias=msg.get("IFLA_IFALIAS") or "",
        parent=msg.get("IFLA_LINK"),
        data=data,
        stats=dict(msg.get("IFLA_STATS64") or msg.get("IFLA_STATS") or {}),
    )


def _vxlan_local(link: _Link) -> str | None:
    local = link.data.get("IFLA_VXLAN_LOCAL") or link.data.get("IFLA_VXLAN_LOCAL6")
    return str(ipaddress.ip_address(local)) if local else None


def _counters(link: _Link) -> Counters:
    s = link.stats
    return Counters(
        rx_packets=int(s.get("rx_packets", 0)),
        rx_bytes=int(s.get("rx_bytes", 0)),
        tx_packets=int(s.get("tx_packets", 0)),
        tx_bytes=int(s.get("tx_bytes", 0)),
    )


def _pipe_end(naming: Naming, link: _Link, links: dict[int, _Link], ends: set[str]) -> bool:
    """Whether veth `link` is the bridge side of one of the agent's eBPF pipes."""
    peer = links.get(link.parent) if link.parent else None
    return (
        link.alias == naming.mark
        and peer is not None
        and peer.name in ends
        and peer.name == naming.pipe_peer(link.name)
    )


def _is_ours(link: _Link) -> bool:
    """Whether some hwvtep agent made `link`: its mark names an agent whose naming fits."""
    if not link.alias.startswith(MARK_PREFIX):
        return False
    try:
        naming = Naming(link.alias[len(MARK_PREFIX) :])
    except ModelError:
        return False
    if link.kind == "bridge":
        return naming.vni_of_bridge(link.name) is not None
    if link.kind == "vxlan":
        return naming.vni_of_vxlan(link.name) is not None
    return link.kind == "vlan"


class LinuxDataPlane:
    """The kernel side of one agent, in network namespace `netns` (None: ours)."""

    def __init__(self, ipr: Any, netns: str | None) -> None:
        self._ipr = ipr
        self.netns = netns
        self._bulk: FdbSocket | None = None
        self._pipes: dict[str, TagPipes] = {}
        # ports whose dispatcher `apply` must rebuild at its end: prefix -> port -> ops
        self._pipe_ports: dict[str, dict[str, list[Op]]] = {}

    @property
    def bulk(self) -> FdbSocket:
        """The raw socket for fdb dumps and batches (pyroute2 is too slow for 100k MACs)."""
        if self._bulk is None:
            self._bulk = FdbSocket(self.netns)
        return self._bulk

    @classmethod
    async def open(cls, netns: str | None = None) -> LinuxDataPlane:
        """Connect to rtnetlink in `netns`; a missing namespace is an error, not created."""
        if netns is None:
            ipr = AsyncIPRoute()
        else:
            if not os.path.exists(os.path.join("/run/netns", netns)):
                raise FileNotFoundError(f"no network namespace {netns!r}")
            ipr = AsyncIPRoute(netns=netns, flags=0)
        await ipr.setup_endpoint()
        return cls(ipr, netns)

    def pipes(self, prefix: str) -> TagPipes:
        """The eBPF pipes of agent `prefix` (tagged bindings on a kernel without 802.1Q).

        Opened on first use: in another namespace that forks (see `Agent.open`).
        """
        if prefix not in self._pipes:
            self._pipes[prefix] = TagPipes(prefix, self.netns)
        return self._pipes[prefix]

    def tagging(self, prefix: str) -> tuple[str | None, str]:
        """How this kernel carries tagged bindings: (VIA_8021Q, ""), (VIA_BPF, reason), or
        (None, why neither works)."""
        if self.pipes(prefix).has_8021q():
            return VIA_8021Q, ""
        why = bpf_available()
        if why:
            return None, f"no 802.1Q in this kernel, and no eBPF: {why}"
        return VIA_BPF, "no 802.1Q in this kernel: tagged bindings go through eBPF pipes"

    def close(self) -> None:
        self._ipr.close()
        if self._bulk is not None:
            self._bulk.close()
        for pipes in self._pipes.values():
            pipes.close()
        self._pipes.clear()

    async def __aenter__(self) -> LinuxDataPlane:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------

    async def _links(self) -> dict[int, _Link]:
        out = {}
        async for msg in await self._ipr.link("dump"):
            link = _link_from_msg(msg)
            out[link.index] = link
        return out

    async def _get(self, name: str) -> _Link | None:
        try:
            msgs = await self._ipr.link("get", ifname=name)
        except NetlinkError as e:
            if e.code in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _link_from_msg(msgs[0]) if msgs else None

    async def _neighbours(self) -> list[Any]:
        return self.bulk.dump()

    @staticmethod
    def _owned(naming: Naming, link: _Link) -> str | None:
        """'bridge', 'vxlan' or 'vlan' if `link` is one of the agent's devices."""
        if link.alias != naming.mark:
            return None
        if link.kind == "bridge" and naming.vni_of_bridge(link.name) is not None:
            return "bridge"
        if link.kind == "vxlan" and naming.vni_of_vxlan(link.name) is not None:
            return "vxlan"
        if link.kind == "vlan":
            return "vlan"
        return None

    async def read_actual(self, prefix: str, ports: Iterable[str]) -> NodeState:
        """The agent's objects as the kernel has them, and what its bridges learned.

        `ports` must name every physical port the desired state binds: a port that is not
        asked about and not enslaved to one of our bridges is not reported, and the plan
        takes an unreported port as missing.
        """
        naming = Naming(prefix)
        asked = set(ports)
        pipes, _ = self.pipes(prefix).read(())  # dispatchers: only on the pipes' ports
        links = await self._links()
        neighbours = await self._neighbours()
        state = self._state(naming, links, neighbours, asked, {p.peer for p in pipes})
        if not pipes:
            return state
        return replace(
            state,
            vlans=state.vlans
            | {
                VlanIf(p.name, p.port, p.vlan, p.master, p.up, VIA_BPF, p.complete)
                for p in pipes
                if not any(v.name == p.name for v in state.vlans)
            },
        )

    def _state(
        self,
        naming: Naming,
        links: dict[int, _Link],
        neighbours: list[Any],
        asked: set[str],
        pipe_ends: set[str],
    ) -> NodeState:
        def name_of(index: int | None) -> str | None:
            link = links.get(index) if index else None
            return link.name if link is not None else None

        bridges, vxlans, vlans, ports = set(), set(), set(), set()
        owned: dict[int, str] = {}
        for link in links.values():
            kind = self._owned(naming, link)
            if kind is not None:
                owned[link.index] = kind
        bridge_idx = {i for i, k in owned.items() if k == "bridge"}
        for link in links.values():
            kind = owned.get(link.index)
            master = name_of(link.master)
            if kind == "bridge":
                bridges.add(Bridge(link.name, link.up))
            elif kind == "vxlan":
                local = _vxlan_local(link)
                if local is None:
                    continue  # a vxlan without a local address is not one we made
                vxlans.add(
                    Vxlan(
                        link.name,
                        int(link.data.get("IFLA_VXLAN_ID", 0)),
                        local,
                        master,
                        int(link.data.get("IFLA_VXLAN_PORT", 0)),
                        bool(link.data.get("IFLA_VXLAN_LEARNING", 1)),
                        link.up,
                    )
                )
            elif kind == "vlan":
                parent = name_of(link.parent)
                tag = link.data.get("IFLA_VLAN_ID")
                if parent is not None and tag is not None:
                    vlans.add(VlanIf(link.name, parent, int(tag), master, link.up))
            elif (
                (link.name in asked or link.master in bridge_idx)
                and not naming.owns_name(link.name)
                and not (link.kind == "veth" and _pipe_end(naming, link, links, pipe_ends))
            ):
                ports.add(Port(link.name, master, link.up))

        vx_idx = {i for i, k in owned.items() if k == "vxlan"}
        fdb, learned = set(), set()
        for msg in neighbours:
            ifindex = msg["ifindex"]
            mac = msg.get("NDA_LLADDR")
            if not mac:
                continue
            dst = msg.get("NDA_DST")
            br = msg.get("NDA_MASTER")
            if ifindex in vx_idx and dst and msg["flags"] & NTF_SELF:
                fdb.add(FdbEntry(links[ifindex].name, mac, dst))
            elif (
                br in bridge_idx
                and ifindex not in vx_idx
                and ifindex in links
                and not msg["state"] & (NUD_PERMANENT | NUD_NOARP)
            ):
                learned.add(LearnedMac(links[br].name, links[ifindex].name, mac))
        return NodeState(
            naming.prefix,
            frozenset(bridges),
            frozenset(vxlans),
            frozenset(vlans),
            frozenset(ports),
            frozenset(fdb),
            frozenset(learned),
        )

    async def learned_macs(self, prefix: str) -> frozenset[LearnedMac]:
        """Dynamic fdb entries of our bridges on ports other than our vxlan devices."""
        return (await self.read_actual(prefix, ())).learned

    async def counters(self, ifnames: Iterable[str]) -> dict[str, Counters]:
        """Interface counters (64-bit) of the named devices that exist."""
        wanted = set(ifnames)
        return {
            link.name: _counters(link)
            for link in (await self._links()).values()
            if link.name in wanted
        }

    async def index_names(self) -> dict[int, str]:
        return {i: link.name for i, link in (await self._links()).items()}

    # -- acting --------------------------------------------------------------------------

    async def apply(self, ops: Sequence[Op]) -> list[OpFailure]:
        """Carry out `ops` in order; return the ones that failed (others still run).

        Runs of fdb operations go to the kernel in batches, with the same outcomes as one
        by one; the dispatchers of ports whose eBPF pipes changed are rebuilt once, at the
        end (a failure there is reported against those pipes' operations).
        """
        failures: list[OpFailure] = []
        run: list[FdbAppend | FdbReplace | FdbDelete] = []
        for op in ops:
            if isinstance(op, FdbAppend | FdbReplace | FdbDelete):
                run.append(op)
                continue
            if run:
                failures.extend(await self._fdb_run(run))
                run = []
            try:
                await self._apply_one(op)
            except _Refused as e:
                failures.append(OpFailure(op, e.code, e.message))
            except NetlinkError as e:
                failures.append(OpFailure(op, e.code, f"{os.strerror(e.code)} ({e.code})"))
        if run:
            failures.extend(await self._fdb_run(run))
        failed = {id(f.op) for f in failures}
        for prefix, by_port in self._pipe_ports.items():
            for port, port_ops in sorted(by_port.items()):
                try:
                    self.pipes(prefix).sync_ports([port])
                except PipeError as e:
                    failures.extend(
                        OpFailure(op, e.code, e.message) for op in port_ops if id(op) not in failed
                    )
        self._pipe_ports.clear()
        return failures

    def _pipe_port(self, prefix: str, port: str, op: Op) -> None:
        self._pipe_ports.setdefault(prefix, {}).setdefault(port, []).append(op)

    async def _fdb_run(self, ops: Sequence[FdbAppend | FdbReplace | FdbDelete]) -> list[OpFailure]:
        failures: list[OpFailure] = []
        index: dict[str, int | None] = {}
        for dev in {op.dev for op in ops}:
            link = await self._get(dev)
            index[dev] = link.index if link is not None else None
        sent: list[FdbAppend | FdbReplace | FdbDelete] = []
        requests: list[FdbRequest] = []
        for op in ops:
            ifindex = index[op.dev]
            if ifindex is None:
                if not isinstance(op, FdbDelete):
                    failures.append(OpFailure(op, errno.ENODEV, f"vxlan {op.dev} does not exist"))
                continue
            action: Action = (
                "append"
                if isinstance(op, FdbAppend)
                else "replace"
                if isinstance(op, FdbReplace)
                else "del"
            )
            sent.append(op)
            requests.append(FdbRequest(action, ifindex, op.mac, op.dst))
        for op, code in zip(sent, self.bulk.run(requests), strict=True):
            benign = {
                FdbAppend: errno.EEXIST,
                FdbDelete: errno.ENOENT,
                FdbReplace: 0,
            }[type(op)]
            if code and code != benign:
                failures.append(OpFailure(op, code, f"{os.strerror(code)} ({code})"))
        return failures

    async def _need(self, name: str, what: str) -> _Link:
        link = await self._get(name)
        if link is None:
            raise _Refused(errno.ENODEV, f"{what} {name} does not exist")
        return link

    async def _master_index(self, master: str | None) -> int:
        """Index of bridge `master`, which must be one an agent made (0 for None)."""
        if master is None:
            return 0
        link = await self._need(master, "bridge")
        if link.kind != "bridge" or not _is_ours(link):
            raise _Refused(0, f"{master} is not a bridge of ours")
        return link.index

    async def _finish(self, name: str, alias: str, up: bool, master: str | None) -> None:
        """Bring an adopted or new device to the asked alias/state/master."""
        link = await self._need(name, "device")
        changes: dict[str, Any] = {}
        if link.alias != alias:
            changes["ifalias"] = alias
        if link.up != up:
            changes["state"] = "up" if up else "down"
        master_idx = await self._master_index(master)
        if (link.master or 0) != master_idx:
            changes["master"] = master_idx
        if changes:
            await self._ipr.link("set", index=link.index, **changes)

    async def _create(
        self, op: CreateBridge | CreateVxlan | CreateVlan, spec: dict[str, Any]
    ) -> None:
        try:
            await self._ipr.link("add", ifname=op.name, **spec)
        except NetlinkError as e:
            if e.code == errno.EOPNOTSUPP and isinstance(op, CreateVlan):
                raise _Refused(e.code, "the kernel has no 802.1Q VLAN support") from None
            if e.code != errno.EEXIST:
                raise
            existing = await self._get(op.name)
            if existing is None:
                raise _Refused(e.code, f"{op.name}: the VNI is in use by another device") from None
            problem = self._mismatch(op, existing, spec)
            if problem:
                raise _Refused(
                    errno.EEXIST, f"{op.name} exists and is not ours: {problem}"
                ) from None
        master = None if isinstance(op, CreateBridge) else op.master
        await self._finish(op.name, op.alias, op.up, master)

    @staticmethod
    def _mismatch(op: Op, link: _Link, spec: dict[str, Any]) -> str:
        assert isinstance(op, CreateBridge | CreateVxlan | CreateVlan)
        if link.alias not in ("", op.alias):
            return f"marked {link.alias!r}"
        if link.kind != spec["kind"]:
            return f"a {link.kind}"
        if isinstance(op, CreateVxlan):
            have = (
                link.data.get("IFLA_VXLAN_ID"),
                _vxlan_local(link),
                link.data.get("IFLA_VXLAN_PORT"),
                bool(link.data.get("IFLA_VXLAN_LEARNING", 1)),
            )
            want = (op.vni, str(ipaddress.ip_address(op.local_ip)), op.dstport, op.learning)
            if have != want:
                return f"vxlan {have} instead of {want}"
        if isinstance(op, CreateVlan) and (
            link.parent != spec["link"] or link.data.get("IFLA_VLAN_ID") != op.vlan
        ):
            return "another port or tag"
        return ""

    async def _apply_one(self, op: Op) -> None:
        ipr = self._ipr
        match op:
            case CreateBridge():
                await self._create(op, {"kind": "bridge"})
            case CreateVxlan():
                ip = ipaddress.ip_address(op.local_ip)
                spec: dict[str, Any] = {
                    "kind": "vxlan",
                    "vxlan_id": op.vni,
                    "vxlan_local" if ip.version == 4 else "vxlan_local6": str(ip),
                    "vxlan_port": op.dstport,
                    "vxlan_learning": 1 if op.learning else 0,
                }
                master = await self._master_index(op.master)
                if master:
                    spec["master"] = master
                await self._create(op, spec)
            case CreateVlan(via=via) if via == VIA_BPF:
                prefix = op.alias[len(MARK_PREFIX) :]
                try:
                    self._pipe_port(prefix, op.port, op)
                    self.pipes(prefix).ensure(
                        op.name, op.port, op.vlan, op.master, op.up, sync=False
                    )
                except (PipeError, ModelError) as e:
                    code = e.code if isinstance(e, PipeError) else errno.EINVAL
                    raise _Refused(code, str(e)) from None
            case CreateVlan():
                parent = await self._need(op.port, "port")
                vspec: dict[str, Any] = {"kind": "vlan", "link": parent.index, "vlan_id": op.vlan}
                await self._create(op, vspec)
            case DeleteLink(name):
                link = await self._get(name)
                if link is None:
                    return
                prefix = link.alias[len(MARK_PREFIX) :]
                if link.kind == "veth" and link.alias.startswith(MARK_PREFIX):
                    if prefix not in self._pipes:  # not this agent's: its pipes were read
                        raise _Refused(0, f"refusing to delete {name}: not a pipe of ours")
                    try:
                        port = self.pipes(prefix).remove(name, sync=False)
                    except (PipeError, ModelError) as e:
                        raise _Refused(getattr(e, "code", 0), str(e)) from None
                    if port is not None:
                        self._pipe_port(prefix, port, op)
                    return
                if not _is_ours(link):
                    raise _Refused(0, f"refusing to delete {name}: it has no hwvtep mark")
                try:
                    await ipr.link("del", index=link.index)
                except NetlinkError as e:
                    if e.code not in (errno.ENODEV, errno.ENOENT):
                        raise
            case SetMaster(name, master):
                link = await self._get(name)
                if link is None:
                    if master is None:
                        return
                    raise _Refused(errno.ENODEV, f"device {name} does not exist")
                index = await self._master_index(master)
                if (link.master or 0) == index:
                    return
                if link.master and not _is_ours(link):
                    holder = (await self.index_names()).get(link.master)
                    holder_link = await self._get(holder) if holder else None
                    if holder_link is not None and not _is_ours(holder_link):
                        raise _Refused(0, f"{name} is held by {holder}, which is not ours")
                await ipr.link("set", index=link.index, master=index)
            case SetState(name, up):
                link = await self._need(name, "device")
                if link.up != up:
                    await ipr.link("set", index=link.index, state="up" if up else "down")
            case FdbAppend(dev, mac, dst) | FdbReplace(dev, mac, dst) | FdbDelete(dev, mac, dst):
                link = await self._get(dev)
                if link is None:
                    if isinstance(op, FdbDelete):
                        return
                    raise _Refused(errno.ENODEV, f"vxlan {dev} does not exist")
                args: dict[str, Any] = {"ifindex": link.index, "lladdr": mac, "dst": dst}
                try:
                    if isinstance(op, FdbAppend):
                        await ipr.fdb("append", **args)
                    elif isinstance(op, FdbReplace):
                        state = NUD_PERMANENT | NUD_NOARP
                        await ipr.fdb("replace", flags=NTF_SELF, state=state, **args)
                    else:
                        await ipr.fdb("del", **args)
                except NetlinkError as e:
                    benign = errno.EEXIST if isinstance(op, FdbAppend) else errno.ENOENT
                    if e.code != benign or isinstance(op, FdbReplace):
                        raise

    # -- events --------------------------------------------------------------------------

    async def watch(self) -> NetlinkWatcher:
        """A watcher of link and bridge fdb events, opened before the caller reads state."""
        watcher = NetlinkWatcher(self.netns)
        watcher.names.update(await self.index_names())
        return watcher


@dataclass(frozen=True, slots=True)
class LinkEvent:
    action: Literal["add", "del"]
    index: int
    ifname: str
    kind: str | None
    master: int | None
    up: bool


@dataclass(frozen=True, slots=True)
class FdbEvent:
    """A bridge fdb change; `learned` for dynamic entries a bridge learned on a port."""

    action: Literal["add", "del"]
    ifindex: int
    ifname: str | None
    mac: str
    master: int | None
    dst: str | None
    learned: bool


@dataclass(frozen=True, slots=True)
class Overflow:
    """The kernel dropped events (socket buffer full): the caller must resync."""


Event = LinkEvent | FdbEvent | Overflow


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class NetlinkWatcher:
    """Link and AF_BRIDGE neighbour notifications from one namespace, without a thread.

    `fileno()` can be given to a selector or `loop.add_reader`; `read()` drains what is
    queued without blocking; `next()` waits on the running asyncio loop.
    """

    def __init__(self, netns: str | None) -> None:
        if netns is None:
            self._sock = IPRSocket()
        else:
            self._sock = IPRSocket(netns=netns, flags=0)
        self._sock.bind(groups=RTMGRP_LINK | RTMGRP_NEIGH)
        self._raw: socket.socket = self._sock.socket
        self._raw.setblocking(False)
        self.names: dict[int, str] = {}

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self) -> list[Event]:
        out: list[Event] = []
        while True:
            try:
                data = self._raw.recv(1 << 16)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    out.append(Overflow())
                    continue
                raise
            for msg in self._sock.marshal.parse(data):
                event = self._event(msg)
                if event is not None:
                    out.append(event)

    async def next(self, timeout: float | None = None) -> list[Event]:
        """Wait until at least one event (or the timeout: then an empty list)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            events = self.read()
            if events:
                return events
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.fileno(), _wake, ready)
            try:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                await asyncio.wait_for(ready, remaining)
            except TimeoutError:
                return self.read()
            finally:
                loop.remove_reader(self.fileno())

    def _event(self, msg: Any) -> Event | None:
        kind = msg.get("event")
        if kind in ("RTM_NEWLINK", "RTM_DELLINK"):
            if msg.get("family") != socket.AF_UNSPEC:
                return None  # AF_BRIDGE port notices duplicate the link ones
            link = _link_from_msg(msg)
            if kind == "RTM_DELLINK":
                self.names.pop(link.index, None)
            else:
                self.names[link.index] = link.name
            return LinkEvent(
                "add" if kind == "RTM_NEWLINK" else "del",
                link.index,
                link.name,
                link.kind,
                link.master,
                link.up,
            )
        if kind in ("RTM_NEWNEIGH", "RTM_DELNEIGH") and msg.get("family") == socket.AF_BRIDGE:
            mac = msg.get("NDA_LLADDR")
            if not mac:
                return None
            try:
                mac = normalize_mac(mac)
            except ModelError:
                return None
            master = msg.get("NDA_MASTER")
            index = int(msg["ifindex"])
            return FdbEvent(
                "add" if kind == "RTM_NEWNEIGH" else "del",
                index,
                self.names.get(index),
                mac,
                master,
                msg.get("NDA_DST"),
                master is not None and not msg["state"] & (NUD_PERMANENT | NUD_NOARP),
            )
        return None
