"""The admin application (aiohttp): wiring, error middleware and start/stop order.

Start: HTTP client session -> Docker backend -> SQLite store -> pool (removes
containers an earlier faasd left) -> controller (loads the registry, fills the
pools) -> reaper. Stop runs the other way round, after the data plane
(faasd/dataplane) has stopped accepting and let calls in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from faasd import __version__
from faasd.builds.builder import Builder
from faasd.builds.store import PackageStore
from faasd.cluster.availability import is_unavailable, unavailable_error
from faasd.cluster.heartbeat import Heartbeat, NodeIdTaken
from faasd.cluster.readiness import Readiness
from faasd.cluster.service import Cluster, docker_ping, open_journal, start_cluster
from faasd.control.api import AdminApi
from faasd.control.auth import load_or_create_token, token_middleware
from faasd.control.canary import Canaries, start_canaries
from faasd.control.controller import Controller
from faasd.control.events_api import EventsApi
from faasd.control.function_logs import ClusterLogs
from faasd.control.nodes_api import NodesApi
from faasd.control.observe_api import start_observability
from faasd.control.ui import add_ui_routes
from faasd.control.uploads import clear_upload_dir
from faasd.core.entities import Function
from faasd.core.errors import EngineUnavailable, FaasdError, NotFound, RegistryUnavailable
from faasd.core.settings import Settings
from faasd.engines.docker import DockerBackend
from faasd.engines.docker_builds import DockerBuilds
from faasd.engines.docker_events import DockerEvents
from faasd.engines.firewall import FirewallError
from faasd.events.service import Events, start_events
from faasd.observe.service import Observer
from faasd.pool.backend import ContainerBackend
from faasd.pool.logs import FunctionLogs
from faasd.pool.manager import PoolManager
from faasd.pool.reaper import run_reaper, tick_for
from faasd.store.canaries import CanaryStore
from faasd.store.codestore import CodeStore
from faasd.store.labels import LabelStore
from faasd.store.nodes import NodeStore
from faasd.store.registry import Store
from faasd.store.sqlite_blobs import SqliteBlobs
from faasd.store.usage import UsageStore

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: FaasdError) -> web.Response:
    return web.json_response(error.to_json(), status=error.status, headers=error.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except FaasdError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return web.json_response({"error": {"code": code, "message": exc.text or exc.reason}}, status=exc.status)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        if is_unavailable(exc):  # the registry's database is down: say so, as a 503 (faasd/cluster/availability.py)
            unavailable = unavailable_error(exc)
            log.warning("%s %s: %s", request.method, request.path, unavailable.message)
            return error_response(unavailable)
        log.exception("unexpected error on %s %s", request.method, request.path)
        return web.json_response(
            {"error": {"code": "internal", "message": "internal error; see faasd's log"}}, status=500
        )


@dataclass
class Services:
    settings: Settings
    session: aiohttp.ClientSession
    backend: ContainerBackend
    store: Store
    pool: PoolManager
    controller: Controller
    reaper: asyncio.Task[None]
    logs: FunctionLogs
    watcher: asyncio.Task[None] | None = None  # re-checks the network and the host firewall
    builder: Builder | None = None
    events: Events | None = None
    observer: Observer | None = None
    canaries: Canaries | None = None
    cluster: Cluster | None = None  # the follower of the other nodes' changes
    heartbeat: Heartbeat | None = None  # this node's row in nodes, and the list of the others
    file_blobs: SqliteBlobs | None = None  # the blobs in a SQLite file shared by nodes on one machine

    async def close(self) -> None:
        if self.heartbeat is not None:
            await self.heartbeat.close()
        if self.cluster is not None:
            await self.cluster.close()  # first: nothing applies others' changes to what stops below
        if self.canaries is not None:
            await self.canaries.close()  # no step after this; a running canary resumes at the next start
        if self.events is not None:
            await self.events.close()  # deliveries in flight are cut off: they run again at the next start
        if self.builder is not None:
            await self.builder.close()  # builds in progress stop; their containers go
        for task in (self.reaper, self.watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await self.pool.shutdown()
        finally:
            if self.observer is not None:
                await self.observer.close()  # after the pool: the instances' last seconds are metered too
        await self.store.close()
        if self.file_blobs is not None:
            self.file_blobs.close()
        if isinstance(self.backend, DockerBackend):
            await self.backend.aclose()
        await self.session.close()
        log.info("faasd stopped; its containers are removed")


async def start_services(settings: Settings, backend: ContainerBackend | None = None) -> Services:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # Keep-alive to the runtimes shorter than Node's 5 s server timeout, so a
    # pooled connection is never one the container is about to close.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=2.0),
        auto_decompress=False,
    )
    if backend is None:
        backend = DockerBackend(settings, session)
    try:
        store = await Store.open(settings.database_url)
    except RegistryUnavailable as exc:
        await session.close()
        raise SystemExit(f"faasd: {exc.message}") from None
    heartbeat = Heartbeat(NodeStore(store.engine), settings.owner, settings.node_url, __version__)
    try:
        await heartbeat.claim()  # before this node takes anything under its id
    except NodeIdTaken as exc:
        await store.close()
        await session.close()
        raise SystemExit(f"faasd: {exc}") from None
    blobs = store.blobs  # on PostgreSQL: blobs in the database too
    file_blobs = None
    if blobs is None and settings.database:
        # A SQLite file other nodes on this machine share (not the state dir's own): the blobs go in it too.
        blobs = file_blobs = SqliteBlobs(settings.database_url.sqlite_path)
    codes = CodeStore(settings.code_dir, blobs)
    logs = FunctionLogs(settings.state_dir / "logs")
    packages = PackageStore(settings.state_dir / "packages", blobs)
    await asyncio.to_thread(clear_upload_dir, settings.upload_dir)
    controller: Controller | None = None

    def deploy_for(fn: Function) -> Path:
        assert controller is not None
        return controller.deploy_for(fn)

    pool = PoolManager(
        backend,
        lambda fn: codes.get(fn.code_sha256),
        deploy_for,
        idle_timeout=settings.idle_timeout,
        start_concurrency=settings.start_concurrency,
        logs=logs,
        max_queued_calls=settings.max_queued_calls,
        pool_memory_budget_mb=settings.pool_memory_budget_mb,
    )
    if isinstance(backend, DockerBackend):
        # Missing runtime images are built in the background; the pools fill when they are ready
        # (also when the engine answers only later: the images are then checked at their first use).
        backend.images.on_ready(pool.fill_all)
    try:
        await backend.remove_managed()
        if isinstance(backend, DockerBackend):
            # The network and the host firewall before the first container starts.
            await backend.prepare()
            await backend.images.start()
    except EngineUnavailable as exc:
        log.error("%s; functions cannot run until the engine answers (faasd keeps trying)", exc)
    except FirewallError as exc:
        await session.close()
        raise SystemExit(f"faasd: --firewall on, but the host firewall cannot be set up: {exc}") from None
    builder: Builder | None = None
    if isinstance(backend, DockerBackend):
        builder = Builder(
            DockerBuilds(backend),
            packages,
            lambda name: controller.catalog.environments.get(name) if controller is not None else None,
            workdir=settings.state_dir / "builds",
            timeout=settings.build_timeout,
        )
    controller = Controller(
        store,
        codes,
        pool,
        default_poolsize=settings.default_poolsize,
        max_code_bytes=settings.max_code_bytes,
        packages=packages,
        builds=builder,
        keep_versions=settings.keep_versions,
    )
    if builder is not None:
        builder.bind(controller)
    # Before the registry is loaded: every write from now on leaves a change row, and the follower
    # starts after the newest row there is now (a change written while loading is applied again).
    journal, applied = await open_journal(store, settings.owner)
    await controller.start(
        settings.stock_environments, settings.state_dir / "initialized", builders=settings.stock_builders
    )
    loop = asyncio.get_running_loop()
    reaper = loop.create_task(run_reaper(pool, tick_for(settings.idle_timeout)))
    watcher = loop.create_task(backend.watch_isolation()) if isinstance(backend, DockerBackend) else None
    source = DockerEvents(backend) if isinstance(backend, DockerBackend) else None
    events = await start_events(settings, store, controller, pool, session, source)

    def counts(function: str) -> tuple[int, int]:
        """The function's calls and 5xx answers since faasd started, for the canaries' intervals."""
        calls = pool.calls.functions.get(function)
        return (calls.calls, calls.errors) if calls is not None else (0, 0)

    canaries = await start_canaries(controller, CanaryStore(store.engine), counts)
    triggers = events.triggers if events is not None else None
    cluster = start_cluster(store, controller, journal, applied, triggers=triggers, canaries=canaries.control)
    controller.catch_up_with(cluster.follower.catch_up)  # a write applies the other nodes' changes first
    await heartbeat.start()
    return Services(
        settings,
        session,
        backend,
        store,
        pool,
        controller,
        reaper,
        logs,
        watcher,
        builder,
        events,
        canaries=canaries,
        cluster=cluster,
        heartbeat=heartbeat,
        file_blobs=file_blobs,
    )


async def create_app(settings: Settings, backend: ContainerBackend | None = None) -> web.Application:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if settings.token:
        token = settings.token
    else:
        token = load_or_create_token(settings.state_dir)
        log.info("admin API token: %s (send it as 'Authorization: Bearer <token>')", settings.state_dir / "token")
    services = await start_services(settings, backend)
    app = web.Application(
        middlewares=[error_middleware, token_middleware(token, public_metrics=settings.metrics_public)],
        client_max_size=2 * settings.max_code_bytes + 65536,
    )
    isolation = services.backend.isolation_report if isinstance(services.backend, DockerBackend) else None
    labels = LabelStore(services.store.engine)
    if services.cluster is not None:
        services.cluster.applier.labels = labels  # before the load: a change from now on reloads them
    await labels.load()
    api = AdminApi(
        services.controller,
        services.pool,
        services.logs,
        isolation,
        upload_dir=settings.upload_dir,
        labels=labels,
        node=settings.owner,
    )
    if services.heartbeat is not None:  # the logs of every node, and the list of them (docs/cluster.md)
        api.cluster_logs = ClusterLogs(api.local_logs, services.heartbeat, services.session, token)
        NodesApi(services.heartbeat).add_routes(app)
    if services.events is not None:
        ev = services.events
        events_api = EventsApi(services.controller, ev.queue, ev.dispatcher, ev.triggers, ev.timers, ev.watcher, ev.mq)
        events_api.add_routes(app, api)
        api.status_sections["events"] = events_api.status
    if services.canaries is not None:
        api.resources = (*api.resources, services.canaries.control.resource())
        api.status_sections["canaries"] = services.canaries.control.status
    if isinstance(services.backend, DockerBackend):
        images = services.backend.images

        async def image_states() -> dict[str, str]:
            return images.report()

        api.status_sections["images"] = image_states

    observer, observe_api = start_observability(
        services.controller,
        services.pool,
        UsageStore(services.store.engine),
        services.events,
        services.builder,
        interval=settings.usage_interval,
    )
    services.observer = observer

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    backend_ = services.backend
    readiness = Readiness(
        services.store.engine,
        docker_ping(backend_.engine_http) if isinstance(backend_, DockerBackend) else None,
        services.pool,
        settings.stock_environments,
        follower=services.cluster.follower if services.cluster is not None else None,
    )

    readiness.start()

    async def readyz(_request: web.Request) -> web.Response:
        ready, body = await readiness.check()
        return web.json_response(body, status=200 if ready else 503)

    async def unknown_admin_path(request: web.Request) -> web.Response:
        raise NotFound(f"no admin API endpoint {request.method} {request.path}")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    observe_api.add_routes(app)  # /metrics, /v1/stats, /v1/usage, /v1/functions/{name}/instances
    add_ui_routes(app)  # the dashboard's page and assets (public: its data calls carry the token)
    api.add_routes(app)
    app.router.add_route("*", "/v1/{tail:.*}", unknown_admin_path)
    app.router.add_route("*", "/v1", unknown_admin_path)
    # Function calls never reach this app: faasd/dataplane serves them and
    # forwards only /v1, /healthz, /readyz and /metrics here, over a private unix socket.

    async def close(_app: web.Application) -> None:
        await readiness.close()
        await services.close()

    app.on_cleanup.append(close)
    app["services"] = services
    return app
