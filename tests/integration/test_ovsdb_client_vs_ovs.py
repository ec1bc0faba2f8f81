"""`hwvtep ovsdb-client` side by side with Open vSwitch's ovsdb-client 3.1.

Both clients run the same command line against the same server (ours, and OVS's
ovsdb-server where the server could matter); stdout, stderr and the exit status must be
identical, after masking what differs between two runs of the same program (log
timestamps, monitor timestamps, backup dates). Row UUIDs need no masking: both clients see
the same rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from srvhelp import (
    HWVTEP,
    MISSING_OVS,
    VSWITCH_SCHEMA,
    VTEP_SCHEMA,
    RunningServer,
    free_port,
    mask_uuids,
    needs_ovs,
    start_server,
)

pytestmark = [pytest.mark.ovs, needs_ovs]

OURS = [HWVTEP, "ovsdb-client"]
THEIRS = ["ovsdb-client"]

POPULATE = [
    "hardware_vtep",
    {"op": "insert", "table": "Global", "row": {
        "switches": ["set", [["named-uuid", "ps0"], ["named-uuid", "ps1"]]],
        "other_config": ["map", [["k", "v"]]]}},
    {"op": "insert", "table": "Physical_Switch", "uuid-name": "ps0", "row": {"name": "ps0"}},
    {"op": "insert", "table": "Physical_Switch", "uuid-name": "ps1", "row": {
        "name": "ps1", "description": 'a "quoted", desc\nline <&> é',
        "tunnel_ips": ["set", ["10.0.0.1", "10.0.0.2"]],
        "other_config": ["map", [["k1", "v1"], ["k2", "v,2"]]],
        "ports": ["named-uuid", "p1"]}},
    {"op": "insert", "table": "Physical_Port", "uuid-name": "p1", "row": {
        "name": "s2-eth1", "vlan_bindings": ["map", [[0, ["named-uuid", "red"]],
                                                     [10, ["named-uuid", "blue"]]]]}},
    {"op": "insert", "table": "Logical_Switch", "uuid-name": "red",
     "row": {"name": "red", "tunnel_key": 5000}},
    {"op": "insert", "table": "Logical_Switch", "uuid-name": "blue",
     "row": {"name": "blue", "tunnel_key": 5001, "replication_mode": "source_node"}},
    {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
     "row": {"dst_ip": "192.168.1.1", "encapsulation_type": "vxlan_over_ipv4"}},
    {"op": "insert", "table": "Ucast_Macs_Remote", "row": {
        "MAC": "00:00:00:00:00:01", "logical_switch": ["named-uuid", "red"],
        "locator": ["named-uuid", "loc"], "ipaddr": "10.1.1.1"}},
]

_LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\|", re.M)
_TABLE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d\d\d$", re.M)


def _mask(text: str) -> str:
    return _TABLE_TIME.sub("<time>", _LOG_TIME.sub("<log>|", text))


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, RunningServer]]:
    base = Path(tempfile.mkdtemp(prefix="hv-oc-"))
    started: dict[str, RunningServer] = {}
    try:
        for kind in ("hwvtep", "ovs"):
            srv = started[kind] = start_server(kind, base / kind)
            cp = srv.run("ovsdb-client", "transact", srv.unix, json.dumps(POPULATE))
            assert "error" not in cp.stdout, cp.stdout
        yield started
    finally:
        for srv in started.values():
            srv.stop()
        shutil.rmtree(base, ignore_errors=True)


def both(srv: RunningServer, *args: str, stdin: bytes | None = None
         ) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
    def run(prog: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*prog, *args], capture_output=True, env=srv.env, timeout=30,
                              input=stdin)
    return run(THEIRS), run(OURS)


def assert_same(srv: RunningServer, *args: str, new_uuids: bool = False,
                stdin: bytes | None = None) -> str:
    """Same status, stdout and stderr (*new_uuids*: the command creates rows, whose
    UUIDs are compared by order of appearance)."""
    theirs, ours = both(srv, *args, stdin=stdin)

    def view(cp: subprocess.CompletedProcess[bytes]) -> tuple[int, str, str]:
        out = _mask(cp.stdout.decode())
        return cp.returncode, mask_uuids(out) if new_uuids else out, _mask(cp.stderr.decode())
    assert view(ours) == view(theirs), f"{args} against {srv.kind}"
    return theirs.stdout.decode()


@pytest.fixture(params=["hwvtep", "ovs"])
def srv(request: pytest.FixtureRequest, servers: dict[str, RunningServer]) -> RunningServer:
    return servers[request.param]


# --- one-shot commands --------------------------------------------------------------------


_TABLES = [
    ["list-tables"],
    ["list-columns"],
    ["list-columns", "hardware_vtep", "Physical_Switch"],
    ["list-columns", "hardware_vtep", "NoSuchTable"],
    ["dump"],
    ["dump", "_Server"],
    ["dump", "hardware_vtep", "Physical_Switch"],
    ["dump", "hardware_vtep", "Physical_Switch", "name", "tunnel_ips", "_uuid"],
    ["dump", "Logical_Switch"],
]
_FORMATS = [[], ["-f", "list"], ["-f", "csv"], ["-f", "html"], ["-f", "json"], ["--bare"],
            ["-d", "json"], ["-d", "bare", "--no-headings"], ["--max-column-width=6"],
            ["--format=json", "--pretty"]]


@pytest.mark.parametrize("args", _TABLES)
@pytest.mark.parametrize("fmt", _FORMATS)
def test_tables(srv: RunningServer, args: list[str], fmt: list[str]) -> None:
    out = assert_same(srv, *fmt, args[0], srv.unix, *args[1:])
    if args == ["dump"] and not fmt:
        assert "ps1" in out and "Ucast_Macs_Remote table" in out


@pytest.mark.parametrize("args", [
    ["list-dbs"],
    ["get-schema"],
    ["get-schema", "_Server"],
    ["--pretty", "get-schema"],
    ["get-schema-version"],
    ["get-schema-cksum"],
    ["get-schema-version", "_Server"],
])
def test_schema_queries(srv: RunningServer, args: list[str]) -> None:
    i = 1 if args[0].startswith("-") else 0
    out = assert_same(srv, *args[:i + 1], srv.unix, *args[i + 1:])
    assert out


def test_options_after_the_command_and_default_server(srv: RunningServer) -> None:
    # SERVER defaults to unix:$OVS_RUNDIR/db.sock; getopt also reads trailing options.
    assert srv.sock.name == "db.sock"
    out = assert_same(srv, "dump", "Logical_Switch", "name", "--format=csv", "--no-head")
    assert out.splitlines()[1:] == ["blue", "red"]


@pytest.mark.parametrize("txn", [
    ["hardware_vtep", {"op": "select", "table": "Logical_Switch", "where": [],
                       "columns": ["name", "tunnel_key"]}],
    ["hardware_vtep", {"op": "select", "table": "Nope", "where": []}],
    ["hardware_vtep", {"op": "comment", "comment": "hi"}],
    ["hardware_vtep", {"op": "select", "table": "Logical_Switch",
                       "where": [["tunnel_key", "==", 5000.0]], "columns": ["name"]}],
    ["hardware_vtep", {"op": "insert", "table": "Logical_Switch", "row": {"name": "red"}}],
    ["nodb"],
    [],
    {},
])
def test_query(srv: RunningServer, txn: object) -> None:
    """query runs a transaction and rolls it back: safe to repeat on a shared server."""
    assert_same(srv, "query", srv.unix, json.dumps(txn), new_uuids=True)
    assert_same(srv, "--pretty", "query", json.dumps(txn), new_uuids=True)


def test_transact_raw_json_file_over_tcp(servers: dict[str, RunningServer]) -> None:
    """The lab's controller sends files with `transact tcp:IP:6640 "$(cat f.json)"`:
    the reply comes and the client exits."""
    srv = servers["hwvtep"]
    attach = [
        "hardware_vtep",
        {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
         "row": {"name": "green", "tunnel_key": 6000}},
        {"op": "insert", "table": "Physical_Locator", "uuid-name": "l",
         "row": {"dst_ip": "10.9.9.9", "encapsulation_type": "vxlan_over_ipv4"}},
        {"op": "insert", "table": "Ucast_Macs_Remote", "row": {
            "MAC": "00:00:00:00:00:09", "logical_switch": ["named-uuid", "ls"],
            "locator": ["named-uuid", "l"]}},
    ]
    path = srv.dir / "attach_green.json"
    path.write_text(json.dumps(attach, indent=2) + "\n")
    try:
        start = time.monotonic()
        cp = subprocess.run(
            ["sh", "-c", f'"$@" transact tcp:127.0.0.1:{srv.port} "$(cat {path})"', "sh",
             *OURS], capture_output=True, text=True, env=srv.env, timeout=30)
        assert cp.returncode == 0, cp.stderr
        assert time.monotonic() - start < 10
        result = json.loads(cp.stdout)
        assert len(result) == 3 and all(r["uuid"][0] == "uuid" for r in result)
        # Written, as OVS's client sees it.
        out = srv.run("ovsdb-client", "--bare", "dump", srv.tcp, "Logical_Switch", "name")
        assert "green" in out.stdout.split()
    finally:
        srv.run("ovsdb-client", "transact", srv.unix, json.dumps([
            "hardware_vtep",
            {"op": "delete", "table": "Ucast_Macs_Remote",
             "where": [["MAC", "==", "00:00:00:00:00:09"]]},
            {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "green"]]}]))


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["--bogus", "list-dbs"],
    ["-x", "list-dbs"],
    ["--no", "list-dbs"],
    ["--fo=json", "list-dbs"],
    ["-f"],
    ["--format"],
    ["--pretty=1", "list-dbs"],
    ["--format=xml", "list-dbs"],
    ["--data=xml", "list-dbs"],
    ["-t", "0", "list-dbs"],
    ["--timeout=abc", "list-dbs"],
    ["list-dbs", "SRV", "extra"],
    ["get-schema", "SRV", "nodb"],
    ["monitor"],
    ["monitor-cond", "SRV", "[]"],
    ["transact", "SRV", "[bad"],
    ["transact", "SRV", "[1, 2] x"],
    ["transact", "SRV", '"a string"'],
    ["transact", "SRV", ""],
    ["transact", "SRV", "{}"],
    ["transact", "SRV", "[1.0, 1e400]"],
    ["transact", "SRV", '["nodb"]'],
    ["query", "SRV", '["nodb"]'],
    ["--pretty", "transact", "SRV", '["nodb"]'],
    ["dump", "SRV", "hardware_vtep", "NoTable"],
    ["dump", "SRV", "hardware_vtep", "Global", "nocol"],
    ["monitor", "SRV", "hardware_vtep", "NoTable"],
    ["monitor", "SRV", "hardware_vtep", "Global", "nocol"],
    ["monitor", "SRV", "hardware_vtep", "Global", "switches,switches"],
    ["monitor-cond", "SRV", "hardware_vtep", "[]", "NoTable"],
    ["monitor-cond", "SRV", "hardware_vtep", '[["nocol","==",1]]', "Global"],
    ["monitor-cond", "SRV", "hardware_vtep", '[["switches","<",1]]', "Global"],
    ["monitor-cond", "SRV", "hardware_vtep", "[bad", "Global"],
    ["monitor-cond-since", "SRV", "hardware_vtep", "[]", "Global", "a", "b", "c"],
    ["wait", "SRV", "hardware_vtep", "sideways"],
    ["lock", "SRV", "a", "b"],
])
def test_errors(srv: RunningServer, args: list[str]) -> None:
    args = [srv.unix if a == "SRV" else a for a in args]
    theirs, _ = both(srv, *args)
    assert theirs.returncode != 0
    assert_same(srv, *args)


@pytest.mark.parametrize("remote", [
    "unix:/nonexistent/db.sock",
    "unix:no-such.sock",  # relative to OVS_RUNDIR
    "tcp:127.0.0.1:PORT",
    "tcp:127.0.0.1",  # default port 6640, with OVS's warning about it
    "tcp:name.invalid:6640",
    "tcp:127.0.0.1:99999",
    "ssl:127.0.0.1:PORT",
    "frob:nicate",
])
def test_connection_errors(servers: dict[str, RunningServer], remote: str) -> None:
    srv = servers["hwvtep"]
    remote = remote.replace("PORT", str(free_port()))
    for args in (["list-dbs", remote], ["transact", remote, '["hardware_vtep"]'],
                 ["dump", remote]):
        theirs, _ = both(srv, *args)
        assert theirs.returncode == 1
        assert_same(srv, *args)


def test_default_database_needs_one() -> None:
    """With two databases and no Open_vSwitch, the database must be named."""
    d = Path(tempfile.mkdtemp(prefix="hv-oc2-"))
    try:
        srv = start_server("hwvtep", d, extra=[])
        other = d / "second.db"
        schema = json.loads(VTEP_SCHEMA.read_text())
        schema["name"] = "second"
        (d / "second.ovsschema").write_text(json.dumps(schema))
        subprocess.run(["ovsdb-tool", "create", str(other), str(d / "second.ovsschema")],
                       check=True, env=srv.env)
        srv.run("ovs-appctl", "-t", str(srv.ctl), "ovsdb-server/add-db", str(other))
        assert_same(srv, "list-tables", srv.unix)
        assert_same(srv, "get-schema-version", srv.unix, "second")
        assert_same(srv, "list-dbs", srv.unix)
        srv.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_vswitch_schema_server() -> None:
    """Open_vSwitch is the default database when present; its schema has reals, enums,
    ephemeral columns and a non-root table, which get-schema/list-columns/backup show."""
    d = Path(tempfile.mkdtemp(prefix="hv-oc3-"))
    try:
        for kind in ("hwvtep", "ovs"):
            srv = start_server(kind, d / kind, VSWITCH_SCHEMA)
            try:
                srv.run("ovsdb-client", "transact", srv.unix, json.dumps([
                    "Open_vSwitch",
                    {"op": "insert", "table": "Open_vSwitch", "row": {
                        "bridges": ["named-uuid", "br"], "cur_cfg": 3}},
                    {"op": "insert", "table": "Bridge", "uuid-name": "br", "row": {
                        "name": "br0", "ports": ["named-uuid", "p"],
                        "other_config": ["map", [["a", "1.5"]]]}},
                    {"op": "insert", "table": "Port", "uuid-name": "p", "row": {
                        "name": "p0", "interfaces": ["named-uuid", "i"]}},
                    {"op": "insert", "table": "Interface", "uuid-name": "i", "row": {
                        "name": "p0", "type": "internal", "bfd_status": ["map", [["x", "y"]]],
                        "link_speed": 1000}},
                    {"op": "insert", "table": "QoS", "row": {"type": "x"}},
                ]))
                for args in (["get-schema"], ["list-tables"], ["list-columns"],
                             ["list-columns", "Interface"], ["get-schema-cksum"], ["dump"],
                             ["-f", "json", "dump", "Interface"]):
                    assert_same(srv, *_with_server(args, srv.unix))
                check_backup(srv)
            finally:
                srv.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _with_server(args: list[str], server: str) -> list[str]:
    """Put SERVER right after the command name."""
    i = next(n for n, a in enumerate(args) if not a.startswith("-") and
             (n == 0 or args[n - 1] not in ("-f", "-d")))
    return [*args[:i + 1], server, *args[i + 1:]]


# --- backup and restore --------------------------------------------------------------------


def _records(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        header = data[pos:nl + 1]
        length = int(header.split()[2])
        body = data[nl + 1:nl + 1 + length]
        assert hashlib.sha1(body).hexdigest() == header.split()[3].decode()
        out.append((header, body))
        pos = nl + 1 + length
    return out


def check_backup(srv: RunningServer) -> None:
    theirs, ours = both(srv, "backup", srv.unix)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    a, b = _records(theirs.stdout), _records(ours.stdout)
    assert len(a) == len(b) == 2
    assert b[0] == a[0]  # the schema record, byte for byte
    date = re.compile(rb'"_date":\d+')
    assert date.sub(b"D", b[1][1]) == date.sub(b"D", a[1][1])
    assert len(b[1][1]) == len(a[1][1])


def test_backup(srv: RunningServer) -> None:
    check_backup(srv)
    # Refused on a terminal, as OVS refuses.
    if shutil.which("script"):
        for prog in (THEIRS, OURS):
            cp = subprocess.run(["script", "-qec", " ".join([*prog, "backup", srv.unix]),
                                 "/dev/null"], capture_output=True, env=srv.env,
                                timeout=30)
            assert b"not writing backup to a terminal" in cp.stdout
            assert cp.returncode == 1


def test_restore(servers: dict[str, RunningServer]) -> None:
    """A backup of OVS's server restored by our client into our server holds what OVS's
    client restores into OVS's server; bad input is refused in OVS's words."""
    ovs, ours = servers["ovs"], servers["hwvtep"]
    backup = subprocess.run([*THEIRS, "backup", ovs.unix], capture_output=True,
                            env=ovs.env, check=True).stdout
    # From a pipe OVS refuses (it wants to seek); ours too, in the same words.
    assert_same(ours, "restore", ours.unix, stdin=backup)
    path = ours.dir / "backup.db"
    path.write_bytes(backup)
    for srv, prog in ((ours, OURS), (ovs, THEIRS)):
        with open(path, "rb") as f:
            cp = subprocess.run([*prog, "restore", srv.unix], stdin=f, capture_output=True,
                                env=srv.env, timeout=30)
        assert cp.returncode == 0, cp.stderr
    dumps = [re.sub(r"[0-9a-f-]{36}", "U", srv.run("ovsdb-client", "dump", srv.unix).stdout)
             for srv in (ours, ovs)]
    assert dumps[0] == dumps[1]
    server_backup = subprocess.run([*THEIRS, "backup", ovs.unix, "_Server"],
                                   capture_output=True, env=ovs.env, check=True).stdout
    for data in (b"", b"garbage", b"OVSDB CLUSTER 5 abc\n", server_backup):
        for extra in ([], ["--force"]):
            theirs, mine = both(ours, *extra, "restore", ours.unix, stdin=data)
            assert theirs.returncode == 1
            assert (mine.returncode, mine.stdout, _mask(mine.stderr.decode())) == \
                (theirs.returncode, theirs.stdout, _mask(theirs.stderr.decode()))


# --- monitors -----------------------------------------------------------------------------


CHANGES = [
    ["hardware_vtep",
     {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "red"]],
      "row": {"tunnel_key": 8, "description": "x y"}},
     {"op": "insert", "table": "Logical_Switch",
      "row": {"name": "green", "other_config": ["map", [["a", "b"]]]}}],
    ["hardware_vtep",
     {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "green"]]},
     {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "red"]],
      "row": {"tunnel_key": 5000, "description": ""}},
     {"op": "mutate", "table": "Global", "where": [],
      "mutations": [["other_config", "insert", ["map", [["k2", "v2"]]]]]}],
    ["hardware_vtep",
     {"op": "mutate", "table": "Global", "where": [],
      "mutations": [["other_config", "delete", ["set", ["k2"]]]]}],
]


def _wait_for(path: Path, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never in {path}: {path.read_text()}"
        time.sleep(0.05)


def _monitor_both(srv: RunningServer, args: list[str], tmp: Path) -> list[str]:
    """Start both clients' monitors, make the changes, stop them; their outputs."""
    procs = []
    outs = []
    for n, prog in enumerate((THEIRS, OURS)):
        out = tmp / f"out{n}"
        err = tmp / f"err{n}"
        outs.append((out, err))
        procs.append(subprocess.Popen([*prog, *args], stdout=open(out, "wb"),  # noqa: SIM115
                                      stderr=open(err, "wb"), env=srv.env))  # noqa: SIM115
    try:
        time.sleep(1.0)  # both have their initial contents
        for txn in CHANGES:
            srv.run("ovsdb-client", "transact", srv.unix, json.dumps(txn))
            time.sleep(0.3)
        # Both have printed everything once their outputs agree and stay so.
        deadline = time.monotonic() + 10
        last = None
        while time.monotonic() < deadline:
            now = [_mask(out.read_text()) for out, _ in outs]
            if now[0] == now[1] and now == last:
                break
            last = now
            time.sleep(0.3)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=10)
    results = []
    for (out, err), p in zip(outs, procs, strict=True):
        assert p.returncode == -signal.SIGTERM
        results.append(_mask(out.read_text()) + "\n--stderr--\n" + _mask(err.read_text()))
    return results


@pytest.mark.parametrize("args", [
    ["monitor", "SRV", "hardware_vtep", "Logical_Switch"],
    ["monitor", "SRV", "Logical_Switch", "name,tunnel_key", "description"],
    ["monitor", "SRV", "hardware_vtep", "Logical_Switch", "name,!initial,!delete"],
    ["--timestamp", "-f", "list", "monitor", "SRV", "hardware_vtep", "ALL"],
    ["-f", "json", "monitor", "SRV", "hardware_vtep", "ALL"],
    ["-f", "csv", "monitor", "SRV", "hardware_vtep", "Global"],
    ["--timestamp", "-f", "html", "monitor-cond", "SRV", "hardware_vtep", "[]",
     "Logical_Switch"],
    ["monitor-cond", "SRV", "hardware_vtep", '[["name","==","red"]]', "Logical_Switch",
     "name,tunnel_key"],
    ["-d", "json", "monitor-cond", "SRV", '[["name","!=","blue"]]', "Logical_Switch"],
    ["monitor-cond", "SRV", "hardware_vtep", "[true]", "Global"],
    ["monitor-cond-since", "SRV", "hardware_vtep", "[true]", "Logical_Switch", "name"],
    ["-f", "json", "monitor-cond-since", "SRV", "hardware_vtep",
     "00000000-0000-0000-0000-000000000000", "[true]", "Logical_Switch"],
])
def test_monitor(srv: RunningServer, args: list[str], tmp_path: Path) -> None:
    args = [srv.unix if a == "SRV" else a for a in args]
    theirs, ours = _monitor_both(srv, args, tmp_path)
    assert ours == theirs
    if "Logical_Switch" in args and "!initial" not in " ".join(args):
        assert "green" in ours or "monitor-cond" in args


def test_monitor_prints_each_update_as_it_comes(servers: dict[str, RunningServer],
                                                tmp_path: Path) -> None:
    srv = servers["hwvtep"]
    out = tmp_path / "out"
    with open(out, "wb") as f:
        p = subprocess.Popen([*OURS, "monitor", srv.unix, "Logical_Switch", "name"],
                             stdout=f, stderr=subprocess.PIPE, env=srv.env)
    try:
        _wait_for(out, "initial red")
        srv.run("ovsdb-client", "transact", srv.unix, json.dumps(CHANGES[0]))
        _wait_for(out, "insert green")
        assert "delete" not in out.read_text()
        srv.run("ovsdb-client", "transact", srv.unix, json.dumps(CHANGES[1]))
        _wait_for(out, "delete green")
        assert p.poll() is None
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert p.returncode == -signal.SIGTERM
    assert _mask(err.decode()) == \
        "<log>|00001|fatal_signal|WARN|terminating with signal 15 (Terminated)\n"


@pytest.mark.parametrize("kind", ["hwvtep", "ovs"])
@pytest.mark.parametrize("how", ["kill", "remove-db"])
def test_monitor_end(kind: str, how: str, tmp_path: Path) -> None:
    """A server that goes away, or a database removed under the monitor: both clients
    say so the same way and exit with status 1."""
    if kind == "ovs" and MISSING_OVS:
        pytest.skip("no OVS")
    d = Path(tempfile.mkdtemp(prefix="hv-oc4-"))
    try:
        srv = start_server(kind, d)
        procs = [subprocess.Popen([*prog, "monitor", srv.unix, "Global"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=srv.env) for prog in (THEIRS, OURS)]
        time.sleep(1.0)
        if how == "kill":
            srv.stop()
        else:
            srv.run("ovs-appctl", "-t", str(srv.ctl), "ovsdb-server/remove-db",
                    "hardware_vtep")
        results = [p.communicate(timeout=15) for p in procs]
        assert [p.returncode for p in procs] == [1, 1]
        assert results[1] == results[0]
        want = "receive failed (End of file)" if how == "kill" else \
            "hardware_vtep database was removed"
        assert want in results[1][1].decode()
        srv.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_timeout_kills_like_ovs(servers: dict[str, RunningServer]) -> None:
    srv = servers["hwvtep"]
    for prog in (THEIRS, OURS):
        start = time.monotonic()
        cp = subprocess.run([*prog, "-t", "1", "monitor", srv.unix, "Global"],
                            capture_output=True, env=srv.env, timeout=20)
        assert cp.returncode == -signal.SIGALRM
        assert 0.9 < time.monotonic() - start < 8
        assert _mask(cp.stderr.decode()) == \
            "<log>|00001|fatal_signal|WARN|terminating with signal 14 (Alarm clock)\n"


def test_detach_and_pidfile(servers: dict[str, RunningServer], tmp_path: Path) -> None:
    srv = servers["hwvtep"]
    outs = []
    for n, prog in enumerate((THEIRS, OURS)):
        out = tmp_path / f"out{n}"
        pidfile = tmp_path / f"pid{n}"
        with open(out, "wb") as f:
            cp = subprocess.run([*prog, "--detach", "--no-chdir", f"--pidfile={pidfile}",
                                 "monitor", srv.unix, "Logical_Switch", "name"],
                                stdout=f, stderr=subprocess.STDOUT, env=srv.env,
                                timeout=20)
        assert cp.returncode == 0
        assert "initial" in out.read_text()  # printed before the parent returned
        outs.append((out, pidfile))
    srv.run("ovsdb-client", "transact", srv.unix, json.dumps(CHANGES[0]))
    srv.run("ovsdb-client", "transact", srv.unix, json.dumps(CHANGES[1]))
    for out, pidfile in outs:
        _wait_for(out, "delete green")
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
    for _, pidfile in outs:
        deadline = time.monotonic() + 10
        while pidfile.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert outs[1][0].read_text() == outs[0][0].read_text()


def test_locks(srv: RunningServer, tmp_path: Path) -> None:
    """lock, a second lock that waits, steal (the first holder hears "stolen"), unlock."""
    name = f"lock{srv.kind}{time.monotonic_ns()}"
    results = []
    for prog in (THEIRS, OURS):
        files = [tmp_path / f"{prog[0][-6:]}{n}" for n in range(3)]
        procs = []
        for f, cmd in zip(files, ("lock", "lock", "steal"), strict=True):
            with open(f, "wb") as out:
                procs.append(subprocess.Popen([*prog, cmd, srv.unix, name], stdout=out,
                                              stderr=subprocess.DEVNULL, env=srv.env))
            _wait_for(f, "locked")
        _wait_for(files[0], "stolen")
        # What follows depends on who leaves first (ovsdb-server 3.1 then sends the
        # stealer "locked" again): compare what came before.
        results.append([f.read_text() for f in files])
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
            assert p.returncode == -15
    assert results[1] == results[0]
    assert results[1][0] == '{"locked":true}\nstolen\n["' + name + '"]\n'
