"""schemathesis against a live faasd: no 5xx, no answer that breaks the published schema."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from tests.integration.harness import FaasdProcess, wait_for

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "ignored_auth",
    )
)


def call_async(daemon: FaasdProcess, function: str, end: str) -> None:
    call_id = requests.post(f"{daemon.url}/async-function/{function}", timeout=30).json()["call_id"]
    wait_for(
        lambda: daemon.ok("GET", f"/v1/invocations/{call_id}?wait=5")["status"] == end,
        f"the call of {function} to be {end}",
        timeout=60,
    )


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    start_faasd: Callable[..., FaasdProcess], tmp_path: Path
) -> None:
    # Pools of 0: the generated environments and functions need no containers.
    daemon = start_faasd(default_poolsize=0)
    # Events to list (the generated timers and watches mostly name functions that do not exist, and
    # asynchronous calls are not in the document): a call that succeeded, a dead letter, a timer, a watch.
    daemon.create_function("target", "python", "def main():\n    return 'ok'\n")
    daemon.create_function("broken", "python", "def main():\n    return ('down', 500)\n", retries=0)
    call_async(daemon, "target", "succeeded")
    call_async(daemon, "broken", "dead")
    daemon.ok("POST", "/v1/timers", json={"name": "hourly", "function": "target", "cron": "@hourly"})
    daemon.ok("POST", "/v1/watches", json={"name": "volumes", "function": "target", "type": "volume"})
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{daemon.url}/v1/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "10",
            "--seed",
            "20261127",
            "--max-time",
            "60",
            # A followed log never ends by design; tests/integration/test_functions.py covers it.
            "--exclude-operation-id",
            "getFunctionLogs",
            "--request-timeout",
            "30",
            "--header",
            f"Authorization: Bearer {daemon.token}",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # The operations less the followed log; the package uploads are multipart/form-data with
    # binary archives, which schemathesis generates (random bytes: refused as 400, never a 5xx).
    assert "Tested: 67" in run.stdout, run.stdout[-3000:]
    assert "unexpected error" not in daemon.log()
