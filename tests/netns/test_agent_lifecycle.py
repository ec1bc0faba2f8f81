"""The agent's life: restarts that lose no packet, a database server going away and coming
back, adoption of what the kernel already holds, --cleanup, and daemon conventions.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agenthelp import HWVTEP, OVS_PRESENT, Lab, Vtep, wait_until
from nshelp import Namespaces

pytestmark = pytest.mark.netns

RED, BLUE = 5000, 6000
IP2 = "192.168.10.2"


@pytest.fixture
def lab(netns: Namespaces, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(netns, tmp_path)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


def attach(lab: Lab, ls: str, key: int, port: str, hosts: tuple[str, str]) -> None:
    for me, peer, peer_host in (("ps1", "ps2", hosts[1]), ("ps2", "ps1", hosts[0])):
        v = lab[me]
        v.ctl("add-ls", ls, "--", "set", "Logical_Switch", ls, f"tunnel_key={key}")
        v.ctl("bind-ls", me, port, "0", ls)
        v.ctl("add-ucast-remote", ls, lab.mac(peer_host), lab[peer].tip)
        v.ctl("add-mcast-remote", ls, "unknown-dst", lab[peer].tip)


def log_since(v: Vtep, mark: int) -> str:
    return v.agent_log.read_text()[mark:]


def took_over(v: Vtep, mark: int) -> bool:
    return "taking over the data plane" in log_since(v, mark)


def ifindex(lab: Lab, vtep: str, dev: str) -> int:
    out = lab.spaces.ip(lab[vtep].ns, "-o", "link", "show", dev).stdout
    return int(out.split(":")[0])


def test_sigkill_and_restart_lose_no_packet(lab: Lab) -> None:
    attach(lab, "red", RED, "p1", ("r1", "r2"))
    assert lab.ping_soon("r1", IP2)
    indexes = {d: ifindex(lab, "ps1", d) for d in ("hvb5000", "hvx5000")}
    count = 300
    ping = subprocess.Popen(
        ["ip", "netns", "exec", lab.hosts["r1"], "ping", "-c", str(count), "-i", "0.01",
         "-W", "1", IP2],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        marks = {}
        for name in ("ps1", "ps2"):
            v = lab[name]
            v.stop_agent(signal.SIGKILL)
            marks[name] = len(v.agent_log.read_text())
            v.start_agent()
        for name in ("ps1", "ps2"):
            wait_until(lambda n=name: took_over(lab[n], marks[n]), what=f"{name} restarted")
        out, _ = ping.communicate(timeout=30)
    finally:
        if ping.poll() is None:
            ping.kill()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m is not None, out
    assert (int(m.group(1)), int(m.group(2))) == (count, count), out
    # the restarted agents found everything in place: the same devices, nothing applied
    time.sleep(0.5)
    for name in ("ps1", "ps2"):
        assert "applying" not in log_since(lab[name], marks[name]), lab[name].log_text()
    assert {d: ifindex(lab, "ps1", d) for d in indexes} == indexes


def test_restart_applies_only_the_difference(lab: Lab) -> None:
    attach(lab, "red", RED, "p1", ("r1", "r2"))
    assert lab.ping_soon("r1", IP2)
    v = lab["ps1"]
    before = ifindex(lab, "ps1", "hvb5000")
    v.stop_agent()
    # while the agent is away the controller moves on: one MAC more, one flood target less
    v.ctl("add-ucast-remote", "red", "02:00:00:00:00:42", "10.99.0.2")
    v.ctl("del-mcast-remote", "red", "unknown-dst", "10.99.0.2")
    mark = len(v.agent_log.read_text())
    v.start_agent()
    wait_until(lambda: ("02:00:00:00:00:42", "10.99.0.2") in lab.fdb("ps1", "hvx5000"),
               what="new MAC programmed")  # fmt: skip
    wait_until(
        lambda: ("00:00:00:00:00:00", "10.99.0.2") not in lab.fdb("ps1", "hvx5000"),
        what="flood entry removed",
    )
    assert re.findall(r"applying (\d+) operations", log_since(v, mark)) == ["2"]
    assert ifindex(lab, "ps1", "hvb5000") == before
    assert lab.ping("r1", IP2)  # r2 is known by its MAC: no flooding needed


@pytest.mark.parametrize("kind", ["hwvtep", "ovs"])
def test_database_server_restart(netns: Namespaces, tmp_path: Path, kind: str) -> None:
    if kind == "ovs" and not OVS_PRESENT:
        pytest.skip("SKIPPED LOUDLY: /usr/sbin/ovsdb-server missing")
    lab = Lab(netns, tmp_path, server=kind)
    try:
        lab.start()
        attach(lab, "red", RED, "p1", ("r1", "r2"))
        assert lab.ping_soon("r1", IP2)
        v = lab["ps1"]
        v.stop_server()
        # forwarding does not need the database
        time.sleep(0.5)
        assert lab.ping("r1", IP2)
        assert "hvb5000" in lab.links("ps1") and v.agent is not None and v.agent.poll() is None
        v.start_server(fresh=False)
        # both ways work again: a controller change reaches the kernel...
        attach_one = ("add-ls", "blue", "--", "set", "Logical_Switch", "blue",
                      f"tunnel_key={BLUE}")  # fmt: skip
        v.ctl(*attach_one)
        v.ctl("bind-ls", "ps1", "p2", "0", "blue")
        wait_until(lambda: lab.master("ps1", "p2") == "hvb6000", timeout=15, what="blue bound")
        # ...and the switch reports again
        # (a select with columns gives distinct rows, hence the full rows here)
        wait_until(lambda: len(v.dump("Mcast_Macs_Local")) == 2, what="blue's unknown-dst")
    finally:
        lab.close()


def test_cleanup_on_exit_removes_what_the_agent_made(lab: Lab) -> None:
    v = lab["ps1"]
    lab.spaces.ip(v.ns, "link", "add", "br-ext", "type", "bridge")
    v.stop_agent()
    v.start_agent("--cleanup")
    attach(lab, "red", RED, "p1", ("r1", "r2"))
    assert lab.ping_soon("r1", IP2)
    wait_until(lambda: v.dump("Ucast_Macs_Local"), what="a local MAC")
    wait_until(lambda: v.dump("Tunnel"), what="a tunnel")
    assert v.stop_agent() == 0
    links = lab.links("ps1")
    assert not {"hvb5000", "hvx5000"} & links and "br-ext" in links
    assert lab.master("ps1", "p1") is None
    assert v.dump("Ucast_Macs_Local") == [] and v.dump("Mcast_Macs_Local") == []
    assert v.dump("Tunnel") == [] and v.dump("Logical_Binding_Stats") == []
    # the controller's configuration stays
    assert "0 red" in v.ctl("list-bindings", "ps1", "p1")
    assert v.dump("Ucast_Macs_Remote") != []


def test_detach_and_pidfile(lab: Lab, tmp_path: Path) -> None:
    v = lab["ps1"]
    v.stop_agent()
    pidfile = tmp_path / "agent.pid"
    cp = subprocess.run(
        [HWVTEP, "agent", f"--db={v.db}", f"--netns={v.ns}", "--port=p*", "--detach",
         f"--pidfile={pidfile}", f"--log-file={v.agent_log}", v.name],
        capture_output=True, text=True, timeout=30, env=v.env(),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
        attach(lab, "red", RED, "p1", ("r1", "r2"))
        assert lab.ping_soon("r1", IP2)
        # a second one on the same pidfile refuses to start
        cp = subprocess.run(
            [HWVTEP, "agent", f"--db={v.db}", f"--pidfile={pidfile}", v.name],
            capture_output=True, text=True, timeout=30, env=v.env(),
        )  # fmt: skip
        assert cp.returncode == 1 and "already running" in cp.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pidfile.exists(), what="pidfile removed")


def test_command_line_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([HWVTEP, "agent", *args], capture_output=True, text=True,
                              timeout=30)  # fmt: skip

    assert run().returncode == 1
    cp = run("--netns=hwt-no-such-ns", "ps")
    assert cp.returncode == 1 and "no network namespace" in cp.stderr
    cp = run("--prefix=Bad!", "ps")
    assert cp.returncode == 1 and "prefix" in cp.stderr
    cp = run("--db=ptcp:6640", "ps")
    assert cp.returncode == 1 and "passive" in cp.stderr
    assert "PS-NAME" in run("--help").stdout


def test_port_that_disappears_is_reported_and_comes_back(lab: Lab) -> None:
    attach(lab, "red", RED, "p1", ("r1", "r2"))
    assert lab.ping_soon("r1", IP2)
    v = lab["ps1"]

    def p1() -> dict[str, object]:
        (row,) = [p for p in v.dump("Physical_Port") if p["name"] == "p1"]
        return row

    # the cable is pulled: the veth pair goes (deleted from the host's side)
    lab.spaces.ip(lab.hosts["r1"], "link", "del", "eth0")
    wait_until(lambda: p1()["port_fault_status"] == "unspecified_fault", what="port fault")
    row = p1()
    assert row["vlan_bindings"] != ["map", []]  # the controller's binding is kept
    assert row["vlan_stats"] == ["map", []]  # nothing is carried on it
    assert "hvb5000" in lab.links("ps1")
    # a new cable: the port is enslaved again, the fault cleared, traffic flows
    lab.spaces.veth(lab.hosts["r1"], "eth0", v.ns, "p1")
    lab.spaces.up(lab.hosts["r1"], "eth0", "192.168.10.1/24")
    lab.spaces.ip(v.ns, "link", "set", "p1", "up")
    wait_until(lambda: p1()["port_fault_status"] == ["set", []], what="fault cleared")
    wait_until(lambda: lab.master("ps1", "p1") == "hvb5000", what="port enslaved again")
    # r1 got a new MAC with its new interface: tell ps2, as a controller would
    lab["ps2"].ctl("add-ucast-remote", "red", lab.mac("r1"), "10.99.0.1")
    assert lab.ping_soon("r1", IP2)


def test_glob_port_created_after_start_is_served_by_events(lab: Lab) -> None:
    """--port 'p*': an interface that appears later is registered and bindable, driven by
    netlink events (the agent's full resync and periodic stats report are an hour away)."""
    attach(lab, "red", RED, "p1", ("r1", "r2"))
    assert lab.ping_soon("r1", IP2)
    v = lab["ps1"]
    v.stop_agent()
    mark = len(v.agent_log.read_text())
    v.start_agent("--resync-interval=3600", "--stats-interval=3600")
    wait_until(lambda: took_over(v, mark), what="ps1 agent restarted")
    assert "p3" not in v.ctl("list-ports", "ps1").split()
    # a new cable into the VTEP, after the agent started: a new host g1 behind port p3
    g1 = lab.spaces.make("g1")
    started = time.monotonic()
    lab.spaces.veth(g1, "eth0", v.ns, "p3")
    lab.spaces.up(g1, "eth0", "192.168.10.3/24")
    lab.spaces.ip(v.ns, "link", "set", "p3", "up")
    v.wait_ports("p3", timeout=5)
    assert time.monotonic() - started < 3.0, "a new port must not wait for the resync"
    # a binding on it works: g1 pings r2 on the other VTEP
    v.ctl("bind-ls", "ps1", "p3", "0", "red")
    lab["ps2"].ctl("add-ucast-remote", "red", lab.spaces.mac(g1, "eth0"), v.tip)
    wait_until(lambda: lab.master("ps1", "p3") == "hvb5000", timeout=5, what="p3 enslaved")
    deadline = time.monotonic() + 5
    while not (ok := lab.spaces.exec(g1, "ping", "-c1", "-W1", IP2).returncode == 0):
        assert time.monotonic() < deadline, f"g1 cannot reach r2\n{v.log_text()}"
    assert ok
    assert v.agent is not None and v.agent.poll() is None
