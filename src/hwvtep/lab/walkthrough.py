"""`hwvtep lab walkthrough`: the reference hardware VTEP walkthrough, played and checked.

The walkthrough (docs/lab-topology.md, DESIGN.md section 4) is how a newcomer learns what a
controller does to a hardware VTEP: register the switch, talk raw OVSDB to it, bind a port
to a logical switch with one transaction and watch the ping start. This module runs every
step on a lab, prints each command with its output like a tutorial, and checks that each
step does what the tutorial says (so the tests can run it end to end). It stops at the
first step that does not, with exit status 1, and leaves the lab up either way.

Commands are run the way a reader would type them: ``NODE$ CMD`` runs ``sh -c CMD`` inside
the node (what ``hwvtep lab exec NODE -- sh -c CMD`` does), from the directory holding the
JSON files, so ``"$(cat attach_red2.json)"`` works as printed. The JSON files are taken
from the topology file's directory when it has them, else from the bundled examples.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from hwvtep.lab import icmp, netns
from hwvtep.lab import state as st
from hwvtep.lab.state import LabError, LabState
from hwvtep.lab.topology import Topology, load_file

EXAMPLES = Path(str(resources.files("hwvtep.lab") / "examples"))
BUNDLED = EXAMPLES / "walkthrough.yaml"
JSON_FILES = ("attach_red2.json", "attach_blue2.json", "get_locator_uuid.json",
              "detach_red2.json", "detach_blue2.json")
CLIENT = "hwvtep ovsdb-client"
REPLY_TIMEOUT = 15.0  # s for a newly attached host to answer
AGENT_TIMEOUT = 15.0  # s for the agent to register its ports
WIDTH = 92


class StepFailed(Exception):
    """A step did not do what the walkthrough says it does."""


@dataclass(frozen=True, slots=True)
class Color:
    """One of the two overlay networks of the walkthrough: hosts, VTEP port, JSON files."""

    name: str  # red, blue
    near: str  # host behind the hypervisor (red1)
    far: str  # host behind the hardware VTEP (red2)
    attach: str
    detach: str


RED = Color("red", "red1", "red2", "attach_red2.json", "detach_red2.json")
BLUE = Color("blue", "blue1", "blue2", "attach_blue2.json", "detach_blue2.json")
NODES = {"red1": "host", "blue1": "host", "red2": "host", "blue2": "host",
         "server1": "hypervisor", "server2": "hwvtep", "controller": "controller"}


@dataclass(frozen=True, slots=True)
class Attachment:
    """What an attach file does, read from the file itself (to check it fits the lab)."""

    port: str
    vni: int
    locator_ip: str
    remote_mac: str
    ops: int

    @classmethod
    def read(cls, path: Path) -> Attachment:
        ops = _load_txn(path)
        port = vni = ip = mac = None
        for op in ops:
            if op.get("op") == "mutate" and op.get("table") == "Physical_Port":
                port = op["where"][0][2]
            elif op.get("op") == "insert" and op.get("table") == "Logical_Switch":
                vni = op["row"].get("tunnel_key")
            elif op.get("op") == "insert" and op.get("table") == "Physical_Locator":
                ip = op["row"].get("dst_ip")
            elif op.get("op") == "wait" and op.get("table") == "Physical_Locator":
                ip = op["rows"][0].get("dst_ip")
            elif op.get("op") == "insert" and op.get("table") == "Ucast_Macs_Remote":
                mac = op["row"].get("MAC")
        if None in (port, vni, ip, mac):
            raise LabError(f"{path}: not an attach transaction of the walkthrough (it needs a "
                           "Physical_Port mutate, a Logical_Switch, a locator and a remote MAC)")
        return cls(str(port), int(str(vni)), str(ip), str(mac).lower(), len(ops))


def _load_txn(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: cannot read the transaction: {exc}") from None
    if not isinstance(data, list) or not data or data[0] != "hardware_vtep" \
            or not all(isinstance(op, dict) for op in data[1:]):
        raise LabError(f"{path}: not a hardware_vtep transaction ([\"hardware_vtep\", op...])")
    return list(data[1:])


def json_dir(topology_file: Path) -> Path:
    """The JSON files next to the topology file if it has them all, else the bundled ones."""
    here = topology_file.resolve().parent
    if all((here / name).is_file() for name in JSON_FILES):
        return here
    return EXAMPLES


def fit_problems(topo: Topology, files: Path) -> list[str]:
    """Why this topology and these JSON files cannot play the walkthrough (empty: they can)."""
    out: list[str] = []
    kinds = {n.name: n.kind for n in topo.nodes}
    for name, kind in NODES.items():
        if kinds.get(name) != kind:
            found = f"a {kinds[name]}" if name in kinds else "missing"
            out.append(f"node {name} must be a {kind} node ({found})")
    if out:
        return out
    server1, server2 = topo.node("server1"), topo.node("server2")
    if "server2" not in topo.node("controller").targets:
        out.append("the controller must target server2")
    if not any(e.startswith("tcp:") for e in topo.ovsdb_endpoints(server2)):
        out.append("server2 needs a ptcp OVSDB listener for the controller")
    peer = {}
    for link in topo.links:
        peer[(link.a.node, link.a.interface)] = link.b
        peer[(link.b.node, link.b.interface)] = link.a
    for color in (RED, BLUE):
        att = Attachment.read(files / color.attach)
        where = files / color.attach
        port_peer = peer.get(("server2", att.port))
        if att.port not in server2.physical_ports or port_peer is None \
                or port_peer.node != color.far:
            out.append(f"{where} binds server2 port {att.port}, which must be a physical port "
                       f"linked to {color.far}")
        if server1.tunnel_ip is None or att.locator_ip != str(server1.tunnel_ip):
            out.append(f"{where} sends {color.name} traffic to {att.locator_ip}, not to "
                       f"server1's tunnel_ip {server1.tunnel_ip}")
        macs = [i.mac for i in topo.node(color.near).interfaces]
        if att.remote_mac not in macs:
            out.append(f"{where} names MAC {att.remote_mac}, not {color.near}'s")
        near_vnis = [net.vni for net in server1.networks for port in net.ports
                     if peer.get(("server1", port)) is not None
                     and peer[("server1", port)].node == color.near]
        if att.vni not in near_vnis:
            out.append(f"{where} uses VNI {att.vni}, but server1 puts {color.near} on "
                       f"{near_vnis or 'no network'}")
    return out


# --------------------------------------------------------------------------- the walkthrough


@dataclass(slots=True)
class Ran:
    code: int
    output: str
    seconds: float


class Walkthrough:
    def __init__(self, topo: Topology, state: LabState, files: Path, out: TextIO,
                 client: str = CLIENT) -> None:
        self.client = client
        self.topo = topo
        self.state = state
        self.files = files
        self.out = out
        self.vtep = topo.node("server2")
        self.switch = self.vtep.switch_name
        self.tunnel_ip = str(self.vtep.tunnel_ip)
        self.remote = next(e for e in topo.ovsdb_endpoints(self.vtep) if e.startswith("tcp:"))
        self.steps = 0
        self.current = "the start"
        self.timings: list[str] = []
        self.has_nc = _nc_can_half_close()
        self.has_jq = shutil.which("jq") is not None

    # -- printing
    def say(self, text: str) -> None:
        for para in textwrap.dedent(text).strip().split("\n\n"):
            print(textwrap.fill(" ".join(para.split()), WIDTH), file=self.out)
        self.out.flush()

    def step(self, title: str, *, numbered: bool = True) -> None:
        if numbered:
            self.steps += 1
        self.current = f"step {self.steps}" if numbered else title
        head = f"== {self.steps}. {title} " if numbered else f"== {title} "
        print(f"\n{head}" + "=" * max(3, WIDTH - len(head)), file=self.out)

    def ok(self, text: str) -> None:
        print(f"   ok: {text}", file=self.out, flush=True)

    def show(self, prompt: str, output: str) -> None:
        print(prompt, file=self.out)
        for line in output.rstrip("\n").splitlines():
            print(f"    {line}", file=self.out)
        self.out.flush()

    # -- doing
    def sh(self, node: str, cmd: str, *, show: bool = True, timeout: float = 60) -> Ran:
        """Run `cmd` with sh inside `node`, from the JSON files' directory."""
        env = {**os.environ, **netns.node_env(self.state, node)}
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                netns.exec_argv(self.state, node, ["sh", "-c", cmd]), cwd=self.files, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"`{cmd}` in {node} did not finish within {timeout:.0f} s") from None
        ran = Ran(proc.returncode, proc.stdout, time.monotonic() - t0)
        if show:
            self.show(f"{node}$ {cmd}", ran.output)
        return ran

    def must(self, node: str, cmd: str, **kw: Any) -> Ran:
        ran = self.sh(node, cmd, **kw)
        if ran.code != 0:
            raise StepFailed(f"`{cmd}` in {node} exited with status {ran.code}")
        return ran

    def ctl(self, args: str) -> str:
        """A silent `hwvtep ctl` query on the VTEP (for checks, not for the reader)."""
        return self.must("server2", f"hwvtep ctl {args}", show=False).output

    def ping(self, src: str, dst: str, *, count: int = 3, wait: float = 1.0) -> icmp.PingResult:
        target = self.topo.address_to_reach(src, dst)
        result = icmp.ping(self.state.namespace(src), target, count=count, interval=0.1,
                           wait=wait)
        flags = f" -c {count}" + (f" -W {wait:g}" if wait != 1.0 else "")
        self.show(f"$ hwvtep lab ping {src} {dst}{flags}",
                  f"{src} -> {dst} ({target}): {result.summary()}")
        return result

    def transact(self, name: str) -> tuple[Ran, list[Any]]:
        """Send one of the JSON files from the controller; its result must hold no error."""
        cmd = f'{self.client} transact {self.remote} "$(cat {name})"'
        ran = self.sh("controller", cmd)
        reply = _last_json(ran.output)
        ops = len(_load_txn(self.files / name))
        if ran.code != 0 or not isinstance(reply, list):
            raise StepFailed(f"{name}: the transaction got no result (status {ran.code})")
        errors = [r for r in reply if isinstance(r, dict) and "error" in r]
        if errors or len(reply) != ops:
            raise StepFailed(f"{name} failed: {json.dumps(errors or reply)}")
        return ran, reply

    def wait_for(self, what: str, pred: Callable[[], bool], timeout: float) -> float:
        t0 = time.monotonic()
        while not pred():
            if time.monotonic() - t0 > timeout:
                raise StepFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.1)
        return time.monotonic() - t0

    # -- the steps
    def play(self) -> None:
        self.say(f"""
            A line `NODE$ COMMAND` is COMMAND run inside lab node NODE, as `hwvtep lab exec
            NODE -- sh -c 'COMMAND'` does (or type it in `hwvtep lab shell NODE`). The JSON
            files are in {self.files}; the commands run from there.""")
        self.reset_if_used()
        self.register()
        self.raw_ovsdb()
        self.attach(RED, first=True)
        self.attach(BLUE, first=False)
        self.isolation()
        self.locator()

    def reset_if_used(self) -> None:
        names = set(self.ctl("list-ls").split())
        leftovers = [c for c in (RED, BLUE) if c.name in names]
        if not leftovers:
            return
        self.step("Reset: detach what an earlier walkthrough attached", numbered=False)
        self.say("""This lab still has the logical switches of an earlier run. The detach
            files remove each logical switch with every row that refers to it, the MACs the
            agent reported included.""")
        for color in leftovers:
            self.transact(color.detach)
        self.wait_for("server1's locator to be released",
                      lambda: not self.ctl("--bare --columns=dst_ip list Physical_Locator")
                      .split().count(str(self.topo.node("server1").tunnel_ip)), 10)
        for color in (RED, BLUE):
            self.must(color.near, "ip neigh flush dev eth0", show=False)
        self.ok("the VTEP is back to no logical switch")

    def register(self) -> None:
        self.step(f"Register the hardware VTEP: physical switch {self.switch} on server2")
        ports = " ".join(self.vtep.physical_ports)
        self.say(f"""server2 runs `hwvtep ovsdb-server` (the hardware_vtep database, listening
            on {self.remote} for controllers) and `hwvtep agent`, which serves physical
            switch {self.switch} with ports {ports} on the Linux kernel. The agent created
            the switch's row and its ports when it started; the VTEP's operator adds the
            tunnel IP, the address VXLAN tunnels end on.""")
        self.wait_for(f"the agent to register ports {ports}",
                      lambda: set(self.vtep.physical_ports)
                      <= set(self.ctl(f"list-ports {self.switch}").split()), AGENT_TIMEOUT)
        self.must("server2", f"hwvtep ctl --may-exist add-ps {self.switch} -- "
                  f"set Physical_Switch {self.switch} tunnel_ips={self.tunnel_ip}")
        listing = self.must("server2", "hwvtep ctl list Physical_Switch").output
        fields = _fields(listing)
        if fields.get("name") != self.switch or self.tunnel_ip not in fields.get("tunnel_ips", ""):
            raise StepFailed(f"Physical_Switch {self.switch} does not show tunnel_ips "
                             f"{self.tunnel_ip}")
        self.must("server2", f"hwvtep ctl list-ports {self.switch}")
        self.ok(f"{self.switch} has tunnel_ips {self.tunnel_ip} and ports {ports}")

    def raw_ovsdb(self) -> None:
        self.step("Talk OVSDB to the VTEP from the controller (RFC 7047 over TCP)")
        host, port = self.remote.split(":")[1:]
        if self.has_nc:
            self.say(f"""OVSDB is JSON-RPC over a TCP stream: `nc` can send a request by
                hand. `echo` is the liveness check both sides use; `get_schema` returns the
                database schema.{'' if self.has_jq else ' (jq is not installed: raw JSON.)'}""")
            jq = " | jq -c ." if self.has_jq else ""
            req = '{"method": "echo", "params": ["hello"], "id": "echo"}'
            ran = self.must("controller", f"echo '{req}' | nc -N {host} {port}{jq}")
            reply = _last_json(ran.output)
            if not isinstance(reply, dict) or reply.get("result") != ["hello"]:
                raise StepFailed("the echo request was not answered with its own params")
            self.ok("echo answered")
            req = '{"method": "get_schema", "params": ["hardware_vtep"], "id": 1}'
            jq = (" | jq -c '.result | {name, version, tables: (.tables | keys)}'"
                  if self.has_jq else "")
            ran = self.must("controller", f"echo '{req}' | nc -N {host} {port}{jq}")
            reply = _last_json(ran.output)
            schema = reply if self.has_jq else (reply or {}).get("result")
            if not isinstance(schema, dict) or schema.get("name") != "hardware_vtep" \
                    or "Physical_Switch" not in schema.get("tables", ()):
                raise StepFailed("get_schema did not return the hardware_vtep schema")
            self.ok(f"schema hardware_vtep version {schema.get('version')}")
        else:
            self.say("(nc with -N, e.g. netcat-openbsd, is not installed: the raw JSON-RPC "
                     "part is skipped.)")
        self.say("The same through an OVSDB client:")
        dbs = self.must("controller", f"{self.client} list-dbs {self.remote}").output.split()
        if "hardware_vtep" not in dbs:
            raise StepFailed("list-dbs does not list hardware_vtep")
        version = self.must(
            "controller", f"{self.client} get-schema-version {self.remote} hardware_vtep").output
        if not version.strip():
            raise StepFailed("get-schema-version printed nothing")
        self.ok(f"hardware_vtep {version.strip()} served on {self.remote}")

    def attach(self, color: Color, *, first: bool) -> None:
        att = Attachment.read(self.files / color.attach)
        self.step(f"Attach {color.far} to the {color.name} network (VNI {att.vni})")
        src = self.state.namespace(color.near)
        target = self.topo.address_to_reach(color.near, color.far)
        if first:
            self.say(f"""{color.near} is behind server1, a hypervisor whose {color.name}
                network (VNI {att.vni}) already sends to the VTEP at {self.tunnel_ip}. But
                server2 does not know the {color.name} network yet: {color.far} is
                unreachable.""")
        else:
            self.say("""blue works the same way with its own VNI, and the very same
                addresses as red.""")
        if self.ping(color.near, color.far, count=2, wait=0.5).ok:
            raise StepFailed(f"{color.far} answers before it is attached")
        self.ok(f"{color.far} is unreachable")
        what = (f"creates the {color.name} logical switch with its VNI, binds port "
                f"{att.port} (vlan 0) to it, and tells the VTEP that {color.near}'s MAC is "
                f"behind the tunnel to {att.locator_ip} (a Physical_Locator), which also "
                "receives the switch's broadcast and unknown traffic")
        if not first:
            what = (f"does the same for blue on port {att.port}, but reuses the locator of "
                    f"{att.locator_ip} that attach_red2.json created: the Physical_Locator "
                    "index (encapsulation_type, dst_ip, tunnel_key) refuses a second row "
                    "for it. Its `wait` operation makes the transaction fail cleanly if "
                    "that locator is not there")
        self.say(f"""The controller sends one transaction: {color.attach} {what}.
            Meanwhile {color.near} pings {color.far} every 10 ms.""")
        with icmp.Prober(src, target) as prober:
            sent = time.monotonic()
            ran, _ = self.transact(color.attach)
            first_reply = prober.wait_first(REPLY_TIMEOUT)
        if first_reply is None:
            raise StepFailed(f"{color.far} did not answer within {REPLY_TIMEOUT:.0f} s "
                             f"of {color.attach}")
        took = (first_reply - sent) * 1000
        timing = (f"{color.near} -> {color.far}: first reply {took:.0f} ms after "
                  f"{color.attach} was sent (the {self.client} command took "
                  f"{ran.seconds * 1000:.0f} ms)")
        self.timings.append(timing)
        self.ok(timing)
        result = self.ping(color.near, color.far, count=3)
        if result.received != result.sent:
            raise StepFailed(f"{color.far} answered {result.received} of {result.sent}")
        self.ok(f"{color.far} answers")
        if first:
            self.must("server2", "hwvtep ctl show")

    def isolation(self) -> None:
        self.step("Same addresses, different VNIs: red1 cannot reach blue2")
        red1, blue2 = self.topo.node("red1"), self.topo.node("blue2")
        red2_mac = self.topo.node("red2").interfaces[0].mac
        blue2_mac = blue2.interfaces[0].mac
        target = self.topo.address_to_reach("red1", "red2")
        self.say(f"""red2 and blue2 are both {target}. Each side resolved it to its own
            host: the overlay keeps the two layer-2 networks apart.""")
        for near, mac in (("red1", red2_mac), ("blue1", blue2_mac)):
            ran = self.must(near, f"ip neigh show {target} dev eth0")
            if str(mac) not in ran.output:
                raise StepFailed(f"{near} resolved {target} to another MAC than {mac}")
        self.say(f"""Now red1 is told that {target} is blue2's MAC {blue2_mac}. Its frames
            travel the red VNI, which has no such host: blue2 never sees them.""")
        dev = red1.interfaces[0].name
        before = self._in_echos("blue2")
        self.must("red1", f"ip neigh replace {target} lladdr {blue2_mac} dev {dev} "
                  "nud permanent")
        try:
            result = self.ping("red1", str(target), count=3, wait=0.5)
        finally:
            self.must("red1", f"ip neigh del {target} dev {dev}")
        after = self._in_echos("blue2")
        if result.ok or after != before:
            raise StepFailed(f"red1's echo requests reached blue2 (its ICMP InEchos went "
                             f"from {before} to {after}, {result.received} replies)")
        self.ok(f"blue2 received none of red1's {result.sent} echo requests "
                f"(its ICMP InEchos counter stayed at {after})")

    def locator(self) -> None:
        self.step("Find a locator's UUID")
        server1 = self.topo.node("server1").tunnel_ip
        self.say(f"""A controller that wants to reuse a locator looks it up by address;
            get_locator_uuid.json selects the one for server1 ({server1}).""")
        _ran, reply = self.transact("get_locator_uuid.json")
        rows = reply[0].get("rows", []) if reply and isinstance(reply[0], dict) else []
        if len(rows) != 1 or rows[0].get("dst_ip") != str(server1):
            raise StepFailed(f"expected exactly one locator for {server1}, got {rows}")
        uuid = rows[0]["_uuid"][1]
        refs = self.ctl("--bare --columns=locator list Ucast_Macs_Remote").split()
        if refs.count(uuid) != 2:
            raise StepFailed(f"red and blue should both use locator {uuid}: {refs}")
        self.ok(f"one locator for {server1}: {uuid}, used by red1's and blue1's MACs")

    def _in_echos(self, node: str) -> int:
        """The node's ICMP InEchos counter (echo requests it received)."""
        text = self.must(node, "cat /proc/net/snmp", show=False).output
        lines = [line.split() for line in text.splitlines() if line.startswith("Icmp:")]
        return int(lines[1][lines[0].index("InEchos")])


def _nc_can_half_close() -> bool:
    """Whether `nc` is there and has -N (shut the socket down at end of input), which the
    raw requests need: netcat-openbsd has it, the traditional netcat does not."""
    if shutil.which("nc") is None:
        return False
    try:
        usage = subprocess.run(["nc", "-h"], capture_output=True, text=True, timeout=5,
                               stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "-N" in usage.stdout + usage.stderr


def _fields(listing: str) -> dict[str, str]:
    """`ctl list` output (one record) as column -> text."""
    out = {}
    for line in listing.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def _last_json(text: str) -> Any:
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------- entry point


def run(file: Path | None, *, root: Path, out: TextIO = sys.stdout, client: str = CLIENT) -> int:
    """Bring the lab of `file` up if needed, then play every step. The exit status."""
    from hwvtep.lab.cli import node_table

    path = Path(file) if file is not None else BUNDLED
    topo = load_file(path, tools=netns.find_tool)
    files = json_dir(path)
    problems = fit_problems(topo, files)
    if problems:
        raise LabError(f"{path} does not fit the walkthrough:\n  " + "\n  ".join(problems))
    shown = path if file is not None else "(the bundled walkthrough.yaml)"
    print(f"$ hwvtep lab up {shown}", file=out, flush=True)
    try:
        result = netns.up(topo, path.read_text(encoding="utf-8"), root=root)
    except LabError:
        raise
    except Exception as exc:
        raise LabError(f"up failed: {type(exc).__name__}: {exc}\n  what was created is "
                       f"recorded in {st.state_path(root, topo.name)}; `hwvtep lab down "
                       f"{topo.name}` removes it") from exc
    verb = "was already up" if result.created == 0 else f"up in {result.seconds:.2f} s"
    print(f"lab {topo.name} {verb}", file=out)
    print(node_table(topo, result.state), file=out, flush=True)
    walk = Walkthrough(topo, result.state, files, out, client)
    try:
        walk.play()
    except StepFailed as exc:
        print(f"\nFAILED at {walk.current}: {exc}", file=out)
        print("The lab stays up for a look: hwvtep lab status, the daemons' logs in "
              f"{result.state.directory}; `hwvtep lab down` removes it.", file=out, flush=True)
        return 1
    print(f"\nAll {walk.steps} steps behaved as expected.", file=out)
    for line in walk.timings:
        print(f"  {line}", file=out)
    print(textwrap.dedent("""
        The lab stays up. Explore it:
          hwvtep lab shell red1                      a shell in red1
          hwvtep lab exec server2 -- hwvtep ctl show the VTEP's configuration
          hwvtep lab exec server2 -- bridge fdb      what the agent programmed
          hwvtep lab down                            remove the lab
        """).rstrip(), file=out, flush=True)
    return 0
