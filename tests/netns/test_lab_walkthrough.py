"""`hwvtep lab walkthrough` end to end on the real kernel, and the hwvtep nodes' daemons.

Each lab gets a name unique to this run and a state directory of its own, so its
namespaces (``hwl-<lab>-<id>-<node>``) cannot collide with anyone's; teardown removes
whatever a failed test left, and nothing else. Traffic stays inside the lab namespaces
(the VTEP's OVSDB listener is a ptcp inside server2's namespace).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nshelp import tear_down_labs

from hwvtep.lab import icmp, netns
from hwvtep.lab import state as st
from hwvtep.lab import walkthrough as wt
from hwvtep.lab.topology import parse

pytestmark = pytest.mark.netns

HWVTEP = str(Path(sys.executable).with_name("hwvtep"))
TEN_2 = ipaddress.ip_address("10.0.0.2")


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def wait_until(pred: Callable[[], Any], timeout: float = 15, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


class Lab:
    """One walkthrough lab under its own name and state directory."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "labs"
        self.name = f"wt{secrets.token_hex(3)}"
        self.file = tmp / f"{self.name}.yaml"
        self.file.write_text(wt.BUNDLED.read_text().replace("name: walkthrough",
                                                            f"name: {self.name}"))

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HWVTEP_LAB_DIR": str(self.root)}
        return subprocess.run([HWVTEP, "lab", *args], capture_output=True, text=True, env=env,
                              timeout=timeout)  # fmt: skip

    def sh(self, node: str, cmd: str) -> subprocess.CompletedProcess[str]:
        return self.cli("exec", node, "--", "sh", "-c", cmd)

    def state(self) -> st.LabState:
        found = st.find_lab(self.root, self.name)
        assert found is not None, "the lab is not up"
        return found

    def ctl(self, args: str) -> str:
        done = self.sh("server2", f"hwvtep ctl {args}")
        assert done.returncode == 0, done.stderr
        return done.stdout

    def transact(self, name: str, files: Path = wt.EXAMPLES) -> list[Any]:
        done = self.sh("controller", f"cd {files} && hwvtep ovsdb-client transact "
                       f'tcp:172.16.2.1:6640 "$(cat {name})"')
        assert done.returncode == 0, done.stdout + done.stderr
        reply = json.loads(done.stdout)
        assert not [r for r in reply if isinstance(r, dict) and "error" in r], reply
        return list(reply)

    def ping(self, src: str, count: int = 1, wait: float = 0.5) -> icmp.PingResult:
        return icmp.ping(self.state().namespace(src), TEN_2, count=count, interval=0.05,
                         wait=wait)

    def ours(self) -> list[str]:
        return [n for n in netns.netns_names() if n.startswith(f"hwl-{self.name}-")]

    def cleanup(self) -> None:
        tear_down_labs(self.root, self.ours)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


# the checks the walkthrough prints, in order: every step must have passed
STEP_MARKS = [
    "== 1. Register the hardware VTEP: physical switch s2 on server2",
    "ok: s2 has tunnel_ips 172.16.2.1 and ports s2-eth1 s2-eth2",
    "== 2. Talk OVSDB to the VTEP from the controller",
    "ok: hardware_vtep 1.7.0 served on tcp:172.16.2.1:6640",
    "== 3. Attach red2 to the red network (VNI 5000)",
    "red1 -> red2 (10.0.0.2): 2 sent, 0 received",
    "ok: red2 is unreachable",
    'controller$ hwvtep ovsdb-client transact tcp:172.16.2.1:6640 "$(cat attach_red2.json)"',
    "ok: red1 -> red2: first reply",
    "red1 -> red2 (10.0.0.2): 3 sent, 3 received",
    "ok: red2 answers",
    "== 4. Attach blue2 to the blue network (VNI 5001)",
    "ok: blue2 is unreachable",
    'controller$ hwvtep ovsdb-client transact tcp:172.16.2.1:6640 "$(cat attach_blue2.json)"',
    "ok: blue1 -> blue2: first reply",
    "ok: blue2 answers",
    "== 5. Same addresses, different VNIs: red1 cannot reach blue2",
    "10.0.0.2 lladdr 02:00:00:00:02:01",
    "10.0.0.2 lladdr 02:00:00:00:02:02",
    "red1 -> 10.0.0.2 (10.0.0.2): 3 sent, 0 received",
    "ok: blue2 received none of red1's 3 echo requests",
    "== 6. Find a locator's UUID",
    "ok: one locator for 172.16.1.1: 10c00000-0000-4000-8000-0000ac100101, used by red1's "
    "and blue1's MACs",
    "All 6 steps behaved as expected.",
]
RAW_MARKS = ['{"id":"echo","result":["hello"],"error":null}', "ok: echo answered",
             "ok: schema hardware_vtep version 1.7.0"]


def assert_in_order(text: str, marks: list[str]) -> None:
    at = 0
    for mark in marks:
        found = text.find(mark, at)
        assert found >= 0, f"missing (in order): {mark!r}\n--- output:\n{text}"
        at = found + len(mark)


def local_macs(lab: Lab) -> set[str]:
    return set(lab.ctl("--bare --columns=MAC list Ucast_Macs_Local").split())


def test_walkthrough_end_to_end_then_down(lab: Lab) -> None:
    before_links = root_links()
    run = lab.cli("walkthrough", str(lab.file))
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert f"lab {lab.name} up in" in out
    assert "server2: hwvtep ovsdb-server (pid" in out
    # The raw JSON-RPC part is the "nc + jq work" proof: scripts/bootstrap installs
    # netcat-openbsd and jq, so their absence is a broken set-up, not a reason to skip it.
    assert wt._nc_can_half_close(), "no nc with -N (netcat-openbsd): the raw step cannot run"
    assert shutil.which("jq"), "no jq: the raw step cannot run"
    marks = STEP_MARKS[:3] + RAW_MARKS + STEP_MARKS[3:]
    assert_in_order(out, marks)
    times = [int(m) for m in re.findall(r"first reply (\d+) ms after attach_", out)]
    assert len(times) == 4 and all(0 <= t < wt.REPLY_TIMEOUT * 1000 for t in times), times
    assert lab.ours() and root_links() == before_links  # nothing in the root namespace

    # the lab is left up, as the walkthrough left it: checked independently of it
    state = lab.state()
    assert lab.ping("red1", count=2).received == 2
    assert lab.ping("blue1", count=2).received == 2
    assert lab.ctl("list-ls").split() == ["blue", "red"]
    bindings = lab.ctl("show")
    assert "0=red" in bindings and "0=blue" in bindings
    status = lab.cli("status")
    assert status.returncode == 0, status.stdout
    assert "ok  process  server2/ovsdb-server" in status.stdout
    assert "ok  process  server2/agent" in status.stdout
    # `lab exec` points clients at the node's database: ours, vtep-ctl, and the controller's
    if shutil.which("vtep-ctl"):
        assert lab.sh("server2", "vtep-ctl list-ps").stdout.split() == ["s2"]
    assert lab.sh("controller", "hwvtep ctl list-ps").stdout.split() == ["s2"]
    # the agent reported red2's and blue2's MACs as local ones
    wait_until(lambda: {"02:00:00:00:02:01", "02:00:00:00:02:02"} <= local_macs(lab),
               what="the agent to report the local MACs")

    # again on the same lab: it detaches the earlier run's switches (local MACs and all)
    again = lab.cli("walkthrough", str(lab.file))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"lab {lab.name} was already up" in again.stdout
    assert_in_order(again.stdout, [
        "Reset: detach what an earlier walkthrough attached", "$(cat detach_red2.json)",
        "$(cat detach_blue2.json)", "ok: the VTEP is back to no logical switch",
        *STEP_MARKS])
    assert lab.state().lab_id == state.lab_id

    # detach while the agent has reported local MACs: the files delete those rows too
    wait_until(lambda: {"02:00:00:00:02:01", "02:00:00:00:02:02"} <= local_macs(lab),
               what="the agent to report the local MACs")
    assert len(lab.transact("detach_red2.json")) == 7
    assert lab.ctl("list-ls").split() == ["blue"]
    wait_until(lambda: not lab.ping("red1").ok, what="red2 to become unreachable")
    assert lab.ping("blue1", count=2).received == 2
    lab.transact("detach_blue2.json")
    assert lab.ctl("list-ls").split() == []
    assert "vlan_bindings:\n" in lab.ctl("show")
    assert not lab.ping("blue1").ok
    assert local_macs(lab) == set()
    assert "172.16.1.1" not in lab.ctl("--bare --columns=dst_ip list Physical_Locator")
    wait_until(lambda: not [i for i in lab.sh("server2", "ip -o link").stdout.splitlines()
                            if ": hv" in i], what="the agent to remove its devices")

    # down with no name: the lab that is up; nothing of it remains
    procs = [(int(o["pid"]), int(o["start_time"]), str(o["tag"]))
             for o in state.of_kind("process")]
    files = [Path(str(o["path"])) for o in state.objects if o["kind"] in ("file", "dir")]
    assert len(procs) == 2 and any(p.name == "vtep.db" for p in files)
    down = lab.cli("down")
    assert down.returncode == 0, down.stderr
    assert f"lab {lab.name} down in" in down.stdout and "warning" not in down.stderr
    assert lab.ours() == []
    for pid, start, tag in procs:
        assert not netns.is_running(pid, start)
        assert netns.find_tagged_processes(tag) == []
    assert not [p for p in files if p.exists()]
    assert not any(lab.root.iterdir())
    assert root_links() == before_links
    assert lab.cli("status").stdout.startswith("no lab is up")


def test_walkthrough_stops_at_the_step_that_misbehaves(lab: Lab) -> None:
    """A failing step exits 1, says which, and leaves the lab up for a look."""
    for name in wt.JSON_FILES:
        shutil.copy(wt.EXAMPLES / name, lab.tmp / name)
    broken = json.loads((lab.tmp / "attach_red2.json").read_text())
    broken.append({"op": "abort"})
    (lab.tmp / "attach_red2.json").write_text(json.dumps(broken))
    run = lab.cli("walkthrough", str(lab.file))
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"The JSON files are in {lab.tmp}" in " ".join(run.stdout.split())
    assert "FAILED at step 3: attach_red2.json failed: " in run.stdout
    assert '"error": "aborted"' in run.stdout
    assert "The lab stays up" in run.stdout
    assert lab.cli("status").returncode == 0
    assert lab.ctl("list-ls").split() == []  # the aborted transaction changed nothing
    assert not lab.ping("red1").ok


def test_refused_before_anything_is_created(lab: Lab) -> None:
    before = netns.netns_names()
    missing = lab.tmp / "missing.yaml"
    missing.write_text(lab.file.read_text().replace(
        "    targets: [server2]\n",
        "    targets: [server2]\n    daemons:\n      probe: nosuch-prober-xyz --every 1\n"))
    out = lab.cli("up", str(missing))
    assert out.returncode == 1
    line = next(i for i, text in enumerate(missing.read_text().splitlines(), 1)
                if "nosuch-prober-xyz" in text)
    assert f"{missing}:{line}:14: nodes.controller.daemons.probe: command " \
           "'nosuch-prober-xyz' is not found on PATH" in out.stderr
    assert "nothing was created" in out.stderr
    out = lab.cli("walkthrough", str(missing))
    assert out.returncode == 1 and "nosuch-prober-xyz" in out.stderr

    unfit = lab.tmp / "unfit.yaml"
    unfit.write_text(lab.file.read_text().replace("red1", "rouge1"))
    out = lab.cli("walkthrough", str(unfit))
    assert out.returncode == 1
    assert f"hwvtep lab: {unfit} does not fit the walkthrough:\n  node red1 must be a host " \
           "node (missing)" in out.stderr

    taken = lab.tmp / "taken.yaml"
    taken.write_text(lab.file.read_text().replace(
        "    ovsdb: ptcp:6640\n", "    ovsdb: ptcp:6640\n    daemons: {agent: sleep 9}\n"))
    out = lab.cli("up", str(taken))
    assert out.returncode == 1
    assert "nodes.server2.daemons.agent: daemon name 'agent' is taken by the hwvtep node's " \
           "own daemons" in out.stderr
    assert netns.netns_names() == before
    assert not lab.root.exists() or not any(lab.root.iterdir())


def test_hwvtep_daemons_are_restarted_by_up_and_keep_the_database(lab: Lab) -> None:
    text = lab.file.read_text()
    result = netns.up(parse(text, str(lab.file)), text, root=lab.root)
    state = result.state
    assert result.created == 8 + 7 + 2  # namespaces, veth pairs, server and agent
    rundir = netns.node_dir(state, "server2")
    assert {p.name for p in rundir.iterdir()} >= {"vtep.db", "db.sock", "ovsdb-server.ctl"}
    # the server answered before `up` returned, the agent soon registers the ports
    wait_until(lambda: lab.ctl("list-ports s2").split() == ["s2-eth1", "s2-eth2"],
               what="the agent's ports")
    lab.ctl("set Physical_Switch s2 tunnel_ips=172.16.2.1")
    # both daemons run inside server2's namespace
    inode = netns.netns_inode(state.namespace("server2"))
    for proc in state.of_kind("process"):
        assert os.stat(f"/proc/{proc['pid']}/ns/net").st_ino == inode

    for name in ("agent", "ovsdb-server"):
        obj = state.find("process", node="server2", name=name)
        assert obj is not None
        assert netns.stop_process(int(obj["pid"]), int(obj["start_time"])) == "stopped"
        assert lab.cli("status").returncode == 1
        again = netns.up(parse(text, str(lab.file)), text, root=lab.root)
        assert again.created == 1, name
        assert lab.cli("status").returncode == 0
        # the database file outlives its server: the switch keeps its tunnel IP
        assert lab.ctl("get Physical_Switch s2 tunnel_ips").strip() == '["172.16.2.1"]'
    wait_until(lambda: lab.ctl("list-ports s2").split() == ["s2-eth1", "s2-eth2"],
               what="the ports after the restarts")
    netns.down(lab.state())
    assert lab.ours() == [] and not any(lab.root.iterdir())
