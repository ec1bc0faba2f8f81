"""`hwvtep ovsdb-server`: the command line, start-up and shutdown of the OVSDB server.

Options mean what they mean to Open vSwitch's ovsdb-server, so scripts written for it
(pidfiles, `ovs-appctl -t ovsdb-server`, `--remote=db:...`) keep working.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable

from hwvtep import __version__
from hwvtep.server import daemon

PROGRAM = "ovsdb-server"

USAGE = f"""\
{PROGRAM}: Open vSwitch compatible database server (hwvtep {__version__})
usage: hwvtep ovsdb-server [OPTIONS] [DATABASE...]
where each DATABASE is a database file in ovsdb format.
The default DATABASE, if none is given, is
{daemon.dbdir()}/conf.db.

JSON-RPC options (may be specified any number of times):
  --remote=REMOTE         connect or listen to REMOTE: punix:PATH, ptcp:PORT[:IP],
                          pssl:PORT[:IP], unix:PATH, tcp:IP:PORT, ssl:IP:PORT,
                          or db:DB,TABLE,COLUMN

Daemon options:
  --detach                run in background as daemon
  --no-chdir              do not chdir to '/' (accepted; hwvtep never changes directory)
  --pidfile[=FILE]        create pidfile (default: {daemon.rundir()}/{PROGRAM}.pid)
  --overwrite-pidfile     with --pidfile, start even if already running
  --monitor               accepted for compatibility (use a supervisor instead)
  --unixctl=SOCKET        override default control socket name

Logging options:
  -vSPEC, --verbose=SPEC  set logging levels (e.g. console:info, file:dbg)
  -v, --verbose           set maximum verbosity level
  --log-file[=FILE]       enable logging to specified FILE
                          (default: {daemon.logdir()}/{PROGRAM}.log)

SSL options:
  -p, --private-key=FILE  file with private key
  -c, --certificate=FILE  file with certificate for private key
  -C, --ca-cert=FILE      file with peer CA certificate

hwvtep options:
  --create-if-missing[=SCHEMA]
                          create a missing DATABASE file from SCHEMA (default: the bundled
                          hardware_vtep schema)
  --max-message-size=BYTES
                          largest JSON-RPC message accepted from a client
                          (default: 64 MiB)

Other options:
  -h, --help              display this help message
  -V, --version           display version information
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"hwvtep {PROGRAM}", add_help=False, usage=USAGE)
    p.add_argument("databases", nargs="*")
    p.add_argument("--remote", action="append", default=[])
    p.add_argument("--detach", action="store_true")
    p.add_argument("--no-chdir", action="store_true")
    p.add_argument("--monitor", action="store_true")
    p.add_argument("--pidfile", nargs="?", const="", default=None)
    p.add_argument("--overwrite-pidfile", action="store_true")
    p.add_argument("--unixctl", default=None)
    p.add_argument("--log-file", nargs="?", const="", default=None)
    p.add_argument("-v", "--verbose", nargs="?", const="dbg", action="append", default=[])
    p.add_argument("-p", "--private-key", default=None)
    p.add_argument("-c", "--certificate", default=None)
    p.add_argument("-C", "--ca-cert", default=None)
    p.add_argument("--bootstrap-ca-cert", default=None)
    p.add_argument("--ssl-protocols", default=None)
    p.add_argument("--ssl-ciphers", default=None)
    p.add_argument("--create-if-missing", nargs="?", const="", default=None)
    p.add_argument("--max-message-size", type=int, default=64 * 1024 * 1024)
    # For tests: the inactivity probe interval (ms) of tcp/ssl remotes not configured
    # by a Manager row (Open vSwitch's is fixed at 5000; 0 disables).
    p.add_argument("--inactivity-probe", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("-V", "--version", action="store_true")
    return p


# Options whose argument is optional take it only as "--opt=ARG" (getopt's rule, which
# ovsdb-server follows): "--pidfile conf.db" names a database, not the pidfile.
_OPTIONAL_ARG = {"--pidfile": "--pidfile=", "--log-file": "--log-file=",
                 "--create-if-missing": "--create-if-missing=",
                 "--verbose": "--verbose=dbg", "-v": "-vdbg"}


def main(argv: list[str]) -> int:
    parsed = daemon.parse_daemon_args(build_parser(), argv, PROGRAM, USAGE, _OPTIONAL_ARG)
    if isinstance(parsed, int):
        return parsed
    opts = parsed
    from hwvtep.server.app import ServerApp, StartupError

    if not opts.databases:
        opts.databases = [os.path.join(daemon.dbdir(), "conf.db")]
    vlog = daemon.start_vlog(PROGRAM, opts.log_file, opts.verbose)
    if vlog is None:
        return 1

    detacher = daemon.Detacher(opts.detach)
    detacher.start()
    try:
        app = ServerApp(opts, vlog)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_run(app, detacher))
    except StartupError as e:
        detacher.failed()
        sys.stderr.write(f"{PROGRAM}: {e}\n")
        return 1


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (it halves the per-request overhead of the event
    loop); HWVTEP_EVENT_LOOP=asyncio keeps the standard loop."""
    if os.environ.get("HWVTEP_EVENT_LOOP") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _run(app: object, detacher: daemon.Detacher) -> int:
    from hwvtep.server.app import ServerApp

    assert isinstance(app, ServerApp)
    try:
        await app.start()
    except BaseException:
        detacher.failed()
        raise
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, app.request_exit)
    detacher.ready()
    try:
        await app.wait_exit()
    finally:
        await app.stop()
    return 0
