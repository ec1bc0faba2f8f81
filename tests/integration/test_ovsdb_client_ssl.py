"""`hwvtep ovsdb-client` over ssl: remotes, with -p/-c/-C as ovsdb-client 3.1 takes them.

A CA signs the server's and the client's certificates (made here with `openssl`); a second
CA stands for certificates the other side must refuse.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from srvhelp import HWVTEP, RunningServer, free_port, needs_ovs, start_server

pytestmark = [
    pytest.mark.ovs, needs_ovs,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

OURS = [HWVTEP, "ovsdb-client"]
THEIRS = ["ovsdb-client"]


def _openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hv-ocpki-"))
    try:
        for ca in ("ca", "rogue"):
            _openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                     "-subj", f"/CN={ca}", "-keyout", f"{ca}-key.pem", "-out",
                     f"{ca}-cert.pem")
        for name, ca in (("server", "ca"), ("client", "ca")):
            _openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                     "-keyout", f"{name}-key.pem", "-out", f"{name}-req.pem")
            _openssl(d, "x509", "-req", "-in", f"{name}-req.pem", "-CA", f"{ca}-cert.pem",
                     "-CAkey", f"{ca}-key.pem", "-CAcreateserial", "-days", "2",
                     "-out", f"{name}-cert.pem")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls(pki: Path) -> Iterator[tuple[RunningServer, str]]:
    base = Path(tempfile.mkdtemp(prefix="hv-ocssl-"))
    port = free_port()
    srv = start_server("hwvtep", base, extra=[
        f"--remote=pssl:{port}:127.0.0.1", f"--private-key={pki / 'server-key.pem'}",
        f"--certificate={pki / 'server-cert.pem'}", f"--ca-cert={pki / 'ca-cert.pem'}"])
    try:
        yield srv, f"ssl:127.0.0.1:{port}"
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)


def _keys(pki: Path, ca: str = "ca") -> list[str]:
    return ["-p", str(pki / "client-key.pem"), "-c", str(pki / "client-cert.pem"),
            "-C", str(pki / f"{ca}-cert.pem")]


def _run(prog: list[str], srv: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prog, *args], capture_output=True, text=True, env=srv.env,
                          timeout=30)


def test_ssl_commands_as_ovs(pki: Path, tls: tuple[RunningServer, str]) -> None:
    srv, remote = tls
    txn = json.dumps(["hardware_vtep", {"op": "insert", "table": "Logical_Switch",
                                        "row": {"name": "over-tls"}}])
    cp = _run(OURS, srv, *_keys(pki), "transact", remote, txn)
    assert cp.returncode == 0 and '"uuid"' in cp.stdout, cp.stderr
    outputs = []
    for args in (["list-dbs", remote], ["dump", remote, "Logical_Switch", "name"],
                 ["--bare", "list-columns", remote, "Logical_Switch"]):
        ours, theirs = (_run(p, srv, *_keys(pki), *args) for p in (OURS, THEIRS))
        assert (ours.returncode, ours.stdout, ours.stderr) == \
            (theirs.returncode, theirs.stdout, theirs.stderr)
        assert ours.returncode == 0
        outputs.append(ours.stdout)
    assert outputs[0] == "_Server\nhardware_vtep\n"
    assert "over-tls" in outputs[1]


def test_ssl_without_keys_or_with_a_foreign_ca(pki: Path,
                                               tls: tuple[RunningServer, str]) -> None:
    srv, remote = tls
    ours, theirs = (_run(p, srv, "list-dbs", remote) for p in (OURS, THEIRS))
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (1, "")
    assert ours.stderr.splitlines()[-1] == theirs.stderr.splitlines()[-1] == \
        f'ovsdb-client: failed to connect to "{remote}" (Protocol not available)'
    # The server's certificate is not signed by the CA we trust.
    ours, theirs = (_run(p, srv, *_keys(pki, "rogue"), "list-dbs", remote)
                    for p in (OURS, THEIRS))
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr.splitlines()[-1] == theirs.stderr.splitlines()[-1] == \
        f'ovsdb-client: failed to connect to "{remote}" (Protocol error)'
