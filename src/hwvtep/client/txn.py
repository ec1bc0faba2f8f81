"""Building ``transact`` requests and reading their results.

A :class:`Txn` collects RFC 7047 operations for one database. Column values may be given in
RFC 7047 JSON notation, or (with the schema) as core datums (:data:`hwvtep.ovsdb.data.Datum`,
the tuples a replica's rows hold), so desired state computed from a replica can be written
back without conversions by hand. A :class:`NamedUuid` returned by :meth:`Txn.insert` can
be used wherever a UUID goes (in JSON values, in datums, in ``where`` clauses) to refer to
the row being inserted.

*Verifications* (:meth:`Txn.verify`, :meth:`Txn.verify_rows`) are ``wait`` operations with
a zero timeout placed before every other operation: the transaction commits only if what
they name still holds. Their failure is reported as a :class:`TxnError` with ``conflict``
set, which :meth:`hwvtep.client.replica.Replica.transact` answers by waiting for the
replica to catch up and building the transaction again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from hwvtep.client.errors import ProtocolViolation, TxnError, parse_error_object
from hwvtep.ovsdb.data import Datum, datum_to_json
from hwvtep.ovsdb.schema import DatabaseSchema, TableSchema
from hwvtep.ovsdb.types import UNLIMITED, ColumnType

Json = Any


class NamedUuid(str):
    """The UUID of a row inserted by the same transaction (``["named-uuid", name]``)."""

    __slots__ = ()

    def to_json(self) -> list[str]:
        return ["named-uuid", str(self)]


def uuid_json(uuid: str) -> list[str]:
    """A UUID atom in JSON notation (named-uuid for a :class:`NamedUuid`)."""
    if isinstance(uuid, NamedUuid):
        return uuid.to_json()
    return ["uuid", uuid]


def where_uuid(uuid: str) -> list[list[Any]]:
    """The ``where`` that selects one row by UUID."""
    return [["_uuid", "==", uuid_json(uuid)]]


def _fix_named(j: Json) -> Json:
    """Replace ``["uuid", NamedUuid]`` (from datum_to_json) with the named-uuid form."""
    if isinstance(j, list):
        if len(j) == 2 and j[0] == "uuid" and isinstance(j[1], NamedUuid):
            return j[1].to_json()
        return [_fix_named(x) for x in j]
    return j


def _plain_json(value: Any) -> Json:
    """JSON notation given by the caller, with any NamedUuid found inside made explicit."""
    if isinstance(value, NamedUuid):
        return value.to_json()
    if isinstance(value, list):
        return [_plain_json(x) for x in value]
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class TxnResult:
    """What a committed transaction returned, for the operations the caller added.

    ``results``: one RFC 7047 result object per operation; ``uuids``: the UUID each
    named-uuid of an insert got.
    """

    results: list[Json]
    uuids: dict[str, str] = field(default_factory=dict)

    def uuid(self, name: str) -> str:
        """The real UUID of the row inserted as ``name`` (a :class:`NamedUuid` or str)."""
        return self.uuids[str(name)]

    def count(self, index: int) -> int:
        """The ``count`` of an update, mutate or delete."""
        return int(self.results[index]["count"])

    def rows(self, index: int) -> list[dict[str, Json]]:
        """The ``rows`` of a select."""
        rows: list[dict[str, Json]] = self.results[index]["rows"]
        return rows


class Txn:
    """RFC 7047 operations on one database, built one method call at a time.

    ``schema`` is needed only for values given as datums and for :meth:`verify`.
    """

    def __init__(self, db: str, schema: DatabaseSchema | None = None) -> None:
        self.db = db
        self.schema = schema
        self.ops: list[dict[str, Json]] = []
        self.verifications: list[dict[str, Json]] = []
        self._names = count(1)
        self._inserts: dict[int, str] = {}  # op index -> uuid-name

    def __len__(self) -> int:
        return len(self.ops)

    # --- values -------------------------------------------------------------------------

    def _table(self, table: str) -> TableSchema | None:
        if self.schema is None:
            return None
        ts = self.schema.tables.get(table)
        if ts is None:
            raise KeyError(f"{self.db} has no table {table}")
        return ts

    def _ctype(self, table: str, column: str) -> ColumnType:
        ts = self._table(table)
        if ts is None:
            raise TypeError(f"{table}.{column}: a value given as a datum needs the schema")
        cs = ts.columns.get(column)
        if cs is None:
            raise KeyError(f"table {table} has no column {column}")
        return cs.type

    def value(self, table: str, column: str, value: Any) -> Json:
        """``value`` (a datum tuple, a NamedUuid or JSON notation) in JSON notation."""
        if isinstance(value, tuple):
            ctype = self._ctype(table, column)
            if ctype.value is not None and value and not isinstance(value[0], tuple):
                ctype = ColumnType(ctype.key, None, 0, UNLIMITED)  # a set of keys
            return _fix_named(datum_to_json(ctype, value))
        return _plain_json(value)

    def row(self, table: str, row: Mapping[str, Any]) -> dict[str, Json]:
        return {c: self.value(table, c, v) for c, v in row.items()
                if c not in ("_uuid", "_version")}

    def where(self, table: str, where: Iterable[Sequence[Any]]) -> list[Json]:
        out: list[Json] = []
        for clause in where:
            if isinstance(clause, bool):
                out.append(clause)
                continue
            column, function, arg = clause
            if isinstance(arg, tuple) and column in ("_uuid", "_version"):
                arg = uuid_json(arg[0])
            elif isinstance(arg, NamedUuid) or (column in ("_uuid", "_version")
                                                and isinstance(arg, str)):
                arg = uuid_json(arg)
            else:
                arg = self.value(table, column, arg)
            out.append([column, function, arg])
        return out

    # --- operations ---------------------------------------------------------------------

    def _add(self, op: dict[str, Json]) -> int:
        self.ops.append(op)
        return len(self.ops) - 1

    def insert(self, table: str, row: Mapping[str, Any] | None = None, *,
               uuid_name: str | None = None, uuid: str | None = None) -> NamedUuid:
        """Insert a row; the returned name refers to it elsewhere in the transaction.

        ``uuid`` asks for a specific UUID (an Open vSwitch extension).
        """
        name = uuid_name or f"row{next(self._names)}"
        op: dict[str, Json] = {"op": "insert", "table": table,
                               "row": self.row(table, row or {}), "uuid-name": name}
        if uuid is not None:
            op["uuid"] = uuid
        self._inserts[self._add(op)] = name
        return NamedUuid(name)

    def update(self, table: str, where: Iterable[Sequence[Any]],
               row: Mapping[str, Any]) -> int:
        return self._add({"op": "update", "table": table, "where": self.where(table, where),
                          "row": self.row(table, row)})

    def update_row(self, table: str, uuid: str, row: Mapping[str, Any]) -> int:
        return self.update(table, where_uuid(uuid), row)

    def mutate(self, table: str, where: Iterable[Sequence[Any]],
               mutations: Iterable[Sequence[Any]]) -> int:
        """``mutations``: ``(column, mutator, value)`` with mutator one of += -= *= /= %=
        insert delete."""
        muts = [[c, m, self.value(table, c, v)] for c, m, v in mutations]
        return self._add({"op": "mutate", "table": table, "where": self.where(table, where),
                          "mutations": muts})

    def delete(self, table: str, where: Iterable[Sequence[Any]]) -> int:
        return self._add({"op": "delete", "table": table, "where": self.where(table, where)})

    def delete_row(self, table: str, uuid: str) -> int:
        return self.delete(table, where_uuid(uuid))

    def select(self, table: str, where: Iterable[Sequence[Any]] = (),
               columns: Sequence[str] | None = None) -> int:
        op: dict[str, Json] = {"op": "select", "table": table,
                               "where": self.where(table, where)}
        if columns is not None:
            op["columns"] = list(columns)
        return self._add(op)

    def wait(self, table: str, where: Iterable[Sequence[Any]],
             rows: Iterable[Mapping[str, Any]], *, columns: Sequence[str] | None = None,
             until: str = "==", timeout: int | None = 0) -> int:
        """Wait (at most ``timeout`` ms; None: for ever) until the rows matching ``where``,
        restricted to ``columns``, are (``==``) or are not (``!=``) exactly ``rows``."""
        return self._add(self._wait_op(table, where, rows, columns, until, timeout))

    def _wait_op(self, table: str, where: Iterable[Sequence[Any]],
                 rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None,
                 until: str, timeout: int | None) -> dict[str, Json]:
        op: dict[str, Json] = {"op": "wait", "table": table, "where": self.where(table, where),
                               "rows": [self.row(table, r) for r in rows], "until": until}
        if columns is not None:
            op["columns"] = list(columns)
        if timeout is not None:
            op["timeout"] = timeout
        return op

    def commit(self, durable: bool = True) -> int:
        return self._add({"op": "commit", "durable": durable})

    def abort(self) -> int:
        return self._add({"op": "abort"})

    def comment(self, text: str) -> int:
        return self._add({"op": "comment", "comment": text})

    def assert_lock(self, lock: str) -> int:
        return self._add({"op": "assert", "lock": lock})

    # --- verifications ------------------------------------------------------------------

    def verify(self, table: str, row: Mapping[str, Datum], columns: Iterable[str]) -> None:
        """Commit only if ``row`` (as read: datums, with ``_uuid``) still exists with these
        values in ``columns``."""
        cols = sorted(set(columns))
        values = {c: self.value(table, c, tuple(row[c])) for c in cols}
        uuid = row["_uuid"][0]
        self.verifications.append({
            "op": "wait", "table": table, "timeout": 0, "where": where_uuid(uuid),
            "columns": cols, "until": "==", "rows": [values]})

    def verify_rows(self, table: str, where: Iterable[Sequence[Any]],
                    rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
        """Commit only if the rows matching ``where`` are still exactly ``rows`` (projected
        on ``columns``); ``verify_rows(t, where, [], [])`` checks that none matches."""
        self.verifications.append(self._wait_op(table, where, rows, columns, "==", 0))

    # --- request and answer -------------------------------------------------------------

    def params(self) -> list[Json]:
        return [self.db, *self.verifications, *self.ops]

    def result(self, results: Any) -> TxnResult:
        """Check a ``transact`` result array; raise :class:`TxnError` if anything failed.

        Indexes in the result and in errors count only the operations added with the
        operation methods (verifications come first on the wire and are not counted); a
        failed verification raises a TxnError with ``conflict`` true and index -1.
        """
        nv = len(self.verifications)
        n = nv + len(self.ops)
        if not isinstance(results, list) or len(results) < n:
            raise ProtocolViolation(f"transact reply is not an array of {n} results: "
                                    f"{results!r:.200}")
        for i, r in enumerate(results):
            if isinstance(r, dict) and r.get("error") is not None:
                tag, details, syntax = parse_error_object(r)
                index = i - nv if i >= nv else -1
                raise TxnError(tag, details, syntax, index=index, results=results, error=r,
                               conflict=i < nv and tag == "timed out")
        mine = results[nv:n]
        uuids: dict[str, str] = {}
        for i, name in self._inserts.items():
            r = mine[i]
            if not (isinstance(r, dict) and isinstance(r.get("uuid"), list)
                    and len(r["uuid"]) == 2):
                raise ProtocolViolation(f"insert result without a uuid: {r!r:.200}")
            uuids[name] = r["uuid"][1]
        return TxnResult(mine, uuids)


def is_conflict(error: BaseException) -> bool:
    """A transaction failed because a verification no longer held."""
    return isinstance(error, TxnError) and error.conflict
