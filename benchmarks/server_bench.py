"""`hwvtep ovsdb-server` against Open vSwitch's ovsdb-server, in one run.

Both servers serve a fresh hardware_vtep database on a unix socket; one Python client
(the same code for both) measures:

* echo round trips per second;
* sequential single-row transactions per second (insert one Ucast_Macs_Remote, wait);
* pipelined transactions per second (send them all, then read the replies);
* one transaction inserting 20,000 rows;
* a select of all those rows;
* monitor fan-out: 20 monitor sessions, 600 commits sent back to back, time until every
  monitor has seen the last one;
* server RSS holding 100,000 Ucast_Macs_Remote rows.

Both servers run at once and every phase alternates between them, three rounds, the best
round of each counting, so that other load on the machine affects both alike. The RSS is
taken on a fresh pair of servers filled to exactly 100,000 rows (the phases leave a row
count that depends on --rounds, and a heap shaped by their history).

Each figure is printed with the ratio ours/OVS (throughput ratio; for durations OVS's time
over ours), so higher is better for us and 1.0 means parity.

Run: ``.venv/bin/python benchmarks/server_bench.py [--quick] [--only hwvtep|ovs]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hwvtep.ovsdb.jsonrpc import Connection, Error, Reply

DB = "hardware_vtep"
HWVTEP = str(Path(sys.executable).with_name("hwvtep"))
OVSDB_SERVER = "/usr/sbin/ovsdb-server"
VTEP_SCHEMA = "/usr/share/openvswitch/vtep.ovsschema"


# --- servers ---------------------------------------------------------------------------


@dataclass
class Running:
    kind: str
    dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def sock(self) -> str:
        return str(self.dir / "db.sock")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        f = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.contextmanager
def server(kind: str) -> Iterator[Running]:
    d = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    env = dict(os.environ, OVS_RUNDIR=str(d), OVS_LOGDIR=str(d), OVS_DBDIR=str(d))
    db = d / "db"
    common = [f"--remote=punix:{d / 'db.sock'}", f"--unixctl={d / 'ctl'}",
              f"--log-file={d / 'log'}"]
    if kind == "ovs":
        subprocess.run(["ovsdb-tool", "create", str(db), VTEP_SCHEMA], check=True, env=env)
        cmd = [OVSDB_SERVER, "--no-chdir", *common, str(db)]
    else:
        cmd = [HWVTEP, "ovsdb-server", *common, f"--create-if-missing={VTEP_SCHEMA}",
               str(db)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    srv = Running(kind, d, proc)
    deadline = time.monotonic() + 30
    while not (d / "db.sock").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} server did not start")
        time.sleep(0.02)
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


# --- a plain blocking client ---------------------------------------------------------------


class Client:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.conn = Connection(max_message_size=1 << 31)
        self.next_id = 0
        self._outbox: list[bytes] = []

    def send(self, method: str, params: list[Any]) -> int:
        self.next_id += 1
        self.sock.sendall(orjson.dumps({"method": method, "params": params,
                                        "id": self.next_id}))
        return self.next_id

    def send_many(self, method: str, params_list: list[list[Any]]) -> None:
        """Queue requests without waiting for replies (see :meth:`pipeline`)."""
        for params in params_list:
            self.next_id += 1
            self._outbox.append(orjson.dumps({"method": method, "params": params,
                                              "id": self.next_id}))

    def pipeline(self, n_replies: int) -> list[Any]:
        """Send what send_many queued while reading replies, until *n_replies* came.

        Reading while writing matters: ovsdb-server stops reading from a client whose
        replies it cannot send, so a client that only writes would wait for ever.
        """
        data = memoryview(b"".join(self._outbox))
        self._outbox = []
        got: list[Any] = []
        self.sock.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        try:
            while len(got) < n_replies:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if data else 0)
                sel.modify(self.sock, events)
                for _, mask in sel.select(30):
                    if mask & selectors.EVENT_WRITE and data:
                        with contextlib.suppress(BlockingIOError):
                            data = data[self.sock.send(data[:1 << 20]):]
                    if mask & selectors.EVENT_READ:
                        with contextlib.suppress(BlockingIOError):
                            chunk = self.sock.recv(1 << 20)
                            if not chunk:
                                raise RuntimeError("server closed the connection")
                            self.conn.receive_data(chunk)
                            got.extend(self._take_replies())
        finally:
            sel.close()
            self.sock.setblocking(True)
        return got

    def _take_replies(self) -> list[Any]:
        out = []
        for ev in self.conn.events():
            if isinstance(ev, Reply):
                out.append(ev.result)
            elif isinstance(ev, Error):
                raise RuntimeError(f"error reply: {ev.error}")
        return out

    def replies(self, n: int) -> list[Any]:
        got: list[Any] = self._take_replies()
        while len(got) < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("server closed the connection")
            self.conn.receive_data(data)
            got.extend(self._take_replies())
        return got

    def call(self, method: str, params: list[Any]) -> Any:
        self.send(method, params)
        return self.replies(1)[0]

    def close(self) -> None:
        self.sock.close()


def _mac(i: int) -> str:
    return f"02:{(i >> 32) & 255:02x}:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:" \
        f"{(i >> 8) & 255:02x}:{i & 255:02x}"


class Fixture:
    """A logical switch and a locator the MAC rows point at."""

    def __init__(self, c: Client) -> None:
        res = c.call("transact", [
            DB,
            {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
             "row": {"name": "ls0", "tunnel_key": 5000}},
            {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
             "row": {"dst_ip": "10.0.0.1", "encapsulation_type": "vxlan_over_ipv4"}},
            {"op": "insert", "table": "Ucast_Macs_Remote",
             "row": {"MAC": "00:00:00:00:00:00", "logical_switch": ["named-uuid", "ls"],
                     "locator": ["named-uuid", "loc"]}}])
        self.ls = res[0]["uuid"][1]
        self.loc = res[1]["uuid"][1]
        self.n = 1

    def mac_op(self) -> dict[str, Any]:
        self.n += 1
        i = self.n
        return {"op": "insert", "table": "Ucast_Macs_Remote",
                "row": {"MAC": _mac(i), "logical_switch": ["uuid", self.ls],
                        "locator": ["uuid", self.loc],
                        "ipaddr": f"192.168.{(i >> 8) & 255}.{i & 255}"}}


# --- measurements ----------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Subject:
    """One server under test and the client connection the phases use."""

    def __init__(self, srv: Running) -> None:
        self.srv = srv
        self.c = Client(srv.sock)
        self.fx = Fixture(self.c)
        self.rows = 0


def phases(scale: float) -> list[tuple[str, bool, Callable[[Subject], float]]]:
    """(name, higher is better, measure) in the order they run."""
    n_echo = int(3000 * scale)
    n_seq = int(1500 * scale)
    n_pipe = int(5000 * scale)

    def echo(t: Subject) -> float:
        def run() -> None:
            for i in range(n_echo):
                t.c.call("echo", [i])
        return n_echo / timed(run)

    def sequential(t: Subject) -> float:
        def run() -> None:
            for _ in range(n_seq):
                t.c.call("transact", [DB, t.fx.mac_op()])
        t.rows += n_seq
        return n_seq / timed(run)

    def pipelined(t: Subject) -> float:
        def run() -> None:
            t.c.send_many("transact", [[DB, t.fx.mac_op()] for _ in range(n_pipe)])
            t.c.pipeline(n_pipe)
        t.rows += n_pipe
        return n_pipe / timed(run)

    def bulk(t: Subject) -> float:
        ops = [t.fx.mac_op() for _ in range(20_000)]
        t.rows += len(ops)
        return timed(lambda: t.c.call("transact", [DB, *ops]))

    def select_all(t: Subject) -> float:
        got: list[Any] = []

        def run() -> None:
            res = t.c.call("transact", [DB, {"op": "select", "table": "Ucast_Macs_Remote",
                                             "where": []}])
            got.extend(res[0]["rows"])
        took = timed(run)
        assert len(got) > t.rows, (len(got), t.rows)
        return took

    def fanout(t: Subject) -> float:
        t.rows += 600
        return _fanout(t.srv, t.fx, t.c, 20, 600)

    return [("echo round trips /s", True, echo),
            ("sequential txns /s", True, sequential),
            ("pipelined txns /s", True, pipelined),
            ("20k-row insert s", False, bulk),
            ("select all s", False, select_all),
            ("monitor fan-out s", False, fanout)]


def fill(t: Subject, n_rows: int) -> None:
    """Insert Ucast_Macs_Remote rows until there are exactly *n_rows*."""
    have = len(t.c.call("transact", [DB, {"op": "select", "table": "Ucast_Macs_Remote",
                                          "where": [], "columns": ["MAC"]}])[0]["rows"])
    if have > n_rows:
        raise RuntimeError(f"{t.srv.kind}: already {have} rows, more than {n_rows}")
    while have < n_rows:
        batch = min(10_000, n_rows - have)
        res = t.c.call("transact", [DB, *(t.fx.mac_op() for _ in range(batch))])
        if len(res) != batch or not all("uuid" in r for r in res):
            raise RuntimeError(f"{t.srv.kind}: insert failed: {res[-1]}")
        have += batch


def measure_rss(kinds: list[str], n_rows: int) -> dict[str, float]:
    """RSS (MiB) of a fresh server of each kind holding exactly *n_rows* MAC rows."""
    with contextlib.ExitStack() as stack:
        subjects = {k: Subject(stack.enter_context(server(k))) for k in kinds}
        for k in kinds:
            fill(subjects[k], n_rows)
        time.sleep(1.5)  # let both settle (ours gives freed heap back at most once a second)
        return {k: subjects[k].srv.rss_kib() / 1024 for k in kinds}


def _fanout(srv: Running, fx: Fixture, writer: Client, n_mon: int, n_commits: int) -> float:
    monitors = []
    for i in range(n_mon):
        m = Client(srv.sock)
        m.call("monitor_cond", [DB, f"m{i}", {
            "Ucast_Macs_Remote": [{"columns": ["MAC", "ipaddr", "locator"]}]}])
        m.sock.setblocking(False)
        monitors.append(m)
    sel = selectors.DefaultSelector()
    for m in monitors:
        sel.register(m.sock, selectors.EVENT_READ, m)
    ops = [[DB, fx.mac_op()] for _ in range(n_commits)]
    last_mac = ops[-1][1]["row"]["MAC"].encode()
    tails = {id(m): b"" for m in monitors}
    pending = set(tails)
    writer.send_many("transact", ops)
    committer = threading.Thread(target=writer.pipeline, args=(n_commits,))
    t = time.perf_counter()
    committer.start()
    while pending:
        for key, _ in sel.select(30):
            m = key.data
            data = m.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("monitor connection closed")
            window = tails[id(m)] + data
            if last_mac in window:
                pending.discard(id(m))
                sel.unregister(m.sock)
            tails[id(m)] = window[-64:]
    took = time.perf_counter() - t
    committer.join()
    for m in monitors:
        m.close()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer round trips (noisier)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="repetitions of each phase (the best one counts)")
    ap.add_argument("--only", choices=["hwvtep", "ovs"])
    args = ap.parse_args()
    scale = 0.3 if args.quick else 1.0
    kinds = [args.only] if args.only else ["hwvtep", "ovs"]
    if "ovs" in kinds and not os.access(OVSDB_SERVER, os.X_OK):
        sys.exit(f"{OVSDB_SERVER} is not installed")
    results: dict[str, dict[str, float]] = {k: {} for k in kinds}
    better: dict[str, bool] = {}
    with contextlib.ExitStack() as stack:
        # Both servers run side by side and each phase alternates between them, so that
        # a busy machine slows both alike; the best of the rounds counts.
        subjects = {k: Subject(stack.enter_context(server(k))) for k in kinds}
        for _ in range(args.rounds):
            for name, higher, measure in phases(scale):
                better[name] = higher
                for k in kinds:
                    v = measure(subjects[k])
                    old = results[k].get(name)
                    if old is None or (v > old if higher else v < old):
                        results[k][name] = v
        for k in kinds:
            results[k]["server CPU s"] = subjects[k].srv.cpu_s()
    # A fresh pair (the phases' servers are stopped by now), so that the figure is the
    # same for every --rounds and neither server carries the phases' history.
    for k, rss in measure_rss(kinds, 100_000).items():
        results[k]["RSS MiB @100k rows"] = rss
    better["RSS MiB @100k rows"] = False
    print(f"{'':28}" + "".join(f"{k:>14}" for k in kinds) +
          ("   ours/OVS" if len(kinds) == 2 else ""))
    for name in results[kinds[0]]:
        line = f"{name:28}" + "".join(f"{results[k][name]:14.3f}" for k in kinds)
        if len(kinds) == 2 and name in better:
            ours, ovs = results["hwvtep"][name], results["ovs"][name]
            ratio = ours / ovs if better[name] else ovs / ours
            target = "(target >= 1.0)" if name.startswith("RSS") else "(target >= 0.5)"
            line += f"   {ratio:8.2f} {target}"
        print(line)


if __name__ == "__main__":
    main()
