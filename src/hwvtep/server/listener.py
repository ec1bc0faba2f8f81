"""The asyncio side of JSON-RPC sessions: sockets in, ServerCore calls, bytes out.

One `SessionProtocol` per connection (unix, tcp or ssl, accepted or dialled). It feeds the
sans-IO `Connection` parser, hands messages to the core, writes what the core sends, stops
reading while the peer is not taking our output (the core then merges held-back monitor
updates per row), and probes idle tcp/ssl peers with "echo" like ovsdb-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
from collections.abc import Callable
from typing import cast

from hwvtep.ovsdb.jsonrpc import (
    Closed,
    Connection,
    Error,
    Message,
    ProtocolError,
    Reply,
    Request,
    encode,
)
from hwvtep.server.core import ServerCore, SessionState

log = logging.getLogger("hwvtep.jsonrpc")

# Above this many bytes queued for a peer, it is "backlogged": monitor updates are held
# back and merged, and nothing more is read from it until it catches up.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024
DEFAULT_PROBE_MS = 5000


class SessionProtocol(asyncio.Protocol):
    def __init__(self, core: ServerCore, *, name: str = "", probe_ms: int = 0,
                 max_message_size: int = 64 * 1024 * 1024,
                 on_close: Callable[[SessionProtocol], None] | None = None) -> None:
        self.core = core
        self._name = name
        self.probe_ms = probe_ms
        self.conn = Connection(max_message_size)
        self.transport: asyncio.Transport | None = None
        self.state: SessionState | None = None
        self._paused = False
        self._closed = False
        self._out: list[bytes] = []  # written while corked (see _Cork)
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        # Inactivity probe, as Open vSwitch's reconnect: after probe_ms without activity
        # send "echo"; after probe_ms more without any, drop the connection.
        self._last_activity = self._loop.time()
        self._probe_sent_at: float | None = None
        self._last_backlog = 0
        self._probe_handle: asyncio.TimerHandle | None = None
        self.connected = self._loop.create_future()

    # ---- SessionLink ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def last_activity(self) -> float:
        """When the peer was last heard from (the event loop's clock, seconds)."""
        return self._last_activity

    @property
    def backlogged(self) -> bool:
        return self._paused

    def send(self, msg: Message) -> None:
        self.send_raw(encode(msg))

    def send_raw(self, data: bytes) -> None:
        if self.transport is None or self._closed:
            return
        if _cork.depth:
            if not self._out:
                _cork.dirty.append(self)
            self._out.append(data)
        else:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self._flush()
            self.transport.close()

    def _flush(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out = []
            if self.transport is not None and not self._closed:
                self.transport.write(data)
                if len(data) > 65536:
                    _trimmer.count(len(data), self._loop)

    # ---- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not derive from asyncio.Transport but behave as one)
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        if not self._name:
            self._name = _session_name(self.transport)
        self.state = self.core.open_session(self)
        if self.probe_ms > 0:
            self._last_activity = self._loop.time()
            self._schedule_probe(self._last_activity + self.probe_ms / 1000.0)
        if not self.connected.done():
            self.connected.set_result(None)
        log.debug("%s: connected", self._name)

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        self.conn.receive_data(data)
        self._corked_drain()
        _trimmer.count(len(data), self._loop)

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        self._corked_drain()
        return None

    def _corked_drain(self) -> None:
        _cork.depth += 1
        try:
            self._drain_events()
        finally:
            _cork.depth -= 1
            if not _cork.depth:
                _cork.flush()

    def _drain_events(self) -> None:
        state = self.state
        assert state is not None
        for event in self.conn.events():
            if isinstance(event, ProtocolError):
                log.warning("%s: JSON-RPC protocol error: %s", self._name, event.reason)
                self.close()
                return
            if isinstance(event, Closed):
                self.close()
                return
            if isinstance(event, Reply | Error):
                # The answer to our inactivity probe; any other reply is a protocol
                # violation that Open vSwitch answers by dropping the connection.
                if event.id != "echo":
                    log.warning("%s: received unexpected %s message", self._name,
                                "reply" if isinstance(event, Reply) else "error")
                    self.close()
                    return
                continue
            try:
                self.core.handle(state, event)
            except Exception:  # one session's bad luck must not take down the server
                log.exception("%s: internal error handling %s", self._name,
                              getattr(event, "method", type(event).__name__))
                self.close()
                return
            if self._closed:
                return

    def pause_writing(self) -> None:
        self._paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self.state is not None:
            self.core.flush_backlog(self.state)
        if self.transport is not None and not self._closed and not self._paused:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._probe_handle is not None:
            self._probe_handle.cancel()
        if self.state is not None:
            self.core.close_session(self.state)
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("connection lost"))
        log.debug("%s: disconnected%s", self._name, f" ({exc})" if exc else "")
        if self._on_close is not None:
            self._on_close(self)

    # ---- inactivity probe -------------------------------------------------------------

    def set_probe_interval(self, probe_ms: int) -> None:
        if probe_ms == self.probe_ms:
            return
        self.probe_ms = probe_ms
        if self._probe_handle is not None:
            self._probe_handle.cancel()
            self._probe_handle = None
        if probe_ms > 0 and not self._closed:
            self._probe_sent_at = None
            self._schedule_probe(self._last_activity + probe_ms / 1000.0)

    def _schedule_probe(self, when: float) -> None:
        self._probe_handle = self._loop.call_at(when, self._probe)

    def _probe(self) -> None:
        if self._closed or self.transport is None:
            return
        now = self._loop.time()
        interval = self.probe_ms / 1000.0
        # Output queued earlier that has drained since counts as activity (what was
        # written straight through does not: a stalled peer can absorb a lot of it).
        backlog = self.transport.get_write_buffer_size()
        if backlog < self._last_backlog:
            self._last_activity = now
        self._last_backlog = backlog
        sent = self._probe_sent_at
        # (>=: a fast answer can share the millisecond of the probe on coarse clocks)
        if sent is not None and self._last_activity >= sent:
            self._probe_sent_at = sent = None
        if sent is None:
            due = self._last_activity + interval
            if now < due:
                self._schedule_probe(due)
                return
            log.debug("%s: idle %d ms, sending inactivity probe", self._name,
                      int((now - self._last_activity) * 1000))
            self.send(Request("echo", [], "echo"))
            self._probe_sent_at = now
            self._schedule_probe(now + interval)
        elif now < sent + interval:
            self._schedule_probe(sent + interval)
        else:
            log.error("%s: no response to inactivity probe after %.3g seconds, "
                      "disconnecting", self._name, now - sent)
            self.close()


class _Cork:
    """Output produced while one read is handled, written once per session at its end.

    A read often holds many requests (pipelining) and each commit sends updates to every
    monitoring session: without this, every reply and notification would be a system
    call of its own. Only the event loop's thread uses it.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.dirty: list[SessionProtocol] = []

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        for proto in dirty:
            proto._flush()


_cork = _Cork()


class _Trimmer:
    """Gives freed heap memory back to the system after a lot of traffic.

    Big requests and replies (a bulk insert, a select of every row) parse into, and are
    built from, many short-lived objects; once freed they leave holes among the rows that
    stay, which the C library keeps unless asked (ovsdb-server's
    memory-trim-on-compaction does the same). Counted in bytes of traffic, done at most
    once a second, after the current work. The threshold is low so that the last
    batches of a burst are trimmed too, not only those before the count was reached.
    """

    EVERY_BYTES = 1024 * 1024

    def __init__(self) -> None:
        self.bytes = 0
        self.last = 0.0
        self.scheduled = False
        self._trim: Callable[[int], int] | None = None
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
            self._trim = ctypes.CDLL("libc.so.6").malloc_trim

    def count(self, n: int, loop: asyncio.AbstractEventLoop) -> None:
        self.bytes += n
        if self.bytes < self.EVERY_BYTES or self.scheduled or self._trim is None:
            return
        self.scheduled = True
        delay = max(0.0, self.last + 1.0 - loop.time())
        loop.call_later(delay, self._run, loop)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        self.scheduled = False
        self.bytes = 0
        self.last = loop.time()
        if self._trim is not None:
            self._trim(0)


_trimmer = _Trimmer()
_unix_sessions = itertools.count(1)


def _session_name(transport: asyncio.BaseTransport) -> str:
    """As Open vSwitch names accepted streams: "unix#N", "tcp:IP:PORT", "ssl:IP:PORT"."""
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple):
        return f"unix#{next(_unix_sessions)}"
    kind = "ssl" if transport.get_extra_info("sslcontext") is not None else "tcp"
    host = f"[{peer[0]}]" if ":" in peer[0] else peer[0]
    return f"{kind}:{host}:{peer[1]}"
