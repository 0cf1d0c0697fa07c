"""Settings, read once from command-line flags and ``FAASD_*`` variables.

Every setting, its flag, its variable and its default are listed in
:data:`OPTIONS`; nothing else in faasd reads the environment.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faasd import __version__
from faasd.core.database import DatabaseUrl, database_url
from faasd.core.validation import NAME_RE

# A repository path without a tag: lower-case components, an optional registry host[:port] first.
_COMPONENT = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
IMAGE_NAMESPACE_RE = re.compile(rf"(?:[a-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")


def boolean(raw: str) -> bool:
    """A yes/no setting's value: true/false, yes/no, on/off, 1/0."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


@dataclass(frozen=True)
class Option:
    name: str
    default: str
    help: str
    kind: type | object = str
    flag: bool = False  # a bare --flag turns it on (the variable takes true/false)


OPTIONS: tuple[Option, ...] = (
    Option("host", "127.0.0.1", "address to listen on"),
    Option("port", "8080", "port for the admin API and the function routes", int),
    Option("state_dir", "./.faasd", "where the database, code blobs and logs live"),
    Option(
        "database",
        "",
        "the registry's database: postgresql://USER:PASSWORD@HOST:PORT/DB to share it between faasd nodes "
        "(code and archives are kept in it too), or sqlite:///PATH (default: <state dir>/faasd.db)",
    ),
    Option("idle_timeout", "120", "seconds without calls before a function's instance is removed", float),
    Option("default_poolsize", "3", "pool size of the stock environments", int),
    Option("network", "faasd", "Docker network that faasd creates and puts containers on"),
    Option(
        "image_namespace",
        "faasd",
        "namespace of the runtime and builder images faasd builds from its recipes (<namespace>/runtime-<lang>)",
    ),
    Option("nodejs_image", "", "image of the stock nodejs environment (default <namespace>/runtime-nodejs:latest)"),
    Option("python_image", "", "image of the stock python environment (default <namespace>/runtime-python:latest)"),
    Option("max_body_bytes", str(6 * 1024 * 1024), "largest request body a function accepts", int),
    Option("head_timeout", "10", "seconds a client may take to send a request's head", float),
    Option("keepalive_timeout", "75", "seconds an idle client connection is kept open", float),
    Option(
        "max_code_bytes",
        str(8 * 1024 * 1024),
        "largest function source accepted (the whole specialization, code + variables + secrets, "
        "must also fit the runtimes' 8 MiB)",
        int,
    ),
    Option("container_memory_mb", "256", "memory limit of each runtime container", int),
    Option("start_concurrency", "4", "container starts in flight at once (engine protection)", int),
    Option(
        "pool_memory_budget_mb",
        "0",
        "memory (counted at --container-memory-mb each) the pools may hold in extra containers beyond their "
        "poolsize, kept while recent bursts of first calls need them (0: pools stay at their poolsize)",
        int,
    ),
    Option("log_level", "info", "debug, info, warning or error"),
    Option(
        "owner_label",
        "",
        "this node's id and the faasd.owner label of its containers (default: a hash of the state dir; with "
        "--database, of the machine's name and the state dir)",
    ),
    Option(
        "advertise_url",
        "",
        "the URL other faasd nodes reach this node's admin API at, e.g. http://10.0.0.5:8080 (default "
        "http://<host>:<port>, the machine's name for 0.0.0.0; set it behind NAT or in a container)",
    ),
    Option("token", "", "admin API token (default: made once and kept in <state dir>/token)"),
    Option(
        "firewall",
        "auto",
        "host firewall rules that keep function containers off the host and each other: "
        "on (refuse to start without them), off, or auto (on when iptables can be used)",
    ),
    Option("max_connections", "10000", "client connections held at once; beyond, 503 and close", int),
    Option("max_queued_calls", "5000", "calls waiting for an instance, all functions together; beyond, 503", int),
    Option("container_log_max_size", "10m", "json-file log rotation of every container: size of one file"),
    Option("container_log_max_files", "3", "json-file log rotation of every container: files kept", int),
    Option("build_timeout", "600", "seconds a package's build may take; then it fails", float),
    Option(
        "max_async_queue", "10000", "asynchronous calls queued or running, all functions together; beyond, 503", int
    ),
    Option("async_concurrency", "32", "asynchronous deliveries in flight at once, all functions together", int),
    Option(
        "async_lease",
        "30",
        "seconds a node holds an asynchronous call without renewing it: a dead node's calls go to another after it",
        float,
    ),
    Option(
        "metrics_public", "false", "serve /metrics without the admin token (it names every function)", boolean, True
    ),
    Option("access_log", "off", "one line per function call on faasd's log: off, text or json"),
    Option(
        "call_metrics",
        "true",
        "count every call for /metrics, /v1/stats and usage (false only to measure what counting costs: "
        "synchronous calls then go uncounted and unmetered)",
        boolean,
    ),
    Option("usage_interval", "10", "seconds between writes of usage figures to the registry", float),
    Option(
        "keep_versions",
        "10",
        "versions kept of each function (every change of its code or settings makes one; rollback goes back to one)",
        int,
    ),
)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    state_dir: Path = Path(".faasd")
    database: str = ""
    idle_timeout: float = 120.0
    default_poolsize: int = 3
    network: str = "faasd"
    image_namespace: str = "faasd"
    nodejs_image: str = ""
    python_image: str = ""
    max_body_bytes: int = 6 * 1024 * 1024
    head_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    max_code_bytes: int = 8 * 1024 * 1024
    container_memory_mb: int = 256
    start_concurrency: int = 4
    pool_memory_budget_mb: int = 0
    log_level: str = "info"
    owner_label: str = ""
    advertise_url: str = ""
    token: str = ""
    firewall: str = "auto"
    max_connections: int = 10000
    max_queued_calls: int = 5000
    container_log_max_size: str = "10m"
    container_log_max_files: int = 3
    build_timeout: float = 600.0
    max_async_queue: int = 10000
    async_concurrency: int = 32
    async_lease: float = 30.0
    metrics_public: bool = False
    access_log: str = "off"
    call_metrics: bool = True
    usage_interval: float = 10.0
    keep_versions: int = 10

    @property
    def database_url(self) -> DatabaseUrl:
        """The registry's database (``--database``; checked by :func:`load_settings`)."""
        return database_url(self.database, self.state_dir)

    @property
    def code_dir(self) -> Path:
        return self.state_dir / "code"

    @property
    def upload_dir(self) -> Path:
        """Where uploads (package archives) are streamed before they are checked."""
        return self.state_dir / "tmp"

    @property
    def owner(self) -> str:
        """This node's id, and the label value marking the containers of the faasd that uses this state dir.

        Two faasd processes with different state dirs on one engine never remove each other's containers.
        With ``--database`` (a registry other nodes may share) the machine's name is hashed too: every
        machine set up by ``faasd install`` has the same state dir, and nodes must not share an id. The
        default single node keeps the hash of its state dir alone (its containers keep their label).
        """
        if self.owner_label:
            return self.owner_label
        key = str(self.state_dir.resolve())
        if self.database:
            key = f"{socket.gethostname()}:{key}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    @property
    def node_url(self) -> str:
        """Where the other nodes reach this one's admin API: ``--advertise-url``, else ``http://<host>:<port>``
        (the machine's name for a wildcard host: 0.0.0.0 reaches no other machine)."""
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def stock_environments(self) -> dict[str, str]:
        """The environments registered on the first start, and their images."""
        given = {"nodejs": self.nodejs_image, "python": self.python_image}
        return {name: image or f"{self.image_namespace}/runtime-{name}:latest" for name, image in given.items()}

    @property
    def stock_builders(self) -> dict[str, str]:
        """The builder images of the stock environments (runtimes/README.md, "Builders")."""
        return {name: f"{self.image_namespace}/builder-{name}:latest" for name in ("nodejs", "python")}


def _env_name(option: Option) -> str:
    return "FAASD_" + option.name.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faasd",
        description="faasd: functions as a service on one machine.",
        epilog="Every flag can also be set with its FAASD_* variable, e.g. FAASD_PORT. "
        "Other commands: faasd images build|list|prune, faasd doctor, faasd install, faasd uninstall "
        "(faasd COMMAND --help).",
    )
    parser.add_argument("--version", action="version", version=f"faasd {__version__}")
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        help_text = f"{option.help} (${_env_name(option)}, default {option.default})"
        if option.flag:
            parser.add_argument(
                flag, dest=option.name, default=None, action="store_const", const="true", help=help_text
            )
        else:
            parser.add_argument(flag, dest=option.name, default=None, help=help_text)
    return parser


def command_parser(command: str, description: str) -> argparse.ArgumentParser:
    """The settings flags under another name (``faasd doctor``), for a command that reads them too and
    adds its own arguments; give it to :func:`load_settings` as ``parser``."""
    parser = build_parser()
    parser.prog = f"faasd {command}"
    parser.description = description
    parser.epilog = "Every flag can also be set with its FAASD_* variable, e.g. FAASD_PORT."
    return parser


def load_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> Settings:
    """Resolve every option: flag, then ``FAASD_*`` variable, then default.

    ``parser``: one from :func:`command_parser`; a command's own arguments in ``argv`` are ignored here.
    """
    environ = os.environ if environ is None else environ
    parser = build_parser() if parser is None else parser
    args = parser.parse_args(argv)
    values: dict[str, object] = {}
    for option in OPTIONS:
        raw = getattr(args, option.name)
        if raw is None:
            raw = environ.get(_env_name(option), option.default)
        try:
            values[option.name] = option.kind(raw)  # type: ignore[operator]
        except ValueError:
            kind = getattr(option.kind, "__name__", "value")
            parser.error(f"--{option.name.replace('_', '-')}: {raw!r} is not a valid {kind}")
    values["state_dir"] = Path(str(values["state_dir"]))
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.idle_timeout <= 0:
        parser.error("--idle-timeout must be positive")
    if settings.head_timeout <= 0 or settings.keepalive_timeout <= 0:
        parser.error("--head-timeout and --keepalive-timeout must be positive")
    if settings.owner_label and not NAME_RE.fullmatch(settings.owner_label):
        parser.error("--owner-label must be lower-case letters, digits and hyphens")
    if settings.advertise_url and not re.fullmatch(r"https?://[^/\s]+/?", settings.advertise_url):
        parser.error("--advertise-url must be an http(s) URL without a path, e.g. http://10.0.0.5:8080")
    if settings.firewall not in ("auto", "on", "off"):
        parser.error("--firewall must be auto, on or off")
    if settings.max_connections < 1 or settings.max_queued_calls < 1:
        parser.error("--max-connections and --max-queued-calls must be at least 1")
    if settings.async_lease < 1:
        parser.error("--async-lease must be at least 1 second")
    if settings.max_async_queue < 1 or settings.async_concurrency < 1:
        parser.error("--max-async-queue and --async-concurrency must be at least 1")
    if settings.build_timeout <= 0:
        parser.error("--build-timeout must be positive")
    if settings.container_log_max_files < 1:
        parser.error("--container-log-max-files must be at least 1")
    if settings.access_log not in ("off", "text", "json"):
        parser.error("--access-log must be off, text or json")
    if settings.usage_interval <= 0:
        parser.error("--usage-interval must be positive")
    if settings.pool_memory_budget_mb < 0:
        parser.error("--pool-memory-budget-mb must be 0 or more")
    if settings.keep_versions < 1:
        parser.error("--keep-versions must be at least 1")
    if not IMAGE_NAMESPACE_RE.fullmatch(settings.image_namespace):
        parser.error("--image-namespace must be an image repository path, e.g. faasd or registry.local:5000/faasd")
    try:
        settings.database_url  # noqa: B018 - checked once, here
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 < settings.port < 65536:
        parser.error("--port must be between 1 and 65535")
    return settings
