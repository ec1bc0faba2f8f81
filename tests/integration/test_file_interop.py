"""Database files shared with Open vSwitch 3.1: what OVS writes we read, what we write OVS
reads (``ovsdb-tool show-log``/``query`` and ``ovsdb-server``), and damaged tails are
handled alike.

"Reads the same" means: every row of every table, as a select returns it, is identical
(UUIDs included: both sides read the same file); only ``_version`` differs, since each
reader draws new versions when it loads a file.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvhelp import HWVTEP, OVSDB_SERVER, VTEP_SCHEMA, needs_ovs_tools, tool_env

from hwvtep.ovsdb.transaction import execute
from hwvtep.server.storage import Storage

needs_ovs = needs_ovs_tools("ovsdb-tool", "ovsdb-client")


pytestmark = [pytest.mark.ovs, needs_ovs]

VTEP_TABLES = list(json.loads(VTEP_SCHEMA.read_text())["tables"]) if VTEP_SCHEMA.exists() else []


def j(v: Any) -> str:
    return json.dumps(v)


def ovs_tool(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ovsdb-tool", *args], capture_output=True, text=True, timeout=60,
                          check=check)


def our_tool(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HWVTEP, "ovsdb-tool", *args], capture_output=True, text=True,
                          timeout=60, check=check)


def select_all(name: str = "hardware_vtep", tables: list[str] = VTEP_TABLES) -> str:
    return j([name, *({"op": "select", "table": t, "where": []} for t in tables)])


def comparable(result: Any) -> Any:
    """A select-all result without _version, rows in _uuid order."""
    out = []
    for r in result:
        rows = [{k: v for k, v in row.items() if k != "_version"} for row in r["rows"]]
        out.append(sorted(rows, key=lambda row: row["_uuid"][1]))
    return out


def query(tool: Any, db: Path, text: str | None = None) -> Any:
    cp = tool("query", str(db), text or select_all())
    return comparable(json.loads(cp.stdout))


# A history with inserts, updates of scalars, sets and maps (diff records), mutations,
# deletes, garbage collection and comments. Named rows are found again by name.
def history() -> list[list[Any]]:
    ls = {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
          "row": {"name": "red", "tunnel_key": 5000}}
    loc = {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
           "row": {"dst_ip": "10.0.0.1", "encapsulation_type": "vxlan_over_ipv4"}}
    macs = [{"op": "insert", "table": "Ucast_Macs_Remote",
             "row": {"MAC": f"00:00:00:00:00:{i:02x}", "logical_switch": ["named-uuid", "ls"],
                     "locator": ["named-uuid", "loc"], "ipaddr": f"192.168.0.{i}"}}
            for i in range(1, 6)]
    ps = {"op": "insert", "table": "Physical_Switch", "uuid-name": "ps",
          "row": {"name": "ps1", "tunnel_ips": ["set", ["1.1.1.1"]],
                  "management_ips": ["set", ["2.2.2.2", "3.3.3.3"]]}}
    glob = {"op": "insert", "table": "Global",
            "row": {"switches": ["named-uuid", "ps"], "other_config": ["map", [["a", "1"]]]}}
    return [
        ["hardware_vtep", ls, loc, *macs, {"op": "comment", "comment": "first"}],
        ["hardware_vtep", ps, glob],
        ["hardware_vtep", {"op": "update", "table": "Logical_Switch",
                           "where": [["name", "==", "red"]],
                           "row": {"description": "the red one", "tunnel_key": 5001}}],
        ["hardware_vtep", {"op": "mutate", "table": "Physical_Switch", "where": [],
                           "mutations": [["management_ips", "delete", "2.2.2.2"],
                                         ["tunnel_ips", "insert", ["set", ["4.4.4.4"]]]]}],
        ["hardware_vtep", {"op": "mutate", "table": "Global", "where": [],
                           "mutations": [["other_config", "insert", ["map", [["b", "2"]]]]]},
         {"op": "comment", "comment": "two\nlines"}],
        ["hardware_vtep", {"op": "update", "table": "Global", "where": [],
                           "row": {"other_config": ["map", [["a", "9"], ["c", "3"]]]}}],
        ["hardware_vtep", {"op": "delete", "table": "Ucast_Macs_Remote",
                           "where": [["ipaddr", "includes", "192.168.0.2"]]}],
        ["hardware_vtep", {"op": "update", "table": "Physical_Switch", "where": [],
                           "row": {"description": "x", "name": "ps-renamed"}},
         {"op": "commit", "durable": True}],
        ["hardware_vtep", {"op": "delete", "table": "Ucast_Macs_Remote",
                           "where": [["MAC", "==", "00:00:00:00:00:03"]]},
         {"op": "delete", "table": "Ucast_Macs_Remote",
          "where": [["MAC", "==", "00:00:00:00:00:04"]]}],
    ]


def test_files_ovs_writes_read_the_same_in_ours(tmp_path: Path) -> None:
    db = tmp_path / "ovs.db"
    ovs_tool("create", str(db), str(VTEP_SCHEMA))
    for t in history():
        ovs_tool("transact", str(db), j(t))
    ours = query(our_tool, db)
    assert ours == query(ovs_tool, db)
    assert any(r for r in ours)
    assert our_tool("-mm", "show-log", str(db)).stdout == \
        ovs_tool("-mm", "show-log", str(db)).stdout
    ovs_tool("compact", str(db))
    assert query(our_tool, db) == ours
    with Storage.open(str(db), strict=True) as s:
        assert s.read_error is None
        assert len(s.db.tables["Ucast_Macs_Remote"]) == 2


def _write_ours(db: Path) -> None:
    our_tool("create", str(db), str(VTEP_SCHEMA))
    steps = history()
    for t in steps[:5]:
        our_tool("transact", str(db), j(t))
    our_tool("compact", str(db))
    for t in steps[5:7]:
        our_tool("transact", str(db), j(t))
    with Storage.open(str(db)) as s:  # online compaction, as our server does it
        s.compact()
        for t in steps[7:]:
            out = execute(s.db, t)
            assert out.changes
            s.commit(out.changes, durable=out.durable, comment=out.comment)
            s.db.apply(out.changes)


def test_files_we_write_read_the_same_in_ovsdb_tool(tmp_path: Path) -> None:
    db = tmp_path / "ours.db"
    _write_ours(db)
    log = ovs_tool("-mm", "show-log", str(db))
    assert log.returncode == 0 and log.stderr == ""
    assert "compacting database online" in log.stdout
    assert our_tool("-mm", "show-log", str(db)).stdout == log.stdout
    ours = query(our_tool, db)
    assert ours == query(ovs_tool, db)
    # Same end state as the same history written by OVS itself (UUIDs aside).
    ref = tmp_path / "ref.db"
    ovs_tool("create", str(ref), str(VTEP_SCHEMA))
    for t in history():
        ovs_tool("transact", str(ref), j(t))

    def shape(result: Any) -> Any:
        return [sorted(j({k: v for k, v in row.items() if not _has_uuid(v)})
                       for row in rows) for rows in result]
    assert shape(ours) == shape(query(ovs_tool, ref))


def _has_uuid(v: Any) -> bool:
    return "uuid" in j(v)


@contextlib.contextmanager
def ovsdb_server(db: Path, d: Path) -> Iterator[str]:
    """OVS's ovsdb-server on *db*, on a unix socket in *d*; stopped on exit."""
    sock = d / "db.sock"
    log = d / "server.log"
    proc = subprocess.Popen(
        [OVSDB_SERVER, "--no-chdir", f"--remote=punix:{sock}", f"--unixctl={d / 'ctl'}",
         f"--log-file={log}", str(db)], env=tool_env(d),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"ovsdb-server exited: {log.read_text()}")
            if sock.exists() and client(d, "list-dbs", f"unix:{sock}",
                                        check=False).returncode == 0:
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"unix:{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def client(d: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ovsdb-client", *args], capture_output=True, text=True,
                          timeout=60, env=tool_env(d), check=check)


def test_files_we_write_are_served_and_extended_by_ovsdb_server(short_tmp: Path) -> None:
    db = short_tmp / "ours.db"
    _write_ours(db)
    ours = query(our_tool, db)
    with ovsdb_server(db, short_tmp) as remote:
        served = comparable(json.loads(client(short_tmp, "transact", remote,
                                              select_all()).stdout))
        assert served == ours
        dump = client(short_tmp, "dump", remote, "hardware_vtep").stdout
        assert "ps-renamed" in dump and "the red one" in dump
        # ovsdb-server appends its own records to our file...
        client(short_tmp, "transact", remote, j(
            ["hardware_vtep", {"op": "insert", "table": "Logical_Switch",
                               "row": {"name": "blue", "tunnel_key": 6000}}]))
    # ...which we read back, as OVS does.
    after = query(our_tool, db)
    assert after == query(ovs_tool, db)
    names = [r["name"] for r in after[VTEP_TABLES.index("Logical_Switch")]]
    assert sorted(names) == ["blue", "red"]


BOUNDED = {
    "name": "B", "version": "1.0.0",
    "tables": {"T": {"isRoot": True, "columns": {
        "name": {"type": "string"},
        "two": {"type": {"key": "string", "min": 0, "max": 2}},
        "one_or_more": {"type": {"key": "integer", "min": 1, "max": "unlimited"}},
        "m2": {"type": {"key": "string", "value": "integer", "min": 0, "max": 2}},
        "r": {"type": {"key": "real", "min": 0, "max": "unlimited"}},
    }}},
}


def test_diffs_ovs_31_cannot_read_are_written_so_that_it_can(tmp_path: Path) -> None:
    """Set diffs larger than the column allows, and diffs to a non-empty default value,
    are misread by OVS 3.1 (fixed in 3.3); we write those commits as full values."""
    schema = tmp_path / "b.ovsschema"
    schema.write_text(j(BOUNDED))
    db = tmp_path / "b.db"
    our_tool("create", str(db), str(schema))
    steps = [
        ["B", {"op": "insert", "table": "T",
               "row": {"name": "a", "two": ["set", ["a", "b"]],
                       "m2": ["map", [["x", 1], ["y", 2]]], "r": ["set", [0.1, 2.5]]}}],
        ["B", {"op": "update", "table": "T", "where": [],
               "row": {"two": ["set", ["c", "d"]], "m2": ["map", [["z", 3], ["w", 4]]]}}],
        ["B", {"op": "mutate", "table": "T", "where": [],
               "mutations": [["one_or_more", "insert", ["set", [5, 6]]]]}],
        ["B", {"op": "mutate", "table": "T", "where": [],
               "mutations": [["one_or_more", "delete", 0], ["r", "insert", 1e20]]}],
    ]
    for t in steps:
        our_tool("transact", str(db), j(t))
    q = select_all("B", ["T"])
    assert ovs_tool("show-log", str(db)).returncode == 0
    ours = query(our_tool, db, q)
    assert ours == query(ovs_tool, db, q)
    row = ours[0][0]
    assert row["two"] == ["set", ["c", "d"]] and row["one_or_more"] == ["set", [5, 6]]


DAMAGE = {
    "half a record": lambda data: data[:-25],
    "garbage": lambda data: data + b"garbage\n",
    "bad hash": lambda data: data + b"OVSDB JSON 3 " + b"0" * 40 + b"\n{}\n",
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_tails_are_handled_like_ovs(short_tmp: Path, kind: str) -> None:
    base = short_tmp / "base.db"
    ovs_tool("create", str(base), str(VTEP_SCHEMA))
    for t in history()[:4]:
        ovs_tool("transact", str(base), j(t))
    damaged = DAMAGE[kind](base.read_bytes())
    a, b = short_tmp / "a", short_tmp / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.db").write_bytes(damaged)
    (b / "x.db").write_bytes(damaged)
    # The tools refuse the file, with the same message.
    theirs = ovs_tool("query", str(a / "x.db"), select_all(), check=False)
    mine = our_tool("query", str(a / "x.db"), select_all(), check=False)
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (theirs.returncode, theirs.stdout, theirs.stderr) and theirs.returncode == 1
    # A server reads up to the last good record...
    with Storage.open(str(a / "x.db")) as s:
        assert s.read_error is not None
        ours = comparable([{"rows": [dict(_row_json(s, t, r)) for r in s.db.tables[t]]}
                           for t in VTEP_TABLES])
        new_ls = ["hardware_vtep", {"op": "insert", "table": "Logical_Switch",
                                    "row": {"name": "new"}}]
        out = execute(s.db, new_ls)
        assert out.changes
        s.commit(out.changes)  # ...and its first write truncates the damage.
    with ovsdb_server(b / "x.db", b) as remote:
        served = comparable(json.loads(client(b, "transact", remote, select_all()).stdout))
        assert served == ours
        client(b, "transact", remote, j(new_ls))
    for d in (a, b):
        assert ovs_tool("show-log", str(d / "x.db")).returncode == 0
        assert our_tool("show-log", str(d / "x.db")).returncode == 0
    strip = [rows for i, rows in enumerate(query(ovs_tool, a / "x.db"))
             if VTEP_TABLES[i] != "Logical_Switch"]
    assert strip == [rows for i, rows in enumerate(query(ovs_tool, b / "x.db"))
                     if VTEP_TABLES[i] != "Logical_Switch"]


def _row_json(s: Storage, table: str, uuid: str) -> Any:
    from hwvtep.ovsdb.data import datum_to_json

    ts = s.schema.tables[table]
    row = s.db.tables[table][uuid]
    return {c: datum_to_json(ts.columns[c].type, row[c]) for c in ts.columns}


def test_copy_of_a_served_file(short_tmp: Path) -> None:
    """A file ovsdb-server is writing (diff records of its own) reads the same in ours."""
    db = short_tmp / "srv.db"
    ovs_tool("create", str(db), str(VTEP_SCHEMA))
    with ovsdb_server(db, short_tmp) as remote:
        for t in history():
            client(short_tmp, "transact", remote, j(t))
        snapshot = short_tmp / "copy.db"
        shutil.copy(db, snapshot)
        served = comparable(json.loads(client(short_tmp, "transact", remote,
                                              select_all()).stdout))
    assert query(our_tool, snapshot) == served
