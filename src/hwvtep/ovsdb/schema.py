"""Database schemas: parsing, validation with errors that name the bad member, JSON out.

Any schema Open vSwitch accepts loads here (hardware_vtep, vswitch, _Server, ...). Two
implicit columns exist in every table: ``_uuid`` and ``_version``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hwvtep.ovsdb.errors import syntax_error
from hwvtep.ovsdb.jsonutil import JsonError, loads
from hwvtep.ovsdb.types import UUID, BaseType, ColumnType

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VERSION_RE = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")

UUID_COLUMN_TYPE = ColumnType(BaseType(UUID))


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    name: str
    type: ColumnType
    ephemeral: bool = False
    mutable: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.to_json()}
        if self.ephemeral:
            out["ephemeral"] = True
        if not self.mutable:
            out["mutable"] = False
        return out


IMPLICIT_COLUMNS = (
    ColumnSchema("_uuid", UUID_COLUMN_TYPE, mutable=False),
    ColumnSchema("_version", UUID_COLUMN_TYPE, mutable=False),
)


@dataclass(frozen=True, slots=True)
class TableSchema:
    name: str
    columns: dict[str, ColumnSchema]  # user columns then _uuid and _version
    is_root: bool = False
    max_rows: int | None = None
    indexes: tuple[tuple[str, ...], ...] = ()
    # User columns only (no _uuid/_version), in schema order.
    user_columns: tuple[ColumnSchema, ...] = field(default=(), compare=False)

    def to_json(self, default_is_root: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "columns": {c.name: c.to_json() for c in self.user_columns},
        }
        if self.is_root != default_is_root:
            out["isRoot"] = self.is_root
        if self.max_rows is not None:
            out["maxRows"] = self.max_rows
        if self.indexes:
            out["indexes"] = [list(ix) for ix in self.indexes]
        return out


@dataclass(frozen=True, slots=True)
class DatabaseSchema:
    name: str
    version: str
    tables: dict[str, TableSchema]
    cksum: str | None = None

    @staticmethod
    def from_json(j: Any) -> DatabaseSchema:
        return parse_schema(j)

    @staticmethod
    def from_text(text: str | bytes) -> DatabaseSchema:
        try:
            j = loads(text)
        except JsonError as e:
            raise syntax_error(f"schema is not valid JSON: {e}") from None
        return parse_schema(j)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.cksum is not None:
            out["cksum"] = self.cksum
        # When every table is a root table the schema says nothing about roots.
        all_root = all(t.is_root for t in self.tables.values())
        out["tables"] = {t.name: t.to_json(all_root) for t in self.tables.values()}
        return out

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        a, b, c = self.version.split(".")
        return int(a), int(b), int(c)


def _member(j: dict[str, Any], name: str, where: str, kind: type | tuple[type, ...],
            optional: bool = True) -> Any:
    if name not in j:
        if optional:
            return None
        raise syntax_error(f"{where}: Required '{name}' member is missing.", j)
    v = j[name]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is int):
        raise syntax_error(f"{where}: Type mismatch for member '{name}'.", j)
    return v


def _check_members(j: dict[str, Any], allowed: set[str], where: str) -> None:
    for m in j:
        if m not in allowed:
            raise syntax_error(f"{where}: Member '{m}' is present but not allowed here.", j)


def parse_column(table: str, name: str, j: Any) -> ColumnSchema:
    where = f"{table}.{name}"
    if not isinstance(j, dict):
        raise syntax_error(f"{where}: column schema must be an object")
    _check_members(j, {"type", "ephemeral", "mutable"}, where)
    if "type" not in j:
        raise syntax_error(f"{where}: Required 'type' member is missing.", j)
    try:
        ctype = ColumnType.from_json(j["type"])
    except Exception as e:
        details = getattr(e, "details", str(e))
        raise syntax_error(f"{where}: {details}", j) from None
    ephemeral = _member(j, "ephemeral", where, bool) or False
    mutable = _member(j, "mutable", where, bool)
    # As Open vSwitch: a weak reference must be removable when its target goes away, so a
    # weak reference column is always mutable whatever the schema says.
    if ctype.key.is_weak_ref or (ctype.value is not None and ctype.value.is_weak_ref):
        mutable = True
    return ColumnSchema(name, ctype, ephemeral, True if mutable is None else mutable)


def parse_table(name: str, j: Any) -> TableSchema:
    if not isinstance(j, dict):
        raise syntax_error(f"table {name}: table schema must be an object")
    _check_members(j, {"columns", "isRoot", "maxRows", "indexes"}, f"table {name}")
    cols_j = _member(j, "columns", f"table {name}", dict, optional=False)
    if not cols_j:
        raise syntax_error(f"table {name}: table must have at least one column", j)
    cols: dict[str, ColumnSchema] = {}
    for cname, cj in cols_j.items():
        if cname.startswith("_"):
            raise syntax_error(f"{name}.{cname}: names beginning with \"_\" are reserved", j)
        if not _ID_RE.match(cname):
            raise syntax_error(f"{name}.{cname}: name must be a valid id", j)
        cols[cname] = parse_column(name, cname, cj)
    user = tuple(cols.values())
    for c in IMPLICIT_COLUMNS:
        cols[c.name] = c
    is_root = _member(j, "isRoot", f"table {name}", bool) or False
    max_rows = _member(j, "maxRows", f"table {name}", int)
    if max_rows is not None and max_rows < 1:
        raise syntax_error(f"table {name}: maxRows must be at least 1", j)
    indexes_j = _member(j, "indexes", f"table {name}", list) or []
    indexes: list[tuple[str, ...]] = []
    for ix in indexes_j:
        if not isinstance(ix, list) or not ix:
            raise syntax_error(f"table {name}: index must have at least one column", ix)
        names: list[str] = []
        for cname in ix:
            if not isinstance(cname, str) or cname not in cols:
                raise syntax_error(
                    f"table {name}: index column {cname} is not a column of table {name}", ix)
            if cols[cname].ephemeral:
                raise syntax_error(
                    f"table {name}: ephemeral columns (such as {cname}) may not be indexed", ix)
            names.append(cname)
        indexes.append(tuple(names))
    return TableSchema(name, cols, is_root, max_rows, tuple(indexes), user)


def parse_schema(j: Any) -> DatabaseSchema:
    if not isinstance(j, dict):
        raise syntax_error("database schema must be a JSON object")
    _check_members(j, {"name", "version", "cksum", "tables", "doc"}, "database schema")
    name = _member(j, "name", "database schema", str, optional=False)
    if not _ID_RE.match(name):
        raise syntax_error(f'database name "{name}" is not a valid id', j)
    version = _member(j, "version", "database schema", str)
    if version is None:
        version = "0.0.0"
    elif not _VERSION_RE.match(version):
        raise syntax_error(f'schema version "{version}" is not a valid version', j)
    cksum = _member(j, "cksum", "database schema", str)
    tables_j = _member(j, "tables", "database schema", dict, optional=False)
    tables: dict[str, TableSchema] = {}
    for tname, tj in tables_j.items():
        if tname.startswith("_") and name != "_Server":
            raise syntax_error(f'table name "{tname}": names beginning with "_" are reserved', j)
        if not _ID_RE.match(tname):
            raise syntax_error(f'table name "{tname}" is not a valid id', j)
        tables[tname] = parse_table(tname, tj)
    # Old schemas mark no table as root: then every table is a root table.
    if not any(t.is_root for t in tables.values()):
        tables = {
            n: TableSchema(t.name, t.columns, True, t.max_rows, t.indexes, t.user_columns)
            for n, t in tables.items()
        }
    for t in tables.values():
        for c in t.user_columns:
            for base in (c.type.key, c.type.value):
                if base is not None and base.ref_table is not None \
                        and base.ref_table not in tables:
                    raise syntax_error(
                        f"table {t.name} column {c.name} refers to undefined table "
                        f"{base.ref_table}", j)
    tables = {n: _persist_strong_refs_to_non_root(t, tables) for n, t in tables.items()}
    return DatabaseSchema(name, version, tables, cksum)


def _persist_strong_refs_to_non_root(t: TableSchema,
                                     tables: dict[str, TableSchema]) -> TableSchema:
    """OVS makes an ephemeral strong reference to a non-root table persistent (and says
    so in get_schema and _Server): after a restart without it, garbage collection would
    delete rows that later log records still use."""
    def forced(c: ColumnSchema) -> bool:
        return c.ephemeral and any(
            b is not None and b.is_strong_ref and not tables[str(b.ref_table)].is_root
            for b in (c.type.key, c.type.value))
    if not any(forced(c) for c in t.user_columns):
        return t
    user = tuple(ColumnSchema(c.name, c.type, False, c.mutable) if forced(c) else c
                 for c in t.user_columns)
    cols = {c.name: c for c in user}
    for c in IMPLICIT_COLUMNS:
        cols[c.name] = c
    return TableSchema(t.name, cols, t.is_root, t.max_rows, t.indexes, user)


def bundled_schema_text(name: str) -> str:
    """The text of a schema shipped with hwvtep: "hardware_vtep" or "_server"."""
    from importlib import resources  # here: importing it costs command start-up 5 ms

    return resources.files("hwvtep.schemas").joinpath(f"{name}.ovsschema").read_text()


def bundled_schema(name: str) -> DatabaseSchema:
    return DatabaseSchema.from_text(bundled_schema_text(name))
