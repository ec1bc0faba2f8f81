"""JSON-RPC 1.0 as OVSDB speaks it, without any I/O (bytes in, events out, bytes to send).

OVSDB peers send JSON values back to back with no delimiter (``{...}{...}``), split across
reads anywhere, even inside a UTF-8 character or a string escape. :class:`Connection` keeps
what it was given, finds where each top-level value ends by scanning only bytes it has not
looked at before (a value of many megabytes arriving in small reads costs linear time),
decodes each complete value once with orjson and checks it the way Open vSwitch does
(``lib/jsonrpc.c``): exactly the members ``method``, ``params``, ``result``, ``error``,
``id``, where a ``null`` member counts as absent. Anything else is a protocol error that
ends the connection, as it does in Open vSwitch.

Messages are serialised compactly, members in the order Open vSwitch writes them
(``id`` first). A reply always carries ``"error": null``; an error reply is
``{"id": ..., "error": ...}`` with no ``result`` member, exactly as ovsdb-server sends it
(a ``"result": null`` there is accepted on input).

Stricter than Open vSwitch: invalid UTF-8 is refused (ovsdb-server passes it through) and
nesting stops at :data:`MAX_DEPTH`. Looser: brackets are counted without pairing ``[`` with
``]``, so a mismatch is refused when its value ends (or at the size limit, or end of
stream) rather than at the bracket.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, count
from operator import sub
from typing import Any, Final

import orjson

from hwvtep.ovsdb.errors import OvsdbError, syntax_error

# Deepest nesting accepted (objects and arrays, the message itself included): as deep as
# orjson can write back, so that echoing what was received cannot fail. Open vSwitch allows
# 1000; real OVSDB messages stay under 10.
MAX_DEPTH: Final = 254
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    """A call that expects a reply carrying the same ``id`` (never null)."""

    method: str
    params: list[Any]
    id: Any

    def __post_init__(self) -> None:
        if self.id is None:
            raise ValueError("a request needs a non-null id (use Notification)")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "params": self.params}


@dataclass(frozen=True, slots=True)
class Notification:
    """A call that expects no reply (``"id": null`` on the wire)."""

    method: str
    params: list[Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": None, "method": self.method, "params": self.params}


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer; ``result`` is never null (Open vSwitch rejects that)."""

    result: Any
    id: Any

    def __post_init__(self) -> None:
        if self.result is None or self.id is None:
            raise ValueError("a reply needs a non-null result and id")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "result": self.result, "error": None}


@dataclass(frozen=True, slots=True)
class Error:
    """A failed answer; ``error`` is usually an RFC 7047 error object."""

    error: Any
    id: Any

    def __post_init__(self) -> None:
        if self.error is None or self.id is None:
            raise ValueError("an error reply needs a non-null error and id")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "error": self.error}


Message = Request | Notification | Reply | Error


def error_reply(error: Any, id: Any) -> Error:
    """The error reply to request ``id`` (``error`` is usually ``OvsdbError.to_json()``)."""
    return Error(error, id)


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer broke the protocol; the connection is dead and must be closed."""

    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed its side cleanly (between two messages)."""


Event = Request | Notification | Reply | Error | ProtocolError | Closed

_MEMBERS: Final = frozenset(("method", "params", "result", "error", "id"))


def message_from_json(obj: Any) -> Message:
    """Turn one decoded JSON value into a message, or raise OvsdbError with OVS's reason."""
    if type(obj) is not dict:
        raise syntax_error("message is not a JSON object")
    method = obj.get("method")
    if "method" in obj and type(method) is not str:
        raise syntax_error("method is not a JSON string")
    if not obj.keys() <= _MEMBERS:
        extra = next(k for k in obj if k not in _MEMBERS)
        raise syntax_error(f'message has unexpected member "{extra}"')
    params = obj.get("params")
    result = obj.get("result")
    error = obj.get("error")
    id_ = obj.get("id")
    if params is not None and type(params) is not list:
        raise syntax_error('"params" must be JSON array')
    present = (
        method is not None,
        params is not None,
        result is not None,
        error is not None,
        id_ is not None,
    )
    # A null member counts as absent; the first non-null of these decides the kind.
    if result is not None:
        kind = "reply"
    elif error is not None:
        kind = "error"
    else:
        kind = "request" if id_ is not None else "notification"
    wanted = _SHAPES[kind]
    if present != wanted:
        # Same order of checks, hence the same first complaint, as Open vSwitch.
        for name, w, p in zip(_ORDER, wanted, present, strict=True):
            if w != p:
                raise syntax_error(f'{kind} must{"" if w else " not"} have "{name}"')
    if kind == "reply":
        return Reply(result, id_)
    if kind == "error":
        return Error(error, id_)
    if kind == "request":
        return Request(method, params, id_)  # type: ignore[arg-type]
    return Notification(method, params)  # type: ignore[arg-type]


_ORDER: Final = ("method", "params", "result", "error", "id")
_SHAPES: Final = {
    "request": (True, True, False, False, True),
    "notification": (True, True, False, False, False),
    "reply": (False, False, True, False, True),
    "error": (False, False, False, True, True),
}


def encode(msg: Message) -> bytes:
    """The compact wire form of ``msg`` (UTF-8, no delimiter)."""
    return orjson.dumps(msg.to_json())


# --- framing ---------------------------------------------------------------------------

_WS = re.compile(rb"[ \t\n\r]*+")
_STRING_BODY = rb'[^"\\]*+(?:\\.[^"\\]*+)*+'
# From inside a string (escape-aligned) up to its closing quote, or to the end of the data
# (but before a lone backslash there).
_STRING_PART = re.compile(_STRING_BODY, re.S)


def _balanced(levels: int) -> re.Pattern[bytes]:
    """Matches a run of complete strings, scalars and bracketed values nested ``levels`` deep.

    Atomic groups make a failed attempt (a value still incomplete at the end of the buffer)
    give up without backtracking; the scanner then steps into that value by hand. Brackets
    are not paired by kind: a mismatch is left for the decoder to report.
    """
    string = rb'"' + _STRING_BODY + rb'"'
    inner = rb'(?>[^\[\]{}"]++|' + string + rb")*+"
    for _ in range(levels):
        inner = rb'(?>[^\[\]{}"]++|' + string + rb"|[\[{]" + inner + rb"[\]}])*+"
    return re.compile(inner, re.S)


_LEVELS = 8
_BALANCED = _balanced(_LEVELS)
# Near MAX_DEPTH, patterns that look less deep keep the depth check exact.
_SHALLOWER = [_balanced(levels) for levels in range(_LEVELS)]
_ESCAPE = re.compile(rb"\\.", re.S)
_NUL_ESCAPE = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")

_OPEN_BRACE, _OPEN_BRACKET, _QUOTE = 0x7B, 0x5B, 0x22
_CLOSE_BRACE, _CLOSE_BRACKET = 0x7D, 0x5D

# Bulk scanning of long values keeps quotes and brackets, then weighs an opening bracket 2
# and a closing one 0 (so that a running sum minus the count is the depth).
_NOT_QUOTES_OR_BRACKETS = bytes(c for c in range(256) if c not in b'"[]{}')
_BRACKET_WEIGHTS = bytes(2 if c in (_OPEN_BRACE, _OPEN_BRACKET) else 0 for c in range(256))
# Values up to this size are looked for by Connection._next_small first.
_SMALL = 64 * 1024
# A value is scanned in bulk once this much of it went by without an end...
_BULK_AFTER = 64 * 1024
# ... a window at a time, so that finding the end wastes at most one window.
_BULK_WINDOW = 256 * 1024
# Decoding a big value makes millions of objects; cyclic GC passes meanwhile find nothing.
_NO_GC_ABOVE = 1024 * 1024


class _Broken(Exception):
    pass


class Connection:
    """One end of a JSON-RPC stream: feed it bytes, take events out, get bytes to send.

    ``next_event()`` returns the next message, ``None`` when more data is needed, or a
    :class:`ProtocolError` (once) after which the connection is dead and returns ``None``
    for ever. ``receive_data(b"")`` means the peer closed its side: remaining messages come
    out, then :class:`Closed`, or a :class:`ProtocolError` if a message was cut short.
    """

    __slots__ = (
        "_buf",
        "_depth",
        "_eof",
        "_in_string",
        "_pos",
        "_start",
        "error",
        "max_message_size",
    )

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        # Why the connection died (protocol error or clean close), None while alive.
        self.error: str | None = None
        self._buf = bytearray()
        self._pos = 0  # first byte not scanned yet
        self._start = 0  # first byte of the value being scanned (meaningful if _depth)
        self._depth = 0  # bracket depth inside the current value; 0 between values
        self._in_string = False
        self._eof = False

    @property
    def dead(self) -> bool:
        return self.error is not None

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self.error is not None or self._eof:
            return
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | None:
        if self.error is not None:
            return None
        got = self._next_small() if self._depth == 0 else None
        if got is not None:
            raw, obj = got
        else:
            try:
                end = self._scan()
            except _Broken as e:
                return self._die(str(e))
            if end < 0:
                if not self._eof:
                    return None
                if self._depth:
                    return self._die("unexpected end of input")
                self.error = "connection closed"
                self._buf = bytearray()
                return Closed()
            raw = bytes(self._buf[self._start : end])
            pause_gc = len(raw) > _NO_GC_ABOVE and gc.isenabled()
            if pause_gc:
                gc.disable()
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                return self._die(f"syntax error: {e}")
            finally:
                if pause_gc:
                    gc.enable()
        if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
            return self._die("null bytes not supported in quoted strings")
        try:
            return message_from_json(obj)
        except OvsdbError as e:
            return self._die(e.details or e.tag)

    def _next_small(self) -> tuple[bytes, Any] | None:
        """The next object and its text, found without scanning it, or None (then the
        exact scanner decides: an incomplete, malformed, deep or big value, or one
        followed by white space).

        Pipelining clients send objects back to back, so an object ends where the next
        begins: at the first ``}{`` or, for the last one, at the end of the data. A
        ``}{`` inside a string gives a cut that is not a complete value, and a value
        that parses whole cannot be cut short (the lexing of a prefix is the lexing of
        the whole), so a candidate that orjson accepts is exactly the next message.
        """
        buf = self._buf
        pos = self._pos
        if pos >= len(buf) or buf[pos] != _OPEN_BRACE:
            return None
        end = buf.find(b"}{", pos) + 1
        if not end:
            if buf[-1] != _CLOSE_BRACE:
                return None
            end = len(buf)
        if end - pos > _SMALL or end - pos > self.max_message_size:
            return None
        raw = bytes(buf[pos:end])
        # Every bracket counted, in strings too: more than MAX_DEPTH of them is left to
        # the scanner's exact count.
        if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
            return None
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        self._start = pos
        self._pos = end
        return raw, obj

    def events(self) -> Iterator[Event]:
        """Every event available now (stops when more data is needed)."""
        while (event := self.next_event()) is not None:
            yield event

    def send(self, msg: Message) -> bytes:
        return encode(msg)

    def _die(self, reason: str) -> ProtocolError:
        self.error = reason
        self._buf = bytearray()
        return ProtocolError(reason)

    def _scan(self) -> int:
        """End offset of the next complete value in the buffer, or -1 if there is none yet."""
        buf = self._buf
        size = len(buf)
        pos = self._pos
        depth = self._depth
        if depth == 0:
            pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
            if pos == size:
                buf.clear()
                self._pos = 0
                return -1
            if buf[pos] not in (_OPEN_BRACE, _OPEN_BRACKET):
                raise _Broken("syntax error at beginning of input")
            self._start = pos
            depth = 1
            pos += 1
        in_string = self._in_string
        while True:
            if in_string:
                pos = _STRING_PART.match(buf, pos).end()  # type: ignore[union-attr]
                if pos == size or buf[pos] != _QUOTE:  # or a lone backslash ends the data
                    return self._incomplete(pos, depth, True)
                pos += 1
                in_string = False
            if pos - self._start < _BULK_AFTER:
                end = min(size, self._start + _BULK_AFTER)
            else:
                end = min(size, pos + _BULK_WINDOW)
                window = bytes(buf[pos:end])
                if not window.endswith(b"\\"):
                    if b"\\" in window:
                        window = _ESCAPE.sub(b"", window)
                    # Without escapes, quotes alternate between opening and closing strings.
                    pieces = window.translate(None, _NOT_QUOTES_OR_BRACKETS).split(b'"')
                    brackets = b"".join(pieces[::2]).translate(_BRACKET_WEIGHTS)
                    levels = list(map(sub, accumulate(brackets), count(1))) or [0]
                    if depth + min(levels) > 0:  # else the value ends in there: scan exactly
                        if depth + max(levels) > MAX_DEPTH:
                            raise _Broken(_TOO_DEEP)
                        depth += levels[-1]
                        pos = end
                        in_string = len(pieces) % 2 == 0
                        if pos == size:
                            return self._incomplete(pos, depth, in_string)
                        continue
            # Exact scan, up to ``end``.
            while True:
                room = MAX_DEPTH - depth
                pattern = _BALANCED if room >= _LEVELS else _SHALLOWER[room]
                pos = pattern.match(buf, pos, end).end()  # type: ignore[union-attr]
                if pos == end:
                    break
                c = buf[pos]
                pos += 1
                if c in (_CLOSE_BRACE, _CLOSE_BRACKET):
                    depth -= 1
                    if depth == 0:
                        if pos - self._start > self.max_message_size:
                            raise _Broken(self._too_big())
                        self._depth = 0
                        self._in_string = False
                        self._pos = pos
                        return pos
                elif c == _QUOTE:
                    # Only a string not terminated before ``end`` stops the balanced run.
                    pos = _STRING_PART.match(buf, pos, end).end()  # type: ignore[union-attr]
                    in_string = True
                    break
                else:
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise _Broken(_TOO_DEEP)
            if pos == size:
                return self._incomplete(pos, depth, in_string)

    def _incomplete(self, pos: int, depth: int, in_string: bool) -> int:
        buf = self._buf
        start = self._start
        if len(buf) - start > self.max_message_size:
            raise _Broken(self._too_big())
        if start:
            del buf[:start]
            pos -= start
            self._start = 0
        self._pos = pos
        self._depth = depth
        self._in_string = in_string
        return -1

    def _too_big(self) -> str:
        return f"message exceeds maximum size of {self.max_message_size} bytes"


_TOO_DEEP: Final = f"input exceeds maximum nesting depth {MAX_DEPTH}"
