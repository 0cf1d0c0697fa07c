"""Message queues: a Redis Streams trigger's messages per second and publish-to-answer latency.

A faasd of the phase's own (bench/faasd_proc.py: free loopback port,
temporary state dir, pool size 1) and a Redis of its own
(a container of faasd/broker-redis:latest, built by `make images`, on a
Docker bridge network of its own, as tests/integration/brokers.py starts one;
faasd and the suite reach it at its address on that bridge). One Python function that answers the
message's body, called once synchronously first so that an instance is warm
(one instance takes 50 calls at once, faasd's default concurrency). Every
trigger has a topic, a response stream and an error stream of its own
(``maxretries`` 3). Times come from the Redis stream entry ids (the server's
clock in ms, so publish and answer need no clock of the suite's; a difference
is good to +-1 ms):

- messages per second: a trigger with ``maxconcurrency`` 50 (then 10, time
  allowing), connected; N messages published in one pipeline (the trigger
  reads while they arrive); rate = N / (first published entry's ms to the
  last answer entry's ms on the response stream). Cross-checked on the
  suite's clock: the pipeline sent to ``XLEN`` of the response stream seen at
  N (polled every 20 ms). Every message must be answered (2xx); answers twice
  (at least once delivery) and error-stream entries are counted;
- publish to answer: on an idle trigger (``maxconcurrency`` 50, its own
  streams, one warm-up message first, not counted), M messages published one
  at a time, one every 20 ms; per message, its answer's entry ms minus its own
  entry ms (matched by the answer's ``message_id`` field).

For comparison: Fission's mqtriggers of kind ``keda`` are scaled by KEDA,
which polls the broker every 30 s by default (``pollingInterval``); faasd
reads the stream itself (a blocking ``XREADGROUP``).

Every loop is bounded by count and by the phase's time bound (a sample that
would start past it is not taken; n is in the table). The triggers and the
function are deleted; faasd is stopped with SIGTERM (it removes its
containers), anything left with its ``faasd.owner`` label is removed, and
its state dir goes; the Redis container and its network are removed.

    .venv/bin/python -m bench.mq            # N=5000 (maxconcurrency 50, 10), M=200
    .venv/bin/python -m bench.mq --quick    # N=200, M=20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker.errors
import redis

from bench.common import ENVIRONMENTS, BenchError, Client, Deadline, exit_on_sigterm, percentile, wait_for
from bench.engine import Engine
from bench.faasd_proc import Faasd

DEFAULT_LIMIT = 180.0  # seconds for the whole phase
POOLSIZE = 1
CONCURRENCIES = (50, 10)  # maxconcurrency of the throughput triggers; the later ones only time allowing
MAXRETRIES = 3
XLEN_POLL = 0.02  # seconds between XLEN polls of the response stream
DRAIN_TIMEOUT = 120.0  # every message of one throughput run answered, at most
LATENCY_INTERVAL = 0.02  # seconds between the latency run's publishes
ANSWER_TIMEOUT = 30.0  # the latency run's last answer after its last publish, at most
CONNECT_TIMEOUT = 30.0  # a new trigger connected
CALL_TIMEOUT = 30.0
SETTLE_TIMEOUT = 60.0
PAGE = 1000  # entries per XRANGE
KEDA_POLLING_S = 30  # KEDA's default pollingInterval (Fission's keda mqtriggers)
REDIS_IMAGE = "faasd/broker-redis:latest"
REDIS_PORT = 6379
REDIS_TIMEOUT = 60.0  # the broker answering PING after its start, at most

# Answers the message's body (the runner publishes it to the response stream).
ECHO = "def main(context):\n    return context.request.body\n"


@dataclass(frozen=True)
class Throughput:
    maxconcurrency: int
    asked: int  # N
    published: int
    answered: int  # distinct messages answered 2xx
    twice: int  # answers beyond one per message (at least once delivery)
    errors: int  # entries on the error stream
    publish_ms: float  # first to last published entry (Redis clock)
    span_ms: float  # first published entry to the last answer entry (Redis clock)
    client_s: float  # the suite's clock: pipeline sent to XLEN seen at N (NaN when never seen)

    @property
    def rate(self) -> float:
        return self.answered / (self.span_ms / 1000) if self.span_ms > 0 else math.nan

    @property
    def client_rate(self) -> float:
        return self.published / self.client_s if self.client_s > 0 else math.nan


@dataclass(frozen=True)
class MqResult:
    poolsize: int
    redis_version: str
    throughput: list[Throughput]
    skipped: list[int]  # maxconcurrency runs left out for time
    latency_asked: int  # M
    latency: list[float]  # ms per answered message
    latency_unanswered: int
    latency_interval_ms: float
    owner: str

    def at(self, maxconcurrency: int) -> Throughput | None:
        return next((t for t in self.throughput if t.maxconcurrency == maxconcurrency), None)


# -- the broker ---------------------------------------------------------------------------------


class RedisBroker:
    """A Redis container on a bridge network of its own (made as tests/integration/brokers.py makes
    one, without the static address: it is never restarted). Both carry the suite's labels
    (``faasd.bench.run=<run id>``); ``close()`` removes the container, then the network."""

    def __init__(self, engine: Engine) -> None:
        self.api = engine.client.api
        token = secrets.token_hex(4)
        self.network = f"faasd-bench-mq-{token}"
        self.name = f"faasd-bench-redis-{token}"
        self.labels = {"faasd.bench": "1", "faasd.bench.run": engine.run_id, "faasd.bench.broker": "redis"}
        self.container_id = ""
        self.network_id = ""
        self.ip = ""

    @property
    def url(self) -> str:
        return f"redis://{self.ip}:{REDIS_PORT}"

    def open(self) -> RedisBroker:
        try:
            self.api.inspect_image(REDIS_IMAGE)
        except docker.errors.ImageNotFound:
            raise BenchError(f"{REDIS_IMAGE} is missing; run 'make images' (faasd images build --brokers)") from None
        try:
            self.network_id = self.api.create_network(self.network, driver="bridge", labels=self.labels)["Id"]
            endpoint = self.api.create_endpoint_config(aliases=["redis"])
            container = self.api.create_container(
                REDIS_IMAGE,
                name=self.name,
                labels=self.labels,
                host_config=self.api.create_host_config(),
                networking_config=self.api.create_networking_config({self.network: endpoint}),
            )
            self.container_id = container["Id"]
            self.api.start(self.container_id)
            state = self.api.inspect_container(self.container_id)
            self.ip = str(state["NetworkSettings"]["Networks"][self.network]["IPAddress"])
            wait_for(self._ready, REDIS_TIMEOUT, f"Redis at {self.url} to answer PING", interval=0.1)
        except BaseException:
            self.close()
            raise
        return self

    def _ready(self) -> bool:
        if not self.api.inspect_container(self.container_id)["State"].get("Running"):
            logs = self.api.logs(self.container_id, tail=20).decode(errors="replace")
            raise BenchError(f"{self.name} is not running: {logs}")
        client = redis.Redis(host=self.ip, port=REDIS_PORT, socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:  # not listening yet, or still loading its data
            return False
        finally:
            client.close()

    def close(self) -> None:
        """Remove the container and the network; idempotent."""
        if self.container_id:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(self.container_id, force=True, v=True)
            self.container_id = ""
        if self.network_id:
            for _ in range(20):  # the engine may take a moment to detach the removed container
                try:
                    self.api.remove_network(self.network_id)
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError as exc:
                    if "active endpoints" not in str(exc):
                        raise
                    time.sleep(0.5)
            else:
                print(f"mq: left the network {self.network} behind (endpoints still attached)", file=sys.stderr)
            self.network_id = ""


# -- Redis helpers ------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_ms(entry_id: bytes | str) -> int:
    """The ms timestamp of a stream entry id ``<ms>-<seq>`` (Redis's clock)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def read_stream(client: redis.Redis, stream: str) -> list[tuple[str, dict[str, str]]]:
    """Every entry of ``stream`` (id, fields without the body), read in pages."""
    out: list[tuple[str, dict[str, str]]] = []
    low = "-"
    while True:
        page: Any = client.xrange(stream, min=low, max="+", count=PAGE)
        for entry_id, fields in page:
            out.append(
                (entry_id.decode(), {k.decode(): v.decode(errors="replace") for k, v in fields.items() if k != b"body"})
            )
        if len(page) < PAGE:
            return out
        low = "(" + page[-1][0].decode()


def answers_of(entries: list[tuple[str, dict[str, str]]]) -> dict[str, int]:
    """message_id -> ms of its first 2xx answer entry."""
    first: dict[str, int] = {}
    for entry_id, fields in entries:
        if fields.get("status", "").startswith("2"):
            first.setdefault(fields.get("message_id", ""), entry_ms(entry_id))
    return first


# -- faasd helpers ------------------------------------------------------------------------------


def _settle(faasd: Faasd, admin: Client) -> None:
    wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), SETTLE_TIMEOUT, "pools to refill", interval=0.02)


def _warm_function(faasd: Faasd, admin: Client, calls: Client, name: str) -> None:
    """Create the echo function and call it once synchronously: an instance of it is warm."""
    _settle(faasd, admin)
    admin.json("POST", "/v1/functions", {"name": name, "environment": "python", "code": ECHO}, expect=201)
    status, raw = calls.request("POST", f"/function/{name}", {"warm": True})
    if status != 200:
        raise BenchError(f"POST /function/{name}: {status} {raw[:200]!r}")
    _settle(faasd, admin)


def _trigger(admin: Client, name: str, function: str, topic: str, maxconcurrency: int, url: str) -> None:
    """Create a Redis trigger (its streams: topic, topic-answers, topic-errors) and wait until it is connected."""
    body = {
        "name": name,
        "function": function,
        "mqtype": "redis",
        "topic": topic,
        "resptopic": f"{topic}-answers",
        "errortopic": f"{topic}-errors",
        "maxretries": MAXRETRIES,
        "maxconcurrency": maxconcurrency,
        "connection": url,
    }
    status, raw = admin.request("POST", "/v1/triggers/mq", body)
    if status not in (200, 201):
        raise BenchError(f"POST /v1/triggers/mq: {status} {raw[:300]!r}")
    wait_for(
        lambda: admin.json("GET", f"/v1/triggers/mq/{name}")["status"] == "connected",
        CONNECT_TIMEOUT,
        f"the trigger {name} to connect",
        interval=0.05,
    )


def _delete_trigger(admin: Client, name: str) -> None:
    status, raw = admin.request("DELETE", f"/v1/triggers/mq/{name}")
    if status not in (200, 204, 404):
        raise BenchError(f"DELETE /v1/triggers/mq/{name}: {status} {raw[:200]!r}")


# -- 1. messages per second -----------------------------------------------------------------------


def throughput(
    admin: Client, rc: redis.Redis, url: str, function: str, maxconcurrency: int, n: int, deadline: Deadline
) -> Throughput:
    topic = f"tput-c{maxconcurrency}"
    name = f"bench-tput-c{maxconcurrency}"
    answers, errors = f"{topic}-answers", f"{topic}-errors"
    _trigger(admin, name, function, topic, maxconcurrency, url)
    try:
        pipe = rc.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd(topic, {"body": json.dumps({"n": i})})
        began = time.perf_counter()
        published = [_text(entry) for entry in pipe.execute()]
        limit = min(DRAIN_TIMEOUT, max(1.0, deadline.left()))
        client_s = math.nan
        while time.perf_counter() - began < limit:
            if int(rc.xlen(answers)) + int(rc.xlen(errors)) >= len(published):
                client_s = time.perf_counter() - began
                break
            time.sleep(XLEN_POLL)
        # At least once: an answer may come twice, so wait (bounded) until each message has one.
        wanted = set(published)
        while True:
            entries = read_stream(rc, answers)
            first = {k: v for k, v in answers_of(entries).items() if k in wanted}
            failed = int(rc.xlen(errors))
            if len(first) + failed >= len(wanted) or time.perf_counter() - began >= limit:
                break
            time.sleep(0.25)
    finally:
        _delete_trigger(admin, name)
    start = entry_ms(published[0]) if published else 0
    return Throughput(
        maxconcurrency=maxconcurrency,
        asked=n,
        published=len(published),
        answered=len(first),
        twice=sum(1 for _id, f in entries if f.get("message_id") in wanted) - len(first),
        errors=failed,
        publish_ms=float(entry_ms(published[-1]) - start) if published else math.nan,
        span_ms=float(max(first.values()) - start) if first else math.nan,
        client_s=client_s,
    )


# -- 2. publish to answer -------------------------------------------------------------------------


def latency(
    admin: Client, rc: redis.Redis, url: str, function: str, m: int, deadline: Deadline
) -> tuple[list[float], int]:
    """(publish to answer ms per answered message, messages never answered)."""
    topic, name = "latency", "bench-latency"
    answers = f"{topic}-answers"
    _trigger(admin, name, function, topic, CONCURRENCIES[0], url)
    try:
        warmup = _text(rc.xadd(topic, {"body": "warm-up"}))
        wait_for(lambda: warmup in answers_of(read_stream(rc, answers)), ANSWER_TIMEOUT, "the warm-up answer", 0.02)
        published: list[str] = []
        began = time.perf_counter()
        for i in range(m):
            if deadline.passed():
                break
            pause = began + i * LATENCY_INTERVAL - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            published.append(_text(rc.xadd(topic, {"body": json.dumps({"n": i})})))
        until = time.perf_counter() + min(ANSWER_TIMEOUT, max(1.0, deadline.left()))
        while int(rc.xlen(answers)) < len(published) + 1 and time.perf_counter() < until:
            time.sleep(XLEN_POLL)
        first = answers_of(read_stream(rc, answers))
    finally:
        _delete_trigger(admin, name)
    values = [float(first[p] - entry_ms(p)) for p in published if p in first]
    return values, len(published) - len(values)


# -- the phase ---------------------------------------------------------------------------------


def measure(
    faasd_cmd: str,
    messages: int,
    latency_messages: int,
    run_id: str,
    limit: float = DEFAULT_LIMIT,
    poolsize: int = POOLSIZE,
    concurrencies: tuple[int, ...] = CONCURRENCIES,
) -> MqResult:
    """Start a Redis and a faasd of the phase's own, measure, clean everything up."""
    deadline = Deadline(limit, "mq")
    engine = Engine(run_id)
    server = RedisBroker(engine)
    faasd = Faasd(faasd_cmd, poolsize=poolsize, idle_timeout=900)
    function = f"mq-echo-{run_id}"
    runs: list[Throughput] = []
    skipped: list[int] = []
    try:
        server.open()
        rc = redis.Redis.from_url(server.url, socket_timeout=30)
        try:
            version = str(rc.info("server").get("redis_version", "?"))
            faasd.start()
            admin = faasd.client()
            calls = Client(faasd.host, faasd.port, CALL_TIMEOUT)
            try:
                wait_for(lambda: faasd.pools_full(admin, ENVIRONMENTS), 90, "the pools to fill at start", 0.1)
                _warm_function(faasd, admin, calls, function)
                first, *others = concurrencies
                runs.append(throughput(admin, rc, server.url, function, first, messages, deadline))
                lat, unanswered = latency(admin, rc, server.url, function, latency_messages, deadline)
                for c in others:
                    # Time allowing: a lower maxconcurrency takes longer than the first run, say 4 x.
                    needed = 10 + 4 * (runs[0].client_s if not math.isnan(runs[0].client_s) else DRAIN_TIMEOUT)
                    if deadline.left() < needed:
                        skipped.append(c)
                        continue
                    runs.append(throughput(admin, rc, server.url, function, c, messages, deadline))
            finally:
                admin.request("DELETE", f"/v1/functions/{function}?force=true")
                calls.close()
                admin.close()
        finally:
            rc.close()
    finally:
        code = faasd.stop()
        server.close()
        leftover = engine.cleanup(faasd.owner)
        if leftover:
            print(f"mq: removed {leftover} containers left after faasd stopped", file=sys.stderr)
        tail = faasd.log_tail(5)
        faasd.close()
        engine.close()
    if code not in (0, None):
        raise BenchError(f"faasd exited with {code} on SIGTERM: {tail}")
    if not runs[0].answered:
        raise BenchError(f"none of {runs[0].published} messages was answered")
    return MqResult(
        poolsize=poolsize,
        redis_version=version,
        throughput=runs,
        skipped=skipped,
        latency_asked=latency_messages,
        latency=lat,
        latency_unanswered=unanswered,
        latency_interval_ms=LATENCY_INTERVAL * 1000,
        owner=faasd.owner,
    )


# -- the table ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f} ms" if value >= 100 or value == int(value) else f"{value:.1f} ms"


def _p50_p99(values: list[float], asked: int) -> str:
    if not values:
        return "n/a"
    n = f"n={len(values)}" + (f" of {asked}" if len(values) < asked else "")
    return (
        f"{_ms(percentile(values, 50))} / {_ms(percentile(values, 99))} ({n}; {_ms(min(values))} to {_ms(max(values))})"
    )


def _rate(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}/s"


def table(result: MqResult) -> str:
    r = result
    lines = ["| metric (Redis Streams trigger, python echo, warm) | value |", "|---|---|"]

    def row(metric: str, value: str) -> None:
        lines.append(f"| {metric} | {value} |")

    for t in r.throughput:
        c = f"maxconcurrency {t.maxconcurrency}"
        n = f"{t.answered:,} messages" + (f" of {t.published:,}" if t.answered < t.published else "")
        bold = t is r.throughput[0]
        metric = f"messages per second, {c}: {n} published in one pipeline, first publish to last answer"
        row(f"**{metric}**" if bold else metric, f"{_rate(t.rate)} ({t.span_ms / 1000:.2f} s)")
        row(
            f"- {c}: the suite's clock, pipeline sent to `XLEN` of the answers at N (polled every "
            f"{XLEN_POLL * 1000:.0f} ms)",
            f"{_rate(t.client_rate)} ({t.client_s:.2f} s)" if not math.isnan(t.client_s) else "not reached",
        )
        row(f"- {c}: publishing the {t.published:,} (first to last entry)", _ms(t.publish_ms))
        row(f"- {c}: answered twice / on the error stream", f"{t.twice} / {t.errors}")
    for left_out in r.skipped:
        row(f"messages per second, maxconcurrency {left_out}", "skipped (the phase's time bound)")
    row(
        f"**publish to answer on the response stream** (one message every {r.latency_interval_ms:.0f} ms, "
        "idle trigger), p50 / p99",
        _p50_p99(r.latency, r.latency_asked),
    )
    if r.latency_unanswered:
        row("- publish to answer: messages not answered in time", str(r.latency_unanswered))
    row(
        "reference: Fission's KEDA connectors, time between polls of the broker (KEDA's default `pollingInterval`)",
        f"{KEDA_POLLING_S} s",
    )
    return "\n".join(lines)


def summary_line(result: MqResult) -> str:
    return (
        f"A faasd of its own (pool size {result.poolsize}) and a Redis {result.redis_version} of its own "
        "(faasd/broker-redis, on a Docker network of its own); the echo function called once synchronously first; "
        f"every trigger with its own streams, `maxretries` {MAXRETRIES}. Times are the Redis stream entry ids' "
        "ms (the server's clock: no skew, good to +-1 ms); latency matches each answer by its `message_id`, "
        "after one warm-up message. Fission's mqtriggers of kind keda wait for KEDA, which polls every "
        f"{KEDA_POLLING_S} s by default; faasd reads the stream itself (blocking `XREADGROUP`). "
        "`python -m bench.mq` runs this alone."
    )


def history_cell(result: MqResult) -> str:
    """Messages per second (the first maxconcurrency) / publish-to-answer p50 / p99 ms (history column)."""
    first = result.throughput[0] if result.throughput else None
    rate = "" if first is None or math.isnan(first.rate) else f"{first.rate:.0f}"

    def at(q: float) -> str:
        return "" if not result.latency else f"{percentile(result.latency, q):.0f}"

    return f"{rate} / {at(50)} / {at(99)}"


# -- alone: python -m bench.mq --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.mq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="N=200, M=20")
    p.add_argument("--messages", type=int, help="messages published at once per maxconcurrency (5000; quick 200)")
    p.add_argument("--latency", type=int, help="messages published one at a time (200; quick 20)")
    p.add_argument("--poolsize", type=int, default=POOLSIZE, help="faasd --default-poolsize")
    p.add_argument("--limit", type=float, default=DEFAULT_LIMIT, help="seconds the phase may take")
    p.add_argument("--faasd-cmd", default="", help="command that runs faasd (default: this python -m faasd)")
    args = p.parse_args(argv)
    messages = args.messages if args.messages is not None else (200 if args.quick else 5000)
    lat = args.latency if args.latency is not None else (20 if args.quick else 200)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    try:
        result = measure(args.faasd_cmd, messages, lat, secrets.token_hex(3), args.limit, args.poolsize)
    except (BenchError, OSError, redis.RedisError) as exc:
        print(f"mq: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {'quick' if args.quick else 'full'}; "
        f"took {time.monotonic() - began:.0f} s; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores"
    )
    print(f"- {summary_line(result)}\n")
    print(table(result))
    print(f"faasd owner label: {result.owner}", file=sys.stderr)
    print(f"publish to answer ms: {', '.join(f'{v:.0f}' for v in result.latency)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
