"""`faas function` (alias `fn`): functions, their code, and calling them.

Fission's spellings too: ``create``/``update`` take ``--src``/``--deploy``
(with ``--buildcmd``), which make or update the function's own package, as
Fission's CLI does; ``create --url`` routes a URL to it; ``test`` takes
``--query`` and ``--timeout``; ``logs`` (``log``) ``--detail``,
``--recordcount``, ``--reverse`` and ``--pod`` (an instance); ``getmeta`` and
``pods``. Run as ``fission``, ``test`` prints the body alone and ``logs`` the
text alone unless ``--detail``, as Fission does. ``versions`` and ``rollback``
(faas_cli/commands/versions.py) are faasd's own: the daemon keeps each version.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from faas_cli.archives import refuse_url
from faas_cli.client import FaasClient
from faas_cli.commands import versions
from faas_cli.commands.package import archives, unique_name
from faas_cli.commands.route import methods_of, url_of
from faas_cli.errors import ApiError, CliError, reports_errors
from faas_cli.fission import DEFAULT_SPECDIR, SpecDir, SpecDry, SpecSave, saved_as_spec
from faas_cli.options import (
    FISSION_PANEL,
    Entrypoint,
    FunctionName,
    Output,
    PackageOfFunction,
    Timeout,
    client_of,
    is_fission,
    program,
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


# As `fission fn list` prints them, with what faasd has of each.
FISSION_COLUMNS = (
    Column("NAME", "name"),
    Column("ENV", "environment"),
    Column("EXECUTORTYPE", "executor", lambda value: value or "poolmgr"),
    Column("MINSCALE", "min_instances"),
    Column("MAXSCALE", "max_instances"),
    Column("MINCPU", "_none", lambda _value: "0"),
    Column("MAXCPU", "cpu_millis", lambda value: "-" if value is None else f"{value}m"),
    Column("MINMEMORY", "_none", lambda _value: "0"),
    Column("MAXMEMORY", "memory_mb", lambda value: "-" if value is None else f"{value}Mi"),
    Column("SECRETS", "secrets", lambda value: ",".join(value) if isinstance(value, list) and value else "-"),
)
INSTANCE_COLUMNS = (
    Column("NAME", "id"),
    Column("STATE", "state"),
    Column("INFLIGHT", "inflight"),
    Column("CALLS", "calls"),
    Column("AGE", "age_seconds", lambda value: "-" if value is None else f"{value:.0f}s"),
    Column("IDLE", "idle_seconds", lambda value: "-" if value is None else f"{value:.0f}s"),
)

Header = Annotated[
    list[str] | None,
    typer.Option("--header", "-H", help="Request header 'Name: value'; repeat for more.", show_default=False),
]
Sources = Annotated[
    list[Path] | None,
    typer.Option(
        "--src",
        "--sourcearchive",
        "--source",
        help="Source to build into the function's own package (a directory, an archive, files or a glob).",
        show_default=False,
        rich_help_panel=FISSION_PANEL,
    ),
]
Deploys = Annotated[
    list[Path] | None,
    typer.Option(
        "--deploy",
        "--deployarchive",
        help="A ready deployment for the function's own package (a directory, an archive, files or a glob).",
        show_default=False,
        rich_help_panel=FISSION_PANEL,
    ),
]
BuildCmd = Annotated[
    str | None,
    typer.Option(
        "--buildcmd",
        help="With --src: the build command its builder runs.",
        show_default=False,
        rich_help_panel=FISSION_PANEL,
    ),
]
IgnoreNotFound = Annotated[bool, typer.Option("--ignorenotfound", help="A function that does not exist is no error.")]


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
    src: Sources = None,
    deploy: Deploys = None,
    buildcmd: BuildCmd = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Also route this URL to the function (Fission's fn create --url; 'route create' is the way).",
            show_default=False,
            rich_help_panel=FISSION_PANEL,
        ),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="With --url: the route's method (default GET); repeat for more.",
            show_default=False,
            rich_help_panel=FISSION_PANEL,
        ),
    ] = None,
    spec: SpecSave = False,
    dry: SpecDry = False,
    specdir: SpecDir = DEFAULT_SPECDIR,
    *,
    settings: dict[str, Any],
) -> None:
    """Create a function from a source file (--code), a package (--pkg, with --entrypoint), or a package of its
    own made from --src/--deploy."""
    made = (code is not None) + (pkg is not None) + bool(src or deploy)
    if made != 1:
        raise CliError(
            "give --code FILE (one source file) or --pkg PACKAGE (with --entrypoint), or --src/--deploy "
            "(a package of its own), one of them"
        )
    if buildcmd is not None and not src:
        raise CliError("--buildcmd goes with --src (a source to build)")
    if method and url is None:
        raise CliError("--method goes with --url (the route to make)")

    def write(folder: Path) -> list[Path]:
        return function_specs(folder, name, env, code, pkg, src, deploy, buildcmd, entrypoint, timeout, settings,
                              url, method)  # fmt: skip

    if saved_as_spec(spec, dry, specdir, write):
        return
    client = client_of(ctx)
    if src or deploy:
        if env is None:
            raise CliError("give --env: the environment whose builder builds the package and that runs it")
        pkg = own_package(ctx, client, name, env, src, deploy, buildcmd)
    if pkg is not None:
        try:
            client.create_function(name, env, None, entrypoint=entrypoint, timeout=timeout, package=pkg, **settings)
        except CliError:
            if src or deploy:  # the package made for it is not left behind
                with contextlib.suppress(CliError):
                    client.delete_package(str(pkg))
            raise
    else:
        assert code is not None
        if env is None:
            raise CliError("give --env: the environment a function of one source file runs in")
        refuse_url(code, "code file")
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
    if url is not None:
        for verb in methods_of(method):
            trigger = client.create_trigger(verb, url_of(url), name)
            typer.echo(f"route '{trigger.get('name')}' created: {verb} {trigger.get('url', url)} -> {name}")


def function_specs(
    folder: Path,
    name: str,
    env: str | None,
    code: Path | None,
    pkg: str | None,
    src: list[Path] | None,
    deploy: list[Path] | None,
    buildcmd: str | None,
    entrypoint: str | None,
    timeout: int | None,
    settings: dict[str, Any],
    url: str | None,
    method: list[str] | None,
) -> list[Path]:
    """`fn create --spec`: the function's spec file, its package's when --src/--deploy, its route's with --url."""
    from faas_cli.commands.package import package_spec
    from faas_cli.specs import files

    written: list[Path] = []
    if src or deploy:
        if env is None:
            raise CliError("give --env: the environment whose builder builds the package and that runs it")
        pkg = unique_name(name)
        written.append(package_spec(folder, pkg, env, src, deploy, buildcmd))
    fields = dict(settings)
    labels = fields.pop("labels", None)
    written.append(
        files.write_function_spec(
            folder,
            name,
            env=env,
            code=code,
            pkg=pkg,
            entrypoint=entrypoint,
            timeout=timeout,
            settings=fields,
            labels=labels,
        )
    )
    if url is not None:
        written.append(files.write_route_spec(folder, name, name, url_of(url), methods_of(method)))
    return written


def own_package(
    ctx: typer.Context,
    client: FaasClient,
    function: str,
    env: str,
    src: list[Path] | None,
    deploy: list[Path] | None,
    buildcmd: str | None,
) -> str:
    """Make the package of a function created from --src/--deploy: named after it, as Fission names it."""
    name = unique_name(function)
    with archives(src, deploy) as (source, deployment), working(f"uploading package '{name}'"):
        package = client.create_package(name, env, source, deployment, buildcmd)
    status = package.get("status", "?")
    hint = f"; '{program(ctx)} pkg info --name {name}' shows the build" if status in ("pending", "running") else ""
    typer.echo(f"package '{name}' created (status: {status}{hint})")
    return name


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
    print_items(client_of(ctx).list_functions(), FISSION_COLUMNS if is_fission(ctx) else COLUMNS, output)


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
    src: Sources = None,
    deploy: Deploys = None,
    buildcmd: BuildCmd = None,
    *,
    settings: dict[str, Any],
) -> None:
    """Change a function's code or package, environment, entrypoint, timeout, variables, secrets, limits or scaling.

    --src/--deploy/--buildcmd update the package the function runs (or make it one).
    """
    packaging = bool(src or deploy) or buildcmd is not None
    if (
        code is None
        and pkg is None
        and env is None
        and entrypoint is None
        and timeout is None
        and not settings
        and not packaging
    ):
        raise CliError(
            "nothing to update; give --code, --pkg, --env, --entrypoint, --timeout or a setting (see --help)"
        )
    if (code is not None) + (pkg is not None) + packaging > 1:
        raise CliError("give --code FILE (one source file) or --pkg PACKAGE, not both")
    client = client_of(ctx)
    if packaging:
        pkg = updated_package(ctx, client, name, env, src, deploy, buildcmd)
    source = read_source(code) if code is not None else None
    client.update_function(
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


def updated_package(
    ctx: typer.Context,
    client: FaasClient,
    function: str,
    env: str | None,
    src: list[Path] | None,
    deploy: list[Path] | None,
    buildcmd: str | None,
) -> str:
    """Fission's ``fn update --src/--deploy``: the function's package updated, or one made for it; its name."""
    current = client.get_function(function)
    name = str(current.get("package") or "")
    if not name:
        if not (src or deploy):
            raise CliError(f"function '{function}' runs one source file, not a package: give --src or --deploy")
        return own_package(ctx, client, function, env or str(current.get("environment")), src, deploy, buildcmd)
    with archives(src, deploy) as (source, deployment), working(f"uploading package '{name}'"):
        package = client.update_package(name, env, source, deployment, buildcmd)
    typer.echo(f"package '{name}' updated (status: {package.get('status', '?')})")
    return name


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: FunctionName,
    force: Annotated[bool, typer.Option("--force", help="Delete the function's routes too.")] = False,
    ignorenotfound: IgnoreNotFound = False,
) -> None:
    """Delete a function (with --force, also the routes that call it).

    As 'fission', as Fission does, the function goes whatever calls it.
    """
    fission = is_fission(ctx)
    try:
        answer = client_of(ctx).delete_function(name, force=force or fission)
    except ApiError as error:
        if error.status == 404 and ignorenotfound:
            return
        if error.status == 409 and not force:
            raise CliError(f"{error.message} (with faas: --force)") from None
        raise
    typer.echo(f"function '{name}' deleted")
    for line in gone_with(answer):
        typer.echo(line)


KINDS = {"watches": "watch", "mq_triggers": "mqtrigger", "mqtriggers": "mqtrigger", "triggers": "route"}
"""What the daemon may call the kinds that go with a function, as one of each is named."""


def gone_with(answer: dict[str, Any]) -> list[str]:
    """What the daemon says went with a function: ``{"deleted": {"routes": [...], ...}}`` or a list of names."""
    deleted = answer.get("deleted")
    lines: list[str] = []
    if isinstance(deleted, dict):
        for kind, names in deleted.items():
            if isinstance(names, list):
                one = KINDS.get(str(kind), str(kind).removesuffix("s"))
                lines.extend(f"{one} '{each}' deleted" for each in names)
    elif isinstance(deleted, list):
        lines.extend(f"{each} deleted" for each in deleted if isinstance(each, str))
    return lines


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
    path: Annotated[
        str, typer.Option("--path", "--subpath", help="Sub-path after /function/NAME, e.g. /users/7?full=1.")
    ] = "",
    query: Annotated[
        list[str] | None,
        typer.Option("--query", "-q", help="Query parameter KEY=VALUE; repeat for more.", show_default=False),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            "-t",
            metavar="DURATION",
            help="How long to wait for the answer: seconds, or 90s, 2m, 1m30s; 0 for no limit (default 600s).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Call a function through /function/NAME; print the status line, then the body.

    Exits with 1 when the status is 400 or above (the body is printed anyway).
    As 'fission', the body alone, as Fission prints it; a status of 400 or above
    is the error line, with the body.
    """
    headers = parse_headers(header or [])
    _call(
        client_of(ctx),
        name,
        method,
        body,
        headers,
        with_query(path, query),
        wait=wait_of(timeout),
        fission=is_fission(ctx),
        prog=program(ctx),
    )


GO_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def wait_of(text: str | None) -> float | None:
    """``--timeout``: plain seconds or a Go duration (Fission's: ``60s``, ``1m30s``); 0 or less: no limit."""
    if text is None:
        return None
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        sign = -1.0 if value.startswith("-") else 1.0
        value = value.lstrip("+-")
        parts = GO_DURATION_RE.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise CliError(f"--timeout {text!r} must be seconds or a duration such as 60s, 2m or 1m30s") from None
        seconds = sign * sum(float(number) * GO_UNITS[unit] for number, unit in parts)
    return seconds if seconds > 0 else float(INVOKE_NO_LIMIT)


INVOKE_NO_LIMIT = 24 * 3600
"""What "no limit" waits at most: a day (the daemon's own timeout of a function is an hour at most)."""


def with_query(path: str, query: list[str] | None) -> str:
    """``path`` with Fission's ``-q key=value`` added to its query string."""
    if not query:
        return path
    pairs = []
    for item in query:
        key, _sep, value = item.partition("=")
        pairs.append((key, value))
    joiner = "&" if "?" in path else "?"
    return f"{path}{joiner}{urllib.parse.urlencode(pairs)}"


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
@app.command("log", hidden=True)
@reports_errors
def logs(
    ctx: typer.Context,
    name: FunctionName,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines as they come (Ctrl-C ends).")
    ] = False,
    tail: Annotated[
        int | None,
        typer.Option(
            "--tail",
            "--recordcount",
            min=0,
            help="Only the last N lines (default: every line kept).",
            show_default=False,
        ),
    ] = None,
    request: Annotated[
        str | None,
        typer.Option(
            "--request",
            help="Only the lines one call wrote: its X-Request-Id (faas fn invoke prints it).",
            show_default=False,
        ),
    ] = None,
    detail: Annotated[
        bool,
        typer.Option(
            "--detail",
            "-d",
            help="Each line with its time, instance and stream (as 'fission', the text alone without it).",
        ),
    ] = False,
    reverse: Annotated[bool, typer.Option("--reverse", "-r", help="Newest line first (not with --follow).")] = False,
    pod: Annotated[
        str | None,
        typer.Option(
            "--pod",
            help="Only one instance's lines: its id (fn pods lists them), or the start of it.",
            show_default=False,
        ),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option(
            "--node",
            help="Only one faasd node's lines (faas node list); default: every node's, merged by time.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show what the function's containers printed: time, instance, stream, text (and node, on several nodes)."""
    text_only = is_fission(ctx) and not detail
    try:
        with client_of(ctx).function_log_stream(name, tail=tail, follow=follow, request=request, node=node) as stream:
            several = len(stream.nodes) + len(stream.missing) > 1
            if stream.missing:
                typer.echo(missing_nodes(stream.missing, follow), err=True)
            shown: Iterable[str] = (
                f"{node_of} {shown_line(line, text_only)}" if several else shown_line(line, text_only)
                for node_of, line in stream
                if pod is None or instance_of(line).startswith(pod)
            )
            if reverse and not follow:
                shown = list(shown)[::-1]
            for line in shown:
                typer.echo(line)
    except KeyboardInterrupt:
        # Ctrl-C is how a follow ends: quietly, and successfully.
        raise typer.Exit(code=0) from None
    except BrokenPipeError:
        # The reader went away (`| head`): stop without a traceback, and
        # point stdout at /dev/null so the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(code=0) from None


def missing_nodes(missing: list[str], follow: bool) -> str:
    """The one line (on stderr) naming the nodes whose lines are not shown."""
    names = ", ".join(missing)
    if follow:
        return f"following one node: the lines of node(s) {names} are not shown (follow one with --node ID)"
    return f"no lines from node(s) {names}: they did not answer or are not live (faas node list)"


def _fields_of(line: str) -> list[str]:
    """``<timestamp> <instance> <stream> <text>``: the first three, then the text (which may have spaces)."""
    return line.split(" ", 3)


def instance_of(line: str) -> str:
    fields = _fields_of(line)
    return fields[1] if len(fields) >= 3 else ""


def shown_line(line: str, text_only: bool) -> str:
    """A record line as printed: whole, or (Fission's way) only what the function wrote."""
    if not text_only:
        return line
    fields = _fields_of(line)
    return fields[3] if len(fields) == 4 and fields[2] in ("stdout", "stderr") else line


@app.command()
@reports_errors
def getmeta(ctx: typer.Context, name: FunctionName, output: Output = OutputFormat.table) -> None:
    """Show a function's metadata, not its code (Fission's `fn getmeta`; `fn get -o` is the same)."""
    print_item(client_of(ctx).get_function(name), DETAIL_COLUMNS, output)


@app.command()
@reports_errors
def pods(ctx: typer.Context, name: FunctionName, output: Output = OutputFormat.table) -> None:
    """List a function's instances (Fission's pods): id, busy or idle, calls."""
    print_items(client_of(ctx).function_instances(name), INSTANCE_COLUMNS, output)


def _call(
    client: FaasClient,
    name: str,
    method: str,
    body: str | None,
    headers: dict[str, str],
    path: str,
    wait: float | None = None,
    fission: bool = False,
    prog: str = "faas",
) -> None:
    with working(f"calling function '{name}'"):
        reply = client.invoke(
            name,
            method=method,
            path=path,
            body=body.encode() if body is not None else None,
            headers=headers,
            timeout=wait,
        )
    failed = reply.status >= 400
    if not fission:
        typer.echo(status_line(reply.status, reply.reason))
    if reply.body and not (fission and failed):
        text = reply.text
        typer.echo(text, nl=not text.endswith("\n") and not fission)
    request_id = next((v for k, v in reply.headers.items() if k.lower() == "x-request-id"), None)
    if request_id and not fission and not failed:
        typer.echo(f"request id: {request_id}  ({prog} fn logs --name {name} --request {request_id})", err=True)
    if failed:
        answered = f"function '{name}' answered {status_line(reply.status, reply.reason)}"
        # faasd's own refusal (unknown function, timeout, ...) says why; a function's body is its own.
        detail = faasd_error(reply.body) or (reply.text.strip()[:500] if fission else None)
        if fission and request_id:
            detail = f"{detail or 'no body'} ({prog} fn logs --name {name} --request {request_id} --detail)"
        message = f"{answered}: {detail}" if detail else answered
        # One line, as every CLI error: the request id (for faas fn logs --request) goes in it.
        raise CliError(f"{message} (request id {request_id})" if request_id and not fission else message)


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


# A function's versions (faas_cli/commands/versions.py), in this group.
app.command()(versions.versions)
app.command()(versions.rollback)
