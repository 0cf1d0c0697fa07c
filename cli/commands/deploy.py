"""`faas deploy FILE|DIR|ZIP`: create or update a function and its routes in one step.

A single source file is the function's code. A directory or an archive is a
package: it is uploaded as the package of the same name (created, or its source
replaced), the daemon's builder builds it while `faas deploy` waits and shows
progress, and the function then runs it (`--entrypoint`, Fission's spelling:
Python ``main.main``, Node.js ``index``). A failed build prints the tail of its
log and stops the deploy before the function changes.

The plan is made before anything is written: the routes are checked first, so a
URL taken by another function stops the deploy before the function changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from faas_cli.archives import is_package_source, package_name_for, prepared
from faas_cli.client import FaasClient, Json
from faas_cli.commands.package import built
from faas_cli.errors import ApiError, CliError, reports_errors
from faas_cli.options import (
    Entrypoint,
    Timeout,
    client_of,
    with_function_settings,
)
from faas_cli.output import working
from faas_cli.sources import read_source

DEFAULT_METHOD = "GET"


def function_name_for(path: Path) -> str:
    """The function name a file deploys as: its stem, lower-cased, ``_`` as ``-``."""
    return path.stem.lower().replace("_", "-")


def route_for(name: str, route: str | None) -> str:
    """The route's URL: ``route`` as given (with a leading ``/``), else ``/NAME``."""
    if not route:
        return f"/{name}"
    return route if route.startswith("/") else f"/{route}"


def methods_for(methods: Iterable[str] | None) -> list[str]:
    """Upper-cased methods, each once, in the order given; ``GET`` when none."""
    chosen: list[str] = []
    for method in methods or ():
        upper = method.strip().upper()
        if upper and upper not in chosen:
            chosen.append(upper)
    return chosen or [DEFAULT_METHOD]


@dataclass(frozen=True)
class RoutePlan:
    """Which of the wanted methods on ``url`` need a new trigger."""

    url: str
    create: list[str]
    present: list[str]


def plan_routes(triggers: Sequence[dict[str, Any]], function: str, url: str, methods: Sequence[str]) -> RoutePlan:
    """Compare the wanted ``methods`` on ``url`` with the existing ``triggers``.

    A method+URL already routed to ``function`` is kept; one routed to another
    function is a :class:`CliError` naming that function and trigger.
    """
    create: list[str] = []
    present: list[str] = []
    for method in methods:
        owner = next(
            (
                trigger
                for trigger in triggers
                if str(trigger.get("method", "")).upper() == method and trigger.get("url") == url
            ),
            None,
        )
        if owner is None:
            create.append(method)
        elif owner.get("function") == function:
            present.append(method)
        else:
            raise CliError(
                f"route {method} {url} already calls function '{owner.get('function')}' "
                f"(trigger '{owner.get('name')}'); choose another URL with --route"
            )
    return RoutePlan(url=url, create=create, present=present)


@reports_errors
@with_function_settings
def deploy(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE|DIR|ZIP",
            help="Source file of the function, or a directory or archive (zip, tar, tar.gz) to build as a package.",
            show_default=False,
        ),
    ],
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Environment to run in; needed to create the function, moves it when updating.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Function name (default: FILE's stem, lower-case, '_' as '-'; a DIR's or ZIP's name); "
            "a package gets the same name.",
            show_default=False,
        ),
    ] = None,
    route: Annotated[
        str | None,
        typer.Option("--route", help="URL pattern of the route (default: /NAME).", show_default=False),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="HTTP method of the route; repeat for more (default: GET).",
            show_default=False,
        ),
    ] = None,
    entrypoint: Entrypoint = None,
    timeout: Timeout = None,
    *,
    settings: dict[str, Any],
) -> None:
    """Create or update a function from FILE (or a package built from DIR or ZIP) and route a URL to it.

    Prints the URL last.
    """
    client = client_of(ctx)
    if is_package_source(file):
        function = name or package_name_for(file)
        url = route_for(function, route)
        _deploy_package(client, file, function, env, url, methods_for(method), entrypoint, timeout, settings)
        return
    function = name or function_name_for(file)
    if entrypoint is not None:
        settings = {**settings, "entrypoint": entrypoint}
    _deploy(
        client,
        file,
        function,
        env,
        route_for(function, route),
        methods_for(method),
        timeout,
        settings,
    )


def _deploy(
    client: FaasClient,
    file: Path,
    name: str,
    env: str | None,
    url: str,
    methods: list[str],
    timeout: int | None,
    settings: dict[str, Any],
) -> None:
    source = read_source(file)
    with working("checking routes"):
        plan = plan_routes(client.list_triggers(), name, url, methods)
        exists = _exists(client, name)
    if exists:
        with working(f"uploading {source.filename}"):
            client.update_function(
                name, code=source.code, filename=source.filename, environment=env, timeout=timeout, **settings
            )
        typer.echo(f"function '{name}' updated")
    elif env is None:
        raise CliError(f"function '{name}' does not exist yet; give --env to create it")
    else:
        with working(f"uploading {source.filename}"):
            client.create_function(name, env, source.code, filename=source.filename, timeout=timeout, **settings)
        typer.echo(f"function '{name}' created in environment '{env}'")
    _route(client, name, url, plan, exists)


def _deploy_package(
    client: FaasClient,
    path: Path,
    name: str,
    env: str | None,
    url: str,
    methods: list[str],
    entrypoint: str | None,
    timeout: int | None,
    settings: dict[str, Any],
) -> None:
    """The package ``name`` from ``path`` built, then the function ``name`` running it, then its routes."""
    with working("checking routes"):
        plan = plan_routes(client.list_triggers(), name, url, methods)
        current = _found(lambda: client.get_function(name))
        package = _found(lambda: client.get_package(name))
    if package is None and env is None:
        raise CliError(f"package '{name}' does not exist yet; give --env to create it")
    with prepared(path, "source") as source, working(f"uploading {path.name or path}"):
        if package is None:
            assert env is not None
            package = client.create_package(name, env, source=source)
        else:
            moved = env if env is not None and env != package.get("environment") else None
            package = client.update_package(name, environment=moved, source=source)
    typer.echo(f"building package '{name}' ...")
    package = built(client, name)
    typer.echo(f"package '{name}' built")
    if current is not None:
        if current.get("package") != name and entrypoint is None:
            entrypoint = ""  # a file's handler name means nothing in a package: the runtime's default
        with working(f"updating function '{name}'"):
            client.update_function(name, entrypoint=entrypoint, timeout=timeout, package=name, **settings)
        typer.echo(f"function '{name}' updated")
    else:
        with working(f"creating function '{name}'"):
            client.create_function(
                name, None, None, entrypoint=entrypoint or "", timeout=timeout, package=name, **settings
            )
        typer.echo(f"function '{name}' created in environment '{package.get('environment')}'")
    _route(client, name, url, plan, current is not None)


def _route(client: FaasClient, name: str, url: str, plan: RoutePlan, exists: bool) -> None:
    """Make the routes the plan lacks; a function this deploy created goes again if one fails."""
    for method in plan.present:
        typer.echo(f"route {method} {url} exists")
    try:
        for method in plan.create:
            with working(f"routing {method} {url}"):
                client.create_trigger(method, url, name)
            typer.echo(f"route {method} {url} created")
    except CliError as error:
        if not exists:
            # A function this deploy just created is taken back (with any route
            # made for it), so running the command again starts afresh.
            with contextlib.suppress(CliError):
                client.delete_function(name, force=True)
                error.message += f"; function '{name}' was not kept"
        raise
    typer.echo(f"{client.server}{url}")


def _exists(client: FaasClient, name: str) -> bool:
    return _found(lambda: client.get_function(name)) is not None


def _found(get: Callable[[], Json]) -> Json | None:
    """What ``get`` fetched, or None for a 404."""
    try:
        return get()
    except ApiError as error:
        if error.status == 404:
            return None
        raise
