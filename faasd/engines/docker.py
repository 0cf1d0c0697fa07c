"""ContainerBackend on the Docker engine, through the ``docker`` SDK.

The SDK is synchronous, so every call runs on a small thread pool, off the
event loop. Docker's and the runtime's errors become faasd's own errors here
and nowhere else.

Every container carries the labels ``faasd.managed=true``,
``faasd.owner=<state dir hash>``, ``faasd.environment=<env>`` and
``faasd.function=<name>`` (empty for a pooled, generic container: Docker
labels cannot change after creation, so a pooled container that gets
specialized is renamed ``faasd-<owner>-<function>-<n>`` instead).

Isolation (SECURITY.md): the network is a bridge with inter-container traffic
disabled (``com.docker.network.bridge.enable_icc=false``), so a container
reaches no other container on it; faasd reaches them from the host's network
namespace. The host firewall (engines/firewall.py) closes the host to them.
A function on a user's Docker network is put on it too when specialized,
before its code loads, with rules that keep other functions and the host out
(engines/isolation.py, :meth:`Isolation.join`).
Each container gets its own specialization token in its environment
(``FAASD_SPECIALIZE_TOKEN``); its runtime takes code only with that token.
Every container is locked down (uid 1000, no capabilities, read-only root,
pids/memory/CPU limits, rotated json-file logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import docker
import docker.errors
from docker.types import LogConfig, Mount

from faasd.core.entities import DEFAULT_CPU_MILLIS, DEFAULT_NETWORK, Environment
from faasd.core.errors import EngineUnavailable, ImageNotFound, UpstreamError
from faasd.core.recipes import RecipeBook, runtime_recipes
from faasd.core.settings import Settings
from faasd.core.specialize import DEPLOY_ROOT, encode_deploy_specialization, encode_specialization
from faasd.engines.firewall import FirewallError, FirewallState
from faasd.engines.images import ImageBuilder
from faasd.engines.isolation import Isolation
from faasd.engines.runtime_images import RuntimeImages
from faasd.pool.backend import Container, LogLine, Specialization, SpecializeResult

log = logging.getLogger(__name__)

RUNTIME_PORT = 8888
READY_TIMEOUT = 20.0
SPECIALIZE_TIMEOUT = 30.0
RENAME_DELAY = 0.5
# A rename waits (at most this long) until no container start is in flight: on the engine a
# rename contends with starts (its name registry and the network's service records), and a
# burst's renames made its container starts ~15 % slower.
RENAME_QUIET_WAIT = 30.0
HEALTH_TIMEOUT = 1.0
READY_POLL = 0.005
PROBE_TIMEOUT = 1.0
MAX_LOG_LINE = 16 * 1024
# Removals still running at shutdown get this long before faasd goes on without them.
CLOSE_GRACE = 15.0
# How often the network and the host firewall are checked (and repaired) while faasd runs.
ISOLATION_CHECK = 10.0
CPU_PERIOD = 100_000  # microseconds: cpu_quota = millicores * 100
TOKEN_ENV = "FAASD_SPECIALIZE_TOKEN"

T = TypeVar("T")


class DockerBackend:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._owner = settings.owner
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="docker")
        self._client: docker.DockerClient | None = None
        self.isolation = Isolation(settings)
        # The runtime and builder images, built here when missing (faasd/engines/runtime_images.py).
        book = RecipeBook(runtime_recipes(settings.image_namespace))
        self.images = RuntimeImages(book, lambda report: ImageBuilder(self._docker(), book, report=report))
        self._leftovers_removed = False
        self._serial = itertools.count(1)
        # Container starts in flight, and set whenever there is none (cosmetic engine work waits for it).
        self._starting = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._engine_session: aiohttp.ClientSession | None = None
        self._engine_base = ""
        self._tasks: set[asyncio.Future[Any]] = set()
        self._log_config = LogConfig(
            type="json-file",
            config={"max-size": settings.container_log_max_size, "max-file": str(settings.container_log_max_files)},
        )

    # -- plumbing ---------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFound(f"image not found: {exc.explanation}; pull or build it") from exc
        except docker.errors.APIError as exc:
            raise EngineUnavailable(f"Docker engine error: {exc.explanation or exc}") from exc
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(f"Docker engine unreachable: {exc}") from exc
        except OSError as exc:  # requests' connection errors are OSErrors
            raise EngineUnavailable(f"Docker engine unreachable: {exc}") from exc

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    def _docker(self) -> docker.DockerClient:
        """The client, created on first use."""
        if self._client is None:
            client = docker.from_env(timeout=30)
            client.ping()
            self._client = client
        return self._client

    def _ready(self) -> docker.DockerClient:
        """The client, with the network and the host firewall in place (engines/isolation.py)."""
        client = self._docker()
        self.isolation.ensure(client, before_firewall=self._remove_leftovers)
        return client

    def _remove_leftovers(self) -> None:
        """Once, before the firewall is rebuilt: an earlier faasd's containers go first
        (already done when faasd's start called :meth:`remove_managed`)."""
        if not self._leftovers_removed:
            for container_id in self._managed_ids():
                self._remove(container_id)
            self._leftovers_removed = True

    async def prepare(self) -> FirewallState:
        """Network and firewall now (at start), not at the first container; returns the firewall's state.

        Raises FirewallError with ``--firewall on`` when iptables cannot be used.
        """
        await self._run(self._ready)
        return self.isolation.firewall.state

    async def verify_isolation(self) -> bool:
        """Check the network and the firewall again, repairing them; True when something was repaired."""
        return await self._run(lambda: self.isolation.verify(self._docker()))

    async def watch_isolation(self, every: float = ISOLATION_CHECK) -> None:
        """Until cancelled: check the network and the firewall every ``every`` seconds, repairing them."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.verify_isolation()
            except (EngineUnavailable, FirewallError) as exc:
                log.warning("could not check the functions' isolation: %s", exc)

    def isolation_report(self) -> dict[str, Any]:
        """What keeps the functions apart, for GET /v1/status and `faas status`."""
        return self.isolation.report()

    def refuses_peer(self, peer: bytes) -> bool:
        """The data plane's guard: a function container's connection when no firewall keeps it away."""
        return self.isolation.refuses(peer)

    async def aclose(self) -> None:
        await self.images.close()
        # Removals in flight finish (a cancelled one could leave a container unsealed).
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_GRACE)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.isolation.firewall.state.active:
            try:
                left = await self.count_managed()
            except EngineUnavailable:
                left = -1
            if left == 0:
                try:
                    await self._run(self.isolation.firewall.teardown)
                except FirewallError as exc:
                    log.warning("could not remove the host firewall's rules: %s", exc)
            else:
                log.warning("keeping the host firewall's rules: faasd's containers may still exist")
        if self._engine_session is not None:
            await self._engine_session.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def engine_http(self) -> tuple[aiohttp.ClientSession, str]:
        """The session to the engine's API and its base URL (faasd/engines/docker_events.py uses it too)."""
        return self._engine_http()

    def _engine_http(self) -> tuple[aiohttp.ClientSession, str]:
        """An aiohttp session to the engine's own API (for streams the SDK would block a thread on)."""
        if self._engine_session is None:
            host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            if host.startswith("unix://"):
                # No cap on connections: every instance holds one for its log stream.
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=host[len("unix://") :], limit=0)
                self._engine_base = "http://docker"
            else:
                connector = aiohttp.TCPConnector(limit=0)
                self._engine_base = "http://" + host.split("://", 1)[-1]
            self._engine_session = aiohttp.ClientSession(connector=connector)
        return self._engine_session, self._engine_base

    # -- ContainerBackend ---------------------------------------------------

    async def start(self, env: Environment, function: str = "") -> Container:
        self._starting += 1
        self._quiet.clear()
        try:
            return await self._start(env, function)
        finally:
            self._starting -= 1
            if self._starting == 0:
                self._quiet.set()

    async def _start(self, env: Environment, function: str) -> Container:
        began = time.monotonic()
        token = secrets.token_urlsafe(32)
        image = self.images.resolve(env.image)
        create = asyncio.ensure_future(self._run(self._create, env, image, function, token))
        try:
            container_id = await asyncio.shield(create)
        except ImageNotFound:
            if self.images.book.of(env.image) is None:
                raise
            self.images.forget(env.image)  # removed by hand: build it again
            self.images.resolve(env.image)
            raise
        except asyncio.CancelledError:
            # The engine call goes on in its thread: remove what it creates.
            create.add_done_callback(self._remove_created)
            raise
        created = time.monotonic()
        try:
            address = await self._run(self._start_and_address, container_id)
            container = Container(
                id=container_id, environment=env.name, url=f"http://{address}:{RUNTIME_PORT}", token=token
            )
            started = time.monotonic()
            await self._wait_ready(container)
        except BaseException:
            # Whatever failed (engine error, timeout, cancellation), leave no container behind.
            await asyncio.shield(self._run(self._remove, container_id))
            raise
        now = time.monotonic()
        log.debug(
            "started %s for %s in %.0f ms (create %.0f, start and address %.0f, until ready %.0f)",
            container_id[:12],
            env.name,
            (now - began) * 1000,
            (created - began) * 1000,
            (started - created) * 1000,
            (now - started) * 1000,
        )
        return container

    def _remove_created(self, create: asyncio.Future[str]) -> None:
        if not create.cancelled() and create.exception() is None:
            self._track(asyncio.ensure_future(self._run(self._remove, create.result())))

    def _create(self, env: Environment, image: str, function: str, token: str) -> str:
        settings = self._settings
        client = self._ready()
        name = f"faasd-{self._owner}-{env.name}-{next(self._serial)}-{int(time.time() * 1000) % 100000}"
        # create + start rather than run(): run() would try to pull a missing image. The low-level
        # call: the SDK's containers.create() inspects the new container once more, which faasd
        # does not need (one engine round trip less per start).
        api = client.api
        host_config = api.create_host_config(
            network_mode=settings.network,
            cpu_period=CPU_PERIOD,
            cpu_quota=DEFAULT_CPU_MILLIS * CPU_PERIOD // 1000,
            log_config=self._log_config,
            mem_limit=f"{settings.container_memory_mb}m",
            memswap_limit=f"{settings.container_memory_mb}m",
            pids_limit=128,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": "rw,size=64m,mode=1777"},
            # Where a package's deployment archive is put (Docker's archive API
            # cannot write to a tmpfs); removed with the container.
            mounts=[Mount(DEPLOY_ROOT, None, type="volume")],
        )
        created = api.create_container(
            image,
            detach=True,
            name=name,
            labels={
                "faasd.managed": "true",
                "faasd.owner": self._owner,
                "faasd.environment": env.name,
                "faasd.function": function,
            },
            # The runtime removes the token from its environment before it loads any code.
            environment={"PORT": str(RUNTIME_PORT), TOKEN_ENV: token},
            user="1000:1000",
            host_config=host_config,
            networking_config=api.create_networking_config({settings.network: api.create_endpoint_config()}),
        )
        return str(created["Id"])

    def _start_and_address(self, container_id: str) -> str:
        api = self._docker().api
        api.start(container_id)
        # The address exists only once the container runs.
        networks = api.inspect_container(container_id)["NetworkSettings"]["Networks"]
        endpoint = networks.get(self._settings.network, {})
        self.isolation.check_container(str(endpoint.get("NetworkID", "")))
        address = str(endpoint.get("IPAddress", ""))
        if not address:
            raise EngineUnavailable(f"container {container_id[:12]} has no address on network {self._settings.network}")
        return address

    async def _wait_ready(self, container: Container) -> None:
        """Probe the runtime's port every few ms (a start is ~200 ms; a coarse poll would add to it),
        then ask its health check once the port takes connections.

        The probe is a bare non-blocking connect (~70 µs of faasd's CPU when refused, a third of a
        refused HTTP request's): during a burst the machine's CPU is what the engine's starts and
        the runtimes' boots wait for. Whether the container still runs is asked of the engine
        only now and then, so the poll itself stays cheap.
        """
        began = time.monotonic()
        next_engine_check = began + 0.5
        host = container.url.split("://", 1)[-1].rsplit(":", 1)[0]
        while True:
            if await _accepts(host, RUNTIME_PORT):
                try:
                    async with self._session.get(
                        container.url + "/healthz", timeout=aiohttp.ClientTimeout(total=1)
                    ) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
            now = time.monotonic()
            if now - began > READY_TIMEOUT:
                logs = await self._run(self._tail_logs, container.id)
                raise EngineUnavailable(
                    f"container of environment {container.environment} did not answer its health "
                    f"check within {READY_TIMEOUT:.0f} s; its log ends: {logs or '(empty)'}"
                )
            if now > next_engine_check:
                next_engine_check = now + 0.5
                if not await self._run(self._is_running, container.id):
                    logs = await self._run(self._tail_logs, container.id)
                    raise EngineUnavailable(
                        f"container of environment {container.environment} exited at start; "
                        f"its log ends: {logs or '(empty)'}"
                    )
            await asyncio.sleep(READY_POLL)

    def _is_running(self, container_id: str) -> bool:
        try:
            state = self._docker().api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return False
        return bool(state.get("Running"))

    def _tail_logs(self, container_id: str) -> str:
        try:
            raw = self._docker().api.logs(container_id, tail=5)
        except docker.errors.NotFound:
            return ""
        return " | ".join(raw.decode(errors="replace").strip().splitlines())[-500:]

    async def specialize(self, container: Container, spec: Specialization) -> SpecializeResult:
        limits: dict[str, Any] = {}
        if spec.memory_mb and spec.memory_mb != self._settings.container_memory_mb:
            limits["mem_limit"] = limits["memswap_limit"] = f"{spec.memory_mb}m"
        if spec.cpu_millis and spec.cpu_millis != DEFAULT_CPU_MILLIS:
            # More than the machine has is the machine: a quota past it would limit nothing.
            millis = min(spec.cpu_millis, (os.cpu_count() or 1) * 1000)
            limits["cpu_period"] = CPU_PERIOD
            limits["cpu_quota"] = millis * CPU_PERIOD // 1000
        if limits:
            await self._run(lambda: self._docker().api.update_container(container.id, **limits))
        if spec.network == "none":
            await self._cut_off(container, spec.function)
        elif spec.network != DEFAULT_NETWORK:
            await self._join(container, spec.network, spec.function)
        if spec.deploy is not None:
            await self._run(self._put_deployment, container.id, spec.deploy)
            body_bytes = encode_deploy_specialization(spec.function, spec.entrypoint, spec.env)
        else:
            body_bytes = encode_specialization(spec.filename, spec.code, spec.entrypoint, spec.env)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if container.token:
            headers["Authorization"] = f"Bearer {container.token}"
        try:
            async with self._session.post(
                container.url + "/v2/specialize",
                data=body_bytes,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=SPECIALIZE_TIMEOUT),
            ) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"the container for {spec.function} did not take the code: {exc!r}") from exc
        try:
            body = json.loads(text)
        except ValueError:
            body = {}
        if response.status == 200:
            self._rename_later(container, spec.function)
            return SpecializeResult(load_ms=float(body.get("load_ms", 0.0)))
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") or text[:500] or f"status {response.status}"
        if error.get("code") == "load_error":
            return SpecializeResult(load_ms=0.0, load_error=message)
        raise UpstreamError(f"specializing {spec.function} failed: {message}")

    def _put_deployment(self, container_id: str, deploy: Path) -> None:
        """Unpack a package's deployment archive (members under deploy/) at /faasd in the container."""
        with deploy.open("rb") as archive:
            if not self._docker().api.put_archive(container_id, DEPLOY_ROOT, archive):
                raise UpstreamError(f"the engine did not take the deployment archive for {container_id[:12]}")

    async def _cut_off(self, container: Container, function: str) -> None:
        """network 'none': nothing from this container leaves the machine, from before its code loads."""
        address = container.url.split("://", 1)[-1].rsplit(":", 1)[0]
        try:
            await self._run(self.isolation.seal, container.id, address)
        except FirewallError as exc:
            raise EngineUnavailable(
                f"function '{function}' has network 'none', which needs the host firewall: {exc}"
            ) from exc

    async def _join(self, container: Container, network: str, function: str) -> None:
        """A user's network: the container is put on it, kept apart there, from before its code loads."""
        try:
            await self._run(lambda: self.isolation.join(self._docker(), container.id, network, function))
        except FirewallError as exc:
            raise EngineUnavailable(
                f"function '{function}' is on Docker network '{network}', which needs the host firewall: {exc}"
            ) from exc

    def _rename_later(self, container: Container, function: str) -> None:
        """The name is cosmetic: give it once the first call is answered, off that call's path,
        and once no container start is in flight (bounded by RENAME_QUIET_WAIT)."""

        async def later() -> None:
            await asyncio.sleep(RENAME_DELAY)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RENAME_QUIET_WAIT):
                    await self._quiet.wait()
            await self._rename(container, function)

        self._track(asyncio.ensure_future(later()))

    async def _rename(self, container: Container, function: str) -> None:
        name = f"faasd-{self._owner}-{function}-{next(self._serial)}"
        try:
            await self._run(lambda: self._docker().api.rename(container.id, name))
        except Exception as exc:  # the name is cosmetic; never fail a call over it
            log.debug("could not rename %s: %s", container.id[:12], exc)

    async def healthy(self, container: Container) -> bool:
        try:
            async with self._session.get(
                container.url + "/healthz", timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def logs(self, container: Container) -> AsyncIterator[LogLine]:
        session, base = self._engine_http()
        url = f"{base}/containers/{container.id}/logs"
        params = {"follow": "1", "stdout": "1", "stderr": "1", "timestamps": "1"}
        partial = {1: b"", 2: b""}
        try:
            async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as response:
                if response.status != 200:
                    return
                while True:
                    try:
                        header = await response.content.readexactly(8)
                    except asyncio.IncompleteReadError:
                        break
                    kind, size = header[0], struct.unpack(">I", header[4:])[0]
                    payload = partial.get(kind, b"") + await response.content.readexactly(size)
                    *lines, rest = payload.split(b"\n")
                    if len(rest) > MAX_LOG_LINE:
                        # Printed without a newline: keep memory bounded, cut it into records.
                        lines.append(rest)
                        rest = b""
                    partial[kind] = rest
                    for raw in lines:
                        yield _log_line(raw, "stderr" if kind == 2 else "stdout")
        except (aiohttp.ClientError, asyncio.IncompleteReadError, OSError) as exc:
            log.debug("log stream of %s ended: %r", container.id[:12], exc)
        for kind, rest in partial.items():
            if rest:  # the last line, printed without a newline
                yield _log_line(rest, "stderr" if kind == 2 else "stdout")

    async def exit_reason(self, container: Container) -> str | None:
        def inspect() -> dict[str, Any] | None:
            try:
                return dict(self._docker().api.inspect_container(container.id)["State"])
            except docker.errors.NotFound:
                return None

        # A killed container takes a moment to be reported as stopped, and the
        # kernel's out-of-memory event may reach the engine after the exit
        # (SIGKILL, code 137): wait for either, a bounded while.
        for attempt in range(20):
            state = await self._run(inspect)
            if state is None:
                return "its container is gone"
            if not state.get("Running"):
                if state.get("OOMKilled"):
                    limit = await self._run(
                        lambda: self._docker().api.inspect_container(container.id)["HostConfig"]["Memory"]
                    )
                    return f"out of memory (limit {int(limit) // (1024 * 1024)} MB)"
                if state.get("ExitCode") != 137 or attempt == 19:
                    return f"its process exited with code {state.get('ExitCode')}"
            await asyncio.sleep(0.05)
        return None

    async def stop(self, container: Container) -> None:
        await self._run(self._remove, container.id)
        # Only once it is gone: a container still running keeps its seal, and its user network rules.
        for release in (self.isolation.unseal, self.isolation.leave):
            try:
                await self._run(release, container.id)
            except FirewallError as exc:
                log.warning("%s (it stays until faasd's next start sweeps it)", exc)

    def _remove(self, container_id: str) -> None:
        try:
            self._docker().api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # removal already in progress
                return
            raise

    def _managed_ids(self) -> list[str]:
        found = self._docker().api.containers(all=True, filters={"label": f"faasd.owner={self._owner}"})
        return [str(c["Id"]) for c in found]

    async def count_managed(self) -> int:
        return len(await self._run(self._managed_ids))

    async def remove_managed(self) -> int:
        ids = await self._run(self._managed_ids)
        await asyncio.gather(*(self._run(self._remove, cid) for cid in ids))
        self._leftovers_removed = True  # the firewall set-up need not look again
        if ids:
            log.info("removed %d container(s) labelled faasd.owner=%s", len(ids), self._owner)
        return len(ids)


async def _accepts(host: str, port: int) -> bool:
    """Whether ``host:port`` takes a TCP connection now (closed at once), within PROBE_TIMEOUT."""
    loop = asyncio.get_running_loop()
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await loop.sock_connect(sock, (host, port))
    except (OSError, TimeoutError):
        return False
    finally:
        sock.close()
    return True


def _log_line(raw: bytes, stream: str) -> LogLine:
    """Docker's ``<RFC 3339 nano timestamp> <text>`` as a LogLine with millisecond time."""
    stamp, _, text = raw.decode("utf-8", errors="replace").partition(" ")
    if len(stamp) > 24 and stamp.endswith("Z"):
        stamp = stamp[:23] + "Z"
    return LogLine(stamp, stream, text.rstrip("\r"))
