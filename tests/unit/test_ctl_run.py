"""`hwvtep ctl` runs against an in-process database (our core's transaction engine).

No sockets: the runner's session is replaced by one that executes ``transact`` requests
on a `hwvtep.ovsdb.database.Database`. This pins the transaction the commands build
(verification ``wait``s, named-uuids, partial updates, nothing sent when nothing
changes), the try-again loop when a verification fails, option and command-line errors,
and the table printer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hwvtep.ctl import commands as cmds
from hwvtep.ctl import main as ctl
from hwvtep.ctl.table import OutTable, format_table
from hwvtep.ctl.values import UUID_TYPE, CtlError, Schema, Type
from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.monitor import create_monitor
from hwvtep.ovsdb.schema import bundled_schema
from hwvtep.ovsdb.transaction import execute


class LocalSession:
    """Answers like a server, from a Database; records every request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.requests: list[tuple[str, Any]] = []
        self.before_commit: list[Any] = []  # transactions to slip in before a commit

    def send_many(self, requests: list[tuple[str, list[Any]]]) -> list[Any]:
        self._replies = [self.call(m, p) for m, p in requests]
        return list(range(len(requests)))

    def wait_reply(self, rid: int) -> tuple[Any, Any]:
        return self._replies[rid]

    def call(self, method: str, params: list[Any]) -> tuple[Any, Any]:
        self.requests.append((method, params))
        if method == "monitor_cond":  # (the tables whose row order shows)
            monitor = create_monitor(self.db.schema, method, params)
            return monitor.reply(self.db.tables), None
        assert method == "transact"
        is_write = any(op.get("op") not in ("select",) for op in params[1:])
        if is_write and self.before_commit:
            self.apply(self.before_commit.pop(0))
        return self.apply(params), None

    def apply(self, params: list[Any]) -> Any:
        outcome = execute(self.db, params)
        if outcome.changes:
            self.db.apply(outcome.changes)
        return outcome.result


@pytest.fixture
def db() -> Database:
    d = Database(bundled_schema("hardware_vtep"))
    outcome = execute(d, ["hardware_vtep", {"op": "insert", "table": "Global", "row": {}}])
    assert outcome.changes
    d.apply(outcome.changes)
    return d


def run(db: Database, *argv: str, session: LocalSession | None = None
        ) -> tuple[str, LocalSession]:
    """Run one command line; returns stdout and the session used."""
    sess = session or LocalSession(db)
    log = ctl.Log()
    opts, rest = ctl.parse_options(list(argv), log)
    commands = cmds.parse_commands(rest, opts.local)
    schema = Schema(ctl._bundled_schema())
    env = cmds.Env(schema, {t: (cmds.RowId(c),) for t, c in
                            ctl.vtep.VTEP_ROW_IDS.items()}, ctl.SHOW_TABLES,
                   lambda m, s: None, False)
    needs, plan = ctl.prerequisites(env, commands)
    runner = ctl.Runner(opts, commands, env, needs, "local", "vtep-ctl: test", plan)
    runner.session = sess
    runner.fetch()
    runner.loop()
    text = "".join(format_table(c.table, opts.style) if c.table is not None
                   else "".join(c.output) for c in commands)
    return text, sess


def commits(sess: LocalSession) -> list[list[Any]]:
    return [p for m, p in sess.requests
            if m == "transact" and any(op.get("op") != "select" for op in p[1:])]


def test_reads_send_no_transaction(db: Database) -> None:
    out, sess = run(db, "list-ps", "--", "list-ls")
    assert out == ""
    assert commits(sess) == []
    # one round trip of selects: no row order shows in these commands' output
    assert [m for m, _ in sess.requests] == ["transact"]
    _, sess = run(db, "list-ls", "--", "--columns=name", "find", "Logical_Router")
    assert [m for m, _ in sess.requests] == ["monitor_cond", "transact"]
    assert list(sess.requests[0][1][2]) == ["Logical_Router"]


def test_add_ps_verifies_global_switches_and_names_new_rows(db: Database) -> None:
    _, sess = run(db, "add-ps", "a")
    (txn,) = commits(sess)
    ops = txn[1:]
    waits = [op for op in ops if op["op"] == "wait"]
    assert waits and waits[0]["table"] == "Global" and waits[0]["columns"] == ["switches"]
    assert waits[0]["until"] == "==" and waits[0]["timeout"] == 0
    insert = next(op for op in ops if op["op"] == "insert")
    assert insert["table"] == "Physical_Switch" and insert["row"] == {"name": "a"}
    update = next(op for op in ops if op["op"] == "update")
    assert update["row"]["switches"] == ["named-uuid", insert["uuid-name"]]
    assert ops[-1] == {"op": "comment", "comment": "vtep-ctl: test"}
    assert run(db, "list-ps")[0] == "a\n"


def test_verification_failure_runs_the_commands_again(db: Database) -> None:
    sess = LocalSession(db)
    # Someone else adds switch "b" between our read and our commit.
    sess.before_commit.append(["hardware_vtep",
                               {"op": "insert", "table": "Physical_Switch", "uuid-name": "b",
                                "row": {"name": "b"}},
                               {"op": "mutate", "table": "Global", "where": [],
                                "mutations": [["switches", "insert",
                                               ["set", [["named-uuid", "b"]]]]]}])
    run(db, "add-ps", "a", session=sess)
    assert len(commits(sess)) == 2  # the first failed its wait, the second succeeded
    assert run(db, "list-ps")[0] == "a\nb\n"  # b was not lost


def test_unchanged_write_is_not_sent(db: Database) -> None:
    run(db, "add-ls", "x")
    _, sess = run(db, "--may-exist", "add-ls", "x")
    assert commits(sess) == []
    _, sess = run(db, "set", "Logical_Switch", "x", "name=x")
    assert commits(sess) == []


def test_last_command_set_with_key_is_a_partial_update(db: Database) -> None:
    run(db, "add-ls", "x")
    _, sess = run(db, "set", "Logical_Switch", "x", "other_config:a=1")
    (txn,) = commits(sess)
    mutate = next(op for op in txn[1:] if op["op"] == "mutate")
    assert mutate["mutations"] == [["other_config", "insert", ["map", [["a", "1"]]]]]
    assert not [op for op in txn[1:] if op["op"] == "wait"]
    # Not the last command: read, verify, write the whole column.
    _, sess = run(db, "set", "Logical_Switch", "x", "other_config:a=2", "--", "list-ls")
    (txn,) = commits(sess)
    assert [op["op"] for op in txn[1:]] == ["wait", "update", "comment"]
    assert run(db, "get", "Logical_Switch", "x", "other_config")[0] == '{a="2"}\n'


def test_dry_run_aborts(db: Database) -> None:
    out, sess = run(db, "--dry-run", "create", "Logical_Switch", "name=d")
    (txn,) = commits(sess)
    assert txn[-1] == {"op": "abort"}
    assert len(out.strip()) == 36  # the UUID the server gave the row
    assert run(db, "list-ls")[0] == ""


def test_create_prints_the_real_uuid_and_symbols_resolve(db: Database) -> None:
    out, _ = run(db, "--id=@m", "create", "Manager", 'target="tcp:1.2.3.4"', "--", "add",
                 "Global", ".", "managers", "@m")
    uuid = out.strip()
    assert run(db, "get", "Global", ".", "managers")[0] == f"[{uuid}]\n"
    assert run(db, "get-manager")[0] == "tcp:1.2.3.4\n"
    with pytest.raises(CtlError, match=r'row id "@n" is referenced but never created'):
        run(db, "add", "Global", ".", "managers", "@n")


def test_global_row_is_created_when_missing() -> None:
    d = Database(bundled_schema("hardware_vtep"))
    _, sess = run(d, "list-ps")
    (txn,) = commits(sess)
    assert {"op": "wait", "table": "Global", "where": [], "timeout": 0, "until": "==",
            "rows": []} in txn
    assert len(d.tables["Global"]) == 1


def test_exit_status_commands(db: Database) -> None:
    from hwvtep.ctl.vtep import ExitStatus

    with pytest.raises(ExitStatus) as e:
        run(db, "ps-exists", "nope")
    assert e.value.status == 2


@pytest.mark.parametrize(("argv", "message"), [
    ([], "missing command name (use --help for help)"),
    (["--if-exists"], "missing command name (use --help for help)"),
    (["bogus"], "unknown command 'bogus'; use --help for help"),
    (["list-ps", "x"], "'list-ps' command takes at most 0 arguments"),
    (["add-ps", "a", "--may-exist"], "'add-ps' command takes at most 1 arguments (note "
     'that options must precede command names and follow a "--" argument)'),
    (["add-ps"], "'add-ps' command requires at least 1 arguments"),
    (["--if-exists", "list-ps"], "'list-ps' command has no '--if-exists' option"),
    (["--", "--if", "get", "Global", "."], "'get' command has no '--if' option"),
    (["--", "--columns", "list", "Global"],
     "missing argument to '--columns' option on 'list' command"),
    (["--", "--all=1", "destroy", "Global"],
     "'--all' option on 'destroy' does not accept an argument"),
    (["--", "--all", "--all", "destroy", "Global"], "'--all' option specified multiple times"),
    (["--d", "list-ps"], "option '--d' is ambiguous; possibilities: '--db' '--dry-run' "
     "'--data'"),
    (["--bogus"], "unrecognized option '--bogus'"),
    (["--db"], "option '--db' requires an argument"),
    (["--oneline=1"], "option '--oneline' doesn't allow an argument"),
    (["-x"], "invalid option -- 'x'"),
    (["-t"], "option requires an argument -- 't'"),
    (["-t", "0", "list-ps"], "value 0 on -t or --timeout is invalid"),
    (["--format=x"], 'unknown output format "x"'),
    (["-dx"], 'unknown data format "x"'),
])
def test_command_line_errors(argv: list[str], message: str) -> None:
    with pytest.raises(CtlError) as e:
        opts, rest = ctl.parse_options(argv, ctl.Log())
        cmds.parse_commands(rest, opts.local)
    assert str(e.value) == message


def test_options_and_abbreviations() -> None:
    opts, rest = ctl.parse_options(["--one", "--dry", "-t5", "-f", "csv", "--bare",
                                    "--id", "@a", "--if-ex", "get", "x"], ctl.Log())
    assert (opts.oneline, opts.dry_run, opts.timeout) == (True, True, 5)
    assert (opts.style.format, opts.style.cell_format, opts.style.headings) == (
        "list", "bare", False)
    assert opts.local == {"--id": "@a", "--if-exists": None}
    assert rest == ["get", "x"]
    opts, rest = ctl.parse_options(["--", "--oneline"], ctl.Log())
    assert rest == ["--oneline"] and not opts.oneline


def test_table_formats() -> None:
    st = Type.from_json({"key": "string", "min": 0, "max": "unlimited"})
    tbl = OutTable(["_uuid", "name", "ips"])
    tbl.rows.append([(UUID_TYPE, ("01234567-89ab-cdef-0123-456789abcdef",)),
                     (Type.from_json("string"), ('a,"b"',)), (st, ("é", "x"))])
    style = ctl.Style()
    from hwvtep.ctl import table

    def fmt(name: str) -> str:
        table._first_table[0] = True  # the first table of a run has no blank line before
        style.format = name
        return format_table(tbl, style)

    assert fmt("csv") == (
        '_uuid,name,ips\n01234567-89ab-cdef-0123-456789abcdef,"""a,\\""b\\""""",'
        '"[""é"", x]"\n')
    assert fmt("table").splitlines()[1:] == [
        "------------------------------------ --------- ---------",
        '01234567-89ab-cdef-0123-456789abcdef "a,\\"b\\"" ["é", x]']
    assert json.loads(fmt("json")) == {
        "headings": ["_uuid", "name", "ips"],
        "data": [[["uuid", "01234567-89ab-cdef-0123-456789abcdef"], 'a,"b"',
                  ["set", ["é", "x"]]]]}
    assert '<td><a name="01234567-89ab-cdef-0123-456789abcdef">01234567</a></td>' in \
        fmt("html")
    table._first_table[0] = False
    style.format = "list"
    assert format_table(tbl, style).startswith("\n_uuid               : 0123")


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("add-ucast-remote", "wait-until", "--db=DATABASE", "--max-column-width"):
        assert word in out
    assert ctl.main(["--version"]) == 0
    assert capsys.readouterr().out.endswith("DB Schema 1.7.0\n")


def test_update2_diffs_apply_as_ovsdb_server_means_them() -> None:
    """While it waits (wait-until), the runner keeps its copy current from ``update2``
    notifications, whose ``modify`` holds diffs: a single value is replaced, a set takes
    the symmetric difference, a map drops a pair the diff repeats, takes a new value for
    a key it holds, adds a new key."""
    scalar = Type.from_json("string")
    assert ctl._apply_diff(scalar, ("a",), "b") == ("b",)
    optional = Type.from_json({"key": "integer", "min": 0, "max": 1})
    assert ctl._apply_diff(optional, (5,), ["set", [5, 7]]) == (7,)
    assert ctl._apply_diff(optional, (), 7) == (7,)
    strings = Type.from_json({"key": "string", "min": 0, "max": "unlimited"})
    assert ctl._apply_diff(strings, ("a", "b"), ["set", ["b", "c"]]) == ("a", "c")
    smap = Type.from_json({"key": "string", "value": "string", "min": 0,
                           "max": "unlimited"})
    old = (("a", "1"), ("b", "2"), ("c", "3"))
    diff = ["map", [["a", "1"], ["b", "9"], ["d", "4"]]]
    assert ctl._apply_diff(smap, old, diff) == (("b", "9"), ("c", "3"), ("d", "4"))
