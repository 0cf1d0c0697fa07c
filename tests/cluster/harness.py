"""Two faasd nodes on one PostgreSQL, behind nginx with deploy/nginx.conf: the cluster of issue 17.

Each node is a real faasd process (tests/integration/harness.py) with a state
dir, port and owner label of its own (so its own pools, instances and
firewall chains) and the same ``--database`` (a fresh database on the
session's PostgreSQL, tests/postgres.py) and admin token. nginx runs the
repository's deploy/nginx.conf with only its addresses and file paths
replaced (each replacement must match, so the file the tests run is the file
users get).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import docker
import requests

from tests.integration.harness import ROOT, FaasdProcess, free_port, wait_for
from tests.postgres import PostgresServer

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
INSTALL_HINT = "install it with `make nginx` (scripts/ensure-nginx.sh: apt-get install nginx)"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        raise AssertionError(f"nginx is not installed: {INSTALL_HINT}")
    return found


def render_nginx_conf(listen: int, nodes: list[int], folder: Path) -> str:
    """deploy/nginx.conf for this test: its port, the nodes' ports, files under ``folder``."""
    text = NGINX_CONF.read_text()

    def replace(pattern: str, new: str, count: int = 1) -> None:
        nonlocal text
        text, found = re.subn(pattern, new, text)
        assert found == count, f"deploy/nginx.conf: expected {count} match(es) of {pattern!r}, found {found}"

    replace(r"listen 127\.0\.0\.1:8080;", f"listen 127.0.0.1:{listen};")
    servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in nodes)
    replace(r"(?m)^ *server 127\.0\.0\.1:808[12] [^\n]*;\n(?: *server 127\.0\.0\.1:808[12] [^\n]*;)", servers)
    replace(r"/tmp/faasd-nginx", str(folder / "nginx"), count=6)
    return text


class Nginx:
    def __init__(self, folder: Path, nodes: list[int]) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(render_nginx_conf(self.port, nodes, folder))
        self.log_path = folder / "nginx.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        binary = nginx_binary()
        check = subprocess.run([binary, "-t", "-c", str(self.conf)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t: {check.stderr}"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-c", str(self.conf), "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self._listening, f"nginx to listen on {self.port} (log: {self.log_path})", timeout=20)
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"nginx exited with {self.proc.returncode}: {self.log_path.read_text()}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish their requests
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Cluster:
    """Nodes ``a`` and ``b`` and nginx in front; :meth:`close` leaves no process or container."""

    def __init__(self, engine: docker.DockerClient, postgres: PostgresServer, folder: Path, **options: Any) -> None:
        self.postgres = postgres
        self.database = postgres.create_database()
        self.database_url = postgres.url(self.database)
        token = secrets.token_hex(24)
        self.nodes: list[FaasdProcess] = []
        for name in ("a", "b"):
            state = folder / f"node-{name}"
            state.mkdir(parents=True, exist_ok=True)
            (state / "token").write_text(token + "\n")  # one admin token for every node
            (state / "token").chmod(0o600)
            self.nodes.append(FaasdProcess(state, engine, database=self.database_url, **options))
        self.nginx = Nginx(folder / "nginx", [node.port for node in self.nodes])
        self.token = token

    @property
    def a(self) -> FaasdProcess:
        return self.nodes[0]

    @property
    def b(self) -> FaasdProcess:
        return self.nodes[1]

    @property
    def url(self) -> str:
        return self.nginx.url

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        self.nginx.start()
        return self

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The admin API through nginx."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, timeout=60, headers=headers, **kwargs)

    def close(self) -> None:
        self.nginx.stop()
        for node in self.nodes:
            node.cleanup()
        self.postgres.drop_database(self.database)
