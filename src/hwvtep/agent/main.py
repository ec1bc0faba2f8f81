"""`hwvtep agent`: the command line of the hardware VTEP emulator on the Linux kernel.

It plays the part ovs-vtep plays for Open vSwitch: given the name of a Physical_Switch
and where its hardware_vtep database is, it keeps a network namespace's bridges, vxlan
devices and fdb true to the database and reports back what the switch sees. Daemon
options follow the Open vSwitch conventions (`--pidfile`, `--detach`, `--log-file`,
`-vSPEC`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from hwvtep import __version__
from hwvtep.server import daemon

PROGRAM = "hwvtep-agent"
DEFAULT_DB = "unix:/var/run/openvswitch/db.sock"

USAGE = f"""\
{PROGRAM}: hardware VTEP emulator on the Linux kernel data plane (hwvtep {__version__})
usage: hwvtep agent [OPTIONS] PS-NAME
PS-NAME is the name of the Physical_Switch this agent serves (created if missing).

Options:
  --db=REMOTE             the hardware_vtep database: unix:PATH, tcp:IP:PORT, ssl:IP:PORT
                          (repeat for the members of a cluster; default: {DEFAULT_DB})
  --port=IFNAME-OR-GLOB   serve this port (or every existing port whose name matches);
                          may be repeated. Without any, the Physical_Port rows of the
                          switch say which ports it has
  --netns=NS              act on network namespace NS (/run/netns/NS) instead of ours
  --prefix=P              name of this agent's devices (P + 'b'|'x' + VNI; default hv)
  --cleanup               on exit, remove every device and local row the agent made
  --resync-interval=SECS  full re-read of the kernel as a safety net (default 60)
  --stats-interval=SECS   binding statistics refresh period (default 5)

Daemon options:
  --detach                run in background as daemon
  --pidfile[=FILE]        create pidfile (default: {daemon.rundir()}/{PROGRAM}.pid)
  --overwrite-pidfile     with --pidfile, start even if already running

Logging options:
  -vSPEC, --verbose=SPEC  set logging levels (e.g. console:info, file:dbg)
  -v, --verbose           set maximum verbosity level
  --log-file[=FILE]       enable logging to specified FILE
                          (default: {daemon.logdir()}/{PROGRAM}.log)

SSL options:
  -p, --private-key=FILE  file with private key
  -c, --certificate=FILE  file with certificate for private key
  -C, --ca-cert=FILE      file with peer CA certificate

Other options:
  -h, --help              display this help message
  -V, --version           display version information
"""

_OPTIONAL_ARG = {
    "--pidfile": "--pidfile=",
    "--log-file": "--log-file=",
    "--verbose": "--verbose=dbg",
    "-v": "-vdbg",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwvtep agent", add_help=False, usage=USAGE)
    p.add_argument("ps_name", nargs="?")
    p.add_argument("--db", action="append", default=[])
    p.add_argument("--port", action="append", default=[])
    p.add_argument("--netns", default=None)
    p.add_argument("--prefix", default="hv")
    p.add_argument("--cleanup", action="store_true")
    p.add_argument("--resync-interval", type=float, default=60.0)
    p.add_argument("--stats-interval", type=float, default=5.0)
    p.add_argument("--detach", action="store_true")
    p.add_argument("--no-chdir", action="store_true")
    p.add_argument("--pidfile", nargs="?", const="", default=None)
    p.add_argument("--overwrite-pidfile", action="store_true")
    p.add_argument("--log-file", nargs="?", const="", default=None)
    p.add_argument("-v", "--verbose", nargs="?", const="dbg", action="append", default=[])
    p.add_argument("-p", "--private-key", default=None)
    p.add_argument("-c", "--certificate", default=None)
    p.add_argument("-C", "--ca-cert", default=None)
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("-V", "--version", action="store_true")
    return p


def main(argv: list[str]) -> int:
    parsed = daemon.parse_daemon_args(build_parser(), argv, PROGRAM, USAGE, _OPTIONAL_ARG)
    if isinstance(parsed, int):
        return parsed
    opts = parsed
    if not opts.ps_name:
        sys.stderr.write(f"{PROGRAM}: missing PS-NAME (use --help for help)\n")
        return 1
    from hwvtep.agent.model import ModelError, Naming

    try:
        Naming(opts.prefix)
    except ModelError as e:
        sys.stderr.write(f"{PROGRAM}: {e}\n")
        return 1
    if opts.netns is not None and not os.path.exists(os.path.join("/run/netns", opts.netns)):
        sys.stderr.write(f"{PROGRAM}: no network namespace {opts.netns!r}\n")
        return 1

    vlog = daemon.start_vlog(PROGRAM, opts.log_file, opts.verbose)
    if vlog is None:
        return 1

    pidfile = None
    if opts.pidfile is not None:
        path = opts.pidfile or daemon.default_pidfile(PROGRAM)
        pidfile = daemon.Pidfile(daemon.abs_path(path))
    detacher = daemon.Detacher(opts.detach)
    detacher.start()
    try:
        if pidfile is not None:
            try:
                pidfile.create(overwrite=opts.overwrite_pidfile)
            except daemon.PidfileError as e:
                detacher.failed()
                sys.stderr.write(f"{PROGRAM}: {e}\n")
                return 1
        return asyncio.run(_run(opts, detacher))
    finally:
        if pidfile is not None:
            pidfile.remove()


async def _run(opts: argparse.Namespace, detacher: daemon.Detacher) -> int:
    from hwvtep.agent.linux import LinuxDataPlane
    from hwvtep.agent.service import DB, MONITOR, Agent, Settings
    from hwvtep.client.api import Client
    from hwvtep.client.connection import Session
    from hwvtep.client.errors import ClientError
    from hwvtep.client.remote import SslConfig
    from hwvtep.client.replica import Replica

    log = logging.getLogger("hwvtep.agent")
    ssl = None
    if opts.private_key or opts.certificate or opts.ca_cert:
        ssl = SslConfig(opts.private_key, opts.certificate, opts.ca_cert)
    try:
        session = Session(opts.db or [DEFAULT_DB], ssl=ssl, database=DB,
                          min_backoff=250, max_backoff=2000)  # fmt: skip
        dp = await LinuxDataPlane.open(opts.netns)
    except (ClientError, OSError, ValueError) as e:
        detacher.failed()
        sys.stderr.write(f"{PROGRAM}: {e}\n")
        return 1
    client = Client(session, timeout=30.0)
    replica = Replica(client, DB, tables=MONITOR)
    session.start()
    settings = Settings(
        ps_name=opts.ps_name,
        prefix=opts.prefix,
        ports=tuple(opts.port),
        resync_interval=opts.resync_interval,
        stats_interval=opts.stats_interval,
    )
    agent = Agent(replica, dp, settings)
    await agent.open()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, agent.stop)
    detacher.ready()
    log.info("%s %s serving %s", PROGRAM, __version__, opts.ps_name)
    try:
        await agent.run()
        if opts.cleanup:
            log.info("cleaning up")
            await agent.cleanup()
    finally:
        await replica.close()
        dp.close()
    log.info("exiting")
    return 0
