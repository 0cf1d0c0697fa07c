"""The nodes of a cluster: rows the heartbeat upserts and reads, liveness, and the merge of their logs.

The store runs on a real SQLite file and a real PostgreSQL (the ``database`` fixture); the heartbeat on the
real store, with a short interval, and with a database that is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from faasd.app import start_services
from faasd.cluster.heartbeat import LIVE_BEATS, Heartbeat, NodeIdTaken, is_live
from faasd.cluster.logmerge import merge
from faasd.core.database import database_url
from faasd.core.settings import Settings, load_settings
from faasd.pool.logs import format_record
from faasd.store.database import migrate, open_engine
from faasd.store.nodes import NodeRecord, NodeStore
from tests.fakes import FakeBackend


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(migrate, database)
    made = open_engine(database_url(database))
    yield made
    await made.dispose()


async def test_a_beat_upserts_the_row_and_keeps_its_start(engine: AsyncEngine) -> None:
    store = NodeStore(engine)
    await store.beat("a", "http://10.0.0.1:8080", "0.1.0", starting=True)
    first = (await store.list()).nodes
    assert [(n.id, n.url, n.version) for n in first] == [("a", "http://10.0.0.1:8080", "0.1.0")]
    await store.beat("b", "http://10.0.0.2:8080", "0.1.0", starting=True)
    await store.beat("a", "http://10.0.0.9:8080", "0.2.0")  # a later beat: new URL and version, same start
    listing = await store.list()
    a, b = listing.nodes
    assert (a.id, a.url, a.version, a.started_at) == ("a", "http://10.0.0.9:8080", "0.2.0", first[0].started_at)
    assert a.last_seen >= first[0].last_seen
    assert b.id == "b"
    assert all(is_live(n, listing.now) for n in listing.nodes)


def test_a_node_is_live_within_three_heartbeats() -> None:
    node = NodeRecord("a", "http://a", 100.0, 100.0, "0.1.0")
    assert is_live(node, 100.0 + 3 * 2.0, live_seconds=3 * 2.0)
    assert not is_live(node, 100.0 + 3 * 2.0 + 0.01, live_seconds=3 * 2.0)
    assert LIVE_BEATS == 3


async def test_a_node_that_stops_beating_goes_stale_and_the_others_see_it(engine: AsyncEngine) -> None:
    a = Heartbeat(NodeStore(engine), "a", "http://a:8080", "0.1.0", interval=0.1)
    b = Heartbeat(NodeStore(engine), "b", "http://b:8080", "0.1.0", interval=0.1)
    await a.start()
    await b.start()
    try:

        async def live_of_a() -> dict[str, bool]:
            await a.beat()
            return {n.id: a.live(n, a.view.now) for n in a.view.nodes}

        assert await live_of_a() == {"a": True, "b": True}
        assert [n.id for n in a.others()] == ["b"]
        await b.close()  # b stops beating (as killed)
        deadline = asyncio.get_running_loop().time() + 10
        while (seen := await live_of_a()) != {"a": True, "b": False}:
            assert asyncio.get_running_loop().time() < deadline, f"b never went stale: {seen}"
            await asyncio.sleep(0.05)
    finally:
        await a.close()
        await b.close()


async def test_the_heartbeat_survives_a_database_that_is_gone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "faasd.db"
    await asyncio.to_thread(migrate, db)
    engine = open_engine(database_url(f"sqlite:///{db}"))
    heartbeat = Heartbeat(NodeStore(engine), "a", "http://a:8080", "0.1.0", interval=0.05)
    try:
        await heartbeat.start()
        assert [n.id for n in heartbeat.view.nodes] == ["a"]
        async with engine.begin() as connection:  # the table gone: every beat fails from now on
            await connection.exec_driver_sql("DROP TABLE nodes")
        with caplog.at_level(logging.WARNING, logger="faasd.cluster.heartbeat"):
            assert await heartbeat.beat() is False
            assert await heartbeat.beat() is False
        warnings = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
        assert len(warnings) == 1  # logged once, not at every beat
        assert [n.id for n in heartbeat.view.nodes] == ["a"]  # the last list read is kept
        async with engine.begin() as connection:
            await connection.exec_driver_sql(
                "CREATE TABLE nodes (id VARCHAR(63) PRIMARY KEY, url VARCHAR(255) NOT NULL, "
                "started_at FLOAT NOT NULL, last_seen FLOAT NOT NULL, version VARCHAR(32) NOT NULL)"
            )
        assert await heartbeat.beat() is True
    finally:
        await heartbeat.close()
        await engine.dispose()


# -- the merge of several nodes' records ------------------------------------------------------------


def rec(ms: int, text: str) -> str:
    return format_record(f"2026-11-30T10:00:00.{ms:03d}Z", "0123456789abcdef", "stdout", text)


def test_records_of_several_nodes_are_merged_by_time_each_with_its_node() -> None:
    a = [rec(1, "a1"), rec(5, "a5"), rec(7, "a7")]
    b = [rec(2, "b2"), rec(5, "b5"), rec(9, "b9")]
    merged = merge({"a": a, "b": b})
    assert merged == [
        ("a", rec(1, "a1")),
        ("b", rec(2, "b2")),
        ("a", rec(5, "a5")),  # the same millisecond: in the order the nodes are given
        ("b", rec(5, "b5")),
        ("a", rec(7, "a7")),
        ("b", rec(9, "b9")),
    ]
    assert merge({"a": a, "b": b}, tail=2) == [("a", rec(7, "a7")), ("b", rec(9, "b9"))]
    assert merge({"a": a, "b": b}, tail=0) == []
    assert merge({"a": a, "b": b}, tail=100) == merged
    assert merge({"a": a}) == [("a", r) for r in a]  # one node: its records as they are
    assert merge({"a": [], "b": []}) == []


# -- one id per node ------------------------------------------------------------------------------


def test_the_default_node_id_hashes_the_machine_name_with_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``faasd install`` gives every machine the same state dir: with --database the machine's name
    tells them apart; the default single node keeps the hash of its state dir alone (its containers'
    label)."""
    state = tmp_path / "var-lib-faasd"
    alone = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]
    shared = ["--state-dir", str(state), "--database", "postgresql://faasd@db.local/faasd"]
    monkeypatch.setattr(socket, "gethostname", lambda: "machine-a")
    on_a = load_settings(shared, {}).owner
    assert load_settings(["--state-dir", str(state)], {}).owner == alone
    monkeypatch.setattr(socket, "gethostname", lambda: "machine-b")
    on_b = load_settings(shared, {}).owner
    assert on_a != on_b and alone not in (on_a, on_b) and len(on_b) == 12
    assert load_settings(["--state-dir", str(state)], {}).owner == alone
    assert load_settings([], {"FAASD_STATE_DIR": str(state), "FAASD_DATABASE": "sqlite:////srv/x.db"}).owner != alone
    assert load_settings([*shared, "--owner-label", "node-b"], {}).owner == "node-b"


async def test_an_id_a_live_node_beats_under_is_refused_a_stopped_ones_is_taken(engine: AsyncEngine) -> None:
    other = Heartbeat(NodeStore(engine), "twin", "http://10.0.0.6:8080", "0.1.0", interval=0.1)
    await other.start()
    try:
        me = Heartbeat(NodeStore(engine), "twin", "http://10.0.0.5:8080", "0.1.0", interval=1.0)
        with pytest.raises(NodeIdTaken) as taken:
            await me.claim()
        message = str(taken.value)
        assert "\n" not in message
        assert message.startswith("node id twin is taken: a live node at http://10.0.0.6:8080 (started ")
        assert message.endswith("give each node its own --owner-label")
        await Heartbeat(NodeStore(engine), "other", "http://10.0.0.5:8080", "0.1.0", interval=0.1).claim()
    finally:
        await other.close()
    # Stopped a moment ago (a restart): its row is live still, but does not move. The same URL or another.
    for url in ("http://10.0.0.6:8080", "http://10.0.0.5:8080"):
        again = Heartbeat(NodeStore(engine), "twin", url, "0.1.0", interval=1.0)
        await again.claim()
        await again.start()
        await again.close()


async def test_a_node_whose_row_another_started_logs_it_once(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    first = Heartbeat(NodeStore(engine), "twin", "http://10.0.0.5:8080", "0.1.0", interval=60)
    second = Heartbeat(NodeStore(engine), "twin", "http://10.0.0.6:8080", "0.1.0", interval=60)
    await first.beat(starting=True)
    await second.beat(starting=True)  # both started at once: neither found the other live before
    with caplog.at_level(logging.ERROR, logger="faasd.cluster.heartbeat"):
        assert await first.beat() and await first.beat()
        assert await second.beat()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("node id twin is used by another node too (started ")


async def test_a_faasd_whose_id_a_live_node_holds_stops_at_start_with_one_line(tmp_path: Path) -> None:
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    await asyncio.to_thread(migrate, shared)
    engine = open_engine(database_url(shared))
    other = Heartbeat(NodeStore(engine), "twin", "http://10.0.0.6:8080", "0.1.0", interval=0.5)
    await other.start()
    try:
        settings = Settings(state_dir=tmp_path / "b", database=shared, owner_label="twin")
        with pytest.raises(SystemExit) as stopped:
            await start_services(settings, FakeBackend())
        line = str(stopped.value.code)
        assert line.startswith("faasd: node id twin is taken: a live node at http://10.0.0.6:8080") and "\n" not in line
    finally:
        await other.close()
        await engine.dispose()


async def test_a_node_stopped_cleanly_is_not_live_and_its_restart_does_not_wait(engine: AsyncEngine) -> None:
    first = Heartbeat(NodeStore(engine), "solo", "http://10.0.0.7:8080", "0.1.0", interval=60.0)
    await first.start()
    listing = await NodeStore(engine).list()
    assert first.live(next(n for n in listing.nodes if n.id == "solo"), listing.now)
    await first.close()  # SIGTERM: the row says the node stopped
    listing = await NodeStore(engine).list()
    row = next(n for n in listing.nodes if n.id == "solo")  # kept, for the list, as not live
    assert not first.live(row, listing.now)
    # Its restart under the same id: no live row to tell from another node, so no wait of 1.5 intervals (90 s).
    again = Heartbeat(NodeStore(engine), "solo", "http://10.0.0.7:8080", "0.1.0", interval=60.0)
    await asyncio.wait_for(again.claim(), 20)
