"""`hwvtep ovsdb-client`: Open vSwitch's ovsdb-client, command for command.

The lab's controller node and many scripts talk to an OVSDB server with ovsdb-client:
``transact tcp:IP:6640 "$(cat attach.json)"`` sends a raw transaction and exits once the
reply is in (``nc`` never exits), ``dump`` and ``monitor`` show what a server holds and how
it changes. This is that tool, with the same argument order
(``ovsdb-client [OPTIONS] COMMAND [SERVER] [DATABASE] [ARG...]``), defaults (SERVER
``unix:$OVS_RUNDIR/db.sock``; DATABASE the one non-``_`` database or ``Open_vSwitch``),
options, output (through :mod:`hwvtep.ctl.table`, Open vSwitch's table printer), messages
and exit statuses as ovsdb-client 3.1, including its quirks: tables and columns listed in
the order Open vSwitch's hash tables walk them, rows of a monitor update likewise.

One-shot commands run on the blocking :class:`~hwvtep.client.sync.SyncClient`; the ones
that keep running (``monitor*``, ``lock``...) use it too, waiting for input between
notifications, so one code path serves both.
"""

from __future__ import annotations

import contextlib
import os
import sys

from hwvtep.cmdline import NO, OPT, REQ, getopt_long, short_options
from hwvtep.ctl.common import (
    Exit,
    Log,
    Style,
    apply_style_option,
    default_remote,
    env_timeout,
    parse_timeout,
    rundir,
)
from hwvtep.ctl.table import JsonCell, OutTable, format_table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from hwvtep.client.remote import Remote
    from hwvtep.client.sync import SyncClient
    from hwvtep.ctl.values import Type
    from hwvtep.ovsdb.schema import ColumnSchema, DatabaseSchema, TableSchema

PROGRAM = "ovsdb-client"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"

# Long options in ovsdb-client's order (getopt lists ambiguous matches in this order):
# name -> (argument, short option or "").
_LONG_OPTIONS: dict[str, tuple[int, str]] = {
    "help": (NO, "h"), "version": (NO, "V"), "timestamp": (NO, ""), "force": (NO, ""),
    "timeout": (REQ, "t"), "db-change-aware": (NO, ""), "no-db-change-aware": (NO, ""),
    "leader-only": (NO, ""), "no-leader-only": (NO, ""),
    "verbose": (OPT, "v"), "log-file": (OPT, ""), "syslog-method": (REQ, ""),
    "syslog-target": (REQ, ""),
    "detach": (NO, ""), "no-self-confinement": (NO, ""), "no-chdir": (NO, ""),
    "pidfile": (OPT, ""), "overwrite-pidfile": (NO, ""), "monitor": (NO, ""),
    "user": (REQ, ""),
    "bootstrap-ca-cert": (REQ, ""), "private-key": (REQ, "p"), "certificate": (REQ, "c"),
    "ca-cert": (REQ, "C"), "ssl-protocols": (REQ, ""), "ssl-ciphers": (REQ, ""),
    "format": (REQ, "f"), "data": (REQ, "d"), "no-headings": (NO, ""),
    "pretty": (NO, ""), "bare": (NO, ""), "max-column-width": (REQ, ""),
    "record": (OPT, ""), "replay": (OPT, ""),
}
_SHORT_OPTIONS = short_options(_LONG_OPTIONS)
_UNSUPPORTED = ("monitor", "user", "record", "replay", "bootstrap-ca-cert")

NEED_NONE, NEED_RPC, NEED_DATABASE = 0, 1, 2
_UNLIMITED = 2**31 - 1


class Fatal(Exception):
    """ovs_fatal(): ``ovsdb-client: <message>`` on stderr, exit status 1."""


def _fatal(msg: str) -> NoReturn:
    raise Fatal(msg)


def _error(msg: str) -> None:
    """ovs_error(): a message on stderr, and carry on."""
    sys.stdout.flush()
    sys.stderr.write(f"{PROGRAM}: {msg}\n")
    sys.stderr.flush()


class Options:
    def __init__(self) -> None:
        self.style = Style()
        self.style.format = "table"
        self.timestamp = False
        self.db_change_aware = -1  # -1: if the server has it; 0: never; 1: required
        self.force = False
        self.leader_only = True
        self.timeout = 0
        self.private_key: str | None = None
        self.certificate: str | None = None
        self.ca_cert: str | None = None
        self.detach = False
        self.no_chdir = False
        self.pidfile: str | None = None
        self.log = Log()
        self.log.default = 4  # ovsdb-client logs "info" and above to the console


# --- command line -------------------------------------------------------------------


def parse_options(argv: list[str]) -> tuple[Options, list[str]]:
    """getopt_long() as glibc does it: options may follow the command and its arguments
    (until ``--``), long options may be abbreviated, and each takes effect (or fails) in
    turn."""
    opts = Options()
    longs = {n: a for n, (a, _) in _LONG_OPTIONS.items()}
    args = getopt_long(argv, longs, _SHORT_OPTIONS, lambda name, val: _apply(opts, name, val),
                       _fatal, permute=True)
    if not opts.timeout:
        opts.timeout = env_timeout()
    return opts, args


def _apply(opts: Options, name: str, val: str | None) -> None:
    style = opts.style
    if name == "help":
        sys.stdout.write(usage())
        raise Exit(0)
    if name == "version":
        from hwvtep import __version__

        sys.stdout.write(f"{PROGRAM} (hwvtep) {__version__}\n")
        raise Exit(0)
    if name == "timestamp":
        opts.timestamp = True
    elif name == "force":
        opts.force = True
    elif name == "timeout":
        opts.timeout = parse_timeout(val, _fatal)
    elif name in ("db-change-aware", "no-db-change-aware"):
        opts.db_change_aware = 1 if name == "db-change-aware" else 0
    elif name in ("leader-only", "no-leader-only"):
        opts.leader_only = name == "leader-only"
    elif name == "verbose":
        opts.log.set_spec(val)
    elif apply_style_option(style, name, val, _fatal):
        pass
    elif name == "private-key":
        opts.private_key = val
    elif name == "certificate":
        opts.certificate = val
    elif name == "ca-cert":
        opts.ca_cert = val
    elif name == "detach":
        opts.detach = True
    elif name == "no-chdir":
        opts.no_chdir = True
    elif name == "pidfile":
        opts.pidfile = _pidfile_name(val)
    elif name in _UNSUPPORTED:
        _fatal(f"--{name} is not supported by hwvtep {PROGRAM}")
    # --log-file, --syslog-*, --ssl-*, --overwrite-pidfile, --no-self-confinement: no effect.


def _pidfile_name(val: str | None) -> str:
    if not val:
        return os.path.join(rundir(), f"{PROGRAM}.pid")
    return val if val.startswith("/") else os.path.join(rundir(), val)


def usage() -> str:
    return f"""\
{PROGRAM}: Open vSwitch database JSON-RPC client (hwvtep)
usage: {PROGRAM} [OPTIONS] COMMAND [ARG...]

Commands (SERVER and DATABASE may be left out):
  list-dbs [SERVER]                        the databases SERVER serves
  get-schema [SERVER] [DATABASE]           DATABASE's schema, as JSON
  get-schema-version [SERVER] [DATABASE]   just its version
  get-schema-cksum [SERVER] [DATABASE]     just its checksum
  list-tables [SERVER] [DATABASE]          its tables
  list-columns [SERVER] [DATABASE] [TABLE] columns of TABLE (or of every table)
  transact [SERVER] TRANSACTION            run TRANSACTION (the params of a "transact"
                                           request, as JSON) and print its result
  query [SERVER] TRANSACTION               the same, always rolled back
  monitor [SERVER] [DATABASE] TABLE [COLUMN,...]...
                                           print TABLE's rows, then their changes as they
                                           happen; a COLUMN list may hold !initial,
                                           !insert, !delete or !modify to skip those
  monitor [SERVER] [DATABASE] ALL          every column of every table
  monitor-cond [SERVER] [DATABASE] CONDITION TABLE [COLUMN,...]...
                                           only the rows matching CONDITION
  monitor-cond-since [SERVER] [DATABASE] [LASTID] CONDITION TABLE [COLUMN,...]...
                                           the changes after transaction LASTID
  dump [SERVER] [DATABASE] [TABLE [COLUMN]...]
                                           every row of every (or one) table
  backup [SERVER] [DATABASE] > FILE        the database as a standalone database file
  [--force] restore [SERVER] [DATABASE] < FILE
                                           replace the database's rows with FILE's
  convert [SERVER] SCHEMA                  convert the database named in SCHEMA to it
  needs-conversion [SERVER] SCHEMA         "yes" if SCHEMA differs from the database's
  wait [SERVER] DATABASE STATE             wait until DATABASE is "added", "connected"
                                           or "removed"
  lock [SERVER] LOCK                       take LOCK (or wait for it) and keep it
  steal [SERVER] LOCK                      take LOCK from whoever holds it
  unlock [SERVER] LOCK                     release LOCK

SERVER is unix:PATH, tcp:IP[:PORT] or ssl:IP[:PORT] (port 6640 by default), or several
of them separated by commas (a cluster). The default SERVER is {default_remote()}.
The default DATABASE is Open_vSwitch if the server has it, else its only database.

Options:
  -f, --format=FORMAT       table (default), list, html, csv or json
  -d, --data=FORMAT         cells as string (default), bare or json
  --no-headings             no heading row
  --pretty                  indented JSON
  --bare                    --format=list --data=bare --no-headings
  --max-column-width=N      cut table columns to N bytes
  --timestamp               print the time before each monitor update
  -t, --timeout=SECS        give up after SECS seconds
  --no-leader-only          with several SERVERs, any member of a cluster will do
  --force                   restore even if the schemas differ
  -p, --private-key=FILE    our private key (ssl:)
  -c, --certificate=FILE    our certificate (ssl:)
  -C, --ca-cert=FILE        the CA certificate that signs the server's (ssl:)
  --detach, --pidfile[=FILE], --no-chdir
                            monitor and lock in the background
  -h, --help                this help
  -V, --version             the version
"""


# --- logging and signals ------------------------------------------------------------------


_log_holder: list[Log] = []


def vlog(module: str, level: str, msg: str) -> None:
    log = _log_holder[0] if _log_holder else Log()
    log.log(module, level.lower(), msg)


def vlog_console_off() -> None:
    """A detached daemon logs nothing to the console (it has none)."""
    log = _log_holder[0] if _log_holder else None
    if log is not None:
        log.default = 0
        log.levels = {}


def _on_fatal_signal(signum: int, frame: object) -> None:
    import signal

    name = signal.strsignal(signum) or str(signum)
    vlog("fatal_signal", "warn", f"terminating with signal {signum} ({name})")
    for path in _remove_on_exit:
        with contextlib.suppress(OSError):
            os.unlink(path)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_remove_on_exit: list[str] = []


def _install_signals(timeout: int) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, _on_fatal_signal)
    if timeout:
        signal.alarm(timeout)


# --- JSON as Open vSwitch writes it --------------------------------------------------------


def dumps(j: Any, pretty: bool = False) -> str:
    """json_to_string(j, JSSF_SORT [| JSSF_PRETTY])."""
    from hwvtep.ctl.values import json_dumps

    return json_dumps(j, pretty)


class Walked(dict):  # type: ignore[type-arg]
    """An object whose members are already in the order OVS walks them."""


def dumps_hash_order(j: Any) -> str:
    """json_to_string(j, 0): objects in the order OVS's hash tables walk them, given that
    each dict's members were added in the dict's order."""
    from hwvtep.ctl.values import format_real, json_string
    from hwvtep.ovsdb.jsonutil import ovs_object_order

    out: list[str] = []

    def emit(v: Any) -> None:
        if isinstance(v, str):
            out.append(json_string(v))
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        elif v is None:
            out.append("null")
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, float):
            out.append(format_real(v))
        elif isinstance(v, list):
            out.append("[")
            for n, e in enumerate(v):
                if n:
                    out.append(",")
                emit(e)
            out.append("]")
        else:
            out.append("{")
            keys = list(v) if isinstance(v, Walked) else ovs_object_order(list(v))
            for n, k in enumerate(keys):
                if n:
                    out.append(",")
                out.append(json_string(k))
                out.append(":")
                emit(v[k])
            out.append("}")
    emit(j)
    return "".join(out)


def _as_sent(j: Any) -> Any:
    """A value as OVS's client puts it on the wire (reals ``%.15g``, read back by the
    server as an integer when integral)."""
    if isinstance(j, float):
        from hwvtep.ctl.values import format_real

        v = float(format_real(j))
        if v.is_integer() and -(2**63) <= v < 2**63:
            return int(v)
        return v
    if isinstance(j, list):
        return [_as_sent(e) for e in j]
    if isinstance(j, dict):
        return {k: _as_sent(v) for k, v in j.items()}
    return j


def _plain_json(j: Any) -> bool:
    """Whether *j* holds only values OVS's parser would read the same way (no NaN or
    infinities, integers within 64 bits, strings free of NULs and lone surrogates)."""
    if isinstance(j, str):
        return "\0" not in j and (j.isascii() or _encodable(j))
    if isinstance(j, bool) or j is None:
        return True
    if isinstance(j, int):
        return -(2**63) <= j < 2**63
    if isinstance(j, float):
        return j - j == 0.0
    if isinstance(j, list):
        return all(_plain_json(e) for e in j)
    return all(_plain_json(k) and _plain_json(v) for k, v in j.items())


def _encodable(s: str) -> bool:
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_json(s: str) -> Any:
    """json_from_string() on a command-line argument; a JSON string counts as an error,
    as in ovsdb-client."""
    from hwvtep.ctl import jsonfast

    try:
        j = jsonfast.loads(s)
    except ValueError:
        j = None
    if not isinstance(j, (list, dict)) or not _plain_json(j):
        # What the C accelerator rejects, or reads otherwise than OVS: OVS's own parser.
        from hwvtep.ovsdb.log import OvsJsonError, ovs_json_loads

        try:
            j = ovs_json_loads(s.encode("utf-8", "surrogateescape"))
        except OvsJsonError as e:
            _fatal(f'"{s}": {e}')
    if isinstance(j, str):
        _fatal(f'"{s}": {j}')
    return _as_sent(j)


# --- connections --------------------------------------------------------------------------


def _errno_text(reason: str) -> str:
    """The strerror() part of a client library message ("... [Errno 2] No such file...")."""
    if "connection closed by peer" in reason:
        return "End of file"
    marker = reason.rfind("] ")
    if reason.find("[Errno ") >= 0 and marker >= 0:
        return reason[marker + 2:]
    return reason.rpartition(": ")[2]


class Rpc:
    """One connection, named as the user wrote it (messages quote that name)."""

    def __init__(self, name: str, client: SyncClient) -> None:
        self.name = name
        self.client = client

    def call(self, method: str, params: list[Any], *, what: str = "transaction") -> Any:
        """The request's result; fatal on an error reply or a lost connection."""
        from hwvtep.client.errors import ClientError, RpcError

        try:
            return self.client.call(method, params, timeout=None)
        except RpcError as e:
            _fatal(f"{what} returned error: {dumps(e.error, _style_pretty())}")
        except ClientError as e:
            _fatal(f"{what} failed ({_errno_text(str(e))})")

    def call_raw(self, method: str, params: list[Any]) -> tuple[bool, Any]:
        """(True, result) or (False, error object); fatal on a lost connection."""
        from hwvtep.client.errors import ClientError, RpcError

        try:
            return True, self.client.call(method, params, timeout=None)
        except RpcError as e:
            return False, e.error
        except ClientError as e:
            _fatal(f"transaction failed ({_errno_text(str(e))})")

    def close(self) -> None:
        self.client.close()


_pretty_holder: list[bool] = [False]


def _style_pretty() -> bool:
    return _pretty_holder[0]


def _split_remotes(s: str) -> list[str]:
    """ovsdb_session_parse_remote(): comma-separated, blanks skipped, "cid:" dropped."""
    out = [r.strip(" \t") for r in s.split(",")]
    return [r for r in out if r and not r.startswith("cid:")]


def _parse_port(name: str, hostport: str, port_s: str | None) -> int:
    if port_s is None or port_s == "":
        if port_s is None:
            vlog("stream", "warn", "The default OVSDB port number has changed from 6632 to 6640")
        return 6640
    if not port_s.isdigit() or int(port_s) > 65535:
        vlog("socket_util", "err", f'{hostport}: bad port number "{port_s}"')
        vlog("stream_tcp", "err", f"{name}: connect: Address family not supported by protocol")
        _fatal(f'failed to connect or listen to "{name}" '
               "(Address family not supported by protocol)")
    return int(port_s)


def make_remote(name: str, opts: Options) -> Remote:
    """A Remote for *name*, or the fatal error ovsdb-client gives for it."""
    from hwvtep.client.remote import Remote

    kind, sep, rest = name.partition(":")
    if sep and kind == "unix":
        return Remote("unix", path=rest if rest.startswith("/") else f"{rundir()}/{rest}")
    if sep and kind in ("tcp", "ssl"):
        if rest.startswith("["):
            end = rest.find("]")
            host = rest[1:end] if end > 0 else rest[1:]
            tail = rest[end + 1:] if end > 0 else ""
            port_s = tail[1:] if tail.startswith(":") else None
        elif rest.count(":") == 1:
            host, _, port_s = rest.partition(":")
        else:
            host, port_s = rest, None
        port = _parse_port(name, rest, port_s)
        if kind == "ssl":
            missing = [what for what, v in (("Private key", opts.private_key),
                                            ("Certificate", opts.certificate),
                                            ("CA certificate", opts.ca_cert)) if not v]
            for what in missing:
                vlog("stream_ssl", "err", f"{what} must be configured to use SSL")
            if missing:
                _fatal(f'failed to connect to "{name}" (Protocol not available)')
        return Remote(kind, host=host, port=port)
    if sep and kind in ("punix", "ptcp", "pssl"):
        _fatal(f'failed to connect or listen to "{name}" (passive remotes are not '
               f"supported by hwvtep {PROGRAM})")
    _fatal(f'failed to connect or listen to "{name}" (Address family not supported by '
           "protocol)")


def _ssl_config(opts: Options) -> Any:
    if opts.private_key and opts.certificate and opts.ca_cert:
        from hwvtep.client.remote import SslConfig

        return SslConfig(opts.private_key, opts.certificate, opts.ca_cert)
    return None


def open_jsonrpc(name: str, opts: Options) -> Rpc:
    from hwvtep.client.errors import ClientError
    from hwvtep.client.sync import SyncClient

    remote = make_remote(name, opts)
    client = SyncClient(remote, ssl=_ssl_config(opts), timeout=None, probe_interval=0,
                        max_tries=1)
    try:
        client.wait_ready()
    except ClientError as e:
        reason = str(e)
        client.close()
        if "Errno -" in reason:  # name resolution failed
            vlog("stream_tcp", "err",
                 f"{name}: connect: Address family not supported by protocol")
            _fatal(f'failed to connect or listen to "{name}" '
                   "(Address family not supported by protocol)")
        ssl_error = reason.find("[SSL")
        if ssl_error >= 0:
            # OpenSSL's words differ from Python's; the outcome is OVS's.
            vlog("stream_ssl", "warn", f"SSL_connect: {reason[ssl_error:]}")
            _fatal(f'failed to connect to "{name}" (Protocol error)')
        _fatal(f'failed to connect to "{name}" ({_errno_text(reason)})')
    return Rpc(name, client)


def fetch_dbs(rpc: Rpc) -> list[str]:
    result = rpc.call("list_dbs", [])
    if not isinstance(result, list):
        _fatal("list_dbs response is not array")
    for n, name in enumerate(result):
        if not isinstance(name, str):
            _fatal(f"list_dbs response {n} is not string")
    return sorted(result, key=lambda s: s.encode("utf-8", "surrogateescape"))


def open_rpc(min_args: int, need: int, args: list[str], database: str | None,
             opts: Options) -> tuple[Rpc, str | None, int]:
    """Connect to the SERVER named first in *args* (or the default one) and, if *need*
    says so, find the database; returns (rpc, database, how many args were used)."""
    argidx = 0
    if len(args) > min_args and args[0][:1].isascii() and args[0][:1].isalpha() \
            and ":" in args[0]:
        remotes = _split_remotes(args[0])
        argidx = 1
    else:
        remotes = [default_remote()]
    if len(remotes) == 1:
        rpc = open_jsonrpc(remotes[0], opts)
        if need == NEED_DATABASE and database is None:
            dbs = fetch_dbs(rpc)
            if len(args) - argidx > min_args and args[argidx] in dbs:
                database = args[argidx]
                argidx += 1
            elif "Open_vSwitch" in dbs:
                database = "Open_vSwitch"
            else:
                mine = [d for d in dbs if not d.startswith("_")]
                if len(mine) != 1:
                    rpc.close()
                    _fatal("could not find a default database, please specify a "
                           "database name")
                database = mine[0]
        return rpc, database, argidx
    if database is None and need == NEED_DATABASE:
        if len(args) - argidx > min_args:
            database = args[argidx]
            argidx += 1
        else:
            _fatal("database name is required with multiple remotes")
    return _open_multiple(remotes, database, opts), database, argidx


def _open_multiple(names: list[str], database: str | None, opts: Options) -> Rpc:
    """The first of several servers that is up and serves *database* (as its leader, for
    a cluster, unless --no-leader-only)."""
    import random

    from hwvtep.client.errors import ClientError
    from hwvtep.client.sync import SyncClient

    names = list(names)
    random.shuffle(names)
    remotes = [make_remote(n, opts) for n in names]
    client = SyncClient(remotes, database=database, leader_only=opts.leader_only,
                        ssl=_ssl_config(opts), timeout=None, probe_interval=0,
                        max_tries=len(remotes))
    try:
        client.wait_ready()
    except ClientError:
        client.close()
        _fatal("no servers were available")
    remote = client.remote
    name = next((n for n, r in zip(names, remotes, strict=True) if r == remote), str(remote))
    return Rpc(name, client)


# --- schemas ------------------------------------------------------------------------------


class Schema:
    """A schema fetched from a server, with the orders Open vSwitch walks it in."""

    def __init__(self, raw: dict[str, Any], schema: DatabaseSchema) -> None:
        from hwvtep.ovsdb.jsonutil import ovs_object_order

        self.raw = raw
        self.schema = schema
        # The reply's "tables" object is walked to fill the schema's own hash table.
        self.table_names = ovs_object_order(ovs_object_order(list(schema.tables)))
        self._types: dict[tuple[str, str], Type] = {}

    @property
    def name(self) -> str:
        return self.schema.name

    def table(self, name: str) -> TableSchema | None:
        return self.schema.tables.get(name)

    def column_names(self, table: TableSchema) -> list[str]:
        """ts->columns' walk order: _uuid and _version first in, then the columns as
        the table's JSON object is walked."""
        from hwvtep.ovsdb.jsonutil import ovs_object_order

        user = ovs_object_order([c.name for c in table.user_columns])
        return ovs_object_order(["_uuid", "_version", *user])

    def ctl_type(self, table: TableSchema, column: str) -> Type:
        key = (table.name, column)
        t = self._types.get(key)
        if t is None:
            from hwvtep.ctl.values import Type as CtlType

            t = self._types[key] = CtlType.from_json(table.columns[column].type.to_json())
        return t

    def to_json(self) -> dict[str, Any]:
        """ovsdb_schema_to_json()."""
        from hwvtep.ovsdb.log import schema_to_json

        return schema_to_json(self.schema, has_version="version" in self.raw)


def fetch_schema(rpc: Rpc, database: str) -> Schema:
    from hwvtep.ovsdb.errors import OvsdbError
    from hwvtep.ovsdb.log import error_to_string
    from hwvtep.ovsdb.schema import DatabaseSchema

    raw = rpc.call("get_schema", [database])
    try:
        schema = DatabaseSchema.from_json(raw)
    except OvsdbError as e:
        _fatal(error_to_string(e))
    return Schema(raw, schema)


# --- commands -----------------------------------------------------------------------------


class Ctx:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.style = opts.style

    def out(self, text: str) -> None:
        sys.stdout.write(text)

    def print_json(self, j: Any) -> None:
        sys.stdout.write(dumps(j, self.style.pretty) + "\n")

    def print_table(self, tbl: OutTable) -> None:
        sys.stdout.write(format_table(tbl, self.style))


def do_list_dbs(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    assert rpc is not None
    for name in fetch_dbs(rpc):
        ctx.out(name + "\n")


def do_get_schema(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    assert rpc is not None and database is not None
    ctx.print_json(fetch_schema(rpc, database).to_json())


def do_get_schema_version(ctx: Ctx, rpc: Rpc | None, database: str | None,
                          args: list[str]) -> None:
    assert rpc is not None and database is not None
    schema = fetch_schema(rpc, database)
    ctx.out((schema.schema.version if "version" in schema.raw else "") + "\n")


def do_get_schema_cksum(ctx: Ctx, rpc: Rpc | None, database: str | None,
                        args: list[str]) -> None:
    assert rpc is not None and database is not None
    ctx.out((fetch_schema(rpc, database).schema.cksum or "") + "\n")


def do_list_tables(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    assert rpc is not None and database is not None
    schema = fetch_schema(rpc, database)
    tbl = OutTable(["Table"])
    for name in schema.table_names:
        tbl.rows.append([name])
    ctx.print_table(tbl)


def do_list_columns(ctx: Ctx, rpc: Rpc | None, database: str | None,
                    args: list[str]) -> None:
    assert rpc is not None and database is not None
    only = args[0] if args else None
    schema = fetch_schema(rpc, database)
    tbl = OutTable((["Table"] if only is None else []) + ["Column", "Type"])
    for tname in schema.table_names:
        if only is not None and tname != only:
            continue
        ts = schema.schema.tables[tname]
        for cname in schema.column_names(ts):
            row: list[Any] = [] if only is not None else [tname]
            row += [cname, JsonCell(ts.columns[cname].type.to_json())]
            tbl.rows.append(row)
    ctx.print_table(tbl)


def _send_db_change_aware(ctx: Ctx, rpc: Rpc) -> None:
    if ctx.opts.db_change_aware == 0:
        return
    ok, answer = rpc.call_raw("set_db_change_aware", [True])
    if not ok and ctx.opts.db_change_aware == 1:
        _fatal(f"{rpc.name}: set_db_change_aware failed ({dumps_hash_order(answer)})")


def _transact(ctx: Ctx, args: list[str], txn: Any) -> Any:
    if not (isinstance(txn, list) and txn and isinstance(txn[0], str)):
        _fatal("not a valid OVSDB query")
    rpc, _, _ = open_rpc(1, NEED_DATABASE, args, txn[0], ctx.opts)
    if ctx.opts.db_change_aware == 1:
        _send_db_change_aware(ctx, rpc)
    _daemonize(ctx, rpc)
    result = rpc.call("transact", txn)
    _daemonize_complete()
    rpc.close()
    return result


def do_transact(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    ctx.print_json(_transact(ctx, args, parse_json(args[-1])))


def do_query(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    txn = parse_json(args[-1])
    if not isinstance(txn, list):
        _fatal("not a valid OVSDB query")
    txn.append({"op": "abort"})
    abort_idx = len(txn) - 2
    result = _transact(ctx, args, txn)
    if isinstance(result, list) and len(result) == abort_idx + 1 \
            and isinstance(result[abort_idx], dict) \
            and result[abort_idx].get("error") == "aborted":
        result.pop()
    ctx.print_json(result)


# dump


def do_dump(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    assert rpc is not None and database is not None
    schema = fetch_schema(rpc, database)
    custom: list[str] = []
    if args:
        ts0 = schema.table(args[0])
        if ts0 is None:
            _fatal(f'No table "{args[0]}" found.')
        tables = [ts0]
        for col in args[1:]:
            if col not in ts0.columns:
                _fatal(f'Table "{args[0]}" has no column {col}.')
            custom.append(col)
    else:
        tables = [schema.schema.tables[n] for n in sorted(schema.schema.tables)]
    txn: list[Any] = [database]
    for ts in tables:
        names = custom if len(args) > 1 else schema.column_names(ts)
        txn.append({"op": "select", "table": ts.name, "where": [],
                    "columns": [c for c in names if c != "_version"]})
    result = rpc.call("transact", txn)
    if not isinstance(result, list) or len(result) != len(tables):
        _fatal(f"reply is not array of {len(tables)} elements: {dumps_hash_order(result)}")
    for ts, op_result in zip(tables, result, strict=True):
        rows = op_result.get("rows") if isinstance(op_result, dict) else None
        if not isinstance(rows, list):
            _fatal(f'{ts.name} table reply is not an object with a "rows" member array: '
                   f"{dumps_hash_order(op_result)}")
        names = custom if len(args) > 1 else list(ts.columns)
        _dump_table(ctx, schema, ts, names, rows)


def _dump_table(ctx: Ctx, schema: Schema, ts: TableSchema, names: list[str],
                rows: list[Any]) -> None:
    from hwvtep.ctl.values import UUID, compare_3way, datum_from_json

    cols = sorted((n for n in names if n != "_version"),
                  key=lambda s: s.encode("utf-8", "surrogateescape"))
    types = [schema.ctl_type(ts, c) for c in cols]
    data: list[list[Any]] = []
    for y, row in enumerate(rows):
        if not isinstance(row, dict):
            _fatal(f"row {y} in table {ts.name} response is not a JSON object: "
                   f"{dumps_hash_order(row)}")
        values = []
        for c, t in zip(cols, types, strict=True):
            if c not in row:
                _fatal(f"row {y} in table {ts.name} response lacks {c} column")
            try:
                values.append(datum_from_json(t, row[c]))
            except (TypeError, ValueError, IndexError, KeyError):
                _fatal(f"row {y} in table {ts.name} response has a bad {c} column: "
                       f"{dumps_hash_order(row[c])}")
        data.append(values)
    # Rows in column order, UUID columns (random) only as tie-breakers.
    plain = [x for x, t in enumerate(types) if t.key.type != UUID]
    uuids = [x for x, t in enumerate(types) if t.key.type == UUID]
    order = plain + uuids

    import functools

    def cmp(a: list[Any], b: list[Any]) -> int:
        for x in order:
            c = compare_3way(types[x], a[x], b[x])
            if c:
                return c
        return 0
    data.sort(key=functools.cmp_to_key(cmp))
    tbl = OutTable(cols, caption=f"{ts.name} table")
    for values in data:
        tbl.rows.append(list(zip(types, values, strict=True)))
    ctx.print_table(tbl)


# monitor


class Monitored:
    """A monitored table and the columns shown for it."""

    def __init__(self, table: TableSchema) -> None:
        self.table = table
        self.columns: list[str] = []


def _parse_monitor_columns(arg: str, rpc: Rpc, database: str, schema: Schema,
                           mt: Monitored) -> dict[str, Any]:
    ts = mt.table
    columns: list[str] = []
    select = {"initial": True, "insert": True, "delete": True, "modify": True}

    def add(name: str) -> None:
        if name in mt.columns:
            _fatal(f'{rpc.name}: column "{name}" mentioned multiple times')
        mt.columns.append(name)
        columns.append(name)
    for token in arg.split(","):
        if not token:
            continue
        if token[:1] == "!" and token[1:] in select:
            select[token[1:]] = False
        else:
            if token not in ts.columns:
                _fatal(f'{rpc.name}: table "{ts.name}" in {database} does not have a column '
                       f'named "{token}"')
            add(token)
    if not columns:
        for name in sorted(ts.columns, key=lambda s: s.encode("utf-8", "surrogateescape")):
            if name not in ("_uuid", "_version"):
                add(name)
        add("_version")
    mr: dict[str, Any] = {"columns": columns}
    if not all(select.values()):
        mr["select"] = select
    return mr


def _add_monitored(args: list[str], rpc: Rpc, database: str, schema: Schema,
                   condition: Any, ts: TableSchema, requests: dict[str, Any],
                   mts: list[Monitored]) -> None:
    mt = Monitored(ts)
    mts.append(mt)
    array = []
    for n, arg in enumerate(args[1:] or [""]):
        mr = _parse_monitor_columns(arg, rpc, database, schema, mt)
        if n == 0 and condition is not None:
            mr["where"] = condition
        array.append(mr)
    requests[ts.name] = array


class MonitorPrinter:
    def __init__(self, ctx: Ctx, schema: Schema, mts: list[Monitored]) -> None:
        self.ctx = ctx
        self.schema = schema
        self.mts = mts

    def _new_table(self, mt: Monitored) -> OutTable:
        caption = mt.table.name if len(self.mts) > 1 else None
        return OutTable(["row", "action", *mt.columns], caption=caption,
                        timestamp=self.ctx.opts.timestamp)

    def _row(self, tbl: OutTable, mt: Monitored, row: Any, kind: str, uuid: str) -> None:
        if row is _MISSING:
            _error(f"missing {kind} row")
            return
        if not isinstance(row, dict):
            _error("<row> is not object")
            return
        cells: list[Any] = [uuid, kind]
        for c in mt.columns:
            if c in row:
                cells.append(JsonCell(row[c], self.schema.ctl_type(mt.table, c)))
            else:
                cells.append(None)
        tbl.rows.append(cells)

    def _each_row(self, table_updates: Any, updates_what: str, row_what: str,
                  on_row: Callable[[OutTable, Monitored, str, dict[str, Any]], None]) -> None:
        """Walk the monitored tables' row updates in OVS's order, one printed table each,
        with *updates_what* and *row_what* naming the objects in error messages."""
        from hwvtep.ovsdb.jsonutil import ovs_object_order

        if not isinstance(table_updates, dict):
            _error(f"<{updates_what}> is not object")
            return
        for mt in self.mts:
            tu = table_updates.get(mt.table.name)
            if tu is None:
                continue
            if not isinstance(tu, dict):
                _error(f"<table-update> for table {mt.table.name} is not object")
                continue
            tbl = self._new_table(mt)
            for uuid in ovs_object_order(list(tu)):
                ru = tu[uuid]
                if not isinstance(ru, dict):
                    _error(f"<{row_what}> is not object")
                    continue
                on_row(tbl, mt, uuid, ru)
            self.ctx.print_table(tbl)

    def updates(self, table_updates: Any, initial: bool) -> None:
        """monitor_print(): "update" notifications and the "monitor" reply."""

        def on_row(tbl: OutTable, mt: Monitored, uuid: str, ru: dict[str, Any]) -> None:
            old = ru.get("old", _MISSING)
            new = ru.get("new", _MISSING)
            if initial:
                self._row(tbl, mt, new, "initial", uuid)
            elif old is _MISSING:
                self._row(tbl, mt, new, "insert", uuid)
            elif new is _MISSING:
                self._row(tbl, mt, old, "delete", uuid)
            else:
                self._row(tbl, mt, old, "old", uuid)
                self._row(tbl, mt, new, "new", "")

        self._each_row(table_updates, "table-updates", "row-update", on_row)

    def updates2(self, table_updates: Any) -> None:
        """monitor2_print(): "update2"/"update3" notifications and their replies."""

        def on_row(tbl: OutTable, mt: Monitored, uuid: str, ru: dict[str, Any]) -> None:
            for kind in ("delete", "initial", "modify", "insert"):
                if kind not in ru:
                    continue
                row = ru[kind]
                if kind == "delete":
                    if row is not None:
                        _error("delete method does not expect <row>")
                    else:
                        tbl.rows.append([uuid, kind] + [None] * len(mt.columns))
                elif not isinstance(row, dict):
                    _error("<row> is not object")
                else:
                    self._row(tbl, mt, row, kind, uuid)
                break

        self._each_row(table_updates, "table-updates2", "row-update2", on_row)


_MISSING: Any = object()


def _monitor(ctx: Ctx, rpc: Rpc, database: str, version: int, args: list[str],
             condition: Any, last_id: str | None) -> None:
    table_name = args[0]
    _daemonize(ctx, rpc)
    schema = fetch_schema(rpc, database)
    requests: dict[str, Any] = {}
    mts: list[Monitored] = []
    if table_name != "ALL":
        ts = schema.table(table_name)
        if ts is None:
            _fatal(f'{rpc.name}: {database} does not have a table named "{table_name}"')
        _add_monitored(args, rpc, database, schema, condition, ts, requests, mts)
    else:
        if condition is not None:
            _fatal("ALL tables are not allowed with condition")
        for name in sorted(schema.schema.tables):
            _add_monitored(args, rpc, database, schema, None, schema.schema.tables[name],
                           requests, mts)
    _send_db_change_aware(ctx, rpc)
    printer = MonitorPrinter(ctx, schema, mts)
    params: list[Any] = [database, None, requests]
    method = ("monitor", "monitor_cond", "monitor_cond_since")[version - 1]
    if version == 3:
        params.append(last_id)
    result = rpc.call(method, params)
    if version == 1:
        printer.updates(result, True)
    elif version == 2:
        printer.updates2(result)
    else:
        if not isinstance(result, list):
            _error("<result> is not array")
        elif len(result) != 3:
            _error(f"<result> should have 3 elements, but has {len(result)}.")
        if isinstance(result, list) and len(result) == 3:
            found = "true" if result[0] is True else "false"
            ctx.out(f"found: {found}, last_id: {result[1]}\n")
            printer.updates2(result[2])
    sys.stdout.flush()
    _daemonize_complete()

    def on_notification(method: str, params: Any) -> None:
        if method == "update" and isinstance(params, list) and len(params) == 2 \
                and params[0] is None:
            printer.updates(params[1], False)
        elif method == "update2" and version == 2 and isinstance(params, list) \
                and len(params) == 2 and params[0] is None:
            printer.updates2(params[1])
        elif method == "update3" and version == 3 and isinstance(params, list) \
                and len(params) == 3 and params[0] is None:
            ctx.out(f"\nlast_id: {params[1]}")
            printer.updates2(params[2])
        elif method == "monitor_canceled":
            _fatal(f"{rpc.name}: {database} database was removed")
        else:
            return
        sys.stdout.flush()
    _serve(rpc, on_notification)


def _serve(rpc: Rpc, handler: Callable[[str, Any], None]) -> NoReturn:
    """Hand every notification to *handler* until the connection ends (fatal)."""
    client = rpc.client
    while True:
        while client.notifications:
            msg = client.notifications.popleft()
            handler(msg.method, msg.params)
        if not client.core.ready:
            reason = client.core.last_error or "connection closed by peer"
            _fatal(f"{rpc.name}: receive failed ({_errno_text(reason)})")
        client.poll()


def do_monitor(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    assert rpc is not None and database is not None
    _monitor(ctx, rpc, database, 1, args, None, None)


def _monitor_cond(ctx: Ctx, rpc: Rpc, database: str, version: int, last_id: str | None,
                  args: list[str]) -> None:
    from hwvtep.ovsdb.condition import parse_where
    from hwvtep.ovsdb.errors import OvsdbError
    from hwvtep.ovsdb.log import error_to_string

    schema = fetch_schema(rpc, database)
    ts = schema.table(args[1])
    if ts is None:
        _fatal(f'{database} does not have a table named "{args[1]}"')
    condition = parse_json(args[0])
    try:
        parse_where(ts, condition)
    except OvsdbError as e:
        _fatal(error_to_string(e))
    _monitor(ctx, rpc, database, version, args[1:], condition, last_id)


def do_monitor_cond(ctx: Ctx, rpc: Rpc | None, database: str | None,
                    args: list[str]) -> None:
    assert rpc is not None and database is not None
    _monitor_cond(ctx, rpc, database, 2, None, args)


def do_monitor_cond_since(ctx: Ctx, rpc: Rpc | None, database: str | None,
                          args: list[str]) -> None:
    assert rpc is not None and database is not None
    from hwvtep.ctl.values import is_uuid

    last_id = ZERO_UUID
    if is_uuid(args[0]):
        last_id = args[0].lower()
        args = args[1:]
    _monitor_cond(ctx, rpc, database, 3, last_id, args)


# lock


def _lock(ctx: Ctx, rpc: Rpc | None, method: str, name: str) -> None:
    """Send *method* for lock *name*, print the reply and every lock notification, and keep
    running. Detached (as OVS 3.1), a control socket at $OVS_RUNDIR/ovsdb-client.PID.ctl
    takes further ``lock``/``steal``/``unlock LOCK`` requests and ``exit``."""
    assert rpc is not None
    _daemonize(ctx, rpc)
    control = _LockControl(method, name)
    if ctx.opts.detach:
        control.start(os.path.join(rundir(), f"{PROGRAM}.{os.getpid()}.ctl"))
    client = rpc.client

    def on_notification(method: str, params: Any) -> None:
        ctx.out(method + "\n")
        ctx.print_json(params)
        sys.stdout.flush()
    while not control.exiting.is_set():
        req = control.take()
        if req is not None:
            ok, answer = rpc.call_raw(req[0], [req[1]])
            if ok:
                ctx.print_json(answer)
                sys.stdout.flush()
                _daemonize_complete()
        while client.notifications:
            msg = client.notifications.popleft()
            on_notification(msg.method, msg.params)
        if not client.core.ready:
            reason = client.core.last_error or "connection closed by peer"
            _fatal(f"{rpc.name}: receive failed ({_errno_text(reason)})")
        client.poll(0.05 if control.path else None)


class _LockControl:
    """One pending lock request (a new one is ignored while one waits, as OVS does) fed by
    the control socket, served on its own thread so the JSON-RPC loop stays blocking."""

    def __init__(self, method: str, name: str) -> None:
        import threading

        self._mutex = threading.Lock()
        self._pending: tuple[str, str] | None = (method, name)
        self.exiting = threading.Event()
        self.path = ""

    def take(self) -> tuple[str, str] | None:
        with self._mutex:
            req, self._pending = self._pending, None
            return req

    def _set(self, method: str, name: str) -> str:
        with self._mutex:
            if self._pending is None:
                self._pending = (method, name)
        return ""

    def _set_args(self, method: str, args: list[str]) -> str:
        return self._set(method, args[0])

    def _exit(self, _args: list[str]) -> str:
        self.exiting.set()
        return ""

    def start(self, path: str) -> None:
        import asyncio
        import functools
        import threading

        from hwvtep.server.unixctl import CommandTable, UnixctlServer

        table = CommandTable()
        for m in ("lock", "steal", "unlock"):
            table.register(m, "LOCK", 1, 1, functools.partial(self._set_args, m))
        table.register("exit", "", 0, 0, self._exit)
        server = UnixctlServer(path, table)
        started = threading.Event()
        failure: list[OSError] = []

        async def serve() -> None:
            try:
                await server.start()
            except OSError as e:
                failure.append(e)
                return
            finally:
                started.set()
            await asyncio.Event().wait()
        threading.Thread(target=asyncio.run, args=(serve(),), daemon=True).start()
        started.wait()
        if failure:
            _fatal(f"failed to create unixctl server ({failure[0].strerror})")
        self.path = path
        _remove_on_exit.append(path)
        import atexit

        atexit.register(_unlink_quiet, path)


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def do_lock(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    _lock(ctx, rpc, "lock", args[0])


def do_steal(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    _lock(ctx, rpc, "steal", args[0])


def do_unlock(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    _lock(ctx, rpc, "unlock", args[0])


# backup and restore


def _schema_file_json(schema: Schema) -> dict[str, Any]:
    """ovsdb_schema_to_json() with members added in the order Open vSwitch adds them (so
    that :func:`dumps_hash_order` writes them where OVS would)."""
    from hwvtep.ovsdb.jsonutil import ovs_object_order

    j = schema.to_json()

    def ordered(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: d[k] for k in keys if k in d}

    def type_json(t: Any) -> Any:
        if not isinstance(t, dict):
            return t
        out = ordered(t, ("key", "value", "min", "max"))
        for k in ("key", "value"):
            if isinstance(out.get(k), dict):
                out[k] = ordered(out[k], ("type", "enum", "minInteger", "maxInteger",
                                          "minReal", "maxReal", "minLength", "maxLength",
                                          "refTable", "refType"))
        return out
    tables: dict[str, Any] = {}
    for tname in schema.table_names:
        tj = j["tables"][tname]
        ts = schema.schema.tables[tname]
        cols: dict[str, Any] = {}
        for cname in ovs_object_order(["_uuid", "_version",
                                       *ovs_object_order([c.name for c in ts.user_columns])]):
            if cname.startswith("_"):
                continue
            cj = ordered(tj["columns"][cname], ("mutable", "ephemeral", "type"))
            cj["type"] = type_json(cj["type"])
            cols[cname] = cj
        out = ordered(tj, ("mutable", "isRoot"))
        out["columns"] = cols
        out.update(ordered(tj, ("maxRows", "indexes")))
        tables[tname] = out
    top = ordered(j, ("name", "version", "cksum"))
    top["tables"] = tables
    return top


def _record(j: Any) -> bytes:
    """ovsdb_log_compose_record(): header line, then the JSON and a new-line."""
    import hashlib

    data = dumps_hash_order(j).encode("utf-8", "surrogateescape") + b"\n"
    return b"OVSDB JSON %d %s\n" % (len(data), hashlib.sha1(data).hexdigest().encode()) + data


def _persistent(schema: Schema, ts: TableSchema, column: ColumnSchema) -> bool:
    from hwvtep.ovsdb.log import persistent_columns

    if column.name == "_uuid":
        return True
    if column.name == "_version":
        return False
    return column.name in persistent_columns(schema.schema, ts)


def do_backup(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    assert rpc is not None and database is not None
    import time

    from hwvtep.ovsdb.jsonutil import ovs_object_order

    if os.isatty(1):
        _fatal("not writing backup to a terminal; please redirect stdout to a file")
    schema = fetch_schema(rpc, database)
    txn: list[Any] = [database]
    for tname in schema.table_names:
        ts = schema.schema.tables[tname]
        cols = [c for c in schema.column_names(ts) if _persistent(schema, ts, ts.columns[c])]
        txn.append({"op": "select", "table": tname, "where": [], "columns": cols})
    result = rpc.call("transact", txn)
    out = sys.stdout.buffer
    sys.stdout.flush()
    out.write(_record(_schema_file_json(schema)))
    if not isinstance(result, list) or len(result) != len(schema.table_names):
        _fatal(f"reply is not array of {len(schema.table_names)} elements: "
               f"{dumps_hash_order(result)}")
    record: dict[str, Any] = {}
    for tname, op_result in zip(schema.table_names, result, strict=True):
        rows = op_result.get("rows") if isinstance(op_result, dict) else None
        if not isinstance(rows, list):
            _fatal(f'{tname} table reply is not an object with a "rows" member array: '
                   f"{dumps_hash_order(op_result)}")
        if not rows:
            continue
        out_rows: dict[str, Any] = {}
        for row in rows:
            if not isinstance(row, dict):
                _fatal(f"{tname} table reply row is not an object: {dumps_hash_order(row)}")
            if "_uuid" not in row:
                _fatal(f"{tname} table reply row lacks _uuid member: "
                       f"{dumps_hash_order(row)}")
            uuid = row["_uuid"]
            if not (isinstance(uuid, list) and len(uuid) == 2 and uuid[0] == "uuid"
                    and isinstance(uuid[1], str)):
                _fatal(f'syntax "{dumps(uuid)}": syntax error: expected ["uuid", <string>]')
            # The row object as received (OVS shares it), minus _uuid.
            out_rows[uuid[1].lower()] = Walked((k, row[k]) for k in ovs_object_order(list(row))
                                               if k != "_uuid")
        record[tname] = out_rows
    record["_comment"] = f'produced by "{PROGRAM} backup"'
    record["_is_diff"] = True
    record["_date"] = int(time.time() * 1000)
    out.write(_record(record))
    out.flush()


def do_restore(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    assert rpc is not None and database is not None
    from hwvtep.ovsdb.errors import OvsdbError
    from hwvtep.ovsdb.log import error_to_string, schema_to_json

    if os.isatty(0):
        _fatal("not reading backup from a terminal; please redirect stdin from a file")
    try:
        backup_schema, tables = _read_backup(sys.stdin.buffer.read())
    except OvsdbError as e:
        _fatal(error_to_string(e))
    online = fetch_schema(rpc, database)
    if schema_to_json(backup_schema) != online.to_json():
        if backup_schema.version != online.schema.version:
            msg = (f'backup schema has version "{backup_schema.version}" but database '
                   f'schema has version "{online.schema.version}"')
        else:
            msg = (f"backup schema and database schema are both version "
                   f"{backup_schema.version} but still differ")
        if not ctx.opts.force:
            _fatal(f'{msg} (use --force to override differences, or "ovsdb-client convert" '
                   "to change the schema)")
        vlog("ovsdb_client", "info", msg)
    txn: list[Any] = [backup_schema.name]
    for tname, rows in tables.items():
        ts = backup_schema.tables[tname]
        txn.append({"op": "delete", "table": tname, "where": []})
        for uuid, row in rows.items():
            txn.append({"op": "insert", "table": tname, "uuid-name": _row_name(uuid),
                        "row": _restore_row(backup_schema, ts, row)})
    result = rpc.call("transact", txn)
    _check_transaction_reply(result)


def _row_name(uuid: str) -> str:
    return "row" + uuid.replace("-", "_")


def _restore_row(schema: DatabaseSchema, ts: TableSchema, row: Any) -> dict[str, Any]:
    from hwvtep.ovsdb.data import datum_to_json, default_datum
    from hwvtep.ovsdb.log import persistent_columns
    from hwvtep.ovsdb.types import UUID

    persistent = set(persistent_columns(schema, ts))
    out: dict[str, Any] = {}
    for col in ts.user_columns:
        if col.name not in persistent:
            continue
        datum = row[col.name]
        if datum == default_datum(col.type):
            continue
        j = datum_to_json(col.type, datum)
        if UUID in (col.type.key.type, col.type.value.type if col.type.value else None):
            j = _named_uuids(j)
        out[col.name] = j
    return out


def _named_uuids(j: Any) -> Any:
    if isinstance(j, list):
        if len(j) == 2 and j[0] == "uuid" and isinstance(j[1], str):
            return ["named-uuid", _row_name(j[1])]
        return [_named_uuids(e) for e in j]
    return j


def _read_backup(data: bytes) -> tuple[DatabaseSchema, dict[str, dict[str, Any]]]:
    """The schema and rows of a standalone database file (as ovsdb_file_read())."""
    import uuid

    from hwvtep.ovsdb.database import Database
    from hwvtep.ovsdb.errors import OvsdbError
    from hwvtep.ovsdb.log import (
        OVSDB_MAGIC,
        RAFT_MAGIC,
        file_magic,
        record_to_changes,
        scan_records,
    )
    from hwvtep.ovsdb.schema import DatabaseSchema

    if file_magic(data, "/dev/stdin", (OVSDB_MAGIC, RAFT_MAGIC)) == RAFT_MAGIC:
        raise OvsdbError("ovsdb error", "/dev/stdin: cannot apply this operation to "
                         "clustered database file")
    scan = scan_records(data, "/dev/stdin")
    if scan.error is not None and not scan.records:
        raise scan.error
    records = scan.records
    schema = DatabaseSchema.from_json(records[0].json)
    try:
        os.lseek(0, 0, os.SEEK_CUR)
    except OSError as e:
        # OVS opens the file for appending after reading it: a pipe will not do.
        raise OvsdbError("I/O error", f"/dev/stdin: seek failed ({e.strerror})") from None
    db = Database(schema)
    for rec in records[1:]:
        db.apply(record_to_changes(schema, db.tables, rec.json,
                                   new_version=lambda: str(uuid.uuid4())))
    tables = {t: dict(rows) for t, rows in db.tables.items() if t in schema.tables}
    return schema, tables


def _check_transaction_reply(result: Any) -> None:
    if not isinstance(result, list):
        _fatal("result is not array")
    for op in result:
        if not isinstance(op, dict):
            _fatal("result array element is not object")
        if "error" in op:
            _fatal(f"server returned error reply: {dumps(op)}")


# convert, needs-conversion, wait


def _schema_from_file(path: str) -> tuple[dict[str, Any], DatabaseSchema]:
    from hwvtep.ovsdb.errors import OvsdbError
    from hwvtep.ovsdb.log import OvsJsonError, error_to_string, ovs_json_loads
    from hwvtep.ovsdb.schema import DatabaseSchema

    why = None
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        why = f'error opening "{path}": {e.strerror}'
    else:
        try:
            j = ovs_json_loads(text)
        except OvsJsonError as e:
            why = str(e)
        else:
            if isinstance(j, str):
                why = j
    if why is not None:
        _fatal(f'failed to read schema: "{path}" could not be read as JSON ({why})')
    try:
        return j, DatabaseSchema.from_json(j)
    except OvsdbError as e:
        wrapped = OvsdbError(e.tag, f'failed to parse "{path}" as ovsdb schema: {e.details}',
                             e.syntax)
        _fatal(error_to_string(wrapped))


def do_convert(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    from hwvtep.ovsdb.log import schema_to_json

    _, schema = _schema_from_file(args[-1])
    rpc, _, _ = open_rpc(1, NEED_DATABASE, args, schema.name, ctx.opts)
    _send_db_change_aware(ctx, rpc)
    rpc.call("convert", [schema.name, schema_to_json(schema)])
    rpc.close()


def do_needs_conversion(ctx: Ctx, rpc: Rpc | None, database: str | None,
                        args: list[str]) -> None:
    from hwvtep.ovsdb.log import schema_to_json

    _, schema = _schema_from_file(args[-1])
    rpc, _, _ = open_rpc(1, NEED_DATABASE, args, schema.name, ctx.opts)
    online = fetch_schema(rpc, schema.name)
    ctx.out("no\n" if schema_to_json(schema) == online.to_json() else "yes\n")
    rpc.close()


def do_wait(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    from hwvtep.client.errors import ClientError, RpcError
    from hwvtep.client.sync import SyncClient

    db, state = args[-2], args[-1]
    if state not in ("connected", "added", "removed"):
        _fatal(f"{state}: unknown state")
    name = args[0] if len(args) > 2 else default_remote()
    op: dict[str, Any] = {"op": "wait", "table": "Database",
                          "where": [["name", "==", db]], "until": "=="}
    if state == "connected":
        op["columns"] = ["connected"]
        op["rows"] = [{"connected": True}]
    else:
        op["columns"] = []
        op["rows"] = [{}] if state == "added" else []
    remotes = [make_remote(n, ctx.opts) for n in _split_remotes(name)]
    client = SyncClient(remotes, ssl=_ssl_config(ctx.opts), timeout=None)
    vlog("reconnect", "info", f"{name}: connecting...")
    while True:
        try:
            try:
                client.call("set_db_change_aware", [True])
                if client.core.n_ready == 1:
                    vlog("reconnect", "info", f"{name}: connected")
            except RpcError as e:
                _fatal(f"{client.remote}: set_db_change_aware failed "
                       f"({dumps_hash_order(e.error)})")
            result = client.call("transact", ["_Server", op])
        except ClientError:
            continue  # the session reconnects; ask again
        _check_transaction_reply(result)
        return


def do_help(ctx: Ctx, rpc: Rpc | None, database: str | None, args: list[str]) -> None:
    sys.stdout.write(usage())


# name -> (what it needs, min args, max args, handler); SERVER and DATABASE not counted.
COMMANDS: dict[str, tuple[int, int, int, Any]] = {
    "list-dbs": (NEED_RPC, 0, 0, do_list_dbs),
    "get-schema": (NEED_DATABASE, 0, 0, do_get_schema),
    "get-schema-version": (NEED_DATABASE, 0, 0, do_get_schema_version),
    "get-schema-cksum": (NEED_DATABASE, 0, 0, do_get_schema_cksum),
    "list-tables": (NEED_DATABASE, 0, 0, do_list_tables),
    "list-columns": (NEED_DATABASE, 0, 1, do_list_columns),
    "transact": (NEED_NONE, 1, 2, do_transact),
    "query": (NEED_NONE, 1, 2, do_query),
    "monitor": (NEED_DATABASE, 1, _UNLIMITED, do_monitor),
    "monitor-cond": (NEED_DATABASE, 2, 3, do_monitor_cond),
    "monitor-cond-since": (NEED_DATABASE, 2, 4, do_monitor_cond_since),
    "wait": (NEED_NONE, 2, 3, do_wait),
    "convert": (NEED_NONE, 1, 2, do_convert),
    "needs-conversion": (NEED_NONE, 1, 2, do_needs_conversion),
    "dump": (NEED_DATABASE, 0, _UNLIMITED, do_dump),
    "backup": (NEED_DATABASE, 0, 0, do_backup),
    "restore": (NEED_DATABASE, 0, 0, do_restore),
    "lock": (NEED_RPC, 1, 1, do_lock),
    "steal": (NEED_RPC, 1, 1, do_steal),
    "unlock": (NEED_RPC, 1, 1, do_unlock),
    "help": (NEED_NONE, 0, _UNLIMITED, do_help),
}


# --detach


_detach_pipe: list[int] = []


def _daemonize(ctx: Ctx, rpc: Rpc) -> None:
    """daemonize_start(): with --detach, fork; the parent waits for the child to say it
    has started (see :func:`_daemonize_complete`) and exits with its status."""
    opts = ctx.opts
    if not opts.detach:
        if opts.pidfile:
            _write_pidfile(opts.pidfile)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        ok = os.read(r, 1)
        if ok:
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
    os.close(r)
    _detach_pipe.append(w)
    os.setsid()
    if opts.pidfile:
        _write_pidfile(opts.pidfile)
    if not opts.no_chdir:
        os.chdir("/")


def _daemonize_complete() -> None:
    if _detach_pipe:
        w = _detach_pipe.pop()
        os.write(w, b"1")
        os.close(w)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.close(null)
        vlog_console_off()


def _write_pidfile(path: str) -> None:
    import atexit

    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except OSError as e:
        _fatal(f"{path}: create failed ({e.strerror})")
    def remove() -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
    atexit.register(remove)
    _remove_on_exit.append(path)


# --- main ---------------------------------------------------------------------------------


def run(argv: list[str]) -> int:
    opts, args = parse_options(argv)
    _log_holder[:] = [opts.log]
    _pretty_holder[0] = opts.style.pretty
    _install_signals(opts.timeout)
    if not args:
        _fatal("missing command name; use --help for help")
    entry = COMMANDS.get(args[0])
    if entry is None:
        _fatal(f"unknown command '{args[0]}'; use --help for help")
    need, min_args, max_args, handler = entry
    rest = args[1:]
    rpc: Rpc | None = None
    database: str | None = None
    if need != NEED_NONE:
        rpc, database, used = open_rpc(min_args, need, rest, None, opts)
        rest = rest[used:]
    if not min_args <= len(rest) <= max_args:
        _fatal(f"invalid syntax for '{args[0]}' (use --help for help)")
    ctx = Ctx(opts)
    handler(ctx, rpc, database, rest)
    if rpc is not None:
        rpc.close()
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        return run(args)
    except Exit as e:
        sys.stdout.flush()
        return e.status
    except Fatal as e:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
        sys.stderr.write(f"{PROGRAM}: {e}\n")
        sys.stderr.flush()
        return 1
    except BrokenPipeError:
        # The reader went away (`... | head`): nothing more to say to anyone.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
