"""`faas function`: reading the code file, `-H` headers, and the test command's status line."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from faas_cli.commands.function import parse_header, parse_headers, status_line
from faas_cli.errors import CliError
from faas_cli.main import app
from faas_cli.sources import read_source


def test_a_header_is_split_at_its_first_colon_and_trimmed() -> None:
    assert parse_header("Content-Type: application/json") == ("Content-Type", "application/json")
    assert parse_header("X-Url:  http://a:1/b ") == ("X-Url", "http://a:1/b")
    assert parse_header("X-Empty:") == ("X-Empty", "")


@pytest.mark.parametrize("text", ["no colon", ": value", "Two Words: v", ""])
def test_text_that_is_not_a_header_is_a_usage_error(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_header(text)


def test_a_repeated_header_keeps_the_last_value_whatever_its_case() -> None:
    headers = parse_headers(["X-A: 1", "x-a: 2", "X-B: 3"])

    assert headers == {"x-a": "2", "X-B": "3"}


def test_a_bad_header_on_the_command_line_exits_2_like_any_usage_error() -> None:
    result = CliRunner().invoke(app, ["fn", "test", "--name", "f", "-H", "nocolon"])

    assert result.exit_code == 2
    assert "Name: value" in result.output


def test_the_status_line_names_code_and_reason() -> None:
    assert status_line(200, "OK") == "HTTP 200 OK"
    assert status_line(599, "") == "HTTP 599"


def test_a_source_file_is_read_as_text_with_its_base_name(tmp_path: Path) -> None:
    path = tmp_path / "hello.js"
    path.write_text("module.exports = () => 'hi'\n", encoding="utf-8")

    source = read_source(path)

    assert source.filename == "hello.js"
    assert source.code == "module.exports = () => 'hi'\n"


def test_a_binary_or_directory_source_is_one_readable_error(tmp_path: Path) -> None:
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\xff\xfe\x00")

    with pytest.raises(CliError, match="is not UTF-8 text"):
        read_source(binary)
    with pytest.raises(CliError, match="is a directory"):
        read_source(tmp_path)
