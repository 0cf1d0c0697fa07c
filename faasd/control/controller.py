"""The controller: every change to the registry goes through here.

A write is validated, stored in SQLite (and the code in the code store, a
package's archives in the package store), then applied to the in-memory
Catalog in place (faasd/control/catalog.py: in time that does not grow with
the registry, all between two awaits, so the data plane, reading it without
a lock on the same thread, never sees half a write), and the pool is told.
Writes are serialized by one lock, so SQLite and the catalog never disagree.
Taking it applies first every change another node sharing the registry made
(:class:`WriteLock`): a write is checked against the registry as it is, not
as this node last followed it.
Packages and what the build queue reports are in faasd/control/packages.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from faasd.builds.store import PackageStore
from faasd.cluster.changes import APPLYING
from faasd.cluster.journal import ChangeKind, recording
from faasd.control.catalog import Catalog
from faasd.control.packages import BuildQueue, PackageControl, builder_of
from faasd.control.replica import ReplicaControl
from faasd.control.versions import VersionControl
from faasd.core import validation as check
from faasd.core.entities import DEFAULT_TIMEOUT, EXECUTORS, Environment, Function, HttpTrigger, Package
from faasd.core.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from faasd.core.events import MAX_RETRIES, MAX_RETRY_MAX_AGE
from faasd.core.specialize import MAX_SPECIALIZE_BYTES, encode_deploy_specialization, encode_specialization
from faasd.core.versions import DEFAULT_KEEP_VERSIONS
from faasd.pool.manager import PoolManager
from faasd.store.codestore import CodeStore
from faasd.store.registry import Store, utcnow

log = logging.getLogger(__name__)

EXTENSIONS = {"node": ".js", "python": ".py", "ruby": ".rb"}
# The images that build the stock environments' packages (runtimes/README.md, "Builders").
STOCK_BUILDERS = {"nodejs": "faasd/builder-nodejs:latest", "python": "faasd/builder-python:latest"}
ENVIRONMENT_FIELDS = {"name", "image", "builder", "poolsize"}
FUNCTION_FIELDS = {
    "name",
    "environment",
    "code",
    "package",
    "filename",
    "entrypoint",
    "timeout",
    "env",
    "secrets",
    "memory_mb",
    "concurrency",
    "max_instances",
    "min_instances",
    "idle_timeout",
    "queue_timeout",
    "cpu_millis",
    "network",
    "retries",
    "retry_max_age",
    "executor",
}
# The fields that make up the specialization request a runtime is sent.
SPECIALIZATION_FIELDS = {"code", "filename", "entrypoint", "env", "secrets"}


class Dependents(Protocol):
    def users_of(self, function: str) -> list[str]:
        """What refers to ``function``, as users name it ("timer 'nightly'")."""
        ...

    def forget_function(self, function: str) -> None:
        """``function`` was deleted, with what referred to it."""
        ...


ROUTE_FIELDS = {"name", "method", "url", "function", "functions", "async"}


def _async_flag(body: dict[str, Any], default: bool) -> bool:
    value = body.get("async", default)
    if not isinstance(value, bool):
        raise BadRequest("async must be true or false")
    return value


def _route_functions(body: dict[str, Any]) -> tuple[str, tuple[tuple[str, int], ...]]:
    """A route's ``function``, or its ``functions`` with weights: (the heaviest, the pairs; none for one)."""
    if "functions" not in body:
        return check.name(body.get("function"), "function"), ()
    if "function" in body:
        raise BadRequest("give either function (one) or functions (with weights), not both")
    pairs = check.weights(body["functions"])
    return check.heaviest(pairs), pairs if len(pairs) > 1 else ()


class WriteLock(asyncio.Lock):
    """The registry's write lock: one writer at a time, re-entered by the task that holds it.

    Whoever takes it (``async with``) applies first every change row other nodes wrote that this node has
    not applied yet (:attr:`catch_up`, the follower's pass: one query on the primary key when there is
    none), so what the writer checks (is the name free, does the function exist, does anything use it)
    and the copy it changes are the registry's as of now, not as this node last followed it. The
    follower's applies take it too, without catching up again (they run within a catch-up: APPLYING,
    faasd/cluster/changes.py). No follower (before it starts; a test's lone controller): nothing to catch up.
    """

    def __init__(self) -> None:
        super().__init__()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0
        self.catch_up: Callable[[], Awaitable[object]] | None = None

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            self._depth += 1
            return
        await self.acquire()
        self._owner, self._depth = task, 1
        if self.catch_up is None or APPLYING.get():
            return
        try:
            await self.catch_up()
        except BaseException:
            self._let_go()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._depth -= 1
        if not self._depth:
            self._let_go()

    def _let_go(self) -> None:
        self._owner, self._depth = None, 0
        self.release()


def _get(mapping: Any, kind: str, name: str) -> Any:
    try:
        return mapping[name]
    except KeyError:
        raise NotFound(f"{kind} '{name}' not found") from None


class Controller(PackageControl, VersionControl, ReplicaControl):
    def __init__(
        self,
        store: Store,
        codes: CodeStore,
        pool: PoolManager,
        *,
        default_poolsize: int,
        max_code_bytes: int,
        max_specialize_bytes: int = MAX_SPECIALIZE_BYTES,
        packages: PackageStore | None = None,
        builds: BuildQueue | None = None,
        keep_versions: int = DEFAULT_KEEP_VERSIONS,
    ) -> None:
        """``builds`` None: packages cannot be built here (one with a source fails at once, "no builder");
        ``keep_versions``: how many versions of each function are kept (faasd/control/versions.py)."""
        self._store = store
        self._codes = codes
        self._pool = pool
        self._package_store = packages
        self._builds = builds
        self._default_poolsize = default_poolsize
        self._max_code_bytes = max_code_bytes
        self._max_specialize_bytes = max_specialize_bytes
        self._keep_versions = keep_versions
        self._versions: dict[str, dict[int, str]] = {}
        self._version_blobs: Counter[str] = Counter()
        self._write_lock = WriteLock()
        self._lock: asyncio.Lock = self._write_lock  # as the mixins know it
        self.catalog = Catalog()
        # Who else holds references to functions (timers, watches: faasd/events/triggers.py).
        self.dependents: list[Dependents] = []

    @property
    def lock(self) -> WriteLock:
        """The registry's write lock, for the writers of other parts that refer to functions (taking it
        applies the other nodes' pending changes first: :class:`WriteLock`)."""
        return self._write_lock

    def catch_up_with(self, catch_up: Callable[[], Awaitable[object]]) -> None:
        """Every write applies the other nodes' pending changes first with ``catch_up`` (the follower's
        ``catch_up``, faasd/cluster/changes.py), under the lock."""
        self._write_lock.catch_up = catch_up

    async def start(self, stock: dict[str, str], marker: Path, builders: Mapping[str, str] = STOCK_BUILDERS) -> None:
        """Load the registry; on the very first start, register the stock environments.

        A stock environment registered here gets its builder from ``builders``
        (those of an install from before packages got theirs from migration
        0004). Packages whose build a stop interrupted are built again
        (faasd/control/packages.py).
        """
        began = time.perf_counter()
        contents = await self._store.load()
        self.catalog = Catalog(contents.environments, contents.functions, contents.triggers, contents.packages)
        if not marker.exists():  # noqa: ASYNC240 - once, at start
            for name, image in stock.items():
                if name not in self.catalog.environments:
                    try:
                        await self.create_environment({"name": name, "image": image, "builder": builders.get(name, "")})
                    except Conflict:  # a node sharing the registry, started at the same time, registered it
                        continue  # its change row brings it here (faasd/cluster/changes.py)
                    log.info("registered stock environment %s (%s)", name, image)
            await asyncio.to_thread(marker.write_text, "stock environments registered\n")
        await self._start_versions()
        kept = {f.code_sha256 for f in self.catalog.functions.values()} | self._version_codes()
        await asyncio.to_thread(self._codes.collect, kept)
        await self._start_packages()
        for env in self.catalog.environments.values():
            self._pool.set_environment(env)
        for fn in self.catalog.functions.values():
            self._pool.function_changed(fn)
        log.info(
            "registry loaded: %d functions, %d routes, %d environments, %d packages in %.0f ms",
            len(self.catalog.functions),
            len(self.catalog.triggers),
            len(self.catalog.environments),
            len(self.catalog.packages),
            (time.perf_counter() - began) * 1000,
        )

    # -- environments -------------------------------------------------------

    async def create_environment(self, body: dict[str, Any]) -> Environment:
        check.known_fields(body, ENVIRONMENT_FIELDS)
        name = check.name(body.get("name"))
        image = check.image(body.get("image"))
        builder = builder_of(body.get("builder", ""))
        poolsize = check.integer(body.get("poolsize", self._default_poolsize), "poolsize", 0, check.MAX_POOLSIZE)
        async with self._lock:
            if name in self.catalog.environments:
                raise Conflict(f"environment '{name}' exists already")
            now = utcnow()
            env = Environment(name, image, poolsize, now, now, builder=builder)
            with recording(ChangeKind.environment, name):
                await self._store.add_environment(env)
            self.catalog.put_environment(env)
        self._pool.set_environment(env)
        return env

    async def update_environment(self, name: str, body: dict[str, Any]) -> Environment:
        check.known_fields(body, ENVIRONMENT_FIELDS)
        async with self._lock:
            env: Environment = _get(self.catalog.environments, "environment", name)
            if body.get("name", name) != name:
                raise BadRequest("name cannot be changed; create a new environment instead")
            changed = dataclasses.replace(
                env,
                image=check.image(body["image"]) if "image" in body else env.image,
                builder=builder_of(body["builder"]) if "builder" in body else env.builder,
                poolsize=(
                    check.integer(body["poolsize"], "poolsize", 0, check.MAX_POOLSIZE)
                    if "poolsize" in body
                    else env.poolsize
                ),
                updated_at=utcnow(),
            )
            with recording(ChangeKind.environment, name):
                await self._store.update_environment(changed)
            self.catalog.put_environment(changed)
        self._pool.set_environment(changed)
        return changed

    async def delete_environment(self, name: str) -> None:
        async with self._lock:
            _get(self.catalog.environments, "environment", name)
            users = self.catalog.functions_in(name)
            if users:
                raise Conflict(f"environment '{name}' is used by function(s) {', '.join(users)}; delete them first")
            packages = sorted(p.name for p in self.catalog.packages.values() if p.environment == name)
            if packages:
                raise Conflict(f"environment '{name}' is used by package(s) {', '.join(packages)}; delete them first")
            with recording(ChangeKind.environment, name):
                await self._store.delete_environment(name)
            self.catalog.drop_environment(name)
        self._pool.remove_environment(name)

    # -- functions ----------------------------------------------------------

    def _code(self, body: dict[str, Any]) -> bytes:
        code = body.get("code")
        if not isinstance(code, str):
            raise BadRequest("code is required and must be the function's source text")
        try:
            data = code.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("code must be Unicode text (it has a lone surrogate)") from None
        if len(data) > self._max_code_bytes:
            raise PayloadTooLarge(f"code is {len(data)} bytes; the limit is {self._max_code_bytes}")
        if not data.strip():
            raise BadRequest("code is empty")
        return data

    def _environment_of(self, body: dict[str, Any]) -> str:
        env = check.name(body.get("environment"), "environment")
        if env not in self.catalog.environments:
            raise BadRequest(f"environment '{env}' does not exist (see GET /v1/environments)")
        return env

    def _settings_of(self, body: dict[str, Any], current: Function | None) -> dict[str, Any]:
        """The validated optional fields of a function create or update."""
        fields: dict[str, Any] = {}
        if "entrypoint" in body:
            fields["entrypoint"] = check.entrypoint(body["entrypoint"])
        if "filename" in body:
            fields["filename"] = check.filename(body["filename"])
        if "timeout" in body:
            fields["timeout"] = check.integer(body["timeout"], "timeout", 1, check.MAX_TIMEOUT)
        if "env" in body:
            fields["env"] = check.variables(body["env"], "env")
        if "secrets" in body:
            fields["secrets"] = check.variables(body["secrets"], "secrets")
        if "memory_mb" in body:
            fields["memory_mb"] = check.integer(body["memory_mb"], "memory_mb", 32, 8192)
        if "cpu_millis" in body:
            fields["cpu_millis"] = check.integer(
                body["cpu_millis"], "cpu_millis", check.MIN_CPU_MILLIS, check.MAX_CPU_MILLIS
            )
        if "network" in body:
            fields["network"] = check.network(body["network"])
        if "concurrency" in body:
            fields["concurrency"] = check.integer(body["concurrency"], "concurrency", 1, 1000)
        if "max_instances" in body:
            fields["max_instances"] = check.integer(body["max_instances"], "max_instances", 1, 100)
        if "min_instances" in body:
            fields["min_instances"] = check.integer(body["min_instances"], "min_instances", 0, 100)
        if "queue_timeout" in body:
            fields["queue_timeout"] = check.integer(body["queue_timeout"], "queue_timeout", 0, check.MAX_TIMEOUT)
        if "idle_timeout" in body:
            idle = body["idle_timeout"]
            fields["idle_timeout"] = None if idle is None else check.integer(idle, "idle_timeout", 1, 86400)
        if "retries" in body:
            fields["retries"] = check.integer(body["retries"], "retries", 0, MAX_RETRIES)
        if "retry_max_age" in body:
            fields["retry_max_age"] = check.integer(body["retry_max_age"], "retry_max_age", 1, MAX_RETRY_MAX_AGE)
        if "executor" in body:
            fields["executor"] = check.choice(body["executor"], "executor", EXECUTORS)
        low = fields.get("min_instances", current.min_instances if current else 0)
        high = fields.get("max_instances", current.max_instances if current else Function.max_instances)
        if low > high:
            raise BadRequest(f"min_instances ({low}) cannot be above max_instances ({high})")
        return fields

    async def _check_specialization(self, fn: Function, code: bytes | None) -> None:
        """Refuse a function whose specialization request the runtimes would refuse.

        Measured on the very bytes the engine sends (faasd/core/specialize.py):
        code, file name, entrypoint, variables and secrets together (a
        package's function sends no code: its files are in the container).
        """
        if fn.package:
            body = encode_deploy_specialization(fn.package, fn.entrypoint, fn.runtime_env())
        else:
            assert code is not None
            body = await asyncio.to_thread(encode_specialization, fn.filename, code, fn.entrypoint, fn.runtime_env())
        if len(body) > self._max_specialize_bytes:
            raise PayloadTooLarge(
                f"the function's code, variables and secrets come to {len(body):,} bytes as sent to the runtime; "
                f"the limit is {self._max_specialize_bytes:,}"
            )

    def _package_for(self, body: dict[str, Any]) -> Package:
        """The package a function create or update names; its environment must be the function's."""
        if "code" in body:
            raise BadRequest("give either code (one source file) or package, not both")
        if "filename" in body:
            raise BadRequest(
                "filename is for a function of one source file; a package's function names its handler "
                "with entrypoint (e.g. main.main)"
            )
        name = check.name(body.get("package"), "package")
        package: Package | None = self.catalog.packages.get(name)
        if package is None:
            raise BadRequest(f"package '{name}' does not exist (see GET /v1/packages)")
        if "environment" in body and self._environment_of(body) != package.environment:
            raise BadRequest(
                f"environment '{body['environment']}' is not package '{name}''s environment '{package.environment}'"
            )
        return package

    def _default_filename(self, name: str, env: str) -> str:
        return name + next((ext for key, ext in EXTENSIONS.items() if key in env), "")

    async def create_function(self, body: dict[str, Any]) -> Function:
        check.known_fields(body, FUNCTION_FIELDS)
        name = check.name(body.get("name"))
        packaged = bool(body.get("package"))
        data = None if packaged else self._code(body)
        fields = self._settings_of(body, None)
        async with self._lock:
            if name in self.catalog.functions:
                raise Conflict(f"function '{name}' exists already")
            if packaged:
                package = self._package_for(body)
                env, fields["package"], fields["filename"] = package.environment, package.name, ""
            else:
                env = self._environment_of(body)
            now = utcnow()
            fn = Function(
                **{
                    "filename": self._default_filename(name, env),
                    "entrypoint": "",
                    "timeout": DEFAULT_TIMEOUT,
                    **fields,
                },
                name=name,
                environment=env,
                code_sha256="",
                code_size=len(data) if data is not None else 0,
                revision=1,
                created_at=now,
                updated_at=now,
            )
            await self._check_specialization(fn, data)
            if data is not None:
                fn = dataclasses.replace(fn, code_sha256=await asyncio.to_thread(self._codes.put, data))
            version, drop = self._next_version(None, fn)
            with recording(ChangeKind.function, name):
                await self._store.add_function(fn, version)
            self.catalog.put_function(fn)
            self._recorded(name, version, drop)
        self._pool.function_changed(fn)
        return fn

    async def update_function(self, name: str, body: dict[str, Any]) -> Function:
        """Change a function; ``package`` makes it run a package, ``code`` a single source file again."""
        check.known_fields(body, FUNCTION_FIELDS)
        async with self._lock:
            fn: Function = _get(self.catalog.functions, "function", name)
            if body.get("name", name) != name:
                raise BadRequest("name cannot be changed; create a new function instead")
            changes = self._settings_of(body, fn)
            packaged = bool(body["package"]) if "package" in body else bool(fn.package) and "code" not in body
            data = None
            if packaged:
                if "package" in body:
                    package = self._package_for(body)
                    changes.update(package=package.name, environment=package.environment)
                    changes.update(filename="", code_sha256="", code_size=0)
                elif "filename" in body:
                    self._package_for(body)  # says why filename does not fit
                elif "environment" in body and self._environment_of(body) != fn.environment:
                    raise BadRequest(
                        f"function '{name}' runs package '{fn.package}' of environment '{fn.environment}'; "
                        "give another package to move it"
                    )
            else:
                if fn.package and "code" not in body:
                    raise BadRequest(f"function '{name}' runs package '{fn.package}'; give code to make it one file")
                data = self._code(body) if "code" in body else None
                if "environment" in body:
                    changes["environment"] = self._environment_of(body)
                if fn.package:
                    changes["package"] = ""
                    if "filename" not in changes:
                        env = changes.get("environment", fn.environment)
                        changes["filename"] = self._default_filename(name, env)
            changed = dataclasses.replace(fn, **changes, revision=fn.revision + 1, updated_at=utcnow())
            if (SPECIALIZATION_FIELDS | {"package"}) & body.keys():
                # Also when only variables or secrets change: they travel with the code.
                code = data
                if code is None and not changed.package:
                    code = await asyncio.to_thread(self._codes.get, fn.code_sha256)
                await self._check_specialization(changed, code)
            if data is not None:
                sha256 = await asyncio.to_thread(self._codes.put, data)
                changed = dataclasses.replace(changed, code_sha256=sha256, code_size=len(data))
            version, drop = self._next_version(fn, changed)  # none when nothing changed
            with recording(ChangeKind.function, name):
                await self._store.update_function(changed, version, drop)
            self.catalog.put_function(changed)
            self._recorded(name, version, drop)
            self._forget_code(fn.code_sha256)
        # Calls from now on get the new revision; old instances finish and go.
        self._pool.function_changed(changed)
        return changed

    async def delete_function(self, name: str, force: bool = False) -> list[str]:
        """Delete the function; with ``force`` what uses it goes too (as Fission deletes a function
        whatever points at it): the routes, timers, watches, message-queue triggers and canaries
        that went, as "route 'r'" ... (empty when nothing used it)."""
        async with self._lock:
            fn: Function = _get(self.catalog.functions, "function", name)
            routes = self.catalog.routes_to(name)
            if routes and not force:
                listed = ", ".join(f"{t.method} {t.url}" for t in routes)
                raise Conflict(f"function '{name}' is used by route(s) {listed}; delete them first or pass force=true")
            others = [user for d in self.dependents for user in d.users_of(name)]
            if others and not force:
                raise Conflict(
                    f"function '{name}' is used by {', '.join(others)}; delete them first or pass force=true"
                )
            # The routes, timers, watches, MQ triggers and canaries go in the same transaction; the
            # other nodes drop them with the function.
            with recording(ChangeKind.function, name):
                await self._store.delete_function(name, [t.name for t in routes], force=force)
            self.catalog.drop_function(name)  # with its routes
            self._forget_code(fn.code_sha256)
            self._versions_gone({name})
        self._functions_gone(name)
        return [f"route '{t.name}'" for t in routes] + others

    def _functions_gone(self, name: str) -> None:
        """After a delete: the pool and the dependents let go of the function."""
        self._pool.remove_function(name)
        self._pool.forget_logs(name)
        for dependent in self.dependents:
            dependent.forget_function(name)

    def function_code(self, name: str) -> bytes:
        fn: Function = _get(self.catalog.functions, "function", name)
        if fn.package:
            raise NotFound(
                f"function '{name}' runs package '{fn.package}' and has no single source file; "
                f"its files are the package's deployment archive (GET /v1/packages/{fn.package}/deploy)"
            )
        return self._codes.get(fn.code_sha256)

    # -- HTTP triggers ------------------------------------------------------

    def _check_route(self, method: str, url: str, functions: tuple[str, ...], exclude: str = "") -> None:
        for function in functions:
            if function not in self.catalog.functions:
                raise BadRequest(f"function '{function}' does not exist")
        taken = self.catalog.route_keys.get((method, check.url_key(url)))
        if taken is not None and taken != exclude:
            other = self.catalog.triggers[taken]
            raise Conflict(f"route {method} {url} exists already (route '{other.name}' -> function '{other.function}')")

    async def create_trigger(self, body: dict[str, Any]) -> HttpTrigger:
        check.known_fields(body, ROUTE_FIELDS)
        method = check.method(body.get("method", "GET"))
        url = check.url_pattern(body.get("url"))
        function, functions = _route_functions(body)
        async with self._lock:
            name = body.get("name") or f"{function[:50]}-{secrets.token_hex(4)}"
            name = check.name(name)
            if name in self.catalog.triggers:
                raise Conflict(f"route '{name}' exists already")
            now = utcnow()
            trigger = HttpTrigger(
                name, method, url, function, now, now, is_async=_async_flag(body, False), functions=functions
            )
            self._check_route(method, url, trigger.names)
            with recording(ChangeKind.route, name):
                await self._store.add_trigger(trigger, check.url_key(url))
            self.catalog.put_trigger(trigger)
        return trigger

    async def update_trigger(self, name: str, body: dict[str, Any]) -> HttpTrigger:
        """Change a route; ``function`` makes it name that function alone, ``functions`` split its calls."""
        check.known_fields(body, ROUTE_FIELDS)
        async with self._lock:
            trigger: HttpTrigger = _get(self.catalog.triggers, "route", name)
            if body.get("name", name) != name:
                raise BadRequest("name cannot be changed; create a new route instead")
            named = {"function", "functions"} & body.keys()
            function, functions = _route_functions(body) if named else (trigger.function, trigger.functions)
            changed = dataclasses.replace(
                trigger,
                method=check.method(body["method"]) if "method" in body else trigger.method,
                url=check.url_pattern(body["url"]) if "url" in body else trigger.url,
                function=function,
                functions=functions,
                is_async=_async_flag(body, trigger.is_async),
                updated_at=utcnow(),
            )
            self._check_route(changed.method, changed.url, changed.names, exclude=name)
            with recording(ChangeKind.route, name):
                await self._store.update_trigger(changed, check.url_key(changed.url))
            self.catalog.put_trigger(changed)
        return changed

    async def replace_trigger(self, changed: HttpTrigger, then: Callable[[Any], Awaitable[None]] | None = None) -> None:
        """Store a changed route and put it in the catalog, for a writer that holds :attr:`lock` already (a canary's
        step, whose ``then`` writes the canary in the same transaction)."""
        assert self._lock.locked()
        self._check_route(changed.method, changed.url, changed.names, exclude=changed.name)
        with recording(ChangeKind.route, changed.name):
            await self._store.update_trigger(changed, check.url_key(changed.url), then=then)
        self.catalog.put_trigger(changed)

    async def delete_trigger(self, name: str) -> None:
        async with self._lock:
            _get(self.catalog.triggers, "route", name)
            with recording(ChangeKind.route, name):
                await self._store.delete_trigger(name)
            self.catalog.drop_trigger(name)
