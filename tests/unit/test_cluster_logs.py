"""A function's logs through one node of several: real admin apps on real ports, one real SQLite file.

Nodes a and b are two AdminApi apps (faasd/control/api.py) with logs of their own and heartbeats on one
registry file; a asks b over HTTP. The controller is a stand-in that knows function ``f``. `faas fn logs`
runs against them too.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner, Result

from faas_cli.main import app
from faasd.app import error_middleware
from faasd.cluster.heartbeat import Heartbeat
from faasd.control.api import AdminApi
from faasd.control.function_logs import ClusterLogs
from faasd.core.database import database_url
from faasd.core.settings import load_settings
from faasd.pool.logs import FunctionLogs, format_record
from faasd.store.database import migrate, open_engine
from faasd.store.nodes import NodeStore


def rec(ms: int, text: str) -> str:
    return format_record(f"2026-11-30T10:00:00.{ms:03d}Z", "0123456789abcdef", "stdout", text)


@dataclass
class Node:
    name: str
    logs: FunctionLogs
    heartbeat: Heartbeat
    client: TestClient[Any, Any]


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    db = tmp_path / "faasd.db"
    await asyncio.to_thread(migrate, db)
    engine = open_engine(database_url(f"sqlite:///{db}"))
    session = aiohttp.ClientSession()
    made: dict[str, Node] = {}
    try:
        for name in ("a", "b"):
            controller = mock.MagicMock()
            controller.catalog.functions = {"f": object()}
            logs = FunctionLogs(tmp_path / name)
            heartbeat = Heartbeat(NodeStore(engine), name, "", "0.1.0", interval=0.2)
            api = AdminApi(controller, mock.MagicMock(), logs, node=name)
            api.cluster_logs = ClusterLogs(api.local_logs, heartbeat, session, "token")
            web_app = web.Application(middlewares=[error_middleware])
            api.add_routes(web_app)
            client: TestClient[Any, Any] = TestClient(TestServer(web_app))
            await client.start_server()
            heartbeat.url = str(client.make_url("")).rstrip("/")
            made[name] = Node(name, logs, heartbeat, client)
        yield made
    finally:
        for node in made.values():
            await node.heartbeat.close()
            await node.client.close()
            await node.logs.close()
        await session.close()
        await engine.dispose()


async def test_one_node_answers_as_it_always_did(nodes: dict[str, Node]) -> None:
    a = nodes["a"]
    await a.heartbeat.start()  # b never beats: a is alone in the registry
    a.logs.append("f", [rec(1, "one"), rec(2, "two")])
    answer = await a.client.get("/v1/functions/f/logs")
    assert await answer.read() == f"{rec(1, 'one')}\n{rec(2, 'two')}\n".encode()
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Faasd-Nodes" not in answer.headers and "Faasd-Nodes-Missing" not in answer.headers


async def test_the_records_of_every_node_merged_by_time_each_with_its_node(nodes: dict[str, Node]) -> None:
    a, b = nodes["a"], nodes["b"]
    await b.heartbeat.start()
    await a.heartbeat.start()
    a.logs.append("f", [rec(1, "a1"), rec(5, "a5")])
    b.logs.append("f", [rec(2, "b2"), rec(9, "b9")])

    answer = await a.client.get("/v1/functions/f/logs")
    assert (await answer.text()).splitlines() == [rec(1, "a1"), rec(2, "b2"), rec(5, "a5"), rec(9, "b9")]
    assert answer.headers["Faasd-Nodes"] == "a,b"
    assert "Faasd-Nodes-Missing" not in answer.headers

    tagged = await a.client.get("/v1/functions/f/logs?format=json&tail=3")
    assert tagged.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert [json.loads(line) for line in (await tagged.text()).splitlines()] == [
        {"node": "b", "line": rec(2, "b2")},
        {"node": "a", "line": rec(5, "a5")},
        {"node": "b", "line": rec(9, "b9")},
    ]

    only_b = await a.client.get("/v1/functions/f/logs?node=b", headers={"Accept": "application/x-ndjson"})
    assert [json.loads(line)["node"] for line in (await only_b.text()).splitlines()] == ["b", "b"]
    assert only_b.headers["Faasd-Nodes"] == "b"

    unknown = await a.client.get("/v1/functions/f/logs?node=zz")
    assert unknown.status == 400
    assert "no node 'zz'" in (await unknown.json())["error"]["message"]
    bad = await a.client.get("/v1/functions/f/logs?node=Not%20A%20Node")
    assert bad.status == 400
    assert (await a.client.get("/v1/functions/f/logs?format=xml")).status == 400


async def test_a_node_that_does_not_answer_is_named_and_the_others_still_answer(nodes: dict[str, Node]) -> None:
    a, b = nodes["a"], nodes["b"]
    await b.heartbeat.start()
    await a.heartbeat.start()
    a.logs.append("f", [rec(1, "a1")])
    await b.heartbeat.close()
    await b.client.close()  # b's port is closed now; its row is still live

    answer = await a.client.get("/v1/functions/f/logs")
    assert answer.status == 200
    assert (await answer.text()).splitlines() == [rec(1, "a1")]
    assert answer.headers["Faasd-Nodes"] == "a"
    assert answer.headers["Faasd-Nodes-Missing"] == "b"
    relayed = await a.client.get("/v1/functions/f/logs?node=b")
    assert relayed.status == 502
    assert "node 'b'" in (await relayed.json())["error"]["message"]


async def test_a_follow_follows_this_node_and_says_so_first(nodes: dict[str, Node]) -> None:
    a, b = nodes["a"], nodes["b"]
    await b.heartbeat.start()
    await a.heartbeat.start()
    a.logs.append("f", [rec(1, "a1")])
    b.logs.append("f", [rec(2, "b2")])
    answer = await a.client.get("/v1/functions/f/logs?follow=true")
    assert answer.headers["Faasd-Nodes"] == "a" and answer.headers["Faasd-Nodes-Missing"] == "b"
    first = (await answer.content.readline()).decode()
    assert " faasd faasd following node a only; the lines of node(s) b are not shown" in first
    assert await answer.content.readline() == (rec(1, "a1") + "\n").encode()
    a.logs.append("f", [rec(3, "a3")])
    assert await answer.content.readline() == (rec(3, "a3") + "\n").encode()
    answer.close()


async def test_a_node_whose_url_reaches_another_is_named_missing_not_shown_twice(nodes: dict[str, Node]) -> None:
    a, b = nodes["a"], nodes["b"]
    b.heartbeat.url = a.heartbeat.url  # b advertises a URL that reaches a (as 0.0.0.0 would on one machine)
    await b.heartbeat.start()
    await a.heartbeat.start()
    a.logs.append("f", [rec(1, "a1")])
    answer = await a.client.get("/v1/functions/f/logs")
    assert (await answer.text()).splitlines() == [rec(1, "a1")]  # a's record once, never as b's
    assert answer.headers["Faasd-Nodes-Missing"] == "b"


def test_the_advertised_url_defaults_to_host_and_port_and_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_settings(["--port", "9001"], {}).node_url == "http://127.0.0.1:9001"
    assert load_settings(["--host", "::1"], {}).node_url == "http://[::1]:8080"
    assert load_settings(["--host", "0.0.0.0"], {}).node_url == f"http://{socket.gethostname()}:8080"
    given = load_settings([], {"FAASD_ADVERTISE_URL": "http://10.0.0.5:8080/"})
    assert given.node_url == "http://10.0.0.5:8080"
    with pytest.raises(SystemExit):
        load_settings(["--advertise-url", "10.0.0.5:8080"], {})
    assert "--advertise-url must be an http(s) URL" in capsys.readouterr().err


def faas_logs(node: Node, *args: str) -> Result:
    url = node.heartbeat.url
    return CliRunner().invoke(app, ["--server", url, "fn", "logs", "--name", "f", *args], env={"FAAS_TOKEN": "t"})


async def test_faas_fn_logs_shows_each_lines_node_and_names_the_missing_on_stderr(nodes: dict[str, Node]) -> None:
    a, b = nodes["a"], nodes["b"]
    a.logs.append("f", [rec(1, "a1")])
    b.logs.append("f", [rec(2, "b2")])
    await a.heartbeat.start()
    alone = await asyncio.to_thread(faas_logs, a)  # b has not beaten yet: a is alone, and prints as ever
    assert alone.exit_code == 0, alone.output
    assert alone.stdout == f"{rec(1, 'a1')}\n" and alone.stderr == ""

    await b.heartbeat.start()
    await a.heartbeat.beat()
    both = await asyncio.to_thread(faas_logs, a)
    assert both.exit_code == 0, both.output
    assert both.stdout.splitlines() == [f"a {rec(1, 'a1')}", f"b {rec(2, 'b2')}"]
    assert both.stderr == ""

    await b.heartbeat.close()
    await b.client.close()
    missing = await asyncio.to_thread(faas_logs, a)
    assert missing.exit_code == 0, missing.output
    assert missing.stdout.splitlines() == [f"a {rec(1, 'a1')}"]
    assert missing.stderr == "no lines from node(s) b: they did not answer or are not live (faas node list)\n"
    relayed = await asyncio.to_thread(faas_logs, a, "--node", "b")
    assert relayed.exit_code == 1
    assert relayed.stderr.startswith("error: node 'b' at ") and len(relayed.stderr.splitlines()) == 1


async def test_a_follow_of_another_node_is_relayed_as_it_streams(nodes: dict[str, Node]) -> None:
    a, b = nodes["a"], nodes["b"]
    await b.heartbeat.start()
    await a.heartbeat.start()
    b.logs.append("f", [rec(2, "b2")])
    answer = await a.client.get("/v1/functions/f/logs?node=b&follow=true")
    assert answer.headers["Faasd-Nodes"] == "b"
    assert await answer.content.readline() == (rec(2, "b2") + "\n").encode()
    b.logs.append("f", [rec(4, "b4")])
    assert await answer.content.readline() == (rec(4, "b4") + "\n").encode()
    b.logs.remove("f")  # b's follow ends: so does the relay
    assert await answer.content.read() == b""
