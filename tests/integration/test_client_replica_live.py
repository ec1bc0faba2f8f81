"""Replicas against live servers (ours and ovsdb-server 3.1): convergence under concurrent
writers, resynchronisation after a server restart (with changes made while it was down)
that neither misses nor repeats a change, transactions whose verification fails and are
retried, read-your-writes, and conditions.

"Right" always means: equal to a fresh dump read with a separate client, and the change
batches the replica reported, replayed on what it held before, give the same rows (each
batch's old rows exact, no row reported unchanged)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hwvtep.client import Client, Replica, SyncClient, Txn, TxnError
from hwvtep.ovsdb.data import datum_from_json
from hwvtep.ovsdb.database import Changes, Row

DB = "hardware_vtep"
VTEP_SCHEMA = Path("/usr/share/openvswitch/vtep.ovsschema")
HWVTEP = str(Path(sys.executable).with_name("hwvtep"))
Tables = dict[str, dict[str, Row]]
RunningServer = Any  # from this directory's conftest fixtures


def run(coro: Any, timeout: float = 120) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def dump(remote: str) -> Tables:
    """Every row of every table, read with a fresh blocking client, as a replica holds it."""
    with SyncClient(remote) as c:
        schema = c.get_schema(DB)
        t = Txn(DB)
        names = list(schema.tables)
        for name in names:
            t.select(name)
        res = c.transact(t)
    out: Tables = {}
    for i, name in enumerate(names):
        ts = schema.tables[name]
        rows: dict[str, Row] = {}
        for rj in res.rows(i):
            uuid = rj["_uuid"][1]
            row: Row = {c.name: datum_from_json(c.type, rj[c.name]) for c in ts.user_columns}
            row["_uuid"] = (uuid,)
            rows[uuid] = row
        out[name] = rows
    return out


def copy(tables: Tables) -> Tables:
    return {t: dict(rows) for t, rows in tables.items()}


def replay(start: Tables, batches: list[Changes]) -> Tables:
    tables = copy(start)
    for batch in batches:
        for t, rows in batch.items():
            cur = tables.setdefault(t, {})
            for u, (old, new) in rows.items():
                assert cur.get(u) == old, f"{t} {u}: reported old row is not what was held"
                assert old != new, f"{t} {u}: reported without a change"
                if new is None:
                    del cur[u]
                else:
                    cur[u] = new
    return tables


def nonempty(tables: Tables) -> Tables:
    return {t: r for t, r in tables.items() if r}


class Collector:
    """Takes a replica's change batches in the background."""

    def __init__(self, replica: Replica, initial: bool = False) -> None:
        self.stream = replica.changes(initial=initial)
        self.batches: list[Changes] = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        async for batch in self.stream:
            self.batches.append(batch)

    async def settle(self) -> list[Changes]:
        await asyncio.sleep(0)  # let the consumer take what was delivered
        return self.batches

    def stop(self) -> None:
        self.stream.close()
        self.task.cancel()


async def setup_global(remote: str) -> None:
    async with await Client.connect(remote) as c:
        t = Txn(DB)
        t.insert("Global", {})
        await c.transact(t)


async def writer(remote: str, seed: int, n: int) -> int:
    """Random inserts, modifications and deletions of switches; returns commits made."""
    rng = random.Random(seed)
    done = 0
    async with await Client.connect(remote, database=DB) as c:
        for i in range(n):
            t = Txn(DB)
            name = f"w{seed}-{rng.randrange(6)}"
            kind = rng.random()
            if kind < 0.4:
                ps = t.insert("Physical_Switch", {"name": name,
                                                  "tunnel_ips": ["set", [f"10.{seed}.0.{i}"]]})
                t.mutate("Global", [], [["switches", "insert", ["set", [ps]]]])
                t.insert("Logical_Switch", {"name": f"ls-{seed}-{i}", "tunnel_key": i})
            elif kind < 0.8:
                t.update("Physical_Switch", [["name", "==", name]], {
                    "description": f"d{i}",
                    "other_config": ["map", [[f"k{rng.randrange(3)}", str(i)]]]})
                t.mutate("Logical_Switch", [["name", "includes", f"ls-{seed}-{i - 1}"]],
                         [["tunnel_key", "+=", 1000]])
            else:
                t.delete("Logical_Switch", [["name", "==", f"ls-{seed}-{rng.randrange(i + 1)}"]])
                t.update("Global", [], {"switches": ["set", []]})
            try:
                await c.transact(t)
                done += 1
            except TxnError:
                pass  # e.g. a duplicate switch name: nothing committed, fine
    return done


def test_replica_converges_under_concurrent_writers(any_server: RunningServer) -> None:
    remote = any_server.unix

    async def main() -> None:
        await setup_global(remote)
        replica = await Replica.open(remote, DB)
        col = Collector(replica, initial=True)
        try:
            counts = await asyncio.gather(*(writer(remote, s, 25) for s in range(3)))
            assert sum(counts) > 30
            await replica.sync()
            fresh = dump(remote)
            assert replica.tables == fresh
            assert nonempty(replay({}, await col.settle())) == nonempty(fresh)
            assert replica.core.n_syncs == 1
        finally:
            col.stop()
            await replica.close()
    run(main())


def _restart(srv: RunningServer) -> None:
    """Start the server again on its database file, socket and port."""
    common = [f"--remote=punix:{srv.sock}", f"--remote=ptcp:{srv.port}:127.0.0.1",
              f"--unixctl={srv.ctl}", f"--pidfile={srv.pidfile}", f"--log-file={srv.log}"]
    if srv.kind == "ovs":
        cmd = ["/usr/sbin/ovsdb-server", "--no-chdir", *common, str(srv.db)]
    else:
        cmd = [HWVTEP, "ovsdb-server", *common, str(srv.db)]
    srv.proc = subprocess.Popen(cmd, env=srv.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with SyncClient(srv.unix, timeout=1, max_tries=1) as c:
                c.list_dbs()
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _offline_transact(srv: RunningServer, ops: list[dict[str, Any]]) -> Any:
    tool = ["ovsdb-tool"] if srv.kind == "ovs" else [HWVTEP, "ovsdb-tool"]
    cp = subprocess.run([*tool, "transact", str(srv.db), json.dumps([DB, *ops])],
                        capture_output=True, text=True, env=srv.env, timeout=30, check=True)
    result = json.loads(cp.stdout)
    assert not any(isinstance(r, dict) and "error" in r for r in result), result
    return result


def test_replica_resyncs_after_server_restart(any_server: RunningServer) -> None:
    """Changes made while the server was down (offline, with ovsdb-tool) reach the replica
    exactly once; nothing it already had is reported again."""
    srv = any_server
    remote = srv.unix

    async def main() -> None:
        await setup_global(remote)
        await writer(remote, 1, 15)
        replica = await Replica.open(remote, DB, max_backoff=2000)
        col = Collector(replica)
        try:
            await writer(remote, 2, 10)
            await replica.sync()
            before = copy(replica.tables)
            n_before = len(await col.settle())
            srv.stop()
            async with asyncio.timeout(20):
                while replica.synced:
                    await asyncio.sleep(0.02)
            ls = sorted(before["Logical_Switch"].values(), key=lambda r: r["name"])
            _offline_transact(srv, [
                {"op": "insert", "table": "Logical_Switch",
                 "row": {"name": "offline", "tunnel_key": 77}},
                {"op": "update", "table": "Logical_Switch",
                 "where": [["_uuid", "==", ["uuid", ls[0]["_uuid"][0]]]],
                 "row": {"description": "changed offline"}},
                {"op": "delete", "table": "Logical_Switch",
                 "where": [["_uuid", "==", ["uuid", ls[1]["_uuid"][0]]]]}])
            _restart(srv)
            await replica.wait_synced(30)
            await replica.sync()
            fresh = dump(remote)
            assert replica.tables == fresh
            assert replica.session.core.n_ready == 2
            after_restart = (await col.settle())[n_before:]
            assert replay(before, after_restart) == fresh
            reported = sorted((t, u) for b in after_restart for t, rows in b.items()
                              for u in rows)
            differing = sorted((t, u) for t in fresh for u in set(before[t]) | set(fresh[t])
                               if before[t].get(u) != fresh[t].get(u))
            assert reported == differing
            assert len(differing) == 3
        finally:
            col.stop()
            await replica.close()
    run(main())


def test_verification_failure_is_retried(any_server: RunningServer) -> None:
    remote = any_server.unix

    async def main() -> None:
        replica = await Replica.open(remote, DB)
        other = SyncClient(remote)
        try:
            def make(t: Txn) -> None:
                t.insert("Logical_Switch", {"name": ("counter",), "tunnel_key": (0,)})
            (res, _) = await replica.transact(make)
            uuid = res.uuid("row1")
            # Read-your-writes: the commit is in the copy when transact returns.
            assert replica.row("Logical_Switch", uuid) is not None

            attempts = 0

            def bump(t: Txn) -> int:
                nonlocal attempts
                attempts += 1
                row = replica.row("Logical_Switch", uuid)
                assert row is not None
                t.verify("Logical_Switch", row, ["tunnel_key"])
                value: int = row["tunnel_key"][0]
                t.update_row("Logical_Switch", uuid, {"tunnel_key": (value + 1,)})
                if attempts == 1:
                    # Someone else changes what we read before our transaction gets there.
                    o = Txn(DB)
                    o.mutate("Logical_Switch", [["_uuid", "==", ["uuid", uuid]]],
                             [["tunnel_key", "+=", 10]])
                    other.transact(o)
                return value

            (_, seen) = await replica.transact(bump)
            assert attempts == 2 and seen == 10
            assert replica.row("Logical_Switch", uuid)["tunnel_key"] == (11,)  # type: ignore[index]

            # Two replicas incrementing the same value concurrently lose no increment.
            replica2 = await Replica.open(remote, DB)
            tries = [0, 0]

            async def incr(r: Replica, who: int, n: int) -> None:
                def step(t: Txn) -> None:
                    tries[who] += 1
                    row = r.row("Logical_Switch", uuid)
                    assert row is not None
                    t.verify("Logical_Switch", row, ["tunnel_key"])
                    key = row["tunnel_key"][0]
                    t.update_row("Logical_Switch", uuid, {"tunnel_key": (key + 1,)})
                for _ in range(n):
                    await r.transact(step)
                    await asyncio.sleep(0)

            try:
                await asyncio.gather(incr(replica, 0, 15), incr(replica2, 1, 15))
            finally:
                await replica2.close()
            await replica.sync()
            assert replica.row("Logical_Switch", uuid)["tunnel_key"] == (41,)  # type: ignore[index]
            assert dump(remote)["Logical_Switch"][uuid]["tunnel_key"] == (41,)
            assert sum(tries) >= 30
        finally:
            other.close()
            await replica.close()
    run(main())


def test_conditions_live(any_server: RunningServer) -> None:
    remote = any_server.unix

    async def main() -> None:
        async with await Client.connect(remote) as c:
            t = Txn(DB)
            for i in range(6):
                t.insert("Logical_Switch", {"name": f"ls{i}", "tunnel_key": i})
            await c.transact(t)
        replica = await Replica.open(remote, DB, tables={"Logical_Switch": ["name",
                                                                             "tunnel_key"]},
                                     conditions={"Logical_Switch": [["tunnel_key", "<", 3]]})
        col = Collector(replica)
        try:
            def names() -> set[str]:
                return {r["name"][0] for r in replica.rows("Logical_Switch").values()}
            assert names() == {"ls0", "ls1", "ls2"}
            await replica.set_condition("Logical_Switch", [["tunnel_key", ">=", 4]], timeout=10)
            assert names() == {"ls4", "ls5"}
            (batch,) = await col.settle()
            assert len(batch["Logical_Switch"]) == 5  # three left, two came
            async with await Client.connect(remote) as c:
                t = Txn(DB)
                t.update("Logical_Switch", [["name", "==", "ls0"]], {"tunnel_key": 9})
                t.update("Logical_Switch", [["name", "==", "ls5"]], {"tunnel_key": 0})
                await c.transact(t)
            await replica.sync()
            assert names() == {"ls0", "ls4"}
            await replica.set_condition("Logical_Switch", None, timeout=10)
            assert len(names()) == 6
        finally:
            col.stop()
            await replica.close()
    run(main())
