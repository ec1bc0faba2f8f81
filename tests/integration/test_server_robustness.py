"""One bad, slow or silent client costs only its own session.

Garbage on the wire closes that connection (as Open vSwitch does) and bad requests get
RFC 7047 errors; other sessions, their monitors and the committed data are untouched.
A monitor client that stops reading holds at most its rows' worth of merged updates and
is not read from meanwhile; others keep their latency; once it reads again its replica
equals the database. Idle tcp peers are probed with "echo" and dropped if they do not
answer.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_util import RawClient, Replica, Server, rss_kib, table_from_select

from hwvtep.ovsdb.jsonrpc import Error, Notification, Reply, Request, encode
from hwvtep.ovsdb.schema import bundled_schema

DB = "hardware_vtep"
SCHEMA = bundled_schema("hardware_vtep")
COLUMNS = ["name", "description", "tunnel_key"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("robust") / "s",
               extra=["--max-message-size=65536"]).start()
    yield s
    s.stop()


class Bystander:
    """A session with a monitor that must see every commit, whatever others do."""

    def __init__(self, srv: Server) -> None:
        self.c = srv.client()
        self.replica = Replica(SCHEMA, {"Logical_Switch": COLUMNS})
        initial = self.c.result("monitor_cond", [DB, "watch", {
            "Logical_Switch": [{"columns": COLUMNS}]}])
        self.replica.apply(initial, 2)

    def commit_and_check(self, name: str) -> None:
        self.c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                             "row": {"name": name}})
        for note in self.c.drain(0.05):
            self.replica.apply_notification(note)
        rows = self.c.transact(DB, {"op": "select", "table": "Logical_Switch",
                                    "where": []})[0]["rows"]
        assert self.replica.tables["Logical_Switch"] == \
            table_from_select(SCHEMA, "Logical_Switch", rows, COLUMNS)
        assert any(r["name"] == name for r in rows)

    def close(self) -> None:
        self.c.close()


# --- garbage on the wire: that session is closed, nothing else changes ----------------

CLOSING_INPUTS = {
    "bad json": b'{"method":"echo","params":[],"id":1}{"method": garbage}',
    "invalid utf-8": b'{"method":"echo","params":["\xff\xfe"],"id":1}',
    "truncated utf-8": b'{"method":"echo","params":["\xc3"],"id":1}',
    "array message": b"[1,2,3]",
    "string message": b'"just a string"',
    "params not an array": b'{"method":"transact","params":{},"id":1}',
    "unknown member": b'{"method":"echo","params":[],"id":1,"extra":2}',
    "request without params": b'{"method":"echo","id":1}',
    "method not a string": b'{"method":5,"params":[],"id":1}',
    "escaped nul": b'{"method":"echo","params":["a\\u0000b"],"id":1}',
    "byte order mark": b'\xef\xbb\xbf{"method":"echo","params":[],"id":1}',
    "number out of range": b'{"method":"echo","params":[1e400],"id":1}',
    "unexpected reply": b'{"id":5,"result":[],"error":null}',
    "unexpected error": b'{"id":5,"result":null,"error":"x"}',
    "too deep": b"[" * 5000 + b"]" * 5000,
    "oversized": b'{"method":"echo","params":["' + b"x" * 70_000 + b'"],"id":1}',
    "oversized, never ending": b'{"method":"echo","params":["' + b"x" * 200_000,
}


@pytest.mark.parametrize("name", sorted(CLOSING_INPUTS))
def test_garbage_closes_only_that_session(srv: Server, name: str) -> None:
    bystander = Bystander(srv)
    try:
        with srv.client() as bad:
            # A good request first: what came before the garbage is still served.
            rid = bad.request("echo", ["before"])
            for i in range(0, len(CLOSING_INPUTS[name]), 7000):
                try:
                    bad.send_raw(CLOSING_INPUTS[name][i:i + 7000])
                except BrokenPipeError:
                    break  # closed as soon as the input was known to be bad
            assert bad.wait_reply(rid) == Reply(["before"], rid)
            bad.wait_closed(5)
        bystander.commit_and_check(f"after {name}")
        assert bystander.c.result("echo", [name]) == [name]
    finally:
        bystander.close()


def test_message_just_under_the_limit_is_served(srv: Server) -> None:
    with srv.client() as c:
        payload = "y" * 60_000
        assert c.result("echo", [payload]) == [payload]


def test_garbage_split_in_tiny_pieces_still_closes(srv: Server) -> None:
    with srv.client() as bad:
        for b in b'{"method":"echo","params":["\xe2\x82"], "id": 1}':
            bad.send_raw(bytes([b]))
        bad.wait_closed(5)


def test_client_vanishing_mid_message(srv: Server) -> None:
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(srv.sock))
        s.sendall(b'{"method":"transact","params":["hardware_vtep",{"op":"insert",')
        s.close()
    with srv.client() as c:
        assert c.result("echo", ["alive"]) == ["alive"]


BAD_REQUESTS: list[tuple[str, list[Any], Any]] = [
    ("nosuch", [], "unknown method"),
    ("transact", [], {"error": "syntax error", "syntax": "[]",
                      "details": "transact request params must begin with <db-name>"}),
    ("transact", ["nodb"], {"error": "unknown database", "syntax": '["nodb"]',
                            "details": "transact request specifies unknown database nodb"}),
    ("get_schema", [], {"error": "syntax error", "syntax": "[]",
                        "details": "get_schema request params must begin with <db-name>"}),
    ("get_schema", ["x", "y"], {"error": "unknown database", "syntax": '["x","y"]',
                                "details": "get_schema request specifies unknown database x"}),
    ("lock", [1], {"error": "syntax error", "syntax": "[1]",
                   "details": "lock request params must be <id>"}),
    ("unlock", ["never_locked"], {
        "error": "syntax error", "syntax": '["never_locked"]',
        "details": 'unlock: "unlock" without "lock" or "steal"'}),
    ("monitor_cancel", [], "invalid parameters"),
    ("monitor_cancel", ["nope"], "unknown monitor"),
    ("monitor_cond_change", [1, 2], {"error": "syntax error", "syntax": "[1,2]",
                                     "details": "invalid parameters"}),
    ("set_db_change_aware", [1], {
        "error": "syntax error", "syntax": "[1]",
        "details": "set_db_change_aware: true or false parameter expected"}),
]


@pytest.mark.parametrize(("method", "params", "error"), BAD_REQUESTS,
                         ids=[f"{m}{p}" for m, p, _ in BAD_REQUESTS])
def test_bad_request_gets_ovs_error_and_session_lives(srv: Server, method: str,
                                                     params: list[Any], error: Any) -> None:
    """Error objects as ovsdb-server 3.1 sends them (recorded from it)."""
    with srv.client() as c:
        reply = c.call(method, params)
        assert isinstance(reply, Error), reply
        assert reply.error == error
        assert c.result("echo", ["still here"]) == ["still here"]


@pytest.mark.parametrize("params", [
    ["hardware_vtep", 5],
    ["hardware_vtep", {"op": "frobnicate"}],
    ["hardware_vtep", {"op": "insert", "table": "Nope", "row": {}}],
    ["hardware_vtep", {"op": "insert", "table": "Logical_Switch", "row": {"name": 5}}],
])
def test_bad_operations_fail_the_transaction_only(srv: Server, params: list[Any]) -> None:
    with srv.client() as c:
        before = c.transact(DB, {"op": "select", "table": "Logical_Switch", "where": []})
        result = c.result("transact", params)
        assert isinstance(result, list) and "error" in result[-1]
        assert isinstance(result[-1]["error"], str)
        assert c.transact(DB, {"op": "select", "table": "Logical_Switch",
                               "where": []}) == before


def test_many_connections_leave_no_file_descriptors(srv: Server) -> None:
    assert srv.pid is not None
    with srv.client() as c:
        c.result("echo", [])
    fds_before = len(os.listdir(f"/proc/{srv.pid}/fd"))
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", srv.port)) if i % 2 else \
            socket.socket(socket.AF_UNIX)
        if not i % 2:
            s.connect(str(srv.sock))
        if i % 3 == 0:
            s.sendall(b'{"method":"echo","params":[],"id":1}')
        s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(os.listdir(f"/proc/{srv.pid}/fd")) <= fds_before:
            break
        time.sleep(0.05)
    assert len(os.listdir(f"/proc/{srv.pid}/fd")) <= fds_before


# --- a monitor client that stops reading --------------------------------------------------


def _latencies(c: RawClient, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        c.transact(DB, {"op": "update", "table": "Logical_Switch",
                        "where": [["name", "==", "probe"]], "row": {"tunnel_key": i}})
        out.append(time.perf_counter() - t)
    return out


def test_slow_monitor_client_is_bounded_and_catches_up(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    try:
        _slow_client_scenario(srv)
    finally:
        srv.stop()


def _slow_client_scenario(srv: Server) -> None:
    assert srv.pid is not None
    n_rows, big = 200, 8000
    writer = srv.client(timeout=60)
    rows = writer.transact(DB, *[
        {"op": "insert", "table": "Logical_Switch",
         "row": {"name": f"ls{i}", "description": "d" * big}} for i in range(n_rows)],
        {"op": "insert", "table": "Logical_Switch", "row": {"name": "probe"}})
    uuids = [r["uuid"][1] for r in rows[:n_rows]]
    baseline = statistics.median(_latencies(writer, 200))

    # The slow client: a tiny receive buffer, a monitor on the big rows, then no reads.
    sock = socket.socket(socket.AF_UNIX)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(str(srv.sock))
    sock.sendall(encode(Request("monitor_cond", [DB, "slow", {
        "Logical_Switch": [{"columns": COLUMNS}]}], "m")))
    time.sleep(0.3)
    rss_start = rss_kib(srv.pid)

    # 3,000 commits of ~8 kB each: 24 MB of updates if each were kept.
    n_commits = 3000
    for k in range(n_commits):
        writer.transact(DB, {"op": "update", "table": "Logical_Switch",
                             "where": [["_uuid", "==", ["uuid", uuids[k % n_rows]]]],
                             "row": {"description": f"{k}-" + "u" * big}})
        if k % 500 == 0:
            # Deletes and inserts too, so merging meets every kind of change.
            writer.transact(DB, {"op": "insert", "table": "Logical_Switch",
                                 "row": {"name": f"new{k}"}},
                            {"op": "delete", "table": "Logical_Switch",
                             "where": [["name", "==", f"ls{k % n_rows}"]]})
    growth_mib = (rss_kib(srv.pid) - rss_start) / 1024
    # The send queue's high-water mark (4 MiB) plus merged rows (200 x 8 kB) and slack.
    assert growth_mib < 16, f"server grew {growth_mib:.1f} MiB for a stalled client"

    # Others are not slowed down by it.
    during = statistics.median(_latencies(writer, 200))
    assert during < max(3 * baseline, baseline + 0.002), (baseline, during)

    # The server does not read from a client whose output is backlogged: what it can
    # push is bounded by socket buffers, not by the server's memory.
    sock.setblocking(False)
    pushed = 0
    chunk = encode(Request("echo", ["z" * 60_000], "e"))
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            pushed += sock.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
    assert pushed < 8 * 1024 * 1024, f"server kept reading: {pushed} bytes accepted"
    sock.setblocking(True)

    # It resumes: everything it is owed arrives, merged, and its view equals the db.
    slow = RawClient(sock, timeout=30)
    replica = Replica(SCHEMA, {"Logical_Switch": COLUMNS})
    notes: list[Notification] = []
    echo_replies = 0
    got_monitor_reply = False
    try:
        while True:
            m = slow.recv(1.0)
            if isinstance(m, Reply) and m.id == "m":
                replica.apply(m.result, 2)
                got_monitor_reply = True
            elif isinstance(m, Reply) and m.id == "e":
                echo_replies += 1
            elif isinstance(m, Notification):
                notes.append(m)
                replica.apply_notification(m)
    except TimeoutError:
        pass
    assert got_monitor_reply
    assert echo_replies > 0  # the requests it pushed were served once it read again
    assert len(notes) < n_commits / 3, f"{len(notes)} updates: not merged"
    final = writer.transact(DB, {"op": "select", "table": "Logical_Switch",
                                 "where": []})[0]["rows"]
    assert replica.tables["Logical_Switch"] == table_from_select(
        SCHEMA, "Logical_Switch", final, COLUMNS)
    # And it now follows commits live again.
    writer.transact(DB, {"op": "insert", "table": "Logical_Switch",
                         "row": {"name": "live"}})
    (note,) = slow.drain(0.3)
    replica.apply_notification(note)
    assert any(r["name"] == frozenset(["live"])
               for r in replica.tables["Logical_Switch"].values())
    slow.close()
    writer.close()


# --- inactivity probes ---------------------------------------------------------------------


def _probe_timeline(srv: Server, answer: bool, duration: float) -> tuple[list[float], float]:
    """Connect over tcp and stay silent (or answer echo): when probes came, when closed."""
    c = srv.tcp_client()
    c.answer_echo = False
    start = time.monotonic()
    probes: list[float] = []
    closed_at = -1.0
    try:
        while time.monotonic() - start < duration:
            try:
                m = c.recv(0.05)
            except TimeoutError:
                continue
            except EOFError:
                closed_at = time.monotonic() - start
                break
            if isinstance(m, Request) and m.method == "echo":
                probes.append(time.monotonic() - start)
                assert m.params == [] and m.id == "echo"
                if answer:
                    c.send(Reply(m.params, m.id))
    finally:
        c.close()
    return probes, closed_at


@pytest.fixture(scope="module")
def probing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("probe") / "s",
               extra=["--inactivity-probe=400"]).start()
    yield s
    s.stop()


def test_silent_tcp_peer_is_dropped_after_two_intervals(probing: Server) -> None:
    probes, closed_at = _probe_timeline(probing, answer=False, duration=5)
    assert len(probes) == 1
    assert 0.35 <= probes[0] <= 0.8, probes
    assert closed_at > 0, "a peer that never answers was kept"
    assert 0.75 <= closed_at <= 1.6, closed_at
    assert "no response to inactivity probe after" in probing.log_text()


def test_answering_tcp_peer_stays(probing: Server) -> None:
    probes, closed_at = _probe_timeline(probing, answer=True, duration=2.5)
    assert closed_at < 0, f"dropped at {closed_at}s although it answered {probes}"
    assert len(probes) >= 3  # probed every interval or so, and kept


def test_unix_peers_are_not_probed(probing: Server) -> None:
    with probing.client() as c:
        c.answer_echo = False
        with pytest.raises(TimeoutError):
            c.recv(1.5)
        assert c.result("echo", ["still"]) == ["still"]


@pytest.mark.slow
def test_default_probe_interval_is_five_seconds(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    try:
        probes, closed_at = _probe_timeline(srv, answer=False, duration=14)
        assert len(probes) == 1 and 4.8 <= probes[0] <= 6.5, probes
        assert 9.8 <= closed_at <= 12, closed_at
    finally:
        srv.stop()
