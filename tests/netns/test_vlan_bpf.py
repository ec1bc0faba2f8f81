"""Tagged bindings through eBPF pipes (`hwvtep.agent.vlan_bpf`) on a real kernel.

Neither side has 802.1Q here (the point of the module), so the wire format is checked
with raw AF_PACKET sockets opened inside the test's namespaces: a host sends 802.1Q
frames by hand and reads the tag of what comes back (inline or in the packet auxdata).
A second, symmetric set of pipes on the host side then lets the host's own IP stack ping
through tags, with several VLANs on one port, large frames and isolation.

What is proven: VLAN N on the port reaches exactly bridge N's hosts and their replies
come back tagged N; an unbound VLAN and 802.1ad frames do not reach any bridge; untagged
traffic of a vlan-0 binding of the same port still works; `read` reports complete pipes
and dispatchers, damage (missing tagger, port re-created with a new index, a stale
dispatcher) and `ensure` repairs it without re-creating what is fine; the programs outlive
the object that attached them (restart adoption); `remove` leaves the port as it was.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest
from nshelp import Namespaces

from hwvtep.agent.linux import LinuxDataPlane
from hwvtep.agent.model import VIA_BPF, Binding, LearnedMac, LogicalSwitch, Naming, NodeState
from hwvtep.agent.plan import plan
from hwvtep.agent.vlan_bpf import (
    TagPipes,
    bpf_available,
    dispatcher_program,
    kernel_has_8021q,
    program_tags,
    tagger_program,
)

pytestmark = pytest.mark.netns

P = "hv"
MARK = f"hwvtep:{P}"
CLONE_NEWNET = 0x40000000
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_ALL = 0x0003
HOST_MAC = bytes.fromhex("02aa00000001")
T = TypeVar("T")


def socket_in(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created inside namespace `ns` (by a thread that enters it, then ends)."""
    out: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            out.append(socket.socket(family, kind, proto))
        except BaseException as e:
            out.append(e)

    t = threading.Thread(target=enter)
    t.start()
    t.join()
    (result,) = out
    if isinstance(result, BaseException):
        raise result
    return result


def raw(ns: str, dev: str) -> socket.socket:
    s = socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((dev, ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    return s


@dataclass(frozen=True)
class Frame:
    dst: bytes
    src: bytes
    vlan: int | None
    tpid: int | None
    ethertype: int
    payload: bytes


def receive(s: socket.socket, timeout: float) -> Iterator[Frame]:
    """Frames received on `s` within `timeout`, with their 802.1Q tag wherever it is."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([s], [], [], left)[0]:
            return
        data, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(32))
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        vlan = tpid = None
        for level, kind, value in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _len, _snap, _mac, _net, tci, tp = struct.unpack("=IIIHHHH", value[:20])
                if status & TP_STATUS_VLAN_VALID:
                    vlan = tci & 0xFFF
                    tpid = tp if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
        ethertype = struct.unpack("!H", data[12:14])[0]
        payload = data[14:]
        if ethertype in (0x8100, 0x88A8) and vlan is None:
            tpid = ethertype
            vlan = struct.unpack("!H", payload[:2])[0] & 0xFFF
            ethertype = struct.unpack("!H", payload[2:4])[0]
            payload = payload[4:]
        yield Frame(data[:6], data[6:12], vlan, tpid, ethertype, payload)


def ether(
    dst: bytes,
    src: bytes,
    ethertype: int,
    payload: bytes,
    vlan: int | None = None,
    tpid: int = 0x8100,
) -> bytes:
    tag = b"" if vlan is None else struct.pack("!HH", tpid, vlan)
    return dst + src + tag + struct.pack("!H", ethertype) + payload


def arp_request(src_mac: bytes, src_ip: str, dst_ip: str) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        1,
        src_mac,
        socket.inet_aton(src_ip),
        b"\0" * 6,
        socket.inet_aton(dst_ip),
    )


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_echo(src_ip: str, dst_ip: str, ident: int) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"hwvtep-tagged"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(icmp),
        ident,
        0,
        64,
        1,
        0,
        socket.inet_aton(src_ip),
        socket.inet_aton(dst_ip),
    )
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + icmp


def bridge(spaces: Namespaces, ns: str, name: str) -> None:
    """A bridge as the agent makes them (its mark), so pipes may be enslaved to it."""
    spaces.ip(ns, "link", "add", name, "type", "bridge")
    spaces.ip(ns, "link", "set", name, "alias", MARK, "up")


def mac_of(spaces: Namespaces, ns: str, dev: str) -> bytes:
    return bytes.fromhex(spaces.mac(ns, dev).replace(":", ""))


def ping(spaces: Namespaces, ns: str, ip: str, *extra: str) -> bool:
    return any(spaces.exec(ns, "ping", "-c1", "-W1", *extra, ip).returncode == 0 for _ in range(3))


@pytest.fixture(autouse=True)
def _need_bpf() -> None:
    why = bpf_available()
    if why:
        pytest.skip(f"SKIPPED LOUDLY: cannot load eBPF programs here: {why}")


@dataclass
class Lab:
    spaces: Namespaces
    vtep: str
    host: str
    other: str


@pytest.fixture
def lab(netns: Namespaces) -> Lab:
    """vtep: port p1 (peer h1 in host), bridges hvb100 (u1 <-> u2 10.0.0.2 in other) and
    hvb200 (w1 <-> w2 10.0.1.2 in other) with p1 bound untagged to hvb200."""
    vtep, host, other = netns.make("vtep"), netns.make("host"), netns.make("other")
    netns.veth(vtep, "p1", host, "h1")
    netns.veth(vtep, "u1", other, "u2")
    netns.veth(vtep, "w1", other, "w2")
    bridge(netns, vtep, "hvb100")
    bridge(netns, vtep, "hvb200")
    for dev, br in (("u1", "hvb100"), ("w1", "hvb200"), ("p1", "hvb200")):
        netns.ip(vtep, "link", "set", dev, "master", br)
        netns.up(vtep, dev)
    netns.up(other, "u2", "10.0.0.2/24")
    netns.up(other, "w2", "10.0.1.2/24")
    netns.up(host, "h1", "10.0.1.1/24")
    return Lab(netns, vtep, host, other)


def test_programs_are_deterministic_and_small() -> None:
    a = dispatcher_program({10: 5, 20: 7})
    assert a == dispatcher_program({20: 7, 10: 5})
    assert a != dispatcher_program({10: 5, 20: 8})
    assert len(a) % 8 == 0 and len(tagger_program(10, 3)) == 11 * 8
    assert program_tags(a) != program_tags(dispatcher_program({10: 5}))
    assert len(Naming(P).pipe_peer("averylongport.1")) <= 15


def test_probe_says_no_8021q_only_when_the_kernel_lacks_it(netns: Namespaces) -> None:
    ns = netns.make("probe")
    netns.veth(ns, "pr0", ns, "pr1")
    made = (
        netns.ip(
            ns,
            "link",
            "add",
            "link",
            "pr0",
            "name",
            "pr0.5",
            "type",
            "vlan",
            "id",
            "5",
            check=False,
        ).returncode
        == 0
    )
    assert kernel_has_8021q(ns) is made
    links = netns.ip(ns, "-o", "link", "show").stdout
    assert "hwvtep8021q" not in links


def test_tagged_frames_cross_the_bridge_and_come_back_tagged(lab: Lab) -> None:
    sp, vtep, host, other = lab.spaces, lab.vtep, lab.host, lab.other
    with TagPipes(P, vtep) as pipes:
        pipes.ensure("p1.10", "p1", 10, "hvb100")
        (pipe,), (disp,) = pipes.read()
    assert pipe.complete, pipe.problem
    assert (pipe.name, pipe.port, pipe.vlan, pipe.master) == ("p1.10", "p1", 10, "hvb100")
    assert disp.port == "p1" and disp.verified and disp.table == ((10, pipe.peer),)
    u2_mac = mac_of(sp, other, "u2")

    h1, u2, w2 = raw(host, "h1"), raw(other, "u2"), raw(other, "w2")
    try:
        # ARP on VLAN 10 reaches u2 untagged, the reply comes back tagged 10
        req = arp_request(HOST_MAC, "10.0.0.1", "10.0.0.2")
        h1.send(ether(b"\xff" * 6, HOST_MAC, 0x0806, req, vlan=10))
        seen = [f for f in receive(u2, 1.0) if f.src == HOST_MAC]
        assert seen and all(f.vlan is None and f.ethertype == 0x0806 for f in seen)
        replies = [f for f in receive(h1, 1.0) if f.ethertype == 0x0806 and f.src == u2_mac]
        assert replies, "no ARP reply on the tagged binding"
        assert {f.vlan for f in replies} == {10}
        assert struct.unpack("!H", replies[0].payload[6:8])[0] == 2

        # ICMP echo to u2, echo reply tagged 10
        echo = icmp_echo("10.0.0.1", "10.0.0.2", 0x4242)
        h1.send(ether(u2_mac, HOST_MAC, 0x0800, echo, vlan=10))
        got = [f for f in receive(h1, 1.0) if f.ethertype == 0x0800 and f.src == u2_mac]
        assert got and {f.vlan for f in got} == {10}
        assert got[0].payload[20] == 0  # echo reply

        # unbound VLAN 20, an 802.1ad tag, and VLAN 10 inside an 802.1ad tag reach nobody,
        # although p1 itself is a member of hvb200 (vlan-0 binding)
        stray = HOST_MAC[:5] + b"\x02"
        for frame in (
            ether(b"\xff" * 6, stray, 0x0806, arp_request(stray, "10.0.1.1", "10.0.1.2"), 20),
            ether(
                b"\xff" * 6,
                stray,
                0x0806,
                arp_request(stray, "10.0.0.1", "10.0.0.2"),
                10,
                tpid=0x88A8,
            ),
        ):
            h1.send(frame)
        assert not [f for f in receive(u2, 0.5) if f.src == stray]
        assert not [f for f in receive(w2, 0.2) if f.src == stray]
        assert not [f for f in receive(h1, 0.2) if f.dst == stray]
        fdb = sp.exec(vtep, "bridge", "fdb", "show").stdout
        assert "02:aa:00:00:00:02" not in fdb
        assert "02:aa:00:00:00:01 dev p1.10" in fdb
    finally:
        for s in (h1, u2, w2):
            s.close()

    # untagged traffic of the vlan-0 binding on the same port is untouched
    assert ping(sp, host, "10.0.1.2")
    # a priority-tagged frame (VLAN 0) counts as untagged
    with raw(host, "h1") as h1:
        w2_mac = mac_of(sp, other, "w2")
        echo = icmp_echo("10.0.1.1", "10.0.1.2", 0x4343)
        h1_mac = mac_of(sp, host, "h1")
        h1.send(ether(w2_mac, h1_mac, 0x0800, echo, vlan=0))
        got = [f for f in receive(h1, 1.0) if f.ethertype == 0x0800 and f.src == w2_mac]
        assert got and got[0].payload[20] == 0 and got[0].vlan is None


def host_pipes(lab: Lab, vlans: dict[int, str]) -> TagPipes:
    """Pipes on the host side too, so that its IP stack talks through tags on h1."""
    pipes = TagPipes("ht", lab.host)
    for vlan, address in vlans.items():
        pipes.ensure(f"h1.{vlan}", "h1", vlan, None)
        lab.spaces.ip(lab.host, "addr", "add", address, "dev", f"h1.{vlan}")
    return pipes


def test_ip_through_several_vlans_keeps_them_apart(lab: Lab) -> None:
    sp, vtep, host, other = lab.spaces, lab.vtep, lab.host, lab.other
    # a third switch whose host uses the same address as VLAN 10's: the overlay keeps
    # them apart only if the tags do
    third = sp.make("third")
    sp.veth(vtep, "x1", third, "x2")
    bridge(sp, vtep, "hvb300")
    sp.ip(vtep, "link", "set", "x1", "master", "hvb300")
    sp.up(vtep, "x1")
    sp.up(third, "x2", "10.0.0.2/24")
    with TagPipes(P, vtep) as pipes:
        pipes.ensure("p1.10", "p1", 10, "hvb100", sync=False)
        pipes.ensure("p1.30", "p1", 30, "hvb300", sync=False)
        pipes.sync_ports()
        found, (disp,) = pipes.read()
    assert all(p.complete for p in found) and len(found) == 2
    assert [v for v, _ in disp.table] == [10, 30]
    with host_pipes(lab, {10: "10.0.0.1/24"}):
        pass
    assert ping(sp, host, "10.0.0.2")
    neigh = sp.ip(host, "neigh", "show", "10.0.0.2").stdout
    assert sp.mac(other, "u2") in neigh
    # full-size frames: 1500-byte IP packets, the tag on top
    assert ping(sp, host, "10.0.0.2", "-s", "1472", "-M", "do")
    # move the host's address to VLAN 30: now the third namespace answers
    sp.ip(host, "addr", "flush", "dev", "h1.10")
    with host_pipes(lab, {30: "10.0.0.1/24"}):
        pass
    sp.ip(host, "neigh", "flush", "all")
    assert ping(sp, host, "10.0.0.2")
    assert sp.mac(third, "x2") in sp.ip(host, "neigh", "show", "10.0.0.2").stdout
    # the untagged binding still works beside two tagged ones
    assert ping(sp, host, "10.0.1.2")
    # counters: the binding's interface counts what crossed it in both directions
    for counter in ("rx_packets", "tx_packets"):
        out = sp.exec(vtep, "cat", f"/sys/class/net/p1.30/statistics/{counter}").stdout
        assert int(out) >= 2, counter


def tc_filters(spaces: Namespaces, ns: str, dev: str) -> str:
    return spaces.exec(ns, "tc", "filter", "show", "dev", dev, "ingress").stdout


def prog_id(spaces: Namespaces, ns: str, dev: str) -> str:
    out = tc_filters(spaces, ns, dev)
    return out.split(" id ")[1].split()[0] if " id " in out else ""


def test_read_back_adoption_damage_and_repair(lab: Lab) -> None:
    sp, vtep, host = lab.spaces, lab.vtep, lab.host
    with TagPipes(P, vtep) as pipes:
        pipes.ensure("p1.10", "p1", 10, "hvb100")
    before = (prog_id(sp, vtep, "p1"), prog_id(sp, vtep, Naming(P).pipe_peer("p1.10")))
    assert all(before)
    assert f"{MARK} dispatcher" in tc_filters(sp, vtep, "p1")
    with host_pipes(lab, {10: "10.0.0.1/24"}):
        pass
    assert ping(sp, host, "10.0.0.2")

    # a new object (a restarted agent) finds it complete and changes nothing
    with TagPipes(P, vtep) as pipes:
        (pipe,), _ = pipes.read()
        assert pipe.complete
        pipes.ensure("p1.10", "p1", 10, "hvb100")
    assert (prog_id(sp, vtep, "p1"), prog_id(sp, vtep, pipe.peer)) == before
    # another agent's prefix sees none of it
    with TagPipes("zz", vtep) as other_agent:
        assert other_agent.read() == (frozenset(), frozenset())

    with TagPipes(P, vtep) as pipes:
        # the tagger removed by hand
        sp.exec(vtep, "tc", "filter", "del", "dev", pipe.peer, "ingress", check=True)
        (broken,), _ = pipes.read()
        assert "no tagger" in broken.problem
        pipes.ensure("p1.10", "p1", 10, "hvb100")
        (fixed,), _ = pipes.read()
        assert fixed.complete
        assert ping(sp, host, "10.0.0.2")

        # the port's clsact qdisc (and so the dispatcher) removed by hand
        sp.exec(vtep, "tc", "qdisc", "del", "dev", "p1", "clsact", check=True)
        (broken,), dispatchers = pipes.read()
        assert "no valid dispatcher" in broken.problem and not dispatchers
        pipes.sync_ports()
        (fixed,), _ = pipes.read()
        assert fixed.complete

        # the port re-created: a new ifindex makes the tagger stale
        sp.ip(vtep, "link", "del", "p1")
        (gone,), _ = pipes.read()
        assert gone.problem == "the port does not exist"
        sp.veth(vtep, "p1", host, "h1")
        sp.up(vtep, "p1")
        sp.up(host, "h1")
        (stale,), _ = pipes.read()
        assert "stale" in stale.problem
        pipes.ensure("p1.10", "p1", 10, "hvb100")
        (fixed,), _ = pipes.read()
        assert fixed.complete
    with host_pipes(lab, {}) as hp:
        hp.ensure("h1.10", "h1", 10, None)  # the host's h1 is new as well
    assert ping(sp, host, "10.0.0.2")

    # a binding moving to another tag re-makes the pipe under the same name
    with TagPipes(P, vtep) as pipes:
        pipes.ensure("p1.10", "p1", 11, "hvb100")
        (moved,), (disp,) = pipes.read()
        assert moved.vlan == 11 and moved.complete and [v for v, _ in disp.table] == [11]
        # removal: pipe, dispatcher and the port's clsact go; the port stays as it was
        pipes.remove("p1.10")
        assert pipes.read() == (frozenset(), frozenset())
        pipes.remove("p1.10")  # idempotent
    assert tc_filters(sp, vtep, "p1") == ""
    qdiscs = sp.exec(vtep, "tc", "qdisc", "show", "dev", "p1").stdout
    assert "clsact" not in qdiscs
    links = sp.ip(vtep, "-o", "link", "show").stdout
    assert "p1.10" not in links and pipe.peer not in links


def test_refuses_what_is_not_ours(lab: Lab) -> None:
    sp, vtep = lab.spaces, lab.vtep
    sp.ip(vtep, "link", "add", "p1.10", "type", "veth", "peer", "name", "foreign")
    sp.ip(vtep, "link", "add", "br-ext", "type", "bridge")
    # somebody else's filter at our priority on the port
    with TagPipes(P, vtep) as pipes:
        with pytest.raises(Exception, match="not a pipe of ours"):
            pipes.ensure("p1.10", "p1", 10, "hvb100")
        with pytest.raises(Exception, match="not a pipe of ours"):
            pipes.remove("p1.10")
        with pytest.raises(Exception, match="not a bridge of ours"):
            pipes.ensure("p1.20", "p1", 20, "br-ext")
        with pytest.raises(Exception, match="does not exist"):
            pipes.ensure("p9.20", "p9", 20, "hvb100")
        assert pipes.read() == (frozenset(), frozenset())
    assert "foreign" in sp.ip(vtep, "-o", "link", "show").stdout


def test_the_tag_on_the_wire_is_8021q_with_the_vlan_id(lab: Lab) -> None:
    """What the bridge floods into a pipe leaves the port with TPID 0x8100 and VLAN N."""
    vtep, host, other = lab.vtep, lab.host, lab.other
    with TagPipes(P, vtep) as pipes:
        pipes.ensure("p1.4094", "p1", 4094, "hvb100")
    with raw(host, "h1") as h1, raw(other, "u2") as u2:
        src = bytes.fromhex("02bb00000009")
        u2.send(ether(b"\xff" * 6, src, 0x88B5, b"hello-tag".ljust(46, b"\0")))
        got = [f for f in receive(h1, 1.0) if f.src == src]
        assert [(f.tpid, f.vlan, f.ethertype) for f in got] == [(0x8100, 4094, 0x88B5)]
        assert got[0].payload.startswith(b"hello-tag")


# --- through the agent's actuator: plan, apply, read back, two VTEPs over VXLAN ------------

U1, U2 = "10.200.0.1", "10.200.0.2"
RED, BLUE = 100, 200


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def converge(ns: str, desired: NodeState, ports: list[str]) -> NodeState:
    async with await LinuxDataPlane.open(ns) as dp:
        actual = await dp.read_actual(P, ports)
        assert await dp.apply(plan(desired, actual)) == []
        after = await dp.read_actual(P, ports)
    assert plan(desired, after) == [], "the state read back differs from the one applied"
    return after


def test_actuator_realises_a_tagged_binding_across_two_vteps(netns: Namespaces) -> None:
    """vtep1 p1 carries red tagged 42 and blue untagged; vtep2 has them on p1 and p2."""
    v1, v2, h1, r2, b2 = (netns.make(n) for n in ("vtep1", "vtep2", "h1", "r2", "b2"))
    netns.veth(v1, "u1", v2, "u2")
    netns.up(v1, "u1", U1 + "/24")
    netns.up(v2, "u2", U2 + "/24")
    netns.veth(v1, "p1", h1, "eth0")
    netns.veth(v2, "p1", r2, "eth0")
    netns.veth(v2, "p2", b2, "eth0")
    netns.up(h1, "eth0", "10.20.0.1/24")
    netns.up(r2, "eth0", "10.10.0.2/24")
    netns.up(b2, "eth0", "10.20.0.2/24")
    with TagPipes("ht", h1) as host:
        host.ensure("eth0.42", "eth0", 42, None)
    netns.up(h1, "eth0.42", "10.10.0.1/24")
    red_mac, r2_mac, b2_mac = (netns.mac(n, d) for n, d in ((h1, "eth0.42"), (r2, "eth0"),
                                                            (b2, "eth0")))  # fmt: skip
    blue_mac = netns.mac(h1, "eth0")

    def side(me: int) -> NodeState:
        local, remote = (U1, U2) if me == 1 else (U2, U1)
        red = {Binding("p1", 42)} if me == 1 else {Binding("p1")}
        blue = {Binding("p1")} if me == 1 else {Binding("p2")}
        red_remote = r2_mac if me == 1 else red_mac
        blue_remote = b2_mac if me == 1 else blue_mac
        return NodeState.build(
            P,
            [
                LogicalSwitch.make(RED, local, red, {red_remote: remote}, {remote}),
                LogicalSwitch.make(BLUE, local, blue, {blue_remote: remote}, {remote}),
            ],
            VIA_BPF,
        )

    ports1, ports2 = ["p1"], ["p1", "p2"]
    state = run(converge(v1, side(1), ports1))
    run(converge(v2, side(2), ports2))
    (vl,) = state.vlans
    assert (vl.name, vl.port, vl.vlan, vl.master, vl.via, vl.intact) == (
        "p1.42", "p1", 42, f"{P}b{RED}", VIA_BPF, True,
    )  # fmt: skip
    assert {p.name: p.master for p in state.ports} == {"p1": f"{P}b{BLUE}"}
    assert ping(netns, h1, "10.10.0.2")
    assert ping(netns, h1, "10.20.0.2")
    assert ping(netns, h1, "10.10.0.2", "-s", "1422", "-M", "do")  # 1450: vxlan's MTU

    async def learned() -> frozenset[LearnedMac]:
        async with await LinuxDataPlane.open(v1) as dp:
            return await dp.learned_macs(P)

    assert LearnedMac(f"{P}b{RED}", "p1.42", red_mac) in run(learned())
    assert LearnedMac(f"{P}b{BLUE}", "p1", blue_mac) in run(learned())
    by_binding = replace(state, learned=run(learned())).learned_by_binding()
    assert red_mac in by_binding[(RED, Binding("p1", 42))]

    # a piece removed by hand: the plan repairs the pipe in place
    peer = Naming(P).pipe_peer("p1.42")
    netns.exec(v1, "tc", "filter", "del", "dev", peer, "ingress", check=True)

    async def repair() -> list[Any]:
        async with await LinuxDataPlane.open(v1) as dp:
            ops = plan(side(1), await dp.read_actual(P, ports1))
            assert await dp.apply(ops) == []
            return ops

    ops = run(repair())
    assert [type(op).__name__ for op in ops] == ["CreateVlan"]
    assert ping(netns, h1, "10.10.0.2")
    run(converge(v1, side(1), ports1))

    # the binding removed: pipe, dispatcher and the port's clsact go, blue stays
    run(converge(v1, NodeState.build(P, [side(1).logical_switches()[BLUE]], VIA_BPF), ports1))
    links = netns.ip(v1, "-o", "link", "show").stdout
    assert "p1.42" not in links and peer not in links
    assert "clsact" not in netns.exec(v1, "tc", "qdisc", "show", "dev", "p1").stdout
    assert not ping(netns, h1, "10.10.0.2")
    assert ping(netns, h1, "10.20.0.2")


def test_many_vlans_on_one_port(lab: Lab) -> None:
    """One dispatcher for 64 VLANs (more than a filter's name could list), built once."""
    vlans = range(1, 65)
    with TagPipes(P, lab.vtep) as pipes:
        for vlan in vlans:
            pipes.ensure(f"p1.{vlan}", "p1", vlan, None, sync=False)
        assert pipes.read()[1] == frozenset()
        pipes.sync_ports(["p1"])
        found, (disp,) = pipes.read()
    assert len(found) == 64 and all(p.complete for p in found)
    assert disp.verified and [v for v, _ in disp.table] == list(vlans)
    with raw(lab.host, "h1") as h1, raw(lab.vtep, "p1.64") as a64, raw(lab.vtep, "p1.63") as a63:
        h1.send(ether(b"\xff" * 6, HOST_MAC, 0x88B5, b"to-64".ljust(46, b"\0"), vlan=64))
        got = [f for f in receive(a64, 1.0) if f.src == HOST_MAC]
        assert [(f.vlan, f.payload[:5]) for f in got] == [(None, b"to-64")]
        assert not [f for f in receive(a63, 0.2) if f.src == HOST_MAC]
