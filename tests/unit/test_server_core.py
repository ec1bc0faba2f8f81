"""ServerCore without sockets: a fake SessionLink records what each session is sent.

Proves the method handling, the ordering rule (a commit's monitor updates reach every
session before that commit's reply), per-row merging for backlogged sessions, locks,
blocked "wait" transactions on a fake clock, cancellation, and database removal.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.jsonrpc import Error, Message, Notification, Reply, Request
from hwvtep.ovsdb.schema import bundled_schema
from hwvtep.server.core import ServerCore, SessionState

DB = "hardware_vtep"


class FakeLink:
    """Records messages (raw bytes decoded) in order; can pretend to be backlogged."""

    def __init__(self, name: str = "fake") -> None:
        self._name = name
        self.out: list[Message] = []
        self.closed = False
        self.backlog = False

    def send(self, msg: Message) -> None:
        assert not self.closed
        self.out.append(msg)

    def send_raw(self, data: bytes) -> None:
        assert not self.closed
        j = orjson.loads(data)
        assert j["id"] is None
        self.out.append(Notification(j["method"], j["params"]))

    def close(self) -> None:
        self.closed = True

    @property
    def backlogged(self) -> bool:
        return self.backlog

    @property
    def name(self) -> str:
        return self._name

    def take(self) -> list[Message]:
        out, self.out = self.out, []
        return out


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Harness:
    def __init__(self) -> None:
        self.clock = Clock()
        counter = itertools.count()
        self.core = ServerCore(now=self.clock, server_id="11111111-2222-4333-8444-555555555555",
                               new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012x}")
        self.db = Database(bundled_schema("hardware_vtep"))
        self.core.add_database(DB, self.db, None)
        self.ids = itertools.count(1)
        self.deadlines: list[float] = []
        self.core.on_blocked = self.deadlines.append

    def session(self, name: str = "s") -> tuple[SessionState, FakeLink]:
        link = FakeLink(name)
        return self.core.open_session(link), link

    def request(self, s: SessionState, method: str, params: list[Any]) -> Any:
        rid = next(self.ids)
        self.core.handle(s, Request(method, params, rid))
        return rid

    def call(self, s: SessionState, link: FakeLink, method: str, params: list[Any]) -> Message:
        rid = self.request(s, method, params)
        replies = [m for m in link.out if isinstance(m, Reply | Error) and m.id == rid]
        assert len(replies) == 1, link.out
        return replies[0]

    def result(self, s: SessionState, link: FakeLink, method: str, params: list[Any]) -> Any:
        r = self.call(s, link, method, params)
        assert isinstance(r, Reply), r
        return r.result


@pytest.fixture
def h() -> Harness:
    return Harness()


def insert_ls(name: str, **row: Any) -> dict[str, Any]:
    return {"op": "insert", "table": "Logical_Switch", "row": {"name": name, **row}}


# --- simple methods ----------------------------------------------------------------------


def test_simple_methods(h: Harness) -> None:
    s, link = h.session()
    assert h.result(s, link, "echo", [1, "two"]) == [1, "two"]
    assert h.result(s, link, "list_dbs", []) == ["_Server", DB]
    assert h.result(s, link, "get_server_id", []) == h.core.server_id
    schema = h.result(s, link, "get_schema", [DB])
    assert schema["name"] == DB and "Logical_Switch" in schema["tables"]
    err = h.call(s, link, "frobnicate", [])
    assert isinstance(err, Error) and err.error == "unknown method"


def test_replies_and_notifications_are_not_requests(h: Harness) -> None:
    s, link = h.session()
    h.core.handle(s, Reply([], "echo"))
    h.core.handle(s, Notification("whatever", []))
    h.core.handle(s, Notification("cancel", "not a list"))  # type: ignore[arg-type]
    assert link.out == []


# --- ordering of updates and replies ------------------------------------------------------


def test_commit_updates_precede_its_reply_for_everyone(h: Harness) -> None:
    a, la = h.session("a")
    b, lb = h.session("b")
    for s, link, mid in ((a, la, "ma"), (b, lb, "mb")):
        assert h.result(s, link, "monitor_cond", [DB, mid, {"Logical_Switch": [{
            "columns": ["name"]}]}]) == {}
    la.take()
    lb.take()
    rid = h.request(a, "transact", [DB, insert_ls("red")])
    out = la.take()
    assert [type(m) for m in out] == [Notification, Reply]
    assert out[0].method == "update2" and out[0].params[0] == "ma"  # type: ignore[union-attr]
    assert out[1].id == rid  # type: ignore[union-attr]
    (note,) = lb.take()
    assert isinstance(note, Notification) and note.params[0] == "mb"
    ((_uuid, change),) = note.params[1]["Logical_Switch"].items()
    assert change == {"insert": {"name": "red"}}


def test_monitor_flavours_encode_the_same_commit(h: Harness) -> None:
    s, link = h.session()
    h.result(s, link, "monitor", [DB, "v1", {"Logical_Switch": {"columns": ["name"]}}])
    h.result(s, link, "monitor_cond", [DB, "v2", {"Logical_Switch": [{"columns": ["name"]}]}])
    h.result(s, link, "monitor_cond_since", [DB, "v3", {"Logical_Switch": [{
        "columns": ["name"]}]}, "00000000-0000-0000-0000-000000000000"])
    link.take()
    h.request(s, "transact", [DB, insert_ls("x")])
    notes = [m for m in link.take() if isinstance(m, Notification)]
    assert sorted(n.method for n in notes) == ["update", "update2", "update3"]
    v3 = next(n for n in notes if n.method == "update3")
    assert v3.params[0] == "v3" and isinstance(v3.params[1], str)


# --- backlogged sessions --------------------------------------------------------------------


def test_backlogged_session_gets_one_merged_update(h: Harness) -> None:
    w, lw = h.session("writer")
    r, lr = h.session("reader")
    res = h.result(w, lw, "transact", [DB, insert_ls("keep"), insert_ls("gone"),
                                       insert_ls("changed", tunnel_key=1)])
    keep, gone, changed = (x["uuid"][1] for x in res)
    h.result(r, lr, "monitor_cond", [DB, "m", {"Logical_Switch": [{
        "columns": ["name", "tunnel_key"]}]}])
    lr.take()
    lr.backlog = True

    def where(u: str) -> list[Any]:
        return [["_uuid", "==", ["uuid", u]]]

    for i in range(2, 50):
        h.result(w, lw, "transact", [DB, {"op": "update", "table": "Logical_Switch",
                                          "where": where(changed),
                                          "row": {"tunnel_key": i}}])
    h.result(w, lw, "transact", [DB, {"op": "delete", "table": "Logical_Switch",
                                      "where": where(gone)}])
    born = h.result(w, lw, "transact", [DB, insert_ls("born")])[0]["uuid"][1]
    h.result(w, lw, "transact", [DB, insert_ls("ephemeral")])
    h.result(w, lw, "transact", [DB, {"op": "delete", "table": "Logical_Switch",
                                      "where": [["name", "==", "ephemeral"]]}])
    assert lr.out == []
    # Held back per row: at most one entry per row touched, whatever the commit count.
    (sub,) = r.monitors.values()
    assert len(sub.pending["Logical_Switch"]) == 3
    lr.backlog = False
    h.core.flush_backlog(r)
    (note,) = lr.take()
    assert isinstance(note, Notification)
    assert note.params[1] == {"Logical_Switch": {
        changed: {"modify": {"tunnel_key": 49}},
        gone: {"delete": None},
        born: {"insert": {"name": "born"}},
    }}
    assert keep not in note.params[1]["Logical_Switch"]
    # Live again.
    h.result(w, lw, "transact", [DB, insert_ls("live")])
    assert len(lr.take()) == 1


def test_backlogged_session_reply_comes_after_its_held_updates(h: Harness) -> None:
    w, lw = h.session("writer")
    r, lr = h.session("reader")
    h.result(r, lr, "monitor_cond", [DB, "m", {"Logical_Switch": [{}]}])
    lr.take()
    lr.backlog = True
    h.result(w, lw, "transact", [DB, insert_ls("a")])
    assert lr.out == []
    rid = h.request(r, "echo", ["x"])
    out = lr.take()
    assert [type(m) for m in out] == [Notification, Reply] and out[1].id == rid  # type: ignore[union-attr]


def test_cond_change_flushes_held_updates_first(h: Harness) -> None:
    w, lw = h.session("writer")
    r, lr = h.session("reader")
    h.result(r, lr, "monitor_cond", [DB, "m", {"Logical_Switch": [{"where": [
        ["name", "==", "a"]]}]}])
    lr.take()
    lr.backlog = True
    h.result(w, lw, "transact", [DB, insert_ls("a"), insert_ls("b")])
    lr.backlog = False
    h.result(r, lr, "monitor_cond_change", ["m", "m2", {"Logical_Switch": [{"where": [
        ["name", "==", "b"]]}]}])
    notes = [m for m in lr.take() if isinstance(m, Notification)]
    assert len(notes) == 2
    assert [list(c) for c in notes[0].params[1]["Logical_Switch"].values()] == [["insert"]]
    assert notes[1].params[0] == "m2"
    kinds = sorted(next(iter(c)) for c in notes[1].params[1]["Logical_Switch"].values())
    assert kinds == ["delete", "insert"]


# --- locks ------------------------------------------------------------------------------------


def test_lock_steal_unlock_and_disconnect(h: Harness) -> None:
    a, la = h.session("a")
    b, lb = h.session("b")
    c, lc = h.session("c")
    assert h.result(a, la, "lock", ["L"]) == {"locked": True}
    assert h.result(b, lb, "lock", ["L"]) == {"locked": False}
    err = h.call(a, la, "lock", ["L"])
    assert isinstance(err, Error)
    assert err.error["details"] == 'must issue "unlock" before new "lock"'
    assert h.result(a, la, "unlock", ["L"]) == {}
    assert Notification("locked", ["L"]) in lb.take()
    assert h.result(c, lc, "steal", ["L"]) == {"locked": True}
    assert Notification("stolen", ["L"]) in lb.take()
    # The lock gates "assert" in transactions.
    ok = h.result(c, lc, "transact", [DB, {"op": "assert", "lock": "L"}])
    assert ok == [{}]
    bad = h.result(b, lb, "transact", [DB, {"op": "assert", "lock": "L"}])
    assert bad[0]["error"] == "not owner"
    h.core.close_session(c)
    assert Notification("locked", ["L"]) in lb.take()


# --- blocked transactions -------------------------------------------------------------------


def wait_for_ls(name: str, timeout: int) -> dict[str, Any]:
    return {"op": "wait", "table": "Logical_Switch", "where": [["name", "==", name]],
            "columns": ["name"], "until": "==", "rows": [{"name": name}],
            "timeout": timeout}


def test_wait_unblocks_on_commit(h: Harness) -> None:
    a, la = h.session("a")
    b, lb = h.session("b")
    rid = h.request(a, "transact", [DB, wait_for_ls("x", 5000), insert_ls("after-wait")])
    assert la.take() == []
    assert h.deadlines == [h.clock.t + 5.0]
    h.result(b, lb, "transact", [DB, insert_ls("x")])
    (reply,) = la.take()
    assert isinstance(reply, Reply) and reply.id == rid
    assert reply.result[0] == {} and "uuid" in reply.result[1]


def test_wait_times_out_on_the_clock(h: Harness) -> None:
    a, la = h.session("a")
    rid = h.request(a, "transact", [DB, wait_for_ls("never", 1000)])
    h.clock.t += 0.5
    assert h.core.run_timers() == h.clock.t + 0.5
    assert la.out == []
    h.clock.t += 0.6
    assert h.core.run_timers() is None
    (reply,) = la.take()
    assert isinstance(reply, Reply) and reply.id == rid
    assert reply.result[0]["error"] == "timed out"


def test_cancel_and_duplicate_ids_of_blocked_transactions(h: Harness) -> None:
    a, la = h.session("a")
    h.core.handle(a, Request("transact", [DB, wait_for_ls("never", 60000)], "t1"))
    dup = h.core.handle(a, Request("transact", [DB, wait_for_ls("never", 60000)], "t1"))
    assert dup is None
    (err,) = la.take()
    assert isinstance(err, Error) and err.error["details"] == "duplicate request ID"
    h.core.handle(a, Notification("cancel", ["t1"]))
    assert la.take() == [Error("canceled", "t1")]
    assert h.core.pending == []


def test_blocked_transactions_of_a_closed_session_are_dropped(h: Harness) -> None:
    a, la = h.session("a")
    b, lb = h.session("b")
    h.request(a, "transact", [DB, wait_for_ls("x", 60000)])
    h.core.close_session(a)
    h.result(b, lb, "transact", [DB, insert_ls("x")])
    assert la.out == [] and h.core.pending == []


# --- monitors: cancel, ids ---------------------------------------------------------------------


def test_monitor_cancel_stops_updates(h: Harness) -> None:
    s, link = h.session()
    h.result(s, link, "monitor_cond", [DB, ["any", "json"], {"Logical_Switch": [{}]}])
    err = h.call(s, link, "monitor_cond", [DB, ["any", "json"], {"Logical_Switch": [{}]}])
    assert isinstance(err, Error)
    assert h.result(s, link, "monitor_cancel", [["any", "json"]]) == {}
    link.take()
    h.result(s, link, "transact", [DB, insert_ls("quiet")])
    assert not any(isinstance(m, Notification) for m in link.out)
    err = h.call(s, link, "monitor_cancel", [["any", "json"]])
    assert isinstance(err, Error) and err.error == "unknown monitor"


# --- databases ---------------------------------------------------------------------------------


def test_server_db_tracks_databases_and_is_read_only(h: Harness) -> None:
    s, link = h.session()
    res = h.result(s, link, "monitor_cond", ["_Server", "srv", {"Database": [{
        "columns": ["name", "model", "connected", "leader"]}]}])
    names = sorted(r["initial"]["name"] for r in res["Database"].values())
    assert names == ["_Server", DB]
    h.core.add_database("other", Database(bundled_schema("hardware_vtep")), None)
    (note,) = [m for m in link.take() if isinstance(m, Notification)]
    (change,) = note.params[1]["Database"].values()
    assert change["insert"]["name"] == "other" and change["insert"]["model"] == "standalone"
    res = h.result(s, link, "transact", ["_Server", {"op": "delete", "table": "Database",
                                                     "where": []}])
    assert res[-1]["error"] == "not allowed"


def test_remove_database_cancels_or_disconnects_its_monitors(h: Harness) -> None:
    aware, la = h.session("aware")
    plain, lp = h.session("plain")
    h.result(aware, la, "set_db_change_aware", [True])
    h.result(aware, la, "monitor_cond", [DB, "m", {"Logical_Switch": [{}]}])
    h.result(plain, lp, "monitor", [DB, "m", {"Logical_Switch": {}}])
    rid = h.request(aware, "transact", [DB, wait_for_ls("never", 60000)])
    la.take()
    h.core.remove_database(DB)
    out = la.take()
    assert Notification("monitor_canceled", ["m"]) in out
    assert Error("canceled", rid) in out
    assert lp.closed
    assert not la.closed
    err = h.call(aware, la, "transact", [DB, insert_ls("x")])
    assert isinstance(err, Error) and err.error["error"] == "unknown database"
