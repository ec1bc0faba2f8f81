"""How fast the agent turns hardware_vtep changes into kernel state, and what it costs.

Figures (targets in brackets):

* convergence latency, from sending a transaction that adds one remote MAC to the
  moment the kernel announces the vxlan fdb entry (a netlink event seen in the VTEP's
  namespace): p50 [<= 10 ms] and p99 [<= 50 ms] over N changes (default 1,000, the MACs
  accumulate in the database); the same for removing them again;
* the same for a binding: from sending a transaction that binds port p2 (VLAN 0) to a
  logical switch already realised on p1, to the netlink link event that shows p2 with
  that switch's bridge as master: p50 [<= 10 ms] and p99 [<= 50 ms] over N changes
  (--binding-changes, default 200); then the binding is removed again, timed to the
  event that shows p2 without a master;
* the walkthrough's attach (one transaction: logical switch with its key, port binding,
  the peer's MAC) to the first reply of a ping that was already running: the median over
  --attach-runs runs (default 10, detached in between), next to ovs-vtep's 0.88 s median
  as issue 5 reports it (quoted, not measured by this run);
* 100,000 remote MACs in one transaction until the agent has programmed them [<= 10 s],
  split into the server's commit and the agent's part, and the agent's RSS [<= 300 MB];
* iperf3 TCP throughput between hosts behind two hwvtep VTEPs, against the same path
  built by hand with iproute2 [ratio >= 0.9].

Run as root: ``.venv/bin/python benchmarks/agent_bench.py [--changes N]
[--binding-changes N] [--macs N]``.
Everything lives in namespaces named for this run and is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "netns"))

from agenthelp import Lab, Vtep, wait_until
from nshelp import Namespaces

from hwvtep.agent.fdbnl import FdbSocket
from hwvtep.agent.linux import FdbEvent, LinkEvent, NetlinkWatcher

RED = 5000
IP2 = "192.168.10.2"
# ovs-vtep's median from a controller's transact to the first ping reply, as measured and
# reported in issue 5 (max 1.2 s). Not re-measured here: ovs-vtep needs ovs-vswitchd
# forwarding between the namespaces, which this benchmark does not set up.
OVS_VTEP_MEDIAN_S = 0.88


class Rpc:
    """A persistent raw JSON-RPC connection (so latency does not include connecting)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.dec = json.JSONDecoder()
        self.next_id = 0

    def send(self, method: str, params: list[Any]) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        self.sock.sendall(json.dumps(msg).encode())
        return self.next_id

    def wait(self, rid: int) -> Any:
        while True:
            text = self.buf.decode().lstrip()
            while text:
                try:
                    msg, end = self.dec.raw_decode(text)
                except ValueError:
                    break
                text = text[end:].lstrip()
                self.buf = text.encode()
                if msg.get("method") == "echo":
                    self.sock.sendall(json.dumps({"id": msg["id"], "result": msg["params"],
                                                  "error": None}).encode())  # fmt: skip
                if msg.get("id") == rid and "result" in msg:
                    if msg.get("error"):
                        raise RuntimeError(msg["error"])
                    return msg["result"]
            chunk = self.sock.recv(1 << 22)
            if not chunk:
                raise ConnectionError("server closed")
            self.buf += chunk

    def transact(self, *ops: dict[str, Any]) -> list[Any]:
        result = self.wait(self.send("transact", ["hardware_vtep", *ops]))
        bad = [r for r in result if isinstance(r, dict) and "error" in r]
        if bad:
            raise RuntimeError(f"transaction failed: {bad}")
        return list(result)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def mac_of(i: int) -> str:
    b = i.to_bytes(4, "big")
    return "02:aa:" + b.hex(":")


def setup_red(v: Vtep) -> tuple[str, str]:
    """Logical switch red on p1 of `v` and a locator toward 10.99.0.2; their uuids."""
    v.ctl("add-ls", "red", "--", "set", "Logical_Switch", "red", f"tunnel_key={RED}")
    v.ctl("bind-ls", v.name, "p1", "0", "red")
    v.ctl("add-mcast-remote", "red", "unknown-dst", "10.99.0.2")
    ls = next(r["_uuid"][1] for r in v.dump("Logical_Switch") if r["name"] == "red")
    loc = next(r["_uuid"][1] for r in v.dump("Physical_Locator") if r["dst_ip"] == "10.99.0.2")
    return ls, loc


def wait_event(watcher: NetlinkWatcher, wanted: Callable[[object], bool], timeout: float,
               what: str) -> float:  # fmt: skip
    """The moment the watcher reads an event that is `wanted`."""
    deadline = time.perf_counter() + timeout
    while True:
        for ev in watcher.read():
            if wanted(ev):
                return time.perf_counter()
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"no {what}")
        select.select([watcher.fileno()], [], [], left)


def wait_fdb_event(watcher: NetlinkWatcher, mac: str, action: str, timeout: float) -> float:
    return wait_event(
        watcher,
        lambda ev: isinstance(ev, FdbEvent) and ev.mac == mac and ev.action == action
        and bool(ev.dst),
        timeout, f"fdb {action} event for {mac}")  # fmt: skip


def figures(adds: list[float], dels: list[float]) -> dict[str, float]:
    """Percentiles in milliseconds of the add and remove latencies."""
    return {
        "add_p50_ms": pct(adds, 50) * 1000,
        "add_p99_ms": pct(adds, 99) * 1000,
        "add_max_ms": max(adds) * 1000,
        "del_p50_ms": pct(dels, 50) * 1000,
        "del_p99_ms": pct(dels, 99) * 1000,
        "del_max_ms": max(dels) * 1000,
    }


@contextlib.contextmanager
def red_realised(spaces: Namespaces, path: Path) -> Iterator[tuple[Lab, Vtep, str, str, Rpc,
                                                                  NetlinkWatcher]]:  # fmt: skip
    """A two-VTEP lab with red realised on ps1: (lab, ps1, red's uuid, the locator's uuid,
    a raw client of ps1's server, a netlink watcher in ps1's namespace); removed after."""
    lab = Lab(spaces, path)
    try:
        lab.start()
        v = lab["ps1"]
        ls, loc = setup_red(v)
        wait_until(lambda: "hvx5000" in lab.links("ps1"), what="red realised")
        watcher = NetlinkWatcher(v.ns)
        try:
            yield lab, v, ls, loc, Rpc(v.sock), watcher
        finally:
            watcher.close()
    finally:
        lab.close()


def bench_latency(spaces: Namespaces, tmp: Path, changes: int) -> dict[str, float]:
    with red_realised(spaces, tmp / "lat") as (_, _, ls, loc, rpc, watcher):
        adds: list[float] = []
        dels: list[float] = []
        uuids: list[str] = []
        for i in range(changes):
            mac = mac_of(i)
            watcher.read()
            t0 = time.perf_counter()
            rid = rpc.send(
                "transact",
                [
                    "hardware_vtep",
                    {
                        "op": "insert",
                        "table": "Ucast_Macs_Remote",
                        "row": {
                            "MAC": mac,
                            "logical_switch": ["uuid", ls],
                            "locator": ["uuid", loc],
                        },
                    },
                ],
            )
            t1 = wait_fdb_event(watcher, mac, "add", 10)
            adds.append(t1 - t0)
            uuids.append(rpc.wait(rid)[0]["uuid"][1])
            time.sleep(0.002)
        for i, uuid in enumerate(uuids):
            watcher.read()
            t0 = time.perf_counter()
            rid = rpc.send(
                "transact",
                [
                    "hardware_vtep",
                    {
                        "op": "delete",
                        "table": "Ucast_Macs_Remote",
                        "where": [["_uuid", "==", ["uuid", uuid]]],
                    },
                ],
            )
            t1 = wait_fdb_event(watcher, mac_of(i), "del", 10)
            dels.append(t1 - t0)
            rpc.wait(rid)
            time.sleep(0.002)
        return figures(adds, dels)


def wait_master(watcher: NetlinkWatcher, ifname: str, master: int | None,
                timeout: float) -> float:  # fmt: skip
    """The moment a link event shows `ifname` with `master` (None: without one)."""
    return wait_event(
        watcher,
        lambda ev: isinstance(ev, LinkEvent) and ev.action == "add" and ev.ifname == ifname
        and (ev.master or None) == master,
        timeout, f"link event for {ifname} with master {master}")  # fmt: skip


def bench_binding(spaces: Namespaces, tmp: Path, changes: int) -> dict[str, float]:
    """Bind p2 to red (realised on p1 already) and unbind it, `changes` times each."""
    with red_realised(spaces, tmp / "bind") as (lab, v, ls, _, rpc, watcher):
        (p2,) = [r["_uuid"][1] for r in v.dump("Physical_Port") if r["name"] == "p2"]
        bridge = json.loads(lab.spaces.ip(v.ns, "-j", "link", "show", "hvb5000").stdout)
        index = int(bridge[0]["ifindex"])
        on_p2 = [["_uuid", "==", ["uuid", p2]]]
        to_red = ["map", [[0, ["uuid", ls]]]]
        bind = {"op": "mutate", "table": "Physical_Port", "where": on_p2,
                "mutations": [["vlan_bindings", "insert", to_red]]}  # fmt: skip
        unbind = {"op": "mutate", "table": "Physical_Port", "where": on_p2,
                  "mutations": [["vlan_bindings", "delete", ["set", [0]]]]}  # fmt: skip
        adds: list[float] = []
        dels: list[float] = []
        for _ in range(changes):
            for op, master, into in ((bind, index, adds), (unbind, None, dels)):
                watcher.read()
                t0 = time.perf_counter()
                rid = rpc.send("transact", ["hardware_vtep", op])
                t1 = wait_master(watcher, "p2", master, 10)
                into.append(t1 - t0)
                result = rpc.wait(rid)
                if result[0].get("count") != 1:
                    raise RuntimeError(f"binding transaction: {result}")
                # let the agent's report of the change settle, as between MAC changes
                time.sleep(0.005)
        return figures(adds, dels)


def report_latency(add: str, remove: str, changes: int, figs: dict[str, float]) -> bool:
    """Print a latency phase's figures; whether the add side met its targets."""
    print(f"convergence, {add} ({changes} changes): p50 {figs['add_p50_ms']:.2f} ms, "
          f"p99 {figs['add_p99_ms']:.2f} ms, max {figs['add_max_ms']:.1f} ms   "
          "[targets p50 <= 10, p99 <= 50]")  # fmt: skip
    print(f"convergence, {remove}: p50 {figs['del_p50_ms']:.2f} ms, "
          f"p99 {figs['del_p99_ms']:.2f} ms, max {figs['del_max_ms']:.1f} ms")  # fmt: skip
    return figs["add_p50_ms"] <= 10 and figs["add_p99_ms"] <= 50


def bench_attach(spaces: Namespaces, tmp: Path, static_arp: bool, runs: int) -> list[float]:
    """The walkthrough, `runs` times on one lab (detached again in between): ps2 plays the
    hypervisor, already set up (it floods toward ps1 and knows r1's MAC); r2 behind it
    pings r1 behind ps1, which gets one attach transaction naming r2's MAC, as
    attach_red2.json does. With `static_arp` the hosts know each other's MAC beforehand, so
    the figure is the agent's and the data path's alone; without it, it also includes the
    host's ARP retransmission (one second apart). Returns the seconds of each run."""
    lab = Lab(spaces, tmp / "attach")
    try:
        lab.start()
        far = lab["ps2"]
        setup_red(far)  # unknown-dst toward 10.99.0.2 is a no-op there (ourselves)
        far.ctl("add-ucast-remote", "red", lab.mac("r1"), "10.99.0.1")
        far.ctl("add-mcast-remote", "red", "unknown-dst", "10.99.0.1")
        wait_until(lambda: "hvx5000" in lab.links("ps2"), what="far side ready")
        if static_arp:
            for host, ip, peer in (("r1", IP2, "r2"), ("r2", "192.168.10.1", "r1")):
                lab.spaces.ip(lab.hosts[host], "neigh", "replace", ip, "lladdr", lab.mac(peer),
                              "dev", "eth0", "nud", "permanent")  # fmt: skip
        v = lab["ps1"]
        (p1,) = [r["_uuid"][1] for r in v.dump("Physical_Port") if r["name"] == "p1"]
        rpc = Rpc(v.sock)
        on_p1 = [["_uuid", "==", ["uuid", p1]]]
        attach: list[dict[str, Any]] = [
            {"op": "insert", "table": "Logical_Switch", "uuid-name": "ls",
             "row": {"name": "red", "tunnel_key": RED}},
            {"op": "mutate", "table": "Physical_Port", "where": on_p1,
             "mutations": [["vlan_bindings", "insert", ["map", [[0, ["named-uuid", "ls"]]]]]]},
            {"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
             "row": {"dst_ip": "10.99.0.2", "encapsulation_type": "vxlan_over_ipv4"}},
            {"op": "insert", "table": "Ucast_Macs_Remote",
             "row": {"MAC": lab.mac("r2"), "logical_switch": ["named-uuid", "ls"],
                     "locator": ["named-uuid", "loc"]}},
        ]  # fmt: skip
        detach: list[dict[str, Any]] = [
            {"op": "delete", "table": "Ucast_Macs_Remote", "where": []},
            {"op": "delete", "table": "Ucast_Macs_Local", "where": []},  # the agent's rows
            {"op": "delete", "table": "Mcast_Macs_Local", "where": []},
            {"op": "mutate", "table": "Physical_Port", "where": on_p1,
             "mutations": [["vlan_bindings", "delete", ["set", [0]]]]},
            {"op": "delete", "table": "Logical_Switch", "where": []},
        ]  # fmt: skip
        return [_attach_once(lab, rpc, attach, detach, static_arp) for _ in range(runs)]
    finally:
        lab.close()


def _attach_once(lab: Lab, rpc: Rpc, attach: list[dict[str, Any]],
                 detach: list[dict[str, Any]], static_arp: bool) -> float:  # fmt: skip
    if not static_arp:
        lab.spaces.ip(lab.hosts["r2"], "neigh", "flush", "all", check=False)
    ping = subprocess.Popen(
        ["ip", "netns", "exec", lab.hosts["r2"], "ping", "-D", "-i", "0.002", "-W", "5",
         "-c", "3000", "192.168.10.1"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        sent = time.time()
        rpc.transact(*attach)
        deadline = time.monotonic() + 15
        first = None
        assert ping.stdout is not None
        while first is None and time.monotonic() < deadline:
            line = ping.stdout.readline()
            m = re.match(r"\[(\d+\.\d+)\] \d+ bytes from", line)
            if m:
                first = float(m.group(1))
        if first is None:
            raise RuntimeError("no ping reply after the attach")
    finally:
        ping.kill()
        ping.wait()
    rpc.transact(*detach)
    wait_until(lambda: "hvb5000" not in lab.links("ps1"), what="ps1 detached")
    return first - sent


def agent_log_time(line: str) -> float:
    stamp = line.split("|", 1)[0]
    t = time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) - time.timezone + float("0" + stamp[19:-1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_bulk(spaces: Namespaces, tmp: Path, macs: int) -> dict[str, float]:
    lab = Lab(spaces, tmp / "bulk")
    try:
        lab.start()
        v = lab["ps1"]
        ls, loc = setup_red(v)
        wait_until(lambda: "hvx5000" in lab.links("ps1"), what="red realised")
        time.sleep(0.5)
        rpc = Rpc(v.sock)
        ops = [
            {"op": "insert", "table": "Ucast_Macs_Remote",
             "row": {"MAC": mac_of(i), "logical_switch": ["uuid", ls],
                     "locator": ["uuid", loc]}}
            for i in range(macs)
        ]  # fmt: skip
        mark = len(v.agent_log.read_text())
        sent = time.time()
        rpc.transact(*ops)
        committed = time.time()
        pattern = re.compile(r"^(\S+)\|\d+\|agent\|DBG\|applied (\d+) operations", re.M)

        def applied() -> float | None:
            for m in pattern.finditer(v.agent_log.read_text()[mark:]):
                if int(m.group(2)) >= macs:
                    return agent_log_time(m.group(1) + "|")
            return None

        done = wait_until(applied, timeout=120, step=0.05, what="bulk programmed")
        sock = FdbSocket(v.ns)
        try:
            count = sum(1 for e in sock.dump() if e.get("NDA_DST") == "10.99.0.2"
                        and e.get("NDA_LLADDR", "").startswith("02:aa"))  # fmt: skip
        finally:
            sock.close()
        assert v.agent is not None
        time.sleep(1.0)
        return {
            "total_s": done - sent,
            "server_commit_s": committed - sent,
            "programmed": float(count),
            "agent_rss_mb": rss_mb(v.agent.pid),
        }
    finally:
        lab.close()


def iperf(lab: Lab, seconds: int) -> float:
    server = subprocess.Popen(["ip", "netns", "exec", lab.hosts["r2"], "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.5)
        out = subprocess.run(
            ["ip", "netns", "exec", lab.hosts["r1"], "iperf3", "-c", IP2, "-t", str(seconds),
             "-J"],
            capture_output=True, text=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
    finally:
        server.kill()
        server.wait()


def by_hand(lab: Lab) -> None:
    """The same data plane as the agent builds, with iproute2 only."""
    for me, peer in (("ps1", "ps2"), ("ps2", "ps1")):
        ns, tip, far = lab[me].ns, lab[me].tip, lab[peer].tip
        peer_host = "r2" if me == "ps1" else "r1"
        ip = lab.spaces.ip
        ip(ns, "link", "add", "mb5000", "type", "bridge")
        ip(ns, "link", "add", "mx5000", "type", "vxlan", "id", str(RED), "local", tip,
           "dstport", "4789", "nolearning")  # fmt: skip
        ip(ns, "link", "set", "mx5000", "master", "mb5000")
        ip(ns, "link", "set", "p1", "master", "mb5000")
        for dev in ("mb5000", "mx5000"):
            ip(ns, "link", "set", dev, "up")
        lab.spaces.exec(ns, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "mx5000",
                        "dst", far, check=True)  # fmt: skip
        lab.spaces.exec(ns, "bridge", "fdb", "append", lab.mac(peer_host), "dev", "mx5000",
                        "dst", far, check=True)  # fmt: skip


def bench_iperf(spaces: Namespaces, tmp: Path, seconds: int, rounds: int) -> dict[str, float]:
    agent_lab = Lab(spaces, tmp / "iperf-agent")
    other = Namespaces()
    hand_lab = Lab(other, tmp / "iperf-hand")
    try:
        agent_lab.start()
        for me, peer, host in (("ps1", "ps2", "r2"), ("ps2", "ps1", "r1")):
            v = agent_lab[me]
            setup = ("add-ls", "red", "--", "set", "Logical_Switch", "red", f"tunnel_key={RED}")
            v.ctl(*setup)
            v.ctl("bind-ls", me, "p1", "0", "red")
            v.ctl("add-ucast-remote", "red", agent_lab.mac(host), agent_lab[peer].tip)
            v.ctl("add-mcast-remote", "red", "unknown-dst", agent_lab[peer].tip)
        assert agent_lab.ping_soon("r1", IP2)
        by_hand(hand_lab)
        assert hand_lab.ping_soon("r1", IP2)
        ours: list[float] = []
        hand: list[float] = []
        for _ in range(rounds):
            ours.append(iperf(agent_lab, seconds))
            hand.append(iperf(hand_lab, seconds))
        o, h = statistics.median(ours), statistics.median(hand)
        return {"hwvtep_gbps": o / 1e9, "by_hand_gbps": h / 1e9, "ratio": o / h}
    finally:
        agent_lab.close()
        hand_lab.close()
        other.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--binding-changes", type=int, default=200)
    ap.add_argument("--macs", type=int, default=100_000)
    ap.add_argument("--iperf-seconds", type=int, default=3)
    ap.add_argument("--iperf-rounds", type=int, default=5)
    ap.add_argument("--attach-runs", type=int, default=10)
    phases = ["latency", "binding", "attach", "bulk", "iperf"]
    ap.add_argument("--only", choices=phases, action="append")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("agent_bench: needs root (network namespaces)", file=sys.stderr)
        return 2
    only = set(args.only or phases)
    used: list[Namespaces] = []

    def fresh() -> Namespaces:
        used.append(Namespaces())
        return used[-1]

    ok = True
    try:
        with tempfile.TemporaryDirectory(prefix="hwvtep-agent-bench-") as tmpdir:
            tmp = Path(tmpdir)
            if "latency" in only:
                lat = bench_latency(fresh(), tmp, args.changes)
                ok &= report_latency("add remote MAC", "remove remote MAC", args.changes, lat)
            if "binding" in only:
                bnd = bench_binding(fresh(), tmp, args.binding_changes)
                ok &= report_latency("bind a port", "unbind the port", args.binding_changes,
                                     bnd)  # fmt: skip
            if "attach" in only:
                for static_arp, how in ((True, "hosts' ARP entries static"),
                                        (False, "with ARP, retransmitted by the host every "
                                                "second")):  # fmt: skip
                    ts = bench_attach(fresh(), tmp / f"a{int(static_arp)}", static_arp,
                                      args.attach_runs)  # fmt: skip
                    med = statistics.median(ts)
                    print(
                        f"walkthrough attach transact -> first ping reply ({how}): median "
                        f"{med * 1000:.1f} ms, max {max(ts) * 1000:.1f} ms over {len(ts)} "
                        f"runs; ovs-vtep {OVS_VTEP_MEDIAN_S * 1000:.0f} ms / hwvtep = "
                        f"{OVS_VTEP_MEDIAN_S / med:.1f}x"
                    )
                print(f"  (ovs-vtep's {OVS_VTEP_MEDIAN_S} s median is the figure measured in "
                      "issue 5, not measured in this run: see OVS_VTEP_MEDIAN_S)")  # fmt: skip
            if "bulk" in only:
                b = bench_bulk(fresh(), tmp, args.macs)
                print(
                    f"{args.macs} remote MACs in one transaction: programmed in "
                    f"{b['total_s']:.2f} s (server commit {b['server_commit_s']:.2f} s), "
                    f"{int(b['programmed'])} entries in the kernel, agent RSS "
                    f"{b['agent_rss_mb']:.0f} MB   [targets <= 10 s, <= 300 MB]"
                )
                ok &= b["total_s"] <= 10 and b["agent_rss_mb"] <= 300
                ok &= int(b["programmed"]) == args.macs
            if "iperf" in only:
                r = bench_iperf(fresh(), tmp, args.iperf_seconds, args.iperf_rounds)
                print(
                    f"iperf3 TCP r1 -> r2: hwvtep {r['hwvtep_gbps']:.2f} Gbit/s, by hand "
                    f"{r['by_hand_gbps']:.2f} Gbit/s, ratio {r['ratio']:.3f}   "
                    f"[target >= 0.9]"
                )
                ok &= r["ratio"] >= 0.9
    finally:
        errors = [e for spaces in used for e in spaces.cleanup()]
        if errors:
            print(f"cleanup errors: {errors}", file=sys.stderr)
    print("all targets met" if ok else "SOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
