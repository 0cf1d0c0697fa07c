"""The admin API under /v1: thin handlers over the controller.

Reads come from the in-memory catalog; writes go through the controller.
Every error is a FaasdError, turned into JSON by the middleware in app.py.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from faasd import __version__
from faasd.cluster.journal import ChangeKind, recording
from faasd.control import openapi
from faasd.control.catalog import Catalog
from faasd.control.controller import Controller
from faasd.control.function_logs import ClusterLogs, LocalLogs, LogQuery
from faasd.control.uploads import package_form
from faasd.control.versions import version_number
from faasd.core import validation
from faasd.core.entities import MAX_PACKAGE_BYTES
from faasd.core.errors import BadRequest, NotFound
from faasd.core.validation import json_object
from faasd.pool.logs import FunctionLogs
from faasd.pool.manager import PoolManager
from faasd.store.labels import LabelStore


class _Jsonable(Protocol):
    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Resource:
    """One kind of registry object and the controller calls that change it."""

    kind: str  # as users say it: "environment", "function", "route"
    path: str
    items: Callable[[Catalog], Mapping[str, _Jsonable]]
    create: Callable[[dict[str, Any]], Awaitable[_Jsonable]]
    update: Callable[[str, dict[str, Any]], Awaitable[_Jsonable]]
    delete: Callable[[web.Request, str], Awaitable[Any]]  # what went with it (a function's users), or None
    # The field of its labels in the API: "labels", but a watch's own "labels" select containers.
    labels_field: str = "labels"


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    return json_object(body)


async def _json_response(body: dict[str, Any]) -> web.Response:
    return web.json_response(body)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


class AdminApi:
    def __init__(
        self,
        controller: Controller,
        pool: PoolManager,
        logs: FunctionLogs,
        isolation: Callable[[], dict[str, Any]] | None = None,
        *,
        upload_dir: Path | None = None,
        max_package_bytes: int = MAX_PACKAGE_BYTES,
        labels: LabelStore | None = None,
        node: str = "",
    ) -> None:
        self._controller = controller
        self._labels = labels  # every resource's labels (None: the API takes and shows none)
        self._pool = pool
        self._logs = logs
        self.local_logs = LocalLogs(logs, node)  # this node's records of a function (node: its id)
        self.cluster_logs: ClusterLogs | None = None  # and every node's, when set (faasd/app.py)
        self._isolation = isolation  # what keeps functions apart (the engine's report), for /v1/status
        # Where package uploads are streamed to (<state dir>/tmp), and their limit (compressed).
        self._upload_dir = upload_dir if upload_dir is not None else Path(tempfile.gettempdir())
        self._max_package_bytes = max_package_bytes
        # More sections of GET /v1/status, by key (the events' queue, timers and watches; the canaries).
        self.status_sections: dict[str, Callable[[], Awaitable[Any]]] = {}
        c = controller
        self.resources: tuple[Resource, ...] = (
            Resource(
                "environment",
                "/v1/environments",
                lambda cat: cat.environments,
                c.create_environment,
                c.update_environment,
                lambda _req, name: c.delete_environment(name),
            ),
            Resource(
                "function",
                "/v1/functions",
                lambda cat: cat.functions,
                c.create_function,
                c.update_function,
                lambda req, name: c.delete_function(name, force=_flag(req, "force")),
            ),
            Resource(
                "route",
                "/v1/triggers/http",
                lambda cat: cat.triggers,
                c.create_trigger,
                c.update_trigger,
                lambda _req, name: c.delete_trigger(name),
            ),
        )

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        for res in self.resources:
            router.add_get(res.path, self._lister(res))
            router.add_post(res.path, self._creator(res))
            router.add_get(res.path + "/{name}", self._getter(res))
            router.add_patch(res.path + "/{name}", self._updater(res))
            router.add_put(res.path + "/{name}", self._updater(res))
            router.add_delete(res.path + "/{name}", self._deleter(res))
        router.add_get("/v1/functions/{name}/code", self.function_code)
        router.add_get("/v1/functions/{name}/logs", self.function_logs)
        router.add_get("/v1/functions/{name}/versions", self.function_versions)
        router.add_post("/v1/functions/{name}/rollback", self.rollback_function)
        router.add_get("/v1/packages", self.list_packages)
        router.add_post("/v1/packages", self.create_package)
        router.add_get("/v1/packages/{name}", self.get_package)
        router.add_patch("/v1/packages/{name}", self.update_package)
        router.add_delete("/v1/packages/{name}", self.delete_package)
        router.add_post("/v1/packages/{name}/rebuild", self.rebuild_package)
        router.add_get("/v1/packages/{name}/deploy", self.package_deploy)
        router.add_get("/v1/packages/{name}/source", self.package_source)
        router.add_get("/v1/status", self.status)
        spec = openapi.document()
        router.add_get("/v1/openapi.json", lambda _request: _json_response(spec))

    def _one(self, res: Resource, name: str) -> _Jsonable:
        item = res.items(self._controller.catalog).get(name)
        if item is None:
            raise NotFound(f"{res.kind} '{name}' not found")
        return item

    # -- labels: taken off a body before the controller sees it, merged into every answer -------

    def _labeled(self, kind: str, doc: dict[str, Any], field: str = "labels") -> dict[str, Any]:
        if self._labels is not None:
            doc[field] = self._labels.get(kind, doc["name"])
        return doc

    def _selected(
        self, request: web.Request, docs: list[dict[str, Any]], field: str = "labels"
    ) -> list[dict[str, Any]]:
        selector = validation.label_selector(request.query.getall("label", []))
        if not selector:
            return docs
        return [
            d
            for d in docs
            if all(key in d.get(field, {}) and (value is None or d[field][key] == value) for key, value in selector)
        ]

    def _take_labels(self, body: dict[str, Any], field: str = "labels") -> dict[str, str] | None:
        """The body's labels, checked (and removed from it); None when it names none."""
        if field not in body:
            return None
        raw = body.pop(field)
        if self._labels is None:
            raise BadRequest("labels are not kept by this faasd")
        return validation.labels({} if raw is None else raw)

    async def _set_labels(self, kind: str, name: str, labels: dict[str, str] | None) -> None:
        if self._labels is not None and labels is not None:
            # Under the registry's lock, as the follower's reload of the labels: neither overwrites the other.
            async with self._controller.lock:
                with recording(ChangeKind.labels, f"{kind}/{name}"):
                    await self._labels.set(kind, name, labels)

    def _lister(self, res: Resource) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            items = res.items(self._controller.catalog).values()
            function = request.query.get("function")
            field = res.labels_field
            ordered = sorted(items, key=lambda i: i.to_json()["name"])
            listed = [self._labeled(res.kind, i.to_json(), field) for i in ordered]
            if function is not None:  # a route that splits its calls: any of its functions
                listed = [
                    i
                    for i in listed
                    if i.get("function") == function or any(f["function"] == function for f in i.get("functions", ()))
                ]
            return web.json_response({"items": self._selected(request, listed, field)})

        return handler

    def _getter(self, res: Resource) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            doc = self._one(res, request.match_info["name"]).to_json()
            return web.json_response(self._labeled(res.kind, doc, res.labels_field))

        return handler

    def _creator(self, res: Resource) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            body = await read_json(request)
            labels = self._take_labels(body, res.labels_field)
            created = (await res.create(body)).to_json()
            # Made anew: its labels are these (none: none), never an earlier object's of that name.
            await self._set_labels(res.kind, created["name"], labels or {})
            return web.json_response(self._labeled(res.kind, created, res.labels_field), status=201)

        return handler

    def _updater(self, res: Resource) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            body = await read_json(request)
            labels = self._take_labels(body, res.labels_field)
            if body or labels is None:
                updated = (await res.update(name, body)).to_json()
            else:
                updated = self._one(res, name).to_json()  # only the labels change
            await self._set_labels(res.kind, name, labels)
            return web.json_response(self._labeled(res.kind, updated, res.labels_field))

        return handler

    def _deleter(self, res: Resource) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            went = await res.delete(request, name)
            await self._set_labels(res.kind, name, {})
            if went:  # a forced function delete: what used it went too, and the answer says what
                return web.json_response({"deleted": went})
            return web.Response(status=204)

        return handler

    async def function_code(self, request: web.Request) -> web.Response:
        # A node without its own copy reads the code from the shared registry first: off the loop.
        code = await asyncio.to_thread(self._controller.function_code, request.match_info["name"])
        return web.Response(body=code, content_type="text/plain", charset="utf-8")

    async def function_versions(self, request: web.Request) -> web.Response:
        """The function's kept versions, newest first (secrets by name only)."""
        versions = await self._controller.function_versions(request.match_info["name"])
        return web.json_response({"items": [v.to_json() for v in versions]})

    async def rollback_function(self, request: web.Request) -> web.Response:
        """A new version with an older one's content: ``{"to": N}``, or without a body the one before the newest."""
        name = request.match_info["name"]
        body = await read_json(request) if request.can_read_body else {}
        validation.known_fields(body, {"to"})
        to = version_number(body["to"]) if body.get("to") is not None else None
        fn, version = await self._controller.rollback_function(name, to)
        return web.json_response({**self._labeled("function", fn.to_json()), "version": version})

    async def function_logs(self, request: web.Request) -> web.StreamResponse:
        """The function's log, this node's or the whole cluster's (faasd/control/function_logs.py)."""
        q = LogQuery.of(request)
        if q.function not in self._controller.catalog.functions:
            raise NotFound(f"function '{q.function}' not found")
        if self.cluster_logs is not None:
            return await self.cluster_logs.serve(request, q)
        return await self.local_logs.serve(request, q)

    # -- packages: multipart uploads in, JSON out ---------------------------------

    async def list_packages(self, request: web.Request) -> web.Response:
        """Every package, without build logs (GET /v1/packages/{name} has the log)."""
        packages = sorted(self._controller.catalog.packages.values(), key=lambda p: p.name)
        listed = [self._labeled("package", p.to_json(with_log=False)) for p in packages]
        return web.json_response({"items": self._selected(request, listed)})

    async def get_package(self, request: web.Request) -> web.Response:
        package = self._controller.get_package(request.match_info["name"])
        return web.json_response(self._labeled("package", package.to_json()))

    def _form_labels(self, fields: Mapping[str, str]) -> dict[str, str] | None:
        """A package form's ``labels`` field: a JSON object."""
        if "labels" not in fields:
            return None
        try:
            raw = json.loads(fields["labels"])
        except ValueError:
            raise BadRequest("the form field 'labels' must be a JSON object of strings") from None
        return self._take_labels({"labels": raw})

    async def create_package(self, request: web.Request) -> web.Response:
        async with package_form(request, self._upload_dir, self._max_package_bytes) as form:
            labels = self._form_labels(form.fields)
            package = await self._controller.create_package(
                form.fields.get("name"),
                form.fields.get("environment"),
                form.fields.get("buildcmd", ""),
                form.files.get("source"),
                form.files.get("deploy"),
            )
        await self._set_labels("package", package.name, labels or {})
        return web.json_response(self._labeled("package", package.to_json()), status=201)

    async def update_package(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._controller.get_package(name)  # 404 before a large upload is read
        async with package_form(request, self._upload_dir, self._max_package_bytes) as form:
            if form.fields.get("name", name) != name:
                raise BadRequest("name cannot be changed; create a new package instead")
            labels = self._form_labels(form.fields)
            changes = {k for k in form.fields if k not in ("name", "labels")} | set(form.files)
            if labels is not None and not changes:
                package = self._controller.get_package(name)  # only the labels change
            else:
                package = await self._controller.update_package(
                    name,
                    environment=form.fields.get("environment"),
                    buildcmd=form.fields.get("buildcmd"),
                    source=form.files.get("source"),
                    deploy=form.files.get("deploy"),
                )
        await self._set_labels("package", name, labels)
        return web.json_response(self._labeled("package", package.to_json()))

    async def rebuild_package(self, request: web.Request) -> web.Response:
        package = await self._controller.rebuild_package(request.match_info["name"])
        return web.json_response(package.to_json(), status=202)

    async def delete_package(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await self._controller.delete_package(name, force=_flag(request, "force"))
        await self._set_labels("package", name, {})
        return web.Response(status=204)

    async def package_source(self, request: web.Request) -> web.StreamResponse:
        """The package's source archive as it is stored, a tar (`faas pkg getsrc`, `faas spec export`)."""
        name = request.match_info["name"]
        # A node without its own copy reads the archive from the shared registry first: off the loop.
        path = await asyncio.to_thread(self._controller.package_source, name)
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "application/x-tar",
                "Content-Disposition": f'attachment; filename="{name}-source.tar"',
            },
        )

    async def package_deploy(self, request: web.Request) -> web.StreamResponse:
        """The package's deployment archive, a tar (`faas pkg get --output FILE`)."""
        name = request.match_info["name"]
        # A node without its own copy reads the archive from the shared registry first: off the loop.
        path = await asyncio.to_thread(self._controller.package_deploy, name)
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "application/x-tar",
                "Content-Disposition": f'attachment; filename="{name}.tar"',
            },
        )

    async def status(self, request: web.Request) -> web.Response:
        catalog = self._controller.catalog
        sections = {key: await section() for key, section in self.status_sections.items()}
        return web.json_response(
            {
                **sections,
                "version": __version__,
                "isolation": self._isolation() if self._isolation is not None else None,
                "environments": [
                    {
                        "name": e.name,
                        "image": e.image,
                        "poolsize": e.poolsize,
                        **self._pool.environment_status(e.name),
                    }
                    for e in sorted(catalog.environments.values(), key=lambda e: e.name)
                ],
                "functions": [
                    {
                        "name": f.name,
                        "environment": f.environment,
                        **self._pool.function_status(f.name),
                    }
                    for f in sorted(catalog.functions.values(), key=lambda f: f.name)
                ],
            }
        )
