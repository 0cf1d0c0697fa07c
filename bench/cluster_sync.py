"""Cluster propagation (issue 17): how long a change made through node A takes to be served by node B.

Two faasd processes of the phase's own (bench/faasd_proc.py: own ports and state dirs, pool size 0: no
container starts) on one registry: a SQLite file they share, then a PostgreSQL database (a server of
the phase's own, tests/postgres.py, unless ``--postgres URL`` names one). For each of N changes: a
route is created through A (on one keep-alive connection, at a random moment: after a pause of 0 to
0.3 s, so that changes do not fall in step with B's polls), and from A's 201 on, B is asked for that
route every 2 ms until it answers 200 (B's follower applied the change row: B now routes calls to it).
The time from A's answer to B's first 200 is one sample; the table gives p50, p99 and the largest.
Then N function updates (a new environment variable each), timed until B shows the new revision.

    .venv/bin/python -m bench.cluster_sync             # N = 50, SQLite and PostgreSQL
    .venv/bin/python -m bench.cluster_sync --n 200 --sqlite-only
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import HELLO, BenchError, Client, exit_on_sigterm, percentile, wait_for
from bench.faasd_proc import Faasd

COUNT = 50
POLL = 0.002
JITTER = 0.3  # seconds, the most a change waits before it is made
BOUND = 10.0  # seconds a change may take before the phase gives up on it


@dataclass(frozen=True)
class Result:
    registry: str
    kind: str
    samples: list[float]  # seconds

    def row(self) -> str:
        ms = sorted(s * 1000 for s in self.samples)
        return (
            f"| {self.registry} | {self.kind} | {len(ms)} | {percentile(ms, 50):.0f} | {percentile(ms, 99):.0f} "
            f"| {ms[-1]:.0f} |"
        )


def _until(client: Client, path: str, done: Callable[[int, bytes], bool]) -> float:
    """Poll ``path`` on ``client`` until ``done``; the time it took (seconds)."""
    began = time.perf_counter()
    while True:
        status, body = client.request("GET", path)
        if done(status, body):
            return time.perf_counter() - began
        if time.perf_counter() - began > BOUND:
            raise BenchError(f"node B did not serve {path} within {BOUND:.0f} s")
        time.sleep(POLL)


def has_revision(revision: int) -> Callable[[int, bytes], bool]:
    marker = f'"revision": {revision},'.encode()
    return lambda status, body: status == 200 and marker in body


def measure(database: str, registry: str, count: int) -> list[Result]:
    a = Faasd("", poolsize=0, idle_timeout=120, extra_args=["--database", database])
    b = Faasd("", poolsize=0, idle_timeout=120, extra_args=["--database", database])
    try:
        a.start()
        b.start()
        ca, cb = a.client(), b.client()
        ca.json(
            "POST", "/v1/functions", {"name": "hello", "environment": "nodejs", "code": HELLO["nodejs"]}, expect=201
        )
        wait_for(lambda: cb.request("GET", "/v1/functions/hello")[0] == 200, BOUND, "B to know the function")
        run = int(time.time())
        routes = []
        for i in range(count):
            time.sleep(random.uniform(0, JITTER))
            name = f"r{run}-{i}"
            ca.json("POST", "/v1/triggers/http", {"name": name, "url": f"/{name}", "function": "hello"}, expect=201)
            routes.append(_until(cb, f"/v1/triggers/http/{name}", lambda status, _body: status == 200))
        updates = []
        for i in range(count):
            time.sleep(random.uniform(0, JITTER))
            revision = ca.json("PATCH", "/v1/functions/hello", {"env": {"N": str(i)}})["revision"]
            updates.append(_until(cb, "/v1/functions/hello", has_revision(revision)))
        ca.close()
        cb.close()
        return [Result(registry, "route create", routes), Result(registry, "function update", updates)]
    finally:
        for node in (b, a):
            node.stop()
            node.close()


@contextlib.contextmanager
def postgres_database(url: str) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.postgres import running_postgres

    with running_postgres() as server:
        yield server.url(server.create_database())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=COUNT, help="changes of each kind per registry")
    parser.add_argument("--postgres", default="", help="a PostgreSQL database URL (default: a server of our own)")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    exit_on_sigterm()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="faasd-cluster-sync-") as folder:
        results += measure(f"sqlite:///{Path(folder) / 'shared.db'}", "SQLite file (shared)", args.n)
    if not args.sqlite_only:
        with postgres_database(args.postgres) as url:
            results += measure(url, "PostgreSQL", args.n)
    print("| registry | change | n | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(result.row())


if __name__ == "__main__":
    main()
