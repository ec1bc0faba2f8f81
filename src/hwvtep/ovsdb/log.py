"""Open vSwitch's standalone database file format, without touching a file.

A standalone OVSDB file is a sequence of records. Each is a header line
``OVSDB JSON <length> <sha1>\\n`` followed by ``<length>`` bytes of JSON text (its newline
included) whose SHA-1, in hex, is ``<sha1>``. The first record is the schema; every later
one is a committed transaction (or, after compaction, one record holding every row).

This module frames and scans records, converts between a committed
:data:`Changes` and a transaction record, builds the snapshot a compaction writes, and
reproduces the parts of Open vSwitch's behaviour that users see: the wording of its read
errors, its JSON parser's error messages and number rules, its JSON output (reals as
``%.15g``), and the order in which it walks JSON objects (``ovsdb-tool show-log`` prints in
that order). File handles live in :mod:`hwvtep.server.storage`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from hwvtep.ovsdb import ovshash
from hwvtep.ovsdb.data import (
    Datum,
    datum_apply_diff,
    datum_diff,
    datum_from_json,
    datum_from_json_unchecked,
    datum_to_json,
    default_datum,
)
from hwvtep.ovsdb.database import Changes, Row
from hwvtep.ovsdb.errors import NO_SYNTAX, OvsdbError
from hwvtep.ovsdb.schema import DatabaseSchema, TableSchema
from hwvtep.ovsdb.types import (
    BOOLEAN,
    INT64_MAX,
    INT64_MIN,
    INTEGER,
    STRING,
    UUID,
    UUID_RE,
    ColumnType,
    format_real,
)

OVSDB_MAGIC = "JSON"
RAFT_MAGIC = "CLUSTER"

# OVS reads a header line with fgets() into a 128-byte buffer.
_HEADER_MAX = 127
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ULONG_MAX = 2**64 - 1


# ---------------------------------------------------------------------------
# Errors, worded as Open vSwitch words them.


class LogError(OvsdbError):
    """A record (or a file) that cannot be read.

    ``offset`` is where the bad record starts: the next write truncates the file there.
    ``io_error`` is the strerror()-style text OVS appends in parentheses.
    """

    __slots__ = ("io_error", "offset")

    def __init__(self, tag: str, details: str, *, offset: int = 0,
                 io_error: str | None = None, syntax: Any = NO_SYNTAX) -> None:
        super().__init__(tag, details, syntax)
        self.offset = offset
        self.io_error = io_error

    def __str__(self) -> str:
        return error_to_string(self, self.io_error)


def error_to_string(error: OvsdbError, io_error: str | None = None) -> str:
    """OVS's ovsdb_error_to_string(): ``[syntax "<json>": ]tag[: details][ (errno)]``."""
    out = ""
    if error.has_syntax:
        out = f'syntax "{ovs_json_dumps(error.syntax)}": '
    out += error.tag
    if error.details is not None:
        out += f": {error.details}"
    if io_error is None and isinstance(error, LogError):
        io_error = error.io_error
    if io_error is not None:
        out += f" ({io_error})"
    return out


# ---------------------------------------------------------------------------
# JSON text as Open vSwitch reads and writes it.


class OvsJsonError(ValueError):
    """Text OVS's JSON parser rejects; the message is OVS's ("line L, column C, ...")."""


def ovs_json_loads(text: bytes | str) -> Any:
    """Parse one JSON object or array the way OVS's parser does.

    orjson does the work when OVS would agree with it; anything else (errors, a bare
    scalar, ``\\u0000``, numbers outside 64 bits) goes through a faithful slow path that
    gives OVS's value or OVS's error message. Integral reals are *not* turned into
    integers here (see :func:`ovs_normalize_numbers`).
    """
    data = text.encode() if isinstance(text, str) else text
    if b"\\u0000" not in data:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(value, dict | list):
                return value
    return _OvsParser(data).parse()


def ovs_normalize_numbers(value: Any) -> Any:
    """Turn reals that OVS's parser would have read as integers into ints (1.0 -> 1)."""
    if isinstance(value, float):
        if value.is_integer() and -(2**63) <= value < 2**63:
            return int(value)
        return value
    if isinstance(value, list):
        return [ovs_normalize_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: ovs_normalize_numbers(v) for k, v in value.items()}
    return value


def _with_real_fragments(value: Any) -> Any:
    if isinstance(value, float):
        return orjson.Fragment(format_real(value))
    if isinstance(value, list):
        return [_with_real_fragments(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_real_fragments(v) for k, v in value.items()}
    return value


def _has_real(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return any(_has_real(v) for v in value)
    if isinstance(value, dict):
        return any(_has_real(v) for v in value.values())
    return False


def ovs_json_dumps(value: Any, *, sort_keys: bool = True, reals: bool | None = None) -> str:
    """Compact JSON as OVS's json_to_string(json, JSSF_SORT) writes it.

    *reals* says whether *value* may hold floats (None: look); OVS prints them ``%.15g``.
    """
    if reals is None:
        reals = _has_real(value)
    if reals:
        value = _with_real_fragments(value)
    option = orjson.OPT_SORT_KEYS if sort_keys else 0
    return orjson.dumps(value, option=option).decode()


_LEX_START, _LEX_KEYWORD, _LEX_NUMBER, _LEX_STRING, _LEX_ESCAPE = range(5)
(_P_START, _P_END, _P_OBJ_INIT, _P_OBJ_NAME, _P_OBJ_COLON, _P_OBJ_VALUE, _P_OBJ_NEXT,
 _P_ARR_INIT, _P_ARR_VALUE, _P_ARR_NEXT) = range(10)
_MAX_HEIGHT = 1000
_T_VALUE = "value"  # a scalar token; the other tokens are their punctuation character
_NUMBER_CHARS = frozenset(b".0123456789eE-+")
_KEYWORDS: dict[bytes, Any] = {b"false": False, b"true": True, b"null": None}



class _Stop(Exception):
    pass


class _OvsParser:
    """The slow path of :func:`ovs_json_loads`: OVS's lexer and parser, state for state,
    so that values, error positions and messages come out as OVS has them."""

    def __init__(self, data: bytes) -> None:
        # OVS parses C strings: a NUL byte ends the input.
        nul = data.find(b"\0")
        self.data = data if nul < 0 else data[:nul]
        self.line = self.column = self.byte = 0
        self.lex = _LEX_START
        self.pending = b""  # text of a token that started in an earlier chunk
        self.state = _P_START
        self.stack: list[Any] = []
        self.names: list[str] = []
        self.error: str | None = None
        self.result: Any = None

    def fail(self, msg: str) -> None:
        if self.error is None:
            self.error = f"line {self.line}, column {self.column}, byte {self.byte}: {msg}"
        raise _Stop

    def parse(self) -> Any:
        try:
            self.feed(self.data)
            if self.lex in (_LEX_STRING, _LEX_ESCAPE):
                self.fail("unexpected end of input in quoted string")
            if self.lex in (_LEX_NUMBER, _LEX_KEYWORD):
                self.feed(b" ")
            if self.state == _P_START:
                self.fail("empty input stream")
            if self.state != _P_END:
                self.fail("unexpected end of input")
        except _Stop:
            assert self.error is not None
            raise OvsJsonError(self.error) from None
        return self.result

    def feed(self, data: bytes) -> None:
        i = 0
        n = len(data)
        start = 0
        while i < n:
            c = data[i]
            consumed = True
            lex = self.lex
            if lex == _LEX_START:
                if c in b" \t\n\r":
                    pass
                elif 0x61 <= c <= 0x7A:
                    self.lex = _LEX_KEYWORD
                    start = i
                elif c in b"[{]}:,":
                    self.token(chr(c), None)
                elif c == 0x2D or 0x30 <= c <= 0x39:
                    self.lex = _LEX_NUMBER
                    start = i
                elif c == 0x22:
                    self.lex = _LEX_STRING
                    start = i + 1
                elif 0x20 <= c < 0x7F:
                    self.fail(f"invalid character '{chr(c)}'")
                else:
                    self.fail(f"invalid character U+{c:04x}")
            elif lex == _LEX_KEYWORD:
                if not (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A):
                    self.keyword(self.pending + data[start:i])
                    consumed = False
            elif lex == _LEX_NUMBER:
                if c not in _NUMBER_CHARS:
                    self.number(self.pending + data[start:i])
                    consumed = False
            elif lex == _LEX_STRING:
                if c == 0x5C:
                    self.lex = _LEX_ESCAPE
                elif c == 0x22:
                    self.string(self.pending + data[start:i])
                elif c < 0x20:
                    self.fail(f"U+{c:04X} must be escaped in quoted string")
            else:
                self.lex = _LEX_STRING
            if consumed:
                self.byte += 1
                if c == 0x0A:
                    self.column = 0
                    self.line += 1
                else:
                    self.column += 1
                i += 1
        self.pending = self.pending + data[start:] if self.lex != _LEX_START else b""

    def keyword(self, word: bytes) -> None:
        if word not in _KEYWORDS:
            self.fail(f"invalid keyword '{word.decode(errors='replace')}'")
        self.token(_T_VALUE, _KEYWORDS[word])

    def number(self, text: bytes) -> None:
        s = text.decode()
        n = len(s)
        negative = s.startswith("-")
        i = 1 if negative else 0
        significand = 0
        pow10 = 0
        imprecise = False
        ull_max = _ULONG_MAX
        int_max = 2**31 - 1
        if i < n and s[i] == "0":
            i += 1
            if i < n and s[i].isdigit():
                self.fail("leading zeros not allowed")
        elif i < n and s[i].isdigit():
            while i < n and s[i].isdigit():
                if significand <= ull_max // 10:
                    significand = significand * 10 + int(s[i])
                else:
                    pow10 += 1
                    if s[i] != "0":
                        imprecise = True
                i += 1
        else:
            self.fail("'-' must be followed by digit")
        if i < n and s[i] == ".":
            i += 1
            if not (i < n and s[i].isdigit()):
                self.fail("decimal point must be followed by digit")
            while i < n and s[i].isdigit():
                if significand <= ull_max // 10:
                    significand = significand * 10 + int(s[i])
                    pow10 -= 1
                elif s[i] != "0":
                    imprecise = True
                i += 1
        if i < n and s[i] in "eE":
            i += 1
            negative_exp = False
            if i < n and s[i] in "+-":
                negative_exp = s[i] == "-"
                i += 1
            if not (i < n and s[i].isdigit()):
                self.fail("exponent must contain at least one digit")
            exponent = 0
            while i < n and s[i].isdigit():
                if exponent >= int_max // 10:
                    self.fail("exponent outside valid range")
                exponent = exponent * 10 + int(s[i])
                i += 1
            if negative_exp:
                if pow10 < -(2**31) + exponent:
                    self.fail("exponent outside valid range")
                pow10 -= exponent
            else:
                if pow10 > int_max - exponent:
                    self.fail("exponent outside valid range")
                pow10 += exponent
        if i != n:
            self.fail("syntax error in number")
        if not significand:
            self.token(_T_VALUE, 0)
            return
        if not imprecise:
            while pow10 > 0 and significand < ull_max // 10:
                significand *= 10
                pow10 -= 1
            while pow10 < 0 and significand % 10 == 0:
                significand //= 10
                pow10 += 1
            if pow10 == 0 and significand <= (2**63 if negative else 2**63 - 1):
                self.token(_T_VALUE, -significand if negative else significand)
                return
        real = float(s)
        if math.isinf(real):
            self.fail("number outside valid range")
        self.token(_T_VALUE, real if real != 0 else 0.0)

    def string(self, raw: bytes) -> None:
        if b"\\" not in raw:
            self.token(_T_VALUE, raw.decode(errors="replace"))
            return
        out = bytearray()
        i = 0
        n = len(raw)
        while i < n:
            c = raw[i]
            if c != 0x5C:
                out.append(c)
                i += 1
                continue
            e = raw[i + 1]
            i += 2
            if e in b'"\\/':
                out.append(e)
            elif e in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[e]
            elif e == 0x75:
                c0, i = self._hex4(raw, i)
                if 0xD800 <= c0 <= 0xDBFF:
                    if i + 2 > n or raw[i] != 0x5C or raw[i + 1] != 0x75:
                        self.fail("malformed escaped surrogate pair")
                    c1, i = self._hex4(raw, i + 2)
                    if not 0xDC00 <= c1 <= 0xDFFF:
                        self.fail("second half of escaped surrogate pair is not trailing "
                                  "surrogate")
                    c0 = 0x10000 + ((c0 - 0xD800) << 10) + (c1 - 0xDC00)
                out += chr(c0).encode(errors="surrogatepass")
            else:
                self.fail(f"bad escape \\{chr(e)}")
        self.token(_T_VALUE, out.decode(errors="replace"))

    def _hex4(self, raw: bytes, i: int) -> tuple[int, int]:
        if i + 4 > len(raw):
            self.fail("quoted string ends within \\u escape")
        digits = raw[i:i + 4]
        if not all(d in _HEX for d in digits):
            self.fail("malformed \\u escape")
        value = int(digits, 16)
        if not value:
            self.fail("null bytes not supported in quoted strings")
        return value, i + 4

    def push(self, container: Any, state: int) -> None:
        if len(self.stack) >= _MAX_HEIGHT:
            self.fail(f"input exceeds maximum nesting depth {_MAX_HEIGHT}")
        if self.stack:
            self.put(container)
        else:
            self.result = container
        self.stack.append(container)
        self.state = state

    def put(self, value: Any) -> None:
        top = self.stack[-1]
        if isinstance(top, dict):
            top[self.names.pop()] = value
        else:
            top.append(value)

    def pop(self) -> None:
        self.stack.pop()
        if not self.stack:
            self.state = _P_END
        else:
            self.state = _P_OBJ_NEXT if isinstance(self.stack[-1], dict) else _P_ARR_NEXT

    def value(self, kind: str, value: Any, next_state: int) -> None:
        if kind == "{":
            self.push({}, _P_OBJ_INIT)
        elif kind == "[":
            self.push([], _P_ARR_INIT)
        elif kind == _T_VALUE:
            self.put(value)
            self.state = next_state
        else:
            self.fail("syntax error expecting value")

    def token(self, kind: str, value: Any) -> None:
        st = self.state
        if st == _P_START:
            if kind == "{":
                self.push({}, _P_OBJ_INIT)
            elif kind == "[":
                self.push([], _P_ARR_INIT)
            else:
                self.fail("syntax error at beginning of input")
        elif st == _P_END:
            self.fail("trailing garbage at end of input")
        elif st in (_P_OBJ_INIT, _P_OBJ_NAME):
            if st == _P_OBJ_INIT and kind == "}":
                self.pop()
            elif kind == _T_VALUE and isinstance(value, str):
                self.names.append(value)
                self.state = _P_OBJ_COLON
            else:
                self.fail("syntax error parsing object expecting string")
        elif st == _P_OBJ_COLON:
            if kind == ":":
                self.state = _P_OBJ_VALUE
            else:
                self.fail("syntax error parsing object expecting ':'")
        elif st == _P_OBJ_VALUE:
            self.value(kind, value, _P_OBJ_NEXT)
        elif st == _P_OBJ_NEXT:
            if kind == ",":
                self.state = _P_OBJ_NAME
            elif kind == "}":
                self.pop()
            else:
                self.fail("syntax error expecting '}' or ','")
        elif st in (_P_ARR_INIT, _P_ARR_VALUE):
            if st == _P_ARR_INIT and kind == "]":
                self.pop()
            else:
                self.value(kind, value, _P_ARR_NEXT)
        else:
            if kind == ",":
                self.state = _P_ARR_VALUE
            elif kind == "]":
                self.pop()
            else:
                self.fail("syntax error expecting ']' or ','")
        self.lex = _LEX_START


_SIMPLE_ESCAPES = {0x62: b"\b", 0x66: b"\f", 0x6E: b"\n", 0x72: b"\r", 0x74: b"\t"}


# ---------------------------------------------------------------------------
# The order in which OVS walks a JSON object (a hash table keyed by member name).


def shash_order(keys: Iterable[str]) -> list[str]:
    """The order OVS iterates a JSON object whose members were parsed in *keys* order.

    OVS keeps members in a chained hash table (new nodes at the head of a bucket, the
    table doubling as it fills); iteration walks buckets in order.
    """
    return ovshash.shash_order(dict.fromkeys(keys))


# ---------------------------------------------------------------------------
# Record framing.


def compose_record(value: Any, magic: str = OVSDB_MAGIC) -> bytes:
    """One record, header and data, ready to append to a file."""
    data = orjson.dumps(value) + b"\n"
    digest = hashlib.sha1(data).hexdigest()
    return b"OVSDB %s %d %s\n%s" % (magic.encode(), len(data), digest.encode(), data)


@dataclass(frozen=True, slots=True)
class Header:
    magic: str
    length: int
    sha1: str  # lowercase hex


def parse_header(line: bytes) -> tuple[Header | None, str]:
    """Parse a header line (newline included, as fgets() gives it).

    Returns the header, or None and the text OVS quotes in its "parse error" message
    (OVS cuts the line where its parser wrote a NUL: after the magic word).
    """
    shown = line.split(b"\n", 1)[0].decode(errors="replace")
    if not line.startswith(b"OVSDB "):
        return None, shown
    rest = line[6:]
    sp = rest.find(b" ")
    if sp < 0:
        return None, shown
    magic = rest[:sp].decode(errors="replace")
    shown = "OVSDB " + magic.split("\n", 1)[0]
    p = sp + 1
    # strtoul(): leading white space, an optional sign, decimal digits.
    while p < len(rest) and rest[p] in b" \t\n\v\f\r":
        p += 1
    sign = 1
    if p < len(rest) and rest[p] in b"+-":
        sign = -1 if rest[p] == 0x2D else 1
        p += 1
    q = p
    while q < len(rest) and 0x30 <= rest[q] <= 0x39:
        q += 1
    if q == p:
        return None, shown
    length = int(rest[p:q])
    length = _ULONG_MAX if length > _ULONG_MAX else (length * sign) % (_ULONG_MAX + 1)
    if length in (0, _ULONG_MAX) or rest[q:q + 1] != b" ":
        return None, shown
    q += 1
    digest = rest[q:q + 40]
    if len(digest) != 40 or not all(c in _HEX for c in digest):
        return None, shown
    if rest[q + 40:q + 41] != b"\n":
        return None, shown
    return Header(magic, length, digest.decode().lower()), shown


def _header_line(data: bytes, offset: int) -> bytes:
    nl = data.find(b"\n", offset, offset + _HEADER_MAX)
    end = offset + _HEADER_MAX if nl < 0 else nl + 1
    return data[offset:end]


def file_magic(data: bytes, name: str, accept: tuple[str, ...] = (OVSDB_MAGIC,)) -> str:
    """What kind of log *data* is, checked as OVS checks a file it opens.

    Raises :class:`LogError` ("unexpected file format", "cannot identify file type").
    """
    if not data:
        if len(accept) > 1:
            raise LogError("ovsdb error", f"{name}: cannot identify file type")
        return accept[0]
    header, _ = parse_header(_header_line(data, 0))
    if header is None:
        raise LogError("ovsdb error", f"{name}: unexpected file format")
    if header.magic not in accept:
        raise LogError("ovsdb error", f"{name}: cannot identify file type")
    return header.magic


@dataclass(frozen=True, slots=True)
class Record:
    offset: int  # of the header line
    end: int  # just past the data
    json: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Scan:
    """The good records of a log, where they end, and why reading stopped (None: EOF)."""

    records: list[Record]
    end: int
    error: LogError | None


def read_record(data: bytes, offset: int, name: str,
                magic: str = OVSDB_MAGIC) -> Record | LogError | None:
    """The record at *offset*: a Record, the LogError OVS reports for it, or None at EOF."""
    if offset >= len(data):
        return None
    line = _header_line(data, offset)
    header, shown = parse_header(line)
    if header is None or header.magic != magic:
        return LogError(
            "syntax error",
            f'{name}: parse error at offset {offset} in header line "{shown}"',
            offset=offset)
    start = offset + len(line)
    length = header.length
    end = start + length
    if end > len(data):
        return LogError(
            "I/O error",
            f"{name}: error reading {length} bytes starting at offset {start}",
            offset=offset, io_error="End of file")
    body = data[start:end]
    actual = hashlib.sha1(body).hexdigest()
    if actual != header.sha1:
        return LogError(
            "syntax error",
            f"{name}: {length} bytes starting at offset {start} have SHA-1 hash {actual} "
            f"but should have hash {header.sha1}",
            offset=offset)
    try:
        value = ovs_json_loads(body)
    except OvsJsonError as e:
        return LogError(
            "syntax error",
            f"{name}: {length} bytes starting at offset {start} are not valid JSON ({e})",
            offset=offset)
    if not isinstance(value, dict):
        return LogError(
            "syntax error",
            f"{name}: {length} bytes starting at offset {start} are not a JSON object",
            offset=offset)
    return Record(offset, end, value)


def scan_records(data: bytes, name: str, *, magic: str = OVSDB_MAGIC,
                 start: int = 0) -> Scan:
    """Every good record from *start*, stopping at the first bad one as OVS does."""
    records: list[Record] = []
    offset = start
    while True:
        r = read_record(data, offset, name, magic)
        if r is None:
            return Scan(records, offset, None)
        if isinstance(r, LogError):
            return Scan(records, offset, r)
        records.append(r)
        offset = r.end


# ---------------------------------------------------------------------------
# The schema record.


def persistent_columns(schema: DatabaseSchema, table: TableSchema) -> list[str]:
    """User columns OVS writes to the log.

    Ephemeral columns are not written, except (as OVS forces) a strong reference to a
    non-root table: dropping it on restart would let garbage collection delete rows.
    """
    out = []
    for col in table.user_columns:
        if not col.ephemeral or _forced_persistent(schema, col.type):
            out.append(col.name)
    return out


def _forced_persistent(schema: DatabaseSchema, ctype: ColumnType) -> bool:
    for base in (ctype.key, ctype.value):
        if base is not None and base.is_strong_ref and base.ref_table in schema.tables \
                and not schema.tables[base.ref_table].is_root:
            return True
    return False


def schema_to_json(schema: DatabaseSchema, *, has_version: bool = True) -> dict[str, Any]:
    """The schema as OVS writes it in a database file (and compares it).

    *has_version* False: the schema text had no "version" (OVS then writes none).
    Forced-persistent ephemeral columns lose their "ephemeral" mark, as in OVS.
    """
    out = schema.to_json()
    if not has_version:
        out.pop("version", None)
    for tname, tjson in out["tables"].items():
        table = schema.tables[tname]
        for cname, cjson in tjson["columns"].items():
            if cjson.get("ephemeral") and _forced_persistent(schema, table.columns[cname].type):
                del cjson["ephemeral"]
    return out


# ---------------------------------------------------------------------------
# Transactions <-> records.


@dataclass(frozen=True, slots=True)
class _Col:
    name: str
    type: ColumnType
    composite: bool
    default: Datum
    parse: Callable[[Any], Datum]  # datum_from_json, with a fast path for scalars


def _column_parser(ctype: ColumnType) -> Callable[[Any], Datum]:
    """datum_from_json for one column type, skipping its generality for plain scalars."""
    key = ctype.key

    def slow(j: Any) -> Datum:
        return datum_from_json(ctype, j)

    if not ctype.is_scalar:
        return slow
    t = key.type
    check = key.check_atom if key.has_constraints else None
    if t == UUID:
        match = UUID_RE.match

        def parse_uuid(j: Any) -> Datum:
            if type(j) is list and len(j) == 2 and j[0] == "uuid" and type(j[1]) is str \
                    and match(j[1]):
                return (j[1].lower(),)
            return slow(j)
        return parse_uuid
    if t == STRING:
        if check is None:
            def parse_str(j: Any) -> Datum:
                return (j,) if type(j) is str else slow(j)
            return parse_str

        def parse_checked_str(j: Any) -> Datum:
            if type(j) is str:
                check(j)
                return (j,)
            return slow(j)
        return parse_checked_str
    if t == INTEGER:
        def parse_int(j: Any) -> Datum:
            if type(j) is int and INT64_MIN <= j <= INT64_MAX:
                if check is not None:
                    check(j)
                return (j,)
            return slow(j)
        return parse_int
    if t == BOOLEAN:
        def parse_bool(j: Any) -> Datum:
            return (j,) if type(j) is bool else slow(j)
        return parse_bool
    return slow


@dataclass(frozen=True, slots=True)
class _TableMeta:
    persistent: tuple[_Col, ...]
    columns: dict[str, _Col]  # every user column
    template: dict[str, Datum]  # a row of defaults (user columns only)


_META: dict[int, tuple[DatabaseSchema, dict[str, _TableMeta]]] = {}


def _meta(schema: DatabaseSchema) -> dict[str, _TableMeta]:
    hit = _META.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    tables: dict[str, _TableMeta] = {}
    for tname, table in schema.tables.items():
        cols = {c.name: _Col(c.name, c.type, c.type.n_max > 1, default_datum(c.type),
                             _column_parser(c.type))
                for c in table.user_columns}
        persistent = tuple(cols[n] for n in persistent_columns(schema, table))
        tables[tname] = _TableMeta(persistent, cols,
                                   {n: c.default for n, c in cols.items()})
    if len(_META) > 64:
        _META.clear()
    _META[id(schema)] = (schema, tables)
    return tables


def _annotate(record: dict[str, Any], comment: str | None, date_ms: int,
              is_diff: bool) -> dict[str, Any]:
    if comment is not None:
        record["_comment"] = comment
    if is_diff:
        record["_is_diff"] = True
    record["_date"] = date_ms
    return record


def changes_to_record(schema: DatabaseSchema, changes: Mapping[str, Mapping[str, tuple[
        Row | None, Row | None]]], *, date_ms: int, comment: str | None = None,
        diff: bool = True) -> dict[str, Any] | None:
    """The transaction record OVS 3.1 writes for a commit, or None if nothing persists.

    An inserted row carries its non-default persistent columns, a deleted row is null,
    an updated row its changed persistent columns: for a set or map column (more than
    one element allowed) the update2-style difference, otherwise the new value.

    OVS 3.1 itself misreads two kinds of difference (fixed in 3.3): one with more
    elements than the column allows, and one applied to a column holding its non-empty
    default value. A commit that would need either is written as a non-diff record,
    which every version reads right.
    """
    meta = _meta(schema)
    if diff:
        out = _changes_json(meta, changes, True)
        if out is not _UNSAFE_DIFF:
            assert out is None or isinstance(out, dict)
            return None if out is None else _annotate(out, comment, date_ms, True)
    out = _changes_json(meta, changes, False)
    assert out is None or isinstance(out, dict)
    return None if out is None else _annotate(out, comment, date_ms, False)


_UNSAFE_DIFF = object()


def _changes_json(meta: dict[str, _TableMeta], changes: Mapping[str, Mapping[str, tuple[
        Row | None, Row | None]]], diff: bool) -> object:
    record: dict[str, Any] = {}
    for tname, rows in changes.items():
        tmeta = meta[tname]
        tjson: dict[str, Any] = {}
        for uuid, (old, new) in rows.items():
            if new is None:
                tjson[uuid] = None
                continue
            row: dict[str, Any] = {}
            if old is None:
                for col in tmeta.persistent:
                    v = new[col.name]
                    if v != col.default:
                        row[col.name] = datum_to_json(col.type, v)
                tjson[uuid] = row
                continue
            for col in tmeta.persistent:
                name = col.name
                v = new[name]
                o = old[name]
                if v == o:
                    continue
                if diff and col.composite:
                    d = datum_diff(col.type, o, v)
                    if len(d) > col.type.n_max or (col.type.n_min and o == col.default):
                        return _UNSAFE_DIFF
                    row[name] = datum_to_json(col.type, d)
                else:
                    row[name] = datum_to_json(col.type, v)
            if row:
                tjson[uuid] = row
        if tjson:
            record[tname] = tjson
    return record or None


def snapshot_record(schema: DatabaseSchema, tables: Mapping[str, Mapping[str, Row]], *,
                    date_ms: int, comment: str | None, is_diff: bool) -> dict[str, Any]:
    """One record with every row, as compaction writes it after the schema record.

    ``ovsdb-tool compact`` writes no "_is_diff"; ovsdb-server's online compaction does.
    """
    meta = _meta(schema)
    record: dict[str, Any] = {}
    for tname, rows in tables.items():
        if not rows:
            continue
        persistent = meta[tname].persistent
        tjson: dict[str, Any] = {}
        for uuid, row in rows.items():
            rj: dict[str, Any] = {}
            for col in persistent:
                v = row[col.name]
                if v != col.default:
                    rj[col.name] = datum_to_json(col.type, v)
            tjson[uuid] = rj
        record[tname] = tjson
    return _annotate(record, comment, date_ms, is_diff)


def record_to_changes(schema: DatabaseSchema, tables: Mapping[str, Mapping[str, Row]],
                      record: Mapping[str, Any], *, new_version: Callable[[], str],
                      converting: bool = False) -> Changes:
    """The changes a transaction record makes to the rows in *tables*.

    Reads diff records (``"_is_diff": true``) and the full-value records older OVS
    releases and compaction write. With *converting*, unknown tables and columns are
    ignored (``ovsdb-tool convert``). Errors are :class:`OvsdbError` worded as OVS words
    them.
    """
    meta = _meta(schema)
    is_diff = record.get("_is_diff") is True
    changes: Changes = {}
    for tname, tjson in record.items():
        table = schema.tables.get(tname)
        if table is None:
            v = record[tname]
            if tname == "_date" and isinstance(v, int) and not isinstance(v, bool):
                continue
            if tname == "_is_diff" and isinstance(v, bool):
                continue
            if tname == "_comment" or converting:
                continue
            raise OvsdbError("unknown table", f"No table named {tname}.", dict(record))
        if not isinstance(tjson, dict):
            raise OvsdbError("syntax error", "object expected", tjson)
        tmeta = meta[tname]
        current = tables.get(tname, {})
        tchanges: dict[str, tuple[Row | None, Row | None]] = {}
        for uuid_s, row_json in tjson.items():
            if not UUID_RE.match(uuid_s):
                raise OvsdbError("syntax error", f'"{uuid_s}" is not a valid UUID', tjson)
            uuid = uuid_s.lower()
            old = current.get(uuid)
            if row_json is None:
                if old is None:
                    raise OvsdbError(
                        "syntax error", f"transaction deletes row {uuid} that does not exist")
                tchanges[uuid] = (old, None)
                continue
            if not isinstance(row_json, dict):
                raise OvsdbError("syntax error", "row must be JSON object", row_json)
            if old is None:
                new: Row = dict(tmeta.template)
                _set_columns(new, tmeta, tname, row_json, False, converting)
                new["_uuid"] = (uuid,)
            else:
                new = dict(old)
                _set_columns(new, tmeta, tname, row_json, is_diff, converting)
                if all(new[n] == old[n] for n in row_json if n in tmeta.columns):
                    continue
            new["_version"] = (new_version(),)
            tchanges[uuid] = (old, new)
        if tchanges:
            changes[tname] = tchanges
    return changes


def _set_columns(row: Row, tmeta: _TableMeta, tname: str, row_json: dict[str, Any],
                 is_diff: bool, converting: bool) -> None:
    for cname, cj in row_json.items():
        col = tmeta.columns.get(cname)
        if col is None:
            if converting or cname in ("_uuid", "_version"):
                continue
            raise OvsdbError("unknown column", f"No column {cname} in table {tname}.",
                             row_json)
        if is_diff and col.composite:
            d = datum_from_json_unchecked(col.type, cj)
            value = datum_apply_diff(col.type, row[cname], d)
            if not col.type.n_min <= len(value) <= col.type.n_max:
                raise OvsdbError("ovsdb error", "Datum crated by diff has size error")
            row[cname] = value
        else:
            row[cname] = col.parse(cj)
