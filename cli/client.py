"""A synchronous client for faasd's HTTP API, on the standard library's urllib.

One method per API call. Every failure is translated here, at one boundary,
into :mod:`faas_cli.errors`: an error answer becomes :class:`ApiError` carrying
the daemon's message, a socket failure :class:`DaemonUnreachable`, an answer
that is not faasd's JSON a plain :class:`CliError`. Nothing above this module
sees urllib's exceptions.

Redirects are not followed (the API never redirects, and ``faas function test``
shows a function's 3xx as it is), and proxies from the environment are not used
for a daemon on the loopback interface.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import os
import secrets
import socket
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from faas_cli.errors import ApiError, CliError, DaemonUnreachable

Json = dict[str, Any]

DEFAULT_SERVER = "http://127.0.0.1:8080"
API_TIMEOUT = 60.0
"""Seconds to wait for an admin API answer."""
INVOKE_TIMEOUT = 600.0
"""Seconds to wait for a function's answer; the daemon enforces the function's own timeout."""
UPLOAD_TIMEOUT = 600.0
"""Seconds to wait on a package upload (the daemon checks and unpacks the archives before it answers)."""
CHUNK_BYTES = 1 << 20

Body = bytes | Iterable[bytes]


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, whatever its status."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


NDJSON = "application/x-ndjson"


class LogStream:
    """An answer of ``GET /v1/functions/{name}/logs?format=json``: the nodes it covers (``Faasd-Nodes``), those
    whose records it lacks (``Faasd-Nodes-Missing``), and its records as ``(node, record)``, read as they come."""

    def __init__(self, server: str, response: http.client.HTTPResponse) -> None:
        self.server = server
        self._response = response
        # A daemon that answers the text form (one node, before nodes were tagged): records of no named node.
        self.tagged = response.headers.get_content_type() == NDJSON
        self.nodes = _names(response.headers.get("Faasd-Nodes"))
        self.missing = _names(response.headers.get("Faasd-Nodes-Missing"))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        try:
            for raw in self._response:
                if not self.tagged:
                    yield "", raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    continue
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                    yield str(item["node"]), str(item["line"])
                except (ValueError, KeyError, TypeError):
                    raise CliError(f"unexpected answer from {self.server}: a log line that is not JSON") from None
        except (OSError, http.client.HTTPException) as error:
            raise DaemonUnreachable(self.server, _socket_reason(error)) from None


def _names(header: str | None) -> list[str]:
    return [name for name in (header or "").split(",") if name]


def normalize_server(server: str) -> str:
    """``server`` without a trailing slash; a :class:`CliError` unless it is an http(s) URL."""
    url = server.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"invalid server URL {server!r}; expected one like {DEFAULT_SERVER}")
    return url


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (proxies are skipped for it)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def error_message(status: int, reason: str, body: bytes) -> tuple[str, str]:
    """The ``(code, message)`` of an error answer.

    faasd's shape is ``{"error": {"code": ..., "message": ...}}``; for anything
    else (a proxy's HTML page, an empty body) the message is the status line and
    the body's first line.
    """
    try:
        error = json.loads(body)["error"]
        code, message = error.get("code", ""), error["message"]
        if isinstance(message, str) and message.strip():
            return (code if isinstance(code, str) else "", message)
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    text = body.decode("utf-8", errors="replace").strip()
    first = text.splitlines()[0][:200] if text else ""
    message = f"HTTP {status} {reason}".rstrip()
    return ("", f"{message}: {first}" if first else message)


def _socket_reason(error: BaseException) -> str:
    """A short, lower-case reason for a failure to talk to the daemon."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return "unknown host"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, http.client.RemoteDisconnected | ConnectionResetError):
        return "connection closed without an answer"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand back a 3xx as it is instead of following it."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _user_agent() -> str:
    try:
        return f"faas/{metadata.version('faasd')}"
    except metadata.PackageNotFoundError:
        return "faas"


class FaasClient:
    """faasd's API: environments, functions, packages, HTTP triggers, status, invoking,
    events (asynchronous calls, dead letters, timers, watches, message-queue triggers) and canaries.

    ``token``, when given, is sent as ``Authorization: Bearer <token>`` on every
    admin API request (never to a function).
    """

    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None, timeout: float = API_TIMEOUT) -> None:
        self.server = normalize_server(server)
        self._token = token or None
        self._timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if is_loopback(urllib.parse.urlsplit(self.server).hostname or ""):
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)
        self._user_agent = _user_agent()

    # -- daemon ------------------------------------------------------------

    def health(self) -> Json:
        return self._json("GET", "/healthz")

    def status(self) -> Json:
        return self._json("GET", "/v1/status")

    def nodes(self) -> list[Json]:
        """The faasd nodes sharing the daemon's registry: id, url, live, last_seen, started_at, version, self."""
        return self._items("/v1/nodes")

    def usage(self, function: str | None = None, since: str | None = None) -> Json:
        query = _given(function=function, since=since)
        return self._json("GET", "/v1/usage" + (f"?{urllib.parse.urlencode(query)}" if query else ""))

    # -- environments ------------------------------------------------------

    def create_environment(
        self,
        name: str,
        image: str | None = None,
        poolsize: int | None = None,
        builder: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Json:
        payload = _given(name=name, image=image, poolsize=poolsize, builder=builder, labels=labels)
        return self._json("POST", "/v1/environments", payload)

    def list_environments(self) -> list[Json]:
        return self._items("/v1/environments")

    def get_environment(self, name: str) -> Json:
        return self._json("GET", f"/v1/environments/{_segment(name)}")

    def update_environment(
        self,
        name: str,
        image: str | None = None,
        poolsize: int | None = None,
        builder: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Json:
        payload = _given(image=image, poolsize=poolsize, builder=builder, labels=labels)
        return self._json("PATCH", f"/v1/environments/{_segment(name)}", payload)

    def delete_environment(self, name: str) -> None:
        self._call("DELETE", f"/v1/environments/{_segment(name)}")

    # -- functions ---------------------------------------------------------

    def create_function(
        self,
        name: str,
        environment: str | None,
        code: str | None,
        filename: str | None = None,
        entrypoint: str | None = None,
        timeout: int | None = None,
        **settings: Any,
    ) -> Json:
        """``settings``: more function fields (env, secrets, memory_mb, concurrency, package, ...)."""
        payload = _given(
            name=name,
            environment=environment,
            code=code,
            filename=filename,
            entrypoint=entrypoint,
            timeout=timeout,
            **settings,
        )
        return self._json("POST", "/v1/functions", payload)

    def list_functions(self) -> list[Json]:
        return self._items("/v1/functions")

    def get_function(self, name: str) -> Json:
        return self._json("GET", f"/v1/functions/{_segment(name)}")

    def get_function_code(self, name: str) -> str:
        return self._call("GET", f"/v1/functions/{_segment(name)}/code").text

    def update_function(
        self,
        name: str,
        *,
        code: str | None = None,
        filename: str | None = None,
        environment: str | None = None,
        entrypoint: str | None = None,
        timeout: int | None = None,
        **settings: Any,
    ) -> Json:
        payload = _given(
            code=code,
            filename=filename,
            environment=environment,
            entrypoint=entrypoint,
            timeout=timeout,
            **settings,
        )
        return self._json("PATCH", f"/v1/functions/{_segment(name)}", payload)

    def delete_function(self, name: str, force: bool = False) -> Json:
        """Delete function ``name``; with ``force`` its routes too (else routes to it are a 409).

        The daemon's answer, when it has one (what went with the function), else ``{}``.
        """
        query = "?force=true" if force else ""
        return _object(self._call("DELETE", f"/v1/functions/{_segment(name)}{query}").body) or {}

    def function_instances(self, name: str) -> list[Json]:
        """Function ``name``'s instances in service (id, state, calls in flight, ...)."""
        instances = self._json("GET", f"/v1/functions/{_segment(name)}/instances").get("instances")
        if not isinstance(instances, list):
            raise CliError(f"unexpected answer from {self.server}/v1/functions/{name}/instances: no 'instances' list")
        return [i for i in instances if isinstance(i, dict)]

    def function_logs(
        self, name: str, tail: int | None = None, follow: bool = False, request: str | None = None
    ) -> Generator[str, None, None]:
        """What function ``name``'s containers printed, one record a line, as the daemon sends it.

        Each line reads ``<timestamp> <instance> <stdout|stderr> <text>``. With
        ``follow`` the answer stays open and new lines are yielded as they come,
        until the daemon ends it or the caller stops iterating. With ``request``
        only the lines written during that call (its X-Request-Id).
        """
        query = _given(tail=tail, follow="true" if follow else None, request=request)
        path = f"/v1/functions/{_segment(name)}/logs"
        if query:
            path += f"?{urllib.parse.urlencode(query)}"
        # Following waits for lines without a bound; otherwise the API timeout applies.
        with self._open_api("GET", path, timeout=None if follow else self._timeout) as response:
            try:
                for raw in response:
                    yield raw.decode("utf-8", errors="replace").rstrip("\r\n")
            except (OSError, http.client.HTTPException) as error:
                raise DaemonUnreachable(self.server, _socket_reason(error)) from None

    @contextlib.contextmanager
    def function_log_stream(
        self,
        name: str,
        tail: int | None = None,
        follow: bool = False,
        request: str | None = None,
        node: str | None = None,
    ) -> Iterator[LogStream]:
        """Function ``name``'s log as the whole cluster has it (or ``node``'s): which nodes the answer covers,
        and each record with the node that wrote it (the daemon's ``format=json``)."""
        query = _given(tail=tail, follow="true" if follow else None, request=request, node=node)
        path = f"/v1/functions/{_segment(name)}/logs"
        if query:
            path += f"?{urllib.parse.urlencode(query)}"
        timeout = None if follow else self._timeout
        with self._open_api("GET", path, timeout=timeout, headers={"Accept": NDJSON}) as response:
            yield LogStream(self.server, response)

    def function_versions(self, name: str) -> list[Json]:
        """Function ``name``'s kept versions, newest first (``version``, ``code_sha256``, ``settings``, ...)."""
        return self._items(f"/v1/functions/{_segment(name)}/versions")

    def rollback_function(self, name: str, to: int | None = None) -> Json:
        """Make version ``to`` (default: the one before the newest) function ``name``'s code and settings, as a
        new version; the function as it is now, with its ``version``."""
        return self._json("POST", f"/v1/functions/{_segment(name)}/rollback", _given(to=to))

    # -- packages ----------------------------------------------------------

    def create_package(
        self,
        name: str,
        environment: str,
        source: Path | None = None,
        deploy: Path | None = None,
        buildcmd: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Json:
        """Upload a package's archives (streamed from disk as multipart/form-data)."""
        fields = _given(name=name, environment=environment, buildcmd=buildcmd, labels=_labels_field(labels))
        return self._upload("POST", "/v1/packages", fields, _given(source=source, deploy=deploy))

    def update_package(
        self,
        name: str,
        environment: str | None = None,
        source: Path | None = None,
        deploy: Path | None = None,
        buildcmd: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Json:
        fields = _given(environment=environment, buildcmd=buildcmd, labels=_labels_field(labels))
        return self._upload("PATCH", f"/v1/packages/{_segment(name)}", fields, _given(source=source, deploy=deploy))

    def list_packages(self) -> list[Json]:
        return self._items("/v1/packages")

    def get_package(self, name: str) -> Json:
        return self._json("GET", f"/v1/packages/{_segment(name)}")

    def rebuild_package(self, name: str) -> Json:
        return self._json("POST", f"/v1/packages/{_segment(name)}/rebuild")

    def delete_package(self, name: str, force: bool = False) -> None:
        """Delete package ``name``; with ``force`` the functions that run it (and their routes) too."""
        query = "?force=true" if force else ""
        self._call("DELETE", f"/v1/packages/{_segment(name)}{query}")

    def download_deploy(self, name: str, out: IO[bytes], archive: str = "deploy") -> int:
        """Write package ``name``'s deployment archive (a tar) to ``out``; return its size.

        ``archive`` ``source``: its source archive instead (where the daemon serves it).
        """
        size = 0
        with self._open_api("GET", f"/v1/packages/{_segment(name)}/{archive}", timeout=self._timeout) as response:
            try:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    size += len(chunk)
            except (OSError, http.client.HTTPException) as error:
                raise DaemonUnreachable(self.server, _socket_reason(error)) from None
        return size

    def download_deploy_to(self, name: str, path: Path, archive: str = "deploy") -> int:
        """The deployment (or ``source``) archive into the file ``path``, replaced only once the whole of it
        arrived."""
        folder = path.parent if str(path.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
        except OSError as error:
            raise CliError(f"cannot write to '{folder}' ({(error.strerror or str(error)).lower()})") from None
        try:
            with os.fdopen(fd, "wb") as out:
                size = self.download_deploy(name, out, archive)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    # -- HTTP triggers -----------------------------------------------------

    def create_trigger(
        self,
        method: str,
        url: str,
        function: str | None,
        name: str | None = None,
        asynchronous: bool | None = None,
        labels: Mapping[str, str] | None = None,
        functions: list[Json] | None = None,
    ) -> Json:
        """``asynchronous``: calls on the route are queued (202 and a call id), the API's ``async``.

        ``functions`` instead of ``function``: a route that splits its calls,
        ``[{"function": "a", "weight": 90}, {"function": "b", "weight": 10}]``.
        """
        payload = _given(
            name=name,
            method=method,
            url=url,
            function=function,
            functions=functions,
            labels=labels,
            **{"async": asynchronous},
        )
        return self._json("POST", "/v1/triggers/http", payload)

    def list_triggers(self, function: str | None = None) -> list[Json]:
        query = f"?{urllib.parse.urlencode({'function': function})}" if function else ""
        return self._items(f"/v1/triggers/http{query}")

    def get_trigger(self, name: str) -> Json:
        return self._json("GET", f"/v1/triggers/http/{_segment(name)}")

    def update_trigger(
        self,
        name: str,
        method: str | None = None,
        url: str | None = None,
        function: str | None = None,
        asynchronous: bool | None = None,
        labels: Mapping[str, str] | None = None,
        functions: list[Json] | None = None,
    ) -> Json:
        payload = _given(
            method=method, url=url, function=function, functions=functions, labels=labels, **{"async": asynchronous}
        )
        return self._json("PATCH", f"/v1/triggers/http/{_segment(name)}", payload)

    def delete_trigger(self, name: str) -> None:
        self._call("DELETE", f"/v1/triggers/http/{_segment(name)}")

    # -- invoking ----------------------------------------------------------

    def function_url(self, name: str, path: str = "", prefix: str = "/function") -> str:
        """The URL that reaches function ``name`` without a route, plus a sub-path.

        ``prefix`` ``/async-function`` is the URL that queues the call instead.
        """
        suffix = ""
        if path:
            suffix = urllib.parse.quote(path if path.startswith("/") else f"/{path}", safe="/?&=%:+,;@!$'()*~")
        return f"{self.server}{prefix}/{_segment(name)}{suffix}"

    def invoke(
        self,
        name: str,
        method: str = "GET",
        path: str = "",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Call function ``name`` through ``/function/<name>``; any status is returned.

        ``timeout``: seconds to wait for the answer (default :data:`INVOKE_TIMEOUT`).
        """
        wait = INVOKE_TIMEOUT if timeout is None else timeout
        return self._send(method, self.function_url(name, path), body, dict(headers or {}), wait)

    def invoke_async(
        self,
        name: str,
        method: str = "POST",
        path: str = "",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Json:
        """Queue a call of function ``name`` (``/async-function/<name>``); the daemon's 202 answer.

        ``{"call_id", "status": "accepted", "function", "repeated"}``; ``repeated``
        when ``idempotency_key`` named a call accepted before. Like :meth:`invoke`
        it is a public URL: the API token is not sent.
        """
        sent = dict(headers or {})
        if callback_url:
            sent["X-Callback-Url"] = callback_url
        if idempotency_key:
            sent["Idempotency-Key"] = idempotency_key
        url = self.function_url(name, path, prefix="/async-function")
        reply = self._send(method, url, body, sent, self._timeout)
        if not 200 <= reply.status < 300:
            raise self._api_error(reply)
        data = _object(reply.body) or {}
        call_id = data.get("call_id") or next((v for k, v in reply.headers.items() if k.lower() == "x-call-id"), None)
        if not isinstance(call_id, str) or not call_id:
            raise CliError(f"unexpected answer from {url}: no call id")
        return {**data, "call_id": call_id}

    # -- asynchronous calls and dead letters ---------------------------------

    def get_invocation(self, call_id: str, wait: int | None = None) -> Json:
        """Asynchronous call ``call_id``; ``wait``: seconds the daemon may hold the answer until it is finished."""
        path = _with_query(f"/v1/invocations/{_segment(call_id)}", wait=wait or None)
        # The daemon holds the answer up to ``wait`` seconds: wait that much longer for it.
        return self._json("GET", path, timeout=self._timeout + (wait or 0))

    def list_invocations(
        self,
        function: str | None = None,
        status: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[Json]:
        return self._items(_with_query("/v1/invocations", function=function, status=status, since=since, limit=limit))

    def list_dead_letters(
        self, function: str | None = None, since: str | None = None, limit: int | None = None
    ) -> list[Json]:
        return self._items(_with_query("/v1/dlq", function=function, since=since, limit=limit))

    def get_dead_letter(self, call_id: str) -> Json:
        return self._json("GET", f"/v1/dlq/{_segment(call_id)}")

    def redrive(
        self,
        ids: list[str] | None = None,
        function: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> Json:
        """Queue dead letters again: those ``ids``, else those the filters select. ``{"redriven": N, "ids": [...]}``."""
        return self._dead_letters("POST", "/v1/dlq/redrive", ids, function=function, since=since, limit=limit)

    def purge(
        self,
        ids: list[str] | None = None,
        function: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> Json:
        """Delete dead letters: those ``ids``, else those the filters select. ``{"purged": N}``."""
        return self._dead_letters("DELETE", "/v1/dlq", ids, function=function, since=since, limit=limit)

    def _dead_letters(self, method: str, path: str, ids: list[str] | None, **filters: Any) -> Json:
        """Dead letters named in the body (``ids``), else selected by the query's filters."""
        if ids:
            return self._json(method, path, {"ids": ids})
        return self._json(method, _with_query(path, **filters))

    # -- timers --------------------------------------------------------------

    def create_timer(self, name: str, function: str, cron: str, **fields: Any) -> Json:
        """``fields``: more timer fields (timezone, method, subpath, overlap, catch_up)."""
        payload = _given(name=name, function=function, cron=cron, **fields)
        return self._json("POST", "/v1/timers", payload)

    def list_timers(self, function: str | None = None) -> list[Json]:
        return self._items(_with_query("/v1/timers", function=function))

    def get_timer(self, name: str) -> Json:
        return self._json("GET", f"/v1/timers/{_segment(name)}")

    def update_timer(self, name: str, **fields: Any) -> Json:
        return self._json("PATCH", f"/v1/timers/{_segment(name)}", _given(**fields))

    def delete_timer(self, name: str) -> None:
        self._call("DELETE", f"/v1/timers/{_segment(name)}")

    def cron_schedule(self, cron: str, timezone: str | None = None, count: int | None = None) -> list[str]:
        """The next ``count`` times (RFC 3339, UTC) expression ``cron`` fires in ``timezone``."""
        path = _with_query("/v1/cron/schedule", cron=cron, timezone=timezone, round=count)
        times = self._json("GET", path).get("next")
        if not isinstance(times, list):
            raise CliError(f"unexpected answer from {self.server}/v1/cron/schedule: no 'next' list")
        return [str(time) for time in times]

    # -- watches -------------------------------------------------------------

    def create_watch(self, name: str, function: str, **fields: Any) -> Json:
        """``fields``: more watch fields (type, labels, events, include_faasd)."""
        payload = _given(name=name, function=function, **fields)
        return self._json("POST", "/v1/watches", payload)

    def list_watches(self, function: str | None = None) -> list[Json]:
        return self._items(_with_query("/v1/watches", function=function))

    def get_watch(self, name: str) -> Json:
        return self._json("GET", f"/v1/watches/{_segment(name)}")

    def update_watch(self, name: str, **fields: Any) -> Json:
        return self._json("PATCH", f"/v1/watches/{_segment(name)}", _given(**fields))

    def delete_watch(self, name: str) -> None:
        self._call("DELETE", f"/v1/watches/{_segment(name)}")

    # -- message-queue triggers ------------------------------------------------

    def create_mq_trigger(self, name: str, function: str, mqtype: str, topic: str, **fields: Any) -> Json:
        """``fields``: more mqtrigger fields (resptopic, errortopic, maxretries, maxconcurrency, contenttype,
        connection, connection_secret, method)."""
        payload = _given(name=name, function=function, mqtype=mqtype, topic=topic, **fields)
        return self._json("POST", "/v1/triggers/mq", payload)

    def list_mq_triggers(self, function: str | None = None) -> list[Json]:
        return self._items(_with_query("/v1/triggers/mq", function=function))

    def get_mq_trigger(self, name: str) -> Json:
        return self._json("GET", f"/v1/triggers/mq/{_segment(name)}")

    def update_mq_trigger(self, name: str, **fields: Any) -> Json:
        return self._json("PATCH", f"/v1/triggers/mq/{_segment(name)}", _given(**fields))

    def delete_mq_trigger(self, name: str) -> None:
        self._call("DELETE", f"/v1/triggers/mq/{_segment(name)}")

    # -- canaries --------------------------------------------------------------

    def create_canary(self, name: str, newfunction: str, oldfunction: str, httptrigger: str, **fields: Any) -> Json:
        """``fields``: increment_step, increment_interval, failure_threshold, labels."""
        payload = _given(name=name, newfunction=newfunction, oldfunction=oldfunction, httptrigger=httptrigger, **fields)
        return self._json("POST", "/v1/canaries", payload)

    def list_canaries(self) -> list[Json]:
        return self._items("/v1/canaries")

    def get_canary(self, name: str) -> Json:
        return self._json("GET", f"/v1/canaries/{_segment(name)}")

    def update_canary(self, name: str, **fields: Any) -> Json:
        return self._json("PATCH", f"/v1/canaries/{_segment(name)}", _given(**fields))

    def delete_canary(self, name: str) -> None:
        self._call("DELETE", f"/v1/canaries/{_segment(name)}")

    # -- plumbing ----------------------------------------------------------

    def _json(self, method: str, path: str, payload: Json | None = None, timeout: float | None = None) -> Json:
        reply = self._call(method, path, payload, timeout=timeout)
        try:
            data = json.loads(reply.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise CliError(f"unexpected answer from {self.server}{path}: not a JSON object")
        return data

    def _items(self, path: str) -> list[Json]:
        items = self._json("GET", path).get("items")
        if not isinstance(items, list):
            raise CliError(f"unexpected answer from {self.server}{path}: no 'items' list")
        return [item for item in items if isinstance(item, dict)]

    def _call(self, method: str, path: str, payload: Json | None = None, timeout: float | None = None) -> Reply:
        """One API request; an answer other than 2xx raises :class:`ApiError`."""
        headers = self._api_headers()
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        reply = self._send(method, f"{self.server}{path}", body, headers, timeout or self._timeout)
        if not 200 <= reply.status < 300:
            raise self._api_error(reply)
        return reply

    def _upload(self, method: str, path: str, fields: Mapping[str, str], files: Mapping[str, Path]) -> Json:
        """A multipart/form-data request whose files are read from disk as they are sent."""
        content_type, length, body = multipart_body(fields, files)
        headers = {**self._api_headers(), "Content-Type": content_type, "Content-Length": str(length)}
        reply = self._send(method, f"{self.server}{path}", body, headers, max(self._timeout, UPLOAD_TIMEOUT))
        if not 200 <= reply.status < 300:
            raise self._api_error(reply)
        try:
            data = json.loads(reply.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise CliError(f"unexpected answer from {self.server}{path}: not a JSON object")
        return data

    def _api_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            # Only the admin API gets the token: a function never sees it.
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _api_error(self, reply: Reply) -> ApiError:
        code, message = error_message(reply.status, reply.reason, reply.body)
        if reply.status == 401 and self._token is None:
            message += "; set FAAS_TOKEN to the daemon's API token (the 'token' file in its state dir)"
        return ApiError(reply.status, code, message)

    @contextlib.contextmanager
    def _open_api(
        self, method: str, path: str, timeout: float | None, headers: Mapping[str, str] | None = None
    ) -> Iterator[http.client.HTTPResponse]:
        """An API answer left open to be read as it arrives; an error answer raises :class:`ApiError`."""
        headers = {"User-Agent": self._user_agent, **self._api_headers(), **(headers or {})}
        request = urllib.request.Request(f"{self.server}{path}", headers=headers, method=method)
        try:
            response = self._opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            with error:
                reply = Reply(error.code, error.reason, dict(error.headers), error.read())
            raise self._api_error(reply) from None
        except urllib.error.URLError as error:
            reason = error.reason if isinstance(error.reason, BaseException) else error
            raise DaemonUnreachable(self.server, _socket_reason(reason)) from None
        except TimeoutError:
            raise CliError(f"faasd at {self.server} did not answer within {timeout or 0:g}s") from None
        except (OSError, http.client.HTTPException) as error:
            raise DaemonUnreachable(self.server, _socket_reason(error)) from None
        with response:
            yield response

    def _send(self, method: str, url: str, body: Body | None, headers: dict[str, str], timeout: float) -> Reply:
        """One HTTP exchange; socket failures become :class:`DaemonUnreachable`."""
        sent = {"User-Agent": self._user_agent, **headers}
        request = urllib.request.Request(url, data=body, headers=sent, method=method.upper())
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return Reply(response.status, response.reason, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.reason, dict(error.headers), error.read())
        except urllib.error.URLError as error:
            reason = error.reason if isinstance(error.reason, BaseException) else error
            raise DaemonUnreachable(self.server, _socket_reason(reason)) from None
        except TimeoutError:
            raise CliError(f"faasd at {self.server} did not answer within {timeout:g}s") from None
        except (OSError, http.client.HTTPException) as error:
            raise DaemonUnreachable(self.server, _socket_reason(error)) from None
        except ValueError as error:  # http.client rejects a URL with spaces or control characters
            raise CliError(f"invalid request URL {url!r}: {error}") from None


def _disposition(name: str, filename: str | None = None) -> str:
    value = f'form-data; name="{name}"'
    if filename is not None:
        safe = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
        value += f'; filename="{safe}"'
    return value


def multipart_body(fields: Mapping[str, str], files: Mapping[str, Path]) -> tuple[str, int, Iterable[bytes]]:
    """``(content type, length, body)`` of a multipart/form-data request; files are read as it is sent."""
    boundary = f"faas-{secrets.token_hex(16)}"
    pieces: list[bytes | Path] = []
    for name, value in fields.items():
        head = f"--{boundary}\r\nContent-Disposition: {_disposition(name)}\r\n\r\n"
        pieces.append(head.encode() + value.encode() + b"\r\n")
    for name, path in files.items():
        head = (
            f"--{boundary}\r\nContent-Disposition: {_disposition(name, path.name)}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        pieces.extend((head.encode(), path, b"\r\n"))
    pieces.append(f"--{boundary}--\r\n".encode())
    try:
        length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in pieces)
    except OSError as error:
        raise CliError(f"cannot read an archive to upload ({(error.strerror or str(error)).lower()})") from None

    def body() -> Iterator[bytes]:
        for piece in pieces:
            if isinstance(piece, Path):
                with piece.open("rb") as data:
                    while chunk := data.read(CHUNK_BYTES):
                        yield chunk
            else:
                yield piece

    return f"multipart/form-data; boundary={boundary}", length, body()


def _segment(name: str) -> str:
    """``name`` quoted as one path segment."""
    return urllib.parse.quote(name, safe="")


def _labels_field(labels: Mapping[str, str] | None) -> str | None:
    """A package form's labels: a JSON object in a text field."""
    return None if labels is None else json.dumps(dict(labels))


def _given(**fields: Any) -> Json:
    """The fields that are not None: PATCH sends only what the user gave."""
    return {key: value for key, value in fields.items() if value is not None}


def _with_query(path: str, **params: Any) -> str:
    """``path`` with the parameters that are not None as its query string."""
    given = _given(**params)
    return f"{path}?{urllib.parse.urlencode(given)}" if given else path


def _object(body: bytes) -> Json | None:
    """``body`` as a JSON object, else None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
