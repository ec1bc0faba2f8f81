"""Fixtures for the integration tests: servers (ours, OVS's) that are always stopped.

The helpers themselves live in `srvhelp` (a plain module, so test modules can import them
without depending on which conftest pytest loaded last).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvhelp import MISSING_OVS, VTEP_SCHEMA, RunningServer, StartServer, start_server


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path: unix socket paths must fit in 108 bytes."""
    d = Path(tempfile.mkdtemp(prefix="hv-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server_factory(short_tmp: Path) -> Iterator[StartServer]:
    """start(kind, schema=VTEP_SCHEMA, detach=False): servers stopped on teardown."""
    started: list[RunningServer] = []
    counter = iter(range(1000))

    def start(kind: str, schema: Path = VTEP_SCHEMA, **kw: Any) -> RunningServer:
        srv = start_server(kind, short_tmp / f"s{next(counter)}", schema, **kw)
        started.append(srv)
        return srv
    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def hwvtep_server(server_factory: StartServer) -> RunningServer:
    return server_factory("hwvtep")


@pytest.fixture
def ovs_server(server_factory: StartServer) -> RunningServer:
    if MISSING_OVS:
        pytest.skip(f"Open vSwitch is not installed (missing: {', '.join(MISSING_OVS)})")
    return server_factory("ovs")


@pytest.fixture(params=["hwvtep", "ovs"])
def any_server(request: pytest.FixtureRequest, server_factory: StartServer) -> RunningServer:
    if request.param == "ovs" and MISSING_OVS:
        pytest.skip(f"Open vSwitch is not installed (missing: {', '.join(MISSING_OVS)})")
    return server_factory(request.param)
