"""`faas canary` (and `fission canary`): create, get, list, update and delete canaries.

The fake daemon of test_cli_events records each request and answers from a script.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from faas_cli.commands.canary import interval_seconds
from faas_cli.errors import CliError
from faas_cli.main import app
from tests.unit import test_cli_events as events
from tests.unit.test_cli_events import FakeDaemon, error, run, table

# The fake daemon fixture, under its own name (an assignment, so tests may take it as an argument).
daemon = events.daemon

CANARIES = "/v1/canaries"
ONE = "/v1/canaries/shop-canary"
REASON = "'shop-v2' takes every call of route 'shop': its failure rate stayed at or below 10 % at every step"


def canary(**changed: Any) -> dict[str, Any]:
    base = {
        "name": "shop-canary",
        "newfunction": "shop-v2",
        "oldfunction": "shop-v1",
        "httptrigger": "shop",
        "increment_step": 20,
        "increment_interval": 120,
        "failure_threshold": 10,
        "status": "running",
        "weight": 20,
        "reason": "",
        "history": [
            {"time": "2026-11-30T10:00:00.000Z", "weight": 20, "calls": 0, "failures": 0, "failure_rate": None}
        ],
        "created_at": "2026-11-30T10:00:00Z",
        "updated_at": "2026-11-30T10:00:00Z",
        "labels": {},
    }
    return {**base, **changed}


def succeeded() -> dict[str, Any]:
    history = [
        {"time": "2026-11-30T10:00:00.000Z", "weight": 40, "calls": 0, "failures": 0, "failure_rate": None},
        {"time": "2026-11-30T10:00:01.000Z", "weight": 80, "calls": 12, "failures": 1, "failure_rate": 8.33},
        {"time": "2026-11-30T10:00:02.000Z", "weight": 100, "calls": 30, "failures": 0, "failure_rate": 0.0},
    ]
    return canary(status="succeeded", weight=100, increment_step=40, increment_interval=1, reason=REASON,
                  history=history)  # fmt: skip


CREATE = ("canary", "create", "--name", "shop-canary", "--newfunction", "shop-v2", "--oldfunction", "shop-v1",
          "--httptrigger", "shop")  # fmt: skip


def fission(daemon: FakeDaemon, *args: str) -> Result:
    env = {"FAAS_URL": None, "FAAS_TOKEN": "t", "FISSION_URL": daemon.url, "FISSION_ROUTER": None, "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), prog_name="fission", env=env)


# -- create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("1m", 60), ("1m30s", 90), ("2h", 7200), ("1d", 86400), (" 2M ", 120)],
)
def test_an_interval_is_seconds_or_a_duration(text: str, seconds: int) -> None:
    assert interval_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "500ms", "1.5m", "m", "-1", "1m 30s", "٣"])
def test_an_interval_that_is_no_duration_is_refused(text: str) -> None:
    with pytest.raises(CliError, match="--increment-interval"):
        interval_seconds(text)


def test_create_sends_fissions_fields_and_says_what_the_route_does_now(daemon: FakeDaemon) -> None:
    made = canary(weight=25, increment_step=25, increment_interval=90, failure_threshold=5)
    daemon.answer("POST", CANARIES, (201, made))

    result = run(daemon, *CREATE, "--increment-step", "25", "--increment-interval", "1m30s",
                 "--failure-threshold", "5", "--labels", "app=shop")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert daemon.requests("POST", CANARIES)[0].body == {
        "name": "shop-canary",
        "newfunction": "shop-v2",
        "oldfunction": "shop-v1",
        "httptrigger": "shop",
        "increment_step": 25,
        "increment_interval": 90,
        "failure_threshold": 5,
        "labels": {"app": "shop"},
    }
    assert result.stdout == (
        "canary 'shop-canary' created: route 'shop' sends 25% of its calls to 'shop-v2', 25% more every 90s "
        "while at most 5% of them fail ('faas canary get --name shop-canary' shows how it goes)\n"
    )
    assert result.stderr == ""


def test_create_leaves_the_defaults_to_the_daemon(daemon: FakeDaemon) -> None:
    daemon.answer("POST", CANARIES, (201, canary()))

    result = run(daemon, *CREATE)

    assert result.exit_code == 0, result.output
    assert set(daemon.requests("POST", CANARIES)[0].body) == {"name", "newfunction", "oldfunction", "httptrigger"}
    assert "sends 20% of its calls to 'shop-v2', 20% more every 2m while at most 10%" in result.stdout


def test_fissions_short_spellings_and_failure_type_explained_once(daemon: FakeDaemon) -> None:
    daemon.answer("POST", CANARIES, (201, canary()))

    result = fission(daemon, "canary", "create", "--name", "shop-canary", "--newfn", "shop-v2", "--oldfn", "shop-v1",
                     "--httptrigger", "shop", "--step", "30", "--increment-interval", "30s", "--threshold", "15",
                     "--failure-type", "status-code")  # fmt: skip

    assert result.exit_code == 0, result.output
    body = daemon.requests("POST", CANARIES)[0].body
    assert (body["increment_step"], body["increment_interval"], body["failure_threshold"]) == (30, 30, 15)
    assert "failure_type" not in body and "failure-type" not in json.dumps(body)
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: --failure-type ignored: faasd counts a failure by its status code only (a 5xx answer of the new "
        "function), Fission's status-code, its one type"
    ]
    assert "'fission canary get --name shop-canary'" in result.stdout


def test_faas_takes_failure_type_too(daemon: FakeDaemon) -> None:
    daemon.answer("POST", CANARIES, (201, canary()))

    result = run(daemon, *CREATE, "--failure-type", "status-code")

    assert result.exit_code == 0, result.output
    assert result.stderr.count("note: --failure-type ignored") == 1


def test_a_bad_interval_is_one_line_and_nothing_is_sent(daemon: FakeDaemon) -> None:
    result = run(daemon, *CREATE, "--increment-interval", "500ms")

    assert result.exit_code == 1
    assert result.stderr == (
        "error: --increment-interval '500ms' must be seconds or a duration such as 30s, 1m, 1m30s or 2h\n"
    )
    assert daemon.sent == []


def test_a_step_out_of_range_is_a_usage_error(daemon: FakeDaemon) -> None:
    assert run(daemon, *CREATE, "--increment-step", "0").exit_code == 2
    assert run(daemon, *CREATE, "--failure-threshold", "101").exit_code == 2
    assert daemon.sent == []


def test_what_the_daemon_refuses_is_its_message_on_one_line(daemon: FakeDaemon) -> None:
    message = "httptrigger: route 'shop' names 'other', not 'shop-v1' (and 'shop-v2') alone; a canary moves ..."
    daemon.answer("POST", CANARIES, error(400, message))

    result = run(daemon, *CREATE)

    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


def test_the_group_is_canary_config_too(daemon: FakeDaemon) -> None:
    daemon.answer("GET", CANARIES, (200, {"items": []}))

    assert fission(daemon, "canary-config", "list").exit_code == 0


# -- get and list -----------------------------------------------------------------------------------


def test_get_shows_the_canary_its_reason_and_every_step(daemon: FakeDaemon) -> None:
    daemon.answer("GET", ONE, (200, succeeded()))

    result = run(daemon, "canary", "get", "--name", "shop-canary")

    assert result.exit_code == 0, result.output
    head, reason, blank, *history = result.stdout.splitlines()[1:]
    first = table(result.stdout.splitlines()[0] + "\n" + head)[0]
    assert first == {
        "NAME": "shop-canary",
        "NEWFUNCTION": "shop-v2",
        "OLDFUNCTION": "shop-v1",
        "HTTPTRIGGER": "shop",
        "STATUS": "succeeded",
        "WEIGHT": "100",
        "STEP": "40",
        "INTERVAL": "1s",
        "THRESHOLD": "10",
    }
    assert reason == f"reason: {REASON}"
    assert blank == ""
    steps = table("\n".join(history))
    assert [(s["TIME"], s["WEIGHT"], s["CALLS"], s["FAILURES"], s["FAILURE RATE"]) for s in steps] == [
        ("2026-11-30T10:00:00.000Z", "40", "0", "0", "-"),
        ("2026-11-30T10:00:01.000Z", "80", "12", "1", "8.33%"),
        ("2026-11-30T10:00:02.000Z", "100", "30", "0", "0%"),
    ]


def test_get_of_a_running_canary_has_no_reason_line(daemon: FakeDaemon) -> None:
    daemon.answer("GET", ONE, (200, canary()))

    result = run(daemon, "canary", "get", "--name", "shop-canary")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[2] == "" and lines[3].split() == ["TIME", "WEIGHT", "CALLS", "FAILURES", "FAILURE", "RATE"]
    assert not any(line.startswith("reason:") for line in lines)


def test_get_json_is_the_daemons_document(daemon: FakeDaemon) -> None:
    daemon.answer("GET", ONE, (200, succeeded()))

    result = run(daemon, "canary", "get", "--name", "shop-canary", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == succeeded()


def test_get_of_an_unknown_canary_is_one_line(daemon: FakeDaemon) -> None:
    daemon.answer("GET", ONE, error(404, "canary 'shop-canary' not found"))

    result = run(daemon, "canary", "get", "--name", "shop-canary")

    assert result.exit_code == 1
    assert result.stderr == "error: canary 'shop-canary' not found\n"


def test_list_is_a_table_name_first(daemon: FakeDaemon) -> None:
    aborted = canary(name="cart-canary", newfunction="cart-v2", oldfunction="cart-v1", httptrigger="cart",
                     status="aborted", weight=0, increment_interval=30, failure_threshold=0)  # fmt: skip
    daemon.answer("GET", CANARIES, (200, {"items": [aborted, succeeded()]}))

    result = run(daemon, "canary", "list")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == [
        "NAME", "NEWFUNCTION", "OLDFUNCTION", "HTTPTRIGGER", "STATUS", "WEIGHT", "STEP", "INTERVAL", "THRESHOLD"
    ]  # fmt: skip
    assert [list(row.values()) for row in table(result.stdout)] == [
        ["cart-canary", "cart-v2", "cart-v1", "cart", "aborted", "0", "20", "30s", "0"],
        ["shop-canary", "shop-v2", "shop-v1", "shop", "succeeded", "100", "40", "1s", "10"],
    ]


def test_list_json(daemon: FakeDaemon) -> None:
    daemon.answer("GET", CANARIES, (200, {"items": [canary()]}))

    result = fission(daemon, "canary", "list", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [canary()]


# -- update and delete --------------------------------------------------------------------------


def test_update_sends_only_what_was_given(daemon: FakeDaemon) -> None:
    daemon.answer("PATCH", ONE, (200, canary(increment_interval=60)))

    result = run(daemon, "canary", "update", "--name", "shop-canary", "--increment-interval", "1m", "--threshold", "3")

    assert result.exit_code == 0, result.output
    assert result.stdout == "canary 'shop-canary' updated\n"
    assert daemon.requests("PATCH", ONE)[0].body == {"increment_interval": 60, "failure_threshold": 3}


def test_update_without_a_change_is_one_line(daemon: FakeDaemon) -> None:
    result = run(daemon, "canary", "update", "--name", "shop-canary")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: nothing to update; give --increment-step")
    assert daemon.sent == []


def test_update_of_an_ended_canary_is_the_daemons_one_line(daemon: FakeDaemon) -> None:
    message = "canary 'shop-canary' has ended (succeeded); create a new one"
    daemon.answer("PATCH", ONE, (409, {"error": {"code": "conflict", "message": message}}))

    result = run(daemon, "canary", "update", "--name", "shop-canary", "--increment-step", "50")

    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


def test_delete_and_ignorenotfound(daemon: FakeDaemon) -> None:
    daemon.answer("DELETE", ONE, (204, None), error(404, "canary 'shop-canary' not found"))

    deleted = run(daemon, "canary", "delete", "--name", "shop-canary")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == "canary 'shop-canary' deleted (its route keeps the weights it has now)\n"

    again = run(daemon, "canary", "delete", "--name", "shop-canary")
    assert again.exit_code == 1 and again.stderr == "error: canary 'shop-canary' not found\n"

    ignored = run(daemon, "canary", "delete", "--name", "shop-canary", "--ignorenotfound")
    assert ignored.exit_code == 0 and ignored.stdout == ""
