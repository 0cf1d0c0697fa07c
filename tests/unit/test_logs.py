"""Function logs: one writer off the event loop, bounded, rotated, and bounded followers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from faasd.app import error_middleware
from faasd.control.api import AdminApi
from faasd.pool import logs as logs_module
from faasd.pool.logs import FOLLOW_BACKLOG, Follower, FunctionLogs, format_record


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Bounded polling: every 5 ms until ``predicate()`` holds, failing after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def record(n: int) -> str:
    return format_record("2026-01-01T00:00:00.000Z", "0123456789abcdef", "stdout", f"line {n}")


class GatedWriter:
    """Holds the writer's worker thread until ``open()``; counts its batches."""

    def __init__(self, logs: FunctionLogs) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.threads: set[int] = set()
        original = logs._apply

        def apply(ops: list[Any]) -> list[object]:
            self.entered.set()
            self.threads.add(threading.get_ident())
            self.batches.append(len(ops))
            assert self.gate.wait(30), "the test never opened the gate"
            return original(ops)

        logs._apply = apply  # type: ignore[method-assign]

    def open(self) -> None:
        self.gate.set()


@pytest.fixture
async def logs(tmp_path: Path) -> AsyncIterator[FunctionLogs]:
    function_logs = FunctionLogs(tmp_path / "logs")
    yield function_logs
    await function_logs.close()


async def test_a_read_sees_every_record_appended_before_it(logs: FunctionLogs, tmp_path: Path) -> None:
    logs.append("f", [record(1), record(2)])
    logs.append("f", [record(3) + "\n"])
    assert await logs.read("f") == [record(1), record(2), record(3)]
    # The file format: one record a line.
    assert (tmp_path / "logs" / "f.log").read_text() == "".join(f"{record(n)}\n" for n in (1, 2, 3))
    assert await logs.read("f", tail=2) == [record(2), record(3)]
    assert await logs.read("f", tail=0) == []
    assert await logs.read("nobody") == []


async def test_records_are_written_in_batches_off_the_event_loop(logs: FunctionLogs) -> None:
    writer = GatedWriter(logs)
    writer.open()
    for n in range(100):
        logs.append("f", [record(n)])
    lines = await logs.read("f")
    assert lines == [record(n) for n in range(100)]
    assert writer.batches == [101]  # 100 appends and the read: one trip to the worker thread
    assert threading.get_ident() not in writer.threads


async def test_a_reader_sees_records_still_queued_and_a_follower_only_later_ones(logs: FunctionLogs) -> None:
    writer = GatedWriter(logs)
    logs.append("f", [record(0)])
    await wait_until(writer.entered.is_set, "the writer to be busy with the first batch")
    logs.append("f", [record(1)])  # queued behind the busy writer

    async def ask() -> tuple[Follower, list[str]]:
        # As the logs endpoint does: follow, then read.
        follower = logs.follow("f")
        return follower, await logs.read("f")

    asking = asyncio.create_task(ask())
    await wait_until(lambda: logs.follower_count("f") == 1, "the reader to follow")
    logs.append("f", [record(2)])  # after the reader asked
    writer.open()
    follower, lines = await asking
    assert lines == [record(0), record(1)]
    assert await follower.get() == [record(2)]


async def test_the_log_is_rotated_once_and_bounded(tmp_path: Path) -> None:
    logs = FunctionLogs(tmp_path / "logs", max_bytes=1000)
    size = len(record(0)) + 1
    # More than three files' worth in one batch, then a few more batches.
    logs.append("f", [record(n) for n in range(4000 // size)])
    for n in range(4000 // size, 5000 // size):
        logs.append("f", [record(n)])
        await logs.flush()
    current, rotated = tmp_path / "logs" / "f.log", tmp_path / "logs" / "f.log.1"
    assert 0 < current.stat().st_size <= 1000
    assert 0 < rotated.stat().st_size <= 1000
    lines = await logs.read("f")
    last = 5000 // size - 1
    assert lines == [record(n) for n in range(last - len(lines) + 1, last + 1)]  # the newest, in order
    assert len(lines) >= 1000 // size  # at least one whole file's worth kept
    await logs.close()


async def test_removal_deletes_the_log_even_with_records_queued_before_it(logs: FunctionLogs, tmp_path: Path) -> None:
    logs.append("f", [record(1)])
    await logs.flush()
    follower = logs.follow("f")
    logs.append("f", [record(2)])
    logs.remove("f")
    assert await follower.get() == [record(2)]
    assert await follower.get() is None  # deleting the function ends its followers
    await logs.flush()
    assert not (tmp_path / "logs" / "f.log").exists()
    assert await logs.read("f") == []
    logs.append("f", [record(3)])  # a function made again under the name starts afresh
    assert await logs.read("f") == [record(3)]


async def test_write_waits_while_too_much_is_queued(tmp_path: Path) -> None:
    logs = FunctionLogs(tmp_path / "logs", max_pending_bytes=100)
    writer = GatedWriter(logs)
    try:
        logs.append("f", [record(n) for n in range(5)])  # over the bound
        await wait_until(writer.entered.is_set, "the writer to take the batch")
        waiting = asyncio.create_task(logs.write("f", [record(5)]))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()  # the worker thread still holds the batch
        writer.open()
        await asyncio.wait_for(waiting, 10)
        assert await logs.read("f") == [record(n) for n in range(6)]
    finally:
        writer.open()
        await logs.close()


async def test_a_follower_gets_new_records_in_order(logs: FunctionLogs) -> None:
    follower = logs.follow("f")
    logs.append("f", [record(1)])
    logs.append("f", [record(2)])
    assert await follower.get() == [record(1), record(2)]
    getting = asyncio.create_task(follower.get())
    await asyncio.sleep(0)
    logs.append("f", [record(3)])
    assert await asyncio.wait_for(getting, 10) == [record(3)]
    logs.unfollow("f", follower)
    assert logs.follower_count("f") == 0


async def test_a_follower_that_falls_behind_is_told_and_disconnected(tmp_path: Path) -> None:
    assert FOLLOW_BACKLOG == 1000  # the documented bound
    logs = FunctionLogs(tmp_path / "logs", follow_backlog=10)
    slow = logs.follow("f")
    for n in range(25):
        logs.append("f", [record(n)])
    assert slow.pending() == 11  # bounded: 10 lines and the notice
    assert logs.follower_count("f") == 0
    lines = await slow.get()
    assert lines is not None
    assert lines[:10] == [record(n) for n in range(10)]
    assert "fell more than 10 lines behind; lines were dropped" in lines[10]
    assert slow.fell_behind
    assert await slow.get() is None
    # The log itself lost nothing.
    assert len(await logs.read("f")) == 25
    await logs.close()


async def test_close_writes_what_is_queued_ends_followers_and_the_writer(tmp_path: Path) -> None:
    logs = FunctionLogs(tmp_path / "logs")
    follower = logs.follow("f")
    logs.append("f", [record(n) for n in range(50)])
    await logs.close()
    assert (tmp_path / "logs" / "f.log").read_text().splitlines() == [record(n) for n in range(50)]
    assert logs._writer is not None and logs._writer.done()
    batch = await follower.get()
    assert batch is not None and len(batch) == 50
    assert await follower.get() is None
    assert logs.follow("f").ended  # no new followers after close


# -- the logs endpoint ---------------------------------------------------------------


@pytest.fixture
async def api_client(logs: FunctionLogs) -> AsyncIterator[TestClient[Any, Any]]:
    controller = mock.MagicMock()
    controller.catalog.functions = {"f": object()}
    app = web.Application(middlewares=[error_middleware])
    AdminApi(controller, mock.MagicMock(), logs).add_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_the_endpoint_answers_the_log_and_its_tail(api_client: TestClient[Any, Any], logs: FunctionLogs) -> None:
    logs.append("f", [record(n) for n in range(5)])
    response = await api_client.get("/v1/functions/f/logs")
    assert (await response.text()).splitlines() == [record(n) for n in range(5)]
    response = await api_client.get("/v1/functions/f/logs?tail=2")
    assert (await response.text()).splitlines() == [record(3), record(4)]
    assert (await api_client.get("/v1/functions/nope/logs")).status == 404


async def test_a_follow_streams_new_records_and_ends_when_the_function_goes(
    api_client: TestClient[Any, Any], logs: FunctionLogs
) -> None:
    logs.append("f", [record(0)])
    response = await api_client.get("/v1/functions/f/logs?follow=true")
    assert await response.content.readline() == (record(0) + "\n").encode()
    assert logs.follower_count("f") == 1
    logs.append("f", [record(1)])
    assert await response.content.readline() == (record(1) + "\n").encode()
    logs.remove("f")
    assert await response.content.read() == b""  # the answer ends
    await wait_until(lambda: logs.follower_count("f") == 0, "the follower to be gone")


async def test_a_follow_that_falls_behind_ends_with_a_notice(
    api_client: TestClient[Any, Any], logs: FunctionLogs
) -> None:
    logs.append("f", [record(-1)])
    response = await api_client.get("/v1/functions/f/logs?follow=true&tail=1")
    assert await response.content.readline() == (record(-1) + "\n").encode()
    # 1500 records before the handler runs again: the follower is 1000 lines behind.
    for n in range(1500):
        logs.append("f", [record(n)])
    lines = (await response.content.read()).decode().splitlines()
    assert lines[:FOLLOW_BACKLOG] == [record(n) for n in range(FOLLOW_BACKLOG)]
    assert len(lines) == FOLLOW_BACKLOG + 1
    assert f"fell more than {FOLLOW_BACKLOG} lines behind" in lines[-1]
    assert logs.follower_count("f") == 0
    assert len(await logs.read("f")) == 1501


def test_the_module_documents_the_follower_bound() -> None:
    assert logs_module.__doc__ is not None and "FOLLOW_BACKLOG" in logs_module.__doc__
