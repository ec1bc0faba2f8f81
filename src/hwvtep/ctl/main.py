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

from hwvtep.ctl import commands as cmds
from hwvtep.ctl import vtep
from hwvtep.ctl.idl import Idl, TxnStatus
from hwvtep.ctl.values import CtlError, Schema, SymbolTable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROGRAM = "vtep-ctl"
DB_NAME = "hardware_vtep"

_NO, _REQ, _OPT = 0, 1, 2
# name -> (argument, short option or "")
_GLOBAL_OPTIONS: dict[str, tuple[int, str]] = {
    "db": (_REQ, ""), "no-syslog": (_NO, ""), "dry-run": (_NO, ""), "oneline": (_NO, ""),
    "timeout": (_REQ, "t"), "help": (_NO, "h"), "version": (_NO, "V"),
    "verbose": (_OPT, "v"), "log-file": (_OPT, ""), "syslog-method": (_REQ, ""),
    "syslog-target": (_REQ, ""),
    "format": (_REQ, "f"), "data": (_REQ, "d"), "no-headings": (_NO, ""),
    "pretty": (_NO, ""), "bare": (_NO, ""), "max-column-width": (_REQ, ""),
    "private-key": (_REQ, "p"), "certificate": (_REQ, "c"), "ca-cert": (_REQ, "C"),
    "ssl-protocols": (_REQ, ""), "ssl-ciphers": (_REQ, ""), "peer-ca-cert": (_REQ, ""),
}
_SHORT = {short: name for name, (_, short) in _GLOBAL_OPTIONS.items() if short}

_LEVELS = ("off", "emer", "err", "warn", "info", "dbg")
_DESTINATIONS = ("console", "syslog", "file")


class Log:
    """Console logging the way Open vSwitch's vlog writes it (stderr, per-module levels)."""

    def __init__(self) -> None:
        self.levels: dict[str, int] = {}
        self.default = _LEVELS.index("warn")
        self.seq = 0

    def set_spec(self, spec: str | None) -> None:
        if spec is None:
            self.default = _LEVELS.index("dbg")
            self.levels = {}
            return
        module: str | None = None
        level: int | None = None
        console = True
        for word in spec.replace(",", ":").replace(" ", ":").split(":"):
            w = word.lower()
            if not w:
                continue
            if w in _LEVELS:
                level = _LEVELS.index(w)
            elif w in _DESTINATIONS or w == "any":
                console = w in ("console", "any")
            elif w != "all":
                module = w
        if level is None or not console:
            return
        if module is None:
            self.default = level
            self.levels = {}
        else:
            self.levels[module] = level

    def enabled(self, module: str, level: str) -> bool:
        return _LEVELS.index(level) <= self.levels.get(module, self.default)

    def log(self, module: str, level: str, msg: str) -> None:
        if not self.enabled(module, level):
            return
        import time

        self.seq += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        sys.stderr.write(f"{now}|{self.seq:05d}|{module}|{level.upper()}|{msg}\n")
        sys.stderr.flush()


class Style:
    """How tables are printed (--format, --data, --no-headings, --pretty, ...)."""

    __slots__ = ("cell_format", "format", "headings", "max_column_width", "pretty")

    def __init__(self) -> None:
        self.format = "list"
        self.cell_format = "string"
        self.headings = True
        self.pretty = False
        self.max_column_width = 0


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
            names[name] = _REQ if item.endswith("=") else _OPT if item.endswith("?") else _NO
    return names


def parse_options(argv: list[str], log: Log) -> tuple[Options, list[str]]:
    """getopt_long() with a leading "+": options stop at the first non-option."""
    opts = Options()
    local = _local_option_names()
    longs: dict[str, int] = {n: a for n, (a, _) in _GLOBAL_OPTIONS.items()}
    for n, a in local.items():
        longs.setdefault(n, a)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            full: str
            if name in longs:
                full = name
            else:
                cands = [n for n in longs if n.startswith(name)]
                if not cands:
                    raise CtlError(f"unrecognized option '--{name}'")
                if len(cands) > 1:
                    raise CtlError(f"option '--{name}' is ambiguous; possibilities: "
                                   + " ".join(f"'--{c}'" for c in cands))
                full = cands[0]
            has = longs[full]
            val: str | None = value if eq else None
            if has == _NO and eq:
                raise CtlError(f"option '--{full}' doesn't allow an argument")
            if has == _REQ and not eq:
                if i + 1 >= len(argv):
                    raise CtlError(f"option '--{full}' requires an argument")
                i += 1
                val = argv[i]
            i += 1
            if full in _GLOBAL_OPTIONS:
                _apply(opts, full, val, log)
            else:
                # vtep-ctl means to refuse a repeated option here but never does.
                opts.local[f"--{full}"] = val
            continue
        j = 1
        i += 1
        while j < len(arg):
            c = arg[j]
            short = _SHORT.get(c)
            if short is None:
                raise CtlError(f"invalid option -- '{c}'")
            name = short
            has = _GLOBAL_OPTIONS[name][0]
            if has == _NO:
                _apply(opts, name, None, log)
                j += 1
                continue
            rest = arg[j + 1:]
            if rest:
                _apply(opts, name, rest, log)
            elif has == _REQ:
                if i >= len(argv):
                    raise CtlError(f"option requires an argument -- '{c}'")
                _apply(opts, name, argv[i], log)
                i += 1
            else:
                _apply(opts, name, None, log)
            break
    return opts, argv[i:]


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _apply(opts: Options, name: str, val: str | None, log: Log) -> None:
    style = opts.style
    if name == "db":
        opts.db = val
    elif name == "oneline":
        opts.oneline = True
    elif name == "dry-run":
        opts.dry_run = True
    elif name == "timeout":
        assert val is not None
        t = _str_to_uint(val)
        if not t:
            raise CtlError(f"value {val} on -t or --timeout is invalid")
        opts.timeout = t
    elif name == "help":
        sys.stdout.write(usage())
        raise _Exit(0)
    elif name == "version":
        sys.stdout.write(f"{PROGRAM} (hwvtep) {_version()}\nDB Schema {_schema_version()}\n")
        raise _Exit(0)
    elif name == "verbose":
        log.set_spec(val)
    elif name == "format":
        if val not in ("table", "list", "html", "csv", "json"):
            raise CtlError(f'unknown output format "{val}"')
        style.format = val
    elif name == "data":
        if val not in ("string", "bare", "json"):
            raise CtlError(f'unknown data format "{val}"')
        style.cell_format = val
    elif name == "no-headings":
        style.headings = False
    elif name == "pretty":
        style.pretty = True
    elif name == "bare":
        style.format = "list"
        style.cell_format = "bare"
        style.headings = False
    elif name == "max-column-width":
        style.max_column_width = _atoi(val or "")
    elif name in ("private-key", "certificate", "ca-cert", "peer-ca-cert"):
        from hwvtep.ctl import rpc

        setattr(rpc.ssl_options, name.replace("-", "_"), val)


def _str_to_uint(s: str) -> int:
    from hwvtep.ctl.values import str_to_llong

    v = str_to_llong(s)
    if v is None or v < 0 or v > 2**32 - 1:
        return 0
    return v


def _atoi(s: str) -> int:
    s = s.lstrip(" \t\n\v\f\r")
    n = 1 if s[:1] in "+-" else 0
    while n < len(s) and s[n].isdigit() and s[n].isascii():
        n += 1
    try:
        return int(s[:n])
    except ValueError:
        return 0


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
    return f"unix:{os.environ.get('OVS_RUNDIR') or '/var/run/openvswitch'}/db.sock"


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
        from hwvtep.ctl import rpc

        if any(t.strip().startswith("ssl:") for t in self.db.split(",")):
            o = rpc.ssl_options
            for value, what in ((o.private_key, "Private key"), (o.certificate, "Certificate"),
                                (o.ca_cert, "CA certificate")):
                if not value:
                    _LOG.log("stream_ssl", "err", f"{what} must be configured to use SSL")
        try:
            self.session = rpc.Session(self.db)
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None

    def _call(self, method: str, params: list[Any]) -> tuple[Any, Any]:
        from hwvtep.ctl import rpc

        try:
            return self.session.call(method, params)  # type: ignore[no-any-return]
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None

    def fetch(self) -> None:
        ops: list[Any] = [DB_NAME]
        names = list(self.needs)
        for t in names:
            op: dict[str, Any] = {"op": "select", "table": t, "where": []}
            cols = self.needs[t]
            if cols is not None:
                op["columns"] = ["_uuid", *sorted(cols)]
            ops.append(op)
        result, error = self._call("transact", ops)
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
        self.fetch()
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

    sys.stderr.write(_log_line("fatal_signal", "WARN",
                               "terminating with signal 14 (Alarm clock)"))
    sys.stderr.flush()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGALRM)


_LOG = Log()


def _log_line(module: str, level: str, msg: str) -> str:
    import time

    _LOG.seq += 1
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"{now}|{_LOG.seq:05d}|{module}|{level}|{msg}\n"


def run(argv: list[str], prog_args: list[str]) -> int:
    log = _LOG
    opts, rest = parse_options(argv, log)
    commands = cmds.parse_commands(rest, opts.local)
    args = escape_args(prog_args)
    writes = any(c.syntax.mode == cmds.RW for c in commands)
    log.log("vtep_ctl", "info" if writes else "dbg", f"Called as {args}")
    timeout = opts.timeout
    if not timeout:
        env_t = os.environ.get("OVS_CTL_TIMEOUT")
        if env_t:
            timeout = _str_to_uint(env_t)
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
    except _Exit as e:
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
