"""Writing spec files: ``faas spec init``, and ``faas fn create ... --spec`` (as Fission's ``--spec`` does).

Documents are written as YAML, one file per resource, named as Fission's
CLI names them (``function-<name>.yaml`` holds a function with the package
and archive of its code, ``env-<name>.yaml``, ``route-<name>.yaml``, ...).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import yaml

from faas_cli.errors import CliError
from faas_cli.specs import mapping, schema
from faas_cli.specs.model import read_specs

README = """\
Fission specs
=============

The YAML files here describe functions, their environments, packages and
triggers in Fission's format (apiVersion fission.io/v1). faasd reads them with

    faas spec apply        # create and update what they describe (--delete: remove what they dropped)
    faas spec destroy      # remove everything they made
    faas spec list         # what they made on the daemon

and Fission on Kubernetes reads the same directory with 'fission spec apply'.
ArchiveUploadSpec documents name the files that make a package's archive,
with globs from this directory's parent.

fission-deployment-config.yaml holds this deployment's uid: every object an
apply makes carries it, which is how a later apply finds what it made. Do
not change it; copy the directory (and run 'faas spec init' in the copy) to
deploy a second, separate set.
"""

FILE_PREFIX = {
    schema.ENVIRONMENT: "env",
    schema.PACKAGE: "package",
    schema.FUNCTION: "function",
    schema.HTTP_TRIGGER: "route",
    schema.TIME_TRIGGER: "timetrigger",
    schema.MQ_TRIGGER: "mqtrigger",
    schema.WATCH_TRIGGER: "kubewatch",
}


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def write_docs(path: Path, docs: list[dict[str, Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(docs), encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write '{path}' ({(error.strerror or str(error)).lower()})") from None


def config_doc(name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": schema.API_VERSION, "kind": schema.DEPLOYMENT_CONFIG, "name": name, "uid": uid}


def init(specdir: Path, name: str | None = None, uid: str | None = None) -> Path:
    """Make ``specdir`` with a DeploymentConfig (a new uid unless given) and a README; the config's path."""
    config = specdir / schema.DEPLOYMENT_CONFIG_FILE
    if config.exists():
        raise CliError(f"'{specdir}' is a spec directory already ({config} exists)")
    deployment = name or specdir.resolve().parent.name or "faasd"
    write_docs(config, [config_doc(deployment, uid or str(uuid.uuid4()))])
    readme = specdir / "README"
    if not readme.exists():
        readme.write_text(README, encoding="utf-8")
    return config


def _target(specdir: Path, kind: str, name: str) -> Path:
    """The file ``<prefix>-<name>.yaml`` a new document of ``kind`` goes to (refused when it is there)."""
    specs = read_specs(specdir)
    if specs.config is None:
        raise CliError(f"'{specdir}' has no {schema.DEPLOYMENT_CONFIG_FILE}; run 'faas spec init' first")
    if name in specs.resources[kind]:
        raise CliError(f"{kind} '{name}' is in the specs already ({specs.resources[kind][name].where})")
    target = specdir / f"{FILE_PREFIX[kind]}-{name}.yaml"
    if target.exists():
        raise CliError(f"'{target}' exists already")
    return target


def _include(path: Path, root: Path) -> str:
    """The glob that puts ``path`` in an archive as ``faas`` would: a directory's contents at the root."""
    relative = Path(os.path.relpath(path.resolve(), root)).as_posix()
    return f"{relative}/*" if path.is_dir() else relative


def write_environment_spec(
    specdir: Path, name: str, image: str, builder: str | None = None, poolsize: int | None = None
) -> Path:
    """``env-<name>.yaml``: what ``faas env create`` with these options would make."""
    target = _target(specdir, schema.ENVIRONMENT, name)
    env = {"name": name, "image": image, "builder": builder or "", "poolsize": poolsize or mapping.DEFAULT_POOLSIZE}
    write_docs(target, [mapping.environment_doc(env)])
    return target


def write_package_spec(
    specdir: Path,
    name: str,
    env: str,
    src: Path | None = None,
    deploy: Path | None = None,
    buildcmd: str | None = None,
) -> Path:
    """``package-<name>.yaml``: a Package and the ArchiveUploadSpec of its files (a directory's contents)."""
    if (src is None) == (deploy is None):
        raise CliError("give --src (a source to build) or --deploy (a ready deployment) with --spec")
    target = _target(specdir, schema.PACKAGE, name)
    path = src if src is not None else deploy
    assert path is not None
    if not path.exists():
        raise CliError(f"'{path}' not found")
    archive = f"{name}-{'source' if src is not None else 'deploy'}"
    docs = [
        mapping.archive_doc(archive, [_include(path, specdir.resolve().parent)]),
        mapping.package_doc(name, env, archive, source=src is not None, buildcmd=buildcmd or ""),
    ]
    write_docs(target, docs)
    return target


def write_route_spec(
    specdir: Path, name: str, function: str, url: str, methods: list[str], asynchronous: bool = False
) -> Path:
    """``route-<name>.yaml``: an HTTPTrigger (what ``faas route create`` would make, one route per method)."""
    target = _target(specdir, schema.HTTP_TRIGGER, name)
    routes = [{"name": name, "method": m.upper(), "url": url, "function": function, "async": asynchronous}
              for m in methods or ["GET"]]  # fmt: skip
    write_docs(target, [mapping.trigger_doc(name, routes)])
    return target


def write_timer_spec(specdir: Path, name: str, function: str, cron: str, **fields: Any) -> Path:
    """``timetrigger-<name>.yaml``: a TimeTrigger (``fields``: timezone, method, subpath, overlap, catch_up)."""
    target = _target(specdir, schema.TIME_TRIGGER, name)
    timer = {**mapping.TIMER_DEFAULTS, **{k: v for k, v in fields.items() if v is not None}}
    write_docs(target, [mapping.timer_doc({**timer, "name": name, "function": function, "cron": cron})])
    return target


def write_function_spec(
    specdir: Path,
    name: str,
    *,
    env: str | None = None,
    code: Path | None = None,
    pkg: str | None = None,
    entrypoint: str | None = None,
    timeout: int | None = None,
    settings: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> Path:
    """Write ``<specdir>/function-<name>.yaml``: what ``faas fn create`` with these options would make.

    ``code``: one source file, referred to by an ArchiveUploadSpec (its path from the spec directory's
    parent) through a Package of its own; ``pkg``: a Package of the specs. ``settings`` are the API
    fields of faas_cli.options.function_settings (memory_mb, env, secrets names...). Secret values are
    never written: only their names, so that an apply can say which to set.
    """
    if (code is None) == (pkg is None):
        raise CliError("give --code FILE or --pkg PACKAGE with --spec")
    target = _target(specdir, schema.FUNCTION, name)
    specs = read_specs(specdir)
    values = dict(settings or {})
    secrets = values.pop("secrets", None) or {}
    fn: dict[str, Any] = {
        "name": name,
        "entrypoint": entrypoint or "",
        "timeout": timeout or mapping.FUNCTION_DEFAULTS["timeout"],
        **{k: v for k, v in mapping.FUNCTION_DEFAULTS.items() if k not in ("entrypoint", "timeout")},
        **values,
        "secrets": sorted(secrets),
        "labels": labels or {},
    }
    docs: list[dict[str, Any]] = []
    if code is not None:
        if env is None:
            raise CliError("give --env: the environment a function of one source file runs in")
        if not code.is_file():
            raise CliError(f"code file '{code}' not found")
        package = mapping.code_package_name(name, set(specs.resources[schema.PACKAGE]))
        include = Path(os.path.relpath(code.resolve(), specs.root)).as_posix()
        docs.append(mapping.archive_doc(package, [include]))
        docs.append(mapping.package_doc(package, env, package, source=False))
    else:
        assert pkg is not None
        found = specs.resources[schema.PACKAGE].get(pkg)
        package_env = found.spec.get("environment", {}).get("name") if found is not None else None
        if found is None:
            raise CliError(f"package '{pkg}' is not in the specs: write it first (faas pkg create ... --spec)")
        if env is not None and env != package_env:
            raise CliError(f"package '{pkg}' is of environment '{package_env}', not '{env}'")
        env, package = str(package_env), pkg
    fn["environment"] = env
    docs.append(mapping.function_doc(fn, package))
    write_docs(target, docs)
    return target
