"""How `faas deploy` names a function, picks its route, and plans the triggers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faas_cli.commands.deploy import function_name_for, methods_for, plan_routes, route_for
from faas_cli.errors import CliError


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("hello.js", "hello"),
        ("src/Hello_World.py", "hello-world"),
        ("/abs/dir/My_Func.test.js", "my-func.test"),
        ("noext", "noext"),
    ],
)
def test_the_function_name_is_the_file_stem_lower_cased_with_dashes(path: str, name: str) -> None:
    assert function_name_for(Path(path)) == name


def test_the_route_defaults_to_slash_name_and_gets_a_leading_slash() -> None:
    assert route_for("hello", None) == "/hello"
    assert route_for("hello", "/api/hi") == "/api/hi"
    assert route_for("hello", "api/hi") == "/api/hi"


def test_methods_default_to_get_and_are_upper_cased_once_each_in_order() -> None:
    assert methods_for(None) == ["GET"]
    assert methods_for([]) == ["GET"]
    assert methods_for(["post", "GET", "Post", " put "]) == ["POST", "GET", "PUT"]


def _trigger(name: str, method: str, url: str, function: str) -> dict[str, Any]:
    return {"name": name, "method": method, "url": url, "function": function}


def test_routes_already_pointing_at_the_function_are_kept_and_the_rest_created() -> None:
    triggers = [
        _trigger("t1", "GET", "/hello", "hello"),
        _trigger("t2", "POST", "/other", "hello"),
        _trigger("t3", "PUT", "/hello", "hello"),
    ]

    plan = plan_routes(triggers, "hello", "/hello", ["GET", "POST"])

    assert plan.present == ["GET"]
    assert plan.create == ["POST"]


def test_a_route_taken_by_another_function_stops_the_deploy_with_one_line() -> None:
    triggers = [_trigger("t9", "get", "/hello", "someone-else")]

    with pytest.raises(CliError) as caught:
        plan_routes(triggers, "hello", "/hello", ["GET"])

    message = caught.value.message
    assert "\n" not in message
    assert "someone-else" in message
    assert "t9" in message
    assert "--route" in message
