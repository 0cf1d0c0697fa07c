"""Real message brokers (Redis, NATS with JetStream) for the integration suite.

`RedisServer` and `NatsServer` run a container of faasd/broker-redis:latest /
faasd/broker-nats:latest (brokers/, built by `faasd images build --brokers`,
i.e. `make images`) on a Docker bridge network of their own,
faasd-test-apps-<hex>, where the broker's network alias is `redis` / `nats`: a
function container attached to that network reaches it at `.inside_url`
(redis://redis:6379, nats://nats:4222), while faasd, on the host, uses `.url`
(the container's address on that bridge, which the host reaches). The address
is static (kept across `stop()`/`start()` and `restart()`): the network hands
out the upper half of its subnet to other containers and the broker sits below
it.

Data lives in the container's writable layer: it survives `restart()` and
`stop()`/`start()` (Redis: its append-only file; NATS: JetStream's files) and
goes with `close()`, which removes the container and the network. The network
and the container carry the label faasd.test=brokers.

Only the standard library and the Docker SDK: `RedisServer.command()` is a
small RESP client (PING, SET, XADD, XLEN ...), `NatsServer.publish()` /
`request()` speak NATS's text protocol (enough for the JetStream API,
$JS.API.*), and `NatsServer.monitor()` reads the monitoring port (8222).

Pytest fixtures `redis_server` and `nats_server` (module scope) start one and
remove it afterwards, even after a failure. A test module imports them by
their functions' names (which do not shadow the fixtures' names in the tests):

    from tests.integration.brokers import RedisServer, redis_server_fixture  # noqa: F401

    def test_x(redis_server: RedisServer) -> None: ...

Request them before a faasd fixture of the same scope, so that they are torn
down after it (a network is removed only once no container is attached).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import time
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import Any, ClassVar, Self

import docker
import docker.errors
import docker.types
import pytest

from tests.integration.harness import wait_for

LABEL = "faasd.test"
LABEL_VALUE = "brokers"
NETWORK_PREFIX = "faasd-test-apps-"


def broker_engine() -> docker.DockerClient:
    """The engine, or a loud failure (as harness.docker_client, without its runtime image check)."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise AssertionError(
            f"the broker fixtures need a running Docker engine ({exc}); run 'make test', which starts one"
        ) from exc
    return client


class BrokerServer:
    """One broker container on a Docker network; see the module's docstring."""

    image: ClassVar[str]
    alias: ClassVar[str]  # the network alias, and the URL's scheme
    port: ClassVar[int]
    host_index: ClassVar[int]  # its address: the subnet's network address + this

    def __init__(self, engine: docker.DockerClient | None = None, network: str | None = None) -> None:
        """Nothing runs until `open()`. With `network`, join that network (made by another
        BrokerServer, which removes it) instead of making one."""
        self.engine = engine or broker_engine()
        self.token = uuid.uuid4().hex[:8]
        self.network = network or f"{NETWORK_PREFIX}{self.token}"
        self.name = f"faasd-test-{self.alias}-{self.token}"
        self.ip = ""
        self.container_id = ""
        self._owns_network = network is None

    # -- addresses ----------------------------------------------------------

    @property
    def url(self) -> str:
        """What faasd (on the host) connects to: the container's address on the network."""
        return f"{self.alias}://{self.ip}:{self.port}"

    @property
    def inside_url(self) -> str:
        """What a container on the same network connects to: the broker's alias."""
        return f"{self.alias}://{self.alias}:{self.port}"

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL: LABEL_VALUE, f"{LABEL}.broker": self.alias, f"{LABEL}.token": self.token}

    # -- life cycle ---------------------------------------------------------

    def open(self, timeout: float = 60) -> Self:
        """Make the network (unless given), start the broker and wait until it answers."""
        try:
            self.engine.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise AssertionError(f"{self.image} is missing; run 'make images' (faasd images build --brokers)") from None
        try:
            if self._owns_network:
                self._create_network()
            self._create_container()
            self.wait_ready(timeout)
        except BaseException:
            self.close()  # wait_ready's failure holds the broker's log
            raise
        return self

    def close(self) -> None:
        """Remove the container and (when this server made it) the network; idempotent."""
        if self.container_id:
            with contextlib.suppress(docker.errors.NotFound):
                self.engine.api.remove_container(self.container_id, force=True, v=True)
            self.container_id = ""
        if self._owns_network:
            self._remove_network()

    def stop(self, timeout: int = 20) -> None:
        """`docker stop` (SIGTERM: the broker flushes its data, then exits)."""
        self.engine.api.stop(self.container_id, timeout=timeout)

    def kill(self) -> None:
        """`docker kill` (SIGKILL): a crash. `start()` brings it back."""
        self.engine.api.kill(self.container_id)
        wait_for(lambda: not self.running(), f"{self.name} to exit", timeout=30, every=0.1)

    def start(self, timeout: float = 60) -> None:
        """`docker start` a stopped broker and wait until it answers (same address, same data)."""
        self.engine.api.start(self.container_id)
        self.wait_ready(timeout)

    def restart(self, stop_timeout: int = 20, timeout: float = 60) -> None:
        """`docker restart`, then wait until it answers again (same address, same data)."""
        self.engine.api.restart(self.container_id, timeout=stop_timeout)
        self.wait_ready(timeout)

    def running(self) -> bool:
        state = self.engine.api.inspect_container(self.container_id)["State"]
        return bool(state.get("Running"))

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if not self.running():
                raise AssertionError(f"{self.name} is not running:\n{self.logs()}")
            return self.ready()

        try:
            wait_for(ready, f"{self.name} to answer at {self.url}", timeout=timeout, every=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def ready(self) -> bool:
        raise NotImplementedError

    def logs(self, tail: int = 50) -> str:
        if not self.container_id:
            return ""
        try:
            return str(self.engine.api.logs(self.container_id, tail=tail).decode(errors="replace"))
        except docker.errors.APIError:
            return ""

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- engine -------------------------------------------------------------

    def _create_network(self) -> None:
        """A bridge network with a subnet the engine picked (so that it clashes with nothing), made
        again with that subnet given, which allows a static address; its upper half for the others."""
        last: Exception | None = None
        for _ in range(5):
            probe = self.engine.api.create_network(self.network, driver="bridge", labels={LABEL: LABEL_VALUE})
            try:
                subnet = ipaddress.ip_network(
                    self.engine.api.inspect_network(probe["Id"])["IPAM"]["Config"][0]["Subnet"]
                )
            finally:
                self.engine.api.remove_network(probe["Id"])
            upper = list(subnet.subnets(prefixlen_diff=1))[1]
            pool = docker.types.IPAMPool(
                subnet=str(subnet), gateway=str(subnet.network_address + 1), iprange=str(upper)
            )
            try:
                self.engine.api.create_network(
                    self.network,
                    driver="bridge",
                    ipam=docker.types.IPAMConfig(pool_configs=[pool]),
                    labels={LABEL: LABEL_VALUE},
                )
                return
            except docker.errors.APIError as exc:  # another network took the subnet meanwhile
                last = exc
        raise AssertionError(f"could not make the network {self.network}: {last}")

    def _create_container(self) -> None:
        config = self.engine.api.inspect_network(self.network)["IPAM"]["Config"]
        if not config or "Subnet" not in config[0]:
            raise AssertionError(f"network {self.network} has no subnet of its own for a static address")
        self.ip = str(ipaddress.ip_network(config[0]["Subnet"]).network_address + self.host_index)
        endpoint = self.engine.api.create_endpoint_config(aliases=[self.alias], ipv4_address=self.ip)
        container = self.engine.api.create_container(
            self.image,
            name=self.name,
            labels=self.labels,
            host_config=self.engine.api.create_host_config(),
            networking_config=self.engine.api.create_networking_config({self.network: endpoint}),
        )
        self.container_id = container["Id"]
        self.engine.api.start(self.container_id)

    def _remove_network(self) -> None:
        def removed() -> bool:
            try:
                self.engine.api.remove_network(self.network)
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError as exc:
                if "active endpoints" in str(exc):  # a container of someone else's, still attached
                    return False
                raise
            return True

        try:
            wait_for(removed, f"the network {self.network} to have no container attached", timeout=30, every=0.5)
        except AssertionError as exc:
            with contextlib.suppress(docker.errors.APIError):
                attached = self.engine.api.inspect_network(self.network).get("Containers") or {}
                exc = AssertionError(f"{exc}; attached: {sorted(c['Name'] for c in attached.values())}")
            warnings.warn(f"left the network {self.network} behind: {exc}", stacklevel=2)


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


class RedisServer(BrokerServer):
    """Redis 7.0 (append-only file, fsynced every second)."""

    image = "faasd/broker-redis:latest"
    alias = "redis"
    port = 6379
    host_index = 2

    def command(self, *args: str | bytes | int | float, decode: bool = True, timeout: float = 5) -> Any:
        """One command, its reply: str (bytes when not `decode`), int, None, or a list of those."""
        return redis_command(self.ip, self.port, *args, decode=decode, timeout=timeout)

    def ready(self) -> bool:
        try:
            return bool(self.command("PING", timeout=2) == "PONG")
        except (OSError, RedisError, EOFError):  # not listening yet, or -LOADING its data
            return False


def redis_command(
    host: str, port: int, *args: str | bytes | int | float, decode: bool = True, timeout: float = 5
) -> Any:
    """One Redis command on a connection of its own (RESP2), its reply; an error reply raises RedisError."""
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as reader:
            return _resp_reply(reader, decode)


def _resp_reply(reader: Any, decode: bool) -> Any:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise EOFError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = reader.read(int(rest) + 2)[:-2]
        return data.decode(errors="replace") if decode else data
    if kind == b"*":
        return None if int(rest) < 0 else [_resp_reply(reader, decode) for _ in range(int(rest))]
    raise RedisError(f"unexpected reply {line!r}")


class NatsError(Exception):
    """An -ERR from NATS, or no reply in time."""


def nats_info(host: str, port: int, timeout: float = 5) -> dict[str, Any]:
    """The INFO a NATS server greets a client with ("jetstream": true, "version", ...)."""
    with socket.create_connection((host, port), timeout=timeout) as sock, sock.makefile("rb") as reader:
        line = reader.readline()
    if not line.startswith(b"INFO "):
        raise NatsError(f"expected INFO, got {line!r}")
    return dict(json.loads(line[5:]))


class NatsServer(BrokerServer):
    """NATS 2.9 with JetStream (file store), monitoring on port 8222."""

    image = "faasd/broker-nats:latest"
    alias = "nats"
    port = 4222
    host_index = 3
    monitor_port: ClassVar[int] = 8222

    @property
    def monitor_url(self) -> str:
        return f"http://{self.ip}:{self.monitor_port}"

    def monitor(self, path: str, timeout: float = 5) -> Any:
        """GET a monitoring endpoint ("/jsz", "/varz", "/jsz?streams=true"): its JSON."""
        with urllib.request.urlopen(self.monitor_url + path, timeout=timeout) as response:
            return json.load(response)

    def info(self, timeout: float = 5) -> dict[str, Any]:
        """The INFO the server greets a client with ("jetstream": true, "version", ...)."""
        return nats_info(self.ip, self.port, timeout)

    def publish(self, subject: str, payload: bytes = b"", timeout: float = 5) -> None:
        """Publish one message (core NATS: stored when a stream captures the subject)."""
        with self._session(timeout) as (sock, reader):
            sock.sendall(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(payload), payload))
            self._read_until_pong(reader)

    def request(self, subject: str, payload: bytes = b"", timeout: float = 5) -> bytes:
        """A request and its reply's payload, e.g. the JetStream API:
        `json.loads(nats.request("$JS.API.STREAM.INFO.orders"))`, or a JetStream publish's ack."""
        inbox = f"_INBOX.{uuid.uuid4().hex}"
        with self._session(timeout) as (sock, reader):
            sock.sendall(
                b"SUB %s 1\r\nPUB %s %s %d\r\n%s\r\n"
                % (inbox.encode(), subject.encode(), inbox.encode(), len(payload), payload)
            )
            while True:
                line = reader.readline()
                if not line:
                    raise NatsError(f"no reply to {subject} (the server closed the connection)")
                if line.startswith(b"PING"):
                    sock.sendall(b"PONG\r\n")
                elif line.startswith(b"-ERR"):
                    raise NatsError(line.decode(errors="replace").strip())
                elif line.startswith(b"MSG "):
                    data = reader.read(int(line.split()[-1]) + 2)[:-2]
                    return bytes(data)
                elif line.startswith(b"HMSG "):
                    header_size, total = (int(n) for n in line.split()[-2:])
                    data = reader.read(total + 2)[:-2]
                    return bytes(data[header_size:])

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.monitor_url + "/healthz?js-enabled-only=true", timeout=2) as response:
                if response.status != 200:
                    return False
            return bool(self.info(timeout=2).get("jetstream"))
        except (OSError, NatsError, ValueError):  # URLError and HTTPError are OSErrors
            return False

    @contextlib.contextmanager
    def _session(self, timeout: float) -> Iterator[tuple[socket.socket, Any]]:
        """A connection past INFO and CONNECT, and its reader."""
        with socket.create_connection((self.ip, self.port), timeout=timeout) as sock, sock.makefile("rb") as reader:
            line = reader.readline()
            if not line.startswith(b"INFO "):
                raise NatsError(f"expected INFO, got {line!r}")
            sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n')
            yield sock, reader

    @staticmethod
    def _read_until_pong(reader: Any) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = reader.readline()
            if not line:
                raise NatsError("the server closed the connection")
            if line.startswith(b"PONG"):
                return
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode(errors="replace").strip())
        raise NatsError("no PONG")


# Runs in faasd/runtime-python:latest on a network: connects to each alias given
# (redis:6379: a PING; nats:4222: the INFO line) and prints what it saw as JSON.
PROBE = """
import json, socket, sys
seen = {}
for alias in sys.argv[1:]:
    port = {"redis": 6379, "nats": 4222}[alias]
    try:
        with socket.create_connection((alias, port), timeout=5) as s:
            if alias == "redis":
                s.sendall(b"PING\\r\\n")
            seen[alias] = s.recv(4096).decode(errors="replace")
    except OSError as exc:
        seen[alias] = "error: %r" % exc
print(json.dumps(seen))
"""


def probe_aliases(engine: docker.DockerClient, network: str, *aliases: str) -> dict[str, str]:
    """What a short-lived container on `network` (as a function attached to it) gets from each
    broker alias ("redis": "+PONG\\r\\n"; "nats": "INFO {...}\\r\\n"; or "error: ...")."""
    container = engine.containers.run(
        "faasd/runtime-python:latest",
        entrypoint=["python3", "-c", PROBE, *aliases],
        network=network,
        labels={LABEL: LABEL_VALUE},
        detach=True,
    )
    try:
        result = container.wait(timeout=60)
        output = container.logs().decode(errors="replace")
        assert result["StatusCode"] == 0, output
        return dict(json.loads(output.strip().splitlines()[-1]))
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module", name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    """A Redis of the module's own, on a network of its own (`.network`), removed afterwards."""
    server = RedisServer()
    try:
        yield server.open()
    finally:
        server.close()


@pytest.fixture(scope="module", name="nats_server")
def nats_server_fixture() -> Iterator[NatsServer]:
    """A NATS with JetStream of the module's own, on a network of its own (`.network`), removed afterwards."""
    server = NatsServer()
    try:
        yield server.open()
    finally:
        server.close()
