"""`faas function` (alias `fn`): functions, their code, and calling them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from faas_cli.client import FaasClient
from faas_cli.errors import ApiError, CliError, reports_errors
from faas_cli.options import (
    Entrypoint,
    FunctionName,
    Output,
    PackageOfFunction,
    Timeout,
    client_of,
    with_function_settings,
)
from faas_cli.output import Column, OutputFormat, duration, print_item, print_items, to_json, working
from faas_cli.sources import read_source

app = typer.Typer(help="Functions: code that runs in an environment.", no_args_is_help=True)


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value}s"


COLUMNS = (
    Column("NAME", "name"),
    Column("ENV", "environment"),
    Column("FILENAME", "filename"),
    Column("ENTRYPOINT", "entrypoint"),
    Column("TIMEOUT", "timeout", _seconds),
    Column("SIZE", "code_size"),
    Column("UPDATED", "updated_at"),
)
# `fn get -o table` shows one function's limits too.
DETAIL_COLUMNS = (
    *COLUMNS[:-1],
    Column("MEMORY", "memory_mb", lambda value: "-" if value is None else f"{value}MB"),
    Column("CPU", "cpu_millis", lambda value: "-" if value is None else f"{value}m"),
    Column("NETWORK", "network"),
    Column("PACKAGE", "package"),
    # An asynchronous call's retries (after the first attempt) and how long they may go on.
    Column("RETRIES", "retries"),
    Column("RETRY_MAX_AGE", "retry_max_age", duration),
    COLUMNS[-1],
)


Header = Annotated[
    list[str] | None,
    typer.Option("--header", "-H", help="Request header 'Name: value'; repeat for more.", show_default=False),
]


@app.command()
@reports_errors
@with_function_settings
def create(
    ctx: typer.Context,
    name: FunctionName,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Environment (runtime) the function runs in; with --pkg, the package's (the default).",
            show_default=False,
        ),
    ] = None,
    code: Annotated[
        Path | None,
        typer.Option("--code", help="Source file; its text is uploaded and its name kept.", show_default=False),
    ] = None,
    pkg: PackageOfFunction = None,
    entrypoint: Entrypoint = None,
    timeout: Timeout = None,
    *,
    settings: dict[str, Any],
) -> None:
    """Create a function from a source file (--code) or a package (--pkg, with --entrypoint)."""
    if (code is None) == (pkg is None):
        raise CliError("give --code FILE (one source file) or --pkg PACKAGE (with --entrypoint), not both")
    client = client_of(ctx)
    if pkg is not None:
        client.create_function(name, env, None, entrypoint=entrypoint, timeout=timeout, package=pkg, **settings)
        typer.echo(f"function '{name}' created")
        return
    assert code is not None
    if env is None:
        raise CliError("give --env: the environment a function of one source file runs in")
    source = read_source(code)
    client.create_function(
        name,
        env,
        source.code,
        filename=source.filename,
        entrypoint=entrypoint,
        timeout=timeout,
        **settings,
    )
    typer.echo(f"function '{name}' created")


@app.command()
@reports_errors
def get(
    ctx: typer.Context,
    name: FunctionName,
    output: Annotated[
        OutputFormat | None,
        typer.Option(
            "--output",
            "-o",
            help="Print the metadata (table or json; json includes the code) instead of the code.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print a function's code, or with -o its metadata."""
    client = client_of(ctx)
    if output is None:
        code = client.get_function_code(name)
        typer.echo(code, nl=not code.endswith("\n"))
        return
    function = client.get_function(name)
    if output is OutputFormat.json and not function.get("package"):
        function = {**function, "code": client.get_function_code(name)}
    print_item(function, DETAIL_COLUMNS, output)


@app.command("list")
@reports_errors
def list_(ctx: typer.Context, output: Output = OutputFormat.table) -> None:
    """List functions."""
    print_items(client_of(ctx).list_functions(), COLUMNS, output)


@app.command()
@reports_errors
@with_function_settings
def update(
    ctx: typer.Context,
    name: FunctionName,
    code: Annotated[Path | None, typer.Option("--code", help="New source file.", show_default=False)] = None,
    pkg: PackageOfFunction = None,
    env: Annotated[str | None, typer.Option("--env", help="Move the function to this environment.")] = None,
    entrypoint: Entrypoint = None,
    timeout: Timeout = None,
    *,
    settings: dict[str, Any],
) -> None:
    """Change a function's code or package, environment, entrypoint, timeout, variables, secrets, limits or scaling."""
    if code is None and pkg is None and env is None and entrypoint is None and timeout is None and not settings:
        raise CliError(
            "nothing to update; give --code, --pkg, --env, --entrypoint, --timeout or a setting (see --help)"
        )
    if code is not None and pkg is not None:
        raise CliError("give --code FILE (one source file) or --pkg PACKAGE, not both")
    source = read_source(code) if code is not None else None
    client_of(ctx).update_function(
        name,
        code=source.code if source else None,
        filename=source.filename if source else None,
        environment=env,
        entrypoint=entrypoint,
        timeout=timeout,
        **({"package": pkg} if pkg is not None else {}),
        **settings,
    )
    typer.echo(f"function '{name}' updated")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: FunctionName,
    force: Annotated[bool, typer.Option("--force", help="Delete the function's routes too.")] = False,
) -> None:
    """Delete a function (with --force, also the routes that call it)."""
    try:
        client_of(ctx).delete_function(name, force=force)
    except ApiError as error:
        if error.status == 409 and not force:
            raise CliError(f"{error.message} (with faas: --force)") from None
        raise
    typer.echo(f"function '{name}' deleted")


@app.command("test")
@reports_errors
def call(
    ctx: typer.Context,
    name: FunctionName,
    method: Annotated[str, typer.Option("--method", "-X", help="HTTP method.")] = "GET",
    body: Annotated[
        str | None,
        typer.Option(
            "--body",
            "-b",
            help="Request body; like curl -d, its type is form-urlencoded unless -H sets one.",
            show_default=False,
        ),
    ] = None,
    header: Header = None,
    path: Annotated[str, typer.Option(help="Sub-path after /function/NAME, e.g. /users/7?full=1.")] = "",
) -> None:
    """Call a function through /function/NAME; print the status line, then the body.

    Exits with 1 when the status is 400 or above (the body is printed anyway).
    """
    headers = parse_headers(header or [])
    _call(client_of(ctx), name, method, body, headers, path)


@app.command()
@reports_errors
def invoke(
    ctx: typer.Context,
    name: FunctionName,
    asynchronous: Annotated[
        bool,
        typer.Option(
            "--async",
            help="Queue the call (the daemon answers 202) and print its call id; "
            "'faas invocation get ID --wait' shows how it went.",
        ),
    ] = False,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            help="Request body; like curl -d, its type is form-urlencoded unless -H sets one.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option("--method", "-X", help="HTTP method (default: POST with --data, else GET).", show_default=False),
    ] = None,
    header: Header = None,
    subpath: Annotated[
        str, typer.Option("--subpath", help="Sub-path after /function/NAME, e.g. /users/7?full=1.")
    ] = "",
    callback_url: Annotated[
        str | None,
        typer.Option(
            "--callback-url",
            help="With --async: an http(s) URL the daemon POSTs the function's answer to once the call is done.",
            show_default=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="With --async: a call with a key already taken (within 24h) is not queued again; "
            "its call id is printed.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat,
        typer.Option("--output", "-o", help="With --async: table (the call id alone) or json (the daemon's answer)."),
    ] = OutputFormat.table,
) -> None:
    """Call a function; with --async, queue the call and print just its call id.

    Without --async it is 'faas fn test': the status line, then the body, and
    exit 1 when the status is 400 or above.
    """
    headers = parse_headers(header or [])
    verb = (method or ("POST" if data is not None else "GET")).upper()
    if not asynchronous:
        if callback_url is not None or idempotency_key is not None or output is not OutputFormat.table:
            raise CliError("--callback-url, --idempotency-key and -o go with --async")
        _call(client_of(ctx), name, verb, data, headers, subpath)
        return
    accepted = client_of(ctx).invoke_async(
        name,
        method=verb,
        path=subpath,
        body=data.encode() if data is not None else None,
        headers=headers,
        callback_url=callback_url,
        idempotency_key=idempotency_key,
    )
    if output is OutputFormat.json:
        typer.echo(to_json(accepted))
        return
    # stdout is the id alone, for ID=$(faas fn invoke --name f --async).
    typer.echo(accepted["call_id"])
    if accepted.get("repeated"):
        typer.echo("(a call with this idempotency key was accepted before; this is its id)", err=True)


@app.command()
@reports_errors
def logs(
    ctx: typer.Context,
    name: FunctionName,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines as they come (Ctrl-C ends).")
    ] = False,
    tail: Annotated[
        int | None,
        typer.Option(min=0, help="Only the last N lines (default: every line kept).", show_default=False),
    ] = None,
    request: Annotated[
        str | None,
        typer.Option(
            "--request",
            help="Only the lines one call wrote: its X-Request-Id (faas fn invoke prints it).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show what the function's containers printed: time, instance, stream, text."""
    lines = client_of(ctx).function_logs(name, tail=tail, follow=follow, request=request)
    try:
        for line in lines:
            typer.echo(line)
    except KeyboardInterrupt:
        # Ctrl-C is how a follow ends: quietly, and successfully.
        raise typer.Exit(code=0) from None
    except BrokenPipeError:
        # The reader went away (`| head`): stop without a traceback, and
        # point stdout at /dev/null so the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(code=0) from None
    finally:
        lines.close()


def _call(client: FaasClient, name: str, method: str, body: str | None, headers: dict[str, str], path: str) -> None:
    with working(f"calling function '{name}'"):
        reply = client.invoke(
            name,
            method=method,
            path=path,
            body=body.encode() if body is not None else None,
            headers=headers,
        )
    typer.echo(status_line(reply.status, reply.reason))
    if reply.body:
        text = reply.text
        typer.echo(text, nl=not text.endswith("\n"))
    request_id = next((v for k, v in reply.headers.items() if k.lower() == "x-request-id"), None)
    if request_id and reply.status < 400:
        typer.echo(f"request id: {request_id}  (faas fn logs --name {name} --request {request_id})", err=True)
    if reply.status >= 400:
        answered = f"function '{name}' answered {status_line(reply.status, reply.reason)}"
        # faasd's own refusal (unknown function, timeout, ...) says why; a function's body is its own.
        detail = faasd_error(reply.body)
        message = f"{answered}: {detail}" if detail else answered
        # One line, as every CLI error: the request id (for faas fn logs --request) goes in it.
        raise CliError(f"{message} (request id {request_id})" if request_id else message)


def faasd_error(body: bytes) -> str | None:
    """The message of a ``{"error": {"code": ..., "message": ...}}`` body, else None."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return message if isinstance(message, str) and message.strip() else None


def status_line(status: int, reason: str) -> str:
    """``HTTP 200 OK``: the first line `faas function test` prints."""
    return f"HTTP {status} {reason}".rstrip()


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``('Name', 'value')``; a usage error without a name and a colon."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(char.isspace() for char in name):
        raise typer.BadParameter(
            f"{text!r} is not a header; write it as 'Name: value'",
            param_hint="'-H' / '--header'",
        )
    return name, value.strip()


def parse_headers(texts: Iterable[str]) -> dict[str, str]:
    """Headers from repeated ``-H``; a later one of the same name (any case) wins."""
    headers: dict[str, str] = {}
    for text in texts:
        name, value = parse_header(text)
        for existing in [key for key in headers if key.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    return headers
