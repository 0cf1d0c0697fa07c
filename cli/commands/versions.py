"""`faas fn versions` and `faas fn rollback`: a function's kept versions, and going back to one.

Every create, and every update that changes a function's code or a setting,
is a version on the daemon (the last ``--keep-versions`` are kept). A rollback
makes an older version's code and settings the function's again, as a new
version: history is never rewritten. Both commands are registered in the
``function`` group (faas_cli/commands/function.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from faas_cli.errors import reports_errors
from faas_cli.options import FunctionName, Output, client_of
from faas_cli.output import EMPTY, Column, OutputFormat, print_items

CODE_DIGITS = 12
"""How much of a version's code sha256 a table shows (as git shows a commit)."""


def _code(value: Any) -> str:
    return str(value)[:CODE_DIGITS] if value else EMPTY


def _size(value: Any) -> str:
    return EMPTY if not value else str(value)


COLUMNS = (
    Column("VERSION", "version"),
    Column("CREATED", "created_at"),
    Column("CODE", "code_sha256", _code),
    Column("SIZE", "code_size", _size),
    Column("CHANGES", "_changes"),
)


def changes(version: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """What ``version`` changed from ``previous`` (the version before it): ``code`` and the settings' names.

    The first version is ``created``; one whose previous version is no longer
    kept is ``-``. Versions are recorded only when something changed, so a
    version whose code and listed settings are its previous one's changed a
    secret's value (versions list secrets by name only).
    """
    if previous is None:
        return "created" if version.get("version") == 1 else EMPTY
    changed: list[str] = []
    if version.get("code_sha256") != previous.get("code_sha256"):
        changed.append("code")
    new, old = _settings(version), _settings(previous)
    for key in [*new, *(k for k in old if k not in new)]:
        if new.get(key) != old.get(key):
            changed.append(key)
    return ", ".join(changed) or "secret values"


def _settings(version: dict[str, Any]) -> dict[str, Any]:
    settings = version.get("settings")
    return settings if isinstance(settings, dict) else {}


def _number(version: dict[str, Any]) -> int:
    number = version.get("version")
    return number if isinstance(number, int) else 0


def with_changes(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The versions, newest first, each with what it changed (``_changes``) from the kept one before it."""
    ordered = sorted(versions, key=_number, reverse=True)
    shown = []
    for index, version in enumerate(ordered):
        previous = ordered[index + 1] if index + 1 < len(ordered) else None
        if previous is not None and _number(previous) != _number(version) - 1:
            previous = None
        shown.append({**version, "_changes": changes(version, previous)})
    return shown


@reports_errors
def versions(ctx: typer.Context, name: FunctionName, output: Output = OutputFormat.table) -> None:
    """List a function's kept versions, newest first, with what each changed from the one before it."""
    items = client_of(ctx).function_versions(name)
    if output is OutputFormat.json:
        print_items(items, COLUMNS, output)
        return
    print_items(with_changes(items), COLUMNS, output)


@reports_errors
def rollback(
    ctx: typer.Context,
    name: FunctionName,
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            min=1,
            help="The version to go back to ('fn versions' lists them); default: the one before the newest.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Make an older version's code and settings the function's again, as a new version.

    Like any update, the calls from then on get it; its instances are replaced.
    """
    client = client_of(ctx)
    kept = sorted((_number(v) for v in client.function_versions(name)), reverse=True)
    newest = kept[0] if kept else None
    target = to if to is not None else (kept[1] if len(kept) > 1 else None)
    # Without a version before the newest, the daemon says why there is nothing to go back to.
    answer = client.rollback_function(name, target)
    now = answer.get("version")
    back = target if target is not None else "the previous"
    if now == newest:
        typer.echo(f"function '{name}' already has version {back}'s code and settings (still version {now})")
        return
    typer.echo(f"function '{name}' rolled back to version {back}'s code and settings (now version {now})")
