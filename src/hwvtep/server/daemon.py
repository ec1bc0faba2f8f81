"""Daemon conventions of Open vSwitch: run/log directories, pidfiles, --detach, vlog.

The server follows them so that operators' habits and tools (`ovs-appctl -t ovsdb-server`,
pidfiles under /var/run/openvswitch, `-vfile:info`) keep working.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field


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


def write_pidfile(path: str, pid: int | None = None) -> None:
    """Write our pid, refusing when another live process holds the pidfile."""
    pid = os.getpid() if pid is None else pid
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        with open(path) as f:
            other = int(f.read().strip() or "0")
        if other and other != pid and _alive(other):
            raise PidfileError(f"{path}: already running as pid {other}, aborting")
    except (FileNotFoundError, ValueError):
        pass
    tmp = f"{path}.tmp{pid}"
    with open(tmp, "w") as f:
        f.write(f"{pid}\n")
    os.replace(tmp, path)


def remove_pidfile(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return
        os.unlink(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


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

    def apply_spec(self, spec: str) -> str | None:
        """A -v / vlog/set spec such as "console:info", "file:dbg", "dbg", "ANY:off".

        Returns an error message, or None.
        """
        if spec in ("", "dbg") or spec is None:
            spec = spec or "dbg"
        dests, level = {"console", "file"}, None
        for word in spec.replace(":", " ").split():
            w = word.lower()
            if w in ("console", "file"):
                dests = {w}
            elif w in ("syslog", "any"):
                continue
            elif w in _LEVEL_WORDS:
                level = _LEVEL_WORDS[w]
            elif w.startswith("pattern"):
                continue
            else:
                # a module name: we log every module at the same levels
                continue
        if level is None:
            if spec.strip().lower() in ("console", "file", "any"):
                level = logging.DEBUG
            else:
                return f"unknown log level in \"{spec}\""
        if "console" in dests:
            self.console_level = level
        if "file" in dests:
            self.file_level = level
        self.install()
        return None

    def install(self) -> None:
        root = logging.getLogger("hwvtep")
        root.setLevel(logging.DEBUG)
        root.propagate = False
        if self._console_handler is None:
            self._console_handler = logging.StreamHandler(sys.stderr)
            self._console_handler.setFormatter(VlogFormatter())
            root.addHandler(self._console_handler)
        self._console_handler.setLevel(self.console_level)
        if self.file_path and self._file_handler is None:
            os.makedirs(os.path.dirname(self.file_path) or ".", exist_ok=True)
            self._file_handler = logging.FileHandler(self.file_path)
            self._file_handler.setFormatter(VlogFormatter())
            root.addHandler(self._file_handler)
        if self._file_handler is not None:
            self._file_handler.setLevel(self.file_level)

    def reopen(self) -> None:
        if self._file_handler is not None and isinstance(self._file_handler,
                                                         logging.FileHandler):
            self._file_handler.close()
            logging.getLogger("hwvtep").removeHandler(self._file_handler)
            self._file_handler = None
            self.install()


ShutdownHook = Callable[[], None]
