"""Fixtures of the runtime tests (helpers live in support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import HostRuntime


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[Callable[[str], HostRuntime]]:
    """Starts a runtime server as a host process on a free port."""
    started: list[HostRuntime] = []

    def start(lang: str) -> HostRuntime:
        rt = HostRuntime(lang, tmp_path / f"code-{len(started)}")
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt.stop()
