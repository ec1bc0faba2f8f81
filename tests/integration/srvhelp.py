"""Running real OVSDB servers side by side (ours and Open vSwitch's) and talking to them.

Each server gets its own temp dir (database file, unix socket, control socket, pidfile,
log) and a tcp listener on 127.0.0.1 at a port picked here, and is always killed on
teardown. ``OVS_RUNDIR``/``OVS_LOGDIR``/``OVS_DBDIR`` point into the temp dir so nothing
lands in /var/run, for the servers and for every client tool the tests run.

`Rpc` is a raw JSON-RPC client (no library of ours) used by the protocol tests to talk to
both servers the same way.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from server_util import alive, env_for, free_port

OVS_SHARE = Path("/usr/share/openvswitch")
VTEP_SCHEMA = OVS_SHARE / "vtep.ovsschema"
VSWITCH_SCHEMA = OVS_SHARE / "vswitch.ovsschema"
OVSDB_SERVER = "/usr/sbin/ovsdb-server"
HWVTEP = str(Path(sys.executable).with_name("hwvtep"))

_TOOLS = ("ovsdb-tool", "ovsdb-client", "vtep-ctl", "ovs-vsctl", "ovs-appctl")


def missing_ovs(tools: tuple[str, ...]) -> list[str]:
    """Which of *tools*, ovsdb-server and the schemas are absent."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not os.access(OVSDB_SERVER, os.X_OK):
        missing.append(OVSDB_SERVER)
    return missing + [str(p) for p in (VTEP_SCHEMA, VSWITCH_SCHEMA) if not p.exists()]


def needs_ovs_tools(*tools: str) -> pytest.MarkDecorator:
    """Skip loudly (the reason is printed by -ra) when the reference binaries are absent."""
    missing = missing_ovs(tools)
    return pytest.mark.skipif(
        bool(missing), reason=f"Open vSwitch is not installed (missing: {', '.join(missing)})")


MISSING_OVS = missing_ovs(_TOOLS)
needs_ovs = needs_ovs_tools(*_TOOLS)

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def mask_uuids(text: str) -> str:
    """Replace each distinct UUID by <N>, numbered in order of first appearance."""
    seen: dict[str, int] = {}

    def sub(m: re.Match[str]) -> str:
        return f"<{seen.setdefault(m.group(0), len(seen))}>"
    return UUID_RE.sub(sub, text)


def renumber_uuids(value: Any) -> Any:
    """The JSON value with UUIDs (strings and named-uuid-free ["uuid", ...]) renumbered."""
    return json.loads(mask_uuids(json.dumps(value)))


_LOG_PREFIX_RE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\|\d+\|", re.M)


def normalize_output(text: str, srv: RunningServer) -> str:
    """Tool output with what legitimately differs between two runs masked: UUIDs,
    log timestamps and sequence numbers, the server's own paths and port."""
    text = _LOG_PREFIX_RE.sub("<log>|", text)
    text = text.replace(str(srv.dir), "<dir>").replace(str(srv.port), "<port>")
    return mask_uuids(text)


def sort_tree(text: str) -> str:
    """An indented listing (vtep-ctl/ovs-vsctl show) with siblings sorted at each level:
    those tools list set members (ports, bindings) in UUID order, which is random."""
    lines = text.splitlines()

    def parse(i: int, indent: int) -> tuple[list[str], int]:
        out: list[str] = []
        while i < len(lines):
            line = lines[i]
            depth = len(line) - len(line.lstrip(" "))
            if depth < indent:
                break
            children, i = parse(i + 1, depth + 1)
            out.append("\n".join([line, *children]))
        return sorted(out), i
    nodes, _ = parse(0, 0)
    return "\n".join(nodes) + "\n"


def tool_env(rundir: Path) -> dict[str, str]:
    env = env_for(rundir)
    env["OVS_SYSCONFDIR"] = str(rundir)
    return env


@dataclass(eq=False)
class RunningServer:
    kind: str  # "hwvtep" or "ovs"
    dir: Path
    db: Path
    sock: Path
    ctl: Path
    pidfile: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def unix(self) -> str:
        return f"unix:{self.sock}"

    @property
    def tcp(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return tool_env(self.dir)

    def run(self, *args: str, check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a client tool with this server's environment."""
        cp = subprocess.run(list(args), capture_output=True, text=True, env=self.env,
                            timeout=timeout, input=input)
        if check and cp.returncode != 0:
            raise AssertionError(f"{args} failed ({cp.returncode}) against {self.kind}:\n"
                                 f"stdout: {cp.stdout}\nstderr: {cp.stderr}\n"
                                 f"server log:\n{self.log_text()}")
        return cp

    def log_text(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return "(no log)"

    def pid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.proc = None
        elif pid is not None:
            # A --detach'ed server: not our child, so signal it and wait for it to go.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.05)
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _wait_ready(srv: RunningServer, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if srv.proc is not None and srv.proc.poll() is not None:
            raise RuntimeError(f"{srv.kind} server exited with {srv.proc.returncode}:\n"
                               f"{srv.log_text()}")
        if srv.sock.exists():
            try:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=1):
                    pass
                rpc = Rpc(str(srv.sock))
                try:
                    if rpc.call("list_dbs", []).get("error") is None:
                        return
                finally:
                    rpc.close()
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{srv.kind} server did not come up:\n{srv.log_text()}")
        time.sleep(0.05)


def start_server(kind: str, base: Path, schema: Path = VTEP_SCHEMA, *,
                 detach: bool = False, extra: list[str] | None = None) -> RunningServer:
    """Start one server on a fresh database created from *schema*."""
    d = base / kind
    d.mkdir(parents=True, exist_ok=True)
    srv = RunningServer(kind, d, d / "db", d / "db.sock", d / "ctl", d / "pid", d / "log",
                        free_port(), extra=list(extra or []))
    common = [f"--remote=punix:{srv.sock}", f"--remote=ptcp:{srv.port}:127.0.0.1",
              f"--unixctl={srv.ctl}", f"--pidfile={srv.pidfile}", f"--log-file={srv.log}",
              *srv.extra]
    if kind == "ovs":
        subprocess.run(["ovsdb-tool", "create", str(srv.db), str(schema)], check=True,
                       timeout=30, env=srv.env, capture_output=True)
        cmd = [OVSDB_SERVER, "--no-chdir", *common, str(srv.db)]
    elif kind == "hwvtep":
        cmd = [HWVTEP, "ovsdb-server", *common, f"--create-if-missing={schema}", str(srv.db)]
    else:
        raise ValueError(kind)
    if detach:
        cp = subprocess.run([*cmd, "--detach"], env=srv.env, capture_output=True,
                            text=True, timeout=60)
        if cp.returncode != 0:
            raise RuntimeError(f"{cmd} --detach failed: {cp.stderr}\n{srv.log_text()}")
    else:
        with open(d / "stderr", "wb") as err:
            srv.proc = subprocess.Popen(cmd, env=srv.env, stdout=subprocess.DEVNULL,
                                        stderr=err)
    try:
        _wait_ready(srv)
    except BaseException:
        srv.stop()
        raise
    return srv


StartServer = Callable[..., RunningServer]


class Rpc:
    """A raw JSON-RPC client over a unix (path) or tcp ((host, port)) stream socket.

    Keeps every message that is not the awaited reply (notifications, replies to other
    requests) in arrival order in ``inbox``; answers the server's echo probes.
    """

    def __init__(self, where: str | tuple[str, int], timeout: float = 10) -> None:
        if isinstance(where, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(where)
        self.buf = ""
        self.decoder = json.JSONDecoder()
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.inbox: list[dict[str, Any]] = []
        self.next_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, msg: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(msg).encode())

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message from the server (TimeoutError if none in time)."""
        old = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            while True:
                text = self.buf.lstrip()
                if text:
                    try:
                        msg, end = self.decoder.raw_decode(text)
                    except json.JSONDecodeError:
                        pass
                    else:
                        self.buf = text[end:]
                        assert isinstance(msg, dict), msg
                        if msg.get("method") == "echo" and msg.get("id") is not None \
                                and str(msg["id"]).startswith("echo"):
                            self.send({"id": msg["id"], "result": msg["params"],
                                       "error": None})
                            continue
                        return msg
                data = self.sock.recv(1 << 16)
                if not data:
                    raise EOFError("server closed the connection")
                self.buf += self.utf8.decode(data)
        finally:
            self.sock.settimeout(old)

    def request(self, method: str, params: Any, rid: Any = None) -> Any:
        """Send a request; returns its id."""
        if rid is None:
            self.next_id += 1
            rid = self.next_id
        self.send({"method": method, "params": params, "id": rid})
        return rid

    def wait_reply(self, rid: Any, timeout: float | None = None) -> dict[str, Any]:
        for i, m in enumerate(self.inbox):
            if m.get("id") == rid and "method" not in m:
                return self.inbox.pop(i)
        while True:
            msg = self.recv(timeout)
            if msg.get("id") == rid and "method" not in msg:
                return msg
            self.inbox.append(msg)

    def call(self, method: str, params: Any, rid: Any = None) -> dict[str, Any]:
        return self.wait_reply(self.request(method, params, rid))

    def result(self, method: str, params: Any) -> Any:
        reply = self.call(method, params)
        assert reply.get("error") is None, reply
        return reply["result"]

    def notes(self) -> list[dict[str, Any]]:
        """Take the notifications received so far."""
        out = [m for m in self.inbox if "method" in m]
        self.inbox = [m for m in self.inbox if "method" not in m]
        return out

    def drain(self, quiet: float = 0.2) -> list[dict[str, Any]]:
        """Read until the server is quiet for *quiet* seconds; take the notifications."""
        while True:
            try:
                self.inbox.append(self.recv(quiet))
            except TimeoutError:
                return self.notes()
