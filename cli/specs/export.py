"""``faas spec export DIR``: the running faasd as a spec directory that ``faas spec apply`` and
``fission spec apply`` both take.

Layout (``DIR`` is the project root, as Fission's CLI has it)::

    DIR/specs/fission-deployment-config.yaml   the deployment's name and uid
    DIR/specs/env-<name>.yaml                  Environment
    DIR/specs/package-<name>.yaml              Package + ArchiveUploadSpec of its files
    DIR/specs/function-<name>.yaml             Function (+ Package and ArchiveUploadSpec of a one-file function)
    DIR/specs/route-<name>.yaml                HTTPTrigger (the routes of one URL and function)
    DIR/specs/timetrigger-<name>.yaml          TimeTrigger
    DIR/specs/kubewatch-<name>.yaml            KubernetesWatchTrigger (a Docker watch)
    DIR/specs/mqtrigger-<name>.yaml            MessageQueueTrigger
    DIR/packages/<package>/...                 a package's source (or its ready deployment)
    DIR/functions/<function>/<file>            a one-file function's code

When every object that carries a deployment uid carries the same one (they
were applied from one spec directory), the export keeps that uid, so that
``faas spec apply`` of the export manages the same objects; otherwise it
gets a new one. Secret values never leave faasd: a function's secrets are
listed by name only.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faas_cli.client import Json
from faas_cli.errors import CliError
from faas_cli.specs import mapping, schema
from faas_cli.specs.api import SpecClient
from faas_cli.specs.archives import DEPLOY_PREFIX, extract_tar
from faas_cli.specs.files import README, config_doc, write_docs
from faas_cli.specs.mapping import WATCH_FILTER

Echo = Callable[[str], None]


def _deployment(state: dict[str, list[Json]], dest: Path) -> tuple[str, str]:
    uids: set[str] = set()
    names: set[str] = set()
    for items in state.values():
        for item in items:
            labels = item.get("labels") or {}
            if isinstance(labels, dict) and labels.get(schema.UID_LABEL):
                uids.add(str(labels[schema.UID_LABEL]))
                names.add(str(labels.get(schema.NAME_LABEL) or ""))
    if len(uids) != 1:
        return dest.resolve().name or "faasd", str(uuid.uuid4())
    name = next(iter(names)) if len(names) == 1 else ""
    return name or dest.resolve().name or "faasd", next(iter(uids))


def export(client: SpecClient, dest: Path, warn: Echo, specdir_name: str = "specs") -> list[Path]:
    """Write the daemon's objects under ``dest`` (which must not hold a spec directory yet); the files written."""
    specdir = dest / specdir_name
    if specdir.exists() and any(specdir.iterdir()):
        raise CliError(f"'{specdir}' exists and is not empty; export into a new directory")
    state = {kind: client.items(kind) for kind in mapping.KINDS}
    name, uid = _deployment(state, dest)
    written: list[Path] = []

    def put(filename: str, docs: list[dict[str, Any]]) -> None:
        path = specdir / filename
        write_docs(path, docs)
        written.append(path)

    put(schema.DEPLOYMENT_CONFIG_FILE, [config_doc(name, uid)])
    specdir.joinpath("README").write_text(README, encoding="utf-8")

    for env in state["environment"]:
        doc = mapping.environment_doc(env)
        for which in ("runtime", "builder"):
            image = str(doc["spec"].get(which, {}).get("image") or "")
            if (
                image
                and image == env.get("image" if which == "runtime" else "builder")
                and not image.startswith("fission/")
            ):
                warn(
                    f"environment '{env['name']}': {image} speaks faasd's runtime contract; on Kubernetes give "
                    f"spec.{which}.image a Fission environment image"
                )
        put(f"env-{env['name']}.yaml", [doc])

    packages = {p["name"] for p in state["package"]}
    for package in state["package"]:
        put(f"package-{package['name']}.yaml", _package(client, package, dest, warn))

    for fn in state["function"]:
        put(f"function-{fn['name']}.yaml", _function(client, fn, dest, packages))
        if fn.get("secrets"):
            warn(
                f"function '{fn['name']}': its secrets ({', '.join(fn['secrets'])}) are exported by name only; "
                "set their values again after an apply (faas fn update --secret)"
            )

    for trigger, routes in mapping.group_routes(state["route"]).items():
        put(f"route-{trigger}.yaml", [mapping.trigger_doc(trigger, routes)])
    for timer in state["timer"]:
        put(f"timetrigger-{timer['name']}.yaml", [mapping.timer_doc(timer)])
    for watch in state["watch"]:
        engine = watch.get(WATCH_FILTER) or {}
        if watch.get("type") != "container":
            warn(f"watch '{watch['name']}': type '{watch.get('type')}' is a Docker object with no Kubernetes kind")
        put(f"kubewatch-{watch['name']}.yaml", [mapping.watch_doc(watch, engine)])
    for mq in state["mqtrigger"]:
        if "***" in str(mq.get("connection") or ""):
            warn(
                f"mqtrigger '{mq['name']}': its connection's password is masked in the export "
                "(an apply keeps the one faasd has); a connection_secret keeps it out of specs"
            )
        put(f"mqtrigger-{mq['name']}.yaml", [mapping.mq_doc(mq)])
    return written


def _package(client: SpecClient, package: Json, dest: Path, warn: Echo) -> list[dict[str, Any]]:
    name = str(package["name"])
    folder = dest / "packages" / name
    source = bool(package.get("source_sha256"))
    if source and not _download(client, f"/v1/packages/{name}/source", folder, "", name):
        warn(
            f"package '{name}': this faasd does not hand out sources; its built deployment is exported instead "
            "(an apply then uses it as it is)"
        )
        source = False
    if not source:
        if not package.get("deploy_sha256"):
            raise CliError(f"package '{name}' has neither a source nor a deployment to export (still building?)")
        _download(client, f"/v1/packages/{name}/deploy", folder, DEPLOY_PREFIX, name)
    archive = f"{name}-{'source' if source else 'deploy'}"
    include = [f"packages/{name}/*"]
    labels = package.get("labels") or {}
    return [
        mapping.archive_doc(archive, include),
        mapping.package_doc(name, str(package["environment"]), archive, source=source,
                            buildcmd=str(package.get("buildcmd") or ""), labels=labels),
    ]  # fmt: skip


def _download(client: SpecClient, path: str, folder: Path, strip: str, name: str) -> bool:
    """An archive of the daemon's, unpacked into ``folder`` (``strip``: only what is under that directory)."""
    with tempfile.TemporaryFile() as data:
        if path.endswith("/source"):
            if not client.package_source(name, data):
                return False
        else:
            client.download(path, data)
        data.seek(0)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        extract_tar(data, folder, strip)
    return True


def _function(client: SpecClient, fn: Json, dest: Path, packages: set[str]) -> list[dict[str, Any]]:
    name = str(fn["name"])
    if fn.get("package"):
        return [mapping.function_doc(fn, str(fn["package"]))]
    filename = str(fn.get("filename") or name)
    target = dest / "functions" / name / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(client.get_function_code(name).encode())
    package = mapping.code_package_name(name, packages)
    packages.add(package)
    return [
        mapping.archive_doc(package, [f"functions/{name}/{filename}"]),
        mapping.package_doc(package, str(fn["environment"]), package, source=False),
        mapping.function_doc(fn, package),
    ]
