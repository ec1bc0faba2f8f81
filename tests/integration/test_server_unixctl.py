"""The control socket, driven by Open vSwitch's own `ovs-appctl`.

Outputs, error texts and exit codes are compared with those of ovsdb-server 3.1 given the
same commands; `ovs-appctl -t ovsdb-server` finds our server through the pidfile in
OVS_RUNDIR, as the walkthrough does.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from server_util import RawClient, Server, free_port, needs_ovs

from hwvtep.ovsdb.jsonrpc import Notification

pytestmark = [needs_ovs, pytest.mark.ovs]

DB = "hardware_vtep"

EXTRA_SCHEMA = {
    "name": "extra", "version": "1.0.0",
    "tables": {"Item": {"columns": {"name": {"type": "string"}}, "isRoot": True}},
}


def _script(srv: Server, port: int) -> list[list[str]]:
    d = str(srv.dir)
    return [
        ["list-remotes"],
        ["ovsdb-server/list-remotes"],
        ["ovsdb-server/add-remote", f"ptcp:{port}:127.0.0.1"],
        ["ovsdb-server/add-remote", "bogus:foo"],
        ["ovsdb-server/add-remote", "db:x"],
        ["ovsdb-server/add-remote", "db:x,y,z"],
        ["ovsdb-server/add-remote", f"db:{DB},y,z"],
        ["ovsdb-server/add-remote", f"db:{DB},Global,z"],
        ["ovsdb-server/add-remote", f"db:{DB},Global,managers"],
        ["ovsdb-server/list-remotes"],
        ["ovsdb-server/remove-remote", "nothere"],
        ["ovsdb-server/remove-remote", f"ptcp:{port}:127.0.0.1"],
        ["ovsdb-server/remove-remote", "bogus:foo"],
        ["ovsdb-server/list-remotes"],
        ["ovsdb-server/list-dbs"],
        ["ovsdb-server/add-db", f"{d}/db"],
        ["ovsdb-server/add-db", f"{d}/nonexistent"],
        ["ovsdb-server/remove-db", "nope"],
        ["ovsdb-server/remove-db", "_Server"],
        ["ovsdb-server/compact", "_Server"],
        ["ovsdb-server/compact", "nope"],
        ["ovsdb-server/compact"],
        ["ovsdb-server/compact", DB],
        ["ovsdb-server/compact", "a", "b"],
        ["ovsdb-server/add-remote"],
        ["vlog/set", "bogus"],
        ["vlog/set", "ANY:file:dbg"],
        ["vlog/set", "jsonrpc:file:dbg"],
        ["vlog/set", "file:nonsense"],
        ["vlog/set", "file:info:warn"],
        ["vlog/set", "file:console:info"],
        ["vlog/set", "file:info"],
        ["nonsense-cmd"],
        ["ovsdb-server/remove-db", DB],
        ["ovsdb-server/list-dbs"],
        ["ovsdb-server/add-db", f"{d}/db"],
        ["ovsdb-server/list-dbs"],
        ["exit"],
    ]


def _run_script(srv: Server, port: int) -> list[tuple[list[str], int, str, str]]:
    out = []
    for args in _script(srv, port):
        cp = srv.appctl(*args)
        norm = [a.replace(str(srv.dir), "DIR") for a in args]
        out.append((norm, cp.returncode, cp.stdout.replace(str(srv.dir), "DIR"),
                    cp.stderr.replace(str(srv.dir), "DIR")))
    return out


def test_commands_answer_as_ovsdb_server_does(tmp_path: Path) -> None:
    port = free_port()
    ovs = Server(tmp_path / "ovs", kind="ovs")
    ovs.remotes = [f"punix:{ovs.sock}"]
    ours = Server(tmp_path / "ours")
    ours.remotes = [f"punix:{ours.sock}"]
    ovs.start()
    try:
        expected = _run_script(ovs, port)
        assert ovs.wait_gone() == 0
    finally:
        ovs.stop()
    ours.start()
    try:
        got = _run_script(ours, port)
        assert ours.wait_gone() == 0
    finally:
        ours.stop()
    for e, g in zip(expected, got, strict=True):
        assert g == e


def test_appctl_finds_server_by_name_in_rundir(tmp_path: Path) -> None:
    """`ovs-appctl -t ovsdb-server ovsdb-server/add-remote ptcp:PORT` as in the
    walkthrough: default pidfile and control socket names under OVS_RUNDIR."""
    srv = Server(tmp_path / "s")
    srv.remotes = [f"punix:{srv.sock}"]
    cmd = srv.command()
    cmd = [a for a in cmd if not a.startswith(("--unixctl", "--pidfile"))] + ["--pidfile"]
    srv.dir.mkdir(parents=True)
    with open(srv.dir / "stderr", "wb") as err:
        srv.proc = subprocess.Popen(cmd, env=srv.env, stderr=err)
    try:
        pidfile = srv.dir / "ovsdb-server.pid"
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not list(srv.dir.glob("ovsdb-server.*.ctl")):
            assert time.monotonic() < deadline, srv.log_text()
            time.sleep(0.05)
        assert int(pidfile.read_text()) == srv.proc.pid
        assert (srv.dir / f"ovsdb-server.{srv.proc.pid}.ctl").exists()
        port = free_port()
        cp = srv.appctl("ovsdb-server/add-remote", f"ptcp:{port}:127.0.0.1",
                        target="ovsdb-server")
        assert (cp.returncode, cp.stdout, cp.stderr) == (0, "", "")
        with RawClient.tcp("127.0.0.1", port) as c:
            assert c.result("list_dbs", []) == ["_Server", DB]
        cp = srv.appctl("ovsdb-server/list-remotes", target="ovsdb-server")
        assert cp.stdout == f"ptcp:{port}:127.0.0.1\npunix:{srv.sock}\n"
        cp = srv.appctl("ovsdb-server/remove-remote", f"ptcp:{port}:127.0.0.1",
                        target="ovsdb-server")
        assert cp.returncode == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        # A second server on the same pidfile refuses to start, naming the first.
        second = subprocess.run(cmd, env=srv.env, capture_output=True, text=True,
                                timeout=30)
        assert second.returncode != 0
        assert f"already running as pid {srv.proc.pid}, aborting" in second.stderr
        # exit: the process ends cleanly and takes its pidfile and socket with it.
        cp = srv.appctl("exit", target="ovsdb-server")
        assert cp.returncode == 0
        assert srv.wait_gone() == 0
        assert not pidfile.exists()
        assert not list(srv.dir.glob("ovsdb-server.*.ctl"))
    finally:
        srv.stop()


def test_stale_pidfile_is_replaced_after_a_crash(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    try:
        old_pid = srv.pid
        srv.kill()
        assert srv.pidfile.exists()  # SIGKILL leaves it behind...
        cp = srv.appctl("version", target=str(srv.pidfile).removesuffix(".pid"))
        assert cp.returncode != 0
        srv.start()  # ... and the next server takes it over
        assert int(srv.pidfile.read_text()) == srv.pid != old_pid
    finally:
        srv.stop()


def test_detached_server_is_controlled_by_name(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s", detach=True).start()
    try:
        cp = srv.appctl("ovsdb-server/list-dbs")
        assert cp.stdout == f"_Server\n{DB}\n"
        cp = srv.appctl("exit")
        assert cp.returncode == 0
        srv.wait_gone()
        assert not srv.pidfile.exists()
    finally:
        srv.stop()


def test_compact_shrinks_the_file_to_one_snapshot(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    try:
        with srv.client() as c:
            for i in range(30):
                c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                                "row": {"name": f"ls{i}"}})
        cp = srv.appctl("ovsdb-server/compact", DB)
        assert (cp.returncode, cp.stdout, cp.stderr) == (0, "", "")
        show = srv.tool("ovsdb-tool", "show-log", str(srv.db))
        assert [line.split(":")[0] for line in show.stdout.splitlines()
                if line.startswith("record")] == ["record 0", "record 1"]
        assert "compacting database online" in show.stdout
        with srv.client() as c:
            rows = c.transact(DB, {"op": "select", "table": "Logical_Switch",
                                   "where": [], "columns": ["name"]})[0]["rows"]
            assert len(rows) == 30
    finally:
        srv.stop()


def test_add_and_remove_db_while_clients_watch(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    extra = tmp_path / "extra.db"
    schema = tmp_path / "extra.ovsschema"
    schema.write_text(json.dumps(EXTRA_SCHEMA))
    subprocess.run(["ovsdb-tool", "create", str(extra), str(schema)], check=True)
    try:
        cp = srv.appctl("ovsdb-server/add-db", str(extra))
        assert (cp.returncode, cp.stderr) == (0, "")
        assert srv.appctl("ovsdb-server/list-dbs").stdout == f"_Server\nextra\n{DB}\n"
        aware = srv.client()
        aware.result("set_db_change_aware", [True])
        aware.result("monitor_cond", ["extra", "m1", {"Item": [{}]}])
        unaware = srv.client()
        unaware.result("monitor", ["extra", "m2", {"Item": [{}]}])
        aware.transact("extra", {"op": "insert", "table": "Item", "row": {"name": "a"}})
        cp = srv.appctl("ovsdb-server/remove-db", "extra")
        assert cp.returncode == 0
        notes = aware.drain(0.3)
        assert Notification("monitor_canceled", ["m1"]) in notes
        assert aware.result("list_dbs", []) == ["_Server", DB]
        unaware.wait_closed(5)  # it could not have known: it is disconnected
        # The file is free again: OVS's tool can lock and read it.
        q = srv.tool("ovsdb-tool", "query", str(extra), json.dumps(
            ["extra", {"op": "select", "table": "Item", "where": []}]))
        assert q.returncode == 0 and '"a"' in q.stdout
        assert srv.appctl("ovsdb-server/add-db", str(extra)).returncode == 0
        with srv.client() as c:
            rows = c.transact("extra", {"op": "select", "table": "Item",
                                        "where": []})[0]["rows"]
            assert [r["name"] for r in rows] == ["a"]
        aware.close()
    finally:
        srv.stop()


def test_vlog_set_changes_what_is_logged(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    try:
        def new_lines(action: object) -> str:
            size = srv.log.stat().st_size
            with srv.client() as c:
                c.result("echo", [str(action)])
            time.sleep(0.1)
            with open(srv.log) as f:
                f.seek(size)
                return f.read()

        assert "|DBG|" not in new_lines("default")
        assert srv.appctl("vlog/set", "file:dbg").returncode == 0
        assert "|DBG|" in new_lines("file:dbg")
        assert srv.appctl("vlog/set", "file:info").returncode == 0
        assert "|DBG|" not in new_lines("file:info")
        assert srv.appctl("vlog/set", "jsonrpc:file:dbg").returncode == 0
        lines = new_lines("jsonrpc:file:dbg")
        assert "|jsonrpc|DBG|" in lines
        assert srv.appctl("vlog/set", "ANY:file:off").returncode == 0
        assert new_lines("off") == ""
    finally:
        srv.stop()


def test_list_commands_and_version(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    try:
        cp = srv.appctl("list-commands")
        assert cp.stdout.startswith("The available commands are:\n")
        for name in ("exit", "ovsdb-server/compact", "ovsdb-server/add-remote",
                     "ovsdb-server/remove-remote", "ovsdb-server/list-remotes",
                     "ovsdb-server/add-db", "ovsdb-server/remove-db",
                     "ovsdb-server/list-dbs", "vlog/set"):
            assert f"  {name}" in cp.stdout
        cp = srv.appctl("version")
        assert cp.returncode == 0 and cp.stdout.startswith("ovsdb-server (hwvtep)")
    finally:
        srv.stop()
