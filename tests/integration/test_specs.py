"""`faas spec` against a real faasd: a spec directory applied (twice: the second changes nothing), its
route called, the daemon exported, destroyed and applied again from the export to the same state, and
``--delete`` removing a function the specs dropped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import requests
import yaml

from faas_cli.specs import schema
from tests.integration.harness import FaasdProcess
from tests.unit.test_specs import assert_fission_fields

KINDS = {
    "environment": "/v1/environments",
    "package": "/v1/packages",
    "function": "/v1/functions",
    "route": "/v1/triggers/http",
    "timer": "/v1/timers",
    "watch": "/v1/watches",
    "mqtrigger": "/v1/triggers/mq",
}
# What changes with every make, build and tick, not with what was asked for.
VOLATILE = {"created_at", "updated_at", "last_tick_at", "next_run_at", "build_log", "version", "revision"}

SPECS = """\
apiVersion: fission.io/v1
kind: Environment
metadata: {name: spec-py}
spec:
  version: 3
  runtime: {image: "fission/python-env:latest"}
  builder: {image: "fission/python-builder:latest"}
  poolsize: 1
---
kind: ArchiveUploadSpec
name: shop-src
include: ["shop/*"]
exclude: ["__pycache__"]
---
apiVersion: fission.io/v1
kind: Package
metadata: {name: spec-shop}
spec:
  environment: {name: spec-py}
  source: {type: url, url: "archive://shop-src"}
---
apiVersion: fission.io/v1
kind: Function
metadata:
  name: spec-shop
  labels: {team: web}
  annotations: {faasd.io/env: '{"GREETING": "hello from the specs"}'}
spec:
  environment: {name: spec-py}
  package: {packageref: {name: spec-shop}, functionName: main.main}
  functionTimeout: 30
  resources: {limits: {memory: 128Mi, cpu: 500m}}
---
kind: ArchiveUploadSpec
name: tick-code
include: [tick.py]
---
apiVersion: fission.io/v1
kind: Package
metadata: {name: tick-code}
spec:
  environment: {name: spec-py}
  deployment: {type: url, url: "archive://tick-code"}
---
apiVersion: fission.io/v1
kind: Function
metadata: {name: spec-tick}
spec:
  environment: {name: spec-py}
  package: {packageref: {name: tick-code}}
---
apiVersion: fission.io/v1
kind: HTTPTrigger
metadata: {name: spec-shop}
spec:
  relativeurl: /spec-shop/{item}
  methods: [GET, POST]
  functionref: {type: name, name: spec-shop}
---
apiVersion: fission.io/v1
kind: TimeTrigger
metadata: {name: spec-nightly}
spec:
  cron: "CRON_TZ=Europe/Berlin 0 3 * * *"
  functionref: {type: name, name: spec-tick}
"""


def make_project(root: Path) -> Path:
    (root / "shop" / "__pycache__").mkdir(parents=True)
    (root / "shop" / "__pycache__" / "junk.pyc").write_bytes(b"\0junk")
    (root / "shop" / "main.py").write_text(
        "import os\n\n\ndef main(context):\n    return os.environ['GREETING'] + ': ' + context.request.params['item']\n"
    )
    (root / "shop" / "requirements.txt").write_text("\n")
    (root / "tick.py").write_text("def main():\n    return 'tick'\n")
    return root / "specs"


def spec(faasd: FaasdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    result = faasd.faas("spec", *args)
    assert result.returncode == 0, f"faas spec {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def state(faasd: FaasdProcess) -> dict[str, dict[str, Any]]:
    """Every object faasd has, by kind and name, without what changes by itself."""
    found: dict[str, dict[str, Any]] = {}
    for kind, path in KINDS.items():
        items = faasd.ok("GET", path)["items"]
        found[kind] = {i["name"]: {k: v for k, v in i.items() if k not in VOLATILE} for i in items}
    return found


def test_apply_export_destroy_apply_and_delete(faasd: FaasdProcess, tmp_path: Path) -> None:
    specdir = make_project(tmp_path / "app")
    spec(faasd, "init", "--specdir", str(specdir))
    (specdir / "app.yaml").write_text(SPECS)
    spec(faasd, "validate", "--specdir", str(specdir))

    first = spec(faasd, "apply", "--specdir", str(specdir), "--wait")
    assert "package 'spec-shop' built" in first.stdout
    made = state(faasd)
    uid = yaml.safe_load((specdir / "fission-deployment-config.yaml").read_text())["uid"]
    assert made["function"]["spec-shop"]["labels"] == {"team": "web", schema.UID_LABEL: uid, schema.NAME_LABEL: "app"}
    assert made["function"]["spec-shop"]["memory_mb"] == 128 and made["function"]["spec-shop"]["cpu_millis"] == 500
    assert made["function"]["spec-tick"]["filename"] == "tick.py" and not made["function"]["spec-tick"]["package"]
    assert made["environment"]["spec-py"]["image"] == "faasd/runtime-python:latest"
    assert made["timer"]["spec-nightly"]["timezone"] == "Europe/Berlin"
    assert {n: r["method"] for n, r in made["route"].items()} == {"spec-shop": "GET", "spec-shop-post": "POST"}
    assert "spec-tick-code" not in made["package"]  # one plain file: the function's own code

    # Again: nothing to do, nothing touched (not even the archive sent again).
    before = {k: {n: i["updated_at"] for n, i in v.items()} for k, v in _raw(faasd).items()}
    second = spec(faasd, "apply", "--specdir", str(specdir))
    assert "everything up to date" in second.stdout, second.stdout
    assert {k: {n: i["updated_at"] for n, i in v.items()} for k, v in _raw(faasd).items()} == before

    answer = requests.get(f"{faasd.url}/spec-shop/shoes", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.text == "hello from the specs: shoes"

    # Export: Fission's own documents, the files beside them.
    exported = tmp_path / "exported"
    spec(faasd, "export", str(exported))
    for path in sorted((exported / "specs").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert_fission_fields(doc)
    assert (exported / "functions" / "spec-tick" / "tick.py").read_text() == "def main():\n    return 'tick'\n"
    package = list(yaml.safe_load_all((exported / "specs" / "package-spec-shop.yaml").read_text()))[1]
    has_sources = "source" in package["spec"]  # else this faasd does not hand out sources: the deployment
    assert (exported / "packages" / "spec-shop" / "main.py").exists()

    # Destroy what the export's deployment made (the same uid), then apply the export: the same state.
    spec(faasd, "destroy", "--specdir", str(exported / "specs"))
    gone = state(faasd)
    for kind in KINDS:
        assert not any(schema.UID_LABEL in i.get("labels", {}) for i in gone[kind].values()), kind
    assert set(gone["environment"]) == {"nodejs", "python"}  # the stock ones were not the spec's
    shutil.rmtree(tmp_path / "app")  # the export stands alone
    spec(faasd, "apply", "--specdir", str(exported / "specs"), "--wait")
    again = state(faasd)
    if not has_sources:  # a faasd that does not hand out sources: the built deployment came back instead
        for package in (made["package"]["spec-shop"], again["package"]["spec-shop"]):
            for key in ("source_sha256", "source_size", "deploy_sha256", "deploy_size", "status", "error"):
                package.pop(key, None)
    assert again == made, differences(again, made)
    assert requests.get(f"{faasd.url}/spec-shop/hats", timeout=30).text == "hello from the specs: hats"

    # --delete: a function (and its timer) dropped from the specs goes; the rest stays.
    for name in ("function-spec-tick.yaml", "timetrigger-spec-nightly.yaml"):
        (exported / "specs" / name).unlink()
    dropped = spec(faasd, "apply", "--specdir", str(exported / "specs"), "--delete")
    assert "function 'spec-tick' deleted" in dropped.stdout and "timer 'spec-nightly' deleted" in dropped.stdout
    left = state(faasd)
    assert "spec-tick" not in left["function"] and "spec-nightly" not in left["timer"]
    assert "spec-shop" in left["function"]

    spec(faasd, "destroy", "--specdir", str(exported / "specs"))
    assert "spec-shop" not in state(faasd)["function"]


def differences(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> list[str]:
    found = []
    for kind in a:
        for name in sorted(set(a[kind]) | set(b[kind])):
            x, y = a[kind].get(name, {}), b[kind].get(name, {})
            found += [
                f"{kind} {name} {k}: {x.get(k)!r} != {y.get(k)!r}"
                for k in sorted(set(x) | set(y))
                if x.get(k) != y.get(k)
            ]
    return found


def _raw(faasd: FaasdProcess) -> dict[str, dict[str, Any]]:
    return {kind: {i["name"]: i for i in faasd.ok("GET", path)["items"]} for kind, path in KINDS.items()}
