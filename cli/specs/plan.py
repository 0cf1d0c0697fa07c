"""What an apply does: each wanted object made, changed or left as it is, and (``--delete``) what goes.

:func:`make_plan` is pure: the objects the specs ask for, against the
daemon's listings, give a list of :class:`Action`. An object is the spec's
when it carries the deployment's uid label (``fission.io/deployment-uid``);
only those are changed or deleted. One that exists without it is left alone
when it already is what the spec asks, and is a conflict otherwise (nothing
is done then; ``--allow-conflicts`` takes it over). :func:`execute` carries
a plan out: makes and changes in the order things refer to each other
(environments, packages, functions, then triggers), deletes in the reverse.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from faas_cli.client import Json
from faas_cli.errors import ApiError, CliError
from faas_cli.specs import schema
from faas_cli.specs.api import SpecClient
from faas_cli.specs.mapping import FISSION_KIND, KINDS, WATCH_FILTER, Wanted

Op = Literal["create", "update", "delete", "keep"]
Echo = Callable[[str], None]

COMPARED = {
    "environment": ("image", "builder", "poolsize"),
    "route": ("method", "url", "function", "async"),
    "timer": ("function", "cron", "timezone", "method", "subpath", "overlap", "catch_up"),
    "watch": ("function", "type", WATCH_FILTER, "events", "include_faasd"),
    "mqtrigger": (
        "function", "mqtype", "topic", "resptopic", "errortopic", "maxretries", "maxconcurrency", "contenttype",
        "connection", "connection_secret", "method",
    ),
}  # fmt: skip
FUNCTION_SETTINGS = (
    "executor", "entrypoint", "timeout", "memory_mb", "cpu_millis", "concurrency", "max_instances", "min_instances",
    "idle_timeout", "queue_timeout", "network", "retries", "retry_max_age", "env",
)  # fmt: skip
SECRET_PARAMS = ("password", "pass", "token", "secret")


@dataclass
class Action:
    op: Op
    kind: str
    name: str
    wanted: Wanted | None = None
    send: dict[str, Any] = field(default_factory=dict)  # the fields to send
    labels: dict[str, str] | None = None  # the labels to set (None: as they are)
    source: bool = False  # packages: upload the source archive
    deploy: bool = False  # and/or the deployment archive
    note: str = ""

    def changed(self) -> list[str]:
        names = [k for k in self.send if k != "filename"]
        names += ["source"] if self.source else []
        names += ["deployment"] if self.deploy else []
        names += ["labels"] if self.labels is not None and self.op == "update" else []
        return names

    def describe(self, dry_run: bool = False) -> str:
        verb = {"create": "created", "update": "updated", "delete": "deleted", "keep": "unchanged"}[self.op]
        if dry_run and self.op != "keep":
            verb = {"create": "would be created", "update": "would be updated", "delete": "would be deleted"}[self.op]
        text = f"{self.kind} '{self.name}' {verb}"
        if self.op == "update" and self.changed():
            text += f" ({', '.join(self.changed())})"
        return text + (f" ({self.note})" if self.note else "")


def redact_url(url: str) -> str:
    """A connection URL with its secrets hidden, as faasd shows it (faasd/core/events.py)."""
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host = rest.rpartition("@")
    if at:
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        rest = f"{user}:***@{host}" if user else f"***@{host}"
    base, q, query = rest.partition("?")
    if q:
        parts = []
        for item in query.split("&"):
            key, eq, _value = item.partition("=")
            parts.append(f"{key}=***" if eq and key.lower() in SECRET_PARAMS else item)
        rest = base + "?" + "&".join(parts)
    return f"{scheme}://{rest}"


def _same(kind: str, key: str, wanted: Any, current: Any) -> bool:
    if kind == "watch" and key == "events":
        return sorted(wanted or []) == sorted(current or [])
    if kind == "mqtrigger" and key == "connection":
        return redact_url(str(wanted or "")) == str(current or "")
    if key in ("method",) and isinstance(wanted, str) and isinstance(current, str):
        return wanted.upper() == current.upper()
    return bool(wanted == current)


def differences(wanted: Wanted, current: Json) -> Action:
    """An update of ``current`` to ``wanted`` (``send`` empty and no archive: nothing to change)."""
    action = Action("update", wanted.kind, wanted.name, wanted)
    fields = wanted.fields
    if wanted.kind == "function":
        if "code" in fields:
            sha = hashlib.sha256(str(fields["code"]).encode()).hexdigest()
            if (
                current.get("package")
                or sha != current.get("code_sha256")
                or fields["filename"] != current.get("filename")
            ):
                action.send.update(code=fields["code"], filename=fields["filename"])
                if fields["environment"] != current.get("environment") or current.get("package"):
                    action.send["environment"] = fields["environment"]
            elif fields["environment"] != current.get("environment"):
                action.send["environment"] = fields["environment"]
        elif fields["package"] != current.get("package"):
            action.send["package"] = fields["package"]
        for key in FUNCTION_SETTINGS:
            if key in fields and not _same("function", key, fields[key], current.get(key)):
                action.send[key] = fields[key]
    elif wanted.kind == "package":
        for key in ("environment", "buildcmd"):
            if fields[key] != current.get(key, ""):
                action.send[key] = fields[key]
        if wanted.source is not None:
            digest = wanted.source.digest()
            action.source = (
                digest is None or digest != current.get("source_sha256") or current.get("status") == "failed"
            )
        if wanted.deploy is not None and (wanted.source is None or action.source):
            digest = wanted.deploy.digest("deploy")
            action.deploy = wanted.source is not None or digest is None or digest != current.get("deploy_sha256")
    else:
        for key in COMPARED[wanted.kind]:
            if key in fields and not _same(wanted.kind, key, fields[key], current.get(key)):
                if wanted.kind == "mqtrigger" and key == "connection" and "***" in str(fields[key]):
                    continue  # a masked URL (from an export) keeps the one faasd has
                action.send[key] = fields[key]
    return action


def owned(item: Json, uid: str) -> bool:
    labels = item.get("labels") or {}
    return bool(uid) and isinstance(labels, dict) and labels.get(schema.UID_LABEL) == uid


def make_plan(
    wanted: list[Wanted],
    existing: dict[str, list[Json]],
    uid: str,
    *,
    delete: bool = False,
    allow_conflicts: bool = False,
) -> list[Action]:
    """The actions that make the daemon's objects (``existing``, by kind) what ``wanted`` asks."""
    actions: list[Action] = []
    conflicts: list[str] = []
    for kind in KINDS:
        current = {item["name"]: item for item in existing.get(kind, [])}
        for want in (w for w in wanted if w.kind == kind):
            have = current.get(want.name)
            if have is None:
                actions.append(
                    Action("create", kind, want.name, want, dict(want.fields), want.labels, want.source is not None,
                           want.deploy is not None)
                )  # fmt: skip
                continue
            action = differences(want, have)
            mine = owned(have, uid)
            if not mine and not allow_conflicts:
                if action.send or action.source or action.deploy:
                    what = ", ".join(action.changed())
                    conflicts.append(f"{kind} '{want.name}' exists, not made by this spec, and differs ({what})")
                    continue
                actions.append(Action("keep", kind, want.name, want, note="exists; not managed by this spec"))
                continue
            if (have.get("labels") or {}) != want.labels:
                action.labels = want.labels
            if not (action.send or action.source or action.deploy or action.labels is not None):
                action.op = "keep"
            elif not mine:
                action.note = "taken over by this spec"
            actions.append(action)
    if conflicts:
        raise CliError(
            "; ".join(conflicts) + ". Nothing was changed: rename them in the specs, delete them, "
            "or take them over with --allow-conflicts"
        )
    if delete:
        names = {(w.kind, w.name) for w in wanted}
        for kind in reversed(KINDS):
            for item in sorted(existing.get(kind, []), key=lambda i: str(i["name"])):
                if owned(item, uid) and (kind, item["name"]) not in names:
                    actions.append(Action("delete", kind, item["name"]))
    return actions


def destroy_plan(existing: dict[str, list[Json]], uid: str) -> list[Action]:
    """Every object of the deployment ``uid``, deleted: triggers first, environments last."""
    return make_plan([], existing, uid, delete=True)


def listings(client: SpecClient, selector: str | None = None) -> dict[str, list[Json]]:
    return {kind: client.items(kind, selector) for kind in KINDS}


def execute(client: SpecClient, actions: list[Action], echo: Echo) -> None:
    """Carry the actions out: makes and changes first, in order, then deletes (already in reverse order)."""
    for action in actions:
        if action.op == "keep":
            continue
        try:
            _do(client, action)
        except ApiError as error:
            raise CliError(f"{action.kind} '{action.name}': {error.message}") from None
        echo(action.describe())
        if action.op == "create" and action.wanted is not None and action.wanted.secrets:
            names = ", ".join(action.wanted.secrets)
            echo(
                f"  function '{action.name}' expects the secrets {names}: "
                f"faas fn update --name {action.name} --secret NAME=VALUE"
            )


def _do(client: SpecClient, action: Action) -> None:
    if action.op == "delete":
        client.delete(action.kind, action.name)
        return
    wanted = action.wanted
    assert wanted is not None
    if action.kind == "package":
        source = wanted.source if action.source else None
        deploy = wanted.deploy if action.deploy else None
        send = dict(action.send)
        if action.op == "update" and not (send or source or deploy):
            # Only the labels change: faasd takes a package's PATCH with something to change in it.
            send["environment"] = wanted.fields["environment"]
        with (
            source.upload() if source else contextlib.nullcontext(None) as src,
            deploy.upload() if deploy else contextlib.nullcontext(None) as dep,
        ):
            client.put_package(
                action.name,
                {k: str(v) for k, v in send.items()},
                action.labels,
                src,
                dep,
                new=action.op == "create",
            )
        return
    if action.op == "create":
        client.create(action.kind, action.name, action.send, action.labels or {})
    else:
        client.update(action.kind, action.name, action.send, action.labels)


def summary(actions: list[Action], dry_run: bool = False) -> list[str]:
    """One line per change, by Fission's kind; "everything up to date" when there is none."""
    lines: list[str] = []
    for op in ("create", "update", "delete"):
        for kind in KINDS:
            names = [a.name for a in actions if a.op == op and a.kind == kind]
            if names:
                verb = {"create": "created", "update": "updated", "delete": "deleted"}[op]
                verb = f"would be {verb}" if dry_run else verb
                label = FISSION_KIND[kind] if kind != "route" else "route (HTTPTrigger)"
                lines.append(f"{len(names)} {label}{'' if len(names) == 1 else 's'} {verb}: {', '.join(names)}")
    return lines or ["everything up to date"]


FINISHED = ("succeeded", "failed")


def wait_for_builds(
    client: SpecClient,
    names: list[str],
    echo: Echo,
    timeout: float = 3600.0,
    every: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Json]:
    """Poll packages ``names`` until their builds finish; those that failed (their logs' tails echoed)."""
    failed: list[Json] = []
    began = time.monotonic()
    for name in names:
        while True:
            package = client.get_package(name)
            status = str(package.get("status", ""))
            if status in FINISHED:
                break
            if time.monotonic() - began > timeout:
                raise CliError(f"package '{name}' is still {status} after {timeout:.0f}s (faas pkg info --name {name})")
            sleep(every)
        if status == "failed":
            failed.append(package)
            echo(f"package '{name}' failed to build: {package.get('error') or 'see its log'}")
            for line in str(package.get("build_log") or "").rstrip("\n").splitlines()[-20:]:
                echo(f"  {line}")
        else:
            echo(f"package '{name}' built")
    return failed
