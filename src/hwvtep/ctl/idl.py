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

    def __init__(self, schema: Schema, db_name: str) -> None:
        self.schema = schema
        self.db_name = db_name
        # table name -> uuid -> row, in the order the server listed them
        self.tables: dict[str, dict[str, Row]] = {}
        self.txn_rows: dict[str, Row] = {}
        self.comment: str | None = None
        self.dry_run = False
        # dummy uuid -> index of the insert op, filled by commit_ops()
        self.insert_index: dict[str, int] = {}
        self._order: dict[str, list[Row]] = {}

    # --- loading -----------------------------------------------------------------------

    def load_select(self, table: str, rows: list[dict[str, Any]]) -> None:
        t = self.schema.table(table)
        self.tables[table] = {r["_uuid"][1]: Row(t, r["_uuid"][1], r) for r in rows}

    def load_monitor(self, updates: dict[str, dict[str, Any]]) -> None:
        for table, rows in updates.items():
            t = self.schema.table(table)
            dst = self.tables.setdefault(table, {})
            for uuid, change in rows.items():
                new = change.get("new")
                if new is None:
                    dst.pop(uuid, None)
                else:
                    dst[uuid] = Row(t, uuid, new)

    # --- reading -----------------------------------------------------------------------

    def rows(self, table: str) -> Iterator[Row]:
        """The table's rows in the order vtep-ctl's IDL lists them (see `idl_order`)."""
        rows = self.tables.get(table)
        if not rows:
            return
        cached = self._order.get(table)
        if cached is None or len(cached) != len(rows):
            cached = self._order[table] = idl_order(list(rows.values()))
        for r in cached:
            if not r.deleted and r.uuid in rows:
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
        self._touch(row)
        return row

    def delete(self, row: Row) -> None:
        if row.inserted:
            self.tables[row.table.name].pop(row.uuid, None)
            self.txn_rows.pop(row.uuid, None)
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


def _calc_mask(capacity: int) -> int:
    mask = capacity // 2
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> shift
    return mask | (mask & 1) << 1


def idl_order(rows: list[Row]) -> list[Row]:
    """Rows in the order vtep-ctl's IDL lists them, given the order the server sent them.

    The IDL receives a table's rows as members of a JSON object, which it keeps in a hash
    map of strings (so it meets them in that map's order), and files them in a hash map
    keyed by the first 32 bits of their UUID, which it walks to list them. Rows this run
    inserted join that map last. (Rows the IDL met first as the target of a reference
    from another table are filed earlier by vtep-ctl; that is not modelled.)
    """
    from hwvtep.ovsdb.ovshash import hmap_order, ovs_hash_string

    old = [(ovs_hash_string(r.uuid), r) for r in rows if not r.inserted]
    filed = hmap_order(old) + [r for r in rows if r.inserted]
    return hmap_order([(int(r.uuid[:8], 16), r) for r in filed])


def _row_name(uuid: str) -> str:
    return "row" + uuid.replace("-", "_")
