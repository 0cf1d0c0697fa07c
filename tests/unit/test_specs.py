"""faas_cli.specs: reading Fission spec files, checking them, mapping them to faasd's objects and back,
and ArchiveUploadSpec archives (their digest is the one faasd gives them)."""

from __future__ import annotations

import base64
import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from faas_cli.errors import CliError
from faas_cli.specs import mapping, schema
from faas_cli.specs.archives import LocalArchive, go_glob_regex, read_archive, resolve_globs, tree_digest
from faas_cli.specs.files import (
    init,
    write_environment_spec,
    write_function_spec,
    write_package_spec,
    write_route_spec,
    write_timer_spec,
)
from faas_cli.specs.mapping import (
    WATCH_FILTER,
    cpu_millis,
    faasd_image,
    fission_image,
    group_routes,
    memory_mb,
    route_name,
)
from faas_cli.specs.model import ArchiveSpec, read_specs
from faas_cli.specs.validate import check
from faasd.builds import archive as faasd_archive

# -- Fission's documented fields, per kind (pkg/apis/core/v1/types.go, v1.2x; spec/types for the local kinds) --
# Kept here apart from faas_cli.specs.schema, so that an exported key that is not Fission's fails a test.

OBJECT_META = {"name", "namespace", "labels", "annotations", "uid", "resourceVersion", "creationTimestamp"}
FISSION_FIELDS: dict[str, set[str]] = {
    "Environment": {
        "spec.version", "spec.runtime.image", "spec.runtime.container", "spec.runtime.podspec",
        "spec.builder.image", "spec.builder.command", "spec.builder.container", "spec.builder.podspec",
        "spec.allowedFunctionsPerContainer", "spec.allowAccessToExternalNetwork", "spec.resources",
        "spec.poolsize", "spec.terminationGracePeriod", "spec.keeparchive", "spec.imagepullsecret",
    },
    "Package": {
        "spec.environment.namespace", "spec.environment.name",
        *(f"spec.{a}.{f}" for a in ("source", "deployment") for f in ("type", "literal", "url")),
        *(f"spec.{a}.checksum.{f}" for a in ("source", "deployment") for f in ("type", "sum")),
        "spec.buildcmd", "status.buildstatus", "status.buildlog", "status.lastUpdateTimestamp",
    },
    "Function": {
        "spec.environment.namespace", "spec.environment.name",
        "spec.package.packageref.namespace", "spec.package.packageref.name",
        "spec.package.packageref.resourceversion", "spec.package.functionName",
        "spec.secrets", "spec.configmaps", "spec.resources",
        "spec.InvokeStrategy.StrategyType",
        *(
            f"spec.InvokeStrategy.ExecutionStrategy.{f}"
            for f in ("ExecutorType", "MinScale", "MaxScale", "TargetCPUPercent", "SpecializationTimeout",
                      "hpaMetrics", "hpaBehavior")
        ),
        "spec.functionTimeout", "spec.idletimeout", "spec.concurrency", "spec.requestsPerPod", "spec.onceOnly",
        "spec.podspec",
    },
    "HTTPTrigger": {
        "spec.host", "spec.relativeurl", "spec.prefix", "spec.keepPrefix", "spec.method", "spec.methods",
        "spec.functionref.type", "spec.functionref.name", "spec.functionref.functionweights",
        "spec.createingress", "spec.ingressconfig.annotations", "spec.ingressconfig.path",
        "spec.ingressconfig.host", "spec.ingressconfig.tls",
    },
    "TimeTrigger": {"spec.cron", "spec.functionref.type", "spec.functionref.name", "spec.functionref.functionweights"},
    "MessageQueueTrigger": {
        "spec.functionref.type", "spec.functionref.name", "spec.functionref.functionweights",
        "spec.messageQueueType", "spec.topic", "spec.respTopic", "spec.errorTopic", "spec.maxRetries",
        "spec.contentType", "spec.pollingInterval", "spec.cooldownPeriod", "spec.minReplicaCount",
        "spec.maxReplicaCount", "spec.metadata", "spec.secret", "spec.mqtkind", "spec.podspec",
    },
    "KubernetesWatchTrigger": {
        "spec.namespace", "spec.type", "spec.labelselector", "spec.functionref.type", "spec.functionref.name",
        "spec.functionref.functionweights",
    },
    "DeploymentConfig": {"name", "uid"},
    "ArchiveUploadSpec": {"name", "rootdir", "include", "exclude"},
}  # fmt: skip
# Values that are Kubernetes' own types or free-form maps: their keys are not Fission's to define.
OPAQUE = {
    "metadata.labels", "metadata.annotations", "spec.resources", "spec.labelselector", "spec.metadata",
    "spec.podspec", "spec.secrets", "spec.configmaps",
}  # fmt: skip


def exported_paths(doc: dict[str, Any]) -> set[str]:
    """Every dotted key path of a document, down to the opaque values (apiVersion and kind left out)."""
    found: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if path in OPAQUE or not isinstance(value, dict) or not value:
            found.add(path)
            return
        for key, item in value.items():
            walk(item, f"{path}.{key}" if path else key)

    for key, value in doc.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            for meta in value:
                assert meta in OBJECT_META, f"metadata.{meta} is not Kubernetes' ObjectMeta"
                if f"metadata.{meta}" not in OPAQUE:
                    continue
            continue
        walk(value, key)
    return found


def assert_fission_fields(doc: dict[str, Any]) -> None:
    kind = doc["kind"]
    if kind in schema.RESOURCE_KINDS:
        assert doc["apiVersion"] == "fission.io/v1"
    unknown = exported_paths(doc) - FISSION_FIELDS[kind]
    assert not unknown, f"{kind} {doc.get('metadata', {}).get('name') or doc.get('name')}: not Fission's: {unknown}"


# -- helpers -----------------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def project(tmp_path: Path, *docs: dict[str, Any], uid: str = "u-1") -> Path:
    """A project with specs/ holding a DeploymentConfig and ``docs``; returns the spec directory."""
    specdir = tmp_path / "specs"
    init(specdir, "shop", uid)
    write(specdir / "all.yaml", yaml.safe_dump_all(list(docs), sort_keys=False))
    return specdir


def env_doc(name: str = "py", image: str = "faasd/runtime-python:latest", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fission.io/v1",
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": {"runtime": {"image": image}, **spec},
    }


def archive_spec(name: str, *include: str) -> dict[str, Any]:
    return {"kind": "ArchiveUploadSpec", "name": name, "include": list(include)}


def package_doc(name: str, env: str = "py", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fission.io/v1",
        "kind": "Package",
        "metadata": {"name": name},
        "spec": {"environment": {"name": env}, **spec},
    }


def function_doc(name: str, package: str, env: str = "py", **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", None)
    doc: dict[str, Any] = {
        "apiVersion": "fission.io/v1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {"environment": {"name": env}, "package": {"packageref": {"name": package}}, **spec},
    }
    if annotations:
        doc["metadata"]["annotations"] = annotations
    return doc


def trigger(kind: str, name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "fission.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    if annotations:
        doc["metadata"]["annotations"] = annotations
    return doc


def ref(name: str) -> dict[str, str]:
    return {"type": "name", "name": name}


def one_file_app(tmp_path: Path, *extra: dict[str, Any]) -> Path:
    write(tmp_path / "hello.py", "def main():\n    return 'hi'\n")
    return project(
        tmp_path,
        env_doc(),
        archive_spec("hello-code", "hello.py"),
        package_doc("hello-code", deployment={"type": "url", "url": "archive://hello-code"}),
        function_doc("hello", "hello-code", functionTimeout=30),
        *extra,
    )


def mapped(specdir: Path, tmp_path: Path) -> mapping.Mapped:
    return check(read_specs(specdir), tmp_path / "work")


def wanted(result: mapping.Mapped, kind: str, name: str) -> mapping.Wanted:
    return next(w for w in result.wanted if w.kind == kind and w.name == name)


# -- reading ------------------------------------------------------------------------------------------------


def test_init_writes_a_deployment_config_and_refuses_twice(tmp_path: Path) -> None:
    specdir = tmp_path / "app" / "specs"
    config = init(specdir)
    data = yaml.safe_load(config.read_text())
    assert data["kind"] == "DeploymentConfig" and data["apiVersion"] == "fission.io/v1"
    assert data["name"] == "app" and len(data["uid"]) == 36
    assert (specdir / "README").exists()
    with pytest.raises(CliError, match="spec directory already"):
        init(specdir)


def test_read_walks_subdirectories_and_multi_document_files(tmp_path: Path) -> None:
    specdir = project(tmp_path, env_doc("a"))
    write(specdir / "more" / "b.yml", yaml.safe_dump_all([env_doc("b"), {"kind": "Canary", "metadata": {}}]))
    write(specdir / "notes.txt", "kind: Environment\n")
    specs = read_specs(specdir)
    assert [d.name for d in specs.of("Environment")] == ["a", "b"]
    assert specs.config is not None and specs.config.uid == "u-1"
    assert any("unknown kind 'Canary'" in w for w in specs.warnings)
    assert specs.of("Environment")[1].where.endswith("more/b.yml:1")


def test_specignore_leaves_files_out(tmp_path: Path) -> None:
    specdir = project(tmp_path, env_doc("a"))
    write(specdir / "drafts" / "b.yaml", yaml.safe_dump(env_doc("b")))
    write(specdir / "c.yaml", yaml.safe_dump(env_doc("c")))
    write(specdir / ".specignore", "# drafts\ndrafts/*\n\nc.yaml\n")
    assert [d.name for d in read_specs(specdir).of("Environment")] == ["a"]
    write(specdir / "other-ignore", "all.yaml\n")
    assert [d.name for d in read_specs(specdir, "other-ignore").of("Environment")] == ["b", "c"]
    with pytest.raises(CliError, match=r"spec ignore file .* not found"):
        read_specs(specdir, "nope")


def test_read_refuses_duplicates_and_bad_yaml_with_the_place(tmp_path: Path) -> None:
    specdir = project(tmp_path, env_doc("a"), env_doc("a"))
    with pytest.raises(CliError, match=r"all.yaml:\d+: Environment 'a' is defined twice \(first at .*all.yaml:1\)"):
        read_specs(specdir)
    write(specdir / "all.yaml", "kind: Environment\nmetadata: [unclosed\n")
    with pytest.raises(CliError, match=r"all.yaml:\d+: not valid YAML"):
        read_specs(specdir)
    with pytest.raises(CliError, match="not found; make one with 'faas spec init'"):
        read_specs(tmp_path / "nowhere")


def test_check_reports_every_problem_at_once(tmp_path: Path) -> None:
    specdir = project(
        tmp_path,
        env_doc(),
        {**env_doc("Bad_Name")},
        archive_spec("unused", "nothing/*"),
        function_doc("orphan", "missing"),
        trigger("HTTPTrigger", "r", relativeurl="/r", functionref=ref("ghost")),
        trigger("TimeTrigger", "t", functionref=ref("orphan")),
        {**env_doc("typo"), "spec": {"runtime": {"image": "x"}, "poolsiz": 2}},
    )
    result = mapped(specdir, tmp_path)
    errors = "\n".join(result.errors)
    assert "archive 'unused' is not used by any package" in errors
    assert "'Bad_Name' is not a valid name" in errors
    assert "package 'missing' is not in the specs" in errors
    assert "function 'ghost' is not in the specs" in errors
    assert "spec.cron is required" in errors
    assert any("'spec.poolsiz' is not a field of Fission's Environment" in w for w in result.warnings)


def test_check_needs_a_deployment_config(tmp_path: Path) -> None:
    specdir = tmp_path / "specs"
    write(specdir / "a.yaml", yaml.safe_dump(env_doc()))
    result = mapped(specdir, tmp_path)
    assert any("no DeploymentConfig" in e for e in result.errors)


# -- Fission -> faasd ---------------------------------------------------------------------------------------


def test_a_package_of_one_plain_file_is_the_functions_code(tmp_path: Path) -> None:
    result = mapped(one_file_app(tmp_path), tmp_path)
    assert not result.errors, result.errors
    assert [w.kind for w in result.wanted] == ["environment", "function"]  # no faasd package for it
    fn = wanted(result, "function", "hello")
    assert fn.fields["code"] == "def main():\n    return 'hi'\n" and fn.fields["filename"] == "hello.py"
    assert fn.fields["timeout"] == 30 and "package" not in fn.fields
    assert fn.labels == {schema.UID_LABEL: "u-1", schema.NAME_LABEL: "shop"}


def test_function_fields_map_to_faasd_settings(tmp_path: Path) -> None:
    write(tmp_path / "src" / "main.py", "def main(): pass\n")
    specdir = project(
        tmp_path,
        env_doc(),
        archive_spec("src", "src/*"),
        package_doc("pkg", source={"type": "url", "url": "archive://src"}, buildcmd="./build.sh"),
        function_doc(
            "f",
            "pkg",
            resources={"limits": {"memory": "1Gi", "cpu": "1.5"}},
            InvokeStrategy={"ExecutionStrategy": {"ExecutorType": "newdeploy", "MinScale": 2, "MaxScale": 7}},
            requestsPerPod=1,
            concurrency=500,
            idletimeout=300,
            annotations={
                "faasd.io/queue-timeout": "5",
                "faasd.io/network": "none",
                "faasd.io/retries": "0",
                "faasd.io/retry-max-age": "600",
                "faasd.io/env": '{"MODE": "prod"}',
                "faasd.io/secrets": "DB_PASSWORD,API_KEY",
            },
        ),
    )
    result = mapped(specdir, tmp_path)
    assert not result.errors, result.errors
    pkg = wanted(result, "package", "pkg")
    assert pkg.fields == {"environment": "py", "buildcmd": "./build.sh"}
    assert pkg.source is not None and [m.path for m in pkg.source.tree() or []] == ["main.py"]
    fn = wanted(result, "function", "f")
    assert fn.fields == {
        "environment": "py",
        "package": "pkg",
        "entrypoint": "",
        "executor": "newdeploy",
        "timeout": 60,
        "memory_mb": 1024,
        "cpu_millis": 1500,
        "concurrency": 1,
        "min_instances": 2,
        "max_instances": 7,  # newdeploy: MaxScale (poolmgr's would be `concurrency`)
        "idle_timeout": 300,
        "queue_timeout": 5,
        "network": "none",
        "retries": 0,
        "retry_max_age": 600,
        "env": {"MODE": "prod"},
    }
    assert fn.secrets == ("DB_PASSWORD", "API_KEY")


def test_fission_defaults_become_faasd_defaults_and_limits_are_clamped(tmp_path: Path) -> None:
    specdir = one_file_app(tmp_path)
    docs = list(yaml.safe_load_all((specdir / "all.yaml").read_text()))
    docs[3]["spec"].update(concurrency=500, requestsPerPod=5000, secrets=[{"name": "db", "namespace": ""}])
    write(specdir / "all.yaml", yaml.safe_dump_all(docs))
    result = mapped(specdir, tmp_path)
    fn = wanted(result, "function", "hello")
    assert fn.fields["max_instances"] == 100 and fn.fields["concurrency"] == 1000
    assert fn.fields["memory_mb"] == 256 and fn.fields["cpu_millis"] == 1000 and fn.fields["network"] == "default"
    warnings = "\n".join(result.warnings)
    assert "MaxScale/concurrency 500 is more than faasd's 100" in warnings
    assert "spec.secrets (db) name Kubernetes secrets" in warnings


def test_unhonoured_fields_are_warned_about_once(tmp_path: Path) -> None:
    specdir = project(
        tmp_path,
        env_doc(builder={"image": "fission/python-builder", "command": "build"}, keeparchive=True),
        trigger("HTTPTrigger", "r", relativeurl="/r", host="example.com", functionref=ref("f")),
    )
    result = check(read_specs(specdir), tmp_path)
    warnings = "\n".join(result.warnings)
    assert "spec.builder.command is not used by faasd" in warnings
    assert "spec.keeparchive is not used by faasd" in warnings
    assert warnings.count("spec.keeparchive") == 1


def test_triggers_map_to_routes_timers_watches_and_mq_triggers(tmp_path: Path) -> None:
    specdir = one_file_app(
        tmp_path,
        trigger(
            "HTTPTrigger",
            "web",
            {"faasd.io/async": "true"},
            relativeurl="/items/{id}/",
            methods=["get", "POST"],
            functionref=ref("hello"),
        ),
        trigger("HTTPTrigger", "old", method="PUT", relativeurl="/old", functionref=ref("hello")),
        trigger(
            "TimeTrigger",
            "nightly",
            {"faasd.io/overlap": "allow"},
            cron="CRON_TZ=Europe/Berlin 0 3 * * *",
            functionref=ref("hello"),
        ),
        trigger(
            "KubernetesWatchTrigger",
            "pods",
            namespace="default",
            type="POD",
            labelselector={"app": "web"},
            functionref=ref("hello"),
        ),
        trigger(
            "MessageQueueTrigger",
            "orders",
            {"faasd.io/connection": "redis://127.0.0.1:6379"},
            messageQueueType="redis",
            topic="orders",
            respTopic="billed",
            maxRetries=5,
            functionref=ref("hello"),
            pollingInterval=5,
        ),
    )
    result = mapped(specdir, tmp_path)
    assert not result.errors, result.errors
    routes = {w.name: w.fields for w in result.of("route")}
    assert routes == {
        "web": {"method": "GET", "url": "/items/{id}", "function": "hello", "async": True},
        "web-post": {"method": "POST", "url": "/items/{id}", "function": "hello", "async": True},
        "old": {"method": "PUT", "url": "/old", "function": "hello", "async": False},
    }
    assert wanted(result, "timer", "nightly").fields == {
        "function": "hello",
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "method": "POST",
        "subpath": "",
        "overlap": "allow",
        "catch_up": "once",
    }
    watch = wanted(result, "watch", "pods").fields
    assert watch["type"] == "container" and watch[WATCH_FILTER] == {"app": "web"}
    assert watch["events"] == ["added", "removed", "updated"] and watch["include_faasd"] is False
    mq = wanted(result, "mqtrigger", "orders").fields
    assert mq["mqtype"] == "redis" and mq["resptopic"] == "billed" and mq["maxretries"] == 5
    assert mq["connection"] == "redis://127.0.0.1:6379" and mq["maxconcurrency"] == 10
    assert any("spec.pollingInterval is not used by faasd" in w for w in result.warnings)


def test_what_faasd_cannot_do_is_an_error(tmp_path: Path) -> None:
    specdir = one_file_app(
        tmp_path,
        trigger("HTTPTrigger", "p", prefix="/shop", functionref=ref("hello")),
        trigger("KubernetesWatchTrigger", "svc", type="deployment", functionref=ref("hello")),
        trigger("MessageQueueTrigger", "k", messageQueueType="kafka", topic="t", functionref=ref("hello")),
        trigger("HTTPTrigger", "w", relativeurl="/w", functionref={"type": "function-weights", "name": "hello"}),
    )
    errors = "\n".join(mapped(specdir, tmp_path).errors)
    assert "faasd routes match whole paths: give relativeurl" in errors
    assert "type 'deployment' has no counterpart there" in errors
    assert "messageQueueType 'kafka' is not one faasd reads" in errors
    assert "functionref type 'function-weights' is not supported" in errors


def test_two_triggers_that_make_the_same_route_name_are_an_error(tmp_path: Path) -> None:
    specdir = one_file_app(
        tmp_path,
        trigger("HTTPTrigger", "a", relativeurl="/a", methods=["GET", "POST"], functionref=ref("hello")),
        trigger("HTTPTrigger", "a-post", relativeurl="/b", functionref=ref("hello")),
    )
    assert any("makes route 'a-post'" in e for e in mapped(specdir, tmp_path).errors)


def test_literal_archives(tmp_path: Path) -> None:
    code = base64.b64encode(b"module.exports = async () => 'lit';\n").decode()
    specdir = project(
        tmp_path,
        env_doc("js", "fission/node-env:1.32"),
        package_doc("lit", "js", deployment={"type": "literal", "literal": code}),
        function_doc("lit", "lit", "js"),
    )
    result = mapped(specdir, tmp_path)
    assert not result.errors, result.errors
    assert wanted(result, "environment", "js").fields["image"] == "faasd/runtime-nodejs:latest"
    assert wanted(result, "function", "lit").fields["code"] == "module.exports = async () => 'lit';\n"


def test_images_and_quantities() -> None:
    assert faasd_image("fission/python-env:3.11") == "faasd/runtime-python:latest"
    assert faasd_image("ghcr.io/fission/node-env-22:1.0") == "faasd/runtime-nodejs:latest"
    assert faasd_image("me/custom:1") == "me/custom:1"
    assert fission_image("faasd/builder-python:latest") == "fission/python-builder:latest"
    assert fission_image(fission_image("faasd/runtime-ruby:latest")) == "faasd/runtime-ruby:latest"
    for image in mapping.IMAGES:
        assert faasd_image(fission_image(f"{image}:latest")) == f"{image}:latest"
    assert memory_mb("256Mi", "m") == 256 and memory_mb("1G", "m") == 954 and memory_mb("134217728", "m") == 128
    assert cpu_millis("500m", "c") == 500 and cpu_millis("2", "c") == 2000 and cpu_millis("0.25", "c") == 250
    with pytest.raises(CliError, match="not a Kubernetes quantity"):
        memory_mb("lots", "spec.resources.limits.memory")


def test_route_names_and_grouping_round_trip() -> None:
    assert route_name("web", "DELETE") == "web-delete"
    assert len(route_name("x" * 63, "OPTIONS")) == 63
    base = {"url": "/a", "function": "f", "async": False, "labels": {}}
    routes = [
        {"name": "a", "method": "GET", **base},
        {"name": "a-post", "method": "POST", **base},
        {"name": "b-post", "method": "POST", **base},  # no route 'b': its own trigger
        {"name": "c", "method": "GET", **base, "url": "/c"},
        {"name": "c-put", "method": "PUT", **base},  # another URL: its own trigger
    ]
    groups = group_routes(routes)
    assert {k: [r["method"] for r in v] for k, v in groups.items()} == {
        "a": ["GET", "POST"],
        "b-post": ["POST"],
        "c": ["GET"],
        "c-put": ["PUT"],
    }


# -- faasd -> Fission ---------------------------------------------------------------------------------------

FUNCTION = {
    "name": "shop",
    "environment": "python",
    "filename": "",
    "entrypoint": "main.main",
    "timeout": 30,
    "env": {"MODE": "prod"},
    "secrets": ["DB"],
    "memory_mb": 512,
    "concurrency": 4,
    "max_instances": 20,
    "min_instances": 1,
    "idle_timeout": 90,
    "queue_timeout": 3,
    "cpu_millis": 250,
    "network": "faasd-apps",
    "package": "shop",
    "retries": 2,
    "retry_max_age": 3600,
    "executor": "newdeploy",
    "labels": {"app": "shop", schema.UID_LABEL: "u-1"},
}


def test_exported_documents_use_only_fissions_fields() -> None:
    docs = [
        mapping.environment_doc(
            {"name": "python", "image": "faasd/runtime-python:latest", "builder": "b:1", "poolsize": 0, "labels": {}}
        ),
        mapping.package_doc("shop", "python", "shop-source", source=True, buildcmd="make"),
        mapping.archive_doc("shop-source", ["packages/shop/*"]),
        mapping.function_doc(FUNCTION, "shop"),
        mapping.function_doc({**FUNCTION, "executor": "poolmgr", "idle_timeout": None}, "shop"),
        mapping.trigger_doc(
            "web",
            [{"name": "web", "method": "GET", "url": "/s", "function": "shop", "async": True, "labels": {"x": "y"}}],
        ),
        mapping.timer_doc(
            {
                "name": "t",
                "function": "shop",
                "cron": "@daily",
                "timezone": "Asia/Tokyo",
                "method": "GET",
                "subpath": "/x",
                "overlap": "allow",
                "catch_up": "none",
            }
        ),
        mapping.watch_doc(
            {"name": "w", "function": "shop", "type": "volume", "events": ["added"], "include_faasd": True},
            {"app": "db"},
        ),
        mapping.mq_doc(
            {
                "name": "m",
                "function": "shop",
                "mqtype": "nats",
                "topic": "orders",
                "resptopic": "r",
                "errortopic": "e",
                "maxretries": 4,
                "maxconcurrency": 3,
                "contenttype": "text/plain",
                "connection": "nats://n:4222",
                "connection_secret": "NATS",
                "method": "PUT",
            }
        ),
    ]
    for doc in docs:
        assert_fission_fields(doc)
        assert not schema.unknown_keys(doc, schema.DOCUMENTS[doc["kind"]])


def test_function_document_and_back(tmp_path: Path) -> None:
    doc = mapping.function_doc(FUNCTION, "shop")
    assert doc["metadata"] == {
        "name": "shop",
        "labels": {"app": "shop"},  # the deployment's own labels are the applier's
        "annotations": {
            "faasd.io/queue-timeout": "3",
            "faasd.io/retries": "2",
            "faasd.io/retry-max-age": "3600",
            "faasd.io/network": "faasd-apps",
            "faasd.io/env": '{"MODE": "prod"}',
            "faasd.io/secrets": "DB",
        },
    }
    assert doc["spec"]["InvokeStrategy"]["ExecutionStrategy"] == {
        "ExecutorType": "newdeploy",
        "MinScale": 1,
        "MaxScale": 20,
        "SpecializationTimeout": 120,
    }
    assert doc["spec"]["resources"] == {"limits": {"memory": "512Mi", "cpu": "250m"}}
    write(tmp_path / "src" / "main.py", "x = 1\n")
    specdir = project(
        tmp_path,
        env_doc("python"),
        archive_spec("src", "src/*"),
        package_doc("shop", "python", source={"type": "url", "url": "archive://src"}),
        doc,
    )
    fields = wanted(mapped(specdir, tmp_path), "function", "shop").fields
    assert {k: FUNCTION[k] for k in fields} == fields


def test_timer_watch_and_mq_documents_and_back(tmp_path: Path) -> None:
    timer = {"name": "t", "function": "hello", "cron": "*/5 * * * * *", "timezone": "Asia/Tokyo", "method": "GET",
             "subpath": "/x", "overlap": "allow", "catch_up": "none"}  # fmt: skip
    watch = {"name": "w", "function": "hello", "type": "container", WATCH_FILTER: {"app": "db"}, "events": ["removed"],
             "include_faasd": True}  # fmt: skip
    mq = {"name": "m", "function": "hello", "mqtype": "nats", "topic": "orders", "resptopic": "r", "errortopic": "e",
          "maxretries": 4, "maxconcurrency": 3, "contenttype": "text/plain", "connection": "nats://n:4222",
          "connection_secret": "NATS", "method": "PUT"}  # fmt: skip
    docs = [mapping.timer_doc(timer), mapping.watch_doc(watch, watch[WATCH_FILTER]), mapping.mq_doc(mq)]
    assert docs[0]["spec"]["cron"] == "CRON_TZ=Asia/Tokyo */5 * * * * *"
    assert docs[1]["spec"]["type"] == "pod"
    assert docs[2]["spec"]["messageQueueType"] == "nats-jetstream"
    result = mapped(one_file_app(tmp_path, *docs), tmp_path)
    assert not result.errors, result.errors
    for original in (timer, watch, mq):
        kind = {"t": "timer", "w": "watch", "m": "mqtrigger"}[original["name"]]
        fields = wanted(result, kind, original["name"]).fields
        assert fields == {k: v for k, v in original.items() if k != "name"}


def test_write_function_spec_is_what_fn_create_would_make(tmp_path: Path) -> None:
    specdir = tmp_path / "specs"
    init(specdir)
    code = write(tmp_path / "fns" / "hello.js", "module.exports = async () => 'hi';\n")
    path = write_function_spec(
        specdir,
        "hello",
        env="nodejs",
        code=code,
        timeout=10,
        settings={"memory_mb": 128, "secrets": {"K": "s3cr3t-value"}},
    )
    assert path == specdir / "function-hello.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    assert [d["kind"] for d in docs] == ["ArchiveUploadSpec", "Package", "Function"]
    assert docs[0]["include"] == ["fns/hello.js"]
    assert "s3cr3t" not in path.read_text()  # a secret's value is never written
    for doc in docs:
        assert_fission_fields(doc)
    fields = wanted(mapped(specdir, tmp_path), "function", "hello").fields
    assert fields["code"] == code.read_text() and fields["timeout"] == 10 and fields["memory_mb"] == 128
    with pytest.raises(CliError, match="in the specs already"):
        write_function_spec(specdir, "hello", env="nodejs", code=code)
    with pytest.raises(CliError, match="package 'nope' is not in the specs"):
        write_function_spec(specdir, "other", pkg="nope")


def test_the_other_writers_make_what_faas_would(tmp_path: Path) -> None:
    specdir = tmp_path / "specs"
    init(specdir)
    write(tmp_path / "shop" / "main.py", "def main(): pass\n")
    paths = [
        write_environment_spec(specdir, "py", "faasd/runtime-python:latest", "faasd/builder-python:latest", 1),
        write_package_spec(specdir, "shop", "py", src=tmp_path / "shop", buildcmd="./build.sh"),
        write_function_spec(specdir, "shop", pkg="shop", entrypoint="main.main"),
        write_route_spec(specdir, "shop", "shop", "/shop", ["GET", "PUT"], asynchronous=True),
        write_timer_spec(specdir, "daily", "shop", "@daily", timezone="Asia/Tokyo"),
    ]
    assert [p.name for p in paths] == [
        "env-py.yaml", "package-shop.yaml", "function-shop.yaml", "route-shop.yaml", "timetrigger-daily.yaml"
    ]  # fmt: skip
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            assert_fission_fields(doc)
    result = mapped(specdir, tmp_path)
    assert not result.errors, result.errors
    assert wanted(result, "environment", "py").fields == {
        "image": "faasd/runtime-python:latest", "builder": "faasd/builder-python:latest", "poolsize": 1
    }  # fmt: skip
    package = wanted(result, "package", "shop")
    assert package.fields["buildcmd"] == "./build.sh"
    assert package.source is not None and [m.path for m in package.source.tree() or []] == ["main.py"]
    assert wanted(result, "function", "shop").fields["package"] == "shop"
    assert wanted(result, "route", "shop-put").fields == {"method": "PUT", "url": "/shop", "function": "shop",
                                                          "async": True}  # fmt: skip
    assert wanted(result, "timer", "daily").fields["timezone"] == "Asia/Tokyo"
    with pytest.raises(CliError, match="in the specs already"):
        write_environment_spec(specdir, "py", "x")


# -- archives ------------------------------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    write(root / "main.py", "def main(): pass\n")
    write(root / "requirements.txt", "\n")
    write(root / ".env", "A=1\n")
    write(root / "lib" / "util.py", "X = 1\n" * 500)
    (root / "lib" / "tool.sh").write_text("#!/bin/sh\n")
    (root / "lib" / "tool.sh").chmod(0o755)
    (root / "empty").mkdir()
    os.symlink("util.py", root / "lib" / "current")
    write(root / "lib" / "__pycache__" / "x.pyc", "junk")
    return root


def faasd_digest(path: Path, tmp_path: Path, prefix: str = "") -> str:
    staged = tmp_path / "staged.tar"
    info = faasd_archive.normalize(path, staged)
    if prefix:
        info = faasd_archive.retag(staged, tmp_path / "retagged.tar", prefix=prefix, owner=0)
    return info.sha256


@pytest.mark.parametrize("prefix", ["", "deploy"])
def test_the_digest_is_the_one_faasd_gives_the_zip(tmp_path: Path, prefix: str) -> None:
    make_tree(tmp_path / "app")
    spec = ArchiveSpec("app", ("app/*",), ("__pycache__",), "", "specs/a.yaml:1")
    local = resolve_globs(spec, tmp_path)
    paths = [m.path for m in local.members]
    assert paths == [".env", "empty", "lib/current", "lib/tool.sh", "lib/util.py", "main.py", "requirements.txt"]
    with local.upload() as zipped:
        assert local.digest(prefix) == faasd_digest(zipped, tmp_path, prefix)
        assert read_archive(zipped) is not None
        assert LocalArchive("z", file=zipped).digest(prefix) == local.digest(prefix)


def test_a_lone_top_directory_is_kept_as_faasd_keeps_it(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "greet" / "__init__.py", "X = 1\n")
    local = resolve_globs(ArchiveSpec("g", ("pkg/*",), (), "", "x"), tmp_path)
    assert [m.path for m in local.members] == ["greet/__init__.py"]
    with local.upload() as zipped:
        assert local.digest() == faasd_digest(zipped, tmp_path)


def test_archive_files_are_used_as_they_are(tmp_path: Path) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        body = b"def main(): pass\n"
        info = tarfile.TarInfo("app/main.py")
        info.size = len(body)
        tar.addfile(tarfile.TarInfo("app") if False else info, io.BytesIO(body))
    path = write(tmp_path / "app.tgz", "")
    path.write_bytes(data.getvalue())
    local = resolve_globs(ArchiveSpec("a", ("app.tgz",), (), "", "x"), tmp_path)
    assert local.file == path and not local.plain
    assert local.digest() == faasd_digest(path, tmp_path)
    with local.upload() as sent:
        assert sent == path
    single = resolve_globs(ArchiveSpec("s", ("app.tgz", "*.tgz"), (), "", "x"), tmp_path)
    assert single.file == path


def test_globs_are_gos(tmp_path: Path) -> None:
    assert go_glob_regex("*.py").match("a.py") and not go_glob_regex("*.py").match("d/a.py")
    assert go_glob_regex("src/[a-c]?.js").match("src/b1.js")
    assert go_glob_regex("[!x]").match("y") and not go_glob_regex("[!x]").match("x")
    write(tmp_path / "a" / "one.py", "1")
    write(tmp_path / "b" / "one.py", "2")
    with pytest.raises(CliError, match=r"has 'one\.py' twice"):
        resolve_globs(ArchiveSpec("dup", ("a/*", "b/*"), (), "", "x"), tmp_path)
    with pytest.raises(CliError, match="'c/\\*' matches no file"):
        resolve_globs(ArchiveSpec("none", ("c/*",), (), "", "x"), tmp_path)
    rooted = resolve_globs(ArchiveSpec("r", ("*",), (), str(tmp_path / "a"), "x"), tmp_path / "elsewhere")
    assert rooted.file == tmp_path / "a" / "one.py" and rooted.plain


def test_tree_digest_of_nothing_but_dirs_matches_faasd(tmp_path: Path) -> None:
    zipped = tmp_path / "d.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a/", b"")
        archive.writestr("b/c.txt", b"c")
    members = read_archive(zipped)
    assert members is not None
    assert tree_digest(members) == faasd_digest(zipped, tmp_path)
