"""`faasd`: read the settings, configure logging, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from faasd import __version__
from faasd.app import create_app
from faasd.settings import load_settings

SHUTDOWN_GRACE = 30.0


def main(argv: Sequence[str] | None = None) -> None:
    settings = load_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("faasd")
    log.info(
        "faasd %s: http://%s:%d, state dir %s",
        __version__,
        settings.host,
        settings.port,
        settings.state_dir.resolve(),
    )
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
