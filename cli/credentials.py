"""Which API token `faas` sends.

``--token`` / ``FAAS_TOKEN`` when given. Otherwise, for a daemon on this
machine only, the token faasd keeps in its state dir: ``$FAASD_STATE_DIR/token``,
else ``./.faasd/token`` (where `make run` keeps it). A token file is never
read for a daemon elsewhere, so it cannot be sent off this machine.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from faas_cli.client import is_loopback

TOKEN_FILE = "token"
DEFAULT_STATE_DIR = ".faasd"


def token_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where a local faasd keeps its token."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("FAASD_STATE_DIR") or DEFAULT_STATE_DIR) / TOKEN_FILE


def token_for(server: str, given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The token to send to ``server``: ``given``, else a local daemon's token file, else None."""
    if given:
        return given
    if not is_loopback(urllib.parse.urlsplit(server.strip()).hostname or ""):
        return None
    try:
        token = token_file(environ).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None
