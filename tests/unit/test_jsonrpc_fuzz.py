"""Property tests of JSON-RPC framing: any splitting, any garbage.

``Connection`` is compared with a deliberately naive reference framer (one byte at a time,
whole stream at once). Whatever the bytes and however they are cut into reads, it must
deliver the same messages, then end the same way (clean close or protocol error), raise
nothing, and return. The bulk scanner for long values is exercised by shrinking its
thresholds to a few bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwvtep.ovsdb import jsonrpc
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.jsonrpc import (
    Closed,
    Connection,
    Error,
    Message,
    Notification,
    ProtocolError,
    Reply,
    Request,
    encode,
    message_from_json,
)

SETTINGS = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# --- the reference --------------------------------------------------------------------

_WS = b" \t\r\n"


def reference(
    data: bytes, max_size: int = jsonrpc.DEFAULT_MAX_MESSAGE_SIZE
) -> tuple[list[bytes], str]:
    """Messages (encoded) in ``data`` followed by end of stream, and how the stream ends."""
    out: list[bytes] = []
    i, n = 0, len(data)
    while True:
        while i < n and data[i] in _WS:
            i += 1
        if i == n:
            return out, "closed"
        if data[i] not in b"[{":
            return out, "error"
        start, depth, in_string, escaped = i, 0, False, False
        while True:
            if i == n:
                return out, "error"  # cut short
            c = data[i]
            i += 1
            if in_string:
                if escaped:
                    escaped = False
                elif c == ord("\\"):
                    escaped = True
                elif c == ord('"'):
                    in_string = False
            elif c == ord('"'):
                in_string = True
            elif c in b"[{":
                depth += 1
                if depth > jsonrpc.MAX_DEPTH:
                    return out, "error"
            elif c in b"]}":
                depth -= 1
                if depth == 0:
                    break
        raw = data[start:i]
        if len(raw) > max_size:
            return out, "error"
        try:
            obj = orjson.loads(raw)
            msg = message_from_json(obj)
        except (orjson.JSONDecodeError, OvsdbError):
            return out, "error"
        if _has_nul(obj):
            return out, "error"
        out.append(encode(msg))


def _has_nul(v: Any) -> bool:
    if isinstance(v, str):
        return "\x00" in v
    if isinstance(v, list):
        return any(_has_nul(x) for x in v)
    if isinstance(v, dict):
        return any(_has_nul(k) or _has_nul(x) for k, x in v.items())
    return False


def run(
    data: bytes, cuts: list[int], max_size: int = jsonrpc.DEFAULT_MAX_MESSAGE_SIZE
) -> tuple[list[bytes], str]:
    """Feed ``data`` cut at ``cuts``, then end of stream; same shape as ``reference``."""
    conn = Connection(max_message_size=max_size)
    events: list[Any] = []
    bounds = [0, *sorted(set(cuts)), len(data)]
    for a, b in itertools.pairwise(bounds):
        if b > a:
            conn.receive_data(data[a:b])
            events.extend(conn.events())
    conn.receive_data(b"")
    events.extend(conn.events())
    assert conn.next_event() is None  # dead after the last event
    *messages, last = events
    assert all(isinstance(m, Request | Notification | Reply | Error) for m in messages), events
    assert isinstance(last, ProtocolError | Closed), events
    return [encode(m) for m in messages], "closed" if isinstance(last, Closed) else "error"


@contextmanager
def bulk(after: int, window: int) -> Iterator[None]:
    saved = jsonrpc._BULK_AFTER, jsonrpc._BULK_WINDOW
    jsonrpc._BULK_AFTER, jsonrpc._BULK_WINDOW = after, window
    try:
        yield
    finally:
        jsonrpc._BULK_AFTER, jsonrpc._BULK_WINDOW = saved


# --- strategies -----------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8)
tricky_text = st.text(st.sampled_from('"\\{}[]é\U0001f600 \n\x1fu0'), max_size=8)
atoms = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
    | tricky_text
)
values = st.recursive(
    atoms,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(text | tricky_text, inner, max_size=4)
    ),
    max_leaves=12,
)
non_null = values.filter(lambda v: v is not None)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Request, text, st.lists(values, max_size=4), non_null),
    st.builds(Notification, text | tricky_text, st.lists(values, max_size=4)),
    st.builds(Reply, non_null, non_null),
    st.builds(Error, non_null, non_null),
)
whitespace = st.text(" \t\r\n", max_size=3).map(str.encode)
bulk_settings = st.sampled_from(
    [(0, 1), (0, 2), (1, 3), (3, 7), (0, 64), (jsonrpc._BULK_AFTER, jsonrpc._BULK_WINDOW)]
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Message], bytes]:
    msgs = draw(st.lists(messages, max_size=6))
    parts = [draw(whitespace)]
    for m in msgs:
        parts += [encode(m), draw(whitespace)]
    return msgs, b"".join(parts)


def cuts_for(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=12)


_TOKENS = (
    b'{|}|[|]|"|\\|\\\\|\\"| |\n|:|,|1|-|e|null|true|"method"|"params"|"id"|"result"|"error"|"x"'
    b"|\\u0000|\\ud800|\xc3|\xa9|\xff|\x00"
).split(b"|")
json_ish = st.lists(st.sampled_from(_TOKENS), max_size=60).map(b"".join)


# --- properties -----------------------------------------------------------------------


@SETTINGS
@given(st.data(), streams(), bulk_settings)
def test_valid_streams_give_their_messages_however_split(
    data: st.DataObject, stream: tuple[list[Message], bytes], thresholds: tuple[int, int]
) -> None:
    msgs, raw = stream
    cuts = data.draw(cuts_for(raw))
    with bulk(*thresholds):
        assert run(raw, cuts) == ([encode(m) for m in msgs], "closed")


@SETTINGS
@given(st.data(), streams(), st.integers(1, 300))
def test_size_limit_stops_at_the_first_big_message(
    data: st.DataObject, stream: tuple[list[Message], bytes], limit: int
) -> None:
    msgs, raw = stream
    cuts = data.draw(cuts_for(raw))
    encoded = [encode(m) for m in msgs]
    fitting = []
    for e in encoded:
        if len(e) > limit:
            break
        fitting.append(e)
    expected = (fitting, "closed" if len(fitting) == len(encoded) else "error")
    assert run(raw, cuts, limit) == expected


@SETTINGS
@given(st.data(), st.binary(max_size=200), bulk_settings)
def test_random_bytes(data: st.DataObject, raw: bytes, thresholds: tuple[int, int]) -> None:
    cuts = data.draw(cuts_for(raw))
    with bulk(*thresholds):
        assert run(raw, cuts) == reference(raw)


@SETTINGS
@given(st.data(), json_ish, bulk_settings)
def test_json_like_garbage(data: st.DataObject, raw: bytes, thresholds: tuple[int, int]) -> None:
    cuts = data.draw(cuts_for(raw))
    with bulk(*thresholds):
        assert run(raw, cuts) == reference(raw)


@SETTINGS
@given(st.data(), streams(), bulk_settings)
def test_damaged_valid_streams(
    data: st.DataObject, stream: tuple[list[Message], bytes], thresholds: tuple[int, int]
) -> None:
    _, raw = stream
    damaged = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(damaged)))
        what = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from(b'{}[]"\\ :,a\x00\xff'))
        if what == "insert":
            damaged.insert(at, byte)
        elif at < len(damaged):
            if what == "delete":
                del damaged[at]
            else:
                damaged[at] = byte
    cuts = data.draw(cuts_for(bytes(damaged)))
    with bulk(*thresholds):
        assert run(bytes(damaged), cuts) == reference(bytes(damaged))


@SETTINGS
@given(st.data(), st.integers(1, 400), st.sampled_from(b"[{"), bulk_settings)
def test_deep_nesting(
    data: st.DataObject, depth: int, opener: int, thresholds: tuple[int, int]
) -> None:
    if opener == ord("["):
        value = b"[" + b"[" * depth + b'"x"' + b"]" * depth + b"]"
    else:
        value = b"[" + b'{"k":' * depth + b"1" + b"}" * depth + b"]"
    raw = b'{"method":"m","id":1,"params":' + value + b"}"
    cuts = data.draw(cuts_for(raw))
    with bulk(*thresholds):
        got = run(raw, cuts)
    assert got == reference(raw)
    assert (got[1] == "closed") == (depth + 2 <= jsonrpc.MAX_DEPTH)
