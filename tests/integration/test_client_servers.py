"""The client library against both servers (ours and ovsdb-server 3.1): typed calls for
every RFC 7047 method, errors as exceptions with their tags, unix/tcp/ssl, a list of
remotes tried in turn, locks, blocked transactions canceled, raw monitors, and the
blocking helpers."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hwvtep.client import (
    CallTimeout,
    Client,
    RpcError,
    SslConfig,
    SyncClient,
    Txn,
    TxnError,
    call,
)
from hwvtep.client.connection import SessionListener
from hwvtep.client.errors import ConnectionLost, error_tag
from hwvtep.client.session import Lost
from hwvtep.ovsdb.jsonrpc import Error
from hwvtep.ovsdb.schema import DatabaseSchema

DB = "hardware_vtep"
# The fixtures (any_server, server_factory, short_tmp) come from this directory's conftest.
RunningServer = Any
StartServer = Any
OVS_MISSING = not (shutil.which("ovsdb-tool") and os.access("/usr/sbin/ovsdb-server", os.X_OK))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_typed_calls_and_errors(any_server: RunningServer) -> None:
    async def main() -> None:
        async with await Client.connect(any_server.unix, database=DB) as c:
            assert sorted(await c.list_dbs()) == ["_Server", DB]
            schema = await c.get_schema(DB)
            assert isinstance(schema, DatabaseSchema) and schema.name == DB
            assert await c.echo("a", 1, {"b": [2]}) == ["a", 1, {"b": [2]}]
            assert isinstance(await c.get_server_id(), str)
            await c.set_db_change_aware(True)

            t = Txn(DB, schema)
            ps = t.insert("Physical_Switch", {"name": ("ps1",), "tunnel_ips": ("1.2.3.4",)})
            t.insert("Global", {"switches": (ps,)}, uuid_name="g")
            t.comment("client test")
            res = await c.transact(t)
            ps_uuid = res.uuid(ps)

            t = Txn(DB, schema)
            t.update("Physical_Switch", [("name", "==", ("ps1",))], {"description": ("d",)})
            t.mutate("Physical_Switch", [("_uuid", "==", ps_uuid)],
                     [("tunnel_ips", "insert", ("5.6.7.8",)),
                      ("other_config", "insert", (("k", "v"),))])
            t.wait("Physical_Switch", [("name", "==", ("ps1",))],
                   [{"description": ("d",)}], columns=["description"])
            sel = t.select("Physical_Switch", [], ["name", "tunnel_ips", "other_config"])
            res = await c.transact(t)
            assert res.count(0) == 1 and res.count(1) == 1
            assert res.rows(sel) == [{"name": "ps1",
                                      "tunnel_ips": ["set", ["1.2.3.4", "5.6.7.8"]],
                                      "other_config": ["map", [["k", "v"]]]}]

            # Errors carry the RFC 7047 tags, and where they happened.
            t = Txn(DB, schema)
            dup = t.insert("Physical_Switch", {"name": ("ps1",)})
            t.mutate("Global", [], [("switches", "insert", (dup,))])
            with pytest.raises(TxnError) as ei:
                await c.transact(t)
            assert ei.value.tag == "constraint violation" and ei.value.index == 2
            t = Txn(DB, schema)
            t.delete("Physical_Switch", [])
            with pytest.raises(TxnError) as ei:
                await c.transact(t)
            assert ei.value.tag == "referential integrity violation"
            t = Txn(DB, schema)
            t.wait("Physical_Switch", [], [], timeout=50)
            with pytest.raises(TxnError) as ei:
                await c.transact(t)
            assert ei.value.tag == "timed out" and ei.value.index == 0
            with pytest.raises(RpcError) as ei2:
                await c.get_schema("nope")
            assert ei2.value.tag == "unknown database"
            with pytest.raises(RpcError) as ei2:
                await c.call("no_such_method", [])
            assert ei2.value.tag == "unknown method"
            with pytest.raises(RpcError) as ei2:
                await c.transact("nope", {"op": "select", "table": "x", "where": []})
            assert ei2.value.tag == "unknown database"

            t = Txn(DB)
            t.delete("Global", [])
            assert (await c.transact(t)).count(0) == 1
    run(main())


def test_remotes_tried_in_turn_over_tcp(any_server: RunningServer) -> None:
    dead = f"tcp:127.0.0.1:{free_port()}"

    async def main() -> None:
        c = await Client.connect([dead, any_server.tcp], database=DB, timeout=20)
        try:
            assert str(c.remote) == any_server.tcp
            assert DB in await c.list_dbs()
        finally:
            await c.close()
        with pytest.raises(CallTimeout):
            await Client.connect(dead, timeout=1.5)
        with pytest.raises(ConnectionLost):
            await Client.connect(dead, timeout=10, max_tries=1)
    run(main())
    assert DB in call([dead, any_server.tcp], "list_dbs", [], timeout=20)


def test_locks(any_server: RunningServer) -> None:
    async def main() -> None:
        a = await Client.connect(any_server.unix)
        b = await Client.connect(any_server.unix)
        try:
            b_notes = b.notifications(["locked", "stolen"])
            a_notes = a.notifications(["locked", "stolen"])
            assert await a.lock("L") is True
            assert await b.lock("L") is False
            await a.unlock("L")
            note = await b_notes.get(10)
            assert (note.method, note.params) == ("locked", ["L"])
            assert await a.steal("L") is True
            note = await b_notes.get(10)
            assert (note.method, note.params) == ("stolen", ["L"])
            t = Txn(DB)
            t.assert_lock("L")
            t.select("Global")
            await a.transact(t)
            with pytest.raises(TxnError) as ei:
                await b.transact(t)
            assert ei.value.tag == "not owner"
            assert not a_notes._queue  # a heard nothing
        finally:
            await a.close()
            await b.close()
    run(main())


def test_blocked_transaction_timeout_cancels_it(any_server: RunningServer) -> None:
    async def main() -> None:
        async with await Client.connect(any_server.unix) as c:
            t = Txn(DB)
            t.wait("Physical_Switch", [["name", "==", "never"]], [], until="!=", timeout=None)
            start = time.monotonic()
            with pytest.raises(CallTimeout):
                await c.transact(t, timeout=0.5)
            assert time.monotonic() - start < 5
            # The session is still good, and the canceled request left nothing behind.
            assert await c.echo("after") == ["after"]
            # The same, with an explicit cancel: the server answers "canceled" (ovsdb-server
            # 3.1 answers only clients that said they are db-change-aware; it drops the
            # request of others without a word).
            await c.set_db_change_aware(True)
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            rid = c.session.request("transact", t.params(), answer.set_result)
            await asyncio.sleep(0.3)
            assert not answer.done()
            assert c.cancel(rid)
            got = await asyncio.wait_for(answer, 10)
            assert isinstance(got, Error) and error_tag(got.error) == "canceled"
    run(main())


def test_raw_monitor_calls_and_notifications(any_server: RunningServer) -> None:
    async def main() -> None:
        async with await Client.connect(any_server.unix) as c:
            notes = c.notifications()
            req = {"Logical_Switch": [{"columns": ["name", "tunnel_key"]}]}
            found, last_id, initial = await c.monitor_cond_since(DB, "m3", req,
                                                                 "00000000-0000-0000-0000-"
                                                                 "000000000000")
            assert found is False and initial == {} and isinstance(last_id, str)
            assert await c.monitor_cond(DB, "m2", req) == {}
            assert await c.monitor(DB, "m1", {"Logical_Switch": {"columns": ["name"]}}) == {}
            t = Txn(DB)
            ls = t.insert("Logical_Switch", {"name": "ls1"})
            uuid = (await c.transact(t)).uuid(ls)
            got = {}
            while len(got) < 3:
                n = await notes.get(10)
                got[n.method] = n.params
            assert got["update"] == ["m1", {"Logical_Switch": {uuid: {"new": {"name": "ls1"}}}}]
            assert got["update2"] == ["m2", {"Logical_Switch": {uuid: {
                "insert": {"name": "ls1"}}}}]
            assert got["update3"][0] == "m3" and got["update3"][2] == got["update2"][1]
            await c.monitor_cond_change("m2", "m2b", {"Logical_Switch": [
                {"where": [["name", "==", "other"]]}]})
            n = await notes.get(10)
            assert (n.method, n.params) == ("update2", ["m2b", {"Logical_Switch": {
                uuid: {"delete": None}}}])
            await c.monitor_cancel("m1")
            with pytest.raises(RpcError) as ei:
                await c.monitor_cancel("m1")
            assert ei.value.tag == "unknown monitor"
    run(main())


def test_sync_client(any_server: RunningServer) -> None:
    assert sorted(call(any_server.unix, "list_dbs", [])) == ["_Server", DB]
    with SyncClient(any_server.unix, database=DB) as c:
        schema = c.get_schema(DB)
        t = Txn(DB, schema)
        ls = t.insert("Logical_Switch", {"name": ("x",), "tunnel_key": (3,)})
        uuid = c.transact(t).uuid(ls)
        t = Txn(DB, schema)
        t.select("Logical_Switch", [("_uuid", "==", uuid)], ["tunnel_key"])
        assert c.transact(t).rows(0) == [{"tunnel_key": 3}]
        assert c.echo(1) == [1]
        with pytest.raises(RpcError) as ei:
            c.call("get_schema", ["nope"])
        assert ei.value.tag == "unknown database"
        t = Txn(DB)
        t.wait("Logical_Switch", [], [], until="==", timeout=None)
        with pytest.raises(CallTimeout):
            c.transact(t, timeout=0.3)
        assert c.echo(2) == [2]


# --- ssl -------------------------------------------------------------------------------------


def make_pki(d: Path) -> dict[str, Path]:
    """A CA and two certificates it signs (server, client), with EC keys (fast)."""
    def sh(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, cwd=d, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
       "-subj", "/CN=hwvtep test CA")
    for who in ("server", "client"):
        sh("openssl", "req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr",
           "-subj", f"/CN={who}")
        sh("openssl", "x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
           "-CAcreateserial", "-out", f"{who}.pem", "-days", "2")
    return {n: d / n for n in ("ca.pem", "server.key", "server.pem", "client.key",
                               "client.pem")}


@pytest.mark.parametrize("kind", ["hwvtep", "ovs"])
def test_ssl(kind: str, server_factory: StartServer, short_tmp: Path) -> None:
    if kind == "ovs" and OVS_MISSING:
        pytest.skip("Open vSwitch is not installed (ovsdb-server, ovsdb-tool)")
    pki_dir = short_tmp / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    port = free_port()
    srv = server_factory(kind, extra=[
        f"--remote=pssl:{port}:127.0.0.1", f"--private-key={pki['server.key']}",
        f"--certificate={pki['server.pem']}", f"--ca-cert={pki['ca.pem']}"])
    ssl_cfg = SslConfig(str(pki["client.key"]), str(pki["client.pem"]), str(pki["ca.pem"]))
    remote = f"ssl:127.0.0.1:{port}"

    async def main() -> None:
        async with await Client.connect(remote, ssl=ssl_cfg, database=DB, timeout=20) as c:
            assert DB in await c.list_dbs()
            t = Txn(DB)
            t.insert("Logical_Switch", {"name": "over-tls"})
            await c.transact(t)
        # A certificate our CA did not sign is refused.
        wrong = SslConfig(str(pki["client.key"]), str(pki["client.pem"]),
                          str(pki["client.pem"]))
        with pytest.raises((CallTimeout, ConnectionLost)):
            await Client.connect(remote, ssl=wrong, timeout=2, max_tries=2)
    run(main())
    assert sorted(call(remote, "list_dbs", [], ssl=ssl_cfg)) == ["_Server", DB]
    assert srv.kind == kind


def test_probes_detect_a_silent_server(any_server: RunningServer) -> None:
    """The client probes an idle tcp connection; a server that stops answering (SIGSTOP)
    is dropped after two probe intervals and the session reconnects by itself."""
    pid = any_server.pid()
    assert pid is not None
    reasons: list[str] = []

    class Watch(SessionListener):
        def on_lost(self, event: Lost) -> None:
            reasons.append(event.reason)

    async def main() -> None:
        async with await Client.connect(any_server.tcp, probe_interval=1000,
                                        max_backoff=1000) as c:
            c.session.add_listener(Watch())
            await asyncio.sleep(2.5)  # idle: our probes are answered
            assert c.session.is_ready and c.session.core.n_ready == 1 and reasons == []
            os.kill(pid, signal.SIGSTOP)
            try:
                async with asyncio.timeout(10):
                    while not reasons:
                        await asyncio.sleep(0.05)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert reasons[0].startswith("no response to inactivity probe after 2 seconds")
            assert await c.echo("back") == ["back"]
            assert c.session.core.n_ready >= 2
    run(main())
