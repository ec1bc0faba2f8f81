"""The asyncio side of a client session: sockets, timers and awaitable calls.

:class:`Session` is a thin loop around :class:`~hwvtep.client.session.SessionCore`: it opens
the streams the core asks for (unix, tcp, or ssl with our key, certificate and CA), feeds
it what arrives, writes what it has to send, and wakes it when its timers are due. Replies
and notifications are handed to callbacks synchronously and in arrival order, so a layer
above (the replica) never sees an update before the reply that precedes it on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hwvtep.client.errors import (
    CallTimeout,
    ClientError,
    ConnectionLost,
    RpcError,
    SessionClosed,
)
from hwvtep.client.remote import Remote, SslConfig, parse_remotes
from hwvtep.client.session import (
    Connect,
    Disconnect,
    Lost,
    Ready,
    SessionAction,
    SessionCore,
)
from hwvtep.ovsdb.jsonrpc import Error, Notification, Reply

if TYPE_CHECKING:
    import ssl as _ssl

log = logging.getLogger("hwvtep.client")

Answer = Reply | Error | ClientError
AnswerCallback = Callable[[Answer], None]


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class SessionListener:
    """What a layer above a :class:`Session` hears about; override what you need."""

    def on_ready(self, remote: Remote) -> None:
        """A connection is usable (the first one, or a new one after a loss)."""

    def on_lost(self, event: Lost) -> None:
        """A connection or an attempt ended (``event.was_ready``: it had been usable)."""

    def on_notification(self, msg: Notification) -> None:
        """The server sent a notification (update, update2, update3, locked, stolen...)."""


class _Stream(asyncio.Protocol):
    def __init__(self, session: Session, gen: int) -> None:
        self.session = session
        self.gen = gen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.session._stream_made(self.gen, transport)

    def data_received(self, data: bytes) -> None:
        self.session._stream_data(self.gen, data)

    def eof_received(self) -> bool | None:
        self.session._stream_data(self.gen, b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed by peer"
        self.session._stream_closed(self.gen, reason)


class Session:
    """A reconnecting JSON-RPC session to one of ``remotes`` (see :class:`SessionCore` for
    ``database``, ``leader_only``, ``probe_interval``, backoff and tries).

    Create it inside a running event loop and :meth:`start` it (or use ``async with``).
    ``clock`` gives milliseconds from any monotonic clock.
    """

    def __init__(self, remotes: str | Remote | Sequence[str | Remote], *,
                 ssl: SslConfig | None = None, database: str | None = None,
                 leader_only: bool = True, probe_interval: int | None = None,
                 min_backoff: int = 1000, max_backoff: int = 8000,
                 max_tries: int | None = None,
                 clock: Callable[[], int] = monotonic_ms) -> None:
        self._clock = clock
        self.ssl = ssl
        self.core = SessionCore(parse_remotes(remotes), clock(), database=database,
                                leader_only=leader_only, probe_interval=probe_interval,
                                min_backoff=min_backoff, max_backoff=max_backoff,
                                max_tries=max_tries)
        self._ssl_ctx: _ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._transport_gen = -1
        self._connecting: asyncio.Task[None] | None = None
        self._connecting_gen = -1
        self._timer: asyncio.TimerHandle | None = None
        self._callbacks: dict[Any, AnswerCallback] = {}
        self._listeners: list[SessionListener] = []
        self._ready = asyncio.Event()
        self._dead = asyncio.Event()
        self._pumping = False
        self._repump = False
        self._closing = False

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> Session:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._pump()
        return self

    async def __aenter__(self) -> Session:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection; calls still waiting fail with :class:`SessionClosed`."""
        if self._closing:
            return
        self._closing = True
        action = self.core.close(self._clock())
        if action is not None:
            self._abandon(action.gen)
        self._dispatch()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for cb in list(self._callbacks.values()):
            cb(SessionClosed("session closed"))
        self._callbacks.clear()
        self._dead.set()
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        # Let the transport finish closing (connection_lost) before the loop may end.
        await asyncio.sleep(0)

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def is_ready(self) -> bool:
        return self.core.ready

    @property
    def remote(self) -> Remote:
        """The remote connected to (or last tried)."""
        return self.core.remote

    @property
    def last_error(self) -> str | None:
        return self.core.last_error

    def add_listener(self, listener: SessionListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: SessionListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for a usable connection (CallTimeout, or ConnectionLost when out of tries)."""
        self._check_open()
        if self.core.ready:
            return
        ready = asyncio.ensure_future(self._ready.wait())
        dead = asyncio.ensure_future(self._dead.wait())
        try:
            await asyncio.wait((ready, dead), timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            dead.cancel()
        if self.core.ready:
            return
        why = self.core.last_error or "no connection"
        if self._closing:
            raise SessionClosed("session closed")
        if self._dead.is_set():
            raise ConnectionLost(why)
        raise CallTimeout(f"no usable server within {timeout} s (last error: {why})")

    def force_reconnect(self, reason: str = "reconnect requested") -> None:
        self.core.force_reconnect(self._clock(), reason)
        self._pump()

    # --- requests -----------------------------------------------------------------------

    def request(self, method: str, params: list[Any], callback: AnswerCallback) -> int:
        """Send a request (now or once connected); ``callback`` gets its answer, in order
        with everything else received, or a ClientError if the connection drops first."""
        self._check_open()
        rid = self.core.request(method, params)
        self._callbacks[rid] = callback
        self._flush()
        return rid

    def notify(self, method: str, params: list[Any]) -> bool:
        self._check_open()
        sent = self.core.notify(method, params)
        self._flush()
        return sent

    def withdraw(self, rid: Any) -> bool:
        """Stop waiting for ``rid``; True if it had not been sent yet."""
        self._callbacks.pop(rid, None)
        return self.core.withdraw(rid)

    async def call(self, method: str, params: list[Any], timeout: float | None = None) -> Any:
        """Send a request and return its result; an error reply raises :class:`RpcError`.

        A ``transact`` that runs out of time is canceled on the server (RFC 7047
        ``cancel``) if it was sent.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Answer] = loop.create_future()

        def done(answer: Answer) -> None:
            if not fut.done():
                fut.set_result(answer)

        rid = self.request(method, params, done)
        try:
            async with asyncio.timeout(timeout):
                answer = await fut
        except (TimeoutError, asyncio.CancelledError) as e:
            if not self.withdraw(rid) and method == "transact":
                self.notify("cancel", [rid])
            if isinstance(e, TimeoutError):
                raise CallTimeout(f"{method}: no answer within {timeout} s") from None
            raise
        if isinstance(answer, Reply):
            return answer.result
        if isinstance(answer, Error):
            raise RpcError.from_json(answer.error, method)
        raise answer

    # --- the loop -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise SessionClosed("session closed")
        if self._loop is None:
            self.start()

    def _pump(self) -> None:
        if self._loop is None or self._closing:
            return
        if self._pumping:
            self._repump = True
            return
        self._pumping = True
        try:
            while True:
                self._repump = False
                now = self._clock()
                for _ in range(64):
                    action = self.core.run(now)
                    if action is None:
                        break
                    self._act(action)
                self._flush()
                self._dispatch()
                if not self._repump:
                    break
            self._arm_timer(now)
        finally:
            self._pumping = False

    def _act(self, action: SessionAction) -> None:
        if isinstance(action, Connect):
            assert self._loop is not None
            self._connecting_gen = action.gen
            self._connecting = self._loop.create_task(self._connect(action.remote, action.gen))
        elif isinstance(action, Disconnect):
            self._abandon(action.gen)

    def _abandon(self, gen: int) -> None:
        if self._transport is not None and self._transport_gen == gen:
            self._transport.close()
            self._transport = None
        if self._connecting is not None and self._connecting_gen == gen:
            self._connecting.cancel()
            self._connecting = None

    async def _connect(self, remote: Remote, gen: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            if remote.kind == "unix":
                await loop.create_unix_connection(lambda: _Stream(self, gen), remote.path)
            else:
                ctx = None
                if remote.kind == "ssl":
                    if self.ssl is None:
                        raise ConnectionLost(f"{remote}: SSL remote needs a private key, "
                                             "certificate and CA certificate")
                    if self._ssl_ctx is None:
                        self._ssl_ctx = self.ssl.context()
                    ctx = self._ssl_ctx
                await loop.create_connection(lambda: _Stream(self, gen), remote.host,
                                             remote.port, ssl=ctx)
        except asyncio.CancelledError:
            return
        except (OSError, ClientError) as e:
            log.debug("%s: connection attempt failed: %s", remote, e)
            self.core.connect_failed(gen, self._clock(), f"connection attempt failed: {e}")
            self._pump()
        finally:
            if self._connecting_gen == gen:
                self._connecting = None

    def _stream_made(self, gen: int, transport: asyncio.Transport) -> None:
        if self._closing or not self.core.connected(gen, self._clock()):
            transport.close()
            return
        self._transport = transport
        self._transport_gen = gen
        log.debug("%s: connected", self.core.remote)
        self._pump()

    def _stream_data(self, gen: int, data: bytes) -> None:
        if gen != self._transport_gen:
            return
        self.core.receive(gen, data, self._clock())
        self._pump()

    def _stream_closed(self, gen: int, reason: str) -> None:
        if gen != self._transport_gen:
            return
        self._transport = None
        self.core.closed(gen, self._clock(), reason)
        self._pump()

    def _flush(self) -> None:
        data = self.core.data_to_send()
        if data and self._transport is not None and self._transport_gen == self.core.gen:
            self._transport.write(data)

    def _arm_timer(self, now: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ms = self.core.timeout(now)
        if ms is not None and self._loop is not None and not self._closing:
            self._timer = self._loop.call_later(max(ms, 1) / 1000.0, self._pump)

    def _dispatch(self) -> None:
        for event in self.core.events():
            if isinstance(event, (Reply, Error)):
                cb = self._callbacks.pop(event.id, None)
                if cb is not None:
                    self._safely(cb, event)
            elif isinstance(event, Notification):
                for listener in list(self._listeners):
                    self._safely(listener.on_notification, event)
            elif isinstance(event, Ready):
                log.info("%s: connected", event.remote)
                self._ready.set()
                for listener in list(self._listeners):
                    self._safely(listener.on_ready, event.remote)
            elif isinstance(event, Lost):
                self._lost(event)

    def _lost(self, event: Lost) -> None:
        if event.was_ready:
            log.info("%s: %s", event.remote, event.reason)
        else:
            log.debug("%s: %s", event.remote, event.reason)
        self._ready.clear()
        if event.failed:
            err: ClientError = (SessionClosed("session closed") if self._closing
                                else ConnectionLost(f"{event.remote}: {event.reason}"))
            for rid in event.failed:
                cb = self._callbacks.pop(rid, None)
                if cb is not None:
                    self._safely(cb, err)
        for listener in list(self._listeners):
            self._safely(listener.on_lost, event)
        if event.final:
            self._dead.set()

    @staticmethod
    def _safely(fn: Callable[[Any], None], arg: Any) -> None:
        try:
            fn(arg)
        except Exception:
            log.exception("client callback failed")
