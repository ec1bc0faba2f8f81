"""Wiring of one `hwvtep ovsdb-server` process: files, remotes, control socket, timers.

`ServerApp` opens the database files (`server/storage.py`), hands them to the
`ServerCore`, keeps the set of remotes (command line, `ovs-appctl ovsdb-server/add-remote`,
and `db:DB,TABLE,COLUMN` references) in step with listeners and outgoing connections,
serves the unixctl socket, and runs housekeeping: expiring blocked transactions, online
compaction, and the Manager rows' `is_connected`/`status` columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any

from hwvtep import __version__
from hwvtep.ovsdb.database import Changes
from hwvtep.ovsdb.jsonutil import loads
from hwvtep.ovsdb.reconnect import Reconnect
from hwvtep.ovsdb.schema import bundled_schema_text
from hwvtep.ovsdb.transaction import execute
from hwvtep.server import daemon
from hwvtep.server import storage as storage_mod
from hwvtep.server.core import ServedDb, ServerCore
from hwvtep.server.listener import DEFAULT_PROBE_MS, SessionProtocol
from hwvtep.server.remotes import Remote, RemoteError, parse_remote
from hwvtep.server.unixctl import CommandError, CommandTable, UnixctlServer

log = logging.getLogger("hwvtep.ovsdb_server")

PROGRAM = "ovsdb-server"
HOUSEKEEPING_S = 2.5
MIN_PROBE_MS = 1000


class StartupError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """Per-remote settings (from a Manager row for db: remotes)."""

    inactivity_probe_ms: int | None = None
    max_backoff_ms: int | None = None


@dataclass(eq=False)
class RunningRemote:
    spec: str
    remote: Remote
    options: RemoteOptions
    server: asyncio.AbstractServer | None = None
    task: asyncio.Task[None] | None = None
    sessions: set[SessionProtocol] = field(default_factory=set)
    fsm: Reconnect | None = None  # active remotes: their connection's state machine
    last_error: str | None = None
    bound_port: int | None = None
    default_probe_ms: int = DEFAULT_PROBE_MS

    @property
    def probe_ms(self) -> int:
        ms = self.options.inactivity_probe_ms
        if ms is not None:
            # As Open vSwitch's reconnect: 0 disables, anything else is at least 1 s.
            return max(ms, MIN_PROBE_MS) if ms > 0 else 0
        return 0 if self.remote.kind in ("punix", "unix") else self.default_probe_ms


class ServerApp:
    def __init__(self, opts: Namespace, vlog: daemon.Vlog) -> None:
        self.opts = opts
        self.vlog = vlog
        self.core = ServerCore(now=time.monotonic)
        self.core.on_commit_hooks.append(self._on_commit)
        self.core.on_blocked = self._schedule_timers
        self.storages: dict[str, storage_mod.Storage] = {}
        self.cmdline_remotes: list[str] = list(opts.remote)
        self.running: dict[str, RunningRemote] = {}
        self._exit = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._reconcile_pending = False
        self._bad_remotes: set[str] = set()
        self.unixctl: UnixctlServer | None = None
        self.pidfile: daemon.Pidfile | None = None
        self.ssl_server: ssl.SSLContext | None = None
        self.ssl_client: ssl.SSLContext | None = None

    # ----- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        opts = self.opts
        # The pidfile comes first, as in ovsdb-server: a second instance is told that
        # the first one runs before it trips over its database locks or sockets.
        if opts.pidfile is not None:
            pidfile = daemon.Pidfile(daemon.abs_path(opts.pidfile) if opts.pidfile
                                     else daemon.default_pidfile(PROGRAM))
            try:
                pidfile.create(overwrite=opts.overwrite_pidfile)
            except (daemon.PidfileError, OSError) as e:
                raise StartupError(str(e)) from None
            self.pidfile = pidfile
        try:
            await self._start()
        except BaseException:
            if self.pidfile is not None:
                self.pidfile.remove()
                self.pidfile = None
            raise

    async def _start(self) -> None:
        opts = self.opts
        for path in opts.databases:
            err = self.open_db(path, create_schema=opts.create_if_missing)
            if err:
                raise StartupError(err)
        self._setup_ssl()
        for spec in self.cmdline_remotes:
            try:
                parse_remote(spec)
            except RemoteError as e:
                raise StartupError(str(e)) from None
        await self._reconcile_remotes(initial=True)
        ctl_path = (daemon.abs_path(opts.unixctl) if opts.unixctl
                    else daemon.default_unixctl_path(PROGRAM, os.getpid()))
        if opts.unixctl != "none":
            self.unixctl = UnixctlServer(ctl_path, self._commands())
            try:
                await self.unixctl.start()
            except OSError as e:
                raise StartupError(f"{ctl_path}: could not initialize control socket "
                                   f"({e.strerror})") from None
        self._spawn(self._housekeeping())
        log.info("%s (hwvtep) %s started", PROGRAM, __version__)

    def request_exit(self) -> None:
        self._exit.set()

    async def wait_exit(self) -> None:
        await self._exit.wait()

    async def stop(self) -> None:
        for r in list(self.running.values()):
            await self._stop_remote(r)
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self.unixctl is not None:
            await self.unixctl.close()
        for st in self.storages.values():
            st.close()
        if self.pidfile is not None:
            self.pidfile.remove()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ----- databases -------------------------------------------------------------------

    def open_db(self, path: str, create_schema: str | None = None) -> str | None:
        """Open (and with *create_schema*, create) a database file; an error or None."""
        if self._already_open(path):
            return f"ovsdb error: {path}: already open"
        try:
            if create_schema is not None and not os.path.exists(path):
                if create_schema:
                    with open(create_schema) as f:
                        schema_text = f.read()
                else:
                    schema_text = bundled_schema_text("hardware_vtep")
                storage_mod.create(path, loads(schema_text))
                log.info("%s: created from %s", path, create_schema or "bundled hardware_vtep")
            st = storage_mod.Storage.open(path)
        except (storage_mod.StorageError, OSError) as e:
            return str(e)
        except Exception as e:  # a malformed schema file for --create-if-missing
            return f"{path}: {getattr(e, 'details', None) or e}"
        name = st.schema.name
        if name in self.core.dbs:
            st.close()
            return f"{name}: duplicate database name"
        self.storages[name] = st
        self.core.add_database(name, st.db, st, path=path)
        return None

    def _already_open(self, path: str) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        for served in self.core.dbs.values():
            if not served.path:
                continue
            try:
                other = os.stat(served.path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino):
                return True
        return False

    def remove_db(self, name: str) -> None:
        self.core.remove_database(name)
        st = self.storages.pop(name, None)
        if st is not None:
            st.close()

    def _on_commit(self, served: ServedDb, changes: Changes) -> None:
        # Remotes configured from this database may have changed.
        if self._reconcile_pending:
            return
        for spec in self.cmdline_remotes:
            if not spec.startswith(f"db:{served.name},"):
                continue
            tokens = [t for t in spec[3:].split(",") if t]
            ts = served.db.schema.tables.get(tokens[1]) if len(tokens) >= 3 else None
            col = ts.columns.get(tokens[2]) if ts is not None else None
            watched = {tokens[1]} if len(tokens) >= 3 else set()
            if col is not None and col.type.key.ref_table:
                watched.add(col.type.key.ref_table)
            if watched & changes.keys():
                self._reconcile_pending = True
                self._spawn(self._reconcile_remotes())
                return

    def _schedule_timers(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.monotonic())
        loop.call_later(delay + 0.001, self.core.run_timers)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                self.core.run_timers()
                for name, st in list(self.storages.items()):
                    if not st.compacting and st.should_compact():
                        log.info("%s: compacting database online", name)
                        self._spawn(self._compact_logged(name))
                self._update_manager_status()
                if self._desired_remotes().keys() - self.running.keys():
                    await self._reconcile_remotes()
            except Exception:
                log.exception("housekeeping failed")

    async def compact(self, name: str) -> None:
        """Compact one database while it keeps serving: the snapshot is serialised and
        written by a worker thread; commits made meanwhile are appended to the new file
        before it replaces the old one. OSError if it failed (the old file stays)."""
        st = self.storages[name]
        while st.compacting:  # one at a time; a request during one gets its own
            await asyncio.sleep(0.05)
        if self.storages.get(name) is not st:
            return
        job = st.begin_compaction()
        fut = asyncio.get_running_loop().run_in_executor(None, job.write)
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(lambda _f: job.discard())
            raise
        if self.storages.get(name) is not st:  # removed meanwhile
            job.discard()
            return
        st.finish_compaction(job)

    async def _compact_logged(self, name: str) -> None:
        try:
            await self.compact(name)
        except OSError as e:
            log.error("%s: compaction failed: %s", name, e)

    # ----- remotes ---------------------------------------------------------------------

    def _desired_remotes(self) -> dict[str, RemoteOptions]:
        out: dict[str, RemoteOptions] = {}
        for spec in self.cmdline_remotes:
            if spec.startswith("db:"):
                out.update(self._remotes_from_db(spec))
            else:
                out[spec] = RemoteOptions()
        return out

    def _remotes_from_db(self, spec: str) -> dict[str, RemoteOptions]:
        try:
            r = parse_remote(spec)
        except RemoteError:
            return {}
        served = self.core.dbs.get(r.db)
        if served is None:
            return {}
        ts = served.db.schema.tables.get(r.table)
        col = ts.columns.get(r.column) if ts else None
        if ts is None or col is None:
            return {}
        out: dict[str, RemoteOptions] = {}
        rows = served.db.tables[r.table]
        ref = col.type.key.ref_table
        for row in rows.values():
            datum = row[r.column]
            if col.type.value is not None:
                continue
            if col.type.key.type == "string":
                for target in datum:
                    out[target] = RemoteOptions()
            elif ref is not None:
                for target_uuid in datum:
                    mrow = served.db.tables[ref].get(target_uuid)
                    if mrow is None or "target" not in mrow:
                        continue
                    for target in mrow["target"]:
                        probe = mrow.get("inactivity_probe", ())
                        backoff = mrow.get("max_backoff", ())
                        out[target] = RemoteOptions(
                            probe[0] if probe else None, backoff[0] if backoff else None)
        return out

    async def _reconcile_remotes(self, initial: bool = False) -> None:
        self._reconcile_pending = False
        desired = self._desired_remotes()
        for spec, r in list(self.running.items()):
            if spec not in desired:
                await self._stop_remote(r)
            elif desired[spec] != r.options:
                # New settings from a Manager row apply to the running remote and its
                # sessions, without dropping them.
                r.options = desired[spec]
                for proto in r.sessions:
                    proto.set_probe_interval(r.probe_ms)
                if r.fsm is not None and r.options.max_backoff_ms:
                    r.fsm.set_backoff(r.fsm.min_backoff, r.options.max_backoff_ms)
        for spec, options in desired.items():
            if spec in self.running:
                continue
            try:
                remote = parse_remote(spec)
            except RemoteError as e:
                if spec not in self._bad_remotes:  # said once, not at every reconcile
                    self._bad_remotes.add(spec)
                    log.error("%s", e)
                continue
            rr = RunningRemote(spec, remote, options)
            if self.opts.inactivity_probe is not None:
                rr.default_probe_ms = self.opts.inactivity_probe
            self.running[spec] = rr
            try:
                await self._start_remote(rr)
            except OSError as e:
                msg = f"{spec}: listen failed: {e.strerror or e}"
                # Not running: housekeeping tries again, as ovsdb-server keeps trying.
                del self.running[spec]
                if initial and not spec.startswith("db:") and spec in self.cmdline_remotes:
                    raise StartupError(msg) from None
                if spec not in self._bad_remotes:
                    self._bad_remotes.add(spec)
                    log.error("%s", msg)
                continue
            self._bad_remotes.discard(spec)

    def _protocol_factory(self, rr: RunningRemote,
                          closed: asyncio.Future[None] | None = None) -> Any:
        def on_close(p: SessionProtocol) -> None:
            rr.sessions.discard(p)
            if closed is not None and not closed.done():
                closed.set_result(None)

        def make() -> SessionProtocol:
            p = SessionProtocol(self.core, probe_ms=rr.probe_ms,
                                max_message_size=self.opts.max_message_size,
                                on_close=on_close)
            rr.sessions.add(p)
            return p
        return make

    async def _start_remote(self, rr: RunningRemote) -> None:
        loop = asyncio.get_running_loop()
        r = rr.remote
        if r.kind == "punix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(r.path)
            rr.server = await loop.create_unix_server(self._protocol_factory(rr), r.path)
        elif r.kind in ("ptcp", "pssl"):
            ctx = self._need_ssl(rr) if r.kind == "pssl" else None
            rr.server = await loop.create_server(
                self._protocol_factory(rr), r.host or None, r.port, ssl=ctx,
                reuse_address=True)
            socks = rr.server.sockets
            if socks:
                rr.bound_port = socks[0].getsockname()[1]
        else:
            rr.task = self._spawn(self._active(rr))
        log.info("%s: %s", rr.spec, "listening" if r.passive else "connecting")

    def _need_ssl(self, rr: RunningRemote) -> ssl.SSLContext:
        ctx = self.ssl_server if rr.remote.passive else self.ssl_client
        if ctx is None:
            raise OSError(0, "SSL remote requires --private-key, --certificate and --ca-cert")
        return ctx

    async def _active(self, rr: RunningRemote) -> None:
        """Keep one outgoing connection up, with ovsdb-server's backoff."""
        loop = asyncio.get_running_loop()
        fsm = Reconnect(_now_ms(), probe_interval=0)
        rr.fsm = fsm
        if rr.options.max_backoff_ms:
            fsm.set_backoff(fsm.min_backoff, max(fsm.min_backoff, rr.options.max_backoff_ms))
        fsm.enable(_now_ms())
        r = rr.remote
        while True:
            delay = fsm.timeout(_now_ms())
            if delay:
                await asyncio.sleep(delay / 1000.0)
            fsm.connecting(_now_ms())
            closed: asyncio.Future[None] = loop.create_future()
            factory = self._protocol_factory(rr, closed)
            try:
                if r.kind == "unix":
                    _, proto = await loop.create_unix_connection(factory, r.path)
                else:
                    ctx = self._need_ssl(rr) if r.kind == "ssl" else None
                    _, proto = await loop.create_connection(
                        factory, r.host, r.port, ssl=ctx,
                        server_hostname=r.host if ctx else None)
            except (OSError, ssl.SSLError) as e:
                rr.last_error = str(e)
                log.info("%s: connection attempt failed (%s)", rr.spec,
                         getattr(e, "strerror", None) or e)
                fsm.connect_failed(_now_ms())
                continue
            log.info("%s: connected", rr.spec)
            fsm.connected(_now_ms())
            rr.last_error = None
            await closed
            assert isinstance(proto, SessionProtocol)
            # A connection that talked for longer than we waited for it resets the
            # backoff; one dropped at once makes the next wait longer.
            fsm.activity(int(proto.last_activity * 1000))
            fsm.disconnected(_now_ms())
            log.info("%s: connection closed, waiting %.3g seconds before reconnecting",
                     rr.spec, fsm.backoff / 1000.0)

    async def _stop_remote(self, rr: RunningRemote) -> None:
        self.running.pop(rr.spec, None)
        if rr.server is not None:
            rr.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(rr.server.wait_closed(), 1.0)
            if rr.remote.kind == "punix":
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(rr.remote.path)
        if rr.task is not None:
            rr.task.cancel()
        for s in list(rr.sessions):
            s.close()

    def _setup_ssl(self) -> None:
        o = self.opts
        if not (o.private_key and o.certificate and o.ca_cert):
            return
        try:
            srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            srv.load_cert_chain(o.certificate, o.private_key)
            srv.load_verify_locations(o.ca_cert)
            srv.verify_mode = ssl.CERT_REQUIRED
            cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            cli.load_cert_chain(o.certificate, o.private_key)
            cli.load_verify_locations(o.ca_cert)
            cli.check_hostname = False
            cli.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as e:
            raise StartupError(f"SSL configuration failed: {e}") from None
        self.ssl_server, self.ssl_client = srv, cli

    def _update_manager_status(self) -> None:
        """Fill Manager.is_connected/status for db: remotes, as ovsdb-server does."""
        for spec in self.cmdline_remotes:
            if not spec.startswith("db:"):
                continue
            try:
                r = parse_remote(spec)
            except RemoteError:
                continue
            served = self.core.dbs.get(r.db)
            if served is None:
                continue
            ts = served.db.schema.tables.get(r.table)
            col = ts.columns.get(r.column) if ts else None
            ref = col.type.key.ref_table if col else None
            if ref is None:
                continue
            mtable = served.db.schema.tables[ref]
            if "is_connected" not in mtable.columns or "target" not in mtable.columns:
                continue
            ops: list[Any] = []
            for uuid, row in served.db.tables[ref].items():
                if not row["target"]:
                    continue
                rr = self.running.get(row["target"][0])
                connected, status = self._status_of(rr)
                new = {"is_connected": connected,
                       "status": ["map", sorted([k, v] for k, v in status.items())]}
                cur_status = dict(row.get("status", ()))
                if row.get("is_connected", (False,))[0] == connected and cur_status == status:
                    continue
                ops.append({"op": "update", "table": ref,
                            "where": [["_uuid", "==", ["uuid", uuid]]], "row": new})
            if ops:
                outcome = execute(served.db, [served.name, *ops], new_uuid=self.core.new_uuid)
                if outcome.changes:
                    # Status columns are ephemeral: commit() writes nothing for them.
                    if served.storage is not None:
                        served.storage.commit(outcome.changes, durable=False, comment=None)
                    served.db.apply(outcome.changes)
                    self.core.committed(served, outcome.changes)

    def _db_column_error(self, spec: str) -> str | None:
        """Why "db:DB,TABLE,COLUMN" names no column, in ovsdb-server's words (or None)."""
        tokens = [t for t in spec[3:].split(",") if t]
        if len(tokens) < 3:
            return f'"{spec}": invalid syntax'
        db_name, table, column = tokens[:3]
        served = self.core.dbs.get(db_name)
        if served is None:
            return f'"{spec}": no database named {db_name}'
        ts = served.db.schema.tables.get(table)
        if ts is None:
            return f'"{spec}": no table named {table}'
        if column not in ts.columns:
            return f'"{spec}": table "{table}" has no column "{column}"'
        return None

    def _status_of(self, rr: RunningRemote | None) -> tuple[bool, dict[str, str]]:
        """is_connected and the status map ovsdb-server writes for a remote."""
        # ovsdb-server starts from a zeroed status: for anything but an outgoing
        # connection both "seconds since" read 0, and it writes them so.
        status: dict[str, str] = {"sec_since_connect": "0", "sec_since_disconnect": "0"}
        if rr is None:
            return False, status
        if rr.remote.passive:
            n = len(rr.sessions)
            if n > 1:
                status["n_connections"] = str(n)
            if rr.bound_port:
                status["bound_port"] = str(rr.bound_port)
            return n > 0, status
        status = {}
        fsm = rr.fsm
        if fsm is None:
            return False, {}
        now = _now_ms()
        status["state"] = fsm.state.value
        if fsm.last_connected is not None:
            status["sec_since_connect"] = str((now - fsm.last_connected) // 1000)
        if fsm.last_disconnected is not None:
            status["sec_since_disconnect"] = str((now - fsm.last_disconnected) // 1000)
        locks = self._locks_of(rr)
        status.update({k: v for k, v in locks.items() if v})
        return fsm.is_connected, status

    def _locks_of(self, rr: RunningRemote) -> dict[str, str]:
        held: list[str] = []
        waiting: list[str] = []
        for proto in rr.sessions:
            if proto.state is None:
                continue
            for name, queue in self.core.locks.queues.items():
                if proto.state in queue:
                    (held if queue[0] is proto.state else waiting).append(name)
        return {"locks_held": " ".join(sorted(held)),
                "locks_waiting": " ".join(sorted(waiting))}

    # ----- unixctl ---------------------------------------------------------------------

    def _commands(self) -> CommandTable:
        t = CommandTable(version=f"{PROGRAM} (hwvtep) {__version__}")

        def exit_(_a: list[str]) -> str:
            self.request_exit()
            return ""

        async def compact(args: list[str]) -> str:
            name = args[0] if args else None
            if name and name.startswith("_"):
                raise CommandError("cannot compact built-in databases")
            targets = [n for n in self.storages if (n == name if name else True)]
            if not targets:
                raise CommandError("no database by that name")
            errors = []
            for n in targets:
                log.info("compacting %s database by user request", n)
                try:
                    await self.compact(n)
                except OSError as e:
                    errors.append(f"{n}: {e}")
            if errors:
                raise CommandError("\n".join(errors))
            return ""

        async def add_remote(args: list[str]) -> str:
            spec = args[0]
            # Like ovsdb-server, only db: references are checked here; any other remote
            # is taken as given and reports its own failure in the log.
            if spec.startswith("db:"):
                err = self._db_column_error(spec)
                if err:
                    raise CommandError(err)
            if spec not in self.cmdline_remotes:
                self.cmdline_remotes.append(spec)
                await self._reconcile_remotes()
            return ""

        async def remove_remote(args: list[str]) -> str:
            if args[0] not in self.cmdline_remotes:
                raise CommandError("no such remote")
            self.cmdline_remotes.remove(args[0])
            await self._reconcile_remotes()
            return ""

        def list_remotes(_a: list[str]) -> str:
            return "".join(f"{r}\n" for r in sorted(self.cmdline_remotes))

        async def add_db(args: list[str]) -> str:
            err = self.open_db(args[0])
            if err:
                raise CommandError(err)
            await self._reconcile_remotes()
            return ""

        async def remove_db(args: list[str]) -> str:
            name = args[0]
            if name not in self.core.dbs:
                raise CommandError("Failed to find the database.")
            if name.startswith("_"):
                raise CommandError("Cannot remove reserved database.")
            self.remove_db(name)
            await self._reconcile_remotes()
            return ""

        def list_dbs(_a: list[str]) -> str:
            return "".join(f"{n}\n" for n in sorted(self.core.dbs))

        def vlog_set(args: list[str]) -> str:
            for spec in args or ["dbg"]:
                err = self.vlog.apply_spec(spec)
                if err:
                    raise CommandError(err)
            return ""

        def vlog_reopen(_a: list[str]) -> str:
            self.vlog.reopen()
            return ""

        def reconnect(_a: list[str]) -> str:
            for rr in self.running.values():
                for s in list(rr.sessions):
                    s.close()
            return ""

        def memory_show(_a: list[str]) -> str:
            rows = sum(len(t) for s in self.core.dbs.values() for t in s.db.tables.values())
            sessions = len(self.core.sessions)
            monitors = sum(len(s.monitors) for s in self.core.sessions)
            return f"cells:{rows} monitors:{monitors} sessions:{sessions}"

        t.register("exit", "", 0, 0, exit_)
        t.register("ovsdb-server/compact", "[DB]", 0, 1, compact)
        t.register("ovsdb-server/add-remote", "REMOTE", 1, 1, add_remote)
        t.register("ovsdb-server/remove-remote", "REMOTE", 1, 1, remove_remote)
        t.register("ovsdb-server/list-remotes", "", 0, 0, list_remotes)
        t.register("ovsdb-server/add-db", "DB", 1, 1, add_db)
        t.register("ovsdb-server/remove-db", "DB", 1, 1, remove_db)
        t.register("ovsdb-server/list-dbs", "", 0, 0, list_dbs)
        t.register("ovsdb-server/reconnect", "", 0, 0, reconnect)
        t.register("vlog/set", "{spec | PATTERN:destination:pattern}", 0, 10, vlog_set)
        t.register("vlog/reopen", "", 0, 0, vlog_reopen)
        t.register("memory/show", "", 0, 0, memory_show)
        return t


def _now_ms() -> int:
    return int(time.monotonic() * 1000)
