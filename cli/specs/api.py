"""The API calls of ``faas spec``: every kind listed, made, changed and deleted with its labels.

:class:`SpecClient` is the CLI's :class:`FaasClient` (same connection, token,
errors) with the calls that take labels for every kind alike, by the kind
names of :mod:`faas_cli.specs.mapping`.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import IO, Any

import typer

from faas_cli.client import DEFAULT_SERVER, FaasClient, Json
from faas_cli.credentials import token_for
from faas_cli.errors import ApiError
from faas_cli.options import Connection
from faas_cli.specs.mapping import PATHS, WATCH_FILTER


def _segment(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class SpecClient(FaasClient):
    def items(self, kind: str, selector: str | None = None) -> list[Json]:
        """Every object of ``kind`` (``selector``: only those with that label, ``key=value`` or ``key``)."""
        query = f"?{urllib.parse.urlencode({'label': selector})}" if selector else ""
        found = self._items(PATHS[kind] + query)
        if kind == "watch":  # faasd: the filter is "labels", the watch's own "resource_labels"
            for item in found:
                item[WATCH_FILTER] = item.pop("labels", None) or {}
                item["labels"] = item.pop("resource_labels", None) or {}
        return found

    def body(self, kind: str, fields: dict[str, Any], labels: dict[str, str] | None) -> dict[str, Any]:
        body = dict(fields)
        own = "labels"
        if kind == "watch":
            if WATCH_FILTER in body:
                body["labels"] = body.pop(WATCH_FILTER)
            own = "resource_labels"
        if labels is not None:
            body[own] = labels
        return body

    def create(self, kind: str, name: str, fields: dict[str, Any], labels: dict[str, str]) -> Json:
        return self._json("POST", PATHS[kind], {"name": name, **self.body(kind, fields, labels)})

    def update(self, kind: str, name: str, fields: dict[str, Any], labels: dict[str, str] | None) -> Json:
        return self._json("PATCH", f"{PATHS[kind]}/{_segment(name)}", self.body(kind, fields, labels))

    def delete(self, kind: str, name: str) -> None:
        self._call("DELETE", f"{PATHS[kind]}/{_segment(name)}")

    def put_package(
        self,
        name: str,
        fields: dict[str, str],
        labels: dict[str, str] | None,
        source: Path | None,
        deploy: Path | None,
        *,
        new: bool,
    ) -> Json:
        """Create (``new``) or change a package: its fields, labels and archives as one multipart upload."""
        form = dict(fields)
        if labels is not None:
            form["labels"] = json.dumps(labels)
        files = {k: v for k, v in (("source", source), ("deploy", deploy)) if v is not None}
        if new:
            return self._upload("POST", "/v1/packages", {"name": name, **form}, files)
        return self._upload("PATCH", f"/v1/packages/{_segment(name)}", form, files)

    def download(self, path: str, out: IO[bytes]) -> None:
        with self._open_api("GET", path, timeout=self._timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)

    def package_source(self, name: str, out: IO[bytes]) -> bool:
        """Write package ``name``'s source archive (a tar) to ``out``; False when this faasd does not serve it."""
        try:
            self.download(f"/v1/packages/{_segment(name)}/source", out)
        except ApiError as error:
            if error.status in (404, 405) and (not error.code or "no admin API endpoint" in error.message):
                return False  # this faasd has no such endpoint
            raise
        return True


def spec_client(ctx: typer.Context) -> SpecClient:
    """The client for the daemon the global options name (as faas_cli.options.client_of)."""
    connection = ctx.find_object(Connection) or Connection(server=DEFAULT_SERVER)
    return SpecClient(connection.server, token_for(connection.server, connection.token))
