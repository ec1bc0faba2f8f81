"""200 concurrent clients transacting and monitoring one server for 30 seconds.

Every client keeps a monitor (update, update2 or update3 flavour) on the tables it writes
and, at the same time, for 30 s (and at most MAX_TXNS_PER_CLIENT transactions) inserts,
modifies and deletes its own rows and increments one shared counter with "mutate". At the end: no
request failed, the counter equals the number of acknowledged increments (no lost
update), and every client's replica equals the database.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from pathlib import Path
from typing import Any

import pytest
from server_util import AsyncClient, Replica, Server, table_from_select

from hwvtep.ovsdb.jsonrpc import Error, Notification
from hwvtep.ovsdb.schema import bundled_schema

pytestmark = pytest.mark.slow

DB = "hardware_vtep"
SCHEMA = bundled_schema("hardware_vtep")
N_CLIENTS = 200
DURATION_S = 30.0
MAX_TXNS_PER_CLIENT = 200  # the loops are bounded by time and count
DEADLINE_S = 120  # only guards against a hang
COLUMNS = {
    "Ucast_Macs_Remote": ["MAC", "ipaddr", "logical_switch", "locator"],
    "Logical_Switch": ["name", "tunnel_key", "description"],
}
METHODS = ["monitor", "monitor_cond", "monitor_cond_since"]


def _requests(method: str) -> dict[str, Any]:
    if method == "monitor":
        return {t: {"columns": cols} for t, cols in COLUMNS.items()}
    return {t: [{"columns": cols}] for t, cols in COLUMNS.items()}


class LoadClient:
    def __init__(self, idx: int, client: AsyncClient, method: str) -> None:
        self.idx = idx
        self.c = client
        self.method = method
        self.replica = Replica(SCHEMA, COLUMNS)
        self.increments = 0
        self.errors: list[Any] = []
        self.notes = 0
        self.reader: asyncio.Task[None] | None = None

    async def start_monitor(self) -> None:
        params: list[Any] = [DB, f"mon{self.idx}", _requests(self.method)]
        if self.method == "monitor_cond_since":
            params.append("00000000-0000-0000-0000-000000000000")
        result = await self.c.result(self.method, params)
        if self.method == "monitor_cond_since":
            self.replica.apply(result[2], 3)
        else:
            self.replica.apply(result, 1 if self.method == "monitor" else 2)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            note: Notification = await self.c.notes.get()
            self.notes += 1
            self.replica.apply_notification(note)

    async def work(self, ls_uuid: str, loc_uuid: str, counter_uuid: str) -> None:
        rng = random.Random(self.idx)
        mine: list[str] = []
        end = time.monotonic() + DURATION_S
        for k in range(MAX_TXNS_PER_CLIENT):
            if time.monotonic() >= end:
                break
            ops: list[Any] = [{"op": "mutate", "table": "Logical_Switch",
                               "where": [["_uuid", "==", ["uuid", counter_uuid]]],
                               "mutations": [["tunnel_key", "+=", 1]]}]
            roll = rng.random()
            if mine and roll < 0.2:
                ops.append({"op": "delete", "table": "Ucast_Macs_Remote",
                            "where": [["_uuid", "==", ["uuid", mine.pop()]]]})
            elif mine and roll < 0.5:
                ops.append({"op": "update", "table": "Ucast_Macs_Remote",
                            "where": [["_uuid", "==", ["uuid", rng.choice(mine)]]],
                            "row": {"ipaddr": f"10.{self.idx % 250}.{k}.{rng.randrange(250)}"}})
            else:
                ops.append({"op": "insert", "table": "Ucast_Macs_Remote", "row": {
                    "MAC": f"02:{self.idx >> 8:02x}:{self.idx & 255:02x}:{k >> 8:02x}:"
                           f"{k & 255:02x}:01",
                    "logical_switch": ["uuid", ls_uuid],
                    "locator": ["uuid", loc_uuid]}})
            reply = await self.c.call("transact", [DB, *ops])
            if isinstance(reply, Error) or any(
                    isinstance(r, dict) and "error" in r for r in reply.result):
                self.errors.append(reply)
                continue
            self.increments += 1
            if ops[1]["op"] == "insert":
                mine.append(reply.result[1]["uuid"][1])
            # About 150 commits/s in all, each fanned out to 200 monitors.
            await asyncio.sleep(0.5 + rng.random() * 1.5)


async def _scenario(srv: Server) -> tuple[list[LoadClient], dict[str, Any]]:
    setup = await AsyncClient.unix(srv.sock)
    # The locator is not a root row: a MAC that is never deleted keeps it alive.
    res = await setup.result("transact", [
        DB,
        {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
         "row": {"name": "load"}},
        {"op": "insert", "table": "Logical_Switch", "row": {"name": "counter",
                                                            "tunnel_key": 0}},
        {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc", "row": {
            "dst_ip": "192.0.2.1", "encapsulation_type": "vxlan_over_ipv4"}},
        {"op": "insert", "table": "Ucast_Macs_Remote", "row": {
            "MAC": "02:ff:ff:ff:ff:ff", "logical_switch": ["named-uuid", "ls"],
            "locator": ["named-uuid", "loc"]}}])
    ls_uuid, counter_uuid, loc_uuid = (r["uuid"][1] for r in res[:3])

    clients: list[LoadClient] = []
    for i in range(N_CLIENTS):
        ac = await (AsyncClient.unix(srv.sock) if i % 2 else
                    AsyncClient.tcp("127.0.0.1", srv.port))
        clients.append(LoadClient(i, ac, METHODS[i % 3]))
    await asyncio.gather(*(lc.start_monitor() for lc in clients))
    await asyncio.gather(*(lc.work(ls_uuid, loc_uuid, counter_uuid) for lc in clients))

    # A last commit: once a client's replica has it, it has every earlier update too.
    await setup.result("transact", [DB, {"op": "insert", "table": "Logical_Switch",
                                         "row": {"name": "done"}}])

    async def caught_up(lc: LoadClient) -> None:
        while not any(r["name"] == frozenset(["done"])
                      for r in lc.replica.tables.get("Logical_Switch", {}).values()):
            await asyncio.sleep(0.05)
    await asyncio.gather(*(caught_up(lc) for lc in clients))

    final = {}
    for table, cols in COLUMNS.items():
        rows = (await setup.result("transact", [DB, {"op": "select", "table": table,
                                                     "where": []}]))[0]["rows"]
        final[table] = table_from_select(SCHEMA, table, rows, cols)
    for lc in clients:
        assert lc.reader is not None
        lc.reader.cancel()
        await lc.c.close()
    await setup.close()
    return clients, final


def test_200_clients_transacting_and_monitoring(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    # 200 replicas make many objects; cyclic GC passes over them (they find nothing)
    # would take most of this process's time.
    gc.disable()
    try:
        t = time.monotonic()
        clients, final = asyncio.run(asyncio.wait_for(_scenario(srv), DEADLINE_S))
        took = time.monotonic() - t
        assert srv.proc is not None and srv.proc.poll() is None
    finally:
        gc.enable()
        srv.stop()
    errors = [e for lc in clients for e in lc.errors]
    assert not errors, errors[:3]
    total = sum(lc.increments for lc in clients)
    assert took >= DURATION_S
    assert total >= N_CLIENTS * 10, "the load did not commit enough to test anything"
    (counter,) = [r for r in final["Logical_Switch"].values()
                  if r["name"] == frozenset(["counter"])]
    assert counter["tunnel_key"] == frozenset([total]), "an increment was lost"
    for lc in clients:
        for table in COLUMNS:
            assert lc.replica.tables.get(table, {}) == final[table], \
                f"client {lc.idx} ({lc.method}) diverged on {table}"
    print(f"\n{N_CLIENTS} clients, {total} transactions, "
          f"{sum(lc.notes for lc in clients)} notifications in {took:.1f}s")
