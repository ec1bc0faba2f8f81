"""JSON-RPC messages and stream framing (``hwvtep.ovsdb.jsonrpc``).

Wire facts were taken from ovsdb-server 3.1 (echo/list_dbs replies, its inactivity probe,
``update`` notifications, and which malformed messages make it drop the connection).
"""

from __future__ import annotations

import gc
import time
from typing import Any

import orjson
import pytest

from hwvtep.ovsdb import jsonrpc
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.jsonrpc import (
    Closed,
    Connection,
    Error,
    Event,
    Notification,
    ProtocolError,
    Reply,
    Request,
    encode,
    error_reply,
    message_from_json,
)


def feed(data: bytes, chunk: int | None = None, eof: bool = False, **kw: Any) -> list[Event]:
    conn = Connection(**kw)
    out: list[Event] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        conn.receive_data(data[i : i + step])
        out.extend(conn.events())
    if eof:
        conn.receive_data(b"")
        out.extend(conn.events())
    return out


# --- serialisation: byte-exact with what ovsdb-server sends ----------------------------


def test_reply_bytes_match_ovsdb_server() -> None:
    # ovsdb-server 3.1 answered {"method":"echo","id":1234,"params":["hello"]} with this.
    assert encode(Reply(["hello"], 1234)) == b'{"id":1234,"result":["hello"],"error":null}'


def test_request_bytes_match_ovsdb_server_probe() -> None:
    # ovsdb-server's inactivity probe, as received on a TCP connection.
    assert encode(Request("echo", [], "echo")) == b'{"id":"echo","method":"echo","params":[]}'


def test_notification_bytes_match_ovsdb_server_update() -> None:
    params = [None, {"Global": {"3402f7b0-b268-47c4-85b9-51c61e71e606": {"new": {}}}}]
    assert encode(Notification("update", params)) == (
        b'{"id":null,"method":"update","params":[null,{"Global":'
        b'{"3402f7b0-b268-47c4-85b9-51c61e71e606":{"new":{}}}}]}'
    )


def test_error_reply_has_no_result_member() -> None:
    # Exactly what ovsdb-server writes: no extra members.
    assert encode(Error("unknown method", 4)) == b'{"id":4,"error":"unknown method"}'
    assert error_reply({"error": "x"}, 5) == Error({"error": "x"}, 5)


def test_serialisation_is_compact_utf8_with_ovs_escapes() -> None:
    out = encode(Reply(['é\u2028/\x1f\x7f\n"\\'], 1))
    # Same bytes ovsdb-server echoed: UTF-8 as is, "/" and DEL unescaped, \u001f escaped.
    assert out == '{"id":1,"result":["é\u2028/\\u001f\x7f\\n\\"\\\\"],"error":null}'.encode()
    assert Connection().send(Reply([1], 2)) == encode(Reply([1], 2))


def test_tuples_serialise_as_arrays() -> None:
    assert encode(Reply(("set", ((1, 2),)), 1)) == b'{"id":1,"result":["set",[[1,2]]],"error":null}'


@pytest.mark.parametrize(
    "make",
    [
        lambda: Request("echo", [], None),
        lambda: Reply(None, 1),
        lambda: Reply([], None),
        lambda: Error(None, 1),
        lambda: Error("x", None),
    ],
)
def test_messages_that_ovs_would_reject_cannot_be_built(make: Any) -> None:
    with pytest.raises(ValueError):
        make()


# --- message validation: Open vSwitch's rules and words ---------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"method": "echo", "params": [1], "id": 7}, Request("echo", [1], 7)),
        (
            {"method": "echo", "params": [], "id": [1, {"a": None}]},
            Request("echo", [], [1, {"a": None}]),
        ),
        (
            {"method": "update", "params": [None, {}], "id": None},
            Notification("update", [None, {}]),
        ),
        ({"method": "update", "params": []}, Notification("update", [])),
        ({"id": 1, "result": {}, "error": None}, Reply({}, 1)),
        ({"id": 1, "result": 0}, Reply(0, 1)),
        ({"id": "x", "result": False, "error": None}, Reply(False, "x")),
        ({"id": 4, "error": "unknown method"}, Error("unknown method", 4)),
        ({"id": 4, "result": None, "error": {"error": "e"}}, Error({"error": "e"}, 4)),
    ],
)
def test_valid_messages(obj: Any, expected: Any) -> None:
    assert message_from_json(obj) == expected


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        # The reasons ovsdb-server logged ("received bad JSON-RPC message: ...").
        ([1], "message is not a JSON object"),
        ("abc", "message is not a JSON object"),
        (
            {"method": "echo", "id": 1, "params": [], "extra": 1},
            'message has unexpected member "extra"',
        ),
        ({"method": "echo", "id": 6, "params": {}}, '"params" must be JSON array'),
        ({"method": "echo", "id": 7}, 'request must have "params"'),
        ({"method": "echo", "id": 7, "params": None}, 'request must have "params"'),
        ({"id": 8, "result": None, "error": None}, 'request must have "method"'),
        ({"method": 1, "id": 15, "params": []}, "method is not a JSON string"),
        ({"method": None, "id": 15, "params": []}, "method is not a JSON string"),
        # The rest follow lib/jsonrpc.c's checks in order.
        ({"method": "echo", "id": 20, "params": [], "result": 1}, 'reply must not have "method"'),
        ({"id": 1, "result": 1, "error": "x"}, 'reply must not have "error"'),
        ({"result": 1}, 'reply must have "id"'),
        ({"error": "x"}, 'error must have "id"'),
        ({"error": "x", "id": 1, "params": []}, 'error must not have "params"'),
        ({"params": [], "id": 1}, 'request must have "method"'),
        ({}, 'notification must have "method"'),
        ({"method": "m"}, 'notification must have "params"'),
    ],
)
def test_invalid_messages(obj: Any, reason: str) -> None:
    with pytest.raises(OvsdbError) as e:
        message_from_json(obj)
    assert e.value.details == reason


def test_bad_message_kills_the_connection_like_ovsdb_server() -> None:
    # ovsdb-server dropped the connection without answering the second request.
    events = feed(
        b'{"method":"echo","id":1,"params":[],"extra":1}{"method":"echo","id":2,"params":[]}'
    )
    assert events == [ProtocolError('message has unexpected member "extra"')]


def test_notification_then_request() -> None:
    # ovsdb-server ignored the id-less echo and answered the next one.
    events = feed(b'{"method":"echo","params":[]}{"method":"echo","id":3,"params":[]}')
    assert events == [Notification("echo", []), Request("echo", [], 3)]


# --- framing ----------------------------------------------------------------------------


def test_back_to_back_and_whitespace() -> None:
    data = b' \n\t{"id":1,"result":[]}\r\n{"id":2,"result":{"a":"}]"}}[ ]  '
    assert feed(data) == [
        Reply([], 1),
        Reply({"a": "}]"}, 2),
        ProtocolError("message is not a JSON object"),
    ]


def test_brace_pairs_in_strings_are_no_boundary() -> None:
    # Objects sent back to back are found at their "}{" without a scan; one inside a string
    # (even one that makes a prefix look whole) must not cut a message.
    msgs: list[Any] = [
        Request("m", ["}{", {"a": "}{}{"}], 1),
        Notification("n}{", ["x}"]),
        Reply({"k}{": '"}{"'}, 2),
        Request("e", ['{"id":1,"result":2}{'], 3),
    ]
    data = b"".join(encode(m) for m in msgs)
    for chunk in (None, 1, 5, 17):
        assert feed(data, chunk) == msgs
    conn = Connection()
    conn.receive_data(data * 100)
    assert list(conn.events()) == msgs * 100
    assert not conn._buf  # nothing kept once all was read


def test_split_everywhere_gives_the_same_messages() -> None:
    msgs = [
        Request("echo", ['é\\"{[', "\U0001f600", {"k": [[[[[[[[[[["deep"]]]]]]]]]]]}], 1),
        Notification("update", [None, {"T": {"u": {"new": {"s": "a\\\\"}}}}]),
        Reply({"x": '\u2028"\\u0000-not-an-escape'}, "id"),
        Error({"error": "e", "details": "]}"}, [1]),
    ]
    data = b"  ".join(encode(m) for m in msgs) + b"\n"
    for chunk in range(1, 40):
        assert feed(data, chunk) == msgs, chunk
    # and every single two-way split, including inside UTF-8 characters and escapes
    for cut in range(len(data) + 1):
        conn = Connection()
        out = []
        for part in (data[:cut], data[cut:]):
            if part:  # an empty read means end of stream
                conn.receive_data(part)
                out.extend(conn.events())
        assert out == msgs, cut


def test_string_escape_split_at_a_lone_backslash() -> None:
    # The buffer ends right after a backslash inside a string, then the quote it escapes.
    conn = Connection()
    conn.receive_data(b'{"method":"m","params":["a\\')
    assert conn.next_event() is None
    conn.receive_data(b'"')
    assert conn.next_event() is None
    conn.receive_data(b'"],"id":1}')
    assert list(conn.events()) == [Request("m", ['a"'], 1)]


def test_invalid_utf8_is_a_protocol_error() -> None:
    # (ovsdb-server 3.1 echoes a lone 0xff byte back; we refuse it.)
    [event] = feed(b'{"method":"echo","id":13,"params":["\xff"]}')
    assert isinstance(event, ProtocolError)


@pytest.mark.parametrize(
    "data",
    [
        b'{"method":"echo","id":12,"params":["\\u0000"]}',  # ovsdb-server drops these...
        b'{"method":"echo","id":16,"params":["\\ud800"]}',
        b'{"method":"echo","id":17,"params":["\x01"]}',
        b'{"method":"echo","id":1,"params":[NaN]}',
        b'{"method":"echo","id":1,"params":[1e400]}',
        b'{"method":"echo","id":1,"params":[1,]}',
        b'{"method":"echo" "id":1,"params":[]}',
        b'"abc"',
        b"42",
        b"\xef\xbb\xbf{}",
        b"}",
    ],
)
def test_malformed_json_kills_the_connection(data: bytes) -> None:
    events = feed(data + b'{"method":"echo","id":99,"params":[]}')
    assert len(events) == 1 and isinstance(events[0], ProtocolError), events


def test_mismatched_brackets_are_found_when_the_value_ends() -> None:
    # Framing counts brackets of either kind; the decoder then refuses the value. (Open
    # vSwitch notices at the bracket itself; here a value like '[}' waits for its end, the
    # size limit or the end of the stream.)
    data = b'{"method":"echo","id":1,"params":[}{"method":"echo","id":2,"params":[]}'
    assert feed(data) == []
    assert len(feed(data, eof=True)) == 1
    assert isinstance(feed(data, eof=True)[0], ProtocolError)
    assert isinstance(feed(b'{"id":1,"result":[}]}')[0], ProtocolError)


def test_escaped_backslash_before_u0000_is_not_a_null() -> None:
    assert feed(b'{"method":"m","id":1,"params":["\\\\u0000"]}') == [Request("m", ["\\u0000"], 1)]


def test_after_an_error_the_connection_stays_dead() -> None:
    conn = Connection()
    conn.receive_data(b'{"id":1,"result":1}x{"id":2,"result":2}')
    assert conn.next_event() == Reply(1, 1)
    assert conn.next_event() == ProtocolError("syntax error at beginning of input")
    assert conn.dead and conn.error == "syntax error at beginning of input"
    conn.receive_data(b'{"id":3,"result":3}')
    assert conn.next_event() is None
    assert list(conn.events()) == []


def test_eof_between_messages_and_inside_one() -> None:
    assert feed(b'{"id":1,"result":1} \n', eof=True) == [Reply(1, 1), Closed()]
    assert feed(b"", eof=True) == [Closed()]
    assert feed(b'{"id":1,"result":1}{"id":2,', eof=True) == [
        Reply(1, 1),
        ProtocolError("unexpected end of input"),
    ]
    assert feed(b'{"id":1,"result":"ab', eof=True) == [ProtocolError("unexpected end of input")]


def test_nesting_flood_is_cut_short() -> None:
    events = feed(b"[" * 5000, chunk=100)
    assert events == [ProtocolError(f"input exceeds maximum nesting depth {jsonrpc.MAX_DEPTH}")]


def test_the_deepest_message_accepted_can_be_echoed() -> None:
    params: Any = ["x"]
    for _ in range(jsonrpc.MAX_DEPTH - 2):
        params = [params]
    data = encode(Request("echo", params, 1))
    for chunk in (1, 7, len(data)):
        [request] = feed(data, chunk)
        assert isinstance(request, Request)
        assert encode(Reply(request.params, 1)).count(b"[") == jsonrpc.MAX_DEPTH - 1
        deeper = data.replace(b'"params":', b'"params":[', 1)[:-1] + b"]}"
        assert feed(deeper, chunk) == [ProtocolError(jsonrpc._TOO_DEEP)]


def test_deep_but_allowed_nesting_is_delivered() -> None:
    params = [[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]
    assert feed(encode(Request("m", params, 1)), chunk=3) == [Request("m", params, 1)]


# --- message size limit -----------------------------------------------------------------


def test_message_of_exactly_the_limit_passes_and_one_more_byte_fails() -> None:
    small = encode(Reply("x" * 50, 1))
    assert feed(small, max_message_size=len(small)) == [Reply("x" * 50, 1)]
    assert feed(small, max_message_size=len(small) - 1) == [
        ProtocolError(f"message exceeds maximum size of {len(small) - 1} bytes")
    ]


def test_oversized_message_fails_before_it_is_complete() -> None:
    conn = Connection(max_message_size=1000)
    conn.receive_data(b'{"id":1,"result":"' + b"x" * 900)
    assert conn.next_event() is None
    conn.receive_data(b"x" * 90)
    assert isinstance(conn.next_event(), ProtocolError)


def test_whitespace_between_messages_does_not_count_or_accumulate() -> None:
    conn = Connection(max_message_size=100)
    for _ in range(100):
        conn.receive_data(b" " * 1000)
        assert conn.next_event() is None
    conn.receive_data(b'{"id":1,"result":1}')
    assert conn.next_event() == Reply(1, 1)
    assert len(conn._buf) < 100


# --- large messages ---------------------------------------------------------------------


def _monitor_reply(rows: int, escapes: bool = True) -> tuple[bytes, dict[str, Any]]:
    note = 'a "quoted" {brace} [x] \\ back' if escapes else "a {brace} [x] ]]"
    table = {
        f"{i:08x}-0000-4000-8000-{i:012x}": {
            "new": {
                "MAC": f"00:11:22:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                "locator": ["uuid", f"{i:08x}-1111-4000-8000-{i:012x}"],
                "external_ids": ["map", [["note", note], ["é", "ü"]]],
            }
        }
        for i in range(rows)
    }
    result = {"Ucast_Macs_Remote": table}
    return encode(Reply(result, "big")), result


@pytest.mark.parametrize("escapes", [True, False])
@pytest.mark.parametrize("chunk", [65536, 4093, 1 << 20])
def test_large_message_in_chunks(chunk: int, escapes: bool) -> None:
    data, result = _monitor_reply(8000, escapes)  # about 2 MB: the bulk scanner does most of it
    assert (b"\\" in data) == escapes
    assert len(data) > 4 * jsonrpc._BULK_WINDOW
    tail = encode(Request("echo", [], 1))
    events = feed(tail + data + tail + data + tail, chunk)
    assert events == [Request("echo", [], 1), Reply(result, "big")] * 2 + [Request("echo", [], 1)]


def test_large_message_leaves_gc_as_it_was() -> None:
    data, _ = _monitor_reply(8000)
    assert gc.isenabled()
    assert isinstance(feed(data)[0], Reply)
    assert gc.isenabled()
    gc.disable()
    try:
        assert isinstance(feed(data)[0], Reply)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_twenty_megabytes_in_64k_chunks_is_linear() -> None:
    data, _ = _monitor_reply(95000)
    assert len(data) > 20_000_000
    started = time.perf_counter()
    events = feed(data, 65536)
    elapsed = time.perf_counter() - started
    assert len(events) == 1 and isinstance(events[0], Reply)
    # About 0.3 s here; re-parsing from the start on each of the 300+ chunks takes minutes.
    assert elapsed < 5, elapsed


def test_huge_string_in_small_chunks() -> None:
    s = 'ab\\"' * 1_000_000
    data = encode(Request("echo", [s], 1))
    assert feed(data, 1000) == [Request("echo", [s], 1)]


def test_round_trip_through_orjson_is_exact() -> None:
    msg = Request(
        "transact", ["hardware_vtep", {"op": "select", "table": "Global", "where": []}], 14
    )
    assert orjson.loads(encode(msg)) == {"id": 14, "method": "transact", "params": msg.params}
    assert feed(encode(msg)) == [msg]
