"""Monitors: what a client asked to watch, and the notifications each commit owes it.

RFC 7047 section 4.1.5 (``monitor``, ``update``) plus Open vSwitch's extensions
(``monitor_cond`` / ``update2``, ``monitor_cond_since`` / ``update3``,
``monitor_cond_change``), with the behaviour of ovsdb-server 3.1 checked against it:

* default columns are every column except ``_uuid`` (``_version`` included);
* ``update`` "modify": "old" holds only the changed columns, "new" the whole row;
  "delete": "old" holds the whole row; each part keeps only the columns whose
  ``select`` covers that kind of change;
* ``update2`` "insert"/"initial" omit columns holding their default value;
  "modify" carries, per changed column, the new value (scalar or optional
  columns) or the symmetric difference (sets and maps with max > 1);
* a row that starts (stops) matching the condition is an insert (delete);
* the columns a condition reads count as "changed" columns even when not
  monitored, so a change to only such a column gives ``{"modify": {}}``.

Everything here is pure: the server owns sockets, sessions and monitor ids; it calls
:func:`create_monitor`, :meth:`Monitor.reply`, :meth:`Monitor.encode` (through a
:class:`CommitEncoder` shared by all monitors for one commit) and, for slow clients,
:func:`merge_changes` to coalesce a backlog into the single update OVS would send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

import orjson

from hwvtep.ovsdb.condition import MonitorCondition, parse_monitor_condition
from hwvtep.ovsdb.data import Datum, datum_diff, datum_to_json, default_datum
from hwvtep.ovsdb.errors import NO_SYNTAX, OvsdbError, syntax_error
from hwvtep.ovsdb.schema import DatabaseSchema, TableSchema
from hwvtep.ovsdb.types import UUID_RE, ZERO_UUID, ColumnType

Row = Mapping[str, Datum]
TableRows = Mapping[str, Row]
Tables = Mapping[str, TableRows]
RowChange = tuple[Row | None, Row | None]
Changes = Mapping[str, Mapping[str, RowChange]]
MutableChanges = dict[str, dict[str, RowChange]]

METHODS = ("monitor", "monitor_cond", "monitor_cond_since")


class MonitorVersion(IntEnum):
    """Which request created the monitor, hence which notification it receives."""

    V1 = 1  # monitor -> update
    V2 = 2  # monitor_cond -> update2
    V3 = 3  # monitor_cond_since -> update3

    @staticmethod
    def for_method(method: str) -> MonitorVersion:
        return MonitorVersion(METHODS.index(method) + 1)

    @property
    def notification_method(self) -> str:
        return ("update", "update2", "update3")[self - 1]


class Select(IntFlag):
    NONE = 0
    INITIAL = 1
    INSERT = 2
    DELETE = 4
    MODIFY = 8
    ALL = 15


_SELECT_NAMES = (("initial", Select.INITIAL), ("insert", Select.INSERT),
                 ("delete", Select.DELETE), ("modify", Select.MODIFY))


@dataclass(frozen=True, slots=True)
class MonitoredColumn:
    name: str
    type: ColumnType
    select: Select
    # Composite columns (max > 1) are sent as a difference in update2 "modify".
    composite: bool


@dataclass(frozen=True, slots=True)
class TableSpec:
    """The monitored columns of one table, in request order, and the union of selects."""

    name: str
    columns: tuple[MonitoredColumn, ...]
    select: Select


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """The part of a monitor that does not change after creation; hashable."""

    version: MonitorVersion
    tables: tuple[TableSpec, ...]

    def table(self, name: str) -> TableSpec | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None


# --------------------------------------------------------------------------- parsing


def _parse_error(what: str, detail: str, syntax: Any) -> OvsdbError:
    return syntax_error(f"Parsing {what} failed: {detail}", syntax)


def _check_object(what: str, j: Any, members: Mapping[str, type]) -> dict[str, Any]:
    """An ovsdb_parser-like check: an object whose members have the given JSON types."""
    if not isinstance(j, dict):
        raise _parse_error(what, "Object expected.", NO_SYNTAX)
    out: dict[str, Any] = {}
    for name, kind in members.items():
        if name in j:
            v = j[name]
            if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
                raise _parse_error(what, f"Type mismatch for member '{name}'.", j)
            out[name] = v
    for name in j:
        if name not in members:
            raise _parse_error(what, f"Member '{name}' is present but not allowed here.", j)
    return out


def _parse_select(table: str, j: Any) -> Select:
    what = f"table {table} select"
    members = _check_object(what, j, {n: bool for n, _ in _SELECT_NAMES})
    select = Select.NONE
    for name, flag in _SELECT_NAMES:
        if members.get(name, True):
            select |= flag
    return select


def _add_columns(ts: TableSchema, columns_j: list[Any] | None,
                 select: Select, out: dict[str, MonitoredColumn]) -> None:
    def add(name: str, syntax: Any) -> None:
        if name in out:
            raise syntax_error(f"column {name} mentioned more than once", syntax)
        ctype = ts.columns[name].type
        out[name] = MonitoredColumn(name, ctype, select, ctype.n_max > 1)

    if columns_j is None:
        for name in ts.columns:
            if name != "_uuid":
                add(name, NO_SYNTAX)
        return
    for elem in columns_j:
        if not isinstance(elem, str):
            raise syntax_error("array of column names expected", columns_j)
        if elem not in ts.columns:
            raise syntax_error(f"{elem} is not a valid column name", columns_j)
        add(elem, columns_j)


def create_monitor(schema: DatabaseSchema, method: str, params: Any,
                   id_in_use: Callable[[Any], bool] = lambda _id: False) -> Monitor:
    """Parse the params of a ``monitor``/``monitor_cond``/``monitor_cond_since`` request.

    *params* is the whole array ``[db-name, monitor-id, requests(, last-txn-id)]``; the
    caller has already checked the database name. *id_in_use* tells whether the
    session already has a monitor with that id (checked where ovsdb-server does, so
    error precedence matches). Raises :class:`OvsdbError`.
    """
    version = MonitorVersion.for_method(method)
    want = 4 if version is MonitorVersion.V3 else 3
    if not isinstance(params, list) or len(params) < 3 or (
            version is not MonitorVersion.V1 and len(params) != want):
        raise syntax_error("invalid parameters", params)
    monitor_id = params[1]
    requests = params[2]
    if not isinstance(requests, dict):
        raise syntax_error("monitor-requests must be object", requests)
    if id_in_use(monitor_id):
        raise syntax_error("duplicate monitor ID", monitor_id)
    conditional = version is not MonitorVersion.V1
    tables: list[TableSpec] = []
    conditions: dict[str, MonitorCondition] = {}
    for tname, mr in requests.items():
        ts = schema.tables.get(tname)
        if ts is None:
            raise syntax_error(f"no table named {tname}")
        cols: dict[str, MonitoredColumn] = {}
        union = Select.NONE
        for request in (mr if isinstance(mr, list) else [mr]):
            what = f"table {tname}"
            members: dict[str, type] = {"columns": list, "select": dict}
            if conditional:
                members = {"where": list, **members}
            parsed = _check_object(what, request, members)
            select = (_parse_select(tname, parsed["select"]) if "select" in parsed
                      else Select.ALL)
            union |= select
            _add_columns(ts, parsed.get("columns"), select, cols)
            # When several requests of one table carry a condition, ovsdb-server 3.1
            # keeps the first.
            if conditional:
                tc = parse_monitor_condition(ts, parsed.get("where", []))
                conditions.setdefault(tname, tc)
        tables.append(TableSpec(tname, tuple(cols.values()), union))
    last_txn_id: str | None = None
    if version is MonitorVersion.V3:
        last = params[3]
        if not isinstance(last, str):
            raise syntax_error("last-txn-id must be string", last)
        if not UUID_RE.match(last):
            raise syntax_error("last-txn-id must be UUID format.", last)
        last_txn_id = last.lower()
    return Monitor(schema, MonitorSpec(version, tuple(tables)), monitor_id, conditions,
                   last_txn_id)


def parse_cond_change_params(params: Any) -> tuple[Any, Any, Any]:
    """``monitor_cond_change`` params -> (monitor id, new monitor id, requests).

    The caller then finds the monitor (``unknown_monitor_session`` if none), checks
    the new id (``duplicate_monitor_id``), and calls :meth:`Monitor.parse_cond_change`.
    """
    if not isinstance(params, list) or len(params) != 3:
        raise syntax_error("invalid parameters", params)
    return params[0], params[1], params[2]


def unknown_monitor_session(monitor_id: Any) -> OvsdbError:
    return syntax_error("unknown monitor session", monitor_id)


def duplicate_monitor_id(monitor_id: Any) -> OvsdbError:
    return syntax_error("duplicate monitor ID", monitor_id)


# --------------------------------------------------------------------------- encoding


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def _is_default(ctype: ColumnType, datum: Datum) -> bool:
    return len(datum) == ctype.n_min and (not datum or datum == default_datum(ctype))


def _row_full_json(ts: TableSpec, row: Row, kind: Select, skip_default: bool
                   ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in ts.columns:
        if c.select & kind:
            d = row[c.name]
            if skip_default and _is_default(c.type, d):
                continue
            out[c.name] = datum_to_json(c.type, d)
    return out


class Monitor:
    """One client monitor: its fixed :class:`MonitorSpec`, its id and its conditions.

    The server keeps one per (session, monitor id). Conditions (update2/update3 only)
    change with :meth:`apply_cond_change`; the id may change then too (``monitor_id``
    is a plain attribute the server sets).
    """

    __slots__ = ("_cache_key", "_extra", "conditions", "last_txn_id", "monitor_id",
                 "schema", "spec")

    def __init__(self, schema: DatabaseSchema, spec: MonitorSpec, monitor_id: Any,
                 conditions: dict[str, MonitorCondition] | None = None,
                 last_txn_id: str | None = None) -> None:
        self.schema = schema
        self.spec = spec
        self.monitor_id = monitor_id
        self.conditions: dict[str, MonitorCondition] = dict(conditions or {})
        # The last-txn-id a monitor_cond_since asked for (None otherwise).
        self.last_txn_id = last_txn_id
        # Columns compared to decide whether a row changed: monitored columns plus
        # every column a condition of this monitor has ever read.
        self._extra: dict[str, frozenset[str]] = {}
        for t in spec.tables:
            self._extra[t.name] = frozenset(c.name for c in t.columns)
        for tname, tc in self.conditions.items():
            self._extra[tname] = self._extra[tname] | tc.columns
        self._cache_key: tuple[Any, ...] | None = None

    @property
    def version(self) -> MonitorVersion:
        return self.spec.version

    @property
    def notification_method(self) -> str:
        return self.spec.version.notification_method

    @property
    def cache_key(self) -> tuple[Any, ...]:
        """Equal keys produce identical updates for identical changes."""
        if self._cache_key is None:
            conds = tuple(sorted(self.conditions.items(), key=_first))
            extra = tuple(sorted((t, tuple(sorted(c))) for t, c in self._extra.items()))
            self._cache_key = (self.spec, conds, extra)
        return self._cache_key

    # ---------------------------------------------------------------- row updates

    def _row_update(self, ts: TableSpec, tc: MonitorCondition | None, old: Row | None,
                    new: Row | None, initial: bool) -> dict[str, Any] | None:
        if initial:
            kind = Select.INITIAL
        elif old is None:
            kind = Select.INSERT
        elif new is None:
            kind = Select.DELETE
        else:
            kind = Select.MODIFY
        v1 = self.spec.version is MonitorVersion.V1
        if not v1 and tc is not None:
            old_ok = old is not None and tc.evaluate(old)
            new_ok = new is not None and tc.evaluate(new)
            if kind in (Select.INITIAL, Select.INSERT):
                if not new_ok:
                    return None
            elif kind is Select.MODIFY:
                if not old_ok:
                    if not new_ok:
                        return None
                    kind = Select.INSERT
                elif not new_ok:
                    kind = Select.DELETE
            elif not old_ok:
                return None
        if not ts.select & kind:
            return None
        changed: set[str] | None = None
        if kind is Select.MODIFY:
            assert old is not None and new is not None
            changed = {c for c in self._extra[ts.name] if old[c] != new[c]}
            if not changed:
                return None
        if v1:
            out: dict[str, Any] = {}
            if kind is Select.DELETE:
                assert old is not None
                out["old"] = _row_full_json(ts, old, kind, False)
                return out
            assert new is not None
            if kind is Select.MODIFY:
                assert old is not None and changed is not None
                out["old"] = {c.name: datum_to_json(c.type, old[c.name])
                              for c in ts.columns if c.select & kind and c.name in changed}
            out["new"] = _row_full_json(ts, new, kind, False)
            return out
        if kind is Select.DELETE:
            return {"delete": None}
        assert new is not None
        if kind is Select.MODIFY:
            assert old is not None and changed is not None
            diff: dict[str, Any] = {}
            for c in ts.columns:
                if c.select & kind and c.name in changed:
                    o, n = old[c.name], new[c.name]
                    d = datum_diff(c.type, o, n) if c.composite else n
                    diff[c.name] = datum_to_json(c.type, d)
            return {"modify": diff}
        name = "initial" if kind is Select.INITIAL else "insert"
        return {name: _row_full_json(ts, new, kind, True)}

    def encode(self, changes: Changes, initial: bool = False) -> dict[str, Any] | None:
        """The <table-updates> (or <table-updates2>) for *changes*, None if empty."""
        out: dict[str, Any] = {}
        for ts in self.spec.tables:
            rows = changes.get(ts.name)
            if not rows or not ts.select:
                continue
            tc = self.conditions.get(ts.name)
            tout: dict[str, Any] = {}
            for uuid, (old, new) in rows.items():
                ru = self._row_update(ts, tc, old, new, initial)
                if ru is not None:
                    tout[uuid] = ru
            if tout:
                out[ts.name] = tout
        return out or None

    def initial(self, tables: Tables) -> dict[str, Any]:
        """The initial contents (``monitor``/``monitor_cond`` reply result)."""
        out: dict[str, Any] = {}
        for ts in self.spec.tables:
            if not ts.select & Select.INITIAL:
                continue
            tc = self.conditions.get(ts.name)
            tout: dict[str, Any] = {}
            for uuid, row in tables.get(ts.name, {}).items():
                ru = self._row_update(ts, tc, None, row, True)
                if ru is not None:
                    tout[uuid] = ru
            if tout:
                out[ts.name] = tout
        return out

    def reply(self, tables: Tables, history: TxnHistory | None = None) -> Any:
        """The result of the request that created this monitor.

        For ``monitor_cond_since`` this is ``[found, last-txn-id, updates]``: when
        *history* holds the requested last-txn-id, the changes since then (found),
        otherwise the initial contents; the id is the newest one in *history* (all
        zeros without a history, as ovsdb-server in standalone mode).
        """
        if self.spec.version is not MonitorVersion.V3:
            return self.initial(tables)
        current = history.last_txn_id if history is not None else ZERO_UUID
        since = None
        if history is not None and self.last_txn_id not in (None, ZERO_UUID):
            assert self.last_txn_id is not None
            since = history.since(self.last_txn_id)
        if since is None:
            return [False, current, self.initial(tables)]
        return [True, current, self.encode(merge_changes(since)) or {}]

    def on_commit(self, changes: Changes, encoder: CommitEncoder | None = None
                  ) -> dict[str, Any] | None:
        """The table-updates this monitor owes for one commit (None: send nothing)."""
        if encoder is not None:
            return encoder.updates(self)
        return self.encode(changes)

    def notification(self, updates: Any, last_txn_id: str | None = None) -> dict[str, Any]:
        """The JSON-RPC notification carrying *updates* (update3 needs *last_txn_id*)."""
        return {"id": None, "method": self.notification_method,
                "params": self.notification_params(updates, last_txn_id)}

    def notification_params(self, updates: Any, last_txn_id: str | None = None
                            ) -> list[Any]:
        if self.spec.version is MonitorVersion.V3:
            return [self.monitor_id, last_txn_id or ZERO_UUID, updates]
        return [self.monitor_id, updates]

    def notification_bytes(self, updates_json: bytes, last_txn_id: str | None = None
                           ) -> bytes:
        """The serialized notification around already serialized *updates_json*."""
        head = b'{"id":null,"method":"' + self.notification_method.encode() + b'","params":['
        head += orjson.dumps(self.monitor_id) + b","
        if self.spec.version is MonitorVersion.V3:
            head += orjson.dumps(last_txn_id or ZERO_UUID) + b","
        return head + updates_json + b"]}"

    # ---------------------------------------------------------------- cond change

    def parse_cond_change(self, requests: Any) -> dict[str, MonitorCondition]:
        """Check the <monitor-cond-update-requests>; the new condition per table.

        ``monitor`` (update) monitors accept the request and ignore the conditions,
        as ovsdb-server does. An omitted "where" means true.
        """
        if not isinstance(requests, dict):
            raise syntax_error("monitor-cond-change-requests must be object")
        out: dict[str, MonitorCondition] = {}
        for tname, reqs in requests.items():
            ts = self.schema.tables.get(tname)
            if ts is None:
                raise syntax_error(f"no table named {tname}")
            if self.spec.table(tname) is None:
                raise syntax_error(f"no table named {tname} in monitor session")
            if not isinstance(reqs, list):
                raise syntax_error(f"table {tname} no monitor-cond-change JSON array")
            for req in reqs:
                parsed = _check_object(f"table {tname}", req,
                                       {"columns": list, "where": list})
                if "columns" in parsed:
                    raise syntax_error("changing columns is unsupported", req)
                if self.spec.version is not MonitorVersion.V1:
                    out[tname] = parse_monitor_condition(ts, parsed.get("where", []))
        return out

    def apply_cond_change(self, new_conditions: Mapping[str, MonitorCondition],
                          tables: Tables) -> dict[str, Any] | None:
        """Install new conditions; the table-updates2 for rows entering/leaving view.

        The server must first flush this monitor's pending updates (they were
        computed with the old conditions), as ovsdb-server does.
        """
        out: dict[str, Any] = {}
        for tname, new_tc in new_conditions.items():
            old_tc = self.conditions.get(tname)
            if old_tc is not None and old_tc == new_tc:
                continue
            ts = self.spec.table(tname)
            assert ts is not None
            tout: dict[str, Any] = {}
            if ts.select & (Select.INSERT | Select.DELETE):
                for uuid, row in tables.get(tname, {}).items():
                    was = old_tc is None or old_tc.evaluate(row)
                    now = new_tc.evaluate(row)
                    if was == now:
                        continue
                    if now and ts.select & Select.INSERT:
                        tout[uuid] = {"insert": _row_full_json(ts, row, Select.INSERT, True)}
                    elif was and ts.select & Select.DELETE:
                        tout[uuid] = {"delete": None}
            if tout:
                out[tname] = tout
            self.conditions[tname] = new_tc
            self._extra[tname] = self._extra[tname] | new_tc.columns
            self._cache_key = None
        return out or None


# --------------------------------------------------------------------------- fan-out


class CommitEncoder:
    """Encodes one commit's changes once per distinct monitor (by :attr:`cache_key`).

    Create one per commit and pass it to :meth:`Monitor.on_commit` (or call
    :meth:`updates` / :meth:`updates_json`) for every monitor of the database.
    """

    __slots__ = ("_bytes", "_updates", "changes")

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._updates: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self._bytes: dict[tuple[Any, ...], bytes | None] = {}

    def updates(self, monitor: Monitor) -> dict[str, Any] | None:
        """Shared result: callers must not mutate it."""
        key = monitor.cache_key
        try:
            return self._updates[key]
        except KeyError:
            u = self._updates[key] = monitor.encode(self.changes)
            return u

    def updates_json(self, monitor: Monitor) -> bytes | None:
        """The serialized table-updates (for :meth:`Monitor.notification_bytes`)."""
        key = monitor.cache_key
        try:
            return self._bytes[key]
        except KeyError:
            u = self.updates(monitor)
            b = self._bytes[key] = None if u is None else orjson.dumps(u)
            return b

    @property
    def distinct_encodings(self) -> int:
        return len(self._updates)


# --------------------------------------------------------------------------- coalescing


def merge_changes(changes_list: Iterable[Changes]) -> MutableChanges:
    """Fold consecutive commits into one ``Changes``, as a backlogged client sees them.

    Per row: insert + modify = insert, insert + delete = nothing, modify + modify =
    one modify from the first old to the last new, modify + delete = delete of the
    first old, delete + insert (a replica reusing a UUID) = modify. Encoding the
    result gives exactly the single update ovsdb-server sends a client whose
    previous updates have not been flushed yet, in every format (update, update2,
    update3). The inputs are not modified.
    """
    out: MutableChanges = {}
    for changes in changes_list:
        for tname, rows in changes.items():
            if not rows:
                continue
            tout = out.get(tname)
            if tout is None:
                out[tname] = dict(rows)
                continue
            for uuid, (old, new) in rows.items():
                prev = tout.get(uuid)
                if prev is None:
                    tout[uuid] = (old, new)
                    continue
                first_old = prev[0]
                if first_old is None and new is None:
                    del tout[uuid]
                else:
                    tout[uuid] = (first_old, new)
    return {t: rows for t, rows in out.items() if rows}


# --------------------------------------------------------------------------- history


def datum_atoms(datum: Datum) -> int:
    """Atoms in a datum as ovsdb-server counts them (a map pair is two)."""
    n = len(datum)
    if n and isinstance(datum[0], tuple):
        return 2 * n
    return n


def row_atoms(row: Row) -> int:
    # datum_atoms inlined: this runs for every row of every commit (TxnHistory.append).
    n = 0
    for d in row.values():
        k = len(d)
        if k and type(d[0]) is tuple:
            k += k
        n += k
    return n


def tables_atoms(tables: Tables) -> int:
    """Atoms in a whole database: the starting point for :class:`TxnHistory`."""
    return sum(row_atoms(r) for rows in tables.values() for r in rows.values())


# A commit as the history keeps it: per table, its UUIDs and the old and new rows in
# parallel tuples (the olds None when the commit only inserted there, the news None when
# it only deleted). A big commit's dict of (old, new) pairs costs about 100 bytes a row;
# this costs 16 to 24, and the rows themselves are those of the database.
_PackedChanges = tuple[tuple[str, tuple[str, ...], tuple[Row | None, ...] | None,
                             tuple[Row | None, ...] | None], ...]


def _pack(changes: Changes) -> _PackedChanges:
    out: list[tuple[str, tuple[str, ...], tuple[Row | None, ...] | None,
                    tuple[Row | None, ...] | None]] = []
    for tname, rows in changes.items():
        if len(rows) == 1:  # the common small commit, without the transposition
            [(u, (old, new))] = rows.items()
            out.append((tname, (u,), None if old is None else (old,),
                        None if new is None else (new,)))
            continue
        olds, news = zip(*rows.values(), strict=True)
        n = len(olds)
        out.append((tname, tuple(rows), None if olds.count(None) == n else olds,
                    None if news.count(None) == n else news))
    return tuple(out)


def _unpack(packed: _PackedChanges) -> MutableChanges:
    out: MutableChanges = {}
    for tname, uuids, olds, news in packed:
        n = len(uuids)
        out[tname] = dict(zip(uuids, zip(olds or (None,) * n, news or (None,) * n,
                                         strict=True), strict=True))
    return out


def changes_atoms(changes: Changes) -> tuple[int, int]:
    """(atoms in old rows, atoms in new rows) of a commit."""
    n_old = n_new = 0
    for rows in changes.values():
        for old, new in rows.values():
            if old is not None:
                n_old += row_atoms(old)
            if new is not None:
                n_new += row_atoms(new)
    return n_old, n_new


class TxnHistory:
    """The recent commits by transaction id, for ``monitor_cond_since``.

    Bounded as ovsdb-server bounds it: at most *max_txns* transactions, and the atoms
    of the kept transactions (old plus new rows) no more than the atoms in the
    database (beyond that a fresh snapshot is cheaper); the newest transaction is
    always kept. Pass the database's atom count (:func:`tables_atoms`) at creation;
    later commits keep it up to date.
    """

    __slots__ = ("_entries", "_find", "_first", "db_atoms", "history_atoms", "max_txns")

    def __init__(self, db_atoms: int = 0, max_txns: int = 100) -> None:
        if max_txns < 1:
            raise ValueError("max_txns must be at least 1")
        self.db_atoms = db_atoms
        self.max_txns = max_txns
        self.history_atoms = 0
        # Oldest first; _find maps txn id -> absolute position, _first is the
        # absolute position of _entries[0].
        self._entries: list[tuple[str, _PackedChanges, int]] = []
        self._find: dict[str, int] = {}
        self._first = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_txn_id(self) -> str:
        return self._entries[-1][0] if self._entries else ZERO_UUID

    def append(self, txn_id: str, changes: Changes) -> None:
        n_old, n_new = changes_atoms(changes)
        self.db_atoms += n_new - n_old
        atoms = n_old + n_new
        txn_id = txn_id.lower()
        self._find[txn_id] = self._first + len(self._entries)
        self._entries.append((txn_id, _pack(changes), atoms))
        self.history_atoms += atoms
        self._trim()

    def _trim(self) -> None:
        n = len(self._entries)
        if n <= self.max_txns and self.history_atoms <= self.db_atoms:
            return
        drop = 0
        while n - drop > 1 and (n - drop > self.max_txns
                                or self.history_atoms > self.db_atoms):
            txn_id, _, atoms = self._entries[drop]
            self.history_atoms -= atoms
            if self._find.get(txn_id) == self._first + drop:
                del self._find[txn_id]
            drop += 1
        if drop:
            del self._entries[:drop]
            self._first += drop

    def since(self, txn_id: str) -> list[Changes] | None:
        """The commits after *txn_id* (oldest first), or None if it is not kept."""
        pos = self._find.get(txn_id.lower())
        if pos is None:
            return None
        return [_unpack(c) for _, c, _ in self._entries[pos - self._first + 1:]]
