"""`hwvtep ctl`: vtep-ctl's command line, on a snapshot fetched in one round trip.

The run: parse the options and commands (errors before any connection, as vtep-ctl), let
every command name the tables it needs, fetch them in one round trip (a ``monitor_cond``
for the tables whose row order shows: its reply, not a select's, has the order vtep-ctl's
IDL meets rows in; ``select``s for the rest), run the commands on that snapshot (building
the transaction), commit it with ``wait`` operations on what the commands verified, and
print. A failed verification or an
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
from hwvtep.ctl.idl import Idl, Layout, NeedExactSnapshot, TxnStatus, depends_on_others
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
                 needs: cmds.Needs, db: str, comment: str,
                 plan: cmds.Plan | None = None) -> None:
        self.opts = opts
        self.commands = commands
        self.env = env
        self.needs = needs
        self.plan = plan if plan is not None else cmds.Plan()
        self.db = db
        self.comment = comment
        self.session: Any = None
        self.monitoring = False
        self.snapshot: dict[str, dict[str, Any]] = {}
        # Fetch what vtep-ctl's IDL monitors, in its words, when the order of a table the
        # run lists depends on the other tables (see idl.Layout); else what the run needs.
        self.exact = any(depends_on_others(env.schema, self.plan.monitor, t)
                         for t in self.plan.ordered)
        self.layout = Layout(env.schema, self.plan.monitor, {}, False)
        self._monitor_ids = 0
        # the tables fetched with a monitor_cond, not a select (unless exact: all)
        self.in_order = set(self.plan.ordered)
        self.idl: Idl | None = None
        self.waiting = False
        self.live_monitor: Any = None  # the id of the monitor that sends updates

    def connect(self) -> None:
        """Connect to a server that will do (see `rpc.open_usable_many`) and fetch the
        snapshot in the same round trip."""
        from hwvtep.ctl import rpc

        if any(t.strip().startswith("ssl:") for t in self.db.split(",")):
            o = rpc.ssl_options
            for value, what in ((o.private_key, "Private key"), (o.certificate, "Certificate"),
                                (o.ca_cert, "CA certificate")):
                if not value:
                    _LOG.log("stream_ssl", "err", f"{what} must be configured to use SSL")
        requests = self.fetch_requests()
        try:
            self.session, replies = rpc.open_usable_many(self.db, DB_NAME, requests,
                                                         _log_ovsdb_cs)
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None
        self.store_snapshot(requests, replies)

    def _call(self, method: str, params: list[Any]) -> tuple[Any, Any]:
        from hwvtep.ctl import rpc

        try:
            return self.session.call(method, params)  # type: ignore[no-any-return]
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None

    def _call_many(self, requests: list[tuple[str, list[Any]]]) -> list[tuple[Any, Any]]:
        from hwvtep.ctl import rpc

        try:
            rids = self.session.send_many(requests)
            return [self.session.wait_reply(rid) for rid in rids]
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None

    def fetch_requests(self, updates: bool = False) -> list[tuple[str, list[Any]]]:
        """What fetches the snapshot, in one round trip: a ``monitor_cond`` of the tables
        whose row order shows (those the run lists; all of them with *updates*, to hear
        of changes later), and a ``transact`` selecting the others. Exact: the
        ``monitor_cond`` vtep-ctl's IDL sends (its tables, in its order) with the columns
        the commands need on top."""
        # The server answers a monitor_cond with the text vtep-ctl's IDL gets, which decides
        # the order the IDL lists rows in; a select's rows come in another order (sorted by
        # every column from Open vSwitch's server), but a select costs less, and Open
        # vSwitch's server can take tens of milliseconds to set up a monitor.
        monitor = self.plan.monitor
        if self.exact:
            from hwvtep.ovsdb.ovshash import shash_order

            tables: list[str] = shash_order(sorted(set(monitor) | set(self.needs)))
        else:
            tables = [t for t in self.needs if updates or t in self.in_order]
        requests: list[tuple[str, list[Any]]] = []
        if tables:
            reqs: dict[str, Any] = {}
            for t in tables:
                cols = self.needs.get(t, set())
                if cols is None:
                    reqs[t] = [{}]
                else:
                    reqs[t] = [{"columns": sorted(cols | monitor.get(t, set())
                                                  if self.exact else cols)}]
            self._monitor_ids += 1
            requests.append(
                ("monitor_cond", [DB_NAME, ["hwvtep-ctl", self._monitor_ids], reqs]))
        ops: list[Any] = [DB_NAME]
        for t, cols in self.needs.items():
            if t not in tables:
                op: dict[str, Any] = {"op": "select", "table": t, "where": []}
                if cols is not None:
                    op["columns"] = ["_uuid", *sorted(cols)]
                ops.append(op)
        if len(ops) > 1:
            requests.append(("transact", ops))
        return requests

    def fetch(self, updates: bool = False) -> None:
        requests = self.fetch_requests(updates)
        self.store_snapshot(requests, self._call_many(requests))
        if updates:
            self.monitoring = True
            self.live_monitor = requests[0][1][1]

    def store_snapshot(self, requests: list[tuple[str, list[Any]]],
                       replies: list[tuple[Any, Any]]) -> None:
        snap: dict[str, dict[str, Any]] = {}
        for (method, params), (result, error) in zip(requests, replies, strict=True):
            if error is not None or not isinstance(
                    result, dict if method == "monitor_cond" else list):
                raise CtlError(f"{self.db}: database connection failed "
                               f"({_text(error if error is not None else result)})")
            if isinstance(result, dict):
                # (in the reply's order: the IDL meets the tables in its walk of it)
                snap = {t: {u: ch.get("initial", _EMPTY) for u, ch in rows.items()}
                        for t, rows in result.items()}
                fetched = set(params[2])
                if self.snapshot:
                    self.refile(snap, result)
                else:
                    self.layout = Layout(self.env.schema, self.plan.monitor, dict(snap),
                                         self.exact, fetched)
                continue
            selected = [op["table"] for op in params[1:]]
            if len(result) != len(selected):
                raise CtlError(f"{self.db}: database connection failed ({_text(result)})")
            for t, r in zip(selected, result, strict=True):
                if not isinstance(r, dict) or "rows" not in r:
                    raise CtlError(f"{self.db}: database connection failed ({_text(r)})")
                snap[t] = {row["_uuid"][1]: row for row in r["rows"]}
        if requests[0][0] != "monitor_cond":
            self.layout = Layout(self.env.schema, self.plan.monitor, {}, False, set())
        for t in self.needs:
            snap.setdefault(t, {})
        self.snapshot = snap

    def refile(self, new: dict[str, dict[str, Any]], order: dict[str, Any]) -> None:
        """The IDL's hash maps after it met these contents again: rows that are gone
        leave, new ones are filed in the order the IDL would meet them (references to
        them from other rows, which the IDL may meet first, are not followed here)."""
        from hwvtep.ovsdb.ovshash import shash_order

        history = self.layout.history
        fetched = self.layout.fetched
        for t in shash_order(order):
            old = self.snapshot.get(t, _EMPTY)
            rows = new.get(t, _EMPTY)
            if any((u in rows) != (u in old) for u in order[t]):
                history.setdefault(t, []).extend(
                    (u in rows, u) for u in shash_order(order[t])
                    if (u in rows) != (u in old))
        for t, old in self.snapshot.items():
            if fetched is not None and t not in fetched:
                continue
            rows = new.get(t, _EMPTY)
            listed = order.get(t, _EMPTY)
            gone = [(False, u) for u in old if u not in rows and u not in listed]
            if gone:
                history.setdefault(t, []).extend(gone)

    def start_monitor(self) -> None:
        """Fetch again, and from then on hear of every change (vtep-ctl's IDL waits for
        one before it runs the commands again)."""
        self.fetch(updates=True)

    def apply_update2(self, update: dict[str, Any]) -> None:
        """An ``update2`` notification: rows inserted, deleted, or modified by a diff."""
        from hwvtep.ctl.values import datum_from_json, datum_to_json, default_datum

        new = dict(self.snapshot)
        schema = self.env.schema
        for t, rows in update.items():
            dst = new[t] = dict(new.get(t, _EMPTY))
            for uuid, change in rows.items():
                if "delete" in change:
                    dst.pop(uuid, None)
                    continue
                row = change.get("insert", change.get("initial"))
                if row is not None:
                    dst[uuid] = row
                    continue
                row = dst[uuid] = dict(dst.get(uuid, _EMPTY))
                table = schema.table(t)
                for name, diff in (change.get("modify") or {}).items():
                    col = table.columns.get(name)
                    if col is None:  # _version
                        row[name] = diff
                        continue
                    typ = col.type
                    old = datum_from_json(typ, row[name]) if name in row else default_datum(
                        typ)
                    row[name] = datum_to_json(typ, _apply_diff(typ, old, diff))
        self.refile(new, update)
        self.snapshot = new

    def wait_for_change(self) -> None:
        from hwvtep.ctl import rpc

        try:
            while True:
                msg = self.session.wait_notification()
                params = msg.get("params")
                if (msg.get("method") == "update2" and isinstance(params, list)
                        and len(params) == 2 and params[0] == self.live_monitor):
                    self.apply_update2(params[1])
                    return
        except rpc.ConnectionFailed as e:
            raise CtlError(f"{self.db}: database connection failed ({e})") from None

    def make_idl(self) -> Idl:
        idl = Idl(self.env.schema, DB_NAME, self.layout)
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
        self.loop()

    def loop(self) -> None:
        """Run the commands until they are done (vtep-ctl's try-again loop)."""
        while True:
            self.idl = None
            try:
                done = self.try_once()
            except NeedExactSnapshot as e:
                # The order of this table's rows matters after all: fetch it so that it
                # shows, and if vtep-ctl meets them through other tables, ask what it asks.
                table = e.args[0]
                if depends_on_others(self.env.schema, self.plan.monitor, table):
                    self.exact = True
                self.in_order.add(table)
                self.snapshot = {}
                if self.monitoring:
                    self.start_monitor()
                else:
                    self.fetch()
                continue
            if done:
                return
            self.forget_txn()
            if self.waiting and not self.monitoring:
                self.start_monitor()
            elif self.monitoring:
                self.wait_for_change()
            else:
                self.fetch()

    def forget_txn(self) -> None:
        """The IDL's hash maps after a try: the rows it inserted were filed, then taken
        out again with the transaction."""
        idl = self.idl
        if idl is None:
            return
        history = self.layout.history
        for t, events in idl.txn_events.items():
            rows = idl.tables.get(t, {})
            history.setdefault(t, []).extend(
                [*events, *((False, u) for u, r in rows.items() if r.inserted)])

    def try_once(self) -> bool:
        """Run the commands and commit; False if they must run again on fresher data."""
        idl = self.idl = self.make_idl()
        self.waiting = False
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
                self.waiting = True
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


def _apply_diff(typ: Any, old: Any, diff: Any) -> Any:
    """A column's value after an update2 ``modify`` diff (RFC 7047 extension): the new
    value of a single-valued column; the symmetric difference of a set; for a map, a key
    whose value the diff repeats leaves, one with another value gets it, a new one joins.
    """
    from hwvtep.ctl.values import datum_from_json

    change = datum_from_json(typ, diff)
    if typ.value is None:
        if typ.n_min == 1 and typ.n_max == 1:
            return change
        return tuple(sorted(set(old) ^ set(change)))
    pairs = dict(old)
    for k, v in change:
        if pairs.get(k, _EMPTY) == v:
            del pairs[k]
        else:
            pairs[k] = v
    return tuple(sorted(pairs.items()))


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
_EMPTY: dict[str, Any] = {}


def prerequisites(env: cmds.Env, commands: list[cmds.Command]
                  ) -> tuple[cmds.Needs, cmds.Plan]:
    """What the commands need fetched, and what vtep-ctl's IDL would monitor for them."""
    needs: cmds.Needs = {"Global": None}
    plan = cmds.Plan()
    for c in commands:
        if c.syntax.pre is not None:
            ctx = cmds.Context(env, None, None, needs, plan)
            ctx.set_command(c, False)
            c.syntax.pre(ctx)
    return needs, plan


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
    needs, plan = prerequisites(env, commands)
    db = opts.db or os.environ.get("HWVTEP_DB") or default_db()
    runner = Runner(opts, commands, env, needs, db, f"{PROGRAM}: {args}", plan)
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
