"""Fission's documents as the faasd objects they ask for, and faasd's objects as Fission's documents.

Both directions in one place, so each field is mapped once each way:

==========================================================  ====================================
Fission                                                     faasd
==========================================================  ====================================
Environment runtime.image / builder.image / poolsize        environment image / builder / poolsize
Package environment / buildcmd                              package environment / buildcmd
Package source, deployment (archive://, literal, url)       package source, deploy archives
Package of one plain file, no source                        the function's own code (one file)
Function environment                                        function environment
Function package.packageref.name / functionName             function package / entrypoint
Function functionTimeout / idletimeout                      timeout / idle_timeout
Function resources.limits.memory / .cpu                     memory_mb / cpu_millis
Function requestsPerPod                                     concurrency (calls per instance)
Function ExecutionStrategy ExecutorType                     function executor (poolmgr, newdeploy)
Function ExecutionStrategy MinScale / MaxScale; concurrency min_instances / max_instances
HTTPTrigger relativeurl / methods / functionref             one route per method: url, method, function
TimeTrigger cron (``CRON_TZ=zone`` prefix) / functionref    timer cron, timezone / function
MessageQueueTrigger messageQueueType redis, nats-jetstream  mqtrigger mqtype redis, nats
  topic / respTopic / errorTopic / maxRetries / contentType topic / resptopic / errortopic / maxretries / contenttype
  secret                                                    connection_secret
KubernetesWatchTrigger type (pod = container) / labelselector  watch type / labels
metadata.labels                                             labels (beside the deployment's own)
metadata.annotations ``faasd.io/...``                       faasd's settings no Fission field holds
==========================================================  ====================================

The ``faasd.io/`` annotations: a function's ``queue-timeout``, ``network``,
``retries``, ``retry-max-age``, ``env`` (JSON) and ``secrets`` (names only,
never values); a trigger's ``async``; a timer's ``method``, ``subpath``,
``overlap``, ``catch-up``; a watch's ``events``, ``include-faasd``; an mq
trigger's ``connection``, ``maxconcurrency``, ``method``. A Fission field
faasd cannot honour is warned about (once per document and field) and left
alone. The stock images map both ways (``fission/python-env`` is faasd's
``faasd/runtime-python:latest``, ...), so an exported directory runs on
Fission's own environments.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faas_cli.errors import CliError
from faas_cli.specs import schema
from faas_cli.specs.archives import LocalArchive, literal_archive, resolve_globs, url_archive
from faas_cli.specs.model import Doc, SpecSet

# faasd's kinds, in the order an apply makes them; the API path of each.
KINDS = ("environment", "package", "function", "route", "timer", "watch", "mqtrigger")
PATHS = {
    "environment": "/v1/environments",
    "package": "/v1/packages",
    "function": "/v1/functions",
    "route": "/v1/triggers/http",
    "timer": "/v1/timers",
    "watch": "/v1/watches",
    "mqtrigger": "/v1/triggers/mq",
}
FISSION_KIND = {
    "environment": schema.ENVIRONMENT,
    "package": schema.PACKAGE,
    "function": schema.FUNCTION,
    "route": schema.HTTP_TRIGGER,
    "timer": schema.TIME_TRIGGER,
    "watch": schema.WATCH_TRIGGER,
    "mqtrigger": schema.MQ_TRIGGER,
}

# faasd's defaults (README, "Scaling and limits"; faasd/core/entities.py, events.py): what a field
# the spec leaves out comes to, so that taking a field out of a spec puts it back to the default.
FUNCTION_DEFAULTS: dict[str, Any] = {
    "executor": "poolmgr",
    "entrypoint": "",
    "timeout": 60,
    "memory_mb": 256,
    "cpu_millis": 1000,
    "concurrency": 50,
    "max_instances": 10,
    "min_instances": 0,
    "idle_timeout": None,
    "queue_timeout": 10,
    "network": "default",
    "retries": 4,
    "retry_max_age": 21600,
    "env": {},
}
MAX_INSTANCES = 100
MAX_CONCURRENCY = 1000
DEFAULT_POOLSIZE = 3
TIMER_DEFAULTS = {"timezone": "UTC", "method": "POST", "subpath": "", "overlap": "forbid", "catch_up": "once"}
WATCH_EVENTS = ("added", "removed", "updated")
TIMER_NOTES = (("method", "method"), ("subpath", "subpath"), ("overlap", "overlap"), ("catch_up", "catch-up"))
MQ_DEFAULTS: dict[str, Any] = {
    "resptopic": "",
    "errortopic": "",
    "maxretries": 3,
    "maxconcurrency": 10,
    "contenttype": "application/json",
    "connection": "",
    "connection_secret": "",
    "method": "POST",
}
MQ_TYPES = {"redis": "redis", "nats-jetstream": "nats", "nats": "nats", "jetstream": "nats"}
MQ_EXPORT = {"redis": "redis", "nats": "nats-jetstream"}
WATCH_TYPES = {"pod": "container", "pods": "container", "container": "container"}
WATCH_TYPES.update({t: t for t in ("network", "volume", "image")})
WATCH_EXPORT = {"container": "pod"}

WATCH_FILTER = "selector"
"""Where a watch's engine-label filter is kept here. faasd's /v1/watches has it as ``labels`` and the
watch's own labels as ``resource_labels``; faas_cli.specs.api turns both into every other kind's shape
(own labels as ``labels``), so that the rest of the spec code treats a watch like the others."""

# faasd's stock images and Fission's for the same language.
IMAGES = {
    "faasd/runtime-nodejs": "fission/node-env",
    "faasd/runtime-python": "fission/python-env",
    "faasd/builder-nodejs": "fission/node-builder",
    "faasd/builder-python": "fission/python-builder",
}
REGISTRIES = ("docker.io/", "index.docker.io/", "ghcr.io/")


@dataclass
class Wanted:
    """A faasd object the specs ask for: its API fields (what is compared and sent) and its labels."""

    kind: str
    name: str
    fields: dict[str, Any]
    labels: dict[str, str]
    origin: str  # the document it comes from, for messages
    source: LocalArchive | None = None  # packages: the archives to upload
    deploy: LocalArchive | None = None
    secrets: tuple[str, ...] = ()  # functions: the secrets it expects (set with faas fn update --secret)


@dataclass
class Mapped:
    wanted: list[Wanted] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[Wanted]:
        return [w for w in self.wanted if w.kind == kind]


# -- small readers ------------------------------------------------------------------------------------


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _given(value: Any) -> bool:
    """Whether a Fission field is set to something (Go's zero values count as not set)."""
    return value not in (None, "", 0, False, [], {})


def _int(value: Any, what: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CliError(f"{what} must be a whole number, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise CliError(f"{what} must be a whole number, not {value!r}") from None
    if number < low or (high is not None and number > high):
        raise CliError(f"{what} is {number}; it must be from {low}" + (f" to {high}" if high is not None else ""))
    return number


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_FACTORS = {
    "": 1,
    "m": 0.001,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity(value: Any, what: str) -> float:
    """A Kubernetes quantity (``256Mi``, ``500m``, ``1.5``, ``1e3``) as a number."""
    match = _QUANTITY.fullmatch(str(value).strip())
    if not match:
        raise CliError(f"{what} {value!r} is not a Kubernetes quantity such as 256Mi or 500m")
    number = float(match.group(1)) * 10 ** int(match.group(2) or 0)
    return float(number * _FACTORS[match.group(3) or ""])


def memory_mb(value: Any, what: str) -> int:
    """A memory quantity in MiB (faasd's memory_mb), rounded up."""
    return max(1, math.ceil(quantity(value, what) / 2**20))


def cpu_millis(value: Any, what: str) -> int:
    return max(1, round(quantity(value, what) * 1000))


def faasd_image(image: str) -> str:
    """A Fission stock image as faasd's for that language (any tag: faasd's :latest); others as they are."""
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    for registry in REGISTRIES:
        repo = repo.removeprefix(registry)
    for ours, theirs in IMAGES.items():
        if repo == theirs or repo.startswith(theirs + "-"):
            return f"{ours}:latest"
    return image


def fission_image(image: str) -> str:
    """faasd's stock image as Fission's for that language (same tag); others as they are."""
    repo, colon, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    theirs = IMAGES.get(repo)
    return f"{theirs}{colon}{tag}" if theirs else image


def label_value(text: str) -> str:
    """``text`` as a label value (63 characters of letters, digits, ``-_.``), or "" when nothing is left."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("-_.")


def route_name(base: str, method: str) -> str:
    """The route of a trigger's second and later methods: ``<trigger>-<method>`` within 63 characters."""
    suffix = "-" + method.lower()
    return base[: 63 - len(suffix)].rstrip("-") + suffix


def code_package_name(function: str, taken: set[str]) -> str:
    """The Package an exported single-file function gets: ``<function>-code`` (made unique)."""
    base = function[:58].rstrip("-") + "-code"
    name, n = base, 2
    while name in taken:
        tail = f"-{n}"
        name, n = base[: 63 - len(tail)].rstrip("-") + tail, n + 1
    return name


CRON_TZ = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.+)$")


# -- Fission -> faasd ---------------------------------------------------------------------------------


class Mapper:
    """Maps a spec set to the faasd objects it asks for (:meth:`run`); archives are read from disk."""

    def __init__(self, specs: SpecSet, workdir: Path, uid: str = "", deployment: str = "") -> None:
        self.specs = specs
        self.workdir = workdir  # where literal and downloaded archives are written
        self.out = Mapped()
        self._labels = {schema.UID_LABEL: uid} if uid else {}
        if uid and label_value(deployment):
            self._labels[schema.NAME_LABEL] = label_value(deployment)
        self._archives: dict[tuple[str, str], LocalArchive | None] = {}
        self._warned: set[tuple[str, str]] = set()

    def warn(self, doc: Doc, message: str) -> None:
        if (doc.where, message) not in self._warned:
            self._warned.add((doc.where, message))
            self.out.warnings.append(f"{doc}: {message}")

    def labels(self, doc: Doc) -> dict[str, str]:
        own = {k: v for k, v in doc.labels().items() if k not in schema.DEPLOYMENT_LABELS}
        return {**own, **self._labels}

    def annotation(self, doc: Doc, key: str) -> str | None:
        return doc.annotations().get(schema.ANNOTATION_PREFIX + key)

    def run(self) -> Mapped:
        steps: list[tuple[str, Callable[[Doc], None]]] = [
            (schema.ENVIRONMENT, self.environment),
            (schema.PACKAGE, self.package),
            (schema.FUNCTION, self.function),
            (schema.HTTP_TRIGGER, self.http_trigger),
            (schema.TIME_TRIGGER, self.time_trigger),
            (schema.WATCH_TRIGGER, self.watch_trigger),
            (schema.MQ_TRIGGER, self.mq_trigger),
        ]
        for kind, step in steps:
            for doc in self.specs.of(kind):
                try:
                    if not schema.NAME_RE.fullmatch(doc.name):
                        raise CliError(f"{doc}: '{doc.name}' is not a valid name (lower-case letters, digits, '-')")
                    step(doc)
                except CliError as error:
                    self.out.errors.append(error.message)
        names: dict[tuple[str, str], str] = {}
        for wanted in self.out.wanted:
            first = names.setdefault((wanted.kind, wanted.name), wanted.origin)
            if first != wanted.origin:
                self.out.errors.append(f"{wanted.origin}: makes {wanted.kind} '{wanted.name}', as {first} does")
        return self.out

    def _unhonoured(self, doc: Doc, spec: dict[str, Any], fields: dict[str, str]) -> None:
        for path, why in fields.items():
            if _given(_get(spec, *path.split("."))):
                self.warn(doc, f"spec.{path} is not used by faasd ({why})")

    # -- environments ----------------------------------------------------------------------------------

    def environment(self, doc: Doc) -> None:
        spec = doc.spec
        image = _get(spec, "runtime", "image")
        if not isinstance(image, str) or not image:
            raise CliError(f"{doc}: spec.runtime.image is required")
        builder = _get(spec, "builder", "image") or ""
        poolsize = spec.get("poolsize")
        fields = {
            "image": self._image(doc, image),
            "builder": self._image(doc, str(builder)) if builder else "",
            "poolsize": DEFAULT_POOLSIZE if poolsize is None else _int(poolsize, f"{doc}: spec.poolsize", 0, 50),
        }
        self._unhonoured(
            doc,
            spec,
            {
                "builder.command": "give the package a buildcmd",
                "runtime.container": "a Kubernetes container spec",
                "runtime.podspec": "a Kubernetes pod spec",
                "builder.container": "a Kubernetes container spec",
                "builder.podspec": "a Kubernetes pod spec",
                "resources": "set a function's memory and CPU instead",
                "keeparchive": "faasd hands a runtime the unpacked deployment",
                "imagepullsecret": "the engine pulls as the host's Docker does",
                "terminationGracePeriod": "an instance goes once its calls are done",
            },
        )
        if spec.get("allowedFunctionsPerContainer") not in (None, "", "single"):
            self.warn(doc, "spec.allowedFunctionsPerContainer is not used by faasd (one function per instance)")
        self.out.wanted.append(Wanted("environment", doc.name, fields, self.labels(doc), str(doc)))

    def _image(self, doc: Doc, image: str) -> str:
        ours = faasd_image(image)
        if ours != image:
            self.out.notes.append(f"{doc}: Fission's {image} runs on faasd as {ours}")
        return ours

    # -- packages --------------------------------------------------------------------------------------

    def archive(self, doc: Doc, which: str) -> LocalArchive | None:
        """The Package's ``source`` or ``deployment`` archive; None when it has none."""
        key = (doc.name, which)
        if key in self._archives:
            return self._archives[key]
        value = doc.spec.get(which)
        found: LocalArchive | None = None
        if isinstance(value, dict) and (value.get("url") or value.get("literal")):
            what = f"{doc}: spec.{which}"
            url = str(value.get("url") or "")
            if url.startswith(schema.ARCHIVE_URL_PREFIX):
                name = url[len(schema.ARCHIVE_URL_PREFIX) :]
                spec = self.specs.archives.get(name)
                if spec is None:
                    raise CliError(f"{what} names archive '{name}', which no ArchiveUploadSpec defines")
                found = resolve_globs(spec, self.specs.root)
            elif value.get("literal"):
                folder = self.workdir / f"{doc.name}-{which}"
                folder.mkdir(parents=True, exist_ok=True)
                found = literal_archive(f"{doc.name}-{which}", value["literal"], folder)
            elif url.startswith(("http://", "https://")):
                folder = self.workdir / f"{doc.name}-{which}"
                folder.mkdir(parents=True, exist_ok=True)
                checksum = str(_get(value, "checksum", "sum") or "")
                found = url_archive(f"{doc.name}-{which}", url, checksum, folder)
            else:
                raise CliError(f"{what}: url {url!r} is neither archive://NAME nor http(s)")
        elif isinstance(value, dict) and _given(value.get("type")) and value.get("type") not in ("literal", "url"):
            raise CliError(f"{doc}: spec.{which}.type {value.get('type')!r} is not supported by faasd")
        self._archives[key] = found
        return found

    def is_code_package(self, doc: Doc) -> bool:
        """A Package of one plain file and no source: a function of one file (faasd's ``code``)."""
        deploy = self.archive(doc, "deployment")
        return self.archive(doc, "source") is None and deploy is not None and deploy.plain

    def package(self, doc: Doc) -> None:
        spec = doc.spec
        env = _get(spec, "environment", "name")
        if not isinstance(env, str) or not env:
            raise CliError(f"{doc}: spec.environment.name is required")
        source = self.archive(doc, "source")
        deploy = self.archive(doc, "deployment")
        if source is None and deploy is None:
            raise CliError(f"{doc}: give a source or a deployment archive")
        users = [f for f in self.specs.of(schema.FUNCTION) if _get(f.spec, "package", "packageref", "name") == doc.name]
        if not users:
            self.out.warnings.append(f"{doc}: package '{doc.name}' is not used by any function")
        if self.is_code_package(doc):
            return  # its functions carry its one file as their code
        fields = {"environment": env, "buildcmd": str(spec.get("buildcmd") or "")}
        self.out.wanted.append(
            Wanted("package", doc.name, fields, self.labels(doc), str(doc), source=source, deploy=deploy)
        )

    # -- functions -------------------------------------------------------------------------------------

    def function(self, doc: Doc) -> None:
        spec = doc.spec
        env = _get(spec, "environment", "name")
        if not isinstance(env, str) or not env:
            raise CliError(f"{doc}: spec.environment.name is required")
        strategy = _get(spec, "InvokeStrategy", "ExecutionStrategy") or {}
        executor = str(strategy.get("ExecutorType") or "poolmgr")
        if executor not in ("poolmgr", "newdeploy"):
            raise CliError(f"{doc}: ExecutorType {executor!r} is not supported by faasd (poolmgr or newdeploy)")
        package_name = _get(spec, "package", "packageref", "name")
        if not isinstance(package_name, str) or not package_name:
            raise CliError(f"{doc}: spec.package.packageref.name is required")
        package = self.specs.resources[schema.PACKAGE].get(package_name)
        if package is None:
            raise CliError(f"{doc}: package '{package_name}' is not in the specs (a spec directory is self-contained)")
        package_env = _get(package.spec, "environment", "name")
        if package_env != env:
            raise CliError(f"{doc}: environment '{env}' is not its package's ('{package_env}')")
        fields: dict[str, Any] = {"environment": env}
        if self.is_code_package(package):
            code = self.archive(package, "deployment")
            assert code is not None
            fields.update(code=code.code(), filename=code.filename)
        else:
            fields["package"] = package_name
        fields["entrypoint"] = str(_get(spec, "package", "functionName") or "")
        fields["executor"] = executor
        what = f"{doc}: spec"
        fields["timeout"] = (
            _int(spec["functionTimeout"], f"{what}.functionTimeout", 1)
            if _given(spec.get("functionTimeout"))
            else FUNCTION_DEFAULTS["timeout"]
        )
        limits = _get(spec, "resources", "limits") or {}
        fields["memory_mb"] = (
            memory_mb(limits["memory"], f"{what}.resources.limits.memory")
            if _given(limits.get("memory"))
            else FUNCTION_DEFAULTS["memory_mb"]
        )
        fields["cpu_millis"] = (
            cpu_millis(limits["cpu"], f"{what}.resources.limits.cpu")
            if _given(limits.get("cpu"))
            else FUNCTION_DEFAULTS["cpu_millis"]
        )
        if _given(_get(spec, "resources", "requests")) and not limits:
            self.warn(doc, "spec.resources.requests is not used by faasd: it sets limits (resources.limits)")
        per_instance = spec.get("requestsPerPod")
        fields["concurrency"] = (
            self._clamped(doc, _int(per_instance, f"{what}.requestsPerPod", 1), "requestsPerPod", MAX_CONCURRENCY)
            if _given(per_instance)
            else FUNCTION_DEFAULTS["concurrency"]
        )
        fields["min_instances"] = self._clamped(
            doc, _int(strategy.get("MinScale") or 0, f"{what}...MinScale"), "MinScale", MAX_INSTANCES
        )
        # Instances at most: newdeploy's MaxScale; poolmgr's is Fission's `concurrency` (pods specialized).
        most = strategy.get("MaxScale")
        if executor != "newdeploy" or not _given(most):
            most = spec.get("concurrency") if _given(spec.get("concurrency")) else most
        fields["max_instances"] = (
            self._clamped(doc, _int(most, f"{what}: instances at most", 1), "MaxScale/concurrency", MAX_INSTANCES)
            if _given(most)
            else FUNCTION_DEFAULTS["max_instances"]
        )
        idle = spec.get("idletimeout")
        fields["idle_timeout"] = _int(idle, f"{what}.idletimeout", 1) if _given(idle) else None
        fields["queue_timeout"] = self._annotated_int(doc, "queue-timeout", "queue_timeout")
        fields["network"] = self.annotation(doc, "network") or FUNCTION_DEFAULTS["network"]
        fields["retries"] = self._annotated_int(doc, "retries", "retries")
        fields["retry_max_age"] = self._annotated_int(doc, "retry-max-age", "retry_max_age")
        fields["env"] = self._env(doc)
        secrets = tuple(s for s in (self.annotation(doc, "secrets") or "").split(",") if s.strip())
        if spec.get("secrets"):
            names = ", ".join(str(_get(s, "name")) for s in spec["secrets"] if isinstance(s, dict))
            self.warn(
                doc,
                f"spec.secrets ({names}) name Kubernetes secrets, which faasd does not have; give the function "
                "its secrets with 'faas fn update --secret NAME=VALUE'",
            )
        self._unhonoured(
            doc,
            spec,
            {
                "configmaps": "faasd has no config maps; use faasd.io/env",
                "podspec": "a Kubernetes pod spec",
                "onceOnly": "an instance serves many calls",
                "InvokeStrategy.ExecutionStrategy.TargetCPUPercent": "faasd scales on calls in flight",
                "InvokeStrategy.ExecutionStrategy.hpaMetrics": "faasd scales on calls in flight",
                "InvokeStrategy.ExecutionStrategy.hpaBehavior": "faasd scales on calls in flight",
            },
        )
        self.out.wanted.append(
            Wanted("function", doc.name, fields, self.labels(doc), str(doc), secrets=tuple(s.strip() for s in secrets))
        )

    def _clamped(self, doc: Doc, value: int, what: str, most: int) -> int:
        if value > most:
            self.warn(doc, f"{what} {value} is more than faasd's {most}; {most} is used")
            return most
        return value

    def _annotated_int(self, doc: Doc, key: str, field_name: str) -> int:
        text = self.annotation(doc, key)
        if text is None or text == "":
            value: int = FUNCTION_DEFAULTS[field_name]
            return value
        return _int(text, f"{doc}: annotation {schema.ANNOTATION_PREFIX}{key}", 0)

    def _env(self, doc: Doc) -> dict[str, str]:
        text = self.annotation(doc, "env")
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise CliError(f"{doc}: annotation {schema.ANNOTATION_PREFIX}env must be a JSON object of strings")
        return {str(k): v for k, v in value.items()}

    # -- triggers --------------------------------------------------------------------------------------

    def _function_ref(self, doc: Doc, ref: Any) -> str:
        kind = str(_get(ref, "type") or "name")
        if kind != "name":
            raise CliError(f"{doc}: functionref type {kind!r} is not supported by faasd (name)")
        name = _get(ref, "name")
        if not isinstance(name, str) or not name:
            raise CliError(f"{doc}: spec.functionref.name is required")
        if name not in self.specs.resources[schema.FUNCTION]:
            raise CliError(f"{doc}: function '{name}' is not in the specs")
        return name

    def http_trigger(self, doc: Doc) -> None:
        spec = doc.spec
        function = self._function_ref(doc, spec.get("functionref"))
        url = spec.get("relativeurl")
        if not url:
            if spec.get("prefix"):
                raise CliError(f"{doc}: faasd routes match whole paths: give relativeurl (e.g. /shop/{{item}})")
            raise CliError(f"{doc}: spec.relativeurl is required")
        methods: list[str] = []
        raw = spec.get("methods") or ([spec["method"]] if spec.get("method") else ["GET"])
        for method in raw if isinstance(raw, list) else [raw]:
            upper = str(method).upper()
            if upper not in methods:
                methods.append(upper)
        asynchronous = (self.annotation(doc, "async") or "").lower() == "true"
        self._unhonoured(
            doc,
            spec,
            {
                "host": "faasd routes any host",
                "prefix": "relativeurl is used",
                "keepPrefix": "relativeurl is used",
                "createingress": "faasd is its own front",
            },
        )
        if any(_given(v) for v in (spec.get("ingressconfig") or {}).values()):
            self.warn(doc, "spec.ingressconfig is not used by faasd (faasd is its own front)")
        for index, method in enumerate(methods):
            name = doc.name if index == 0 else route_name(doc.name, method)
            fields = {"method": method, "url": _url(str(url)), "function": function, "async": asynchronous}
            self.out.wanted.append(Wanted("route", name, fields, self.labels(doc), str(doc)))

    def time_trigger(self, doc: Doc) -> None:
        spec = doc.spec
        function = self._function_ref(doc, spec.get("functionref"))
        cron = str(spec.get("cron") or "").strip()
        if not cron:
            raise CliError(f"{doc}: spec.cron is required")
        timezone = TIMER_DEFAULTS["timezone"]
        zoned = CRON_TZ.fullmatch(cron)
        if zoned:
            timezone, cron = zoned.group(1), zoned.group(2).strip()
        fields = {
            "function": function,
            "cron": cron,
            "timezone": timezone,
            "method": (self.annotation(doc, "method") or TIMER_DEFAULTS["method"]).upper(),
            "subpath": self.annotation(doc, "subpath") or TIMER_DEFAULTS["subpath"],
            "overlap": self.annotation(doc, "overlap") or TIMER_DEFAULTS["overlap"],
            "catch_up": self.annotation(doc, "catch-up") or TIMER_DEFAULTS["catch_up"],
        }
        self.out.wanted.append(Wanted("timer", doc.name, fields, self.labels(doc), str(doc)))

    def watch_trigger(self, doc: Doc) -> None:
        spec = doc.spec
        function = self._function_ref(doc, spec.get("functionref"))
        kind = str(spec.get("type") or "pod").lower()
        if kind not in WATCH_TYPES:
            raise CliError(
                f"{doc}: faasd watches the Docker engine: type {kind!r} has no counterpart there "
                "(pod = container, or network, volume, image)"
            )
        selector = spec.get("labelselector") or {}
        if not isinstance(selector, dict):
            raise CliError(f"{doc}: spec.labelselector must be a map of labels")
        events = [e.strip() for e in (self.annotation(doc, "events") or ",".join(WATCH_EVENTS)).split(",") if e.strip()]
        fields = {
            "function": function,
            "type": WATCH_TYPES[kind],
            WATCH_FILTER: {str(k): "" if v is None else str(v) for k, v in selector.items()},
            "events": events,
            "include_faasd": (self.annotation(doc, "include-faasd") or "").lower() == "true",
        }
        self.out.wanted.append(Wanted("watch", doc.name, fields, self.labels(doc), str(doc)))

    def mq_trigger(self, doc: Doc) -> None:
        spec = doc.spec
        function = self._function_ref(doc, spec.get("functionref"))
        given = str(spec.get("messageQueueType") or "").lower()
        mqtype = MQ_TYPES.get(given)
        if mqtype is None:
            raise CliError(
                f"{doc}: messageQueueType {given!r} is not one faasd reads (redis = Redis Streams, nats-jetstream)"
            )
        topic = spec.get("topic")
        if not isinstance(topic, str) or not topic:
            raise CliError(f"{doc}: spec.topic is required")
        connection = self.annotation(doc, "connection") or ""
        address = _get(spec, "metadata", "address")
        if not connection and mqtype == "redis" and isinstance(address, str) and address:
            connection = address if "://" in address else f"redis://{address}"
        fields = {
            "function": function,
            "mqtype": mqtype,
            "topic": topic,
            "resptopic": str(spec.get("respTopic") or ""),
            "errortopic": str(spec.get("errorTopic") or ""),
            "maxretries": _int(spec["maxRetries"], f"{doc}: spec.maxRetries", 0, 100)
            if spec.get("maxRetries") is not None
            else MQ_DEFAULTS["maxretries"],
            "maxconcurrency": _int(self.annotation(doc, "maxconcurrency"), f"{doc}: maxconcurrency", 1)
            if self.annotation(doc, "maxconcurrency")
            else MQ_DEFAULTS["maxconcurrency"],
            "contenttype": str(spec.get("contentType") or MQ_DEFAULTS["contenttype"]),
            "connection": connection,
            "connection_secret": str(spec.get("secret") or ""),
            "method": (self.annotation(doc, "method") or MQ_DEFAULTS["method"]).upper(),
        }
        self._unhonoured(
            doc,
            spec,
            {
                "pollingInterval": "faasd reads the broker itself: a message is delivered when published",
                "cooldownPeriod": "KEDA scaling",
                "minReplicaCount": "KEDA scaling",
                "maxReplicaCount": "KEDA scaling",
                "podspec": "a Kubernetes pod spec",
            },
        )
        self.out.wanted.append(Wanted("mqtrigger", doc.name, fields, self.labels(doc), str(doc)))


def _url(url: str) -> str:
    """A route URL as faasd keeps it (no trailing slash)."""
    url = url if url.startswith("/") else "/" + url
    return url.rstrip("/") or "/"


# -- faasd -> Fission -----------------------------------------------------------------------------------


def _document(
    kind: str, name: str, spec: dict[str, Any], labels: dict[str, str], notes: dict[str, str]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    own = {k: v for k, v in sorted(labels.items()) if k not in schema.DEPLOYMENT_LABELS}
    if own:
        metadata["labels"] = own
    if notes:
        metadata["annotations"] = {schema.ANNOTATION_PREFIX + k: v for k, v in notes.items()}
    return {"apiVersion": schema.API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def _ref(name: str) -> dict[str, str]:
    return {"namespace": "", "name": name}


def environment_doc(env: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"version": 3, "runtime": {"image": fission_image(str(env["image"]))}}
    if env.get("builder"):
        spec["builder"] = {"image": fission_image(str(env["builder"]))}
    spec["poolsize"] = int(env.get("poolsize", DEFAULT_POOLSIZE))
    return _document(schema.ENVIRONMENT, env["name"], spec, env.get("labels") or {}, {})


def package_doc(
    name: str, environment: str, archive: str, *, source: bool, buildcmd: str = "", labels: Any = None
) -> dict[str, Any]:
    """A Package whose ``source`` (else ``deployment``) is ``archive://<archive>``."""
    spec: dict[str, Any] = {"environment": _ref(environment)}
    spec["source" if source else "deployment"] = {"type": "url", "url": schema.ARCHIVE_URL_PREFIX + archive}
    if buildcmd:
        spec["buildcmd"] = buildcmd
    doc = _document(schema.PACKAGE, name, spec, labels or {}, {})
    doc["status"] = {"buildstatus": "pending" if source else "none"}
    return doc


def archive_doc(name: str, include: list[str]) -> dict[str, Any]:
    return {"kind": schema.ARCHIVE_UPLOAD, "name": name, "include": include}


def function_doc(fn: dict[str, Any], package: str) -> dict[str, Any]:
    """A Function running ``package`` (for a single-file function: the Package its file was exported as)."""
    min_instances = int(fn.get("min_instances") or 0)
    max_instances = int(fn.get("max_instances") or FUNCTION_DEFAULTS["max_instances"])
    executor = str(fn.get("executor") or FUNCTION_DEFAULTS["executor"])
    strategy: dict[str, Any] = {"ExecutorType": executor, "MinScale": min_instances, "MaxScale": max_instances}
    if executor == "newdeploy":
        strategy["SpecializationTimeout"] = 120  # Fission's least for newdeploy
    spec: dict[str, Any] = {
        "environment": _ref(str(fn["environment"])),
        "package": {"packageref": _ref(package)},
        "resources": {"limits": {"memory": f"{fn.get('memory_mb', 256)}Mi", "cpu": f"{fn.get('cpu_millis', 1000)}m"}},
        "InvokeStrategy": {"ExecutionStrategy": strategy, "StrategyType": "execution"},
        "functionTimeout": int(fn.get("timeout") or FUNCTION_DEFAULTS["timeout"]),
        "concurrency": max_instances,
        "requestsPerPod": int(fn.get("concurrency") or FUNCTION_DEFAULTS["concurrency"]),
    }
    if fn.get("entrypoint"):
        spec["package"]["functionName"] = fn["entrypoint"]
    if fn.get("idle_timeout") is not None:
        spec["idletimeout"] = int(fn["idle_timeout"])
    notes: dict[str, str] = {}
    for key, note in (("queue_timeout", "queue-timeout"), ("retries", "retries"), ("retry_max_age", "retry-max-age")):
        if fn.get(key) is not None and fn[key] != FUNCTION_DEFAULTS[key]:
            notes[note] = str(fn[key])
    if fn.get("network") and fn["network"] != FUNCTION_DEFAULTS["network"]:
        notes["network"] = str(fn["network"])
    if fn.get("env"):
        notes["env"] = json.dumps(fn["env"], sort_keys=True)
    if fn.get("secrets"):
        notes["secrets"] = ",".join(sorted(fn["secrets"]))
    return _document(schema.FUNCTION, fn["name"], spec, fn.get("labels") or {}, notes)


def trigger_doc(name: str, routes: list[dict[str, Any]]) -> dict[str, Any]:
    """An HTTPTrigger for the routes of one URL and function (one per method)."""
    first = routes[0]
    spec = {
        "relativeurl": first["url"],
        "methods": [r["method"] for r in routes],
        "functionref": {"type": "name", "name": first["function"]},
    }
    notes = {"async": "true"} if first.get("async") else {}
    return _document(schema.HTTP_TRIGGER, name, spec, first.get("labels") or {}, notes)


def group_routes(routes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Routes as triggers: ``<name>-<method>`` joins ``<name>`` when both have the same URL, function,
    async flag and labels (the routes an apply makes of a trigger with several methods)."""
    by_name = {r["name"]: r for r in routes}
    groups: dict[str, list[dict[str, Any]]] = {}
    for route in sorted(routes, key=lambda r: r["name"]):
        base = route["name"].rsplit("-", 1)[0] if "-" in route["name"] else ""
        head = by_name.get(base)
        same = ("url", "function", "async", "labels")
        if (
            head is not None
            and route["name"] == route_name(base, route["method"])
            and all(head.get(k) == route.get(k) for k in same)
            and head["method"] != route["method"]
        ):
            groups.setdefault(base, [head]).append(route)
        else:
            groups.setdefault(route["name"], [route])
    return groups


def timer_doc(timer: dict[str, Any]) -> dict[str, Any]:
    cron = str(timer["cron"])
    timezone = timer.get("timezone") or "UTC"
    if timezone != "UTC":
        cron = f"CRON_TZ={timezone} {cron}"
    notes = {note: str(timer[key]) for key, note in TIMER_NOTES if timer.get(key) not in (None, TIMER_DEFAULTS[key])}
    spec = {"cron": cron, "functionref": {"type": "name", "name": timer["function"]}}
    return _document(schema.TIME_TRIGGER, timer["name"], spec, timer.get("labels") or {}, notes)


def watch_doc(watch: dict[str, Any], engine_labels: dict[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "namespace": "default",
        "type": WATCH_EXPORT.get(str(watch["type"]), str(watch["type"])),
        "functionref": {"type": "name", "name": watch["function"]},
    }
    if engine_labels:
        spec["labelselector"] = dict(sorted(engine_labels.items()))
    notes: dict[str, str] = {}
    events = list(watch.get("events") or WATCH_EVENTS)
    if sorted(events) != sorted(WATCH_EVENTS):
        notes["events"] = ",".join(events)
    if watch.get("include_faasd"):
        notes["include-faasd"] = "true"
    return _document(schema.WATCH_TRIGGER, watch["name"], spec, watch.get("labels") or {}, notes)


def mq_doc(mq: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "functionref": {"type": "name", "name": mq["function"]},
        "messageQueueType": MQ_EXPORT.get(str(mq["mqtype"]), str(mq["mqtype"])),
        "mqtkind": "keda",
        "topic": mq["topic"],
        "maxRetries": int(mq.get("maxretries", MQ_DEFAULTS["maxretries"])),
        "contentType": mq.get("contenttype") or MQ_DEFAULTS["contenttype"],
    }
    if mq.get("resptopic"):
        spec["respTopic"] = mq["resptopic"]
    if mq.get("errortopic"):
        spec["errorTopic"] = mq["errortopic"]
    if mq.get("connection_secret"):
        spec["secret"] = mq["connection_secret"]
    notes: dict[str, str] = {}
    if mq.get("connection"):
        notes["connection"] = str(mq["connection"])
    if mq.get("maxconcurrency") not in (None, MQ_DEFAULTS["maxconcurrency"]):
        notes["maxconcurrency"] = str(mq["maxconcurrency"])
    if mq.get("method") not in (None, MQ_DEFAULTS["method"]):
        notes["method"] = str(mq["method"])
    return _document(schema.MQ_TRIGGER, mq["name"], spec, mq.get("labels") or {}, notes)
