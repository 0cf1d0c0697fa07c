"""The specialization request a runtime takes, encoded in one place.

The Docker engine backend sends exactly these bytes to ``POST /v2/specialize``,
and the controller measures them when a function is created or updated, so a
function that faasd accepts always fits what the runtimes accept
(runtimes/README.md: at most :data:`MAX_SPECIALIZE_BYTES` of request body).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

# The runtimes' limit on the specialization request (runtimes/*/server.*).
MAX_SPECIALIZE_BYTES = 8 * 1024 * 1024


def encode_specialization(filename: str, code: bytes, entrypoint: str, env: Mapping[str, str]) -> bytes:
    """The JSON body of ``POST /v2/specialize``."""
    return _encode(
        {"filename": filename, "code": code.decode("utf-8", errors="replace"), "entrypoint": entrypoint, "env": env}
    )


# Where faasd unpacks a package's deployment archive in a runtime container
# (a volume of the container; the function can read it, not write it).
DEPLOY_ROOT = "/faasd"
DEPLOY_DIR = DEPLOY_ROOT + "/deploy"


def encode_deploy_specialization(label: str, entrypoint: str, env: Mapping[str, str]) -> bytes:
    """The JSON body of ``POST /v2/specialize`` for a package: the code is in :data:`DEPLOY_DIR` already."""
    return _encode({"filename": label, "deploy_dir": DEPLOY_DIR, "entrypoint": entrypoint, "env": env})


def _encode(doc: Mapping[str, object]) -> bytes:
    # Not ASCII-escaped: UTF-8 source stays its own size on the wire.
    fields = {k: dict(v) if isinstance(v, Mapping) else v for k, v in doc.items()}
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
