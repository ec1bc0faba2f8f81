"""A local copy of the tables a run needs, and the transaction its commands build on it.

This plays the part Open vSwitch's IDL plays for vtep-ctl, as far as vtep-ctl's behaviour
depends on it: rows read from the snapshot, written, inserted and deleted within the run
(later commands see earlier commands' changes), columns *verified* (their old values go
into ``wait`` operations so that a concurrent change makes the commit fail and the run is
retried), partial map and set updates (``mutate``), and the JSON operations of the
commit, in the shape ovsdb_idl_txn_commit() produces: only rows of root tables are deleted
explicitly, inserts carry only non-default columns, references to new rows become
``named-uuid``s, a transaction that changes nothing is not sent at all.

Rows keep the server's JSON and parse a column only when it is read, so that a command
touching two columns of a 100,000-row table does not pay for the others.
"""

from __future__ import annotations

from hwvtep.ctl.values import (
    UUID,
    atom_to_json,
    datum_from_json,
    datum_to_json,
    default_datum,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from hwvtep.ctl.values import Column, Datum, Schema, Table


_NOTHING: dict[str, Any] = {}


class Row:
    """One row: its server values (``raw``), what the run wrote, what it verified."""

    __slots__ = ("_old", "deleted", "map_ops", "new", "persist_uuid", "prereqs", "raw",
                 "set_ops", "table", "uuid")

    # Most rows are only read: the containers for changes are made on first use, and
    # until then ``new`` is a shared empty dict that nothing writes to.
    def __init__(self, table: Table, uuid: str, raw: dict[str, Any] | None) -> None:
        self.table = table
        self.uuid = uuid
        self.raw = raw  # None for a row inserted by this run
        self._old: dict[str, Datum] | None = None
        self.new: dict[str, Datum] = _NOTHING
        self.deleted = False
        self.prereqs: list[str] | None = None
        self.map_ops: dict[str, dict[Any, tuple[str, Any]]] | None = None
        self.set_ops: dict[str, dict[Any, str]] | None = None
        self.persist_uuid = False

    @property
    def inserted(self) -> bool:
        return self.raw is None

    def old(self, col: Column) -> Datum:
        cache = self._old
        if cache is None:
            cache = self._old = {}
        d = cache.get(col.name)
        if d is None:
            raw = self.raw
            if raw is None or col.name not in raw:
                d = default_datum(col.type)
            else:
                d = datum_from_json(col.type, raw[col.name])
            cache[col.name] = d
        return d

    def get(self, col: Column) -> Datum:
        d = self.new.get(col.name)
        if d is not None:
            return d
        return self.old(col)

    # Fast readers for the vtep commands' hot loops: scalar columns never written.
    def string(self, name: str) -> str:
        d = self.new.get(name)
        if d is not None:
            return d[0] if d else ""
        raw = self.raw
        return raw.get(name, "") if raw is not None else ""

    def ref(self, name: str) -> str | None:
        """The UUID held by an optional or required reference column, or None."""
        d = self.new.get(name)
        if d is not None:
            return d[0] if d else None
        raw = self.raw
        j = raw.get(name) if raw is not None else None
        if j is None or j[0] != "uuid":
            return None
        return j[1]  # type: ignore[no-any-return]


class TxnStatus:
    UNCHANGED = "unchanged"
    SUCCESS = "success"
    TRY_AGAIN = "try again"
    ERROR = "error"
    NOT_LOCKED = "not locked"


class Idl:
    """The snapshot of some tables plus the run's pending transaction."""

    def __init__(self, schema: Schema, db_name: str, layout: Layout | None = None) -> None:
        self.schema = schema
        self.db_name = db_name
        # table name -> uuid -> row
        self.tables: dict[str, dict[str, Row]] = {}
        self.txn_rows: dict[str, Row] = {}
        self.comment: str | None = None
        self.dry_run = False
        # dummy uuid -> index of the insert op, filled by commit_ops()
        self.insert_index: dict[str, int] = {}
        # where the IDL filed the rows it was sent (see `Layout`), and what this run did to
        # its hash maps since: (insert?, uuid) per table
        self.layout = layout if layout is not None else Layout(schema, None, {}, False)
        self.txn_events: dict[str, list[tuple[bool, str]]] = {}
        self._order: dict[str, tuple[int, list[str]]] = {}

    # --- reading -----------------------------------------------------------------------

    def rows(self, table: str) -> Iterator[Row]:
        """The table's rows in the order vtep-ctl's IDL lists them (see `Layout`).

        Raises `NeedExactSnapshot` if that order depends on tables the snapshot lacks.
        """
        rows = self.tables.get(table)
        if not rows:
            return
        if len(rows) == 1:  # (Global, say: at most one row)
            only = next(iter(rows.values()))
            if not only.deleted:
                yield only
            return
        events = self.txn_events.get(table, ())
        cached = self._order.get(table)
        if cached is None or cached[0] != len(events):
            from hwvtep.ovsdb.ovshash import hmap_replay

            seq = [*self.layout.events(table), *events]
            order = hmap_replay((ins, int(u[:8], 16), u) for ins, u in seq)
            listed = set(order)
            order += [u for u in rows if u not in listed]  # never filed: not expected
            cached = self._order[table] = (len(events), order)
        for u in cached[1]:
            r = rows.get(u)
            if r is not None and not r.deleted:
                yield r

    def rows_unordered(self, table: str) -> Iterator[Row]:
        for r in self.tables.get(table, {}).values():
            if not r.deleted:
                yield r

    def row(self, table: str, uuid: str) -> Row | None:
        r = self.tables.get(table, {}).get(uuid)
        if r is None or r.deleted:
            return None
        return r

    def first(self, table: str) -> Row | None:
        for r in self.rows(table):
            return r
        return None

    # --- changing ----------------------------------------------------------------------

    def _touch(self, row: Row) -> None:
        if row.uuid not in self.txn_rows:
            self.txn_rows[row.uuid] = row

    def insert(self, table: Table, uuid: str | None = None, persist: bool = False) -> Row:
        from hwvtep.ctl.values import new_uuid

        row = Row(table, uuid or new_uuid(), None)
        row.persist_uuid = persist
        self.tables.setdefault(table.name, {})[row.uuid] = row
        self.txn_events.setdefault(table.name, []).append((True, row.uuid))
        self._touch(row)
        return row

    def delete(self, row: Row) -> None:
        if row.inserted:
            self.tables[row.table.name].pop(row.uuid, None)
            self.txn_rows.pop(row.uuid, None)
            self.txn_events.setdefault(row.table.name, []).append((False, row.uuid))
            return
        row.deleted = True
        self._touch(row)

    def write(self, row: Row, col: Column, datum: Datum) -> None:
        if row.new is _NOTHING:
            row.new = {}
        row.new[col.name] = datum
        self._touch(row)

    def verify(self, row: Row, col: Column) -> None:
        if row.inserted or col.name in row.new:
            return
        if row.prereqs is None:
            row.prereqs = []
        if col.name not in row.prereqs:
            row.prereqs.append(col.name)
        self._touch(row)

    def write_partial_map(self, row: Row, col: Column, key: Any, value: Any) -> None:
        current = dict(row.get(col))
        kind = "update" if key in current else "insert"
        if row.map_ops is None:
            row.map_ops = {}
        ops = row.map_ops.setdefault(col.name, {})
        prev = ops.get(key)
        if prev is not None and prev[0] == "insert" and kind == "delete":
            del ops[key]
        else:
            ops[key] = (kind, value)
        self._touch(row)

    def write_partial_set(self, row: Row, col: Column, atom: Any) -> None:
        if row.set_ops is None:
            row.set_ops = {}
        row.set_ops.setdefault(col.name, {})[atom] = "insert"
        self._touch(row)

    # --- committing --------------------------------------------------------------------

    def _ref_json(self, atype: str, a: Any) -> Any:
        if atype == UUID:
            target = self.txn_rows.get(a)
            if target is not None and target.inserted and not target.persist_uuid:
                return ["named-uuid", _row_name(a)]
        return atom_to_json(atype, a)

    def _datum_json(self, col: Column, d: Datum) -> Any:
        t = col.type
        kt = t.key.type
        if kt != UUID and (t.value is None or t.value.type != UUID):
            return datum_to_json(t, d)
        if t.value is not None:
            vt = t.value.type
            return ["map", [[self._ref_json(kt, k), self._ref_json(vt, v)] for k, v in d]]
        if len(d) == 1:
            return self._ref_json(kt, d[0])
        return ["set", [self._ref_json(kt, a) for a in d]]

    def commit_ops(self) -> tuple[list[Any], bool]:
        """The transact params and whether anything would change."""
        ops: list[Any] = [self.db_name]
        for row in self.txn_rows.values():
            if row.prereqs and not row.inserted:
                t = row.table
                ops.append({
                    "op": "wait", "table": t.name, "timeout": 0,
                    "where": [["_uuid", "==", ["uuid", row.uuid]]], "until": "==",
                    "columns": list(row.prereqs),
                    "rows": [{c: datum_to_json(t.columns[c].type, row.old(t.columns[c]))
                              for c in row.prereqs}]})
        any_updates = False
        for tname, rows in self.tables.items():
            t = self.schema.table(tname)
            if not t.is_singleton:
                continue
            before = sum(1 for r in rows.values() if not r.inserted)
            after = sum(1 for r in rows.values() if not r.deleted)
            if before == 0 and after == 1:
                ops.append({"op": "wait", "table": tname, "where": [], "timeout": 0,
                            "until": "==", "rows": []})
        self.insert_index = {}
        for row in self.txn_rows.values():
            t = row.table
            if row.deleted:
                if t.is_root:
                    ops.append({"op": "delete", "table": t.name,
                                "where": [["_uuid", "==", ["uuid", row.uuid]]]})
                    any_updates = True
            elif row.inserted or row.new:
                values: dict[str, Any] = {}
                for name, d in row.new.items():
                    col = t.columns[name]
                    if row.inserted and d == default_datum(col.type):
                        continue
                    values[name] = self._datum_json(col, d)
                    if not any_updates and not row.inserted and d != row.old(col):
                        any_updates = True
                if row.inserted:
                    any_updates = True
                    op: dict[str, Any] = {"op": "insert", "table": t.name}
                    if row.persist_uuid:
                        op["uuid"] = row.uuid
                    else:
                        op["uuid-name"] = _row_name(row.uuid)
                    op["row"] = values
                    self.insert_index[row.uuid] = len(ops) - 1
                    ops.append(op)
                elif values:
                    ops.append({"op": "update", "table": t.name,
                                "where": [["_uuid", "==", ["uuid", row.uuid]]],
                                "row": values})
            if not row.deleted and (row.map_ops or row.set_ops):
                mutations = self._mutations(row)
                if mutations:
                    ops.append({"op": "mutate", "table": t.name,
                                "where": [["_uuid", "==", self._ref_json(UUID, row.uuid)]],
                                "mutations": mutations})
                    any_updates = True
        if self.comment is not None:
            ops.append({"op": "comment", "comment": self.comment})
        if self.dry_run:
            ops.append({"op": "abort"})
        return ops, any_updates

    def _mutations(self, row: Row) -> list[Any]:
        out: list[Any] = []
        t = row.table
        for name, mops in (row.map_ops or {}).items():
            col = t.columns[name]
            kt = col.type.key.type
            vt = col.type.value.type if col.type.value is not None else ""
            current = dict(row.get(col))
            dels: list[Any] = []
            ins: list[Any] = []
            for key, (kind, value) in mops.items():
                if kind == "update":
                    if current.get(key) == value:
                        continue
                    dels.append(self._ref_json(kt, key))
                    ins.append([self._ref_json(kt, key), self._ref_json(vt, value)])
                elif kind == "delete":
                    if key not in current:
                        continue
                    dels.append(self._ref_json(kt, key))
                else:
                    ins.append([self._ref_json(kt, key), self._ref_json(vt, value)])
            if dels:
                out.append([name, "delete", ["set", dels]])
            if ins:
                out.append([name, "insert", ["map", ins]])
        for name, sops in (row.set_ops or {}).items():
            col = t.columns[name]
            kt = col.type.key.type
            ins = [self._ref_json(kt, a) for a, kind in sops.items() if kind == "insert"]
            dels = [self._ref_json(kt, a) for a, kind in sops.items() if kind == "delete"]
            if ins:
                out.append([name, "insert", ["set", ins]])
            if dels:
                out.append([name, "delete", ["set", dels]])
        return out

    def process_reply(self, result: Any) -> tuple[str, str | None, dict[str, str], list[str]]:
        """(status, error text, dummy uuid -> real uuid, warnings) from a transact result.

        The warnings are those Open vSwitch's IDL logs (module ovsdb_idl) on the way.
        """
        from hwvtep.ctl.values import json_dumps

        warnings: list[str] = []
        if not isinstance(result, list):
            warnings.append('reply to "transact" is not JSON array')
            return TxnStatus.ERROR, json_dumps(result), {}, warnings
        hard = soft = locked = 0
        error: str | None = None
        for op in result:
            if op is None:
                soft += 1
            elif isinstance(op, dict):
                e = op.get("error")
                if e is None:
                    continue
                if isinstance(e, str):
                    if e in ("timed out", "unknown database"):
                        soft += 1
                    elif e == "not owner":
                        locked += 1
                    elif e == "not allowed":
                        hard += 1
                        error = error or json_dumps(op)
                    elif e != "aborted":
                        hard += 1
                        error = error or json_dumps(op)
                        warnings.append(f"transaction error: {error}")
                else:
                    hard += 1
                    error = error or json_dumps(op)
                    warnings.append('"error" in reply is not JSON string')
            else:
                hard += 1
                error = error or json_dumps(op)
                warnings.append("operation reply is not JSON null or object")
        real: dict[str, str] = {}
        if not hard and not soft and not locked:
            for dummy, idx in self.insert_index.items():
                r = result[idx] if idx < len(result) else None
                u = r.get("uuid") if isinstance(r, dict) else None
                if isinstance(u, list) and len(u) == 2 and u[0] == "uuid":
                    real[dummy] = u[1]
                else:
                    hard += 1
        if hard:
            return TxnStatus.ERROR, error or "no error details available", real, warnings
        if locked:
            return TxnStatus.NOT_LOCKED, None, real, warnings
        if soft:
            return TxnStatus.TRY_AGAIN, None, real, warnings
        return TxnStatus.SUCCESS, None, real, warnings


class NeedExactSnapshot(Exception):
    """The order of a table's rows (``args[0]``) needs what the snapshot was not fetched
    with: the table's own monitor reply, or vtep-ctl's whole monitor request."""


def _refs(col: Column, target: str) -> tuple[bool, bool]:
    """Whether the column's keys, and its values, refer to table *target*."""
    t = col.type
    return (t.key.ref_table == target,
            t.value is not None and t.value.ref_table == target)


def depends_on_others(schema: Schema, monitor: dict[str, set[str]], target: str) -> bool:
    """Whether vtep-ctl's IDL, monitoring *monitor* (table -> columns), can file rows of
    *target* on meeting references to them: a monitored reference column into *target*,
    or an unmonitored required one (its default value, the all-zero UUID, is a reference
    the IDL follows too) in any monitored table. If not, the IDL files *target*'s rows in
    the order it meets them in *target*'s own update alone."""
    # Read from the schema's JSON: parsing every monitored table costs start-up time.
    for tname, cols in monitor.items():
        for cname, cj in schema.tables_json[tname]["columns"].items():
            t = cj["type"]
            if isinstance(t, str):
                continue
            bases = (t["key"], t.get("value"))
            if any(isinstance(b, dict) and b.get("refTable") == target for b in bases) and (
                    cname in cols or t.get("min", 1) > 0):
                return True
    return False


class Layout:
    """Where vtep-ctl's IDL files each table's rows, as the hash map insertions it makes.

    The IDL keeps a table's rows in a hash map keyed by the first 32 bits of their UUID
    and lists them by walking it, so where rows land within a bucket depends on the order
    they were inserted in (and the doublings in between). The IDL inserts rows as it meets
    them in the server's reply to its monitor request: tables, and each table's rows, in
    the order it walks those JSON objects (string-keyed hash maps filled in the text's
    order); and a row referred to from a row met earlier is inserted then, as a
    placeholder (the all-zero UUID too, from an unmonitored required reference column).
    Open vSwitch's ovsdb-server writes that reply sorted by name, ours in its tables'
    order; either way `hwvtep ctl` sees the same text by asking the same question.

    *data* is the reply's rows (table -> uuid -> row JSON), tables and rows in the order
    of its text (a table without rows is not in the reply: nor in *data*), for the tables
    in *fetched* (None: every table). *exact*: it answers vtep-ctl's own monitor request,
    *monitor* (table -> monitored columns), so references can be followed as the IDL
    follows them. The order of a table not fetched so, or (if not *exact*) whose order
    depends on other tables, raises `NeedExactSnapshot`. ``history`` holds what happened
    to the hash maps after the reply: (insert?, uuid) per table.
    """

    def __init__(self, schema: Schema, monitor: dict[str, set[str]] | None,
                 data: dict[str, dict[str, Any]], exact: bool,
                 fetched: set[str] | None = None) -> None:
        self.schema = schema
        self.monitor = monitor
        self.data = data
        self.exact = exact
        self.fetched = fetched
        self.history: dict[str, list[tuple[bool, str]]] = {}
        self._filed: dict[str, list[str]] = {}

    def events(self, table: str) -> list[tuple[bool, str]]:
        if self.fetched is not None and table not in self.fetched:
            raise NeedExactSnapshot(table)
        filed = self._filed.get(table)
        if filed is None:
            filed = self._filed[table] = self._file(table)
        return [*((True, u) for u in filed), *self.history.get(table, ())]

    def _file(self, target: str) -> list[str]:
        from hwvtep.ovsdb.ovshash import shash_order

        monitor = self.monitor
        if monitor is None or not depends_on_others(self.schema, monitor, target):
            return shash_order(self.data.get(target, ()))
        if not self.exact:
            raise NeedExactSnapshot(target)
        filed: list[str] = []
        seen: set[str] = set()

        def file(u: str) -> None:
            if u not in seen:
                seen.add(u)
                filed.append(u)

        for tname in shash_order(self.data):
            t = self.schema.table(tname)
            cols = monitor.get(tname, set())
            refs = [(c, *_refs(c, target), c.name in cols) for c in t.sorted_columns]
            refs = [r for r in refs if r[1] or r[2]]
            if tname != target and not refs:
                continue
            rows = self.data[tname]
            for u in shash_order(rows):
                if tname == target:
                    file(u)
                raw = rows[u]
                for c, keys, values, monitored in refs:
                    j = raw.get(c.name) if monitored else None
                    d = default_datum(c.type) if j is None else datum_from_json(c.type, j)
                    for a in d[:c.type.n_max]:
                        if c.type.value is None:
                            file(a)
                        else:
                            if keys:
                                file(a[0])
                            if values:
                                file(a[1])
        return filed


def _row_name(uuid: str) -> str:
    return "row" + uuid.replace("-", "_")
