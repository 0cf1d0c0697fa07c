"""Tables and JSON as `faas ... list/get` print them."""

from __future__ import annotations

import json

import pytest

from faas_cli.output import Column, OutputFormat, cell, format_table, print_items, table_of


def test_columns_are_as_wide_as_their_widest_cell_and_headers_are_upper_case() -> None:
    table = format_table(["name", "image"], [["nodejs", "faasd/node:20"], ["py", "x"]])

    assert table.splitlines() == [
        "NAME    IMAGE",
        "nodejs  faasd/node:20",
        "py      x",
    ]


def test_no_line_ends_in_spaces_even_when_the_last_column_is_ragged() -> None:
    table = format_table(["A", "B"], [["x", "long value"], ["y", "v"]])

    assert all(line == line.rstrip() for line in table.splitlines())
    assert not table.endswith("\n")


def test_a_listing_without_rows_is_the_header_alone() -> None:
    assert format_table(["NAME", "URL"], []) == "NAME  URL"


def test_missing_values_show_as_a_dash_and_cells_stay_on_one_line() -> None:
    assert cell(None) == "-"
    assert cell("") == "-"
    assert cell(0) == "0"
    assert cell("two\nlines\tand  tabs") == "two lines and tabs"


def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="2 columns"):
        format_table(["A", "B"], [["only one"]])


def test_columns_pick_keys_from_api_objects_and_can_render_them() -> None:
    def seconds(value: object) -> str:
        return "never" if value is None else f"{value}s"

    columns = (Column("NAME", "name"), Column("TIMEOUT", "timeout", seconds))

    table = table_of([{"name": "hello", "timeout": 30, "extra": 1}, {"name": "b"}], columns)

    assert table.splitlines() == ["NAME   TIMEOUT", "hello  30s", "b      never"]


def test_json_output_is_the_api_objects_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    items = [{"name": "hello", "code_size": 12, "entrypoint": None}]

    print_items(items, (Column("NAME", "name"),), OutputFormat.json)

    assert json.loads(capsys.readouterr().out) == items
