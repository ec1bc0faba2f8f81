"""Network namespace fixtures for tests that need a real kernel data plane.

Tests marked `netns` are skipped, loudly, without root. The `netns` fixture hands out a
`nshelp.Namespaces` and deletes exactly the namespaces it created at teardown, even when
the test fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from nshelp import Namespaces


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is None:
        return
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: netns tests need root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("SKIPPED LOUDLY: netns tests need iproute2's `ip`")


@pytest.fixture
def netns() -> Iterator[Namespaces]:
    spaces = Namespaces()
    try:
        yield spaces
    finally:
        errors = spaces.cleanup()
        assert not errors, f"could not delete test namespaces: {errors}"
