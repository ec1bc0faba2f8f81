"""A replica and a client on a 3-node Open vSwitch Raft cluster (ovsdb-tool create-cluster /
join-cluster, three ovsdb-server 3.1): both pick the leader through ``_Server``, and when
the leader is killed they move to the new one; the replica resynchronises from the
cluster's transaction history, reports every change once, and equals a fresh dump."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_client_replica_live import dump, replay

from hwvtep.client import CallTimeout, Client, ConnectionLost, Replica, SyncClient, Txn
from hwvtep.ovsdb.types import ZERO_UUID

DB = "hardware_vtep"
SCHEMA = Path("/usr/share/openvswitch/vtep.ovsschema")
OVSDB_SERVER = "/usr/sbin/ovsdb-server"
MISSING = [t for t in ("ovsdb-tool", "ovs-appctl") if shutil.which(t) is None]
if not os.access(OVSDB_SERVER, os.X_OK):
    MISSING.append(OVSDB_SERVER)

pytestmark = [
    pytest.mark.ovs,
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"Open vSwitch is not installed (missing: "
                                             f"{', '.join(MISSING)}): no Raft cluster"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(eq=False)
class Member:
    name: str
    dir: Path
    raft: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.dir / f"{self.name}.db"

    @property
    def ctl(self) -> Path:
        return self.dir / f"{self.name}.ctl"

    @property
    def sock(self) -> Path:
        return self.dir / f"{self.name}.sock"

    @property
    def tcp(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "OVS_RUNDIR": str(self.dir), "OVS_LOGDIR": str(self.dir),
                "OVS_DBDIR": str(self.dir)}

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [OVSDB_SERVER, "--no-chdir", f"--remote=punix:{self.sock}",
             f"--remote=ptcp:{self.port}:127.0.0.1", f"--unixctl={self.ctl}",
             f"--pidfile={self.dir / (self.name + '.pid')}",
             f"--log-file={self.dir / (self.name + '.log')}", str(self.db)],
            env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def role(self) -> str | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        cp = subprocess.run(["ovs-appctl", "-t", str(self.ctl), "cluster/status", DB],
                            capture_output=True, text=True, env=self.env(), timeout=10)
        m = re.search(r"^Role: (\w+)", cp.stdout, re.M)
        joined = re.search(r"^Status: cluster member", cp.stdout, re.M)
        return m.group(1) if m and joined else None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def roles(members: list[Member]) -> dict[str, str | None]:
    return {m.name: m.role() for m in members}


def wait_leader(members: list[Member], timeout: float = 30,
                need_members: int = 3) -> Member:
    deadline = time.monotonic() + timeout
    while True:
        r = roles(members)
        leaders = [m for m in members if r[m.name] == "leader"]
        if len(leaders) == 1 and sum(v is not None for v in r.values()) >= need_members:
            return leaders[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no single leader with {need_members} members: {r}")
        time.sleep(0.1)


@pytest.fixture
def cluster() -> Iterator[list[Member]]:
    d = Path(tempfile.mkdtemp(prefix="hvc-"))
    members = [Member(f"s{i}", d, f"tcp:127.0.0.1:{free_port()}", free_port())
               for i in (1, 2, 3)]
    try:
        env = members[0].env()
        subprocess.run(["ovsdb-tool", "create-cluster", str(members[0].db), str(SCHEMA),
                        members[0].raft], check=True, capture_output=True, env=env, timeout=30)
        for m in members[1:]:
            subprocess.run(["ovsdb-tool", "join-cluster", str(m.db), DB, m.raft,
                            members[0].raft], check=True, capture_output=True, env=env,
                           timeout=30)
        for m in members:
            m.start()
        wait_leader(members)
        yield members
    finally:
        for m in members:
            m.stop()
        shutil.rmtree(d, ignore_errors=True)


async def keep_writing(remotes: list[str], stop: asyncio.Event, done: list[str]) -> None:
    """Commit a new logical switch after another, across the failover."""
    client = await Client.connect(remotes, database=DB, timeout=60, max_backoff=2000)
    try:
        i = 0
        while not stop.is_set():
            t = Txn(DB)
            t.insert("Logical_Switch", {"name": f"live{i}", "tunnel_key": i})
            try:
                await client.transact(t, timeout=30)
                done.append(f"live{i}")
            except (ConnectionLost, CallTimeout):
                pass  # the leader went away mid-call; try again on the next one
            i += 1
            await asyncio.sleep(0.05)
    finally:
        await client.close()


def test_replica_follows_the_leader_when_it_is_killed(cluster: list[Member]) -> None:
    members = cluster
    remotes = [m.tcp for m in members]
    by_remote = {m.tcp: m for m in members}

    async def main() -> None:
        # Enough data for ovsdb-server to keep some transaction history.
        async with await Client.connect(remotes, database=DB, timeout=30) as c:
            t = Txn(DB)
            t.insert("Global", {})
            for i in range(100):
                t.insert("Physical_Locator", {"dst_ip": f"10.9.{i // 250}.{i % 250}",
                                              "encapsulation_type": "vxlan_over_ipv4"})
                t.insert("Logical_Switch", {"name": f"bulk{i}", "description": "x" * 20})
            await c.transact(t)
            leader = wait_leader(members)
            assert by_remote[str(c.remote)] is leader

        # A non-leader-only client may stay on a follower.
        follower = next(m for m in members if m is not leader)
        async with await Client.connect(follower.tcp, database=DB, leader_only=False,
                                        timeout=10) as c:
            assert str(c.remote) == follower.tcp
        with pytest.raises((CallTimeout, ConnectionLost)):
            await Client.connect(follower.tcp, database=DB, timeout=3)

        replica = await Replica.open(remotes, DB, timeout=30, max_backoff=2000)
        stream = replica.changes()
        batches: list[Any] = []

        async def collect() -> None:
            async for b in stream:
                batches.append(b)
        collector = asyncio.ensure_future(collect())
        stop = asyncio.Event()
        written: list[str] = []
        writing = asyncio.ensure_future(keep_writing(remotes, stop, written))
        try:
            assert by_remote[str(replica.session.remote)] is leader
            await asyncio.sleep(0.5)
            await replica.sync()
            assert replica.core.last_id != ZERO_UUID
            before_sync = replica.core.n_syncs
            snapshot = {t: dict(r) for t, r in replica.tables.items()}
            n0 = len(batches)

            leader.kill()
            async with asyncio.timeout(60):
                while not (replica.synced and replica.core.n_syncs > before_sync):
                    await asyncio.sleep(0.05)
            new_leader = wait_leader(members, need_members=2)
            assert new_leader is not leader
            assert by_remote[str(replica.session.remote)] is new_leader
            # The new leader still had our last transaction: only later changes came.
            assert replica.core.last_sync == "found"

            n_written = len(written)
            async with asyncio.timeout(60):
                while len(written) < n_written + 5:
                    await asyncio.sleep(0.05)
            stop.set()
            await writing
            await replica.sync()
            await asyncio.sleep(0)
            fresh = dump(f"unix:{new_leader.sock}")
            assert replica.tables == fresh
            assert replay(snapshot, batches[n0:]) == fresh
            names = {r["name"][0] for r in fresh["Logical_Switch"].values()}
            assert set(written) <= names
        finally:
            stop.set()
            with contextlib.suppress(BaseException):
                await writing
            stream.close()
            collector.cancel()
            await replica.close()

    asyncio.run(asyncio.wait_for(main(), 180))
    # The blocking client also finds the leader among the remotes.
    survivors = [m.tcp for m in members if m.proc is not None and m.proc.poll() is None]
    with SyncClient([m.tcp for m in members], database=DB, timeout=30) as sc:
        sc.wait_ready()
        assert str(sc.remote) in survivors
        assert roles(members)[by_remote[str(sc.remote)].name] == "leader"
