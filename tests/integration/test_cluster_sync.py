"""Two faasd processes on one registry: a change made through either is served by the other.

Each node is a real faasd (own state dir, port, owner label, pools and instances) with the same
``--database``: a SQLite file they share (two nodes on one machine), then a PostgreSQL database
(tests/postgres.py). The other node's follower picks the change up: within a poll, which the tests
wait for with a generous bound (the figure, under a second, is bench/cluster_sync.py's).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.harness import FaasdProcess, wait_for
from tests.postgres import PostgresServer

BOUND = 20.0  # seconds a change may take to be served by the other node, in these tests (not a figure)


def code(version: str) -> str:
    return (
        "module.exports = async () => "
        f'({{status: 200, body: "{version} " + (process.env.GREETING || "") + " " + process.pid}})'
    )


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=30)


def answer(node: FaasdProcess, path: str) -> str:
    """What ``GET path`` answers on ``node`` ("404" or "503 ..." when it is not a 200), the pid dropped."""
    response = get(node.url + path)
    if response.status_code != 200:
        return str(response.status_code)
    return response.text.rsplit(" ", 1)[0]


def served(node: FaasdProcess, path: str, expected: str, what: str) -> None:
    wait_for(lambda: answer(node, path) == expected, what, timeout=BOUND)


@dataclass
class Pair:
    a: FaasdProcess
    b: FaasdProcess


def start_pair(start_faasd: Callable[..., FaasdProcess], tmp_path: Path, database: str) -> Pair:
    # A small pool each, and the same registry: the nodes' own state dirs, hence owners, stay apart.
    options: dict[str, Any] = {"database": database, "default_poolsize": 1}
    a = start_faasd(tmp_path / "a", **options)
    b = start_faasd(tmp_path / "b", **options)
    assert a.owner != b.owner
    return Pair(a, b)


@pytest.fixture
def sqlite_pair(start_faasd: Callable[..., FaasdProcess], tmp_path: Path) -> Pair:
    return start_pair(start_faasd, tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.fixture
def postgres_pair(postgres_url: str, start_faasd: Callable[..., FaasdProcess], tmp_path: Path) -> Pair:
    # postgres_url first: its database is dropped after the nodes stopped, not under them.
    return start_pair(start_faasd, tmp_path, postgres_url)


def changes_propagate(pair: Pair) -> None:
    a, b = pair.a, pair.b
    # A function made through a answers through b; b had never heard of it.
    a.create_function("hello", "nodejs", code("v1"), env={"GREETING": "hi"})
    served(b, "/function/hello", "v1 hi", "b to serve the function made through a")

    # A route made through a, then moved: b follows both.
    a.ok("POST", "/v1/triggers/http", json={"name": "greet", "method": "GET", "url": "/greet", "function": "hello"})
    served(b, "/greet", "v1 hi", "b to serve a's route")
    a.ok("PATCH", "/v1/triggers/http/greet", json={"url": "/welcome"})
    served(b, "/welcome", "v1 hi", "b to serve a's moved route")
    assert answer(b, "/greet") == "404"

    # b's warm instance of v1 is replaced when a changes the code, and again when a changes a variable.
    before = b.ok("GET", "/v1/functions/hello/instances")["instances"]
    assert len(before) == 1
    a.ok("PATCH", "/v1/functions/hello", json={"code": code("v2")})
    served(b, "/welcome", "v2 hi", "b to serve a's new code")
    after = b.ok("GET", "/v1/functions/hello/instances")["instances"]
    assert before[0]["id"] not in {i["id"] for i in after}, "b still runs the instance of the old code"
    a.ok("PATCH", "/v1/functions/hello", json={"env": {"GREETING": "hello"}})
    served(b, "/function/hello", "v2 hello", "b to serve a's new environment variable")
    assert b.ok("GET", "/v1/functions/hello/versions")["items"][0]["version"] == 3

    # An update made through b reaches a the same way.
    b.ok("PATCH", "/v1/functions/hello", json={"code": code("v3")})
    served(a, "/welcome", "v3 hello", "a to serve b's new code")

    # A timer and a resource's labels made through a are b's (its scheduler plans the timer).
    a.ok("POST", "/v1/timers", json={"name": "nightly", "function": "hello", "cron": "0 3 * * *"})
    wait_for(lambda: b.api("GET", "/v1/timers/nightly").status_code == 200, "b to know a's timer", timeout=BOUND)
    assert b.ok("GET", "/v1/timers/nightly")["next_run_at"]  # planned by b's own scheduler
    a.ok("PATCH", "/v1/functions/hello", json={"labels": {"team": "web"}})
    wait_for(
        lambda: b.ok("GET", "/v1/functions/hello")["labels"] == {"team": "web"}, "b to show a's labels", timeout=BOUND
    )

    # An environment's change (its pool size) is b's too: its own pool grows to it.
    a.ok("PATCH", "/v1/environments/python", json={"poolsize": 2})
    wait_for(lambda: b.env_status("python")["poolsize"] == 2, "b to take a's pool size", timeout=BOUND)
    wait_for(lambda: b.env_status("python")["pool_ready"] == 2, "b's own python pool to fill to 2", timeout=60)

    # A forced delete through a: gone from b, with its route.
    assert a.api("DELETE", "/v1/functions/hello?force=true").status_code == 200
    served(b, "/function/hello", "404", "b to drop the function deleted through a")
    assert answer(b, "/welcome") == "404"
    assert b.api("GET", "/v1/triggers/http/greet").status_code == 404
    wait_for(lambda: b.api("GET", "/v1/timers/nightly").status_code == 404, "b to drop the timer", timeout=BOUND)

    for node in (a, b):
        ready = get(node.url + "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"


def test_changes_through_one_node_are_served_by_the_other_on_a_shared_sqlite_file(sqlite_pair: Pair) -> None:
    changes_propagate(sqlite_pair)


def test_changes_through_one_node_are_served_by_the_other_on_postgresql(postgres_pair: Pair) -> None:
    changes_propagate(postgres_pair)


# -- the registry's database unreachable ---------------------------------------------------------


@contextlib.contextmanager
def sqlite_write_lock(path: Path) -> Iterator[None]:
    """Another process's exclusive transaction on the shared SQLite file: no node can write to it (each
    waits its busy timeout, then fails) until the block ends."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


class Caller:
    """Calls ``path`` on every node in a loop, in a thread, until stopped; keeps every status it got."""

    def __init__(self, nodes: list[FaasdProcess], path: str) -> None:
        self.statuses: list[int] = []
        self._nodes = nodes
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for node in self._nodes:
                self.statuses.append(get(node.url + self._path).status_code)

    def __enter__(self) -> Caller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def refused_for_now(node: FaasdProcess) -> dict[str, Any]:
    """An admin write through ``node`` while the database cannot be reached: 503 and the error's JSON."""
    response = node.api("POST", "/v1/functions", json={"name": "later", "environment": "nodejs", "code": code("x")})
    assert response.status_code == 503, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "registry_unavailable"
    assert "cannot be reached" in error["message"]
    return error


def warm(pair: Pair) -> None:
    pair.a.create_function("hello", "nodejs", code("v1"))
    for node in (pair.a, pair.b):
        served(node, "/function/hello", "v1 ", "the function on both nodes")


def test_sqlite_locked_by_another_process_calls_go_on_and_writes_answer_503(sqlite_pair: Pair, tmp_path: Path) -> None:
    warm(sqlite_pair)
    with Caller([sqlite_pair.a, sqlite_pair.b], "/function/hello") as caller, sqlite_write_lock(tmp_path / "shared.db"):
        refused_for_now(sqlite_pair.b)
        refused_for_now(sqlite_pair.a)
        calls_then = len(caller.statuses)
        wait_for(lambda: len(caller.statuses) > calls_then + 20, "calls while the registry is locked")
    assert caller.statuses and set(caller.statuses) == {200}
    # The database is free again: a write through b goes through, and a serves it.
    sqlite_pair.b.create_function("later", "nodejs", code("back"))
    served(sqlite_pair.a, "/function/later", "back ", "a to serve the write made after the lock")


def test_postgresql_stopped_calls_go_on_writes_answer_503_and_the_follower_catches_up(
    postgres_pair: Pair, postgres: PostgresServer
) -> None:
    a, b = postgres_pair.a, postgres_pair.b
    warm(postgres_pair)
    try:
        with Caller([a, b], "/function/hello") as caller:
            postgres.stop("fast")
            refused_for_now(a)
            refused_for_now(b)
            not_ready = get(b.url + "/readyz")
            assert not_ready.status_code == 503
            assert "registry" in not_ready.json()["failing"]
            calls_then = len(caller.statuses)
            wait_for(lambda: len(caller.statuses) > calls_then + 20, "calls while PostgreSQL is down")
            postgres.start()
        assert caller.statuses and set(caller.statuses) == {200}
    finally:
        if not postgres.running:
            postgres.start()
    # Back: the first write may find the pool's old connections gone (one retry is the client's to make).
    wait_for(lambda: get(b.url + "/readyz").status_code == 200, "b to be ready again", timeout=BOUND)
    wait_for(
        lambda: a.api("PATCH", "/v1/functions/hello", json={"code": code("v2")}).status_code == 200,
        "a write through a once PostgreSQL is back",
        timeout=BOUND,
    )
    served(b, "/function/hello", "v2 ", "b's follower to catch up after the outage")
