"""Remotes other than plain listeners: outgoing connections and db: references.

An active remote (`--remote=tcp:IP:PORT`) connects to a "controller" that listens,
serves it like any client, and reconnects with Open vSwitch's backoff when dropped.
`--remote=db:hardware_vtep,Global,managers` takes remotes from Manager rows: the server
listens or connects as they say, applies their inactivity_probe, reports is_connected
and status the way ovsdb-server does (checked side by side with it), and stops when the
row goes away.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from server_util import MISSING_OVS, RawClient, Server, free_port

from hwvtep.ovsdb.jsonrpc import Notification, Request

DB = "hardware_vtep"
MANAGERS = f"db:{DB},Global,managers"

KINDS = ["hwvtep", pytest.param("ovs", marks=[pytest.mark.ovs, pytest.mark.skipif(
    bool(MISSING_OVS), reason=f"Open vSwitch binaries missing: {MISSING_OVS}")])]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 8,
             step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def listening() -> Iterator[socket.socket]:
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(15)
    try:
        yield lsock
    finally:
        lsock.close()


def accept(lsock: socket.socket) -> tuple[RawClient, float]:
    conn, _ = lsock.accept()
    return RawClient(conn, timeout=10), time.monotonic()


# --- active remotes ----------------------------------------------------------------------


def test_active_remote_serves_controller_and_reconnects_with_backoff(tmp_path: Path,
                                                                     ) -> None:
    with listening() as lsock:
        port = lsock.getsockname()[1]
        srv = Server(tmp_path / "s")
        srv.remotes = [f"punix:{srv.sock}", f"tcp:127.0.0.1:{port}"]
        srv.start()
        try:
            ctl, _ = accept(lsock)
            # The controller drives the server over the connection the server made.
            assert ctl.result("list_dbs", []) == ["_Server", DB]
            ctl.transact(DB, {"op": "insert", "table": "Logical_Switch",
                              "row": {"name": "from-controller"}})
            ctl.result("monitor_cond", [DB, "m", {"Logical_Switch": [{"columns": ["name"]}]}])
            with srv.client() as local:
                local.transact(DB, {"op": "insert", "table": "Logical_Switch",
                                    "row": {"name": "local"}})
            (note,) = ctl.drain(0.3)
            assert note.method == "update2"
            assert list(note.params[1]["Logical_Switch"].values()) == [
                {"insert": {"name": "local"}}]
            time.sleep(0.2)
            # Dropped after a useful session: back after the minimum backoff (1 s).
            ctl.close()
            dropped = time.monotonic()
            ctl2, t2 = accept(lsock)
            assert 0.7 <= t2 - dropped <= 2.0, t2 - dropped
            # Dropped at once: the wait doubles (2 s).
            ctl2.close()
            ctl3, t3 = accept(lsock)
            assert 1.7 <= t3 - t2 <= 3.5, t3 - t2
            assert ctl3.result("echo", ["third"]) == ["third"]
            ctl3.close()
        finally:
            srv.stop()
    assert "connection attempt failed" not in srv.log_text()


def test_active_remote_waits_for_a_controller_that_is_not_there_yet(tmp_path: Path,
                                                                   ) -> None:
    port = free_port()
    srv = Server(tmp_path / "s")
    srv.remotes = [f"punix:{srv.sock}", f"tcp:127.0.0.1:{port}"]
    srv.start()
    try:
        time.sleep(1.5)  # a few refused attempts
        with socket.create_server(("127.0.0.1", port)) as lsock:
            lsock.settimeout(15)
            ctl, _ = accept(lsock)
            assert ctl.result("echo", ["late"]) == ["late"]
            ctl.close()
        assert "connection attempt failed" in srv.log_text()
    finally:
        srv.stop()


# --- db: remotes ------------------------------------------------------------------------


def manager_rows(c: RawClient) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = c.transact(DB, {
        "op": "select", "table": "Manager", "where": [],
        "columns": ["target", "is_connected", "status"]})[0]["rows"]
    for r in rows:
        r["status"] = dict(r["status"][1])
    return rows


def set_managers(c: RawClient, *managers: dict[str, Any]) -> None:
    """Make Global.managers exactly *managers* (Manager rows are garbage collected)."""
    ops: list[Any] = []
    names = []
    for i, m in enumerate(managers):
        ops.append({"op": "insert", "table": "Manager", "uuid-name": f"m{i}", "row": m})
        names.append(["named-uuid", f"m{i}"])
    if not c.transact(DB, {"op": "select", "table": "Global", "where": []})[0]["rows"]:
        c.transact(DB, {"op": "insert", "table": "Global", "row": {}})
    c.transact(DB, *ops, {"op": "update", "table": "Global", "where": [],
                          "row": {"managers": ["set", names]}})


@pytest.mark.parametrize("kind", KINDS)
def test_manager_row_makes_server_listen_and_report(tmp_path: Path, kind: str) -> None:
    srv = Server(tmp_path / kind, kind=kind)
    srv.remotes = [f"punix:{srv.sock}", MANAGERS]
    srv.start()
    port = free_port()
    try:
        with srv.client() as c:
            set_managers(c, {"target": f"ptcp:{port}:127.0.0.1",
                             "inactivity_probe": 60000})
            wait_for("the Manager's listener", lambda: can_connect(port))
            t1 = RawClient.tcp("127.0.0.1", port)
            assert DB in t1.result("list_dbs", [])
            (row,) = wait_for("is_connected", lambda: [r for r in manager_rows(c)
                                                       if r["is_connected"]])
            # (ovsdb-server 3.1 writes both "seconds since" as 0 for listeners.)
            zeros = {"sec_since_connect": "0", "sec_since_disconnect": "0"}
            assert row["status"] == {"bound_port": str(port), **zeros}
            t2 = RawClient.tcp("127.0.0.1", port)
            t2.result("echo", [])
            (row,) = wait_for("n_connections", lambda: [
                r for r in manager_rows(c) if "n_connections" in r["status"]])
            assert row["status"] == {"bound_port": str(port), "n_connections": "2", **zeros}
            t1.close()
            t2.close()

            # A new inactivity_probe (1 s) applies to the remote's sessions.
            c.transact(DB, {"op": "update", "table": "Manager", "where": [],
                            "row": {"inactivity_probe": 1000}})
            time.sleep(0.3)
            silent = RawClient.tcp("127.0.0.1", port, answer_echo=False)
            start = time.monotonic()
            assert silent.recv(4) == Request("echo", [], "echo")
            # (ovsdb-server itself is often a second late: its loop wakes up lazily.)
            slack = 1.2 if kind == "ovs" else 0
            assert 0.8 <= time.monotonic() - start <= 2.0 + slack
            silent.wait_closed(5)
            assert 1.7 <= time.monotonic() - start <= 3.5 + slack

            # The row goes away: no more listener, and its sessions end.
            t3 = RawClient.tcp("127.0.0.1", port)
            t3.result("echo", [])
            set_managers(c)
            wait_for("the listener to close", lambda: not can_connect(port))
            t3.wait_closed(5)
            assert manager_rows(c) == []
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_manager_row_makes_server_connect_out(tmp_path: Path, kind: str) -> None:
    srv = Server(tmp_path / kind, kind=kind)
    srv.remotes = [f"punix:{srv.sock}", MANAGERS]
    srv.start()
    try:
        with listening() as lsock, srv.client() as c:
            port = lsock.getsockname()[1]
            set_managers(c, {"target": f"tcp:127.0.0.1:{port}", "max_backoff": 2000})
            ctl, _ = accept(lsock)
            assert ctl.result("echo", ["hello"]) == ["hello"]
            (row,) = wait_for("is_connected", lambda: [r for r in manager_rows(c)
                                                       if r["is_connected"]])
            assert row["status"]["state"] == "ACTIVE"
            assert set(row["status"]) == {"state", "sec_since_connect"}
            ctl.close()
            (row,) = wait_for("the disconnection", lambda: [
                r for r in manager_rows(c) if "sec_since_disconnect" in r["status"]])
            ctl2, _ = accept(lsock)  # it came back
            ctl2.close()
    finally:
        srv.stop()


# A log line per connection attempt. OVS's reconnect stops logging failures once the
# backoff reaches its maximum ("suppressing further logging"), but its state changes stay
# at DBG; ours logs every failure at INFO.
ATTEMPT_LINE = {"hwvtep": "connection attempt failed", "ovs": "entering CONNECTING"}


def _attempts(log: str, target: str, kind: str) -> list[float]:
    """When the server tried to connect to *target* (log timestamps, s)."""
    out = []
    for line in log.splitlines():
        if f"{target}: {ATTEMPT_LINE[kind]}" in line:
            stamp = line.split("|", 1)[0]
            out.append(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp())
    return out


def test_manager_max_backoff_caps_reconnect_gaps(tmp_path: Path) -> None:
    """Two Manager rows aim at ports where nothing listens: the gaps between attempts
    grow 1 s, 2 s, 4 s... without max_backoff, and stop at 2 s with max_backoff=2000.
    Ours and OVS's server run at the same time and are judged by the same rule, from
    the attempts their logs show."""
    kinds = ["hwvtep"] if MISSING_OVS else ["hwvtep", "ovs"]
    servers = []
    try:
        for kind in kinds:
            srv = Server(tmp_path / kind, kind=kind, extra=["-vreconnect:file:dbg"])
            srv.remotes = [f"punix:{srv.sock}", MANAGERS]
            servers.append(srv.start())
        targets = {}
        started = time.time()
        for srv in servers:
            capped, uncapped = f"tcp:127.0.0.1:{free_port()}", f"tcp:127.0.0.1:{free_port()}"
            targets[srv.kind] = capped, uncapped
            with srv.client() as c:
                set_managers(c, {"target": capped, "max_backoff": 2000},
                             {"target": uncapped})
        # Attempts at about 0, 1, 3, 5, 7 s (capped) and 0, 1, 3, 7 s (not capped).
        time.sleep(7.8)
        ended = time.time()
        for srv in servers:
            log = srv.log.read_text()  # (not the console: OVS's has no milliseconds)
            capped, uncapped = targets[srv.kind]
            t = _attempts(log, capped, srv.kind)
            assert all(started - 0.5 <= x <= ended + 0.5 for x in t), (srv.kind, t)
            gaps = [b - a for a, b in pairwise(t)]
            assert len(gaps) >= 3, (srv.kind, gaps, log)
            assert 0.7 <= gaps[0] <= 1.6, (srv.kind, gaps)
            assert all(1.6 <= g <= 2.7 for g in gaps[1:]), (srv.kind, gaps)
            u = _attempts(log, uncapped, srv.kind)
            assert len(u) >= 3, (srv.kind, u, log)
            ugaps = [b - a for a, b in pairwise(u)]
            assert 0.7 <= ugaps[0] <= 1.6 and 1.6 <= ugaps[1] <= 2.7, (srv.kind, ugaps)
            # The third wait is 4 s: no attempt for at least 3.5 s after the third one.
            assert (u[3] if len(u) > 3 else ended) - u[2] >= 3.5, (srv.kind, u, ended)
    finally:
        for srv in servers:
            srv.stop()


def test_string_column_of_targets(tmp_path: Path) -> None:
    """db:DB,TABLE,COLUMN on a string column: each value is a remote (no options)."""
    srv = Server(tmp_path / "s")
    srv.remotes = [f"punix:{srv.sock}", f"db:{DB},Manager,target"]
    srv.start()
    port = free_port()
    try:
        with srv.client() as c:
            set_managers(c, {"target": f"ptcp:{port}:127.0.0.1"})
            wait_for("the listener", lambda: can_connect(port))
            set_managers(c)
            wait_for("the listener to close", lambda: not can_connect(port))
    finally:
        srv.stop()


def test_db_remote_added_at_runtime_and_listen_retried(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s")
    srv.remotes = [f"punix:{srv.sock}"]
    srv.start()
    port = free_port()
    try:
        with srv.client() as c:
            set_managers(c, {"target": f"ptcp:{port}:127.0.0.1"})
            assert not can_connect(port)
            assert srv.appctl("ovsdb-server/add-remote", MANAGERS).returncode == 0
            wait_for("the listener", lambda: can_connect(port))
            assert srv.appctl("ovsdb-server/remove-remote", MANAGERS).returncode == 0
            wait_for("the listener to close", lambda: not can_connect(port))
        # A port that is busy when the remote is added: retried until it is free.
        with socket.create_server(("127.0.0.1", port)):
            assert srv.appctl("ovsdb-server/add-remote",
                              f"ptcp:{port}:127.0.0.1").returncode == 0
            wait_for("the failure in the log", lambda: "listen failed" in srv.log_text())
        wait_for("the retried listener", lambda: can_connect(port), timeout=8)
        with RawClient.tcp("127.0.0.1", port) as t:
            assert t.result("echo", ["retried"]) == ["retried"]
    finally:
        srv.stop()


def test_monitors_over_remotes_see_manager_status_updates(tmp_path: Path) -> None:
    """Status columns change through ordinary commits: monitors hear about them."""
    srv = Server(tmp_path / "s")
    srv.remotes = [f"punix:{srv.sock}", MANAGERS]
    srv.start()
    port = free_port()
    try:
        with srv.client() as c:
            set_managers(c, {"target": f"ptcp:{port}:127.0.0.1"})
            c.result("monitor_cond", [DB, "m", {"Manager": [{"columns": ["is_connected"]}]}])
            wait_for("the listener", lambda: can_connect(port))
            with RawClient.tcp("127.0.0.1", port) as t:
                t.result("echo", [])

                def connected_update() -> bool:
                    notes: list[Notification] = c.drain(0.1)
                    return any("is_connected" in json.dumps(n.params) and
                               "true" in json.dumps(n.params) for n in notes)
                wait_for("is_connected in an update", connected_update)
    finally:
        srv.stop()
