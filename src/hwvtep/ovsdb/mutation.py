"""The ``mutate`` operation's mutations: parse them once, apply them to many rows.

RFC 7047 section 5.1 defines the mutators; ovsdb-server 3.1 is the reference for what is
accepted and for every error's tag and wording (checked with ``ovsdb-tool transact``):
arithmetic on integer and real scalars and on every element of their sets, with int64
overflow a "range error" and division by zero a "domain error"; ``insert`` and ``delete``
on sets and maps, where a map ``insert`` never replaces a key's value and a map ``delete``
takes either a map (pairs whose key and value both match) or a set of keys.

Where ovsdb-server's overflow check for ``*=`` is wrong (it rejects some products that fit,
wraps others that do not, and crashes on a negative number times zero) we compute the
exact product and report "range error" only when it leaves int64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hwvtep.ovsdb.data import Datum, Symtab, datum_from_json, datum_to_json
from hwvtep.ovsdb.errors import (
    CONSTRAINT_VIOLATION,
    DOMAIN_ERROR,
    RANGE_ERROR,
    OvsdbError,
    constraint_violation,
    syntax_error,
)
from hwvtep.ovsdb.schema import TableSchema
from hwvtep.ovsdb.types import (
    DBL_MAX,
    INT64_MAX,
    INT64_MIN,
    INTEGER,
    REAL,
    UNLIMITED,
    BaseType,
    ColumnType,
    type_to_english,
)

ARITHMETIC = ("+=", "-=", "*=", "/=", "%=")
MUTATORS = frozenset((*ARITHMETIC, "insert", "delete"))

Apply = Callable[[Datum], Datum]


@dataclass(frozen=True, slots=True)
class Mutation:
    """One parsed mutation; ``apply`` maps the column's current datum to the new one."""

    column: str
    mutator: str
    arg: Datum
    # The type *arg* was parsed with (a map ``delete`` by keys has no value type).
    arg_type: ColumnType = field(compare=False)
    apply: Apply = field(compare=False, repr=False)

    def to_json(self) -> Any:
        return [self.column, self.mutator, datum_to_json(self.arg_type, self.arg)]


def _type_mismatch(mutator: str, name: str, ctype: ColumnType, j: Any) -> OvsdbError:
    return syntax_error(
        f'Type mismatch: "{mutator}" operator may not be applied to column {name} of type '
        f"{type_to_english(ctype)}.", j)


def parse_mutation(table: TableSchema, j: Any, symtab: Symtab | None = None) -> Mutation:
    if not (isinstance(j, list) and len(j) == 3 and isinstance(j[0], str)
            and isinstance(j[1], str)):
        raise syntax_error("Parse error in mutation.", j)
    name, mutator, arg_j = j
    column = table.columns.get(name)
    if column is None:
        raise OvsdbError("unknown column", f"No column {name} in table {table.name}.", j)
    if not column.mutable:
        raise OvsdbError(CONSTRAINT_VIOLATION,
                         f"Cannot mutate immutable column {name} in table {table.name}.", j)
    if mutator not in MUTATORS:
        raise OvsdbError("unknown mutator", f"No mutator named {mutator}.")
    ctype = column.type
    key = ctype.key
    if mutator in ARITHMETIC:
        if (ctype.value is not None or key.type not in (INTEGER, REAL)
                or (mutator == "%=" and key.type == REAL)):
            raise _type_mismatch(mutator, name, ctype, j)
        # The operand is one number of the column's atomic type, free of its constraints:
        # the constraints apply to the result.
        arg_type = ColumnType(BaseType(key.type))
        arg = datum_from_json(arg_type, arg_j, symtab)
        return Mutation(name, mutator, arg, arg_type,
                        _arithmetic(ctype, mutator, arg[0]))
    if ctype.is_scalar:
        raise _type_mismatch(mutator, name, ctype, j)
    n_max = ctype.n_max if mutator == "insert" else UNLIMITED
    arg_type = ColumnType(key, ctype.value, 0, n_max)
    if mutator == "insert":
        arg = datum_from_json(arg_type, arg_j, symtab)
        return Mutation(name, mutator, arg, arg_type, _insert(ctype, arg))
    try:
        arg = datum_from_json(arg_type, arg_j, symtab)
    except OvsdbError:
        if ctype.value is None:
            raise
        # Not a map: then it must be a set of keys (and its error is the one reported).
        arg_type = ColumnType(key, None, 0, UNLIMITED)
        arg = datum_from_json(arg_type, arg_j, symtab)
        return Mutation(name, mutator, arg, arg_type, _delete_keys(ctype, arg))
    return Mutation(name, mutator, arg, arg_type, _delete(ctype, arg))


def parse_mutations(table: TableSchema, mutations_json: Any,
                    symtab: Symtab | None = None) -> list[Mutation]:
    """Parse a ``mutate`` operation's ``mutations``; the first bad one raises OvsdbError."""
    if not isinstance(mutations_json, list):
        raise syntax_error("Type mismatch for member 'mutations'.", mutations_json)
    return [parse_mutation(table, j, symtab) for j in mutations_json]


def apply_mutations(table: TableSchema, row: Mapping[str, Datum],
                    mutations: list[Mutation]) -> dict[str, Datum]:
    """Apply *mutations* in order to *row*; the new datums of the columns whose value changed.

    *row* is not modified. The first failing mutation raises :class:`OvsdbError`, and then
    nothing of the row may be kept (ovsdb-server aborts the whole transaction).
    """
    changed: dict[str, Datum] = {}
    for m in mutations:
        col = m.column
        changed[col] = m.apply(changed[col] if col in changed else row[col])
    return {c: d for c, d in changed.items() if d != row[c]}


# --- arithmetic -----------------------------------------------------------------------

def _range_error(mutator: str) -> OvsdbError:
    return OvsdbError(RANGE_ERROR, f'Result of "{mutator}" operation is out of range.')


_DIVISION_BY_ZERO = OvsdbError(DOMAIN_ERROR, "Division by zero.")
_N = TypeVar("_N", int, float)


def _common_op(mutator: str, y: _N) -> Callable[[_N], _N] | None:
    """What "+=", "-=", "*=" and a division by zero do to integers and reals alike."""
    if mutator == "+=":
        return lambda x: x + y
    if mutator == "-=":
        return lambda x: x - y
    if mutator == "*=":
        return lambda x: x * y
    if y == 0:
        def by_zero(x: _N) -> _N:
            raise _DIVISION_BY_ZERO
        return by_zero
    return None


def _int_op(mutator: str, y: int) -> Callable[[int], int]:
    op = _common_op(mutator, y)
    if op is not None:
        return op
    if y == -1:
        # C cannot divide INT64_MIN by -1; ovsdb-server reports it (for "%=" too).
        def negate(x: int) -> int:
            if x == INT64_MIN:
                raise _range_error(mutator)
            return -x if mutator == "/=" else 0
        return negate
    ay = abs(y)
    if mutator == "/=":
        # C division truncates toward zero.
        def div(x: int) -> int:
            q = abs(x) // ay
            return q if (x < 0) == (y < 0) else -q
        return div

    def mod(x: int) -> int:
        # C's remainder has the sign of the dividend.
        r = abs(x) % ay
        return r if x >= 0 else -r
    return mod


def _real_op(mutator: str, y: float) -> Callable[[float], float]:
    return _common_op(mutator, y) or (lambda x: x / y)


def _arithmetic(ctype: ColumnType, mutator: str, y: Any) -> Apply:
    base = ctype.key
    if base.type == INTEGER:
        iop = _int_op(mutator, y)

        def one(x: Any) -> Any:
            r = iop(x)
            if r < INT64_MIN or r > INT64_MAX:
                raise _range_error(mutator)
            return r
    else:
        rop = _real_op(mutator, y)

        def one(x: Any) -> Any:
            r = rop(x)
            if not -DBL_MAX <= r <= DBL_MAX:
                raise _range_error(mutator)
            return r
    check = base.check_atom if base.has_constraints else None

    if ctype.is_scalar:
        def scalar(d: Datum) -> Datum:
            r = one(d[0])
            if check is not None:
                check(r)
            return (r,)
        return scalar

    duplicates = constraint_violation(f'Result of "{mutator}" operation contains duplicates.')

    def every(d: Datum) -> Datum:
        out = [one(x) for x in d]
        if check is not None:
            for r in out:
                check(r)
        if len(out) > 1:
            # Only "*=", "/=" and "%=" can reorder or merge elements.
            out.sort()
            for i in range(1, len(out)):
                if out[i] == out[i - 1]:
                    raise duplicates
        return tuple(out)
    return every


# --- insert and delete ----------------------------------------------------------------

def _count_error(ctype: ColumnType, n: int) -> OvsdbError:
    return constraint_violation(f"Attempted to store {n} elements in {type_to_english(ctype)}.")


def _checked(ctype: ColumnType, d: Datum) -> Datum:
    if not ctype.n_min <= len(d) <= ctype.n_max:
        raise _count_error(ctype, len(d))
    return d


def _pair_key(p: tuple[Any, Any]) -> Any:
    return p[0]


def _insert(ctype: ColumnType, arg: Datum) -> Apply:
    if ctype.value is None:
        new = frozenset(arg)

        def insert_set(d: Datum) -> Datum:
            if new.issubset(d):
                return _checked(ctype, d)
            return _checked(ctype, tuple(sorted(new.union(d))))
        return insert_set

    def insert_map(d: Datum) -> Datum:
        m = dict(d)
        added = False
        for k, v in arg:
            if k not in m:
                m[k] = v
                added = True
        if not added:
            return _checked(ctype, d)
        return _checked(ctype, tuple(sorted(m.items(), key=_pair_key)))
    return insert_map


def _delete(ctype: ColumnType, arg: Datum) -> Apply:
    """Delete set elements, or map pairs matching both key and value."""
    gone = frozenset(arg)

    def delete(d: Datum) -> Datum:
        if gone.isdisjoint(d):
            return _checked(ctype, d)
        return _checked(ctype, tuple(x for x in d if x not in gone))
    return delete


def _delete_keys(ctype: ColumnType, keys: Datum) -> Apply:
    gone = frozenset(keys)

    def delete_keys(d: Datum) -> Datum:
        return _checked(ctype, tuple(p for p in d if p[0] not in gone))
    return delete_keys


__all__ = [
    "ARITHMETIC",
    "MUTATORS",
    "Mutation",
    "apply_mutations",
    "parse_mutation",
    "parse_mutations",
]
