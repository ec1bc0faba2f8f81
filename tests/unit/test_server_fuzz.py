"""Hypothesis against the server's message layer: nothing a peer sends crashes it.

The real `SessionProtocol` runs on an event loop with a fake transport (no sockets): byte
streams mixing valid requests, plausible-but-wrong ones, random JSON and random bytes,
cut at random places, go in. Whatever comes out must be well-formed JSON-RPC, each
request gets at most one reply, a protocol error closes that session and nothing else,
and the core never reaches its "internal error" safety net. A second property drives
several sessions through random commits, monitors and backlog episodes and checks that
every replica ends equal to the database.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.jsonrpc import (
    Closed,
    Connection,
    Error,
    Notification,
    ProtocolError,
    Reply,
    Request,
    encode,
)
from hwvtep.ovsdb.schema import bundled_schema
from hwvtep.server.core import ServerCore
from hwvtep.server.listener import SessionProtocol

DB = "hardware_vtep"
SCHEMA = bundled_schema("hardware_vtep")


class FakeTransport(asyncio.Transport):
    def __init__(self, protocol: SessionProtocol, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.protocol = protocol
        self.loop = loop
        self.written = bytearray()
        self.closed = False
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class InternalErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def make_core() -> ServerCore:
    counter = itertools.count()
    core = ServerCore(now=lambda: 0.0,
                      new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012x}")
    core.add_database(DB, Database(SCHEMA), None)
    return core


# --- strategies -------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=8))
any_json = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)

tables = st.sampled_from(["Logical_Switch", "Physical_Switch", "Manager", "Nope", 5])
columns = st.sampled_from(["name", "tunnel_key", "description", "_uuid", "nope"])
values = st.one_of(st.text(max_size=5), st.integers(-3, 3), st.booleans(),
                   st.just(["set", []]), st.just(["uuid", "not-a-uuid"]), any_json)
rows = st.dictionaries(columns, values, max_size=3)
wheres = st.lists(st.tuples(columns, st.sampled_from(["==", "!=", "<", "includes", "?"]),
                            values).map(list), max_size=2)
ops = st.one_of(
    st.fixed_dictionaries({"op": st.just("insert"), "table": tables, "row": rows}),
    st.fixed_dictionaries({"op": st.just("update"), "table": tables, "where": wheres,
                           "row": rows}),
    st.fixed_dictionaries({"op": st.just("delete"), "table": tables, "where": wheres}),
    st.fixed_dictionaries({"op": st.just("select"), "table": tables, "where": wheres}),
    st.fixed_dictionaries({"op": st.just("mutate"), "table": tables, "where": wheres,
                           "mutations": st.lists(st.tuples(columns, st.sampled_from(
                               ["+=", "insert", "delete", "/="]), values).map(list),
                               max_size=2)}),
    st.fixed_dictionaries({"op": st.just("wait"), "table": tables, "where": wheres,
                           "columns": st.lists(columns, max_size=2),
                           "until": st.sampled_from(["==", "!="]),
                           "rows": st.lists(rows, max_size=1),
                           "timeout": st.integers(0, 10)}),
    st.fixed_dictionaries({"op": st.sampled_from(["commit", "abort", "comment",
                                                  "assert", "bogus"])}),
    any_json,
)
mon_requests = st.dictionaries(tables.filter(lambda t: isinstance(t, str)), st.one_of(
    st.just([{}]), st.just({}), st.lists(st.fixed_dictionaries(
        {"columns": st.lists(columns, max_size=2)}), max_size=2), any_json), max_size=2)
db_names = st.sampled_from([DB, "_Server", "nodb"])
monitor_ids = st.one_of(st.sampled_from(["m1", "m2"]), any_json)

params_by_method: dict[str, st.SearchStrategy[Any]] = {
    "echo": st.lists(any_json, max_size=3),
    "list_dbs": st.just([]),
    "get_server_id": st.just([]),
    "get_schema": st.lists(db_names, max_size=2),
    "transact": st.tuples(db_names, st.lists(ops, max_size=4)).map(
        lambda t: [t[0], *t[1]]),
    "monitor": st.tuples(db_names, monitor_ids, mon_requests).map(list),
    "monitor_cond": st.tuples(db_names, monitor_ids, mon_requests).map(list),
    "monitor_cond_since": st.tuples(db_names, monitor_ids, mon_requests,
                                    st.sampled_from(["", "0" * 36, 5])).map(list),
    "monitor_cond_change": st.tuples(monitor_ids, monitor_ids, mon_requests).map(list),
    "monitor_cancel": st.lists(monitor_ids, max_size=2),
    "lock": st.lists(st.sampled_from(["L1", "L2", 3]), max_size=2),
    "steal": st.lists(st.sampled_from(["L1", "L2"]), max_size=1),
    "unlock": st.lists(st.sampled_from(["L1", "L2"]), max_size=1),
    "set_db_change_aware": st.lists(st.one_of(st.booleans(), any_json), max_size=2),
    "nosuch": st.lists(any_json, max_size=2),
}
request_ids = st.one_of(st.integers(0, 20), st.text(max_size=3), st.lists(
    st.integers(0, 3), max_size=2))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["request"] * 6 + ["notification", "reply", "json",
                                                   "bytes", "bad-member"]))
    if kind == "request":
        method = draw(st.sampled_from(sorted(params_by_method)))
        params = draw(params_by_method[method])
        return orjson.dumps({"method": method, "params": params,
                             "id": draw(request_ids)})
    if kind == "notification":
        return orjson.dumps({"method": draw(st.sampled_from(["cancel", "echo", "x"])),
                             "params": draw(st.lists(request_ids, max_size=2)),
                             "id": None})
    if kind == "reply":
        return orjson.dumps({"result": draw(any_json), "error": None,
                             "id": draw(st.sampled_from(["echo", 1]))})
    if kind == "json":
        return orjson.dumps(draw(any_json))
    if kind == "bad-member":
        return orjson.dumps({"method": "echo", "params": [], "id": 1, "x": 1})
    return draw(st.binary(max_size=20))


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    data = b"".join(draw(st.lists(messages(), min_size=1, max_size=8)))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return data, cuts


# --- property 1: nothing crashes, output is well formed ------------------------------------


def _check_output(written: bytes, request_ids_sent: int) -> None:
    conn = Connection()
    conn.receive_data(written)
    conn.receive_data(b"")
    replies: list[Any] = []
    for ev in conn.events():
        assert not isinstance(ev, ProtocolError), f"server wrote bad JSON-RPC: {ev}"
        if isinstance(ev, Closed):
            break
        assert isinstance(ev, Reply | Error | Notification | Request), ev
        if isinstance(ev, Reply | Error):
            replies.append(ev.id)
    # A reply per request at most (a blocked "wait" may still be pending).
    assert len(replies) <= request_ids_sent


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(streams(), st.integers(1, 3))
def test_no_input_crashes_a_session(loop: asyncio.AbstractEventLoop,
                                    stream: tuple[bytes, list[int]], n_sessions: int) -> None:
    data, cuts = stream
    errors = InternalErrors()
    logging.getLogger("hwvtep").addHandler(errors)

    async def scenario() -> None:
        core = make_core()
        protos = []
        for _ in range(n_sessions):
            p = SessionProtocol(core, max_message_size=4096)
            t = FakeTransport(p, loop)
            p.connection_made(t)
            protos.append((p, t))
        # Session 0 gets the fuzz; the others watch the database.
        for p, _ in protos[1:]:
            p.data_received(encode(Request("monitor_cond", [DB, "w", {
                "Logical_Switch": [{"columns": ["name"]}]}], "w")))
        fuzzed, ft = protos[0]
        bounds = [0, *cuts, len(data)]
        for a, b in itertools.pairwise(bounds):
            if ft.closed:
                break
            fuzzed.data_received(data[a:b])
        if not ft.closed:
            fuzzed.eof_received()
        await asyncio.sleep(0)
        _check_output(bytes(ft.written), data.count(b'"method"'))
        # The others are unharmed and still served.
        for p, t in protos[1:]:
            assert not t.closed
            before = len(t.written)
            p.data_received(encode(Request("echo", ["ok"], "ok")))
            assert encode(Reply(["ok"], "ok")) in bytes(t.written[before:])
            _check_output(bytes(t.written), 2)
        # And the database still takes a commit.
        other = SessionProtocol(core)
        ot = FakeTransport(other, loop)
        other.connection_made(ot)
        other.data_received(encode(Request("transact", [DB, {
            "op": "insert", "table": "Logical_Switch", "row": {"name": "after-fuzz"}}], 1)))
        assert b'"uuid"' in bytes(ot.written)
        for _, t in [*protos, (other, ot)]:
            t.close()
        await asyncio.sleep(0)
        assert not core.sessions

    try:
        loop.run_until_complete(scenario())
    finally:
        logging.getLogger("hwvtep").removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]


# --- property 2: replicas converge under random commits and backlog -----------------------


class Link:
    def __init__(self) -> None:
        self.out: list[Any] = []
        self.backlog = False

    def send(self, msg: Any) -> None:
        self.out.append(msg.to_json())

    def send_raw(self, data: bytes) -> None:
        self.out.append(orjson.loads(data))

    def close(self) -> None:
        pass

    @property
    def backlogged(self) -> bool:
        return self.backlog

    @property
    def name(self) -> str:
        return "p"


actions = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 9), st.integers(0, 3)),
    st.tuples(st.just("update"), st.integers(0, 9), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.integers(0, 9), st.just(0)),
    st.tuples(st.just("backlog"), st.integers(0, 2), st.booleans().map(int)),
), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(actions)
def test_replicas_converge_through_backlog(steps: list[tuple[str, int, int]]) -> None:
    core = make_core()
    writer_link = Link()
    writer = core.open_session(writer_link)
    watchers = []
    for i, method in enumerate(["monitor", "monitor_cond", "monitor_cond_since"]):
        link = Link()
        s = core.open_session(link)
        req: Any = {"Logical_Switch": {"columns": ["name", "tunnel_key"]}} \
            if method == "monitor" else {"Logical_Switch": [{"columns": ["name",
                                                                          "tunnel_key"]}]}
        params = [DB, f"m{i}", req]
        if method == "monitor_cond_since":
            params.append("00000000-0000-0000-0000-000000000000")
        core.handle(s, Request(method, params, "mon"))
        watchers.append((s, link, method))
    rid = itertools.count(1)
    for kind, n, arg in steps:
        name = f"ls{n}"
        if kind == "backlog":
            s, link, _ = watchers[n]
            link.backlog = bool(arg)
            if not arg:
                core.flush_backlog(s)
            continue
        if kind == "insert":
            op: Any = {"op": "insert", "table": "Logical_Switch",
                       "row": {"name": f"{name}-{next(rid)}", "tunnel_key": arg}}
        elif kind == "update":
            op = {"op": "update", "table": "Logical_Switch",
                  "where": [["name", ">=", name]], "row": {"tunnel_key": arg}}
        else:
            op = {"op": "delete", "table": "Logical_Switch",
                  "where": [["tunnel_key", "==", n % 4]]}
        core.handle(writer, Request("transact", [DB, op], next(rid)))
    for s, link, _ in watchers:
        link.backlog = False
        core.flush_backlog(s)
    db = core.dbs[DB].db
    expected = {u: (r["name"][0], r["tunnel_key"]) for u, r in
                db.tables["Logical_Switch"].items()}
    for _, link, method in watchers:
        replica: dict[str, tuple[str, tuple[int, ...]]] = {}
        for msg in link.out:
            if msg.get("id") == "mon":
                updates = msg["result"][2] if method == "monitor_cond_since" else msg["result"]
            elif msg.get("method") in ("update", "update2", "update3"):
                updates = msg["params"][-1]
            else:
                continue
            for uuid, ch in updates.get("Logical_Switch", {}).items():
                _apply(replica, uuid, ch, method == "monitor")
        assert replica == expected, method


def _tk(j: Any) -> tuple[int, ...]:
    if isinstance(j, list):  # ["set", [...]]
        return tuple(j[1])
    return (j,)


def _apply(replica: dict[str, Any], uuid: str, ch: Any, v1: bool) -> None:
    if v1:
        new = ch.get("new")
        if new is None:
            del replica[uuid]
        else:
            replica[uuid] = (new["name"], _tk(new["tunnel_key"]))
        return
    ((kind, body),) = ch.items()
    if kind == "delete":
        del replica[uuid]
    elif kind in ("insert", "initial"):
        replica[uuid] = (body.get("name", ""), _tk(body.get("tunnel_key", ["set", []])))
    else:
        name, tk = replica[uuid]
        replica[uuid] = (body.get("name", name),
                         _tk(body["tunnel_key"]) if "tunnel_key" in body else tk)
