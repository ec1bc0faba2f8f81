"""How long `hwvtep lab up` and `down` take for the reference walkthrough topology.

Targets: up <= 3 s, down <= 2 s, with server2's `hwvtep ovsdb-server` and `hwvtep agent`
started (up returns once the database answers and the agent has registered its switch)
and stopped. Measures the library calls (what the CLI does after its imports) and, once,
the whole `hwvtep lab up` / `down` commands including Python start-up. Also checks the
lab works (controller -> server2 through the router, the switch registered in server2's
database) so a fast but broken `up` does not pass, and runs `hwvtep lab walkthrough` once
to report the time from each attach transaction to the first ping reply.

Run as root: ``.venv/bin/python benchmarks/lab_bench.py [--rounds N]``. Every lab gets a
name unique to this run, under a temporary state directory, and is removed even on
failure.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from hwvtep.lab import icmp, netns
from hwvtep.lab import state as st
from hwvtep.lab.topology import parse

UP_TARGET, DOWN_TARGET = 3.0, 2.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("lab_bench: needs root (network namespaces)", file=sys.stderr)
        return 2
    source = (resources.files("hwvtep.lab") / "examples" / "walkthrough.yaml").read_text()
    with tempfile.TemporaryDirectory(prefix="hwvtep-lab-bench-") as tmp:
        root = Path(tmp) / "labs"
        ups: list[float] = []
        reups: list[float] = []
        downs: list[float] = []
        try:
            for i in range(args.rounds):
                name = f"bench{secrets.token_hex(3)}"
                text = source.replace("name: walkthrough", f"name: {name}")
                path = Path(tmp) / f"{name}.yaml"
                path.write_text(text)
                t0 = time.perf_counter()
                topo = parse(text, str(path))
                result = netns.up(topo, text, root=root)
                ups.append(time.perf_counter() - t0)
                if i == 0:
                    reached = icmp.ping(result.state.namespace("controller"),
                                        ipaddress.ip_address("172.16.2.1"), count=1)
                    if not reached.ok:
                        print("lab_bench: controller cannot reach server2", file=sys.stderr)
                        return 1
                    ports = subprocess.run(
                        netns.exec_argv(result.state, "server2", ["hwvtep", "ctl", "list-ports",
                                                                 "s2"]),
                        env={**os.environ, **netns.node_env(result.state, "server2")},
                        capture_output=True, text=True, check=False).stdout.split()
                    if ports != ["s2-eth1", "s2-eth2"]:
                        print(f"lab_bench: s2's ports are {ports}", file=sys.stderr)
                        return 1
                t0 = time.perf_counter()
                netns.up(topo, text, root=root)
                reups.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                netns.down(result.state)
                downs.append(time.perf_counter() - t0)

            # the whole commands once, as a user runs them
            name = f"bench{secrets.token_hex(3)}"
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(source.replace("name: walkthrough", f"name: {name}"))
            env = {**os.environ, "HWVTEP_LAB_DIR": str(root)}
            hwvtep = str(Path(sys.executable).with_name("hwvtep"))
            t0 = time.perf_counter()
            subprocess.run([hwvtep, "lab", "up", "-q", str(path)], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            cli_up = time.perf_counter() - t0
            t0 = time.perf_counter()
            subprocess.run([hwvtep, "lab", "down", name], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            cli_down = time.perf_counter() - t0

            # the walkthrough once: its own figures
            t0 = time.perf_counter()
            walk = subprocess.run([hwvtep, "lab", "walkthrough", str(path)], env=env,
                                  capture_output=True, text=True, check=False)
            walk_s = time.perf_counter() - t0
            if walk.returncode != 0:
                print(walk.stdout[-3000:] + walk.stderr, file=sys.stderr)
                print("lab_bench: the walkthrough failed", file=sys.stderr)
                return 1
            replies = re.findall(r"^  (\S+ -> \S+: first reply .*)$", walk.stdout, re.M)
            subprocess.run([hwvtep, "lab", "down", name], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        finally:
            for state in st.list_labs(root):
                netns.down(state)

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.3f} s, max {max(xs):.3f} s"

    nodes, links = len(topo.nodes), len(topo.links)
    print(f"walkthrough topology: {nodes} namespaces, {links} veth pairs, 2 VXLAN segments; "
          f"{args.rounds} rounds")
    print(f"up      (library): {fmt(ups)}   target <= {UP_TARGET} s")
    print(f"re-up   (library): {fmt(reups)}   (idempotent: nothing to create)")
    print(f"down    (library): {fmt(downs)}   target <= {DOWN_TARGET} s")
    print(f"hwvtep lab up   (command, with Python start-up): {cli_up:.3f} s")
    print(f"hwvtep lab down (command, with Python start-up): {cli_down:.3f} s")
    print(f"hwvtep lab walkthrough (command, up included): {walk_s:.3f} s")
    for line in replies:
        print(f"  {line}")
    ok = max(ups) <= UP_TARGET and max(downs) <= DOWN_TARGET and cli_up <= UP_TARGET \
        and cli_down <= DOWN_TARGET
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
