"""`hwvtep ctl` over ssl: (-p/-c/-C), side by side with vtep-ctl, against our server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from srvhelp import HWVTEP, RunningServer, free_port, needs_ovs, normalize_output, start_server
from test_ctl_vtep import reset

pytestmark = [pytest.mark.ovs, needs_ovs,
              pytest.mark.skipif(shutil.which("openssl") is None,
                                 reason="the openssl command is not installed")]


def _openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=test CA", "-keyout", "ca-key.pem", "-out", "ca-cert.pem")
    for name in ("server", "client"):
        _openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}-key.pem", "-out", f"{name}-req.pem")
        _openssl(d, "x509", "-req", "-in", f"{name}-req.pem", "-CA", "ca-cert.pem",
                 "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "2",
                 "-out", f"{name}-cert.pem")
    return d


@pytest.fixture(scope="module")
def ssl_server(pki: Path) -> Iterator[tuple[RunningServer, int]]:
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="hvs-"))
    port = free_port()
    srv = start_server("hwvtep", base, extra=[
        f"--remote=pssl:{port}:127.0.0.1", f"--private-key={pki / 'server-key.pem'}",
        f"--certificate={pki / 'server-cert.pem'}", f"--ca-cert={pki / 'ca-cert.pem'}"])
    try:
        yield srv, port
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_ssl_like_vtep_ctl(pki: Path, ssl_server: tuple[RunningServer, int]) -> None:
    srv, port = ssl_server
    ssl_args = ["-p", str(pki / "client-key.pem"), "-c", str(pki / "client-cert.pem"),
                "-C", str(pki / "ca-cert.pem"), f"--db=ssl:127.0.0.1:{port}"]
    results = {}
    for tool in (["vtep-ctl"], [HWVTEP, "ctl"]):
        reset(srv)
        cp = subprocess.run([*tool, *ssl_args, "add-ls", "x", "--", "list-ls"],
                            capture_output=True, text=True, timeout=60, env=srv.env)
        results[tool[0]] = (cp.stdout, cp.stderr, cp.returncode)
    assert results[HWVTEP] == results["vtep-ctl"] == ("x\n", "", 0)


def test_ssl_without_keys_fails_like_vtep_ctl(ssl_server: tuple[RunningServer, int]) -> None:
    srv, port = ssl_server
    out = {}
    for tool in (["vtep-ctl"], [HWVTEP, "ctl"]):
        cp = subprocess.run([*tool, f"--db=ssl:127.0.0.1:{port}", "list-ls"],
                            capture_output=True, text=True, timeout=60, env=srv.env)
        out[tool[0]] = (cp.stdout, normalize_output(cp.stderr, srv), cp.returncode)
    assert out[HWVTEP] == out["vtep-ctl"]
