"""TLS remotes, as ovsdb-server runs them: mutual authentication against one CA.

Certificates are made here with the `openssl` command: a CA, a server and a client
certificate it signs, and a client certificate from another CA that must be refused.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_util import RawClient, Server, free_port, needs_ovs

from hwvtep.ovsdb.jsonrpc import Connection, Reply, Request, encode

DB = "hardware_vtep"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="the openssl command is not installed")


@dataclass(frozen=True)
class Pki:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def context(self, who: str | None, ca: str = "ca") -> ssl.SSLContext:
        """A client context trusting *ca* and presenting *who*'s certificate (if any)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.path(f"{ca}-cert.pem"))
        if who is not None:
            ctx.load_cert_chain(self.path(f"{who}-cert.pem"), self.path(f"{who}-key.pem"))
        return ctx

    def server_context(self, who: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.path(f"{who}-cert.pem"), self.path(f"{who}-key.pem"))
        ctx.load_verify_locations(self.path("ca-cert.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def server_args(self, who: str = "server") -> list[str]:
        return [f"--private-key={self.path(who + '-key.pem')}",
                f"--certificate={self.path(who + '-cert.pem')}",
                f"--ca-cert={self.path('ca-cert.pem')}"]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={name} test CA", "-keyout", f"{name}-key.pem",
             "-out", f"{name}-cert.pem", cwd=d)


def _make_cert(d: Path, name: str, ca: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}-key.pem", "-out", f"{name}-req.pem", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}-req.pem", "-CA", f"{ca}-cert.pem",
             "-CAkey", f"{ca}-key.pem", "-CAcreateserial", "-days", "2",
             "-out", f"{name}-cert.pem", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_ca(d, "rogue")
    _make_cert(d, "server", "ca")
    _make_cert(d, "client", "ca")
    _make_cert(d, "intruder", "rogue")
    return Pki(d)


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("tls") / "s"
    srv = Server(d)
    srv.remotes = [f"punix:{srv.sock}", f"pssl:{srv.port}:127.0.0.1"]
    srv.extra = pki.server_args()
    srv.start()
    yield srv
    srv.stop()


def test_client_with_ca_signed_certificate_is_served(pki: Pki, tls_server: Server) -> None:
    with RawClient.ssl("127.0.0.1", tls_server.port, pki.context("client")) as c:
        assert c.result("list_dbs", []) == ["_Server", DB]
        c.transact(DB, {"op": "insert", "table": "Logical_Switch",
                        "row": {"name": "over-tls"}})
        peer = c.sock.getpeercert()  # type: ignore[attr-defined]
        assert peer is not None and ("commonName", "server") in peer["subject"][0]


@pytest.mark.parametrize("who", [None, "intruder"])
def test_client_without_trusted_certificate_is_refused(pki: Pki, tls_server: Server,
                                                       who: str | None) -> None:
    ctx = pki.context(who)
    refused = False
    try:
        with RawClient.ssl("127.0.0.1", tls_server.port, ctx, timeout=5) as c:
            # TLS 1.3 finishes the client's handshake before the server checks the
            # client certificate: the refusal shows on the first read.
            c.call("list_dbs", [])
    except (ssl.SSLError, EOFError, ConnectionError):
        refused = True
    assert refused, f"a client with {who or 'no'} certificate was served"
    # The server is still fine.
    with RawClient.ssl("127.0.0.1", tls_server.port, pki.context("client")) as c:
        assert c.result("echo", ["ok"]) == ["ok"]


def test_server_certificate_from_another_ca_is_rejected_by_clients(
        pki: Pki, tls_server: Server) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        RawClient.ssl("127.0.0.1", tls_server.port, pki.context("client", ca="rogue"))


def test_plain_tcp_on_ssl_port_is_dropped(tls_server: Server) -> None:
    with RawClient.tcp("127.0.0.1", tls_server.port, timeout=5) as c:
        c.send(Request("echo", [], 1))
        with pytest.raises((EOFError, ConnectionError)):
            c.recv(5)
    with tls_server.client() as c:
        assert c.result("echo", []) == []


@needs_ovs
@pytest.mark.ovs
def test_ovsdb_client_with_certificates(pki: Pki, tls_server: Server) -> None:
    target = f"ssl:127.0.0.1:{tls_server.port}"
    ssl_args = ["-p", pki.path("client-key.pem"), "-c", pki.path("client-cert.pem"),
                "-C", pki.path("ca-cert.pem")]
    cp = tls_server.tool("ovsdb-client", *ssl_args, "list-dbs", target)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["_Server", DB]
    cp = tls_server.tool("ovsdb-client", *ssl_args, "transact", target, json.dumps(
        [DB, {"op": "insert", "table": "Logical_Switch", "row": {"name": "from-ovs"}}]))
    assert cp.returncode == 0 and '"uuid"' in cp.stdout, cp.stderr
    cp = tls_server.tool("ovsdb-client", *ssl_args, "dump", target, DB, "Logical_Switch",
                         "name")
    assert cp.returncode == 0 and "from-ovs" in cp.stdout, cp.stderr
    # ovsdb-client with a certificate of the wrong CA gets nothing.
    bad = ["-p", pki.path("intruder-key.pem"), "-c", pki.path("intruder-cert.pem"),
           "-C", pki.path("ca-cert.pem")]
    cp = tls_server.tool("ovsdb-client", "--timeout=5", *bad, "list-dbs", target)
    assert cp.returncode != 0 and "_Server" not in cp.stdout


@needs_ovs
@pytest.mark.ovs
def test_ovs_server_accepts_the_same_pki(pki: Pki, tmp_path: Path) -> None:
    """The certificates are sound (OVS takes them), so refusals above are ours to make."""
    srv = Server(tmp_path / "ovs", kind="ovs")
    srv.remotes = [f"punix:{srv.sock}", f"pssl:{srv.port}:127.0.0.1"]
    srv.extra = pki.server_args()
    srv.start()
    try:
        with RawClient.ssl("127.0.0.1", srv.port, pki.context("client")) as c:
            assert DB in c.result("list_dbs", [])
    finally:
        srv.stop()


class TlsController(threading.Thread):
    """A controller that listens (TLS, client certificates required) for the server to
    connect out, asks it list_dbs, and records what it got."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__(daemon=True)
        self.ctx = ctx
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.lsock.settimeout(20)
        self.port = self.lsock.getsockname()[1]
        self.result: object = None
        self.peer_cn: str | None = None

    def run(self) -> None:
        raw, _ = self.lsock.accept()
        with self.ctx.wrap_socket(raw, server_side=True) as s:
            cert = s.getpeercert()
            self.peer_cn = dict(x[0] for x in cert["subject"])["commonName"] if cert else None
            s.sendall(encode(Request("list_dbs", [], "c1")))
            conn = Connection()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                conn.receive_data(s.recv(65536))
                for ev in conn.events():
                    if isinstance(ev, Reply) and ev.id == "c1":
                        self.result = ev.result
                        return
        self.lsock.close()


def test_active_ssl_remote_connects_out_with_its_certificate(pki: Pki,
                                                             tmp_path: Path) -> None:
    controller = TlsController(pki.server_context("client"))
    controller.start()
    srv = Server(tmp_path / "s", extra=pki.server_args())
    srv.remotes = [f"punix:{srv.sock}", f"ssl:127.0.0.1:{controller.port}"]
    srv.start()
    try:
        controller.join(20)
        assert controller.result == ["_Server", DB]
        assert controller.peer_cn == "server"
    finally:
        srv.stop()


def test_ssl_remote_without_keys_fails_clearly(tmp_path: Path) -> None:
    srv = Server(tmp_path / "s")
    srv.remotes = [f"punix:{srv.sock}", f"pssl:{free_port()}:127.0.0.1"]
    with pytest.raises(RuntimeError, match="--private-key"):
        srv.start(timeout=10)
    srv.stop()


def test_tls_session_is_probed(pki: Pki, tmp_path: Path) -> None:
    srv = Server(tmp_path / "s", extra=[*pki.server_args(), "--inactivity-probe=300"])
    srv.remotes = [f"punix:{srv.sock}", f"pssl:{srv.port}:127.0.0.1"]
    srv.start()
    try:
        c = RawClient.ssl("127.0.0.1", srv.port, pki.context("client"), answer_echo=False)
        m = c.recv(3)
        assert m == Request("echo", [], "echo")
        c.wait_closed(3)
        c.close()
    finally:
        srv.stop()


def test_many_tls_clients_at_once(pki: Pki, tls_server: Server) -> None:
    async def one(i: int) -> object:
        r, w = await asyncio.open_connection("127.0.0.1", tls_server.port,
                                              ssl=pki.context("client"))
        w.write(encode(Request("echo", [i], i)))
        conn = Connection()
        while True:
            data = await r.read(65536)
            assert data
            conn.receive_data(data)
            for ev in conn.events():
                w.close()
                return ev

    async def main() -> list[object]:
        return list(await asyncio.gather(*(one(i) for i in range(30))))

    assert asyncio.run(main()) == [Reply([i], i) for i in range(30)]
