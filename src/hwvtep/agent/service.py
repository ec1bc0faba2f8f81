"""The running agent: one Physical_Switch kept true on one Linux network namespace.

Event-driven both ways. Database changes arrive as the replica's change batches; kernel
changes as netlink events (links appearing or changing master, fdb entries learned, aged
out or removed by hand). Either marks work to do, and one loop does it:

- *reconcile*: desired state from the replica (`desired.py`), the kernel's state (cached,
  re-read when an event says it moved), `plan`, `apply`; then a report;
- *report*: the switch's rows from what it knows (`report.py`), one transaction;
- *stats*: a report with fresh interface counters, every `stats_interval`;
- *resync*: everything re-read from the kernel, every `resync_interval`, as a safety net.

Nothing touches the kernel before the first complete copy of the database has arrived,
and a lost connection leaves the kernel as it is: forwarding does not depend on the
database being reachable. On start the agent adopts what the kernel holds (its own
devices carry its mark) and only changes the difference, so a restart loses no traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from hwvtep.agent.desired import Desired, compute
from hwvtep.agent.linux import FdbEvent, LinkEvent, LinuxDataPlane, NetlinkWatcher, OpFailure
from hwvtep.agent.model import (
    VIA_8021Q,
    Binding,
    FdbEntry,
    LearnedMac,
    ModelError,
    Naming,
    NodeState,
)
from hwvtep.agent.plan import (
    CreateBridge,
    CreateVlan,
    CreateVxlan,
    FdbAppend,
    FdbDelete,
    FdbReplace,
    Op,
    blocked,
    plan,
)
from hwvtep.agent.report import Observed, report
from hwvtep.client.errors import ClientError
from hwvtep.client.replica import ChangeStream, Replica

log = logging.getLogger("hwvtep.agent")

DB = "hardware_vtep"
# What the agent replicates: the tables it reads or writes, and of the big ones only the
# columns it uses (a switch may carry 100,000 remote MACs).
MONITOR: dict[str, list[str] | None] = {
    "Global": ["switches"],
    "Physical_Switch": None,
    "Physical_Port": None,
    "Logical_Switch": ["name", "tunnel_key", "replication_mode"],
    "Ucast_Macs_Remote": ["MAC", "logical_switch", "locator"],
    "Mcast_Macs_Remote": ["MAC", "logical_switch", "locator_set"],
    "Ucast_Macs_Local": ["MAC", "logical_switch", "locator"],
    "Mcast_Macs_Local": ["MAC", "logical_switch", "locator_set"],
    "Physical_Locator_Set": None,
    "Physical_Locator": None,
    "Tunnel": None,
    "Logical_Binding_Stats": None,
}
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Settings:
    ps_name: str
    prefix: str = "hv"
    ports: tuple[str, ...] = ()
    resync_interval: float = 60.0
    stats_interval: float = 5.0
    retry_interval: float = 1.0


class Agent:
    """See the module docstring. `run()` until `stop()`; `cleanup()` undoes it all."""

    def __init__(self, replica: Replica, dp: LinuxDataPlane, settings: Settings) -> None:
        self.replica = replica
        self.dp = dp
        self.settings = settings
        self.naming = Naming(settings.prefix)
        self.vlan_support = True
        self.vlan_via: str | None = None
        self.desired: Desired | None = None
        self.actual: NodeState | None = None
        self.learned: set[LearnedMac] = set()
        self.failed: dict[Binding, str] = {}
        self.former_ips: set[str] = set()
        self.logged: set[str] = set()
        self.problems: dict[str, str] = {}
        self.op_notes: set[str] = set()
        self.watcher: NetlinkWatcher | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._need_plan = True
        self._kernel_stale = True
        self._need_report = True
        self._changes: ChangeStream | None = None
        self._last_stats = 0.0
        self._last_resync = 0.0
        self._asked: frozenset[str] = frozenset()
        self.reconciles = 0
        self.reports = 0

    # -- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def open(self) -> None:
        """Open the kernel sockets (before any signal handler is installed: opening one in
        another namespace forks, and a child sharing asyncio's signal wake-up fd could
        make the loop see a signal that was not ours)."""
        if self.watcher is None:
            self.watcher = await self.dp.watch()
        _ = self.dp.bulk
        if self.vlan_via is None:
            via, why = self.dp.tagging(self.settings.prefix)
            if via is None:
                log.warning("%s: tagged bindings are reported as invalid_vlan_map", why)
                self.vlan_support = False
            elif why:
                log.info("%s", why)
            self.vlan_via = via or VIA_8021Q

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.open()
        assert self.watcher is not None
        loop.add_reader(self.watcher.fileno(), self._on_netlink)
        self._changes = self.replica.changes()
        pump = asyncio.create_task(self._pump_changes(self._changes))
        try:
            await self._first_sync()
            while not self._stopping:
                await self._step()
                await self._sleep()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._changes.close()
            loop.remove_reader(self.watcher.fileno())
            self.watcher.close()

    async def _first_sync(self) -> None:
        while not self._stopping and not self.replica.synced:
            log.info("waiting for the database")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 5.0)
        if not self._stopping:
            log.info("database copy received; taking over the data plane")

    async def _pump_changes(self, stream: ChangeStream) -> None:
        while True:
            try:
                async for changes in stream:
                    del changes
                    self._need_plan = True
                    self._wake.set()
            except ClientError as e:
                self._note("replica", f"database replica: {e}")
                await asyncio.sleep(self.settings.retry_interval)
                continue
            return

    async def _sleep(self) -> None:
        if self._stopping or self._wake.is_set():
            self._wake.clear()
            return
        now = time.monotonic()
        deadline = min(
            self._last_stats + self.settings.stats_interval,
            self._last_resync + self.settings.resync_interval,
        )
        if self._need_report:
            deadline = min(deadline, now + self.settings.retry_interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - now))
        self._wake.clear()

    async def _step(self) -> None:
        now = time.monotonic()
        stats = now - self._last_stats >= self.settings.stats_interval
        if now - self._last_resync >= self.settings.resync_interval:
            self._last_resync = now
            self._kernel_stale = self._need_plan = True
        if self._need_plan or self._kernel_stale:
            await self.reconcile()
        if stats:
            self._last_stats = now
        if self._need_report or stats:
            await self.report(stats=stats)

    # -- events from the kernel --------------------------------------------------------

    def _on_netlink(self) -> None:
        assert self.watcher is not None
        try:
            events = self.watcher.read()
        except OSError as e:
            self._note("netlink", f"netlink events: {e}")
            events = []
            self._kernel_stale = True
        for ev in events:
            if isinstance(ev, FdbEvent):
                self._on_fdb(ev)
            elif isinstance(ev, LinkEvent):
                self._kernel_stale = self._need_plan = True
                if self._names_a_port(ev.ifname):
                    # a port that comes or goes may change no kernel object, yet its
                    # Physical_Port row must follow now, not at the next stats report
                    self._need_report = True
            else:  # Overflow: we missed some
                self._kernel_stale = self._need_plan = True
        if events:
            self._wake.set()

    def _on_fdb(self, ev: FdbEvent) -> None:
        assert self.watcher is not None
        if ev.learned:
            bridge = self.watcher.names.get(ev.master or 0)
            if (
                bridge is None
                or ev.ifname is None
                or self.naming.vni_of_bridge(bridge) is None
                or self.naming.vni_of_vxlan(ev.ifname) is not None
            ):
                return
            lm = LearnedMac(bridge, ev.ifname, ev.mac)
            if ev.action == "add":
                if lm not in self.learned:
                    self.learned.add(lm)
                    self._need_report = True
            elif lm in self.learned:
                self.learned.discard(lm)
                self._need_report = True
            return
        if ev.dst is None or ev.ifname is None or self.naming.vni_of_vxlan(ev.ifname) is None:
            return
        # Our own fdb changes come back as events: only a surprise means the kernel moved.
        try:
            entry = FdbEntry(ev.ifname, ev.mac, ev.dst)
        except ModelError:
            return
        actual = self.actual
        if actual is None or (ev.action == "add") != (entry in actual.fdb):
            self._kernel_stale = self._need_plan = True

    # -- reconcile ---------------------------------------------------------------------

    def _names_a_port(self, name: str) -> bool:
        return not self.naming.owns_name(name) and any(
            fnmatch.fnmatchcase(name, p) for p in self.settings.ports
        )

    def served_ports(self) -> tuple[frozenset[str], frozenset[str]]:
        """(ports to serve, links present): explicit names, and pattern matches that exist."""
        assert self.watcher is not None
        present = frozenset(self.watcher.names.values())
        serve = set()
        ours = {v.name for v in self.actual.vlans} if self.actual is not None else set()
        for pattern in self.settings.ports:
            if not GLOB_CHARS.intersection(pattern):
                serve.add(pattern)
                continue
            serve.update(
                name
                for name in present
                if fnmatch.fnmatchcase(name, pattern)
                and name != "lo"
                and name not in ours
                and not self.naming.owns_name(name)
            )
        return frozenset(serve), present

    async def reconcile(self) -> None:
        self.reconciles += 1
        self._need_plan = False
        tables = self.replica.tables
        desired = compute(tables, self.settings.ps_name, self.settings.prefix,
                          vlan_support=self.vlan_support,
                          vlan_via=self.vlan_via or VIA_8021Q)  # fmt: skip
        if self.desired is not None and self.desired.tunnel_ips != desired.tunnel_ips:
            self.former_ips.update(self.desired.tunnel_ips - desired.tunnel_ips)
            self._need_report = True
        if self.desired is None or _report_relevant(self.desired, desired):
            self._need_report = True
        self.desired = desired
        self._log_problems(desired)
        serve, _ = self.served_ports()
        interest = serve | {p.name for p in desired.state.ports}
        if self._kernel_stale or self.actual is None or not interest <= self._asked:
            await self._read_kernel(interest)
        assert self.actual is not None
        ops = plan(desired.state, self.actual)
        if not ops:
            if self.failed or self.op_notes:
                self.failed, self.op_notes = {}, set()
                self._need_report = True
            return
        log.debug("applying %d operations", len(ops))
        started = time.monotonic()
        failures = await self.dp.apply(ops)
        log.debug("applied %d operations in %.1f ms (%d refused)",
                  len(ops), (time.monotonic() - started) * 1000, len(failures))  # fmt: skip
        if any(_no_8021q(f) for f in failures) and self.vlan_support:
            log.warning("this kernel has no 802.1Q support: tagged bindings are reported "
                        "as invalid_vlan_map")  # fmt: skip
            self.vlan_support = False
            self._kernel_stale = True
            await self.reconcile()  # once more, without the tagged bindings
            return
        self._record_failures(desired, failures)
        self._need_report = True
        if all(isinstance(op, FdbAppend | FdbReplace | FdbDelete) for op in ops) and not failures:
            self.actual = _with_fdb_ops(self.actual, ops)
        else:
            await self._read_kernel(interest)

    async def _read_kernel(self, interest: Iterable[str]) -> None:
        self._asked = frozenset(interest)
        actual = await self.dp.read_actual(self.settings.prefix, self._asked)
        self._kernel_stale = False
        if actual.learned != frozenset(self.learned):
            self.learned = set(actual.learned)
            self._need_report = True
        self.actual = replace(actual, learned=frozenset())

    def _record_failures(self, desired: Desired, failures: list[OpFailure]) -> None:
        failed: dict[Binding, str] = {}
        by_vni: dict[int, list[Binding]] = {}
        for b, ls_uuid in desired.bindings.items():
            by_vni.setdefault(desired.switches[ls_uuid].vni, []).append(b)
        vlans = {v.name: Binding(v.port, v.vlan) for v in desired.state.vlans}
        notes: dict[str, str] = {}
        for f in failures:
            op = f.op
            notes[f"{op!r} {f.message}"] = f"kernel refused {_describe(op)}: {f.message}"
            if isinstance(op, FdbAppend | FdbReplace | FdbDelete):
                continue
            name = op.name
            hit: list[Binding] = []
            if isinstance(op, CreateBridge | CreateVxlan):
                vni = self.naming.vni_of_bridge(name)
                if vni is None:
                    vni = self.naming.vni_of_vxlan(name)
                hit = by_vni.get(vni, []) if vni is not None else []
            elif name in vlans:
                hit = [vlans[name]]
            elif Binding(name, 0) in desired.bindings:
                hit = [Binding(name, 0)]
            for b in hit:
                failed[b] = f.message
        for key, message in notes.items():
            if key not in self.op_notes:
                log.warning("%s", message)
        self.op_notes = set(notes)
        self.failed = failed

    def _log_problems(self, desired: Desired) -> None:
        """Log each problem once while it lasts, and when it goes away."""
        now = {p.key: p.message for p in desired.problems}
        for key, message in now.items():
            if key not in self.problems:
                log.warning("%s", message)
        for key, message in self.problems.items():
            if key not in now:
                log.info("resolved: %s", message)
        self.problems = now

    def _note(self, key: str, message: str) -> None:
        """Log a runtime problem once (until its key is discarded from `logged`)."""
        if key not in self.logged:
            self.logged.add(key)
            log.warning("%s", message)

    # -- report ------------------------------------------------------------------------

    async def report(self, *, stats: bool = False) -> None:
        desired, actual = self.desired, self.actual
        if desired is None or actual is None:
            return
        if not self.replica.synced:
            self._need_report = True
            return
        self._need_report = False
        serve, present = self.served_ports()
        state = replace(actual, learned=frozenset(self.learned))
        learned = {b: macs for (_, b), macs in state.learned_by_binding().items()}
        counters = None
        if stats:
            names = {b.ifname: b for b in desired.bindings}
            got = await self.dp.counters(names)
            counters = {names[n]: c for n, c in got.items()}
        observed = Observed(
            serve=serve,
            patterns=tuple(p for p in self.settings.ports if GLOB_CHARS.intersection(p)),
            present=present,
            learned=learned,
            counters=counters,
            blocked=blocked(desired.state, actual),
            failed=self.failed,
            former_ips=frozenset(self.former_ips - desired.tunnel_ips),
        )
        ops = report(self.replica.tables, self.settings.ps_name, desired, observed)
        if not ops:
            self.former_ips.clear()
            return
        self.reports += 1
        log.debug("reporting: %d operations", len(ops))
        if await self._transact(ops):
            log.debug("report committed")

    async def _transact(self, ops: list[dict[str, Any]]) -> bool:
        try:
            result = await self.replica.client.transact_raw([DB, *ops])
        except ClientError as e:
            self._note("transact", f"could not write to the database: {e}")
            self._need_report = True
            return False
        errors = [r for r in result if isinstance(r, dict) and "error" in r]
        if errors or len(result) < len(ops):
            first = errors[0] if errors else {"error": "incomplete result"}
            # a conflict with a concurrent writer is normal: the replica catches up, retry
            log.info("report transaction not committed (%s: %s); retrying",
                     first.get("error"), first.get("details", ""))  # fmt: skip
            self._need_report = True
            return False
        self.logged.discard("transact")
        return True

    # -- cleanup -----------------------------------------------------------------------

    async def cleanup(self) -> None:
        """Remove every device and local row this agent made (on exit with --cleanup)."""
        serve, _ = self.served_ports() if self.watcher is not None else (frozenset(), None)
        desired = self.desired
        ports = serve | ({p.name for p in desired.state.ports} if desired else set())
        actual = await self.dp.read_actual(self.settings.prefix, ports)
        empty = NodeState(self.settings.prefix)
        failures = await self.dp.apply(plan(empty, actual))
        for f in failures:
            log.warning("cleanup: %s: %s", _describe(f.op), f.message)
        if desired is None or not self.replica.synced:
            return
        gone = Desired(
            desired.prefix, desired.ps_uuid, None, desired.tunnel_ips, empty, {}, {}, {}, ()
        )
        names = frozenset(
            str(r.get("name", ("",))[0]) for r in self.replica.tables.get("Physical_Port", {})
            .values()
        )  # fmt: skip
        observed = Observed(present=names, former_ips=frozenset(self.former_ips))
        ops = report(self.replica.tables, self.settings.ps_name, gone, observed)
        if ops:
            await self._transact(ops)


def _report_relevant(old: Desired, new: Desired) -> bool:
    return (
        old.bindings != new.bindings
        or old.problems != new.problems
        or old.remotes() != new.remotes()
        or old.ports != new.ports
        or old.local_ip != new.local_ip
        or old.ps_uuid != new.ps_uuid
    )


def _no_8021q(f: OpFailure) -> bool:
    return isinstance(f.op, CreateVlan) and f.errno == errno.EOPNOTSUPP


def _describe(op: Op) -> str:
    return f"{type(op).__name__} {getattr(op, 'name', '') or getattr(op, 'dev', '')}".strip()


def _with_fdb_ops(state: NodeState, ops: list[Op]) -> NodeState:
    """`state` after fdb operations that all succeeded (saves re-reading the kernel)."""
    fdb = set(state.fdb)
    replaced = {(op.dev, op.mac) for op in ops if isinstance(op, FdbReplace)}
    if replaced:
        fdb = {e for e in fdb if (e.dev, e.mac) not in replaced}
    for op in ops:
        assert isinstance(op, FdbAppend | FdbReplace | FdbDelete)
        entry = FdbEntry(op.dev, op.mac, op.dst)
        if isinstance(op, FdbDelete):
            fdb.discard(entry)
        else:
            fdb.add(entry)
    return replace(state, fdb=frozenset(fdb))
