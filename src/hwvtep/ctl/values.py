"""Column values as vtep-ctl reads, prints and parses them, with no costly imports.

`hwvtep ctl` is started thousands of times by scripts, so this module avoids the core's
modules (they import orjson and dataclasses, which cost more than the whole command may).
It follows the core's value convention (see docs/core-contract.md): a *datum* is a tuple
in canonical order, ``(atom, ...)`` for sets and scalars, ``((key, value), ...)`` sorted by
key for maps, a UUID being its lowercase string.

What is here: a light schema model read from the ``get_schema`` reply (tables are parsed
only when a command names them), datums from/to RFC 7047 JSON, the text forms Open
vSwitch's ``ovsdb_datum_to_string``/``to_bare`` print, the command-line syntax its
``ovsdb_datum_from_string`` accepts (with its error wording), and the comparisons used by
``find`` and ``wait-until``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from typing import Any

    Datum = tuple[Any, ...]

INTEGER = "integer"
REAL = "real"
BOOLEAN = "boolean"
STRING = "string"
UUID = "uuid"

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DBL_MAX = 1.7976931348623157e308
UINT_MAX = 2**32 - 1
MAX_RANGE = 4096

_PARTIAL_TMPL = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
_HEX = frozenset("0123456789abcdefABCDEF")


class CtlError(Exception):
    """A failure reported as ``vtep-ctl: <message>`` with exit status 1."""


def is_uuid(s: str) -> bool:
    if len(s) != 36 or s[8] != "-" or s[13] != "-" or s[18] != "-" or s[23] != "-":
        return False
    return _HEX.issuperset(s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])


def partial_uuid_len(s: str) -> int:
    """Open vSwitch's uuid_is_partial_string(): length of a UUID prefix, else 0."""
    n = len(s)
    if n > 36:
        return 0
    for i, c in enumerate(s):
        if _PARTIAL_TMPL[i] == "x":
            if c not in _HEX:
                return 0
        elif c != "-":
            return 0
    return n


# --- schema -------------------------------------------------------------------------


class Base:
    """The type of a key or value with its constraints."""

    __slots__ = ("enum", "enum_sorted", "max_int", "max_len", "max_real", "min_int",
                 "min_len", "min_real", "ref_table", "ref_type", "type")

    def __init__(self, j: Any) -> None:
        self.enum: frozenset[Any] | None = None
        self.enum_sorted: tuple[Any, ...] = ()
        self.min_int = INT64_MIN
        self.max_int = INT64_MAX
        self.min_real = -DBL_MAX
        self.max_real = DBL_MAX
        self.min_len = 0
        self.max_len = UINT_MAX
        self.ref_table: str | None = None
        self.ref_type = "strong"
        if isinstance(j, str):
            self.type = j
            return
        t = self.type = j["type"]
        if "enum" in j:
            e = j["enum"]
            vals = e[1] if isinstance(e, list) and e and e[0] == "set" else [e]
            atoms = [_atom_from_json(t, v) for v in vals]
            self.enum = frozenset(atoms)
            self.enum_sorted = tuple(sorted(self.enum))
        if t == INTEGER:
            self.min_int = j.get("minInteger", INT64_MIN)
            self.max_int = j.get("maxInteger", INT64_MAX)
        elif t == REAL:
            self.min_real = float(j.get("minReal", -DBL_MAX))
            self.max_real = float(j.get("maxReal", DBL_MAX))
        elif t == STRING:
            self.min_len = j.get("minLength", 0)
            self.max_len = j.get("maxLength", UINT_MAX)
        elif t == UUID:
            self.ref_table = j.get("refTable")
            self.ref_type = j.get("refType", "strong")


class Type:
    """A column type: key, optional value, element count bounds."""

    __slots__ = ("key", "n_max", "n_min", "value")

    def __init__(self, key: Base, value: Base | None, n_min: int, n_max: int) -> None:
        self.key = key
        self.value = value
        self.n_min = n_min
        self.n_max = n_max

    @staticmethod
    def from_json(j: Any) -> Type:
        if isinstance(j, str):
            return Type(Base(j), None, 1, 1)
        n_max = j.get("max", 1)
        return Type(Base(j["key"]), Base(j["value"]) if "value" in j else None,
                    j.get("min", 1), UINT_MAX if n_max == "unlimited" else n_max)

    @property
    def is_map(self) -> bool:
        return self.value is not None

    def relaxed(self, n_min: int, n_max: int) -> Type:
        return Type(self.key, self.value, n_min, n_max)

    def to_english(self) -> str:
        """Open vSwitch's ovsdb_type_to_english()."""
        key = self.key.type
        if self.n_min == 1 and self.n_max == 1:
            if self.value is None:
                return key
            return f"map of ({key}, {self.value.type}) pairs"
        if self.n_max == UINT_MAX:
            quant = f"{self.n_min} or more " if self.n_min else ""
        elif self.n_min:
            quant = f"{self.n_min} to {self.n_max} "
        else:
            quant = f"up to {self.n_max} "
        if self.value is None:
            return f"set of {quant}{key}s"
        return f"map of {quant}({key}, {self.value.type}) pairs"


UUID_TYPE = Type(Base(UUID), None, 1, 1)


class Column:
    __slots__ = ("mutable", "name", "type")

    def __init__(self, name: str, j: dict[str, Any]) -> None:
        self.name = name
        self.type = Type.from_json(j["type"])
        ref = self.type.key.ref_type == "weak" or (
            self.type.value is not None and self.type.value.ref_type == "weak")
        self.mutable: bool = j.get("mutable", True) or ref


class Table:
    __slots__ = ("columns", "is_root", "is_singleton", "name", "sorted_columns")

    def __init__(self, name: str, j: dict[str, Any], all_root: bool) -> None:
        self.name = name
        self.columns = {c: Column(c, cj) for c, cj in j["columns"].items()}
        # The order vtep-ctl's generated IDL lists columns in: sorted by name.
        self.sorted_columns = tuple(self.columns[c] for c in sorted(self.columns))
        self.is_root: bool = all_root or j.get("isRoot", False)
        self.is_singleton = j.get("maxRows") == 1


class Schema:
    """A database schema whose tables are parsed on first use."""

    __slots__ = ("_all_root", "_tables", "name", "table_names", "tables_json", "version")

    def __init__(self, j: dict[str, Any]) -> None:
        self.name: str = j["name"]
        self.version: str = j.get("version", "")
        self.tables_json: dict[str, Any] = j["tables"]
        self.table_names = tuple(self.tables_json)
        self._all_root = not any(t.get("isRoot") for t in self.tables_json.values())
        self._tables: dict[str, Table] = {}

    def table(self, name: str) -> Table:
        t = self._tables.get(name)
        if t is None:
            t = self._tables[name] = Table(name, self.tables_json[name], self._all_root)
        return t


# --- JSON -----------------------------------------------------------------------------


def _atom_from_json(atype: str, j: Any) -> Any:
    if atype == UUID:
        return j[1]
    if atype == REAL:
        return float(j)
    return j


def datum_from_json(t: Type, j: Any) -> Datum:
    """A value received from the server (trusted) as a canonical datum."""
    kt = t.key.type
    if t.value is not None:
        vt = t.value.type
        pairs = [(_atom_from_json(kt, k), _atom_from_json(vt, v)) for k, v in j[1]]
        pairs.sort(key=_first)
        return tuple(pairs)
    if isinstance(j, list) and j[0] == "set":
        if kt == UUID:
            return tuple(sorted(a[1] for a in j[1]))
        if kt == REAL:
            return tuple(sorted(float(a) for a in j[1]))
        return tuple(sorted(j[1]))
    return (_atom_from_json(kt, j),)


def _first(p: tuple[Any, Any]) -> Any:
    return p[0]


def atom_to_json(atype: str, a: Any) -> Any:
    return ["uuid", a] if atype == UUID else a


def datum_to_json(t: Type, d: Datum) -> Any:
    kt = t.key.type
    if t.value is not None:
        vt = t.value.type
        return ["map", [[atom_to_json(kt, k), atom_to_json(vt, v)] for k, v in d]]
    if len(d) == 1:
        return atom_to_json(kt, d[0])
    return ["set", [atom_to_json(kt, a) for a in d]]


_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES.update({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r",
                 ord('"'): '\\"', ord("\\"): "\\\\"})


def json_string(s: str) -> str:
    """A JSON string literal as Open vSwitch writes it (non-ASCII kept as is)."""
    return '"' + s.translate(_ESCAPES) + '"'


def format_real(x: float) -> str:
    """C's ``%.15g``."""
    s = format(x, ".15g")
    if "e" in s:
        mant, _, exp = s.partition("e")
        sign = exp[0]
        digits = exp[1:].lstrip("0")
        s = f"{mant}e{sign}{digits.rjust(2, '0')}"
    return s


def json_dumps(j: Any, pretty: bool = False, depth: int = 0) -> str:
    """Open vSwitch's json_to_string() with JSSF_SORT (and JSSF_PRETTY if asked)."""
    if isinstance(j, str):
        return json_string(j)
    if j is True:
        return "true"
    if j is False:
        return "false"
    if j is None:
        return "null"
    if isinstance(j, int):
        return str(j)
    if isinstance(j, float):
        return format_real(j)
    if isinstance(j, list):
        if not j:
            return "[]"
        if not pretty:
            return "[" + ",".join([json_dumps(e) for e in j]) + "]"
        ind = "\n" + "  " * (depth + 1)
        return "[" + ind + ("," + ind).join(json_dumps(e, True, depth + 1) for e in j) + "]"
    if isinstance(j, dict):
        keys = sorted(j, key=lambda k: k.encode())
        if not pretty:
            return "{" + ",".join(f"{json_string(k)}:{json_dumps(j[k])}" for k in keys) + "}"
        ind = "\n" + "  " * (depth + 1)
        return "{" + ind + ("," + ind).join(
            f"{json_string(k)}: {json_dumps(j[k], True, depth + 1)}" for k in keys) + "}"
    raise TypeError(type(j))


# --- text forms -----------------------------------------------------------------------

_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_WORD_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _needs_quotes(s: str) -> bool:
    if not s or s[0] not in _WORD_START or not _WORD_CHARS.issuperset(s):
        return True
    return s == "true" or s == "false" or is_uuid(s)


def atom_to_string(atype: str, a: Any) -> str:
    if atype == STRING:
        if _needs_quotes(a):
            return json_string(a)
        return a  # type: ignore[no-any-return]
    if atype in (INTEGER, UUID):
        return str(a)
    if atype == BOOLEAN:
        return "true" if a else "false"
    return format_real(a)


def atom_to_bare(atype: str, a: Any) -> str:
    return a if atype == STRING else atom_to_string(atype, a)


def datum_to_string(t: Type, d: Datum) -> str:
    kt = t.key.type
    if t.value is not None:
        vt = t.value.type
        inner = ", ".join(f"{atom_to_string(kt, k)}={atom_to_string(vt, v)}" for k, v in d)
        return "{" + inner + "}"
    inner = ", ".join([atom_to_string(kt, a) for a in d])
    if t.n_max > 1 or not d:
        return "[" + inner + "]"
    return inner


def datum_to_bare(t: Type, d: Datum) -> str:
    kt = t.key.type
    if t.value is not None:
        vt = t.value.type
        return " ".join(f"{atom_to_bare(kt, k)}={atom_to_bare(vt, v)}" for k, v in d)
    return " ".join([atom_to_bare(kt, a) for a in d])


def default_atom(atype: str) -> Any:
    return {INTEGER: 0, REAL: 0.0, BOOLEAN: False, STRING: "",
            UUID: "00000000-0000-0000-0000-000000000000"}[atype]


def default_datum(t: Type) -> Datum:
    if t.n_min == 0:
        return ()
    if t.value is not None:
        return ((default_atom(t.key.type), default_atom(t.value.type)),)
    return (default_atom(t.key.type),)


# --- parsing command-line values ------------------------------------------------------

_DELIMS = frozenset(":=, []{}!<>")
_CSPACE = " \t\n\v\f\r"
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(name: str) -> re.Pattern[str]:
    """Compiled on first use: `re` costs start-up time that most commands never need."""
    p = _PATTERNS.get(name)
    if p is None:
        import re

        p = _PATTERNS[name] = re.compile({
            "llong": r"[ \t\n\v\f\r]*([+-]?[0-9]+)",
            "real": r"[ \t\n\v\f\r]*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
                    r"|(?i:inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?))\Z",
        }[name])
    return p


def is_delim(c: str) -> bool:
    return c in _DELIMS


def token_parse(s: str, pos: int) -> tuple[str, int]:
    """Open vSwitch's ovsdb_token_parse() on ``s[pos:]``: (token, position after it)."""
    out: list[str] = []
    in_quotes = False
    n = len(s)
    p = pos
    while p < n:
        c = s[p]
        p += 1
        if c == "\\":
            if in_quotes:
                out.append("\\")
            if p >= n:
                raise CtlError(f"{s[pos:]}: backslash at end of argument")
            out.append(s[p])
            p += 1
        elif not in_quotes and c in _DELIMS:
            p -= 1
            break
        else:
            out.append(c)
            if c == '"':
                in_quotes = not in_quotes
    if in_quotes:
        raise CtlError(f"{s[pos:]}: quoted string extends past end of argument")
    return "".join(out), p


def _strtoll(s: str) -> tuple[int, str] | None:
    """strtoll(s, &tail, 10): (value, tail), or None when nothing was parsed or overflow."""
    m = _pattern("llong").match(s)
    if m is None:
        return None
    v = int(m.group(1))
    if not INT64_MIN <= v <= INT64_MAX:
        return None
    return v, s[m.end():]


def str_to_llong(s: str) -> int | None:
    r = _strtoll(s)
    if r is None or r[1]:
        return None
    return r[0]


def str_to_double(s: str) -> float | None:
    if _pattern("real").match(s) is None:
        return None
    t = s.strip(_CSPACE)
    low = t.lower().lstrip("+-")
    try:
        if low.startswith("0x"):
            v = float.fromhex(t)
        elif low.startswith("nan"):
            v = float("-nan" if t.startswith("-") else "nan")
        else:
            v = float(t)
    except (ValueError, OverflowError):
        return None
    if v in (float("inf"), float("-inf")) and "inf" not in low:
        return None
    return v


def unescape_json_string(body: str) -> str:
    """json_string_unescape(): the text between quotes; raises CtlError(message)."""
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == '"':
            raise CtlError('quoted string may not include unescaped "')
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= n:
            raise CtlError("quoted string may not end with backslash")
        e = body[i]
        i += 1
        if e in '"\\/':
            out.append(e)
        elif e in "bfnrt":
            out.append({"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}[e])
        elif e == "u":
            c0, i = _hex4(body, i)
            if 0xD800 <= c0 < 0xDC00:
                if body[i:i + 2] != "\\u":
                    raise CtlError("malformed escaped surrogate pair")
                c1, i = _hex4(body, i + 2)
                if not 0xDC00 <= c1 < 0xE000:
                    raise CtlError(
                        "second half of escaped surrogate pair is not trailing surrogate")
                c0 = 0x10000 + ((c0 - 0xD800) << 10) + (c1 - 0xDC00)
            out.append(chr(c0))
        else:
            raise CtlError(f"bad escape \\{e}")
    return "".join(out)


def _hex4(s: str, i: int) -> tuple[int, int]:
    h = s[i:i + 4]
    if len(h) < 4:
        raise CtlError("quoted string ends within \\u escape")
    if not all(c in _HEX for c in h):
        raise CtlError("malformed \\u escape")
    v = int(h, 16)
    if not v:
        raise CtlError("null bytes not supported in quoted strings")
    return v, i + 4


class Symbol:
    """A ``@name`` row id of one run: its UUID and how it was used."""

    __slots__ = ("created", "strong_ref", "uuid", "weak_ref")

    def __init__(self, uuid: str) -> None:
        self.uuid = uuid
        self.created = False
        self.strong_ref = False
        self.weak_ref = False


class SymbolTable:
    __slots__ = ("symbols",)

    def __init__(self) -> None:
        self.symbols: dict[str, Symbol] = {}

    def get(self, name: str) -> Symbol | None:
        return self.symbols.get(name)

    def insert(self, name: str) -> Symbol:
        sym = self.symbols.get(name)
        if sym is None:
            sym = self.symbols[name] = Symbol(new_uuid())
        return sym


def new_uuid() -> str:
    from os import urandom

    h = bytearray(urandom(16))
    h[6] = (h[6] & 0x0F) | 0x40
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def check_constraints(base: Base, a: Any) -> None:
    """ovsdb_atom_check_constraints(), raising CtlError with its text."""
    if base.enum is not None and a not in base.enum:
        valid = ", ".join(atom_to_string(base.type, e) for e in base.enum_sorted)
        raise CtlError("constraint violation: "
                       f"{atom_to_string(base.type, a)} is not one of the allowed values "
                       f"([{valid}])")
    t = base.type
    if t == INTEGER:
        lo, hi = base.min_int, base.max_int
        if lo <= a <= hi:
            return
        if lo != INT64_MIN:
            if hi != INT64_MAX:
                raise CtlError(f"constraint violation: {a} is not in the valid range "
                               f"{lo} to {hi} (inclusive)")
            raise CtlError(f"constraint violation: {a} is less than minimum allowed value {lo}")
        raise CtlError(f"constraint violation: {a} is greater than maximum allowed value {hi}")
    if t == REAL:
        rlo, rhi = base.min_real, base.max_real
        if rlo <= a <= rhi:
            return
        fa, flo, fhi = format_real(a), format_real(rlo), format_real(rhi)
        if rlo != -DBL_MAX:
            if rhi != DBL_MAX:
                raise CtlError(f"constraint violation: {fa} is not in the valid range "
                               f"{flo} to {fhi} (inclusive)")
            raise CtlError(f"constraint violation: {fa} is less than minimum allowed value {flo}")
        raise CtlError(f"constraint violation: {fa} is greater than maximum allowed value {fhi}")
    if t == STRING and (base.min_len or base.max_len != UINT_MAX):
        n = len(a)
        if n < base.min_len:
            raise CtlError(f'constraint violation: "{a}" length {n} is less than minimum '
                           f"allowed length {base.min_len}")
        if n > base.max_len:
            raise CtlError(f'constraint violation: "{a}" length {n} is greater than maximum '
                           f"allowed length {base.max_len}")


def atom_from_string(base: Base, s: str, symtab: SymbolTable | None,
                     want_range: bool = False) -> tuple[Any, Any]:
    """ovsdb_atom_from_string(): (atom, range end or None)."""
    t = base.type
    end: Any = None
    if t == INTEGER:
        v: Any = None
        if want_range:
            r = _strtoll(s)
            if r is not None and r[1].startswith("-"):
                e = str_to_llong(r[1][1:])
                if e is not None:
                    v, end = r[0], e
                    if end < v:
                        raise CtlError(
                            f'"{s}" is not a valid range. Range end cannot be before start.')
        if v is None:
            v = str_to_llong(s)
            if v is None:
                raise CtlError(f'"{s}" is not a valid integer or range')
    elif t == REAL:
        v = str_to_double(s)
        if v is None:
            raise CtlError(f'"{s}" is not a valid real number')
        if v == 0.0:
            v = 0.0
    elif t == BOOLEAN:
        if s in ("true", "yes", "on", "1"):
            v = True
        elif s in ("false", "no", "off", "0"):
            v = False
        else:
            raise CtlError(f'"{s}" is not a valid boolean (use "true" or "false")')
    elif t == STRING:
        if not s:
            raise CtlError("An empty string is not valid as input; "
                           'use "" to represent the empty string')
        if s[0] == '"':
            if len(s) < 2 or s[-1] != '"':
                raise CtlError(f"{s}: missing quote at end of quoted string")
            try:
                v = unescape_json_string(s[1:-1])
            except CtlError as e:
                raise CtlError(f"{s}: {e}") from None
        else:
            v = s
    else:
        if s.startswith("@") and symtab is not None:
            sym = symtab.insert(s)
            v = sym.uuid
            if base.ref_table is not None:
                if base.ref_type == "strong":
                    sym.strong_ref = True
                else:
                    sym.weak_ref = True
        elif is_uuid(s):
            v = s.lower()
        else:
            raise CtlError(f'"{s}" is not a valid UUID')
    check_constraints(base, v)
    if end is not None:
        if base.enum is not None:
            for i in range(v + 1, end + 1):
                check_constraints(base, i)
        else:
            check_constraints(base, end)
        if end - v >= MAX_RANGE:
            raise CtlError(f'constraint violation: Range "{v}-{end}" is too big. '
                           f"Maximum allowed size is {MAX_RANGE}.")
    return v, end


def _parse_atom_token(s: str, pos: int, base: Base, symtab: SymbolTable | None,
                      want_range: bool) -> tuple[Any, Any, int]:
    tok, pos = token_parse(s, pos)
    a, end = atom_from_string(base, tok, symtab, want_range)
    return a, end, pos


def _skip_spaces(s: str, p: int) -> int:
    n = len(s)
    while p < n and s[p] in _CSPACE:
        p += 1
    return p


def datum_from_string(t: Type, s: str, symtab: SymbolTable | None) -> Datum:
    """ovsdb_datum_from_string(): the value syntax of set/add/remove/find/create."""
    is_map = t.value is not None
    p = _skip_spaces(s, 0)
    n = len(s)
    if p < n and s[p] == ("{" if is_map else "["):
        end_delim = "}" if is_map else "]"
        p = _skip_spaces(s, p + 1)
    elif p >= n:
        raise CtlError('use "{}" to specify the empty map' if is_map
                       else 'use "[]" to specify the empty set')
    else:
        end_delim = ""
    keys: list[Any] = []
    values: list[Any] = []
    while p < n and s[p] != end_delim:
        if s[p] in _DELIMS:
            raise CtlError(f'{s}: unexpected "{s[p]}" parsing {t.to_english()}')
        start = p
        k, rng, p = _parse_atom_token(s, p, t.key, symtab, True)
        if t.value is not None:
            p = _skip_spaces(s, p)
            if p < n and s[p] == "=":
                p = _skip_spaces(s, p + 1)
                v, _, p = _parse_atom_token(s, p, t.value, symtab, False)
            elif p < n:
                raise CtlError(f'{s[start:]}: syntax error at "{s[p]}" expecting "="')
            else:
                # C's "%c" of the terminating NUL cuts Open vSwitch's message there.
                raise CtlError(f'{s[start:]}: syntax error at "')
            keys.append(k)
            values.append(v)
        elif rng is not None:
            keys.extend(range(k, rng + 1))
        else:
            keys.append(k)
        p = _skip_spaces(s, p)
        if p < n and s[p] == ",":
            p = _skip_spaces(s, p + 1)
    if (s[p] if p < n else "") != end_delim:
        raise CtlError(f'{s}: missing "{end_delim}" at end of data')
    if end_delim:
        p = _skip_spaces(s, p + 1)
        if p < n:
            raise CtlError(f'{s}: trailing garbage after "{end_delim}"')
    count = len(keys)
    if count < t.n_min:
        raise CtlError(f"{s}: {count} {'pair(s)' if is_map else 'value(s)'} specified but "
                       f"the minimum number is {t.n_min}")
    if count > t.n_max:
        raise CtlError(f"{s}: {count} {'pair(s)' if is_map else 'value(s)'} specified but "
                       f"the maximum number is {t.n_max}")
    if is_map:
        pairs = sorted(zip(keys, values, strict=True), key=_first)
        for i in range(1, len(pairs)):
            if pairs[i][0] == pairs[i - 1][0]:
                raise CtlError(f"{s}: map contains duplicate key")
        return tuple(pairs)
    keys.sort()
    for i in range(1, len(keys)):
        if keys[i] == keys[i - 1]:
            raise CtlError(f"{s}: set contains duplicate value")
    return tuple(keys)


# --- operations on datums -------------------------------------------------------------


def datum_keys(t: Type, d: Datum) -> list[Any]:
    return [k for k, _ in d] if t.value is not None else list(d)


def compare_3way(t: Type, a: Datum, b: Datum) -> int:
    """ovsdb_datum_compare_3way(): size first, then all keys, then all values."""
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    if t.value is not None:
        ka, kb = [k for k, _ in a], [k for k, _ in b]
        if ka != kb:
            return -1 if ka < kb else 1
        va, vb = [v for _, v in a], [v for _, v in b]
        if va != vb:
            return -1 if va < vb else 1
        return 0
    if a != b:
        return -1 if a < b else 1
    return 0


def includes_all(t: Type, a: Datum, b: Datum) -> bool:
    """Every element of *a* is in *b* (for a map: the same key with the same value)."""
    if len(a) > len(b):
        return False
    if t.value is not None:
        db = dict(b)
        return all(k in db and db[k] == v for k, v in a)
    sb = set(b)
    return all(x in sb for x in a)


def excludes_all(t: Type, a: Datum, b: Datum) -> bool:
    if t.value is not None:
        db = dict(b)
        return not any(k in db and db[k] == v for k, v in a)
    sb = set(b)
    return not any(x in sb for x in a)


def union(t: Type, a: Datum, b: Datum) -> Datum:
    """ovsdb_datum_union(): *a* plus the elements of *b* whose keys *a* lacks."""
    if t.value is not None:
        da = dict(a)
        for k, v in b:
            if k not in da:
                da[k] = v
        return tuple(sorted(da.items(), key=_first))
    return tuple(sorted(set(a).union(b)))


def subtract(t: Type, a: Datum, b: Datum, keys_only: bool) -> Datum:
    """ovsdb_datum_subtract(): remove from *a* the elements (or keys) in *b*."""
    if t.value is not None:
        if keys_only:
            kb = set(b)
            return tuple(p for p in a if p[0] not in kb)
        pb = set(b)
        return tuple(p for p in a if p not in pb)
    sb = set(b)
    return tuple(x for x in a if x not in sb)
