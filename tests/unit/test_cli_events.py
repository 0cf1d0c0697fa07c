"""`faas fn invoke`, `invocation`, `dlq`, `timer`, `watch`, `route --async`, retries and `status`'s events.

A small fake daemon on a loopback port records each request (method, path,
query, headers, JSON body) and answers from a script: a list of answers per
method and path, taken one per request, the last one repeated.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from faas_cli.commands import invocation
from faas_cli.commands.invocation import with_wait_value
from faas_cli.main import app
from faas_cli.options import seconds_of
from faas_cli.output import duration

CALL_ID = "0b8f6f5e-1f0e-4c7e-9a51-3d2b1c0e9f77"

Answer = tuple[int, Any]


@dataclass
class Sent:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeDaemon:
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    script: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)

    def answer(self, method: str, path: str, *answers: Answer) -> None:
        self.script[(method, path)] = list(answers)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Sent]:
        return [s for s in self.sent if (method in (None, s.method)) and (path in (None, s.path))]

    def _reply(self, method: str, path: str) -> Answer:
        answers = self.script.get((method, path))
        if not answers:
            return 404, {"error": {"code": "not_found", "message": f"no route {method} {path}"}}
        return answers.pop(0) if len(answers) > 1 else answers[0]


def error(status: int, message: str) -> Answer:
    return status, {"error": {"code": "bad_request" if status == 400 else "not_found", "message": message}}


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    fake = FakeDaemon()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode()
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.sent.append(Sent(self.command, parts.path, query, headers, body))
            status, answer = fake._reply(self.command, parts.path)
            extra: dict[str, str] = {}
            if isinstance(answer, tuple):
                answer, extra = answer
            data = (
                b"" if answer is None else answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def run(daemon: FakeDaemon, *args: str) -> Result:
    return CliRunner().invoke(
        app, ["--server", daemon.url, *args], env={"FAAS_URL": None, "FAAS_TOKEN": "t", "COLUMNS": "200"}
    )


def table(text: str) -> list[dict[str, str]]:
    """A table's rows as dicts, cut at the header's column starts (headers may hold one space)."""
    header, *rows = text.splitlines()
    starts = [0] + [i + 2 for i in range(len(header) - 2) if header[i : i + 2] == "  " and header[i + 2] != " "]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = [header[a:b].strip() for a, b in bounds]
    return [{name: row[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)} for row in rows]


def call(status: str = "succeeded", **more: Any) -> dict[str, Any]:
    attempts = [
        {"number": 1, "started_at": "2026-11-30T10:00:00.000Z", "finished_at": "2026-11-30T10:00:01.000Z",
         "status": 503, "error": ""},
        {"number": 2, "started_at": "2026-11-30T10:00:02.000Z", "finished_at": "2026-11-30T10:00:02.500Z",
         "status": 200, "error": ""},
    ]  # fmt: skip
    return {
        "id": CALL_ID,
        "function": "f",
        "method": "POST",
        "path": "/function/f",
        "trigger": "async",
        "trigger_name": "",
        "status": status,
        "created_at": "2026-11-30T10:00:00.000Z",
        "updated_at": "2026-11-30T10:00:02.500Z",
        "next_attempt_at": None,
        "max_attempts": 5,
        "max_age": 21600,
        "attempts": attempts if status in ("succeeded", "failed", "dead") else [],
        "reason": "",
        "callback_url": "",
        "idempotency_key": "",
        "response": {"status": 200, "headers": {}, "truncated": False, "body": "done\n"}
        if status == "succeeded"
        else None,
        **more,
    }


# -- retries on functions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("6h", 21600), ("7d", 604800), (" 2H ", 7200)]
)
def test_retry_max_age_takes_seconds_or_a_duration(text: str, seconds: int) -> None:
    assert seconds_of(text, "--retry-max-age") == seconds


def test_durations_are_shown_in_their_largest_whole_unit() -> None:
    assert [duration(v) for v in (21600, 900, 90, 604800, 3700, None)] == ["6h", "15m", "90s", "7d", "3700s", "-"]


def test_create_and_update_send_retries_and_max_age(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/functions", (201, {"name": "f"}))
    daemon.answer("PATCH", "/v1/functions/f", (200, {"name": "f"}))
    daemon.answer("GET", "/v1/triggers/http", (200, {"items": []}))

    created = run(daemon, "fn", "create", "--name", "f", "--env", "python", "--pkg", "p", "--retries", "2",
                  "--retry-max-age", "15m")  # fmt: skip
    updated = run(daemon, "fn", "update", "--name", "f", "--retry-max-age", "90")
    retries_only = run(daemon, "fn", "update", "--name", "f", "--retries", "0")

    assert created.exit_code == updated.exit_code == retries_only.exit_code == 0, created.output + updated.output
    (post,) = daemon.requests("POST", "/v1/functions")
    assert (post.body["retries"], post.body["retry_max_age"]) == (2, 900)
    assert [s.body for s in daemon.requests("PATCH")] == [{"retry_max_age": 90}, {"retries": 0}]


def test_a_max_age_that_is_no_duration_is_refused_before_the_daemon_is_asked(daemon: FakeDaemon) -> None:
    result = run(daemon, "fn", "update", "--name", "f", "--retry-max-age", "15x")

    assert result.exit_code == 1
    assert result.stderr == "error: --retry-max-age '15x' must be seconds or a duration such as 90s, 15m, 6h or 7d\n"
    assert daemon.sent == []


def test_the_daemons_range_check_of_retries_is_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("PATCH", "/v1/functions/f", error(400, "retries must be between 0 and 100, got 101"))

    result = run(daemon, "fn", "update", "--name", "f", "--retries", "101")

    assert result.exit_code == 1
    assert result.stderr == "error: retries must be between 0 and 100, got 101\n"


def test_fn_get_shows_retries_and_max_age(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/functions/f", (200, {"name": "f", "environment": "python", "retries": 2,
                                                  "retry_max_age": 900}))  # fmt: skip

    result = run(daemon, "fn", "get", "--name", "f", "-o", "table")

    assert result.exit_code == 0, result.output
    (row,) = table(result.stdout)
    assert (row["RETRIES"], row["RETRY_MAX_AGE"]) == ("2", "15m")


# -- fn invoke -------------------------------------------------------------------------


ACCEPTED = {"call_id": CALL_ID, "status": "accepted", "function": "f", "repeated": False}


def test_invoke_async_prints_only_the_call_id(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/async-function/f/jobs", (202, (ACCEPTED, {"X-Call-Id": CALL_ID})))

    result = run(daemon, "fn", "invoke", "--name", "f", "--async", "-d", '{"n": 1}', "--subpath", "/jobs?x=1",
                 "-H", "Content-Type: application/json", "--callback-url", "http://hook.example/done",
                 "--idempotency-key", "k-1")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{CALL_ID}\n"
    assert result.stderr == ""
    (sent,) = daemon.sent
    assert (sent.method, sent.path, sent.query) == ("POST", "/async-function/f/jobs", {"x": "1"})
    assert sent.body == {"n": 1}
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-callback-url"] == "http://hook.example/done"
    assert sent.headers["idempotency-key"] == "k-1"
    # A public URL, like /function: the API token is not sent along.
    assert "authorization" not in sent.headers


def test_invoke_async_with_json_output_prints_the_daemons_answer(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/async-function/f", (202, {**ACCEPTED, "repeated": True}))

    result = run(daemon, "fn", "invoke", "--name", "f", "--async", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {**ACCEPTED, "repeated": True}
    assert daemon.sent[0].method == "GET"


def test_a_repeated_idempotency_key_is_noted_on_stderr_only(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/async-function/f", (202, {**ACCEPTED, "repeated": True}))

    result = run(daemon, "fn", "invoke", "--name", "f", "--async", "-X", "post", "--idempotency-key", "k")

    assert result.stdout == f"{CALL_ID}\n"
    assert "accepted before" in result.stderr


def test_invoke_async_of_an_unknown_function_is_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/async-function/nope", error(404, "function 'nope' not found"))

    result = run(daemon, "fn", "invoke", "--name", "nope", "--async", "-d", "x")

    assert result.exit_code == 1
    assert result.stderr == "error: function 'nope' not found\n"
    assert result.stdout == ""


def test_invoke_without_async_is_fn_test(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/function/f/a", (200, "hello\n"))
    daemon.answer("GET", "/function/f", (500, "boom\n"))

    invoked = run(daemon, "fn", "invoke", "--name", "f", "-d", "x=1", "--subpath", "/a")
    tested = run(daemon, "fn", "test", "--name", "f", "-X", "POST", "-b", "x=1", "--path", "/a")
    failed = run(daemon, "fn", "invoke", "--name", "f")

    assert invoked.exit_code == tested.exit_code == 0, invoked.output
    assert invoked.stdout == tested.stdout == "HTTP 200 OK\nhello\n"
    assert daemon.sent[0].body == daemon.sent[1].body == "x=1"
    assert "authorization" not in daemon.sent[0].headers
    assert failed.exit_code == 1
    assert failed.stdout == "HTTP 500 Internal Server Error\nboom\n"


def test_async_only_options_without_async_are_refused(daemon: FakeDaemon) -> None:
    result = run(daemon, "fn", "invoke", "--name", "f", "--idempotency-key", "k")

    assert result.exit_code == 1
    assert result.stderr == "error: --callback-url, --idempotency-key and -o go with --async\n"
    assert daemon.sent == []


# -- invocation ----------------------------------------------------------------------


def test_invocation_get_shows_the_call_then_the_answers_body(daemon: FakeDaemon) -> None:
    daemon.answer("GET", f"/v1/invocations/{CALL_ID}", (200, call()))

    result = run(daemon, "invocation", "get", CALL_ID)

    assert result.exit_code == 0, result.output
    head, body = result.stdout.split("\n\n")
    (row,) = table(head)
    assert row == {
        "ID": CALL_ID,
        "FUNCTION": "f",
        "TRIGGER": "async",
        "STATUS": "succeeded",
        "ATTEMPTS": "2/5",
        "LAST ATTEMPT": "200",
        "CREATED": "2026-11-30T10:00:00.000Z",
        "REASON": "-",
    }
    assert body == "done\n"
    (sent,) = daemon.sent
    assert sent.query == {}
    assert sent.headers["authorization"] == "Bearer t"


def test_invocation_get_json_is_the_apis_document(daemon: FakeDaemon) -> None:
    daemon.answer("GET", f"/v1/invocations/{CALL_ID}", (200, call("dead", reason="out of attempts")))

    result = run(daemon, "inv", "get", CALL_ID, "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == call("dead", reason="out of attempts")


@pytest.mark.parametrize("status", ["failed", "dead"])
def test_a_call_that_did_not_succeed_still_exits_0(daemon: FakeDaemon, status: str) -> None:
    daemon.answer("GET", f"/v1/invocations/{CALL_ID}", (200, call(status, reason="the function answered 400")))

    result = run(daemon, "inv", "get", CALL_ID)

    assert result.exit_code == 0, result.output
    (row,) = table(result.stdout)
    assert (row["STATUS"], row["REASON"]) == (status, "the function answered 400")


def test_an_unknown_call_is_one_line_and_exit_1(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/invocations/nope", error(404, "call 'nope' not found"))

    result = run(daemon, "inv", "get", "nope")

    assert result.exit_code == 1
    assert result.stderr == "error: call 'nope' not found\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "asked"),
    [
        (["inv", "get", CALL_ID, "--wait"], "60"),
        (["inv", "get", "--wait", CALL_ID], "60"),
        (["inv", "get", "--wait", "5", CALL_ID], "5"),
        (["inv", "get", "--wait=7", CALL_ID], "7"),
    ],
)
def test_get_wait_asks_again_until_the_call_is_finished(
    daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch, args: list[str], asked: str
) -> None:
    monkeypatch.setattr(invocation, "POLL_SECONDS", 0.01)
    path = f"/v1/invocations/{CALL_ID}"
    daemon.answer("GET", path, (200, call("queued")), (200, call("running")), (200, call("succeeded")))

    result = run(daemon, *args)

    assert result.exit_code == 0, result.output
    assert table(result.stdout.split("\n\n")[0])[0]["STATUS"] == "succeeded"
    sent = daemon.requests("GET", path)
    assert len(sent) == 3
    assert sent[0].query == {"wait": asked}


def test_a_wait_longer_than_the_daemons_minute_is_asked_a_minute_at_a_time(
    daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invocation, "POLL_SECONDS", 0.01)
    path = f"/v1/invocations/{CALL_ID}"
    daemon.answer("GET", path, (200, call("running")), (200, call("dead")))

    result = run(daemon, "inv", "get", CALL_ID, "--wait", "3600")

    assert result.exit_code == 0, result.output
    assert [s.query["wait"] for s in daemon.requests("GET", path)] == ["60", "60"]


def test_get_wait_shows_the_call_as_it_is_once_the_time_is_up(
    daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invocation, "POLL_SECONDS", 0.01)
    daemon.answer("GET", f"/v1/invocations/{CALL_ID}", (200, call("queued")))

    result = run(daemon, "inv", "get", CALL_ID, "--wait", "0.2")

    assert result.exit_code == 0, result.output
    assert table(result.stdout)[0]["STATUS"] == "queued"
    assert len(daemon.sent) >= 2


def test_wait_without_seconds_is_filled_in_before_parsing() -> None:
    assert with_wait_value(["ID", "--wait"]) == ["ID", "--wait", "60"]
    assert with_wait_value(["--wait", "ID", "-o", "json"]) == ["--wait", "60", "ID", "-o", "json"]
    assert with_wait_value(["--wait", "90", "ID"]) == ["--wait", "90", "ID"]
    assert with_wait_value(["--wait", "1.5", "ID"]) == ["--wait", "1.5", "ID"]
    assert with_wait_value(["ID", "--", "--wait"]) == ["ID", "--", "--wait"]


def test_invocation_list_passes_the_filters(daemon: FakeDaemon) -> None:
    timer_call = call("failed", trigger="timer", trigger_name="nightly", reason="the function answered 400")
    daemon.answer("GET", "/v1/invocations", (200, {"items": [call(), timer_call]}))

    result = run(daemon, "inv", "list", "--function", "f", "--status", "failed", "--since", "2h", "--limit", "5")
    as_json = run(daemon, "invocation", "list", "-o", "json")

    assert result.exit_code == 0, result.output
    rows = table(result.stdout)
    assert [(r["TRIGGER"], r["STATUS"], r["ATTEMPTS"]) for r in rows] == [
        ("async", "succeeded", "2/5"),
        ("timer:nightly", "failed", "2/5"),
    ]
    assert daemon.sent[0].query == {"function": "f", "status": "failed", "since": "2h", "limit": "5"}
    assert daemon.sent[1].query == {}
    assert json.loads(as_json.stdout) == [call(), timer_call]


# -- dlq -----------------------------------------------------------------------------


def test_dlq_list_and_show(daemon: FakeDaemon) -> None:
    dead = call("dead", reason="out of attempts: 5 made")
    daemon.answer("GET", "/v1/dlq", (200, {"items": [dead]}))
    daemon.answer("GET", f"/v1/dlq/{CALL_ID}", (200, dead))

    listed = run(daemon, "dlq", "list", "--function", "f", "--since", "2026-11-30T10:00:00Z")
    shown = run(daemon, "dlq", "show", CALL_ID, "-o", "json")

    assert listed.exit_code == shown.exit_code == 0, listed.output + shown.output
    (row,) = table(listed.stdout)
    assert (row["ID"], row["DIED"], row["REASON"]) == (CALL_ID, "2026-11-30T10:00:02.500Z", "out of attempts: 5 made")
    assert daemon.sent[0].query == {"function": "f", "since": "2026-11-30T10:00:00Z"}
    assert json.loads(shown.stdout) == dead


def test_dlq_redrive_by_ids_sends_them_in_the_body(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/dlq/redrive", (200, {"redriven": 2, "ids": ["a", "b"]}))

    result = run(daemon, "dlq", "redrive", "a", "b")

    assert result.exit_code == 0, result.output
    assert result.stdout == "2 call(s) redriven\n"
    (sent,) = daemon.sent
    assert (sent.method, sent.path, sent.query, sent.body) == ("POST", "/v1/dlq/redrive", {}, {"ids": ["a", "b"]})


def test_dlq_redrive_by_filters_sends_a_query_and_no_body_batch_by_batch(daemon: FakeDaemon) -> None:
    ids = [f"id-{n}" for n in range(1000)]
    daemon.answer(
        "POST", "/v1/dlq/redrive", (200, {"redriven": 1000, "ids": ids}), (200, {"redriven": 3, "ids": ids[:3]})
    )

    result = run(daemon, "dlq", "redrive", "--function", "f", "--since", "2h")

    assert result.exit_code == 0, result.output
    assert result.stdout == "1003 call(s) redriven\n"
    assert len(daemon.sent) == 2
    for sent in daemon.sent:
        assert sent.query == {"function": "f", "since": "2h", "limit": "1000"}
        assert sent.body is None


def test_dlq_redrive_all_is_explicit(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/dlq/redrive", (200, {"redriven": 0, "ids": []}))

    result = run(daemon, "dlq", "redrive", "--all")

    assert result.exit_code == 0, result.output
    assert result.stdout == "0 call(s) redriven\n"
    assert daemon.sent[0].query == {"limit": "1000"}


@pytest.mark.parametrize("verb", ["redrive", "purge"])
@pytest.mark.parametrize(("args", "message"), [([], "no dead letters chosen"), (["a", "--all"], "not both")])
def test_redrive_and_purge_without_a_clear_selection_are_usage_errors(
    daemon: FakeDaemon, verb: str, args: list[str], message: str
) -> None:
    result = run(daemon, "dlq", verb, *args)

    assert result.exit_code == 2
    assert message in " ".join(result.stderr.replace("│", " ").split())
    assert daemon.sent == []


def test_dlq_purge_by_ids_and_by_filter(daemon: FakeDaemon) -> None:
    daemon.answer("DELETE", "/v1/dlq", (200, {"purged": 1}))

    by_id = run(daemon, "dlq", "purge", CALL_ID)
    by_function = run(daemon, "dlq", "purge", "--function", "f")

    assert by_id.exit_code == by_function.exit_code == 0, by_id.output + by_function.output
    assert by_id.stdout == by_function.stdout == "1 dead letter(s) purged\n"
    first, second = daemon.sent
    assert (first.method, first.query, first.body) == ("DELETE", {}, {"ids": [CALL_ID]})
    assert (second.method, second.query, second.body) == ("DELETE", {"function": "f", "limit": "1000"}, None)


def test_redriving_a_call_that_is_no_dead_letter_is_one_line(daemon: FakeDaemon) -> None:
    message = f"call '{CALL_ID}' is not a dead letter (it is succeeded)"
    daemon.answer("POST", "/v1/dlq/redrive", error(404, message))

    result = run(daemon, "dlq", "redrive", CALL_ID)

    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


# -- timers --------------------------------------------------------------------------


TIMER = {
    "name": "nightly",
    "function": "f",
    "cron": "0 3 * * *",
    "timezone": "Europe/Berlin",
    "method": "POST",
    "subpath": "/report",
    "overlap": "forbid",
    "catch_up": "once",
    "last_tick_at": None,
    "next_run_at": "2026-12-01T02:00:00.000Z",
}


@pytest.mark.parametrize("group", ["timer", "tt", "timetrigger"])
def test_timer_create_sends_the_fields_given(daemon: FakeDaemon, group: str) -> None:
    daemon.answer("POST", "/v1/timers", (201, TIMER))

    result = run(daemon, group, "create", "--name", "nightly", "--function", "f", "--cron", "0 3 * * *",
                 "--timezone", "Europe/Berlin", "--method", "put", "--subpath", "/report", "--overlap", "allow",
                 "--catch-up", "none")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stdout == "timer 'nightly' created: '0 3 * * *' -> f\n"
    assert daemon.sent[0].body == {
        "name": "nightly",
        "function": "f",
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "method": "PUT",
        "subpath": "/report",
        "overlap": "allow",
        "catch_up": "none",
    }


def test_timer_create_leaves_the_defaults_to_the_daemon(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/timers", (201, TIMER))

    result = run(daemon, "timer", "create", "--name", "nightly", "--function", "f", "--cron", "@every 30s")

    assert result.exit_code == 0, result.output
    assert daemon.sent[0].body == {"name": "nightly", "function": "f", "cron": "@every 30s"}


def test_a_cron_the_daemon_refuses_is_its_message_on_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/timers", error(400, "cron: minute field: 61 is out of range 0-59"))

    result = run(daemon, "timer", "create", "--name", "t", "--function", "f", "--cron", "61 * * * *")

    assert result.exit_code == 1
    assert result.stderr == "error: cron: minute field: 61 is out of range 0-59\n"
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_timer_list_and_get(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/timers", (200, {"items": [TIMER]}))
    daemon.answer("GET", "/v1/timers/nightly", (200, TIMER))

    listed = run(daemon, "timer", "list", "--function", "f")
    got = run(daemon, "tt", "get", "--name", "nightly")
    as_json = run(daemon, "timer", "get", "--name", "nightly", "-o", "json")

    assert listed.exit_code == got.exit_code == as_json.exit_code == 0, listed.output + got.output
    assert table(listed.stdout) == [
        {"NAME": "nightly", "CRON": "0 3 * * *", "TIMEZONE": "Europe/Berlin", "FUNCTION": "f",
         "NEXT RUN": "2026-12-01T02:00:00.000Z"},
    ]  # fmt: skip
    assert daemon.sent[0].query == {"function": "f"}
    (row,) = table(got.stdout)
    assert (row["NEXT RUN"], row["SUBPATH"], row["CATCH UP"], row["LAST TICK"]) == (
        "2026-12-01T02:00:00.000Z",
        "/report",
        "once",
        "-",
    )
    assert json.loads(as_json.stdout) == TIMER


def test_timer_update_sends_only_what_was_given_and_delete(daemon: FakeDaemon) -> None:
    daemon.answer("PATCH", "/v1/timers/nightly", (200, TIMER))
    daemon.answer("DELETE", "/v1/timers/nightly", (204, None))

    updated = run(daemon, "timer", "update", "--name", "nightly", "--cron", "*/5 * * * *", "--timezone", "UTC")
    deleted = run(daemon, "timer", "delete", "--name", "nightly")
    nothing = run(daemon, "timer", "update", "--name", "nightly")

    assert (updated.stdout, deleted.stdout) == ("timer 'nightly' updated\n", "timer 'nightly' deleted\n")
    assert daemon.sent[0].body == {"cron": "*/5 * * * *", "timezone": "UTC"}
    assert daemon.sent[1].method == "DELETE"
    assert nothing.exit_code == 1
    assert nothing.stderr.startswith("error: nothing to update; give --cron")
    assert len(daemon.sent) == 2


def test_showschedule_prints_one_time_a_line(daemon: FakeDaemon) -> None:
    times = ["2026-12-01T02:00:00.000Z", "2026-12-02T02:00:00.000Z", "2026-12-03T02:00:00.000Z"]
    daemon.answer("GET", "/v1/cron/schedule", (200, {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "next": times}))

    result = run(daemon, "tt", "showschedule", "--cron", "0 3 * * *", "--timezone", "Europe/Berlin", "--round", "3")
    default = run(daemon, "timer", "showschedule", "--cron", "0 3 * * *")

    assert result.exit_code == 0, result.output
    assert result.stdout == "".join(f"{t}\n" for t in times)
    assert daemon.sent[0].query == {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "round": "3"}
    assert default.exit_code == 0
    assert daemon.sent[1].query == {"cron": "0 3 * * *", "round": "5"}


def test_showschedule_of_a_bad_time_zone_is_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/cron/schedule", error(400, "timezone: unknown time zone 'Mars/Olympus'"))

    result = run(daemon, "timer", "showschedule", "--cron", "@daily", "--timezone", "Mars/Olympus")

    assert result.exit_code == 1
    assert result.stderr == "error: timezone: unknown time zone 'Mars/Olympus'\n"


# -- watches -------------------------------------------------------------------------


WATCH = {
    "name": "w1",
    "function": "f",
    "type": "container",
    "labels": {"app": "web", "tier": ""},
    "events": ["added", "removed"],
    "include_faasd": False,
    "updated_at": "2026-11-30T10:00:00.000Z",
}


@pytest.mark.parametrize("group", ["watch", "w"])
def test_watch_create_sends_labels_as_an_object_and_events_as_a_list(daemon: FakeDaemon, group: str) -> None:
    daemon.answer("POST", "/v1/watches", (201, WATCH))

    result = run(daemon, group, "create", "--name", "w1", "--function", "f", "--type", "network",
                 "--label", "app=web", "--label", "tier", "--event", "added,removed", "--event", "updated",
                 "--include-faasd")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert daemon.sent[0].body == {
        "name": "w1",
        "function": "f",
        "type": "network",
        "labels": {"app": "web", "tier": ""},
        "events": ["added", "removed", "updated"],
        "include_faasd": True,
    }


def test_watch_create_leaves_the_defaults_to_the_daemon(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/watches", (201, WATCH))

    result = run(daemon, "watch", "create", "--name", "w1", "--function", "f")

    assert result.stdout == "watch 'w1' created: container -> f\n"
    assert daemon.sent[0].body == {"name": "w1", "function": "f"}


def test_watch_list_get_update_delete(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/watches", (200, {"items": [WATCH]}))
    daemon.answer("GET", "/v1/watches/w1", (200, WATCH))
    daemon.answer("PATCH", "/v1/watches/w1", (200, WATCH))
    daemon.answer("DELETE", "/v1/watches/w1", (204, None))

    listed = run(daemon, "watch", "list")
    got = run(daemon, "w", "get", "--name", "w1", "-o", "json")
    updated = run(daemon, "watch", "update", "--name", "w1", "--exclude-faasd", "--event", "updated")
    deleted = run(daemon, "watch", "delete", "--name", "w1")

    assert table(listed.stdout) == [
        {"NAME": "w1", "TYPE": "container", "LABELS": "app=web,tier", "EVENTS": "added,removed", "FUNCTION": "f"}
    ]
    assert json.loads(got.stdout) == WATCH
    assert daemon.requests("PATCH")[0].body == {"events": ["updated"], "include_faasd": False}
    assert (updated.stdout, deleted.stdout) == ("watch 'w1' updated\n", "watch 'w1' deleted\n")


def test_a_label_the_daemon_refuses_is_one_line(daemon: FakeDaemon) -> None:
    message = "label key '-x' is invalid: letters, digits and . _ / - (e.g. com.example.app)"
    daemon.answer("POST", "/v1/watches", error(400, message))

    result = run(daemon, "watch", "create", "--name", "w1", "--function", "f", "--label", "-x=1")

    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


# -- routes --------------------------------------------------------------------------


def test_route_async_is_sent_and_listed(daemon: FakeDaemon) -> None:
    route = {"name": "r", "method": "POST", "url": "/jobs", "function": "f", "async": True, "updated_at": "x"}
    daemon.answer("POST", "/v1/triggers/http", (201, route))
    daemon.answer("PATCH", "/v1/triggers/http/r", (200, {**route, "async": False}))
    daemon.answer("GET", "/v1/triggers/http", (200, {"items": [route, {**route, "name": "s", "async": False}]}))

    created = run(daemon, "route", "create", "--name", "r", "--method", "post", "--url", "/jobs", "--function", "f",
                  "--async")  # fmt: skip
    synced = run(daemon, "httptrigger", "update", "--name", "r", "--sync")
    listed = run(daemon, "route", "list")

    assert created.stdout == "route 'r' created: POST /jobs -> f (asynchronous)\n"
    assert daemon.sent[0].body == {"name": "r", "method": "POST", "url": "/jobs", "function": "f", "async": True}
    assert synced.exit_code == 0, synced.output
    assert daemon.sent[1].body == {"async": False}
    assert [row["ASYNC"] for row in table(listed.stdout)] == ["yes", "no"]


def test_a_route_made_without_async_does_not_send_the_field(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/triggers/http", (201, {"name": "r", "method": "GET", "url": "/a", "function": "f"}))

    result = run(daemon, "route", "create", "--url", "/a", "--function", "f")

    assert result.stdout == "route 'r' created: GET /a -> f\n"
    assert "async" not in daemon.sent[0].body


# -- status --------------------------------------------------------------------------


STATUS = {
    "version": "1.2.3",
    "environments": [],
    "functions": [],
    "events": {
        "queue": {"depth": 3, "limit": 10000, "in_flight": 1, "queued": 2, "running": 1, "succeeded": 7,
                  "failed": 0, "dead": 2},
        "timers": [{"name": "nightly", "function": "f", "next_run_at": "2026-12-01T02:00:00.000Z"}],
        "watches": [{"name": "w1", "function": "f", "type": "container", "connected": True},
                    {"name": "w2", "function": "g", "type": "image", "connected": False}],
    },
}  # fmt: skip


def test_status_shows_the_queue_dead_letters_timers_and_watches(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/healthz", (200, {"status": "ok", "version": "1.2.3"}))
    daemon.answer("GET", "/v1/status", (200, STATUS))

    result = run(daemon, "status")

    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "async calls: 3 queued of 10000 at most, 1 in flight; 2 dead letter(s) (faas dlq list)\n" in text
    sections = text.split("\n\n")
    assert table(sections[-2]) == [{"TIMER": "nightly", "FUNCTION": "f", "NEXT RUN": "2026-12-01T02:00:00.000Z"}]
    assert [(r["WATCH"], r["CONNECTED"]) for r in table(sections[-1])] == [("w1", "yes"), ("w2", "no")]


def test_status_without_timers_or_watches_is_one_events_line(daemon: FakeDaemon) -> None:
    quiet = {**STATUS, "events": {"queue": {"depth": 0, "limit": 10, "in_flight": 0, "dead": 0}, "timers": [],
                                  "watches": []}}  # fmt: skip
    daemon.answer("GET", "/healthz", (200, {"status": "ok"}))
    daemon.answer("GET", "/v1/status", (200, quiet))

    result = run(daemon, "status")

    assert result.stdout.endswith("\n\nasync calls: 0 queued of 10 at most, 0 in flight; 0 dead letter(s)\n")


def test_status_json_keeps_the_events_document(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/healthz", (200, {"status": "ok"}))
    daemon.answer("GET", "/v1/status", (200, STATUS))

    result = run(daemon, "status", "-o", "json")

    assert json.loads(result.stdout)["events"] == STATUS["events"]


# -- help ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["fn", "invoke"],
        ["invocation", "get"],
        ["inv", "list"],
        ["dlq", "list"],
        ["dlq", "show"],
        ["dlq", "redrive"],
        ["dlq", "purge"],
        ["timer", "create"],
        ["tt", "showschedule"],
        ["timetrigger", "update"],
        ["watch", "create"],
        ["w", "update"],
    ],
)
def test_every_new_command_has_help_that_needs_no_daemon(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"], env={"FAAS_URL": "not a url"})

    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
