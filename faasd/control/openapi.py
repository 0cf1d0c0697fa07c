"""The OpenAPI 3 document of the admin API, served at /v1/openapi.json.

Written by hand next to faasd/control/api.py; tests/integration/test_openapi.py runs
schemathesis against a live faasd to keep the two in step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from faasd import __version__
from faasd.core.entities import MAX_PACKAGE_BYTES, NETWORKS, BuildStatus, Function, Package
from faasd.core.validation import MAX_CPU_MILLIS, MAX_POOLSIZE, MAX_TIMEOUT, METHODS, MIN_CPU_MILLIS

NAME = {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "maxLength": 63}
TIME = {"type": "string", "format": "date-time"}
VARIABLES = {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 100}
BUILDER = {"type": "string", "description": "the image that builds the environment's packages; empty: none"}
BUILDCMD = {"type": "string", "maxLength": 4096, "description": "the build command; empty: the builder's own"}
ARCHIVE = {
    "type": "string",
    "format": "binary",
    "description": f"a zip, tar or tar.gz archive of at most {MAX_PACKAGE_BYTES:,} bytes, unpacked too",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, extra: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        schema["required"] = required
    return schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = _json(_ref("Error"), "an error")
ERRORS = {"400": ERROR, "401": ERROR, "413": ERROR}


def _schemas() -> dict[str, Any]:
    function_settings = {
        "filename": {"type": "string", "maxLength": 255},
        "entrypoint": {"type": "string", "maxLength": 255},
        "timeout": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT},
        "env": VARIABLES,
        "memory_mb": {"type": "integer", "minimum": 32, "maximum": 8192},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 1000},
        "max_instances": {"type": "integer", "minimum": 1, "maximum": 100},
        "min_instances": {"type": "integer", "minimum": 0, "maximum": 100},
        "idle_timeout": {"type": "integer", "nullable": True, "minimum": 1, "maximum": 86400},
        "queue_timeout": {"type": "integer", "minimum": 0, "maximum": MAX_TIMEOUT},
        "cpu_millis": {
            "type": "integer",
            "minimum": MIN_CPU_MILLIS,
            "maximum": MAX_CPU_MILLIS,
            "description": "CPU limit in millicores (1000 = one core)",
        },
        "network": {
            "type": "string",
            "enum": list(NETWORKS),
            "description": "default: beyond the machine, never other containers, faasd or the host; none: no network",
        },
    }
    # What GET returns: every field of the Function value (secrets as names only).
    function_fields = [f.name for f in dataclasses.fields(Function)]
    return {
        "Error": _obj(
            {"error": _obj({"code": {"type": "string"}, "message": {"type": "string"}}, ["code", "message"])},
            ["error"],
        ),
        "Environment": _obj(
            {
                "name": NAME,
                "image": {"type": "string"},
                "builder": BUILDER,
                "poolsize": {"type": "integer"},
                "created_at": TIME,
                "updated_at": TIME,
            },
            ["name", "image", "builder", "poolsize", "created_at", "updated_at"],
        ),
        "EnvironmentCreate": _obj(
            {
                "name": NAME,
                "image": {"type": "string", "maxLength": 255},
                "builder": {**BUILDER, "maxLength": 255},
                "poolsize": {"type": "integer", "minimum": 0, "maximum": MAX_POOLSIZE},
            },
            ["name", "image"],
        ),
        "EnvironmentUpdate": _obj(
            {
                "image": {"type": "string", "maxLength": 255},
                "builder": {**BUILDER, "maxLength": 255},
                "poolsize": {"type": "integer", "minimum": 0, "maximum": MAX_POOLSIZE},
            }
        ),
        "Function": _obj(
            {
                "name": NAME,
                "environment": NAME,
                "filename": {"type": "string"},
                "entrypoint": {"type": "string"},
                "timeout": {"type": "integer"},
                "code_sha256": {"type": "string"},
                "code_size": {"type": "integer"},
                "revision": {"type": "integer"},
                "env": VARIABLES,
                "secrets": {"type": "array", "items": {"type": "string"}, "description": "names only"},
                "memory_mb": {"type": "integer"},
                "concurrency": {"type": "integer"},
                "max_instances": {"type": "integer"},
                "min_instances": {"type": "integer"},
                "idle_timeout": {"type": "integer", "nullable": True},
                "queue_timeout": {"type": "integer"},
                "cpu_millis": {"type": "integer"},
                "network": {"type": "string", "enum": list(NETWORKS)},
                "package": {"type": "string", "description": "the package the function runs; empty: one source file"},
                "created_at": TIME,
                "updated_at": TIME,
            },
            function_fields,
        ),
        "FunctionCreate": _obj(
            {
                "name": NAME,
                "environment": {**NAME, "description": "needed with code; with package, the package's (the default)"},
                "code": {"type": "string", "minLength": 1, "description": "the source text (or give package)"},
                "package": {**NAME, "description": "a package to run instead of code; see entrypoint"},
                "secrets": VARIABLES,
                **function_settings,
            },
            ["name"],
        ),
        "FunctionUpdate": _obj(
            {
                "environment": NAME,
                "code": {"type": "string", "minLength": 1},
                "package": {"type": "string", "description": "run this package; with code, back to one file"},
                "secrets": VARIABLES,
                **function_settings,
            }
        ),
        "Package": _obj(
            {
                "name": NAME,
                "environment": NAME,
                "status": {"type": "string", "enum": [s.value for s in BuildStatus]},
                "source_sha256": {"type": "string"},
                "source_size": {"type": "integer"},
                "deploy_sha256": {"type": "string"},
                "deploy_size": {"type": "integer"},
                "buildcmd": {"type": "string"},
                "build_log": {"type": "string", "description": "the tail of the last build's output (not in lists)"},
                "error": {"type": "string", "description": "why the last build failed"},
                "created_at": TIME,
                "updated_at": TIME,
            },
            [f.name for f in dataclasses.fields(Package) if f.name != "build_log"],
        ),
        "PackageCreate": _obj(
            {
                "name": NAME,
                "environment": NAME,
                "buildcmd": BUILDCMD,
                "source": ARCHIVE,
                "deploy": ARCHIVE,
            },
            ["name", "environment"],
        ),
        "PackageUpdate": _obj(
            {"environment": NAME, "buildcmd": BUILDCMD, "source": ARCHIVE, "deploy": ARCHIVE},
        ),
        "Route": _obj(
            {
                "name": NAME,
                "method": {"type": "string", "enum": list(METHODS)},
                "url": {"type": "string"},
                "function": NAME,
                "created_at": TIME,
                "updated_at": TIME,
            },
            ["name", "method", "url", "function", "created_at", "updated_at"],
        ),
        "RouteCreate": _obj(
            {
                "name": NAME,
                "method": {"type": "string", "enum": list(METHODS)},
                "url": {"type": "string", "pattern": "^/", "maxLength": 1024, "example": "/users/{id}"},
                "function": NAME,
            },
            ["url", "function"],
        ),
        "RouteUpdate": _obj(
            {
                "method": {"type": "string", "enum": list(METHODS)},
                "url": {"type": "string", "pattern": "^/", "maxLength": 1024},
                "function": NAME,
            }
        ),
        "Status": _obj(
            {
                "version": {"type": "string"},
                "isolation": {
                    "description": "what keeps functions apart: network, inter-container traffic, host firewall",
                    "type": ["object", "null"],
                },
                "environments": {"type": "array", "items": {"type": "object"}},
                "functions": {"type": "array", "items": {"type": "object"}},
            },
            ["version", "environments", "functions"],
        ),
    }


def _collection(kind: str, schema: str, path_doc: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"list {path_doc}",
            "operationId": f"list{schema}s",
            "responses": {
                "200": _json(_obj({"items": {"type": "array", "items": _ref(schema)}}, ["items"]), "the list"),
                **ERRORS,
            },
        },
        "post": {
            "summary": f"create a {kind}",
            "operationId": f"create{schema}",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(f"{schema}Create")}}},
            "responses": {"201": _json(_ref(schema), "created"), "409": ERROR, **ERRORS},
        },
    }


def _item(kind: str, schema: str, delete_params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    name_param = {"name": "name", "in": "path", "required": True, "schema": NAME}
    update = {
        "summary": f"change a {kind}",
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(f"{schema}Update")}}},
        "responses": {"200": _json(_ref(schema), "changed"), "404": ERROR, "409": ERROR, **ERRORS},
    }
    return {
        "parameters": [name_param],
        "get": {
            "summary": f"get a {kind}",
            "operationId": f"get{schema}",
            "responses": {"200": _json(_ref(schema), "found"), "404": ERROR, **ERRORS},
        },
        "patch": {**update, "operationId": f"patch{schema}"},
        "put": {**update, "operationId": f"put{schema}"},
        "delete": {
            "summary": f"delete a {kind}",
            "operationId": f"delete{schema}",
            "parameters": delete_params or [],
            "responses": {"204": {"description": "deleted"}, "404": ERROR, "409": ERROR, **ERRORS},
        },
    }


def _form(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"multipart/form-data": {"schema": _ref(schema)}}}


def _package_paths(name_param: dict[str, Any], force: dict[str, Any]) -> dict[str, Any]:
    """Packages: archives go up as multipart/form-data; builds run in the background."""
    package = _json(_ref("Package"), "the package")
    return {
        "/v1/packages": {
            "get": {
                "summary": "list packages (without build logs)",
                "operationId": "listPackages",
                "responses": {
                    "200": _json(_obj({"items": {"type": "array", "items": _ref("Package")}}, ["items"]), "the list"),
                    **ERRORS,
                },
            },
            "post": {
                "summary": "create a package from a source archive (built in the background) or a deployment archive",
                "operationId": "createPackage",
                "requestBody": _form("PackageCreate"),
                "responses": {"201": package, "409": ERROR, **ERRORS},
            },
        },
        "/v1/packages/{name}": {
            "parameters": [name_param],
            "get": {
                "summary": "get a package with its build log",
                "operationId": "getPackage",
                "responses": {"200": package, "404": ERROR, **ERRORS},
            },
            "patch": {
                "summary": "change a package's archives, build command or environment (a new source is built)",
                "operationId": "patchPackage",
                "requestBody": _form("PackageUpdate"),
                "responses": {"200": package, "404": ERROR, "409": ERROR, **ERRORS},
            },
            "delete": {
                "summary": "delete a package (force=true: with the functions that run it)",
                "operationId": "deletePackage",
                "parameters": [force],
                "responses": {"204": {"description": "deleted"}, "404": ERROR, "409": ERROR, **ERRORS},
            },
        },
        "/v1/packages/{name}/rebuild": {
            "parameters": [name_param],
            "post": {
                "summary": "build the package's source again",
                "operationId": "rebuildPackage",
                "responses": {"202": _json(_ref("Package"), "the build is queued"), "404": ERROR, **ERRORS},
            },
        },
        "/v1/packages/{name}/deploy": {
            "parameters": [name_param],
            "get": {
                "summary": "the package's deployment archive (a tar)",
                "operationId": "getPackageDeploy",
                "responses": {
                    "200": {
                        "description": "the archive",
                        "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "404": ERROR,
                    **ERRORS,
                },
            },
        },
    }


def document() -> dict[str, Any]:
    force = {"name": "force", "in": "query", "required": False, "schema": {"type": "string", "enum": ["true", "false"]}}
    name_param = {"name": "name", "in": "path", "required": True, "schema": NAME}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "faasd admin API",
            "version": __version__,
            "description": "Environments, functions, packages and HTTP routes of a faasd daemon.",
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/environments": _collection("environment", "Environment", "environments"),
            "/v1/environments/{name}": _item("environment", "Environment"),
            "/v1/functions": _collection("function", "Function", "functions"),
            "/v1/functions/{name}": _item("function", "Function", [force]),
            "/v1/functions/{name}/code": {
                "parameters": [name_param],
                "get": {
                    "summary": "the function's source",
                    "operationId": "getFunctionCode",
                    "responses": {
                        "200": {"description": "source", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "404": ERROR,
                        **ERRORS,
                    },
                },
            },
            "/v1/functions/{name}/logs": {
                "parameters": [name_param],
                "get": {
                    "summary": "the function's log; follow=true streams new records",
                    "operationId": "getFunctionLogs",
                    "parameters": [
                        {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "follow", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
                    ],
                    "responses": {
                        "200": {"description": "log", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "404": ERROR,
                        **ERRORS,
                    },
                },
            },
            **_package_paths(name_param, force),
            "/v1/triggers/http": _collection("route", "Route", "HTTP routes"),
            "/v1/triggers/http/{name}": _item("route", "Route"),
            "/v1/status": {
                "get": {
                    "summary": "pools and instances",
                    "operationId": "getStatus",
                    "responses": {"200": _json(_ref("Status"), "status"), **ERRORS},
                }
            },
        },
    }
