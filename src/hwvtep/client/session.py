"""A client's side of an OVSDB session without any I/O: who to connect to, when, and what
the bytes mean.

:class:`SessionCore` combines the reconnect policy (:mod:`hwvtep.ovsdb.reconnect`, one
remote after the other, backoff, inactivity probes), one JSON-RPC :class:`Connection` at a
time, request ids, answers to the server's ``echo`` probes and, for a named database, the
check Open vSwitch clients make before they use a server: monitor ``_Server``'s
``Database`` table and refuse a clustered server that has not joined its cluster, is cut
off from it, is not the leader (when asked for the leader) or has older data than a server
already seen. A refused server is dropped and the next remote tried, and a server that
stops qualifying later (lost leadership) is dropped at once, without backoff.

It is driven like :mod:`hwvtep.ovsdb.reconnect`: call :meth:`SessionCore.run` with the time
and do what it returns (:class:`Connect` a remote, :class:`Disconnect` a stream), report
what the stream does (:meth:`connected`, :meth:`receive`, :meth:`closed`...), send
:meth:`data_to_send`, take :meth:`events` in order, and come back within
:meth:`timeout` ms. Tests drive it with hand-made time and a fake wire.

Requests made while no usable connection exists wait and go out, in order, as soon as one
is ready; requests already sent when a connection drops are reported failed (their fate is
unknown) and never resent.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any, Final

from hwvtep.client.errors import error_tag
from hwvtep.client.remote import Remote
from hwvtep.ovsdb.jsonrpc import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Closed,
    Connection,
    Error,
    Message,
    Notification,
    ProtocolError,
    Reply,
    Request,
    encode,
)
from hwvtep.ovsdb.reconnect import DEFAULT_PROBE_INTERVAL, Action, Reconnect, State

SERVER_DB: Final = "_Server"
SERVER_MONITOR_ID: Final = "hwvtep-client-_Server"
SERVER_COLUMNS: Final = ("name", "model", "connected", "leader", "schema", "cid", "index")
PROBE_ID: Final = "echo"


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a stream to ``remote``; report back with this ``gen``."""

    remote: Remote
    gen: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the stream (or abandon the attempt) numbered ``gen``."""

    gen: int


SessionAction = Connect | Disconnect


@dataclass(frozen=True, slots=True)
class Ready:
    """A connection to ``remote`` is usable: queued requests have been sent."""

    remote: Remote


@dataclass(frozen=True, slots=True)
class Lost:
    """A connection (or attempt) ended.

    ``failed``: ids of requests sent on it and not answered. ``was_ready``: it had been
    announced by :class:`Ready`. ``final``: no more attempts will be made (out of tries
    or closed).
    """

    remote: Remote
    reason: str
    failed: tuple[Any, ...]
    was_ready: bool
    final: bool


SessionEvent = Ready | Lost | Reply | Error | Notification


class Phase(enum.Enum):
    IDLE = "idle"  # nothing open (backing off, or disabled)
    CONNECTING = "connecting"
    CHECKING = "checking"  # stream up, _Server being examined
    READY = "ready"


def _scalar(j: Any) -> Any:
    """The single value of an optional column in RFC 7047 notation (None when empty)."""
    if isinstance(j, list) and len(j) == 2:
        if j[0] == "set":
            inner = j[1]
            return _scalar(inner[0]) if isinstance(inner, list) and len(inner) == 1 else None
        if j[0] == "uuid":
            return j[1]
    return j


def check_server_database(rows: Iterable[Mapping[str, Any]], database: str,
                          leader_only: bool, min_index: int) -> tuple[str | None, int]:
    """Whether a server's ``_Server.Database`` rows (JSON, as monitored) make it usable.

    Returns (reason it is not, or None; the highest cluster log index seen so far). The
    reasons are worded as Open vSwitch's IDL logs them.
    """
    row = next((r for r in rows if _scalar(r.get("name")) == database), None)
    if row is None:
        return f"server does not have {database} database", min_index
    model = _scalar(row.get("model"))
    if model == "clustered":
        if not _scalar(row.get("schema")):
            return ("clustered database server has not yet joined cluster; "
                    "trying another server"), min_index
        if _scalar(row.get("connected")) is not True:
            return ("clustered database server is disconnected from cluster; "
                    "trying another server"), min_index
        if leader_only and _scalar(row.get("leader")) is not True:
            return ("clustered database server is not cluster leader; "
                    "trying another server"), min_index
        index = _scalar(row.get("index"))
        if isinstance(index, int):
            if index < min_index:
                return ("clustered database server has stale data; "
                        "trying another server"), min_index
            min_index = index
    elif model == "relay":
        if not _scalar(row.get("schema")):
            return ("relay database server has not yet connected to the relay source; "
                    "trying another server"), min_index
        if _scalar(row.get("connected")) is not True:
            return ("relay database server is disconnected from the relay source; "
                    "trying another server"), min_index
        if leader_only:
            return ("relay database server cannot be a leader; "
                    "trying another server"), min_index
    return None, min_index


class SessionCore:
    """Reconnecting JSON-RPC client session over ``remotes`` (see the module docstring).

    ``database``: check ``_Server`` for it before declaring a connection ready (and keep
    watching). ``leader_only``: for a clustered database, only its leader will do.
    ``probe_interval``: ms of silence before an echo probe; None means Open vSwitch's
    default (5000 for tcp and ssl, none for unix sockets), 0 none.
    """

    def __init__(self, remotes: Sequence[Remote], now: int, *,
                 database: str | None = None, leader_only: bool = True,
                 probe_interval: int | None = None, min_backoff: int = 1000,
                 max_backoff: int = 8000, max_tries: int | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if not remotes:
            raise ValueError("a session needs at least one remote")
        self.remotes = tuple(remotes)
        self.database = database
        self.leader_only = leader_only
        self.probe_interval = probe_interval
        self.max_message_size = max_message_size
        self.fsm = Reconnect(now, min_backoff=min_backoff, max_backoff=max_backoff,
                             probe_interval=0, max_tries=max_tries)
        self.fsm.set_backoff_free_tries(len(self.remotes))
        self.fsm.enable(now)
        self.phase = Phase.IDLE
        self.remote = self.remotes[0]
        self._next_remote = 0
        self.gen = 0
        self.conn: Connection | None = None
        self.last_error: str | None = None
        self.min_index = 0
        self.server_rows: dict[str, dict[str, Any]] = {}
        self.n_ready = 0  # how many connections became ready so far
        self._drop_reason: str | None = None
        self._out = bytearray()
        self._events: deque[SessionEvent] = deque()
        self._ids = count(1)
        self._internal_ids = count(1)
        self._inflight: dict[Any, str] = {}  # user request id -> method
        self._internal: dict[Any, str] = {}  # our own request id -> purpose
        self._queue: deque[Request] = deque()
        self._closed = False

    # --- what the driver asks --------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def alive(self) -> bool:
        """Connected, connecting, or going to try again."""
        return not self._closed and (self.phase is not Phase.IDLE or self.fsm.is_enabled)

    @property
    def state(self) -> State:
        return self.fsm.state

    def run(self, now: int) -> SessionAction | None:
        """What to do now; call again until it returns None."""
        action = self.fsm.run(now)
        if action is Action.CONNECT:
            if self.phase is not Phase.IDLE:
                self._drop(now, "reconnecting")
                return Disconnect(self.gen)
            remote = self.remotes[self._next_remote]
            self._next_remote = (self._next_remote + 1) % len(self.remotes)
            self.remote = remote
            self.gen += 1
            self.phase = Phase.CONNECTING
            interval = self.probe_interval
            if interval is None:
                interval = DEFAULT_PROBE_INTERVAL if remote.needs_probes else 0
            self.fsm.set_probe_interval(interval)
            self.fsm.connecting(now)
            return Connect(remote, self.gen)
        if action is Action.PROBE:
            if self.conn is not None:
                self._send(Request("echo", [], PROBE_ID))
            return None
        if action is Action.DISCONNECT:
            gen = self.gen
            if self._drop_reason is not None:
                reason = self._drop_reason
            elif self.phase is Phase.CONNECTING:
                reason = "connection attempt timed out"
            elif self.fsm.state is State.IDLE:
                reason = (f"no response to inactivity probe after "
                          f"{2 * self.fsm.probe_interval / 1000:g} seconds, disconnecting")
            else:
                reason = "reconnecting"
            self._drop(now, reason)
            return Disconnect(gen)
        return None

    def timeout(self, now: int) -> int | None:
        return self.fsm.timeout(now)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> SessionEvent | None:
        return self._events.popleft() if self._events else None

    def events(self) -> Iterator[SessionEvent]:
        while self._events:
            yield self._events.popleft()

    # --- what the stream did ----------------------------------------------------------------

    def connected(self, gen: int, now: int) -> bool:
        """The stream of attempt ``gen`` is up. False: it is stale, close it."""
        if gen != self.gen or self.phase is not Phase.CONNECTING:
            return False
        self.conn = Connection(self.max_message_size)
        self.fsm.connected(now)
        self.phase = Phase.CHECKING
        if self.database is None:
            self._become_ready()
        else:
            self.server_rows = {}
            self._internal_request(
                "monitor",
                [SERVER_DB, SERVER_MONITOR_ID, {"Database": {"columns": list(SERVER_COLUMNS)}}],
                "server-monitor")
        return True

    def connect_failed(self, gen: int, now: int, reason: str) -> None:
        if gen == self.gen and self.phase is Phase.CONNECTING:
            self._drop(now, reason)

    def closed(self, gen: int, now: int, reason: str = "connection closed by peer") -> None:
        if gen == self.gen and self.phase is not Phase.IDLE:
            self._drop(now, reason)

    def receive(self, gen: int, data: bytes, now: int) -> None:
        conn = self.conn
        if gen != self.gen or conn is None:
            return
        self.fsm.received(now)
        conn.receive_data(data)
        while self.conn is conn:
            event = conn.next_event()
            if event is None:
                return
            if isinstance(event, ProtocolError):
                self._drop(now, f"JSON-RPC protocol error: {event.reason}")
                return
            if isinstance(event, Closed):
                self._drop(now, "connection closed by peer")
                return
            self._handle(event, now)

    # --- what the user asks -----------------------------------------------------------------

    def request(self, method: str, params: list[Any]) -> int:
        """Send a request now, or as soon as a connection is ready; returns its id."""
        if self._closed:
            raise RuntimeError("session is closed")
        rid = next(self._ids)
        req = Request(method, params, rid)
        if self.phase is Phase.READY:
            self._inflight[rid] = method
            self._send(req)
        else:
            self._queue.append(req)
        return rid

    def notify(self, method: str, params: list[Any]) -> bool:
        """Send a notification if a connection is ready (False if there is none)."""
        if self.phase is not Phase.READY:
            return False
        self._send(Notification(method, params))
        return True

    def withdraw(self, rid: Any) -> bool:
        """Forget a request that has not been sent yet (True), or stop waiting for the
        answer to one that was (False; its answer will be dropped)."""
        for req in self._queue:
            if req.id == rid:
                self._queue.remove(req)
                return True
        self._inflight.pop(rid, None)
        return False

    def is_pending(self, rid: Any) -> bool:
        return rid in self._inflight or any(r.id == rid for r in self._queue)

    def force_reconnect(self, now: int, reason: str = "reconnect requested",
                        reset_backoff: bool = True) -> None:
        """Drop the connection and connect again (to the next remote)."""
        if reset_backoff:
            self.fsm.set_backoff_free_tries(len(self.remotes) + 1)
        self._drop_reason = reason
        self.fsm.force_reconnect(now)

    def close(self, now: int) -> Disconnect | None:
        """Stop for good. Queued requests are reported failed in the final :class:`Lost`."""
        if self._closed:
            return None
        gen = self.gen
        was_open = self.phase is not Phase.IDLE
        self.fsm.disable(now)
        self._drop(now, "session closed", final=True)
        self._closed = True
        return Disconnect(gen) if was_open else None

    # --- internals --------------------------------------------------------------------------

    def _send(self, msg: Message) -> None:
        self._out += encode(msg)

    def _internal_request(self, method: str, params: list[Any], purpose: str) -> None:
        rid = f"hwvtep-{next(self._internal_ids)}"
        self._internal[rid] = purpose
        self._send(Request(method, params, rid))

    def _become_ready(self) -> None:
        self.phase = Phase.READY
        self.n_ready += 1
        self.last_error = None
        self._events.append(Ready(self.remote))
        while self._queue and self.phase is Phase.READY:
            req = self._queue.popleft()
            self._inflight[req.id] = req.method
            self._send(req)

    def _reject(self, now: int, why: str, reset_backoff: bool) -> None:
        self.last_error = f"{self.remote}: {why}"
        self.force_reconnect(now, why, reset_backoff)

    def _drop(self, now: int, reason: str, final: bool = False) -> None:
        phase = self.phase
        if phase is Phase.IDLE and not final:
            return
        failed = tuple(self._inflight)
        if final:
            failed += tuple(r.id for r in self._queue)
            self._queue.clear()
        self._inflight.clear()
        self._internal.clear()
        self._out.clear()
        self.conn = None
        self.phase = Phase.IDLE
        self._drop_reason = None
        if phase is Phase.CONNECTING:
            self.fsm.connect_failed(now)
        elif phase is not Phase.IDLE:
            self.fsm.disconnected(now)
        if reason != "reconnecting" or self.last_error is None:
            self.last_error = f"{self.remote}: {reason}"
        final = final or not self.fsm.is_enabled
        if phase is not Phase.IDLE or final:
            self._events.append(Lost(self.remote, reason, failed, phase is Phase.READY, final))
        if final and self._queue:
            # Out of tries: nothing queued will ever be sent.
            leftover = tuple(r.id for r in self._queue)
            self._queue.clear()
            self._events.append(Lost(self.remote, reason, leftover, False, True))

    def _handle(self, msg: Message, now: int) -> None:
        if isinstance(msg, Request):
            if msg.method == "echo":
                self._send(Reply(msg.params, msg.id))
            else:
                self._send(Error("unknown method", msg.id))
            return
        if isinstance(msg, Notification):
            if (msg.method == "update" and msg.params and msg.params[0] == SERVER_MONITOR_ID
                    and len(msg.params) == 2):
                self._server_update(msg.params[1], now)
                return
            self._events.append(msg)
            return
        rid = msg.id
        if rid == PROBE_ID:
            return
        purpose = self._internal.pop(rid, None) if isinstance(rid, str) else None
        if purpose is not None:
            self._internal_answer(purpose, msg, now)
            return
        if self._inflight.pop(rid, None) is not None:
            self._events.append(msg)

    def _internal_answer(self, purpose: str, msg: Reply | Error, now: int) -> None:
        if purpose != "server-monitor" or self.phase is not Phase.CHECKING:
            return
        if isinstance(msg, Error):
            # A server without _Server (or without these columns) predates clustering.
            tag = error_tag(msg.error)
            if tag in ("unknown database", "unknown method", "syntax error"):
                self._become_ready()
            else:
                self._reject(now, f"_Server monitor failed: {tag}", reset_backoff=False)
            return
        self._server_update(msg.result, now)

    def _server_update(self, updates: Any, now: int) -> None:
        if not isinstance(updates, dict):
            return
        for uuid, ru in (updates.get("Database") or {}).items():
            if not isinstance(ru, dict):
                continue
            new = ru.get("new")
            if isinstance(new, dict):
                self.server_rows[uuid] = {**self.server_rows.get(uuid, {}), **new}
            else:
                self.server_rows.pop(uuid, None)
        if self.database is None or self.phase not in (Phase.CHECKING, Phase.READY):
            return
        why, self.min_index = check_server_database(
            self.server_rows.values(), self.database, self.leader_only, self.min_index)
        if why is None:
            if self.phase is Phase.CHECKING:
                self._become_ready()
        else:
            # A server that stopped qualifying while in use is left without waiting.
            self._reject(now, why, reset_backoff=self.phase is Phase.READY)
