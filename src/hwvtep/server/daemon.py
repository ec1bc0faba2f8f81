"""Daemon conventions of Open vSwitch: run/log directories, pidfiles, --detach, vlog.

The server follows them so that operators' habits and tools (`ovs-appctl -t ovsdb-server`,
pidfiles under /var/run/openvswitch, `-vfile:info`) keep working.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def rundir() -> str:
    return os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")


def logdir() -> str:
    return os.environ.get("OVS_LOGDIR", "/var/log/openvswitch")


def dbdir() -> str:
    return os.environ.get("OVS_DBDIR", "/etc/openvswitch")


def default_pidfile(program: str) -> str:
    return os.path.join(rundir(), f"{program}.pid")


def default_unixctl_path(program: str, pid: int) -> str:
    return os.path.join(rundir(), f"{program}.{pid}.ctl")


def abs_path(path: str) -> str:
    if os.path.isabs(path) or "/" in path:
        return os.path.abspath(path)
    return os.path.join(rundir(), path)


class PidfileError(RuntimeError):
    pass


def _lock_query(fd: int) -> int:
    """The pid holding a write lock on the whole file *fd* (0: nobody else does)."""
    # struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
    # pid_t l_pid (and padding).
    fmt = "hhqqi"
    req = struct.pack(fmt, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0) + b"\0" * 4
    res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
    l_type, _, _, _, pid = struct.unpack(fmt, res[:struct.calcsize(fmt)])
    return 0 if l_type == fcntl.F_UNLCK else int(pid)


def read_pidfile(path: str, delete_if_stale: bool = False) -> int:
    """The pid of the live daemon that holds *path* locked, as Open vSwitch reads it.

    A pidfile counts only while its writer holds an fcntl lock on it (that is what
    ``ovs-appctl -t NAME`` checks). Returns 0 if there is none (a stale file is deleted
    when *delete_if_stale*); raises OSError otherwise (ESRCH: stale).
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        if delete_if_stale:
            return 0
        raise
    try:
        holder = _lock_query(fd)
        if not holder:
            if not delete_if_stale:
                raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))
            # Whoever locks the stale file first has the right to delete it.
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise OSError(errno.EALREADY, os.strerror(errno.EALREADY))
            os.unlink(path)
            return 0
        line = os.pread(fd, 128, 0).split(b"\n", 1)[0]
        try:
            written = int(line)
        except ValueError:
            written = -1
        if written != holder:
            raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))
        return holder
    finally:
        os.close(fd)  # never one of our own pidfile's fds: that would drop its lock


class Pidfile:
    """A pidfile held locked (fcntl) for the life of the process, as OVS daemons do."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._ino = (0, 0)

    def create(self, overwrite: bool = False) -> None:
        pid = os.getpid()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # Writers share one temporary name, so its lock also serialises them.
        tmp = f"{self.path}.tmp{pid}" if overwrite else f"{self.path}.tmp"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise PidfileError(f"{tmp}: create failed ({e.strerror})") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            err = errno.EAGAIN if e.errno == errno.EACCES else (e.errno or errno.EIO)
            raise PidfileError(f"{tmp}: fcntl(F_SETLK) failed ({os.strerror(err)})") from None
        try:
            if not overwrite:
                try:
                    other = read_pidfile(self.path, delete_if_stale=True)
                except OSError as e:
                    raise PidfileError(f"{self.path}: pidfile check failed ({e.strerror}), "
                                       "aborting") from None
                if other:
                    raise PidfileError(f"{self.path}: already running as pid {other}, "
                                       "aborting")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid}\n".encode(), 0)
            os.rename(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            os.close(fd)
            raise
        st = os.fstat(fd)
        self._fd, self._ino = fd, (st.st_dev, st.st_ino)

    def remove(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._ino:
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = -1


@dataclass
class Detacher:
    """--detach: fork; the parent exits 0 once the child says it is ready (or 1)."""

    enabled: bool
    _write_fd: int | None = field(default=None, init=False)

    def start(self) -> None:
        if not self.enabled:
            return
        r, w = os.pipe()
        pid = os.fork()
        if pid:
            os.close(w)
            data = os.read(r, 1)
            os._exit(0 if data == b"1" else 1)
        os.close(r)
        os.setsid()
        self._write_fd = w

    def ready(self) -> None:
        """Tell the waiting parent that start-up succeeded; detach stdio."""
        if self._write_fd is None:
            return
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"1")
        os.close(self._write_fd)
        self._write_fd = None

    def failed(self) -> None:
        if self._write_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._write_fd, b"0")
            os.close(self._write_fd)
            self._write_fd = None


class VlogFormatter(logging.Formatter):
    """2026-11-25T04:22:25.123Z|00001|module|INFO|message, like Open vSwitch's vlog."""

    _LEVELS = {"DEBUG": "DBG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERR",
               "CRITICAL": "EMER"}

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0

    def format(self, record: logging.LogRecord) -> str:
        self._seq += 1
        t = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"
        module = record.name.rsplit(".", 1)[-1]
        level = self._LEVELS.get(record.levelname, record.levelname)
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return f"{stamp}|{self._seq:05d}|{module}|{level}|{msg}"


_DESTINATIONS = ("console", "syslog", "file")
# Modules as Open vSwitch names them, plus the last component of our loggers' names.
_OVS_MODULES = frozenset(("ovsdb_server", "jsonrpc", "unixctl", "reconnect", "vlog",
                          "stream_ssl", "ovsdb_jsonrpc_server", "daemon_unix", "poll_loop"))


def known_modules() -> frozenset[str]:
    ours = {name.rsplit(".", 1)[-1] for name in logging.Logger.manager.loggerDict
            if name.startswith("hwvtep.")}
    return _OVS_MODULES | ours


class _ModuleFilter(logging.Filter):
    def __init__(self, vlog: Vlog, dest: str) -> None:
        super().__init__()
        self.vlog = vlog
        self.dest = dest

    def filter(self, record: logging.LogRecord) -> bool:
        module = record.name.rsplit(".", 1)[-1]
        return record.levelno >= self.vlog._threshold(module, self.dest)


_LEVEL_WORDS = {"off": logging.CRITICAL + 10, "emer": logging.CRITICAL, "err": logging.ERROR,
                "warn": logging.WARNING, "info": logging.INFO, "dbg": logging.DEBUG}


@dataclass
class Vlog:
    """Console and file log destinations with OVS-style -v settings."""

    program: str
    console_level: int = logging.WARNING
    file_level: int = logging.INFO
    file_path: str | None = None
    _file_handler: logging.Handler | None = field(default=None, init=False)
    _console_handler: logging.Handler | None = field(default=None, init=False)

    # (module, destination) -> level, overriding the destination's level for one module
    module_levels: dict[tuple[str, str], int] = field(default_factory=dict)

    def apply_spec(self, spec: str) -> str | None:
        """A -v / vlog/set spec ("console:info", "file:dbg", "jsonrpc:file:dbg", "ANY:off",
        "dbg"), read as Open vSwitch reads it. Returns an error message, or None.
        """
        words = [w for w in re.split(r"[ ,:\t]+", spec) if w]
        if words and words[0].lower() in ("pattern", "facility"):
            return None  # accepted; our log lines keep one format
        module: str | None = None
        level: int | None = None
        dest: str | None = None
        for word in words:
            w = word.lower()
            if w == "any":
                continue
            if w in _DESTINATIONS:
                if dest is not None:
                    return "cannot specify multiple destinations"
                dest = w
            elif w in _LEVEL_WORDS:
                if level is not None:
                    return "cannot specify multiple levels"
                level = _LEVEL_WORDS[w]
            elif w in known_modules():
                if module is not None:
                    return "cannot specify multiple modules"
                module = w
            else:
                return f'no destination, level, or module "{word}"'
        level = logging.DEBUG if level is None else level
        dests = [dest] if dest is not None else list(_DESTINATIONS)
        for d in dests:
            if module is not None:
                self.module_levels[(module, d)] = level
                continue
            for key in [k for k in self.module_levels if k[1] == d]:
                del self.module_levels[key]
            if d == "console":
                self.console_level = level
            elif d == "file":
                self.file_level = level
        self.install()
        return None

    def _threshold(self, module: str, dest: str) -> int:
        level = self.module_levels.get((module, dest))
        if level is not None:
            return level
        return self.console_level if dest == "console" else self.file_level

    def install(self) -> None:
        root = logging.getLogger("hwvtep")
        # Records below every threshold are not even created.
        root.setLevel(min(self.console_level,
                          self.file_level if self.file_path else logging.CRITICAL + 10,
                          *self.module_levels.values()))
        root.propagate = False
        if self._console_handler is None:
            self._console_handler = logging.StreamHandler(sys.stderr)
            self._console_handler.setFormatter(VlogFormatter())
            root.addHandler(self._console_handler)
        if self.file_path and self._file_handler is None:
            os.makedirs(os.path.dirname(self.file_path) or ".", exist_ok=True)
            self._file_handler = logging.FileHandler(self.file_path)
            self._file_handler.setFormatter(VlogFormatter())
            root.addHandler(self._file_handler)
        for dest, handler in (("console", self._console_handler),
                              ("file", self._file_handler)):
            if handler is None:
                continue
            handler.setLevel(logging.DEBUG if self.module_levels
                             else self._threshold("", dest))
            handler.filters.clear()
            if self.module_levels:
                handler.addFilter(_ModuleFilter(self, dest))

    def reopen(self) -> None:
        if self._file_handler is not None and isinstance(self._file_handler,
                                                         logging.FileHandler):
            self._file_handler.close()
            logging.getLogger("hwvtep").removeHandler(self._file_handler)
            self._file_handler = None
            self.install()


ShutdownHook = Callable[[], None]


# --- command-line start-up shared by the daemons (ovsdb-server, the agent) ---------------


def parse_daemon_args(parser: argparse.ArgumentParser, argv: list[str], program: str,
                      usage: str, optional_arg: dict[str, str]) -> argparse.Namespace | int:
    """Parse a daemon's command line; an int is the exit status when there is nothing to
    run (--help, --version, a usage error, which argparse has reported).

    *optional_arg* rewrites options whose argument is optional ("--pidfile" to
    "--pidfile="), so that they take one only as "--opt=ARG", getopt's rule that Open
    vSwitch's daemons follow: "--pidfile conf.db" names a database, not the pidfile."""
    attached: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            attached += argv[i:]
            break
        attached.append(optional_arg.get(arg, arg))
    try:
        opts = parser.parse_args(attached)
    except SystemExit as e:
        return int(e.code or 0) or 1
    if opts.help:
        sys.stdout.write(usage)
        return 0
    if opts.version:
        from hwvtep import __version__

        print(f"{program} (hwvtep) {__version__}")
        return 0
    return opts


def start_vlog(program: str, log_file: str | None, verbose: list[str]) -> Vlog | None:
    """Install the logging that --log-file[=FILE] and the -v specs ask for; None, with the
    error on stderr, if a spec is bad."""
    vlog = Vlog(program)
    if log_file is not None:
        vlog.file_path = log_file or os.path.join(logdir(), f"{program}.log")
    for spec in verbose:
        err = vlog.apply_spec(spec)
        if err:
            sys.stderr.write(f"{program}: {err}\n")
            return None
    vlog.install()
    return vlog
