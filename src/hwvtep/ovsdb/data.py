"""Values of columns: RFC 7047 JSON notation both ways, canonical order, diffs.

A *datum* is an immutable tuple in canonical (sorted, duplicate-free) order:

* a set or a scalar column: ``(atom, atom, ...)`` (a scalar is a one-element tuple);
* a map column: ``((key, value), (key, value), ...)`` sorted by key.

Atoms are plain Python values (int, float, bool, str; a UUID is its lowercase 36-character
string), which keeps rows small and comparisons fast; the column type always says how to
read them. Sorting strings by code point equals Open vSwitch's byte-wise UTF-8 order, and
sorting lowercase UUID strings equals its numeric UUID order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hwvtep.ovsdb.errors import OvsdbError, constraint_violation, syntax_error
from hwvtep.ovsdb.types import (
    BOOLEAN,
    DEFAULT_ATOMS,
    INT64_MAX,
    INT64_MIN,
    INTEGER,
    REAL,
    STRING,
    UUID,
    UUID_RE,
    Atom,
    BaseType,
    ColumnType,
    atom_to_string,
)

Datum = tuple[Any, ...]
# Resolves a "named-uuid" to a UUID string (raising OvsdbError when it cannot).
Symtab = Callable[[str], str]

EMPTY: Datum = ()

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def atom_from_json(base: BaseType, j: Any, symtab: Symtab | None = None) -> Atom:
    """Parse and type-check one atom (constraints are checked separately)."""
    t = base.type
    if t == STRING:
        if isinstance(j, str):
            return j
        raise syntax_error("expected string", j)
    if t == INTEGER:
        if isinstance(j, int) and not isinstance(j, bool):
            if INT64_MIN <= j <= INT64_MAX:
                return j
            raise syntax_error("integer out of range", j)
        raise syntax_error("expected integer", j)
    if t == UUID:
        # Open vSwitch's wording: a named-uuid outside a transaction is just "not a uuid".
        if isinstance(j, list) and len(j) == 2 and isinstance(j[1], str):
            if j[0] == "uuid":
                if UUID_RE.match(j[1]):
                    return j[1].lower()
                raise syntax_error(f'"{j[1]}" is not a valid UUID', j)
            if j[0] == "named-uuid" and symtab is not None:
                if not _ID_RE.match(j[1]):
                    raise syntax_error("named-uuid string is not a valid <id>", j)
                return symtab(j[1])
        raise syntax_error('expected ["uuid", <string>]', j)
    if t == REAL:
        if isinstance(j, float):
            return j
        if isinstance(j, int) and not isinstance(j, bool):
            return float(j)
        raise syntax_error("expected real", j)
    if t == BOOLEAN:
        if isinstance(j, bool):
            return j
        raise syntax_error("expected boolean", j)
    raise syntax_error(f"unknown atomic type {t}", j)


def atom_to_json(atomic_type: str, atom: Atom) -> Any:
    if atomic_type == UUID:
        return ["uuid", atom]
    return atom


def _check(base: BaseType, atom: Atom) -> Atom:
    if base.has_constraints:
        base.check_atom(atom)
    return atom


def datum_from_json(ctype: ColumnType, j: Any, symtab: Symtab | None = None) -> Datum:
    """Parse a column value in RFC 7047 notation into a canonical datum.

    Type and constraint errors raise :class:`OvsdbError`; so do duplicate set elements or
    map keys and a number of elements outside [n_min, n_max], all with Open vSwitch's
    tags and wording (a wrong count is a "syntax error" naming the set or map).
    """
    key = ctype.key
    value = ctype.value
    if value is not None or (isinstance(j, list) and len(j) > 0 and j[0] == "set"):
        # Open vSwitch's order and wording: the count is checked before any element.
        cls = "set" if value is None else "map"
        if not (isinstance(j, list) and len(j) == 2 and j[0] == cls
                and isinstance(j[1], list)):
            raise syntax_error(f'expected ["{cls}", <array>]', j)
        inner = j[1]
        n = len(inner)
        if n < ctype.n_min or n > ctype.n_max:
            if ctype.n_min == 1 and ctype.n_max == 1:
                raise syntax_error(f"{cls} must have exactly one member but {n} are present", j)
            raise syntax_error(
                f"{cls} must have {ctype.n_min} to {ctype.n_max} members but {n} are present", j)
        if value is not None:
            pairs = []
            for p in inner:
                if not (isinstance(p, list) and len(p) == 2):
                    raise syntax_error("expected 2-element array", p)
                pairs.append((_check(key, atom_from_json(key, p[0], symtab)),
                              _check(value, atom_from_json(value, p[1], symtab))))
            pairs.sort(key=_first)
            for i in range(1, len(pairs)):
                if pairs[i][0] == pairs[i - 1][0]:
                    raise OvsdbError("ovsdb error", "map contains duplicate key")
            return tuple(pairs)
        atoms = [_check(key, atom_from_json(key, a, symtab)) for a in inner]
        if n > 1:
            atoms.sort()
            for i in range(1, n):
                if atoms[i] == atoms[i - 1]:
                    raise OvsdbError("ovsdb error", "set contains duplicate")
        return tuple(atoms)
    # A bare atom is a one-element set, which every column type admits.
    return (_check(key, atom_from_json(key, j, symtab)),)


def check_size(ctype: ColumnType, datum: Datum) -> None:
    n = len(datum)
    if n < ctype.n_min or n > ctype.n_max:
        raise constraint_violation(
            f"{n} values when type requires between {ctype.n_min} and {ctype.n_max}")


def _first(p: tuple[Any, Any]) -> Any:
    return p[0]


def datum_to_json(ctype: ColumnType, datum: Datum) -> Any:
    """RFC 7047 notation; a one-element set is written as the bare atom."""
    kt = ctype.key.type
    if ctype.value is not None:
        vt = ctype.value.type
        if kt == UUID or vt == UUID:
            return ["map", [[atom_to_json(kt, k), atom_to_json(vt, v)] for k, v in datum]]
        return ["map", [[k, v] for k, v in datum]]
    if len(datum) == 1:
        a = datum[0]
        return ["uuid", a] if kt == UUID else a
    if kt == UUID:
        return ["set", [["uuid", a] for a in datum]]
    return ["set", list(datum)]


def default_datum(ctype: ColumnType) -> Datum:
    if ctype.n_min == 0:
        return EMPTY
    if ctype.value is not None:
        return ((DEFAULT_ATOMS[ctype.key.type], DEFAULT_ATOMS[ctype.value.type]),)
    return (DEFAULT_ATOMS[ctype.key.type],)


def datum_to_string(ctype: ColumnType, datum: Datum) -> str:
    """The form vtep-ctl and ovs-vsctl print: ``[a, b]``, ``{k=v}``, or a bare atom."""
    kt = ctype.key.type
    if ctype.value is not None:
        vt = ctype.value.type
        inner = ", ".join(f"{atom_to_string(kt, k)}={atom_to_string(vt, v)}" for k, v in datum)
    else:
        inner = ", ".join(atom_to_string(kt, a) for a in datum)
    if ctype.n_max > 1 or not datum:
        return ("{%s}" if ctype.value is not None else "[%s]") % inner
    return inner


def datum_keys(ctype: ColumnType, datum: Datum) -> tuple[Atom, ...]:
    if ctype.value is not None:
        return tuple(k for k, _ in datum)
    return datum


def datum_diff(ctype: ColumnType, old: Datum, new: Datum) -> Datum:
    """The update2 "modify" difference between two values of a set or map column.

    For a set: the elements in exactly one of them. For a map: pairs whose key went away
    (old value), whose key is new, or whose value changed (new value). Applying it with
    :func:`datum_apply_diff` to *old* gives *new*.
    """
    if ctype.value is not None:
        od = dict(old)
        nd = dict(new)
        out = [(k, v) for k, v in old if k not in nd]
        out.extend((k, v) for k, v in new if od.get(k, _MISSING) != v or k not in od)
        out.sort(key=_first)
        return tuple(out)
    return tuple(sorted(set(old).symmetric_difference(new)))


_MISSING = object()


def datum_apply_diff(ctype: ColumnType, old: Datum, diff: Datum) -> Datum:
    if ctype.value is not None:
        d = dict(old)
        for k, v in diff:
            if k in d and d[k] == v:
                del d[k]
            else:
                d[k] = v
        return tuple(sorted(d.items(), key=_first))
    s = set(old)
    s.symmetric_difference_update(diff)
    return tuple(sorted(s))


def diff_ctype(ctype: ColumnType) -> ColumnType:
    """The type a diff is written with: any size, since a diff may be larger or empty."""
    from hwvtep.ovsdb.types import UNLIMITED

    return ColumnType(ctype.key, ctype.value, 0, UNLIMITED)


def datum_from_json_unchecked(ctype: ColumnType, j: Any) -> Datum:
    """Parse trusted JSON (our own log, a diff) without size checks."""
    return datum_from_json(diff_ctype(ctype), j)


def datum_check(ctype: ColumnType, datum: Datum) -> None:
    """Check every atom's constraints and the element count of a datum."""
    if ctype.key.has_constraints:
        for k in datum_keys(ctype, datum):
            ctype.key.check_atom(k)
    if ctype.value is not None and ctype.value.has_constraints:
        for _, v in datum:
            ctype.value.check_atom(v)
    check_size(ctype, datum)


def datum_refs(ctype: ColumnType, datum: Datum) -> list[tuple[str, str, str]]:
    """(ref_table, ref_type, uuid) for every reference held by a datum."""
    out: list[tuple[str, str, str]] = []
    k, v = ctype.key, ctype.value
    if ctype.value is None:
        if k.ref_table is not None:
            out.extend((k.ref_table, k.ref_type, a) for a in datum)
        return out
    if k.ref_table is not None:
        out.extend((k.ref_table, k.ref_type, a) for a, _ in datum)
    if v is not None and v.ref_table is not None:
        out.extend((v.ref_table, v.ref_type, b) for _, b in datum)
    return out
