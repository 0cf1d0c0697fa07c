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
    specs = read_specs(specdir)
    if specs.config is None:
        raise CliError(f"'{specdir}' has no {schema.DEPLOYMENT_CONFIG_FILE}; run 'faas spec init' first")
    if name in specs.resources[schema.FUNCTION]:
        raise CliError(f"function '{name}' is in the specs already ({specs.resources[schema.FUNCTION][name].where})")
    target = specdir / f"function-{name}.yaml"
    if target.exists():
        raise CliError(f"'{target}' exists already")
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
