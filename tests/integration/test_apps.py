"""The example applications (examples/) deployed with the `faas` CLI, used over HTTP, checked in Redis.

One faasd and one Redis for the module: the Redis runs on a Docker network of
its own (tests/integration/brokers.py), and every function is attached to
that network (`--network`), where it reaches Redis as redis:6379, as the
examples' READMEs do with docker compose's network faasd-apps. faasd itself
(message-queue triggers) and this test reach Redis at its address on the host.
The packages' dependencies (redis from PyPI, redis from npm) are installed by
the environments' builders through the machine's registries, as a user's
first deploy would (tests/integration/test_packages.py).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import pytest
import redis
import requests

from tests.integration.brokers import RedisServer, redis_server_fixture  # noqa: F401
from tests.integration.harness import ROOT, FaasdProcess, wait_for

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def apps(redis_server: RedisServer, engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """faasd for the module (after the Redis, so it goes first at teardown)."""
    daemon = FaasdProcess(tmp_path_factory.mktemp("apps"), engine, default_poolsize=1, build_timeout=180)
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


@pytest.fixture(scope="module")
def rdb(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def faas(daemon: FaasdProcess, *args: str) -> str:
    done = daemon.faas(*args)
    assert done.returncode == 0, f"faas {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def deploy(daemon: FaasdProcess, server: RedisServer, app: str, *args: str) -> str:
    """`faas deploy examples/APP ... --setenv REDIS_URL=... --network ...`; the URL it prints."""
    out = faas(
        daemon,
        "deploy",
        str(EXAMPLES / app),
        *args,
        "--setenv",
        f"REDIS_URL={server.inside_url}",
        "--network",
        server.network,
    )
    return out.strip().splitlines()[-1]


def test_the_address_book_adds_entries_and_escapes_them(
    apps: FaasdProcess, redis_server: RedisServer, rdb: redis.Redis
) -> None:
    url = deploy(apps, redis_server, "addressbook", "--env", "python", "--method", "GET", "--method", "POST")
    assert url == f"{apps.url}/addressbook"

    empty = requests.get(url, timeout=60)
    assert empty.status_code == 200, empty.text
    assert empty.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<form method="post" action="/addressbook">' in empty.text
    assert 'name="name"' in empty.text and 'name="phone"' in empty.text and 'name="email"' in empty.text
    assert "No entries yet." in empty.text

    ada = {"name": "Ada Lovelace", "phone": "+44 20 7946 0000", "email": "ada@example.org"}
    added = requests.post(url, data=ada, allow_redirects=False, timeout=60)
    assert added.status_code == 303, added.text
    assert added.headers["Location"] == "/addressbook"
    ids = rdb.lrange("addressbook:entries", 0, -1)
    assert len(ids) == 1
    stored = rdb.hgetall(f"addressbook:entry:{ids[0]}")
    assert {k: stored[k] for k in ada} == ada

    # A browser follows the 303 with a GET: the entry is on the page.
    page = requests.post(url, data={"name": "Grace Hopper", "email": "grace@example.org"}, timeout=60)
    assert page.status_code == 200
    assert [r.status_code for r in page.history] == [303]
    assert "Ada Lovelace" in page.text and "+44 20 7946 0000" in page.text and "grace@example.org" in page.text
    assert "Address book (2)" in page.text

    # What a user typed is escaped, never markup.
    hostile = {"name": "<script>alert('x')</script>", "phone": '"><img src=x onerror=alert(1)>'}
    assert requests.post(url, data=hostile, allow_redirects=False, timeout=60).status_code == 303
    shown = requests.get(url, timeout=60).text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in shown
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in shown
    assert "<script>" not in shown and "<img" not in shown
    assert hostile["name"] in {
        rdb.hget(f"addressbook:entry:{i}", "name") for i in rdb.lrange("addressbook:entries", 0, -1)
    }

    # Not an entry: a 400 with the reason, and nothing stored.
    refused = requests.post(url, data={"name": "No Contact"}, allow_redirects=False, timeout=60)
    assert refused.status_code == 400
    assert "Give a phone number or an email address" in refused.text
    assert rdb.llen("addressbook:entries") == 3
    listed = requests.get(url, params={"format": "json"}, timeout=60).json()["entries"]
    assert [e["name"] for e in listed] == ["<script>alert('x')</script>", "Ada Lovelace", "Grace Hopper"]


ADS = [
    {"id": "shoes", "advertiser": "acme", "url": "https://acme.example/shoes?utm=faasd", "cpc": "0.25"},
    {"id": "hats", "advertiser": "acme", "url": "https://acme.example/hats", "cpc": "1.10"},
    {"id": "books", "advertiser": "globex", "url": "https://globex.example/books/", "cpc": "0.07"},
    {"id": "umbrellas", "advertiser": "umbrella", "url": "http://umbrella.example/", "cpc": "3"},
]
CLICKS = 1000
CLICKERS = 8


def clicks_settled(daemon: FaasdProcess, rdb: redis.Redis, delivered: int) -> bool:
    """The group has read the whole stream and holds nothing unacknowledged, and the trigger made
    ``delivered`` calls in all."""
    groups = {g["name"]: g for g in rdb.xinfo_groups("clicks")}
    group = groups.get("faasd-clicks")
    if group is None or group["pending"] != 0:
        return False
    last = rdb.xinfo_stream("clicks")["last-generated-id"]
    state = daemon.ok("GET", "/v1/triggers/mq/clicks")
    return bool(group["last-delivered-id"] == last and state["delivered"] >= delivered)


def test_the_ad_server_redirects_at_once_and_bills_every_click_once(
    apps: FaasdProcess, redis_server: RedisServer, rdb: redis.Redis
) -> None:
    base = deploy(
        apps, redis_server, "adserver", "--env", "python", "--route", "/ads", "--method", "GET", "--method", "POST"
    )
    faas(apps, "route", "create", "--url", "/ads/{id}/click", "--function", "adserver")
    faas(apps, "route", "create", "--url", "/ads/report", "--function", "adserver")
    faas(
        apps,
        "fn",
        "create",
        "--name",
        "settle",
        "--pkg",
        "adserver",
        "--entrypoint",
        "settle.main",
        "--setenv",
        f"REDIS_URL={redis_server.inside_url}",
        "--network",
        redis_server.network,
    )
    created = faas(
        apps,
        "mqtrigger",
        "create",
        "--name",
        "clicks",
        "--function",
        "settle",
        "--mqtype",
        "redis",
        "--topic",
        "clicks",
        "--errortopic",
        "clicks-errors",
        "--maxretries",
        "5",
        "--maxconcurrency",
        "20",
        "--connection",
        redis_server.url,
    )
    assert "mqtrigger 'clicks' created" in created
    for ad in ADS:
        made = requests.post(base, json=ad, timeout=60)
        assert made.status_code == 201, made.text
    assert requests.post(base, json={**ADS[0], "url": "javascript:alert(1)"}, timeout=60).status_code == 400
    assert requests.get(f"{base}/nope/click", allow_redirects=False, timeout=60).status_code == 404

    # 1,000 clicks from a few clients at once, spread unevenly over the ads.
    plan = [ADS[(i * i + i // 7) % len(ADS)] for i in range(CLICKS)]
    local = threading.local()

    def click(ad: dict[str, str]) -> tuple[int, str]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        answer = local.session.get(f"{base}/{ad['id']}/click", allow_redirects=False, timeout=60)
        return answer.status_code, answer.headers.get("Location", "")

    with ThreadPoolExecutor(CLICKERS) as pool:
        answers = list(pool.map(click, plan))
    assert answers == [(302, ad["url"]) for ad in plan]
    assert rdb.xlen("clicks") == CLICKS

    wait_for(lambda: clicks_settled(apps, rdb, CLICKS), "every click settled", timeout=60, every=0.5)
    counted = Counter(ad["id"] for ad in plan)
    expected: dict[str, dict[str, int]] = {}
    for ad in ADS:
        totals = expected.setdefault(ad["advertiser"], {"clicks": 0, "cents": 0})
        totals["clicks"] += counted[ad["id"]]
        totals["cents"] += counted[ad["id"]] * round(float(ad["cpc"]) * 100)

    def report() -> dict[str, Any]:
        answer = requests.get(f"{base}/report", timeout=60)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    first = report()
    assert {name: {"clicks": a["clicks"], "cents": a["cents"]} for name, a in first["advertisers"].items()} == expected
    assert first["total"]["clicks"] == CLICKS
    assert first["unsettled_clicks"] == 0
    assert first["advertisers"]["acme"]["amount"] == f"{expected['acme']['cents'] / 100:.2f}"
    assert rdb.xlen("clicks-errors") == 0

    # Every click again, as after a lost acknowledgement: the group is set back to the stream's
    # start, so the trigger delivers all 1,000 messages a second time. Nothing is billed twice.
    rdb.xgroup_setid("clicks", "faasd-clicks", "0")
    wait_for(lambda: clicks_settled(apps, rdb, 2 * CLICKS), "every click delivered again", timeout=60, every=0.5)
    assert report()["advertisers"] == first["advertisers"]
    assert len(list(rdb.scan_iter("billing:settled:*", count=1000))) == CLICKS
    faas(apps, "mqtrigger", "delete", "--name", "clicks")


def test_votes_from_many_clients_are_all_counted(
    apps: FaasdProcess, redis_server: RedisServer, rdb: redis.Redis
) -> None:
    url = deploy(
        apps,
        redis_server,
        "voting",
        "--env",
        "nodejs",
        "--route",
        "/vote",
        "--method",
        "GET",
        "--method",
        "POST",
        "--setenv",
        "CHOICES=tabs,spaces,both",
    )
    faas(apps, "route", "create", "--url", "/vote/results", "--function", "voting")

    page = requests.get(url, timeout=60)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    for choice in ("tabs", "spaces", "both"):
        assert f'<button name="choice" value="{choice}">' in page.text
    assert '"/vote/results"' in page.text  # the page polls the results

    # 6 clients, 40 votes each, some as JSON and some as a browser's form.
    ballots = [[("tabs", "spaces", "both", "tabs")[(c + i) % 4] for i in range(40)] for c in range(6)]

    def vote(ballot: list[str]) -> list[int]:
        seen = []
        with requests.Session() as session:
            for i, choice in enumerate(ballot):
                if i % 5 == 0:
                    answer = session.post(url, data={"choice": choice}, timeout=60)
                    assert answer.headers["Content-Type"].startswith("text/html")
                    assert f"Thank you for voting {choice}." in answer.text
                else:
                    answer = session.post(url, json={"choice": choice}, timeout=60)
                    seen.append(answer.json()["total"])
                assert answer.status_code == 200, answer.text
        return seen

    with ThreadPoolExecutor(len(ballots)) as pool:
        totals_seen = [t for seen in pool.map(vote, ballots) for t in seen]
    assert len(set(totals_seen)) == len(totals_seen), "each vote's answer counts it: no two see the same total"

    expected = Counter(choice for ballot in ballots for choice in ballot)
    results = requests.get(f"{url}/results", timeout=60).json()
    assert results == {"question": "Tabs or spaces?", "choices": dict(expected), "total": 240}
    assert {k: int(v) for k, v in rdb.hgetall("votes:main").items()} == dict(expected)

    refused = requests.post(url, json={"choice": "emacs"}, timeout=60)
    assert refused.status_code == 400
    assert refused.json()["choices"] == ["tabs", "spaces", "both"]
    shown = requests.get(url, timeout=60).text
    assert f'<span id="total">{240}</span>' in shown


def test_the_watch_notifier_records_a_labelled_container_that_starts(
    apps: FaasdProcess, redis_server: RedisServer, rdb: redis.Redis, engine: docker.DockerClient
) -> None:
    url = deploy(apps, redis_server, "watch-notifier", "--env", "python", "--name", "notifier", "--route", "/started")
    assert url == f"{apps.url}/started"
    mark = uuid.uuid4().hex[:12]
    faas(
        apps,
        "watch",
        "create",
        "--name",
        "started",
        "--function",
        "notifier",
        "--type",
        "container",
        "--event",
        "added",
        "--label",
        f"faasd-test-apps={mark}",
    )
    wait_for(lambda: all(w["connected"] for w in apps.status()["events"]["watches"]), "the watch to follow the engine")
    assert requests.get(url, timeout=60).json() == {"started": []}

    labels = {"app": "demo", "faasd-test-apps": mark}
    container = engine.containers.run(
        "faasd/runtime-python:latest",
        entrypoint=["python3", "-c", "import time; time.sleep(30)"],
        name=f"faasd-test-demo-{mark}",
        labels=labels,
        network_mode="none",
        detach=True,
    )
    try:
        record = wait_for(
            lambda: rdb.hgetall(f"containers:{container.id}"), "the start recorded in Redis", timeout=60, every=0.3
        )
        assert record["name"] == f"faasd-test-demo-{mark}"
        # The container's labels, with the image's (Config.Labels, as docker inspect shows them).
        recorded_labels = json.loads(record["labels"])
        assert {k: recorded_labels.get(k) for k in labels} == labels
        assert record["image"] == "faasd/runtime-python:latest"
        assert record["watch"] == "started"
        listed = requests.get(url, timeout=60).json()["started"]
        assert [(s["id"], s["name"], s["labels"]) for s in listed] == [(container.id, record["name"], recorded_labels)]

        # Each start is recorded: a restart is a second one.
        container.restart(timeout=0)
        wait_for(lambda: rdb.llen("containers:started") == 2, "the restart recorded", timeout=60, every=0.3)
        again = requests.get(url, timeout=60).json()["started"]
        assert [s["id"] for s in again] == [container.id, container.id]
        assert again[0]["started_at"] > again[1]["started_at"] == listed[0]["started_at"]
    finally:
        container.remove(force=True)
    # The container's create is an added event too, but only its starts are recorded.
    assert rdb.llen("containers:started") == 2
    # A caller cannot pose as the watch: faasd strips its X-Faasd-* headers, the function sees a plain POST.
    forged = requests.post(
        f"{apps.url}/function/notifier",
        json={"Id": "forged", "State": {"Running": True}},
        headers={"X-Faasd-Trigger": "watch", "X-Faasd-Event-Action": "start"},
        timeout=60,
    )
    assert forged.status_code == 405, forged.text
    assert rdb.llen("containers:started") == 2
    faas(apps, "watch", "delete", "--name", "started")


def test_the_examples_readmes_name_what_the_tests_deploy() -> None:
    """Each example has its README, and the README's commands are the ones tested here."""
    for app, needle in {
        "addressbook": "faas deploy addressbook --env python",
        "adserver": "faas mqtrigger create --name clicks --function settle --mqtype redis --topic clicks",
        "voting": "faas deploy voting --env nodejs",
        "watch-notifier": "faas watch create --name started --function notifier --type container",
    }.items():
        readme = (EXAMPLES / app / "README.md").read_text()
        assert needle in readme, f"examples/{app}/README.md lacks {needle!r}"
