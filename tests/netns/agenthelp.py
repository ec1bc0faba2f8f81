"""Two-VTEP labs for the agent tests: namespaces, a database server and an agent per VTEP.

Layout (every namespace is made by the test through `nshelp.Namespaces`, so deleting them
removes every link; servers and agents are child processes, always killed at teardown):

    host ns <tag>r1 (eth0 192.168.10.1)   <tag>r2 (eth0 192.168.10.2)
            <tag>b1 (eth0 192.168.10.1)   <tag>b2 (eth0 192.168.10.2)   same IPs: blue
                 |  p1 / p2                    |  p1 / p2
            VTEP ns <tag>v1 -- u1 10.99.0.1 === u2 10.99.0.2 -- <tag>v2

The VTEP namespaces hold only the physical ports and the underlay; the agents build the
rest. The servers listen on unix sockets in a temp dir and run in the caller's namespace
(a unix socket is reached by path), the agents act on their namespace with --netns.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nshelp import Namespaces, sh

HWVTEP = str(Path(sys.executable).with_name("hwvtep"))
OVSDB_SERVER = "/usr/sbin/ovsdb-server"
VTEP_SCHEMA = "/usr/share/openvswitch/vtep.ovsschema"
OVS_PRESENT = os.access(OVSDB_SERVER, os.X_OK) and os.path.exists(VTEP_SCHEMA)


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, step: float = 0.02,
               what: str = "condition") -> Any:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def rpc(sock: str, method: str, params: list[Any], timeout: float = 30.0) -> Any:
    """One JSON-RPC call on a fresh unix connection (no library of ours involved)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall(json.dumps({"id": 1, "method": method, "params": params}).encode())
        dec = json.JSONDecoder()
        buf = ""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk.decode()
            try:
                msg, _ = dec.raw_decode(buf.lstrip())
            except ValueError:
                continue
            if msg.get("id") == 1:
                if msg.get("error") is not None:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            buf = ""


@dataclass(eq=False)
class Vtep:
    """One VTEP: a namespace, its database server and (when started) its agent."""

    name: str
    ns: str
    tip: str
    dir: Path
    server_kind: str
    server: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    agent_args: list[str] = field(default_factory=list)

    @property
    def sock(self) -> str:
        return str(self.dir / "db.sock")

    @property
    def db(self) -> str:
        return f"unix:{self.sock}"

    @property
    def agent_log(self) -> Path:
        return self.dir / "agent.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        d = str(self.dir)
        env.update(OVS_RUNDIR=d, OVS_LOGDIR=d, OVS_DBDIR=d, OVS_SYSCONFDIR=d)
        return env

    # -- server --

    def start_server(self, fresh: bool = True) -> None:
        dbfile = self.dir / "vtep.db"
        common = [
            f"--remote=punix:{self.sock}",
            f"--log-file={self.dir / 'server.log'}",
            f"--pidfile={self.dir / 'server.pid'}",
            f"--unixctl={self.dir / 'ctl'}",
        ]
        if self.server_kind == "ovs":
            if fresh or not dbfile.exists():
                with contextlib.suppress(FileNotFoundError):
                    dbfile.unlink()
                sh("ovsdb-tool", "create", str(dbfile), VTEP_SCHEMA)
            cmd = [OVSDB_SERVER, "--no-chdir", *common, str(dbfile)]
        else:
            cmd = [HWVTEP, "ovsdb-server", *common, "--create-if-missing", str(dbfile)]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock)
        err = open(self.dir / "server.stderr", "ab")  # noqa: SIM115
        self.server = subprocess.Popen(cmd, env=self.env(), stdout=subprocess.DEVNULL,
                                       stderr=err)  # fmt: skip
        err.close()

        def up() -> bool:
            assert self.server is not None
            if self.server.poll() is not None:
                raise RuntimeError(f"server exited: {(self.dir / 'server.stderr').read_text()}")
            try:
                return "hardware_vtep" in rpc(self.sock, "list_dbs", [], timeout=2)
            except OSError:
                return False

        wait_until(up, 20, what=f"{self.server_kind} ovsdb-server of {self.name}")

    def stop_server(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.server, sig)
        self.server = None

    # -- agent --

    def start_agent(self, *extra: str) -> None:
        args = [HWVTEP, "agent", f"--db={self.db}", f"--netns={self.ns}", "--port=p*",
                f"--log-file={self.agent_log}", "-vfile:dbg", "--stats-interval=1",
                *self.agent_args, *extra, self.name]  # fmt: skip
        err = open(self.dir / "agent.stderr", "ab")  # noqa: SIM115
        self.agent = subprocess.Popen(args, env=self.env(), stdout=subprocess.DEVNULL,
                                      stderr=err)  # fmt: skip
        err.close()

    def wait_ports(self, *names: str, timeout: float = 15) -> None:
        """Until the agent has registered these ports in the database."""

        def registered() -> bool:
            if self.agent is not None and self.agent.poll() is not None:
                raise AssertionError(f"agent exited:\n{self.log_text()}")
            return set(names) <= set(self.ctl("list-ports", self.name).split())

        wait_until(registered, timeout, what=f"ports {names} of {self.name}")

    def stop_agent(self, sig: int = signal.SIGTERM) -> int | None:
        code = _stop(self.agent, sig)
        self.agent = None
        return code

    def log_text(self) -> str:
        out = []
        for name in ("agent.log", "agent.stderr", "server.stderr"):
            with contextlib.suppress(OSError):
                out.append(f"--- {name}\n" + (self.dir / name).read_text()[-6000:])
        return "\n".join(out)

    # -- controller side --

    def ctl(self, *args: str, check: bool = True) -> str:
        cp = subprocess.run(["vtep-ctl", f"--db={self.db}", *args], capture_output=True,
                            text=True, timeout=30, env=self.env())  # fmt: skip
        if check and cp.returncode != 0:
            raise AssertionError(f"vtep-ctl {args}: {cp.stderr}\n{self.log_text()}")
        return cp.stdout

    def transact(self, *ops: dict[str, Any]) -> list[Any]:
        result = rpc(self.sock, "transact", ["hardware_vtep", *ops])
        errors = [r for r in result if isinstance(r, dict) and "error" in r]
        assert not errors, f"transaction failed: {result}"
        return list(result)

    def dump(self, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
        op: dict[str, Any] = {"op": "select", "table": table, "where": []}
        if columns is not None:
            op["columns"] = columns
        return list(rpc(self.sock, "transact", ["hardware_vtep", op])[0]["rows"])


def _stop(proc: subprocess.Popen[bytes] | None, sig: int) -> int | None:
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc is not None else None
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


class Lab:
    """Two VTEPs and four hosts (see the module docstring)."""

    def __init__(self, spaces: Namespaces, tmp: Path, server: str = "hwvtep") -> None:
        self.spaces = spaces
        self.vteps: dict[str, Vtep] = {}
        self.hosts: dict[str, str] = {}
        for i in (1, 2):
            ns = spaces.make(f"v{i}")
            d = tmp / f"ps{i}"
            d.mkdir(parents=True)
            self.vteps[f"ps{i}"] = Vtep(f"ps{i}", ns, f"10.99.0.{i}", d, server)
        v1, v2 = self.vteps["ps1"], self.vteps["ps2"]
        spaces.veth(v1.ns, "u1", v2.ns, "u2")
        spaces.up(v1.ns, "u1", "10.99.0.1/24")
        spaces.up(v2.ns, "u2", "10.99.0.2/24")
        for color, port in (("r", "p1"), ("b", "p2")):
            for i, vtep in ((1, v1), (2, v2)):
                host = spaces.make(f"{color}{i}")
                self.hosts[f"{color}{i}"] = host
                spaces.veth(host, "eth0", vtep.ns, port)
                spaces.up(host, "eth0", f"192.168.10.{i}/24")
                spaces.ip(vtep.ns, "link", "set", port, "up")

    def __getitem__(self, name: str) -> Vtep:
        return self.vteps[name]

    def start(self, agents: bool = True) -> None:
        for v in self.vteps.values():
            v.start_server()
            v.ctl("add-ps", v.name, "--", "set", "Physical_Switch", v.name,
                  f"tunnel_ips={v.tip}")  # fmt: skip
            if agents:
                v.start_agent()
        if agents:
            for v in self.vteps.values():
                v.wait_ports("p1", "p2")

    def close(self) -> None:
        for v in self.vteps.values():
            v.stop_agent()
            v.stop_server()

    def mac(self, host: str) -> str:
        return self.spaces.mac(self.hosts[host], "eth0")

    def ping(self, src: str, dst_ip: str, count: int = 1, wait: float = 1) -> bool:
        cp = self.spaces.exec(self.hosts[src], "ping", "-c", str(count), "-W", str(wait),
                              dst_ip)  # fmt: skip
        return cp.returncode == 0

    def ping_soon(self, src: str, dst_ip: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping(src, dst_ip, wait=0.5):
                return True
        return False

    def flush_arp(self) -> None:
        for host in self.hosts.values():
            self.spaces.ip(host, "neigh", "flush", "all", check=False)

    # -- what the kernel of a VTEP holds --

    def fdb(self, vtep: str, dev: str) -> set[tuple[str, str]]:
        """(MAC, dst) entries of vxlan `dev` in `vtep`'s namespace."""
        out = self.spaces.exec(self[vtep].ns, "bridge", "fdb", "show", "dev", dev).stdout
        entries = set()
        for line in out.splitlines():
            words = line.split()
            if "dst" in words:
                entries.add((words[0], words[words.index("dst") + 1]))
        return entries

    def links(self, vtep: str) -> set[str]:
        out = self.spaces.ip(self[vtep].ns, "-o", "link", "show").stdout
        return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}

    def master(self, vtep: str, dev: str) -> str | None:
        out = self.spaces.ip(self[vtep].ns, "-o", "link", "show", dev, check=False).stdout
        words = out.split()
        return words[words.index("master") + 1] if "master" in words else None
