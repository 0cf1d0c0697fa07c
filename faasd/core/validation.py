"""Checks of user input. Each failure is a BadRequest that names the field."""

from __future__ import annotations

import re
from typing import Any

from faasd.core.entities import DOCKER_NETWORKS, MAX_ROUTE_FUNCTIONS, NETWORKS, WEIGHTS_TOTAL
from faasd.core.errors import BadRequest

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$")
FILENAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
# Docker's own rule for network names, at most 63 characters.
NETWORK_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
ENTRYPOINT_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.]{0,254}$")
PARAM_RE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]{0,62})\}$")
# No "%": a route's URL is matched decoded, so an encoded segment could shadow another route.
SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+$")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Paths faasd answers itself; no route may claim them.
RESERVED_PREFIXES = (
    "/v1",
    "/healthz",
    "/readyz",
    "/metrics",
    "/ui",
    "/function",
    "/fission-function",
    "/async-function",
)
# Reserved but answered by the data plane (any function by name), not the admin app.
DIRECT_ROOTS = ("/function", "/fission-function")


def is_admin_path(path: str) -> bool:
    """Whether the admin app answers ``path``: a reserved prefix, or below one, other than /function.

    /async-function is answered there (the call is stored, then 202), without the token like /function.
    """
    slash = path.find("/", 1)
    root = path if slash < 0 else path[:slash]
    return root not in DIRECT_ROOTS and root in RESERVED_PREFIXES


# An X-Request-Id kept as a call's id: visible ASCII, no space (it starts the function's log lines).
REQUEST_ID_RE = re.compile(r"[\x21-\x7e]{1,200}")

# Labels, as Kubernetes spells them (a Fission spec's labels carry over): an optional DNS-subdomain
# prefix and a name; values up to 63 characters. What `faas spec apply` marks its objects with.
LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
MAX_LABELS = 64

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

MAX_POOLSIZE = 50
MAX_TIMEOUT = 3600
MAX_ENV_ENTRIES = 100
MAX_ENV_VALUE = 32 * 1024
# A function's CPU limit in millicores (1000 = one core). At least 50, a
# twentieth of a core: below that the kernel's CPU quota (5 ms of every 100 ms)
# leaves a runtime too slow to load its code and answer its health checks in
# time. At most 64000, 64 cores: more than the single machine faasd is meant
# for has. (Docker itself refuses a limit above the machine's own core count,
# so the engine applies at most that.)
MIN_CPU_MILLIS = 50
MAX_CPU_MILLIS = 64000


def name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field} is required and must be a string")
    if not NAME_RE.fullmatch(value):
        raise BadRequest(
            f"{field} {value!r} is invalid: use lower-case letters, digits and hyphens, "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def image(value: Any) -> str:
    if value is None:
        raise BadRequest("image is required, e.g. faasd/runtime-nodejs:latest")
    if not isinstance(value, str) or not IMAGE_RE.fullmatch(value) or len(value) > 255:
        raise BadRequest(f"image {value!r} is not a valid image reference (e.g. faasd/runtime-nodejs:latest)")
    return value


def integer(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{field} must be a whole number")
    if not low <= value <= high:
        raise BadRequest(f"{field} must be between {low} and {high}, got {value}")
    return value


def choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise BadRequest(f"{field} must be one of {', '.join(choices)}, got {value!r}")
    return value


# faasd's own network (--network): the engine names it at start (faasd/engines/isolation.py),
# since nothing below the engine knows the settings.
_own_networks: set[str] = set()


def own_network(value: str) -> None:
    """Make ``value`` a network no function may name: faasd's own (its functions are on it already)."""
    _own_networks.add(value)


def network(value: Any, field: str = "network") -> str:
    """``default``, ``none`` (sealed), or the name of a user's Docker network.

    Whether that network exists, and is a bridge, is checked when a container
    of the function is put on it (faasd/engines/isolation.py).
    """
    expected = f"{field} must be one of default, none"
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{expected}, or the name of a Docker network of your own, got {value!r}")
    if value in NETWORKS:
        return value
    if not NETWORK_RE.fullmatch(value):
        raise BadRequest(
            f"{expected}, or the name of a Docker network of your own (letters, digits, '_', '.' and '-', "
            f"starting with a letter or digit, at most 63 characters), got {value!r}"
        )
    if value in DOCKER_NETWORKS:
        raise BadRequest(
            f"{expected}, got {value!r}: Docker's own networks would undo the functions' isolation "
            "(a Docker network of your own may be named instead)"
        )
    if value in _own_networks:
        raise BadRequest(f"{expected}, got {value!r}: that is faasd's own network, where every function is already")
    return value


def variables(value: Any, field: str) -> dict[str, str]:
    """Environment variables or secrets: an object of NAME -> string."""
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be an object of NAME: value strings")
    if len(value) > MAX_ENV_ENTRIES:
        raise BadRequest(f"{field} has {len(value)} entries; at most {MAX_ENV_ENTRIES}")
    for key, item in value.items():
        if not ENV_NAME_RE.fullmatch(key):
            raise BadRequest(f"{field} name {key!r} is invalid: letters, digits and _, not starting with a digit")
        if key == "PORT" or key.startswith("FAASD_"):
            raise BadRequest(f"{field} name {key!r} is reserved for the runtime")
        if not isinstance(item, str) or len(item) > MAX_ENV_VALUE or "\x00" in item:
            raise BadRequest(
                f"{field} value of {key!r} must be a string of at most {MAX_ENV_VALUE} characters, without NUL"
            )
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"{field} value of {key!r} must be Unicode text (it has a lone surrogate)") from None
    return dict(value)


def filename(value: Any) -> str:
    if not isinstance(value, str) or not FILENAME_RE.fullmatch(value) or ".." in value:
        raise BadRequest(f"filename {value!r} is invalid: a plain file name such as hello.js")
    return value


def entrypoint(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest("entrypoint must be a string")
    if value and not ENTRYPOINT_RE.fullmatch(value):
        raise BadRequest(f"entrypoint {value!r} is invalid: a function name such as main")
    return value


def method(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in METHODS:
        raise BadRequest(f"method {value!r} is invalid: one of {', '.join(METHODS)}")
    return value.upper()


def url_pattern(value: Any) -> str:
    """A route's URL: literal segments and ``{param}`` segments, e.g. /users/{id}."""
    if not isinstance(value, str) or not value:
        raise BadRequest("url is required and must be a string such as /hello")
    if not value.startswith("/") or len(value) > 1024:
        raise BadRequest(f"url {value!r} is invalid: it must start with / and be at most 1024 characters")
    if "?" in value or "#" in value:
        raise BadRequest(f"url {value!r} is invalid: no query string or fragment")
    normalized = value.rstrip("/") or "/"
    for prefix in RESERVED_PREFIXES:
        if normalized == prefix or normalized.startswith(prefix + "/"):
            raise BadRequest(f"url {value!r} is reserved: {prefix} belongs to faasd")
    seen: set[str] = set()
    for segment in normalized.strip("/").split("/") if normalized != "/" else []:
        param = PARAM_RE.fullmatch(segment)
        if param:
            if param.group(1) in seen:
                raise BadRequest(f"url {value!r} names the parameter {param.group(1)!r} twice")
            seen.add(param.group(1))
        elif not segment or not SEGMENT_RE.fullmatch(segment):
            raise BadRequest(f"url {value!r} has an invalid segment {segment!r}")
    return normalized


def weights(value: Any, field: str = "functions") -> tuple[tuple[str, int], ...]:
    """A split route's ``[{"function": "a", "weight": 90}, {"function": "b", "weight": 10}]``:
    1 to 5 different functions, whole weights from 0 to 100 adding up to 100."""
    example = '[{"function": "a", "weight": 90}, {"function": "b", "weight": 10}]'
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{field} must be a non-empty list such as {example}")
    if len(value) > MAX_ROUTE_FUNCTIONS:
        raise BadRequest(f"{field} names {len(value)} functions; a route splits its calls between at most 5")
    pairs: list[tuple[str, int]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"function", "weight"}:
            raise BadRequest(f"{field}[{i}] must be an object with function and weight, as in {example}")
        fn = name(item["function"], f"{field}[{i}].function")
        if any(fn == other for other, _ in pairs):
            raise BadRequest(f"{field} names function '{fn}' twice")
        pairs.append((fn, integer(item["weight"], f"{field}[{i}].weight", 0, WEIGHTS_TOTAL)))
    total = sum(weight for _, weight in pairs)
    if total != WEIGHTS_TOTAL:
        raise BadRequest(f"the weights of {field} add up to {total}; they must add up to {WEIGHTS_TOTAL}")
    return tuple(pairs)


def heaviest(pairs: tuple[tuple[str, int], ...]) -> str:
    """The function with the largest weight; the first of equals."""
    return max(pairs, key=lambda pair: pair[1])[0]


def url_key(pattern: str) -> str:
    """The pattern with parameter names blanked, for duplicate detection."""
    return "/".join("{}" if PARAM_RE.fullmatch(s) else s for s in pattern.split("/"))


def json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def known_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; accepted: {', '.join(sorted(allowed))}")


def labels(value: object) -> dict[str, str]:
    """A resource's ``labels``: an object of strings, keys and values as Kubernetes allows them."""
    if not isinstance(value, dict):
        raise BadRequest('labels must be an object of strings, e.g. {"app": "shop"}')
    if len(value) > MAX_LABELS:
        raise BadRequest(f"at most {MAX_LABELS} labels")
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
            raise BadRequest(
                f"label key {key!r} is invalid: an optional DNS prefix and '/', then up to 63 letters, "
                "digits, '-', '_' or '.', starting and ending with a letter or digit"
            )
        if not isinstance(item, str) or not LABEL_VALUE_RE.fullmatch(item):
            raise BadRequest(
                f"label {key!r}: value {item!r} is invalid: up to 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )
    return dict(value)


def label_selector(values: list[str]) -> list[tuple[str, str | None]]:
    """``?label=key=value`` (or ``?label=key``: has the label), repeated: all must hold."""
    selector: list[tuple[str, str | None]] = []
    for raw in values:
        key, sep, value = raw.partition("=")
        if not LABEL_KEY_RE.fullmatch(key) or (sep and not LABEL_VALUE_RE.fullmatch(value)):
            raise BadRequest(f"label selector {raw!r} is invalid: key=value or key")
        selector.append((key, value if sep else None))
    return selector
