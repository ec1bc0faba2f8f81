"""Durable storage of one database in Open vSwitch's standalone file format.

The file is what ``ovsdb-tool`` and ``ovsdb-server`` read and write (see
:mod:`hwvtep.ovsdb.log` for the format), guarded by the same lock file
(``.NAME.~lock~`` next to it, an fcntl write lock), so ours and OVS's tools exclude each
other. Opening replays every record into a :class:`~hwvtep.ovsdb.database.Database`;
reading stops at the first bad record and the next write truncates the file there, as
OVS does after a crash left half a record behind. Compaction writes ``NAME.tmp``, syncs it
and renames it over the file.

Writes are plain ``write(2)`` calls (``fdatasync`` only for durable commits); the caller
writes a commit before applying it in memory, so a failed write leaves memory unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hwvtep.ovsdb import log as ovlog
from hwvtep.ovsdb.database import Changes, Database, Row, ref_atoms
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.schema import DatabaseSchema


def _log() -> Any:
    import logging  # here: ovsdb-tool rarely needs it and start-up time matters

    return logging.getLogger("hwvtep.storage")


ONLINE_COMPACT_COMMENT = "compacting database online"
# ovsdb-server's schedule: not before 10 to 20 minutes after the last snapshot, and a
# snapshot at least once a day if anything was written; in between only when the log
# holds 100 records and has more than doubled past 10 MB.
_SNAPSHOT_MIN_MS = 10 * 60 * 1000
_SNAPSHOT_RANGE_MS = 10 * 60 * 1000
_SNAPSHOT_MAX_MS = 24 * 60 * 60 * 1000
_GREW_LOTS_BYTES = 10 * 1024 * 1024
_MIN_RECORDS = 100


class StorageError(Exception):
    """A failure with the text OVS prints for it (after "ovsdb-tool: ")."""

    def __init__(self, message: str, *, error: OvsdbError | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


class LockError(StorageError):
    """The lock file is held. ``warning`` is the line OVS logs before failing."""

    def __init__(self, message: str, warning: str, err: int) -> None:
        super().__init__(message)
        self.warning = warning
        self.errno = err


def io_error(details: str, err: int | None = None) -> StorageError:
    text = f"I/O error: {details}"
    if err is not None:
        text += f" ({os.strerror(err)})"
    return StorageError(text)


def now_ms() -> int:
    return int(time.time() * 1000)


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


_uuid_pool: list[str] = []


def random_uuid() -> str:
    """A random (version 4) UUID string; drawn from the OS in batches, for replay speed."""
    if not _uuid_pool:
        h = os.urandom(16 * 512).hex()
        for i in range(0, len(h), 32):
            _uuid_pool.append(
                f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-"
                f"{'89ab'[int(h[i + 16], 16) & 3]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}")
    return _uuid_pool.pop()


# ---------------------------------------------------------------------------
# Lock files, compatible with OVS's lib/lockfile.c.


def follow_symlinks(path: str) -> str:
    """The file a chain of symlinks ends at (relative links resolved from their dir)."""
    for _ in range(10):
        try:
            target = os.readlink(path)
        except OSError:
            return path
        path = target if os.path.isabs(target) else os.path.join(os.path.dirname(path), target)
    return path


def lock_file_name(path: str) -> str:
    real = follow_symlinks(path)
    head, tail = os.path.split(real)
    return os.path.join(head, f".{tail}.~lock~") if head else f".{tail}.~lock~"


_HELD: dict[tuple[int, int], int] = {}  # (dev, ino) of lock files this process holds


class FileLock:
    """An exclusive lock on a database file, the way OVS takes it."""

    def __init__(self, name: str, fd: int, key: tuple[int, int]) -> None:
        self.name = name
        self._fd = fd
        self._key = key

    @classmethod
    def acquire(cls, path: str) -> FileLock:
        """Lock *path* without waiting; :class:`LockError` (OVS's wording) if held."""
        name = lock_file_name(path)
        try:
            st = os.stat(name)
            if (st.st_dev, st.st_ino) in _HELD:
                raise cls._error(path, name, errno.EDEADLK,
                                 f"{name}: cannot lock file because this process has "
                                 "already locked it")
        except FileNotFoundError:
            pass
        except OSError as e:
            raise cls._error(path, name, e.errno or errno.EIO,
                             f"{name}: failed to stat lock file: {os.strerror(e.errno or 0)}",
                             ) from None
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            err = e.errno or errno.EIO
            raise cls._error(path, name, err,
                             f"{name}: failed to open lock file: {os.strerror(err)}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            err = e.errno or errno.EIO
            if err == errno.EACCES:
                err = errno.EAGAIN
            pid = _lock_holder(fd)
            os.close(fd)
            if pid:
                warning = f"{name}: cannot lock file because it is already locked by pid {pid}"
            else:
                warning = f"{name}: failed to lock file: {os.strerror(err)}"
            raise cls._error(path, name, err, warning) from None
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        _HELD[key] = fd
        return cls(name, fd, key)

    @staticmethod
    def _error(path: str, name: str, err: int, warning: str) -> LockError:
        return LockError(f"{path}: failed to lock lockfile ({os.strerror(err)})", warning, err)

    def release(self) -> None:
        if self._fd >= 0:
            _HELD.pop(self._key, None)
            os.close(self._fd)  # closing drops the fcntl lock
            self._fd = -1


def _lock_holder(fd: int) -> int:
    import struct

    # struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
    # pid_t l_pid.
    req = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    try:
        res = fcntl.fcntl(fd, fcntl.F_GETLK, req + b"\0" * 4)
    except OSError:
        return 0
    l_type, _, _, _, pid = struct.unpack("hhqqi", res[:struct.calcsize("hhqqi")])
    return pid if l_type != fcntl.F_UNLCK else 0


def fsync_parent_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write *data* at *offset*: one system call for a record, where lseek + write took two."""
    n = os.pwrite(fd, data, offset)
    if n < len(data):
        view = memoryview(data)[n:]
        while view:
            offset += n
            n = os.pwrite(fd, view, offset)
            view = view[n:]


# ---------------------------------------------------------------------------
# Reading a whole file.


@dataclass(frozen=True, slots=True)
class SchemaFile:
    """A schema read from a file: parsed, and the facts OVS prints about it."""

    schema: DatabaseSchema
    json: dict[str, Any]  # as written in a database file (see log.schema_to_json)
    version: str  # "" when the schema has none
    cksum: str  # "" when the schema has none


def parse_schema_json(j: Any) -> SchemaFile:
    """Raise OvsdbError if *j* is not a schema."""
    schema = DatabaseSchema.from_json(j)
    assert isinstance(j, dict)
    has_version = "version" in j
    return SchemaFile(schema, ovlog.schema_to_json(schema, has_version=has_version),
                      schema.version if has_version else "", schema.cksum or "")


def read_schema_file(path: str) -> SchemaFile:
    """A .ovsschema file, with ``ovsdb-tool``'s errors."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise StorageError(f'failed to read schema: "{path}" could not be read as JSON '
                           f'(error opening "{path}": {os.strerror(e.errno or 0)})') from None
    try:
        j = ovlog.ovs_json_loads(data)
    except ovlog.OvsJsonError as e:
        raise StorageError(f'failed to read schema: "{path}" could not be read as JSON '
                           f"({e})") from None
    try:
        return parse_schema_json(ovlog.ovs_normalize_numbers(j))
    except OvsdbError as e:
        wrapped = OvsdbError(e.tag, f'failed to parse "{path}" as ovsdb schema: {e.details}',
                             e.syntax)
        raise StorageError(ovlog.error_to_string(wrapped), error=wrapped) from None


def _read_file(path: str, fd: int | None = None) -> bytes:
    if fd is not None:
        size = os.fstat(fd).st_size
        chunks = []
        offset = 0
        while True:
            chunk = os.pread(fd, max(size - offset, 65536), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)
    with open(path, "rb") as f:
        return f.read()


def _open_error(path: str, e: OSError, op: str = "open") -> StorageError:
    return io_error(f"{path}: {op} failed", e.errno or errno.EIO)


def read_log(path: str, *, accept: tuple[str, ...] = (ovlog.OVSDB_MAGIC, ovlog.RAFT_MAGIC),
             ) -> tuple[bytes, str]:
    """The bytes of a log file and its magic, with OVS's open errors."""
    try:
        data = _read_file(path)
    except OSError as e:
        raise _open_error(path, e) from None
    try:
        magic = ovlog.file_magic(data, path, accept)
    except ovlog.LogError as e:
        raise StorageError(str(e), error=e) from None
    return data, magic


def _standalone_only(path: str, magic: str) -> None:
    if magic != ovlog.OVSDB_MAGIC:
        raise StorageError(
            f"ovsdb error: {path}: cannot apply this operation to clustered database file")


def read_schema_record(path: str, data: bytes) -> tuple[SchemaFile, ovlog.Record]:
    """The schema at the head of a standalone file (OVS's errors if it is missing/bad)."""
    first = ovlog.read_record(data, 0, path)
    if first is None:
        raise StorageError("unexpected end of file reading schema")
    if isinstance(first, ovlog.LogError):
        raise StorageError(str(first), error=first)
    try:
        return parse_schema_json(ovlog.ovs_normalize_numbers(first.json)), first
    except OvsdbError as e:
        raise StorageError(ovlog.error_to_string(e), error=e) from None


@dataclass(slots=True)
class Replay:
    """What reading a file's transactions gave."""

    db: Database
    end: int  # where the last applied record ends: the next write goes (truncates) here
    n_records: int  # records applied, the schema included
    base: int  # OVS's "base": the end of the first transaction record
    error: StorageError | None  # why reading stopped before the end of the file
    fatal: bool  # the error is one ovsdb-tool dies of (a bad record, not a bad commit)


def replay(path: str, data: bytes, schema: DatabaseSchema, start: int, *,
           new_version: Callable[[], str] = random_uuid, converting: bool = False,
           base: int | None = None) -> Replay:
    """Apply every transaction record from *start* to a new database.

    Stops at the first record that cannot be read or applied. A record that reads but
    does not apply (a referential integrity failure, say) is not an error OVS reports:
    it stops there silently and the next write overwrites it.
    """
    db = Database(schema)
    offset = start
    n = 1
    mark = base if base is not None else 0
    while True:
        r = ovlog.read_record(data, offset, path)
        if r is None:
            return Replay(db, offset, n, mark, None, False)
        if isinstance(r, ovlog.LogError):
            return Replay(db, offset, n, mark, StorageError(str(r), error=r), True)
        try:
            changes = ovlog.record_to_changes(schema, db.tables, r.json,
                                              new_version=new_version, converting=converting)
        except OvsdbError as e:
            return Replay(db, offset, n, mark,
                          StorageError(ovlog.error_to_string(e), error=e), True)
        problem = _apply_checked(db, changes)
        if problem is not None:
            return Replay(db, offset, n, mark, StorageError(problem), False)
        offset = r.end
        n += 1
        if n == 2 and base is None:
            mark = offset


def _apply_checked(db: Database, changes: Changes) -> str | None:
    """Apply *changes*, unless they would break referential integrity (then say why)."""
    if not changes:
        return None
    db.apply(changes)
    problem = _integrity_problem(db, changes)
    if problem is not None:
        db.apply({t: {u: (new, old) for u, (old, new) in rows.items()}
                  for t, rows in changes.items()})
    return problem


def _integrity_problem(db: Database, changes: Changes) -> str | None:
    for tname, rows in changes.items():
        info = db.info[tname]
        for uuid, (_, new) in rows.items():
            if new is None:
                if db.ref_count(tname, uuid):
                    return (f"referential integrity violation: cannot delete {tname} row "
                            f"{uuid} because of remaining references")
                continue
            for rc in info.strong:
                target = db.tables[rc.ref_table]
                for a in ref_atoms(new[rc.column], rc.kind):
                    if a not in target:
                        return (f"referential integrity violation: reference to nonexistent "
                                f"row {a}")
    return None


# ---------------------------------------------------------------------------
# Creating.


def create(path: str, schema_json: Mapping[str, Any]) -> None:
    """Create a new database file holding a schema (``ovsdb-tool create``).

    *schema_json* may be a schema file's JSON as is: it is written in the form OVS
    writes (no "doc", see :func:`hwvtep.ovsdb.log.schema_to_json`). Raises StorageError.
    """
    try:
        schema_json = parse_schema_json(ovlog.ovs_normalize_numbers(dict(schema_json))).json
    except OvsdbError as e:
        raise StorageError(ovlog.error_to_string(e), error=e) from None
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
    if not os.path.exists(path) and os.path.islink(path):
        flags &= ~os.O_EXCL  # a dangling symlink: create its target
    lock = FileLock.acquire(path)
    try:
        try:
            fd = os.open(path, flags, 0o660)
        except OSError as e:
            raise _open_error(path, e, "create") from None
        try:
            _write_all(fd, ovlog.compose_record(dict(schema_json)))
            os.fdatasync(fd)
        except OSError as e:
            raise io_error(f"{path}: write failed", e.errno) from None
        finally:
            os.close(fd)
        fsync_parent_dir(path)
    finally:
        lock.release()


def write_standalone(path: str, schema_json: Mapping[str, Any], data: Mapping[str, Any],
                     *, durable: bool = True) -> int:
    """Write a whole file: schema and one data record (compaction, conversion).

    Returns its size. The file is created or truncated; the caller holds any locks.
    """
    body = ovlog.compose_record(dict(schema_json)) + ovlog.compose_record(dict(data))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o660)
    except OSError as e:
        raise _open_error(path, e, "create or open") from None
    try:
        _write_all(fd, body)
        if durable:
            os.fdatasync(fd)
    except OSError as e:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise io_error(f"{path}: write failed", e.errno) from None
    os.close(fd)
    return len(body)


# ---------------------------------------------------------------------------
# An open database file.


@dataclass(eq=False)
class Compaction:
    """A snapshot being written to ``<file>.tmp`` (see Storage.begin_compaction)."""

    schema: DatabaseSchema
    schema_json: dict[str, Any]
    tables: dict[str, dict[str, Row]]
    real: str
    tmp: str
    date_ms: int
    comment: str
    fd: int = -1
    size: int = 0
    error: OSError | None = None

    def write(self) -> None:
        """Serialise the snapshot into the new file and sync it; safe in a worker
        thread. A failure is kept in :attr:`error` for finish_compaction."""
        try:
            record = ovlog.snapshot_record(self.schema, self.tables, date_ms=self.date_ms,
                                           comment=self.comment, is_diff=True)
            self.tables = {}
            body = ovlog.compose_record(self.schema_json) + ovlog.compose_record(record)
            del record
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o660)
            _write_all(self.fd, body)
            os.fdatasync(self.fd)
            self.size = len(body)
        except OSError as e:
            self.error = e

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


class Storage:
    """A standalone database file opened for the server (or a tool).

    Use :meth:`open`; then :meth:`commit` each transaction *before* applying its changes
    to :attr:`db`, and :meth:`compact` when :meth:`should_compact` says so (or on
    request).
    """

    def __init__(self, path: str, schema_file: SchemaFile, db: Database, *, fd: int,
                 lock: FileLock | None, end: int, file_size: int, base: int,
                 n_records: int, read_error: StorageError | None,
                 now: Callable[[], int], rng: random.Random, quiet: bool = False) -> None:
        self.path = path
        self.schema_file = schema_file
        self.db = db
        self._fd = fd
        self._lock = lock
        self._end = end
        self._file_size = file_size
        self._base = base
        self._n_records = n_records
        self.read_error = read_error
        self._now = now
        self._rng = rng
        self._quiet = quiet
        self._next_min = 0
        self._next_max = 0
        self._schedule(quick=False)
        # While a snapshot is written in the background: the records appended since it
        # was taken, to be copied after it (see begin_compaction).
        self._since_snapshot: list[bytes] | None = None

    # --- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, path: str, *, read_only: bool = False, lock: bool | None = None,
             new_version: Callable[[], str] = random_uuid, strict: bool = False,
             now: Callable[[], int] = _monotonic_ms,
             rng: random.Random | None = None) -> Storage:
        """Open *path*, replaying its records into :attr:`db`.

        Reading stops at the first record that cannot be read or applied, and the next
        write truncates the file there. With *strict* (``ovsdb-tool``) a record that
        cannot be read raises :class:`StorageError` and one that does not commit is passed
        over in silence; otherwise (``ovsdb-server``) either is logged as an error.
        *lock* defaults to "unless read-only", like OVS.
        """
        do_lock = (not read_only) if lock is None else lock
        the_lock = FileLock.acquire(path) if do_lock else None
        try:
            try:
                fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
            except OSError as e:
                raise _open_error(path, e) from None
            try:
                data = _read_file(path, fd)
                try:
                    magic = ovlog.file_magic(data, path, (ovlog.OVSDB_MAGIC, ovlog.RAFT_MAGIC))
                except ovlog.LogError as e:
                    raise StorageError(str(e), error=e) from None
                _standalone_only(path, magic)
                schema_file, first = read_schema_record(path, data)
                rp = replay(path, data, schema_file.schema, first.end,
                            new_version=new_version)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            if the_lock is not None:
                the_lock.release()
            raise
        if rp.error is not None:
            if strict and rp.fatal:
                os.close(fd)
                if the_lock is not None:
                    the_lock.release()
                raise rp.error
            if not strict:
                _log().error("%s", rp.error.message)
        return cls(path, schema_file, rp.db, fd=fd, lock=the_lock, end=rp.end,
                   file_size=len(data), base=rp.base, n_records=rp.n_records,
                   read_error=rp.error, now=now, rng=rng or random.Random(), quiet=strict)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- figures -------------------------------------------------------------------

    @property
    def schema(self) -> DatabaseSchema:
        return self.schema_file.schema

    @property
    def size(self) -> int:
        """Bytes of good records: the file's length once any bad tail is truncated."""
        return self._end

    @property
    def snapshot_size(self) -> int:
        """OVS's base: the size right after the last snapshot (or first transaction)."""
        return self._base

    @property
    def n_records(self) -> int:
        """Records read at open plus records written since (OVS's log length)."""
        return self._n_records

    def grew_lots(self) -> bool:
        return self._end > _GREW_LOTS_BYTES and self._end // 2 > self._base

    def should_compact(self, now: int | None = None) -> bool:
        """ovsdb-server's rule for an online compaction (time in monotonic ms)."""
        t = self._now() if now is None else now
        if t < self._next_min:
            return False
        if t < self._next_max:
            return self._n_records >= _MIN_RECORDS and self.grew_lots()
        return self._n_records > 0

    def _schedule(self, quick: bool) -> None:
        base, spread = _SNAPSHOT_MIN_MS, _SNAPSHOT_RANGE_MS
        if quick:
            base //= 10
            spread //= 10
        t = self._now()
        self._next_min = t + base + self._rng.randrange(spread)
        if not quick:
            self._next_max = t + _SNAPSHOT_MAX_MS

    # --- writing -------------------------------------------------------------------

    def _truncate_tail(self) -> None:
        if self._file_size > self._end:
            if not self._quiet:
                _log().warning("%s: truncating %d bytes of unreadable data at offset %d",
                               self.path, self._file_size - self._end, self._end)
            try:
                os.ftruncate(self._fd, self._end)
            except OSError as e:
                raise OSError(e.errno, f"{self.path}: cannot truncate to length "
                                       f"{self._end}") from None
            self._file_size = self._end

    def write_record(self, record: dict[str, Any], *, durable: bool = False) -> None:
        """Append one record (a raw JSON object); OSError if it could not be written."""
        if self._fd < 0:
            raise OSError(errno.EBADF, f"{self.path}: storage is closed")
        self._truncate_tail()
        data = ovlog.compose_record(record)
        try:
            _pwrite_all(self._fd, data, self._end)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
            raise OSError(e.errno, f"{self.path}: write failed") from None
        self._end += len(data)
        self._file_size = self._end
        self._n_records += 1
        if self._since_snapshot is not None:
            self._since_snapshot.append(data)
        if durable:
            try:
                os.fdatasync(self._fd)
            except OSError as e:
                raise OSError(e.errno, f"{self.path}: fsync failed") from None

    def commit(self, changes: Changes, *, durable: bool = False, comment: str | None = None,
               date_ms: int | None = None) -> bool:
        """Log a committed transaction (before it is applied to :attr:`db`).

        Returns False when nothing in it persists (only ephemeral columns changed), in
        which case nothing is written, as in OVS.
        """
        record = ovlog.changes_to_record(self.schema, changes, comment=comment,
                                         date_ms=now_ms() if date_ms is None else date_ms)
        if record is None:
            return False
        self.write_record(record, durable=durable)
        return True

    # --- compaction without stopping the server -------------------------------------

    @property
    def compacting(self) -> bool:
        return self._since_snapshot is not None

    def begin_compaction(self, *, comment: str = ONLINE_COMPACT_COMMENT) -> Compaction:
        """Take a snapshot of :attr:`db` (cheap: rows are immutable, the tables are
        copied shallowly) and start keeping the records written from now on.

        Then call :meth:`Compaction.write` from any thread (it touches only the new
        file) and :meth:`finish_compaction` back in the thread that commits.
        """
        if self._fd < 0:
            raise OSError(errno.EBADF, f"{self.path}: storage is closed")
        if self._since_snapshot is not None:
            raise OSError(errno.EBUSY, f"{self.path}: compaction already in progress")
        real = follow_symlinks(os.path.abspath(self.path))
        tables = {t: dict(rows) for t, rows in self.db.tables.items()}
        self._since_snapshot = []
        return Compaction(self.schema, self.schema_file.json, tables, real, real + ".tmp",
                          now_ms(), comment)

    def finish_compaction(self, job: Compaction) -> None:
        """Append what was committed meanwhile to the new file, sync it and put it in
        place of the old one. On failure (or if the write failed) the old file stays."""
        tail = self._since_snapshot or []
        self._since_snapshot = None
        fd = job.fd
        try:
            if job.error is not None:
                raise job.error
            if fd < 0 or self._fd < 0:
                raise OSError(errno.EBADF, f"{self.path}: storage is closed")
            extra = b"".join(tail)
            _write_all(fd, extra)
            os.fdatasync(fd)
            os.rename(job.tmp, job.real)
        except OSError:
            job.discard()
            self._schedule(quick=True)
            raise
        fsync_parent_dir(job.real)
        os.close(self._fd)
        self._fd = fd
        job.fd = -1
        self._base = job.size
        self._end = self._file_size = job.size + len(extra)
        self.read_error = None
        self._schedule(quick=False)

    def compact(self, *, comment: str = ONLINE_COMPACT_COMMENT, is_diff: bool = True,
                tables: Mapping[str, Mapping[str, Row]] | None = None,
                date_ms: int | None = None) -> None:
        """Replace the file by a snapshot of :attr:`db` (or *tables*), atomically.

        Writes ``<file>.tmp`` next to the real file (symlinks followed), syncs it, renames
        it over the file and syncs the directory. On failure the old file stays in use.
        """
        if self._fd < 0:
            raise OSError(errno.EBADF, f"{self.path}: storage is closed")
        if self._since_snapshot is not None:
            raise OSError(errno.EBUSY, f"{self.path}: compaction already in progress")
        real = follow_symlinks(os.path.abspath(self.path))
        tmp = real + ".tmp"
        record = ovlog.snapshot_record(
            self.schema, self.db.tables if tables is None else tables,
            date_ms=now_ms() if date_ms is None else date_ms, comment=comment,
            is_diff=is_diff)
        body = (ovlog.compose_record(self.schema_file.json)
                + ovlog.compose_record(record))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o660)
        try:
            _write_all(fd, body)
            os.fdatasync(fd)
            os.rename(tmp, real)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            self._schedule(quick=True)
            raise
        fsync_parent_dir(real)
        os.close(self._fd)
        self._fd = fd
        self._end = self._file_size = self._base = len(body)
        self.read_error = None
        self._schedule(quick=False)
