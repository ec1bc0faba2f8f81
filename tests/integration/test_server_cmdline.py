"""The server started with Open vSwitch's own command line, side by side with OVS's.

Scripts written for ovsdb-server (ovs-ctl, the VTEP walkthrough) create the database
files with `ovsdb-tool create` and start the server with `--pidfile --detach --log-file`,
the default pidfile and log file under $OVS_RUNDIR / $OVS_LOGDIR, remotes given as
`--remote punix:SOCK` (separate argument) and `--remote=db:...`, and `-v` specs. None of
that may depend on hwvtep's own `--create-if-missing`. Each scenario runs against
/usr/sbin/ovsdb-server first and then against ours, with the same assertions, and the
observations of the two are compared.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from server_util import alive, env_for
from srvhelp import HWVTEP, OVSDB_SERVER, VSWITCH_SCHEMA, VTEP_SCHEMA, needs_ovs_tools

pytestmark = needs_ovs_tools("ovsdb-tool", "ovsdb-client", "ovs-appctl")

SERVERS = {"ovs": [OVSDB_SERVER], "hwvtep": [HWVTEP, "ovsdb-server"]}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\|\d+\|(\w+)\|(DBG|INFO|WARN|ERR|EMER)\|",
                      re.M)


def _levels(text: str) -> set[tuple[str, str]]:
    """The (module, level) pairs of the vlog lines in *text*."""
    return set(LOG_LINE.findall(text))


def _run(env: dict[str, str], *args: str, timeout: float = 30,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, env=env,
                          timeout=timeout)


def _wait(pred: object, what: str, timeout: float = 15) -> None:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _make_dbs(d: Path, env: dict[str, str]) -> tuple[Path, Path]:
    ovs_db, vtep_db = d / "ovs.db", d / "vtep.db"
    for db, schema in ((ovs_db, VSWITCH_SCHEMA), (vtep_db, VTEP_SCHEMA)):
        cp = _run(env, "ovsdb-tool", "create", str(db), str(schema))
        assert cp.returncode == 0, cp.stderr
    return ovs_db, vtep_db


def _kill(pid: int | None) -> None:
    """Teardown for a server this test started that is still running."""
    if pid is None or not alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(AssertionError):
        _wait(lambda: not alive(pid), f"pid {pid} to die", 5)


def _list_dbs(env: dict[str, str], sock: Path) -> str:
    cp = _run(env, "ovsdb-client", "--timeout=10", "list-dbs", f"unix:{sock}")
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def _detached_walk(kind: str, d: Path) -> dict[str, object]:
    """Create both databases with ovsdb-tool, start the server exactly as an OVS script
    would, use it, stop it with ovs-appctl exit; what was observed."""
    d.mkdir()
    env = env_for(d)
    ovs_db, vtep_db = _make_dbs(d, env)
    sock, ctl, mgr = d / "db.sock", d / "ctl", d / "mgr.sock"
    pidfile, logfile = d / "ovsdb-server.pid", d / "ovsdb-server.log"
    cmd = [*SERVERS[kind], "--pidfile", "--detach", "--log-file", "-vfile:dbg",
           "--remote", f"punix:{sock}", "--remote=db:hardware_vtep,Global,managers",
           f"--unixctl={ctl}", str(ovs_db), str(vtep_db)]
    seen: dict[str, object] = {}
    pid: int | None = None
    try:
        cp = _run(env, *cmd, timeout=60)
        assert cp.returncode == 0, f"{kind}: {cp.stderr}"
        # --detach returns once the daemon is ready: the pidfile names a live process
        # that is not the one we ran, and the sockets are there.
        assert pidfile.exists(), f"{kind}: no default pidfile in $OVS_RUNDIR"
        pid = int(pidfile.read_text().strip())
        assert alive(pid), f"{kind}: pidfile names a dead process"
        assert sock.exists() and ctl.exists(), f"{kind}: sockets missing after --detach"
        assert ovs_db.exists() and vtep_db.exists()

        seen["list-dbs"] = _list_dbs(env, sock)

        # The db: remote given as --remote=db:... is live: a Manager row added now
        # makes the server listen on its target.
        txn = ["hardware_vtep",
               {"op": "insert", "table": "Manager", "uuid-name": "m",
                "row": {"target": f"punix:{mgr}"}},
               {"op": "insert", "table": "Global",
                "row": {"managers": ["named-uuid", "m"]}}]
        cp = _run(env, "ovsdb-client", "--timeout=10", "transact", f"unix:{sock}",
                  json.dumps(txn))
        assert cp.returncode == 0 and '"error"' not in cp.stdout, cp
        _wait(mgr.exists, f"{kind} to listen on the Manager row's target")
        seen["list-dbs via manager"] = _list_dbs(env, mgr)

        # The default log file, at file:dbg.
        assert logfile.exists(), f"{kind}: no default log file in $OVS_LOGDIR"
        log = logfile.read_text()
        seen["log levels"] = {lvl for _, lvl in _levels(log)}
        assert "DBG" in seen["log levels"], f"{kind}: no DBG lines at -vfile:dbg:\n{log}"

        cp = _run(env, "ovs-appctl", "-t", str(ctl), "exit")
        assert cp.returncode == 0, f"{kind}: {cp.stderr}"
        _wait(lambda: not alive(pid), f"{kind} to exit after ovs-appctl exit")
        _wait(lambda: not pidfile.exists(), f"{kind} to remove its pidfile")
        seen["left behind"] = sorted(p.name for p in (sock, ctl, mgr) if p.exists())
        seen["files"] = sorted(p.name for p in d.iterdir())
    finally:
        _kill(pid)
    # Both files still open in OVS's tool, with the Manager row that was committed.
    cp = _run(env, "ovsdb-tool", "query", str(vtep_db), json.dumps(
        ["hardware_vtep", {"op": "select", "table": "Manager", "where": [],
                           "columns": ["target"]}]))
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == [{"rows": [{"target": f"punix:{mgr}"}]}]
    cp = _run(env, "ovsdb-tool", "db-name", str(ovs_db))
    assert cp.stdout.strip() == "Open_vSwitch", cp
    return seen


def test_ovs_command_line_detached(tmp_path: Path) -> None:
    ovs = _detached_walk("ovs", tmp_path / "ovs")
    ours = _detached_walk("hwvtep", tmp_path / "hwvtep")
    assert ours["list-dbs"] == "Open_vSwitch\n_Server\nhardware_vtep\n"
    assert ours["list-dbs via manager"] == ours["list-dbs"]
    assert ours["left behind"] == []
    # (The lock files are left behind by ovsdb-tool and OVS's server alike.)
    assert ours["files"] == [".ovs.db.~lock~", ".vtep.db.~lock~", "ovs.db",
                             "ovsdb-server.log", "vtep.db"]
    assert ours == ovs


# --- -v specs on the command line ----------------------------------------------------
# Each case: the extra arguments, then checks on (console output, log file or None). The
# same checks must hold for OVS's server and ours.


def _no_log_lines(console: str, log: str | None) -> None:
    assert console.strip() == "", console


def _file_dbg_console_off(console: str, log: str | None) -> None:
    _no_log_lines(console, log)
    assert log is not None
    levels = _levels(log)
    assert ("jsonrpc", "DBG") in levels and ("ovsdb_server", "INFO") in levels, log


def _max_verbosity(console: str, log: str | None) -> None:
    assert log is None  # -v alone names no log file
    assert ("jsonrpc", "DBG") in _levels(console), console


def _file_info(console: str, log: str | None) -> None:
    assert log is not None
    levels = {lvl for _, lvl in _levels(log)}
    assert "INFO" in levels and "DBG" not in levels, log


def _jsonrpc_file_dbg(console: str, log: str | None) -> None:
    assert log is not None
    dbg = {mod for mod, lvl in _levels(log) if lvl == "DBG"}
    assert dbg == {"jsonrpc"}, log
    assert "DBG" not in {lvl for _, lvl in _levels(console)}, console


VERBOSE_CASES = {
    "console-off,verbose=file:dbg": (
        ["-vconsole:off", "--verbose=file:dbg", "--log-file"], _file_dbg_console_off),
    "-v": (["-v"], _max_verbosity),
    "file:info": (["-vfile:info", "--log-file"], _file_info),
    "jsonrpc:file:dbg": (["-vjsonrpc:file:dbg", "--log-file"], _jsonrpc_file_dbg),
    "jsonrpc:dbg,console:off": (["-vjsonrpc:dbg", "-vconsole:off"], _no_log_lines),
}


def _foreground(kind: str, d: Path, extra: list[str]) -> tuple[str, str | None]:
    d.mkdir()
    env = env_for(d)
    _ovs_db, vtep_db = _make_dbs(d, env)
    sock, ctl = d / "db.sock", d / "ctl"
    proc = subprocess.Popen(
        [*SERVERS[kind], *extra, "--remote", f"punix:{sock}", f"--unixctl={ctl}",
         str(vtep_db)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        _wait(lambda: (sock.exists() and ctl.exists()) or proc.poll() is not None,
              f"{kind} to listen")
        assert proc.poll() is None, f"{kind} exited: {proc.communicate()[1]}"
        assert _list_dbs(env, sock) == "_Server\nhardware_vtep\n"
        cp = _run(env, "ovs-appctl", "-t", str(ctl), "exit")
        assert cp.returncode == 0, cp.stderr
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"{kind}: {err}"
    log = d / "ovsdb-server.log"
    return err, (log.read_text() if log.exists() else None)


@pytest.mark.parametrize("case", list(VERBOSE_CASES))
def test_verbose_specs_on_command_line(tmp_path: Path, case: str) -> None:
    extra, check = VERBOSE_CASES[case]
    for kind in ("ovs", "hwvtep"):
        console, log = _foreground(kind, tmp_path / kind, extra)
        try:
            check(console, log)
        except AssertionError as e:
            raise AssertionError(f"{kind} with {extra}: {e}") from e


def test_bad_verbose_spec_is_refused(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    _ovs_db, vtep_db = _make_dbs(tmp_path, env)
    for kind in ("ovs", "hwvtep"):
        cp = _run(env, *SERVERS[kind], "-vbogus", f"--remote=punix:{tmp_path / 's'}",
                  f"--unixctl={tmp_path / 'ctl'}", str(vtep_db))
        assert cp.returncode == 1, (kind, cp)
        assert 'no destination, level, or module "bogus"' in cp.stderr, (kind, cp)
        assert not (tmp_path / "s").exists()
