"""`hwvtep ovsdb-client` without a server: its command line, remotes, JSON in and out,
and how monitor updates are printed (the expected texts are ovsdb-client 3.1's output for
the same updates)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hwvtep.client.remote import Remote
from hwvtep.ctl import ovsdb_client as oc
from hwvtep.ctl import table as tbl_mod
from hwvtep.ctl.table import JsonCell, OutTable, format_table
from hwvtep.ovsdb.jsonutil import ovs_object_order
from hwvtep.ovsdb.schema import DatabaseSchema, bundled_schema


@pytest.fixture(autouse=True)
def fresh_printer() -> Iterator[None]:
    tbl_mod._first_table[0] = True
    yield
    tbl_mod._first_table[0] = True


def fatal_message(argv: list[str]) -> str:
    with pytest.raises(oc.Fatal) as e:
        oc.parse_options(argv)
    return str(e.value)


# --- options -------------------------------------------------------------------------------


def test_options_anywhere_abbreviated_and_in_clusters() -> None:
    opts, args = oc.parse_options(["dump", "--form=csv", "tcp:1.2.3.4", "-dbare", "--no-h",
                                   "--", "--pretty"])
    assert args == ["dump", "tcp:1.2.3.4", "--pretty"]
    assert (opts.style.format, opts.style.cell_format, opts.style.headings) == \
        ("csv", "bare", False)
    opts, args = oc.parse_options(["-t", "5", "--bare", "-f", "json", "monitor", "-"])
    assert opts.timeout == 5 and args == ["monitor", "-"]
    assert (opts.style.format, opts.style.cell_format) == ("json", "bare")
    opts, _ = oc.parse_options(["--pretty", "--max-column-width=12x", "--timestamp",
                                "--no-leader-only", "--db-change-aware"])
    assert opts.style.pretty and opts.style.max_column_width == 12 and opts.timestamp
    assert not opts.leader_only and opts.db_change_aware == 1
    assert oc.parse_options([])[0].style.format == "table"  # not vtep-ctl's "list"


@pytest.mark.parametrize(("argv", "message"), [
    (["--bogus"], "unrecognized option '--bogus'"),
    (["--bogus=1"], "unrecognized option '--bogus=1'"),
    (["-x"], "invalid option -- 'x'"),
    (["-f"], "option requires an argument -- 'f'"),
    (["--format"], "option '--format' requires an argument"),
    (["--pretty=yes"], "option '--pretty' doesn't allow an argument"),
    (["--fo=json"], "option '--fo=json' is ambiguous; possibilities: '--force' '--format'"),
    (["--no"], "option '--no' is ambiguous; possibilities: '--no-db-change-aware' "
               "'--no-leader-only' '--no-self-confinement' '--no-chdir' '--no-headings'"),
    (["-t", "0"], "value 0 on -t or --timeout is invalid"),
    (["--timeout=-3"], "value -3 on -t or --timeout is invalid"),
    (["-f", "xml"], 'unknown output format "xml"'),
    (["--data=xml"], 'unknown data format "xml"'),
])
def test_option_errors(argv: list[str], message: str) -> None:
    assert fatal_message(argv) == message


def test_timeout_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVS_CTL_TIMEOUT", "7")
    assert oc.parse_options(["list-dbs"])[0].timeout == 7
    assert oc.parse_options(["-t", "2", "list-dbs"])[0].timeout == 2


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert oc.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("list-dbs", "transact", "monitor-cond-since", "backup", "lock"):
        assert command in out
    assert oc.main(["-V"]) == 0
    assert capsys.readouterr().out.startswith("ovsdb-client (hwvtep) ")


def test_command_errors_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    assert oc.main([]) == 1
    assert capsys.readouterr().err == "ovsdb-client: missing command name; use --help for help\n"
    assert oc.main(["frob"]) == 1
    assert capsys.readouterr().err == \
        "ovsdb-client: unknown command 'frob'; use --help for help\n"
    assert oc.main(["transact", "[1"]) == 1
    assert capsys.readouterr().err == \
        'ovsdb-client: "[1": line 0, column 3, byte 3: unexpected end of input\n'
    assert oc.main(["query", '{"a":1}']) == 1
    assert capsys.readouterr().err == "ovsdb-client: not a valid OVSDB query\n"


# --- remotes -------------------------------------------------------------------------------


def test_remotes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OVS_RUNDIR", "/run/x")
    opts = oc.Options()
    assert oc.default_remote() == "unix:/run/x/db.sock"
    assert oc.make_remote("unix:db.sock", opts) == Remote("unix", path="/run/x/db.sock")
    assert oc.make_remote("unix:/a/b", opts) == Remote("unix", path="/a/b")
    assert oc.make_remote("tcp:10.0.0.1:6641", opts) == Remote("tcp", "10.0.0.1", 6641)
    assert oc.make_remote("tcp:[::1]:6641", opts) == Remote("tcp", "::1", 6641)
    assert oc.make_remote("tcp:10.0.0.1", opts) == Remote("tcp", "10.0.0.1", 6640)
    assert "The default OVSDB port number has changed from 6632 to 6640" in \
        capsys.readouterr().err
    with pytest.raises(oc.Fatal, match=r'^failed to connect or listen to "tcp:1\.2\.3\.4:x" '
                       r"\(Address family not supported by protocol\)$"):
        oc.make_remote("tcp:1.2.3.4:x", opts)
    assert '1.2.3.4:x: bad port number "x"' in capsys.readouterr().err
    with pytest.raises(oc.Fatal, match=r"^failed to connect to \"ssl:1\.2\.3\.4:5\" "
                       r"\(Protocol not available\)$"):
        oc.make_remote("ssl:1.2.3.4:5", opts)
    err = capsys.readouterr().err
    assert "Private key must be configured to use SSL" in err
    assert "CA certificate must be configured to use SSL" in err
    with pytest.raises(oc.Fatal, match="Address family not supported"):
        oc.make_remote("frob:1", opts)
    assert oc._split_remotes(" tcp:1.1.1.1:1, ,unix:/x,cid:0") == ["tcp:1.1.1.1:1", "unix:/x"]


# --- JSON ----------------------------------------------------------------------------------


def test_values_sent_as_ovs_sends_them() -> None:
    assert oc.parse_json('[1.0, 2.5, 1e20, 0.1234567890123456789, "x"]') == \
        [1, 2.5, 1e20, 0.123456789012346, "x"]
    assert oc.parse_json('{"a": [true, null, -0.0]}') == {"a": [True, None, 0]}
    # Read by OVS's own parser when the C accelerator would read it otherwise.
    with pytest.raises(oc.Fatal, match="invalid character 'N'"):
        oc.parse_json("[NaN]")
    with pytest.raises(oc.Fatal) as e:
        oc.parse_json('"s"')
    assert str(e.value) == '""s"": line 0, column 2, byte 2: syntax error at beginning of input'


def test_hash_order_output() -> None:
    obj = {name: n for n, name in enumerate(["tables", "name", "version", "cksum", "x"])}
    text = oc.dumps_hash_order(obj)
    keys = ovs_object_order(list(obj))
    assert text == "{" + ",".join(f'"{k}":{obj[k]}' for k in keys) + "}"
    walked = oc.Walked([("b", 1.5), ("a", [1, "é\n"])])
    assert oc.dumps_hash_order(walked) == '{"b":1.5,"a":[1,"é\\n"]}'


def test_backup_schema_record_members_in_ovs_order() -> None:
    """ovsdb_schema_to_json() adds name, version, cksum, tables; columns after isRoot;
    a type's key before its value. The record walks each object's hash table."""
    schema = bundled_schema("hardware_vtep")
    raw: dict[str, Any] = {"name": schema.name, "version": schema.version}
    j = oc._schema_file_json(oc.Schema(raw, schema))
    assert list(j)[:2] == ["name", "version"]
    ps = j["tables"]["Physical_Switch"]
    assert list(ps) == ["columns", "indexes"]
    assert list(j["tables"]["Global"]) == ["isRoot", "columns", "maxRows"]
    assert list(ps["columns"]["tunnel_ips"]["type"]) == ["key", "min", "max"]
    text = oc.dumps_hash_order(j)
    assert text.startswith("{") and '"tables":{' in text


# --- monitor printing ----------------------------------------------------------------------


LS = "af8c99cc-5a66-4400-8fd9-a244ba2ee1c2"
BLUE = "53885447-e9e9-44b0-8f3f-e2e39df462f3"
GREEN = "9495c1ab-0e83-465b-b9d9-e7bba626b0be"
V1, V2, V3, V4 = ("ccdcacb7-dcc5-441e-97ff-a9c655b80d71",
                  "4328fa9d-1881-4e65-b946-b81666491372",
                  "ef538ca2-28cb-4e51-9630-99ed5130d7ab",
                  "1eed2475-e7a0-4336-bb09-af753d44ed26")


def _row(name: str, key: Any, version: str) -> dict[str, Any]:
    return {"description": "", "name": name, "other_config": ["map", []],
            "replication_mode": ["set", []], "tunnel_key": key, "_version": ["uuid", version]}


def printer(capsys: pytest.CaptureFixture[str], columns: list[str] | None = None,
            **style: Any) -> tuple[oc.MonitorPrinter, oc.Options]:
    opts = oc.Options()
    for k, v in style.items():
        setattr(opts.style, k, v)
    sj = bundled_schema("hardware_vtep")
    schema = oc.Schema({"version": sj.version}, DatabaseSchema.from_json(sj.to_json()))
    ts = schema.schema.tables["Logical_Switch"]
    mt = oc.Monitored(ts)
    oc._parse_monitor_columns(",".join(columns or []), _no_rpc(), "hardware_vtep", schema,
                              mt)
    return oc.MonitorPrinter(oc.Ctx(opts), schema, [mt]), opts


def _no_rpc() -> oc.Rpc:
    rpc = oc.Rpc.__new__(oc.Rpc)
    rpc.name = "unix:/x"
    return rpc


def test_monitor_update_table(capsys: pytest.CaptureFixture[str]) -> None:
    p, _ = printer(capsys)
    p.updates({"Logical_Switch": {BLUE: {"new": _row("blue", 5001, V2)},
                                  LS: {"new": _row("red", 5000, V1)}}}, True)
    p.updates({"Logical_Switch": {
        LS: {"old": {"tunnel_key": 5000, "_version": ["uuid", V1]},
             "new": _row("red", 7, V3)},
        GREEN: {"new": _row("green", ["set", []], V4)}}}, False)
    p.updates({"Logical_Switch": {GREEN: {"old": _row("green", ["set", []], V4)}}}, False)
    assert capsys.readouterr().out == f"""\
row                                  action  description name other_config replication_mode \
tunnel_key _version
------------------------------------ ------- ----------- ---- ------------ ---------------- \
---------- ------------------------------------
{BLUE} initial ""          blue {{}}           []               5001       {V2}
{LS} initial ""          red  {{}}           []               5000       {V1}

row                                  action description name  other_config replication_mode \
tunnel_key _version
------------------------------------ ------ ----------- ----- ------------ ---------------- \
---------- ------------------------------------
{LS} old                                                    5000       {V1}
                                     new    ""          red   {{}}           []               \
7          {V3}
{GREEN} insert ""          green {{}}           []               []         {V4}

row                                  action description name  other_config replication_mode \
tunnel_key _version
------------------------------------ ------ ----------- ----- ------------ ---------------- \
---------- ------------------------------------
{GREEN} delete ""          green {{}}           []               []         {V4}
"""


def test_monitor_rows_in_hash_order(capsys: pytest.CaptureFixture[str]) -> None:
    """Rows come out in the order OVS walks the update object, not as received."""
    p, _ = printer(capsys, ["name"])
    uuids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(12)]
    p.updates({"Logical_Switch": {u: {"new": {"name": f"n{i}"}}
                                  for i, u in enumerate(uuids)}}, True)
    lines = capsys.readouterr().out.splitlines()[2:]
    assert [ln.split()[0] for ln in lines] == ovs_object_order(uuids)


def test_monitor2_and_json_cells(capsys: pytest.CaptureFixture[str]) -> None:
    p, _ = printer(capsys, ["name", "tunnel_key"], format="json")
    p.updates2({"Logical_Switch": {LS: {"modify": {"tunnel_key": 7}},
                                   GREEN: {"delete": None}}})
    rows = {LS: f'["{LS}","modify",null,7]', GREEN: f'["{GREEN}","delete",null,null]'}
    assert capsys.readouterr().out == (
        '{"data":[' + ",".join(rows[u] for u in ovs_object_order([LS, GREEN])) + '],'
        '"headings":["row","action","name","tunnel_key"]}\n')


def test_monitor_bad_updates(capsys: pytest.CaptureFixture[str]) -> None:
    p, _ = printer(capsys, ["name"])
    p.updates([], False)
    p.updates({"Logical_Switch": 5}, False)
    p.updates({"Logical_Switch": {LS: 5}}, False)
    p.updates({"Logical_Switch": {LS: {"old": None, "new": {"name": "x"}}}}, False)
    p.updates2({"Logical_Switch": {LS: {"delete": {"name": "x"}}}})
    err = capsys.readouterr().err.splitlines()
    assert err == ["ovsdb-client: <table-updates> is not object",
                   "ovsdb-client: <table-update> for table Logical_Switch is not object",
                   "ovsdb-client: <row-update> is not object",
                   "ovsdb-client: <row> is not object",
                   "ovsdb-client: delete method does not expect <row>"]


def test_monitor_column_requests() -> None:
    sj = bundled_schema("hardware_vtep")
    schema = oc.Schema({}, sj)
    mt = oc.Monitored(sj.tables["Logical_Switch"])
    mr = oc._parse_monitor_columns("!initial,!modify", _no_rpc(), "db", schema, mt)
    assert mr == {"columns": ["description", "name", "other_config", "replication_mode",
                              "tunnel_key", "_version"],
                  "select": {"initial": False, "insert": True, "delete": True,
                             "modify": False}}
    with pytest.raises(oc.Fatal, match=r'^unix:/x: column "name" mentioned multiple times$'):
        oc._parse_monitor_columns("name", _no_rpc(), "db", schema, mt)
    with pytest.raises(oc.Fatal, match='does not have a column named "zzz"'):
        oc._parse_monitor_columns("zzz", _no_rpc(), "db", schema, oc.Monitored(mt.table))


# --- the table printer's additions ---------------------------------------------------------


def test_caption_timestamp_and_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(time, "time", lambda: 1795582511.5867)
    assert tbl_mod.format_timestamp(1795582511.5867) == "2026-11-25 04:55:11.586"
    t = OutTable(["_uuid", "v"], caption="T table", timestamp=True)
    t.rows.append(["0000000a-0000-4000-8000-000000000000", JsonCell(["set", [1, 2]])])
    t.rows.append(["x,y", None])
    style = oc.Options().style
    assert format_table(t, style) == (
        "2026-11-25 04:55:11.586\nT table\n"
        "_uuid                                v\n"
        "------------------------------------ -------------\n"
        '0000000a-0000-4000-8000-000000000000 ["set",[1,2]]\n'
        "x,y\n")
    style.format = "csv"
    assert format_table(t, style).startswith("\n2026-11-25 04:55:11.586\nT table\n_uuid,v\n")
    style.format = "html"
    assert format_table(t, style).startswith(
        "2026-11-25 04:55:11.586\n<table border=1>\n    <caption>T table</caption>\n")
    style.format = "json"
    assert format_table(t, style) == (
        '{"caption":"T table","data":[["0000000a-0000-4000-8000-000000000000",'
        '["set",[1,2]]],["x,y",null]],"headings":["_uuid","v"],'
        '"time":"2026-11-25 04:55:11.586"}\n')


def test_typed_json_cells_fall_back_to_json() -> None:
    from hwvtep.ctl.values import Type

    one = Type.from_json({"key": "integer", "min": 0, "max": 1})
    t = OutTable(["a", "b", "c"])
    t.rows.append([JsonCell(["set", [5000, 7]], one), JsonCell(7, one),
                   JsonCell(["map", [["k", "v"]]], Type.from_json(
                       {"key": "string", "value": "string", "min": 0, "max": "unlimited"}))])
    style = oc.Options().style
    assert format_table(t, style).splitlines()[-1] == '["set",[5000,7]] 7 {k=v}'
    style.cell_format = "bare"
    assert format_table(t, style).splitlines()[-1] == '["set",[5000,7]] 7 k=v'
