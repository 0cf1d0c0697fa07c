"""``faas spec validate`` (and the check every apply makes first): the whole spec directory read,
mapped to faasd's objects, every problem found at once."""

from __future__ import annotations

from pathlib import Path

from faas_cli.specs import schema
from faas_cli.specs.mapping import Mapped, Mapper
from faas_cli.specs.model import SpecSet


def check(specs: SpecSet, workdir: Path) -> Mapped:
    """The faasd objects ``specs`` ask for, with every error and warning (errors: nothing is to be applied)."""
    errors: list[str] = []
    warnings = list(specs.warnings)
    config = specs.config
    if config is None:
        errors.append(f"no DeploymentConfig in '{specs.specdir}' (make one with 'faas spec init')")
    elif not config.uid:
        errors.append(f"{config.where}: the DeploymentConfig has no uid")
    for kind in schema.RESOURCE_KINDS:
        for doc in specs.of(kind):
            for key in schema.unknown_keys(doc.body, schema.DOCUMENTS[kind]):
                warnings.append(f"{doc}: '{key}' is not a field of Fission's {kind}")
    used = set()
    for doc in specs.of(schema.PACKAGE):
        for which in ("source", "deployment"):
            url = str((doc.spec.get(which) or {}).get("url") or "")
            if url.startswith(schema.ARCHIVE_URL_PREFIX):
                used.add(url[len(schema.ARCHIVE_URL_PREFIX) :])
    for name, archive in sorted(specs.archives.items()):
        if name not in used:
            errors.append(f"{archive.where}: archive '{name}' is not used by any package")
    declared = set(specs.resources[schema.ENVIRONMENT])
    for kind in (schema.PACKAGE, schema.FUNCTION):
        for doc in specs.of(kind):
            env = (doc.spec.get("environment") or {}).get("name")
            if isinstance(env, str) and env and env not in declared:
                warnings.append(f"{doc}: environment '{env}' is not in the specs; it must exist on faasd")
    mapped = Mapper(specs, workdir, config.uid if config else "", config.name if config else "").run()
    mapped.errors[:0] = errors
    mapped.warnings[:0] = warnings
    return mapped
