"""`ovsdb-client lock/steal/unlock` and their control socket, ours next to OVS 3.1's.

Detached, both keep running and take `lock`/`steal`/`unlock LOCK` and `exit` through
`ovs-appctl -t $OVS_RUNDIR/ovsdb-client.PID.ctl`; every reply and notification lands on
the client's own stdout. Run against our server and OVS's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from srvhelp import HWVTEP, RunningServer, needs_ovs, start_server

pytestmark = [pytest.mark.ovs, needs_ovs]

CLIENTS = {"ovs": ["ovsdb-client"], "ours": [HWVTEP, "ovsdb-client"]}


@pytest.fixture(scope="module", params=["hwvtep", "ovs"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with tempfile.TemporaryDirectory(prefix="hv-lk-") as base:
        srv = start_server(request.param, Path(base) / "srv")
        try:
            yield srv
        finally:
            srv.stop()


def _wait_for(pred: object, what: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if callable(pred) and pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _scenario(srv: RunningServer, prog: list[str], lock: str) -> list[str]:
    """Returns what each of the two detached clients printed, after the whole dance."""
    with tempfile.TemporaryDirectory(prefix="hv-lkc-") as d:
        env = {**srv.env, "OVS_RUNDIR": d}
        pids: list[int] = []
        outs = [Path(d, f"o{i}") for i in (1, 2)]
        try:
            for i, out in enumerate(outs, 1):
                err = Path(d, f"e{i}")
                with out.open("wb") as f, err.open("wb") as e:
                    cp = subprocess.run(
                        [*prog, "--detach", "--no-chdir", f"--pidfile={d}/p{i}", "lock",
                         srv.unix, lock], stdin=subprocess.DEVNULL, stdout=f, stderr=e, env=env,
                        timeout=10)
                assert cp.returncode == 0, err.read_text()
                pids.append(int(Path(d, f"p{i}").read_text()))
            ctl = [f"{d}/ovsdb-client.{pid}.ctl" for pid in pids]
            assert all(os.path.exists(c) for c in ctl)

            def appctl(target: str, *args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(["ovs-appctl", "-t", target, *args], text=True,
                                      capture_output=True, env=env, timeout=10)
            a = appctl(ctl[0], "unlock", lock)
            assert (a.returncode, a.stdout) == (0, "")
            _wait_for(lambda: "locked\n" in outs[1].read_text(), "the waiter to get it")
            a = appctl(ctl[0], "steal", lock)
            assert (a.returncode, a.stdout) == (0, "")
            _wait_for(lambda: "stolen\n" in outs[1].read_text(), "the steal")
            bad = appctl(ctl[0], "unlock", lock, "x")
            assert bad.returncode == 2
            assert '"unlock" command takes at most 1 arguments' in bad.stderr
            # Plain unlock from a session that does not hold it: no reply printed.
            with contextlib.suppress(subprocess.TimeoutExpired):
                fg = subprocess.run([*prog, "unlock", srv.unix, lock], capture_output=True,
                                    env=env, timeout=1)
                pytest.fail(f"foreground unlock ended: {fg}")
            assert appctl(ctl[0], "exit").returncode == 0
            _wait_for(lambda: outs[1].read_text().count("locked\n") == 2,
                      "the holder's exit to hand the lock back to the waiter")
            assert appctl(ctl[1], "exit").returncode == 0
            _wait_for(lambda: not any(os.path.exists(c) for c in ctl), "exit")
            return [out.read_text() for out in outs]
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_lock_steal_unlock_over_control_socket(server: RunningServer) -> None:
    got = {who: _scenario(server, prog, "L") for who, prog in CLIENTS.items()}
    assert got["ours"] == got["ovs"], server.kind
    name = '["L"]'
    assert got["ours"] == [
        '{"locked":true}\n{}\n{"locked":true}\n',
        f'{{"locked":false}}\nlocked\n{name}\nstolen\n{name}\nlocked\n{name}\n',
    ]
