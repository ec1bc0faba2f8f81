"""Our where clauses and mutations against ovsdb-server 3.1's, run through ``ovsdb-tool``.

``tests/data/condmut_cases.json`` holds clauses and mutations with the result Open vSwitch
gives on one row (a match, the mutated values, or the exact error object); the unit tests
check our code against that file, and this module proves the file is what OVS does.
``HWVTEP_REGEN=1`` rewrites the recorded results from OVS instead of checking them.

Two more tests draw random rows and where clauses and compare the rows selected by a
transaction (AND) and by a ``monitor_cond`` request to ovsdb-server (OR).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hwvtep.ovsdb.condition import parse_monitor_condition, parse_where
from hwvtep.ovsdb.data import datum_from_json, datum_to_json, default_datum
from hwvtep.ovsdb.schema import DatabaseSchema

DATA = Path(__file__).parent.parent / "data"
SCHEMA_FILE = DATA / "condmut.ovsschema"
CASES_FILE = DATA / "condmut_cases.json"
OVSDB_TOOL = shutil.which("ovsdb-tool")
OVSDB_SERVER = shutil.which("ovsdb-server") or (
    "/usr/sbin/ovsdb-server" if Path("/usr/sbin/ovsdb-server").exists() else None)

pytestmark = [
    pytest.mark.ovs,
    pytest.mark.skipif(OVSDB_TOOL is None,
                       reason="ovsdb-tool is not installed: cannot compare with Open vSwitch"),
]


def _transact(db: Path, ops: list[Any]) -> list[Any]:
    assert OVSDB_TOOL is not None
    out = subprocess.run([OVSDB_TOOL, "transact", str(db), json.dumps(["CondMut", *ops])],
                         capture_output=True, text=True, check=True, timeout=60)
    result: list[Any] = json.loads(out.stdout)
    return result


def _fresh_db(tmp: Path, name: str) -> Path:
    assert OVSDB_TOOL is not None
    db = tmp / name
    subprocess.run([OVSDB_TOOL, "create", str(db), str(SCHEMA_FILE)], check=True, timeout=60)
    return db


def _ovs_where(db: Path, where: list[Any]) -> dict[str, Any]:
    r = _transact(db, [{"op": "select", "table": "T", "where": where, "columns": ["i"]}])[0]
    if "error" in r:
        return r  # type: ignore[no-any-return]
    return {"match": bool(r["rows"])}


def _ovs_mutate(base: Path, work: Path, mutations: list[Any]) -> dict[str, Any]:
    shutil.copyfile(base, work)
    cols = sorted({m[0] for m in mutations if isinstance(m, list) and m
                   and isinstance(m[0], str)} & set(SCHEMA.tables["T"].columns))
    r = _transact(work, [
        {"op": "mutate", "table": "T", "where": [], "mutations": mutations},
        {"op": "select", "table": "T", "where": [], "columns": cols or ["i"]},
    ])
    if "error" in r[0]:
        return r[0]  # type: ignore[no-any-return]
    table = SCHEMA.tables["T"]
    # Reals come back in OVS's %.17g text; compare canonical JSON of the parsed datums.
    row = r[1]["rows"][0]
    return {"row": {c: datum_to_json(table.columns[c].type,
                                     datum_from_json(table.columns[c].type, row[c]))
                    for c in cols}}


SCHEMA = DatabaseSchema.from_text(SCHEMA_FILE.read_text())


def test_recorded_cases_are_what_open_vswitch_does(tmp_path: Path) -> None:
    cases = json.loads(CASES_FILE.read_text())
    base = _fresh_db(tmp_path, "base.db")
    _transact(base, [{"op": "insert", "table": "T", "row": cases["row"]}])
    regen = os.environ.get("HWVTEP_REGEN") == "1"
    mismatches = []
    for case in cases["where"]:
        got = _ovs_where(base, case[0])
        if regen:
            case[1] = got
        elif got != case[1]:
            mismatches.append(("where", case[0], case[1], got))
    work = tmp_path / "work.db"
    for case in cases["mutate"]:
        got = _ovs_mutate(base, work, case[0])
        if regen:
            case[1] = got
        elif got != case[1]:
            mismatches.append(("mutate", case[0], case[1], got))
    if regen:
        CASES_FILE.write_text(
            "{\n" + ",\n".join(
                f'"{k}": ' + (json.dumps(v) if k == "row" else
                              "[\n" + ",\n".join(json.dumps(c) for c in v) + "\n]")
                for k, v in cases.items()) + "\n}\n")
    assert not mismatches


# --- random rows and clauses ----------------------------------------------------------

def _random_value(rng: random.Random, col: str) -> Any:
    ints = [-2, 0, 1, 2, 3]
    if col == "i":
        return rng.choice(ints)
    if col == "r":
        return rng.choice([-1.5, 0.0, 1.0, 2.5])
    if col == "s":
        return rng.choice(["", "a", "b", "ab"])
    if col == "oi":
        return ["set", rng.sample(ints, rng.randint(0, 1))]
    if col == "si":
        return ["set", rng.sample(ints, rng.randint(0, 3))]
    if col == "ss":
        return ["set", rng.sample(["a", "b", "c"], rng.randint(0, 3))]
    assert col == "m"
    keys = rng.sample(["k1", "k2", "k3"], rng.randint(0, 3))
    return ["map", [[k, rng.choice(["x", "y"])] for k in keys]]


def _random_clause(rng: random.Random) -> Any:
    col = rng.choice(["i", "r", "s", "oi", "si", "ss", "m"])
    if col in ("i", "r", "oi"):
        f = rng.choice(["<", "<=", "==", "!=", ">=", ">", "includes", "excludes"])
    else:
        f = rng.choice(["==", "!=", "includes", "excludes"])
    v = _random_value(rng, col)
    if f in ("<", "<=", ">=", ">") and col == "oi":
        v = rng.choice([-2, 0, 1, 2, 3])
    return [col, f, v]


def _random_db(tmp_path: Path, rng: random.Random) -> tuple[Path, list[dict[str, Any]]]:
    """A database of 40 random rows (column "im" numbers them) and the rows as datums."""
    table = SCHEMA.tables["T"]
    db = _fresh_db(tmp_path, "rand.db")
    inserts = []
    for n in range(40):
        row = {c: _random_value(rng, c) for c in ("i", "r", "s", "oi", "si", "ss", "m")}
        row["im"] = n
        row["e"] = "a"
        inserts.append({"op": "insert", "table": "T", "row": row})
    assert all("error" not in r for r in _transact(db, inserts))
    rows_json = _transact(db, [{"op": "select", "table": "T", "where": []}])[0]["rows"]
    rows = []
    for rj in rows_json:
        row = {name: default_datum(c.type) for name, c in table.columns.items()}
        row.update({name: datum_from_json(table.columns[name].type, v)
                    for name, v in rj.items()})
        rows.append(row)
    return db, rows


def test_random_selects_match_open_vswitch(tmp_path: Path) -> None:
    rng = random.Random(7047)
    table = SCHEMA.tables["T"]
    db, rows = _random_db(tmp_path, rng)
    wheres = [[_random_clause(rng) for _ in range(rng.randint(0, 3))] for _ in range(300)]
    selects = [{"op": "select", "table": "T", "where": w, "columns": ["im"]} for w in wheres]
    results = _transact(db, selects)
    for where, result in zip(wheres, results, strict=True):
        expected = sorted(r["im"] for r in result["rows"])
        cond = parse_where(table, where)
        got = sorted(r["im"][0] for r in rows if cond.evaluate(r))
        assert got == expected, where


class _RawClient:
    """Just enough JSON-RPC over a unix socket to ask ovsdb-server for monitor_cond."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(str(path))
        self.buf = ""
        self.decoder = json.JSONDecoder()

    def call(self, method: str, params: list[Any], id_: int) -> dict[str, Any]:
        self.sock.sendall(json.dumps({"method": method, "params": params, "id": id_}).encode())
        while True:
            try:
                msg, end = self.decoder.raw_decode(self.buf)
            except ValueError:
                chunk = self.sock.recv(65536)
                assert chunk, "ovsdb-server closed the connection"
                self.buf += chunk.decode()
                continue
            self.buf = self.buf[end:].lstrip()
            if msg.get("id") == id_:
                return msg  # type: ignore[no-any-return]


@pytest.mark.skipif(OVSDB_SERVER is None, reason="ovsdb-server is not installed")
def test_random_monitor_conditions_match_ovsdb_server(tmp_path: Path) -> None:
    assert OVSDB_SERVER is not None
    rng = random.Random(4242)
    table = SCHEMA.tables["T"]
    db, rows = _random_db(tmp_path, rng)
    sock = tmp_path / "db.sock"
    server = subprocess.Popen(
        [OVSDB_SERVER, f"--remote=punix:{sock}", f"--unixctl={tmp_path / 'ctl'}",
         "--no-chdir", f"--log-file={tmp_path / 'server.log'}", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert server.poll() is None and time.monotonic() < deadline, "no ovsdb-server"
            time.sleep(0.02)
        client = _RawClient(sock)
        wheres: list[list[Any]] = [[], [True], [False], [False, False]]
        for _ in range(150):
            where: list[Any] = [_random_clause(rng) for _ in range(rng.randint(1, 3))]
            if rng.random() < 0.15:
                where.insert(rng.randint(0, len(where)), rng.choice([True, False]))
            wheres.append(where)
        for n, where in enumerate(wheres):
            reply = client.call("monitor_cond", [
                "CondMut", n, {"T": [{"columns": ["im"], "where": where}]}], n)
            assert reply.get("error") is None, (where, reply)
            # update2 "initial" leaves out columns holding their default value (im = 0).
            expected = sorted(r["initial"].get("im", 0)
                              for r in reply["result"].get("T", {}).values())
            cond = parse_monitor_condition(table, where)
            got = sorted(r["im"][0] for r in rows if cond.evaluate(r))
            assert got == expected, where
            assert cond.is_true == (not where or True in where)
            assert cond.is_false == (bool(where) and all(c is False for c in where))
    finally:
        server.terminate()
        server.wait(timeout=20)
