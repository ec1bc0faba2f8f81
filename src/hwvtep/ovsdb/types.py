"""OVSDB types: atomic types, base types with constraints, and column types.

A value of a column is a *datum* (see :mod:`hwvtep.ovsdb.data`); this module knows what
values a column admits and checks single atoms against the base type's constraints, with
the same wording Open vSwitch uses in its "constraint violation" details.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hwvtep.ovsdb.errors import constraint_violation, syntax_error
from hwvtep.ovsdb.jsonutil import dumps_str

INTEGER = "integer"
REAL = "real"
BOOLEAN = "boolean"
STRING = "string"
UUID = "uuid"
ATOMIC_TYPES = (INTEGER, REAL, BOOLEAN, STRING, UUID)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DBL_MAX = 1.7976931348623157e308
UINT_MAX = 2**32 - 1
UNLIMITED = UINT_MAX  # "max": "unlimited"

STRONG = "strong"
WEAK = "weak"

Atom = int | float | bool | str

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ZERO_UUID = "00000000-0000-0000-0000-000000000000"

DEFAULT_ATOMS: dict[str, Atom] = {
    INTEGER: 0, REAL: 0.0, BOOLEAN: False, STRING: "", UUID: ZERO_UUID}


def format_real(value: float) -> str:
    """Reals as Open vSwitch prints them (C's %.15g)."""
    return format(value, ".15g")


def _string_needs_quotes(s: str) -> bool:
    if not s or not (s[0].isascii() and (s[0].isalpha() or s[0] == "_")):
        return True
    for c in s[1:]:
        if not (c.isascii() and (c.isalnum() or c in "_-.")):
            return True
    return s in ("true", "false") or UUID_RE.match(s) is not None


def atom_to_string(atomic_type: str, atom: Atom) -> str:
    """The human form used by vtep-ctl/ovs-vsctl: strings quoted only when needed."""
    if atomic_type == STRING:
        assert isinstance(atom, str)
        if _string_needs_quotes(atom):
            return dumps_str(atom)
        return atom
    if atomic_type == BOOLEAN:
        return "true" if atom else "false"
    if atomic_type == REAL:
        assert isinstance(atom, float | int)
        return format_real(float(atom))
    return str(atom)


@dataclass(frozen=True, slots=True)
class BaseType:
    """The type of a key or a value: an atomic type plus its constraints."""

    type: str
    enum: tuple[Atom, ...] | None = None
    min_integer: int = INT64_MIN
    max_integer: int = INT64_MAX
    min_real: float = -DBL_MAX
    max_real: float = DBL_MAX
    min_length: int = 0
    max_length: int = UINT_MAX
    ref_table: str | None = None
    ref_type: str = STRONG

    @property
    def has_constraints(self) -> bool:
        return (
            self.enum is not None
            or self.min_integer != INT64_MIN
            or self.max_integer != INT64_MAX
            or self.min_real != -DBL_MAX
            or self.max_real != DBL_MAX
            or self.min_length != 0
            or self.max_length != UINT_MAX
            or self.ref_table is not None
        )

    @property
    def is_strong_ref(self) -> bool:
        return self.ref_table is not None and self.ref_type == STRONG

    @property
    def is_weak_ref(self) -> bool:
        return self.ref_table is not None and self.ref_type == WEAK

    @staticmethod
    def from_json(j: Any) -> BaseType:
        if isinstance(j, str):
            if j not in ATOMIC_TYPES:
                raise syntax_error(f'unknown atomic type "{j}"', j)
            return BaseType(j)
        if not isinstance(j, dict):
            raise syntax_error("base type must be string or object", j)
        known = {"type", "enum", "minInteger", "maxInteger", "minReal", "maxReal",
                 "minLength", "maxLength", "refTable", "refType"}
        for member in j:
            if member not in known:
                raise syntax_error(f"Member '{member}' is present but not allowed here.", j)
        atype = j.get("type")
        if atype not in ATOMIC_TYPES:
            raise syntax_error(f'unknown atomic type "{atype}"', j)
        kw: dict[str, Any] = {}
        if atype == INTEGER:
            lo = _get_int(j, "minInteger", INT64_MIN)
            hi = _get_int(j, "maxInteger", INT64_MAX)
            if lo > hi:
                raise syntax_error("minInteger exceeds maxInteger", j)
            kw.update(min_integer=lo, max_integer=hi)
        elif atype == REAL:
            lo_r = _get_real(j, "minReal", -DBL_MAX)
            hi_r = _get_real(j, "maxReal", DBL_MAX)
            if lo_r > hi_r:
                raise syntax_error("minReal exceeds maxReal", j)
            kw.update(min_real=lo_r, max_real=hi_r)
        elif atype == STRING:
            lo = _get_int(j, "minLength", 0)
            hi = _get_int(j, "maxLength", UINT_MAX)
            if lo < 0 or hi < 0 or lo > hi:
                raise syntax_error("minLength exceeds maxLength", j)
            kw.update(min_length=lo, max_length=hi)
        elif atype == UUID:
            ref_table = j.get("refTable")
            if ref_table is not None:
                if not isinstance(ref_table, str):
                    raise syntax_error("refTable must be a string", j)
                ref_type = j.get("refType", STRONG)
                if ref_type not in (STRONG, WEAK):
                    raise syntax_error(
                        f'refType must be "strong" or "weak" (not "{ref_type}")', j)
                kw.update(ref_table=ref_table, ref_type=ref_type)
            elif "refType" in j:
                raise syntax_error("refType requires refTable", j)
        for member in ("minInteger", "maxInteger", "minReal", "maxReal", "minLength",
                       "maxLength", "refTable", "refType"):
            if member in j and not _member_applies(atype, member):
                raise syntax_error(f"Member '{member}' is present but not allowed here.", j)
        base = BaseType(atype, **kw)
        if "enum" in j:
            from hwvtep.ovsdb.data import datum_from_json

            enum_type = ColumnType(BaseType(atype, **kw), None, 1, UNLIMITED)
            values = datum_from_json(enum_type, j["enum"])
            base = BaseType(atype, enum=values, **kw)
        return base

    def to_json(self) -> Any:
        if not self.has_constraints:
            return self.type
        out: dict[str, Any] = {"type": self.type}
        if self.enum is not None:
            from hwvtep.ovsdb.data import datum_to_json

            out["enum"] = datum_to_json(ColumnType(BaseType(self.type), None, 1, UNLIMITED),
                                        self.enum)
        if self.min_integer != INT64_MIN:
            out["minInteger"] = self.min_integer
        if self.max_integer != INT64_MAX:
            out["maxInteger"] = self.max_integer
        if self.min_real != -DBL_MAX:
            out["minReal"] = self.min_real
        if self.max_real != DBL_MAX:
            out["maxReal"] = self.max_real
        if self.min_length != 0:
            out["minLength"] = self.min_length
        if self.max_length != UINT_MAX:
            out["maxLength"] = self.max_length
        if self.ref_table is not None:
            out["refTable"] = self.ref_table
            if self.ref_type == WEAK:
                out["refType"] = WEAK
        return out

    def check_atom(self, atom: Atom) -> None:
        """Raise "constraint violation" unless *atom* (already of the right type) fits."""
        if self.enum is not None and atom not in self.enum:
            valid = ", ".join(atom_to_string(self.type, a) for a in self.enum)
            raise constraint_violation(
                f"{atom_to_string(self.type, atom)} is not one of the allowed values "
                f"([{valid}])")
        t = self.type
        if t == INTEGER:
            assert isinstance(atom, int)
            lo, hi = self.min_integer, self.max_integer
            if lo <= atom <= hi:
                return
            if lo != INT64_MIN:
                if hi != INT64_MAX:
                    raise constraint_violation(
                        f"{atom} is not in the valid range {lo} to {hi} (inclusive)")
                raise constraint_violation(f"{atom} is less than minimum allowed value {lo}")
            raise constraint_violation(f"{atom} is greater than maximum allowed value {hi}")
        if t == REAL:
            assert isinstance(atom, float | int)
            rlo, rhi = self.min_real, self.max_real
            if rlo <= atom <= rhi:
                return
            a, lo_s, hi_s = format_real(float(atom)), format_real(rlo), format_real(rhi)
            if rlo != -DBL_MAX:
                if rhi != DBL_MAX:
                    raise constraint_violation(
                        f"{a} is not in the valid range {lo_s} to {hi_s} (inclusive)")
                raise constraint_violation(f"{a} is less than minimum allowed value {lo_s}")
            raise constraint_violation(f"{a} is greater than maximum allowed value {hi_s}")
        if t == STRING:
            assert isinstance(atom, str)
            if self.min_length == 0 and self.max_length == UINT_MAX:
                return
            n = len(atom)
            if n < self.min_length:
                raise constraint_violation(
                    f'"{atom}" length {n} is less than minimum allowed length {self.min_length}')
            if n > self.max_length:
                raise constraint_violation(
                    f'"{atom}" length {n} is greater than maximum allowed length '
                    f"{self.max_length}")


def _member_applies(atype: str, member: str) -> bool:
    if member in ("minInteger", "maxInteger"):
        return atype == INTEGER
    if member in ("minReal", "maxReal"):
        return atype == REAL
    if member in ("minLength", "maxLength"):
        return atype == STRING
    return atype == UUID


def _get_int(j: dict[str, Any], name: str, default: int) -> int:
    v = j.get(name, default)
    if not isinstance(v, int) or isinstance(v, bool):
        raise syntax_error(f"{name} must be an integer", j)
    return v


def _get_real(j: dict[str, Any], name: str, default: float) -> float:
    v = j.get(name, default)
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise syntax_error(f"{name} must be a number", j)
    return float(v)


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A column's type: key, optional value (a map), and the number of elements."""

    key: BaseType
    value: BaseType | None = None
    n_min: int = 1
    n_max: int = 1
    # Derived once; the hot paths ask these for every value.
    is_map: bool = field(init=False, compare=False)
    is_scalar: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_map", self.value is not None)
        object.__setattr__(
            self, "is_scalar", self.value is None and self.n_min == 1 and self.n_max == 1)

    @property
    def is_set(self) -> bool:
        return self.value is None and (self.n_max > 1 or self.n_min != 1)

    @property
    def is_optional(self) -> bool:
        return self.n_min == 0 and self.n_max == 1

    @staticmethod
    def atomic(atype: str) -> ColumnType:
        return ColumnType(BaseType(atype))

    @staticmethod
    def from_json(j: Any) -> ColumnType:
        if isinstance(j, str):
            return ColumnType(BaseType.from_json(j))
        if not isinstance(j, dict):
            raise syntax_error("ovsdb type expected", j)
        for member in j:
            if member not in ("key", "value", "min", "max"):
                raise syntax_error(f"Member '{member}' is present but not allowed here.", j)
        if "key" not in j:
            raise syntax_error("Required 'key' member is missing.", j)
        key = BaseType.from_json(j["key"])
        value = BaseType.from_json(j["value"]) if "value" in j else None
        n_min = j.get("min", 1)
        if not isinstance(n_min, int) or isinstance(n_min, bool) or n_min not in (0, 1):
            raise syntax_error("minimum must be 0 or 1", j)
        n_max_j = j.get("max", 1)
        if n_max_j == "unlimited":
            n_max = UNLIMITED
        elif isinstance(n_max_j, int) and not isinstance(n_max_j, bool) and n_max_j >= 1:
            n_max = n_max_j
        else:
            raise syntax_error('maximum must be a positive integer or "unlimited"', j)
        if n_min > n_max:
            raise syntax_error("ovsdb type fails constraint checks", j)
        return ColumnType(key, value, n_min, n_max)

    def to_json(self) -> Any:
        if self.is_scalar and not self.key.has_constraints:
            return self.key.type
        out: dict[str, Any] = {"key": self.key.to_json()}
        if self.value is not None:
            out["value"] = self.value.to_json()
        if self.n_min != 1:
            out["min"] = self.n_min
        if self.n_max != 1:
            out["max"] = "unlimited" if self.n_max == UNLIMITED else self.n_max
        return out


def type_to_english(ctype: ColumnType) -> str:
    """A column type as Open vSwitch names it in error details ("set of 1 to 3 integers")."""
    key = ctype.key.type
    if ctype.is_scalar:
        return key
    out = "map" if ctype.value is not None else "set"
    if ctype.n_max == UNLIMITED:
        out += f" of {ctype.n_min} or more" if ctype.n_min else " of"
    elif ctype.n_min:
        out += f" of {ctype.n_min} to {ctype.n_max}"
    else:
        out += f" of up to {ctype.n_max}"
    if ctype.value is None:
        return f"{out} {key}s"
    return f"{out} ({key}, {ctype.value.type}) pairs"
