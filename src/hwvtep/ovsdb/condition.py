"""Where clauses: the rows a transaction operation touches and the rows a monitor sees.

A transaction's ``where`` (RFC 7047 section 5.1) ANDs its clauses; a ``monitor_cond``
condition (Open vSwitch extension, ovsdb-server(7)) ORs them. Both accept the literals
``true`` and ``false`` as clauses, as ovsdb-server 3.1 does, and an empty list matches
every row in both. Each clause is compiled once into a small function over a row (a
``dict`` of canonical datums), so evaluating a condition on many rows costs a few tuple
comparisons per row.

Parsing follows ovsdb-server's rules and error wording: ordering functions only on integer
or real columns with at most one value; the argument parsed with the column's type, except
that ``includes`` accepts fewer values than the column's minimum and ``excludes`` any
number of values (for non-scalar columns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwvtep.ovsdb.data import Datum, Symtab, datum_from_json, datum_to_json
from hwvtep.ovsdb.errors import OvsdbError, syntax_error
from hwvtep.ovsdb.schema import TableSchema
from hwvtep.ovsdb.types import INTEGER, REAL, UNLIMITED, ColumnType, type_to_english

Row = Mapping[str, Datum]
Test = Callable[[Row], bool]

# In Open vSwitch's order: literals, then by how few rows a function tends to leave.
FUNCTION_ORDER = {
    "false": 0, "true": 1, "==": 2, "includes": 3, "<=": 4, "<": 5, ">=": 6, ">": 7,
    "excludes": 8, "!=": 9,
}
FUNCTIONS = frozenset(FUNCTION_ORDER) - {"true", "false"}
_ORDERING = frozenset(("<", "<=", ">", ">="))


@dataclass(frozen=True, slots=True)
class Clause:
    """One parsed clause. A literal has ``function`` "true"/"false", column "" and no arg."""

    column: str
    function: str
    arg: Datum
    ctype: ColumnType | None = field(default=None, compare=False)

    @property
    def sort_key(self) -> tuple[int, int, str, Datum]:
        # _uuid and _version first (as Open vSwitch does), then by name, then by argument.
        std = 0 if self.column == "_uuid" else 1 if self.column == "_version" else 2
        return (FUNCTION_ORDER[self.function], std, self.column, self.arg)

    def to_json(self) -> Any:
        if self.ctype is None:
            return self.function == "true"
        return [self.column, self.function, datum_to_json(self.ctype, self.arg)]


_TRUE_CLAUSE = Clause("", "true", ())
_FALSE_CLAUSE = Clause("", "false", ())


def _always(row: Row) -> bool:
    return True


def _never(row: Row) -> bool:
    return False


def _parse_clause(table: TableSchema, j: Any, symtab: Symtab | None) -> Clause:
    if j is True:
        return _TRUE_CLAUSE
    if j is False:
        return _FALSE_CLAUSE
    if not (isinstance(j, list) and len(j) == 3 and isinstance(j[0], str)
            and isinstance(j[1], str)):
        raise syntax_error("Parse error in condition.", j)
    name, function, arg_j = j
    column = table.columns.get(name)
    if column is None:
        raise OvsdbError("unknown column", f"No column {name} in table {table.name}.", j)
    if function not in FUNCTIONS:
        # ovsdb-server 3.1 aborts on "true"/"false" used as a function name; we refuse it.
        raise OvsdbError("unknown function", f"No function named {function}.")
    ctype = column.type
    arg_type = ctype
    if function in _ORDERING:
        if ctype.value is not None or ctype.n_max != 1 or ctype.key.type not in (INTEGER, REAL):
            raise syntax_error(
                f'Type mismatch: "{function}" operator may not be applied to column {name} '
                f"of type {type_to_english(ctype)}.", j)
        arg_type = ColumnType(ctype.key, None, 1, 1)
    elif not ctype.is_scalar:
        if function == "includes":
            arg_type = ColumnType(ctype.key, ctype.value, 0, ctype.n_max)
        elif function == "excludes":
            arg_type = ColumnType(ctype.key, ctype.value, 0, UNLIMITED)
    return Clause(name, function, datum_from_json(arg_type, arg_j, symtab), ctype)


def _compile_clause(c: Clause) -> Test:
    """A function of a row telling whether the clause holds, specialised for speed."""
    f = c.function
    if f == "true":
        return _always
    if f == "false":
        return _never
    col, arg = c.column, c.arg
    ctype = c.ctype
    assert ctype is not None
    if f in _ORDERING:
        # The column holds at most one number and the argument exactly one; an empty
        # optional column never compares.
        a = arg[0]
        if ctype.is_scalar:
            if f == "<":
                return lambda row: row[col][0] < a
            if f == "<=":
                return lambda row: row[col][0] <= a
            if f == ">":
                return lambda row: row[col][0] > a
            return lambda row: row[col][0] >= a
        if f == "<":
            return lambda row: bool(row[col]) and row[col][0] < a
        if f == "<=":
            return lambda row: bool(row[col]) and row[col][0] <= a
        if f == ">":
            return lambda row: bool(row[col]) and row[col][0] > a
        return lambda row: bool(row[col]) and row[col][0] >= a
    if ctype.is_scalar:
        # "includes" and "excludes" on a scalar column mean "==" and "!=".
        if f in ("==", "includes"):
            return lambda row: row[col] == arg
        return lambda row: row[col] != arg
    # Sets, maps (a datum's elements are (key, value) pairs) and optional scalars: datums
    # are canonical, so equality is tuple equality.
    if f == "==":
        return lambda row: row[col] == arg
    if f == "!=":
        return lambda row: row[col] != arg
    if f == "includes":
        if not arg:
            return _always
        if len(arg) == 1:
            elem = arg[0]
            return lambda row: elem in row[col]
        wanted = frozenset(arg)
        return lambda row: wanted.issubset(row[col])
    # excludes
    if not arg:
        return _always
    if len(arg) == 1:
        elem = arg[0]
        return lambda row: elem not in row[col]
    unwanted = frozenset(arg)
    return lambda row: unwanted.isdisjoint(row[col])


def _all_of(tests: list[Test]) -> Test:
    if not tests:
        return _always
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        t0, t1 = tests
        return lambda row: t0(row) and t1(row)
    ts = tuple(tests)

    def every(row: Row) -> bool:
        for t in ts:  # noqa: SIM110 (a plain loop is faster than all() over a generator)
            if not t(row):
                return False
        return True
    return every


def _check_list(j: Any, member: str) -> list[Any]:
    if not isinstance(j, list):
        raise syntax_error(f"Type mismatch for member '{member}'.", j)
    return j


@dataclass(frozen=True, slots=True)
class Condition:
    """The ANDed clauses of a transaction's ``where``.

    ``uuid_eq`` is set when a clause pins ``_uuid`` to one UUID: a caller may look that row
    up directly, but must still call :meth:`evaluate` on it for the other clauses.
    """

    clauses: tuple[Clause, ...]
    uuid_eq: str | None
    columns: frozenset[str]
    evaluate: Test = field(compare=False, repr=False)

    @property
    def is_false(self) -> bool:
        """True when a literal ``false`` makes the condition match no row at all."""
        return any(c.function == "false" for c in self.clauses)

    def to_json(self) -> list[Any]:
        return [c.to_json() for c in self.clauses]


def parse_where(table: TableSchema, where_json: Any, symtab: Symtab | None = None) -> Condition:
    """Parse an RFC 7047 ``where`` for *table*; errors are :class:`OvsdbError` as OVS words them.

    Clauses are parsed in order and the first bad one is reported. ``symtab`` resolves
    ``named-uuid`` arguments (inside a transaction); without it they are rejected.
    """
    clauses = [_parse_clause(table, cj, symtab) for cj in _check_list(where_json, "where")]
    uuid_eq = None
    for c in clauses:
        if c.column == "_uuid" and c.function in ("==", "includes"):
            uuid_eq = str(c.arg[0])
            break
    columns = frozenset(c.column for c in clauses if c.ctype is not None)
    return Condition(tuple(clauses), uuid_eq, columns,
                     _all_of([_compile_clause(c) for c in clauses]))


@dataclass(frozen=True, slots=True)
class MonitorCondition:
    """The ORed clauses of a ``monitor_cond`` request's ``where`` (empty means true).

    Clauses are kept sorted and without duplicates, so two conditions selecting by the
    same clauses compare equal whatever order the client wrote them in.
    """

    clauses: tuple[Clause, ...]
    is_true: bool
    is_false: bool
    columns: frozenset[str]
    evaluate: Test = field(compare=False, repr=False)

    def to_json(self) -> list[Any]:
        return [c.to_json() for c in self.clauses]


MONITOR_TRUE = MonitorCondition((), True, False, frozenset(), _always)


def parse_monitor_condition(table: TableSchema, json: Any) -> MonitorCondition:
    """Parse the ``where`` of a monitor-cond request (no named-uuids outside a transaction)."""
    parsed = [_parse_clause(table, cj, None) for cj in _check_list(json, "where")]
    clauses = tuple(sorted(set(parsed), key=_sort_key))
    if not clauses:
        return MONITOR_TRUE
    real = [c for c in clauses if c.ctype is not None]
    is_true = any(c.function == "true" for c in clauses)
    is_false = not is_true and not real
    columns = frozenset(c.column for c in real)
    if is_true:
        return MonitorCondition(clauses, True, False, columns, _always)
    if is_false:
        return MonitorCondition(clauses, False, True, columns, _never)
    return MonitorCondition(clauses, False, False, columns, _any_of(real))


def _sort_key(c: Clause) -> tuple[int, int, str, Datum]:
    return c.sort_key


def _any_of(clauses: list[Clause]) -> Test:
    # "==" clauses on one column become one hash look-up of the row's datum, as
    # ovsdb-server does: monitors often select by many UUIDs or names at once.
    eq: dict[str, set[Datum]] = {}
    others: list[Test] = []
    for c in clauses:
        if c.function == "==":
            eq.setdefault(c.column, set()).add(c.arg)
        else:
            others.append(_compile_clause(c))
    lookups = tuple((col, frozenset(args)) for col, args in eq.items())
    tests = tuple(others)
    if not tests and len(lookups) == 1:
        (col, args), = lookups
        return lambda row: row[col] in args

    def some(row: Row) -> bool:
        for col, args in lookups:
            if row[col] in args:
                return True
        for t in tests:  # noqa: SIM110 (a plain loop is faster than any() over a generator)
            if t(row):
                return True
        return False
    return some
