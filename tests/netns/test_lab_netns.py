"""`hwvtep lab` on the real kernel: up, ping, down, crash recovery, and leaving others alone.

Every lab here has a name unique to this run, so its namespaces (``hwl-<lab>-<id>-<node>``)
cannot collide with anyone's; a safety net at teardown removes any namespace still carrying
this run's lab names, and nothing else.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from nshelp import tear_down_labs

from hwvtep.lab import icmp, netns
from hwvtep.lab import state as st
from hwvtep.lab.state import LabError, LabState
from hwvtep.lab.topology import Topology, parse

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
HWVTEP = str(Path(sys.executable).with_name("hwvtep"))
WALKTHROUGH = Path(str(resources.files("hwvtep.lab") / "examples" / "walkthrough.yaml"))

ROUTED = """\
name: {name}
nodes:
  h1:
    kind: host
    interfaces:
      eth0: {{addresses: [10.1.0.1/24], mac: "02:00:00:00:00:01"}}
    gateway: 10.1.0.254
    daemons:
      sleeper: sleep 300
  h2:
    kind: host
    interfaces:
      eth0: {{addresses: [10.2.0.1/24], mac: "02:00:00:00:00:02"}}
    gateway: 10.2.0.254
  r:
    kind: router
    interfaces:
      eth1: 10.1.0.254/24
      eth2: 10.2.0.254/24
links:
  - ["h1:eth0", "r:eth1"]
  - {{endpoints: ["h2:eth0", "r:eth2"], mtu: 1400}}
"""


def root_links() -> set[str]:
    out = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def in_node(state: LabState, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        netns.exec_argv(state, node, argv), capture_output=True, text=True, timeout=30
    )


class Labs:
    """Names unique to this test run, and a teardown that removes only what they own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run = secrets.token_hex(3)
        self.names: list[str] = []

    def name(self, base: str) -> str:
        name = f"{base}{self.run}"[:20]
        self.names.append(name)
        return name

    def write(self, tmp: Path, text: str, base: str = "t") -> tuple[Path, Topology]:
        name = self.name(base)
        path = tmp / f"{name}.yaml"
        path.write_text(text.format(name=name) if "{name}" in text else text)
        return path, parse(path.read_text(), str(path))

    def up(self, path: Path, **kw: object) -> netns.UpResult:
        topo = parse(path.read_text(), str(path))
        return netns.up(topo, path.read_text(), root=self.root, **kw)  # type: ignore[arg-type]

    def ours(self) -> list[str]:
        return [
            n
            for n in netns.netns_names()
            if any(n.startswith(f"hwl-{name}-") for name in self.names)
        ]

    def cleanup(self) -> None:
        tear_down_labs(self.root, self.ours)


@pytest.fixture
def labs(tmp_path: Path) -> Iterator[Labs]:
    labs = Labs(tmp_path / "labs")
    try:
        yield labs
    finally:
        labs.cleanup()


@pytest.fixture
def decoy() -> Iterator[str]:
    """A namespace that belongs to nobody's lab state, named like a lab's, with a veth."""
    name = f"hwl-decoy{secrets.token_hex(3)}-x-h1"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"],
            check=True,
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


# --------------------------------------------------------------------------- up / ping / down


def test_up_ping_down(labs: Labs, tmp_path: Path, decoy: str) -> None:
    before_root = root_links()
    path, topo = labs.write(tmp_path, ROUTED)
    result = labs.up(path)
    state = result.state
    assert result.created == 3 + 2 + 1  # namespaces, veth pairs, daemon

    names = {state.namespace(n.name) for n in topo.nodes}
    assert names <= set(netns.netns_names())
    assert all(n.startswith(f"hwl-{topo.name}-{state.lab_id}-") for n in names)
    assert root_links() == before_root  # nothing was made in the root namespace

    # addresses, MACs, MTU, routes and forwarding as written
    h1 = in_node(state, "h1", "ip", "-o", "addr", "show", "dev", "eth0").stdout
    assert "inet 10.1.0.1/24" in h1
    link = in_node(state, "h2", "ip", "-o", "link", "show", "dev", "eth0").stdout
    assert "mtu 1400" in link and "02:00:00:00:00:02" in link
    assert "default via 10.2.0.254" in in_node(state, "h2", "ip", "route").stdout
    assert netns.read_sysctl(state.namespace("r"), "net.ipv4.ip_forward") == "1"
    assert netns.read_sysctl(state.namespace("h1"), "net.ipv4.ip_forward") == "0"

    # ping across the router works; an address nobody has does not answer
    ok = icmp.ping(state.namespace("h1"), ipaddress.ip_address("10.2.0.1"), count=3, interval=0.05)
    assert (ok.sent, ok.received) == (3, 3)
    lost = icmp.ping(state.namespace("h1"), ipaddress.ip_address("10.2.0.99"), count=1, wait=0.3)
    assert (lost.sent, lost.received) == (1, 0) and not lost.ok

    # the daemon runs inside h1's namespace, with its pidfile and log in the lab directory
    proc = state.find("process", node="h1", name="sleeper")
    assert proc is not None
    pid, start = int(proc["pid"]), int(proc["start_time"])
    assert netns.is_running(pid, start)
    h1_inode = netns.netns_inode(state.namespace("h1"))
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == h1_inode
    assert Path(proc["pidfile"]).read_text().strip() == str(pid)
    assert Path(proc["log"]).exists()
    assert all(s.ok for s in netns.status(state))

    saved = json.loads(state.path.read_text())
    assert saved["phase"] == "up"
    assert {o["kind"] for o in saved["objects"]} == {"dir", "file", "netns", "veth", "process"}

    down = netns.down(state)
    assert down.warnings == []
    assert not names & set(netns.netns_names())
    assert not netns.is_running(pid, start)
    assert not state.path.exists() and not state.directory.exists()
    assert not Path(proc["pidfile"]).exists() and not Path(proc["log"]).exists()
    assert decoy in netns.netns_names()  # the look-alike namespace survived
    assert (
        "eth0" in subprocess.run(["ip", "-n", decoy, "link"], capture_output=True, text=True).stdout
    )
    assert root_links() == before_root


def test_up_is_idempotent_and_repairs(labs: Labs, tmp_path: Path) -> None:
    path, _ = labs.write(tmp_path, ROUTED)
    state = labs.up(path).state
    again = labs.up(path)
    assert again.created == 0
    assert again.state.lab_id == state.lab_id
    # break things inside the lab: an address and the daemon; `up` puts them back
    in_node(state, "r", "ip", "addr", "flush", "dev", "eth2")
    proc = state.find("process", node="h1", name="sleeper")
    assert proc is not None
    netns.stop_process(int(proc["pid"]), int(proc["start_time"]))
    repaired = labs.up(path)
    assert repaired.created == 1  # the daemon; the address is not an inventory object
    assert "10.2.0.254/24" in in_node(state, "r", "ip", "-o", "addr").stdout
    assert icmp.ping(state.namespace("h1"), ipaddress.ip_address("10.2.0.1"), count=1).ok


def test_up_refuses_a_different_topology_under_the_same_name(labs: Labs, tmp_path: Path) -> None:
    path, _ = labs.write(tmp_path, ROUTED)
    labs.up(path)
    changed = tmp_path / "changed.yaml"
    changed.write_text(path.read_text().replace("10.2.0.1/24", "10.2.0.7/24"))
    with pytest.raises(LabError, match=r"already up from .* with a different topology"):
        labs.up(changed)


def test_down_after_a_namespace_vanished(labs: Labs, tmp_path: Path) -> None:
    path, _ = labs.write(tmp_path, ROUTED)
    state = labs.up(path).state
    subprocess.run(["ip", "netns", "del", state.namespace("h2")], check=True)
    assert not all(s.ok for s in netns.status(state))
    netns.down(state)
    assert labs.ours() == []


def test_down_leaves_a_replaced_namespace_alone(labs: Labs, tmp_path: Path) -> None:
    """Same name, different namespace (inode): not ours any more, so not removed."""
    path, _ = labs.write(tmp_path, ROUTED)
    state = labs.up(path).state
    name = state.namespace("h2")
    subprocess.run(["ip", "netns", "del", name], check=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        result = netns.down(state)
        assert result.warnings == [f"namespace {name} is not the one this lab created; left alone"]
        assert name in netns.netns_names()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_down_does_not_kill_processes_it_did_not_start(labs: Labs, tmp_path: Path) -> None:
    path, _ = labs.write(tmp_path, ROUTED)
    state = labs.up(path).state
    name = state.namespace("h2")
    stranger = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "300"])
    try:
        deadline = time.monotonic() + 5
        inode = netns.netns_inode(name)
        assert inode is not None
        while stranger.pid not in netns.netns_pids(inode):  # until `ip` has entered h2
            assert time.monotonic() < deadline
            time.sleep(0.01)
        result = netns.down(state)
        assert result.warnings == [
            f"namespace {name} is still used by pid(s) {stranger.pid} (not started by the "
            "lab); its interfaces live until they exit"]
        assert stranger.poll() is None  # still running
        assert name not in netns.netns_names()
    finally:
        stranger.kill()
        stranger.wait()


# --------------------------------------------------------------------------- crashes

CRASHER = """\
import os, sys
from pathlib import Path
from hwvtep.lab import netns, topology

path, root, crash_at = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
seen = []

def hook(event):
    seen.append(event)
    if event == crash_at:
        os._exit(99)  # no cleanup of any kind: like a kill -9

netns.up(topology.load_file(path), path.read_text(), root=root, step_hook=hook)
print("no crash; events:", seen)
"""


@pytest.mark.parametrize(
    "crash_at",
    [
        "recorded netns h2",  # h1 made, h2 recorded but not made
        "created veth h1:eth0",  # namespaces and one link made
        "recorded process h1/sleeper",  # network complete, daemon not started
        "spawned process h1/sleeper",  # daemon running, its pid never saved
    ],
)
def test_crash_during_up_then_down_cleans_up(
    labs: Labs, tmp_path: Path, crash_at: str, decoy: str
) -> None:
    path, topo = labs.write(tmp_path, ROUTED)
    script = tmp_path / "crash.py"
    script.write_text(CRASHER)
    proc = subprocess.run(
        [sys.executable, str(script), str(path), str(labs.root), crash_at],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 99, proc.stdout + proc.stderr

    state = st.find_lab(labs.root, topo.name)
    assert state is not None and state.phase == st.CREATING
    assert labs.ours(), "the crash should have left namespaces behind"
    tag = f"{state.lab_id}/h1/sleeper"
    leftover = netns.find_tagged_processes(tag)
    if crash_at == "spawned process h1/sleeper":
        assert len(leftover) == 1
        assert state.find("process", node="h1", name="sleeper")["pid"] is None  # type: ignore[index]

    result = netns.down(state)
    assert result.warnings == []
    assert labs.ours() == []
    assert netns.find_tagged_processes(tag) == []
    assert not state.directory.exists()
    assert decoy in netns.netns_names()


def test_crash_then_up_completes_the_lab(labs: Labs, tmp_path: Path) -> None:
    path, topo = labs.write(tmp_path, ROUTED)
    script = tmp_path / "crash.py"
    script.write_text(CRASHER)
    proc = subprocess.run(
        [sys.executable, str(script), str(path), str(labs.root), "created veth h1:eth0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 99, proc.stderr
    first = st.find_lab(labs.root, topo.name)
    assert first is not None
    result = labs.up(path)
    assert result.state.lab_id == first.lab_id
    assert result.created == 2  # the second link and the daemon
    assert all(s.ok for s in netns.status(result.state))
    assert icmp.ping(result.state.namespace("h1"), ipaddress.ip_address("10.2.0.1"), count=1).ok


def test_a_crashed_down_resumes(labs: Labs, tmp_path: Path) -> None:
    path, _ = labs.write(tmp_path, ROUTED)
    state = labs.up(path).state
    # as if `down` died after removing one namespace: phase and inventory say so
    h2 = state.find("netns", node="h2")
    assert h2 is not None
    subprocess.run(["ip", "netns", "del", state.namespace("h2")], check=True)
    state.phase = st.REMOVING
    state.forget(h2)
    with pytest.raises(LabError, match=r"being removed"):
        labs.up(path)
    netns.down(state)
    assert labs.ours() == []


# --------------------------------------------------------------------------- processes


def test_process_facility_term_kill_and_pid_identity(labs: Labs, tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        name: {name}
        nodes:
          a:
            kind: host
            daemons:
              stubborn: ["sh", "-c", "trap '' TERM; sleep 300"]
              polite: sleep 300
        """)
    path, _ = labs.write(tmp_path, text)
    state = labs.up(path).state
    polite = state.find("process", node="a", name="polite")
    stubborn = state.find("process", node="a", name="stubborn")
    assert polite is not None and stubborn is not None
    # a wrong start time means "some other process got this pid": never signal it
    assert netns.stop_process(int(polite["pid"]), int(polite["start_time"]) + 1) == "not running"
    assert netns.is_running(int(polite["pid"]), int(polite["start_time"]))
    assert netns.stop_process(int(polite["pid"]), int(polite["start_time"])) == "stopped"
    t0 = time.monotonic()
    assert (
        netns.stop_process(int(stubborn["pid"]), int(stubborn["start_time"]), term_timeout=0.3)
        == "killed"
    )
    assert time.monotonic() - t0 < 3
    assert netns.stop_process(int(stubborn["pid"]), int(stubborn["start_time"])) == "not running"


def test_daemon_that_exits_at_once_is_reported(labs: Labs, tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        name: {name}
        nodes:
          a:
            kind: host
            daemons:
              broken: ["sh", "-c", "echo cannot start >&2; exit 3"]
        """)
    path, topo = labs.write(tmp_path, text)
    with pytest.raises(LabError, match=r"exited at once; log: cannot start"):
        labs.up(path)
    state = st.find_lab(labs.root, topo.name)
    assert state is not None and state.phase == st.CREATING
    netns.down(state)
    assert labs.ours() == []


# --------------------------------------------------------------------------- walkthrough


def test_walkthrough_overlay_isolation(labs: Labs, tmp_path: Path) -> None:
    """server1 is static; programming server2 by hand (as the agent will) joins red only."""
    name = labs.name("wt")
    path = tmp_path / "wt.yaml"
    path.write_text(WALKTHROUGH.read_text().replace("name: walkthrough", f"name: {name}"))
    state = labs.up(path).state
    red1, blue1 = state.namespace("red1"), state.namespace("blue1")
    ten2 = ipaddress.ip_address("10.0.0.2")

    assert icmp.ping(
        state.namespace("controller"), ipaddress.ip_address("172.16.2.1"), count=1
    ).ok  # the controller reaches server2 through the router
    assert not icmp.ping(red1, ten2, count=1, wait=0.5).ok  # server2 not programmed yet

    for cmd in (
        "ip link add br5000 type bridge",
        "ip link add vx5000 type vxlan id 5000 local 172.16.2.1 dstport 4789 nolearning",
        "ip link set vx5000 master br5000 up",
        "ip link set s2-eth1 master br5000 up",
        "ip link set br5000 up",
        "bridge fdb append 02:00:00:00:01:01 dev vx5000 dst 172.16.1.1 self permanent",
        "bridge fdb append 00:00:00:00:00:00 dev vx5000 dst 172.16.1.1 self permanent",
    ):
        done = in_node(state, "server2", *cmd.split())
        assert done.returncode == 0, (cmd, done.stderr)

    red = icmp.ping(red1, ten2, count=3, interval=0.05)
    assert red.received == 3
    # blue uses the very same addresses but is not attached on server2: nothing gets through
    assert not icmp.ping(blue1, ten2, count=2, interval=0.05, wait=0.5).ok
    # and red2 answered with its own MAC, learned by red1 over the tunnel
    neigh = in_node(state, "red1", "ip", "neigh", "show", "10.0.0.2").stdout
    assert "02:00:00:00:02:01" in neigh


# --------------------------------------------------------------------------- CLI


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HWVTEP_LAB_DIR": str(root)}
    return subprocess.run(
        [HWVTEP, "lab", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_cli_verbs(labs: Labs, tmp_path: Path) -> None:
    path, topo = labs.write(tmp_path, ROUTED)
    up = cli(labs.root, "up", str(path))
    assert up.returncode == 0, up.stderr
    assert f"lab {topo.name} up in" in up.stdout
    assert "h1    host    eth0       10.1.0.1/24" in up.stdout
    again = cli(labs.root, "up", str(path))
    assert f"lab {topo.name} already up" in again.stdout

    status = cli(labs.root, "status")
    assert status.returncode == 0 and "ok  process  h1/sleeper" in status.stdout

    ping = cli(labs.root, "ping", "h1", "h2", "-c", "2", "-i", "0.05")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "h1 -> h2 (10.2.0.1): 2 sent, 2 received" in ping.stdout
    bad = cli(labs.root, "ping", "h1", "10.9.9.9", "-c", "1", "-W", "0.2")
    assert bad.returncode == 1 and "1 sent, 0 received" in bad.stdout

    ex = cli(
        labs.root,
        "exec",
        "h2",
        "--",
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward; echo $HWVTEP_LAB_NODE; exit 4",
    )
    assert ex.returncode == 4 and ex.stdout.split() == ["0", "h2"]
    assert cli(labs.root, "exec", "nosuch", "--", "true").returncode == 1

    env = {**os.environ, "HWVTEP_LAB_DIR": str(labs.root), "SHELL": "/bin/sh"}
    shell = subprocess.run([HWVTEP, "lab", "shell", "r"], input="echo in-$HWVTEP_LAB_NODE\n"
                           "cat /proc/sys/net/ipv4/ip_forward\nexit 0\n",
                           capture_output=True, text=True, env=env, timeout=30)
    assert shell.returncode == 0 and "in-r\n1\n" in shell.stdout, shell.stderr

    graph = cli(labs.root, "graph", "-f", "dot")
    assert graph.stdout.startswith(f'graph "{topo.name}"')
    html = tmp_path / "lab.html"
    assert cli(labs.root, "graph", str(path), "-f", "html", "-o", str(html)).returncode == 0
    assert "<svg" in html.read_text()

    down = cli(labs.root, "down")
    assert down.returncode == 0, down.stderr
    assert labs.ours() == []
    assert cli(labs.root, "status").stdout.startswith("no lab is up")


def test_cli_refuses_a_bad_file_before_creating_anything(labs: Labs, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROUTED.format(name=labs.name("bad")).replace("r:eth2", "ghost:eth2"))
    before = netns.netns_names()
    out = cli(labs.root, "up", str(bad))
    assert out.returncode == 1
    assert f"{bad}:22:29: links[1].endpoints[1]: no node named 'ghost'" in out.stderr
    assert "nothing was created" in out.stderr
    assert netns.netns_names() == before
    assert not labs.root.exists() or not any(labs.root.iterdir())
