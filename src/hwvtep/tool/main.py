"""``hwvtep ovsdb-tool``: Open vSwitch's ``ovsdb-tool`` for standalone database files.

Same commands, arguments, default paths, output, error messages ("ovsdb-tool: ...") and
exit codes as OVS 3.1's ``ovsdb-tool``, so scripts written for one work with the other;
the files it writes are ones OVS reads. Clustered (Raft) databases are recognised but not
supported. Modules are imported per command to keep start-up short.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from hwvtep.cmdline import getopt_long

if TYPE_CHECKING:
    from hwvtep.ovsdb.schema import DatabaseSchema
    from hwvtep.server.storage import SchemaFile

PROGRAM = "ovsdb-tool"
DEFAULT_DB = "/etc/openvswitch/conf.db"
DEFAULT_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Fatal(Exception):
    """Print ``ovsdb-tool: <message>`` and exit with status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class Options:
    more: int = 0
    rbac_role: str | None = None


_vlog_serial = 0


def _vlog_warn(module: str, text: str) -> None:
    """A warning line in the form OVS's logging prints on the console."""
    global _vlog_serial
    _vlog_serial += 1
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(f"{stamp}|{_vlog_serial:05d}|{module}|WARN|{text}\n")


def _out(text: str) -> None:
    sys.stdout.write(text)


# ---------------------------------------------------------------------------
# Options, parsed as GNU getopt_long() does for OVS (options may follow commands).

# name -> argument: 0 none, 1 required, 2 optional; and its short form.
_LONG_OPTIONS: list[tuple[str, int, str | None]] = [
    ("more", 0, "m"),
    ("rbac-role", 1, None),
    ("cid", 1, None),
    ("election-timer", 1, None),
    ("verbose", 2, "v"),
    ("help", 0, "h"),
    ("option", 0, "o"),
    ("version", 0, "V"),
]


def _print_options() -> None:
    lines = []
    for name, arg, short in _LONG_OPTIONS:
        suffix = {0: "", 1: "=ARG", 2: "=[ARG]"}[arg]
        lines.append(f"--{name}{suffix}")
        if short:
            lines.append(f"-{short} {['', 'ARG', '[ARG]'][arg]}")
    _out("\n".join(lines) + "\n")


def _usage() -> None:
    _out(f"""{PROGRAM}: Open vSwitch database management utility
usage: {PROGRAM} [OPTIONS] COMMAND [ARG...]
  create [DB [SCHEMA]]    create DB with the given SCHEMA
  compact [DB [DST]]      compact DB in-place (or to DST)
  convert [DB [SCHEMA [DST]]]   convert DB to SCHEMA (to DST)
  needs-conversion [DB [SCHEMA]]  report whether DB needs conversion to SCHEMA
  db-name [DB]            report name of schema used by DB
  db-version [DB]         report version of schema used by DB
  db-cksum [DB]           report checksum of schema used by DB
  db-is-clustered DB      test whether DB is clustered
  db-is-standalone DB     test whether DB is standalone
  schema-name [SCHEMA]    report SCHEMA's name
  schema-version [SCHEMA] report SCHEMA's schema version
  schema-cksum [SCHEMA]   report SCHEMA's checksum
  compare-versions A OP B  compare OVSDB schema version numbers
  query [DB] TRNS         execute read-only transaction on DB
  transact [DB] TRNS      execute read/write transaction on DB
  [-m]... show-log [DB]   print DB's log entries
The default DB is {DEFAULT_DB}.
The default SCHEMA is {DEFAULT_SCHEMA}.
Clustered databases are not supported.

Other options:
  -m, --more                  increase show-log verbosity
  --rbac-role=ROLE            RBAC role for transact and query commands
  -h, --help                  display this help message
  -V, --version               display version information
""")


def _version() -> str:
    from hwvtep import __version__

    return __version__


def parse_options(argv: list[str]) -> tuple[Options, list[str]]:
    opts = Options()
    longs = {name: kind for name, kind, _ in _LONG_OPTIONS}
    shorts = {short: name for name, _, short in _LONG_OPTIONS if short}
    args = getopt_long(argv, longs, shorts, lambda name, arg: _handle_option(opts, name, arg),
                       _fatal, permute=True)
    return opts, args


def _fatal(msg: str) -> NoReturn:
    raise Fatal(msg)


def _handle_option(opts: Options, name: str, arg: str | None) -> None:
    if name == "more":
        opts.more += 1
    elif name == "rbac-role":
        opts.rbac_role = arg
    elif name == "cid":
        from hwvtep.ovsdb.types import UUID_RE, ZERO_UUID

        if arg is None or not UUID_RE.match(arg) or arg.lower() == ZERO_UUID:
            raise Fatal(f"{arg}: not a valid UUID")
    elif name == "election-timer":
        try:
            ms = int((arg or "0").strip().split()[0]) if (arg or "").strip() else 0
        except ValueError:
            ms = 0
        if not 100 <= ms <= 600000:
            raise Fatal("ovsdb error: election timer must be between 100 and 600000, in "
                        "msec.")
    elif name == "help":
        _usage()
        raise _Exit(0)
    elif name == "option":
        _print_options()
        raise _Exit(0)
    elif name == "version":
        _out(f"{PROGRAM} (hwvtep) {_version()}\n")
        raise _Exit(0)
    # --verbose: OVS's logging levels; nothing to set here.


# ---------------------------------------------------------------------------
# Shared helpers.


def _storage_error(e: Exception) -> Fatal:
    from hwvtep.server.storage import LockError, StorageError

    if isinstance(e, LockError):
        _vlog_warn("lockfile", e.warning)
        return Fatal(f"I/O error: {e.message}")
    if isinstance(e, StorageError):
        return Fatal(e.message)
    raise e


def _schema_from_file(path: str) -> SchemaFile:
    from hwvtep.server.storage import StorageError, read_schema_file

    try:
        return read_schema_file(path)
    except StorageError as e:
        raise Fatal(e.message) from None


def _read_standalone_schema(path: str) -> SchemaFile:
    """The schema of a standalone file, as ovsdb-tool reads it (fatal errors)."""
    from hwvtep.server import storage as st

    try:
        data, magic = st.read_log(path)
        st._standalone_only(path, magic)
        return st.read_schema_record(path, data)[0]
    except st.StorageError as e:
        raise _storage_error(e) from None


def _open_db(path: str, *, rw: bool) -> Any:
    from hwvtep.server.storage import Storage, StorageError

    try:
        return Storage.open(path, read_only=not rw, strict=True)
    except StorageError as e:
        raise _storage_error(e) from None


def _read_as_schema(path: str, schema: SchemaFile) -> Any:
    """A file's data read under another schema (``convert``): unknown tables and
    columns are dropped; reading stops silently at the first record that no longer
    commits under the new schema, as in OVS."""
    from hwvtep.server import storage as st

    try:
        data, magic = st.read_log(path)
        st._standalone_only(path, magic)
        _, first = st.read_schema_record(path, data)
    except st.StorageError as e:
        raise _storage_error(e) from None
    rp = st.replay(path, data, schema.schema, first.end, converting=True)
    if rp.error is not None and rp.fatal:
        raise Fatal(rp.error.message)
    return rp.db


def _arg(args: list[str], i: int, default: str) -> str:
    return args[i] if len(args) > i else default


# ---------------------------------------------------------------------------
# Commands. Each gets the command's arguments (without the command name).


def cmd_create(opts: Options, args: list[str]) -> int:
    from hwvtep.server.storage import StorageError, create

    db = _arg(args, 0, DEFAULT_DB)
    schema = _schema_from_file(_arg(args, 1, DEFAULT_SCHEMA))
    try:
        create(db, schema.json)
    except StorageError as e:
        raise _storage_error(e) from None
    return 0


def _compact_or_convert(src_arg: str, dst_arg: str | None, schema: SchemaFile | None,
                        comment: str) -> None:
    import os

    from hwvtep.ovsdb import log as ovlog
    from hwvtep.server import storage as st

    in_place = dst_arg is None
    src = st.follow_symlinks(src_arg)
    dst = src + ".tmp" if dst_arg is None else st.follow_symlinks(dst_arg)
    locks = []
    try:
        for name in ([src] if in_place else []) + [dst]:
            try:
                locks.append(st.FileLock.acquire(name))
            except st.LockError as e:
                _vlog_warn("lockfile", e.warning)
                raise Fatal(e.message) from None
        if schema is None:
            storage = _open_db(src, rw=False)
            db = storage.db
            storage.close()
            schema_file = storage.schema_file
        else:
            db = _read_as_schema(src, schema)
            schema_file = schema
        record = ovlog.snapshot_record(db.schema, db.tables, date_ms=st.now_ms(),
                                       comment=comment, is_diff=False)
        try:
            st.write_standalone(dst, schema_file.json, record)
        except st.StorageError as e:
            raise Fatal(e.message) from None
        if in_place:
            try:
                os.rename(dst, src)
            except OSError as e:
                # ovsdb-tool 3.1 leaves the new file behind; nothing would ever use it.
                with contextlib.suppress(OSError):
                    os.unlink(dst)
                raise Fatal(f'failed to rename "{dst}" to "{src}" '
                            f"({os.strerror(e.errno or 0)})") from None
            st.fsync_parent_dir(dst)
    finally:
        for lock in locks:
            lock.release()


def cmd_compact(opts: Options, args: list[str]) -> int:
    _compact_or_convert(_arg(args, 0, DEFAULT_DB), args[1] if len(args) > 1 else None,
                        None, f"compacted by hwvtep ovsdb-tool {_version()}")
    return 0


def cmd_convert(opts: Options, args: list[str]) -> int:
    schema = _schema_from_file(_arg(args, 1, DEFAULT_SCHEMA))
    _compact_or_convert(_arg(args, 0, DEFAULT_DB), args[2] if len(args) > 2 else None,
                        schema, f"converted by hwvtep ovsdb-tool {_version()}")
    return 0


def cmd_needs_conversion(opts: Options, args: list[str]) -> int:
    a = _read_standalone_schema(_arg(args, 0, DEFAULT_DB))
    b = _schema_from_file(_arg(args, 1, DEFAULT_SCHEMA))
    _out("no\n" if a.json == b.json else "yes\n")
    return 0


def cmd_db_name(opts: Options, args: list[str]) -> int:
    from hwvtep.ovsdb import log as ovlog
    from hwvtep.server import storage as st

    path = _arg(args, 0, DEFAULT_DB)
    try:
        data, magic = st.read_log(path)
        if magic == ovlog.OVSDB_MAGIC:
            name = st.read_schema_record(path, data)[0].schema.name
        else:
            r = ovlog.read_record(data, 0, path, magic)
            if not isinstance(r, ovlog.Record):
                raise Fatal(str(r) if r is not None else
                            f"ovsdb error: {path}: unexpected end of file")
            name = str(r.json.get("name", ""))
    except st.StorageError as e:
        raise _storage_error(e) from None
    _out(name + "\n")
    return 0


def cmd_db_version(opts: Options, args: list[str]) -> int:
    _out(_read_standalone_schema(_arg(args, 0, DEFAULT_DB)).version + "\n")
    return 0


def cmd_db_cksum(opts: Options, args: list[str]) -> int:
    _out(_read_standalone_schema(_arg(args, 0, DEFAULT_DB)).cksum + "\n")
    return 0


def _has_magic(args: list[str], magic: str) -> int:
    from hwvtep.server import storage as st

    try:
        _, actual = st.read_log(args[0])
    except st.StorageError as e:
        raise _storage_error(e) from None
    return 0 if actual == magic else 2


def cmd_db_is_clustered(opts: Options, args: list[str]) -> int:
    return _has_magic(args, "CLUSTER")


def cmd_db_is_standalone(opts: Options, args: list[str]) -> int:
    return _has_magic(args, "JSON")


def cmd_cluster(opts: Options, args: list[str]) -> int:
    """Cluster metadata commands: a standalone file is "not a clustered database"."""
    from hwvtep.server import storage as st

    if args:
        try:
            _, magic = st.read_log(args[0])
        except st.StorageError as e:
            raise _storage_error(e) from None
        if magic != "CLUSTER":
            raise Fatal(f"{args[0]}: not a clustered database")
    raise Fatal("clustered databases are not supported")


def cmd_unsupported(opts: Options, args: list[str]) -> int:
    raise Fatal("clustered databases are not supported")


def cmd_schema_name(opts: Options, args: list[str]) -> int:
    _out(_schema_from_file(_arg(args, 0, DEFAULT_SCHEMA)).schema.name + "\n")
    return 0


def cmd_schema_version(opts: Options, args: list[str]) -> int:
    _out(_schema_from_file(_arg(args, 0, DEFAULT_SCHEMA)).version + "\n")
    return 0


def cmd_schema_cksum(opts: Options, args: list[str]) -> int:
    _out(_schema_from_file(_arg(args, 0, DEFAULT_SCHEMA)).cksum + "\n")
    return 0


def cmd_compare_versions(opts: Options, args: list[str]) -> int:
    import re

    def parse(s: str) -> tuple[int, int, int]:
        m = re.fullmatch(r"\s*\+?(\d+)\.\s*\+?(\d+)\.\s*\+?(\d+)", s)
        if m is None or any(int(g) > 0xFFFFFFFF for g in m.groups()):
            raise Fatal(f"{s}: not an OVSDB version number in format x.y.z")
        return int(m[1]), int(m[2]), int(m[3])

    a = parse(args[0])
    b = parse(args[2])
    op = args[1]
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda x, y: x < y, "<=": lambda x, y: x <= y, "==": lambda x, y: x == y,
        ">=": lambda x, y: x >= y, ">": lambda x, y: x > y, "!=": lambda x, y: x != y}
    if op not in ops:
        raise Fatal(f"{op}: not a relational operator")
    return 0 if ops[op](a, b) else 2


def _transact(opts: Options, args: list[str], rw: bool) -> int:
    from hwvtep.ovsdb import log as ovlog
    from hwvtep.ovsdb.transaction import execute
    from hwvtep.server.storage import now_ms

    path = args[0] if len(args) >= 2 else DEFAULT_DB
    text = args[-1]
    storage = _open_db(path, rw=rw)
    try:
        try:
            request = ovlog.ovs_normalize_numbers(ovlog.ovs_json_loads(text))
        except ovlog.OvsJsonError as e:
            raise Fatal(f'"{text}": {e}') from None
        outcome = execute(storage.db, request, triggers=False)
        result = outcome.result
        if outcome.changes:
            if not rw:
                # OVS opens the file read-only and its first write fails to truncate it.
                result = [*result, {"details": f"{path}: cannot truncate to length "
                                    f"{storage.size}", "error": "I/O error",
                                    "io-error": "Invalid argument"}]
            else:
                try:
                    storage.commit(outcome.changes, durable=outcome.durable,
                                   comment=outcome.comment, date_ms=now_ms())
                except OSError as e:
                    import os

                    err: dict[str, Any] = {"details": str(e.args[1] if len(e.args) > 1
                                                          else e), "error": "I/O error"}
                    if e.errno:
                        err["io-error"] = os.strerror(e.errno)
                    result = [*result, err]
        _out(ovlog.ovs_json_dumps(result, reals=_schema_has_reals(storage.schema)) + "\n")
    finally:
        storage.close()
    return 0


def _schema_has_reals(schema: DatabaseSchema) -> bool:
    for t in schema.tables.values():
        for c in t.user_columns:
            if c.type.key.type == "real" or (c.type.value is not None
                                             and c.type.value.type == "real"):
                return True
    return False


def cmd_query(opts: Options, args: list[str]) -> int:
    return _transact(opts, args, rw=False)


def cmd_transact(opts: Options, args: list[str]) -> int:
    return _transact(opts, args, rw=True)


# --- show-log ----------------------------------------------------------------------


def _format_date(ms: int) -> str:
    import datetime

    if ms < 2**31 - 1:
        ms *= 1000  # older releases wrote seconds
    secs, msec = divmod(ms, 1000)
    try:
        t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=secs)
    except OverflowError:
        return ""
    return t.strftime(" %Y-%m-%d %H:%M:%S.") + f"{msec:03d}"


def _print_db_changes(record: dict[str, Any], names: dict[str, str],
                      schema: DatabaseSchema | None, verbosity: int) -> None:
    from hwvtep.ovsdb import log as ovlog
    from hwvtep.ovsdb.data import datum_from_json, datum_to_string
    from hwvtep.ovsdb.errors import OvsdbError

    diff = record.get("_is_diff") is True
    out: list[str] = []
    first = True
    for table in ovlog.shash_order(record):
        rows = record[table]
        if table.startswith("_") or not isinstance(rows, dict):
            continue
        if first:
            out.append("\n")
            first = False
        tschema = schema.tables.get(table) if schema is not None else None
        for row_uuid in ovlog.shash_order(rows):
            columns = rows[row_uuid]
            old_name = names.get(row_uuid)
            new_name = None
            if isinstance(columns, dict) and "name" in columns:
                new_name = ovlog.ovs_json_dumps(columns["name"])
            short = row_uuid[:8]
            if old_name is None:
                if new_name is not None:
                    out.append(f"  table {table} insert row {new_name} ({short}):\n")
                else:
                    out.append(f"  table {table} insert row {short}:\n")
            else:
                out.append(f"  table {table} row {old_name} ({short})"
                           f"{' diff' if diff else ''}:\n")
            if isinstance(columns, dict):
                if verbosity > 1:
                    for column in ovlog.shash_order(columns):
                        value = columns[column]
                        col = tschema.columns.get(column) if tschema is not None else None
                        text = None
                        if col is not None:
                            try:
                                text = datum_to_string(col.type,
                                                       datum_from_json(col.type, value))
                            except OvsdbError:
                                text = None
                        if text is None:
                            text = ovlog.ovs_json_dumps(value)
                        out.append(f"    {column}={text}\n")
                if new_name is not None and (old_name is None or old_name != new_name):
                    names[row_uuid] = new_name
                elif old_name is None:
                    names[row_uuid] = short
            elif columns is None:
                out.append("    delete row\n")
                names.pop(row_uuid, None)
    _out("".join(out))


def cmd_show_log(opts: Options, args: list[str]) -> int:
    from hwvtep.ovsdb import log as ovlog
    from hwvtep.ovsdb.errors import OvsdbError
    from hwvtep.server import storage as st

    path = _arg(args, 0, DEFAULT_DB)
    try:
        data, magic = st.read_log(path)
    except st.StorageError as e:
        raise _storage_error(e) from None
    if magic != ovlog.OVSDB_MAGIC:
        raise Fatal("clustered databases are not supported")
    names: dict[str, str] = {}
    schema: DatabaseSchema | None = None
    offset = 0
    i = 0
    while True:
        r = ovlog.read_record(data, offset, path)
        if r is None:
            break
        if isinstance(r, ovlog.LogError):
            raise Fatal(str(r))
        offset = r.end
        if i == 0:
            try:
                sf = st.parse_schema_json(ovlog.ovs_normalize_numbers(r.json))
            except OvsdbError as e:
                _out(f"record {i}:")
                raise Fatal(ovlog.error_to_string(e)) from None
            schema = sf.schema
            _out(f'record {i}: "{schema.name}" schema, version="{sf.version}", '
                 f'cksum="{sf.cksum}"\n')
        else:
            line = f"record {i}:"
            date = r.json.get("_date")
            if isinstance(date, int) and not isinstance(date, bool):
                line += _format_date(date)
            comment = r.json.get("_comment")
            if isinstance(comment, str):
                line += f' "{comment}"'
            _out(line)
            if opts.more > 0:
                _print_db_changes(r.json, names, schema, opts.more)
        _out("\n")
        i += 1
    return 0


def cmd_help(opts: Options, args: list[str]) -> int:
    _usage()
    return 0


def cmd_list_commands(opts: Options, args: list[str]) -> int:
    lines = ["The available commands are:"]
    for name, (_, _, _, usage) in COMMANDS.items():
        lines.append(f"  {name:<23} {usage}")
    _out("\n".join(lines) + "\n")
    return 0


_BIG = 2**31 - 1

# name -> (min args, max args, handler, usage)
COMMANDS: dict[str, tuple[int, int, Callable[[Options, list[str]], int], str]] = {
    "create": (0, 2, cmd_create, "[db [schema]]"),
    "create-cluster": (3, 3, cmd_unsupported, "db contents local"),
    "join-cluster": (4, _BIG, cmd_unsupported, "db name local remote..."),
    "compact": (0, 2, cmd_compact, "[db [dst]]"),
    "convert": (0, 3, cmd_convert, "[db [schema [dst]]]"),
    "needs-conversion": (0, 2, cmd_needs_conversion, ""),
    "db-name": (0, 1, cmd_db_name, "[db]"),
    "db-version": (0, 1, cmd_db_version, "[db]"),
    "db-cksum": (0, 1, cmd_db_cksum, "[db]"),
    "db-cid": (1, 1, cmd_cluster, "db"),
    "db-sid": (1, 1, cmd_cluster, "db"),
    "db-local-address": (1, 1, cmd_cluster, "db"),
    "db-is-clustered": (1, 1, cmd_db_is_clustered, "db"),
    "db-is-standalone": (1, 1, cmd_db_is_standalone, "db"),
    "schema-name": (0, 1, cmd_schema_name, "[schema]"),
    "schema-version": (0, 1, cmd_schema_version, "[schema]"),
    "schema-cksum": (0, 1, cmd_schema_cksum, "[schema]"),
    "query": (1, 2, cmd_query, "[db] trns"),
    "transact": (1, 2, cmd_transact, "[db] trns"),
    "show-log": (0, 1, cmd_show_log, "[db]"),
    "check-cluster": (1, _BIG, cmd_unsupported, "db..."),
    "compare-versions": (3, 3, cmd_compare_versions, "a op b"),
    "help": (0, _BIG, cmd_help, ""),
    "list-commands": (0, _BIG, cmd_list_commands, ""),
    "cluster-to-standalone": (2, 2, cmd_unsupported, "db clusterdb"),
}


def _run(argv: list[str]) -> int:
    opts, args = parse_options(argv)
    if not args:
        raise Fatal("missing command name; use --help for help")
    name = args[0]
    entry = COMMANDS.get(name)
    if entry is None:
        raise Fatal(f"unknown command '{name}'; use --help for help")
    lo, hi, handler, _ = entry
    n = len(args) - 1
    if n < lo:
        raise Fatal(f"'{name}' command requires at least {lo} arguments")
    if n > hi:
        raise Fatal(f"'{name}' command takes at most {hi} arguments")
    return handler(opts, args[1:])


def main(argv: list[str] | None = None) -> int:
    """Run ``ovsdb-tool`` with *argv* (the arguments after the program name)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = _run(args)
    except Fatal as e:
        _flush()
        sys.stderr.write(f"{PROGRAM}: {e.message}\n")
        code = 1
    except _Exit as e:
        code = e.code
    except BrokenPipeError:
        code = 1
    _flush()
    return code


def _flush() -> None:
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
