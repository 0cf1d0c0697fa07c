"""faasd's exception tree.

Every error a user can meet is a :class:`FaasdError`; each class carries the
HTTP status and the stable ``code`` that the error middleware puts into
``{"error": {"code": ..., "message": ...}}``. Lower libraries' errors (the
Docker SDK, SQLAlchemy, aiohttp's client) are translated into these at one
boundary each, so nothing above those boundaries sees a foreign exception.
"""

from __future__ import annotations


class FaasdError(Exception):
    """Base of every error faasd reports to a caller."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Extra response headers, e.g. Retry-After on a 429.
        self.headers: dict[str, str] = dict(headers or {})

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(FaasdError):
    """The request is malformed or a field is invalid; the message names the field."""

    status = 400
    code = "bad_request"


class NotFound(FaasdError):
    """An environment, function, route or URL does not exist."""

    status = 404
    code = "not_found"


class MethodNotAllowed(FaasdError):
    """A route exists for the path, but not for this method."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message, {"Allow": ", ".join(allowed)})
        self.allowed = allowed


class Conflict(FaasdError):
    """The name or route is taken, or the object is still in use."""

    status = 409
    code = "conflict"


class Unauthorized(FaasdError):
    """The admin API was called without the right bearer token."""

    status = 401
    code = "unauthorized"


class TooManyRequests(FaasdError):
    """Every instance of the function is busy and it is at max_instances; retry later."""

    status = 429
    code = "too_many_requests"


class PayloadTooLarge(FaasdError):
    """A request body or a function's code is over its limit."""

    status = 413
    code = "payload_too_large"


class UpstreamError(FaasdError):
    """The function's container failed to answer (it died or closed the connection)."""

    status = 502
    code = "upstream_error"


class NodeUnreachable(FaasdError):
    """Another faasd node of the cluster did not answer what this node asked it for (its logs)."""

    status = 502
    code = "node_unreachable"


class EngineUnavailable(FaasdError):
    """The container engine cannot be reached or refused to start a container."""

    status = 503
    code = "engine_unavailable"


class Overloaded(FaasdError):
    """faasd holds as many client connections or waiting calls as it may; retry later."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, {"Retry-After": "1"} if headers is None else headers)


class PackageNotReady(FaasdError):
    """A function's package has no deployment to run: it is not built yet, or its build failed."""

    status = 503
    code = "package_not_ready"


class RegistryUnavailable(FaasdError):
    """The registry's database (SQLite file or PostgreSQL) cannot be reached; changes wait until it answers."""

    status = 503
    code = "registry_unavailable"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, {"Retry-After": "1"} if headers is None else headers)


class ShuttingDown(FaasdError):
    """faasd is stopping and takes no new calls."""

    status = 503
    code = "shutting_down"


class FunctionTimeout(FaasdError):
    """The function did not answer within its timeout."""

    status = 504
    code = "timeout"


class ImageNotFound(EngineUnavailable):
    """An environment's image does not exist on the engine."""

    code = "image_not_found"
