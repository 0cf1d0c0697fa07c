"""The in-memory route table: (method, path) -> function and path parameters.

Built from the HTTP triggers whenever they change and swapped in whole, so a
lookup never sees half a table and never touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from faasd.errors import MethodNotAllowed, NotFound
from faasd.validation import PARAM_RE


@dataclass(frozen=True)
class Match:
    function: str
    params: dict[str, str]


@dataclass
class _Pattern:
    # One entry per segment: a literal string, or None for a parameter.
    segments: tuple[str | None, ...]
    names: tuple[str, ...]
    methods: dict[str, str] = field(default_factory=dict)

    @property
    def literals(self) -> int:
        return sum(1 for s in self.segments if s is not None)


def split_path(path: str) -> list[str]:
    stripped = path.strip("/")
    return [unquote(s) for s in stripped.split("/")] if stripped else []


class RouteTable:
    """Immutable after construction."""

    def __init__(self, routes: Iterable[tuple[str, str, str]] = ()) -> None:
        """``routes`` holds (method, url pattern, function) triples."""
        self._static: dict[str, dict[str, str]] = {}
        patterns: dict[tuple[str | None, ...], _Pattern] = {}
        for method, url, function in routes:
            parts = split_path(url)
            params = [PARAM_RE.match(p) for p in parts]
            if not any(params):
                key = "/" + "/".join(parts)
                self._static.setdefault(key, {})[method] = function
                continue
            shape = tuple(None if m else p for p, m in zip(parts, params, strict=True))
            names = tuple(m.group(1) for m in params if m)
            entry = patterns.setdefault(shape, _Pattern(shape, names))
            entry.methods[method] = function
            if not entry.names:
                entry.names = names
        # Most literal segments first: /users/me wins over /users/{id}.
        self._by_length: dict[int, list[_Pattern]] = {}
        for pattern in sorted(patterns.values(), key=lambda p: -p.literals):
            self._by_length.setdefault(len(pattern.segments), []).append(pattern)
        self.size = sum(len(m) for m in self._static.values()) + sum(len(p.methods) for p in patterns.values())

    def match(self, method: str, path: str) -> Match:
        parts = split_path(path)
        allowed: list[str] = []
        static = self._static.get("/" + "/".join(parts))
        if static is not None:
            function = static.get(method) or (static.get("GET") if method == "HEAD" else None)
            if function:
                return Match(function, {})
            allowed.extend(static)
        for pattern in self._by_length.get(len(parts), ()):
            if all(lit is None or lit == part for lit, part in zip(pattern.segments, parts, strict=True)):
                function = pattern.methods.get(method) or (pattern.methods.get("GET") if method == "HEAD" else None)
                if function:
                    values = [p for lit, p in zip(pattern.segments, parts, strict=True) if lit is None]
                    return Match(function, dict(zip(pattern.names, values, strict=True)))
                allowed.extend(pattern.methods)
        if allowed:
            names = sorted(set(allowed))
            raise MethodNotAllowed(f"{method} is not allowed on {path}; allowed: {', '.join(names)}", names)
        raise NotFound(f"no route for {method} {path}")
