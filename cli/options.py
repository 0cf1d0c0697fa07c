"""Options several commands share, and the context object the root command leaves.

Each option is written once here as an ``Annotated`` alias, so its flags and
help read the same in every command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from faas_cli.client import DEFAULT_SERVER, FaasClient
from faas_cli.credentials import token_for
from faas_cli.output import OutputFormat


@dataclass(frozen=True)
class Connection:
    """Where the daemon is and how to authenticate: read once by the root command."""

    server: str
    token: str | None = None


def client_of(ctx: typer.Context) -> FaasClient:
    """A client for the daemon named by the global options.

    Built on demand, not in the root callback, so that `--help` works with a
    malformed FAAS_URL; an invalid URL is a CliError from the command.
    """
    connection = ctx.find_object(Connection) or Connection(server=DEFAULT_SERVER)
    return FaasClient(connection.server, token_for(connection.server, connection.token))


Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format: table or json.")]
FunctionName = Annotated[str, typer.Option("--name", help="Function name.")]
EnvironmentOfFunction = Annotated[str, typer.Option("--env", help="Environment (runtime) the function runs in.")]
CodeFile = Annotated[
    Path,
    typer.Option("--code", help="Source file; its text is uploaded and its name kept."),
]
Entrypoint = Annotated[
    str | None,
    typer.Option(help="Name of the handler inside the code (the runtime's default when omitted)."),
]
Timeout = Annotated[
    int | None,
    typer.Option(min=1, help="Seconds a call may take before faasd answers 504."),
]
