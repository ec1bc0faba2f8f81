"""A VLAN-tagged binding through the whole agent: database server, agent and a controller's
transactions on two VTEPs, hosts' pings across the VXLAN overlay.

The layout is the agents' lab (agenthelp): ps1's port p1 carries red *tagged 42* and blue
untagged; on ps2, red is p1 untagged and blue p2. Host r1 (behind ps1 p1) talks untagged
on eth0 (blue, 192.168.10.1) and tagged 42 on eth0.42 (red, 192.168.30.1); as the host
has no 802.1Q either where the VTEP lacks it, its tagged interface is an eBPF pipe of its
own (`vlan_bpf.TagPipes` with another prefix) or a real 802.1Q sub-interface where the
kernel has one.

What is proven: the tagged binding carries red across the overlay while the untagged
binding of the same port carries blue; the port has no fault; the agent reports the
binding's stats under VLAN 42 and the host's MAC as a local MAC of red; a restarted agent
finds the pipe complete and applies nothing (same programs, same devices); unbinding VLAN
42 removes the pipe and the port's dispatcher and leaves blue working; `--cleanup` leaves
nothing of the pipes behind.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agenthelp import Lab, Vtep, wait_until
from nshelp import Namespaces, kernel_has_8021q

from hwvtep.agent.model import Naming
from hwvtep.agent.vlan_bpf import TagPipes, bpf_available

pytestmark = pytest.mark.netns

RED, BLUE = 5000, 6000
TAG = 42
RED1, RED2 = "192.168.30.1", "192.168.30.2"
BLUE2 = "192.168.10.2"


@pytest.fixture
def lab(netns: Namespaces, tmp_path: Path) -> Iterator[Lab]:
    has_8021q = kernel_has_8021q(netns)
    why = bpf_available()
    if not has_8021q and why:
        pytest.skip(f"SKIPPED LOUDLY: neither 802.1Q nor eBPF in this kernel: {why}")
    lab = Lab(netns, tmp_path)
    try:
        lab.start()
        r1, r2 = lab.hosts["r1"], lab.hosts["r2"]
        if has_8021q:
            netns.ip(r1, "link", "add", "link", "eth0", "name", "eth0.42", "type", "vlan",
                     "id", str(TAG))  # fmt: skip
        else:
            with TagPipes("ht", r1) as host:
                host.ensure("eth0.42", "eth0", TAG, None)
        netns.up(r1, "eth0.42", RED1 + "/24")
        netns.ip(r2, "addr", "flush", "dev", "eth0")
        netns.ip(r2, "addr", "add", RED2 + "/24", "dev", "eth0")
        yield lab
    finally:
        lab.close()


def configure(lab: Lab) -> None:
    """What a controller sends both VTEPs: the two switches, bindings, remote MACs."""
    r1_red = lab.spaces.mac(lab.hosts["r1"], "eth0.42")
    r1_blue = lab.mac("r1")
    binds = {"ps1": [("p1", TAG, "red"), ("p1", 0, "blue")],
             "ps2": [("p1", 0, "red"), ("p2", 0, "blue")]}  # fmt: skip
    remote_macs = {"ps1": {"red": lab.mac("r2"), "blue": lab.mac("b2")},
                   "ps2": {"red": r1_red, "blue": r1_blue}}  # fmt: skip
    for me, peer in (("ps1", "ps2"), ("ps2", "ps1")):
        v = lab[me]
        for ls, key in (("red", RED), ("blue", BLUE)):
            v.ctl("add-ls", ls, "--", "set", "Logical_Switch", ls, f"tunnel_key={key}")
            v.ctl("add-ucast-remote", ls, remote_macs[me][ls], lab[peer].tip)
            v.ctl("add-mcast-remote", ls, "unknown-dst", lab[peer].tip)
        for port, vlan, ls in binds[me]:
            v.ctl("bind-ls", me, port, str(vlan), ls)


def ping_from_r1(lab: Lab, ip: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.spaces.exec(lab.hosts["r1"], "ping", "-c1", "-W0.5", ip).returncode == 0:
            return True
    return False


def port_row(v: Vtep, name: str) -> dict[str, object]:
    (row,) = [p for p in v.dump("Physical_Port") if p["name"] == name]
    return row


def tc_ids(lab: Lab, dev: str) -> list[str]:
    out = lab.spaces.exec(lab["ps1"].ns, "tc", "filter", "show", "dev", dev, "ingress").stdout
    return re.findall(r" id (\d+)", out)


def test_tagged_binding_pings_across_two_vteps(lab: Lab) -> None:
    v = lab["ps1"]
    configure(lab)
    assert ping_from_r1(lab, RED2), v.log_text()
    assert ping_from_r1(lab, BLUE2), v.log_text()
    assert lab.master("ps1", "p1.42") == "hvb5000"
    assert lab.master("ps1", "p1") == "hvb6000"
    assert port_row(v, "p1")["port_fault_status"] == ["set", []]
    assert sorted(v.ctl("list-ports", "ps1").split()) == ["p1", "p2"]
    bpf = "veth" in lab.spaces.ip(v.ns, "-d", "-o", "link", "show", "p1.42").stdout
    if bpf:
        assert "tagged bindings go through eBPF pipes" in v.agent_log.read_text()

    # the agent reports the tagged binding: stats under VLAN 42, r1's red MAC as local
    lab.spaces.exec(lab.hosts["r1"], "ping", "-c5", "-i0.05", RED2)

    def stats() -> bool:
        ref = dict(port_row(v, "p1")["vlan_stats"][1]).get(TAG)  # type: ignore[index]
        rows = [r for r in v.dump("Logical_Binding_Stats") if r["_uuid"] == ref]
        return (
            bool(rows) and rows[0]["packets_from_local"] >= 5 and rows[0]["packets_to_local"] >= 5
        )

    wait_until(stats, timeout=10, what="binding stats of VLAN 42")
    red_mac = lab.spaces.mac(lab.hosts["r1"], "eth0.42")
    (red,) = [r for r in v.dump("Logical_Switch") if r["name"] == "red"]
    wait_until(
        lambda: any(
            r["MAC"] == red_mac and r["logical_switch"] == red["_uuid"]
            for r in v.dump("Ucast_Macs_Local")
        ),
        what="r1's tagged MAC as a local MAC of red",
    )

    # restart: the pipe is found complete, nothing is applied, programs are the same
    peer = Naming("hv").pipe_peer("p1.42")
    programs = (tc_ids(lab, "p1"), tc_ids(lab, peer)) if bpf else ([], [])
    v.stop_agent()
    mark = len(v.agent_log.read_text())
    v.start_agent()
    wait_until(lambda: "taking over the data plane" in v.agent_log.read_text()[mark:],
               what="agent restarted")  # fmt: skip
    time.sleep(0.5)
    assert "applying" not in v.agent_log.read_text()[mark:], v.log_text()
    if bpf:
        assert (tc_ids(lab, "p1"), tc_ids(lab, peer)) == programs
    assert ping_from_r1(lab, RED2)

    # unbinding VLAN 42 removes the pipe and the port's dispatcher; blue is untouched
    v.ctl("unbind-ls", "ps1", "p1", str(TAG))
    wait_until(lambda: "p1.42" not in lab.links("ps1"), what="pipe removed")
    assert peer not in lab.links("ps1")
    wait_until(lambda: tc_ids(lab, "p1") == [], what="dispatcher removed")
    assert not ping_from_r1(lab, RED2, timeout=2)
    assert ping_from_r1(lab, BLUE2)


def test_cleanup_removes_the_pipes(lab: Lab) -> None:
    v = lab["ps1"]
    v.stop_agent()
    v.start_agent("--cleanup")
    configure(lab)
    assert ping_from_r1(lab, RED2), v.log_text()
    assert v.stop_agent() == 0
    links = lab.links("ps1")
    assert not {"p1.42", Naming("hv").pipe_peer("p1.42"), "hvb5000", "hvb6000"} & links
    assert tc_ids(lab, "p1") == []
    qdiscs = lab.spaces.exec(v.ns, "tc", "qdisc", "show", "dev", "p1").stdout
    assert "clsact" not in qdiscs
