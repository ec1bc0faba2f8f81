"""What `hwvtep ctl` (vtep-ctl) and `hwvtep ovsdb-client` share on their command lines.

Both mimic Open vSwitch programs built on the same C library: vlog for console logging,
the table printer's options (--format, --data, ...) and the same number parsing for
--timeout and --max-column-width (options themselves are parsed by :mod:`hwvtep.cmdline`).
One copy here keeps the two tools' messages identical where Open vSwitch's are. ``hwvtep
ctl`` starts on every call of a script, so this module imports nothing but the standard
library's always-loaded modules.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    Fail = Callable[[str], NoReturn]


LEVELS = ("off", "emer", "err", "warn", "info", "dbg")
_DESTINATIONS = ("console", "syslog", "file")


class Exit(Exception):
    """Leave with this status once what was asked (--help, --version...) is printed."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Log:
    """Console logging the way Open vSwitch's vlog writes it (stderr, per-module levels)."""

    def __init__(self) -> None:
        self.levels: dict[str, int] = {}
        self.default = LEVELS.index("warn")
        self.seq = 0

    def set_spec(self, spec: str | None) -> None:
        if spec is None:
            self.default = LEVELS.index("dbg")
            self.levels = {}
            return
        module: str | None = None
        level: int | None = None
        console = True
        for word in spec.replace(",", ":").replace(" ", ":").split(":"):
            w = word.lower()
            if not w:
                continue
            if w in LEVELS:
                level = LEVELS.index(w)
            elif w in _DESTINATIONS or w == "any":
                console = w in ("console", "any")
            elif w != "all":
                module = w
        if level is None or not console:
            return
        if module is None:
            self.default = level
            self.levels = {}
        else:
            self.levels[module] = level

    def enabled(self, module: str, level: str) -> bool:
        return LEVELS.index(level) <= self.levels.get(module, self.default)

    def line(self, module: str, level: str, msg: str) -> str:
        """The next numbered line, whatever the levels say."""
        import time

        self.seq += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return f"{now}|{self.seq:05d}|{module}|{level.upper()}|{msg}\n"

    def log(self, module: str, level: str, msg: str) -> None:
        if not self.enabled(module, level):
            return
        sys.stderr.write(self.line(module, level, msg))
        sys.stderr.flush()


class Style:
    """How tables are printed (--format, --data, --no-headings, --pretty, ...)."""

    __slots__ = ("cell_format", "format", "headings", "max_column_width", "pretty")

    def __init__(self) -> None:
        self.format = "list"
        self.cell_format = "string"
        self.headings = True
        self.pretty = False
        self.max_column_width = 0


def apply_style_option(style: Style, name: str, val: str | None, fail: Fail) -> bool:
    """The table printer's options; False if *name* is not one of them."""
    if name == "format":
        if val not in ("table", "list", "html", "csv", "json"):
            fail(f'unknown output format "{val}"')
        style.format = val
    elif name == "data":
        if val not in ("string", "bare", "json"):
            fail(f'unknown data format "{val}"')
        style.cell_format = val
    elif name == "no-headings":
        style.headings = False
    elif name == "pretty":
        style.pretty = True
    elif name == "bare":
        style.format = "list"
        style.cell_format = "bare"
        style.headings = False
    elif name == "max-column-width":
        style.max_column_width = atoi(val or "")
    else:
        return False
    return True


def parse_timeout(val: str | None, fail: Fail) -> int:
    """--timeout's seconds (a positive 32-bit number)."""
    assert val is not None
    t = str_to_uint(val)
    if not t:
        fail(f"value {val} on -t or --timeout is invalid")
    return t


def env_timeout() -> int:
    """$OVS_CTL_TIMEOUT's seconds, 0 if unset or invalid."""
    env = os.environ.get("OVS_CTL_TIMEOUT")
    return str_to_uint(env) if env else 0


def str_to_uint(s: str) -> int:
    """OVS's str_to_uint(); 0 where it fails."""
    from hwvtep.ctl.values import str_to_llong

    v = str_to_llong(s)
    if v is None or v < 0 or v > 2**32 - 1:
        return 0
    return v


def atoi(s: str) -> int:
    """C's atoi(): leading white space, a sign and ASCII digits; 0 if there are none."""
    s = s.lstrip(" \t\n\v\f\r")
    n = 1 if s[:1] in ("+", "-") else 0
    while n < len(s) and "0" <= s[n] <= "9":
        n += 1
    try:
        return int(s[:n])
    except ValueError:
        return 0


def rundir() -> str:
    return os.environ.get("OVS_RUNDIR") or "/var/run/openvswitch"


def default_remote() -> str:
    return f"unix:{rundir()}/db.sock"
