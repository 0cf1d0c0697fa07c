"""The CLI's exception tree and the one place it becomes output.

Every failure a user can act on is a :class:`CliError`. Commands are wrapped in
:func:`reports_errors`, which prints it as exactly one line on stderr,
``error: <message>``, and exits with code 1; a traceback is only ever shown for
a bug. Usage errors stay typer's own (exit code 2).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A failure reported as one line ``error: <message>`` with exit code 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(CliError):
    """faasd answered with an error: ``{"error": {"code": ..., "message": ...}}``.

    ``status`` is the HTTP status (404 for an unknown name, 409 for a conflict...),
    ``code`` the daemon's stable error code, ``message`` its readable text.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DaemonUnreachable(CliError):
    """No HTTP answer at all: the daemon is not running, the host is wrong, ..."""

    def __init__(self, server: str, reason: str) -> None:
        message = f"cannot reach faasd at {server} ({reason})"
        if reason == "connection refused":
            message += "; start it with 'make run' or 'faasd'"
        super().__init__(message)
        self.server = server
        self.reason = reason


def error_line(error: CliError) -> str:
    """The single line shown for ``error``; whitespace, newlines included, is collapsed."""
    text = " ".join(error.message.split())
    return f"error: {text or 'unknown error'}"


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so a :class:`CliError` becomes ``error: ...`` on stderr and exit 1.

    Apply it under ``@app.command()``; typer reads the wrapped signature.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            typer.echo(error_line(error), err=True)
            raise typer.Exit(code=1) from None

    run.__reports_errors__ = True  # type: ignore[attr-defined]
    return run


def deleted(delete: Callable[[], object], ignore_missing: bool) -> bool:
    """Run a delete; False when there was nothing to delete and ``ignore_missing`` (Fission's
    ``--ignorenotfound``), which is then no error."""
    try:
        delete()
    except ApiError as error:
        if error.status == 404 and ignore_missing:
            return False
        raise
    return True
