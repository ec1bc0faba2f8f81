"""Typed calls for every RFC 7047 method (and the Open vSwitch extensions) over a Session.

:class:`Client` is what the tools use for one-off requests: ``await Client.connect(...)``,
then ``list_dbs()``, ``get_schema()``, ``transact()``... Error replies raise
:class:`~hwvtep.client.errors.RpcError` (a failed transaction operation
:class:`~hwvtep.client.errors.TxnError`), both carrying the RFC 7047 error tag. The
notifications a server sends (``update*`` for raw monitors, ``locked``, ``stolen``,
``monitor_canceled``) can be read with :meth:`Client.notifications`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from hwvtep.client.connection import Session, SessionListener, monotonic_ms
from hwvtep.client.errors import ProtocolViolation
from hwvtep.client.remote import Remote, SslConfig
from hwvtep.client.txn import Txn, TxnResult
from hwvtep.ovsdb.jsonrpc import Notification
from hwvtep.ovsdb.schema import DatabaseSchema

Json = Any


class NotificationStream(SessionListener):
    """The notifications a session receives from now on, as an async iterator."""

    def __init__(self, session: Session, methods: Sequence[str] | None = None) -> None:
        self._session = session
        self._methods = frozenset(methods) if methods is not None else None
        self._queue: deque[Notification] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        session.add_listener(self)

    def on_notification(self, msg: Notification) -> None:
        if self._methods is None or msg.method in self._methods:
            self._queue.append(msg)
            self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        self._session.remove_listener(self)
        self._wakeup.set()

    def __aiter__(self) -> NotificationStream:
        return self

    async def __anext__(self) -> Notification:
        while not self._queue:
            if self._closed or self._session.closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    async def get(self, timeout: float | None = None) -> Notification:
        """The next notification (TimeoutError if none comes in time)."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()


class Client:
    """Typed RFC 7047 calls over a reconnecting :class:`Session`.

    Calls made while no server is usable wait for one (bounded by ``timeout``); a call
    whose connection drops before its answer raises
    :class:`~hwvtep.client.errors.ConnectionLost`.
    """

    def __init__(self, session: Session, *, timeout: float | None = None) -> None:
        self.session = session
        self.timeout = timeout

    @classmethod
    async def connect(cls, remotes: str | Remote | Sequence[str | Remote], *,
                      database: str | None = None, leader_only: bool = True,
                      ssl: SslConfig | None = None, timeout: float | None = 10.0,
                      probe_interval: int | None = None, min_backoff: int = 1000,
                      max_backoff: int = 8000, max_tries: int | None = None,
                      clock: Callable[[], int] = monotonic_ms) -> Client:
        """Connect to the first usable server of ``remotes`` (tried in turn).

        With ``database``, a clustered server qualifies only if it is connected to its
        cluster (and is its leader, with ``leader_only``), as Open vSwitch clients require.
        ``timeout`` bounds the wait for a server and is the default for each call.
        """
        session = Session(remotes, ssl=ssl, database=database, leader_only=leader_only,
                          probe_interval=probe_interval, min_backoff=min_backoff,
                          max_backoff=max_backoff, max_tries=max_tries, clock=clock).start()
        try:
            await session.wait_ready(timeout)
        except BaseException:
            await session.close()
            raise
        return cls(session, timeout=timeout)

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def remote(self) -> Remote:
        return self.session.remote

    def notifications(self, methods: Sequence[str] | None = None) -> NotificationStream:
        """Notifications received from now on (only ``methods`` if given)."""
        return NotificationStream(self.session, methods)

    async def call(self, method: str, params: list[Json], timeout: float | None = None) -> Json:
        """Any request; its result (RpcError for an error reply)."""
        return await self.session.call(method, params,
                                       self.timeout if timeout is None else timeout)

    # --- RFC 7047 section 4.1 -------------------------------------------------------------

    async def list_dbs(self) -> list[str]:
        result = await self.call("list_dbs", [])
        if not (isinstance(result, list) and all(isinstance(x, str) for x in result)):
            raise ProtocolViolation(f"list_dbs result is not an array of strings: {result!r}")
        return result

    async def get_schema_json(self, db: str) -> dict[str, Json]:
        result = await self.call("get_schema", [db])
        if not isinstance(result, dict):
            raise ProtocolViolation(f"get_schema result is not an object: {result!r:.100}")
        return result

    async def get_schema(self, db: str) -> DatabaseSchema:
        return DatabaseSchema.from_json(await self.get_schema_json(db))

    async def transact(self, txn: Txn | str, *ops: dict[str, Json],
                       timeout: float | None = None) -> TxnResult:
        """Run a :class:`Txn` (or ``db, op, op...``); TxnError if any operation failed."""
        if isinstance(txn, str):
            t = Txn(txn)
            t.ops.extend(ops)
            txn = t
        elif ops:
            raise TypeError("give either a Txn or a database name and operations")
        return txn.result(await self.transact_raw(txn.params(), timeout=timeout))

    async def transact_raw(self, params: list[Json], timeout: float | None = None) -> list[Json]:
        """The result array of ``transact`` as received (operation errors included)."""
        result = await self.call("transact", params, timeout)
        if not isinstance(result, list):
            raise ProtocolViolation(f"transact result is not an array: {result!r:.100}")
        return result

    def cancel(self, request_id: Json) -> bool:
        """Ask the server to give up a request (a blocked transaction) by its id.

        The request is answered with the error "canceled"; ovsdb-server 3.1 sends that
        answer only to db-change-aware clients (:meth:`set_db_change_aware`) and otherwise
        forgets the request silently.
        """
        return self.session.notify("cancel", [request_id])

    async def monitor(self, db: str, monitor_id: Json,
                      requests: dict[str, Json]) -> dict[str, Json]:
        """Start a monitor; its initial contents (``update`` notifications follow)."""
        result = await self.call("monitor", [db, monitor_id, requests])
        if not isinstance(result, dict):
            raise ProtocolViolation(f"monitor result is not an object: {result!r:.100}")
        return result

    async def monitor_cancel(self, monitor_id: Json) -> None:
        await self.call("monitor_cancel", [monitor_id])

    async def lock(self, name: str) -> bool:
        """Ask for a lock; True if granted now (else a ``locked`` notification follows)."""
        return bool((await self.call("lock", [name]))["locked"])

    async def steal(self, name: str) -> bool:
        return bool((await self.call("steal", [name]))["locked"])

    async def unlock(self, name: str) -> None:
        await self.call("unlock", [name])

    async def echo(self, *values: Json) -> list[Json]:
        result = await self.call("echo", list(values))
        if not isinstance(result, list):
            raise ProtocolViolation(f"echo result is not an array: {result!r:.100}")
        return result

    # --- Open vSwitch extensions ----------------------------------------------------------

    async def monitor_cond(self, db: str, monitor_id: Json,
                           requests: dict[str, Json]) -> dict[str, Json]:
        """Start a conditional monitor; initial contents in update2 form."""
        result = await self.call("monitor_cond", [db, monitor_id, requests])
        if not isinstance(result, dict):
            raise ProtocolViolation(f"monitor_cond result is not an object: {result!r:.100}")
        return result

    async def monitor_cond_since(self, db: str, monitor_id: Json, requests: dict[str, Json],
                                 last_id: str) -> tuple[bool, str, dict[str, Json]]:
        """(found, last transaction id, updates since ``last_id`` or everything)."""
        result = await self.call("monitor_cond_since", [db, monitor_id, requests, last_id])
        if not (isinstance(result, list) and len(result) == 3 and isinstance(result[0], bool)
                and isinstance(result[1], str) and isinstance(result[2], dict)):
            raise ProtocolViolation(f"monitor_cond_since result is not [found, last-id, "
                                    f"updates]: {result!r:.100}")
        return result[0], result[1], result[2]

    async def monitor_cond_change(self, monitor_id: Json, new_id: Json,
                                  requests: dict[str, Json]) -> None:
        await self.call("monitor_cond_change", [monitor_id, new_id, requests])

    async def get_server_id(self) -> str:
        result = await self.call("get_server_id", [])
        if not isinstance(result, str):
            raise ProtocolViolation(f"get_server_id result is not a string: {result!r}")
        return result

    async def set_db_change_aware(self, aware: bool = True) -> None:
        await self.call("set_db_change_aware", [aware])

    async def convert(self, db: str, schema: dict[str, Json]) -> None:
        """Convert a database to a new schema (ovsdb-client convert)."""
        await self.call("convert", [db, schema])
