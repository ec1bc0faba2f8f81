"""Shared helpers for the server's durability, robustness, TLS and load tests.

`Server` runs one `hwvtep ovsdb-server` (or Open vSwitch's, for reference behaviour) in
its own directory with `OVS_RUNDIR` pointing there, and can stop, SIGKILL and restart it
on the same database file. `RawClient` is a blocking JSON-RPC client over unix, tcp or
ssl sockets that can also send arbitrary bytes; `AsyncClient` is its asyncio sibling for
tests with hundreds of concurrent sessions. Both frame the stream with the sans-IO
`hwvtep.ovsdb.jsonrpc.Connection` and answer the server's echo probes only when told to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hwvtep.ovsdb.jsonrpc import (
    Closed,
    Connection,
    Error,
    Message,
    Notification,
    ProtocolError,
    Reply,
    Request,
    encode,
)
from hwvtep.ovsdb.schema import DatabaseSchema, TableSchema
from hwvtep.ovsdb.types import ColumnType

HWVTEP = str(Path(sys.executable).with_name("hwvtep"))
OVSDB_SERVER = "/usr/sbin/ovsdb-server"
VTEP_SCHEMA = Path("/usr/share/openvswitch/vtep.ovsschema")
OVS_TOOLS = ("ovsdb-tool", "ovsdb-client", "ovs-appctl")
MISSING_OVS = [t for t in OVS_TOOLS if shutil.which(t) is None]
if not os.access(OVSDB_SERVER, os.X_OK):
    MISSING_OVS.append(OVSDB_SERVER)

needs_ovs = pytest.mark.skipif(
    bool(MISSING_OVS), reason=f"Open vSwitch binaries missing: {', '.join(MISSING_OVS)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def env_for(rundir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OVS_RUNDIR=str(rundir), OVS_LOGDIR=str(rundir), OVS_DBDIR=str(rundir))
    return env


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass(eq=False)
class Server:
    """One server process on a database file in *dir* (kept across restarts)."""

    dir: Path
    kind: str = "hwvtep"  # or "ovs"
    port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)
    remotes: list[str] | None = None  # default: punix:SOCK and ptcp:PORT:127.0.0.1
    proc: subprocess.Popen[bytes] | None = None
    detach: bool = False
    _pid: int | None = None

    @property
    def db(self) -> Path:
        return self.dir / "db"

    @property
    def sock(self) -> Path:
        return self.dir / "db.sock"

    @property
    def ctl(self) -> Path:
        return self.dir / "ctl"

    @property
    def pidfile(self) -> Path:
        return self.dir / "pid"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    @property
    def env(self) -> dict[str, str]:
        return env_for(self.dir)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else self._pid

    def log_text(self) -> str:
        out = []
        for p in (self.log, self.dir / "stderr"):
            with contextlib.suppress(OSError):
                out.append(p.read_text(errors="replace"))
        return "\n".join(out)

    def command(self) -> list[str]:
        remotes = self.remotes if self.remotes is not None else [
            f"punix:{self.sock}", f"ptcp:{self.port}:127.0.0.1"]
        common = [*(f"--remote={r}" for r in remotes), f"--unixctl={self.ctl}",
                  f"--pidfile={self.pidfile}", f"--log-file={self.log}", *self.extra]
        if self.kind == "ovs":
            return [OVSDB_SERVER, "--no-chdir", *common, str(self.db)]
        return [HWVTEP, "ovsdb-server", *common, "--create-if-missing", str(self.db)]

    def create_ovs_db(self, schema: Path = VTEP_SCHEMA) -> None:
        if not self.db.exists():
            subprocess.run(["ovsdb-tool", "create", str(self.db), str(schema)], check=True,
                           env=self.env, capture_output=True, timeout=30)

    def start(self, timeout: float = 20) -> Server:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "ovs":
            self.create_ovs_db()
        cmd = self.command()
        if self.detach:
            cp = subprocess.run([*cmd, "--detach"], env=self.env, capture_output=True,
                                timeout=60)
            if cp.returncode != 0:
                raise RuntimeError(f"{cmd} --detach failed: {cp.stderr!r}\n{self.log_text()}")
            self._pid = int(self.pidfile.read_text())
        else:
            with open(self.dir / "stderr", "ab") as err:
                self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL,
                                             stderr=err)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n"
                                   f"{self.log_text()}")
            if self.ctl.exists() and (self.remotes is not None or self.sock.exists()):
                try:
                    if self.remotes is None:
                        with RawClient.unix(self.sock, timeout=2) as c:
                            c.call("list_dbs", [])
                    return
                except (OSError, EOFError):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up:\n{self.log_text()}")
            time.sleep(0.02)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        self.wait_gone()

    def wait_gone(self, timeout: float = 15) -> int | None:
        """Wait for the process to end; its exit status if it was our child."""
        if self.proc is not None:
            try:
                rc = self.proc.wait(timeout)
            finally:
                self.proc = None
            return rc
        pid = self._pid
        deadline = time.monotonic() + timeout
        while pid is not None and alive(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"pid {pid} did not exit")
            time.sleep(0.02)
        self._pid = None
        return None

    def stop(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.wait_gone(10)
        except (TimeoutError, subprocess.TimeoutExpired):
            self.kill()

    def appctl(self, *args: str, target: str | None = None,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ovs-appctl", "-t", target or str(self.ctl), *args],
                              capture_output=True, text=True, env=self.env, timeout=timeout)

    def tool(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, env=self.env,
                              timeout=timeout)

    def client(self, timeout: float = 10) -> RawClient:
        return RawClient.unix(self.sock, timeout=timeout)

    def tcp_client(self, timeout: float = 10) -> RawClient:
        return RawClient.tcp("127.0.0.1", self.port, timeout=timeout)


@contextlib.contextmanager
def running(server: Server) -> Any:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RawClient:
    """A blocking JSON-RPC client for tests: raw bytes out, parsed messages in.

    Messages that are not what a call waits for are kept in ``inbox`` in arrival order.
    With ``answer_echo`` the server's inactivity probes are answered automatically.
    """

    def __init__(self, sock: socket.socket, *, timeout: float = 10,
                 answer_echo: bool = True) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.conn = Connection(max_message_size=1 << 30)
        self.inbox: list[Message] = []
        self.answer_echo = answer_echo
        self.closed = False
        self._next_id = 0

    @classmethod
    def unix(cls, path: str | Path, **kw: Any) -> RawClient:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(kw.get("timeout", 10))
        s.connect(str(path))
        return cls(s, **kw)

    @classmethod
    def tcp(cls, host: str, port: int, **kw: Any) -> RawClient:
        s = socket.create_connection((host, port), timeout=kw.get("timeout", 10))
        return cls(s, **kw)

    @classmethod
    def ssl(cls, host: str, port: int, ctx: ssl.SSLContext, **kw: Any) -> RawClient:
        raw = socket.create_connection((host, port), timeout=kw.get("timeout", 10))
        s = ctx.wrap_socket(raw, server_hostname=host if ctx.check_hostname else None)
        return cls(s, **kw)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sending ------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, msg: Message) -> None:
        self.sock.sendall(encode(msg))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request(self, method: str, params: list[Any]) -> int:
        rid = self.new_id()
        self.send(Request(method, params, rid))
        return rid

    # --- receiving ----------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Message:
        """The next message; TimeoutError if none comes in time, EOFError at close."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            ev = self.conn.next_event()
            if isinstance(ev, ProtocolError):
                raise AssertionError(f"server sent bad JSON-RPC: {ev.reason}")
            if isinstance(ev, Closed):
                raise EOFError("server closed the connection")
            if ev is not None:
                if (self.answer_echo and isinstance(ev, Request) and ev.method == "echo"):
                    self.send(Reply(ev.params, ev.id))
                    continue
                return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the server")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                raise
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            self.conn.receive_data(data)

    def wait_reply(self, rid: Any, timeout: float | None = None) -> Reply | Error:
        for i, m in enumerate(self.inbox):
            if isinstance(m, Reply | Error) and m.id == rid:
                return self.inbox.pop(i)  # type: ignore[return-value]
        while True:
            m = self.recv(timeout)
            if isinstance(m, Reply | Error) and m.id == rid:
                return m
            self.inbox.append(m)

    def call(self, method: str, params: list[Any], timeout: float | None = None,
             ) -> Reply | Error:
        return self.wait_reply(self.request(method, params), timeout)

    def result(self, method: str, params: list[Any], timeout: float | None = None) -> Any:
        r = self.call(method, params, timeout)
        if isinstance(r, Error):
            raise AssertionError(f"{method} failed: {r.error}")
        return r.result

    def transact(self, db: str, *ops: Any, timeout: float | None = None) -> list[Any]:
        res = self.result("transact", [db, *ops], timeout)
        assert isinstance(res, list)
        for r in res:
            if isinstance(r, dict) and "error" in r:
                raise AssertionError(f"transaction failed: {res}")
        return res

    def notifications(self) -> list[Notification]:
        out = [m for m in self.inbox if isinstance(m, Notification)]
        self.inbox = [m for m in self.inbox if not isinstance(m, Notification)]
        return out

    def drain(self, quiet: float = 0.2) -> list[Notification]:
        """Read until nothing comes for *quiet* seconds; take the notifications."""
        with contextlib.suppress(TimeoutError):
            while True:
                self.inbox.append(self.recv(quiet))
        return self.notifications()

    def wait_closed(self, timeout: float = 10) -> None:
        """Read (discarding) until the server closes the connection."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the server kept the connection open")
                self.recv(left)
        except EOFError:
            return
        except TimeoutError:
            raise AssertionError("the server kept the connection open") from None


class AsyncClient:
    """An asyncio JSON-RPC client: many of them can run in one test process."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = Connection(max_message_size=1 << 30)
        self.pending: dict[Any, asyncio.Future[Reply | Error]] = {}
        self.notes: asyncio.Queue[Notification] = asyncio.Queue()
        self._next_id = 0
        self._task = asyncio.get_running_loop().create_task(self._read())
        self.closed = asyncio.get_running_loop().create_future()

    @classmethod
    async def unix(cls, path: str | Path) -> AsyncClient:
        r, w = await asyncio.open_unix_connection(str(path), limit=1 << 20)
        return cls(r, w)

    @classmethod
    async def tcp(cls, host: str, port: int) -> AsyncClient:
        r, w = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(r, w)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(1 << 18)
                self.conn.receive_data(data)
                for ev in self.conn.events():
                    if isinstance(ev, Reply | Error):
                        fut = self.pending.pop(ev.id, None)
                        if fut is not None and not fut.done():
                            fut.set_result(ev)
                    elif isinstance(ev, Notification):
                        self.notes.put_nowait(ev)
                    elif isinstance(ev, Request) and ev.method == "echo":
                        self.writer.write(encode(Reply(ev.params, ev.id)))
                    elif isinstance(ev, ProtocolError | Closed):
                        return
                if not data:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(EOFError("connection closed"))
            if not self.closed.done():
                self.closed.set_result(None)

    async def call(self, method: str, params: list[Any]) -> Reply | Error:
        self._next_id += 1
        rid = self._next_id
        fut: asyncio.Future[Reply | Error] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self.writer.write(encode(Request(method, params, rid)))
        return await fut

    async def result(self, method: str, params: list[Any]) -> Any:
        r = await self.call(method, params)
        if isinstance(r, Error):
            raise AssertionError(f"{method} failed: {r.error}")
        return r.result

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


# --- a replica that monitor updates keep in step -------------------------------------
# Written independently of the server's encoder: values become frozensets (sets, scalars)
# or dicts (maps) of hashable atoms, so that a replica and a "select" compare directly.


def _h(a: Any) -> Any:
    return tuple(a) if isinstance(a, list) else a


def value(ctype: ColumnType, j: Any) -> Any:
    if ctype.is_map:
        return {_h(k): _h(v) for k, v in j[1]}
    if isinstance(j, list) and j and j[0] == "set":
        return frozenset(_h(a) for a in j[1])
    return frozenset([_h(j)])


def default_value(ctype: ColumnType) -> Any:
    if ctype.is_map:
        return {}
    if ctype.n_min == 0:
        return frozenset()
    atom: Any = {"integer": 0, "real": 0.0, "boolean": False, "string": "",
                 "uuid": ("uuid", "00000000-0000-0000-0000-000000000000")}[ctype.key.type]
    return frozenset([atom])


def row_values(ts: TableSchema, row: dict[str, Any],
               columns: Iterable[str] | None = None) -> dict[str, Any]:
    """Values of *columns* (default: the row's own), defaults for those it omits."""
    names = row.keys() if columns is None else columns
    return {c: (value(ts.columns[c].type, row[c]) if c in row
                else default_value(ts.columns[c].type))
            for c in names if c in ts.columns and c not in ("_uuid", "_version")}


class Replica:
    """Tables as a monitor's updates (update, update2 or update3) describe them."""

    def __init__(self, schema: DatabaseSchema,
                 columns: dict[str, list[str]] | None = None) -> None:
        """*columns*: the monitored columns of each table (default: all of them); update2
        leaves out columns whose value is the default, the replica fills them in."""
        self.schema = schema
        self.columns = columns or {}
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}

    def _columns(self, table: str) -> list[str]:
        cols = self.columns.get(table)
        if cols is None:
            cols = [c for c in self.schema.tables[table].columns
                    if c not in ("_uuid", "_version")]
        return cols

    def apply(self, updates: dict[str, Any], version: int) -> None:
        for table, rows in updates.items():
            ts = self.schema.tables[table]
            t = self.tables.setdefault(table, {})
            for uuid, change in rows.items():
                if version == 1:
                    if change.get("new") is None:
                        t.pop(uuid, None)
                    else:
                        t[uuid] = row_values(ts, change["new"], self._columns(table))
                    continue
                if change is None:
                    t.pop(uuid, None)
                    continue
                ((kind, body),) = change.items()
                if kind in ("initial", "insert"):
                    t[uuid] = row_values(ts, body, self._columns(table))
                elif kind == "delete":
                    t.pop(uuid, None)
                elif kind == "modify":
                    row = t[uuid]
                    for col, diff in body.items():
                        row[col] = _apply_diff(ts.columns[col].type, row[col], diff)
                else:
                    raise AssertionError(f"unexpected update kind {kind}")

    def apply_notification(self, note: Notification) -> None:
        if note.method == "update":
            self.apply(note.params[1], 1)
        elif note.method == "update2":
            self.apply(note.params[1], 2)
        elif note.method == "update3":
            self.apply(note.params[2], 3)


def _apply_diff(ctype: ColumnType, old: Any, diff_json: Any) -> Any:
    if ctype.n_max == 1:
        # Not "composite" in OVS's terms (scalars, optional values, 1-element maps): the
        # diff is the new value.
        return value(ctype, diff_json)
    if ctype.is_map:
        m = dict(old)
        for k, v in diff_json[1]:
            k, v = _h(k), _h(v)
            if m.get(k, _MISSING) == v:
                del m[k]
            else:
                m[k] = v
        return m
    return frozenset(old ^ value(ctype, diff_json))


_MISSING = object()


def table_from_select(schema: DatabaseSchema, table: str, rows: list[dict[str, Any]],
                      columns: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """uuid -> row values (of *columns*, default all), from a "select" result that
    includes _uuid."""
    ts = schema.tables[table]
    cols = list(columns) if columns is not None else [
        c for c in ts.columns if c not in ("_uuid", "_version")]
    return {row["_uuid"][1]: row_values(ts, row, cols) for row in rows}
