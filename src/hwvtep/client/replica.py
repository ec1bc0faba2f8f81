"""A live copy of (part of) a database, kept in step by monitors: what Open vSwitch calls an
IDL.

:class:`ReplicaCore` is the sans-IO part. On every new connection it asks for the schema
(once), then for ``monitor_cond_since`` with the id of the last transaction it has seen,
falling back to ``monitor_cond`` and then ``monitor`` when the server answers "unknown
method". It applies ``update``, ``update2`` and ``update3`` notifications (defaults for the
columns ``initial``/``insert`` leave out, ``modify`` diffs applied with
:func:`~hwvtep.ovsdb.data.datum_apply_diff`) to rows in the core's representation
(``dict[str, Datum]``, with ``_uuid``), and reports every change as a core
:data:`~hwvtep.ovsdb.database.Changes` batch ``table -> uuid -> (old, new)``.

Resynchronisation never repeats or loses a change: when the server still has our last
transaction in its history (clustered databases) it sends only what came after; otherwise
it sends everything and the replica reports only the difference between what it had and
what it got. Per-table monitor conditions can be changed at any time: a condition change
in flight when the connection drops forces a full resynchronisation (the server may or may
not have applied it). Against a server that only knows ``monitor``, conditions are applied
on our side.

:class:`Replica` runs a core over a :class:`~hwvtep.client.api.Client`: change batches as an
async iterator, and :meth:`Replica.transact`, which builds a transaction from the replica's
contents, verifies what it read with ``wait`` operations and, when the data changed under
it, waits for the replica to catch up and builds it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

from hwvtep.client.api import Client
from hwvtep.client.connection import Session, SessionListener
from hwvtep.client.errors import (
    ClientError,
    ConnectionLost,
    RpcError,
    SessionClosed,
    TxnConflict,
    error_tag,
)
from hwvtep.client.remote import Remote, SslConfig
from hwvtep.client.session import Lost
from hwvtep.client.txn import Txn, TxnResult, is_conflict
from hwvtep.ovsdb.condition import MonitorCondition, parse_monitor_condition
from hwvtep.ovsdb.data import Datum, datum_apply_diff, datum_from_json, default_datum
from hwvtep.ovsdb.database import Changes, Row
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.jsonrpc import Error, Notification, Reply
from hwvtep.ovsdb.monitor import merge_changes
from hwvtep.ovsdb.schema import DatabaseSchema
from hwvtep.ovsdb.types import UNLIMITED, ZERO_UUID, ColumnType

log = logging.getLogger("hwvtep.client.replica")

Json = Any
Tables = dict[str, dict[str, Row]]
MutableChanges = dict[str, dict[str, tuple[Row | None, Row | None]]]

METHODS: Final = ("monitor_cond_since", "monitor_cond", "monitor")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """A request the core wants sent; its answer goes back with the same ``tag``."""

    tag: str  # "schema", "monitor" or "cond"
    method: str
    params: list[Json]


def _diff_type(ctype: ColumnType) -> ColumnType:
    return ColumnType(ctype.key, ctype.value, 0, UNLIMITED)


class _TableInfo:
    """What applying updates to one table needs, worked out once."""

    __slots__ = ("columns", "composite", "defaults", "diff_types", "name", "types")

    def __init__(self, schema: DatabaseSchema, name: str, columns: Sequence[str] | None) -> None:
        ts = schema.tables.get(name)
        if ts is None:
            raise OvsdbError("unknown table", f"{schema.name} has no table {name}")
        names = [c.name for c in ts.user_columns] if columns is None else list(columns)
        for c in names:
            if c not in ts.columns:
                raise OvsdbError("unknown column", f"table {name} has no column {c}")
        self.name = name
        self.columns = tuple(names)
        self.types = {c: ts.columns[c].type for c in names}
        self.composite = {c: t.n_max > 1 for c, t in self.types.items()}
        self.diff_types = {c: _diff_type(t) for c, t in self.types.items()}
        self.defaults: dict[str, Datum] = {c: default_datum(t) for c, t in self.types.items()}


def _drop_unchanged(changes: Mapping[str, Mapping[str, tuple[Any, Any]]]) -> Changes:
    out: Changes = {}
    for t, rows in changes.items():
        kept = {u: (on[0], on[1]) for u, on in rows.items() if on[0] != on[1]}
        if kept:
            out[t] = kept
    return out


class ReplicaCore:
    """The monitoring state machine and the copy of the rows (see the module docstring).

    ``tables``: table -> columns to replicate (None: every column); None replicates every
    table. ``conditions``: table -> monitor condition (RFC 7047 extension ``where``, ORed
    clauses); absent means every row.
    """

    def __init__(self, db: str, *, schema: DatabaseSchema | None = None,
                 tables: Mapping[str, Sequence[str] | None] | None = None,
                 conditions: Mapping[str, list[Json]] | None = None,
                 monitor_id: Json = "hwvtep-replica") -> None:
        self.db = db
        self.monitor_id = monitor_id
        self.schema: DatabaseSchema | None = None
        self._wanted = dict(tables) if tables is not None else None
        self._info: dict[str, _TableInfo] = {}
        self.tables: Tables = {}
        self.last_id = ZERO_UUID
        self.method = METHODS[0]
        self.monitoring = False  # the monitor is set up: the copy is current
        self.ever_synced = False
        self.seqno = 0  # counts change batches
        self.error: RpcError | None = None  # the server refused us for good
        # How the last (re)synchronisation went: "found" (only later changes came),
        # "full" (everything came and was diffed), or None before the first.
        self.last_sync: str | None = None
        self.n_syncs = 0
        self.desired: dict[str, list[Json] | None] = dict(conditions or {})
        self.acked: dict[str, list[Json] | None] = {}
        self._sent: dict[str, list[Json] | None] = {}
        self._requested: dict[str, list[Json] | None] | None = None
        self._local_conditions: dict[str, MonitorCondition] = {}
        self._batches: list[Changes] = []
        if schema is not None:
            self._set_schema(schema)

    # --- set-up -------------------------------------------------------------------------

    def _set_schema(self, schema: DatabaseSchema) -> None:
        names = list(schema.tables) if self._wanted is None else list(self._wanted)
        info = {t: _TableInfo(schema, t, None if self._wanted is None else self._wanted[t])
                for t in names}
        for t, cond in self.desired.items():
            if t not in info:
                raise OvsdbError("unknown table", f"condition for unmonitored table {t}")
            if cond is not None:
                parse_monitor_condition(schema.tables[t], cond)  # raises if malformed
        self.schema = schema
        self._info = info
        for t in info:
            self.tables.setdefault(t, {})

    def _cond(self, conds: Mapping[str, list[Json] | None], table: str) -> list[Json] | None:
        c = conds.get(table)
        return None if c is None or c == [True] else c

    def _norm(self, conds: Mapping[str, list[Json] | None]) -> dict[str, list[Json] | None]:
        return {t: self._cond(conds, t) for t in self._info}

    def _monitor_call(self) -> Call:
        assert self.schema is not None
        method = self.method
        sent = self._norm(self.desired)
        self._sent = sent
        requests: dict[str, Json] = {}
        for t, info in self._info.items():
            req: dict[str, Json] = {"columns": list(info.columns)}
            if method != "monitor" and sent[t] is not None:
                req["where"] = sent[t]
            requests[t] = req if method == "monitor" else [req]
        params: list[Json] = [self.db, self.monitor_id, requests]
        if method == "monitor_cond_since":
            # Changes since last_id are only right if the copy holds exactly these rows.
            same = self.ever_synced and self._norm(self.acked) == sent
            params.append(self.last_id if same else ZERO_UUID)
        if method == "monitor":
            self._local_conditions = {
                t: parse_monitor_condition(self.schema.tables[t], c)
                for t, c in sent.items() if c is not None}
        else:
            self._local_conditions = {}
        return Call("monitor", method, params)

    # --- driven by the session ----------------------------------------------------------

    def on_ready(self) -> list[Call]:
        """A connection is usable: what to send to (re)synchronise."""
        self.monitoring = False
        self._requested = None
        self.method = METHODS[0]
        if self.error is not None:
            return []
        if self.schema is None:
            return [Call("schema", "get_schema", [self.db])]
        return [self._monitor_call()]

    def on_lost(self) -> None:
        """The connection dropped: the copy stays as it was until resynchronised."""
        if self._requested is not None:
            # A condition change was in flight: the server may or may not have applied it.
            self.last_id = ZERO_UUID
            self.acked = {}
        self._requested = None
        self.monitoring = False

    def on_reply(self, tag: str, result: Json) -> list[Call]:
        try:
            return self._on_reply(tag, result)
        except (OvsdbError, ValueError, TypeError, KeyError, IndexError) as e:
            self.error = RpcError("protocol error", f"bad {tag} reply from server: {e}")
            log.error("%s: %s", self.db, self.error)
            return []

    def _on_reply(self, tag: str, result: Json) -> list[Call]:
        if tag == "schema":
            if self.schema is None:
                self._set_schema(DatabaseSchema.from_json(result))
            return [self._monitor_call()]
        if tag == "monitor":
            method = self.method
            if method == "monitor_cond_since":
                if not (isinstance(result, list) and len(result) == 3):
                    raise ValueError("monitor_cond_since result is not [found, id, updates]")
                found, last_id, updates = result
                if found:
                    self._apply(updates, 2)
                    self.last_sync = "found"
                else:
                    self._reload(updates, 2)
                self.last_id = last_id if isinstance(last_id, str) else ZERO_UUID
            else:
                self._reload(result, 2 if method == "monitor_cond" else 1)
                self.last_id = ZERO_UUID
            self.n_syncs += 1
            self.acked = dict(self._sent)
            self.monitoring = True
            self.ever_synced = True
            return self._cond_change_calls()
        if tag == "cond":
            if self._requested is not None:
                self.acked = self._requested
                self._requested = None
            return self._cond_change_calls()
        return []

    def on_error(self, tag: str, error: Json) -> list[Call]:
        etag = error_tag(error)
        if tag == "monitor" and etag == "unknown method" and self.method != METHODS[-1]:
            self.method = METHODS[METHODS.index(self.method) + 1]
            log.info("%s: server does not know the request, falling back to %s",
                     self.db, self.method)
            return [self._monitor_call()]
        if tag == "cond" and etag == "unknown method":
            # Cannot change conditions in place: the session layer must resubscribe.
            self._requested = None
            self.error = RpcError.from_json(error, "monitor_cond_change")
            return []
        self.error = RpcError.from_json(error, {"schema": "get_schema", "monitor": self.method,
                                                "cond": "monitor_cond_change"}.get(tag, tag))
        log.error("%s: %s", self.db, self.error)
        return []

    def on_notification(self, method: str, params: list[Json]) -> bool:
        """Apply an update if it is for our monitor (True), else leave it (False)."""
        if not params or params[0] != self.monitor_id:
            return False
        if not self.monitoring:
            return method in ("update", "update2", "update3")
        try:
            if method == "update3" and len(params) == 3:
                self._apply(params[2], 2)
                if isinstance(params[1], str):
                    self.last_id = params[1]
            elif method == "update2" and len(params) == 2:
                self._apply(params[1], 2)
            elif method == "update" and len(params) == 2:
                self._apply(params[1], 1)
            else:
                return False
        except (OvsdbError, ValueError, TypeError, KeyError) as e:
            log.warning("%s: ignoring malformed %s: %s", self.db, method, e)
        return True

    # --- conditions ---------------------------------------------------------------------

    def set_condition(self, table: str, where: list[Json] | None) -> list[Call]:
        """Replicate only the rows of ``table`` matching ``where`` (None: all rows)."""
        if self.schema is not None:
            if table not in self._info:
                raise OvsdbError("unknown table", f"{table} is not replicated")
            if where is not None:
                parse_monitor_condition(self.schema.tables[table], where)
        self.desired[table] = where
        return self._cond_change_calls()

    @property
    def conditions_acked(self) -> bool:
        return self.monitoring and self._requested is None and \
            self._norm(self.acked) == self._norm(self.desired)

    def _cond_change_calls(self) -> list[Call]:
        if not self.monitoring or self._requested is not None:
            return []
        desired = self._norm(self.desired)
        acked = self._norm(self.acked)
        if desired == acked:
            return []
        if self.method == "monitor":
            # No server-side conditions: resubscribe and filter here.
            self.monitoring = False
            return self._resubscribe()
        changed = {t: [{"where": c if c is not None else [True]}]
                   for t, c in desired.items() if acked.get(t) != c}
        self._requested = desired
        return [Call("cond", "monitor_cond_change",
                     [self.monitor_id, self.monitor_id, changed])]

    def _resubscribe(self) -> list[Call]:
        # Only reachable with plain "monitor": replace the monitor (new id, full reload).
        old = self.monitor_id
        self.monitor_id = f"{old}+" if isinstance(old, str) else [old]
        return [Call("cancel", "monitor_cancel", [old]), self._monitor_call()]

    # --- applying updates ---------------------------------------------------------------

    def take_batches(self) -> list[Changes]:
        out, self._batches = self._batches, []
        return out

    def _parse_row(self, info: _TableInfo, uuid: str, j: Json, base: Row | None) -> Row:
        if not isinstance(j, dict):
            raise ValueError(f"row {uuid} of {info.name} is not an object")
        row: Row = dict(info.defaults) if base is None else dict(base)
        row["_uuid"] = (uuid,)
        types = info.types
        for c, v in j.items():
            t = types.get(c)
            if t is not None:
                row[c] = datum_from_json(info.diff_types[c], v)
        return row

    def _modify(self, info: _TableInfo, old: Row, j: Json) -> Row:
        if not isinstance(j, dict):
            raise ValueError("modify is not an object")
        row = dict(old)
        for c, v in j.items():
            t = info.types.get(c)
            if t is None:
                continue
            d = datum_from_json(info.diff_types[c], v)
            row[c] = datum_apply_diff(t, old[c], d) if info.composite[c] else d
        return row

    def _row_update(self, info: _TableInfo, rows: dict[str, Row], uuid: str, ru: Json,
                    version: int) -> tuple[Row | None, Row | None]:
        old = rows.get(uuid)
        if not isinstance(ru, dict):
            raise ValueError(f"row update for {uuid} is not an object")
        new: Row | None
        if version == 1:
            nj = ru.get("new")
            new = None if nj is None else self._parse_row(info, uuid, nj, old)
        elif "modify" in ru:
            if old is None:
                raise ValueError(f"modify of missing row {uuid} in {info.name}")
            new = self._modify(info, old, ru["modify"])
        elif "insert" in ru or "initial" in ru:
            nj = ru["insert"] if "insert" in ru else ru["initial"]
            new = self._parse_row(info, uuid, nj, None)
        elif "delete" in ru:
            new = None
        else:
            raise ValueError(f"row update for {uuid} has no operation")
        lc = self._local_conditions.get(info.name)
        if new is not None and lc is not None and not lc.evaluate(new):
            new = None
        return old, new

    def _apply(self, updates: Json, version: int) -> None:
        """Apply one notification's (or reply's) updates as one batch."""
        if not isinstance(updates, dict):
            raise ValueError("<table-updates> is not an object")
        batch: MutableChanges = {}
        for tname, tupd in updates.items():
            info = self._info.get(tname)
            if info is None or not isinstance(tupd, dict):
                continue
            rows = self.tables[tname]
            out = batch.setdefault(tname, {})
            for uuid, ru in tupd.items():
                try:
                    old, new = self._row_update(info, rows, uuid, ru, version)
                except (OvsdbError, ValueError, TypeError, KeyError) as e:
                    log.warning("%s: %s: ignoring bad row update: %s", self.db, tname, e)
                    continue
                if new is None:
                    rows.pop(uuid, None)
                else:
                    rows[uuid] = new
                prev = out.get(uuid)
                out[uuid] = (old if prev is None else prev[0], new)
        self._emit(batch)

    def _reload(self, updates: Json, version: int) -> None:
        """Replace the copy with a full dump, reporting only what differs."""
        if not isinstance(updates, dict):
            raise ValueError("<table-updates> is not an object")
        fresh: Tables = {t: {} for t in self._info}
        for tname, tupd in updates.items():
            info = self._info.get(tname)
            if info is None or not isinstance(tupd, dict):
                continue
            rows = fresh[tname]
            for uuid, ru in tupd.items():
                try:
                    _, new = self._row_update(info, rows, uuid, ru, version)
                except (OvsdbError, ValueError, TypeError, KeyError) as e:
                    log.warning("%s: %s: ignoring bad row: %s", self.db, tname, e)
                    continue
                if new is not None:
                    rows[uuid] = new
        batch: MutableChanges = {}
        for tname, rows in fresh.items():
            old_rows = self.tables.get(tname, {})
            out: dict[str, tuple[Row | None, Row | None]] = {}
            for uuid, new in rows.items():
                old = old_rows.get(uuid)
                if old is None:
                    out[uuid] = (None, new)
                elif old == new:
                    rows[uuid] = old  # keep the object consumers already hold
                else:
                    out[uuid] = (old, new)
            for uuid, old in old_rows.items():
                if uuid not in rows:
                    out[uuid] = (old, None)
            if out:
                batch[tname] = out
        self.tables = fresh
        self.last_sync = "full"
        self._emit(batch)

    def _emit(self, batch: MutableChanges) -> None:
        changes = _drop_unchanged(batch)
        if changes:
            self.seqno += 1
            self._batches.append(changes)


# --------------------------------------------------------------------------- asyncio side


class ChangeStream:
    """Change batches of a replica as an async iterator (``async for changes in ...``).

    A consumer slower than the updates gets the pending batches merged into one (net
    effect per row: first old, last new); nothing is lost or repeated.
    """

    def __init__(self, replica: Replica) -> None:
        self._replica = replica
        self._pending: list[Changes] = []
        self._wakeup = asyncio.Event()
        self._closed = False

    def _push(self, changes: Changes) -> None:
        self._pending.append(changes)
        self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        self._replica._streams.discard(self)
        self._wakeup.set()

    def __aiter__(self) -> ChangeStream:
        return self

    async def __anext__(self) -> Changes:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            if self._replica.core.error is not None:
                raise self._replica.core.error
            self._wakeup.clear()
            await self._wakeup.wait()
        pending, self._pending = self._pending, []
        if len(pending) == 1:
            return pending[0]
        return _drop_unchanged(merge_changes(pending))

    async def get(self, timeout: float | None = None) -> Changes:
        async with asyncio.timeout(timeout):
            return await self.__anext__()


class Replica(SessionListener):
    """A :class:`ReplicaCore` kept in step over a :class:`Client` (see module docstring).

    The rows are shared, not copied: never modify them.
    """

    def __init__(self, client: Client, db: str, *, schema: DatabaseSchema | None = None,
                 tables: Mapping[str, Sequence[str] | None] | None = None,
                 conditions: Mapping[str, list[Json]] | None = None) -> None:
        self.client = client
        self.session: Session = client.session
        self.core = ReplicaCore(db, schema=schema, tables=tables, conditions=conditions)
        self._streams: set[ChangeStream] = set()
        self._changed = asyncio.Event()
        self._synced = asyncio.Event()
        self._failed = asyncio.Event()
        self._closed = False
        self.session.add_listener(self)
        if self.session.is_ready:
            self.on_ready(self.session.remote)

    @classmethod
    async def open(cls, remotes: str | Remote | Sequence[str | Remote], db: str, *,
                   schema: DatabaseSchema | None = None,
                   tables: Mapping[str, Sequence[str] | None] | None = None,
                   conditions: Mapping[str, list[Json]] | None = None,
                   ssl: SslConfig | None = None, leader_only: bool = True,
                   timeout: float | None = 10.0, probe_interval: int | None = None,
                   min_backoff: int = 1000, max_backoff: int = 8000) -> Replica:
        """Connect (to the cluster leader, for a clustered ``db``) and wait for the copy."""
        session = Session(remotes, ssl=ssl, database=db, leader_only=leader_only,
                          probe_interval=probe_interval, min_backoff=min_backoff,
                          max_backoff=max_backoff)
        client = Client(session, timeout=timeout)
        replica = cls(client, db, schema=schema, tables=tables, conditions=conditions)
        session.start()
        try:
            await replica.wait_synced(timeout)
        except BaseException:
            await replica.close()
            raise
        return replica

    async def close(self) -> None:
        """Stop replicating and close the client's session."""
        if self._closed:
            return
        self._closed = True
        self.session.remove_listener(self)
        for s in list(self._streams):
            s.close()
        await self.client.close()

    async def __aenter__(self) -> Replica:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- reading ------------------------------------------------------------------------

    @property
    def db(self) -> str:
        return self.core.db

    @property
    def schema(self) -> DatabaseSchema:
        if self.core.schema is None:
            raise RuntimeError("the replica has not received its schema yet")
        return self.core.schema

    @property
    def tables(self) -> Tables:
        """table -> uuid -> row (read only)."""
        return self.core.tables

    def rows(self, table: str) -> dict[str, Row]:
        return self.core.tables[table]

    def row(self, table: str, uuid: str) -> Row | None:
        return self.core.tables[table].get(uuid)

    def find(self, table: str, **equals: Datum) -> Iterator[Row]:
        """Rows whose columns equal the given datums (a plain scan)."""
        items = list(equals.items())
        for row in self.core.tables[table].values():
            if all(row.get(c) == v for c, v in items):
                yield row

    @property
    def synced(self) -> bool:
        """Connected and monitoring: the copy is current."""
        return self.core.monitoring

    @property
    def seqno(self) -> int:
        return self.core.seqno

    def changes(self, initial: bool = False) -> ChangeStream:
        """Change batches from now on; ``initial``: first the current rows as inserts."""
        stream = ChangeStream(self)
        if initial:
            snapshot: Changes = {t: {u: (None, r) for u, r in rows.items()}
                                 for t, rows in self.core.tables.items() if rows}
            if snapshot:
                stream._push(snapshot)
        self._streams.add(stream)
        return stream

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until the copy is current (RpcError if the server refused the monitor)."""
        async with asyncio.timeout(timeout):
            while not self.core.monitoring:
                self._raise_if_failed()
                synced = asyncio.ensure_future(self._synced.wait())
                failed = asyncio.ensure_future(self._failed.wait())
                try:
                    await asyncio.wait((synced, failed), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    synced.cancel()
                    failed.cancel()
        self._raise_if_failed()

    async def sync(self, timeout: float | None = None) -> None:
        """Wait until the copy reflects every commit that completed before this call.

        An echo round trip: servers send a commit's updates before (ours) or right after
        (ovsdb-server) its reply, and before answering a later request.
        """
        async with asyncio.timeout(timeout):
            while True:
                await self.wait_synced()
                seen = self.session.core.n_ready
                try:
                    await self.client.call("echo", ["hwvtep-sync"], timeout=timeout)
                except ConnectionLost:
                    continue
                if self.core.monitoring and self.session.core.n_ready == seen:
                    return

    async def wait_for(self, predicate: Callable[[Replica], bool],
                       timeout: float | None = None) -> None:
        """Wait until ``predicate(replica)`` holds (checked after every change batch)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def set_condition(self, table: str, where: list[Json] | None,
                            timeout: float | None = None) -> None:
        """Replicate only rows of ``table`` matching ``where`` (None: all); returns when the
        copy follows the new condition."""
        self._send(self.core.set_condition(table, where))
        async with asyncio.timeout(timeout):
            while not self.core.conditions_acked:
                self._raise_if_failed()
                self._changed.clear()
                await self._changed.wait()

    # --- writing ------------------------------------------------------------------------

    def txn(self) -> Txn:
        """A transaction builder for this database, with its schema."""
        return Txn(self.core.db, self.core.schema)

    async def transact(self, build: Callable[[Txn], T], *, attempts: int = 20,
                       timeout: float | None = 30.0) -> tuple[TxnResult, T]:
        """Build a transaction from the copy with ``build(txn)`` and commit it.

        ``build`` reads the replica and adds operations; it should call ``txn.verify(...)``
        on what its decision depends on. If a verification fails (the data changed), or
        the connection dropped before the answer, the replica is brought up to date and
        ``build`` is called again with a new Txn (so it must only depend on what it
        reads), up to ``attempts`` times (then :class:`TxnConflict`). Returns the result
        and what ``build`` returned, once the copy shows the commit.
        """
        async with asyncio.timeout(timeout):
            last: Exception | None = None
            for _ in range(attempts):
                await self.wait_synced()
                txn = self.txn()
                value = build(txn)
                if not txn.ops:
                    return TxnResult([]), value
                try:
                    raw = await self.client.transact_raw(txn.params(), timeout=timeout)
                    result = txn.result(raw)
                except ConnectionLost as e:
                    last = e
                    continue
                except RpcError as e:
                    if not is_conflict(e):
                        raise
                    last = e
                    await self.sync()
                    continue
                await self.sync()
                return result, value
        raise TxnConflict("timed out", f"gave up after {attempts} attempts: {last}",
                          index=-1, conflict=True)

    # --- SessionListener ----------------------------------------------------------------

    def on_ready(self, remote: Remote) -> None:
        if not self._closed:
            self._send(self.core.on_ready())

    def on_lost(self, event: Lost) -> None:
        if event.was_ready or self.core.monitoring:
            self.core.on_lost()
            self._synced.clear()
        if event.final:
            self._failed.set()
            self._changed.set()

    def on_notification(self, msg: Notification) -> None:
        if self.core.on_notification(msg.method, msg.params):
            self._deliver()

    def _send(self, calls: list[Call]) -> None:
        for call in calls:
            self.session.request(call.method, call.params, partial(self._answer, call.tag))
        self._deliver()

    def _answer(self, tag: str, answer: Reply | Error | ClientError) -> None:
        if isinstance(answer, Reply):
            self._send(self.core.on_reply(tag, answer.result))
        elif isinstance(answer, Error):
            self._send(self.core.on_error(tag, answer.error))
        # A ClientError (connection lost) is handled by on_lost.
        if self.core.error is not None:
            self._failed.set()
            self._changed.set()
            for s in self._streams:
                s._wakeup.set()

    def _deliver(self) -> None:
        batches = self.core.take_batches()
        for changes in batches:
            for s in self._streams:
                s._push(changes)
        if self.core.monitoring:
            self._synced.set()
        if batches or self.core.monitoring:
            self._changed.set()

    def _raise_if_failed(self) -> None:
        if self.core.error is not None:
            raise self.core.error
        if self._failed.is_set() and not self.core.monitoring:
            raise ConnectionLost(self.session.last_error or "no more connection attempts")
        if self._closed:
            raise SessionClosed("replica closed")
