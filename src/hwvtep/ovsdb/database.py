"""The database in memory: rows by table and UUID, reference counts, reverse weak
references and unique indexes, kept right by one entry point, :meth:`Database.apply`.

Transactions (:mod:`hwvtep.ovsdb.transaction`) read this state to decide what a commit
means (a delete that leaves strong references behind fails, an unreferenced row of a
non-root table is garbage, a weak reference to a deleted row disappears, an index must stay
unique); the log, replicas and the server install committed changes through ``apply``, so
the derived structures never drift from the rows.

Rows are plain ``dict``s of canonical datums (see ``docs/core-contract.md``) and are never
mutated once stored, so a :data:`Changes` can keep the old row of an update.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from hwvtep.ovsdb.data import Datum, Symtab, datum_check, datum_from_json, default_datum
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.jsonutil import ovs_object_order
from hwvtep.ovsdb.schema import DatabaseSchema, TableSchema
from hwvtep.ovsdb.types import BOOLEAN, INTEGER, REAL, STRING, UUID, ColumnType

Row = dict[str, Datum]
# table -> uuid -> (old, new); old is None for an insert, new is None for a delete.
Changes = dict[str, dict[str, tuple[Row | None, Row | None]]]

# Reads a column's value in RFC 7047 notation (resolving named-uuids with the symbol
# table), raising OvsdbError exactly as data.datum_from_json does.
DatumParser = Callable[[Any, Symtab | None], Datum]

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_EMPTY_PAIR = ("", "")

# How a column holds references (see RefColumn.kind).
REF_ATOMS = 0  # a scalar or set of UUIDs
REF_KEYS = 1  # the keys of a map
REF_VALUES = 2  # the values of a map


class RefColumn(NamedTuple):
    """A column whose key or value refers to rows of ``ref_table``.

    A named tuple: the commit unpacks these in its innermost loop.
    """

    column: str
    ref_table: str
    kind: int  # REF_ATOMS, REF_KEYS or REF_VALUES
    scalar: bool  # exactly one UUID per row (n_min = n_max = 1, not a map)


@dataclass(frozen=True, slots=True)
class WeakColumn:
    """A column holding weak references, with what it takes to prune it."""

    column: str
    key_table: str | None  # the keys (or set elements) refer to rows of this table
    value_table: str | None  # a map's values refer to rows of this table
    n_min: int
    is_map: bool


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What the hot paths need to know about a table, derived once from its schema."""

    schema: TableSchema
    name: str
    is_root: bool
    max_rows: int | None
    indexes: tuple[tuple[str, ...], ...]
    strong: tuple[RefColumn, ...]
    weak_refs: tuple[RefColumn, ...]
    weak: tuple[WeakColumn, ...]
    # Every column's default value, _uuid and _version last (all-zero UUIDs): copy it to
    # start a new row.
    defaults: dict[str, Datum]
    # Columns "update" may not touch. Weak reference columns are always mutable.
    immutable: frozenset[str]
    # Columns whose default value breaks the column's constraints, with the error an
    # insert that leaves them out gets (ovsdb-server checks defaults on insert).
    bad_defaults: tuple[tuple[str, OvsdbError], ...]
    # Every column (_uuid and _version included) -> its value parser.
    parsers: dict[str, DatumParser]
    # All columns in the order ovsdb-server walks them (which decides, when several
    # columns are wrong, the one its error names).
    ovs_columns: tuple[str, ...]

    @staticmethod
    def of(table: TableSchema) -> TableInfo:
        strong: list[RefColumn] = []
        weak_refs: list[RefColumn] = []
        weak: list[WeakColumn] = []
        defaults: dict[str, Datum] = {}
        bad: list[tuple[str, OvsdbError]] = []
        for col in table.user_columns:
            ctype = col.type
            defaults[col.name] = default_datum(ctype)
            if len(defaults[col.name]) == 1:
                try:
                    datum_check(ctype, defaults[col.name])
                except OvsdbError as e:
                    bad.append((col.name, e))
            scalar = ctype.value is None and ctype.n_min == 1 and ctype.n_max == 1
            key_kind = REF_KEYS if ctype.value is not None else REF_ATOMS
            for base, kind in ((ctype.key, key_kind), (ctype.value, REF_VALUES)):
                if base is None or base.ref_table is None:
                    continue
                ref = RefColumn(col.name, base.ref_table, kind, scalar)
                (strong if base.is_strong_ref else weak_refs).append(ref)
            key_weak = ctype.key.ref_table if ctype.key.is_weak_ref else None
            value_weak = (ctype.value.ref_table
                          if ctype.value is not None and ctype.value.is_weak_ref else None)
            if key_weak or value_weak:
                weak.append(WeakColumn(col.name, key_weak, value_weak, ctype.n_min,
                                       ctype.value is not None))
        for name in ("_uuid", "_version"):
            defaults[name] = default_datum(table.columns[name].type)
        immutable = frozenset(c.name for c in table.columns.values() if not c.mutable)
        parsers = {c.name: datum_parser(c.type) for c in table.columns.values()}
        # ovsdb-server adds _uuid and _version, then the columns as it walks the schema's
        # "columns" object.
        ovs_columns = tuple(ovs_object_order(
            ["_uuid", "_version", *ovs_object_order([c.name for c in table.user_columns])]))
        position = {name: i for i, name in enumerate(ovs_columns)}
        # Checked in ovsdb-server's order, so that of several problems we report its.
        bad.sort(key=lambda b: position[b[0]])
        strong.sort(key=lambda r: position[r.column])
        weak.sort(key=lambda w: position[w.column])
        return TableInfo(table, table.name, table.is_root, table.max_rows, table.indexes,
                         tuple(strong), tuple(weak_refs), tuple(weak), defaults, immutable,
                         tuple(bad), parsers, ovs_columns)


def datum_parser(ctype: ColumnType) -> DatumParser:
    """A parser for one column's values: the common case (one plain atom) without the
    general machinery, anything else (and every error) through data.datum_from_json."""

    def slow(j: Any, symtab: Symtab | None) -> Datum:
        return datum_from_json(ctype, j, symtab)

    key = ctype.key
    if ctype.value is not None:
        return slow
    t = key.type
    if t == UUID and key.enum is None:
        match = _CANONICAL_UUID.fullmatch

        def parse_uuid(j: Any, symtab: Symtab | None) -> Datum:
            if type(j) is list and len(j) == 2 and j[0] == "uuid":
                s = j[1]
                if type(s) is str and match(s):
                    return (s,)
            return datum_from_json(ctype, j, symtab)
        return parse_uuid
    if t == STRING:
        # A stored string is a copy (j.join(("", ""))): the parsed one sits among the
        # request's short-lived objects, and kept it would pin the allocator's pools
        # they free.
        if not key.has_constraints:
            def parse_str(j: Any, symtab: Symtab | None) -> Datum:
                if type(j) is str:
                    return (j.join(_EMPTY_PAIR),)
                return datum_from_json(ctype, j, symtab)
            return parse_str
        check = key.check_atom

        def parse_checked_str(j: Any, symtab: Symtab | None) -> Datum:
            if type(j) is str:
                check(j)
                return (j.join(_EMPTY_PAIR),)
            return datum_from_json(ctype, j, symtab)
        return parse_checked_str
    if t == INTEGER and key.enum is None:
        lo, hi = key.min_integer, key.max_integer

        def parse_int(j: Any, symtab: Symtab | None) -> Datum:
            if type(j) is int and lo <= j <= hi:
                return (j,)
            return datum_from_json(ctype, j, symtab)
        return parse_int
    if t == BOOLEAN and key.enum is None:
        def parse_bool(j: Any, symtab: Symtab | None) -> Datum:
            if type(j) is bool:
                return (j,)
            return datum_from_json(ctype, j, symtab)
        return parse_bool
    if t == REAL and not key.has_constraints:
        def parse_real(j: Any, symtab: Symtab | None) -> Datum:
            if type(j) is float:
                return (j,)
            return datum_from_json(ctype, j, symtab)
        return parse_real
    return slow


def ref_atoms(datum: Datum, kind: int) -> Iterator[str]:
    """The UUIDs a datum of a reference column holds, for one RefColumn kind."""
    if kind == REF_ATOMS:
        return iter(datum)
    if kind == REF_KEYS:
        return (k for k, _ in datum)
    return (v for _, v in datum)


def index_key(row: Row, columns: tuple[str, ...]) -> Any:
    """The key of *row* in a unique index: the datum itself for a one-column index."""
    if len(columns) == 1:
        return row[columns[0]]
    return tuple(row[c] for c in columns)


class Database:
    """One database's rows and everything derived from them.

    ``tables``: table -> uuid -> row. ``refs``: table -> uuid -> number of strong
    references to that row from other rows (a row's references to itself do not count;
    rows nobody references are absent). ``weak_in``: table -> uuid -> {(table, uuid)} of
    the other rows holding weak references to it. ``indexes``: table -> one dict per schema index,
    index key -> uuid.
    """

    __slots__ = ("has_weak", "indexes", "info", "refs", "schema", "tables", "weak_in")

    def __init__(self, schema: DatabaseSchema) -> None:
        self.schema = schema
        self.info: dict[str, TableInfo] = {n: TableInfo.of(t) for n, t in schema.tables.items()}
        self.tables: dict[str, dict[str, Row]] = {n: {} for n in schema.tables}
        self.refs: dict[str, dict[str, int]] = {n: {} for n in schema.tables}
        self.weak_in: dict[str, dict[str, set[tuple[str, str]]]] = {n: {} for n in schema.tables}
        self.indexes: dict[str, list[dict[Any, str]]] = {
            n: [{} for _ in t.indexes] for n, t in schema.tables.items()}
        self.has_weak = any(i.weak for i in self.info.values())

    # --- look-ups ------------------------------------------------------------------

    def row(self, table: str, uuid: str) -> Row | None:
        return self.tables[table].get(uuid)

    def ref_count(self, table: str, uuid: str) -> int:
        """How many strong references other rows hold to this row."""
        return self.refs[table].get(uuid, 0)

    def weak_referrers(self, table: str, uuid: str) -> frozenset[tuple[str, str]]:
        """(table, uuid) of the rows holding weak references to this row."""
        return frozenset(self.weak_in[table].get(uuid, ()))

    def index_lookup(self, table: str, index: int, key: Any) -> str | None:
        """The row whose values of index number *index* equal *key* (see :func:`index_key`)."""
        return self.indexes[table][index].get(key)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.tables.values())

    # --- changing ------------------------------------------------------------------

    def apply(self, changes: Changes) -> None:
        """Install committed changes: rows, reference counts, weak back-references, indexes.

        *changes* must be consistent (as a successful commit, the log or a replica gives
        them); nothing is checked here. The new rows are stored as given and must not be
        modified afterwards.
        """
        info = self.info
        refs = self.refs
        weak_in = self.weak_in
        for tname, rows in changes.items():
            ti = info[tname]
            table = self.tables[tname]
            strong = ti.strong
            weak_refs = ti.weak_refs
            indexes = ti.indexes
            for uuid, (old, new) in rows.items():
                if strong:
                    for rc in strong:
                        col = rc.column
                        ov = old[col] if old is not None else ()
                        nv = new[col] if new is not None else ()
                        if ov is nv or ov == nv:
                            continue
                        counts = refs[rc.ref_table]
                        me = uuid if rc.ref_table == tname else None
                        for a in ref_atoms(ov, rc.kind):
                            if a != me:
                                n = counts[a] - 1
                                if n:
                                    counts[a] = n
                                else:
                                    del counts[a]
                        for a in ref_atoms(nv, rc.kind):
                            if a != me:
                                counts[a] = counts.get(a, 0) + 1
                if weak_refs:
                    self._update_weak_in(tname, uuid, weak_refs, old, new, weak_in)
                if indexes:
                    for ix, cols in zip(self.indexes[tname], indexes, strict=True):
                        if old is not None:
                            k = index_key(old, cols)
                            if ix.get(k) == uuid:
                                del ix[k]
                        if new is not None:
                            ix[index_key(new, cols)] = uuid
                if new is None:
                    del table[uuid]
                else:
                    table[uuid] = new

    @staticmethod
    def _update_weak_in(tname: str, uuid: str, weak_refs: tuple[RefColumn, ...],
                        old: Row | None, new: Row | None,
                        weak_in: dict[str, dict[str, set[tuple[str, str]]]]) -> None:
        if old is not None and new is not None:
            for rc in weak_refs:
                if old[rc.column] != new[rc.column]:
                    break
            else:
                return
        # Two columns may refer to the same row: drop every old back-reference, then add
        # every new one.
        if old is not None:
            for rc in weak_refs:
                targets = weak_in[rc.ref_table]
                for a in ref_atoms(old[rc.column], rc.kind):
                    holders = targets.get(a)
                    if holders is not None:
                        holders.discard((tname, uuid))
                        if not holders:
                            del targets[a]
        if new is not None:
            for rc in weak_refs:
                targets = weak_in[rc.ref_table]
                for a in ref_atoms(new[rc.column], rc.kind):
                    if a == uuid and rc.ref_table == tname:
                        continue
                    holders = targets.get(a)
                    if holders is None:
                        targets[a] = {(tname, uuid)}
                    else:
                        holders.add((tname, uuid))

    # --- checking ------------------------------------------------------------------

    def consistency_errors(self) -> list[str]:
        """Everything wrong with the database, in words (empty when it is sound).

        Checks each row against its schema, that every reference (strong or weak) points
        to an existing row, that non-root rows are referenced, maxRows, unique indexes,
        and that the derived structures match the rows. Slow: for tests and offline
        checks, not for the hot path.
        """
        errs: list[str] = []
        counted: dict[str, dict[str, int]] = {t: {} for t in self.tables}
        weak_seen: dict[str, dict[str, set[tuple[str, str]]]] = {t: {} for t in self.tables}
        for tname, rows in self.tables.items():
            ti = self.info[tname]
            ts = ti.schema
            if ti.max_rows is not None and len(rows) > ti.max_rows:
                errs.append(f"{tname} has {len(rows)} rows, more than maxRows {ti.max_rows}")
            for uuid, row in rows.items():
                if set(row) != set(ts.columns):
                    errs.append(f"{tname} {uuid} has columns {sorted(row)}")
                    continue
                if row["_uuid"] != (uuid,):
                    errs.append(f"{tname} {uuid} has _uuid {row['_uuid']}")
                for col in ts.columns.values():
                    try:
                        datum_check(col.type, row[col.name])
                    except OvsdbError as e:
                        errs.append(f"{tname} {uuid} column {col.name}: {e}")
                for rc in ti.strong + ti.weak_refs:
                    target = self.tables[rc.ref_table]
                    for a in ref_atoms(row[rc.column], rc.kind):
                        if a not in target:
                            errs.append(f"{tname} {uuid} column {rc.column} refers to missing "
                                        f"{rc.ref_table} row {a}")
                        if rc in ti.strong and not (a == uuid and rc.ref_table == tname):
                            c = counted[rc.ref_table]
                            c[a] = c.get(a, 0) + 1
                        elif rc in ti.weak_refs and not (a == uuid and rc.ref_table == tname):
                            weak_seen[rc.ref_table].setdefault(a, set()).add((tname, uuid))
            for i, cols in enumerate(ti.indexes):
                keys: dict[Any, str] = {}
                for uuid, row in rows.items():
                    k = index_key(row, cols)
                    if k in keys:
                        errs.append(f"{tname} rows {keys[k]} and {uuid} share index {cols}")
                    keys[k] = uuid
                if keys != self.indexes[tname][i]:
                    errs.append(f"{tname} index {cols} does not match the rows")
        for tname, rows in self.tables.items():
            if not self.info[tname].is_root:
                for uuid in rows:
                    if not counted[tname].get(uuid):
                        errs.append(f"non-root {tname} row {uuid} is not referenced")
            if counted[tname] != self.refs[tname]:
                errs.append(f"{tname} reference counts {self.refs[tname]} but rows say "
                            f"{counted[tname]}")
            if weak_seen[tname] != self.weak_in[tname]:
                errs.append(f"{tname} weak back-references {self.weak_in[tname]} but rows "
                            f"say {weak_seen[tname]}")
        return errs
