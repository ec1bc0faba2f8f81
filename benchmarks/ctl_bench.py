"""How long `hwvtep ctl` takes, next to a bare interpreter and to Open vSwitch's vtep-ctl.

Figures (targets in brackets), each the median (and minimum) of interleaved runs:

* ``hwvtep ctl list-ps`` from start to exit, through the ``hwvtep`` console script and
  through ``python -m hwvtep.ctl.main``, against ``python -c pass`` measured in the same
  loop [ratio <= 2.0], with vtep-ctl's time for reference;
* ``list-remote-macs`` of a logical switch holding N remote MACs (default 100,000) against
  vtep-ctl's time on the same server [ratio <= 2.0];
* one write (a transaction that rewrites a column) for reference.

The servers are ours (`hwvtep ovsdb-server`) and, when installed, Open vSwitch's
ovsdb-server, each on a temp dir. Byte code of the package is compiled first, as an
installed package has it.

Run: ``.venv/bin/python benchmarks/ctl_bench.py [--macs N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HWVTEP = str(Path(PY).with_name("hwvtep"))
VTEP_CTL = shutil.which("vtep-ctl")
OVSDB_SERVER = "/usr/sbin/ovsdb-server"
VTEP_SCHEMA = "/usr/share/openvswitch/vtep.ovsschema"


def rpc(sock: str, method: str, params: list[Any]) -> Any:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(json.dumps({"id": 1, "method": method, "params": params}).encode())
    dec = json.JSONDecoder()
    buf = ""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise RuntimeError("server closed the connection")
        buf += chunk.decode()
        try:
            msg, _ = dec.raw_decode(buf.lstrip())
        except json.JSONDecodeError:
            continue
        if msg.get("id") == 1:
            s.close()
            return msg


def start(kind: str, d: Path) -> tuple[subprocess.Popen[bytes], str]:
    d.mkdir(parents=True)
    sock = str(d / "db.sock")
    common = [f"--remote=punix:{sock}", f"--unixctl={d / 'ctl'}", f"--log-file={d / 'log'}"]
    if kind == "ovs":
        subprocess.run(["ovsdb-tool", "create", str(d / "db"), VTEP_SCHEMA], check=True)
        cmd = [OVSDB_SERVER, "--no-chdir", *common, str(d / "db")]
    else:
        cmd = [HWVTEP, "ovsdb-server", *common, "--create-if-missing", str(d / "db")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OVS_RUNDIR=str(d)))
    deadline = time.monotonic() + 30
    while True:
        try:
            rpc(sock, "list_dbs", [])
            return proc, sock
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{kind} server did not start") from None
            time.sleep(0.05)


def populate(sock: str, macs: int) -> None:
    ops: list[Any] = ["hardware_vtep",
                      {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
                       "row": {"name": "ls1"}}]
    n_locators = 100
    for i in range(n_locators):
        ops.append({"op": "insert", "table": "Physical_Locator", "uuid-name": f"l{i}",
                    "row": {"dst_ip": f"10.{i // 250}.{i % 250}.1",
                            "encapsulation_type": "vxlan_over_ipv4"}})
    for i in range(macs):
        ops.append({"op": "insert", "table": "Ucast_Macs_Remote", "row": {
            "MAC": "02:" + ":".join(f"{(i >> s) & 255:02x}" for s in (32, 24, 16, 8, 0)),
            "logical_switch": ["named-uuid", "ls"],
            "locator": ["named-uuid", f"l{i % n_locators}"],
            "ipaddr": ""}})
    reply = rpc(sock, "transact", ops)
    errors = [r for r in reply.get("result") or [] if isinstance(r, dict) and "error" in r]
    if reply.get("error") or errors:
        raise RuntimeError(f"populate failed: {reply.get('error') or errors[:2]}")


def measure(cmds: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Wall times of each command, interleaved so that load affects them alike."""
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            t = time.perf_counter()
            cp = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=env)
            times[name].append(time.perf_counter() - t)
            if cp.returncode != 0:
                raise RuntimeError(f"{cmd} failed: {cp.stderr.decode()}")
    return times


def fmt(ts: list[float]) -> str:
    return f"median {1000 * statistics.median(ts):8.1f} ms   min {1000 * min(ts):8.1f} ms"


def ratio(a: list[float], b: list[float]) -> str:
    return (f"{statistics.median(a) / statistics.median(b):5.2f} (medians), "
            f"{min(a) / min(b):5.2f} (minimums)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--macs", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=30, help="runs of the short commands")
    ap.add_argument("--mac-runs", type=int, default=5, help="runs of list-remote-macs")
    args = ap.parse_args()
    compileall.compile_dir(str(ROOT / "src" / "hwvtep"), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    tmp = Path(tempfile.mkdtemp(prefix="ctlb-"))
    servers: list[subprocess.Popen[bytes]] = []
    kinds = ["hwvtep"] + (["ovs"] if os.access(OVSDB_SERVER, os.X_OK) and VTEP_CTL else [])
    ok = True
    try:
        for kind in kinds:
            proc, sock = start(kind, tmp / kind)
            servers.append(proc)
            db = f"--db=unix:{sock}"
            subprocess.run([HWVTEP, "ctl", db, "add-ps", "ps1", "--", "add-ps", "ps2"],
                           check=True, env=env)
            print(f"\n== {kind} ovsdb-server, a small database (two physical switches)")
            short = {
                "python -c pass": [PY, "-c", "pass"],
                "hwvtep ctl list-ps": [HWVTEP, "ctl", db, "list-ps"],
                "python -m hwvtep.ctl.main list-ps": [PY, "-m", "hwvtep.ctl.main", db,
                                                      "list-ps"],
            }
            if VTEP_CTL:
                short["vtep-ctl list-ps"] = [VTEP_CTL, db, "list-ps"]
            short["hwvtep ctl (a write)"] = [
                HWVTEP, "ctl", db, "--may-exist", "add-ls", "x", "--", "clear",
                "Logical_Switch", "x", "other_config", "--", "set", "Logical_Switch", "x",
                "other_config:k=v"]
            t_short = measure(short, args.runs, env)
            for name, ts in t_short.items():
                print(f"  {name:<36} {fmt(ts)}")
            base = t_short["python -c pass"]
            for name in ("hwvtep ctl list-ps", "python -m hwvtep.ctl.main list-ps"):
                r = statistics.median(t_short[name]) / statistics.median(base)
                ok &= r <= 2.0
                print(f"  ratio {name} / python -c pass: {ratio(t_short[name], base)}"
                      f"  [target <= 2.0: {'met' if r <= 2.0 else 'MISSED'}]")
            if VTEP_CTL:
                print(f"  ratio hwvtep ctl list-ps / vtep-ctl list-ps: "
                      f"{ratio(t_short['hwvtep ctl list-ps'], t_short['vtep-ctl list-ps'])}")
            t = time.perf_counter()
            populate(sock, args.macs)
            print(f"== {kind} ovsdb-server, {args.macs} remote MACs in one logical switch "
                  f"(loaded in {time.perf_counter() - t:.1f} s)")
            macs = {"hwvtep ctl list-remote-macs": [HWVTEP, "ctl", db, "list-remote-macs",
                                                    "ls1"],
                    "hwvtep ctl list-ps": [HWVTEP, "ctl", db, "list-ps"]}
            if VTEP_CTL:
                macs["vtep-ctl list-remote-macs"] = [VTEP_CTL, db, "list-remote-macs", "ls1"]
                macs["vtep-ctl list-ps"] = [VTEP_CTL, db, "list-ps"]
            t_macs = measure(macs, args.mac_runs, env)
            for name, ts in t_macs.items():
                print(f"  {name:<36} {fmt(ts)}")
            if VTEP_CTL:
                a, b = t_macs["hwvtep ctl list-remote-macs"], t_macs["vtep-ctl list-remote-macs"]
                r = statistics.median(a) / statistics.median(b)
                if kind == "hwvtep":
                    ok &= r <= 2.0
                print(f"  ratio hwvtep ctl / vtep-ctl list-remote-macs: {ratio(a, b)}"
                      f"  [target <= 2.0: {'met' if r <= 2.0 else 'MISSED'}]")
                same = (subprocess.run(macs["hwvtep ctl list-remote-macs"],
                                       capture_output=True).stdout
                        == subprocess.run(macs["vtep-ctl list-remote-macs"],
                                          capture_output=True).stdout)
                ok &= same
                print(f"  outputs identical: {same}")
    finally:
        for p in servers:
            p.terminate()
            p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nall targets met" if ok else "\nsome targets MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
