"""``GET /v1/functions/{name}/logs``: this node's log of a function, or the whole cluster's.

    request ─> LogQuery ─┬─ node=local, or no other node in ``nodes``: this node's file (as on one machine)
                         ├─ node=ID of another node: that node's answer, relayed as it streams
                         ├─ follow=true: this node's new records only, after a first line saying so
                         └─ otherwise: this node's records + every live node's (``?node=local``, in
                            parallel, :data:`PEER_TIMEOUT` each), merged by time (faasd/cluster/logmerge.py)

Headers of a cluster's answer: ``Faasd-Nodes`` (the nodes whose records it
has) and ``Faasd-Nodes-Missing`` (the nodes whose records it lacks: a live
node that did not answer in time, a node that is not live, or, when following,
every other node). ``format=json`` (or ``Accept: application/x-ndjson``, as
``faas fn logs`` sends) answers one JSON object a line
(``{"node": ..., "line": ...}``), each record tagged with the node that wrote
it; the text form is the records alone. A single node answers the text form
exactly as before, without those headers.

Nodes of one cluster share the admin token: a node asks another with its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from faasd.cluster.heartbeat import Heartbeat
from faasd.cluster.logmerge import NodeLine, merge
from faasd.core.errors import BadRequest, NodeUnreachable
from faasd.core.validation import NAME_RE
from faasd.pool.logs import FunctionLogs, format_record, utc_stamp

log = logging.getLogger(__name__)

LOCAL = "local"  # ?node=local: this node's records only (what a node asks another for)
FORMS = ("text", "json")
PEER_TIMEOUT = 3.0  # seconds a node waits for another's records before naming it missing
RELAY_TIMEOUT = 60.0  # seconds for a whole answer relayed from one named node (not when following)
# Not X-Faasd-*: that namespace is faasd's private one, never shown to clients (faasd/dataplane/http.py).
NODES_HEADER = "Faasd-Nodes"
MISSING_HEADER = "Faasd-Nodes-Missing"
NDJSON = "application/x-ndjson"


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def written_for(request_id: str) -> Callable[[str], bool]:
    """Whether a log record was written during the call ``request_id``: the runtimes start each
    such line with ``[<request id>] `` (runtimes/README.md); a record is ``<time> <instance> <stream> <text>``."""
    prefix = f"[{request_id}]"

    def keep(record: str) -> bool:
        parts = record.split(" ", 3)
        if len(parts) < 4:
            return False
        text = parts[3]
        return text.startswith(prefix) and (len(text) == len(prefix) or text[len(prefix)] == " ")

    return keep


@dataclass(frozen=True)
class LogQuery:
    function: str
    tail: int | None
    follow: bool
    request_id: str | None
    form: str  # "text" or "json"
    node: str | None  # None: the whole cluster; "local": this node, asked by another; else a node's id

    @classmethod
    def of(cls, request: web.Request) -> LogQuery:
        tail_arg = request.query.get("tail")
        try:
            tail = None if tail_arg is None else max(0, int(tail_arg))
        except ValueError:
            raise BadRequest(f"tail must be a whole number, got {tail_arg!r}") from None
        form = request.query.get("format") or ("json" if NDJSON in request.headers.get("Accept", "") else "text")
        if form not in FORMS:
            raise BadRequest(f"format must be text or json, got {form!r}")
        node = request.query.get("node") or None
        if node is not None and not NAME_RE.fullmatch(node):
            raise BadRequest(f"node must be a node's id (GET /v1/nodes lists them) or 'local', got {node!r}")
        request_id = request.query.get("request") or None
        return cls(request.match_info["name"], tail, _flag(request, "follow"), request_id, form, node)

    def params(self, *, node: str = LOCAL, follow: bool = False, form: str = "text") -> dict[str, str]:
        """The query asking another node for its part."""
        params = {"node": node, "format": form}
        if self.tail is not None:
            params["tail"] = str(self.tail)
        if self.request_id:
            params["request"] = self.request_id
        if follow:
            params["follow"] = "true"
        return params


def _encoded(lines: Sequence[NodeLine], form: str) -> bytes:
    if form == "json":
        return "".join(json.dumps({"node": n, "line": line}) + "\n" for n, line in lines).encode()
    return "".join(f"{line}\n" for _n, line in lines).encode("utf-8", errors="replace")


class LocalLogs:
    """This node's records of a function (faasd/pool/logs.py), answered whole or followed."""

    def __init__(self, logs: FunctionLogs, node: str) -> None:
        self.logs = logs
        self.node = node

    async def read(self, q: LogQuery) -> list[str]:
        keep = written_for(q.request_id) if q.request_id else None
        lines = await self.logs.read(q.function, None if keep else q.tail)
        if keep:
            lines = [line for line in lines if keep(line)]
            lines = lines[len(lines) - q.tail :] if q.tail is not None and q.tail < len(lines) else lines
        return lines

    def respond(self, lines: Sequence[NodeLine], q: LogQuery, headers: dict[str, str] | None = None) -> web.Response:
        content_type = NDJSON if q.form == "json" else "text/plain"
        return web.Response(body=_encoded(lines, q.form), content_type=content_type, charset="utf-8", headers=headers)

    async def serve(
        self, request: web.Request, q: LogQuery, headers: dict[str, str] | None = None, notice: str | None = None
    ) -> web.StreamResponse:
        """The records; with follow the answer stays open and streams new ones (``notice`` first, when given).

        A follower is registered before the file is read, and the read comes after every record appended so
        far (faasd/pool/logs.py): no record is missed or sent twice. A follower that falls more than
        FOLLOW_BACKLOG lines behind gets a last line saying so and the answer ends.
        """
        keep = written_for(q.request_id) if q.request_id else None
        follower = self.logs.follow(q.function) if q.follow else None
        try:
            lines = await self.read(q)
            if follower is None:
                return self.respond([(self.node, line) for line in lines], q, headers)
            content_type = f"{NDJSON if q.form == 'json' else 'text/plain'}; charset=utf-8"
            response = web.StreamResponse(headers={"Content-Type": content_type, **(headers or {})})
            await response.prepare(request)
            if notice is not None:
                lines = [format_record(utc_stamp(), "faasd", "faasd", notice), *lines]
            if lines:
                await response.write(_encoded([(self.node, line) for line in lines], q.form))
            while (batch := await follower.get()) is not None:
                if keep:
                    batch = [line for line in batch if keep(line)]
                    if not batch:
                        continue
                await response.write(_encoded([(self.node, line) for line in batch], q.form))
            await response.write_eof()
            return response
        finally:
            if follower is not None:
                self.logs.unfollow(q.function, follower)


class ClusterLogs:
    """The records of every node: this node's and those the live nodes in the heartbeat's view answer."""

    def __init__(self, local: LocalLogs, heartbeat: Heartbeat, session: aiohttp.ClientSession, token: str) -> None:
        self.local = local
        self.heartbeat = heartbeat
        self._session = session
        self._auth = {"Authorization": f"Bearer {token}"}

    @property
    def node(self) -> str:
        return self.heartbeat.node

    async def serve(self, request: web.Request, q: LogQuery) -> web.StreamResponse:
        if q.node == LOCAL:  # named, so that the asker can tell it reached the node it meant to
            return await self.local.serve(request, q, {NODES_HEADER: self.node})
        if q.node is not None:
            if q.node == self.node:
                return await self.local.serve(request, q, {NODES_HEADER: self.node})
            return await self._relay(request, q, q.node)
        others = self.heartbeat.others()
        if not others:
            return await self.local.serve(request, q)  # one node: as on one machine
        names = ", ".join(n.id for n in others)
        if q.follow:
            notice = (
                f"following node {self.node} only; the lines of node(s) {names} are not shown "
                "(follow one of them with ?node=ID, faas fn logs -f --node ID)"
            )
            missing = {NODES_HEADER: self.node, MISSING_HEADER: ",".join(n.id for n in others)}
            return await self.local.serve(request, q, missing, notice)
        now = self.heartbeat.view.now
        live = [n for n in others if self.heartbeat.live(n, now)]
        missing_ids = [n.id for n in others if n not in live]
        mine, theirs = await asyncio.gather(
            self.local.read(q), asyncio.gather(*(self._ask(n.id, n.url, q) for n in live))
        )
        parts: dict[str, list[str]] = {self.node: mine}
        for node, lines in zip(live, theirs, strict=True):
            if lines is None:
                missing_ids.append(node.id)
            else:
                parts[node.id] = lines
        headers = {NODES_HEADER: ",".join(parts)}
        if missing_ids:
            headers[MISSING_HEADER] = ",".join(sorted(missing_ids))
        return self.local.respond(merge(parts, q.tail), q, headers)

    def _url(self, base: str, q: LogQuery) -> str:
        return f"{base}/v1/functions/{q.function}/logs"

    async def _ask(self, node: str, base: str, q: LogQuery) -> list[str] | None:
        """Another node's records, or None when it did not answer them within :data:`PEER_TIMEOUT`."""
        try:
            async with self._session.get(
                self._url(base, q),
                params=q.params(),
                headers=self._auth,
                timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT),
            ) as answer:
                body = await answer.read()
                if answer.status != 200:
                    log.info("node %s answered the logs of %s with %d: %s", node, q.function, answer.status, body[:200])
                    return None
                answered = answer.headers.get(NODES_HEADER)
                if answered != node:  # its URL reaches another node (this one, at 0.0.0.0?): not its records
                    log.warning("node %s's URL %s reached node %s: set its --advertise-url", node, base, answered)
                    return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("node %s (%s) did not answer the logs of %s: %s", node, base, q.function, exc or "timed out")
            return None
        return body.decode("utf-8", errors="replace").splitlines()

    async def _relay(self, request: web.Request, q: LogQuery, node: str) -> web.StreamResponse:
        """``?node=ID``: that node's answer, relayed as it comes (also a follow)."""
        target = next((n for n in self.heartbeat.others() if n.id == node), None)
        if target is None:
            await self.heartbeat.beat()  # a node that joined since the last beat
            target = next((n for n in self.heartbeat.others() if n.id == node), None)
        if target is None:
            known = ", ".join(n.id for n in self.heartbeat.view.nodes) or self.node
            raise BadRequest(f"no node '{node}' in this cluster (its nodes: {known}; GET /v1/nodes lists them)")
        timeout = aiohttp.ClientTimeout(total=None if q.follow else RELAY_TIMEOUT, sock_connect=PEER_TIMEOUT)
        response: web.StreamResponse | None = None
        try:
            async with self._session.get(
                self._url(target.url, q),
                params=q.params(follow=q.follow, form=q.form),
                headers=self._auth,
                timeout=timeout,
            ) as answer:
                if answer.status != 200:  # the other node's error (its function unknown, ...), as it said it
                    return web.Response(
                        status=answer.status, body=await answer.read(), content_type=answer.content_type
                    )
                content_type = answer.headers.get("Content-Type", "text/plain; charset=utf-8")
                response = web.StreamResponse(headers={"Content-Type": content_type, NODES_HEADER: node})
                await response.prepare(request)
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if response is None:
                raise NodeUnreachable(
                    f"node '{node}' at {target.url} did not answer ({exc or 'timed out'}); "
                    "GET /v1/nodes shows whether it is live"
                ) from None
            log.info("the relay of node %s's logs of %s ended: %s", node, q.function, exc or "timed out")
        await response.write_eof()
        return response
