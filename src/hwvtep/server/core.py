"""What an OVSDB server does with each message, independent of sockets.

`ServerCore` owns the served databases, locks, monitors and pending (blocked) transactions;
a session adapter (see `server/listener.py`) feeds it parsed JSON-RPC messages and gives it
a `SessionLink` through which replies and notifications go out. Ordering guarantees live
here: the monitor updates a commit causes are queued to every session before that
commit's reply is sent.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hwvtep.ovsdb import jsonutil
from hwvtep.ovsdb.database import Changes, Database, Row
from hwvtep.ovsdb.errors import OvsdbError, syntax_error
from hwvtep.ovsdb.jsonrpc import Message, Notification, Reply, Request, error_reply
from hwvtep.ovsdb.monitor import (
    CommitEncoder,
    Monitor,
    TxnHistory,
    create_monitor,
    duplicate_monitor_id,
    parse_cond_change_params,
    tables_atoms,
    unknown_monitor_session,
)
from hwvtep.ovsdb.schema import DatabaseSchema, bundled_schema
from hwvtep.ovsdb.transaction import execute
from hwvtep.server.locks import LockTable
from hwvtep.server.storage import random_uuid

log = logging.getLogger("hwvtep.server")

SERVER_DB = "_Server"
_LOCK_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SessionLink(Protocol):
    """What the core needs from a connection."""

    def send(self, msg: Message) -> None: ...

    def send_raw(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    @property
    def backlogged(self) -> bool: ...

    @property
    def name(self) -> str: ...


class Storage(Protocol):
    """What the core needs from a database file (server/storage.py)."""

    def commit(self, changes: Changes, *, durable: bool = ..., comment: str | None = ...,
               date_ms: int | None = ...) -> bool: ...


@dataclass(eq=False)
class ServedDb:
    name: str
    db: Database
    storage: Storage | None
    history: TxnHistory
    path: str = ""
    read_only: bool = False
    # Every session's monitors of this database, for the per-commit fan-out, in the
    # order a session's notifications go out (creation, or renaming by cond_change).
    subs: dict[MonitorSub, None] = field(default_factory=dict)


@dataclass(eq=False)
class MonitorSub:
    session: SessionState
    db: ServedDb
    monitor: Monitor
    # Commits held back while the session's send queue is full, merged per row as they
    # come (so they take no more room than the rows they touch) and sent as one update.
    pending: dict[str, dict[str, tuple[Row | None, Row | None]]] = field(
        default_factory=dict)
    has_pending: bool = False
    pending_txn_id: str = ""
    # Monitors with equal encoding keys get the same bytes for a commit; the key is a
    # deep tuple, so it is hashed once here (into a small int) rather than per commit.
    encoding: int = 0


@dataclass(eq=False)
class PendingTxn:
    session: SessionState
    db: ServedDb
    request: Request
    arrived: float
    deadline: float | None
    # Being re-run: the commit it makes must not re-run it again (nested retries).
    running: bool = False


@dataclass(eq=False)
class SessionState:
    link: SessionLink
    monitors: dict[str, MonitorSub] = field(default_factory=dict)
    db_change_aware: bool = False
    pending: list[PendingTxn] = field(default_factory=list)
    closed: bool = False


def _id_key(value: Any) -> str:
    return jsonutil.dumps(value)


class ServerCore:
    def __init__(self, *, now: Callable[[], float], server_id: str | None = None,
                 new_uuid: Callable[[], str] | None = None) -> None:
        self.now = now
        self.server_id = server_id or str(uuid.uuid4())
        self.new_uuid = new_uuid or random_uuid
        self.dbs: dict[str, ServedDb] = {}
        self.locks = LockTable()
        self.sessions: set[SessionState] = set()
        self.pending: list[PendingTxn] = []
        self.on_commit_hooks: list[Callable[[ServedDb, Changes], None]] = []
        # Called with the deadline (in now() time) of a transaction blocked on a wait.
        self.on_blocked: Callable[[float], None] | None = None
        server_schema = bundled_schema("_server")
        # Not read_only: writes to it fail as to any reserved database, worded so.
        self._server = ServedDb(SERVER_DB, Database(server_schema), None, TxnHistory())
        self._server_rows: dict[str, str] = {}  # db name -> row uuid in _Server
        self._encodings: dict[tuple[Any, ...], int] = {}
        self.dbs[SERVER_DB] = self._server
        # ovsdb-server lists _Server in its own Database table too.
        self._server_db_changed(SERVER_DB, server_schema)

    # ----- databases -------------------------------------------------------------------

    def add_database(self, name: str, db: Database, storage: Storage | None,
                     path: str = "") -> ServedDb:
        if name in self.dbs:
            raise OvsdbError("ovsdb error", f"{name}: duplicate database name")
        served = ServedDb(name, db, storage, TxnHistory(tables_atoms(db.tables)), path=path)
        self.dbs[name] = served
        self._server_db_changed(name, db.schema)
        return served

    def remove_database(self, name: str) -> None:
        served = self.dbs.pop(name)
        for s in list(self.sessions):
            for key, sub in list(s.monitors.items()):
                if sub.db is served:
                    del s.monitors[key]
                    served.subs.pop(sub, None)
                    if s.db_change_aware:
                        s.link.send(Notification("monitor_canceled",
                                                 [sub.monitor.monitor_id]))
                    else:
                        # A client that cannot hear about removed databases is reset.
                        s.link.close()
        for p in [p for p in self.pending if p.db is served]:
            self._finish_pending(p, error_reply("canceled", p.request.id))
        self._server_db_changed(name, None)

    def _server_db_changed(self, name: str, schema: DatabaseSchema | None) -> None:
        """Keep the _Server.Database row of *name* up to date and notify its monitors."""
        table = "Database"
        rows = self._server.db.tables[table]
        row_uuid = self._server_rows.get(name)
        old = rows.get(row_uuid) if row_uuid else None
        new: dict[str, Any] | None = None
        if schema is not None:
            row_uuid = row_uuid or self.new_uuid()
            self._server_rows[name] = row_uuid
            new = {
                "_uuid": (row_uuid,), "_version": (self.new_uuid(),),
                "name": (name,), "model": ("standalone",), "connected": (True,),
                "leader": (True,),
                "schema": (jsonutil.dumps(schema.to_json()),), "cid": (), "sid": (),
                "index": (),
            }
        elif row_uuid is not None:
            del self._server_rows[name]
        if row_uuid is None:
            return
        changes: Changes = {table: {row_uuid: (old, new)}}
        self._server.db.apply(changes)
        self.committed(self._server, changes)

    # ----- sessions --------------------------------------------------------------------

    def open_session(self, link: SessionLink) -> SessionState:
        s = SessionState(link)
        self.sessions.add(s)
        return s

    def close_session(self, s: SessionState) -> None:
        if s.closed:
            return
        s.closed = True
        self.sessions.discard(s)
        for sub in s.monitors.values():
            sub.db.subs.pop(sub, None)
        s.monitors.clear()
        self.pending = [p for p in self.pending if p.session is not s]
        for name, owner in self.locks.drop_session(s):
            if isinstance(owner, SessionState):
                owner.link.send(Notification("locked", [name]))

    def handle(self, s: SessionState, msg: Message) -> None:
        if isinstance(msg, Request):
            self._request(s, msg)
        elif isinstance(msg, Notification) and msg.method == "cancel":
            self._cancel(s, msg.params)
        # Replies (to our echo probes) and other notifications need nothing.

    def _request(self, s: SessionState, req: Request) -> None:
        method = req.method
        try:
            handler = self._METHODS.get(method)
            if handler is None:
                self._reply(s, error_reply("unknown method", req.id))
                return
            result = handler(self, s, req)
        except OvsdbError as e:
            self._reply(s, error_reply(e.to_json(), req.id))
            return
        if result is not _DEFERRED:
            self._reply(s, Reply(result, req.id))

    def _reply(self, s: SessionState, msg: Message) -> None:
        """Send a reply, after any monitor updates still held back for the session: a
        commit's updates always reach a client before that commit's reply."""
        if s.monitors:
            for sub in list(s.monitors.values()):
                self._flush_sub(sub)
        s.link.send(msg)

    # ----- simple methods --------------------------------------------------------------

    def _echo(self, s: SessionState, req: Request) -> Any:
        return req.params

    def _list_dbs(self, s: SessionState, req: Request) -> Any:
        return sorted(self.dbs)

    def _get_server_id(self, s: SessionState, req: Request) -> Any:
        return self.server_id

    def _lookup_db(self, req: Request) -> ServedDb:
        p = req.params
        if not isinstance(p, list) or not p or not isinstance(p[0], str):
            raise syntax_error(f"{req.method} request params must begin with <db-name>", p)
        served = self.dbs.get(p[0])
        if served is None:
            raise OvsdbError("unknown database",
                             f"{req.method} request specifies unknown database {p[0]}", p)
        return served

    def _get_schema(self, s: SessionState, req: Request) -> Any:
        return self._lookup_db(req).db.schema.to_json()

    def _set_db_change_aware(self, s: SessionState, req: Request) -> Any:
        p = req.params
        if not (isinstance(p, list) and len(p) == 1 and isinstance(p[0], bool)):
            raise syntax_error(f"{req.method}: true or false parameter expected", p)
        s.db_change_aware = p[0]
        return {}

    # ----- locks -----------------------------------------------------------------------

    @staticmethod
    def _lock_name(req: Request) -> str:
        p = req.params
        if not (isinstance(p, list) and len(p) == 1 and isinstance(p[0], str)
                and _LOCK_ID_RE.fullmatch(p[0])):
            raise syntax_error(f"{req.method} request params must be <id>", p)
        return p[0]

    def _lock(self, s: SessionState, req: Request) -> Any:
        return {"locked": self.locks.lock(s, self._lock_name(req), req.params)}

    def _steal(self, s: SessionState, req: Request) -> Any:
        name = self._lock_name(req)
        victim = self.locks.steal(s, name, req.params)
        if isinstance(victim, SessionState) and victim is not s:
            victim.link.send(Notification("stolen", [name]))
        return {"locked": True}

    def _unlock(self, s: SessionState, req: Request) -> Any:
        name = self._lock_name(req)
        new_owner = self.locks.unlock(s, name, req.params)
        if isinstance(new_owner, SessionState):
            new_owner.link.send(Notification("locked", [name]))
        return {}

    # ----- transactions ----------------------------------------------------------------

    def _transact(self, s: SessionState, req: Request) -> Any:
        served = self._lookup_db(req)
        if any(p.request.id == req.id for p in s.pending):
            raise syntax_error("duplicate request ID", req.params)
        now = self.now()
        outcome = self._run_txn(s, served, req, now, now, wait_expired=False)
        if isinstance(outcome, Message):
            self._reply(s, outcome)
        else:
            p = PendingTxn(s, served, req, now,
                           None if outcome is None else now + outcome / 1000.0)
            s.pending.append(p)
            self.pending.append(p)
            if p.deadline is not None and self.on_blocked is not None:
                self.on_blocked(p.deadline)
        return _DEFERRED

    def _run_txn(self, s: SessionState, served: ServedDb, req: Request, arrived: float,
                 now: float, wait_expired: bool) -> Message | int | None:
        """Run a transaction: its reply, or (blocked on a wait) its timeout in ms."""
        outcome = execute(
            served.db, req.params,
            has_lock=lambda name: self.locks.has_lock(s, name),
            wait_expired=wait_expired,
            elapsed_ms=int((now - arrived) * 1000),
            read_only=served.read_only,
            new_uuid=self.new_uuid,
        )
        if outcome.blocked:
            return outcome.timeout_ms
        result = outcome.result
        if outcome.changes:
            try:
                if served.storage is not None:
                    served.storage.commit(outcome.changes, durable=outcome.durable,
                                          comment=outcome.comment)
            except OSError as e:
                log.error("%s: commit failed: %s", served.name, e)
                err = OvsdbError("I/O error", f"{served.name}: {e}").to_json()
                return Reply([*result, err], req.id)
            served.db.apply(outcome.changes)
            self.committed(served, outcome.changes)
        return Reply(result, req.id)

    def committed(self, served: ServedDb, changes: Changes) -> None:
        txn_id = self.new_uuid()
        served.history.append(txn_id, changes)
        self._notify_monitors(served, changes, txn_id)
        for hook in self.on_commit_hooks:
            hook(served, changes)
        if self.pending:
            self._retry_pending(served)

    def _retry_pending(self, served: ServedDb) -> None:
        now = self.now()
        for p in [p for p in self.pending if p.db is served]:
            if p not in self.pending or p.running:
                continue  # finished while an earlier retry committed, or being re-run
            out = self._rerun(p, now, False)
            if isinstance(out, Message):
                self._finish_pending(p, out)

    def _rerun(self, p: PendingTxn, now: float, wait_expired: bool) -> Message | int | None:
        p.running = True
        try:
            return self._run_txn(p.session, p.db, p.request, p.arrived, now, wait_expired)
        finally:
            p.running = False

    def _finish_pending(self, p: PendingTxn, reply: Message) -> None:
        if p in self.pending:
            self.pending.remove(p)
        if p in p.session.pending:
            p.session.pending.remove(p)
        self._reply(p.session, reply)

    def run_timers(self) -> float | None:
        """Expire blocked transactions whose wait timed out; returns the next deadline."""
        now = self.now()
        for p in [p for p in self.pending if p.deadline is not None and p.deadline <= now]:
            if p not in self.pending or p.running:
                continue
            out = self._rerun(p, now, True)
            self._finish_pending(p, out if isinstance(out, Message)
                                 else error_reply("timed out", p.request.id))
        return min((p.deadline for p in self.pending if p.deadline is not None),
                   default=None)

    def _cancel(self, s: SessionState, params: Any) -> None:
        if not (isinstance(params, list) and len(params) == 1):
            return
        for p in list(s.pending):
            if p.request.id == params[0]:
                self._finish_pending(p, error_reply("canceled", p.request.id))

    # ----- monitors --------------------------------------------------------------------

    def _monitor(self, s: SessionState, req: Request) -> Any:
        served = self._lookup_db(req)
        monitor = create_monitor(served.db.schema, req.method, req.params,
                                 id_in_use=lambda mid: _id_key(mid) in s.monitors)
        result = monitor.reply(served.db.tables, served.history)
        sub = MonitorSub(s, served, monitor, encoding=self._encoding_of(monitor))
        s.monitors[_id_key(monitor.monitor_id)] = sub
        served.subs[sub] = None
        return result

    def _monitor_cond_change(self, s: SessionState, req: Request) -> Any:
        old_id, new_id, requests = parse_cond_change_params(req.params)
        old_key, new_key = _id_key(old_id), _id_key(new_id)
        sub = s.monitors.get(old_key)
        if sub is None:
            raise unknown_monitor_session(old_id)
        if new_key != old_key and new_key in s.monitors:
            raise duplicate_monitor_id(new_id)
        conditions = sub.monitor.parse_cond_change(requests)
        self._flush_sub(sub)
        update = sub.monitor.apply_cond_change(conditions, sub.db.db.tables)
        sub.encoding = self._encoding_of(sub.monitor)
        if new_key != old_key:
            del s.monitors[old_key]
            sub.monitor.monitor_id = new_id
            s.monitors[new_key] = sub
            del sub.db.subs[sub]
            sub.db.subs[sub] = None
        if update:
            s.link.send(Notification(sub.monitor.notification_method,
                                     sub.monitor.notification_params(
                                         update, sub.db.history.last_txn_id)))
        return {}

    def _monitor_cancel(self, s: SessionState, req: Request) -> Any:
        p = req.params
        if not (isinstance(p, list) and len(p) == 1):
            self._reply(s, error_reply("invalid parameters", req.id))
            return _DEFERRED
        sub = s.monitors.pop(_id_key(p[0]), None)
        if sub is None:
            self._reply(s, error_reply("unknown monitor", req.id))
            return _DEFERRED
        sub.db.subs.pop(sub, None)
        return {}

    def _encoding_of(self, monitor: Monitor) -> int:
        return self._encodings.setdefault(monitor.cache_key, len(self._encodings))

    def _notify_monitors(self, served: ServedDb, changes: Changes, txn_id: str) -> None:
        if not served.subs:
            return
        encoder: CommitEncoder | None = None
        encoded: dict[int, bytes | None] = {}
        for sub in list(served.subs):
            s = sub.session
            if sub.has_pending or s.link.backlogged:
                _merge_into(sub.pending, changes)
                sub.has_pending = True
                sub.pending_txn_id = txn_id
                continue
            try:
                body = encoded[sub.encoding]
            except KeyError:
                if encoder is None:
                    encoder = CommitEncoder(changes)
                body = encoded[sub.encoding] = encoder.updates_json(sub.monitor)
            if body is not None:
                s.link.send_raw(sub.monitor.notification_bytes(body, txn_id))

    def _flush_sub(self, sub: MonitorSub) -> None:
        if not sub.has_pending:
            return
        merged = {t: rows for t, rows in sub.pending.items() if rows}
        sub.pending = {}
        sub.has_pending = False
        update = sub.monitor.encode(merged) if merged else None
        if update:
            sub.session.link.send(Notification(
                sub.monitor.notification_method,
                sub.monitor.notification_params(update, sub.pending_txn_id)))

    def flush_backlog(self, s: SessionState) -> None:
        """The session can take more: send the merged updates held back for it."""
        for sub in list(s.monitors.values()):
            if s.link.backlogged:
                return
            self._flush_sub(sub)

    _METHODS: dict[str, Callable[[ServerCore, SessionState, Request], Any]] = {}


_DEFERRED = object()


def _merge_into(acc: dict[str, dict[str, tuple[Row | None, Row | None]]],
                changes: Changes) -> None:
    """Fold one more commit into *acc* per row (``monitor.merge_changes``'s rules),
    in time proportional to the commit, never to what is already held."""
    for tname, rows in changes.items():
        tacc = acc.get(tname)
        if tacc is None:
            acc[tname] = dict(rows)
            continue
        for row_uuid, (old, new) in rows.items():
            prev = tacc.get(row_uuid)
            if prev is None:
                tacc[row_uuid] = (old, new)
            elif prev[0] is None and new is None:
                del tacc[row_uuid]  # inserted, then deleted: the client never hears of it
            else:
                tacc[row_uuid] = (prev[0], new)


ServerCore._METHODS = {
    "echo": ServerCore._echo,
    "list_dbs": ServerCore._list_dbs,
    "get_schema": ServerCore._get_schema,
    "get_server_id": ServerCore._get_server_id,
    "set_db_change_aware": ServerCore._set_db_change_aware,
    "transact": ServerCore._transact,
    "lock": ServerCore._lock,
    "steal": ServerCore._steal,
    "unlock": ServerCore._unlock,
    "monitor": ServerCore._monitor,
    "monitor_cond": ServerCore._monitor,
    "monitor_cond_since": ServerCore._monitor,
    "monitor_cond_change": ServerCore._monitor_cond_change,
    "monitor_cancel": ServerCore._monitor_cancel,
}
