"""Throughput and memory of the OVSDB core's transaction engine, in process.

Prints three figures for the hardware_vtep schema:

* single-row ``Ucast_Macs_Remote`` insert transactions per second (JSON text parsed,
  executed, committed and applied, result built);
* rows per second of one transaction inserting many ``Ucast_Macs_Remote`` rows;
* bytes of memory per stored ``Ucast_Macs_Remote`` row (tracemalloc);
* ``hwvtep ovsdb-tool transact`` against OVS's ``ovsdb-tool transact`` adding one row to
  the same file of 10,000 rows (both timed in the same run, and their ratio).

Run: ``.venv/bin/python benchmarks/core_bench.py [--rows N] [--txns N]``.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from typing import Any

import orjson

from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.schema import bundled_schema
from hwvtep.ovsdb.transaction import execute


def _commit(db: Database, text: bytes) -> Any:
    out = execute(db, orjson.loads(text))
    if out.changes is not None:
        db.apply(out.changes)
    return out.result


def _setup() -> tuple[Database, str, str]:
    db = Database(bundled_schema("hardware_vtep"))
    res = _commit(db, orjson.dumps(["hardware_vtep",
        {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
         "row": {"name": "ls0", "tunnel_key": 5000}},
        {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
         "row": {"dst_ip": "10.0.0.1", "encapsulation_type": "vxlan_over_ipv4"}},
        # Keep the locator referenced whatever happens to the MACs.
        {"op": "insert", "table": "Ucast_Macs_Remote",
         "row": {"MAC": "00:00:00:00:00:00", "logical_switch": ["named-uuid", "ls"],
                 "locator": ["named-uuid", "loc"]}}]))
    return db, res[0]["uuid"][1], res[1]["uuid"][1]


def _mac(i: int) -> str:
    return ":".join(["02", *(f"{(i >> s) & 255:02x}" for s in (32, 24, 16, 8, 0))])


def _insert_op(i: int, ls: str, loc: str) -> dict[str, Any]:
    return {"op": "insert", "table": "Ucast_Macs_Remote",
            "row": {"MAC": _mac(i), "logical_switch": ["uuid", ls], "locator": ["uuid", loc],
                    "ipaddr": f"192.168.{(i >> 8) & 255}.{i & 255}"}}


def bench_txns(n: int) -> float:
    db, ls, loc = _setup()
    texts = [orjson.dumps(["hardware_vtep", _insert_op(i + 1, ls, loc)]) for i in range(n)]
    gc.collect()
    t0 = time.perf_counter()
    for text in texts:
        _commit(db, text)
    dt = time.perf_counter() - t0
    assert len(db.tables["Ucast_Macs_Remote"]) == n + 1
    return n / dt


def bench_bulk(n: int) -> float:
    db, ls, loc = _setup()
    text = orjson.dumps(["hardware_vtep", *(_insert_op(i + 1, ls, loc) for i in range(n))])
    gc.collect()
    t0 = time.perf_counter()
    _commit(db, text)
    dt = time.perf_counter() - t0
    assert len(db.tables["Ucast_Macs_Remote"]) == n + 1
    return n / dt


def bench_memory(n: int) -> float:
    db, ls, loc = _setup()
    ops = [_insert_op(i + 1, ls, loc) for i in range(n)]
    text = orjson.dumps(["hardware_vtep", *ops])
    del ops
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    out = execute(db, orjson.loads(text))
    assert out.changes is not None
    db.apply(out.changes)
    del out
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def bench_tool_transact(rows: int, runs: int = 5) -> tuple[float, float] | None:
    """Seconds (median of *runs*) for ``ovsdb-tool transact`` and ``hwvtep ovsdb-tool
    transact`` to add one row to the same file of *rows* Ucast_Macs_Remote rows (the file
    written and compacted by OVS's ovsdb-tool); None without OVS's ovsdb-tool.

    Each run starts from a fresh copy of the file, so both tools read it all, execute,
    append one record and exit. Our Python runs with its byte-code cache, as installed.
    """
    import os
    import shutil
    import statistics
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    tool = shutil.which("ovsdb-tool")
    schema = Path("/usr/share/openvswitch/vtep.ovsschema")
    if tool is None or not schema.exists():
        return None
    hwvtep = str(Path(sys.executable).with_name("hwvtep"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        subprocess.run([tool, "create", str(base), str(schema)], check=True)

        def ovs_transact(db: Path, ops: list[Any]) -> Any:
            out = subprocess.run([tool, "transact", str(db),
                                  orjson.dumps(["hardware_vtep", *ops]).decode()],
                                 check=True, capture_output=True)
            return orjson.loads(out.stdout)

        res = ovs_transact(base, [
            {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
             "row": {"name": "ls0", "tunnel_key": 5000}},
            {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
             "row": {"dst_ip": "10.0.0.1", "encapsulation_type": "vxlan_over_ipv4"}},
            # Keep the locator referenced (else it is garbage at once).
            {"op": "insert", "table": "Ucast_Macs_Remote",
             "row": {"MAC": "00:00:00:00:00:00", "logical_switch": ["named-uuid", "ls"],
                     "locator": ["named-uuid", "loc"]}}])
        ls, loc = res[0]["uuid"][1], res[1]["uuid"][1]
        for start in range(1, rows, 500):  # one argument may not exceed 128 KiB
            out = ovs_transact(base, [_insert_op(i, ls, loc)
                                      for i in range(start, min(rows, start + 500))])
            assert all("error" not in r for r in out), out[-1]
        subprocess.run([tool, "compact", str(base)], check=True)
        count = ovs_transact(base, [{"op": "select", "table": "Ucast_Macs_Remote",
                                     "where": [], "columns": ["MAC"]}])
        assert len(count[0]["rows"]) == rows
        txn = orjson.dumps(["hardware_vtep", {"op": "insert", "table": "Logical_Switch",
                                              "row": {"name": "ls1"}}]).decode()
        times: dict[str, list[float]] = {"ovs": [], "ours": []}
        cmds = {"ovs": [tool], "ours": [hwvtep, "ovsdb-tool"]}
        for i in range(runs + 1):
            for kind, cmd in cmds.items():
                db = Path(tmp) / f"{kind}.db"
                shutil.copy(base, db)
                t0 = time.perf_counter()
                subprocess.run([*cmd, "transact", str(db), txn], check=True,
                               capture_output=True, env=env)
                if i:  # the first run warms caches (and compiles our byte code)
                    times[kind].append(time.perf_counter() - t0)
        return statistics.median(times["ovs"]), statistics.median(times["ours"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--txns", type=int, default=20000)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--tool-rows", type=int, default=10000)
    args = ap.parse_args()
    print(f"single-row insert transactions: {bench_txns(args.txns):,.0f} tx/s")
    print(f"bulk insert ({args.rows:,} rows in one transaction): "
          f"{bench_bulk(args.rows):,.0f} rows/s")
    print(f"memory per Ucast_Macs_Remote row: {bench_memory(args.rows):,.0f} bytes")
    tool = bench_tool_transact(args.tool_rows)
    if tool is None:
        print("ovsdb-tool transact: OVS's ovsdb-tool is not installed, not compared")
    else:
        ovs, ours = tool
        print(f"ovsdb-tool transact on a {args.tool_rows:,}-row file: OVS {ovs * 1000:.0f} ms, "
              f"hwvtep {ours * 1000:.0f} ms ({ours / ovs:.1f}x OVS)")


if __name__ == "__main__":
    main()
