"""Commits survive a crash of the server, and the file stays one that OVS can read.

A commit is written to the log before its reply leaves (and fdatasync'ed first when the
transaction asks for "durable": true), so a SIGKILL at any moment loses nothing that a
client was told had committed. Online compaction keeps the data and holds clients up
only briefly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from server_util import (
    MISSING_OVS,
    AsyncClient,
    RawClient,
    Server,
    needs_ovs,
)

from hwvtep.ovsdb import log as ovlog
from hwvtep.ovsdb.jsonrpc import Error, Message, Reply, Request
from hwvtep.server import storage as storage_mod
from hwvtep.server.core import ServerCore

DB = "hardware_vtep"


def names_in(client: RawClient, table: str = "Logical_Switch") -> set[str]:
    res = client.transact(DB, {"op": "select", "table": table, "where": [],
                               "columns": ["name"]})
    return {r["name"] for r in res[0]["rows"]}


# --- ordering: the record is in the file before the reply is sent ---------------------


class FileCheckingLink:
    """A SessionLink that, at each send, notes the file's size and fdatasync count."""

    def __init__(self, path: Path, syncs: list[int]) -> None:
        self.path = path
        self.syncs = syncs
        self.sent: list[tuple[Message, int, int]] = []

    def send(self, msg: Message) -> None:
        self.sent.append((msg, self.path.stat().st_size, len(self.syncs)))

    def send_raw(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def backlogged(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return "test"


@pytest.mark.parametrize("durable", [False, True])
def test_commit_is_logged_before_reply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       durable: bool) -> None:
    path = tmp_path / "db"
    schema_json = json.loads(Path(storage_mod.__file__).parent.parent.joinpath(
        "schemas", "hardware_vtep.ovsschema").read_text())
    storage_mod.create(str(path), schema_json)
    syncs: list[int] = []
    real_sync = os.fdatasync

    def counting_sync(fd: int) -> None:
        syncs.append(fd)
        real_sync(fd)

    st = storage_mod.Storage.open(str(path))
    monkeypatch.setattr(os, "fdatasync", counting_sync)
    core = ServerCore(now=time.monotonic)
    core.add_database(DB, st.db, st, path=str(path))
    link = FileCheckingLink(path, syncs)
    session = core.open_session(link)
    size_before = path.stat().st_size
    ops: list[Any] = [DB, {"op": "insert", "table": "Logical_Switch",
                           "row": {"name": "ls0"}}]
    if durable:
        ops.append({"op": "commit", "durable": True})
    core.handle(session, Request("transact", ops, 1))
    ((reply, size_at_reply, syncs_at_reply),) = link.sent
    assert isinstance(reply, Reply), reply
    assert size_at_reply > size_before  # the record was written before the reply
    assert syncs_at_reply == (1 if durable else 0)
    st.close()
    # What was written is a complete record holding the row.
    data = path.read_bytes()
    first = ovlog.read_record(data, 0, str(path))
    assert isinstance(first, ovlog.Record)
    second = ovlog.read_record(data, first.end, str(path))
    assert isinstance(second, ovlog.Record)
    assert "ls0" in json.dumps(second.json)


# --- SIGKILL at a random moment under concurrent commits -------------------------------


async def _committer(srv: Server, idx: int, acked: dict[str, bool | None],
                     stop: asyncio.Event) -> int:
    """Insert rows (every third one durable) and delete some; record what was acked.

    acked[name] is True when an insert of *name* was acknowledged, False when its
    delete was, None while its delete is in flight. An operation in flight when the
    server dies may have gone either way.
    """
    c = await AsyncClient.unix(srv.sock)
    n = 0
    mine: list[str] = []
    rng = random.Random(idx)
    try:
        while not stop.is_set():
            n += 1
            if mine and rng.random() < 0.25:
                name = mine.pop(rng.randrange(len(mine)))
                ops: list[Any] = [DB, {"op": "delete", "table": "Logical_Switch",
                                       "where": [["name", "==", name]]}]
                acked_value = False
                acked[name] = None  # may or may not be committed if the server dies now
            else:
                name = f"c{idx}-{n}"
                ops = [DB, {"op": "insert", "table": "Logical_Switch",
                            "row": {"name": name, "description": "x" * rng.randrange(200)}}]
                acked_value = True
                acked[name] = None  # tried; committed or not if the server dies now
            if n % 3 == 0:
                ops.append({"op": "commit", "durable": True})
            reply = await c.call("transact", ops)
            assert isinstance(reply, Reply), reply
            assert not any("error" in r for r in reply.result), reply.result
            acked[name] = acked_value
            if acked_value:
                mine.append(name)
    except EOFError:
        pass
    finally:
        await c.close()
    return n


async def _load_then_kill(srv: Server, clients: int, kill_after: float,
                          acked: dict[str, bool]) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_committer(srv, i, acked, stop)) for i in range(clients)]
    await asyncio.sleep(kill_after)
    assert srv.pid is not None
    os.kill(srv.pid, signal.SIGKILL)
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    for r in done:
        if isinstance(r, BaseException) and not isinstance(r, EOFError | OSError):
            raise r


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_loses_no_acknowledged_commit(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    srv = Server(tmp_path / "s").start()
    acked: dict[str, bool | None] = {}
    try:
        asyncio.run(_load_then_kill(srv, 12, rng.uniform(0.8, 3.0), acked))
        srv.wait_gone()
        assert sum(v is True for v in acked.values()) > 50, \
            "the load did not commit enough to test anything"
        srv.start()
        with srv.client() as c:
            present = names_in(c)
        missing = {n for n, v in acked.items() if v is True and n not in present}
        resurrected = {n for n, v in acked.items() if v is False and n in present}
        assert not missing, f"acknowledged inserts lost: {sorted(missing)[:10]}"
        assert not resurrected, f"acknowledged deletes undone: {sorted(resurrected)[:10]}"
        # Nothing appears that no client ever tried to insert.
        assert present <= set(acked), sorted(present - set(acked))[:10]
        # The server keeps working on the recovered file, and it reopens again.
        with srv.client() as c:
            c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                            "row": {"name": "after-crash"}})
        srv.stop()
        srv.start()
        with srv.client() as c:
            assert names_in(c) == present | {"after-crash"}
        srv.stop()
        # Our own tools read it whole.
        with storage_mod.Storage.open(str(srv.db), read_only=True, strict=True) as st:
            assert {r["name"][0] for r in st.db.tables["Logical_Switch"].values()} \
                == present | {"after-crash"}
        if not MISSING_OVS:
            _check_ovs_reads(srv, present | {"after-crash"})
    finally:
        srv.stop()


def _check_ovs_reads(srv: Server, names: set[str]) -> None:
    show = srv.tool("ovsdb-tool", "show-log", str(srv.db))
    assert show.returncode == 0, show.stderr
    assert show.stdout.startswith('record 0: "hardware_vtep" schema')
    q = srv.tool("ovsdb-tool", "query", str(srv.db), json.dumps(
        [DB, {"op": "select", "table": "Logical_Switch", "where": [],
              "columns": ["name"]}]))
    assert q.returncode == 0, q.stderr
    assert {r["name"] for r in json.loads(q.stdout)[0]["rows"]} == names


@needs_ovs
@pytest.mark.ovs
def test_crash_with_torn_tail_is_repaired_and_ovs_reads_it(tmp_path: Path) -> None:
    """A half-written record at the end (a crash mid-write) is dropped on restart, then
    overwritten by the next commit; OVS's tools read the result."""
    srv = Server(tmp_path / "s").start()
    try:
        with srv.client() as c:
            for i in range(5):
                c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                                "row": {"name": f"ls{i}"}})
        srv.kill()
        data = srv.db.read_bytes()
        with open(srv.db, "ab") as f:
            f.write(b"OVSDB JSON 500 0123456789abcdef0123456789abcdef01234567\n{\"Logic")
        srv.start()
        with srv.client() as c:
            assert names_in(c) == {f"ls{i}" for i in range(5)}
            c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                            "row": {"name": "ls5"}})
        srv.stop()
        assert srv.db.read_bytes().startswith(data)
        _check_ovs_reads(srv, {f"ls{i}" for i in range(6)})
    finally:
        srv.stop()


@needs_ovs
@pytest.mark.ovs
def test_ovs_server_reads_our_file_and_we_read_its(tmp_path: Path) -> None:
    ours = Server(tmp_path / "ours").start()
    try:
        with ours.client() as c:
            ls = c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                                 "row": {"name": "red", "tunnel_key": 5000}})[0]["uuid"]
            c.transact(DB, {"op": "insert", "table": "Ucast_Macs_Remote",
                            "row": {"MAC": "aa:bb:cc:dd:ee:ff", "logical_switch": ls,
                                    "locator": ["named-uuid", "loc"]}},
                       {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
                        "row": {"dst_ip": "10.0.0.1", "encapsulation_type": "vxlan_over_ipv4"}})
    finally:
        ours.stop()
    ovs = Server(tmp_path / "ours", kind="ovs", port=ours.port)
    ovs.start()
    try:
        with ovs.client() as c:
            assert names_in(c) == {"red"}
            macs = c.transact(DB, {"op": "select", "table": "Ucast_Macs_Remote",
                                   "where": [], "columns": ["MAC"]})[0]["rows"]
            assert macs == [{"MAC": "aa:bb:cc:dd:ee:ff"}]
            c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                            "row": {"name": "blue"}})
        ovs.appctl("ovsdb-server/compact")
        with ovs.client() as c:
            c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                            "row": {"name": "green"}})
    finally:
        ovs.stop()
    again = Server(tmp_path / "ours", port=ours.port).start()
    try:
        with again.client() as c:
            assert names_in(c) == {"red", "blue", "green"}
    finally:
        again.stop()


# --- online compaction -----------------------------------------------------------------


def _fill(c: RawClient, n: int, prefix: str = "mac") -> None:
    ls = c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                         "row": {"name": f"{prefix}-ls"}})[0]["uuid"]
    ops: list[Any] = [{"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
                       "row": {"dst_ip": "10.1.1.1",
                               "encapsulation_type": "vxlan_over_ipv4"}}]
    for i in range(n):
        ops.append({"op": "insert", "table": "Ucast_Macs_Remote",
                    "row": {"MAC": f"02:00:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:"
                                   f"{i & 255:02x}:00",
                            "logical_switch": ls, "locator": ["named-uuid", "loc"]}})
    c.transact(DB, *ops, timeout=120)


def _macs(c: RawClient) -> set[str]:
    rows = c.transact(DB, {"op": "select", "table": "Ucast_Macs_Remote", "where": [],
                           "columns": ["MAC"]}, timeout=60)[0]["rows"]
    return {r["MAC"] for r in rows}


class LatencyProbe(threading.Thread):
    """Echo round trips in a loop on its own connection; keeps the worst one."""

    def __init__(self, srv: Server) -> None:
        super().__init__(daemon=True)
        self.client = srv.client(timeout=60)
        self.stop_flag = threading.Event()
        self.worst = 0.0
        self.count = 0

    def run(self) -> None:
        while not self.stop_flag.is_set():
            t = time.perf_counter()
            self.client.result("echo", ["ping"])
            self.worst = max(self.worst, time.perf_counter() - t)
            self.count += 1
            time.sleep(0.002)

    def finish(self) -> float:
        self.stop_flag.set()
        self.join(30)
        self.client.close()
        return self.worst


def test_online_compaction_keeps_data_and_blocks_briefly(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s").start()
    try:
        with srv.client(timeout=120) as c:
            _fill(c, 20_000)
            # Churn, so that the log holds more than the snapshot will.
            for i in range(50):
                c.transact(DB, {"op": "update", "table": "Logical_Switch",
                                "where": [], "row": {"description": f"rev {i}"}})
            before = _macs(c)
        size_before = srv.db.stat().st_size
        probe = LatencyProbe(srv)
        probe.start()
        time.sleep(0.2)
        t = time.perf_counter()
        cp = srv.appctl("ovsdb-server/compact")
        took = time.perf_counter() - t
        time.sleep(0.2)
        worst = probe.finish()
        assert cp.returncode == 0 and cp.stdout == "" and cp.stderr == "", cp
        assert probe.count > 10
        # Clients wait at most about as long as the compaction itself took, and that is
        # short for 20,000 rows.
        assert worst < 1.0, f"a client waited {worst:.2f}s during compaction ({took:.2f}s)"
        # One snapshot record after the schema.
        data = srv.db.read_bytes()
        first = ovlog.read_record(data, 0, str(srv.db))
        assert isinstance(first, ovlog.Record)
        second = ovlog.read_record(data, first.end, str(srv.db))
        assert isinstance(second, ovlog.Record) and second.end == len(data)
        assert len(data) < size_before
        with srv.client(timeout=60) as c:
            assert _macs(c) == before
            c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                            "row": {"name": "after-compaction"}})
        srv.kill()
        srv.start()
        with srv.client(timeout=60) as c:
            assert _macs(c) == before
            assert "after-compaction" in names_in(c)
    finally:
        srv.stop()


def test_automatic_compaction_rule_fires_in_the_server(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """The housekeeping loop compacts whenever Storage.should_compact says so (the rule
    itself, OVS's schedule, is proven in the storage unit tests with a fake clock)."""
    from argparse import Namespace

    from hwvtep.server import app as app_mod
    from hwvtep.server.daemon import Vlog

    path = tmp_path / "db"
    monkeypatch.setattr(app_mod, "HOUSEKEEPING_S", 0.05)
    calls: list[int] = []

    def should_compact(self: storage_mod.Storage, now: int | None = None) -> bool:
        calls.append(self.n_records)
        return self.n_records >= 20

    monkeypatch.setattr(storage_mod.Storage, "should_compact", should_compact)
    opts = Namespace(databases=[str(path)], create_if_missing="", remote=[],
                     pidfile=None, unixctl="none", max_message_size=1 << 20,
                     private_key=None, certificate=None, ca_cert=None,
                     overwrite_pidfile=False, inactivity_probe=None)

    async def scenario() -> None:
        app = app_mod.ServerApp(opts, Vlog("test"))
        await app.start()
        try:
            served = app.core.dbs[DB]
            st = app.storages[DB]
            for i in range(30):
                from hwvtep.ovsdb.transaction import execute
                out = execute(served.db, [DB, {"op": "insert", "table": "Logical_Switch",
                                               "row": {"name": f"ls{i}"}}])
                assert out.changes is not None and st.commit(out.changes)
                served.db.apply(out.changes)
                app.core.committed(served, out.changes)
            size = path.stat().st_size
            for _ in range(100):
                await asyncio.sleep(0.05)
                if path.stat().st_size < size:
                    break
            assert path.stat().st_size < size, "housekeeping never compacted"
        finally:
            await app.stop()

    asyncio.run(scenario())
    assert calls
    with storage_mod.Storage.open(str(path), read_only=True, strict=True) as st:
        assert len(st.db.tables["Logical_Switch"]) == 30
        assert st.n_records == 2


def test_should_compact_follows_ovs_schedule(tmp_path: Path) -> None:
    path = tmp_path / "db"
    schema_json = json.loads(Path(storage_mod.__file__).parent.parent.joinpath(
        "schemas", "hardware_vtep.ovsschema").read_text())
    storage_mod.create(str(path), schema_json)
    clock = [0]
    st = storage_mod.Storage.open(str(path), now=lambda: clock[0], rng=random.Random(0))
    try:
        minute = 60_000
        # Nothing before 10 minutes, whatever the log holds.
        for i in range(150):
            st.write_record({"Logical_Switch": {f"{i:08x}-0000-4000-8000-000000000000": {
                "name": f"ls{i}", "description": "d" * 70_000}}})
        assert st.n_records > 100 and st.grew_lots()
        clock[0] = 10 * minute - 1
        assert not st.should_compact()
        # After 20 minutes, 100 records and a log grown past 10 MB and doubled: yes.
        clock[0] = 20 * minute
        assert st.should_compact()
        st.compact()
        assert not st.grew_lots()
        # Right after a snapshot: not for another 10 minutes at least.
        clock[0] += 9 * minute
        assert not st.should_compact()
        # Not grown a lot: no, until a day has passed; then any record is enough.
        clock[0] += 60 * minute
        assert not st.should_compact()
        clock[0] += 24 * 60 * minute
        assert st.should_compact()
    finally:
        st.close()


def test_commit_error_is_reported_and_leaves_memory_unchanged(tmp_path: Path) -> None:
    """If the log cannot be written, the transaction fails with an I/O error and the
    in-memory database is unchanged (so memory never runs ahead of the file)."""

    class BrokenStorage:
        def commit(self, changes: Any, *, durable: bool = False, comment: str | None = None,
                   date_ms: int | None = None) -> bool:
            raise OSError(28, "No space left on device")

    from hwvtep.ovsdb.database import Database
    from hwvtep.ovsdb.schema import bundled_schema

    core = ServerCore(now=time.monotonic)
    db = Database(bundled_schema("hardware_vtep"))
    core.add_database(DB, db, BrokenStorage())
    link = FileCheckingLink(tmp_path / "x", [])
    (tmp_path / "x").write_text("")
    s = core.open_session(link)
    core.handle(s, Request("transact", [DB, {"op": "insert", "table": "Logical_Switch",
                                             "row": {"name": "a"}}], 7))
    ((reply, _, _),) = link.sent
    assert isinstance(reply, Reply)
    assert reply.result[-1]["error"] == "I/O error"
    assert not db.tables["Logical_Switch"]
    assert not isinstance(reply, Error)


def test_commits_during_background_compaction_are_kept(tmp_path: Path) -> None:
    """Storage level: rows committed between the snapshot and the swap end up after
    the snapshot in the new file, and a reopen sees them all."""
    from hwvtep.ovsdb.transaction import execute

    path = tmp_path / "db"
    schema_json = json.loads(Path(storage_mod.__file__).parent.parent.joinpath(
        "schemas", "hardware_vtep.ovsschema").read_text())
    storage_mod.create(str(path), schema_json)
    st = storage_mod.Storage.open(str(path))

    def commit(name: str) -> None:
        out = execute(st.db, [DB, {"op": "insert", "table": "Logical_Switch",
                                   "row": {"name": name}}])
        assert out.changes is not None and st.commit(out.changes)
        st.db.apply(out.changes)

    for i in range(20):
        commit(f"before{i}")
    job = st.begin_compaction()
    assert st.compacting
    with pytest.raises(OSError):
        st.begin_compaction()
    commit("during0")
    t = threading.Thread(target=job.write)
    t.start()
    commit("during1")
    t.join()
    commit("during2")
    st.finish_compaction(job)
    assert not st.compacting
    commit("after")
    st.close()
    data = path.read_bytes()
    records = []
    offset = 0
    while (r := ovlog.read_record(data, offset, str(path))) is not None:
        assert isinstance(r, ovlog.Record)
        records.append(r)
        offset = r.end
    # schema, snapshot (20 rows), three commits made meanwhile, one after.
    assert len(records) == 6
    assert len(records[1].json["Logical_Switch"]) == 20
    with storage_mod.Storage.open(str(path), read_only=True, strict=True) as again:
        names = {r["name"][0] for r in again.db.tables["Logical_Switch"].values()}
    assert names == {f"before{i}" for i in range(20)} | {"during0", "during1", "during2",
                                                         "after"}


@needs_ovs
def test_compaction_under_load_then_crash(tmp_path: Path) -> None:
    """Clients commit while the server compacts (several times); after a SIGKILL every
    acknowledged commit is in the compacted file."""
    srv = Server(tmp_path / "s").start()
    acked: dict[str, bool | None] = {}
    try:
        with srv.client(timeout=120) as c:
            _fill(c, 20_000)

        # What each `ovs-appctl ovsdb-server/compact` did, judged in the main thread (an
        # assert in the thread itself would only become a pytest warning): its exit status
        # and output, and the file's inode before and after (compaction writes a new file
        # and renames it over the old one, so the inode changes every time).
        compactions: list[tuple[int, str, int, int]] = []
        compactor_error: list[BaseException] = []

        def compact_repeatedly() -> None:
            try:
                for _ in range(3):
                    before = srv.db.stat().st_ino
                    cp = srv.appctl("ovsdb-server/compact")
                    compactions.append((cp.returncode, cp.stdout + cp.stderr, before,
                                        srv.db.stat().st_ino))
            except BaseException as e:
                compactor_error.append(e)

        compactor = threading.Thread(target=compact_repeatedly)
        head: list[ovlog.Record] = []

        async def scenario() -> None:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_committer(srv, i, acked, stop)) for i in range(6)]
            await asyncio.sleep(0.2)
            compactor.start()
            while compactor.is_alive():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            # The file as it is just before the crash (committers still appending): only
            # its first two records are read.
            data = srv.db.read_bytes()
            offset = 0
            for _ in range(2):
                r = ovlog.read_record(data, offset, str(srv.db))
                assert isinstance(r, ovlog.Record), r
                head.append(r)
                offset = r.end
            assert srv.pid is not None
            os.kill(srv.pid, signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

        asyncio.run(scenario())
        compactor.join()
        srv.wait_gone()
        assert not compactor_error, compactor_error
        assert len(compactions) == 3, compactions
        for rc, out, ino_before, ino_after in compactions:
            assert rc == 0, out
            assert ino_after != ino_before, "ovsdb-server/compact did not rewrite the file"
        # The rewritten file: the schema, then one snapshot record holding every row.
        schema_rec, snapshot = head
        assert schema_rec.json["name"] == DB
        assert snapshot.json.get("_comment") == storage_mod.ONLINE_COMPACT_COMMENT
        assert len(snapshot.json["Ucast_Macs_Remote"]) == 20_000
        assert len(snapshot.json["Logical_Switch"]) > 1  # the fill's and committers' rows
        # OVS's tool sees the same: record 1 is the compaction's snapshot. (A SIGKILL may
        # have torn the last record, which show-log reports after the others.)
        shown = srv.tool("ovsdb-tool", "show-log", str(srv.db)).stdout.splitlines()
        rec1 = [line for line in shown if line.startswith("record 1:")]
        assert rec1 and rec1[0].endswith(f'"{storage_mod.ONLINE_COMPACT_COMMENT}"'), shown[:4]
        srv.start()
        with srv.client(timeout=60) as c:
            present = names_in(c)
            assert len(_macs(c)) == 20_000
        assert not {n for n, v in acked.items() if v is True and n not in present}
        assert not {n for n, v in acked.items() if v is False and n in present}
        assert sum(v is True for v in acked.values()) > 50
    finally:
        srv.stop()
