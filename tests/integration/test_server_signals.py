"""A foreground `hwvtep ovsdb-server` stops cleanly on SIGTERM and SIGINT.

Clean means: exit status 0, its pidfile, control socket and listening socket removed, and
every acknowledged commit in a file that reopens (in ours and in OVS's ovsdb-tool).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwvtep.client.sync import call

DB = "hardware_vtep"


def _wait_for(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_foreground_server_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    sock, ctl, pid, db = (tmp_path / "db.sock", tmp_path / "ctl", tmp_path / "pid",
                          tmp_path / "vtep.db")
    env = {**os.environ, "OVS_RUNDIR": str(tmp_path), "OVS_LOGDIR": str(tmp_path)}
    hwvtep = str(Path(sys.executable).with_name("hwvtep"))
    proc = subprocess.Popen(
        [hwvtep, "ovsdb-server", "--create-if-missing", f"--remote=punix:{sock}",
         f"--unixctl={ctl}", f"--pidfile={pid}", str(db)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(sock)
        _wait_for(ctl)
        reply = call(f"unix:{sock}", "transact", [
            DB, {"op": "insert", "table": "Logical_Switch", "row": {"name": "kept"}}],
            timeout=10)
        assert "uuid" in reply[0]
        # An idle client stays connected while the server stops.
        idle = socket.socket(socket.AF_UNIX)
        idle.connect(str(sock))
        assert pid.read_text().strip() == str(proc.pid)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=15)
        idle.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert not pid.exists(), "pidfile left behind"
    assert not ctl.exists(), "control socket left behind"
    assert not sock.exists(), "listening socket left behind"
    assert b"Traceback" not in err, err.decode()
    query = [DB, {"op": "select", "table": "Logical_Switch", "where": [],
                  "columns": ["name"]}]
    ours = subprocess.run([hwvtep, "ovsdb-tool", "query", str(db), json.dumps(query)],
                          capture_output=True, text=True, env=env, check=True)
    assert json.loads(ours.stdout) == [{"rows": [{"name": "kept"}]}]
    if shutil.which("ovsdb-tool"):
        theirs = subprocess.run(["ovsdb-tool", "query", str(db), json.dumps(query)],
                                capture_output=True, text=True, check=True)
        assert json.loads(theirs.stdout) == [{"rows": [{"name": "kept"}]}]
