"""The OpenAPI 3 document of the admin API, served at /v1/openapi.json.

Written by hand next to faasd/control/api.py and faasd/control/events_api.py;
tests/integration/test_openapi.py runs schemathesis against a live faasd to keep them in step.
It describes the admin API under /v1 only: the public paths that call functions
(/function/<name>, /async-function/<name>), /healthz and /readyz are not in it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from faasd import __version__
from faasd.core.canary import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_INCREMENT_INTERVAL,
    DEFAULT_INCREMENT_STEP,
    MAX_INCREMENT_INTERVAL,
    Canary,
    CanaryStatus,
)
from faasd.core.entities import (
    EXECUTORS,
    MAX_PACKAGE_BYTES,
    MAX_ROUTE_FUNCTIONS,
    NETWORKS,
    WEIGHTS_TOTAL,
    BuildStatus,
    Function,
    Package,
)
from faasd.core.events import (
    MAX_MQ_CONCURRENCY,
    MAX_RETRIES,
    MAX_RETRY_MAX_AGE,
    MQ_TYPES,
    TIMER_CATCH_UPS,
    TIMER_OVERLAPS,
    TOPIC_PATTERN,
    WATCH_EVENTS,
    WATCH_TYPES,
    CallStatus,
    MqTrigger,
    Timer,
    Watch,
)
from faasd.core.validation import MAX_CPU_MILLIS, MAX_POOLSIZE, MAX_TIMEOUT, METHODS, MIN_CPU_MILLIS, NETWORK_RE

NAME = {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "maxLength": 63}
TIME = {"type": "string", "format": "date-time"}
MAYBE_TIME = {**TIME, "nullable": True}
VARIABLES = {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 100}
BUILDER = {"type": "string", "description": "the image that builds the environment's packages; empty: none"}
BUILDCMD = {"type": "string", "maxLength": 4096, "description": "the build command; empty: the builder's own"}
ASYNC = {"type": "boolean", "description": "calls are queued: 202 and a call id, delivered later (default false)"}
WEIGHTS = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_ROUTE_FUNCTIONS,
    "items": {
        "type": "object",
        "properties": {"function": NAME, "weight": {"type": "integer", "minimum": 0, "maximum": WEIGHTS_TOTAL}},
        "required": ["function", "weight"],
        "additionalProperties": False,
    },
    "description": f"split the calls: different functions whose weights add up to {WEIGHTS_TOTAL}, "
    "each call going to one at random in proportion (instead of function)",
    "example": [{"function": "a", "weight": 90}, {"function": "b", "weight": 10}],
}
ARCHIVE = {
    "type": "string",
    "format": "binary",
    "description": f"a zip, tar or tar.gz archive of at most {MAX_PACKAGE_BYTES:,} bytes, unpacked too",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, extra: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        schema["required"] = required
    return schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = _json(_ref("Error"), "an error")
ERRORS = {"400": ERROR, "401": ERROR, "413": ERROR}
# The call filters of /v1/invocations and /v1/dlq (faasd/control/events_api.py).
MAX_LIST = 1000
MAX_WAIT = 60


def _schemas() -> dict[str, Any]:
    function_settings = {
        "filename": {"type": "string", "maxLength": 255},
        "entrypoint": {"type": "string", "maxLength": 255},
        "timeout": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT},
        "env": VARIABLES,
        "memory_mb": {"type": "integer", "minimum": 32, "maximum": 8192},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 1000},
        "max_instances": {"type": "integer", "minimum": 1, "maximum": 100},
        "min_instances": {"type": "integer", "minimum": 0, "maximum": 100},
        "idle_timeout": {"type": "integer", "nullable": True, "minimum": 1, "maximum": 86400},
        "queue_timeout": {"type": "integer", "minimum": 0, "maximum": MAX_TIMEOUT},
        "cpu_millis": {
            "type": "integer",
            "minimum": MIN_CPU_MILLIS,
            "maximum": MAX_CPU_MILLIS,
            "description": "CPU limit in millicores (1000 = one core)",
        },
        "network": {
            "type": "string",
            "pattern": NETWORK_RE.pattern,
            "description": "default: beyond the machine, never other containers, faasd or the host; none: no "
            "network; or the name of a Docker bridge network of the user's, whose services the function reaches "
            "(not other functions, not the host)",
        },
        "executor": {
            "type": "string",
            "enum": list(EXECUTORS),
            "description": "poolmgr: instances specialized from the environment's pool; newdeploy: containers "
            "started for the function (Fission's executor types)",
        },
        "retries": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_RETRIES,
            "description": "asynchronous calls: attempts after the first before a call is a dead letter",
        },
        "retry_max_age": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_RETRY_MAX_AGE,
            "description": "asynchronous calls: seconds after its arrival past which a call is a dead letter",
        },
    }
    # What GET returns: every field of the Function value (secrets as names only).
    function_fields = [f.name for f in dataclasses.fields(Function)]
    return {
        "Error": _obj(
            {"error": _obj({"code": {"type": "string"}, "message": {"type": "string"}}, ["code", "message"])},
            ["error"],
        ),
        "Node": _obj(
            {
                "id": NAME,
                "url": {"type": "string", "description": "where its admin API is reached (--advertise-url)"},
                "live": {"type": "boolean", "description": "it beat within the last three heartbeats (9 s)"},
                "last_seen": TIME,
                "started_at": TIME,
                "version": {"type": "string"},
                "self": {"type": "boolean", "description": "the node that answered"},
            },
            ["id", "url", "live", "last_seen", "started_at", "version", "self"],
        ),
        "Environment": _obj(
            {
                "name": NAME,
                "image": {"type": "string"},
                "builder": BUILDER,
                "poolsize": {"type": "integer"},
                "created_at": TIME,
                "updated_at": TIME,
            },
            ["name", "image", "builder", "poolsize", "created_at", "updated_at"],
        ),
        "EnvironmentCreate": _obj(
            {
                "name": NAME,
                "image": {"type": "string", "maxLength": 255},
                "builder": {**BUILDER, "maxLength": 255},
                "poolsize": {"type": "integer", "minimum": 0, "maximum": MAX_POOLSIZE},
            },
            ["name", "image"],
        ),
        "EnvironmentUpdate": _obj(
            {
                "image": {"type": "string", "maxLength": 255},
                "builder": {**BUILDER, "maxLength": 255},
                "poolsize": {"type": "integer", "minimum": 0, "maximum": MAX_POOLSIZE},
            }
        ),
        "Function": _obj(
            {
                "name": NAME,
                "environment": NAME,
                "filename": {"type": "string"},
                "entrypoint": {"type": "string"},
                "timeout": {"type": "integer"},
                "code_sha256": {"type": "string"},
                "code_size": {"type": "integer"},
                "revision": {"type": "integer"},
                "env": VARIABLES,
                "secrets": {"type": "array", "items": {"type": "string"}, "description": "names only"},
                "memory_mb": {"type": "integer"},
                "concurrency": {"type": "integer"},
                "max_instances": {"type": "integer"},
                "min_instances": {"type": "integer"},
                "idle_timeout": {"type": "integer", "nullable": True},
                "queue_timeout": {"type": "integer"},
                "cpu_millis": {"type": "integer"},
                "network": {"type": "string", "description": f"{', '.join(NETWORKS)} or a user network's name"},
                "package": {"type": "string", "description": "the package the function runs; empty: one source file"},
                "retries": {"type": "integer"},
                "retry_max_age": {"type": "integer"},
                "executor": {"type": "string", "enum": list(EXECUTORS)},
                "created_at": TIME,
                "updated_at": TIME,
            },
            function_fields,
        ),
        "FunctionCreate": _obj(
            {
                "name": NAME,
                "environment": {**NAME, "description": "needed with code; with package, the package's (the default)"},
                "code": {"type": "string", "minLength": 1, "description": "the source text (or give package)"},
                "package": {**NAME, "description": "a package to run instead of code; see entrypoint"},
                "secrets": VARIABLES,
                **function_settings,
            },
            ["name"],
        ),
        "FunctionUpdate": _obj(
            {
                "environment": NAME,
                "code": {"type": "string", "minLength": 1},
                "package": {"type": "string", "description": "run this package; with code, back to one file"},
                "secrets": VARIABLES,
                **function_settings,
            }
        ),
        "FunctionVersion": _obj(
            {
                "function": NAME,
                "version": {"type": "integer", "minimum": 1},
                "created_at": TIME,
                "code_sha256": {"type": "string", "description": "empty for a package's function"},
                "code_size": {"type": "integer"},
                "settings": {
                    "type": "object",
                    "description": "the function's settings in this version, as a function's answer gives them "
                    "(secrets by name only)",
                },
            },
            ["function", "version", "created_at", "code_sha256", "code_size", "settings"],
        ),
        "Rollback": _obj(
            {"to": {"type": "integer", "minimum": 1, "nullable": True, "description": "the version to go back to"}}
        ),
        "Package": _obj(
            {
                "name": NAME,
                "environment": NAME,
                "status": {"type": "string", "enum": [s.value for s in BuildStatus]},
                "source_sha256": {"type": "string"},
                "source_size": {"type": "integer"},
                "deploy_sha256": {"type": "string"},
                "deploy_size": {"type": "integer"},
                "buildcmd": {"type": "string"},
                "build_log": {"type": "string", "description": "the tail of the last build's output (not in lists)"},
                "error": {"type": "string", "description": "why the last build failed"},
                "created_at": TIME,
                "updated_at": TIME,
            },
            [f.name for f in dataclasses.fields(Package) if f.name != "build_log"],
        ),
        "PackageCreate": _obj(
            {
                "name": NAME,
                "environment": NAME,
                "buildcmd": BUILDCMD,
                "source": ARCHIVE,
                "deploy": ARCHIVE,
                "labels": FORM_LABELS,
            },
            ["name", "environment"],
        ),
        "PackageUpdate": _obj(
            {"environment": NAME, "buildcmd": BUILDCMD, "source": ARCHIVE, "deploy": ARCHIVE, "labels": FORM_LABELS},
        ),
        "Route": _obj(
            {
                "name": NAME,
                "method": {"type": "string", "enum": list(METHODS)},
                "url": {"type": "string"},
                "function": {**NAME, "description": "the function; of a route that splits its calls, the heaviest"},
                "functions": {**WEIGHTS, "description": "every function with its weight (one alone: 100)"},
                "async": {"type": "boolean"},
                "created_at": TIME,
                "updated_at": TIME,
            },
            ["name", "method", "url", "function", "functions", "async", "created_at", "updated_at"],
        ),
        "RouteCreate": {
            **_obj(
                {
                    "name": NAME,
                    "method": {"type": "string", "enum": list(METHODS)},
                    "url": {"type": "string", "pattern": "^/", "maxLength": 1024, "example": "/users/{id}"},
                    "function": NAME,
                    "functions": WEIGHTS,
                    "async": ASYNC,
                },
                ["url"],
            ),
            "oneOf": [{"required": ["function"]}, {"required": ["functions"]}],
        },
        "RouteUpdate": _obj(
            {
                "method": {"type": "string", "enum": list(METHODS)},
                "url": {"type": "string", "pattern": "^/", "maxLength": 1024},
                "function": {**NAME, "description": "the route takes this function alone (not with functions)"},
                "functions": WEIGHTS,
                "async": ASYNC,
            }
        ),
        **_event_schemas(),
        **_canary_schemas(),
        "Status": _obj(
            {
                "version": {"type": "string"},
                "isolation": {
                    "description": "what keeps functions apart: network, inter-container traffic, host firewall",
                    "type": ["object", "null"],
                },
                "environments": {"type": "array", "items": {"type": "object"}},
                "functions": {"type": "array", "items": {"type": "object"}},
                "events": _ref("EventsStatus"),
                "canaries": {
                    "type": "array",
                    "items": _obj(
                        {
                            "name": NAME,
                            "status": CANARY_STATUS,
                            "weight": PERCENT,
                            "newfunction": NAME,
                            "oldfunction": NAME,
                            "httptrigger": NAME,
                        },
                        ["name", "status", "weight", "newfunction", "oldfunction", "httptrigger"],
                    ),
                },
                "images": {
                    "description": "the images of faasd's recipes this faasd knows about, by reference: ready, "
                    "building, or 'failed: why' (faasd builds its runtime images itself)",
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "example": {"faasd/runtime-python:891a8fbbcd1a": "ready"},
                },
            },
            ["version", "environments", "functions"],
        ),
    }


PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}
CANARY_STATUS = {"type": "string", "enum": [c.value for c in CanaryStatus]}


def _canary_schemas() -> dict[str, Any]:
    """Canaries (faasd/core/canary.py, faasd/control/canary.py)."""
    settings = {
        "increment_step": {
            **PERCENT,
            "minimum": 1,
            "default": DEFAULT_INCREMENT_STEP,
            "description": "percent of the route's calls the new function gains at every healthy interval",
        },
        "increment_interval": {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_INCREMENT_INTERVAL},
                {"type": "string", "pattern": "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$", "example": "1m"},
            ],
            "default": DEFAULT_INCREMENT_INTERVAL,
            "description": "seconds, or a duration such as 30s, 1m or 1m30s, between two verdicts",
        },
        "failure_threshold": {
            **PERCENT,
            "default": DEFAULT_FAILURE_THRESHOLD,
            "description": "percent of the new function's calls in an interval answered 5xx above which it is "
            "rolled back",
        },
    }
    step = _obj(
        {
            "time": TIME,
            "weight": PERCENT,
            "calls": {"type": "integer", "minimum": 0},
            "failures": {"type": "integer", "minimum": 0},
            "failure_rate": {"type": "number", "nullable": True, "description": "percent; null at the start"},
        },
        ["time", "weight", "calls", "failures", "failure_rate"],
    )
    return {
        "Canary": _obj(
            {
                "name": NAME,
                "newfunction": NAME,
                "oldfunction": NAME,
                "httptrigger": {**NAME, "description": "the route whose calls move from oldfunction to newfunction"},
                "increment_step": PERCENT,
                "increment_interval": {"type": "integer", "minimum": 1, "description": "seconds"},
                "failure_threshold": PERCENT,
                "status": CANARY_STATUS,
                "weight": {**PERCENT, "description": "newfunction's weight on the route now"},
                "reason": {"type": "string", "description": "why it ended (empty while it runs)"},
                "history": {"type": "array", "items": step, "description": "every change of the weight, oldest first"},
                "created_at": TIME,
                "updated_at": TIME,
            },
            [f.name for f in dataclasses.fields(Canary)],
        ),
        "CanaryCreate": _obj(
            {"name": NAME, "newfunction": NAME, "oldfunction": NAME, "httptrigger": NAME, **settings},
            ["name", "newfunction", "oldfunction", "httptrigger"],
        ),
        "CanaryUpdate": _obj(settings),
    }


LABELS = {
    "type": "object",
    "additionalProperties": {"type": "string", "maxLength": 63},
    "maxProperties": 64,
    "description": "labels, keys and values as Kubernetes allows them (faas spec apply marks its objects)",
}
LABELED = (
    "Environment", "EnvironmentCreate", "EnvironmentUpdate", "Function", "FunctionCreate", "FunctionUpdate",
    "Package", "Route", "RouteCreate", "RouteUpdate", "Timer", "TimerCreate", "TimerUpdate", "Watch",
    "WatchCreate", "WatchUpdate", "MqTrigger", "MqTriggerCreate", "MqTriggerUpdate", "Canary", "CanaryCreate",
    "CanaryUpdate",
)  # fmt: skip


FORM_LABELS = {"type": "string", "description": "the package's labels as a JSON object", "example": '{"app": "shop"}'}
LABEL_SELECTOR = {
    "name": "label",
    "in": "query",
    "schema": {"type": "string", "example": "app=shop"},
    "description": "only those with this label: key=value, or key (repeat it: all must hold)",
}


def _with_labels(schemas: dict[str, Any]) -> dict[str, Any]:
    for name in LABELED:
        # A watch's "labels" select the containers it watches: its own are "resource_labels".
        schemas[name]["properties"]["resource_labels" if name.startswith("Watch") else "labels"] = LABELS
    # A rollback's answer: the function, labels included, and the version it is now.
    function = schemas["Function"]
    version = {"type": "integer", "minimum": 1, "description": "the function's version now"}
    schemas["RolledBackFunction"] = {
        **function,
        "properties": {**function["properties"], "version": version},
        "required": [*function["required"], "version"],
    }
    return schemas


def _event_schemas() -> dict[str, Any]:
    """Timers, watches and asynchronous calls (faasd/core/events.py, faasd/events/triggers.py)."""
    method = {"type": "string", "enum": list(METHODS)}
    timer_settings = {
        "function": NAME,
        "cron": {
            "type": "string",
            "minLength": 1,
            "description": "5 fields (6 with seconds first) or a descriptor: @hourly, @daily, @every 30s ...",
            "example": "*/5 * * * *",
        },
        "timezone": {
            "type": "string",
            "minLength": 1,
            "description": "the IANA time zone the cron fields are read in (default UTC)",
            "example": "Europe/Berlin",
        },
        "method": {**method, "description": "the HTTP method the function is called with (default POST)"},
        "subpath": {
            "type": "string",
            "pattern": "^(/[^ #\\r\\n\\t]*)?$",
            "maxLength": 1024,
            "description": "the path (and query) after /function/<name>; empty: none",
            "example": "/report",
        },
        "overlap": {
            "type": "string",
            "enum": list(TIMER_OVERLAPS),
            "description": "forbid (default): skip a tick while the previous tick's call is unfinished",
        },
        "catch_up": {
            "type": "string",
            "enum": list(TIMER_CATCH_UPS),
            "description": "once (default): one run at start when ticks were missed while faasd was down",
        },
    }
    watch_settings = {
        "function": NAME,
        "type": {
            "type": "string",
            "enum": list(WATCH_TYPES),
            "description": "the kind of engine object watched (default container)",
        },
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 1024},
            "maxProperties": 20,
            "description": "only objects with these labels (an empty value: any value of the key)",
        },
        "events": {
            "type": "array",
            "items": {"type": "string", "enum": list(WATCH_EVENTS)},
            "minItems": 1,
            "description": "what to call the function for (default all)",
        },
        "include_faasd": {"type": "boolean", "description": "faasd's own containers too (default false)"},
    }
    call_response = _obj(
        {
            "status": {"type": "integer"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "truncated": {"type": "boolean", "description": "the body was cut at 1 MiB"},
            "body": {"type": "string", "description": "a UTF-8 body (not in lists)"},
            "body_base64": {"type": "string", "format": "byte", "description": "any other body (not in lists)"},
        },
        ["status", "headers", "truncated"],
    )
    attempt = _obj(
        {
            "number": {"type": "integer"},
            "started_at": TIME,
            "finished_at": MAYBE_TIME,
            "status": {"type": "integer", "nullable": True, "description": "the function's; null: no answer"},
            "error": {"type": "string"},
        },
        ["number", "started_at", "finished_at", "status", "error"],
    )
    invocation = {
        "id": {"type": "string", "format": "uuid"},
        "function": NAME,
        "method": {"type": "string"},
        "path": {"type": "string", "description": "the path and query the function is sent"},
        "trigger": {"type": "string", "enum": ["async", "timer", "watch"]},
        "trigger_name": {"type": "string", "description": "the timer's or watch's name; empty for async"},
        "status": {"type": "string", "enum": [s.value for s in CallStatus]},
        "created_at": TIME,
        "updated_at": TIME,
        "next_attempt_at": {**MAYBE_TIME, "description": "when queued"},
        "max_attempts": {"type": "integer"},
        "max_age": {"type": "integer", "description": "seconds"},
        "attempts": {"type": "array", "items": attempt},
        "reason": {"type": "string", "description": "why it failed or died"},
        "callback_url": {"type": "string"},
        "idempotency_key": {"type": "string"},
        "response": {**call_response, "nullable": True, "description": "the function's last answer; null: none"},
    }
    topic_schema = {"type": "string", "pattern": TOPIC_PATTERN, "maxLength": 255}
    mq_settings = {
        "function": NAME,
        "mqtype": {"type": "string", "enum": list(MQ_TYPES)},
        "topic": {**topic_schema, "description": "a Redis stream key or a NATS subject"},
        "resptopic": {"type": "string", "description": "where a 2xx answer's body is published; empty: nowhere"},
        "errortopic": {"type": "string", "description": "where a message that failed maxretries times goes"},
        "maxretries": {"type": "integer", "minimum": 0, "maximum": 100, "default": 3},
        "maxconcurrency": {"type": "integer", "minimum": 1, "maximum": MAX_MQ_CONCURRENCY, "default": 10},
        "contenttype": {"type": "string", "default": "application/json"},
        "connection": {"type": "string", "description": "the broker's URL as faasd reaches it (password masked)"},
        "connection_secret": {"type": "string", "description": "or: the function's secret that holds the URL"},
        "method": {"type": "string", "enum": list(METHODS)},
    }
    return {
        "Timer": _obj(
            {
                "name": NAME,
                **timer_settings,
                "last_tick_at": {**MAYBE_TIME, "description": "the scheduled time of the last tick made"},
                "next_run_at": {**MAYBE_TIME, "description": "the next tick (GET only)"},
                "created_at": TIME,
                "updated_at": TIME,
            },
            [f.name for f in dataclasses.fields(Timer) if f.name != "last_tick"] + ["last_tick_at"],
        ),
        "TimerCreate": _obj({"name": NAME, **timer_settings}, ["name", "function", "cron"]),
        "TimerUpdate": _obj(timer_settings),
        "Watch": _obj(
            {
                "name": NAME,
                **watch_settings,
                "created_at": TIME,
                "updated_at": TIME,
            },
            [f.name for f in dataclasses.fields(Watch)],
        ),
        "WatchCreate": _obj({"name": NAME, **watch_settings}, ["name", "function"]),
        "WatchUpdate": _obj(watch_settings),
        "Invocation": _obj(invocation, list(invocation)),
        "DeadLetterSelection": _obj(
            {"ids": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
            ["ids"],
        ),
        "EventsStatus": _obj(
            {
                "queue": _obj(
                    {
                        "depth": {"type": "integer", "description": "unfinished calls (queued and running)"},
                        "limit": {"type": "integer", "description": "the most unfinished calls; past it, 503"},
                        "in_flight": {"type": "integer", "description": "attempts being delivered now"},
                        **{s.value: {"type": "integer", "description": f"stored {s.value} calls"} for s in CallStatus},
                    },
                    ["depth", "limit", "in_flight", *(s.value for s in CallStatus)],
                ),
                "timers": {
                    "type": "array",
                    "items": _obj(
                        {"name": NAME, "function": NAME, "next_run_at": MAYBE_TIME},
                        ["name", "function", "next_run_at"],
                    ),
                },
                "watches": {
                    "type": "array",
                    "items": _obj(
                        {
                            "name": NAME,
                            "function": NAME,
                            "type": {"type": "string", "enum": list(WATCH_TYPES)},
                            "connected": {"type": "boolean", "description": "the engine's event stream is open"},
                        },
                        ["name", "function", "type", "connected"],
                    ),
                },
                "mqtriggers": {"type": "array", "items": _ref("MqTrigger")},
            },
            ["queue", "timers", "watches", "mqtriggers"],
        ),
        "MqTrigger": _obj(
            {
                "name": NAME,
                **mq_settings,
                "created_at": TIME,
                "updated_at": TIME,
                "status": {"type": "string", "enum": ["connected", "disconnected"]},
                "delivered": {"type": "integer", "description": "messages answered 2xx since faasd started"},
                "failed": {"type": "integer", "description": "messages sent to the error topic since faasd started"},
                "error": {"type": "string", "description": "why it is disconnected"},
            },
            [f.name for f in dataclasses.fields(MqTrigger)],
        ),
        "MqTriggerCreate": _obj({"name": NAME, **mq_settings}, ["name", "function", "mqtype", "topic"]),
        "MqTriggerUpdate": _obj(mq_settings),
    }


def _collection(
    kind: str, schema: str, path_doc: str, plural: str = "", params: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"list {path_doc}",
            "operationId": f"list{plural or schema + 's'}",
            "parameters": [*(params or []), LABEL_SELECTOR],
            "responses": {
                "200": _json(_obj({"items": {"type": "array", "items": _ref(schema)}}, ["items"]), "the list"),
                **ERRORS,
            },
        },
        "post": {
            "summary": f"create a {kind}",
            "operationId": f"create{schema}",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(f"{schema}Create")}}},
            "responses": {"201": _json(_ref(schema), "created"), "409": ERROR, **ERRORS},
        },
    }


def _function_item(force: dict[str, Any]) -> dict[str, Any]:
    """As any item; a forced delete answers 200 with what went with the function (as Fission deletes it)."""
    item = _item("function", "Function", [force])
    went = {"type": "array", "items": {"type": "string"}, "example": ["route 'hello'", "timer 'nightly'"]}
    item["delete"]["responses"]["200"] = _json(_obj({"deleted": went}, ["deleted"]), "deleted with what used it")
    return item


def _item(kind: str, schema: str, delete_params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    name_param = {"name": "name", "in": "path", "required": True, "schema": NAME}
    update = {
        "summary": f"change a {kind}",
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(f"{schema}Update")}}},
        "responses": {"200": _json(_ref(schema), "changed"), "404": ERROR, "409": ERROR, **ERRORS},
    }
    return {
        "parameters": [name_param],
        "get": {
            "summary": f"get a {kind}",
            "operationId": f"get{schema}",
            "responses": {"200": _json(_ref(schema), "found"), "404": ERROR, **ERRORS},
        },
        "patch": {**update, "operationId": f"patch{schema}"},
        "put": {**update, "operationId": f"put{schema}"},
        "delete": {
            "summary": f"delete a {kind}",
            "operationId": f"delete{schema}",
            "parameters": delete_params or [],
            "responses": {"204": {"description": "deleted"}, "404": ERROR, "409": ERROR, **ERRORS},
        },
    }


def _version_paths(name_param: dict[str, Any]) -> dict[str, Any]:
    """A function's versions and rollback (faasd/control/versions.py)."""
    return {
        "/v1/functions/{name}/versions": {
            "parameters": [name_param],
            "get": {
                "summary": "the function's kept versions, newest first (secrets by name only)",
                "operationId": "listFunctionVersions",
                "responses": {
                    "200": _json(
                        _obj({"items": {"type": "array", "items": _ref("FunctionVersion")}}, ["items"]), "versions"
                    ),
                    "404": ERROR,
                    **ERRORS,
                },
            },
        },
        "/v1/functions/{name}/rollback": {
            "parameters": [name_param],
            "post": {
                "summary": "make an older version's code and settings the function's, as a new version",
                "operationId": "rollbackFunction",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("Rollback")}},
                    "description": "without a body (or without to): the version before the newest",
                },
                "responses": {
                    "200": _json(_ref("RolledBackFunction"), "the function as it is now, and its version"),
                    "404": ERROR,
                    "409": ERROR,
                    **ERRORS,
                },
            },
        },
    }


def _form(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"multipart/form-data": {"schema": _ref(schema)}}}


def _package_paths(name_param: dict[str, Any], force: dict[str, Any]) -> dict[str, Any]:
    """Packages: archives go up as multipart/form-data; builds run in the background."""
    package = _json(_ref("Package"), "the package")
    return {
        "/v1/packages": {
            "get": {
                "summary": "list packages (without build logs)",
                "operationId": "listPackages",
                "parameters": [LABEL_SELECTOR],
                "responses": {
                    "200": _json(_obj({"items": {"type": "array", "items": _ref("Package")}}, ["items"]), "the list"),
                    **ERRORS,
                },
            },
            "post": {
                "summary": "create a package from a source archive (built in the background) or a deployment archive",
                "operationId": "createPackage",
                "requestBody": _form("PackageCreate"),
                "responses": {"201": package, "409": ERROR, **ERRORS},
            },
        },
        "/v1/packages/{name}": {
            "parameters": [name_param],
            "get": {
                "summary": "get a package with its build log",
                "operationId": "getPackage",
                "responses": {"200": package, "404": ERROR, **ERRORS},
            },
            "patch": {
                "summary": "change a package's archives, build command or environment (a new source is built)",
                "operationId": "patchPackage",
                "requestBody": _form("PackageUpdate"),
                "responses": {"200": package, "404": ERROR, "409": ERROR, **ERRORS},
            },
            "delete": {
                "summary": "delete a package (force=true: with the functions that run it)",
                "operationId": "deletePackage",
                "parameters": [force],
                "responses": {"204": {"description": "deleted"}, "404": ERROR, "409": ERROR, **ERRORS},
            },
        },
        "/v1/packages/{name}/rebuild": {
            "parameters": [name_param],
            "post": {
                "summary": "build the package's source again",
                "operationId": "rebuildPackage",
                "responses": {"202": _json(_ref("Package"), "the build is queued"), "404": ERROR, **ERRORS},
            },
        },
        "/v1/packages/{name}/source": {
            "parameters": [name_param],
            "get": {
                "summary": "the package's source archive as stored (a tar)",
                "operationId": "getPackageSource",
                "responses": {
                    "200": {
                        "description": "the archive",
                        "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "404": ERROR,
                    **ERRORS,
                },
            },
        },
        "/v1/packages/{name}/deploy": {
            "parameters": [name_param],
            "get": {
                "summary": "the package's deployment archive (a tar)",
                "operationId": "getPackageDeploy",
                "responses": {
                    "200": {
                        "description": "the archive",
                        "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "404": ERROR,
                    **ERRORS,
                },
            },
        },
    }


def _event_paths() -> dict[str, Any]:
    """Timers, watches, asynchronous calls and dead letters (faasd/control/events_api.py)."""
    function = {"name": "function", "in": "query", "schema": NAME, "description": "only this function's"}
    call_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "call id"}
    since = {
        "name": "since",
        "in": "query",
        "schema": {"anyOf": [TIME, {"type": "string", "pattern": "^[0-9]{1,9}[smhd]$", "example": "2h"}]},
        "description": "created at or after: an RFC 3339 time (2026-11-30T10:00:00Z) or a duration ago (2h, 7d)",
    }
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST, "default": 100},
        "description": "the newest this many",
    }
    status = {
        "name": "status",
        "in": "query",
        "schema": {"type": "string", "enum": [s.value for s in CallStatus]},
        "description": "only calls in this state",
    }
    calls = _json(
        _obj({"items": {"type": "array", "items": _ref("Invocation")}}, ["items"]), "newest first (no bodies)"
    )
    call = _json(_ref("Invocation"), "the call")
    first = "$response.body#/items/0/id"
    calls_links = {"getInvocation": {"operationId": "getInvocation", "parameters": {"id": first}}}
    dead_links = {
        op: {"operationId": op, "parameters": {"id": first}}
        for op in ("getDeadLetter", "purgeDeadLetter", "redriveDeadLetter")
    }
    selection = {
        "required": False,
        "content": {"application/json": {"schema": _ref("DeadLetterSelection")}},
        "description": "the dead letters by id; without a body: the ones the query selects",
    }
    purged = _json(_obj({"purged": {"type": "integer"}}, ["purged"]), "how many were deleted")
    redriven = _json(
        _obj(
            {"redriven": {"type": "integer"}, "ids": {"type": "array", "items": {"type": "string"}}},
            ["redriven", "ids"],
        ),
        "the calls queued again",
    )
    return {
        "/v1/timers": _collection("timer", "Timer", "timers", params=[function]),
        "/v1/timers/{name}": _item("timer", "Timer"),
        "/v1/watches": _collection("watch", "Watch", "watches of the container engine", "Watches", [function]),
        "/v1/watches/{name}": _item("watch", "Watch"),
        "/v1/triggers/mq": _collection("mqtrigger", "MqTrigger", "message-queue triggers", "MqTriggers", [function]),
        "/v1/triggers/mq/{name}": _item("mqtrigger", "MqTrigger"),
        "/v1/invocations": {
            "get": {
                "summary": "list asynchronous calls (results are kept 24 h; dead letters until purged)",
                "operationId": "listInvocations",
                "parameters": [function, status, since, limit],
                "responses": {"200": {**calls, "links": calls_links}, **ERRORS},
            }
        },
        "/v1/invocations/{id}": {
            "parameters": [call_id],
            "get": {
                "summary": "get an asynchronous call with its attempts and the function's answer",
                "operationId": "getInvocation",
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
                        "description": "seconds to wait for the call to finish",
                    }
                ],
                "responses": {"200": call, "404": ERROR, **ERRORS},
            },
        },
        "/v1/dlq": {
            "get": {
                "summary": "list dead letters: calls out of attempts or of age",
                "operationId": "listDeadLetters",
                "parameters": [function, since, limit],
                "responses": {"200": {**calls, "links": dead_links}, **ERRORS},
            },
            "delete": {
                "summary": "purge dead letters: the ids given, else the newest `limit` (100) the query selects",
                "operationId": "purgeDeadLetters",
                "parameters": [function, since, limit],
                "requestBody": selection,
                "responses": {"200": purged, "404": ERROR, **ERRORS},
            },
        },
        "/v1/dlq/redrive": {
            "post": {
                "summary": "queue dead letters again: the ids given, else the newest `limit` (100) the query selects",
                "operationId": "redriveDeadLetters",
                "parameters": [function, since, limit],
                "requestBody": selection,
                "responses": {"200": redriven, "404": ERROR, **ERRORS},
            }
        },
        "/v1/dlq/{id}": {
            "parameters": [call_id],
            "get": {
                "summary": "get a dead letter",
                "operationId": "getDeadLetter",
                "responses": {"200": call, "404": ERROR, **ERRORS},
            },
            "delete": {
                "summary": "purge a dead letter",
                "operationId": "purgeDeadLetter",
                "responses": {"200": purged, "404": ERROR, **ERRORS},
            },
        },
        "/v1/dlq/{id}/redrive": {
            "parameters": [call_id],
            "post": {
                "summary": "queue a dead letter again",
                "operationId": "redriveDeadLetter",
                "responses": {"200": redriven, "404": ERROR, **ERRORS},
            },
        },
        "/v1/cron/schedule": {
            "get": {
                "summary": "the next runs of a cron expression (to check one before a timer uses it)",
                "operationId": "getCronSchedule",
                "parameters": [
                    {
                        "name": "cron",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "example": "*/5 * * * *"},
                    },
                    {
                        "name": "timezone",
                        "in": "query",
                        "schema": {"type": "string", "default": "UTC", "example": "Europe/Berlin"},
                    },
                    {
                        "name": "round",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
                        "description": "how many runs",
                    },
                ],
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "cron": {"type": "string"},
                                "timezone": {"type": "string"},
                                "next": {"type": "array", "items": TIME},
                            },
                            ["cron", "timezone", "next"],
                        ),
                        "the next runs, in UTC",
                    ),
                    **ERRORS,
                },
            }
        },
    }


def document() -> dict[str, Any]:
    force = {"name": "force", "in": "query", "required": False, "schema": {"type": "string", "enum": ["true", "false"]}}
    name_param = {"name": "name", "in": "path", "required": True, "schema": NAME}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "faasd admin API",
            "version": __version__,
            "description": (
                "Environments, functions (with their versions), packages, HTTP routes (split by weight, moved by "
                "canaries), timers, engine watches and asynchronous calls (with their dead letters) of a faasd daemon."
            ),
        },
        "components": {
            "schemas": _with_labels(_schemas()),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/environments": _collection("environment", "Environment", "environments"),
            "/v1/environments/{name}": _item("environment", "Environment"),
            "/v1/functions": _collection("function", "Function", "functions"),
            "/v1/functions/{name}": _function_item(force),
            "/v1/functions/{name}/code": {
                "parameters": [name_param],
                "get": {
                    "summary": "the function's source",
                    "operationId": "getFunctionCode",
                    "responses": {
                        "200": {"description": "source", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "404": ERROR,
                        **ERRORS,
                    },
                },
            },
            "/v1/functions/{name}/logs": {
                "parameters": [name_param],
                "get": {
                    "summary": "the function's log, every node's merged by time (docs/cluster.md); follow=true "
                    "streams this node's new records",
                    "operationId": "getFunctionLogs",
                    "parameters": [
                        {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "follow", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
                        {
                            "name": "node",
                            "in": "query",
                            "schema": NAME,
                            "description": "only this node's records (GET /v1/nodes); 'local': the answering node's",
                        },
                        {
                            "name": "format",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["text", "json"]},
                            "description": 'json: one object a line, {"node": ..., "line": ...}',
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "log records, oldest first",
                            "headers": {
                                "Faasd-Nodes": {
                                    "description": "the nodes whose records the answer has (several nodes only)",
                                    "schema": {"type": "string"},
                                },
                                "Faasd-Nodes-Missing": {
                                    "description": "the nodes whose records it lacks: they did not answer, are "
                                    "not live, or are not followed",
                                    "schema": {"type": "string"},
                                },
                            },
                            "content": {
                                "text/plain": {"schema": {"type": "string"}},
                                "application/x-ndjson": {"schema": {"type": "string"}},
                            },
                        },
                        "404": ERROR,
                        "502": ERROR,
                        **ERRORS,
                    },
                },
            },
            **_version_paths(name_param),
            **_package_paths(name_param, force),
            "/v1/triggers/http": _collection("route", "Route", "HTTP routes"),
            "/v1/triggers/http/{name}": _item("route", "Route"),
            "/v1/canaries": _collection("canary", "Canary", "canaries", "Canaries"),
            "/v1/canaries/{name}": _item("canary", "Canary"),
            **_event_paths(),
            "/v1/nodes": {
                "get": {
                    "summary": "the faasd nodes sharing this registry, live or not; self: the one that answered",
                    "operationId": "listNodes",
                    "responses": {
                        "200": _json(
                            _obj({"items": {"type": "array", "items": _ref("Node")}}, ["items"]), "nodes by id"
                        ),
                        **ERRORS,
                    },
                }
            },
            "/v1/status": {
                "get": {
                    "summary": "pools and instances; events: the call queue, timers and watches; canaries",
                    "operationId": "getStatus",
                    "responses": {"200": _json(_ref("Status"), "status"), **ERRORS},
                }
            },
            **_observe_paths(name_param),
        },
    }


def _observe_paths(name_param: dict[str, Any]) -> dict[str, Any]:
    """Metrics, the last hour per minute, usage and instances (faasd/control/observe_api.py)."""
    function = {"name": "function", "in": "query", "schema": NAME, "description": "only this function"}
    since = {
        "name": "since",
        "in": "query",
        "schema": {"anyOf": [TIME, {"type": "string", "pattern": "^[0-9]{1,9}[smhd]$", "example": "24h"}]},
        "description": "hours from this one on: an RFC 3339 time or a duration ago (default 24h)",
    }
    minutes = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 60, "maxItems": 60}
    quantiles = {"type": "array", "items": {"type": "number", "nullable": True}, "minItems": 60, "maxItems": 60}
    series = _obj(
        {"calls": minutes, "errors": minutes, "cold_starts": minutes, "p50_ms": quantiles, "p99_ms": quantiles},
        ["calls", "errors", "cold_starts", "p50_ms", "p99_ms"],
    )
    stats = _obj(
        {
            "step": {"type": "integer", "enum": [60]},
            "start": {"type": "integer", "description": "unix seconds of the first bucket"},
            "functions": {"type": "object", "additionalProperties": series},
        },
        ["step", "start", "functions"],
    )
    figures = {
        "calls": {"type": "integer", "minimum": 0},
        "billed_ms": {"type": "integer", "minimum": 0},
        "gb_seconds": {"type": "number", "minimum": 0},
        "instance_seconds": {"type": "number", "minimum": 0},
    }
    row = _obj({"function": NAME, "hour": TIME, **figures}, ["function", "hour", *figures])
    usage = _obj(
        {"since": TIME, "usage": {"type": "array", "items": row}, "totals": _obj(figures, list(figures))},
        ["since", "usage", "totals"],
    )
    instance = _obj(
        {
            "id": {"type": "string"},
            "state": {"type": "string", "enum": ["busy", "idle"]},
            "inflight": {"type": "integer", "minimum": 0},
            "calls": {"type": "integer", "minimum": 0},
            "age_seconds": {"type": "number"},
            "idle_seconds": {"type": "number"},
        },
        ["id", "state", "inflight", "calls", "age_seconds", "idle_seconds"],
    )
    return {
        "/v1/stats": {
            "get": {
                "summary": "the last hour per minute and function: calls, 5xx errors, cold starts, p50 and p99",
                "operationId": "getStats",
                "parameters": [function],
                "responses": {"200": _json(stats, "60 one-minute buckets, oldest first"), "404": ERROR, **ERRORS},
            }
        },
        "/v1/usage": {
            "get": {
                "summary": "usage per function and hour: calls, billed ms, GB-seconds, instance-seconds",
                "operationId": "getUsage",
                "parameters": [function, since],
                "responses": {"200": _json(usage, "rows oldest first, and their totals"), **ERRORS},
            }
        },
        "/v1/functions/{name}/instances": {
            "parameters": [name_param],
            "get": {
                "summary": "the function's instances now",
                "operationId": "getFunctionInstances",
                "responses": {
                    "200": _json(_obj({"instances": {"type": "array", "items": instance}}, ["instances"]), "instances"),
                    "404": ERROR,
                    **ERRORS,
                },
            },
        },
    }
