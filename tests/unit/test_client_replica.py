"""ReplicaCore and SessionCore against our server's sans-IO core, on a fake wire with
hand-driven time: initial copy, every kind of update, fallback to older monitor methods,
conditions, and resynchronisation after a lost connection without losing or repeating a
change (whether the server still has our last transaction in its history or not).

The harness does what :class:`hwvtep.client.replica.Replica` does with asyncio: on Ready
send the core's calls, route answers back by tag, hand notifications over, and on Lost
tell the core.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from hwvtep.client.remote import parse_remote
from hwvtep.client.replica import ReplicaCore
from hwvtep.client.session import Lost, Ready, SessionCore
from hwvtep.client.txn import Txn
from hwvtep.ovsdb.database import Changes, Database, Row
from hwvtep.ovsdb.jsonrpc import Connection, Error, Message, Notification, Reply, Request, encode
from hwvtep.ovsdb.schema import bundled_schema
from hwvtep.server.core import ServerCore

SCHEMA = bundled_schema("hardware_vtep")
DB = "hardware_vtep"
Tables = dict[str, dict[str, Row]]


class ServerLink:
    """One connection as the server core sees it; requests for ``unknown`` methods are
    refused the way a server without them refuses them."""

    def __init__(self, server: ServerCore, unknown: frozenset[str] = frozenset()) -> None:
        self.server = server
        self.unknown = unknown
        self.parser = Connection()
        self.out = bytearray()
        self.closed = False
        self.state = server.open_session(self)

    # SessionLink
    name = "fake"
    backlogged = False

    def send(self, msg: Message) -> None:
        self.out += encode(msg)

    def send_raw(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def feed(self, data: bytes) -> None:
        self.parser.receive_data(data)
        for msg in self.parser.events():
            assert isinstance(msg, (Request, Notification, Reply, Error)), msg
            if isinstance(msg, Request) and msg.method in self.unknown:
                self.send(Error("unknown method", msg.id))
            else:
                self.server.handle(self.state, msg)

    def take(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out


class Writer:
    """Another client of the server, committing transactions."""

    def __init__(self, server: ServerCore) -> None:
        self.link = ServerLink(server)
        self.ids = 0

    def commit(self, txn: Txn) -> Any:
        self.ids += 1
        self.link.server.handle(self.link.state, Request("transact", txn.params(), self.ids))
        conn = Connection()
        conn.receive_data(self.link.take())
        (reply,) = [m for m in conn.events() if isinstance(m, Reply)]
        return txn.result(reply.result)


class Harness:
    def __init__(self, server: ServerCore, core: ReplicaCore,
                 unknown: frozenset[str] = frozenset()) -> None:
        self.server = server
        self.core = core
        self.unknown = unknown
        self.now = 0
        self.session = SessionCore([parse_remote("unix:/fake")], 0, database=DB)
        self.link: ServerLink | None = None
        self.gen = 0
        self.tags: dict[Any, str] = {}
        self.batches: list[Changes] = []
        self.sent: list[Request] = []

    def send(self, calls: list[Any]) -> None:
        for c in calls:
            self.tags[self.session.request(c.method, c.params)] = c.tag

    def pump(self) -> None:
        for _ in range(1000):
            moved = False
            action = self.session.run(self.now)
            if action is not None:
                moved = True
                if hasattr(action, "remote"):
                    self.link = ServerLink(self.server, self.unknown)
                    self.gen = action.gen
                    self.session.connected(action.gen, self.now)
                else:
                    self.hang_up()
            data = self.session.data_to_send()
            if data and self.link is not None:
                moved = True
                conn = Connection()
                conn.receive_data(data)
                self.sent.extend(m for m in conn.events() if isinstance(m, Request))
                self.link.feed(data)
            if self.link is not None:
                back = self.link.take()
                if back:
                    moved = True
                    self.session.receive(self.gen, back, self.now)
            for ev in self.session.events():
                moved = True
                if isinstance(ev, Ready):
                    self.send(self.core.on_ready())
                elif isinstance(ev, Lost):
                    if ev.was_ready:
                        self.core.on_lost()
                elif isinstance(ev, Reply):
                    self.send(self.core.on_reply(self.tags.pop(ev.id), ev.result))
                elif isinstance(ev, Error):
                    self.send(self.core.on_error(self.tags.pop(ev.id), ev.error))
                elif isinstance(ev, Notification):
                    self.core.on_notification(ev.method, ev.params)
            self.batches.extend(self.core.take_batches())
            if not moved:
                return
        raise AssertionError("the wire never went quiet")

    def hang_up(self) -> None:
        if self.link is not None:
            self.server.close_session(self.link.state)
            self.link = None

    def lose_connection(self) -> None:
        """The connection breaks; the client notices and backs off."""
        self.hang_up()
        self.session.closed(self.gen, self.now, "connection reset")
        self.pump()
        assert not self.core.monitoring

    def reconnect(self) -> None:
        self.now += 10_000
        self.pump()
        assert self.core.monitoring


def new_server(history: int | None = None) -> ServerCore:
    server = ServerCore(now=lambda: 0.0)
    served = server.add_database(DB, Database(SCHEMA), None)
    if history is not None:
        served.history.max_txns = history  # type: ignore[attr-defined]
    return server


def server_tables(server: ServerCore, columns: dict[str, list[str]] | None = None) -> Tables:
    """The server's rows as a replica holds them (no _version, only replicated columns)."""
    out: Tables = {}
    for t, rows in server.dbs[DB].db.tables.items():
        cols = None if columns is None else columns.get(t)
        if columns is not None and t not in columns:
            continue
        out[t] = {u: {c: v for c, v in r.items()
                      if c != "_version" and (cols is None or c in cols or c == "_uuid")}
                  for u, r in rows.items()}
    return out


def replay(start: Tables, batches: list[Changes]) -> Tables:
    """Apply change batches to a copy, checking each is consistent with what came before:
    no insert of a row already there, no change of a row not there, old rows exact."""
    tables = {t: dict(rows) for t, rows in start.items()}
    for batch in batches:
        for t, rows in batch.items():
            cur = tables.setdefault(t, {})
            for u, (old, new) in rows.items():
                assert cur.get(u) == old, f"{t} {u}: batch old row differs from replay"
                assert old != new
                if new is None:
                    del cur[u]
                else:
                    cur[u] = new
    return tables


def sw(txn: Txn, name: str, **cols: Any) -> Any:
    return txn.insert("Physical_Switch", {"name": (name,), **cols})


def populate(w: Writer) -> dict[str, str]:
    t = Txn(DB, SCHEMA)
    a = sw(t, "a", tunnel_ips=("1.1.1.1",))
    b = sw(t, "b", description=("bee",))
    ls = t.insert("Logical_Switch", {"name": ("ls",), "tunnel_key": (10,)})
    p = t.insert("Physical_Port", {"name": ("p",), "vlan_bindings": ((1, ls),)})
    t.insert("Global", {"switches": (a, b)})
    t.update("Physical_Switch", [("name", "==", ("a",))], {"ports": (p,)})
    r = w.commit(t)
    return {"a": r.uuid(a), "b": r.uuid(b), "ls": r.uuid(ls), "p": r.uuid(p)}


def random_txn(rng: random.Random, server: ServerCore, n: int) -> Txn:
    """Insert, modify (scalar, optional, set, map) or delete Physical_Switch rows."""
    t = Txn(DB, SCHEMA)
    rows = list(server.dbs[DB].db.tables["Physical_Switch"].values())
    g = next(iter(server.dbs[DB].db.tables["Global"].values()))
    kind = rng.choice(["insert", "modify", "modify", "delete"]) if rows else "insert"
    if kind == "insert":
        new = sw(t, f"s{n}", tunnel_ips=(f"10.0.{n % 250}.1",))
        t.mutate("Global", [("_uuid", "==", g["_uuid"][0])], [("switches", "insert", (new,))])
    elif kind == "modify":
        r = rng.choice(rows)
        t.update_row("Physical_Switch", r["_uuid"][0], {
            "description": (f"d{n}",) if rng.random() < 0.5 else ("",),
            "tunnel_ips": tuple(sorted({f"10.1.{n % 250}.{i}" for i in range(rng.randint(0, 3))})),
            "other_config": tuple(sorted({(f"k{rng.randint(0, 3)}", f"v{n}")})),
            "switch_fault_status": rng.choice([(), ("x",), ("x", "y")])})
    else:
        r = rng.choice(rows)
        t.mutate("Global", [("_uuid", "==", g["_uuid"][0])],
                 [("switches", "delete", (r["_uuid"][0],))])
    return t


# --- tests -------------------------------------------------------------------------------------


def test_initial_copy_and_every_kind_of_update() -> None:
    server = new_server()
    w = Writer(server)
    ids = populate(w)
    h = Harness(server, ReplicaCore(DB))
    h.pump()
    assert h.core.monitoring and h.core.method == "monitor_cond_since"
    assert [r.method for r in h.sent][:3] == ["monitor", "get_schema", "monitor_cond_since"]
    assert h.core.tables == server_tables(server)
    # update2 "initial" leaves default values out: the replica fills them in.
    assert h.core.tables["Physical_Switch"][ids["a"]]["description"] == ("",)
    assert h.core.tables["Physical_Switch"][ids["a"]]["management_ips"] == ()
    before = {t: dict(r) for t, r in h.core.tables.items()}
    assert replay({}, h.batches) == {t: r for t, r in before.items() if r}
    h.batches.clear()
    rng = random.Random(7)
    for n in range(60):
        w.commit(random_txn(rng, server, n))
        h.pump()
        assert h.core.tables == server_tables(server), n
    assert replay(before, h.batches) == h.core.tables
    assert h.core.seqno == 1 + len(h.batches)


@pytest.mark.parametrize(("unknown", "method"), [
    (frozenset({"monitor_cond_since"}), "monitor_cond"),
    (frozenset({"monitor_cond_since", "monitor_cond"}), "monitor"),
])
def test_falls_back_to_older_monitor_methods(unknown: frozenset[str], method: str) -> None:
    server = new_server()
    w = Writer(server)
    populate(w)
    h = Harness(server, ReplicaCore(DB), unknown=unknown)
    h.pump()
    assert h.core.method == method
    tried = [r.method for r in h.sent if r.method.startswith("monitor") and r.params[0] == DB]
    assert tried == ["monitor_cond_since", "monitor_cond", "monitor"][:len(tried)]
    assert tried[-1] == method
    rng = random.Random(3)
    for n in range(30):
        w.commit(random_txn(rng, server, n))
        h.pump()
        assert h.core.tables == server_tables(server)
    # Reconnecting tries the newest method first again, and ends up in the same place.
    h.lose_connection()
    w.commit(random_txn(rng, server, 99))
    start = {t: dict(r) for t, r in h.core.tables.items()}
    h.batches.clear()
    h.reconnect()
    assert h.core.tables == server_tables(server)
    assert replay(start, h.batches) == h.core.tables


def test_columns_subset_and_conditions() -> None:
    server = new_server()
    w = Writer(server)
    ids = populate(w)
    core = ReplicaCore(DB, tables={"Physical_Switch": ["name", "tunnel_ips"],
                                   "Logical_Switch": None},
                       conditions={"Physical_Switch": [["name", "==", "a"]]})
    h = Harness(server, core)
    h.pump()
    assert set(core.tables) == {"Physical_Switch", "Logical_Switch"}
    assert core.tables["Physical_Switch"] == {ids["a"]: {
        "_uuid": (ids["a"],), "name": ("a",), "tunnel_ips": ("1.1.1.1",)}}
    # Change the condition: "a" leaves, "b" enters, both reported.
    h.send(core.set_condition("Physical_Switch", [["name", "==", "b"]]))
    assert not core.conditions_acked
    h.batches.clear()
    h.pump()
    assert core.conditions_acked
    assert set(core.tables["Physical_Switch"]) == {ids["b"]}
    (batch,) = h.batches
    assert {u: (o is None, n is None) for u, (o, n) in batch["Physical_Switch"].items()} == {
        ids["a"]: (False, True), ids["b"]: (True, False)}
    assert [r.method for r in h.sent][-1] == "monitor_cond_change"
    h.send(core.set_condition("Physical_Switch", None))
    h.pump()
    assert set(core.tables["Physical_Switch"]) == {ids["a"], ids["b"]}


def test_conditions_are_applied_locally_with_plain_monitor() -> None:
    server = new_server()
    w = Writer(server)
    ids = populate(w)
    core = ReplicaCore(DB, conditions={"Physical_Switch": [["name", "==", "a"]]})
    h = Harness(server, core, unknown=frozenset({"monitor_cond_since", "monitor_cond"}))
    h.pump()
    assert set(core.tables["Physical_Switch"]) == {ids["a"]}
    t = Txn(DB, SCHEMA)
    t.update("Physical_Switch", [("name", "==", ("a",))], {"name": ("z",)})
    w.commit(t)
    h.pump()
    assert core.tables["Physical_Switch"] == {}  # left the condition: gone from the copy
    h.send(core.set_condition("Physical_Switch", [["name", "==", "b"]]))
    h.pump()
    assert set(core.tables["Physical_Switch"]) == {ids["b"]} and core.conditions_acked
    assert "monitor_cancel" in [r.method for r in h.sent]


@pytest.mark.parametrize("history", [None, 5])
def test_resync_after_lost_connection_neither_loses_nor_repeats(history: int | None) -> None:
    """With history: only later changes come (found). Without enough of it: a full dump,
    of which only the difference is reported."""
    server = new_server(history)
    w = Writer(server)
    populate(w)
    # ovsdb-server keeps no more history than the database holds atoms: make it hold some.
    bulk = Txn(DB, SCHEMA)
    for i in range(100):
        bulk.insert("Logical_Switch", {"name": (f"bulk{i}",), "description": ("x" * 10,)})
    w.commit(bulk)
    h = Harness(server, ReplicaCore(DB))
    h.pump()
    rng = random.Random(11)
    for n in range(5):
        w.commit(random_txn(rng, server, n))
        h.pump()
    assert h.core.last_sync == "full"
    last_id = h.core.last_id
    h.lose_connection()
    snapshot = {t: dict(r) for t, r in h.core.tables.items()}
    n_changes = 3 if history is None else 12
    for n in range(n_changes):
        w.commit(random_txn(rng, server, 100 + n))
    h.batches.clear()
    h.reconnect()
    since = [r for r in h.sent if r.method == "monitor_cond_since"][-1]
    assert since.params[3] == last_id
    assert h.core.last_sync == ("found" if history is None else "full")
    assert h.core.tables == server_tables(server)
    assert replay(snapshot, h.batches) == h.core.tables
    # Exactly the rows that differ are reported, each once.
    differing = {(t, u) for t in h.core.tables
                 for u in set(snapshot[t]) | set(h.core.tables[t])
                 if snapshot[t].get(u) != h.core.tables[t].get(u)}
    reported = [(t, u) for b in h.batches for t, rows in b.items() for u in rows]
    assert sorted(reported) == sorted(differing)
    # Nothing changed while away: nothing reported, and rows keep their identity.
    rows_before = dict(h.core.tables["Physical_Switch"])
    h.lose_connection()
    h.batches.clear()
    h.reconnect()
    assert h.batches == []
    assert all(h.core.tables["Physical_Switch"][u] is r for u, r in rows_before.items())


def test_condition_change_in_flight_when_connection_drops_forces_full_resync() -> None:
    server = new_server()
    w = Writer(server)
    ids = populate(w)
    core = ReplicaCore(DB, conditions={"Physical_Switch": [["name", "==", "a"]]})
    h = Harness(server, core)
    h.pump()
    calls = core.set_condition("Physical_Switch", [["name", "==", "b"]])
    h.send(calls)
    # The request goes out and the server applies it, but the answer is lost with the wire.
    h.link.feed(h.session.data_to_send())  # type: ignore[union-attr]
    h.link.take()  # type: ignore[union-attr]
    h.lose_connection()
    h.send(core.set_condition("Physical_Switch", [["name", "==", "a"]]))  # and back again
    h.batches.clear()
    h.reconnect()
    since = [r for r in h.sent if r.method == "monitor_cond_since"][-1]
    assert since.params[3] == "00000000-0000-0000-0000-000000000000"
    assert set(core.tables["Physical_Switch"]) == {ids["a"]}
    assert core.conditions_acked


def test_update_v1_and_bad_updates() -> None:
    core = ReplicaCore(DB, schema=SCHEMA, tables={"Logical_Switch": ["name", "tunnel_key"]})
    assert core.on_ready()[0].method == "monitor_cond_since"
    core.method = "monitor"
    core.on_reply("monitor", {"Logical_Switch": {
        "11111111-1111-4111-8111-111111111111": {"new": {"name": "x", "tunnel_key": 5}}}})
    u = "11111111-1111-4111-8111-111111111111"
    assert core.tables["Logical_Switch"][u] == {"_uuid": (u,), "name": ("x",),
                                                "tunnel_key": (5,)}
    mid = core.monitor_id
    # v1 modify: "new" carries the row, "old" what changed.
    assert core.on_notification("update", [mid, {"Logical_Switch": {u: {
        "old": {"tunnel_key": 5}, "new": {"name": "x", "tunnel_key": ["set", []]}}}}])
    assert core.tables["Logical_Switch"][u]["tunnel_key"] == ()
    # Malformed pieces are skipped, good ones in the same update still applied.
    v = "22222222-2222-4222-8222-222222222222"
    core.on_notification("update", [mid, {"Logical_Switch": {
        u: "junk", v: {"new": {"name": "y"}}}, "NoSuchTable": {}}])
    assert set(core.tables["Logical_Switch"]) == {u, v}
    assert not core.on_notification("update", ["someone else's monitor", {}])
    assert core.on_notification("update", [mid, {"Logical_Switch": {u: {"old": {}}}}])
    assert set(core.tables["Logical_Switch"]) == {v}
    assert core.seqno == 4


def test_refusal_is_reported() -> None:
    core = ReplicaCore("nope")
    (call,) = core.on_ready()
    assert core.on_error(call.tag, {"error": "unknown database",
                                    "details": "get_schema request specifies unknown "
                                               "database nope"}) == []
    assert core.error is not None and core.error.tag == "unknown database"
    assert core.on_ready() == []


def test_change_stream_merges_what_a_slow_consumer_missed() -> None:
    import asyncio
    from types import SimpleNamespace

    from hwvtep.client.replica import ChangeStream

    a1: Row = {"_uuid": ("a",), "name": ("1",)}
    a2: Row = {"_uuid": ("a",), "name": ("2",)}
    b1: Row = {"_uuid": ("b",), "name": ("b",)}

    async def main() -> None:
        stub: Any = SimpleNamespace(_streams=set(), core=SimpleNamespace(error=None))
        s = ChangeStream(stub)
        stub._streams.add(s)
        s._push({"T": {"a": (None, a1)}})
        assert await s.get(1) == {"T": {"a": (None, a1)}}
        # Three batches while the consumer was busy: net effect per row, no-ops dropped.
        s._push({"T": {"a": (a1, a2), "b": (None, b1)}})
        s._push({"T": {"a": (a2, a1)}})
        s._push({"T": {"b": (b1, None)}, "U": {"c": (None, b1)}})
        assert await s.get(1) == {"U": {"c": (None, b1)}}
        waiter = asyncio.ensure_future(s.get(5))
        await asyncio.sleep(0)
        s.close()
        try:
            await waiter
        except StopAsyncIteration:
            pass
        else:
            raise AssertionError("a closed stream must end")
        assert stub._streams == set()

    asyncio.run(main())
