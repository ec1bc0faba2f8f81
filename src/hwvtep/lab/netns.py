"""Builds and removes a lab on this machine: namespaces, veth pairs, addresses, bridges,
VXLAN devices, routes, sysctls and daemons, from a validated :class:`Topology`.

Safety rules this module keeps:

* every namespace is named ``hwl-<lab>-<random id>-<node>`` (the id is new for each lab
  run), and a veth pair is created with both ends directly inside their namespaces, so
  names such as ``eth0`` or ``s2-eth1`` never exist in the root namespace;
* every object is recorded in the state file (:mod:`hwvtep.lab.state`) before it is
  created; `down` removes exactly what is recorded and checks identities first (a
  namespace's inode, a process's start time) so it never removes a look-alike;
* every step tolerates "already exists", so `up` is idempotent and can finish a
  half-done lab.

Daemons run through a small "process in a namespace" facility (:func:`spawn_in_netns`,
:func:`stop_process`, :func:`is_running`) with a pidfile and a log under the lab
directory. An hwvtep node gets two of them, `hwvtep ovsdb-server` (its hardware_vtep
database, files in ``<lab dir>/<node>/``) and `hwvtep agent`; `up` returns once the
database answers and the agent has registered its switch.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns
from pyroute2.netlink.exceptions import NetlinkError

from hwvtep.lab import state as st
from hwvtep.lab.state import LabError, LabState, Obj
from hwvtep.lab.topology import VXLAN_PORT, Link, Node, Topology, parse

NETNS_DIR = Path("/run/netns")
IFA_F_NODAD = 0x02
PROCESS_TAG_ENV = "HWVTEP_LAB_PROCESS"  # lets `down` find a daemon whose pid was never saved

Progress = Callable[[str], None]
StepHook = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- namespaces


def netns_inode(name: str) -> int | None:
    """The inode of a named namespace (its identity), or None if there is no such name."""
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except FileNotFoundError:
        return None


def netns_names() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_pids(inode: int) -> list[int]:
    """Processes whose network namespace is the one with this inode."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with this thread inside a namespace (never creating it)."""
    pr_netns.pushns()
    try:
        pr_netns.setns(name, flags=0)
        yield
    finally:
        pr_netns.popns()


def write_sysctl(netns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    with in_netns(netns), open(path, "w", encoding="ascii") as f:
        f.write(value)


def read_sysctl(netns: str, key: str) -> str:
    path = "/proc/sys/" + key.replace(".", "/")
    with in_netns(netns), open(path, encoding="ascii") as f:
        return f.read().strip()


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    start_time: int  # clock ticks since boot, from /proc/PID/stat: tells a reused pid apart


_children: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def process_start_time(pid: int) -> int | None:
    """The start time of a live (not zombie) process, or None."""
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(pid: int, start_time: int) -> bool:
    return process_start_time(pid) == start_time


def spawn_in_netns(
    netns: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    pidfile: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessInfo:
    """Start a daemon inside a namespace, in its own session, output appended to a log."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            ["ip", "netns", "exec", netns, *argv],  # `ip` execs argv: same pid
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    _children[child.pid] = child
    start = process_start_time(child.pid)
    if start is None:  # it died at once: report what its log says
        child.wait()
        _children.pop(child.pid, None)
        tail = _tail(log_path)
        raise LabError(f"{' '.join(argv)} exited at once (status {child.returncode}){tail}")
    pidfile.write_text(f"{child.pid}\n", encoding="ascii")
    return ProcessInfo(child.pid, start)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return ("; log: " + " | ".join(text[-lines:])) if text else ""


def stop_process(
    pid: int, start_time: int, *, term_timeout: float = 5.0, kill_timeout: float = 2.0
) -> str:
    """SIGTERM the process (and its session group), then SIGKILL if it lingers.

    Returns "not running", "stopped" or "killed". A pid now used by another process (a
    different start time) is left alone and reported as "not running".
    """
    if not is_running(pid, start_time):
        return "not running"

    def signal_it(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:  # leader of the group we made for it
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    for sig, timeout, outcome in ((signal.SIGTERM, term_timeout, "stopped"),
                                  (signal.SIGKILL, kill_timeout, "killed")):
        try:
            signal_it(sig)
        except ProcessLookupError:
            return outcome
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_running(pid, start_time):
                return outcome
            time.sleep(0.01)
    raise LabError(f"process {pid} survives SIGKILL")


def find_tagged_processes(tag: str) -> list[int]:
    """Processes started with PROCESS_TAG_ENV=tag (to catch a daemon whose pid was lost)."""
    needle = f"{PROCESS_TAG_ENV}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


# --------------------------------------------------------------------------- tools


def hwvtep_command() -> str | None:
    """The `hwvtep` program of this installation (the one next to our interpreter first)."""
    sibling = Path(sys.executable).with_name("hwvtep")
    if os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which("hwvtep")


def find_tool(name: str) -> str | None:
    """Where a program `up` starts is found (for :func:`hwvtep.lab.topology.parse`)."""
    return hwvtep_command() if name == "hwvtep" else shutil.which(name)


def node_env(state: LabState, node: str) -> dict[str, str]:
    """Environment of commands run in a node: hwvtep on PATH, and for an hwvtep node its
    database as the default of `hwvtep ctl` ($HWVTEP_DB) and of vtep-ctl ($OVS_RUNDIR);
    for a controller, its first target's OVSDB endpoint."""
    env = {"HWVTEP_LAB": state.lab, "HWVTEP_LAB_NODE": node}
    program = hwvtep_command()
    path = os.environ.get("PATH", os.defpath)
    if program is not None:
        bindir = str(Path(program).parent)
        if bindir not in path.split(os.pathsep):
            path = bindir + os.pathsep + path
    env["PATH"] = path
    topo = state.topology()
    spec = topo.node(node)
    if spec.kind == "hwvtep":
        rundir = node_dir(state, node)
        env.update(HWVTEP_DB=f"unix:{rundir / DB_SOCKET}", OVS_RUNDIR=str(rundir))
    elif spec.kind == "controller":
        for target in spec.targets:
            tcp = [e for e in topo.ovsdb_endpoints(topo.node(target)) if e.startswith("tcp:")]
            if tcp:
                env["HWVTEP_DB"] = tcp[0]
                break
    return env


# --------------------------------------------------------------------------- hwvtep nodes

DB_FILE = "vtep.db"
DB_SOCKET = "db.sock"
UNIXCTL = "ovsdb-server.ctl"
READY_TIMEOUT = 15.0


def node_dir(state: LabState, node: str) -> Path:
    """Where an hwvtep node's database, its socket and its control socket live."""
    return state.directory / node


def wait_for_socket(path: Path, obj: Obj, timeout: float = READY_TIMEOUT) -> None:
    """Until the daemon of `obj` accepts connections on the unix socket `path`."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(path))
                return
            except OSError:
                pass
        if not is_running(int(obj["pid"]), int(obj["start_time"])):
            raise LabError(f"daemon {obj['node']}/{obj['name']} ({' '.join(obj['argv'])}) "
                           f"exited before it listened on {path}{_tail(Path(str(obj['log'])))}")
        if time.monotonic() > deadline:
            raise LabError(f"daemon {obj['node']}/{obj['name']} does not listen on {path} "
                           f"after {timeout:.0f} s; log {obj['log']}")
        time.sleep(0.01)


def _select_switch(path: Path, name: str, timeout: float) -> list[Any] | None:
    """The `ports` of Physical_Switch `name` (None: no such row), asked on a fresh session."""
    request = {"id": 0, "method": "transact", "params": [
        "hardware_vtep", {"op": "select", "table": "Physical_Switch",
                          "where": [["name", "==", name]], "columns": ["ports"]}]}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode())
        buf = b""
        decoder = json.JSONDecoder()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("the server closed the connection")
            buf += chunk
            try:
                reply, _ = decoder.raw_decode(buf.decode())
            except ValueError:
                continue
            if reply.get("id") != 0:  # e.g. the server's own echo probe
                buf = b""
                continue
            rows = (reply.get("result") or [{}])[0].get("rows")
            if not rows:
                return None
            ports = rows[0]["ports"]
            return list(ports[1]) if ports[0] == "set" else [ports]


def wait_for_switch(path: Path, node: Node, agent: Obj, timeout: float = READY_TIMEOUT) -> None:
    """Until the agent has registered its switch and ports, so a `hwvtep ctl` run right
    after `up` finds them (and never races the agent to create the switch)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ports = _select_switch(path, node.switch_name, timeout)
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            ports = None
        if ports is not None and len(ports) >= len(node.physical_ports):
            return
        if not is_running(int(agent["pid"]), int(agent["start_time"])):
            raise LabError(f"daemon {node.name}/agent ({' '.join(agent['argv'])}) exited "
                           f"before it registered switch {node.switch_name}"
                           f"{_tail(Path(str(agent['log'])))}")
        if time.monotonic() > deadline:
            raise LabError(f"the agent of {node.name} did not register switch "
                           f"{node.switch_name} within {timeout:.0f} s; log {agent['log']}")
        time.sleep(0.02)


def hwvtep_daemon_argvs(state: LabState, node: Node, program: str) -> dict[str, list[str]]:
    """The command lines of an hwvtep node's database server and agent."""
    rundir = node_dir(state, node.name)
    server = [program, "ovsdb-server", f"--remote=punix:{rundir / DB_SOCKET}",
              *(f"--remote={remote}" for remote in node.ovsdb),
              f"--unixctl={rundir / UNIXCTL}", "-vconsole:info", "--create-if-missing",
              str(rundir / DB_FILE)]
    agent = [program, "agent", f"--db=unix:{rundir / DB_SOCKET}", "-vconsole:info",
             *(f"--port={port}" for port in node.physical_ports), node.switch_name]
    return {"ovsdb-server": server, "agent": agent}


def hwvtep_files(state: LabState, node: Node) -> list[Path]:
    """Every file an hwvtep node's daemons may create (so `down` removes them all)."""
    rundir = node_dir(state, node.name)
    files = [rundir / DB_FILE, rundir / f".{DB_FILE}.~lock~", rundir / DB_SOCKET,
             rundir / UNIXCTL]
    files += [Path(r.partition(":")[2]) for r in node.ovsdb if r.startswith("punix:")]
    return files


# --------------------------------------------------------------------------- netlink helpers


@contextlib.contextmanager
def _unless(code: int) -> Iterator[None]:
    """Treat the kernel answering `code` (EEXIST: "already there") as success."""
    try:
        yield
    except NetlinkError as exc:
        if exc.code != code:
            raise


def _index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


class _Handles:
    """One rtnetlink socket per namespace, opened lazily, never creating a namespace."""

    def __init__(self) -> None:
        self._by_ns: dict[str, Any] = {}
        self._root: Any = None

    def ns(self, name: str) -> Any:
        if name not in self._by_ns:
            self._by_ns[name] = IPRoute(netns=name, flags=0)
        return self._by_ns[name]

    def root(self) -> Any:
        if self._root is None:
            self._root = IPRoute()
        return self._root

    def close(self) -> None:
        for ipr in [*self._by_ns.values(), self._root]:
            if ipr is not None:
                with contextlib.suppress(Exception):
                    ipr.close()
        self._by_ns.clear()
        self._root = None


# --------------------------------------------------------------------------- up


@dataclass(slots=True)
class UpResult:
    state: LabState
    created: int  # objects created by this run (0: the lab was already complete)
    seconds: float


def up(
    topo: Topology,
    source_text: str,
    *,
    root: Path | None = None,
    progress: Progress = _quiet,
    step_hook: StepHook | None = None,
    daemon_grace: float = 0.2,
) -> UpResult:
    """Create the lab (or complete it, if it exists with the same topology).

    Daemons started now must still run `daemon_grace` seconds later. A program it would
    start that cannot be found is a :class:`TopologyError` before anything is created.
    """
    root = root or st.default_root()
    started = time.monotonic()
    parse(source_text, topo.source, tools=find_tool)
    with st.locked(root):
        state = st.find_lab(root, topo.name)
        if state is not None:
            if state.phase == st.REMOVING:
                raise LabError(f"lab {topo.name} is being removed (or its removal crashed); "
                               f"run `hwvtep lab down {topo.name}` first")
            if state.topology() != topo:
                raise LabError(f"lab {topo.name} is already up from {state.source_file} with a "
                               f"different topology; run `hwvtep lab down {topo.name}` first")
            progress(f"lab {topo.name} exists ({state.phase}); completing it")
            state.source_text, state.source_file = source_text, os.path.abspath(topo.source)
        else:
            state = LabState.create(root, topo, source_text)
            progress(f"lab {topo.name}: state in {state.path}")
        state.phase = st.CREATING
        state.save()
        builder = _Builder(state, topo, progress, step_hook or (lambda _: None),
                           daemon_grace)
        try:
            builder.build()
        finally:
            builder.handles.close()
        state.phase = st.UP
        state.save()
    return UpResult(state, builder.created, time.monotonic() - started)


class _Builder:
    def __init__(self, state: LabState, topo: Topology, progress: Progress,
                 hook: StepHook, daemon_grace: float) -> None:
        self.state = state
        self.daemon_grace = daemon_grace
        self.topo = topo
        self.progress = progress
        self.hook = hook
        self.handles = _Handles()
        self.created = 0

    def build(self) -> None:
        for node in self.topo.nodes:
            self.namespace(node)
        for link in self.topo.links:
            self.veth(link)
        mtus = self._link_mtus()
        for node in self.topo.nodes:
            self.configure(node, mtus)
        started: list[Obj | None] = []
        for node in self.topo.nodes:
            if node.kind == "hwvtep":
                started += self.hwvtep_daemons(node)
        for node in self.topo.nodes:
            for daemon in node.daemons:
                started.append(self.daemon(node, daemon.name, daemon.argv))
        self._check_alive([obj for obj in started if obj is not None])

    def _check_alive(self, objs: list[Obj]) -> None:
        """A daemon that dies during its first moments is a failed `up`, not a quiet one."""
        deadline = time.monotonic() + (self.daemon_grace if objs else 0.0)
        while True:
            for obj in objs:
                if not is_running(int(obj["pid"]), int(obj["start_time"])):
                    raise LabError(f"daemon {obj['node']}/{obj['name']} "
                                   f"({' '.join(obj['argv'])}) exited at once"
                                   f"{_tail(Path(str(obj['log'])))}")
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)

    # -- namespaces
    def namespace(self, node: Node) -> None:
        name = self.state.namespace(node.name)
        obj = self.state.find("netns", node=node.name)
        if obj is None:
            obj = self.state.record({"kind": "netns", "node": node.name, "name": name,
                                     "inode": None})
            self.hook(f"recorded netns {node.name}")
        inode = netns_inode(name)
        if inode is None:
            pr_netns.create(name)
            inode = netns_inode(name)
            if inode is None:
                raise LabError(f"namespace {name} vanished right after its creation")
            self.created += 1
            self.progress(f"namespace {name} ({node.kind} {node.name})")
        elif obj["inode"] not in (None, inode):
            raise LabError(f"namespace {name} is not the one this lab created; "
                           "refusing to use it")
        if obj["inode"] != inode:
            obj["inode"] = inode
            self.state.save()
        self.hook(f"created netns {node.name}")
        ipr = self.handles.ns(name)
        lo = _index(ipr, "lo")
        if lo is not None:
            ipr.link("set", index=lo, state="up")

    # -- veth pairs, born inside their namespaces
    def veth(self, link: Link) -> None:
        ns_a = self.state.namespace(link.a.node)
        ns_b = self.state.namespace(link.b.node)
        a = {"netns": ns_a, "ifname": link.a.interface}
        b = {"netns": ns_b, "ifname": link.b.interface}
        if self.state.find("veth", a=a, b=b) is None:
            self.state.record({"kind": "veth", "a": a, "b": b})
            self.hook(f"recorded veth {link.a}")
        ipr_a, ipr_b = self.handles.ns(ns_a), self.handles.ns(ns_b)
        idx_a, idx_b = _index(ipr_a, link.a.interface), _index(ipr_b, link.b.interface)
        if idx_a is not None and idx_b is not None:
            self.hook(f"created veth {link.a}")
            return
        # half a pair cannot be completed: drop the survivor (it is in our namespace)
        if idx_a is not None:
            ipr_a.link("del", index=idx_a)
        if idx_b is not None:
            ipr_b.link("del", index=idx_b)
        self.handles.root().link(
            "add", ifname=link.a.interface, kind="veth", net_ns_fd=ns_a,
            peer={"ifname": link.b.interface, "net_ns_fd": ns_b},
        )
        self.created += 1
        self.progress(f"link {link.a} -- {link.b}")
        self.hook(f"created veth {link.a}")

    def _link_mtus(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for link in self.topo.links:
            if link.mtu is not None:
                out[(link.a.node, link.a.interface)] = link.mtu
                out[(link.b.node, link.b.interface)] = link.mtu
        return out

    # -- everything that lives inside one namespace
    def configure(self, node: Node, mtus: dict[tuple[str, str], int]) -> None:
        name = self.state.namespace(node.name)
        ipr = self.handles.ns(name)
        # once the interfaces exist, so per-interface keys (net.ipv4.neigh.eth0...) work
        for key, value in node.all_sysctls():
            try:
                write_sysctl(name, key, value)
            except FileNotFoundError:
                raise LabError(f"node {node.name}: sysctl {key} does not exist in its "
                               "namespace") from None
        for iface in node.interfaces:
            idx = _index(ipr, iface.name)
            if idx is None:
                raise LabError(f"{node.name}:{iface.name} is missing after its creation")
            settings: dict[str, Any] = {}
            if iface.mac is not None:
                settings["address"] = iface.mac
            if (node.name, iface.name) in mtus:
                settings["mtu"] = mtus[(node.name, iface.name)]
            if settings:
                ipr.link("set", index=idx, **settings)
            for addr in iface.addresses:
                flags = IFA_F_NODAD if addr.version == 6 else 0
                with _unless(errno.EEXIST):
                    ipr.addr("add", index=idx, address=str(addr.ip),
                             prefixlen=addr.network.prefixlen, flags=flags)
            ipr.link("set", index=idx, state="up")
        if node.kind == "hypervisor":
            self._overlay(node, ipr)
        for route in node.routes:
            with _unless(errno.EEXIST):
                ipr.route("add", dst=str(route.to), gateway=str(route.via))

    def _overlay(self, node: Node, ipr: Any) -> None:
        assert node.tunnel_ip is not None
        for net in node.networks:
            with _unless(errno.EEXIST):
                ipr.link("add", ifname=net.bridge, kind="bridge")
            br = _index(ipr, net.bridge)
            with _unless(errno.EEXIST):
                ipr.link("add", ifname=net.vxlan, kind="vxlan", vxlan_id=net.vni,
                         vxlan_local=str(node.tunnel_ip), vxlan_port=VXLAN_PORT,
                         vxlan_learning=0)
            vx = _index(ipr, net.vxlan)
            for port in (net.vxlan, *net.ports):
                idx = _index(ipr, port)
                ipr.link("set", index=idx, master=br, state="up")
            ipr.link("set", index=br, state="up")
            for mac, remote in net.remote_macs:
                with _unless(errno.EEXIST):
                    ipr.fdb("append", ifindex=vx, lladdr=mac, dst=str(remote))
            for remote in net.flood:
                with _unless(errno.EEXIST):
                    ipr.fdb("append", ifindex=vx, lladdr="00:00:00:00:00:00", dst=str(remote))

    # -- daemons
    def hwvtep_daemons(self, node: Node) -> list[Obj | None]:
        """The node's database server (ready when this returns), then its agent."""
        program = hwvtep_command()
        if program is None:
            raise LabError("the hwvtep command is not found")
        rundir = node_dir(self.state, node.name)
        if self.state.find("dir", path=str(rundir)) is None:
            self.state.record({"kind": "dir", "path": str(rundir)})
        rundir.mkdir(exist_ok=True)
        for path in hwvtep_files(self.state, node):
            if self.state.find("file", path=str(path)) is None:
                self.state.record({"kind": "file", "path": str(path)})
        argvs = hwvtep_daemon_argvs(self.state, node, program)
        # OVS_* keep every default path of the daemons inside the node's directory
        env = {var: str(rundir) for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR",
                                            "OVS_SYSCONFDIR")}
        server = self.daemon(node, "ovsdb-server", argvs["ovsdb-server"], env)
        obj = self.state.find("process", node=node.name, name="ovsdb-server")
        assert obj is not None
        wait_for_socket(rundir / DB_SOCKET, obj)
        agent = self.daemon(node, "agent", argvs["agent"], env)
        obj = self.state.find("process", node=node.name, name="agent")
        assert obj is not None
        wait_for_switch(rundir / DB_SOCKET, node, obj)
        return [server, agent]

    def daemon(self, node: Node, name: str, argv: Sequence[str],
               env: dict[str, str] | None = None) -> Obj | None:
        """Start a daemon unless it runs; the entry of one started now, else None."""
        obj, started = start_daemon(self.state, node.name, name, argv, env=env,
                                    progress=self.progress, hook=self.hook)
        self.created += started
        return obj if started else None


def start_daemon(
    state: LabState,
    node: str,
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    progress: Progress = _quiet,
    hook: StepHook | None = None,
) -> tuple[Obj, bool]:
    """Start (or keep, if it runs) a recorded daemon in a node's namespace.

    Returns its state entry and whether it was started now.
    """
    hook = hook or (lambda _: None)
    netns = state.netns_of(node)
    obj = state.find("process", node=node, name=name)
    if obj is not None and obj.get("pid") is not None \
            and is_running(int(obj["pid"]), int(obj["start_time"])):
        return obj, False
    directory = state.directory
    log_path = directory / f"{node}.{name}.log"
    pidfile = directory / f"{node}.{name}.pid"
    for path in (log_path, pidfile):
        if state.find("file", path=str(path)) is None:
            state.record({"kind": "file", "path": str(path)})
    if obj is None:
        obj = state.record({
            "kind": "process", "node": node, "name": name, "netns": netns,
            "argv": list(argv), "tag": f"{state.lab_id}/{node}/{name}",
            "pid": None, "start_time": None, "pidfile": str(pidfile), "log": str(log_path),
        })
    else:
        obj.update(argv=list(argv), pid=None, start_time=None)
        state.save()
    hook(f"recorded process {node}/{name}")
    info = spawn_in_netns(
        netns, argv, log_path=log_path, pidfile=pidfile, cwd=directory,
        env={**(env or {}), PROCESS_TAG_ENV: str(obj["tag"]),
             "HWVTEP_LAB": state.lab, "HWVTEP_LAB_NODE": node},
    )
    hook(f"spawned process {node}/{name}")
    obj.update(pid=info.pid, start_time=info.start_time)
    state.save()
    progress(f"process {node}/{name} pid {info.pid}: {' '.join(argv)}")
    hook(f"created process {node}/{name}")
    return obj, True


# --------------------------------------------------------------------------- down


@dataclass(slots=True)
class DownResult:
    removed: list[str]
    warnings: list[str]
    seconds: float


def down(state: LabState, *, root: Path | None = None, progress: Progress = _quiet) -> DownResult:
    """Remove exactly what the state file lists, then the state file and lab directory."""
    root = root or state.directory.parent
    started = time.monotonic()
    removed: list[str] = []
    warnings: list[str] = []
    with st.locked(root):
        state = LabState.load(state.path)  # the file is the truth, not a caller's copy
        state.phase = st.REMOVING
        state.save()
        for obj in reversed(state.of_kind("process")):
            what = f"process {obj['node']}/{obj['name']}"
            pids = []
            if obj.get("pid") is not None and obj.get("start_time") is not None:
                pids.append((int(obj["pid"]), int(obj["start_time"])))
            else:  # crashed between spawn and saving the pid: find it by its tag
                for pid in find_tagged_processes(str(obj["tag"])):
                    start = process_start_time(pid)
                    if start is not None:
                        pids.append((pid, start))
            for pid, start in pids:
                outcome = stop_process(pid, start)
                removed.append(f"{what} pid {pid} ({outcome})")
                progress(f"{what} pid {pid}: {outcome}")
            state.forget(obj)

        for obj in reversed(state.of_kind("netns")):
            name = str(obj["name"])
            inode = netns_inode(name)
            if inode is None:
                state.forget(obj)
                continue
            if obj.get("inode") not in (None, inode):
                warnings.append(f"namespace {name} is not the one this lab created; left alone")
                state.forget(obj)
                continue
            users = [p for p in netns_pids(inode) if p != os.getpid()]
            pr_netns.remove(name)
            removed.append(f"namespace {name}")
            progress(f"namespace {name} removed")
            if users:
                warnings.append(
                    f"namespace {name} is still used by pid(s) {', '.join(map(str, users))} "
                    "(not started by the lab); its interfaces live until they exit")
            state.forget(obj)

        for obj in state.of_kind("veth"):
            # both ends lived in the lab's namespaces and went with them
            state.forget(obj)

        for obj in reversed(state.of_kind("file")):
            path = Path(str(obj["path"]))
            if path == state.path:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(f"file {path}")
            state.forget(obj)

        for obj in state.of_kind("file"):
            if Path(str(obj["path"])) == state.path:
                state.path.unlink(missing_ok=True)
                removed.append(f"file {state.path}")
        for obj in reversed(state.of_kind("dir")):
            path = Path(str(obj["path"]))
            try:
                path.rmdir()
                removed.append(f"dir {path}")
            except FileNotFoundError:
                pass
            except OSError:
                warnings.append(f"{path} holds files the lab did not create; left in place")
    return DownResult(removed, warnings, time.monotonic() - started)


# --------------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class ObjectStatus:
    kind: str
    what: str
    ok: bool
    detail: str = ""


def status(state: LabState) -> list[ObjectStatus]:
    """Whether each recorded object still exists (and is the one the lab made)."""
    out: list[ObjectStatus] = []
    handles = _Handles()
    try:
        present: dict[str, bool] = {}
        for obj in state.objects:
            kind = str(obj["kind"])
            if kind == "netns":
                inode = netns_inode(str(obj["name"]))
                ok = inode is not None and obj.get("inode") in (None, inode)
                present[str(obj["name"])] = ok
                out.append(ObjectStatus(kind, f"{obj['node']} ({obj['name']})", ok,
                                        "" if ok else "missing"))
            elif kind == "veth":
                a, b = obj["a"], obj["b"]
                ok = all(present.get(end["netns"], False)
                         and _index(handles.ns(end["netns"]), end["ifname"]) is not None
                         for end in (a, b))
                out.append(ObjectStatus(kind, f"{_short(state, a)} -- {_short(state, b)}", ok,
                                        "" if ok else "missing"))
            elif kind == "process":
                pid, start = obj.get("pid"), obj.get("start_time")
                ok = pid is not None and start is not None and is_running(int(pid), int(start))
                out.append(ObjectStatus(kind, f"{obj['node']}/{obj['name']}", ok,
                                        f"pid {pid}" if ok else f"not running (log {obj['log']})"))
            elif kind in ("file", "dir"):
                ok = Path(str(obj["path"])).exists()
                out.append(ObjectStatus(kind, str(obj["path"]), ok, "" if ok else "missing"))
    finally:
        handles.close()
    return out


def _short(state: LabState, end: dict[str, str]) -> str:
    node = end["netns"].removeprefix(state.prefix)
    return f"{node}:{end['ifname']}"


# --------------------------------------------------------------------------- exec


def exec_argv(state: LabState, node: str, argv: Sequence[str]) -> list[str]:
    """The command line that runs argv inside a node's namespace."""
    return ["ip", "netns", "exec", state.netns_of(node), *argv]


def run_in_node(state: LabState, node: str, argv: Sequence[str],
                env: dict[str, str] | None = None) -> int:
    full_env = {**os.environ, **node_env(state, node), **(env or {})}
    proc = subprocess.run(exec_argv(state, node, argv), env=full_env, check=False)
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
