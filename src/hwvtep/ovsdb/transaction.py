"""The ``transact`` method: RFC 7047's eleven operations and the commit that decides them.

:func:`execute` runs a request's operations against a private overlay of the database,
then commits as ovsdb-server 3.1 does: rows left as they were are dropped; strong
references are counted (a reference to a missing row, or a delete that leaves references
behind, is a "referential integrity violation"); unreferenced rows of non-root tables are
garbage-collected, cascading; weak references to missing rows are removed, then the
column's minimum size is checked; then ``maxRows`` and unique indexes; and every changed
row gets a new ``_version``. Errors carry ovsdb-server's tags and wording, and the result
array has its shape: one element per operation, the failed one an error object followed
by nulls, and a commit error as one extra element.

Nothing here touches the database: the outcome's :data:`~hwvtep.ovsdb.database.Changes`
are for the caller to log, apply (:meth:`Database.apply`) and send to monitors. Time is a
parameter: a ``wait`` that does not hold yet makes the outcome *blocked*, and the caller
runs the request again after later commits or when its timeout has passed.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwvtep.ovsdb.condition import Condition, parse_where
from hwvtep.ovsdb.data import Datum, datum_to_json, datum_to_string
from hwvtep.ovsdb.database import (
    REF_ATOMS,
    Changes,
    Database,
    Row,
    TableInfo,
    index_key,
    ref_atoms,
)
from hwvtep.ovsdb.errors import (
    CONSTRAINT_VIOLATION,
    NO_SYNTAX,
    REFERENTIAL_INTEGRITY,
    OvsdbError,
    syntax_error,
)
from hwvtep.ovsdb.jsonutil import ovs_object_order
from hwvtep.ovsdb.mutation import apply_mutations, parse_mutations
from hwvtep.ovsdb.schema import TableSchema
from hwvtep.ovsdb.types import UUID_RE, ZERO_UUID, ColumnType

_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING: Any = object()


def _uuid_source() -> Callable[[], str]:
    """Random (version 4) UUID strings, drawn from the OS in batches for speed."""
    pending: list[str] = []
    pop = pending.pop
    variant = "89ab89ab89ab89ab"

    def new_uuid() -> str:
        try:
            return pop()
        except IndexError:
            h = os.urandom(16 * 512).hex()
            pending.extend([
                f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-"
                f"{variant[int(h[i + 16], 16)]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
                for i in range(0, len(h), 32)])
            return pop()
    # A forked child must not hand out the UUIDs its parent has drawn already.
    os.register_at_fork(after_in_child=pending.clear)
    return new_uuid


uuid4_str = _uuid_source()


def _no_lock(name: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class TxnOutcome:
    """What a ``transact`` request came to.

    ``result`` is the JSON-RPC result to send: the array of per-operation results, or
    for malformed params a single error object, as ovsdb-server answers (None when
    blocked). ``changes`` is what to log, apply and notify, or None when nothing was
    committed. ``blocked`` means a ``wait`` did not hold and its deadline has not passed:
    run the same request again after a later commit, or once ``timeout_ms`` (the smallest
    timeout of the waits seen; None: no deadline) has elapsed since it arrived.
    """

    result: Any
    changes: Changes | None = None
    durable: bool = False
    comments: tuple[str, ...] = ()
    blocked: bool = False
    timeout_ms: int | None = None

    @property
    def comment(self) -> str | None:
        """The comments joined by newlines, as ovsdb-server annotates its log record."""
        return "\n".join(self.comments) if self.comments else None


class _ParseFail(Exception):
    """A malformed operation: becomes 'Parsing ovsdb operation I of N failed: ...'."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _is_id(v: Any) -> bool:
    return type(v) is str and _ID_RE.fullmatch(v) is not None


def _member(op: dict[str, Any], name: str, check: Callable[[Any], bool],
            optional: bool = False) -> Any:
    v = op.get(name, _MISSING)
    if v is _MISSING:
        if optional:
            return None
        raise _ParseFail(f"Required '{name}' member is missing.")
    if not check(v):
        raise _ParseFail(f"Type mismatch for member '{name}'.")
    return v


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_list(v: Any) -> bool:
    return type(v) is list


def _is_dict(v: Any) -> bool:
    return type(v) is dict


def _is_bool(v: Any) -> bool:
    return type(v) is bool


def _is_int(v: Any) -> bool:
    return type(v) is int


def _column_set(table: TableSchema, j: Any) -> list[str]:
    """An operation's "columns" (or "sort"): distinct names of the table's columns."""
    if j is None:
        return list(table.columns)
    out: list[str] = []
    for name in j:
        if type(name) is not str:
            break
        if name not in table.columns:
            raise syntax_error(f"{name} is not a valid column name", j)
        if name in out:
            break
        out.append(name)
    else:
        return out
    raise syntax_error("array of distinct column names expected", j)


def _english_list(items: list[str]) -> str:
    n = len(items)
    out = []
    for i, s in enumerate(items):
        if i:
            out.append(", " if i < n - 1 else ", and " if n > 2 else " and ")
        out.append(s)
    return "".join(out)


def _datum_sort_key(ctype: ColumnType, d: Datum) -> tuple[Any, ...]:
    # ovsdb-server orders datums by size first, then keys, then values.
    if ctype.value is not None:
        return (len(d), tuple(k for k, _ in d), tuple(v for _, v in d))
    return (len(d), d)


class _Txn:
    """One request's operations in progress: a private overlay over the database."""

    __slots__ = ("comments", "db", "durable", "elapsed_ms", "has_lock", "info", "new_uuid",
                 "symbols", "tables", "timeout_ms", "txrows", "wait_expired")

    def __init__(self, db: Database, new_uuid: Callable[[], str],
                 has_lock: Callable[[str], bool], elapsed_ms: int, wait_expired: bool) -> None:
        self.db = db
        self.info = db.info
        self.tables = db.tables
        # table -> uuid -> the row as it now is (a private dict), None once deleted.
        # A row inserted then deleted in this transaction is simply absent.
        self.txrows: dict[str, dict[str, Row | None]] = {}
        # uuid-name -> [uuid, created by an insert]
        self.symbols: dict[str, list[Any]] = {}
        self.new_uuid = new_uuid
        self.has_lock = has_lock
        self.elapsed_ms = elapsed_ms
        self.wait_expired = wait_expired
        self.durable = False
        self.comments: list[str] = []
        self.timeout_ms: int | None = None

    # --- the overlay -------------------------------------------------------------------

    def symbol(self, name: str) -> str:
        """Resolve a named-uuid; a name not inserted (yet) gets a fresh UUID, as in OVS."""
        sym = self.symbols.get(name)
        if sym is None:
            sym = [self.new_uuid(), False]
            self.symbols[name] = sym
        return str(sym[0])

    def get(self, table: str, uuid: str) -> Row | None:
        tx = self.txrows.get(table)
        if tx is not None:
            r = tx.get(uuid, _MISSING)
            if r is not _MISSING:
                return r  # type: ignore[no-any-return]
        return self.tables[table].get(uuid)

    def known(self, table: str, uuid: str) -> bool:
        """Whether the row exists or existed in this transaction (before it, or deleted)."""
        tx = self.txrows.get(table)
        return (tx is not None and uuid in tx) or uuid in self.tables[table]

    def matches(self, table: str, cond: Condition) -> list[tuple[str, Row]]:
        evaluate = cond.evaluate
        u = cond.uuid_eq
        if u is not None:
            row = self.get(table, u)
            return [(u, row)] if row is not None and evaluate(row) else []
        base = self.tables[table]
        tx = self.txrows.get(table)
        if not tx:
            return [(u, r) for u, r in base.items() if evaluate(r)]
        out = [(u, r) for u, r in base.items() if u not in tx and evaluate(r)]
        out.extend((u, r) for u, r in tx.items() if r is not None and evaluate(r))
        return out

    def modifiable(self, table: str, uuid: str, row: Row) -> Row:
        tx = self.txrows.get(table)
        if tx is None:
            tx = self.txrows[table] = {}
        r = tx.get(uuid)
        if r is None:
            r = tx[uuid] = dict(row)
        return r

    def delete(self, table: str, uuid: str) -> None:
        tx = self.txrows.get(table)
        if tx is None:
            tx = self.txrows[table] = {}
        if uuid in self.tables[table]:
            tx[uuid] = None
        else:
            del tx[uuid]

    def parse_row(self, ti: TableInfo, j: Any, row: Row) -> list[str]:
        """Read a JSON row into *row*; the names of the columns it gave."""
        if type(j) is not dict:
            raise syntax_error("row must be JSON object", j)
        parsers = ti.parsers
        symbol = self.symbol
        try:
            for name, value in j.items():
                parse = parsers.get(name)
                if parse is None:
                    raise OvsdbError("unknown column", f"No column {name} in table {ti.name}.",
                                     j)
                row[name] = parse(value, symbol)
        except OvsdbError as e:
            raise _row_error(ti, j, symbol, e) from None
        return list(j)

    def table(self, op: dict[str, Any]) -> str:
        name = op.get("table", _MISSING)
        if type(name) is str and name in self.tables:
            return name
        _member(op, "table", _is_id)
        raise _ParseFail(f"No table named {name}.")

    # --- commit --------------------------------------------------------------------------

    def commit(self) -> Changes | None:
        """Check and complete the transaction; its changes (None if it changed nothing)."""
        info = self.info
        tables = self.tables
        txrows = self.txrows
        refs = self.db.refs

        # Rows that ended as they began are no change at all.
        for tname in list(txrows):
            rows = txrows[tname]
            base = tables[tname]
            same = [u for u, new in rows.items()
                    if new is not None and (old := base.get(u)) is not None and new == old]
            for u in same:
                del rows[u]
            if not rows:
                del txrows[tname]
        if not txrows:
            return None

        # Strong reference counts: table -> uuid -> change in the number of references.
        delta: dict[str, dict[str, int]] = {}
        for tname, rows in txrows.items():
            strong = info[tname].strong
            if not strong:
                continue
            base = tables[tname]
            for u, new in rows.items():
                old = base.get(u)
                for col, rt, kind, scalar in strong:
                    if old is None:
                        ov: Datum = ()
                        nv: Datum = new[col]  # type: ignore[index]
                        if not nv:
                            continue
                    else:
                        ov = old[col]
                        nv = new[col] if new is not None else ()
                        if ov is nv or ov == nv:
                            continue
                    d = delta.get(rt)
                    if d is None:
                        d = delta[rt] = {}
                    # A row's references to itself do not count. (ovsdb-server skips any
                    # reference to the row's own UUID, even into another table, where it
                    # dangles; we do not.)
                    me = u if rt == tname else None
                    if ov:
                        for a in ov if kind == REF_ATOMS else ref_atoms(ov, kind):
                            if a != me:
                                d[a] = d.get(a, 0) - 1
                    if not nv:
                        continue
                    tx_rt = txrows.get(rt)
                    base_rt = tables[rt]
                    for a in nv if kind == REF_ATOMS else ref_atoms(nv, kind):
                        if a == me:
                            continue
                        d[a] = d.get(a, 0) + 1
                        target = _MISSING if tx_rt is None else tx_rt.get(a, _MISSING)
                        if target is _MISSING:
                            target = base_rt.get(a)
                            if target is None:
                                raise OvsdbError(
                                    REFERENTIAL_INTEGRITY,
                                    f"Table {tname} column {col} row {u} references "
                                    f"nonexistent row {a} in table {rt}.")
                        elif target is None:
                            continue  # deleted here: reported as a remaining reference
                        if scalar and new is not None:
                            # Share the target's own _uuid datum: one less tuple and string
                            # per reference held.
                            new[col] = target["_uuid"]
        for tname, rows in txrows.items():
            d = delta.get(tname, {})
            counts = refs[tname]
            if not counts and not d:
                continue
            for u, new in rows.items():
                if new is None:
                    n = counts.get(u, 0) + d.get(u, 0)
                    if n:
                        raise OvsdbError(
                            REFERENTIAL_INTEGRITY,
                            f"cannot delete {tname} row {u} because of {n} remaining "
                            f"reference(s)")

        self._collect_garbage(delta)

        for tname, rows in txrows.items():
            max_rows = info[tname].max_rows
            if max_rows is None:
                continue
            base = tables[tname]
            n = len(base)
            for u, new in rows.items():
                if new is None:
                    n -= 1
                elif u not in base:
                    n += 1
            if n > max_rows:
                raise OvsdbError(
                    CONSTRAINT_VIOLATION,
                    f'transaction causes "{tname}" table to contain {n} rows, greater than '
                    f"the schema-defined limit of {max_rows} row(s)")

        if self.db.has_weak:
            self._prune_weak_refs()

        for tname, rows in txrows.items():
            if info[tname].indexes:
                self._check_indexes(tname, rows)

        new_uuid = self.new_uuid
        changes: Changes = {}
        for tname, rows in txrows.items():
            if not rows:
                continue
            get = tables[tname].get
            out: dict[str, tuple[Row | None, Row | None]] = {}
            for u, new in rows.items():
                old = get(u)
                if old is not None and new is not None:
                    new["_version"] = (new_uuid(),)
                out[u] = (old, new)
            changes[tname] = out
        return changes or None

    def _collect_garbage(self, delta: dict[str, dict[str, int]]) -> None:
        info = self.info
        refs = self.db.refs
        txrows = self.txrows
        work: list[tuple[str, str]] = []
        for tname, rows in txrows.items():
            if info[tname].is_root:
                continue
            counts = refs[tname]
            d = delta.get(tname, {})
            work.extend((tname, u) for u, new in rows.items()
                        if new is not None and counts.get(u, 0) + d.get(u, 0) == 0)
        for tname, d in delta.items():
            if info[tname].is_root:
                continue
            counts = refs[tname]
            rows = txrows.get(tname, {})
            work.extend((tname, u) for u, n in d.items()
                        if n < 0 and u not in rows and counts.get(u, 0) + n == 0)
        while work:
            tname, u = work.pop()
            row = self.get(tname, u)
            if row is None or refs[tname].get(u, 0) + delta.get(tname, {}).get(u, 0):
                continue
            self.delete(tname, u)
            for rc in info[tname].strong:
                rt = rc.ref_table
                target_root = info[rt].is_root
                counts = refs[rt]
                dt = delta.setdefault(rt, {})
                me = u if rt == tname else None
                for a in ref_atoms(row[rc.column], rc.kind):
                    if a == me:
                        continue
                    n = dt.get(a, 0) - 1
                    dt[a] = n
                    if not target_root and counts.get(a, 0) + n == 0:
                        work.append((rt, a))

    def _prune_weak_refs(self) -> None:
        info = self.info
        tables = self.tables
        txrows = self.txrows
        weak_in = self.db.weak_in
        # Rows holding weak references to deleted rows join the transaction.
        for tname, rows in list(txrows.items()):
            holders_of = weak_in[tname]
            if not holders_of:
                continue
            for u, new in list(rows.items()):
                if new is not None:
                    continue
                for st, su in holders_of.get(u, ()):
                    row = self.get(st, su)
                    if row is not None:
                        self.modifiable(st, su, row)

        def alive(table: str, uuid: str) -> bool:
            tx = txrows.get(table)
            if tx is not None:
                r = tx.get(uuid, _MISSING)
                if r is not _MISSING:
                    return r is not None
            return uuid in tables[table]

        for tname, rows in txrows.items():
            weak = info[tname].weak
            if not weak:
                continue
            base = tables[tname]
            for u, new in rows.items():
                if new is None:
                    continue
                for wc in weak:
                    v = new[wc.column]
                    if not v:
                        continue
                    kt, vt = wc.key_table, wc.value_table
                    gone: list[str] = []
                    if not wc.is_map:
                        assert kt is not None
                        keep = [a for a in v if alive(kt, a)]
                        if len(keep) == len(v):
                            continue
                        gone = [a for a in v if not alive(kt, a)]
                    else:
                        keep = [p for p in v if (kt is None or alive(kt, p[0]))
                                and (vt is None or alive(vt, p[1]))]
                        if len(keep) == len(v):
                            continue
                        for k, x in v:
                            if kt is not None and not alive(kt, k):
                                gone.append(k)
                            if vt is not None and not alive(vt, x):
                                gone.append(x)
                    new[wc.column] = tuple(keep)
                    if len(keep) >= wc.n_min:
                        continue
                    inserted = u not in base
                    if inserted and ZERO_UUID in gone:
                        raise OvsdbError(
                            CONSTRAINT_VIOLATION,
                            f'Weak reference column "{wc.column}" in "{tname}" row {u} '
                            f"(inserted within this transaction) contained all-zeros UUID "
                            f"(probably as the default value for this column) but deleting "
                            f"this value caused a constraint volation because this column is "
                            f"not allowed to be empty.")
                    raise OvsdbError(
                        CONSTRAINT_VIOLATION,
                        f"Deletion of {len(v) - len(keep)} weak reference(s) to deleted (or "
                        f'never-existing) rows from column "{wc.column}" in "{tname}" row {u} '
                        f"{'(inserted within this transaction) ' if inserted else ''}"
                        f"caused this column to become empty, but constraints on this column "
                        f"disallow an empty column.")

    def _check_indexes(self, tname: str, rows: dict[str, Row | None]) -> None:
        ti = self.info[tname]
        for ix, cols in zip(self.db.indexes[tname], ti.indexes, strict=True):
            seen: dict[Any, str] = {}
            for u, new in rows.items():
                if new is None:
                    continue
                k = index_key(new, cols)
                other = seen.get(k)
                if other is None:
                    other = ix.get(k)
                    if other is not None and (other == u or other in rows):
                        other = None
                if other is not None:
                    raise self._duplicate_index(ti, cols, other, u)
                seen[k] = u

    def _duplicate_index(self, ti: TableInfo, cols: tuple[str, ...], a: str,
                         b: str) -> OvsdbError:
        columns = ti.schema.columns
        rows = self.txrows[ti.name]
        base = self.tables[ti.name]
        row_a = self.get(ti.name, a)
        row_b = self.get(ti.name, b)
        assert row_a is not None and row_b is not None
        if _compare_rows(ti, row_a, row_b) < 0:
            a, b, row_a = b, a, row_b

        def values(row: Row) -> str:
            return _english_list([datum_to_string(columns[c].type, row[c]) for c in cols])

        def describe(title: str, u: str) -> str:
            head = f"{title} row, with UUID {u}, "
            if u not in rows:
                return head + ("existed in the database before this transaction and was not "
                               "modified by the transaction.")
            old = base.get(u)
            new = rows[u]
            assert new is not None
            if old is None:
                return head + "was inserted by this transaction."
            if all(old[c] == new[c] for c in cols):
                return head + ("existed in the database before this transaction, which "
                               "modified some of the row's columns but not any columns in "
                               "this index.")
            return head + ("had the following index values before the transaction: "
                           f"{values(old)}.")

        names = _english_list([f'"{c}"' for c in cols])
        return OvsdbError(
            CONSTRAINT_VIOLATION,
            f'Transaction causes multiple rows in "{ti.name}" table to have identical values '
            f"({values(row_a)}) for index on column{'s' if len(cols) > 1 else ''} {names}.  "
            f"{describe('First', a)}  {describe('Second', b)}")


def _row_error(ti: TableInfo, row_j: dict[str, Any], symbol: Callable[[str], str],
               error: OvsdbError) -> OvsdbError:
    """The error ovsdb-server reports for a bad row: that of the first bad column in the
    order it walks the row's members."""
    for name in ovs_object_order(list(row_j)):
        parse = ti.parsers.get(name)
        if parse is None:
            return OvsdbError("unknown column", f"No column {name} in table {ti.name}.", row_j)
        try:
            parse(row_j[name], symbol)
        except OvsdbError as e:
            return e
    return error


def _compare_rows(ti: TableInfo, a: Row, b: Row) -> int:
    """ovsdb-server's three-way comparison of two rows over all columns, in its order."""
    columns = ti.schema.columns
    for name in ti.ovs_columns:
        ka = _datum_sort_key(columns[name].type, a[name])
        kb = _datum_sort_key(columns[name].type, b[name])
        if ka != kb:
            return -1 if ka < kb else 1
    return 0


# --- the operations ------------------------------------------------------------------------

def _insert(tx: _Txn, op: dict[str, Any]) -> Any:
    tname: Any = op.get("table")
    ti = tx.info.get(tname) if type(tname) is str else None
    if ti is None:
        tname = tx.table(op)
        ti = tx.info[tname]
    row_j = op.get("row")
    if "uuid" in op or "uuid-name" in op or type(row_j) is not dict:
        row_j, u = _insert_members(tx, op, tname)
    else:
        u = tx.new_uuid()
    row = ti.defaults.copy()
    parsers = ti.parsers
    symbol = tx.symbol
    try:
        for name, value in row_j.items():
            parse = parsers.get(name)
            if parse is None:
                raise OvsdbError("unknown column", f"No column {name} in table {tname}.", row_j)
            row[name] = parse(value, symbol)
    except OvsdbError as e:
        raise _row_error(ti, row_j, symbol, e) from None
    for name, err in ti.bad_defaults:
        if name not in row_j:
            raise err
    row["_uuid"] = (u,)
    row["_version"] = (tx.new_uuid(),)
    rows = tx.txrows.get(tname)
    if rows is None:
        rows = tx.txrows[tname] = {}
    rows[u] = row
    # The result object is made once the whole transaction has run (see _results).
    return u


def _insert_members(tx: _Txn, op: dict[str, Any], tname: str) -> tuple[dict[str, Any], str]:
    """The general case of an insert's members: "uuid", "uuid-name", a bad "row"."""
    uuid_j = _member(op, "uuid", _is_str, True)
    uuid_name = _member(op, "uuid-name", _is_id, True)
    row_j = _member(op, "row", _is_dict)
    if uuid_j is not None:
        if not UUID_RE.fullmatch(uuid_j):
            raise syntax_error("bad uuid", uuid_j)
        u = uuid_j.lower()
        if tx.known(tname, u):
            raise OvsdbError(
                "duplicate uuid",
                "This UUID would duplicate a UUID already present within the table or deleted "
                "within the same transaction.", uuid_j)
    if uuid_name is not None:
        sym = tx.symbols.get(uuid_name)
        if sym is None:
            sym = tx.symbols[uuid_name] = [None, False]
        elif sym[1]:
            raise OvsdbError(
                "duplicate uuid-name",
                'This "uuid-name" appeared on an earlier "insert" operation.', uuid_name)
        if uuid_j is not None:
            sym[0] = u
        else:
            if sym[0] is None:
                sym[0] = tx.new_uuid()
            u = sym[0]
        sym[1] = True
    elif uuid_j is None:
        u = tx.new_uuid()
    return row_j, u


def _select(tx: _Txn, op: dict[str, Any]) -> Any:
    tname = tx.table(op)
    where = _member(op, "where", _is_list)
    columns_j = _member(op, "columns", _is_list, True)
    sort_j = _member(op, "sort", _is_list, True)
    ts = tx.info[tname].schema
    cond = parse_where(ts, where, tx.symbol)
    columns = _column_set(ts, columns_j)
    sort = _column_set(ts, sort_j) if sort_j is not None else []
    rows = [r for _, r in tx.matches(tname, cond)]
    if columns_j is not None and "_uuid" not in columns:
        distinct: dict[tuple[Datum, ...], Row] = {}
        for r in rows:
            distinct.setdefault(tuple(r[c] for c in columns), r)
        rows = list(distinct.values())
    if sort:
        types = [(c, ts.columns[c].type) for c in sort]
        rows.sort(key=lambda r: tuple(_datum_sort_key(t, r[c]) for c, t in types))
    out_cols = [(c, ts.columns[c].type) for c in columns]
    return {"rows": [{c: datum_to_json(t, r[c]) for c, t in out_cols} for r in rows]}


def _update(tx: _Txn, op: dict[str, Any]) -> Any:
    tname = tx.table(op)
    where = _member(op, "where", _is_list)
    row_j = _member(op, "row", _is_dict)
    ti = tx.info[tname]
    values: Row = {}
    names = tx.parse_row(ti, row_j, values)
    if not ti.immutable.isdisjoint(names):
        for name in ovs_object_order(names):
            if name in ti.immutable:
                raise OvsdbError(CONSTRAINT_VIOLATION,
                                 f"Cannot update immutable column {name} in table {tname}.", op)
    cond = parse_where(ti.schema, where, tx.symbol)
    matches = tx.matches(tname, cond)
    for u, row in matches:
        for name, v in values.items():
            if row[name] != v:
                tx.modifiable(tname, u, row).update(values)
                break
    return {"count": len(matches)}


def _mutate(tx: _Txn, op: dict[str, Any]) -> Any:
    tname = tx.table(op)
    where = _member(op, "where", _is_list)
    mutations_j = _member(op, "mutations", _is_list)
    ts = tx.info[tname].schema
    mutations = parse_mutations(ts, mutations_j, tx.symbol)
    cond = parse_where(ts, where, tx.symbol)
    matches = tx.matches(tname, cond)
    for u, row in matches:
        changed = apply_mutations(ts, row, mutations)
        if changed:
            tx.modifiable(tname, u, row).update(changed)
    return {"count": len(matches)}


def _delete(tx: _Txn, op: dict[str, Any]) -> Any:
    where = _member(op, "where", _is_list)
    tname = tx.table(op)
    cond = parse_where(tx.info[tname].schema, where, tx.symbol)
    matches = tx.matches(tname, cond)
    for u, _ in matches:
        tx.delete(tname, u)
    return {"count": len(matches)}


def _wait(tx: _Txn, op: dict[str, Any]) -> Any:
    timeout = _member(op, "timeout", _is_int, True)
    where = _member(op, "where", _is_list)
    columns_j = _member(op, "columns", _is_list, True)
    until = _member(op, "until", _is_str)
    rows_j = _member(op, "rows", _is_list)
    tname = tx.table(op)
    ti = tx.info[tname]
    cond = parse_where(ti.schema, where, tx.symbol)
    columns = _column_set(ti.schema, columns_j)
    if timeout is not None:
        if timeout < 0:
            raise syntax_error("timeout must be nonnegative", timeout)
        if tx.timeout_ms is None or timeout < tx.timeout_ms:
            tx.timeout_ms = timeout
    if until not in ("==", "!="):
        raise syntax_error('"until" must be "==" or "!="', until)
    expected: set[tuple[Datum, ...]] = set()
    for rj in rows_j:
        row = ti.defaults.copy()
        tx.parse_row(ti, rj, row)
        expected.add(tuple(row[c] for c in columns))
    actual: set[tuple[Datum, ...]] = set()
    equal = True
    for _, r in tx.matches(tname, cond):
        k = tuple(r[c] for c in columns)
        if k not in expected:
            equal = False
            break
        actual.add(k)
    if equal:
        equal = len(actual) == len(expected)
    if (until == "==") != equal:
        if timeout is not None and (tx.wait_expired or tx.elapsed_ms >= timeout):
            if tx.elapsed_ms:
                raise OvsdbError("timed out", f'"wait" timed out after {tx.elapsed_ms} ms')
            raise OvsdbError("timed out", '"where" clause test failed')
        raise OvsdbError("not supported", "triggers not supported")
    return {}


def _commit(tx: _Txn, op: dict[str, Any]) -> Any:
    if _member(op, "durable", _is_bool):
        tx.durable = True
    return {}


def _abort(tx: _Txn, op: dict[str, Any]) -> Any:
    raise OvsdbError("aborted", "aborted by request")


def _comment(tx: _Txn, op: dict[str, Any]) -> Any:
    tx.comments.append(_member(op, "comment", _is_str))
    return {}


def _assert(tx: _Txn, op: dict[str, Any]) -> Any:
    lock = _member(op, "lock", _is_id)
    if tx.has_lock(lock):
        return {}
    raise OvsdbError("not owner", f"Asserted lock {lock} not held.")


Executor = Callable[[_Txn, dict[str, Any]], Any]

# name -> (executor, the members it reads, read-only)
_OPERATIONS: dict[str, tuple[Executor, frozenset[str], bool]] = {
    "insert": (_insert, frozenset(("op", "table", "uuid", "uuid-name", "row")), False),
    "select": (_select, frozenset(("op", "table", "where", "columns", "sort")), True),
    "update": (_update, frozenset(("op", "table", "where", "row")), False),
    "mutate": (_mutate, frozenset(("op", "table", "where", "mutations")), False),
    "delete": (_delete, frozenset(("op", "table", "where")), False),
    "wait": (_wait, frozenset(("op", "table", "where", "columns", "until", "rows",
                               "timeout")), True),
    "commit": (_commit, frozenset(("op", "durable")), False),
    "abort": (_abort, frozenset(("op",)), True),
    "comment": (_comment, frozenset(("op", "comment")), True),
    "assert": (_assert, frozenset(("op", "lock")), True),
}


def _unused_members(op: dict[str, Any], allowed: frozenset[str]) -> None:
    if allowed.issuperset(op):
        return
    unused = [k for k in ovs_object_order(list(op)) if k not in allowed]
    if len(unused) == 1:
        raise _ParseFail(f"Member '{unused[0]}' is present but not allowed here.")
    n = len(unused) - 1
    raise _ParseFail(f"Member '{unused[0]}' and {n} other member{'s' if n > 1 else ''} "
                     f"are present but not allowed here.")


def execute(db: Database, params: Any, *,
            has_lock: Callable[[str], bool] = _no_lock,
            wait_expired: bool = False,
            elapsed_ms: int = 0,
            triggers: bool = True,
            read_only: bool = False,
            new_uuid: Callable[[], str] = uuid4_str) -> TxnOutcome:
    """Run a ``transact`` request against *db* without changing it.

    *params* is the request's params exactly as received: ``[db_name, op, ...]``.
    *has_lock* tells whether the session owns a lock (for "assert"). *elapsed_ms* is how
    long the request has been waiting; a failing ``wait`` whose timeout has elapsed (or any
    failing ``wait`` with a timeout when *wait_expired*) gives "timed out". With
    *triggers* False (as ``ovsdb-tool transact``) a ``wait`` that would block fails with
    "not supported" instead. *read_only* refuses operations that write, as
    ``ovsdb-server --read-only`` does. *new_uuid* makes the UUIDs of new rows and versions.
    """
    if type(params) is not list:
        return TxnOutcome(syntax_error("array expected", params).to_json())
    if len(params) > _GC_PAUSE_OPS and gc.isenabled():
        # A big transaction allocates many acyclic objects (rows, datums); running the
        # cycle collector over and over meanwhile would double the time it takes.
        gc.disable()
        try:
            return _execute(db, params, has_lock, wait_expired, elapsed_ms, triggers,
                            read_only, new_uuid)
        finally:
            gc.enable()
    return _execute(db, params, has_lock, wait_expired, elapsed_ms, triggers, read_only,
                    new_uuid)


_GC_PAUSE_OPS = 256


def _execute(db: Database, params: list[Any], has_lock: Callable[[str], bool],
             wait_expired: bool, elapsed_ms: int, triggers: bool, read_only: bool,
             new_uuid: Callable[[], str]) -> TxnOutcome:
    name = db.schema.name
    if not params or params[0] != name or type(params[0]) is not str:
        return TxnOutcome(
            syntax_error("database name expected as first parameter", params).to_json())
    tx = _Txn(db, new_uuid, has_lock, elapsed_ms, wait_expired)
    n_ops = len(params) - 1
    results: list[Any] = []
    error: OvsdbError | None = None
    for i in range(1, n_ops + 1):
        op = params[i]
        try:
            if type(op) is not dict:
                raise _ParseFail("Object expected.")
            op_name = op.get("op", _MISSING)
            spec = _OPERATIONS.get(op_name) if type(op_name) is str else None
            if spec is None:
                _member(op, "op", _is_id)
                raise _ParseFail(f'No operation "{op_name}"')
            executor, allowed, ro = spec
            try:
                result = executor(tx, op)
            except OvsdbError:
                _unused_members(op, allowed)  # a malformed operation overrides the error
                raise
            if not allowed.issuperset(op):
                _unused_members(op, allowed)
            if not ro:
                if read_only:
                    raise OvsdbError("not allowed", f"{op_name} operation not allowed when "
                                     "database server is in read only mode")
                if name.startswith("_"):
                    raise OvsdbError("not allowed", f"{op_name} operation not allowed on "
                                     f"table in reserved database {name}")
            results.append(result)
        except _ParseFail as e:
            error = syntax_error(f"Parsing ovsdb operation {i} of {n_ops} failed: {e.message}",
                                 op if type(op) is dict else NO_SYNTAX)
        except OvsdbError as e:
            error = e
        if error is not None:
            if error.tag == "not supported" and triggers:
                return TxnOutcome(None, blocked=True, timeout_ms=tx.timeout_ms)
            results.append(error.to_json())
            results.extend([None] * (n_ops - len(results)))
            return TxnOutcome(_results(results), durable=tx.durable,
                              comments=tuple(tx.comments))
    try:
        changes = tx.commit()
    except OvsdbError as e:
        results.append(e.to_json())
        return TxnOutcome(_results(results), durable=tx.durable, comments=tuple(tx.comments))
    return TxnOutcome(_results(results), changes, tx.durable, tuple(tx.comments))


def _results(results: list[Any]) -> list[Any]:
    """The operations' results, an insert's UUID (the only plain string) made its result
    object only now.

    Made while the rows were being built, these short-lived objects would sit among the
    stored rows' objects in the allocator's pools, and after a bulk insert the holes they
    leave would keep that memory from going back to the system.
    """
    for i, r in enumerate(results):
        if type(r) is str:
            results[i] = {"uuid": ["uuid", r]}
    return results
