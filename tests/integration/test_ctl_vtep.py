"""`hwvtep ctl` against the real vtep-ctl: the behaviours Open vSwitch's vtep-ctl tests pin.

Each scenario is a list of command lines. It runs once with vtep-ctl and once with
`hwvtep ctl` against the same server (reset to an empty database holding one Global row
before each run, as Open vSwitch's tests start), and every step's stdout, stderr and exit
status must be equal once UUIDs and log timestamps are masked. The scenarios run against
our server and against Open vSwitch's ovsdb-server.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvhelp import (
    HWVTEP,
    MISSING_OVS,
    UUID_RE,
    VSWITCH_SCHEMA,
    Rpc,
    RunningServer,
    needs_ovs,
    normalize_output,
    sort_tree,
    start_server,
)

pytestmark = [pytest.mark.ovs, needs_ovs]

ROOT_TABLES = ("Global", "Logical_Switch", "Logical_Router", "Ucast_Macs_Local",
               "Ucast_Macs_Remote", "Mcast_Macs_Local", "Mcast_Macs_Remote",
               "Arp_Sources_Local", "Arp_Sources_Remote", "ACL_entry", "ACL")

Step = list[str]
Result = tuple[str, str, int]


def reset(srv: RunningServer, with_global: bool = True) -> None:
    """Empty the database (every other table is garbage collected) and add a Global row."""
    # Switches and ports go first (with Global): their bindings refer to logical switches.
    first: list[Any] = ["hardware_vtep", {"op": "delete", "table": "Global", "where": []}]
    ops: list[Any] = ["hardware_vtep"]
    ops += [{"op": "delete", "table": t, "where": []} for t in ROOT_TABLES]
    if with_global:
        ops.append({"op": "insert", "table": "Global", "row": {}})
    with Rpc(str(srv.sock)) as rpc:
        for txn in (first, ops):
            reply = rpc.call("transact", txn)
            assert reply.get("error") is None and all(
                "error" not in r for r in reply["result"]), reply


_HTML_ANCHOR = re.compile(r'(<a (?:name|href)="#?<\d+>">)[0-9a-f]{8}</a>')


def normalize(text: str, srv: RunningServer) -> str:
    """UUIDs numbered in order of appearance, log prefixes and paths masked, and the
    8-digit UUID prefixes of HTML anchors (ours and theirs name different rows)."""
    return _HTML_ANCHOR.sub(r"\1<prefix></a>", normalize_output(text, srv))


def run_tool(srv: RunningServer, tool: str, args: list[str],
             extra_env: dict[str, str] | None = None, raw: bool = False) -> Result:
    if tool == "vtep-ctl":
        cmd = ["vtep-ctl", "-vreconnect:emer", f"--db={srv.unix}", *args]
    else:
        cmd = [HWVTEP, "ctl", f"--db={srv.unix}", *args]
    env = srv.env
    if extra_env:
        env.update(extra_env)
    cp = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    if raw:
        return cp.stdout, cp.stderr, cp.returncode
    return normalize(cp.stdout, srv), normalize(cp.stderr, srv), cp.returncode


# A step may start with marks (never a real argument: they begin with a NUL).
_MARK = "\0"
UNORDERED = f"{_MARK}unordered"


def unordered(*args: str) -> Step:
    """A read-only step whose output lists several rows: their order is not compared
    between the two runs, but must be the same for both tools on the same database.

    vtep-ctl lists rows in the order of its hash table of rows, keyed by their UUIDs,
    which differ between the two runs; `hwvtep ctl` lists the same rows in the same order
    (see `run_steps`).
    """
    return [UNORDERED, *args]


def _args(cmd: str | Step) -> Step:
    return cmd.split() if isinstance(cmd, str) else cmd


def fails(status: int, cmd: str | Step) -> Step:
    """A step vtep-ctl ends with this (non-zero) exit status."""
    return [f"{_MARK}status={status}", *_args(cmd)]


def expect(stdout: str, cmd: str | Step) -> Step:
    """A step whose output (after `normalize`) is pinned, as Open vSwitch's vtep-ctl tests
    pin it: vtep-ctl must print exactly this (and so must we)."""
    return [f"{_MARK}stdout={stdout}", *_args(cmd)]


def expect_error(stderr: str, status: int, cmd: str | Step) -> Step:
    """A step that fails with this status and message, UUIDs left as they are (the
    step's rows have fixed UUIDs, given with --id)."""
    return [f"{_MARK}raw", f"{_MARK}status={status}", f"{_MARK}stderr={stderr}",
            *_args(cmd)]


def tree(cmd: str | Step) -> Step:
    """A `show` step whose sibling lines are compared in sorted order (vtep-ctl lists
    rows and set members in UUID or hash order, which differ between two runs); on the
    same database both tools print the same text (see `run_steps`)."""
    return [f"{_MARK}tree", *_args(cmd)]


def split_marks(step: Step) -> tuple[Step, dict[str, str]]:
    marks: dict[str, str] = {}
    i = 0
    while i < len(step) and step[i].startswith(_MARK):
        key, _, value = step[i][1:].partition("=")
        marks[key] = value
        i += 1
    return step[i:], marks


def _sort_records(text: str) -> str:
    def key(b: str) -> str:
        return UUID_RE.sub("", b)
    blocks = text.split("\n\n")
    if len(blocks) > 1:
        return "\n\n".join(sorted((b.strip("\n") for b in blocks), key=key))
    return "\n".join(sorted(text.splitlines(), key=key))


def run_steps(srv: RunningServer, tool: str, steps: list[Step]) -> list[Result]:
    """Each step's result with *tool*. In vtep-ctl's run, a step whose order is not
    compared between the runs (`unordered`, `tree`) is also run with `hwvtep ctl` on the
    same database, which must print exactly the same, in the same order."""
    results = []
    for s in steps:
        args, marks = split_marks(s)
        if tool == "vtep-ctl" and ("unordered" in marks or "tree" in marks):
            ref = run_tool(srv, tool, args, raw=True)
            same = run_tool(srv, "hwvtep", args, raw=True)
            assert same == ref, f"same database, step {args}:\n vtep-ctl: {ref}\n ours: {same}"
        if "unordered" in marks:
            o, e, rc = run_tool(srv, tool, args, raw=True)
            results.append((normalize(_sort_records(o), srv), normalize(e, srv), rc))
        elif "tree" in marks:
            o, e, rc = run_tool(srv, tool, args)
            results.append((sort_tree(o), e, rc))
        elif "raw" in marks:
            results.append(run_tool(srv, tool, args, raw=True))
        else:
            results.append(run_tool(srv, tool, args))
    return results


def run_both(srv: RunningServer, steps: list[Step], with_global: bool = True
             ) -> tuple[list[Result], list[Result]]:
    out: dict[str, list[Result]] = {}
    for tool in ("vtep-ctl", "hwvtep"):
        reset(srv, with_global)
        out[tool] = run_steps(srv, tool, steps)
    return out["vtep-ctl"], out["hwvtep"]


def assert_same(srv: RunningServer, steps: list[Step], with_global: bool = True,
                statuses: bool = False) -> None:
    """Both tools print and exit alike at every step; vtep-ctl's output is what `expect`
    pins, and with *statuses* its exit status is 0 wherever `fails` does not say
    otherwise (so that a reference failing for an unrelated reason, a server it cannot
    use say, cannot make the comparison pass)."""
    ref, ours = run_both(srv, steps, with_global)
    for step, r, o in zip(steps, ref, ours, strict=True):
        args, marks = split_marks(step)
        if "stdout" in marks:
            assert r[0] == marks["stdout"], f"vtep-ctl, step {args}: {r}"
        if "stderr" in marks:
            assert r[1] == marks["stderr"], f"vtep-ctl, step {args}: {r}"
        if statuses or "status" in marks:
            assert r[2] == int(marks.get("status", "0")), f"vtep-ctl, step {args}: {r}"
        assert o == r, f"step {args}:\n vtep-ctl: {r}\n ours:     {o}"


def start_servers() -> Iterator[dict[str, RunningServer]]:
    """Our server and (when installed) Open vSwitch's, stopped when the caller is done."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="hvc-"))
    started: dict[str, RunningServer] = {}
    try:
        started["hwvtep"] = start_server("hwvtep", base)
        if not MISSING_OVS:
            started["ovs"] = start_server("ovs", base)
        yield started
    finally:
        for s in started.values():
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, RunningServer]]:
    yield from start_servers()


# --- scenario building blocks (after the checks of Open vSwitch's vtep-ctl tests) ------


def together(*commands: str) -> Step:
    """Several commands in one run, joined by "--", with --oneline."""
    step = ["--oneline"]
    for c in commands:
        step += ["--", *c.split()]
    return step


def check_names(list_cmd: str, exists_cmd: str | None, names: list[str]) -> list[Step]:
    """*list_cmd* prints exactly *names* (given in the order it must print them), one a
    line, and with --oneline on one line; *exists_cmd* finds each and not another."""
    steps: list[Step] = [
        expect("".join(f"{n}\n" for n in names), list_cmd),
        expect("\\n".join(names) + "\n", ["--oneline", "--", *list_cmd.split()])]
    if exists_cmd is not None:
        steps += [expect("", [exists_cmd, n]) for n in names]
        steps.append(fails(2, [exists_cmd, "nonexistent"]))
    return steps


def pswitches(*names: str) -> list[Step]:
    return check_names("list-ps", "ps-exists", list(names))


def lswitches(*names: str) -> list[Step]:
    return check_names("list-ls", "ls-exists", list(names))


def lrouters(*names: str) -> list[Step]:
    return check_names("list-lr", "lr-exists", list(names))


def ports(ps: str, *names: str) -> list[Step]:
    return check_names(f"list-ports {ps}", None, list(names))


def each(*commands: str) -> list[Step]:
    return [c.split() for c in commands]


def macs(ucast: list[str], mcast: list[str], where: str = "local", ls: str = "ls1") -> Step:
    """list-local-macs / list-remote-macs printing these "MAC -> encap/IP" lines."""
    def block(kind: str, lines: list[str]) -> str:
        return f"{kind}-mac-{where}\n" + "".join(f"  {x}\n" for x in lines) + "\n"
    return expect(block("ucast", ucast) + block("mcast", mcast), f"list-{where}-macs {ls}")


# Added in this order; listed in byte order (digits, upper case, "_", lower case).
MIXED = ("zeta", "Beta", "alpha", "Alpha", "_x", "10", "9", "b")
SORTED = sorted(MIXED)

MAC_LISTS = each("list-local-macs ls1", "list-remote-macs ls1")
NO_REMOTE_MACS = macs([], [], "remote")

# vtep-ctl.at's "show command" check, whose first line (the Global row's UUID) is masked.
SHOW = """<0>
    Manager "tcp:4.5.6.7"
    Physical_Switch a
        management_ips: ["4.3.2.1"]
        tunnel_ips: ["1.2.3.4"]
        Physical_Port a1
            vlan_bindings:
                100=ls1
"""

SCENARIOS: dict[str, list[Step]] = {
    # physical switches
    "add-ps a": [*each("add-ps a"), *pswitches("a")],
    "add-ps a twice": [*each("add-ps a"), fails(1, "add-ps a"), *each("--may-exist add-ps a")],
    "add-ps a b": [*each("add-ps a", "add-ps b"), *pswitches("a", "b")],
    "add-ps a b, del-ps a": [*each("add-ps a", "add-ps b", "del-ps a"), *pswitches("b")],
    "add-ps a, del-ps a, add-ps a": [expect("\n\n\n", together("add-ps a", "del-ps a",
                                                               "add-ps a")),
                                     *pswitches("a")],
    "ports": [*each("add-ps a", "--if-exists del-ps b", "add-port a a1", "add-port a a2"),
              *pswitches("a"), *ports("a", "a1", "a2")],
    "add-port twice": [*each("add-ps a", "add-port a a1"), fails(1, "add-port a a1")],
    "del-ps with ports": [expect("\n" * 6, together(
                              "add-ps a", "add-ps b", "add-port a a1", "add-port b b1",
                              "--if-exists del-port b b2", "del-ps a")),
                          *pswitches("b"), *ports("b", "b1")],
    "del-port": [*each("add-ps a", "add-ps b", "add-port a a1", "--may-exist add-port b b1",
                       "del-port a a1", "--may-exist add-port b b1"),
                 *pswitches("a", "b"), *ports("a"), *ports("b", "b1")],
    "same port name on two switches": [
        *each("add-ps a", "add-ps b", "add-port a p1", "add-port b p1"),
        *ports("a", "p1"), *ports("b", "p1"), *each("del-port a p1"), *ports("a"),
        *ports("b", "p1")],
    "errors on switches and ports": [
        fails(1, "del-ps nope"), fails(1, "list-ports nope"), fails(1, "add-port nope p"),
        fails(1, "del-port nope p"), *each("add-ps a"), fails(1, "del-port a p"),
        *each("--if-exists del-port a p"), fails(1, "list-bindings a p")],
    # names are listed in byte order, whatever order they were added in
    "names in reverse and mixed case": [
        *each(*[f"add-ps {n}" for n in MIXED], *[f"add-ls {n}" for n in MIXED],
              *[f"add-lr {n}" for n in MIXED], *[f"add-port zeta p{n}" for n in MIXED]),
        *pswitches(*SORTED), *lswitches(*SORTED), *lrouters(*SORTED),
        *ports("zeta", *[f"p{n}" for n in SORTED]),
        *each("del-ls Beta", "del-lr alpha", "del-port zeta p10", "del-ps _x"),
        *lswitches(*[n for n in SORTED if n != "Beta"]),
        *lrouters(*[n for n in SORTED if n != "alpha"]),
        *pswitches(*[n for n in SORTED if n != "_x"]),
        *ports("zeta", *[f"p{n}" for n in SORTED if n != "10"])],
    # logical switches
    "add-ls a": [*each("add-ls a"), *lswitches("a")],
    "del-ls a missing switch": [fails(1, "del-ls nope"), expect("", "--if-exists del-ls nope"),
                                *each("add-ls a"), fails(1, "del-ls nope"),
                                *each("--if-exists del-ls nope"), *lswitches("a")],
    "add-ls a twice": [*each("add-ls a"), fails(1, "add-ls a"), *each("--may-exist add-ls a")],
    "add-ls a b, del-ls a": [*each("add-ls a", "add-ls b", "del-ls a"), *lswitches("b")],
    "add-ls a, del-ls a, add-ls a": [expect("\n\n\n", together("add-ls a", "del-ls a",
                                                               "add-ls a")),
                                     *lswitches("a")],
    "replication mode": [
        *each("add-ls a"), expect("(null)\n", "get-replication-mode a"),
        *each("set-replication-mode a source_node"),
        expect("source_node\n", "get-replication-mode a"),
        *each("set-replication-mode a service_node"),
        expect("service_node\n", "get-replication-mode a"),
        fails(1, "set-replication-mode a bogus"), fails(1, "get-replication-mode nope"),
        fails(1, "set-replication-mode nope source_node"),
        expect("service_node\n", "--oneline get-replication-mode a")],
    # logical routers
    "add-lr a": [*each("add-lr a"), *lrouters("a")],
    "add-lr a twice": [*each("add-lr a"), fails(1, "add-lr a"), *each("--may-exist add-lr a"),
                       fails(1, "del-lr nope"), *each("--if-exists del-lr nope")],
    "add-lr a b, del-lr a": [*each("add-lr a", "add-lr b", "del-lr a"), *lrouters("b")],
    "add-lr a, del-lr a, add-lr a": [expect("\n\n\n", together("add-lr a", "del-lr a",
                                                               "add-lr a")),
                                     *lrouters("a")],
    # bindings
    "bind-ls": [*each("add-ps ps1", "add-port ps1 pp1", "add-ls ls1"), *pswitches("ps1"),
                *ports("ps1", "pp1"), *lswitches("ls1"), *each("bind-ls ps1 pp1 300 ls1"),
                expect("0300 ls1\n", "list-bindings ps1 pp1")],
    "bind-ls twice": [*each("add-ps ps1", "add-port ps1 pp1", "add-ls ls1", "add-ls ls2",
                            "bind-ls ps1 pp1 300 ls1", "bind-ls ps1 pp1 400 ls2"),
                      expect("0300 ls1\n0400 ls2\n", "list-bindings ps1 pp1"),
                      fails(1, "bind-ls ps1 pp1 300 ls2"), *each("unbind-ls ps1 pp1 300"),
                      expect("0400 ls2\n", "list-bindings ps1 pp1"),
                      fails(1, "unbind-ls ps1 pp1 300"), fails(1, "bind-ls ps1 pp1 5 nope"),
                      fails(1, "bind-ls ps1 nope 5 ls1"),
                      expect("0400 ls2\n", "--oneline list-bindings ps1 pp1")],
    "bind-ls on two switches": [
        *each("add-ps ps1", "add-ps ps2", "add-port ps1 pp1", "add-port ps2 pp2",
              "add-ls ls1", "add-ls ls2", "bind-ls ps1 pp1 300 ls1",
              "bind-ls ps2 pp2 300 ls2"), expect("0300 ls1\n", "list-bindings ps1 pp1"),
        expect("0300 ls2\n", "list-bindings ps2 pp2"), fails(1, "del-ls ls1")],
    # MACs
    "add-ucast-local": [*each("add-ls ls1"), *lswitches("ls1"),
                        ["add-ucast-local", "ls1", "00:11:22:33:44:55", "10.0.0.10"],
                        ["add-ucast-local", "ls1", "00:11:22:33:44:66", "vxlan_over_ipv4",
                         "10.0.0.11"],
                        macs(["00:11:22:33:44:55 -> vxlan_over_ipv4/10.0.0.10",
                              "00:11:22:33:44:66 -> vxlan_over_ipv4/10.0.0.11"], []),
                        NO_REMOTE_MACS],
    "add-ucast-local overwrite": [
        *each("add-ls ls1", "add-ucast-local ls1 00:11:22:33:44:55 10.0.0.10",
              "add-ucast-local ls1 00:11:22:33:44:55 10.0.0.11"),
        macs(["00:11:22:33:44:55 -> vxlan_over_ipv4/10.0.0.11"], []), NO_REMOTE_MACS],
    "del-ucast-local": [
        *each("add-ls ls1", "add-ucast-local ls1 00:11:22:33:44:55 10.0.0.10",
              "add-ucast-local ls1 00:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11"), *MAC_LISTS,
        *each("del-ucast-local ls1 00:11:22:33:44:55", "del-ucast-local ls1 00:00:00:00:00:00"),
        *MAC_LISTS],
    "add-ucast-remote": [
        *each("add-ls ls1", "add-ucast-remote ls1 00:11:22:33:44:55 10.0.0.10",
              "add-ucast-remote ls1 00:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11"),
        *MAC_LISTS],
    "add-ucast-remote overwrite and delete": [
        *each("add-ls ls1", "add-ucast-remote ls1 00:11:22:33:44:55 10.0.0.10",
              "add-ucast-remote ls1 00:11:22:33:44:55 10.0.0.11"), *MAC_LISTS,
        *each("del-ucast-remote ls1 00:11:22:33:44:55"), *MAC_LISTS],
    "ucast local and remote": [
        *each("add-ls ls1", "add-ucast-local ls1 00:11:22:33:44:55 10.0.0.10",
              "add-ucast-local ls1 00:11:22:33:44:66 10.0.0.11",
              "add-ucast-remote ls1 02:11:22:33:44:55 10.0.0.10",
              "add-ucast-remote ls1 02:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11"),
        *MAC_LISTS],
    "add-mcast-local": [
        *each("add-ls ls1", "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.10",
              "add-mcast-local ls1 01:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11",
              "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.12"),
        macs([], ["01:11:22:33:44:55 -> vxlan_over_ipv4/10.0.0.10",
                  "01:11:22:33:44:55 -> vxlan_over_ipv4/10.0.0.12",
                  "01:11:22:33:44:66 -> vxlan_over_ipv4/10.0.0.11"]), NO_REMOTE_MACS],
    "del-mcast-local": [
        *each("add-ls ls1", "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.10",
              "add-mcast-local ls1 01:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11",
              "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.12",
              "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.13"), *MAC_LISTS,
        *each("del-mcast-local ls1 01:11:22:33:44:55 10.0.0.12"), *MAC_LISTS,
        *each("del-mcast-local ls1 01:11:22:33:44:66 10.0.0.11",
              "del-mcast-local ls1 01:11:22:33:44:66 10.0.0.11",
              "del-mcast-local ls1 01:11:22:33:44:55 9.9.9.9"), *MAC_LISTS],
    "add-mcast-remote and delete": [
        *each("add-ls ls1", "add-mcast-remote ls1 01:11:22:33:44:55 10.0.0.10",
              "add-mcast-remote ls1 01:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11",
              "add-mcast-remote ls1 01:11:22:33:44:55 10.0.0.12",
              "add-mcast-remote ls1 01:11:22:33:44:55 10.0.0.13"), *MAC_LISTS,
        *each("del-mcast-remote ls1 01:11:22:33:44:55 10.0.0.12"), *MAC_LISTS],
    "mcast local and remote": [
        *each("add-ls ls1", "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.10",
              "add-mcast-local ls1 01:11:22:33:44:66 10.0.0.11",
              "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.12",
              "add-mcast-remote ls1 03:11:22:33:44:55 10.0.0.10",
              "add-mcast-remote ls1 03:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11",
              "add-mcast-remote ls1 03:11:22:33:44:55 10.0.0.12"), *MAC_LISTS],
    "clear-local-macs": [
        *each("add-ls ls1", "add-ucast-local ls1 00:11:22:33:44:55 10.0.0.10",
              "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.10",
              "add-mcast-local ls1 01:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11",
              "add-mcast-local ls1 01:11:22:33:44:55 10.0.0.12",
              "add-ucast-remote ls1 00:11:22:33:44:55 10.0.0.10",
              "add-mcast-remote ls1 01:11:22:33:44:55 10.0.0.10",
              "add-mcast-remote ls1 01:11:22:33:44:66 vxlan_over_ipv4 10.0.0.11",
              "add-mcast-remote ls1 01:11:22:33:44:55 10.0.0.12"), *MAC_LISTS,
        *each("clear-local-macs ls1"), *MAC_LISTS,
        *each("clear-remote-macs ls1"), *MAC_LISTS],
    "MAC errors": [fails(1, "list-local-macs nope"),
                   fails(1, "add-ucast-local nope 00:11:22:33:44:55 1.2.3.4"),
                   *each("add-ls ls1"),
                   fails(1, "add-ucast-local ls1 00:11:22:33:44:55 bogus 1.2.3.4"),
                   *each("del-mcast-remote ls1 01:00:00:00:00:00 1.2.3.4")],
    "MACs in one transaction": [
        together("add-ls ls1", "add-ucast-local ls1 00:11:22:33:44:55 10.0.0.10",
                 "add-mcast-remote ls1 01:11:22:33:44:55 10.0.0.10",
                 "add-mcast-remote ls1 01:11:22:33:44:55 10.0.0.11",
                 "list-local-macs ls1", "list-remote-macs ls1"), *MAC_LISTS],
    # managers (vtep-ctl.at's "managers": --oneline turns the two lines into one)
    "managers": [expect("\n\n\ntcp:4.5.6.7\n\ntcp:5.4.3.2\\ntcp:8.9.10.11\n\ntcp:1.2.3.4\n\n\n",
                        together("del-manager", "get-manager", "set-manager tcp:4.5.6.7",
                                 "get-manager", "set-manager tcp:8.9.10.11 tcp:5.4.3.2",
                                 "get-manager",
                                 "--inactivity-probe=30000 set-manager tcp:1.2.3.4",
                                 "get-manager", "del-manager", "get-manager"))],
    "manager probe": [*each("--inactivity-probe=30000 set-manager tcp:1.2.3.4 ptcp:6640"),
                      unordered("--columns=inactivity_probe,target", "find", "Manager"),
                      *each("get-manager", "set-manager foo:bar", "get-manager")],
    # show
    "show": [*each("set-manager tcp:4.5.6.7", "add-ps a", "add-port a a1", "add-ls ls1",
                   "bind-ls a a1 100 ls1",
                   "set Physical_Switch a management_ips=[4.3.2.1] tunnel_ips=[1.2.3.4]"),
             expect(SHOW, "show")],
    "show with a port without bindings": [*each("add-ps a", "add-port a a1", "show")],
    "show with several switches and ports": [
        *each("add-ps ps2", "add-ps ps1", "add-ps 10", "add-port ps1 b", "add-port ps1 a",
              "add-port ps2 c", "add-port 10 x", "add-ls lsA", "add-ls lsB",
              "bind-ls ps1 a 10 lsA", "bind-ls ps1 a 20 lsB", "bind-ls ps2 c 5 lsB",
              "set-manager tcp:1.1.1.1 ssl:2.2.2.2",
              "set Physical_Switch ps2 management_ips=[1.1.1.1,2.2.2.2] "
              "tunnel_ips=[3.3.3.3]"),
        tree("show"), *each("del-ps ps1", "del-manager"), tree("show")],
    # exit statuses stop the run before any output or commit
    "exists stops the run": [fails(2, together("add-ls x", "list-ls", "ls-exists nope",
                                               "list-ls")),
                             *lswitches(), fails(2, "ls-exists x")],
    # command-line errors
    "usage errors": [*[fails(1, c) for c in (
                         "", "list-ps extra", "add-ps", "bogus-command",
                         "--if-exists list-ps")],
                     *each("--may-exist add-ps a --"),
                     *[fails(1, c) for c in (
                         "add-ps a --may-exist", "--may-exist=1 add-ps a",
                         "--inactivity-probe set-manager tcp:1", "-- --",
                         "--if-exists -- list-ps")]],
    "bad option values": [*[fails(1, c) for c in (
                              ["-t", "0", "list-ps"], ["-t", "x", "list-ps"],
                              ["--format=foo", "list-ps"], ["--data=foo", "list-ps"],
                              ["--bogus", "list-ps"], ["--d", "list-ps"], ["--oneline=1"],
                              ["--db"], ["-x"])],
                          ["--if-exists", "--if-exists", "del-ps", "a"]],
}


KINDS = ("hwvtep", "ovs")


def on(servers: dict[str, RunningServer], kind: str) -> RunningServer:
    """The server of this kind (ours or Open vSwitch's ovsdb-server)."""
    if kind not in servers:
        pytest.skip(f"Open vSwitch is not installed (missing: {', '.join(MISSING_OVS)})")
    return servers[kind]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("kind", KINDS)
def test_same_as_vtep_ctl(servers: dict[str, RunningServer], kind: str, name: str) -> None:
    assert_same(on(servers, kind), SCENARIOS[name], statuses=True)


@pytest.mark.parametrize("kind", KINDS)
def test_global_row_created_when_missing(servers: dict[str, RunningServer],
                                         kind: str) -> None:
    steps = [*each("list-ps", "list Global", "add-ps a"), *pswitches("a")]
    assert_same(on(servers, kind), steps, with_global=False, statuses=True)


@pytest.mark.parametrize("kind", KINDS)
def test_reply_over_a_megabyte(servers: dict[str, RunningServer], kind: str) -> None:
    """A snapshot larger than the session's read size, after the server check's reply."""
    srv = on(servers, kind)
    reset(srv)
    n = 15000
    ops: list[Any] = ["hardware_vtep",
                      {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
                       "row": {"name": "ls1"}},
                      {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
                       "row": {"dst_ip": "10.1.1.1", "encapsulation_type": "vxlan_over_ipv4"}}]
    ops += [{"op": "insert", "table": "Ucast_Macs_Remote",
             "row": {"MAC": f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}",
                     "logical_switch": ["named-uuid", "ls"], "locator": ["named-uuid", "loc"],
                     "ipaddr": ""}} for i in range(n)]
    with Rpc(str(srv.sock)) as rpc:
        reply = rpc.call("transact", ops)
        assert all("error" not in r for r in reply["result"]), reply["result"][-1]
    ref = run_tool(srv, "vtep-ctl", ["list-remote-macs", "ls1"], raw=True)
    assert run_tool(srv, "hwvtep", ["list-remote-macs", "ls1"], raw=True) == ref
    assert ref[2] == 0 and ref[0].count(" -> vxlan_over_ipv4/10.1.1.1\n") == n
    reset(srv)


def test_connection_failure(servers: dict[str, RunningServer], tmp_path: Path) -> None:
    for db in (f"unix:{tmp_path}/nonexistent", "tcp:127.0.0.1:1", "foo:bar"):
        ref = subprocess.run(["vtep-ctl", f"--db={db}", "list-ps"], capture_output=True,
                             text=True, timeout=30)
        ours = subprocess.run([HWVTEP, "ctl", f"--db={db}", "list-ps"], capture_output=True,
                              text=True, timeout=30)
        assert (ours.stdout, ours.stderr, ours.returncode) == (
            ref.stdout, ref.stderr, ref.returncode)


@pytest.mark.parametrize("kind", ["hwvtep", "ovs"])
def test_server_without_the_database(kind: str, short_tmp: Path) -> None:
    """A server that does not serve hardware_vtep is refused after its _Server row, as
    vtep-ctl's IDL refuses it (the reason only at -vovsdb_cs:info)."""
    if kind == "ovs" and MISSING_OVS:
        pytest.skip(f"Open vSwitch is not installed (missing: {', '.join(MISSING_OVS)})")
    srv = start_server(kind, short_tmp, VSWITCH_SCHEMA)
    try:
        for args in (["list-ps"], ["add-ls", "x"], ["-vovsdb_cs:info", "list-ps"]):
            ref = run_tool(srv, "vtep-ctl", args)
            assert run_tool(srv, "hwvtep", args) == ref, args
            assert ref[2] == 1 and ref[1].endswith(": database connection failed ()\n"), ref
        assert "server does not have hardware_vtep database" in ref[1]
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_default_db_from_ovs_rundir(servers: dict[str, RunningServer], kind: str) -> None:
    """Without --db both tools use unix:$OVS_RUNDIR/db.sock (the servers' dir has one)."""
    srv = on(servers, kind)
    reset(srv)
    for tool in (["vtep-ctl"], [HWVTEP, "ctl"]):
        cp = subprocess.run([*tool, "add-ls", "x", "--", "list-ls"], capture_output=True,
                            text=True, env=srv.env, timeout=30)
        assert (cp.stdout, cp.stderr, cp.returncode) == ("x\n", "", 0)
        reset(srv)


def test_hwvtep_db_variable(servers: dict[str, RunningServer], tmp_path: Path) -> None:
    srv = servers["hwvtep"]
    reset(srv)
    env = dict(srv.env, OVS_RUNDIR=str(tmp_path), HWVTEP_DB=srv.unix)
    cp = subprocess.run([HWVTEP, "ctl", "add-ls", "y", "--", "list-ls"], capture_output=True,
                        text=True, env=env, timeout=30)
    assert (cp.stdout, cp.stderr, cp.returncode) == ("y\n", "", 0)
