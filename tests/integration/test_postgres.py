"""faasd with its registry on a real PostgreSQL (--database postgresql://..., tests/postgres.py).

A faasd on PostgreSQL deploys and answers, and after a kill -9 and a restart
has everything it had; a second faasd with a state dir of its own and the same
database serves the code and the archives the first one took in (blobs in the
database, faasd/store/blobs.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests

from tests.integration.harness import FaasdProcess

HELLO = 'module.exports = async (context) => ({status: 200, body: "hello from " + context.request.url});'
PASSWORD = "not-shown-anywhere"


def with_password(url: str) -> str:
    # The test server trusts every local connection: a password is accepted and must never be logged.
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def call(daemon: FaasdProcess, path: str) -> requests.Response:
    return requests.get(daemon.url + path, timeout=30)


def test_a_faasd_on_postgresql_keeps_everything_through_a_kill_9(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path, postgres_url: str
) -> None:
    url = with_password(postgres_url)
    daemon = start_faasd(tmp_path / "state", database=url, default_poolsize=1)
    daemon.ok("POST", "/v1/environments", json={"name": "node2", "image": "faasd/runtime-nodejs:latest", "poolsize": 0})
    daemon.create_function("hello", "nodejs", HELLO, timeout=30)
    daemon.create_route("GET", "/greet/{who}", "hello")
    daemon.ok("PUT", "/v1/functions/hello", json={"env": {"MODE": "second"}})  # version 2
    first = call(daemon, "/greet/ann")
    assert (first.status_code, first.text) == (200, "hello from /greet/ann")

    daemon.kill9()
    daemon.start(wait_pools=True)

    again = call(daemon, "/greet/bob")
    assert (again.status_code, again.text) == (200, "hello from /greet/bob")
    assert {e["name"] for e in daemon.ok("GET", "/v1/environments")["items"]} >= {"nodejs", "python", "node2"}
    fn = daemon.ok("GET", "/v1/functions/hello")
    assert (fn["timeout"], fn["env"], fn["revision"]) == (30, {"MODE": "second"}, 2)
    assert [r["url"] for r in daemon.ok("GET", "/v1/triggers/http")["items"]] == ["/greet/{who}"]
    assert [v["version"] for v in daemon.ok("GET", "/v1/functions/hello/versions")["items"]] == [2, 1]
    assert daemon.api("GET", "/v1/functions/hello/code").text == HELLO
    log = daemon.log()
    assert "registry: postgresql+asyncpg://postgres:***@127.0.0.1" in log
    assert PASSWORD not in log


def test_a_blob_put_through_one_faasd_is_served_by_another(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path, postgres_url: str
) -> None:
    a = start_faasd(tmp_path / "a", database=postgres_url, default_poolsize=1)
    a.create_function("hello", "nodejs", HELLO)
    a.create_route("GET", "/hello", "hello")
    site = tmp_path / "site"
    site.mkdir()
    (site / "main.py").write_text("def main():\n    return 'from a package'\n")
    made = a.faas("pkg", "create", "--name", "site", "--env", "python", "--deploy", str(site))
    assert made.returncode == 0, made.stderr
    archive = a.api("GET", "/v1/packages/site/deploy")
    assert archive.status_code == 200

    # Another node: its own state dir (no file of a's), the same database; it reads the registry at start.
    b = start_faasd(tmp_path / "b", database=postgres_url, default_poolsize=1)
    assert not (tmp_path / "b" / "code").exists() or not any((tmp_path / "b" / "code").iterdir())
    served = call(b, "/hello")
    assert (served.status_code, served.text) == (200, "hello from /hello")
    assert b.api("GET", "/v1/functions/hello/code").text == HELLO
    copy = b.api("GET", "/v1/packages/site/deploy")
    assert (copy.status_code, copy.content) == (200, archive.content)
    sha = a.ok("GET", "/v1/packages/site")["deploy_sha256"]
    assert (tmp_path / "b" / "packages" / sha).read_bytes() == archive.content  # kept as b's own copy
