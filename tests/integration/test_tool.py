"""``hwvtep ovsdb-tool`` against Open vSwitch 3.1's ``ovsdb-tool``, command by command.

Each case runs both tools on identical copies of the same files and compares stdout,
stderr and the exit status. Random UUIDs, dates and the lock warning's time stamp are
masked; nothing else is. Files the commands write are compared by what OVS's own
``ovsdb-tool`` reads from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvhelp import HWVTEP, VSWITCH_SCHEMA, VTEP_SCHEMA, mask_uuids, needs_ovs_tools

needs_ovs = needs_ovs_tools("ovsdb-tool", "ovsdb-client")


pytestmark = [pytest.mark.ovs, needs_ovs]

DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\|", re.M)

PS = "Physical_Switch"
T_INSERT = ["hardware_vtep",
            {"op": "insert", "table": PS, "uuid-name": "p",
             "row": {"name": "ps1", "tunnel_ips": ["set", ["1.2.3.4", "5.6.7.8"]],
                     "description": "d"}},
            {"op": "insert", "table": "Global",
             "row": {"switches": ["named-uuid", "p"], "other_config": ["map", [["a", "b"]]]}},
            {"op": "comment", "comment": "hello"}]
T_UPDATE = ["hardware_vtep",
            {"op": "update", "table": PS, "where": [],
             "row": {"tunnel_ips": ["set", ["1.2.3.4", "9.9.9.9"]], "description": "x",
                     "name": "ps2"}}]
T_MUTATE = ["hardware_vtep",
            {"op": "mutate", "table": "Global", "where": [],
             "mutations": [["other_config", "insert", ["map", [["c", "d"]]]]]}]
T_DELETE = ["hardware_vtep", {"op": "delete", "table": "Global", "where": []}]
SELECT_GLOBAL = ["hardware_vtep", {"op": "select", "table": "Global", "where": []}]


def j(v: Any) -> str:
    return json.dumps(v)


def ovs(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ovsdb-tool", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=check)


def _sha(b: bytes) -> str:
    return hashlib.sha1(b).hexdigest()


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files every case starts from, made by OVS's ovsdb-tool."""
    d = tmp_path_factory.mktemp("seed")
    ovs("create", "empty.db", str(VTEP_SCHEMA), cwd=d)
    ovs("create", "a.db", str(VTEP_SCHEMA), cwd=d)
    for t in (T_INSERT, T_UPDATE, T_MUTATE):
        ovs("transact", "a.db", j(t), cwd=d)
    shutil.copy(d / "a.db", d / "deleted.db")
    ovs("transact", "deleted.db", j(T_DELETE), cwd=d)
    data = (d / "a.db").read_bytes()
    (d / "bad.db").write_bytes(data + b"OVSDB JSON 10 " + b"0" * 40 + b'\n{"a":1}')
    (d / "cut.db").write_bytes(data[:-20])
    (d / "garbage.db").write_bytes(data + b"garbage\n")
    body = b'{"Nope":{}}\n'
    (d / "unknown.db").write_bytes(
        data + b"OVSDB JSON %d %s\n" % (len(body), _sha(body).encode()) + body)
    body = b'{"Global":{"00000000-0000-4000-8000-000000000001":null}}\n'
    (d / "nodelete.db").write_bytes(
        data + b"OVSDB JSON %d %s\n" % (len(body), _sha(body).encode()) + body)
    # A record that reads but does not commit (a reference to a missing row): both
    # tools stop there in silence, and the next write replaces it.
    body = (b'{"Ucast_Macs_Remote":{"00000000-0000-4000-8000-00000000000a":'
            b'{"MAC":"00:00:00:00:00:01",'
            b'"locator":["uuid","00000000-0000-4000-8000-00000000000b"]}}}\n')
    (d / "dangling.db").write_bytes(
        data + b"OVSDB JSON %d %s\n" % (len(body), _sha(body).encode()) + body)
    (d / "zero.db").write_bytes(b"")
    (d / "notadb.db").write_text("hello\n")
    cluster_body = b"{}\n"
    (d / "cluster.db").write_bytes(
        b"OVSDB CLUSTER 3 " + _sha(cluster_body).encode() + b"\n" + cluster_body)
    (d / "schema-only.json").write_text(
        j({"name": "x", "tables": {"T": {"columns": {"a": {"type": "integer"}}}}}))
    (d / "bad-type.json").write_text(
        j({"name": "x", "tables": {"T": {"columns": {"a": {"type": "foo"}}}}}))
    (d / "not-schema.json").write_text("[]")
    (d / "empty.json").write_text("\n")
    (d / "reals.json").write_text(j({
        "name": "r", "version": "1.0.0",
        "tables": {"T": {"columns": {"x": {"type": "real"},
                                      "s": {"type": {"key": "real", "min": 0,
                                                     "max": "unlimited"}}}}}}))
    ovs("create", "reals.db", "reals.json", cwd=d)
    return d


def _mask(text: str) -> str:
    return DATE.sub("<date>", STAMP.sub("<stamp>|", mask_uuids(text)))


def _run_both(seed: Path, tmp: Path, args: list[str]) -> tuple[Any, Any, Path, Path]:
    outs = []
    dirs = []
    for kind, cmd in (("ovs", ["ovsdb-tool"]), ("ours", [HWVTEP, "ovsdb-tool"])):
        d = tmp / kind
        shutil.copytree(seed, d)
        cp = subprocess.run([*cmd, *args], cwd=d, capture_output=True, text=True,
                            timeout=60)
        outs.append((_mask(cp.stdout), _mask(cp.stderr), cp.returncode))
        dirs.append(d)
    return outs[0], outs[1], dirs[0], dirs[1]


CASES: list[list[str]] = [
    # creating, and facts about files and schemas
    ["create", "new.db", str(VTEP_SCHEMA)],
    ["create", "a.db", str(VTEP_SCHEMA)],
    ["create", "new.db", "nonexistent.ovsschema"],
    ["create", "new.db", "a.db"],
    ["create", "new.db", "schema-only.json"],
    ["schema-name", str(VTEP_SCHEMA)],
    ["schema-version", str(VTEP_SCHEMA)],
    ["schema-cksum", str(VTEP_SCHEMA)],
    ["schema-version", "schema-only.json"],
    ["schema-cksum", "schema-only.json"],
    ["schema-name", "nonexistent"],
    ["schema-name", "a.db"],
    ["schema-name", "empty.json"],
    ["db-name", "a.db"],
    ["db-version", "a.db"],
    ["db-cksum", "a.db"],
    ["db-name", "nonexistent.db"],
    ["db-version", "zero.db"],
    ["db-name", "notadb.db"],
    ["db-version", "cluster.db"],
    ["db-is-standalone", "a.db"],
    ["db-is-clustered", "a.db"],
    ["db-is-standalone", "cluster.db"],
    ["db-is-clustered", "cluster.db"],
    ["db-cid", "a.db"],
    ["needs-conversion", "a.db", str(VTEP_SCHEMA)],
    ["needs-conversion", "a.db", str(VSWITCH_SCHEMA)],
    ["needs-conversion", "a.db", "nonexistent"],
    ["needs-conversion", "nonexistent.db", str(VTEP_SCHEMA)],
    ["compare-versions", "1.2.3", "<", "1.10.0"],
    ["compare-versions", "1.2.3", ">=", "1.10.0"],
    ["compare-versions", "1.2.3", "==", "1.2.3"],
    ["compare-versions", "1.2", "<", "1.10.0"],
    ["compare-versions", "1.2.3", "~", "1.10.0"],
    # show-log, at each verbosity, on good and damaged files
    ["show-log", "a.db"],
    ["-m", "show-log", "a.db"],
    ["-mm", "show-log", "a.db"],
    ["show-log", "-m", "--more", "deleted.db"],
    ["-mm", "show-log", "bad.db"],
    ["-m", "show-log", "cut.db"],
    ["show-log", "garbage.db"],
    ["-mm", "show-log", "unknown.db"],
    ["show-log", "zero.db"],
    ["show-log", "nonexistent.db"],
    # query and transact
    ["query", "a.db", j(SELECT_GLOBAL)],
    ["query", "deleted.db", j(SELECT_GLOBAL)],
    ["query", "bad.db", j(SELECT_GLOBAL)],
    ["query", "cut.db", j(SELECT_GLOBAL)],
    ["query", "garbage.db", j(SELECT_GLOBAL)],
    ["query", "unknown.db", j(SELECT_GLOBAL)],
    ["query", "nodelete.db", j(SELECT_GLOBAL)],
    ["query", "notadb.db", "[]"],
    ["query", "zero.db", "[]"],
    ["query", "cluster.db", "[]"],
    ["query", "a.db", "["],
    ["query", "a.db", "{}"],
    ["query", "a.db", "[]"],
    ["query", "a.db", '"x"'],
    ["query", "a.db", j(["hardware_vtep", {"op": "select", "table": "Nope", "where": []}])],
    ["query", "deleted.db", j(["hardware_vtep", {"op": "insert", "table": "Global",
                                                  "row": {}}])],
    ["query", "a.db", j(["hardware_vtep", {"op": "insert", "table": "Global", "row": {}}])],
    ["transact", "bad.db", j(SELECT_GLOBAL)],
    ["transact", "bad.db", j(T_MUTATE)],
    ["transact", "nodelete.db", j(T_MUTATE)],
    ["query", "dangling.db", j(SELECT_GLOBAL)],
    ["-mm", "show-log", "dangling.db"],
    ["transact", "a.db", j(["hardware_vtep", {"op": "assert", "lock": "l"}])],
    ["transact", "a.db", j(["hardware_vtep", {"op": "wait", "table": "Global", "where": [],
                                              "rows": [], "until": "==", "timeout": 0}])],
    ["transact", "a.db", j(["hardware_vtep", {"op": "comment", "comment": "only"}])],
    ["transact", "reals.db", j(["r", {"op": "insert", "table": "T",
                                      "row": {"x": 0.1, "s": ["set", [1.0, 2.5e-7, 1e20]]}},
                                {"op": "select", "table": "T", "where": []}])],
    ["transact", "reals.db", '["r",{"op":"select","table":"T","where":[["x","==",1.0]]}]'],
    # compaction and conversion (the written files are compared below)
    ["compact", "nonexistent.db"],
    ["compact", "cut.db"],
    ["convert", "a.db", "nonexistent"],
    ["convert", "cluster.db", str(VTEP_SCHEMA)],
    # the command line itself
    [],
    ["foo"],
    ["query"],
    ["show-log", "a", "b"],
    ["create", "a", "b", "c"],
    ["--foo"],
    ["--foo=bar"],
    ["-x"],
    ["-mX"],
    ["--rbac-role"],
    ["--more=3"],
    ["--ver"],
    ["--cid=abc", "show-log", "a.db"],
    ["--election-timer=5", "show-log", "a.db"],
    ["-o"],
    ["list-commands"],
    ["--mo", "show-log", "a.db"],
    ["-v", "show-log", "a.db"],
    ["--", "show-log", "a.db"],
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a)[:60] or "(none)")
def test_same_output_and_status_as_ovsdb_tool(seed: Path, tmp_path: Path,
                                              args: list[str]) -> None:
    theirs, ours, _, _ = _run_both(seed, tmp_path, args)
    assert ours == theirs


@pytest.mark.parametrize("args", [
    ["create", "new.db", "bad-type.json"],
    ["schema-name", "bad-type.json"],
    ["schema-name", "not-schema.json"],
])
def test_schema_errors_fail_alike(seed: Path, tmp_path: Path, args: list[str]) -> None:
    """A schema OVS rejects is rejected the same way, up to the parser's own wording
    (which comes from hwvtep.ovsdb.schema)."""
    theirs, ours, _, d_ours = _run_both(seed, tmp_path, args)
    assert ours[0] == theirs[0] and ours[2] == theirs[2] == 1
    assert ours[1].startswith("ovsdb-tool: syntax ")
    lead = f'syntax error: failed to parse "{args[-1]}" as ovsdb schema: '
    assert lead in ours[1] and lead in theirs[1]
    assert not (d_ours / "new.db").exists()


def _read_back(d: Path, name: str) -> Any:
    """What OVS's ovsdb-tool reads from a file: every table, UUIDs renumbered."""
    tables = ["Global", PS, "Logical_Switch", "Physical_Locator", "Ucast_Macs_Remote"]
    ops = [{"op": "select", "table": t, "where": [],
            "columns": ["name"] if t in (PS, "Logical_Switch") else None} for t in tables]
    for op in ops:
        if op["columns"] is None:
            del op["columns"]
    cp = ovs("query", name, j(["hardware_vtep", *ops]), cwd=d)
    result = json.loads(cp.stdout)
    for r in result:
        for row in r["rows"]:
            row.pop("_version", None)
    return json.loads(mask_uuids(json.dumps(result, sort_keys=True)))


@pytest.mark.parametrize("args", [
    ["transact", "a.db", j(T_DELETE)],
    ["transact", "a.db", j(T_UPDATE)],
    ["transact", "dangling.db", j(T_MUTATE)],
    ["compact", "a.db"],
    ["compact", "a.db", "copy.db"],
    ["compact", "deleted.db"],
    ["convert", "a.db", str(VTEP_SCHEMA)],
    ["convert", "a.db", str(VTEP_SCHEMA), "converted.db"],
])
def test_written_files_read_the_same_in_ovs(seed: Path, tmp_path: Path,
                                           args: list[str]) -> None:
    theirs, ours, d_ovs, d_ours = _run_both(seed, tmp_path, args)
    assert ours == theirs
    target = args[3] if args[0] == "convert" and len(args) > 3 else (
        args[2] if args[0] == "compact" and len(args) > 2 else args[1])
    assert _read_back(d_ours, target) == _read_back(d_ovs, target)
    # OVS's show-log accepts every record we wrote.
    assert ovs("show-log", target, cwd=d_ours).returncode == 0
    if args[0] in ("compact", "convert"):
        for d in (d_ovs, d_ours):
            # A compacted file is the schema and one record of data, without "_is_diff".
            log = ovs("-m", "show-log", target, cwd=d).stdout
            assert log.count("record ") == 2
            records = (d / target).read_bytes().split(b"\n")
            assert b'"_is_diff"' not in records[3]
            assert not (d / (target + ".tmp")).exists()


def test_convert_drops_what_the_new_schema_lacks(seed: Path, tmp_path: Path) -> None:
    schema = json.loads(VTEP_SCHEMA.read_text())
    del schema["tables"]["Physical_Switch"]["columns"]["description"]
    schema["tables"]["Global"]["columns"]["other_config"]["type"] = {
        "key": "string", "value": "string", "min": 0, "max": "unlimited"}
    schema["version"] = "9.0.0"
    (seed / "reduced.ovsschema").write_text(j(schema))
    try:
        theirs, ours, d_ovs, d_ours = _run_both(
            seed, tmp_path, ["convert", "a.db", "reduced.ovsschema", "out.db"])
    finally:
        (seed / "reduced.ovsschema").unlink()
    assert ours == theirs
    for d in (d_ovs, d_ours):
        assert ovs("db-version", "out.db", cwd=d).stdout == "9.0.0\n"
    assert _read_back(d_ours, "out.db") == _read_back(d_ovs, "out.db")
    q = j(["hardware_vtep", {"op": "select", "table": PS, "where": []}])
    rows = json.loads(ovs("query", "out.db", q, cwd=d_ours).stdout)[0]["rows"]
    assert rows and all("description" not in r for r in rows)


@pytest.fixture
def held_lock(seed: Path, tmp_path: Path) -> Iterator[None]:
    """Both copies of a.db locked by this process, the way OVS locks."""
    from hwvtep.server.storage import FileLock

    locks = []
    for kind in ("ovs", "ours"):
        shutil.copytree(seed, tmp_path / kind)
        locks.append(FileLock.acquire(str(tmp_path / kind / "a.db")))
    yield
    for lock in locks:
        lock.release()


@pytest.mark.parametrize("args", [
    ["transact", "a.db", j(SELECT_GLOBAL)],
    ["compact", "a.db"],
    ["query", "a.db", j(SELECT_GLOBAL)],
    ["show-log", "a.db"],
])
def test_a_locked_file_is_refused_as_ovs_refuses_it(held_lock: None, tmp_path: Path,
                                                    args: list[str]) -> None:
    results = []
    for kind, cmd in (("ovs", ["ovsdb-tool"]), ("ours", [HWVTEP, "ovsdb-tool"])):
        cp = subprocess.run([*cmd, *args], cwd=tmp_path / kind, capture_output=True,
                            text=True, timeout=60)
        results.append((_mask(cp.stdout), _mask(cp.stderr).replace(str(os.getpid()), "N"),
                        cp.returncode))
    assert results[1] == results[0]


def test_ovs_tool_respects_our_lock(seed: Path, tmp_path: Path) -> None:
    from hwvtep.server.storage import Storage

    shutil.copy(seed / "a.db", tmp_path / "a.db")
    with Storage.open(str(tmp_path / "a.db")):
        cp = ovs("transact", "a.db", j(T_DELETE), cwd=tmp_path, check=False)
        assert cp.returncode == 1
        assert "failed to lock lockfile (Resource temporarily unavailable)" in cp.stderr
    assert ovs("transact", "a.db", j(T_DELETE), cwd=tmp_path).returncode == 0
