"""Tagged bindings on a kernel without 802.1Q, with two small eBPF programs per port.

Some kernels (this project's own machines among them) are built without
CONFIG_VLAN_8021Q, so `port.N` sub-interfaces cannot exist; what they do have is the
clsact qdisc, cls_bpf in direct-action mode and the bpf(2) syscall. A tagged binding
(port P, VLAN N, bridge B) is realised here as a *pipe*:

    P --ingress: dispatcher--> E ==veth== A (enslaved to B)
    P <--egress-- tagger: E ingress <== A <-- B

- A veth pair: A (the binding's interface, named like the sub-interface would be, so that
  counters and learned MACs read as for a sub-interface) is enslaved to B; its peer E is
  only plumbing.
- The *tagger* on E's ingress takes what the bridge sends to A, pushes tag N
  (802.1Q) and redirects it to P's egress.
- The *dispatcher* on P's ingress, one per port for all its pipes, looks at the tag the
  core has already moved out of the frame (`skb_vlan_untag` runs before tc ingress, and
  tc ingress before the bridge's rx handler): VLAN N is popped and redirected to E's
  egress, so that it arrives on A and enters B; untagged frames go on to the stack (so a
  vlan-0 binding of the same port, P itself in a bridge, keeps working); a priority tag
  (VLAN 0) is popped and the frame goes on untagged; any other tagged frame is dropped,
  so an unbound VLAN never leaks into a bridge.

Both programs are generated per pipe/port (the VLAN table and the interface indexes are
immediates: no maps to find again after a restart), hand-assembled and loaded with
bpf(2) through ctypes; qdiscs and filters are set with raw rtnetlink in the agent's
namespace. An attached cls_bpf filter keeps its program alive after the agent exits, so a
restarted agent finds the data plane intact.

Ownership and read-back: both veth ends carry the agent's mark; E's alias also records
the binding (`hwvtep:<prefix> tag <N> on <P>`), and its name is derived from A's
(`Naming.pipe_peer`). Filters are named after the mark. `read` reports every pipe with whether
it is complete: the tagger's and the dispatcher's programs are checked by their kernel
tag (a hash of the instructions) against what this module would generate now, so a
stale, foreign or half-made piece shows as damaged and `ensure` rebuilds it.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import socket
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRSocket

from hwvtep.agent.model import VLAN_MAX, ModelError, Naming, check_ifname

# --- eBPF assembly -----------------------------------------------------------------------

R0, R1, R2, R3, R6, R7, R8 = 0, 1, 2, 3, 6, 7, 8

_LDXW = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_MOV64_K = 0xB7
_MOV64_X = 0xBF
_AND64_K = 0x57
_JEQ_K = 0x15
_JNE_K = 0x55
_JA = 0x05
_CALL = 0x85
_EXIT = 0x95

HELPER_SKB_VLAN_PUSH = 18
HELPER_SKB_VLAN_POP = 19
HELPER_REDIRECT = 23

TC_ACT_OK = 0
TC_ACT_SHOT = 2

# struct __sk_buff offsets (uapi, stable)
SKB_PROTOCOL = 16
SKB_VLAN_PRESENT = 20
SKB_VLAN_TCI = 24
SKB_VLAN_PROTO = 28

ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
VLAN_VID_MASK = 0x0FFF


class _Asm:
    """Just enough of an eBPF assembler: the instructions above, with forward labels."""

    def __init__(self) -> None:
        self._code: list[tuple[int, int, int, int, int, str | None]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def _emit(
        self,
        op: int,
        dst: int = 0,
        src: int = 0,
        off: int = 0,
        imm: int = 0,
        target: str | None = None,
    ) -> None:
        self._code.append((op, dst, src, off, imm, target))

    def ldxw(self, dst: int, src: int, off: int) -> None:
        self._emit(_LDXW, dst, src, off)

    def mov(self, dst: int, imm: int) -> None:
        self._emit(_MOV64_K, dst, imm=imm)

    def movx(self, dst: int, src: int) -> None:
        self._emit(_MOV64_X, dst, src)

    def and_(self, dst: int, imm: int) -> None:
        self._emit(_AND64_K, dst, imm=imm)

    def jeq(self, dst: int, imm: int, target: str) -> None:
        self._emit(_JEQ_K, dst, imm=imm, target=target)

    def jne(self, dst: int, imm: int, target: str) -> None:
        self._emit(_JNE_K, dst, imm=imm, target=target)

    def ja(self, target: str) -> None:
        self._emit(_JA, target=target)

    def call(self, helper: int) -> None:
        self._emit(_CALL, imm=helper)

    def exit(self) -> None:
        self._emit(_EXIT)

    def ret(self, value: int) -> None:
        self.mov(R0, value)
        self.exit()

    def assemble(self) -> bytes:
        out = bytearray()
        little = sys.byteorder == "little"
        for pc, (op, dst, src, off, imm, target) in enumerate(self._code):
            if target is not None:
                off = self._labels[target] - pc - 1
            regs = (src << 4 | dst) if little else (dst << 4 | src)
            out += struct.pack("=BBhi", op, regs, off, imm)
        return bytes(out)


def _be16(value: int) -> int:
    """A 16-bit network-order field as the context (and helpers) see it in a register."""
    return socket.htons(value)


def dispatcher_program(table: Mapping[int, int]) -> bytes:
    """P's ingress program: VLAN id -> ifindex of the pipe end E to send the frame through.

    Untagged frames pass (TC_ACT_OK), priority-tagged ones are untagged and pass, tagged
    frames of a VLAN in `table` are untagged and redirected to E's egress, every other
    tagged frame (another VLAN, an 802.1ad outer tag, a tag left in the payload) is dropped.
    """
    asm = _Asm()
    asm.movx(R6, R1)
    asm.ldxw(R2, R6, SKB_VLAN_PRESENT)
    asm.jne(R2, 0, "tagged")
    asm.ldxw(R2, R6, SKB_PROTOCOL)
    asm.jeq(R2, _be16(ETH_P_8021Q), "drop")
    asm.jeq(R2, _be16(ETH_P_8021AD), "drop")
    asm.ret(TC_ACT_OK)
    asm.label("tagged")
    asm.ldxw(R2, R6, SKB_VLAN_PROTO)
    asm.jne(R2, _be16(ETH_P_8021Q), "drop")
    asm.ldxw(R7, R6, SKB_VLAN_TCI)
    asm.and_(R7, VLAN_VID_MASK)
    asm.jeq(R7, 0, "priority")
    for vlan in sorted(table):
        asm.jeq(R7, vlan, f"to{vlan}")
    asm.label("drop")
    asm.ret(TC_ACT_SHOT)
    asm.label("priority")
    asm.movx(R1, R6)
    asm.call(HELPER_SKB_VLAN_POP)
    asm.ret(TC_ACT_OK)
    for vlan in sorted(table):
        asm.label(f"to{vlan}")
        asm.mov(R8, table[vlan])
        asm.ja("redirect")
    asm.label("redirect")
    asm.movx(R1, R6)
    asm.call(HELPER_SKB_VLAN_POP)
    asm.jne(R0, 0, "drop")
    asm.movx(R1, R8)
    asm.mov(R2, 0)
    asm.call(HELPER_REDIRECT)  # returns TC_ACT_REDIRECT, or TC_ACT_SHOT for bad flags
    asm.exit()
    return asm.assemble()


def tagger_program(vlan: int, port_ifindex: int) -> bytes:
    """E's ingress program: push 802.1Q tag `vlan`, send the frame out of the port."""
    asm = _Asm()
    asm.movx(R6, R1)
    asm.mov(R2, _be16(ETH_P_8021Q))
    asm.mov(R3, vlan)
    asm.call(HELPER_SKB_VLAN_PUSH)
    asm.jne(R0, 0, "drop")
    asm.mov(R1, port_ifindex)
    asm.mov(R2, 0)
    asm.call(HELPER_REDIRECT)
    asm.exit()
    asm.label("drop")
    asm.ret(TC_ACT_SHOT)
    return asm.assemble()


def program_tags(insns: bytes) -> frozenset[bytes]:
    """The kernel's tag of a program without maps: SHA-1 (up to 6.17) or SHA-256 prefix."""
    return frozenset({hashlib.sha1(insns).digest()[:8], hashlib.sha256(insns).digest()[:8]})


# --- bpf(2) ------------------------------------------------------------------------------

_BPF_SYSCALL = {
    "x86_64": 321,
    "amd64": 321,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
    "i386": 357,
    "i686": 357,
    "armv7l": 386,
}
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SCHED_CLS = 3
_ATTR_SIZE = 128
_LICENSE = ctypes.create_string_buffer(b"Apache-2.0")


class BpfError(OSError):
    """The kernel refused a program (the verifier's log in the message) or bpf(2) is absent."""


_libc: Any = None


def _syscall_bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    global _libc
    number = _BPF_SYSCALL.get(platform.machine())
    if number is None:
        raise BpfError(errno.ENOSYS, f"bpf(2) number unknown on {platform.machine()}")
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    ret = int(
        _libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    )
    if ret < 0:
        code = ctypes.get_errno()
        raise BpfError(code, os.strerror(code))
    return ret


def load_program(insns: bytes, name: str) -> int:
    """Load a SCHED_CLS program; return its file descriptor (the caller closes it)."""
    code = ctypes.create_string_buffer(insns, len(insns))
    log = ctypes.create_string_buffer(1 << 16)
    for log_level in (0, 1):
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into(
            "=IIQQIIQII16s",
            attr,
            0,
            BPF_PROG_TYPE_SCHED_CLS,
            len(insns) // 8,
            ctypes.addressof(code),
            ctypes.addressof(_LICENSE),
            log_level,
            len(log) if log_level else 0,
            ctypes.addressof(log) if log_level else 0,
            0,
            0,
            name.encode()[:15],
        )
        try:
            return _syscall_bpf(BPF_PROG_LOAD, attr)
        except BpfError as e:
            if log_level or e.errno in (errno.EPERM, errno.ENOSYS):
                detail = log.value.decode(errors="replace").strip()
                raise BpfError(e.errno, f"loading {name}: {e.strerror}: {detail}") from None
    raise AssertionError("unreachable")


# --- raw rtnetlink -----------------------------------------------------------------------

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_DELTFILTER, RTM_GETTFILTER = 44, 45, 46
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x100, 0x200, 0x400, 0x300
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

IFLA_IFNAME, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS = 3, 5, 10, 18, 20
IFLA_LINK_NETNSID = 37
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFF_UP = 0x1

TCA_KIND, TCA_OPTIONS = 1, 2
TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS, TCA_BPF_TAG, TCA_BPF_ID = 6, 7, 8, 10, 11
TCA_BPF_FLAG_ACT_DIRECT = 1
TC_H_CLSACT = 0xFFFFFFF1
TC_H_INGRESS_PARENT = 0xFFFFFFF2
TC_H_EGRESS_PARENT = 0xFFFFFFF3
CLSACT_HANDLE = 0xFFFF0000
ETH_P_ALL = 0x0003
FILTER_PRIO = 0x4877
FILTER_HANDLE = 1

_NLHDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_TCMSG = struct.Struct("=BxxxiIII")
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTA.size + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * (-length % 4)


def _str(kind: int, text: str) -> bytes:
    return _attr(kind, text.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, _U32.pack(value))


def _nest(kind: int, *parts: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(parts))


def _attrs(data: bytes, pos: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while pos + _RTA.size <= len(data):
        length, kind = _RTA.unpack_from(data, pos)
        if length < _RTA.size:
            break
        out[kind & NLA_TYPE_MASK] = data[pos + _RTA.size : pos + length]
        pos += (length + 3) & ~3
    return out


def _text(raw: bytes | None) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw else ""


def _int(raw: bytes | None) -> int | None:
    return _U32.unpack(raw[:4])[0] if raw and len(raw) >= 4 else None


class _Rtnl:
    """A blocking rtnetlink socket inside namespace `netns` (None: the caller's)."""

    def __init__(self, netns: str | None) -> None:
        self._owner = IPRSocket() if netns is None else IPRSocket(netns=netns, flags=0)
        self._owner.bind(groups=0)  # no multicast: only answers to our requests
        self._sock: Any = self._owner.socket
        self._sock.setblocking(True)
        self._seq = 0

    def close(self) -> None:
        self._owner.close()

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        self._sock.send(_NLHDR.pack(_NLHDR.size + len(body), kind, flags, self._seq, 0) + body)
        return self._seq

    def _messages(self) -> list[tuple[int, int, bytes]]:
        data = self._sock.recv(1 << 20)
        out, pos = [], 0
        while pos + _NLHDR.size <= len(data):
            length, kind, _flags, seq, _pid = _NLHDR.unpack_from(data, pos)
            if length < _NLHDR.size:
                break
            out.append((kind, seq, data[pos + _NLHDR.size : pos + length]))
            pos += (length + 3) & ~3
        return out

    def request(self, kind: int, flags: int, body: bytes) -> int:
        """Send one request; the kernel's errno for it (0: done)."""
        seq = self._send(kind, flags | NLM_F_REQUEST | NLM_F_ACK, body)
        while True:
            for mkind, mseq, payload in self._messages():
                if mseq == seq and mkind == NLMSG_ERROR:
                    return -int(struct.unpack_from("=i", payload)[0])

    def get(self, kind: int, body: bytes) -> bytes | None:
        """The one answer to a get request; None when the kernel has no such object."""
        seq = self._send(kind, NLM_F_REQUEST, body)
        while True:
            for mkind, mseq, payload in self._messages():
                if mseq != seq:
                    continue
                if mkind == NLMSG_ERROR:
                    code = -int(struct.unpack_from("=i", payload)[0])
                    if code in (errno.ENODEV, errno.ENOENT):
                        return None
                    raise OSError(code, os.strerror(code))
                return payload

    def dump(self, kind: int, body: bytes) -> list[bytes]:
        """The payloads of a dump; an error (no such device or qdisc) is an empty dump."""
        seq = self._send(kind, NLM_F_REQUEST | NLM_F_DUMP, body)
        out: list[bytes] = []
        while True:
            for mkind, mseq, payload in self._messages():
                if mseq != seq:
                    continue
                if mkind == NLMSG_DONE:
                    return out
                if mkind == NLMSG_ERROR:
                    return []
                out.append(payload)


# --- kernel objects as read --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Link:
    index: int
    name: str
    kind: str | None
    alias: str
    master: int | None
    up: bool
    peer: int | None


@dataclass(frozen=True, slots=True)
class _Filter:
    prio: int
    handle: int
    kind: str
    name: str
    tag: bytes


def _parse_link(payload: bytes) -> _Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(payload)
    attrs = _attrs(payload, _IFINFO.size)
    info = _attrs(attrs.get(IFLA_LINKINFO, b""))
    kind = _text(info.get(IFLA_INFO_KIND)) or None
    peer = None if IFLA_LINK_NETNSID in attrs else _int(attrs.get(IFLA_LINK))
    return _Link(
        index=index,
        name=_text(attrs.get(IFLA_IFNAME)),
        kind=kind,
        alias=_text(attrs.get(IFLA_IFALIAS)),
        master=_int(attrs.get(IFLA_MASTER)) or None,
        up=bool(flags & IFF_UP),
        peer=peer if peer and peer != index else None,
    )


def _parse_filter(payload: bytes) -> _Filter | None:
    _family, _ifindex, handle, _parent, info = _TCMSG.unpack_from(payload)
    attrs = _attrs(payload, _TCMSG.size)
    if not handle:
        return None  # the per-priority header a dump sends before its filters
    options = _attrs(attrs.get(TCA_OPTIONS, b""))
    return _Filter(
        prio=info >> 16,
        handle=handle,
        kind=_text(attrs.get(TCA_KIND)),
        name=_text(options.get(TCA_BPF_NAME)),
        tag=options.get(TCA_BPF_TAG, b""),
    )


# --- pipes -------------------------------------------------------------------------------


class PipeError(Exception):
    """A pipe that cannot be made as asked; `code` is an errno (0: a conflict of ours)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TagPipe:
    """A pipe as the kernel has it.

    `name` is the bridge side (the binding's interface), `peer` the plumbing end, `port`
    and `vlan` the binding E's alias records. `problem` is empty for a pipe that forwards
    both ways, otherwise says what is missing or stale.
    """

    name: str
    peer: str
    port: str
    vlan: int
    master: str | None
    up: bool
    problem: str = ""

    @property
    def complete(self) -> bool:
        return not self.problem


@dataclass(frozen=True, slots=True)
class Dispatcher:
    """A dispatcher of ours on a port: `verified` if its program is the one the port's
    pipes call for, then `table` says what it does (VLAN -> the pipe end E it feeds)."""

    port: str
    table: tuple[tuple[int, str], ...]
    verified: bool


def _record(mark: str, vlan: int, port: str) -> str:
    return f"{mark} tag {vlan} on {port}"


def _parse_record(mark: str, alias: str) -> tuple[int, str] | None:
    head = f"{mark} tag "
    if not alias.startswith(head):
        return None
    vlan, sep, port = alias[len(head) :].partition(" on ")
    if not sep or not vlan.isdigit() or not 1 <= int(vlan) <= VLAN_MAX:
        return None
    try:
        return int(vlan), check_ifname(port)
    except ModelError:
        return None


def _tagger_name(mark: str) -> str:
    return f"{mark} tagger"


def _dispatcher_name(mark: str) -> str:
    return f"{mark} dispatcher"


class TagPipes:
    """Pipes and dispatchers of agent `prefix` in namespace `netns` (None: the caller's)."""

    def __init__(self, prefix: str, netns: str | None = None) -> None:
        self.naming = Naming(prefix)
        self.mark = self.naming.mark
        self.netns = netns
        self._nl = _Rtnl(netns)

    def close(self) -> None:
        self._nl.close()

    def __enter__(self) -> TagPipes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has_8021q(self) -> bool:
        """`kernel_has_8021q` on this object's socket (no new namespace socket)."""
        return _probe_8021q(self._nl)

    # -- kernel access --

    def _links(self) -> dict[int, _Link]:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        return {link.index: link for link in map(_parse_link, self._nl.dump(RTM_GETLINK, body))}

    def _link(self, name: str | None = None, index: int = 0) -> _Link | None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        if name is not None:
            body += _str(IFLA_IFNAME, name)
        payload = self._nl.get(RTM_GETLINK, body)
        return _parse_link(payload) if payload is not None else None

    def _filters(self, ifindex: int, parent: int = TC_H_INGRESS_PARENT) -> list[_Filter]:
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, parent, 0)
        return [f for f in map(_parse_filter, self._nl.dump(RTM_GETTFILTER, body)) if f]

    def _ours(self, ifindex: int) -> _Filter | None:
        for f in self._filters(ifindex):
            if f.prio == FILTER_PRIO and f.handle == FILTER_HANDLE and f.kind == "bpf":
                return f
        return None

    def _check(self, code: int, what: str, benign: tuple[int, ...] = ()) -> None:
        if code and code not in benign:
            raise PipeError(code, f"{what}: {os.strerror(code)}")

    def _set_link(
        self,
        link: _Link,
        *,
        alias: str | None = None,
        up: bool | None = None,
        master: int | None = None,
    ) -> None:
        attrs = b""
        if alias is not None and alias != link.alias:
            attrs += _str(IFLA_IFALIAS, alias)
        if master is not None and master != (link.master or 0):
            attrs += _u32(IFLA_MASTER, master)
        flags = change = 0
        if up is not None and up != link.up:
            flags, change = (IFF_UP if up else 0), IFF_UP
        if not attrs and not change:
            return
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, link.index, flags, change) + attrs
        self._check(self._nl.request(RTM_NEWLINK, 0, body), f"setting {link.name}")

    def _attach(
        self, ifindex: int, insns: bytes, prog_name: str, filter_name: str, what: str
    ) -> None:
        """Put `insns` on `ifindex`'s ingress as our filter (atomically replacing ours)."""
        qdisc = _TCMSG.pack(socket.AF_UNSPEC, ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
        self._check(
            self._nl.request(
                RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, qdisc + _str(TCA_KIND, "clsact")
            ),
            f"clsact qdisc on {what}",
            (errno.EEXIST,),
        )
        existing = self._ours(ifindex)
        if existing is not None and not existing.name.startswith(self.mark + " "):
            raise PipeError(0, f"{what} has a filter of somebody else at priority {FILTER_PRIO}")
        try:
            fd = load_program(insns, prog_name)
        except BpfError as e:
            raise PipeError(e.errno or errno.EINVAL, str(e)) from None
        try:
            info = FILTER_PRIO << 16 | socket.htons(ETH_P_ALL)
            body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, FILTER_HANDLE, TC_H_INGRESS_PARENT, info)
            body += _str(TCA_KIND, "bpf") + _nest(
                TCA_OPTIONS,
                _u32(TCA_BPF_FD, fd),
                _str(TCA_BPF_NAME, filter_name),
                _u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT),
            )
            code = self._nl.request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE, body)
        finally:
            os.close(fd)
        self._check(code, f"attaching the program to {what}")

    def _detach(self, ifindex: int, what: str) -> None:
        """Remove our filter from `ifindex`, and the clsact qdisc if nothing else is left."""
        info = FILTER_PRIO << 16 | socket.htons(ETH_P_ALL)
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, FILTER_HANDLE, TC_H_INGRESS_PARENT, info)
        code = self._nl.request(RTM_DELTFILTER, 0, body + _str(TCA_KIND, "bpf"))
        self._check(code, f"removing the dispatcher of {what}", (errno.ENOENT, errno.EINVAL))
        if self._filters(ifindex) or self._filters(ifindex, TC_H_EGRESS_PARENT):
            return
        qdisc = _TCMSG.pack(socket.AF_UNSPEC, ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
        code = self._nl.request(RTM_DELQDISC, 0, qdisc + _str(TCA_KIND, "clsact"))
        self._check(code, f"removing the clsact qdisc of {what}", (errno.ENOENT, errno.EINVAL))

    # -- reading --

    def read(
        self, ports: Iterable[str] | None = None
    ) -> tuple[frozenset[TagPipe], frozenset[Dispatcher]]:
        """Every pipe of ours (complete or not), and our dispatchers on the pipes' ports and
        on `ports` (None: on every link, one filter dump each)."""
        links = self._links()
        by_name = {link.name: link for link in links.values()}
        pipes = self._pipe_links(links)
        dispatchers: dict[int, Dispatcher] = {}
        tables: dict[int, dict[int, int] | None] = {}
        port_indexes = {by_name[port].index for *_, port in pipes if port in by_name}
        ends = {a.index for a, *_ in pipes} | {e.index for _, e, *_ in pipes}
        scan = set(links) if ports is None else {by_name[n].index for n in ports if n in by_name}
        for link in links.values():
            if link.index in ends or link.index not in port_indexes | scan:
                continue
            f = self._ours(link.index)
            if f is None or f.name != _dispatcher_name(self.mark):
                continue
            # what it must be: one entry per pipe of the port (the name cannot hold the table:
            # cls_bpf names stop at 256 bytes), checked by the program's tag
            table = {vlan: e.index for _, e, vlan, port in pipes if port == link.name}
            verified = f.tag in program_tags(dispatcher_program(table))
            tables[link.index] = table if verified else None
            named = tuple((v, links[i].name) for v, i in sorted(table.items())) if verified else ()
            dispatchers[link.index] = Dispatcher(link.name, named, verified)
        out: set[TagPipe] = set()
        for a, e, vlan, port in pipes:
            master = links[a.master].name if a.master in links else None
            out.add(
                TagPipe(
                    a.name,
                    e.name,
                    port,
                    vlan,
                    master,
                    a.up,
                    self._problem(a, e, vlan, by_name.get(port), tables),
                )
            )
        return frozenset(out), frozenset(dispatchers.values())

    def _pipe_links(self, links: Mapping[int, _Link]) -> list[tuple[_Link, _Link, int, str]]:
        """(A, E, VLAN, port) of every pipe of ours among `links`."""
        out = []
        for e in links.values():
            a = links.get(e.peer) if e.peer else None
            record = _parse_record(self.mark, e.alias)
            if (
                record is None
                or e.kind != "veth"
                or a is None
                or a.kind != "veth"
                or a.alias != self.mark
                or e.name != self.naming.pipe_peer(a.name)
            ):
                continue
            out.append((a, e, *record))
        return out

    def _problem(
        self,
        a: _Link,
        e: _Link,
        vlan: int,
        port: _Link | None,
        tables: Mapping[int, dict[int, int] | None],
    ) -> str:
        if port is None:
            return "the port does not exist"
        if not e.up:
            return f"{e.name} is down"
        f = self._ours(e.index)
        if f is None or f.name != _tagger_name(self.mark):
            return f"no tagger on {e.name}"
        if f.tag not in program_tags(tagger_program(vlan, port.index)):
            return f"the tagger on {e.name} is stale"
        table = tables.get(port.index)
        if table is None:
            return f"no valid dispatcher on {port.name}"
        if table.get(vlan) != e.index:
            return f"the dispatcher on {port.name} does not send VLAN {vlan} to {e.name}"
        return ""

    # -- acting --

    def ensure(
        self,
        name: str,
        port: str,
        vlan: int,
        master: str | None,
        up: bool = True,
        *,
        sync: bool = True,
    ) -> None:
        """Make (or adopt and repair) the pipe `name` for `port` VLAN `vlan` into `master`.

        With `sync`, the port's dispatcher is rebuilt at once; a caller making several
        pipes can pass False and call `sync_ports` once at the end.
        """
        check_ifname(name)
        check_ifname(port)
        if not 1 <= vlan <= VLAN_MAX:
            raise PipeError(errno.EINVAL, f"VLAN {vlan} out of range 1..{VLAN_MAX}")
        peer = self.naming.pipe_peer(name)
        record = _record(self.mark, vlan, port)
        p = self._link(port)
        if p is None:
            raise PipeError(errno.ENODEV, f"port {port} does not exist")
        master_index = 0
        if master is not None:
            m = self._link(master)
            if m is None or m.kind != "bridge" or m.alias != self.mark:
                raise PipeError(errno.ENODEV, f"{master} is not a bridge of ours")
            master_index = m.index
        a = self._link(name)
        if a is not None:
            e = self._link(index=a.peer) if a.peer else None
            if a.kind != "veth" or a.alias not in ("", self.mark) or e is None or e.name != peer:
                raise PipeError(errno.EEXIST, f"{name} exists and is not a pipe of ours")
            if _parse_record(self.mark, e.alias) not in (None, (vlan, port)):
                # the binding moved to another port or tag: the old pipe goes first
                self._delete(a)
                a = None
        if a is None:
            if self._link(peer) is not None:
                raise PipeError(errno.EEXIST, f"{peer} exists and is not the end of a pipe")
            body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _str(IFLA_IFNAME, name)
            peer_info = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _str(IFLA_IFNAME, peer)
            body += _nest(
                IFLA_LINKINFO,
                _str(IFLA_INFO_KIND, "veth"),
                _nest(IFLA_INFO_DATA, _attr(VETH_INFO_PEER | NLA_F_NESTED, peer_info)),
            )
            self._check(
                self._nl.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body),
                f"creating veth {name}",
            )
            a = self._link(name)
        e = self._link(peer)
        if a is None or e is None:
            raise PipeError(errno.ENODEV, f"{name} vanished while being made")
        # the record first: once A carries the mark, E always says what the pipe is for
        self._set_link(e, alias=record, up=True)
        insns = tagger_program(vlan, p.index)
        current = self._ours(e.index)
        if (
            current is None
            or current.name != _tagger_name(self.mark)
            or current.tag not in program_tags(insns)
        ):
            self._attach(e.index, insns, "hwvtep_tagger", _tagger_name(self.mark), e.name)
        self._set_link(a, alias=self.mark, up=up, master=master_index)
        if sync:
            self.sync_ports([port])

    def remove(self, name: str, *, sync: bool = True) -> str | None:
        """Delete pipe `name` (both ends) if it is ours; then, with `sync`, fix its port's
        dispatcher. Returns the pipe's port (None: there was no such pipe)."""
        a = self._link(name)
        if a is None:
            return None
        e = self._link(index=a.peer) if a.peer else None
        record = _parse_record(self.mark, e.alias) if e is not None else None
        if a.kind != "veth" or a.alias != self.mark or e is None or record is None:
            raise PipeError(0, f"refusing to delete {name}: it is not a pipe of ours")
        self._delete(a)
        if sync:
            self.sync_ports([record[1]])
        return record[1]

    def _delete(self, a: _Link) -> None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, a.index, 0, 0)
        self._check(
            self._nl.request(RTM_DELLINK, 0, body),
            f"deleting {a.name}",
            (errno.ENODEV, errno.ENOENT),
        )

    def sync_ports(self, ports: Iterable[str] | None = None) -> None:
        """Rebuild the dispatchers of `ports` (None: every port with a pipe or one of ours)
        from the pipes that exist; a port left without pipes loses its dispatcher."""
        links = self._links()
        by_name = {link.name: link for link in links.values()}
        pipes = self._pipe_links(links)
        if ports is None:
            wanted = {port for *_, port in pipes}
            wanted |= {d.port for d in self.read(None)[1]}
        else:
            wanted = set(ports)
        for port in sorted(wanted):
            link = by_name.get(port)
            if link is None:
                continue
            table = {vlan: e.index for _, e, vlan, p in pipes if p == port}
            current = self._ours(link.index)
            if not table:
                if current is not None and current.name.startswith(self.mark + " "):
                    self._detach(link.index, port)
                continue
            name = _dispatcher_name(self.mark)
            insns = dispatcher_program(table)
            if current is not None and current.name == name and current.tag in program_tags(insns):
                continue
            self._attach(link.index, insns, "hwvtep_dispatch", name, port)


def _probe_8021q(nl: _Rtnl) -> bool:
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _str(IFLA_IFNAME, "hwvtep8021q")
    body += _nest(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "vlan"))
    return nl.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body) != errno.EOPNOTSUPP


def kernel_has_8021q(netns: str | None = None) -> bool:
    """Whether the kernel can make 802.1Q sub-interfaces (loading the module if it must).

    Asks for a vlan link with no properties: a kernel that knows the kind refuses the
    request as incomplete (EINVAL), one that does not says EOPNOTSUPP; nothing is created.
    """
    nl = _Rtnl(netns)
    try:
        return _probe_8021q(nl)
    finally:
        nl.close()


def bpf_available() -> str:
    """Empty if tagged pipes can be loaded here, otherwise why not."""
    try:
        os.close(load_program(tagger_program(1, 1), "hwvtep_probe"))
    except BpfError as e:
        return str(e)
    return ""


__all__ = [
    "BpfError",
    "Dispatcher",
    "PipeError",
    "TagPipe",
    "TagPipes",
    "bpf_available",
    "dispatcher_program",
    "kernel_has_8021q",
    "load_program",
    "program_tags",
    "tagger_program",
]
