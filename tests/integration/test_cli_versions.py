"""`faas fn versions`, `faas fn rollback` and `faas canary` against a live faasd on the real engine.

Each command runs as a subprocess (`python -m faas_cli`, FAAS_URL pointing at
the module's daemon); a failure is exit 1 and one `error:` line.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.integration.harness import FaasdProcess

pytestmark = pytest.mark.docker

CODE = "def main():\n    return 'v{n}'\n"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have succeeded."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr, result.stderr


def rows(text: str) -> list[dict[str, str]]:
    """A CLI table's rows (cells split on runs of 2+ spaces) by header."""
    header, *lines = [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]
    return [dict(zip(header, line, strict=True)) for line in lines]


def test_versions_list_each_update_and_rollback_brings_the_old_code_back(faasd: FaasdProcess, tmp_path: Path) -> None:
    source = tmp_path / "greet.py"
    session = requests.Session()

    def answer() -> str:
        response = session.get(f"{faasd.url}/function/greet", timeout=30)
        assert response.status_code == 200, response.text
        return response.text

    source.write_text(CODE.format(n=1))
    ok(faasd.faas("fn", "create", "--name", "greet", "--env", "python", "--code", str(source)))
    for n in (2, 3):
        source.write_text(CODE.format(n=n))
        ok(faasd.faas("fn", "update", "--name", "greet", "--code", str(source)))
    assert answer() == "v3"

    listed = rows(ok(faasd.faas("fn", "versions", "--name", "greet")))
    assert [(r["VERSION"], r["CHANGES"]) for r in listed] == [("3", "code"), ("2", "code"), ("1", "created")]
    assert all(len(r["CODE"]) == 12 for r in listed) and len({r["CODE"] for r in listed}) == 3
    documents = json.loads(ok(faasd.faas("fn", "versions", "--name", "greet", "-o", "json")))
    assert [d["version"] for d in documents] == [3, 2, 1]

    rolled = ok(faasd.faas("fn", "rollback", "--name", "greet", "--to", "1"))
    assert rolled == "function 'greet' rolled back to version 1's code and settings (now version 4)\n"
    assert answer() == "v1"
    listed = rows(ok(faasd.faas("fn", "versions", "--name", "greet")))
    assert [r["VERSION"] for r in listed] == ["4", "3", "2", "1"]
    assert listed[0]["CODE"] == listed[3]["CODE"] and listed[0]["CHANGES"] == "code"

    fails(faasd.faas("fn", "rollback", "--name", "greet", "--to", "9"), "function 'greet' has no version 9")
    fails(faasd.faas("fn", "versions", "--name", "nope"), "function 'nope' not found")


def test_a_canary_made_with_the_cli_rolls_forward_with_a_healthy_function(faasd: FaasdProcess) -> None:
    for name in ("shop-v1", "shop-v2"):
        faasd.create_function(name, "python", f"def main():\n    return {name!r}\n")
    faasd.ok("POST", "/v1/triggers/http", json={"url": "/shop", "function": "shop-v1", "name": "shop"})

    made = faasd.faas("canary", "create", "--name", "shop-canary", "--newfunction", "shop-v2",
                      "--oldfunction", "shop-v1", "--httptrigger", "shop", "--increment-step", "50",
                      "--increment-interval", "1s", "--failure-type", "status-code")  # fmt: skip
    assert ok(made).startswith("canary 'shop-canary' created: route 'shop' sends 50% of its calls to 'shop-v2'")
    assert made.stderr.startswith("note: --failure-type ignored"), made.stderr
    assert rows(ok(faasd.faas("canary", "list")))[0]["STATUS"] in ("running", "succeeded")

    # Call the route, as its users would, until the canary ends (bounded).
    session = requests.Session()
    deadline = time.monotonic() + 60
    status = "running"
    while status == "running" and time.monotonic() < deadline:
        for _ in range(10):
            assert session.get(faasd.url + "/shop", timeout=30).status_code == 200
        status = faasd.ok("GET", "/v1/canaries/shop-canary")["status"]
    assert status == "succeeded", faasd.ok("GET", "/v1/canaries/shop-canary")

    shown = ok(faasd.faas("canary", "get", "--name", "shop-canary")).splitlines()
    canary = rows("\n".join(shown[:2]))[0]
    assert (canary["STATUS"], canary["WEIGHT"], canary["INTERVAL"]) == ("succeeded", "100", "1s")
    assert shown[2].startswith("reason: 'shop-v2' takes every call of route 'shop'")
    assert [step["WEIGHT"] for step in rows("\n".join(shown[4:]))] == ["50", "100"]
    assert {session.get(faasd.url + "/shop", timeout=30).text for _ in range(10)} == {"shop-v2"}

    fails(faasd.faas("canary", "update", "--name", "shop-canary", "--increment-step", "10"), "has ended")
    ok(faasd.faas("canary", "delete", "--name", "shop-canary"))
    fails(faasd.faas("canary", "get", "--name", "shop-canary"), "canary 'shop-canary' not found")
