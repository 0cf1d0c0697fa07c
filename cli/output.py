"""Printing API objects: aligned tables (the default) or JSON (``-o json``)."""

from __future__ import annotations

import contextlib
import enum
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import typer

COLUMN_GAP = "  "
EMPTY = "-"

_noted: set[str] = set()
"""The notes printed in this run (each is printed once)."""


def note_once(key: str, text: str) -> None:
    """Print ``note: <text>`` on stderr, once per run for each ``key``."""
    if key in _noted:
        return
    _noted.add(key)
    typer.echo(f"note: {text}", err=True)


def forget_notes() -> None:
    """A new run: every note may be printed again (the root command calls it)."""
    _noted.clear()


class OutputFormat(enum.StrEnum):
    """How listings and gets are printed."""

    table = "table"
    """Aligned columns under an upper-case header row."""
    json = "json"
    """The API's JSON, indented: an object for a get, an array for a listing."""


def cell(value: Any) -> str:
    """One table cell: ``-`` for nothing, text on one line."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())


def duration(value: Any) -> str:
    """Seconds as the largest whole unit: ``6h``, ``15m``, ``90s``; ``-`` for nothing."""
    if not isinstance(value, int) or isinstance(value, bool):
        return cell(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}s"


@dataclass(frozen=True)
class Column:
    """A table column: its header and how to get its cell from an API object."""

    header: str
    key: str
    render: Callable[[Any], str] = cell

    def value(self, item: dict[str, Any]) -> str:
        return self.render(item.get(self.key))


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows under an upper-case header, each column as wide as its widest cell.

    Columns are separated by two spaces; the last one is not padded, so no line
    ends in spaces. The result has no trailing newline.
    """
    lines = [[header.upper() for header in headers]]
    lines.extend([cell(value) for value in row] for row in rows)
    for line in lines:
        if len(line) != len(headers):
            raise ValueError(f"row {line!r} has {len(line)} cells for {len(headers)} columns")
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        COLUMN_GAP.join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def table_of(items: Iterable[dict[str, Any]], columns: Sequence[Column]) -> str:
    return format_table(
        [column.header for column in columns],
        ([column.value(item) for column in columns] for item in items),
    )


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def print_items(items: list[dict[str, Any]], columns: Sequence[Column], fmt: OutputFormat) -> None:
    """Print a listing: a table, or a JSON array."""
    typer.echo(to_json(items) if fmt is OutputFormat.json else table_of(items, columns))


def print_item(item: dict[str, Any], columns: Sequence[Column], fmt: OutputFormat) -> None:
    """Print one object: a one-row table, or a JSON object."""
    typer.echo(to_json(item) if fmt is OutputFormat.json else table_of([item], columns))


@contextlib.contextmanager
def working(message: str) -> Iterator[None]:
    """Show a spinner and ``message`` on stderr while long work runs.

    Only on a terminal: piped or captured output stays exactly what the command prints.
    """
    if not sys.stderr.isatty():
        yield
        return
    try:
        from rich.console import Console
    except ImportError:  # typer without rich: a plain line instead of a spinner
        typer.echo(f"{message}...", err=True)
        yield
        return
    with Console(stderr=True).status(message):
        yield


@contextlib.contextmanager
def progress(message: str) -> Iterator[Callable[[str], None]]:
    """Like :func:`working`, with a message that changes: yields the function that changes it.

    Only on a terminal: a spinner (rich) or, without rich, a dot per change.
    """
    if not sys.stderr.isatty():
        yield lambda _text: None
        return
    try:
        from rich.console import Console
    except ImportError:
        typer.echo(message, err=True, nl=False)
        try:
            yield lambda _text: typer.echo(".", err=True, nl=False)
        finally:
            typer.echo("", err=True)
        return
    with Console(stderr=True).status(message) as status:
        yield lambda text: status.update(text)
