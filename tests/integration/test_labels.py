"""Labels on every resource: set at create, replaced by an update, shown, selected by, gone with the object."""

from __future__ import annotations

import io
import json
import tarfile

from tests.integration.harness import FaasdProcess

HELLO = "def main():\n    return 'ok'\n"


def source_archive() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        body = HELLO.encode()
        info = tarfile.TarInfo("hello.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return data.getvalue()


def test_labels_on_functions_routes_and_timers(faasd: FaasdProcess) -> None:
    uid = {"fission.io/deployment-uid": "4a7c0e2f", "app": "shop"}
    made = faasd.ok(
        "POST", "/v1/functions", json={"name": "lab", "environment": "python", "code": HELLO, "labels": uid}
    )
    assert made["labels"] == uid
    faasd.ok("POST", "/v1/functions", json={"name": "unlab", "environment": "python", "code": HELLO})
    faasd.ok("POST", "/v1/triggers/http", json={"name": "lab-r", "url": "/lab", "function": "lab", "labels": uid})
    faasd.ok("POST", "/v1/timers", json={"name": "lab-t", "function": "lab", "cron": "@hourly", "labels": uid})

    def names(path: str, selector: str) -> list[str]:
        return [i["name"] for i in faasd.ok("GET", f"{path}?label={selector}")["items"]]

    assert names("/v1/functions", "app=shop") == ["lab"]
    assert names("/v1/functions", "fission.io/deployment-uid") == ["lab"]
    assert names("/v1/functions", "app=other") == []
    assert names("/v1/triggers/http", "app=shop") == ["lab-r"]
    assert names("/v1/timers", "app=shop") == ["lab-t"]
    assert faasd.ok("GET", "/v1/functions/unlab")["labels"] == {}

    # An update with labels replaces them; one without leaves them; one with only labels changes nothing else.
    faasd.ok("PATCH", "/v1/functions/lab", json={"timeout": 30})
    assert faasd.ok("GET", "/v1/functions/lab")["labels"] == uid
    changed = faasd.ok("PATCH", "/v1/functions/lab", json={"labels": {"app": "shop2"}})
    assert changed["labels"] == {"app": "shop2"} and changed["timeout"] == 30
    bad = faasd.api("PATCH", "/v1/functions/lab", json={"labels": {"bad key!": "x"}})
    assert bad.status_code == 400 and "label key" in bad.json()["error"]["message"]
    assert faasd.api("GET", "/v1/functions?label=a=b=c!").status_code == 400

    # Deleted and made again under the same name: no label carries over.
    faasd.ok("DELETE", "/v1/timers/lab-t")
    again = faasd.ok("POST", "/v1/timers", json={"name": "lab-t", "function": "lab", "cron": "@daily"})
    assert again["labels"] == {}
    for path in ("/v1/timers/lab-t", "/v1/triggers/http/lab-r", "/v1/functions/lab", "/v1/functions/unlab"):
        faasd.api("DELETE", path)


def test_labels_on_packages_and_environments(faasd: FaasdProcess) -> None:
    env = faasd.ok("POST", "/v1/environments", json={"name": "labenv", "image": "faasd/runtime-python:latest",
                                                     "poolsize": 0, "labels": {"tier": "dev"}})  # fmt: skip
    assert env["labels"] == {"tier": "dev"}
    files = {"deploy": ("deploy.tar.gz", source_archive(), "application/gzip")}
    form = {"name": "labpkg", "environment": "labenv", "labels": json.dumps({"tier": "dev"})}
    made = faasd.api("POST", "/v1/packages", data=form, files=files)
    assert made.status_code == 201, made.text
    assert made.json()["labels"] == {"tier": "dev"}
    assert [p["name"] for p in faasd.ok("GET", "/v1/packages?label=tier=dev")["items"]] == ["labpkg"]
    relabelled = faasd.api("PATCH", "/v1/packages/labpkg", files={"labels": (None, json.dumps({"tier": "prod"}))})
    assert relabelled.status_code == 200, relabelled.text  # labels alone are a change of their own
    assert relabelled.json()["labels"] == {"tier": "prod"}
    bad = faasd.api("POST", "/v1/packages", data={**form, "name": "labpkg2", "labels": "{"}, files=files)
    assert bad.status_code == 400 and "labels" in bad.json()["error"]["message"]
    faasd.api("DELETE", "/v1/packages/labpkg?force=true")
    faasd.api("DELETE", "/v1/environments/labenv")
