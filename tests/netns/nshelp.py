"""Helpers for the netns tests: namespaces and veths made by a test, and removed by it.

Every namespace is named `hwt<4 hex>-<role>`; veth pairs are created directly inside the
namespaces (never in the caller's), so deleting the namespaces deletes everything a test
made and nothing else.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass
class Namespaces:
    """Creates namespaces and links for one test; `cleanup` removes exactly those."""

    tag: str = field(default_factory=lambda: f"hwt{secrets.token_hex(2)}-")
    created: list[str] = field(default_factory=list)

    def make(self, role: str) -> str:
        name = self.tag + role
        sh("ip", "netns", "add", name)
        self.created.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        """A veth pair with one end in each namespace (created there, never in ours)."""
        if ns_a == ns_b:
            sh("ip", "-n", ns_a, "link", "add", name_a, "type", "veth", "peer", "name", name_b)
        else:
            sh(
                "ip", "-n", ns_a, "link", "add", name_a, "type", "veth",
                "peer", "name", name_b, "netns", ns_b,
            )  # fmt: skip

    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", ns, *args, check=check)

    def up(self, ns: str, dev: str, address: str | None = None) -> None:
        if address is not None:
            self.ip(ns, "addr", "add", address, "dev", dev)
        self.ip(ns, "link", "set", dev, "up")

    def exec(self, ns: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *argv, check=check)

    def mac(self, ns: str, dev: str) -> str:
        out = self.ip(ns, "-o", "link", "show", dev).stdout
        return out.split("link/ether ")[1].split()[0]

    def cleanup(self) -> list[str]:
        errors = []
        for name in reversed(self.created):
            proc = sh("ip", "netns", "del", name, check=False)
            if proc.returncode != 0:
                errors.append(f"{name}: {proc.stderr.strip()}")
        self.created.clear()
        return errors


def kernel_has_8021q(spaces: Namespaces) -> bool:
    """Probe 802.1Q support in a throw-away namespace of the test's own."""
    ns = spaces.make("probe")
    spaces.veth(ns, "pr0", ns, "pr1")
    ok = spaces.ip(ns, "link", "add", "link", "pr0", "name", "pr0.5", "type", "vlan", "id", "5",
                   check=False).returncode == 0  # fmt: skip
    sh("ip", "netns", "del", ns)
    spaces.created.remove(ns)
    return ok


def tear_down_labs(root: Path, leftovers: Callable[[], list[str]]) -> None:
    """Bring down every lab whose state lives under *root* (a failure is reported and the
    rest still go), then delete the namespaces *leftovers* names: the safety net for a lab
    whose state was lost."""
    from hwvtep.lab import netns
    from hwvtep.lab import state as st

    for state in st.list_labs(root):
        try:
            netns.down(state)
        except Exception as exc:  # keep going: the safety net below still runs
            print(f"teardown: down {state.lab} failed: {exc}", file=sys.stderr)
    for name in leftovers():
        subprocess.run(["ip", "netns", "del", name], check=False)
