"""Real Open vSwitch clients against `hwvtep ovsdb-server`, compared with ovsdb-server 3.1.

Every command runs once against our server and once against OVS's on a fresh database made
from the same schema file; outputs, error messages and exit codes must match after masking
what differs between any two runs (UUIDs, log timestamps, paths). The C clients (vtep-ctl,
ovs-vsctl, ovsdb-client) use the C IDL (``_Server`` monitor, ``monitor_cond_since``,
``set_db_change_aware``); the Python IDL and ovsdbapp are exercised too, as is a raw
``nc | jq`` session like the one in the walkthrough.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from srvhelp import (
    VSWITCH_SCHEMA,
    VTEP_SCHEMA,
    Rpc,
    RunningServer,
    mask_uuids,
    needs_ovs,
    normalize_output,
    sort_tree,
)

pytestmark = [pytest.mark.ovs, needs_ovs]


@pytest.fixture
def pair(server_factory: Any) -> tuple[RunningServer, RunningServer]:
    return server_factory("hwvtep"), server_factory("ovs")


@pytest.fixture
def vswitch_pair(server_factory: Any) -> tuple[RunningServer, RunningServer]:
    return server_factory("hwvtep", VSWITCH_SCHEMA), server_factory("ovs", VSWITCH_SCHEMA)


def run_both(pair: tuple[RunningServer, RunningServer], argv: list[str],
             ) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """Run *argv* against both servers ("{db}" stands for the server's unix remote,
    "{tcp}" for its tcp one)."""
    outs = []
    for srv in pair:
        cp = srv.run(*(a.replace("{db}", srv.unix).replace("{tcp}", srv.tcp) for a in argv),
                     check=False)
        outs.append((cp.returncode, normalize_output(cp.stdout, srv),
                     normalize_output(cp.stderr, srv)))
    return outs[0], outs[1]


def assert_same(pair: tuple[RunningServer, RunningServer], argv: list[str],
                expect_rc: int = 0) -> str:
    ours, theirs = run_both(pair, argv)
    assert ours == theirs, f"{argv}:\n ours:   {ours}\n theirs: {theirs}"
    assert ours[0] == expect_rc, f"{argv}: {ours}"
    return ours[1]


# ---- vtep-ctl ---------------------------------------------------------------------------

VTEP_WALKTHROUGH = """
add-ps ps0
set Physical_Switch ps0 tunnel_ips=10.0.0.1 description=hw-vtep
add-port ps0 p0
add-port ps0 p1
add-ls ls0
add-ls ls1
set Logical_Switch ls0 tunnel_key=5000
set Logical_Switch ls1 tunnel_key=5001 description=blue
bind-ls ps0 p0 100 ls0
bind-ls ps0 p1 0 ls0
bind-ls ps0 p1 200 ls1
add-ucast-remote ls0 00:11:22:33:44:55 10.0.0.2
add-ucast-remote ls0 00:11:22:33:44:56 vxlan_over_ipv4 10.0.0.3
add-ucast-remote ls1 00:11:22:33:44:55 10.0.0.2
add-mcast-remote ls0 unknown-dst 10.0.0.2
add-mcast-remote ls0 unknown-dst 10.0.0.3
add-ucast-local ls0 00:aa:bb:cc:dd:ee 10.0.0.1
add-mcast-local ls0 unknown-dst 10.0.0.1
list-ps
ps-exists ps0
list-ports ps0
list-ls
ls-exists ls1
list-bindings ps0 p0
list-bindings ps0 p1
list-remote-macs ls0
list-remote-macs ls1
list-local-macs ls0
get Logical_Switch ls0 tunnel_key name
list Physical_Switch ps0
list Logical_Switch ls1
find Physical_Locator dst_ip=10.0.0.3
--columns=name,tunnel_key list Logical_Switch ls0
del-ucast-remote ls0 00:11:22:33:44:55
del-mcast-remote ls0 unknown-dst 10.0.0.3
list-remote-macs ls0
del-ucast-local ls0 00:aa:bb:cc:dd:ee
clear-local-macs ls0
list-local-macs ls0
unbind-ls ps0 p0 100
list-bindings ps0 p0
del-port ps0 p1
list-ports ps0
clear-remote-macs ls0
clear-remote-macs ls1
del-ls ls0
list-ls
del-ps ps0
list-ps
"""

# Errors must be worded identically (they come from vtep-ctl, but only if the server's
# answers led it to the same place).
VTEP_ERRORS = """
add-ps ps0
add-port ps0 p0
add-port nosuch p9
del-ps nosuch
bind-ls ps0 p0 5000 ls0
bind-ls ps0 p0 10 nosuch
set Logical_Switch ls0 tunnel_key=abc
set Physical_Port p0 vlan_bindings:5000=@x
del-ls ls0
get Logical_Switch nosuch name
"""


def test_vtep_ctl_walkthrough_matches_ovs(pair: tuple[RunningServer, RunningServer]) -> None:
    for line in VTEP_WALKTHROUGH.strip().splitlines():
        args = shlex.split(line)
        assert_same(pair, ["vtep-ctl", "--db={db}", "--timeout=10", *args])
        if args[0] == "bind-ls" and args[-1] == "ls1":
            # Midway, when everything exists: the whole picture, ports in name order.
            show = assert_show_same(pair)
            assert "Physical_Switch ps0" in show and "200=ls1" in show, show

    # Nothing left but the Global row.
    assert assert_show_same(pair) == "<0>\n"
    # The same over tcp.
    assert_same(pair, ["vtep-ctl", "--db={tcp}", "add-ps", "ps-tcp", "--", "list-ps"])
    assert assert_same(pair, ["vtep-ctl", "--db={tcp}", "list-ps"]) == "ps-tcp\n"


def assert_show_same(pair: tuple[RunningServer, RunningServer]) -> str:
    ours, theirs = run_both(pair, ["vtep-ctl", "--db={db}", "--timeout=10", "show"])
    assert ours[0] == theirs[0] == 0, (ours, theirs)
    assert sort_tree(ours[1]) == sort_tree(theirs[1]), (ours, theirs)
    return ours[1]


def test_vtep_ctl_errors_match_ovs(pair: tuple[RunningServer, RunningServer]) -> None:
    for line in ["add-ps ps0", "add-port ps0 p0", "add-ls ls0",
                 "add-ucast-remote ls0 00:00:00:00:00:01 10.0.0.9"]:
        assert_same(pair, ["vtep-ctl", "--db={db}", *shlex.split(line)])
    failures = 0
    for line in VTEP_ERRORS.strip().splitlines():
        ours, theirs = run_both(pair, ["vtep-ctl", "--db={db}", "--timeout=10",
                                       *shlex.split(line)])
        assert ours == theirs, f"{line}:\n ours:   {ours}\n theirs: {theirs}"
        failures += ours[0] != 0
    # Every line above is an error: one passing by accident would compare nothing useful.
    assert failures == len(VTEP_ERRORS.strip().splitlines())


# ---- ovs-vsctl on the Open_vSwitch schema ------------------------------------------------

VSCTL_SCRIPT = """
init
add-br br0
add-port br0 eth0
add-port br0 eth1 tag=10
add-bond br0 bond0 eth2 eth3
set Interface eth0 type=internal
set Bridge br0 other_config:foo=bar external_ids:owner=test
set Open_vSwitch . external_ids:system-id=hv1
list-br
list-ports br0
list-ifaces br0
br-exists br0
port-to-br eth1
iface-to-br eth3
get Bridge br0 other_config
get Port eth1 tag
list Port eth1
find Port tag=10
--columns=name,type list Interface eth0
remove Bridge br0 other_config foo
clear Bridge br0 external_ids
add-br br1 br0 20
list-br
br-to-vlan br1
br-to-parent br1
del-br br1
del-port br0 eth1
list-ports br0
del-br br0
list-br
"""

VSCTL_ERRORS = """
add-br br0
br-exists nope
add-port nope p1
del-br nope
get Bridge br0 nosuchcolumn
set Port br0 tag=5000
"""


def test_ovs_vsctl_matches_ovs(vswitch_pair: tuple[RunningServer, RunningServer]) -> None:
    for line in VSCTL_SCRIPT.strip().splitlines():
        assert_same(vswitch_pair, ["ovs-vsctl", "--db={db}", "--no-wait", "--timeout=10",
                                   *shlex.split(line)])
        if line.startswith("add-br br1"):
            ours, theirs = run_both(vswitch_pair, ["ovs-vsctl", "--db={db}", "--no-wait",
                                                   "show"])
            assert ours[0] == 0 and sort_tree(ours[1]) == sort_tree(theirs[1]), (ours, theirs)
            assert "Port bond0" in ours[1] and "tag: 20" in ours[1], ours
    assert_same(vswitch_pair, ["ovs-vsctl", "--db={db}", "--no-wait", "add-br", "br0"])
    for line in VSCTL_ERRORS.strip().splitlines()[1:]:
        ours, theirs = run_both(vswitch_pair, ["ovs-vsctl", "--db={db}", "--no-wait",
                                               "--timeout=10", *shlex.split(line)])
        assert ours == theirs, f"{line}:\n ours:   {ours}\n theirs: {theirs}"
        assert ours[0] != 0, line


# ---- ovsdb-client -----------------------------------------------------------------------

def test_ovsdb_client_matches_ovs(pair: tuple[RunningServer, RunningServer]) -> None:
    insert = json.dumps(["hardware_vtep",
                         {"op": "insert", "table": "Global", "row": {
                             "switches": ["named-uuid", "ps"]}},
                         {"op": "insert", "table": "Physical_Switch", "uuid-name": "ps",
                          "row": {"name": "ps1", "tunnel_ips": ["set", ["1.1.1.1"]],
                                  "other_config": ["map", [["a", "b"]]]}}])
    scripts: list[tuple[list[str], int]] = [
        (["list-dbs", "{db}"], 0),
        (["list-tables", "{db}", "hardware_vtep"], 0),
        (["list-tables", "{db}", "_Server"], 0),
        (["get-schema", "{db}", "hardware_vtep"], 0),
        (["get-schema", "{db}", "_Server"], 0),
        (["get-schema-version", "{db}", "hardware_vtep"], 0),
        (["get-schema-cksum", "{db}", "hardware_vtep"], 0),
        (["get-schema", "{db}", "nosuch"], 1),
        (["transact", "{db}", insert], 0),
        (["transact", "{db}", '["hardware_vtep",{"op":"insert","table":"Nope","row":{}}]'], 0),
        (["transact", "{db}", '["hardware_vtep",{"op":"select","table":"Physical_Switch",'
                              '"where":[["name","==","ps1"]],"columns":["name","tunnel_ips",'
                              '"other_config"]}]'], 0),
        (["transact", "{db}", '["hardware_vtep",{"op":"mutate","table":"Physical_Switch",'
                              '"where":[],"mutations":[["tunnel_ips","insert",'
                              '["set",["2.2.2.2"]]]]},{"op":"abort"}]'], 0),
        (["transact", "{db}", '["nosuch"]'], 1),
        (["dump", "{db}", "hardware_vtep"], 0),
        (["dump", "{db}", "hardware_vtep", "Physical_Switch", "name", "tunnel_ips"], 0),
        (["--format=json", "dump", "{db}", "hardware_vtep"], 0),
        (["--format=csv", "dump", "{db}", "hardware_vtep", "Physical_Switch"], 0),
        (["--format=list", "dump", "{db}", "hardware_vtep", "Global"], 0),
        (["query", "{db}", '["hardware_vtep",{"op":"select","table":"Global","where":[]}]'],
         0),
    ]
    for argv, rc in scripts:
        assert_same(pair, ["ovsdb-client", "--timeout=10", *argv], rc)

    # list-columns prints a table's columns in the order of the client's hash of the names
    # as the server serialised them, and ovsdb-server serialises JSON objects in its own
    # hash order (we keep the schema file's order): same columns, same types, any order.
    ours, theirs = run_both(pair, ["ovsdb-client", "list-columns", "{db}", "hardware_vtep"])
    assert ours[0] == theirs[0] == 0
    assert sorted(ours[1].splitlines()) == sorted(theirs[1].splitlines())

    # _Server: the same Database rows; the schema column holds the same schema, though
    # serialised with object members in a different order.
    dumps = []
    for srv in pair:
        cp = srv.run("ovsdb-client", "--format=json", "dump", srv.unix, "_Server")
        table = json.loads(cp.stdout)
        rows = []
        for row in table["data"]:
            cells = dict(zip(table["headings"], row, strict=True))
            cells.pop("_uuid")
            cells["schema"] = json.loads(cells["schema"])
            rows.append(cells)
        dumps.append(sorted(rows, key=lambda r: str(r["name"])))
    assert dumps[0] == dumps[1]
    assert [r["name"] for r in dumps[0]] == ["_Server", "hardware_vtep"]


def read_until(path: Path, needle: str, proc: subprocess.Popen[str],
               timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text()
        if needle in text:
            return text
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never appeared in:\n{text}\n"
                                 f"(client exit code {proc.poll()})")
        time.sleep(0.05)


@pytest.mark.parametrize("fmt", ["--format=json", "--format=table"])
def test_ovsdb_client_monitor_matches_ovs(pair: tuple[RunningServer, RunningServer],
                                          fmt: str) -> None:
    """ovsdb-client monitor prints the initial rows, then each change, as it happens."""
    outputs = []
    for srv in pair:
        srv.run("vtep-ctl", f"--db={srv.unix}", "add-ps", "ps-initial")
        out = srv.dir / f"monitor{fmt}.out"
        with out.open("w") as f:
            proc = subprocess.Popen(
                ["ovsdb-client", fmt, "monitor", srv.unix, "hardware_vtep",
                 "Physical_Switch", "name,tunnel_ips,description"],
                stdout=f, stderr=subprocess.PIPE, text=True, env=srv.env)
        try:
            read_until(out, "ps-initial", proc)
            srv.run("vtep-ctl", f"--db={srv.unix}", "add-ps", "ps1")
            read_until(out, "ps1", proc)
            srv.run("vtep-ctl", f"--db={srv.unix}", "set", "Physical_Switch", "ps1",
                    "tunnel_ips=1.2.3.4", "description=changed")
            read_until(out, "changed", proc)
            srv.run("vtep-ctl", f"--db={srv.unix}", "del-ps", "ps-initial")
            text = read_until(out, "delete", proc)
        finally:
            proc.terminate()
            proc.communicate(timeout=10)
        outputs.append(mask_uuids(text))
    assert outputs[0] == outputs[1]
    for word in ("initial", "insert", "old", "new", "delete"):
        assert word in outputs[0], outputs[0]


# ---- Python IDL and ovsdbapp ------------------------------------------------------------

def _idl_run_until(idl: Any, pred: Any, timeout: float = 10) -> None:
    import ovs.poller

    deadline = time.monotonic() + timeout
    while True:
        idl.run()
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached by the IDL")
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.timer_wait(50)
        poller.block()


def _idl_commit(idl: Any, fill: Any) -> str:
    import ovs.db.idl
    import ovs.poller

    txn = ovs.db.idl.Transaction(idl)
    fill(txn)
    status = txn.commit()
    deadline = time.monotonic() + 10
    while status == ovs.db.idl.Transaction.INCOMPLETE:
        assert time.monotonic() < deadline, "transaction never completed"
        idl.run()
        poller = ovs.poller.Poller()
        idl.wait(poller)
        txn.wait(poller)
        poller.block()
        status = txn.commit()
    assert status == ovs.db.idl.Transaction.SUCCESS, (status, txn.get_error())
    return str(status)


def _names(idl: Any, table: str) -> set[str]:
    return {r.name for r in idl.tables[table].rows.values()}


@pytest.mark.parametrize("kind", ["hwvtep", "ovs"])
def test_python_idl(server_factory: Any, kind: str) -> None:
    """python-ovs's IDL: _Server check, monitor_cond_since, commits, updates, reconnects.

    After a reconnect the IDL asks for the changes since its last transaction id. Our
    server keeps a transaction history for standalone databases and answers found=true
    with only the changes, so the IDL keeps its rows (same Row objects); ovsdb-server 3.1
    keeps none for standalone databases, answers found=false, and the IDL rebuilds its
    replica from a full dump (new Row objects).
    """
    import ovs.db.idl

    srv = server_factory(kind)
    helper = ovs.db.idl.SchemaHelper(location=str(VTEP_SCHEMA))
    helper.register_all()
    idl = ovs.db.idl.Idl(srv.unix, helper)
    try:
        _idl_run_until(idl, lambda: idl.state == idl.IDL_S_MONITORING)
        # The _Server replica has this database, and the data monitor is update3-based.
        dbs = {r.name: r for r in idl.server_tables["Database"].rows.values()}
        assert dbs["hardware_vtep"].model == "standalone"
        assert dbs["hardware_vtep"].connected and dbs["hardware_vtep"].leader
        assert json.loads(dbs["hardware_vtep"].schema[0])["name"] == "hardware_vtep"
        zero = "00000000-0000-0000-0000-000000000000"

        def fill(txn: Any) -> None:
            glob = txn.insert(idl.tables["Global"])
            ps = txn.insert(idl.tables["Physical_Switch"])
            ps.name = "ps-idl"
            ps.tunnel_ips = ["10.1.1.1"]
            glob.switches = [ps]
        _idl_commit(idl, fill)
        _idl_run_until(idl, lambda: "ps-idl" in _names(idl, "Physical_Switch"))
        # Only monitor_cond_since replies and update3 set last_id. ovsdb-server 3.1 has
        # no transaction ids for standalone databases and always sends the zero UUID.
        assert (idl.last_id != zero) == (kind == "hwvtep"), idl.last_id
        assert srv.run("vtep-ctl", f"--db={srv.unix}", "list-ps").stdout == "ps-idl\n"

        # Someone else's change reaches the replica.
        srv.run("vtep-ctl", f"--db={srv.unix}", "add-ls", "ls-ext")
        _idl_run_until(idl, lambda: "ls-ext" in _names(idl, "Logical_Switch"))
        before = idl.last_id

        # Reconnect: changes made meanwhile arrive; rows kept or rebuilt (see above).
        (ps_row,) = idl.tables["Physical_Switch"].rows.values()
        idl.force_reconnect()
        srv.run("vtep-ctl", f"--db={srv.unix}", "add-ls", "ls-while-away")
        _idl_run_until(idl, lambda: idl.state == idl.IDL_S_MONITORING
                       and "ls-while-away" in _names(idl, "Logical_Switch"))
        (ps_row_after,) = idl.tables["Physical_Switch"].rows.values()
        assert ps_row_after.name == "ps-idl"
        if kind == "hwvtep":
            assert ps_row_after is ps_row  # found=true: only the changes were applied
            assert idl.last_id not in (before, zero)
        else:
            assert ps_row_after is not ps_row  # found=false: full dump
            assert idl.last_id == zero
    finally:
        idl.close()


@pytest.mark.parametrize("kind", ["hwvtep", "ovs"])
def test_python_idl_follows_database_removal(server_factory: Any, kind: str) -> None:
    """set_db_change_aware: ovs-appctl remove-db/add-db; the IDL notices through _Server
    (or monitor_canceled) and comes back once the database is served again."""
    import ovs.db.idl

    srv = server_factory(kind)
    srv.run("vtep-ctl", f"--db={srv.unix}", "add-ps", "ps0")
    helper = ovs.db.idl.SchemaHelper(location=str(VTEP_SCHEMA))
    helper.register_all()
    idl = ovs.db.idl.Idl(srv.unix, helper)
    try:
        _idl_run_until(idl, lambda: "ps0" in _names(idl, "Physical_Switch"))
        srv.run("ovs-appctl", "-t", str(srv.ctl), "ovsdb-server/remove-db", "hardware_vtep")
        _idl_run_until(idl, lambda: idl.state != idl.IDL_S_MONITORING
                       or "hardware_vtep" not in {
                           r.name for r in idl.server_tables["Database"].rows.values()})
        srv.run("ovs-appctl", "-t", str(srv.ctl), "ovsdb-server/add-db", str(srv.db))
        srv.run("vtep-ctl", f"--db={srv.unix}", "add-ps", "ps1")
        _idl_run_until(idl, lambda: idl.state == idl.IDL_S_MONITORING
                       and _names(idl, "Physical_Switch") == {"ps0", "ps1"}, timeout=20)
    finally:
        idl.close()


@pytest.mark.parametrize("kind", ["hwvtep", "ovs"])
def test_ovsdbapp_hardware_vtep(server_factory: Any, kind: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from ovsdbapp.backend.ovs_idl import connection
    from ovsdbapp.schema.hardware_vtep import impl_idl

    # ovsdbapp keeps one connection per API class, for the life of the process.
    monkeypatch.setattr(impl_idl.HwVtepApiIdlImpl, "_ovsdb_connection", None)
    srv = server_factory(kind)
    idl = connection.OvsdbIdl.from_server(srv.tcp, "hardware_vtep")
    conn = connection.Connection(idl=idl, timeout=10)
    api = impl_idl.HwVtepApiIdlImpl(conn)
    try:
        api.db_create("Global").execute(check_error=True)
        api.add_ps("ps-oa", tunnel_ips=["10.9.9.9"]).execute(check_error=True)
        api.add_ls("ls-oa", tunnel_key=77).execute(check_error=True)
        api.add_port("ps-oa", "p1").execute(check_error=True)
        api.bind_ls("ps-oa", "p1", 10, "ls-oa").execute(check_error=True)
        assert [r.name for r in api.list_ps().execute(check_error=True)] == ["ps-oa"]
        assert [r.name for r in api.list_ls().execute(check_error=True)] == ["ls-oa"]
        assert api.get_ls("ls-oa").execute(check_error=True).tunnel_key == [77]
        # The server, not ovsdbapp, refuses a second row with the same indexed name.
        with pytest.raises(RuntimeError, match="constraint violation"):
            api.db_create("Logical_Switch", name="ls-oa").execute(check_error=True)
        # The C client sees what ovsdbapp committed.
        assert srv.run("vtep-ctl", f"--db={srv.unix}", "list-bindings", "ps-oa",
                       "p1").stdout == "0010 ls-oa\n"
        api.unbind_ls("ps-oa", "p1", 10).execute(check_error=True)
        api.del_ls("ls-oa").execute(check_error=True)
        assert api.list_ls().execute(check_error=True) == []
    finally:
        conn.stop()


# ---- raw JSON-RPC with nc and jq (the walkthrough's way) --------------------------------

def _nc(srv: RunningServer, request: dict[str, Any], jq: str = ".") -> str:
    cmd = (f"echo {shlex.quote(json.dumps(request))} | nc -q 1 127.0.0.1 {srv.port} "
           f"| jq -c {shlex.quote(jq)}")
    cp = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


@pytest.mark.skipif(any(subprocess.run(["sh", "-c", f"command -v {t}"],
                                       capture_output=True).returncode for t in ("nc", "jq")),
                    reason="nc or jq is not installed")
def test_nc_jq(pair: tuple[RunningServer, RunningServer]) -> None:
    ours, theirs = pair
    echo = {"method": "echo", "id": 1234, "params": ["hello"]}
    assert _nc(ours, echo) == '{"id":1234,"result":["hello"],"error":null}\n'
    assert _nc(theirs, echo) == _nc(ours, echo)

    get_schema = {"method": "get_schema", "id": 0, "params": ["hardware_vtep"]}
    replies = [json.loads(_nc(s, get_schema)) for s in pair]
    assert replies[0] == replies[1]  # dict equality: member order does not matter
    assert replies[0]["result"] == json.loads(VTEP_SCHEMA.read_text()) | {
        "tables": replies[0]["result"]["tables"]}
    assert set(replies[0]["result"]["tables"]) == set(
        json.loads(VTEP_SCHEMA.read_text())["tables"])

    bad = {"method": "get_schema", "id": "x", "params": ["nosuch"]}
    ours_err, theirs_err = (json.loads(_nc(s, bad)) for s in pair)
    # Both leave "result" out of an error response.
    assert "result" not in ours_err and "result" not in theirs_err
    assert ours_err == theirs_err
    assert ours_err["error"]["error"] == "unknown database"


def test_detached_server_and_ovs_appctl(server_factory: Any) -> None:
    """--detach returns once the server is ready; ovs-appctl controls it; exit stops it."""
    srv = server_factory("hwvtep", detach=True)
    pid = srv.pid()
    assert pid is not None
    assert srv.run("vtep-ctl", f"--db={srv.unix}", "add-ps", "ps0").returncode == 0
    ctl = ["ovs-appctl", "-t", str(srv.ctl)]
    remotes = srv.run(*ctl, "ovsdb-server/list-remotes").stdout.split()
    assert remotes == sorted([f"punix:{srv.sock}", f"ptcp:{srv.port}:127.0.0.1"])
    assert srv.run(*ctl, "ovsdb-server/list-dbs").stdout == "_Server\nhardware_vtep\n"
    with Rpc(("127.0.0.1", srv.port)) as rpc:
        assert rpc.result("echo", ["tcp"]) == ["tcp"]
    srv.run(*ctl, "exit")
    deadline = time.monotonic() + 10
    while srv.pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not srv.pidfile.exists()
    assert not srv.sock.exists()
