"""hwvtep.server.storage on real files: replay, commits, damaged tails, locks, compaction
and the online compaction policy. (How OVS reads what it writes: test_file_interop.py.)"""

from __future__ import annotations

import errno
import logging
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hwvtep.ovsdb import log as ovlog
from hwvtep.ovsdb.schema import bundled_schema_text
from hwvtep.ovsdb.transaction import execute
from hwvtep.server import storage as st
from hwvtep.server.storage import LockError, Storage, StorageError

VTEP = "hardware_vtep"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    schema = tmp_path / "vtep.ovsschema"
    schema.write_text(bundled_schema_text("hardware_vtep"))
    path = tmp_path / "conf.db"
    st.create(str(path), st.read_schema_file(str(schema)).json)
    return path


def transact(s: Storage, *ops: Any, comment: str | None = None) -> Any:
    out = execute(s.db, [VTEP, *ops])
    if out.changes:
        s.commit(out.changes, durable=out.durable, comment=out.comment)
        s.db.apply(out.changes)
    return out.result


def add_switch(s: Storage, name: str, **row: Any) -> str:
    res = transact(s, {"op": "insert", "table": "Logical_Switch",
                       "row": {"name": name, **row}})
    uuid: str = res[0]["uuid"][1]
    return uuid


def rows(s: Storage, table: str) -> dict[str, dict[str, Any]]:
    return {u: {k: v for k, v in r.items() if k != "_version"}
            for u, r in s.db.tables[table].items()}


def test_commits_survive_reopening(db_path: Path) -> None:
    with Storage.open(str(db_path)) as s:
        assert s.n_records == 1 and s.size == db_path.stat().st_size
        a = add_switch(s, "ls-a", tunnel_key=5000)
        b = add_switch(s, "ls-b")
        transact(s, {"op": "update", "table": "Logical_Switch", "where": [],
                     "row": {"description": "both"}})
        transact(s, {"op": "delete", "table": "Logical_Switch",
                     "where": [["_uuid", "==", ["uuid", b]]]})
        before = rows(s, "Logical_Switch")
        assert s.n_records == 5 and s.size == db_path.stat().st_size
    with Storage.open(str(db_path)) as s:
        assert rows(s, "Logical_Switch") == before
        assert set(before) == {a}
        assert before[a]["description"] == ("both",) and before[a]["tunnel_key"] == (5000,)
        assert s.read_error is None and s.n_records == 5
        # OVS's base: where the first transaction record ends.
        first = ovlog.scan_records(db_path.read_bytes(), "x").records[1]
        assert s.snapshot_size == first.end


def test_nothing_is_written_when_nothing_persists(db_path: Path) -> None:
    with Storage.open(str(db_path)) as s:
        size = s.size
        assert transact(s, {"op": "comment", "comment": "hi"}) == [{}]
        assert s.size == size == db_path.stat().st_size


def test_durable_commits_are_synced(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(st.os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    with Storage.open(str(db_path)) as s:
        add_switch(s, "a")
        assert synced == []
        transact(s, {"op": "insert", "table": "Logical_Switch", "row": {"name": "b"}},
                 {"op": "commit", "durable": True})
        assert len(synced) == 1


def _damage(path: Path, tail: bytes) -> int:
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(tail)
    return good


@pytest.mark.parametrize("tail", [
    b"OVSDB JSON 120 " + b"0" * 40 + b"\n{\"Logical_Switch\":",
    b"garbage\n",
    b"OVSDB JSON 3 " + b"0" * 40 + b"\n{}\n",
])
def test_a_damaged_tail_is_read_past_then_truncated(db_path: Path, tail: bytes,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with Storage.open(str(db_path)) as s:
        a = add_switch(s, "a")
    good = _damage(db_path, tail)
    with pytest.raises(StorageError) as e:
        Storage.open(str(db_path), strict=True)  # as ovsdb-tool: fatal
    assert isinstance(e.value.error, ovlog.LogError) and e.value.error.offset == good
    with caplog.at_level(logging.ERROR, logger="hwvtep.storage"):
        s = Storage.open(str(db_path))  # as ovsdb-server: log and go on
    with s:
        assert [r.getMessage() for r in caplog.records] == [e.value.message]
        assert set(rows(s, "Logical_Switch")) == {a}
        assert s.size == good < db_path.stat().st_size
        b = add_switch(s, "b")
        scan = ovlog.scan_records(db_path.read_bytes(), "x")
        assert scan.error is None and len(scan.records) == 3
        assert db_path.stat().st_size == s.size
    with Storage.open(str(db_path), strict=True) as s:
        assert set(rows(s, "Logical_Switch")) == {a, b}


def test_a_record_that_does_not_commit_ends_the_log_silently(db_path: Path) -> None:
    """Like OVS: a readable record that breaks referential integrity is not an error for
    ovsdb-tool; reading stops there and the next write replaces it."""
    with Storage.open(str(db_path)) as s:
        a = add_switch(s, "a")
        s.write_record({"Ucast_Macs_Remote": {"00000000-0000-4000-8000-00000000000a": {
            "MAC": "00:00:00:00:00:01",
            "logical_switch": ["uuid", a],
            "locator": ["uuid", "00000000-0000-4000-8000-00000000000b"]}}})
    with Storage.open(str(db_path), strict=True) as s:
        assert s.db.tables["Ucast_Macs_Remote"] == {}
        assert s.read_error is not None and "referential integrity" in s.read_error.message
        add_switch(s, "b")
    with Storage.open(str(db_path), strict=True) as s:
        assert s.read_error is None
        assert len(s.db.tables["Logical_Switch"]) == 2


def test_locks(db_path: Path, tmp_path: Path) -> None:
    with Storage.open(str(db_path)) as s:
        with pytest.raises(LockError) as e:
            Storage.open(str(db_path))
        assert e.value.errno == errno.EDEADLK
        assert e.value.message == (f"{db_path}: failed to lock lockfile "
                                   "(Resource deadlock avoided)")
        assert e.value.warning.endswith("cannot lock file because this process has "
                                        "already locked it")
        # Readers take no lock.
        with Storage.open(str(db_path), read_only=True) as r:
            assert r.schema.name == VTEP
        assert s.schema.name == VTEP
    lock_name = tmp_path / ".conf.db.~lock~"
    assert lock_name.exists()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from hwvtep.server.storage import FileLock
            lock = FileLock.acquire({str(db_path)!r})
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(LockError) as e:
            Storage.open(str(db_path))
        assert e.value.errno == errno.EAGAIN
        assert e.value.message.endswith("(Resource temporarily unavailable)")
        assert e.value.warning == (f"{lock_name}: cannot lock file because it is already "
                                   f"locked by pid {holder.pid}")
    finally:
        holder.communicate("", timeout=10)
    with Storage.open(str(db_path)):
        pass


def test_compaction_replaces_the_file_atomically(db_path: Path) -> None:
    with Storage.open(str(db_path)) as s:
        for i in range(20):
            add_switch(s, f"ls{i}", tunnel_key=i)
        transact(s, {"op": "delete", "table": "Logical_Switch",
                     "where": [["tunnel_key", "<", 10]]})
        before = rows(s, "Logical_Switch")
        big = s.size
        s.compact(date_ms=123)
        assert s.size == s.snapshot_size == db_path.stat().st_size < big
        assert not Path(str(db_path) + ".tmp").exists()
        records = ovlog.scan_records(db_path.read_bytes(), "x").records
        assert len(records) == 2
        assert records[1].json["_comment"] == "compacting database online"
        assert records[1].json["_is_diff"] is True and records[1].json["_date"] == 123
        c = add_switch(s, "after")  # appends to the new file
        assert s.size == db_path.stat().st_size
    with Storage.open(str(db_path), strict=True) as s:
        after = rows(s, "Logical_Switch")
        assert {u: r for u, r in after.items() if u != c} == before
        assert s.n_records == 3


def test_compaction_through_a_symlink_replaces_its_target(tmp_path: Path,
                                                           db_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "conf.db"
    db_path.rename(target)
    db_path.symlink_to(target)
    with Storage.open(str(db_path)) as s:
        add_switch(s, "a")
        s.compact()
    assert db_path.is_symlink() and os.readlink(db_path) == str(target)
    assert (real_dir / ".conf.db.~lock~").exists()  # the lock follows the link too
    with Storage.open(str(target), strict=True) as s:
        assert len(s.db.tables["Logical_Switch"]) == 1


def test_a_failed_write_changes_nothing(db_path: Path) -> None:
    with Storage.open(str(db_path), read_only=True, lock=False) as s:
        size = s.size
        out = execute(s.db, [VTEP, {"op": "insert", "table": "Logical_Switch",
                                    "row": {"name": "a"}}])
        assert out.changes
        with pytest.raises(OSError):
            s.commit(out.changes)
        assert s.size == size == db_path.stat().st_size


def test_create_refuses_an_existing_file_and_follows_a_dangling_symlink(
        tmp_path: Path, db_path: Path) -> None:
    schema = st.read_schema_file(str(tmp_path / "vtep.ovsschema"))
    with pytest.raises(StorageError) as e:
        st.create(str(db_path), schema.json)
    assert e.value.message == f"I/O error: {db_path}: create failed (File exists)"
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "elsewhere.db")
    st.create(str(link), schema.json)
    assert (tmp_path / "elsewhere.db").stat().st_size > 0
    assert oct((tmp_path / "elsewhere.db").stat().st_mode & 0o777) == oct(0o660 & ~_umask())


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_online_compaction_policy(db_path: Path) -> None:
    clock = [0]
    minute = 60 * 1000
    s = Storage.open(str(db_path), now=lambda: clock[0], rng=random.Random(1))
    with s:
        # Not before 10 to 20 minutes, whatever the log holds.
        assert not s.should_compact()
        clock[0] = 20 * minute
        assert not s.should_compact()  # one record, a tiny file
        payload = "x" * 100_000
        for i in range(110):
            add_switch(s, f"ls{i}", description=payload)
        assert s.n_records >= 100 and s.size > 10 * 1024 * 1024 and s.grew_lots()
        assert s.should_compact()
        assert not s.should_compact(now=5 * minute)
        s.compact()
        assert not s.should_compact()  # rescheduled, and nothing grew
        clock[0] += 25 * minute
        assert not s.should_compact()
        # A day later, any record at all is enough.
        clock[0] += 24 * 60 * minute
        assert s.should_compact()
