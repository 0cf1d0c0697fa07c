"""`faas status`: is the daemon up, and what is warm."""

from __future__ import annotations

from typing import Any

import typer

from faas_cli.client import FaasClient
from faas_cli.errors import reports_errors
from faas_cli.options import Output, client_of
from faas_cli.output import Column, OutputFormat, table_of, to_json

ENVIRONMENT_COLUMNS = (
    Column("ENVIRONMENT", "name"),
    Column("IMAGE", "image"),
    Column("POOLSIZE", "poolsize"),
    Column("READY", "pool_ready"),
    Column("SPECIALIZED", "specialized"),
)
FUNCTION_COLUMNS = (
    Column("FUNCTION", "name"),
    Column("ENVIRONMENT", "environment"),
    Column("INSTANCES", "instances"),
)
TIMER_COLUMNS = (
    Column("TIMER", "name"),
    Column("FUNCTION", "function"),
    Column("NEXT RUN", "next_run_at"),
)
WATCH_COLUMNS = (
    Column("WATCH", "name"),
    Column("TYPE", "type"),
    Column("FUNCTION", "function"),
    Column("CONNECTED", "connected"),
)
MQTRIGGER_COLUMNS = (
    Column("MQTRIGGER", "name"),
    Column("MQTYPE", "mqtype"),
    Column("TOPIC", "topic"),
    Column("STATUS", "status"),
    Column("DELIVERED", "delivered"),
    Column("FAILED", "failed"),
)


@reports_errors
def status(ctx: typer.Context, output: Output = OutputFormat.table) -> None:
    """Show the daemon's health and version, its environment pools, function instances and events."""
    _status(client_of(ctx), output)


def _status(client: FaasClient, output: OutputFormat) -> None:
    health = client.health()
    report = client.status()
    if output is OutputFormat.json:
        typer.echo(to_json({"server": client.server, "health": health, **report}))
        return
    typer.echo(render_status(client.server, health, report))


def render_status(server: str, health: dict[str, Any], report: dict[str, Any]) -> str:
    """The table form of `faas status`: a headline, then pools, then instances, then events."""
    version = report.get("version") or health.get("version") or "?"
    lines = [f"faasd {version} at {server}: {health.get('status', '?')}"]
    isolation = report.get("isolation")
    if isinstance(isolation, dict):
        lines.append(render_isolation(isolation))
    lines.append("")
    environments = [env for env in report.get("environments") or [] if isinstance(env, dict)]
    functions = [fn for fn in report.get("functions") or [] if isinstance(fn, dict)]
    if environments:
        lines.append(table_of(environments, ENVIRONMENT_COLUMNS))
    else:
        lines.append("no environments; create one with 'faas env create --name NAME'")
    lines.append("")
    if functions:
        lines.append(table_of(functions, FUNCTION_COLUMNS))
    else:
        lines.append("no functions; deploy one with 'faas deploy FILE --env ENV'")
    events = report.get("events")
    if isinstance(events, dict):
        lines.extend(["", *render_events(events)])
    return "\n".join(lines)


def render_events(events: dict[str, Any]) -> list[str]:
    """The asynchronous calls' queue and dead letters on one line, then the timers, watches and mqtriggers."""
    found = events.get("queue")
    queue: dict[str, Any] = found if isinstance(found, dict) else {}
    dead = queue.get("dead", 0)
    lines = [
        f"async calls: {queue.get('depth', '?')} queued of {queue.get('limit', '?')} at most, "
        f"{queue.get('in_flight', '?')} in flight; {dead} dead letter(s)"
        + (" (faas dlq list)" if isinstance(dead, int) and dead > 0 else "")
    ]
    timers = [timer for timer in events.get("timers") or [] if isinstance(timer, dict)]
    watches = [watch for watch in events.get("watches") or [] if isinstance(watch, dict)]
    mqtriggers = [trigger for trigger in events.get("mqtriggers") or [] if isinstance(trigger, dict)]
    if timers:
        lines.extend(["", table_of(timers, TIMER_COLUMNS)])
    if watches:
        lines.extend(["", table_of(watches, WATCH_COLUMNS)])
    if mqtriggers:
        lines.extend(["", table_of(mqtriggers, MQTRIGGER_COLUMNS)])
    return lines


def render_isolation(isolation: dict[str, Any]) -> str:
    """One line: what keeps the functions apart (SECURITY.md)."""
    found = isolation.get("firewall")
    firewall: dict[str, Any] = found if isinstance(found, dict) else {}
    traffic = isolation.get("inter_container_traffic", "?")
    network = f"network {isolation.get('network', '?')} (container to container: {traffic})"
    if firewall.get("active"):
        return f"isolation: {network}, host firewall on ({firewall.get('detail', '')})"
    return f"isolation: {network}, host firewall OFF: {firewall.get('detail', '?')}"
