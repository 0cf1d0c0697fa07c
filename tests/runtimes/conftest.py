"""Fixtures of the runtime tests (helpers live in support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import OWN, HostRuntime


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[Callable[..., HostRuntime]]:
    """Starts a runtime server as a host process on a free port.

    With a fresh specialization token, which ``rt.specialize`` sends;
    ``start(lang, token=None)`` starts one without (specialization is open).
    """
    started: list[HostRuntime] = []

    def start(lang: str, token: str | None = OWN) -> HostRuntime:
        rt = HostRuntime(lang, tmp_path / f"code-{len(started)}", token=token)
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt.stop()
