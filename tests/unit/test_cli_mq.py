"""`faas mqtrigger` (aliases `mqt`, `messagequeue`) and the mqtriggers part of `faas status`.

The fake daemon of test_cli_events records each request and answers from a script.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from faas_cli.commands.mqtrigger import KEDA_NOTE
from faas_cli.main import app
from tests.unit import test_cli_events as events
from tests.unit.test_cli_events import FakeDaemon, error, run, table

# The fake daemon fixture, under its own name (an assignment, so tests may take it as an argument).
daemon = events.daemon

TRIGGER = {
    "name": "orders",
    "function": "f",
    "mqtype": "redis",
    "topic": "orders",
    "resptopic": "orders-done",
    "errortopic": "orders-failed",
    "maxretries": 3,
    "maxconcurrency": 10,
    "contenttype": "application/json",
    "connection": "redis://:***@10.0.0.5:6379/0",
    "connection_secret": "",
    "method": "POST",
    "created_at": "2026-11-30T10:00:00.000Z",
    "updated_at": "2026-11-30T10:00:00.000Z",
    "status": "connected",
    "delivered": 12,
    "failed": 1,
    "error": "",
}
NATS = {
    **TRIGGER,
    "name": "events",
    "function": "g",
    "mqtype": "nats",
    "topic": "events.>",
    "resptopic": "",
    "errortopic": "",
    "connection": "",
    "connection_secret": "NATS_URL",
    "status": "disconnected",
    "delivered": 0,
    "failed": 0,
    "error": "connection refused",
}


# -- create --------------------------------------------------------------------------


def test_create_sends_every_option_given(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/triggers/mq", (201, TRIGGER))

    result = run(daemon, "mqtrigger", "create", "--name", "orders", "--function", "f", "--mqtype", "redis",
                 "--topic", "orders", "--resptopic", "orders-done", "--errortopic", "orders-failed",
                 "--maxretries", "5", "--maxconcurrency", "20", "--contenttype", "text/plain",
                 "--connection", "redis://:pw@10.0.0.5:6379/0", "--method", "put")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stdout == "mqtrigger 'orders' created: redis topic 'orders' -> f\n"
    assert result.stderr == ""
    (sent,) = daemon.requests("POST", "/v1/triggers/mq")
    assert sent.body == {
        "name": "orders",
        "function": "f",
        "mqtype": "redis",
        "topic": "orders",
        "resptopic": "orders-done",
        "errortopic": "orders-failed",
        "maxretries": 5,
        "maxconcurrency": 20,
        "contenttype": "text/plain",
        "connection": "redis://:pw@10.0.0.5:6379/0",
        "method": "PUT",
    }


def test_create_sends_only_the_options_given(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/triggers/mq", (201, NATS))

    result = run(daemon, "mqtrigger", "create", "--name", "events", "--function", "g", "--mqtype", "nats",
                 "--topic", "events.>", "--connection-secret", "NATS_URL")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert daemon.sent[0].body == {
        "name": "events",
        "function": "g",
        "mqtype": "nats",
        "topic": "events.>",
        "connection_secret": "NATS_URL",
    }


def test_maxretries_zero_is_sent(daemon: FakeDaemon) -> None:
    daemon.answer("POST", "/v1/triggers/mq", (201, TRIGGER))

    result = run(daemon, "mqt", "create", "--name", "orders", "--function", "f", "--mqtype", "redis",
                 "--topic", "orders", "--connection", "redis://r:6379", "--maxretries", "0")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert daemon.sent[0].body["maxretries"] == 0


@pytest.mark.parametrize("group", ["mqt", "messagequeue"])
def test_fission_spellings_work_and_mqtkind_is_not_sent(daemon: FakeDaemon, group: str) -> None:
    daemon.answer("POST", "/v1/triggers/mq", (201, TRIGGER))

    result = run(daemon, group, "create", "--name", "orders", "--function", "f", "--mqtype", "redis",
                 "--mqtkind", "keda", "--topic", "orders", "--resptopic", "orders-done",
                 "--errortopic", "orders-failed", "--maxretries", "3", "--contenttype", "application/json",
                 "--connection", "redis://r:6379")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # --mqtkind is ignored without a word
    assert "mqtkind" not in daemon.sent[0].body
    assert set(daemon.sent[0].body) == {
        "name", "function", "mqtype", "topic", "resptopic", "errortopic", "maxretries", "contenttype", "connection",
    }  # fmt: skip


@pytest.mark.parametrize(
    "keda",
    [
        ["--pollinginterval", "30"],
        ["--cooldownperiod", "300"],
        ["--minreplicacount", "0"],
        ["--maxreplicacount", "100"],
        ["--metadata", "bootstrapServers=my-cluster:9092", "--metadata", "consumerGroup=g"],
        ["--mqtkind", "fission", "--pollinginterval", "5", "--maxreplicacount", "3"],
    ],
)
def test_a_keda_option_is_accepted_ignored_and_noted_once(daemon: FakeDaemon, keda: list[str]) -> None:
    daemon.answer("POST", "/v1/triggers/mq", (201, TRIGGER))

    result = run(daemon, "mqt", "create", "--name", "orders", "--function", "f", "--mqtype", "redis",
                 "--topic", "orders", "--connection", "redis://r:6379", *keda)  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stderr == "ignored: faasd reads the broker itself (no KEDA)\n" == f"{KEDA_NOTE}\n"
    assert daemon.sent[0].body == {
        "name": "orders",
        "function": "f",
        "mqtype": "redis",
        "topic": "orders",
        "connection": "redis://r:6379",
    }


def test_an_mqtkind_that_fission_does_not_know_is_refused(daemon: FakeDaemon) -> None:
    result = run(daemon, "mqt", "create", "--name", "o", "--function", "f", "--mqtype", "redis", "--topic", "o",
                 "--connection", "redis://r:6379", "--mqtkind", "kafka")  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == "error: --mqtkind 'kafka' must be keda or fission (faasd ignores it)\n"
    assert daemon.sent == []


def test_an_mqtype_faasd_does_not_read_is_sent_and_the_daemons_400_is_one_line(daemon: FakeDaemon) -> None:
    message = "mqtype must be one of redis, nats, got 'kafka'"
    daemon.answer("POST", "/v1/triggers/mq", error(400, message))

    result = run(daemon, "mqt", "create", "--name", "o", "--function", "f", "--mqtype", "kafka", "--topic", "o",
                 "--connection", "kafka://k:9092")  # fmt: skip

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.output
    assert daemon.sent[0].body["mqtype"] == "kafka"


def test_connection_and_connection_secret_together_are_refused_before_the_daemon_is_asked(
    daemon: FakeDaemon,
) -> None:
    result = run(daemon, "mqtrigger", "create", "--name", "o", "--function", "f", "--mqtype", "redis",
                 "--topic", "o", "--connection", "redis://r:6379", "--connection-secret", "URL")  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == "error: give --connection or --connection-secret, not both\n"
    assert daemon.sent == []


# -- list and get --------------------------------------------------------------------


def test_list_is_a_table_with_status_and_counts(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/triggers/mq", (200, {"items": [TRIGGER, NATS]}))

    result = run(daemon, "mqtrigger", "list")

    assert result.exit_code == 0, result.output
    assert table(result.stdout) == [
        {"NAME": "orders", "FUNCTION": "f", "MQTYPE": "redis", "TOPIC": "orders", "RESPTOPIC": "orders-done",
         "ERRORTOPIC": "orders-failed", "STATUS": "connected", "DELIVERED": "12", "FAILED": "1"},
        {"NAME": "events", "FUNCTION": "g", "MQTYPE": "nats", "TOPIC": "events.>", "RESPTOPIC": "-",
         "ERRORTOPIC": "-", "STATUS": "disconnected", "DELIVERED": "0", "FAILED": "0"},
    ]  # fmt: skip
    assert daemon.sent[0].query == {}


def test_list_by_function_as_json(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/triggers/mq", (200, {"items": [NATS]}))

    result = run(daemon, "mqt", "list", "--function", "g", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [NATS]
    assert daemon.sent[0].query == {"function": "g"}


def test_get_shows_every_field(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/triggers/mq/events", (200, NATS))

    result = run(daemon, "mqtrigger", "get", "--name", "events")

    assert result.exit_code == 0, result.output
    assert table(result.stdout) == [
        {"NAME": "events", "FUNCTION": "g", "MQTYPE": "nats", "TOPIC": "events.>", "RESPTOPIC": "-",
         "ERRORTOPIC": "-", "STATUS": "disconnected", "DELIVERED": "0", "FAILED": "0", "MAXRETRIES": "3",
         "MAXCONCURRENCY": "10", "CONTENTTYPE": "application/json", "CONNECTION": "-",
         "CONNECTION SECRET": "NATS_URL", "METHOD": "POST", "ERROR": "connection refused",
         "CREATED": "2026-11-30T10:00:00.000Z", "UPDATED": "2026-11-30T10:00:00.000Z"},
    ]  # fmt: skip


def test_get_as_json_is_the_daemons_object(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/triggers/mq/orders", (200, TRIGGER))

    result = run(daemon, "messagequeue", "get", "--name", "orders", "-o", "json")

    assert json.loads(result.stdout) == TRIGGER


def test_get_of_an_unknown_trigger_is_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/triggers/mq/nope", error(404, "mqtrigger 'nope' not found"))

    result = run(daemon, "mqt", "get", "--name", "nope")

    assert result.exit_code == 1
    assert result.stderr == "error: mqtrigger 'nope' not found\n"


# -- update and delete ---------------------------------------------------------------


def test_update_sends_only_the_options_given(daemon: FakeDaemon) -> None:
    daemon.answer("PATCH", "/v1/triggers/mq/orders", (200, TRIGGER))

    topic = run(daemon, "mqtrigger", "update", "--name", "orders", "--topic", "orders-v2")
    more = run(daemon, "mqt", "update", "--name", "orders", "--maxretries", "0", "--maxconcurrency", "50",
               "--resptopic", "", "--method", "patch", "--function", "h", "--mqtype", "NATS")  # fmt: skip

    assert topic.exit_code == more.exit_code == 0, topic.output + more.output
    assert topic.stdout == "mqtrigger 'orders' updated\n"
    assert [s.body for s in daemon.requests("PATCH")] == [
        {"topic": "orders-v2"},
        {"function": "h", "mqtype": "nats", "resptopic": "", "maxretries": 0, "maxconcurrency": 50,
         "method": "PATCH"},
    ]  # fmt: skip


def test_update_to_the_other_way_to_the_broker_clears_the_first(daemon: FakeDaemon) -> None:
    daemon.answer("PATCH", "/v1/triggers/mq/orders", (200, TRIGGER))

    to_secret = run(daemon, "mqt", "update", "--name", "orders", "--connection-secret", "REDIS_URL")
    to_url = run(daemon, "mqt", "update", "--name", "orders", "--connection", "redis://r:6379")

    assert to_secret.exit_code == to_url.exit_code == 0, to_secret.output + to_url.output
    assert [s.body for s in daemon.requests("PATCH")] == [
        {"connection_secret": "REDIS_URL", "connection": ""},
        {"connection": "redis://r:6379", "connection_secret": ""},
    ]


def test_update_with_nothing_to_change_is_refused(daemon: FakeDaemon) -> None:
    result = run(daemon, "mqt", "update", "--name", "orders")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: nothing to update; give --function, --mqtype, --topic")
    assert daemon.sent == []


def test_update_with_only_keda_options_changes_nothing(daemon: FakeDaemon) -> None:
    daemon.answer("GET", "/v1/triggers/mq/orders", (200, TRIGGER))

    result = run(daemon, "mqt", "update", "--name", "orders", "--pollinginterval", "10", "--mqtkind", "keda")

    assert result.exit_code == 0, result.output
    assert result.stdout == "mqtrigger 'orders' unchanged\n"
    assert result.stderr == f"{KEDA_NOTE}\n"
    assert [(s.method, s.path) for s in daemon.sent] == [("GET", "/v1/triggers/mq/orders")]


def test_update_with_a_keda_option_sends_the_rest(daemon: FakeDaemon) -> None:
    daemon.answer("PATCH", "/v1/triggers/mq/orders", (200, TRIGGER))

    result = run(daemon, "mqt", "update", "--name", "orders", "--topic", "t", "--metadata", "lagThreshold=5")

    assert result.exit_code == 0, result.output
    assert result.stderr == f"{KEDA_NOTE}\n"
    assert daemon.sent[0].body == {"topic": "t"}


def test_a_400_on_update_is_one_line(daemon: FakeDaemon) -> None:
    message = "maxconcurrency must be between 1 and 1000, got 5000"
    daemon.answer("PATCH", "/v1/triggers/mq/orders", error(400, message))

    result = run(daemon, "mqt", "update", "--name", "orders", "--maxconcurrency", "5000")

    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


def test_delete(daemon: FakeDaemon) -> None:
    daemon.answer("DELETE", "/v1/triggers/mq/orders", (204, None))

    result = run(daemon, "mqtrigger", "delete", "--name", "orders")

    assert result.exit_code == 0, result.output
    assert result.stdout == "mqtrigger 'orders' deleted\n"
    assert [(s.method, s.path) for s in daemon.sent] == [("DELETE", "/v1/triggers/mq/orders")]


def test_names_are_quoted_as_one_path_segment(daemon: FakeDaemon) -> None:
    daemon.answer("DELETE", "/v1/triggers/mq/a%2Fb%20c", (204, None))

    result = run(daemon, "mqt", "delete", "--name", "a/b c")

    assert result.exit_code == 0, result.output


# -- status --------------------------------------------------------------------------


def test_status_shows_the_mqtriggers(daemon: FakeDaemon) -> None:
    report = {**events.STATUS, "events": {**events.STATUS["events"], "mqtriggers": [TRIGGER, NATS]}}
    daemon.answer("GET", "/healthz", (200, {"status": "ok", "version": "1.2.3"}))
    daemon.answer("GET", "/v1/status", (200, report))

    result = run(daemon, "status")

    assert result.exit_code == 0, result.output
    sections = result.stdout.split("\n\n")
    assert table(sections[-1]) == [
        {"MQTRIGGER": "orders", "MQTYPE": "redis", "TOPIC": "orders", "STATUS": "connected", "DELIVERED": "12",
         "FAILED": "1"},
        {"MQTRIGGER": "events", "MQTYPE": "nats", "TOPIC": "events.>", "STATUS": "disconnected", "DELIVERED": "0",
         "FAILED": "0"},
    ]  # fmt: skip
    assert table(sections[-2])[0]["WATCH"] == "w1"


def test_status_without_mqtriggers_has_no_such_table(daemon: FakeDaemon) -> None:
    report = {**events.STATUS, "events": {**events.STATUS["events"], "mqtriggers": []}}
    daemon.answer("GET", "/healthz", (200, {"status": "ok"}))
    daemon.answer("GET", "/v1/status", (200, report))

    result = run(daemon, "status")

    assert "MQTRIGGER" not in result.stdout
    assert table(result.stdout.split("\n\n")[-1])[0]["WATCH"] == "w1"


def test_status_json_keeps_the_mqtriggers(daemon: FakeDaemon) -> None:
    report = {**events.STATUS, "events": {**events.STATUS["events"], "mqtriggers": [NATS]}}
    daemon.answer("GET", "/healthz", (200, {"status": "ok"}))
    daemon.answer("GET", "/v1/status", (200, report))

    result = run(daemon, "status", "-o", "json")

    assert json.loads(result.stdout)["events"]["mqtriggers"] == [NATS]


# -- help ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["mqtrigger"],
        ["mqtrigger", "create"],
        ["mqt", "list"],
        ["mqt", "get"],
        ["messagequeue", "update"],
        ["mqt", "delete"],
    ],
)
def test_every_mqtrigger_command_has_help_that_needs_no_daemon(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"], env={"FAAS_URL": "not a url"})

    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
