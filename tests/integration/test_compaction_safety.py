"""Compaction is crash-safe: the snapshot goes to ``<file>.tmp``, which is synced and then
renamed over the file, and the directory is synced after; a failure on the way leaves the
file as it was and no temporary file behind.

Checked for Storage.compact, for the online compaction (begin_compaction, Compaction.write,
finish_compaction) and for ``hwvtep ovsdb-tool compact``, on real files. The os calls are
real too: :class:`FileCalls` passes them through, noting which file each one touched, and
makes one of them fail where a test asks it to.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from hwvtep.ovsdb.schema import bundled_schema_text
from hwvtep.ovsdb.transaction import execute
from hwvtep.server import storage as st
from hwvtep.server.storage import Storage
from hwvtep.tool.main import main as ovsdb_tool

VTEP = "hardware_vtep"
Event = tuple[str, ...]


def _real(path: Any) -> str:
    return os.path.realpath(os.path.abspath(os.fsdecode(path)))


class FileCalls:
    """os's file calls on files under *root*, in order: ("open", path), ("write", path),
    ("sync", path) for fsync and fdatasync, ("rename", old, new), ("unlink", path),
    ("truncate", path). Every call still goes to the real os function, except the one
    *fail* names, ``(kind, path)``, which raises OSError(*err*) instead."""

    def __init__(self, root: Path, fail: tuple[str, str] | None = None,
                 err: int = errno.EIO) -> None:
        self.root = _real(root)
        self.fail = fail
        self.err = err
        self.failed = False
        self.events: list[Event] = []
        self.fds: dict[int, str] = {}

    def _mine(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def _note(self, kind: str, *paths: str) -> None:
        if not self._mine(paths[0]):
            return
        if not self.failed and self.fail == (kind, paths[0]):
            self.failed = True
            self.events.append(("failed " + kind, *paths))
            raise OSError(self.err, os.strerror(self.err))
        self.events.append((kind, *paths))

    @contextmanager
    def active(self, mp: pytest.MonkeyPatch) -> Iterator[FileCalls]:
        real = {name: getattr(os, name) for name in (
            "open", "close", "write", "pwrite", "fsync", "fdatasync", "ftruncate", "rename",
            "replace", "unlink")}

        def open_(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
            fd: int = real["open"](path, flags, mode, **kw)
            p = _real(path)
            if self._mine(p):
                self.fds[fd] = p
                self.events.append(("open", p))
            return fd

        def close(fd: int) -> None:
            self.fds.pop(fd, None)
            real["close"](fd)

        def on_fd(kind: str, name: str) -> Callable[..., Any]:
            def call(fd: int, *args: Any) -> Any:
                if fd in self.fds:
                    self._note(kind, self.fds[fd])
                return real[name](fd, *args)
            return call

        def rename(name: str) -> Callable[..., None]:
            def call(old: Any, new: Any, **kw: Any) -> None:
                a, b = _real(old), _real(new)
                self._note("rename", a, b)
                real[name](old, new, **kw)
                for fd, p in self.fds.items():
                    if p == a:
                        self.fds[fd] = b
            return call

        def unlink(path: Any, **kw: Any) -> None:
            self._note("unlink", _real(path))
            real["unlink"](path, **kw)

        with mp.context() as m:
            m.setattr(os, "open", open_)
            m.setattr(os, "close", close)
            m.setattr(os, "write", on_fd("write", "write"))
            m.setattr(os, "pwrite", on_fd("write", "pwrite"))
            m.setattr(os, "fsync", on_fd("sync", "fsync"))
            m.setattr(os, "fdatasync", on_fd("sync", "fdatasync"))
            m.setattr(os, "ftruncate", on_fd("truncate", "ftruncate"))
            m.setattr(os, "rename", rename("rename"))
            m.setattr(os, "replace", rename("replace"))
            m.setattr(os, "unlink", unlink)
            yield self

    def assert_synced_then_renamed(self, real: str) -> None:
        """The snapshot went to real + ".tmp", was synced after its last write, renamed
        over *real*, and the directory was synced after that; *real* itself was not
        written meanwhile."""
        tmp = real + ".tmp"
        ev = self.events
        renames = [i for i, e in enumerate(ev) if e[0] == "rename"]
        assert len(renames) == 1, f"expected one rename: {ev}"
        r = renames[0]
        assert ev[r][1:] == (tmp, real), ev[r]
        writes = [i for i, e in enumerate(ev[:r]) if e == ("write", tmp)]
        assert writes, f"nothing written to {tmp}: {ev}"
        assert any(e == ("sync", tmp) for e in ev[writes[-1] + 1:r]), (
            f"{tmp} was not synced between its last write and its rename: {ev}")
        directory = os.path.dirname(real)
        assert ("sync", directory) in ev[r + 1:], (
            f"the directory was not synced after the rename: {ev}")
        assert not any(e[0] in ("write", "truncate") and e[1] == real for e in ev[:r]), (
            f"{real} was written in place: {ev}")


# --- a database with some data ----------------------------------------------------------

@pytest.fixture
def schema_path(tmp_path: Path) -> Path:
    path = tmp_path / "vtep.ovsschema"
    path.write_text(bundled_schema_text(VTEP))
    return path


@pytest.fixture
def db_path(tmp_path: Path, schema_path: Path) -> Path:
    path = tmp_path / "conf.db"
    st.create(str(path), st.read_schema_file(str(schema_path)).json)
    with Storage.open(str(path)) as s:
        for i in range(30):
            transact(s, {"op": "insert", "table": "Logical_Switch",
                         "row": {"name": f"ls{i}", "tunnel_key": i}})
        transact(s, {"op": "delete", "table": "Logical_Switch",
                     "where": [["tunnel_key", "<", 10]]})
    return path


def transact(s: Storage, *ops: Any) -> None:
    out = execute(s.db, [VTEP, *ops])
    assert out.changes
    s.commit(out.changes, durable=out.durable, comment=out.comment)
    s.db.apply(out.changes)


def contents(path: Path) -> dict[str, dict[str, Any]]:
    """Every row of the file, without _version, read as ovsdb-tool reads it."""
    with Storage.open(str(path), read_only=True, lock=False, strict=True) as s:
        assert s.read_error is None
        return {t: {u: {c: v for c, v in r.items() if c != "_version"}
                    for u, r in rows.items()}
                for t, rows in s.db.tables.items()}


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))


def names(data: dict[str, dict[str, Any]]) -> set[str]:
    return {r["name"][0] for r in data["Logical_Switch"].values()}


# --- Storage.compact ----------------------------------------------------------------------

def test_compact_syncs_the_snapshot_before_renaming_it(
        tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = contents(db_path)
    big = db_path.stat().st_size
    with Storage.open(str(db_path)) as s, FileCalls(tmp_path).active(monkeypatch) as calls:
        s.compact()
    calls.assert_synced_then_renamed(str(db_path))
    assert db_path.stat().st_size < big
    assert contents(db_path) == before and leftovers(tmp_path) == []


def test_online_compaction_syncs_the_snapshot_and_tail_before_renaming(
        tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Storage.open(str(db_path)) as s:
        with FileCalls(tmp_path).active(monkeypatch) as calls:
            job = s.begin_compaction()
            job.write()
            # Committed while the snapshot was written: copied after it, before the sync.
            transact(s, {"op": "insert", "table": "Logical_Switch", "row": {"name": "late"}})
            s.finish_compaction(job)
        expected = contents(db_path)
    calls.assert_synced_then_renamed(str(db_path))
    assert "late" in names(expected) and len(expected["Logical_Switch"]) == 21
    assert leftovers(tmp_path) == []


FAILURES = ["write", "sync", "rename"]


def _fail(db_path: Path, kind: str) -> tuple[str, str]:
    return (kind, _real(str(db_path) + ".tmp"))


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failed_compact_leaves_the_file_as_it_was(
        tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    before = contents(db_path)
    image = db_path.read_bytes()
    with Storage.open(str(db_path)) as s:
        failing = FileCalls(tmp_path, _fail(db_path, kind))
        with failing.active(monkeypatch) as calls, pytest.raises(OSError):
            s.compact()
        assert calls.failed, calls.events
        assert db_path.read_bytes() == image
        assert leftovers(tmp_path) == []
        assert contents(db_path) == before
        # The old file is still the one in use.
        transact(s, {"op": "insert", "table": "Logical_Switch", "row": {"name": "after"}})
    assert names(contents(db_path)) == names(before) | {"after"}


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failed_online_compaction_leaves_the_file_as_it_was(
        tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    with Storage.open(str(db_path)) as s:
        with FileCalls(tmp_path, _fail(db_path, kind)).active(monkeypatch) as calls:
            job = s.begin_compaction()
            transact(s, {"op": "insert", "table": "Logical_Switch", "row": {"name": "late"}})
            before = contents(db_path)
            image = db_path.read_bytes()
            job.write()
            with pytest.raises(OSError):
                s.finish_compaction(job)
        assert calls.failed, calls.events
        assert db_path.read_bytes() == image
        assert leftovers(tmp_path) == []
        assert contents(db_path) == before and "late" in names(before)
        transact(s, {"op": "insert", "table": "Logical_Switch", "row": {"name": "after"}})
    assert names(contents(db_path)) == names(before) | {"after"}


# --- hwvtep ovsdb-tool compact ----------------------------------------------------------------

@pytest.fixture
def tool_db(tmp_path: Path, schema_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A file made and filled by ``hwvtep ovsdb-tool`` itself."""
    path = tmp_path / "tool.db"
    assert ovsdb_tool(["create", str(path), str(schema_path)]) == 0
    for i in range(30):
        txn = [VTEP, {"op": "insert", "table": "Logical_Switch",
                      "row": {"name": f"ls{i}", "tunnel_key": i}}]
        assert ovsdb_tool(["transact", str(path), orjson.dumps(txn).decode()]) == 0
    capsys.readouterr()
    return path


def test_tool_compact_syncs_the_snapshot_before_renaming_it(
        tmp_path: Path, tool_db: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = contents(tool_db)
    big = tool_db.stat().st_size
    with FileCalls(tmp_path).active(monkeypatch) as calls:
        assert ovsdb_tool(["compact", str(tool_db)]) == 0
    assert capsys.readouterr() == ("", "")
    calls.assert_synced_then_renamed(str(tool_db))
    assert tool_db.stat().st_size < big
    assert contents(tool_db) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failed_tool_compact_leaves_the_file_as_it_was(
        tmp_path: Path, tool_db: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], kind: str) -> None:
    before = contents(tool_db)
    image = tool_db.read_bytes()
    with FileCalls(tmp_path, _fail(tool_db, kind), errno.EACCES).active(monkeypatch) as calls:
        assert ovsdb_tool(["compact", str(tool_db)]) == 1
    assert calls.failed, calls.events
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("ovsdb-tool: ") and "(Permission denied)" in err
    if kind == "rename":
        # ovsdb-tool 3.1's words; unlike it we do not leave the new file behind.
        tmp = str(tool_db) + ".tmp"
        assert err == f'ovsdb-tool: failed to rename "{tmp}" to "{tool_db}" (Permission denied)\n'
    assert tool_db.read_bytes() == image
    assert leftovers(tmp_path) == []
    assert contents(tool_db) == before
