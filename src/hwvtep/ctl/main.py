"""`hwvtep ctl`: vtep-ctl's command line, on a snapshot fetched in one round trip.

The run: parse the options and commands (errors before any connection, as vtep-ctl), let
every command name the tables it needs, fetch them with one ``transact`` of ``select``s,
run the commands on that snapshot (building the transaction), commit it with ``wait``
operations on what the commands verified, and print. A failed verification or an
unsatisfied ``wait-until`` runs the commands again on fresh data (waiting for a change
through a ``monitor`` in the latter case), as vtep-ctl's try-again loop does.

Messages, output and exit statuses are those of vtep-ctl 3.1, including its program name
in messages, so that scripts written for vtep-ctl see no difference.
"""

from __future__ import annotations

import os
import sys

from hwvtep.cmdline import NO, OPT, REQ, getopt_long, short_options
from hwvtep.ctl import commands as cmds
from hwvtep.ctl import vtep
from hwvtep.ctl.common import (
    Exit,
    Log,
    Style,
    apply_style_option,
    default_remote,
    env_timeout,
    parse_timeout,
)
from hwvtep.ctl.idl import Idl, TxnStatus
from hwvtep.ctl.values import CtlError, Schema, SymbolTable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

PROGRAM = "vtep-ctl"
DB_NAME = "hardware_vtep"

# name -> (argument, short option or "")
_GLOBAL_OPTIONS: dict[str, tuple[int, str]] = {
    "db": (REQ, ""), "no-syslog": (NO, ""), "dry-run": (NO, ""), "oneline": (NO, ""),
    "timeout": (REQ, "t"), "help": (NO, "h"), "version": (NO, "V"),
    "verbose": (OPT, "v"), "log-file": (OPT, ""), "syslog-method": (REQ, ""),
    "syslog-target": (REQ, ""),
    "format": (REQ, "f"), "data": (REQ, "d"), "no-headings": (NO, ""),
    "pretty": (NO, ""), "bare": (NO, ""), "max-column-width": (REQ, ""),
    "private-key": (REQ, "p"), "certificate": (REQ, "c"), "ca-cert": (REQ, "C"),
    "ssl-protocols": (REQ, ""), "ssl-ciphers": (REQ, ""), "peer-ca-cert": (REQ, ""),
}
_SHORT = short_options(_GLOBAL_OPTIONS)


class Options:
    def __init__(self) -> None:
        self.db: str | None = None
        self.oneline = False
        self.dry_run = False
        self.timeout = 0
        self.style = Style()
        self.local: dict[str, str | None] = {}


def _local_option_names() -> dict[str, int]:
    names: dict[str, int] = {}
    for syntax in cmds.REGISTRY.values():
        for item in syntax.options.split(","):
            if not item:
                continue
            name = item[2:].rstrip("=?")
            names[name] = REQ if item.endswith("=") else OPT if item.endswith("?") else NO
    return names


def parse_options(argv: list[str], log: Log) -> tuple[Options, list[str]]:
    """getopt_long() with a leading "+": options stop at the first non-option."""
    opts = Options()
    local = _local_option_names()
    longs: dict[str, int] = {n: a for n, (a, _) in _GLOBAL_OPTIONS.items()}
    for n, a in local.items():
        longs.setdefault(n, a)

    def apply(name: str, val: str | None) -> None:
        if name in _GLOBAL_OPTIONS:
            _apply(opts, name, val, log)
        else:
            # vtep-ctl means to refuse a repeated option here but never does.
            opts.local[f"--{name}"] = val

    rest = getopt_long(argv, longs, _SHORT, apply, _fail, permute=False)
    return opts, rest


def _fail(msg: str) -> NoReturn:
    raise CtlError(msg)


def _apply(opts: Options, name: str, val: str | None, log: Log) -> None:
    style = opts.style
    if name == "db":
        opts.db = val
    elif name == "oneline":
        opts.oneline = True
    elif name == "dry-run":
        opts.dry_run = True
    elif name == "timeout":
        opts.timeout = parse_timeout(val, _fail)
    elif name == "help":
        sys.stdout.write(usage())
        raise Exit(0)
    elif name == "version":
        sys.stdout.write(f"{PROGRAM} (hwvtep) {_version()}\nDB Schema {_schema_version()}\n")
        raise Exit(0)
    elif name == "verbose":
        log.set_spec(val)
    elif apply_style_option(style, name, val, _fail):
        pass
    elif name in ("private-key", "certificate", "ca-cert", "peer-ca-cert"):
        from hwvtep.ctl import rpc

        setattr(rpc.ssl_options, name.replace("-", "_"), val)


def _version() -> str:
    from hwvtep import __version__

    return __version__


def _schema_path() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "schemas",
                        "hardware_vtep.ovsschema")


def _bundled_schema() -> dict[str, Any]:
    from hwvtep.ctl import jsonfast

    with open(_schema_path(), encoding="utf-8") as f:
        j: dict[str, Any] = jsonfast.loads(f.read())
    return j


def _schema_version() -> str:
    return str(_bundled_schema().get("version", ""))


def default_db() -> str:
    return default_remote()


def usage() -> str:
    from hwvtep.ctl.help import usage_text

    return usage_text(PROGRAM, default_db())


def escape_args(args: list[str]) -> str:
    """How vtep-ctl quotes its command line in the transaction's comment."""
    out = []
    for a in args:
        if any(c in a for c in " \t\r\n\v\\'\""):
            out.append('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(a)
    return " ".join(out)


# --- running --------------------------------------------------------------------------


class Runner:
    def __init__(self, opts: Options, commands: list[cmds.Command], env: cmds.Env,
                 needs: cmds.Needs, db: str, comment: str) -> None:
        self.opts = opts
        self.commands = commands
        self.env = env
        self.needs = needs
        self.db = db
        self.comment = comment
        self.session: Any = None
        self.monitoring = False
        self.snapshot: dict[str, dict[str, Any]] = {}

    def connect(self) -> None:
        """Connect to a server that will do (see `rpc.open_usable`) and fetch the snapshot
        in the same round trip."""
        from hwvtep.ctl import rpc

        if any(t.strip().startswith("ssl:") for t in self.db.split(",")):
            o = rpc.ssl_options
            for value, what in ((o.private_key, "Private key"), (o.certificate, "Certificate"),
                                (o.ca_cert, "CA certificate")):
                if not value:
                    _LOG.log("stream_ssl", "err", f"{what} must be configured to use SSL")
        try:
            self.session, result, error = rpc.open_usable(
                self.db, DB_NAME, "transact", self.fetch_params(), _log_ovsdb_cs)
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None
        self.store_snapshot(result, error)

    def _call(self, method: str, params: list[Any]) -> tuple[Any, Any]:
        from hwvtep.ctl import rpc

        try:
            return self.session.call(method, params)  # type: ignore[no-any-return]
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None

    def fetch_params(self) -> list[Any]:
        """The ``transact`` that selects what the commands need."""
        ops: list[Any] = [DB_NAME]
        for t, cols in self.needs.items():
            op: dict[str, Any] = {"op": "select", "table": t, "where": []}
            if cols is not None:
                op["columns"] = ["_uuid", *sorted(cols)]
            ops.append(op)
        return ops

    def fetch(self) -> None:
        self.store_snapshot(*self._call("transact", self.fetch_params()))

    def store_snapshot(self, result: Any, error: Any) -> None:
        names = list(self.needs)
        if error is not None or not isinstance(result, list) or len(result) != len(names):
            raise CtlError(f"{self.db}: database connection failed "
                           f"({_text(error if error is not None else result)})")
        snap: dict[str, dict[str, Any]] = {}
        for t, r in zip(names, result, strict=True):
            if not isinstance(r, dict) or "rows" not in r:
                raise CtlError(f"{self.db}: database connection failed ({_text(r)})")
            snap[t] = {row["_uuid"][1]: row for row in r["rows"]}
        self.snapshot = snap

    def start_monitor(self) -> None:
        req = {t: ({"columns": sorted(c)} if c is not None else {})
               for t, c in self.needs.items()}
        result, error = self._call("monitor", [DB_NAME, None, req])
        if error is not None or not isinstance(result, dict):
            raise CtlError(f"{self.db}: database connection failed ({_text(error)})")
        self.snapshot = {t: {} for t in self.needs}
        self._apply_update(result)
        self.monitoring = True

    def _apply_update(self, update: dict[str, Any]) -> None:
        for t, rows in update.items():
            dst = self.snapshot.setdefault(t, {})
            for uuid, change in rows.items():
                new = change.get("new")
                if new is None:
                    dst.pop(uuid, None)
                else:
                    dst[uuid] = new

    def wait_for_change(self) -> None:
        from hwvtep.ctl import rpc

        try:
            while True:
                msg = self.session.wait_notification()
                if msg.get("method") == "update":
                    params = msg.get("params") or [None, {}]
                    self._apply_update(params[1])
                    return
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None

    def make_idl(self) -> Idl:
        idl = Idl(self.env.schema, DB_NAME)
        schema = self.env.schema
        from hwvtep.ctl.idl import Row

        for t, rows in self.snapshot.items():
            table = schema.table(t)
            idl.tables[t] = {u: Row(table, u, raw) for u, raw in rows.items()}
        idl.dry_run = self.opts.dry_run
        idl.comment = self.comment
        return idl

    def run(self) -> None:
        self.connect()
        while True:
            done = self.try_once()
            if done:
                return
            if self.monitoring:
                self.wait_for_change()
            else:
                self.fetch()

    def try_once(self) -> bool:
        """Run the commands and commit; False if they must run again on fresher data."""
        idl = self.make_idl()
        symtab = SymbolTable()
        ctx = cmds.Context(self.env, idl, symtab)
        gl = idl.first("Global")
        if gl is None:
            gl = idl.insert(self.env.schema.table("Global"))
        ctx.global_row = gl

        def invalidate() -> None:
            ctx.cache = None

        ctx.invalidate = invalidate
        n = len(self.commands)
        for c in self.commands:
            c.output = []
            c.table = None
        for i, c in enumerate(self.commands):
            ctx.set_command(c, i == n - 1)
            if c.syntax.run is not None:
                c.syntax.run(ctx)
            c.table = ctx.table
            if ctx.try_again:
                if not self.monitoring:
                    self.start_monitor()
                    return self.try_once()
                return False
        for name, sym in symtab.symbols.items():
            if not sym.created:
                raise CtlError(f'row id "{name}" is referenced but never created (e.g. '
                               f'with "-- --id={name} create ...")')
            if not sym.strong_ref:
                if not sym.weak_ref:
                    self.env.warn("vtep_ctl", f'row id "{name}" was created but no reference '
                                  "to it was inserted, so it will not actually appear in the "
                                  "database")
                else:
                    self.env.warn("vtep_ctl", f'row id "{name}" was created but only a weak '
                                  "reference to it was inserted, so it will not actually "
                                  "appear in the database")
        ops, any_updates = idl.commit_ops()
        real: dict[str, str] = {}
        if any_updates:
            result, error = self._call("transact", ops)
            if error is not None:
                if error == "canceled":
                    return False
                raise CtlError(f"transaction error: {_text(error)}")
            status, text, real, warnings = idl.process_reply(result)
            for w in warnings:
                self.env.warn("ovsdb_idl", w)
            if status == TxnStatus.TRY_AGAIN:
                return False
            if status == TxnStatus.NOT_LOCKED:
                raise CtlError("database not locked")
            if status == TxnStatus.ERROR:
                raise CtlError(f"transaction error: {text}")
        for c in self.commands:
            if c.syntax.post is not None:
                ctx.set_command(c, False)
                c.syntax.post(ctx, real)
        return True


def _text(j: Any) -> str:
    from hwvtep.ctl.values import json_dumps

    return json_dumps(j)


def print_outputs(commands: list[cmds.Command], opts: Options) -> None:
    out: list[str] = []
    for c in commands:
        if c.table is not None:
            from hwvtep.ctl.table import format_table

            out.append(format_table(c.table, opts.style))
        elif opts.oneline:
            text = "".join(c.output)
            if text.endswith("\n"):
                text = text[:-1]
            out.append(text.replace("\\", "\\\\").replace("\n", "\\n") + "\n")
        else:
            out.extend(c.output)
    data = "".join(out).encode("utf-8", "surrogateescape")
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def _on_alarm(signum: int, frame: Any) -> None:
    import signal

    sys.stderr.write(_LOG.line("fatal_signal", "warn",
                               "terminating with signal 14 (Alarm clock)"))
    sys.stderr.flush()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGALRM)


_LOG = Log()


def run(argv: list[str], prog_args: list[str]) -> int:
    log = _LOG
    opts, rest = parse_options(argv, log)
    commands = cmds.parse_commands(rest, opts.local)
    args = escape_args(prog_args)
    writes = any(c.syntax.mode == cmds.RW for c in commands)
    log.log("vtep_ctl", "info" if writes else "dbg", f"Called as {args}")
    timeout = opts.timeout or env_timeout()
    if timeout:
        import signal

        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(timeout)
    schema = Schema(_bundled_schema())
    isatty = os.isatty(1)
    row_ids: dict[str, tuple[cmds.RowId, ...]] = {
        t: (cmds.RowId(c),) for t, c in vtep.VTEP_ROW_IDS.items()}
    env = cmds.Env(schema, row_ids, SHOW_TABLES, log_warn, isatty)
    needs: cmds.Needs = {"Global": None}
    for c in commands:
        if c.syntax.pre is not None:
            ctx = cmds.Context(env, None, None, needs)
            ctx.set_command(c, False)
            c.syntax.pre(ctx)
    db = opts.db or os.environ.get("HWVTEP_DB") or default_db()
    runner = Runner(opts, commands, env, needs, db, f"{PROGRAM}: {args}")
    runner.run()
    print_outputs(commands, opts)
    return 0


def log_warn(module: str, msg: str) -> None:
    _LOG.log(module, "warn", msg)


def _log_ovsdb_cs(msg: str) -> None:
    _LOG.log("ovsdb_cs", "info", msg)


SHOW_TABLES = (
    cmds.ShowTable("Global", None, ("managers", "switches")),
    cmds.ShowTable("Manager", "target", ("is_connected",)),
    cmds.ShowTable("Physical_Switch", "name", ("management_ips", "tunnel_ips", "ports")),
    cmds.ShowTable("Physical_Port", "name", ("vlan_bindings",)),
    cmds.ShowTable("Logical_Switch", "name", ()),
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    prog_args = ["hwvtep", "ctl", *args]
    try:
        return run(args, prog_args)
    except Exit as e:
        sys.stdout.flush()
        return e.status
    except vtep.ExitStatus as e:
        return e.status
    except CtlError as e:
        sys.stdout.flush()
        sys.stderr.write(f"{PROGRAM}: {e}\n")
        sys.stderr.flush()
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
