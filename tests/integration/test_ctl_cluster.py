"""`hwvtep ctl` and vtep-ctl on a 3-node Open vSwitch Raft cluster.

vtep-ctl's IDL is leader-only: given several remotes it tries each once and keeps the one
whose ``_Server`` row says it is the connected cluster leader; with none (a follower on
its own, followers only) it fails at once with "database connection failed ()". Both
tools run here with the followers listed first; each member logs the requests it
receives, so the test sees which server got each tool's write.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest
from srvhelp import HWVTEP
from test_client_cluster import Member, cluster, wait_leader  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.ovs,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("vtep-ctl") is None,
                       reason="Open vSwitch is not installed (missing: vtep-ctl)"),
]

TOOLS = {"vtep-ctl": ["vtep-ctl", "-vreconnect:emer"], "hwvtep": [HWVTEP, "ctl"]}
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT[\d:]+Z\|\d+\|", re.M)


def run(tool: str, db: str, *args: str) -> tuple[str, str, int]:
    cp = subprocess.run([*TOOLS[tool], "-t", "10", f"--db={db}", *args],
                        capture_output=True, text=True, timeout=30)
    return cp.stdout, cp.stderr, cp.returncode


def log_requests(members: list[Member]) -> None:
    for m in members:
        subprocess.run(["ovs-appctl", "-t", str(m.ctl), "vlog/set", "jsonrpc:file:dbg"],
                       check=True, capture_output=True, env=m.env(), timeout=10)


def transacts_naming(m: Member, name: str) -> int:
    """How many "transact" requests that mention *name* a member received."""
    text = (m.dir / f"{m.name}.log").read_text()
    return sum(1 for line in text.splitlines()
               if 'received request, method="transact"' in line and f'"{name}"' in line)


def test_writes_go_to_the_leader_with_followers_listed_first(
        cluster: list[Member]) -> None:  # noqa: F811
    leader = wait_leader(cluster)
    followers = [m for m in cluster if m is not leader]
    db = ",".join(m.tcp for m in [*followers, leader])
    log_requests(cluster)

    # Each tool writes its own switch: no error, nothing printed.
    for tool in TOOLS:
        assert run(tool, db, "add-ls", f"from-{tool}") == ("", "", 0), tool
    # Both see both writes, and print them alike.
    outputs = {tool: run(tool, db, "list-ls") for tool in TOOLS}
    assert outputs["hwvtep"] == outputs["vtep-ctl"] == ("from-hwvtep\nfrom-vtep-ctl\n", "", 0)

    # The writes reached the leader from the tools themselves (a follower would have
    # forwarded them over Raft, logged as "append_request", not as a "transact").
    deadline = time.monotonic() + 10
    while True:
        counts = {(m.name, tool): transacts_naming(m, f"from-{tool}")
                  for m in cluster for tool in TOOLS}
        if all(counts[leader.name, tool] for tool in TOOLS) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for tool in TOOLS:
        assert counts[leader.name, tool] >= 1, (tool, counts)
        assert all(counts[m.name, tool] == 0 for m in followers), (tool, counts)


def test_followers_alone_fail_like_vtep_ctl(cluster: list[Member]) -> None:  # noqa: F811
    leader = wait_leader(cluster)
    followers = [m for m in cluster if m is not leader]
    for db in (followers[0].tcp, f"unix:{followers[1].sock}",
               ",".join(m.tcp for m in followers)):
        expected = ("", f"vtep-ctl: {db}: database connection failed ()\n", 1)
        for tool in TOOLS:
            assert run(tool, db, "list-ps") == expected, (tool, db)
            assert run(tool, db, "add-ls", "never") == expected, (tool, db)
        # With the IDL's messages shown: the same reasons (vtep-ctl tries the remotes in
        # random order, hence sorted).
        logged = {}
        for tool in TOOLS:
            out, err, rc = run(tool, db, "-vovsdb_cs:info", "list-ps")
            logged[tool] = (out, sorted(_LOG_PREFIX.sub("", err).splitlines()), rc)
        assert logged["hwvtep"] == logged["vtep-ctl"], db
        assert logged["hwvtep"][1][0].startswith("ovsdb_cs|INFO|"), logged
        assert "is not cluster leader" in logged["hwvtep"][1][0], logged
    # Nothing was written anywhere.
    assert run("vtep-ctl", leader.tcp, "list-ls") == ("", "", 0)
