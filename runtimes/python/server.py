"""faasd Python runtime.

A generic container that is specialized exactly once with one function's
source, then hands every request to that function. Standard library only
(Python 3.11+). The wire contract is described in runtimes/README.md and is
identical for every language.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import hmac
import importlib.machinery
import importlib.util
import inspect
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

# The specialization token: read and removed from the environment before
# anything else, so the function (loaded much later) never sees it in
# os.environ nor passes it to a child process. Empty = specialization is open
# (an image run by hand); faasd always sets one per container.
SPECIALIZE_TOKEN = os.fsencode(os.environ.pop("FAASD_SPECIALIZE_TOKEN", ""))

sys.dont_write_bytecode = True

PORT = int(os.environ.get("PORT", "8888"))
CODE_DIR = os.environ.get("FAASD_CODE_DIR", "/tmp/faasd-function")
# Fission's protocol (only without a token): POST /specialize loads <this>/user.
USERFUNC_DIR = os.environ.get("FAASD_USERFUNC_DIR", "/userfunc")
MAX_SPECIALIZE_BYTES = 8 * 1024 * 1024
# A package's entrypoint when none is given: the function main of main.py.
DEFAULT_PACKAGE_ENTRYPOINT = "main.main"
FILENAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (fullmatch)
BEARER_RE = re.compile(r"[ \t]*bearer[ \t]+(\S+)[ \t]*", re.I)
# A call's id (the X-Request-Id header): visible ASCII, no spaces, 1-200 characters.
REQUEST_ID_RE = re.compile(r"[\x21-\x7e]{1,200}")
DROPPED_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive"}
# Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT = 75.0


class BadRequestError(ValueError):
    """The request cannot be handed to the function (answered 400)."""


class EntrypointError(Exception):
    """The entrypoint's module or function is not there.

    ``location`` (a file relative to the code's directory) is the answer's
    location when no traceback frame gives one.
    """

    def __init__(self, message: str, location: str | None = None):
        super().__init__(message)
        self.location = location


class FunctionResultError(TypeError):
    """The function returned something that is not a response."""


# ------------------------------------------------------------ the request


class Request:
    """What a function sees of the HTTP request."""

    def __init__(self, method, path, query_string, query, headers, params, body, context=None):
        self.method: str = method
        self.path: str = path
        self.query_string: str = query_string
        self.query: dict[str, str | list[str]] = query
        self.headers: dict[str, str] = headers
        self.params: dict[str, Any] = params
        self.body: bytes = body
        # What faasd tells of the call (its X-Faasd-* headers but the params):
        # "trigger", "call_id", "attempt", "timer_name", "event_type"... {} for a
        # plain HTTP call. See runtimes/README.md, Calls.
        self.context: dict[str, str] = {} if context is None else context

    @property
    def text(self) -> str:
        m = re.search(r";\s*charset=\"?([^\";\s]+)", self.headers.get("content-type", ""), re.I)
        charset = m.group(1) if m else "utf-8"
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.text)
        except ValueError as e:
            raise BadRequestError(f"the request body is not valid JSON: {e}") from e

    # Aliases for code written against Fission's Flask request.
    @property
    def data(self) -> bytes:
        return self.body

    @property
    def args(self) -> dict[str, str | list[str]]:
        return self.query

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.text if as_text else self.body

    def get_json(self, *args: Any, **kwargs: Any) -> Any:
        return self.json()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


class Context:
    def __init__(self, request: Request):
        self.request = request
        # The call's id (its X-Request-Id header), None when it has none.
        self.request_id: str | None = request.context.get("request_id")

    def __repr__(self) -> str:
        return f"<Context {self.request!r}>"


_current: contextvars.ContextVar[Request] = contextvars.ContextVar("faasd_request")


# ------------------------------------------------------------ the function's output


class RequestLog:
    """What one call with an id writes to stdout/stderr: each line gets `[<id>] `.

    A partial line (no newline yet) waits in `pending` until its newline or
    the end of the call. Once the call has ended (`active` False), writes that
    still carry it (a task or timer left running) go out as they are.
    """

    __slots__ = ("active", "pending", "prefix")

    def __init__(self, request_id: str):
        self.prefix = f"[{request_id}] "
        self.active = True
        self.pending: tuple[list[str], list[str]] = ([], [])  # stdout's, stderr's


# The call whose code is running (None: none, or one without an id). A
# contextvar: each connection thread has its own, and asyncio tasks inherit
# the one of the call that started them.
_request_log: contextvars.ContextVar[RequestLog | None] = contextvars.ContextVar("faasd_request_log", default=None)
_output_lock = threading.Lock()


class PrefixedStream:
    """sys.stdout / sys.stderr: a call's lines get its prefix, everything else passes as it is.

    Only text written through this object is seen (print, logging, traceback,
    sys.stdout.write); writes to sys.stdout.buffer or the file descriptor are not.
    """

    def __init__(self, stream: Any, slot: int):
        self._stream = stream
        self._slot = slot

    def write(self, s: str) -> int:
        log = _request_log.get()
        if log is None or not isinstance(s, str):
            return self._stream.write(s)
        with _output_lock:
            if not log.active:
                return self._stream.write(s)
            pending = log.pending[self._slot]
            if "\n" not in s:
                if s:
                    pending.append(s)
                return len(s)
            if pending:
                text = "".join(pending) + s
                pending.clear()
            else:
                text = s
            lines = text.split("\n")
            rest = lines.pop()
            if rest:
                pending.append(rest)
            prefix = log.prefix
            self._stream.write("".join(f"{prefix}{line}\n" for line in lines))
        return len(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def end(self, log: RequestLog) -> None:
        """Writes out the call's partial line (with its prefix and a newline)."""
        pending = log.pending[self._slot]
        if pending:
            self._stream.write(f"{log.prefix}{''.join(pending)}\n")
            pending.clear()
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer, flush...
        return getattr(self._stream, name)


STREAMS: list[PrefixedStream] = []


def prefix_output() -> None:
    """Puts PrefixedStreams in place of sys.stdout and sys.stderr (at start, before any function loads)."""
    sys.stdout = PrefixedStream(sys.stdout, 0)
    sys.stderr = PrefixedStream(sys.stderr, 1)
    STREAMS[:] = [sys.stdout, sys.stderr]


def end_request_log(log: RequestLog) -> None:
    """The call is over: its partial lines go out, later writes are not prefixed."""
    with _output_lock:
        log.active = False
        for stream in STREAMS:
            stream.end(log)


class _RequestProxy:
    """The module-level `request` of a no-argument `def main():` function."""

    def __getattr__(self, name: str) -> Any:
        try:
            req = _current.get()
        except LookupError:
            raise RuntimeError("`request` is only available while a request is handled") from None
        return getattr(req, name)

    def __repr__(self) -> str:
        try:
            return repr(_current.get())
        except LookupError:
            return "<request: none>"


# ------------------------------------------------------------ runtime state


class Runtime:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = "generic"  # generic -> loading -> ready | failed
        self.filename = ""  # what messages and the log call the function
        self.path = ""  # the function's file (one-file functions)
        self.deploy_dir = ""  # the deployment directory (packages)
        self.fn: Any = None
        self.pass_context = True
        self.is_async = False
        self.load_error: dict[str, str] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """One event loop thread shared by every async call (started on demand)."""
        with self.lock:
            if self.loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="faasd-async", daemon=True).start()
                self.loop = loop
            return self.loop


RT = Runtime()


def log(message: str) -> None:
    print(f"faasd-runtime: {message}", flush=True)


def code_dirs() -> list[str]:
    """The directories whose paths messages and locations show relative."""
    if not RT.deploy_dir:
        return [CODE_DIR.rstrip("/")]
    dirs = [RT.deploy_dir.rstrip("/") or "/"]
    real = os.path.realpath(RT.deploy_dir)
    if real not in dirs:
        dirs.append(real)
    return dirs


def short(text: str) -> str:
    for d in code_dirs():
        text = text.replace(d.rstrip("/") + "/", "")
    return text


def code_file(filename: str | None) -> str | None:
    """`filename` relative to the code's directory when it is the function's code, else None.

    One-file functions: only the function's file. Packages: any file of the
    deployment (the function's modules and its vendored dependencies).
    """
    if not filename:
        return None
    if not RT.deploy_dir:
        return os.path.basename(filename) if filename == RT.path else None
    for d in code_dirs():
        prefix = d.rstrip("/") + "/"
        if filename.startswith(prefix):
            return filename[len(prefix) :]
    return None


def describe(err: BaseException) -> str:
    text = short(str(err.msg if isinstance(err, SyntaxError) and err.msg else err)).strip()
    name = type(err).__name__
    return f"{name}: {text}" if text else name


def location_of(err: BaseException) -> str | None:
    """`hello.py:LINE` (`pkg/mod.py:LINE`) of the innermost frame in the function's code."""
    if isinstance(err, SyntaxError) and err.lineno:
        name = code_file(err.filename)
        if name:
            return f"{name}:{err.lineno}"
    found = None
    for frame in traceback.extract_tb(err.__traceback__):
        name = code_file(frame.filename)
        if name:
            found = f"{name}:{frame.lineno}"
    return found


def module_name(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    if stem.isidentifier() and stem not in sys.modules and stem not in sys.stdlib_module_names:
        return stem
    return "faasd_function"


def validate_specialize(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return "the body must be a JSON object"
    if doc.get("deploy_dir") is not None:
        invalid = validate_deploy(doc)
        if invalid:
            return invalid
    else:
        filename = doc.get("filename")
        if not isinstance(filename, str) or not FILENAME_RE.match(filename):
            return '"filename" must be a plain file name such as "hello.py" (letters, digits, "._-")'
        if not isinstance(doc.get("code"), str):
            return '"code" must be a string'
    if doc.get("entrypoint") is not None and not isinstance(doc["entrypoint"], str):
        return '"entrypoint" must be a string'
    env = doc.get("env")
    if env is not None:
        if not isinstance(env, dict):
            return '"env" must be an object'
        for k, v in env.items():
            if not k or "=" in k or "\0" in k:
                return f'"env" has an invalid name {json.dumps(k)}'
            if not isinstance(v, str | int | float | bool) or "\0" in str(v):
                return f'"env.{k}" must be a string'
    return None


def validate_deploy(doc: dict[str, Any]) -> str | None:
    """A package's specialization: the code is in the directory `deploy_dir` already."""
    deploy_dir = doc["deploy_dir"]
    if not isinstance(deploy_dir, str) or not os.path.isabs(deploy_dir) or "\0" in deploy_dir:
        return '"deploy_dir" must be an absolute directory path such as "/faasd/deploy"'
    if doc.get("code") is not None:
        return 'give either "code" (a one-file function) or "deploy_dir" (a package), not both'
    if doc.get("filename") is not None and not isinstance(doc["filename"], str):
        return '"filename" must be a string'
    if not os.path.isdir(deploy_dir):
        return f'"deploy_dir" {json.dumps(deploy_dir)} is not a directory in this container'
    return None


def fission_doc(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Fission's specialization body ({"filepath", "functionName", "url"...}) as faasd's own.

    A directory is a package (`deploy_dir`, `functionName` its entrypoint); a
    file is loaded where it is (`fission_file`). Returns (doc, None) or (None, why).
    """
    for key in ("code", "deploy_dir", "filename"):
        if doc.get(key) is not None:
            return None, f'give either Fission\'s "filepath" or faasd\'s "{key}", not both'
    filepath = doc.get("filepath")
    if not isinstance(filepath, str) or not os.path.isabs(filepath) or "\0" in filepath:
        return None, '"filepath" must be an absolute path such as "/userfunc/deployarchive"'
    name = doc.get("functionName")
    if name is not None and not isinstance(name, str):
        return None, '"functionName" must be a string'
    if os.path.isdir(filepath):
        return {"deploy_dir": filepath, "entrypoint": name or ""}, None
    if os.path.isfile(filepath):
        return {"fission_file": filepath, "entrypoint": name or ""}, None
    return None, f'"filepath" {json.dumps(filepath)} is not a file or directory in this container'


def label_of(doc: dict[str, Any]) -> str:
    """What messages and the log call the function: its file, or a package's label."""
    if doc.get("fission_file") is not None:
        return os.path.basename(doc["fission_file"])
    if doc.get("deploy_dir") is None:
        return str(doc["filename"])
    label = doc.get("filename") or doc.get("entrypoint") or DEFAULT_PACKAGE_ENTRYPOINT
    return "".join(c if c.isprintable() else "?" for c in label)[:255]


def exec_file(name: str, path: str) -> Any:
    """Runs the source file `path` as the module `name`, with the global `request` injected."""
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader, origin=path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.request = _RequestProxy()  # type: ignore[attr-defined]
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def load_function(doc: dict[str, Any]) -> None:
    """Loads the function: a package from its deployment directory, else one file."""
    if doc.get("fission_file") is not None:
        load_fission_file(doc["fission_file"], doc.get("entrypoint") or "")
    elif doc.get("deploy_dir") is not None:
        load_package(doc["deploy_dir"], doc.get("entrypoint") or "")
    else:
        load_file(doc)


def load_file(doc: dict[str, Any]) -> None:
    """Writes the code under CODE_DIR, imports it and resolves the entrypoint."""
    filename: str = doc["filename"]
    os.makedirs(CODE_DIR, exist_ok=True)
    path = os.path.join(CODE_DIR, filename)
    RT.path = path
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc["code"])
    name = module_name(filename)
    module = exec_file(name, path)

    entry = doc.get("entrypoint") or "main"
    stem = name if name != "faasd_function" else filename.rsplit(".", 1)[0]
    if entry.startswith(stem + ".") and not hasattr(module, entry):
        entry = entry[len(stem) + 1 :]  # "hello.main" for hello.py
    fn = getattr(module, entry, None)
    if fn is None:
        raise EntrypointError(f"{filename} has no function named '{entry}' (functions defined: {defined(module)})")
    if not callable(fn):
        raise EntrypointError(f"'{entry}' in {filename} is a {type(fn).__name__}, not a function")
    use_function(fn)


def load_fission_file(path: str, entrypoint: str) -> None:
    """Fission's one file (/userfunc/user): imported where it is, any extension or none.

    The function: `entrypoint` ("main", or Fission's "module.main" whose module
    part only names the module), default main. Paths show relative to its folder.
    """
    RT.deploy_dir = os.path.dirname(path) or "/"
    RT.path = path
    filename = os.path.basename(path)
    module = exec_file(module_name(filename), path)
    entry = (entrypoint or "main").rpartition(".")[2]
    if not entry.isidentifier():
        raise EntrypointError(f"invalid functionName '{entrypoint}': expected func or module.func", filename)
    fn = getattr(module, entry, None)
    if fn is None:
        raise EntrypointError(
            f"{filename} has no function named '{entry}' (functionName '{entrypoint}'); "
            f"functions defined: {defined(module)}",
            filename,
        )
    if not callable(fn):
        raise EntrypointError(f"'{entry}' in {filename} is a {type(fn).__name__}, not a function", filename)
    use_function(fn)


def defined(module: Any) -> str:
    names = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
    return ", ".join(names) if names else "none"


def in_deployment(module: Any) -> bool:
    """Whether `module` was loaded from the deployment directory (a namespace package: any of its folders)."""
    paths = [module.__file__] if getattr(module, "__file__", None) else list(getattr(module, "__path__", []))
    return any(code_file(os.path.join(str(p), "")) for p in paths)


def load_package(deploy_dir: str, entrypoint: str) -> None:
    """Imports a package's entrypoint module from `deploy_dir` and resolves its function.

    Fission's spelling: "module.func" or "pkg.sub.module.func", the module path
    relative to `deploy_dir`, the last dot before the function; a bare name is
    a function of the module `main`. Nothing is written into `deploy_dir`.
    """
    RT.deploy_dir = deploy_dir
    entry = entrypoint or DEFAULT_PACKAGE_ENTRYPOINT
    module_path, dot, func = entry.rpartition(".")
    if not dot:
        module_path = "main"
    file_guess = module_path.replace(".", "/") + ".py"
    if not (func.isidentifier() and all(part.isidentifier() for part in module_path.split("."))):
        raise EntrypointError(
            f"invalid entrypoint '{entry}': expected module.func or pkg.module.func "
            "(the module's path in the deployment, then the function's name)",
            entry,
        )
    if deploy_dir not in sys.path:
        sys.path.insert(0, deploy_dir)
    importlib.invalidate_caches()
    top = module_path.partition(".")[0]
    taken = sys.modules.get(top)
    if taken is not None and not in_deployment(taken):
        # The runtime itself already uses a module of that name (`time`, `json`, `http` ...).
        single = os.path.join(deploy_dir, top + ".py")
        if module_path != top or not os.path.isfile(single):
            raise EntrypointError(
                f"module '{module_path}' cannot be imported: the runtime already uses Python's own '{top}' "
                f"(entrypoint {entry}); rename the deployment's '{top}'",
                file_guess,
            )
        module = exec_file("faasd_function", single)  # a plain module file: loaded under another name
    else:
        try:
            module = importlib.import_module(module_path)
        except ModuleNotFoundError as e:
            missing = e.name or ""
            if (module_path == missing or module_path.startswith(missing + ".")) and location_of(e) is None:
                raise EntrypointError(
                    f"no module '{module_path}' in the deployment (entrypoint {entry})", file_guess
                ) from None
            raise  # the module is there; something it imports is not
        if not in_deployment(module):
            origin = getattr(module, "__file__", None) or "built in"
            raise EntrypointError(
                f"no module '{module_path}' in the deployment (entrypoint {entry}); Python's own is {origin}",
                file_guess,
            )
        if "request" not in vars(module):
            module.request = _RequestProxy()  # the global `request` of `def main():`
    where = code_file(getattr(module, "__file__", None)) or file_guess
    fn = getattr(module, func, None)
    if fn is None:
        raise EntrypointError(
            f"module '{module_path}' has no function '{func}' (entrypoint {entry}); "
            f"functions defined: {defined(module)}",
            where,
        )
    if not callable(fn):
        raise EntrypointError(
            f"'{func}' in module '{module_path}' is a {type(fn).__name__}, not a function (entrypoint {entry})", where
        )
    use_function(fn)


def use_function(fn: Any) -> None:
    """Makes `fn` the function every call runs, in the form its signature asks for."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        pass_context = True
    else:
        kinds = [p.kind for p in sig.parameters.values()]
        pass_context = any(
            k
            in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.VAR_POSITIONAL,
            )
            for k in kinds
        )
    RT.fn = fn
    RT.pass_context = pass_context
    RT.is_async = inspect.iscoroutinefunction(fn)


# ------------------------------------------------------------ responses


def encode_body(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), "application/octet-stream"
    return json.dumps(body).encode("utf-8"), "application/json"


def is_stream(body: Any) -> bool:
    """A generator or any other (async) iterator: sent chunked as it yields."""
    if isinstance(body, str | bytes | bytearray | memoryview | dict | list | tuple):
        return False
    return isinstance(body, collections.abc.Iterator | collections.abc.AsyncIterator)


class Stream:
    """A streamed body: pulls bytes chunks from a sync or async iterator."""

    def __init__(self, source: Any):
        self.source = source
        self.is_async = isinstance(source, collections.abc.AsyncIterator)
        self.request: Request | None = None

    def next_chunk(self) -> tuple[bytes, bool] | None:
        """(bytes, was_str) of the next chunk, None at the end."""
        if self.is_async:
            src = self.source
            request = self.request
            log = _request_log.get()

            async def pull() -> Any:
                if request is not None:
                    _current.set(request)
                _request_log.set(log)
                try:
                    return True, await src.__anext__()
                except StopAsyncIteration:
                    return False, None

            more, chunk = asyncio.run_coroutine_threadsafe(pull(), RT.event_loop()).result()
            if not more:
                return None
        else:
            try:
                chunk = next(self.source)
            except StopIteration:
                return None
        if isinstance(chunk, str):
            return chunk.encode("utf-8"), True
        if isinstance(chunk, bytes | bytearray | memoryview):
            return bytes(chunk), False
        raise FunctionResultError(f"a streamed body must yield str or bytes, got {type(chunk).__name__}")

    def close(self) -> None:
        """Runs the generator's finally blocks (the client left, or it failed)."""
        try:
            if self.is_async:
                aclose = getattr(self.source, "aclose", None)
                if aclose is not None:
                    asyncio.run_coroutine_threadsafe(aclose(), RT.event_loop()).result(5)
            else:
                close = getattr(self.source, "close", None)
                if close is not None:
                    close()
        except Exception:  # closing must never fail the connection a second time
            pass


CONTROL_NAMES = {"\r": "a CR", "\n": "a LF", "\0": "a NUL"}


def check_header(name: str, value: str) -> None:
    """Raises FunctionResultError for a header http.server cannot send.

    Checked before anything is written, so the answer is a clean 500 instead
    of a connection closed halfway through the headers.
    """
    if not TOKEN_RE.fullmatch(name):
        raise FunctionResultError(
            f"header name {name!r} cannot be sent in HTTP/1.1 (a name is letters, digits and !#$%&'*+-.^_`|~ only)"
        )
    if value.isascii() and "\r" not in value and "\n" not in value and "\0" not in value:
        return
    for i, c in enumerate(value):
        if c in CONTROL_NAMES:
            why = f"it contains {CONTROL_NAMES[c]} at index {i}"
        elif ord(c) > 0xFF:
            why = f"{c!r} (U+{ord(c):04X}) at index {i} is not latin-1; percent- or RFC 8187-encode it"
        else:
            continue
        raise FunctionResultError(f"header {name!r} has a value that cannot be sent in HTTP/1.1 ({why})")


def check_status(status: Any) -> int:
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise FunctionResultError(f"invalid status code {status!r}: expected 200-599")
    return status


def response_headers(headers: Any) -> list[tuple[str, str]]:
    """The function's headers as (name, value) pairs, each checked (check_header)."""
    pairs: list[tuple[str, str]] = []
    if headers is None:
        return pairs
    items = headers.items() if hasattr(headers, "items") else headers
    try:
        items = list(items)
    except TypeError:
        raise FunctionResultError("headers must be a dict of name -> value") from None
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise FunctionResultError("headers must be a dict of name -> value")
        k, v = item
        if v is None:
            continue
        values = v if isinstance(v, list | tuple) else [v]
        for one in values:
            k, one = str(k), str(one)
            check_header(k, one)
            if k.lower() not in DROPPED_HEADERS:
                pairs.append((k, one))
    return pairs


def to_response(value: Any) -> tuple[int, list[tuple[str, str]], bytes | Stream]:
    """Turns a function's return value into (status, headers, body or Stream)."""
    status: Any = 200
    headers: Any = None
    body = value
    if value is None:
        return 204, [], b""
    if isinstance(value, tuple):
        if len(value) not in (2, 3):
            raise FunctionResultError(
                f"a returned tuple must be (body, status) or (body, status, headers), got {len(value)} items"
            )
        body, status = value[0], value[1]
        headers = value[2] if len(value) == 3 else None
    try:
        status = check_status(status)
        pairs = response_headers(headers)  # before a streamed body's first chunk
    except FunctionResultError:
        if is_stream(body):
            Stream(body).close()  # never sent: release it unread
        raise
    if is_stream(body):
        return status, pairs, Stream(body)
    data, ctype = encode_body(body)
    if status in (204, 304):
        data = b""
    elif ctype and not any(k.lower() == "content-type" for k, _ in pairs):
        pairs.append(("Content-Type", ctype))
    return status, pairs, data


def error_body(code: str, message: str, **extra: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


# ------------------------------------------------------------ HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    # Status line, headers and body leave in one send (flushed in respond()),
    # and no Nagle delay: a keep-alive client never waits for a delayed ACK.
    wbufsize = 256 * 1024
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # no access log
        pass

    def version_string(self) -> str:
        return "faasd-python"

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler calls do_<METHOD>; every method is handled.
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    # -- plumbing

    def read_body(self, limit: int | None = None) -> bytes:
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            return self.read_chunked(limit)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BadRequestError("invalid Content-Length") from None
        if n < 0:
            raise BadRequestError("invalid Content-Length")
        if limit is not None and n > limit:
            self.close_connection = True
            raise BadRequestError(f"request body larger than {limit} bytes")
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise BadRequestError("the request body ended early")
        return data

    def read_chunked(self, limit: int | None) -> bytes:
        parts = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise BadRequestError("invalid chunked encoding") from None
            if size == 0:
                break
            total += size
            if limit is not None and total > limit:
                self.close_connection = True
                raise BadRequestError(f"request body larger than {limit} bytes")
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)  # CRLF after the chunk
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(parts)

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:  # e.g. a body too large to read away
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def respond_json(self, status: int, body: bytes) -> None:
        self.respond(status, [("Content-Type", "application/json")], body)

    def respond_error(self, status: int, code: str, message: str, **extra: str) -> None:
        self.respond_json(status, error_body(code, message, **extra))

    # -- routing

    def dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz" and self.command in ("GET", "HEAD"):
                self.drain()
                self.respond(200, [("Content-Type", "text/plain; charset=utf-8")], b"ok")
            elif path == "/v2/specialize" and self.command == "POST":
                self.specialize()
            elif path == "/specialize" and self.command == "POST" and not SPECIALIZE_TOKEN:
                self.specialize(fission_v1=True)  # Fission's v1: only in a container without a token
            elif RT.state == "ready":
                self.call()
            else:
                self.drain()
                if RT.state == "failed":
                    self.respond_json(500, json.dumps({"error": RT.load_error}).encode())
                else:
                    why = (
                        "this container is still loading its function"
                        if RT.state == "loading"
                        else "this container has no function yet: POST /v2/specialize first"
                    )
                    self.respond_error(503, "not_specialized", why)
        except BadRequestError as e:
            self.respond_error(400, "bad_request", str(e))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def drain(self, limit: int | None = None) -> None:
        """Reads the body away (a larger one than `limit` closes the connection)."""
        try:
            self.read_body(limit)
        except BadRequestError:
            self.close_connection = True

    def already_message(self) -> str:
        if RT.state == "loading":
            return f"this container is already loading {RT.filename}"
        if RT.state == "failed":
            return f"this container already tried to load {RT.filename} and failed"
        return f"this container is already specialized with {RT.filename}"

    def authorized(self) -> bool:
        """Whether the request carries `Authorization: Bearer <the token>`.

        Compared in constant time on the raw bytes. No token at start: open.
        """
        if not SPECIALIZE_TOKEN:
            return True
        m = BEARER_RE.fullmatch(self.headers.get("Authorization", ""))
        if not m:
            return False
        given = m.group(1).encode("latin-1", errors="replace")  # http.server decoded latin-1
        return hmac.compare_digest(given, SPECIALIZE_TOKEN)

    def specialize(self, fission_v1: bool = False) -> None:
        started = time.perf_counter()
        # The token first: no state is told and no body is read without it.
        if not self.authorized():
            self.drain(MAX_SPECIALIZE_BYTES)
            message = (
                "POST /v2/specialize needs this container's specialization token: Authorization: Bearer <token>"
                if "Authorization" not in self.headers
                else "the specialization token is wrong"
            )
            self.respond(
                401,
                [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")],
                error_body("unauthorized", message),
            )
            return
        if RT.state != "generic":
            self.drain()
            self.respond_error(409, "already_specialized", self.already_message())
            return
        if fission_v1:
            self.drain(MAX_SPECIALIZE_BYTES)  # Fission's v1 sends no body: the code is in /userfunc/user
            doc: Any = {"filepath": os.path.join(USERFUNC_DIR, "user")}
        else:
            try:
                raw = self.read_body(MAX_SPECIALIZE_BYTES)
            except BadRequestError as e:
                status = 413 if "larger" in str(e) else 400
                self.respond_error(status, "bad_request", str(e))
                return
            # UTF-8 JSON, not necessarily ASCII-escaped: faasd sends the source as it is.
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                self.respond_error(400, "bad_request", "the body is not valid UTF-8")
                return
            try:
                doc = json.loads(text)
            except ValueError as e:
                self.respond_error(400, "bad_request", f"the body is not valid JSON: {e}")
                return
        from_fission = False
        if isinstance(doc, dict):
            doc.pop("fission_file", None)  # set only below, from Fission's body: never taken from a client
        if isinstance(doc, dict) and "filepath" in doc:
            # Fission's body: only in a container started without faasd's token.
            if SPECIALIZE_TOKEN:
                self.respond_error(
                    403,
                    "forbidden",
                    "Fission's specialization (filepath, functionName) is accepted only by a container "
                    "started without FAASD_SPECIALIZE_TOKEN; this one is faasd's",
                )
                return
            doc, why = fission_doc(doc)
            if doc is None:
                self.respond_error(400, "bad_request", str(why))
                return
            from_fission = True
        invalid = None if from_fission and "fission_file" in doc else validate_specialize(doc)
        if invalid:
            self.respond_error(400, "bad_request", invalid)
            return
        with RT.lock:
            if RT.state != "generic":
                conflict = True
            else:
                conflict = False
                RT.state = "loading"
                RT.filename = label_of(doc)
        if conflict:
            self.respond_error(409, "already_specialized", self.already_message())
            return
        for k, v in (doc.get("env") or {}).items():
            os.environ[k] = str(v)
        try:
            load_function(doc)
        except (Exception, SystemExit) as e:
            loc = location_of(e)
            message = describe(e) + (f" ({loc})" if loc else "")
            RT.load_error = {
                "code": "load_error",
                "message": message,
                "location": loc or getattr(e, "location", None) or RT.filename,
            }
            RT.state = "failed"
            sys.stderr.write(f"faasd-runtime: failed to load {RT.filename}:\n")
            traceback.print_exception(e, file=sys.stderr)
            log(f"specialization of {RT.filename} failed: {message}")
            self.respond_json(500, json.dumps({"error": RT.load_error}).encode())
            return
        RT.state = "ready"
        load_ms = (time.perf_counter() - started) * 1000
        form = ("async " if RT.is_async else "") + ("main(context)" if RT.pass_context else "main()")
        where = ""
        if RT.deploy_dir:
            default = "main" if "fission_file" in doc else DEFAULT_PACKAGE_ENTRYPOINT
            entry = doc.get("entrypoint") or default
            where = f"{'' if entry == RT.filename else entry + ' '}in {RT.deploy_dir}, "
        log(f"specialized {RT.filename} ({where}{form}) in {load_ms:.1f} ms")
        body = json.dumps({"status": "specialized", "load_ms": round(load_ms, 3)}).encode()
        self.respond_json(200, body)

    def build_request(self) -> Request:
        body = self.read_body()
        target = self.path
        path, _, qs = target.partition("?")
        query: dict[str, str | list[str]] = {}
        for k, v in parse_qsl(qs, keep_blank_values=True):
            prev = query.get(k)
            if prev is None:
                query[k] = v
            elif isinstance(prev, list):
                prev.append(v)
            else:
                query[k] = [prev, v]
        headers: dict[str, str] = {}
        context: dict[str, str] = {}
        params_header = None
        request_id = None
        for k, v in self.headers.items():
            k = k.lower()
            if k == "x-request-id" and request_id is None:
                request_id = v  # also among the headers, as it came
            if k.startswith("x-faasd-"):
                # faasd's own headers (its data plane strips callers'): never
                # among the headers; the params go to params, the rest (the
                # trigger, call id, event...) to context, the first value kept.
                if k == "x-faasd-params":
                    if params_header is None:
                        params_header = v
                else:
                    key = k[8:].replace("-", "_")
                    if key not in context:
                        context[key] = v
                continue
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        params: Any = {}
        if params_header:
            try:
                params = json.loads(params_header)
            except ValueError as e:
                raise BadRequestError(f"the X-Faasd-Params header is not valid JSON: {e}") from e
            if not isinstance(params, dict):
                raise BadRequestError("the X-Faasd-Params header must be a JSON object")
        # The call's id (faasd sends one with every call): in the context, and
        # the prefix of every line the function writes (call()).
        if request_id is not None and REQUEST_ID_RE.fullmatch(request_id):
            context["request_id"] = request_id
        return Request(self.command, path, qs, query, headers, params, body, context)

    def call(self) -> None:
        request = self.build_request()
        request_id = request.context.get("request_id")
        if request_id is None:
            self.run_call(request)
            return
        log = RequestLog(request_id)
        token = _request_log.set(log)
        try:
            self.run_call(request)
        finally:
            end_request_log(log)
            _request_log.reset(token)

    def run_call(self, request: Request) -> None:
        try:
            value = invoke(request)
            status, headers, body = to_response(value)
        except BadRequestError as e:
            self.respond_error(400, "bad_request", str(e))
            return
        except (Exception, SystemExit) as e:
            self.function_failed(e)
            return
        if isinstance(body, Stream):
            body.request = request
            self.respond_stream(status, headers, body)
        else:
            self.respond(status, headers, body)

    def function_failed(self, e: BaseException) -> None:
        sys.stderr.write("faasd-runtime: function error:\n")
        traceback.print_exception(e, file=sys.stderr)
        loc = location_of(e)
        extra = {"location": loc} if loc else {}
        self.respond_error(500, "function_error", describe(e), **extra)

    def respond_stream(self, status: int, headers: list[tuple[str, str]], stream: Stream) -> None:
        """Sends the chunks as they come (chunked), each flushed.

        The status and headers leave with the first chunk, so a generator that
        fails before yielding anything is still a clean 500. A failure after
        that closes the connection without the final chunk.
        """
        if self.command == "HEAD" or status in (204, 304):
            stream.close()
            if status not in (204, 304) and not any(k.lower() == "content-type" for k, _ in headers):
                headers = [*headers, ("Content-Type", "application/octet-stream")]
            self.respond(status, headers, b"")
            return
        try:
            first = stream.next_chunk()
            while first is not None and not first[0]:
                first = stream.next_chunk()
        except BadRequestError as e:
            stream.close()
            self.respond_error(400, "bad_request", str(e))
            return
        except (Exception, SystemExit) as e:
            stream.close()
            self.function_failed(e)
            return
        if first is None:
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers = [*headers, ("Content-Type", "application/octet-stream")]
            self.respond(status, headers, b"")
            return
        data, was_str = first
        if not any(k.lower() == "content-type" for k, _ in headers):
            ctype = "text/plain; charset=utf-8" if was_str else "application/octet-stream"
            headers = [*headers, ("Content-Type", ctype)]
        chunked = self.request_version != "HTTP/1.0"
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True  # the end of the body is the end of the connection
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                self.wfile.flush()
                try:
                    item = stream.next_chunk()
                    while item is not None and not item[0]:  # an empty chunk would end the body
                        item = stream.next_chunk()
                except (Exception, SystemExit) as e:
                    sys.stderr.write("faasd-runtime: function error while streaming:\n")
                    traceback.print_exception(e, file=sys.stderr)
                    stream.close()
                    self.close_connection = True  # no final chunk: the client sees a cut body
                    return
                if item is None:
                    break
                data = item[0]
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client went away
            self.close_connection = True
            stream.close()


def invoke(request: Request) -> Any:
    args = (Context(request),) if RT.pass_context else ()
    if RT.is_async:
        return run_async(RT.fn, args, request)
    _current.set(request)
    value = RT.fn(*args)
    if inspect.isawaitable(value):
        value = run_async(None, value, request)
    return value


def run_async(fn: Any, args: Any, request: Request) -> Any:
    log = _request_log.get()

    async def runner() -> Any:
        _current.set(request)
        _request_log.set(log)
        return await (fn(*args) if fn is not None else args)

    return asyncio.run_coroutine_threadsafe(runner(), RT.event_loop()).result()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    prefix_output()
    server = Server(("0.0.0.0", PORT), Handler)
    open_note = "" if SPECIALIZE_TOKEN else " (no FAASD_SPECIALIZE_TOKEN: specialization needs no token)"
    log(f"python {sys.version.split()[0]} listening on 0.0.0.0:{PORT}{open_note}")
    server.serve_forever()


if __name__ == "__main__":
    main()
