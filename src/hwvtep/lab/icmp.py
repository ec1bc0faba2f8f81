"""ICMP echo (ping) from inside a lab namespace, without the `ping` binary.

`hwvtep lab ping A B` is the lab's basic "does the overlay work" check, and the machines
we run on do not always have iputils. A raw ICMP socket opened inside the node's namespace
is all it takes: packet building and parsing below are pure; :func:`ping` does the I/O.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from pyroute2 import netns as pr_netns

from hwvtep.lab.topology import IPAddress

ECHO_REQUEST_V4, ECHO_REPLY_V4 = 8, 0
ECHO_REQUEST_V6, ECHO_REPLY_V6 = 128, 129


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes, *, v6: bool = False) -> bytes:
    """An ICMP (or ICMPv6) echo request; for v6 the kernel fills in the checksum."""
    kind = ECHO_REQUEST_V6 if v6 else ECHO_REQUEST_V4
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return header + payload
    csum = checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq) + payload


def parse_echo_reply(packet: bytes, ident: int, *, v6: bool = False) -> int | None:
    """The sequence number of an echo reply with our identifier, else None.

    IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
    """
    if not v6:
        if len(packet) < 20:
            return None
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < 8:
        return None
    kind, _code, _csum, got_ident, seq = struct.unpack("!BBHHH", packet[:8])
    if kind != (ECHO_REPLY_V6 if v6 else ECHO_REPLY_V4) or got_ident != ident:
        return None
    return int(seq)


@dataclass(slots=True)
class PingResult:
    target: IPAddress
    sent: int = 0
    received: int = 0
    rtts_ms: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.received > 0

    def summary(self) -> str:
        loss = 100 * (self.sent - self.received) // self.sent if self.sent else 100
        text = f"{self.sent} sent, {self.received} received, {loss}% loss"
        if self.rtts_ms:
            avg = sum(self.rtts_ms) / len(self.rtts_ms)
            text += f", rtt min/avg/max {min(self.rtts_ms):.3f}/{avg:.3f}/" \
                    f"{max(self.rtts_ms):.3f} ms"
        return text


def ping(netns: str, target: IPAddress, *, count: int = 3, interval: float = 0.2,
         wait: float = 1.0) -> PingResult:
    """Send `count` echo requests from inside `netns`; wait up to `wait` s after the last."""
    v6 = target.version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock = pr_netns.create_socket(netns, family, socket.SOCK_RAW, proto, flags=0)
    ident = (os.getpid() ^ int(time.monotonic_ns())) & 0xFFFF
    result = PingResult(target)
    sent_at: dict[int, float] = {}
    try:
        sock.setblocking(False)
        next_send = time.monotonic()
        deadline = None
        while True:
            now = time.monotonic()
            if result.sent < count and now >= next_send:
                seq = result.sent + 1
                payload = struct.pack("!d", now) + bytes(range(48))
                sent_at[seq] = now
                with contextlib.suppress(OSError):  # no route, unreachable: counts as lost
                    sock.sendto(echo_request(ident, seq, payload, v6=v6), (str(target), 0))
                result.sent += 1
                next_send = now + interval
                if result.sent == count:
                    deadline = now + wait
            if deadline is not None and (now >= deadline or result.received == count):
                break
            timeout = (next_send if result.sent < count else deadline or now) - now
            readable, _, _ = select.select([sock], [], [], max(timeout, 0.0))
            if not readable:
                continue
            while True:
                try:
                    packet, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                seq_got = parse_echo_reply(packet, ident, v6=v6)
                if seq_got is None or addr[0].split("%")[0] != str(target) \
                        or seq_got not in sent_at:
                    continue
                result.rtts_ms.append((time.monotonic() - sent_at.pop(seq_got)) * 1000)
                result.received += 1
    finally:
        sock.close()
    return result


class Prober:
    """Echo requests every `interval` s from a background thread, until :meth:`stop`.

    Measures how long a change takes to make a target reachable: start it, make the
    change, then :meth:`wait_first` returns the monotonic time of the first reply.
    """

    def __init__(self, netns: str, target: IPAddress, *, interval: float = 0.01) -> None:
        self.target = target
        self.interval = interval
        self.result = PingResult(target)
        self.first_reply: float | None = None
        self._v6 = target.version == 6
        family = socket.AF_INET6 if self._v6 else socket.AF_INET
        proto = socket.IPPROTO_ICMPV6 if self._v6 else socket.IPPROTO_ICMP
        self._sock = pr_netns.create_socket(netns, family, socket.SOCK_RAW, proto, flags=0)
        self._sock.setblocking(False)
        self._ident = (os.getpid() ^ int(time.monotonic_ns()) ^ 0x5A5A) & 0xFFFF
        self._stopping = threading.Event()
        self._replied = threading.Event()
        self._thread = threading.Thread(target=self._run, name="icmp-prober", daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def wait_first(self, timeout: float) -> float | None:
        """The monotonic time of the first reply, or None if none came within `timeout`."""
        self._replied.wait(timeout)
        return self.first_reply

    def stop(self) -> PingResult:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close()
        return self.result

    def _run(self) -> None:
        next_send = time.monotonic()
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_send:
                seq = (self.result.sent + 1) & 0xFFFF
                with contextlib.suppress(OSError):  # unreachable for now: keep trying
                    self._sock.sendto(echo_request(self._ident, seq, bytes(56), v6=self._v6),
                                      (str(self.target), 0))
                self.result.sent += 1
                next_send = now + self.interval
            readable, _, _ = select.select([self._sock], [], [], max(next_send - now, 0.0))
            if not readable:
                continue
            while True:
                try:
                    packet, addr = self._sock.recvfrom(65535)
                except (BlockingIOError, OSError):
                    break
                if parse_echo_reply(packet, self._ident, v6=self._v6) is None \
                        or addr[0].split("%")[0] != str(self.target):
                    continue
                self.result.received += 1
                if self.first_reply is None:
                    self.first_reply = time.monotonic()
                    self._replied.set()
