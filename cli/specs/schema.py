"""The kinds of a Fission spec directory, their fields as Fission's CRDs define them, and faasd's marks.

The field trees follow Fission's ``pkg/apis/core/v1/types.go`` (the v1.2x
line) and ``pkg/fission-cli/cmd/spec/types`` for the two local kinds. They
are what ``faas spec validate`` checks documents against: a key that is not
there is reported (a typo is the usual cause), and never sent anywhere.
:data:`ANY` marks a value whose inside is Kubernetes' (a PodSpec, resource
requirements) or free-form (a map of strings).
"""

from __future__ import annotations

import re
from typing import Any, Final

API_VERSION: Final = "fission.io/v1"

ENVIRONMENT: Final = "Environment"
PACKAGE: Final = "Package"
FUNCTION: Final = "Function"
HTTP_TRIGGER: Final = "HTTPTrigger"
TIME_TRIGGER: Final = "TimeTrigger"
MQ_TRIGGER: Final = "MessageQueueTrigger"
WATCH_TRIGGER: Final = "KubernetesWatchTrigger"
DEPLOYMENT_CONFIG: Final = "DeploymentConfig"
ARCHIVE_UPLOAD: Final = "ArchiveUploadSpec"

RESOURCE_KINDS: Final = (ENVIRONMENT, PACKAGE, FUNCTION, HTTP_TRIGGER, TIME_TRIGGER, MQ_TRIGGER, WATCH_TRIGGER)
"""The CRD kinds, in the order an apply makes them (what is referred to before what refers to it)."""
LOCAL_KINDS: Final = (DEPLOYMENT_CONFIG, ARCHIVE_UPLOAD)

DEPLOYMENT_CONFIG_FILE: Final = "fission-deployment-config.yaml"
ARCHIVE_URL_PREFIX: Final = "archive://"

# What `faas spec apply` marks the objects it made with: faasd labels (Fission
# keeps the same two facts in annotations). Never exported: the applier sets them.
UID_LABEL: Final = "fission.io/deployment-uid"
NAME_LABEL: Final = "fission.io/deployment-name"
DEPLOYMENT_LABELS: Final = (UID_LABEL, NAME_LABEL)

# faasd's own settings, which no Fission field holds, ride in annotations with
# this prefix: Fission keeps them and ignores them, and they come back on apply.
ANNOTATION_PREFIX: Final = "faasd.io/"

NAME_RE: Final = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
"""faasd's names (and Kubernetes' DNS labels)."""
LABEL_VALUE_RE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

ANY: Final[dict[str, Any]] = {"*": None}
"""A value taken as it is: Kubernetes' own types, or a map of strings."""


def _ref() -> dict[str, Any]:
    return {"namespace": None, "name": None}


def _archive() -> dict[str, Any]:
    return {"type": None, "literal": None, "url": None, "checksum": {"type": None, "sum": None}}


def _functionref() -> dict[str, Any]:
    return {"type": None, "name": None, "functionweights": ANY}


OBJECT_META: Final[dict[str, Any]] = {
    "name": None,
    "generateName": None,
    "namespace": None,
    "selfLink": None,
    "uid": None,
    "resourceVersion": None,
    "generation": None,
    "creationTimestamp": None,
    "deletionTimestamp": None,
    "deletionGracePeriodSeconds": None,
    "labels": ANY,
    "annotations": ANY,
    "ownerReferences": ANY,
    "finalizers": ANY,
    "managedFields": ANY,
}

SPECS: Final[dict[str, dict[str, Any]]] = {
    ENVIRONMENT: {
        "version": None,
        "runtime": {"image": None, "container": ANY, "podspec": ANY},
        "builder": {"image": None, "command": None, "container": ANY, "podspec": ANY},
        "allowedFunctionsPerContainer": None,
        "allowAccessToExternalNetwork": None,
        "resources": ANY,
        "poolsize": None,
        "terminationGracePeriod": None,
        "keeparchive": None,
        "imagepullsecret": None,
    },
    PACKAGE: {"environment": _ref(), "source": _archive(), "deployment": _archive(), "buildcmd": None},
    FUNCTION: {
        "environment": _ref(),
        "package": {"packageref": {**_ref(), "resourceversion": None}, "functionName": None},
        "secrets": [_ref()],
        "configmaps": [_ref()],
        "resources": ANY,
        "InvokeStrategy": {
            "ExecutionStrategy": {
                "ExecutorType": None,
                "MinScale": None,
                "MaxScale": None,
                "TargetCPUPercent": None,
                "SpecializationTimeout": None,
                "hpaMetrics": ANY,
                "hpaBehavior": ANY,
            },
            "StrategyType": None,
        },
        "functionTimeout": None,
        "idletimeout": None,
        "concurrency": None,
        "requestsPerPod": None,
        "onceOnly": None,
        "podspec": ANY,
    },
    HTTP_TRIGGER: {
        "host": None,
        "relativeurl": None,
        "prefix": None,
        "keepPrefix": None,
        "method": None,
        "methods": None,
        "functionref": _functionref(),
        "createingress": None,
        "ingressconfig": {"annotations": ANY, "path": None, "host": None, "tls": None},
    },
    TIME_TRIGGER: {"cron": None, "functionref": _functionref()},
    MQ_TRIGGER: {
        "functionref": _functionref(),
        "messageQueueType": None,
        "topic": None,
        "respTopic": None,
        "errorTopic": None,
        "maxRetries": None,
        "contentType": None,
        "pollingInterval": None,
        "cooldownPeriod": None,
        "minReplicaCount": None,
        "maxReplicaCount": None,
        "metadata": ANY,
        "secret": None,
        "mqtkind": None,
        "podspec": ANY,
    },
    WATCH_TRIGGER: {"namespace": None, "type": None, "labelselector": ANY, "functionref": _functionref()},
}

STATUS: Final[dict[str, dict[str, Any]]] = {
    PACKAGE: {"buildstatus": None, "buildlog": None, "lastUpdateTimestamp": None},
}

DOCUMENTS: Final[dict[str, dict[str, Any]]] = {
    **{
        kind: {
            "apiVersion": None,
            "kind": None,
            "metadata": OBJECT_META,
            "spec": SPECS[kind],
            **({"status": STATUS[kind]} if kind in STATUS else {"status": ANY}),
        }
        for kind in RESOURCE_KINDS
    },
    DEPLOYMENT_CONFIG: {"apiVersion": None, "kind": None, "name": None, "uid": None},
    ARCHIVE_UPLOAD: {"apiVersion": None, "kind": None, "name": None, "rootdir": None, "include": None, "exclude": None},
}


def unknown_keys(value: Any, schema: dict[str, Any] | list[Any] | None, path: str = "") -> list[str]:
    """The dotted paths of ``value``'s keys that ``schema`` does not have (``ANY`` takes every key)."""
    if schema is None or schema is ANY:
        return []
    if isinstance(schema, list):
        if not isinstance(value, list):
            return []
        found: list[str] = []
        for index, item in enumerate(value):
            found += unknown_keys(item, schema[0], f"{path}[{index}]")
        return found
    if not isinstance(value, dict):
        return []
    found = []
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in schema:
            found.append(where)
        else:
            found += unknown_keys(item, schema[key], where)
    return found
