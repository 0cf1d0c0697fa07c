"""HTTP/1.1 message heads as bytes: what is forwarded, what is dropped, and faasd's own answers.

Parsing is httptools' (llhttp, strict); this module only builds. Hop-by-hop
headers (RFC 9110 7.6.1) never cross faasd in either direction, nor do the
headers a ``Connection`` header names; framing (``Content-Length`` /
``Transfer-Encoding``) is always re-done by the caller. ``X-Faasd-*`` is
faasd's own namespace: dropped from what clients send, never shown to them.
Forwarding headers are faasd's to set: a client's ``X-Forwarded-For`` is
appended to, its ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``Forwarded``
are dropped.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from http import HTTPStatus

from faasd.core.validation import REQUEST_ID_RE

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Also dropped: re-done by faasd (framing, Expect, the forwarding headers: a
# client's X-Forwarded-Proto/-Host or Forwarded would be taken as faasd's own).
_REQUEST_DROP = HOP_BY_HOP | {
    b"content-length",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"forwarded",
}
_REQUEST_DROP_HOST = _REQUEST_DROP | {b"host"}
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length"}
# A function call's X-Request-Id is faasd's to set, both ways (the caller's is kept when valid).
_REQUEST_DROP_ID = _REQUEST_DROP | {b"x-request-id"}
_REQUEST_DROP_HOST_ID = _REQUEST_DROP_HOST | {b"x-request-id"}
_RESPONSE_DROP_ID = _RESPONSE_DROP | {b"x-request-id"}
INTERNAL_PREFIX = b"x-faasd-"

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CHUNKED_END = b"0\r\n\r\n"

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def reason(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def connection_tokens(headers: Headers) -> set[bytes]:
    """Header names listed in ``Connection`` (lower case): hop-by-hop as well."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


# Never forwarded, whatever their name goes on with.
_PRIVATE_PREFIXES = (INTERNAL_PREFIX, b"proxy-")
_NONE: frozenset[bytes] = frozenset()
# ``Connection`` values that name no header but hop-by-hop ones (dropped anyway): the usual ones.
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"upgrade", b"te", b"keep-alive, upgrade", b"upgrade, te"})


def _names_others(connection: bytes) -> bool:
    """Whether a ``Connection`` header names a header beyond the hop-by-hop ones (which then goes too)."""
    lowered = connection.lower()
    if lowered in _PLAIN_CONNECTION:
        return False
    return any(t.strip() not in HOP_BY_HOP and t.strip() != b"close" for t in lowered.split(b","))


class HeadMemo:
    """The last head a connection built, less its X-Request-Id and framing lines.

    On a keep-alive connection a client mostly sends the same headers call after
    call, and a function mostly answers with the same ones: the next head is then
    the same bytes, found by comparing the parsed headers (a list of pairs) and
    every other input instead of building them again.
    """

    __slots__ = ("headers", "key", "prefix")

    def __init__(self) -> None:
        self.key: tuple[object, ...] = ()
        self.headers: Headers = []
        self.prefix = b""


def request_head(
    method: bytes,
    target: bytes,
    headers: Headers,
    *,
    host: bytes | None,
    peer: bytes,
    append_forwarded_for: bool,
    params: bytes | None,
    framing: bytes,
    request_id: bytes = b"",
    own_request_id: bool = False,
    memo: HeadMemo | None = None,
) -> bytes:
    """The head sent upstream: the client's headers less hop-by-hop ones, plus faasd's.

    ``host`` replaces the client's Host (None keeps it). ``framing`` is the
    ``Content-Length``/``Transfer-Encoding`` line(s) for the body, or empty.
    ``params``, when given, becomes ``X-Faasd-Params`` (JSON). ``memo``: the
    connection's last head, reused when the same.
    """
    replace_id = bool(request_id or own_request_id)  # the caller's X-Request-Id is replaced (or dropped)
    key = (method, target, host, peer, append_forwarded_for, params, replace_id)
    if memo is None:
        memo = HeadMemo()
    if memo.key != key or memo.headers != headers:
        memo.key, memo.headers = key, headers
        memo.prefix = _request_prefix(method, target, headers, host, peer, append_forwarded_for, params, replace_id)
    if request_id:
        return b"".join((memo.prefix, b"X-Request-Id: ", request_id, b"\r\n", framing, b"\r\n"))
    return b"".join((memo.prefix, framing, b"\r\n"))


def _request_prefix(
    method: bytes,
    target: bytes,
    headers: Headers,
    host: bytes | None,
    peer: bytes,
    append_forwarded_for: bool,
    params: bytes | None,
    replace_id: bool,
    named: AbstractSet[bytes] = _NONE,
) -> bytes:
    """:func:`request_head` up to its X-Request-Id. One pass over the headers; a ``Connection``
    header that names other headers (they go too, before or after it) makes a second with ``named``."""
    if replace_id:
        drop = _REQUEST_DROP_ID if host is None else _REQUEST_DROP_HOST_ID
    else:
        drop = _REQUEST_DROP if host is None else _REQUEST_DROP_HOST
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    if host is not None:
        lines += (b"Host: ", host, b"\r\n")
    client_host = b""
    forwarded_for: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"host":
            client_host = value
        if lower in drop or lower.startswith(_PRIVATE_PREFIXES) or lower in named:
            if lower == b"x-forwarded-for":
                if append_forwarded_for:
                    forwarded_for.append(value)
            elif lower == b"connection" and not named and _names_others(value):
                tokens = connection_tokens(headers)
                return _request_prefix(
                    method, target, headers, host, peer, append_forwarded_for, params, replace_id, tokens
                )
            continue
        lines += (name, b": ", value, b"\r\n")
    forwarded_for.append(peer)
    lines += (b"X-Forwarded-For: ", b", ".join(forwarded_for), b"\r\nX-Forwarded-Proto: http\r\n")
    if client_host:
        lines += (b"X-Forwarded-Host: ", client_host, b"\r\n")
    if params is not None:
        lines += (b"X-Faasd-Params: ", params, b"\r\n")
    return b"".join(lines)


def valid_request_id(sent: bytes) -> bytes:
    """The caller's ``X-Request-Id`` when it is one faasd keeps, else empty."""
    return sent if sent and _REQUEST_ID_OK(sent) else b""


def request_id(sent: bytes) -> bytes:
    """The call's id: the caller's ``X-Request-Id`` when it is one (visible ASCII, at most
    200 bytes), else a new one: this process's random prefix and a counter, unique and cheap."""
    if sent and _REQUEST_ID_OK(sent):
        return sent
    return b"%s-%x" % (_ID_PREFIX, next(_ids))


_REQUEST_ID_OK = re.compile(REQUEST_ID_RE.pattern.encode()).fullmatch
_ID_PREFIX = os.urandom(6).hex().encode()
_ids = itertools.count(1)


def response_head(
    status: int,
    reason_phrase: bytes,
    headers: Headers,
    framing: bytes,
    request_id: bytes = b"",
    memo: HeadMemo | None = None,
) -> bytes:
    """The head sent to the client: the upstream's headers less hop-by-hop and X-Faasd-* ones,
    and with ``request_id`` the call's ``X-Request-Id`` (instead of any the function set).
    ``memo``: the upstream connection's last head, reused when the same."""
    key = (status, reason_phrase, bool(request_id))
    if memo is None:
        memo = HeadMemo()
    if memo.key != key or memo.headers != headers:
        memo.key, memo.headers = key, headers
        memo.prefix = _response_prefix(status, reason_phrase, headers, bool(request_id))
    if request_id:
        return b"".join((memo.prefix, b"X-Request-Id: ", request_id, b"\r\n", framing, b"\r\n"))
    return b"".join((memo.prefix, framing, b"\r\n"))


def _response_prefix(
    status: int, reason_phrase: bytes, headers: Headers, replace_id: bool, named: AbstractSet[bytes] = _NONE
) -> bytes:
    """:func:`response_head` up to its X-Request-Id, in one pass as :func:`_request_prefix`."""
    drop = _RESPONSE_DROP_ID if replace_id else _RESPONSE_DROP
    lines = [_STATUS_LINES[status] if 100 <= status < 1000 else b"HTTP/1.1 %d " % status]
    lines += (reason_phrase or reason(status), b"\r\n")
    for name, value in headers:
        lower = name.lower()
        if lower in drop or lower.startswith(_PRIVATE_PREFIXES) or lower in named:
            if lower == b"connection" and not named and _names_others(value):
                return _response_prefix(status, reason_phrase, headers, replace_id, connection_tokens(headers))
            continue
        lines += (name, b": ", value, b"\r\n")
    return b"".join(lines)


_STATUS_LINES = [b"HTTP/1.1 %d " % status for status in range(1000)]


def params_header(params: Mapping[str, str]) -> bytes:
    return json.dumps(params, separators=(",", ":")).encode() if params else b"{}"


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
    head_only: bool = False,
) -> bytes:
    """A complete JSON error response: ``{"error": {"code": ..., "message": ...}}``."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    lines = [
        b"HTTP/1.1 %d " % status,
        reason(status),
        b"\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
    ]
    for name, value in (headers or {}).items():
        lines += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
    if close:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if not head_only:
        lines.append(body)
    return b"".join(lines)


def chunk(data: bytes) -> list[bytes]:
    """``data`` as one chunk of the chunked transfer coding."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]
