"""How long `hwvtep lab up` and `down` take for the reference walkthrough topology.

Targets: up <= 3 s, down <= 2 s (they will later include starting and stopping the hwvtep
daemons). Measures the library calls (what the CLI does after its imports) and, once, the
whole `hwvtep lab up` / `down` commands including Python start-up. Also checks the
overlay's static half works (controller -> server2 through the router) so a fast but
broken `up` does not pass.

Run as root: ``.venv/bin/python benchmarks/lab_bench.py [--rounds N]``. Every lab gets a
name unique to this run, under a temporary state directory, and is removed even on
failure.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
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
    ok = max(ups) <= UP_TARGET and max(downs) <= DOWN_TARGET and cli_up <= UP_TARGET \
        and cli_down <= DOWN_TARGET
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
