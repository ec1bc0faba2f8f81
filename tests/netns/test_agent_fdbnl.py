"""The bulk fdb socket against a real kernel, checked with iproute2's `bridge fdb show`.

Proven: append/replace/del mean what `bridge fdb append|replace|del ... dst` mean on a
vxlan device (several remotes per all-zero entry, replace moves a unicast MAC), errors
come back per request in order (ENOENT, ENODEV) without stopping the batch, a
batch larger than one send works, and the dump reads the same entries iproute2 shows.
"""

from __future__ import annotations

import asyncio
import errno

import pytest
from nshelp import Namespaces

from hwvtep.agent.fdbnl import FdbRequest, FdbSocket
from hwvtep.agent.linux import LinuxDataPlane
from hwvtep.agent.plan import FdbAppend, FdbDelete, FdbReplace

pytestmark = pytest.mark.netns


def vxlan_ns(netns: Namespaces) -> tuple[str, int]:
    ns = netns.make("fdb")
    netns.ip(ns, "link", "add", "vx1", "type", "vxlan", "id", "42", "local", "10.0.0.1",
             "dstport", "4789", "nolearning")  # fmt: skip
    out = netns.ip(ns, "-o", "link", "show", "vx1").stdout
    return ns, int(out.split(":")[0])


def shown(netns: Namespaces, ns: str) -> set[tuple[str, str]]:
    out = netns.exec(ns, "bridge", "fdb", "show", "dev", "vx1").stdout
    entries = set()
    for line in out.splitlines():
        w = line.split()
        if "dst" in w:
            entries.add((w[0], w[w.index("dst") + 1]))
    return entries


def test_requests_mean_what_iproute2_means(netns: Namespaces) -> None:
    ns, ifindex = vxlan_ns(netns)
    sock = FdbSocket(ns)
    try:
        zero, mac = "00:00:00:00:00:00", "02:00:00:00:00:01"
        codes = sock.run([
            FdbRequest("append", ifindex, zero, "10.0.0.2"),
            FdbRequest("append", ifindex, zero, "10.0.0.3"),
            FdbRequest("append", ifindex, mac, "10.0.0.2"),
            FdbRequest("append", ifindex, mac, "10.0.0.2"),  # again: the kernel says fine
            FdbRequest("del", ifindex, "02:00:00:00:00:99", "10.0.0.2"),  # absent: ENOENT
            FdbRequest("append", 999999, mac, "10.0.0.2"),  # no such device
            FdbRequest("replace", ifindex, mac, "10.0.0.4"),
            FdbRequest("del", ifindex, zero, "10.0.0.3"),
        ])  # fmt: skip
        assert codes[:4] == [0, 0, 0, 0]
        assert codes[4] == errno.ENOENT
        assert codes[5] in (errno.ENODEV, errno.EINVAL)
        assert codes[6:] == [0, 0]
        assert shown(netns, ns) == {(zero, "10.0.0.2"), (mac, "10.0.0.4")}
        dumped = {(e["NDA_LLADDR"], e["NDA_DST"]) for e in sock.dump() if e["ifindex"] == ifindex}
        assert dumped == shown(netns, ns)
    finally:
        sock.close()


def test_large_batches_and_dumps(netns: Namespaces) -> None:
    ns, ifindex = vxlan_ns(netns)
    sock = FdbSocket(ns)
    try:
        macs = [f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}" for i in range(3000)]
        assert sock.run([FdbRequest("append", ifindex, m, "10.0.0.2") for m in macs]) == [0] * 3000
        dumped = [e for e in sock.dump() if e["ifindex"] == ifindex and e.get("NDA_DST")]
        assert len(dumped) == 3000 and len(shown(netns, ns)) == 3000
        assert sock.run([FdbRequest("del", ifindex, m, "10.0.0.2") for m in macs]) == [0] * 3000
        assert shown(netns, ns) == set()
    finally:
        sock.close()


def test_data_plane_apply_keeps_per_operation_outcomes(netns: Namespaces) -> None:
    ns, _ = vxlan_ns(netns)
    # vx1 is not one of ours, but fdb operations only need the device to exist

    async def go() -> list[object]:
        async with await LinuxDataPlane.open(ns) as dp:
            return list(
                await dp.apply(
                    [
                        FdbAppend("vx1", "02:00:00:00:00:01", "10.0.0.2"),
                        FdbAppend("vx1", "02:00:00:00:00:01", "10.0.0.2"),  # benign EEXIST
                        FdbDelete("vx1", "02:00:00:00:00:02", "10.0.0.2"),  # benign ENOENT
                        FdbDelete("gone", "02:00:00:00:00:02", "10.0.0.2"),  # benign: no device
                        FdbAppend("gone", "02:00:00:00:00:03", "10.0.0.2"),  # refused
                        FdbReplace("vx1", "02:00:00:00:00:01", "10.0.0.5"),
                    ]
                )
            )

    failures = asyncio.run(go())
    assert [(type(f.op).__name__, f.op.dev, f.errno) for f in failures] == [  # type: ignore[attr-defined]
        ("FdbAppend", "gone", errno.ENODEV)
    ]
    assert shown(netns, ns) == {("02:00:00:00:00:01", "10.0.0.5")}
