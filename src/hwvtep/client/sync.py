"""Blocking calls for short-lived programs: the same session logic without asyncio.

The command-line tools are started thousands of times by scripts; importing and starting
asyncio costs more than the request itself. :class:`SyncClient` drives the same
:class:`~hwvtep.client.session.SessionCore` (remotes in turn, the cluster leader check,
answers to echo probes) with a plain blocking socket, and :func:`call` runs one request.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from hwvtep.client.errors import CallTimeout, ConnectionLost, RpcError, SessionClosed
from hwvtep.client.remote import Remote, SslConfig, parse_remotes
from hwvtep.client.session import Connect, Disconnect, Lost, SessionCore
from hwvtep.client.txn import Txn, TxnResult
from hwvtep.ovsdb.jsonrpc import Error, Notification, Reply
from hwvtep.ovsdb.schema import DatabaseSchema

Json = Any


def _now() -> int:
    return int(time.monotonic() * 1000)


class SyncClient:
    """A blocking OVSDB client (see :class:`hwvtep.client.api.Client` for the arguments).

    ``timeout`` (seconds) bounds connecting and each call unless a call says otherwise.
    """

    def __init__(self, remotes: str | Remote | Sequence[str | Remote], *,
                 database: str | None = None, leader_only: bool = True,
                 ssl: SslConfig | None = None, timeout: float | None = 10.0,
                 probe_interval: int | None = 0, max_tries: int | None = None) -> None:
        self.timeout = timeout
        self.ssl = ssl
        self.core = SessionCore(parse_remotes(remotes), _now(), database=database,
                                leader_only=leader_only, probe_interval=probe_interval,
                                max_tries=max_tries)
        self._sock: socket.socket | None = None
        self._gen = -1
        self._answers: dict[Any, Reply | Error | Exception] = {}
        self.notifications: deque[Notification] = deque()
        self._closed = False

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.core.close(_now())
        self._close_sock()

    @property
    def remote(self) -> Remote:
        return self.core.remote

    # --- the loop -----------------------------------------------------------------------

    def _close_sock(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self, action: Connect, deadline: float | None) -> None:
        remote = action.remote
        budget = None if deadline is None else max(0.001, deadline - time.monotonic())
        try:
            if remote.kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(budget)
                try:
                    sock.connect(remote.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((remote.host, remote.port), timeout=budget)
                if remote.kind == "ssl":
                    if self.ssl is None:
                        sock.close()
                        raise OSError("SSL remote needs a private key, certificate and "
                                      "CA certificate")
                    sock = self.ssl.context().wrap_socket(sock)
        except OSError as e:
            self.core.connect_failed(action.gen, _now(), f"connection attempt failed: {e}")
            return
        self._sock = sock
        self._gen = action.gen
        self.core.connected(action.gen, _now())

    def _step(self, deadline: float | None, *, until_ready: bool = False) -> None:
        """Do what is due, send what is pending, and wait a little for input (not when
        *until_ready* and the session is ready: a quiet server would keep us waiting)."""
        now = _now()
        for _ in range(64):
            action = self.core.run(now)
            if action is None:
                break
            if isinstance(action, Connect):
                self._close_sock()
                self._connect(action, deadline)
            elif isinstance(action, Disconnect):
                self._close_sock()
            now = _now()
        self._flush()
        self._take_events()
        if until_ready and self.core.ready:
            return
        wait_ms = self.core.timeout(_now())
        wait = None if wait_ms is None else wait_ms / 1000.0
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            wait = left if wait is None else min(wait, left)
        sock = self._sock
        if sock is None or self.core.conn is None:
            time.sleep(wait if wait is not None else 0.05)
            return
        sock.settimeout(None if wait is None else max(wait, 0.001))
        try:
            data = sock.recv(1 << 18)
        except (TimeoutError, BlockingIOError):
            return
        except OSError as e:
            self._close_sock()
            self.core.closed(self._gen, _now(), f"connection lost: {e}")
            self._take_events()
            return
        self.core.receive(self._gen, data, _now())
        if not data:
            self._close_sock()
        self._flush()
        self._take_events()

    def _flush(self) -> None:
        data = self.core.data_to_send()
        if data and self._sock is not None:
            try:
                self._sock.sendall(data)
            except OSError as e:
                self._close_sock()
                self.core.closed(self._gen, _now(), f"connection lost: {e}")

    def _take_events(self) -> None:
        for event in self.core.events():
            if isinstance(event, (Reply, Error)):
                self._answers[event.id] = event
            elif isinstance(event, Notification):
                self.notifications.append(event)
            elif isinstance(event, Lost):
                if event.was_ready or event.final:
                    self._close_sock()
                for rid in event.failed:
                    self._answers[rid] = ConnectionLost(f"{event.remote}: {event.reason}")

    def _deadline(self, timeout: float | None) -> float | None:
        t = self.timeout if timeout is None else timeout
        return None if t is None else time.monotonic() + t

    def wait_ready(self, timeout: float | None = None) -> None:
        if self._closed:
            raise SessionClosed("client closed")
        deadline = self._deadline(timeout)
        while not self.core.ready:
            if not self.core.alive:
                raise ConnectionLost(self.core.last_error or "no more connection attempts")
            if deadline is not None and time.monotonic() >= deadline:
                raise CallTimeout(f"no usable server (last error: {self.core.last_error})")
            self._step(deadline, until_ready=True)

    def poll(self, timeout: float | None = None) -> None:
        """Wait for input (at most *timeout* seconds; None: until some comes) and take it.

        For programs that mostly listen (``ovsdb-client monitor``): notifications land in
        :attr:`notifications`, and :attr:`core` says whether the session is still up.
        """
        if self._closed:
            raise SessionClosed("client closed")
        self._step(None if timeout is None else time.monotonic() + timeout)

    # --- calls --------------------------------------------------------------------------

    def call(self, method: str, params: list[Json], timeout: float | None = None) -> Json:
        """Send a request and return its result (RpcError for an error reply)."""
        if self._closed:
            raise SessionClosed("client closed")
        deadline = self._deadline(timeout)
        rid = self.core.request(method, params)
        self._flush()
        while rid not in self._answers:
            if deadline is not None and time.monotonic() >= deadline:
                sent = not self.core.withdraw(rid)
                if sent and method == "transact":
                    self.core.notify("cancel", [rid])
                    self._flush()
                why = "" if self.core.ready else f" (last error: {self.core.last_error})"
                raise CallTimeout(f"{method}: no answer in time{why}")
            if not self.core.alive and not self.core.is_pending(rid):
                raise ConnectionLost(self.core.last_error or "no more connection attempts")
            self._step(deadline)
        answer = self._answers.pop(rid)
        if isinstance(answer, Reply):
            return answer.result
        if isinstance(answer, Error):
            raise RpcError.from_json(answer.error, method)
        raise answer

    def list_dbs(self) -> list[str]:
        result: list[str] = self.call("list_dbs", [])
        return result

    def get_schema_json(self, db: str) -> dict[str, Json]:
        result: dict[str, Json] = self.call("get_schema", [db])
        return result

    def get_schema(self, db: str) -> DatabaseSchema:
        return DatabaseSchema.from_json(self.get_schema_json(db))

    def echo(self, *values: Json) -> list[Json]:
        result: list[Json] = self.call("echo", list(values))
        return result

    def get_server_id(self) -> str:
        result: str = self.call("get_server_id", [])
        return result

    def transact(self, txn: Txn | str, *ops: dict[str, Json],
                 timeout: float | None = None) -> TxnResult:
        """Run a :class:`Txn` (or ``db, op, op...``); TxnError if any operation failed."""
        if isinstance(txn, str):
            t = Txn(txn)
            t.ops.extend(ops)
            txn = t
        return txn.result(self.call("transact", txn.params(), timeout))


def call(remotes: str | Remote | Sequence[str | Remote], method: str, params: list[Json],
         timeout: float | None = 10.0, *, ssl: SslConfig | None = None,
         database: str | None = None, leader_only: bool = True) -> Json:
    """Connect, run one request, disconnect; its result (RpcError for an error reply)."""
    with SyncClient(remotes, ssl=ssl, timeout=timeout, database=database,
                    leader_only=leader_only) as client:
        return client.call(method, params)
