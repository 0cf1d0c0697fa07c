"""`faasd`: read the settings, configure logging, serve until SIGTERM/SIGINT.

Start: the services and the admin app (faasd/app.py) on a unix socket in a
private directory, then the public listener (faasd/dataplane) on host:port.
Stop (uvicorn's order): stop accepting, let calls in flight finish within
SHUTDOWN_GRACE, close idle keep-alive connections, cut what is left, then the
admin app's cleanup, which stops the pool and removes the containers.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from typing import Any

from aiohttp import web

from faasd import __version__
from faasd.app import Services, create_app
from faasd.core.settings import Settings, load_settings
from faasd.dataplane import Front, FrontConfig
from faasd.dataplane.access import AccessLog
from faasd.dataplane.gateway import Gateway
from faasd.engines.docker import DockerBackend

SHUTDOWN_GRACE = 30.0
ADMIN_GRACE = 2.0

log = logging.getLogger("faasd")


async def serve(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    socket_dir, temporary = _admin_socket_dir(settings)
    runner: web.AppRunner | None = None
    server: asyncio.Server | None = None
    front: Front | None = None
    try:
        app = await create_app(settings)
        # The front drains first; what is left in aiohttp then is orphaned.
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=ADMIN_GRACE)
        await runner.setup()
        socket_path = os.path.join(socket_dir, "admin.sock")
        await web.UnixSite(runner, socket_path).start()
        services: Services = app["services"]
        config = FrontConfig(
            admin_socket=socket_path,
            max_body_bytes=settings.max_body_bytes,
            head_timeout=settings.head_timeout,
            keepalive_timeout=settings.keepalive_timeout,
            max_connections=settings.max_connections,
        )
        guard = services.backend.refuses_peer if isinstance(services.backend, DockerBackend) else None
        access = AccessLog(settings.access_log) if settings.access_log != "off" else None
        front = Front(
            Gateway(lambda: services.controller.catalog, services.pool),
            config,
            guard=guard,
            calls=services.pool.calls if settings.call_metrics else None,
            access_log=access,
        )
        try:
            server = await loop.create_server(front, settings.host, settings.port, reuse_address=True, backlog=1024)
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
            raise SystemExit(1) from None
        log.info("listening on http://%s:%d", settings.host, settings.port)
        await stop.wait()
        log.info("stopping: no new connections; calls in flight have %g s to finish", SHUTDOWN_GRACE)
    finally:
        if server is not None:
            server.close()
        if front is not None:
            await front.drain(SHUTDOWN_GRACE)
        if runner is not None:
            await runner.cleanup()
        if temporary:
            shutil.rmtree(socket_dir, ignore_errors=True)


def _admin_socket_dir(settings: Settings) -> tuple[str, bool]:
    """A 0700 folder for the admin app's socket: in the state dir (a kill -9 leaves
    nothing behind elsewhere), or a temporary one when that path is too long for a
    unix socket. The second value says whether to remove the folder at exit."""
    run_dir = settings.state_dir.resolve() / "run"
    if len(str(run_dir / "admin.sock")) < 100:
        run_dir.mkdir(parents=True, exist_ok=True)
        run_dir.chmod(0o700)
        return str(run_dir), False
    return tempfile.mkdtemp(prefix="faasd-"), True


def run(coro: Coroutine[Any, Any, None]) -> None:
    """On uvloop when it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


# `faasd <command> ...`: the commands besides serving (faasd/tools/), imported only when run.
COMMANDS = {
    "images": "faasd.tools.images",
    "doctor": "faasd.tools.doctor",
    "install": "faasd.tools.systemd",
    "uninstall": "faasd.tools.systemd",
}


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[args[0]])
        raise SystemExit(module.main(args[0], args[1:]))
    if args and args[0] == "serve":
        args = args[1:]
    settings = load_settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log.info(
        "faasd %s: http://%s:%d, state dir %s",
        __version__,
        settings.host,
        settings.port,
        settings.state_dir.resolve(),
    )
    run(serve(settings))


if __name__ == "__main__":
    main()
