"""`faas dev DIR|FILE`: deploy, then redeploy on every save until Ctrl-C, showing the logs and the calls.

The first deploy is `faas deploy`'s (a file is the function's code; a folder is
a package built by the environment's builder; a route to ``/NAME``). Then the
source is watched (not ``.git``, ``__pycache__``, ``node_modules``, editors'
swap files): each burst of saves is one redeploy, code only when only code
changed (a package's dependencies come from the builder's cache), a rebuild
of the dependencies when a manifest changed. After each redeploy one call
(``GET /function/NAME``) shows the new code answering and how long after the
save it did. The function's log lines and a line per call (read from
``/metrics``) are printed meanwhile. Ctrl-C stops; unless ``--keep``, what
`faas dev` created (the function, its route, the package) is deleted, and a
function that existed before is left as it is. The loop itself is
faas_cli/devloop.py.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from faas_cli.archives import is_archive, package_name_for
from faas_cli.client import DEFAULT_SERVER
from faas_cli.commands.deploy import function_name_for, methods_for, route_for
from faas_cli.credentials import token_for
from faas_cli.devloop import Console, DevOptions, DevSession
from faas_cli.errors import CliError, reports_errors
from faas_cli.options import Connection, Entrypoint, client_of


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@reports_errors
def dev(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            metavar="DIR|FILE",
            help="A package's folder (built by the environment's builder), or one source file: deployed, then watched.",
            show_default=False,
        ),
    ],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Environment to run in; needed to create the function.", show_default=False),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Function name (default: FILE's stem, lower-case, '_' as '-'; DIR's name); a package gets the same.",
            show_default=False,
        ),
    ] = None,
    route: Annotated[
        str | None,
        typer.Option("--route", help="URL pattern of the route (default: /NAME).", show_default=False),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option("--method", help="HTTP method of the route; repeat for more (default: GET).", show_default=False),
    ] = None,
    entrypoint: Entrypoint = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="On Ctrl-C, leave the function, route and package faas dev made.")
    ] = False,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe",
            help="After each redeploy, call GET /function/NAME once to show the new code answering.",
        ),
    ] = True,
) -> None:
    """Deploy DIR or FILE, redeploy it on every save, and show its logs and calls until Ctrl-C.

    A change of code alone is redeployed without a rebuild; a changed manifest
    (requirements.txt, package.json, ...) installs the dependencies again.
    Ctrl-C deletes what faas dev created (not a function that existed before).
    """
    if not path.exists():
        raise CliError(f"'{path}' not found")
    if is_archive(path) and not path.is_dir():
        raise CliError(
            f"'{path}' is an archive: faas dev watches a folder or a source file (faas deploy takes archives)"
        )
    function = name or (package_name_for(path) if path.is_dir() else function_name_for(path))
    client = client_of(ctx)
    connection = ctx.find_object(Connection) or Connection(server=DEFAULT_SERVER)
    options = DevOptions(
        path=path,
        name=function,
        env=env,
        url=route_for(function, route),
        methods=methods_for(method),
        entrypoint=entrypoint,
        keep=keep,
        probe=probe,
    )
    session = DevSession(client, token_for(connection.server, connection.token), options, Console())
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does: cleaning up
    failure: CliError | None = None
    try:
        session.run()
    except KeyboardInterrupt:
        typer.echo("")
        typer.echo("stopping")
    except CliError as error:
        failure = error
    finally:
        try:
            cleaned = session.cleanup()
        except KeyboardInterrupt:
            typer.echo("stopped before cleaning up", err=True)
            raise typer.Exit(code=130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    if failure is not None:
        raise failure
    if not cleaned:
        raise typer.Exit(code=1)
