"""Helpers for the runtime tests: an HTTP client and a host-process runner."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RUNTIMES = REPO / "runtimes"
LANGS = ("nodejs", "python")
SERVER = {"nodejs": RUNTIMES / "nodejs" / "server.js", "python": RUNTIMES / "python" / "server.py"}
IMAGES = {
    "nodejs": "faasd/runtime-nodejs:latest",
    "python": "faasd/runtime-python:latest",
    "ruby": "faasd/runtime-ruby:latest",
}
BUILDERS = {"nodejs": "faasd/builder-nodejs:latest", "python": "faasd/builder-python:latest"}
# Where faasd puts a package's deployment in a runtime container (read-only).
DEPLOY_DIR = "/faasd/deploy"
LABEL = {"faasd.test": "runtimes"}  # on every container these tests start
READY_TIMEOUT = 10.0
TOKEN_ENV = "FAASD_SPECIALIZE_TOKEN"


class _Own:
    def __repr__(self) -> str:
        return "OWN"


OWN: Any = _Own()  # specialize(token=OWN): send the runtime's own token


def new_token() -> str:
    """A specialization token as faasd makes one: random, per container."""
    return secrets.token_urlsafe(32)


class Response:
    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        header_list: list[tuple[str, str]] | None = None,
    ):
        self.status = status
        self.headers = headers  # lower-case name -> the last value
        self.header_list = header_list or []  # every header line, in order
        self.body = body

    def all(self, name: str) -> list[str]:
        """Every value of header ``name`` (one per header line)."""
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:300]!r}>"


class RuntimeClient:
    """A keep-alive HTTP/1.1 client for one runtime server.

    ``token`` is the runtime's specialization token (None: started without one),
    sent by ``specialize`` as ``Authorization: Bearer <token>``.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0, token: str | None = None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.token = token
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | Any = None,
        headers: dict[str, str] | None = None,
        *,
        new_connection: bool = False,
        chunked: bool = False,
    ) -> Response:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout) if new_connection else self.conn
        hdrs = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if chunked:
            data = body
            body = iter([data[: len(data) // 2], data[len(data) // 2 :]])
            hdrs["Transfer-Encoding"] = "chunked"
        conn.request(method, path, body=body, headers=hdrs, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        pairs = resp.getheaders()
        result = Response(resp.status, {k.lower(): v for k, v in pairs}, data, pairs)
        if new_connection:
            conn.close()
        return result

    def open_stream(
        self, path: str, method: str = "GET", timeout: float = 5.0
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Starts a call on its own connection; returns once the status and headers are in.

        Read the body with ``read_until`` / ``resp.read()``; the socket timeout
        bounds every read. ``conn.close()`` drops the connection.
        """
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.request(method, path)
        return conn, conn.getresponse()

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def auth_headers(self, token: str | None = OWN) -> dict[str, str]:
        """``Authorization: Bearer <token>`` (OWN: the runtime's own; None or none: {})."""
        if token is OWN:
            token = self.token
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    def specialize(
        self,
        filename: str,
        code: str,
        entrypoint: str | None = None,
        env: dict[str, str] | None = None,
        *,
        token: str | None = OWN,
    ) -> Response:
        """POST /v2/specialize as faasd sends it: UTF-8 JSON, not ASCII-escaped.

        ``token``: the bearer token to send; OWN (default) = the runtime's own
        (none when it has none), None = no Authorization header at all.
        """
        doc: dict[str, Any] = {"filename": filename, "code": code}
        if entrypoint is not None:
            doc["entrypoint"] = entrypoint
        if env is not None:
            doc["env"] = env
        headers = {"Content-Type": "application/json", **self.auth_headers(token)}
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return self.request("POST", "/v2/specialize", body, headers)

    def specialize_deploy(
        self,
        deploy_dir: str | Path,
        entrypoint: str | None = None,
        env: dict[str, str] | None = None,
        *,
        filename: str | None = None,
        token: str | None = OWN,
        extra: dict[str, Any] | None = None,
    ) -> Response:
        """POST /v2/specialize for a package, as faasd sends it: the code is in ``deploy_dir``.

        ``filename``: the label faasd may send along; ``extra``: more fields.
        """
        doc: dict[str, Any] = {"deploy_dir": str(deploy_dir)}
        if filename is not None:
            doc["filename"] = filename
        if entrypoint is not None:
            doc["entrypoint"] = entrypoint
        if env is not None:
            doc["env"] = env
        doc.update(extra or {})
        headers = {"Content-Type": "application/json", **self.auth_headers(token)}
        return self.request("POST", "/v2/specialize", json.dumps(doc, ensure_ascii=False).encode(), headers)

    def close(self) -> None:
        self.conn.close()


def read_until(resp: http.client.HTTPResponse, wanted: bytes) -> bytes:
    """Reads a (chunked) body piece by piece as it arrives until ``wanted`` is in.

    Every read is bounded by the connection's socket timeout; a body that is
    buffered by the server instead of streamed makes this fail.
    """
    got = b""
    while wanted not in got:
        piece = resp.read1(65536)
        if not piece:
            raise AssertionError(f"the body ended before {wanted!r} arrived (got {got!r})")
        got += piece
    return got


def wait_until(predicate: Any, what: str, timeout: float = 5.0) -> Any:
    """Bounded polling."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def wait_healthy(host: str, port: int, timeout: float = READY_TIMEOUT, what: str = "") -> None:
    """Bounded polling of GET /healthz until it answers 200."""
    deadline = time.monotonic() + timeout
    last: Exception | str = "no answer"
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1.0)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200 and body == b"ok":
                return
            last = f"{resp.status} {body!r}"
        except OSError as e:
            last = e
        time.sleep(0.01)
    raise AssertionError(f"{what or f'{host}:{port}'} not healthy after {timeout}s: {last}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(lang: str) -> list[str]:
    # FAASD_TEST_NODEJS_CMD / FAASD_TEST_PYTHON_CMD replace the interpreter, e.g.
    # to run these tests on the image's Node 18 (PORT, FAASD_CODE_DIR and
    # FAASD_SPECIALIZE_TOKEN are in the environment):
    #   FAASD_TEST_NODEJS_CMD="docker run --rm --network host -e PORT -e FAASD_CODE_DIR
    #   -e FAASD_SPECIALIZE_TOKEN faasd/runtime-nodejs:latest node /app/server.js"
    override = os.environ.get(f"FAASD_TEST_{lang.upper()}_CMD")
    if override:
        return shlex.split(override)
    if lang == "nodejs":
        if shutil.which("node"):
            return ["node", str(SERVER["nodejs"])]
        # No Node.js on this machine (a bare Debian has none): run the server in
        # the runtime image, which is what faasd runs anyway. The host's temp
        # folder is mounted where it is, read-only, so that the deploy_dir of a
        # package test (a pytest tmp_path) is there too; as root in the
        # container, which can read pytest's 0700 folders; code goes to /run.
        tmp = tempfile.gettempdir()
        return [
            "docker", "run", "--rm", "--network", "host", "--label", "faasd.test=runtimes",
            "--user", "0:0", "-v", f"{tmp}:{tmp}:ro",
            "-e", "PORT", "-e", "FAASD_CODE_DIR=/run/faasd-function", "-e", TOKEN_ENV, "-e", "FAASD_USERFUNC_DIR",
            "faasd/runtime-nodejs:latest", "node", "/app/server.js",
        ]  # fmt: skip
    return [sys.executable, "-u", str(SERVER["python"])]


class HostRuntime(RuntimeClient):
    """A runtime server as a host process, started as faasd starts one: with a
    fresh specialization token in its environment (``token=None``: without)."""

    def __init__(self, lang: str, code_dir: Path, token: str | None = OWN):
        port = free_port()
        super().__init__("127.0.0.1", port, token=new_token() if token is OWN else token)
        self.lang = lang
        self.log_path = code_dir.parent / f"{lang}-{port}.log"
        env = dict(os.environ, PORT=str(port), FAASD_CODE_DIR=str(code_dir))
        env.pop("NODE_OPTIONS", None)
        env.pop(TOKEN_ENV, None)
        if self.token is not None:
            env[TOKEN_ENV] = self.token
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(server_command(lang), env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(self.host, port, what=f"{lang} runtime")
        except AssertionError:
            self.stop()
            raise AssertionError(f"{lang} runtime did not start:\n{self.output()}") from None

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def docker_client(images: Any = None) -> Any:
    """The Docker client, or a test FAILURE saying what is missing (engine, SDK or
    one of ``images``, default: the runtime images)."""
    import pytest

    try:
        import docker
        from docker.errors import ImageNotFound
    except ImportError:  # pragma: no cover
        pytest.fail("the docker SDK is not installed in this environment")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:
        pytest.fail(f"the Docker engine is not reachable ({e}); start it, then run make images")
    for image in IMAGES.values() if images is None else images:
        try:
            client.images.get(image)
        except ImageNotFound:
            pytest.fail(f"image {image} is missing: run make images (faasd images build)")
    return client


def readable_by_all(root: Path) -> Path:
    """Makes ``root`` readable (folders: searchable) by anyone, e.g. a container's uid 1000."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return root
