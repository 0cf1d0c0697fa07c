"""`faas mqtrigger` (Fission's `mqtrigger`, alias `mqt`, `messagequeue`): call a function per broker message.

An mqtrigger reads a topic of a Redis (Streams) or NATS (JetStream) broker and
calls its function with each message; a 2xx answer's body goes to the
response topic, a message that failed ``--maxretries`` attempts to the error
topic. faasd reaches the broker itself, at ``--connection`` or at the URL in
one of the function's secrets (``--connection-secret``); the URL is shown back
with its password masked. The daemon checks the fields and names the bad one.

Fission's options for KEDA (``--mqtkind``, ``--pollinginterval``,
``--cooldownperiod``, ``--minreplicacount``, ``--maxreplicacount``,
``--metadata``) are accepted, so Fission scripts run, and ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from faas_cli.commands.timer import generated_name
from faas_cli.errors import CliError, deleted, reports_errors
from faas_cli.options import Labels, Output, client_of, label_pairs
from faas_cli.output import Column, OutputFormat, note_once, print_item, print_items

app = typer.Typer(
    help="Message-queue triggers: call a function for each message on a Redis or NATS topic.",
    no_args_is_help=True,
)

KEDA_NOTE = "ignored: faasd reads the broker itself (no KEDA)"
# Fission's names of the brokers faasd reads (its KEDA scalers'), as faasd names them.
MQTYPES = {"nats-jetstream": "nats", "jetstream": "nats"}
MQT_KINDS = ("keda", "fission")
FISSION_PANEL = "Fission's KEDA options (accepted and ignored)"

COLUMNS = (
    Column("NAME", "name"),
    Column("FUNCTION", "function"),
    Column("MQTYPE", "mqtype"),
    Column("TOPIC", "topic"),
    Column("RESPTOPIC", "resptopic"),
    Column("ERRORTOPIC", "errortopic"),
    Column("STATUS", "status"),
    Column("DELIVERED", "delivered"),
    Column("FAILED", "failed"),
)
# `mqtrigger get` shows all of it.
DETAIL_COLUMNS = (
    *COLUMNS,
    Column("MAXRETRIES", "maxretries"),
    Column("MAXCONCURRENCY", "maxconcurrency"),
    Column("CONTENTTYPE", "contenttype"),
    Column("CONNECTION", "connection"),
    Column("CONNECTION SECRET", "connection_secret"),
    Column("METHOD", "method"),
    Column("ERROR", "error"),
    Column("CREATED", "created_at"),
    Column("UPDATED", "updated_at"),
)

Name = Annotated[str, typer.Option("--name", help="Message-queue trigger name.")]
MqType = Annotated[
    str | None,
    typer.Option(
        "--mqtype", metavar="redis|nats", help="The broker: redis (Streams) or nats (JetStream).", show_default=False
    ),
]
Topic = Annotated[
    str | None, typer.Option("--topic", help="Topic (stream or subject) whose messages call the function.")
]
RespTopic = Annotated[
    str | None,
    typer.Option("--resptopic", help="Topic a 2xx answer's body is published to (default none).", show_default=False),
]
ErrorTopic = Annotated[
    str | None,
    typer.Option(
        "--errortopic",
        help="Topic a message goes to once it failed --maxretries times (default none: it is dropped and logged).",
        show_default=False,
    ),
]
MaxRetries = Annotated[
    int | None,
    typer.Option(
        "--maxretries",
        min=0,
        help="Attempts of one message in all before it goes to the error topic, 0 to 100; 0 counts as 1 (default 3).",
        show_default=False,
    ),
]
MaxConcurrency = Annotated[
    int | None,
    typer.Option(
        "--maxconcurrency", min=1, help="Messages in flight at once, 1 to 1000 (default 10).", show_default=False
    ),
]
ContentType = Annotated[
    str | None,
    typer.Option(
        "--contenttype",
        "-c",
        help="Content-Type of each call's body (default application/json).",
        show_default=False,
    ),
]
BrokerUrl = Annotated[
    str | None,
    typer.Option(
        "--connection",
        metavar="URL",
        help="The broker's URL as faasd reaches it, e.g. redis://:PASSWORD@10.0.0.5:6379/0 or nats://10.0.0.6:4222 "
        "(shown back with the password masked).",
        show_default=False,
    ),
]
ConnectionSecret = Annotated[
    str | None,
    typer.Option(
        "--connection-secret",
        metavar="NAME",
        help="Instead of --connection: the name of one of the function's secrets that holds the broker's URL.",
        show_default=False,
    ),
]
Method = Annotated[
    str | None,
    typer.Option("--method", help="HTTP method of each call (default POST).", show_default=False),
]
MqtKind = Annotated[
    str | None,
    typer.Option("--mqtkind", metavar="keda|fission", help="Ignored.", rich_help_panel=FISSION_PANEL),
]
PollingInterval = Annotated[
    int | None, typer.Option("--pollinginterval", help="Ignored.", rich_help_panel=FISSION_PANEL)
]
CooldownPeriod = Annotated[int | None, typer.Option("--cooldownperiod", help="Ignored.", rich_help_panel=FISSION_PANEL)]
MinReplicaCount = Annotated[
    int | None, typer.Option("--minreplicacount", help="Ignored.", rich_help_panel=FISSION_PANEL)
]
MaxReplicaCount = Annotated[
    int | None, typer.Option("--maxreplicacount", help="Ignored.", rich_help_panel=FISSION_PANEL)
]
Metadata = Annotated[
    list[str] | None,
    typer.Option("--metadata", metavar="KEY=VALUE", help="Ignored.", rich_help_panel=FISSION_PANEL),
]


def _fields(
    resptopic: str | None,
    errortopic: str | None,
    maxretries: int | None,
    maxconcurrency: int | None,
    contenttype: str | None,
    connection: str | None,
    connection_secret: str | None,
    method: str | None,
) -> dict[str, Any]:
    """The API fields of the options given."""
    if connection is not None and connection_secret is not None:
        raise CliError("give --connection or --connection-secret, not both")
    fields = {
        "resptopic": resptopic,
        "errortopic": errortopic,
        "maxretries": maxretries,
        "maxconcurrency": maxconcurrency,
        "contenttype": contenttype,
        "connection": connection,
        "connection_secret": connection_secret,
        "method": method.upper() if method else method,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _mqtype(value: str | None) -> str | None:
    """The broker, as faasd names it: Fission's ``nats-jetstream`` is ``nats``."""
    if not value:
        return value
    kind = value.strip().lower()
    if kind in MQTYPES:
        note_once("--mqtype", f"--mqtype {kind} is faasd's {MQTYPES[kind]}")
    return MQTYPES.get(kind, kind)


def _fission_only(mqtkind: str | None, *keda: object) -> bool:
    """Check Fission's options faasd ignores; tell (once, on stderr) that the KEDA ones are ignored.

    Whether any was given.
    """
    if mqtkind is not None and mqtkind.strip().lower() not in MQT_KINDS:
        raise CliError(f"--mqtkind {mqtkind!r} must be keda or fission (faasd ignores it)")
    given = [value for value in keda if value is not None]
    if given:
        typer.echo(KEDA_NOTE, err=True)
    return mqtkind is not None or bool(given)


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    function: Annotated[str, typer.Option("--function", help="Function each message calls.")],
    mqtype: Annotated[
        str,
        typer.Option("--mqtype", metavar="redis|nats", help="The broker: redis (Streams) or nats (JetStream)."),
    ],
    topic: Annotated[str, typer.Option("--topic", help="Topic (stream or subject) whose messages call the function.")],
    resptopic: RespTopic = None,
    errortopic: ErrorTopic = None,
    maxretries: MaxRetries = None,
    maxconcurrency: MaxConcurrency = None,
    contenttype: ContentType = None,
    connection: BrokerUrl = None,
    connection_secret: ConnectionSecret = None,
    method: Method = None,
    mqtkind: MqtKind = None,
    pollinginterval: PollingInterval = None,
    cooldownperiod: CooldownPeriod = None,
    minreplicacount: MinReplicaCount = None,
    maxreplicacount: MaxReplicaCount = None,
    metadata: Metadata = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Message-queue trigger name (generated when omitted).", show_default=False),
    ] = None,
    labels: Labels = None,
) -> None:
    """Create a trigger that calls a function for each message on a broker's topic.

    Give the broker with --connection URL or --connection-secret NAME.
    """
    fields = _fields(
        resptopic, errortopic, maxretries, maxconcurrency, contenttype, connection, connection_secret, method
    )
    _fission_only(mqtkind, pollinginterval, cooldownperiod, minreplicacount, maxreplicacount, metadata)
    if labels is not None:
        fields["labels"] = label_pairs(labels)
    name = name or generated_name(function)
    kind = _mqtype(mqtype) or ""
    trigger = client_of(ctx).create_mq_trigger(name, function, kind, topic, **fields)
    typer.echo(
        f"mqtrigger '{trigger.get('name', name)}' created: "
        f"{trigger.get('mqtype', kind)} topic '{trigger.get('topic', topic)}' -> {function}"
    )


@app.command()
@reports_errors
def get(ctx: typer.Context, name: Name, output: Output = OutputFormat.table) -> None:
    """Show one message-queue trigger: its settings, whether it is connected, its counts."""
    print_item(client_of(ctx).get_mq_trigger(name), DETAIL_COLUMNS, output)


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    function: Annotated[
        str | None,
        typer.Option("--function", help="Only the triggers that call this function.", show_default=False),
    ] = None,
    output: Output = OutputFormat.table,
    mqtype: Annotated[
        str | None, typer.Option("--mqtype", help="Only the triggers on this broker.", show_default=False)
    ] = None,
) -> None:
    """List message-queue triggers."""
    triggers = client_of(ctx).list_mq_triggers(function)
    if mqtype is not None:
        triggers = [t for t in triggers if t.get("mqtype") == _mqtype(mqtype)]
    print_items(triggers, COLUMNS, output)


@app.command()
@reports_errors
def update(
    ctx: typer.Context,
    name: Name,
    function: Annotated[
        str | None, typer.Option("--function", help="Function to call instead.", show_default=False)
    ] = None,
    mqtype: MqType = None,
    topic: Topic = None,
    resptopic: RespTopic = None,
    errortopic: ErrorTopic = None,
    maxretries: MaxRetries = None,
    maxconcurrency: MaxConcurrency = None,
    contenttype: ContentType = None,
    connection: BrokerUrl = None,
    connection_secret: ConnectionSecret = None,
    method: Method = None,
    mqtkind: MqtKind = None,
    pollinginterval: PollingInterval = None,
    cooldownperiod: CooldownPeriod = None,
    minreplicacount: MinReplicaCount = None,
    maxreplicacount: MaxReplicaCount = None,
    metadata: Metadata = None,
    labels: Labels = None,
) -> None:
    """Change a message-queue trigger; only the options given change.

    --connection replaces a --connection-secret and the other way round.
    """
    fields = _fields(
        resptopic, errortopic, maxretries, maxconcurrency, contenttype, connection, connection_secret, method
    )
    ignored = _fission_only(mqtkind, pollinginterval, cooldownperiod, minreplicacount, maxreplicacount, metadata)
    main = {"function": function, "mqtype": _mqtype(mqtype), "topic": topic, "labels": label_pairs(labels)}
    fields = {**{key: value for key, value in main.items() if value is not None}, **fields}
    client = client_of(ctx)
    if not fields:
        if not ignored:
            raise CliError(
                "nothing to update; give --function, --mqtype, --topic, --resptopic, --errortopic, --maxretries, "
                "--maxconcurrency, --contenttype, --connection, --connection-secret or --method"
            )
        client.get_mq_trigger(name)  # only Fission's ignored options: nothing to send, but the trigger must exist
        typer.echo(f"mqtrigger '{name}' unchanged")
        return
    # The daemon keeps one way to reach the broker: the one given clears the other.
    if "connection" in fields:
        fields.setdefault("connection_secret", "")
    elif "connection_secret" in fields:
        fields["connection"] = ""
    client.update_mq_trigger(name, **fields)
    typer.echo(f"mqtrigger '{name}' updated")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: Name,
    ignorenotfound: Annotated[
        bool, typer.Option("--ignorenotfound", help="A trigger that does not exist is no error.")
    ] = False,
) -> None:
    """Delete a message-queue trigger."""
    if not deleted(lambda: client_of(ctx).delete_mq_trigger(name), ignorenotfound):
        return
    typer.echo(f"mqtrigger '{name}' deleted")
