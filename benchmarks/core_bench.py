"""Throughput and memory of the OVSDB core's transaction engine, in process.

Prints three figures for the hardware_vtep schema:

* single-row ``Ucast_Macs_Remote`` insert transactions per second (JSON text parsed,
  executed, committed and applied, result built);
* rows per second of one transaction inserting many ``Ucast_Macs_Remote`` rows;
* bytes of memory per stored ``Ucast_Macs_Remote`` row (tracemalloc).

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
    return "02:%02x:%02x:%02x:%02x:%02x" % (
        (i >> 32) & 255, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)


def _insert_op(i: int, ls: str, loc: str) -> dict[str, Any]:
    return {"op": "insert", "table": "Ucast_Macs_Remote",
            "row": {"MAC": _mac(i), "logical_switch": ["uuid", ls], "locator": ["uuid", loc],
                    "ipaddr": "192.168.%d.%d" % ((i >> 8) & 255, i & 255)}}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--txns", type=int, default=20000)
    ap.add_argument("--rows", type=int, default=100000)
    args = ap.parse_args()
    print(f"single-row insert transactions: {bench_txns(args.txns):,.0f} tx/s")
    print(f"bulk insert ({args.rows:,} rows in one transaction): "
          f"{bench_bulk(args.rows):,.0f} rows/s")
    print(f"memory per Ucast_Macs_Remote row: {bench_memory(args.rows):,.0f} bytes")


if __name__ == "__main__":
    main()
