"""Fixtures of the runtime tests (helpers live in support.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import (
    DEPLOY_DIR,
    IMAGES,
    LABEL,
    OWN,
    TOKEN_ENV,
    HostRuntime,
    RuntimeClient,
    docker_client,
    new_token,
    readable_by_all,
    wait_healthy,
)


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


@pytest.fixture
def start_container() -> Iterator[Callable[..., RuntimeClient]]:
    """Starts a runtime container as faasd will: read-only root, tmpfs /tmp, no caps,
    a fresh specialization token (``start(lang, token=None)``: none).

    ``start(lang, deploy=path)``: the host folder ``path`` (a package's
    deployment) is mounted read-only at /faasd/deploy, where faasd puts it.
    """
    started: list = []
    client = None

    def start(lang: str, token: str | None = OWN, deploy: Path | None = None) -> RuntimeClient:
        nonlocal client
        client = client or docker_client()
        token = new_token() if token is OWN else token
        volumes = {}
        if deploy is not None:
            volumes[str(readable_by_all(deploy))] = {"bind": DEPLOY_DIR, "mode": "ro"}
        c = client.containers.run(
            IMAGES[lang],
            detach=True,
            environment={TOKEN_ENV: token} if token is not None else {},
            read_only=True,
            tmpfs={"/tmp": "rw,size=16m"},
            volumes=volumes,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="128m",
            pids_limit=64,
            labels=LABEL,
        )
        started.append(c)
        c.reload()  # run() returns the attributes from before the start
        ip = c.attrs["NetworkSettings"]["IPAddress"]
        assert ip, f"container {c.short_id} has no IP address"
        try:
            wait_healthy(ip, 8888, what=f"{lang} container")
        except AssertionError as e:
            logs = c.logs().decode(errors="replace")
            raise AssertionError(f"{e}\ncontainer logs:\n{logs}") from None
        rt = RuntimeClient(ip, 8888, token=token)
        rt.container = c  # type: ignore[attr-defined]
        return rt

    yield start
    for c in started:
        with contextlib.suppress(Exception):
            c.remove(force=True)
