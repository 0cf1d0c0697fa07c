"""The command tree: Fission's groups and aliases, `--version`, help without a daemon."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from faas_cli.main import app, version_text


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout == version_text() + "\n"
    assert result.stdout.startswith("faas ")


@pytest.mark.parametrize(("group", "alias"), [("function", "fn"), ("route", "httptrigger")])
def test_fission_aliases_reach_the_same_commands(group: str, alias: str) -> None:
    runner = CliRunner()

    main = runner.invoke(app, [group, "--help"])
    aliased = runner.invoke(app, [alias, "--help"])

    assert main.exit_code == aliased.exit_code == 0
    for verb in ("create", "get", "list", "update", "delete"):
        assert verb in main.stdout
        assert verb in aliased.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["env", "create"],
        ["env", "update"],
        ["function", "create"],
        ["function", "test"],
        ["route", "create"],
        ["route", "list"],
        ["deploy"],
        ["status"],
    ],
)
def test_every_command_has_help_that_needs_no_daemon(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"], env={"FAAS_URL": "not a url"})

    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_listings_accept_json_output() -> None:
    for group in ("env", "function", "route"):
        result = CliRunner().invoke(app, [group, "list", "--help"])
        assert "--output" in result.stdout
        assert "-o" in result.stdout
