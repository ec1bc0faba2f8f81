"""SessionCore driven by hand: remotes in turn, backoff, probes, echo, request queueing, the
_Server leader check. Time is a number we choose; the "server" is a JSON-RPC parser we
answer by hand."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hwvtep.client.errors import RemoteError
from hwvtep.client.remote import Remote, parse_remote, parse_remotes
from hwvtep.client.session import (
    SERVER_MONITOR_ID,
    Connect,
    Disconnect,
    Lost,
    Phase,
    Ready,
    SessionCore,
    check_server_database,
)
from hwvtep.ovsdb.jsonrpc import Connection, Error, Notification, Reply, Request

R1, R2, R3 = (parse_remote(f"tcp:10.0.0.{i}:6641") for i in (1, 2, 3))
UNIX = parse_remote("unix:/run/db.sock")


class Peer:
    """The server end of the wire: decodes what the client sent."""

    def __init__(self, core: SessionCore) -> None:
        self.core = core
        self.conn = Connection()

    def take(self) -> list[Any]:
        data = self.core.data_to_send()
        if data:
            self.conn.receive_data(data)
        return list(self.conn.events())

    def say(self, gen: int, msg: dict[str, Any], now: int) -> None:
        self.core.receive(gen, orjson.dumps(msg), now)


def connect(core: SessionCore, now: int) -> Connect:
    action = core.run(now)
    assert isinstance(action, Connect), action
    return action


def events(core: SessionCore) -> list[Any]:
    return list(core.events())


# --- remotes -------------------------------------------------------------------------------


def test_parse_remotes() -> None:
    assert parse_remotes("unix:/a,tcp:1.2.3.4,ssl:[::1]:6641") == (
        Remote("unix", path="/a"), Remote("tcp", host="1.2.3.4", port=6640),
        Remote("ssl", host="::1", port=6641))
    assert str(parse_remote("ssl:[::1]:6641")) == "ssl:[::1]:6641"
    assert parse_remote("tcp:fe80::1").host == "fe80::1"
    assert parse_remotes(["tcp:a:1,tcp:b:2", R3]) == (
        Remote("tcp", "a", 1), Remote("tcp", "b", 2), R3)
    for bad in ("ptcp:6640", "tcp:", "tcp:a:99999", "tcp:a:x", "foo:bar", "unix:", ""):
        with pytest.raises(RemoteError):
            parse_remotes(bad)


# --- connecting ------------------------------------------------------------------------------


def test_remotes_in_turn_then_backoff_doubles() -> None:
    core = SessionCore([R1, R2, R3], 0)
    tried = []
    now = 0
    # One free round over the remotes, then 1 s, 2 s, 4 s, 8 s (max) between attempts.
    expected_starts = [0, 0, 0, 1000, 3000, 7000, 15000, 23000]
    for start in expected_starts:
        if start > now:
            assert core.run(start - 1) is None
        now = start
        action = connect(core, now)
        tried.append((now, action.remote))
        core.connect_failed(action.gen, now, "connection refused")
    assert [r for _, r in tried] == [R1, R2, R3, R1, R2, R3, R1, R2]
    assert core.timeout(now) == 8000
    lost = [e for e in events(core) if isinstance(e, Lost)]
    assert len(lost) == len(expected_starts)
    assert not any(e.was_ready for e in lost)
    assert core.last_error == f"{R2}: connection refused"


def test_stale_attempts_are_ignored_and_attempts_time_out() -> None:
    core = SessionCore([R1, R2], 0)
    a1 = connect(core, 0)
    # No answer within the attempt timeout (1 s): abandon it.
    assert core.run(999) is None
    assert core.run(1000) == Disconnect(a1.gen)
    assert [e.reason for e in events(core)] == ["connection attempt timed out"]
    a2 = connect(core, 1000)
    assert a2.remote == R2
    # The first attempt completing late must not count.
    assert core.connected(a1.gen, 1001) is False
    assert core.connected(a2.gen, 1001) is True
    assert core.ready


def test_unix_remote_does_not_probe_tcp_does() -> None:
    core = SessionCore([UNIX], 0)
    core.connected(connect(core, 0).gen, 0)
    assert core.timeout(10) is None
    core2 = SessionCore([R1], 0)
    core2.connected(connect(core2, 0).gen, 0)
    assert core2.timeout(0) == 5000


def test_probe_answered_keeps_connection_unanswered_drops_it() -> None:
    core = SessionCore([R1, R2], 0, probe_interval=3000)
    peer = Peer(core)
    gen = connect(core, 0).gen
    core.connected(gen, 0)
    assert isinstance(core.next_event(), Ready)
    assert core.run(2999) is None and peer.take() == []
    assert core.run(3000) is None
    assert peer.take() == [Request("echo", [], "echo")]
    peer.say(gen, {"id": "echo", "result": [], "error": None}, 4000)
    assert events(core) == []  # the probe's answer is ours, not the caller's
    # Heard from at 4000: next probe at 7000, then silence until 10000 drops it.
    assert core.run(6999) is None
    assert core.run(7000) is None
    assert peer.take() == [Request("echo", [], "echo")]
    assert core.run(9999) is None
    assert core.run(10000) == Disconnect(gen)
    (lost,) = events(core)
    assert isinstance(lost, Lost) and lost.was_ready
    assert lost.reason == "no response to inactivity probe after 6 seconds, disconnecting"
    # The first round over the remotes is free of backoff: the next remote at once.
    assert connect(core, 10000).remote == R2


def test_server_echo_is_answered() -> None:
    core = SessionCore([R1], 0)
    peer = Peer(core)
    gen = connect(core, 0).gen
    core.connected(gen, 0)
    peer.say(gen, {"id": "echo", "method": "echo", "params": ["x", 1]}, 5)
    peer.say(gen, {"id": 7, "method": "bogus", "params": []}, 5)
    assert peer.take() == [Reply(["x", 1], "echo"), Error("unknown method", 7)]
    assert events(core) == [Ready(R1)]


def test_requests_wait_for_a_connection_and_fail_when_it_drops() -> None:
    core = SessionCore([R1], 0)
    peer = Peer(core)
    a = core.request("list_dbs", [])
    b = core.request("echo", ["b"])
    gen = connect(core, 0).gen
    assert peer.take() == []
    core.connected(gen, 0)
    assert peer.take() == [Request("list_dbs", [], a), Request("echo", ["b"], b)]
    peer.say(gen, {"id": a, "result": ["db"], "error": None}, 1)
    assert events(core) == [Ready(R1), Reply(["db"], a)]
    c = core.request("transact", ["db"])
    assert peer.take() == [Request("transact", ["db"], c)]
    core.closed(gen, 2, "connection reset")
    (lost,) = events(core)
    assert lost == Lost(R1, "connection reset", (b, c), True, False)
    # Sent requests are never resent; new ones wait for the next connection.
    d = core.request("echo", ["d"])
    assert core.run(2) is None  # backing off
    gen2 = connect(core, 1002).gen
    core.connected(gen2, 1002)
    assert peer.take() == [Request("echo", ["d"], d)]
    # An answer to a request of the old connection cannot arrive on the new one; an
    # unknown id is dropped.
    peer.say(gen2, {"id": c, "result": [{}], "error": None}, 1003)
    assert events(core) == [Ready(R1)]


def test_withdraw_and_notifications() -> None:
    core = SessionCore([R1], 0)
    peer = Peer(core)
    a = core.request("echo", [])
    assert core.is_pending(a)
    assert core.withdraw(a) is True
    assert not core.notify("cancel", [a])  # not connected
    gen = connect(core, 0).gen
    core.connected(gen, 0)
    assert peer.take() == []
    b = core.request("transact", [])
    assert core.withdraw(b) is False  # already sent
    assert core.notify("cancel", [b])
    assert peer.take() == [Request("transact", [], b), Notification("cancel", [b])]
    peer.say(gen, {"id": b, "result": None, "error": "canceled"}, 1)
    peer.say(gen, {"id": None, "method": "locked", "params": ["l"]}, 1)
    assert events(core) == [Ready(R1), Notification("locked", ["l"])]


def test_protocol_error_and_eof_drop_the_connection() -> None:
    core = SessionCore([R1], 0)
    gen = connect(core, 0).gen
    core.connected(gen, 0)
    core.receive(gen, b'{"id": 1, "result": 2, "bogus": 3}', 1)
    *_, lost = events(core)
    assert isinstance(lost, Lost)
    assert lost.reason == 'JSON-RPC protocol error: message has unexpected member "bogus"'
    assert core.phase is Phase.IDLE
    gen = connect(core, 1001).gen
    core.connected(gen, 1001)
    core.receive(gen, b"", 1002)
    *_, lost = events(core)
    assert isinstance(lost, Lost) and lost.reason == "connection closed by peer"


def test_max_tries_and_close_fail_queued_requests() -> None:
    core = SessionCore([R1], 0, max_tries=2)
    a = core.request("echo", [])
    core.connect_failed(connect(core, 0).gen, 0, "refused")
    core.connect_failed(connect(core, 1000).gen, 1000, "refused")
    assert core.run(100000) is None
    assert not core.alive
    lost = [e for e in events(core) if isinstance(e, Lost)]
    assert lost[-1].final and a in lost[-1].failed
    core2 = SessionCore([R1], 0)
    b = core2.request("echo", [])
    core2.connected(connect(core2, 0).gen, 0)
    c = core2.request("echo", [])
    events(core2)
    assert isinstance(core2.close(5), Disconnect)
    (lost2,) = events(core2)
    assert lost2.final and set(lost2.failed) == {b, c}
    with pytest.raises(RuntimeError):
        core2.request("echo", [])


# --- the _Server check -----------------------------------------------------------------------


def db_row(name: str = "db", model: str = "clustered", *, leader: bool = True,
           connected: bool = True, index: int | None = 10, schema: str = "{}") -> dict[str, Any]:
    return {"name": name, "model": model, "leader": leader, "connected": connected,
            "schema": ["set", [schema]] if schema else ["set", []],
            "cid": ["set", [["uuid", "6f7a4b6e-0000-4000-8000-000000000001"]]],
            "index": ["set", [index]] if index is not None else ["set", []]}


def test_check_server_database_reasons() -> None:
    def why(row: dict[str, Any], leader_only: bool = True, min_index: int = 0) -> str | None:
        return check_server_database([row], "db", leader_only, min_index)[0]

    assert why(db_row()) is None
    assert why(db_row(model="standalone", leader=False, connected=False)) is None
    assert why(db_row(name="other")) == "server does not have db database"
    assert why(db_row(schema="")) == ("clustered database server has not yet joined "
                                      "cluster; trying another server")
    assert why(db_row(connected=False)) == ("clustered database server is disconnected "
                                            "from cluster; trying another server")
    assert why(db_row(leader=False)) == ("clustered database server is not cluster "
                                         "leader; trying another server")
    assert why(db_row(leader=False), leader_only=False) is None
    assert why(db_row(index=5), min_index=6) == ("clustered database server has stale "
                                                 "data; trying another server")
    assert check_server_database([db_row(index=12)], "db", True, 6) == (None, 12)
    assert why(db_row(model="relay")) == ("relay database server cannot be a leader; "
                                          "trying another server")


def server_check(core: SessionCore, peer: Peer, gen: int, row: dict[str, Any],
                 now: int) -> None:
    (req,) = peer.take()
    assert req.method == "monitor"
    assert req.params[:2] == ["_Server", SERVER_MONITOR_ID]
    peer.say(gen, {"id": req.id, "result": {"Database": {"u1": {"new": row}}},
                   "error": None}, now)


def test_leader_only_moves_on_to_the_leader_and_follows_it() -> None:
    core = SessionCore([R1, R2, R3], 0, database="db")
    peer = Peer(core)
    a = core.request("transact", ["db"])
    gen = connect(core, 0).gen
    core.connected(gen, 0)
    server_check(core, peer, gen, db_row(leader=False), 1)
    assert not core.ready
    assert core.run(1) == Disconnect(gen)
    (lost,) = events(core)
    assert lost.reason.endswith("is not cluster leader; trying another server")
    assert not lost.failed and core.is_pending(a)  # never sent to the follower
    gen = connect(core, 1).gen  # no backoff during the first round
    core.connected(gen, 1)
    server_check(core, peer, gen, db_row(index=20), 2)
    assert core.ready and core.remote == R2
    assert peer.take() == [Request("transact", ["db"], a)]
    assert events(core) == [Ready(R2)]
    # Leadership moves away: leave at once, without backoff, for the next remote.
    peer.say(gen, {"id": None, "method": "update",
                   "params": [SERVER_MONITOR_ID, {"Database": {"u1": {
                       "old": {"leader": True}, "new": db_row(leader=False, index=21)}}}]},
             5000)
    assert core.run(5000) == Disconnect(gen)
    (lost,) = events(core)
    assert lost.was_ready and "not cluster leader" in lost.reason
    action = connect(core, 5000)
    assert action.remote == R3
    core.connected(action.gen, 5000)
    # R3 claims leadership of an older log: stale.
    server_check(core, peer, action.gen, db_row(index=15), 5001)
    assert core.run(5001) == Disconnect(action.gen)
    assert "stale data" in events(core)[0].reason
    assert core.min_index == 20  # only a server that qualifies raises it


def test_server_without_server_database_is_usable() -> None:
    core = SessionCore([R1], 0, database="db")
    peer = Peer(core)
    gen = connect(core, 0).gen
    core.connected(gen, 0)
    (req,) = peer.take()
    peer.say(gen, {"id": req.id, "error": {"error": "unknown database"}, "result": None}, 1)
    assert core.ready


def test_check_of_standalone_database() -> None:
    core = SessionCore([UNIX], 0, database="db")
    peer = Peer(core)
    gen = connect(core, 0).gen
    core.connected(gen, 0)
    server_check(core, peer, gen, db_row(model="standalone", leader=True, index=None), 1)
    assert core.ready
    # Updates about other databases do not matter.
    peer.say(gen, {"id": None, "method": "update", "params": [SERVER_MONITOR_ID, {
        "Database": {"u2": {"new": db_row(name="x", leader=False)}}}]}, 2)
    assert core.run(2) is None and core.ready
