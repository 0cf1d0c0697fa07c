"""The in-memory route table: (method, path) -> function and path parameters.

Built from the HTTP triggers whenever they change and swapped in whole, so a
lookup never sees half a table and never touches the database. Static URLs
are one dict lookup; URLs with ``{param}`` segments live in a trie walked one
segment at a time, a literal segment before a parameter (/users/me wins over
/users/{id}), so a lookup costs the depth of the path, not the number of routes.

A route that splits its calls between functions by weight holds a
:class:`Split`: each match draws one random number and bisects the running
weights (at most 5), so a call costs a draw and no allocation more.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import unquote

from faasd.core.errors import MethodNotAllowed, NotFound
from faasd.core.validation import PARAM_RE


@dataclass(frozen=True)
class Match:
    function: str
    params: dict[str, str]
    is_async: bool = False  # the route queues its calls (202 and a call id) instead of answering them
    route: str = field(default="", compare=False)  # the url pattern that matched (the access log says it)


class Split:
    """Functions with weights: :meth:`pick` names one, each in proportion to its weight."""

    __slots__ = ("_bounds", "_draw", "_names", "_total")

    def __init__(self, weights: Sequence[tuple[str, int]], draw: Callable[[], float]) -> None:
        self._names = tuple(name for name, _weight in weights)
        running, bounds = 0, []
        for _name, weight in weights:
            running += weight
            bounds.append(running)
        self._bounds = tuple(bounds)  # running totals: a zero weight's span is empty, never drawn
        self._total = running
        self._draw = draw  # uniform in [0, 1)

    def pick(self) -> str:
        return self._names[bisect_right(self._bounds, self._draw() * self._total)]


Target = str | Split


@dataclass
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    # At the end of a pattern: method -> (function, parameter names in order, async route).
    methods: dict[str, tuple[Target, tuple[str, ...], bool, str]] = field(default_factory=dict)


def split_path(path: str) -> list[str]:
    stripped = path.strip("/")
    return [unquote(s) for s in stripped.split("/")] if stripped else []


V = TypeVar("V")


def _for_method(methods: dict[str, V], method: str) -> V | None:
    found = methods.get(method)
    if found is None and method == "HEAD":
        found = methods.get("GET")
    return found


Functions = str | Sequence[tuple[str, int]]


class RouteTable:
    """Immutable after construction."""

    def __init__(
        self,
        routes: Iterable[tuple[str, str, Functions] | tuple[str, str, Functions, bool]] = (),
        draw: Callable[[], float] = random.random,
    ) -> None:
        """``routes`` holds (method, url pattern, function[, async]) tuples; a route that splits its calls
        gives (function, weight) pairs for its function. ``draw`` picks among them (uniform in [0, 1))."""
        self._static: dict[str, dict[str, tuple[Target, bool, str]]] = {}
        self._root = _Node()
        self.size = 0
        for route in routes:
            method, url = route[0], route[1]
            function: Target = route[2] if isinstance(route[2], str) else Split(route[2], draw)
            is_async = len(route) > 3 and bool(route[3])
            self.size += 1
            parts = split_path(url)
            params = [PARAM_RE.fullmatch(p) for p in parts]
            if not any(params):
                self._static.setdefault("/" + "/".join(parts), {})[method] = (function, is_async, url)
                continue
            node = self._root
            for part, param in zip(parts, params, strict=True):
                if param:
                    node.param = node.param or _Node()
                    node = node.param
                else:
                    node = node.literals.setdefault(part, _Node())
            node.methods[method] = (function, tuple(m.group(1) for m in params if m), is_async, url)

    def match(self, method: str, path: str) -> Match:
        parts = split_path(path)
        allowed: set[str] = set()
        static = self._static.get("/" + "/".join(parts))
        if static is not None:
            target = _for_method(static, method)
            if target is not None:
                function = target[0]
                return Match(function if isinstance(function, str) else function.pick(), {}, target[1], target[2])
            allowed.update(static)
        found = self._walk(self._root, parts, 0, [], method, allowed)
        if found is not None:
            return found
        if allowed:
            names = sorted(allowed)
            raise MethodNotAllowed(f"{method} is not allowed on {path}; allowed: {', '.join(names)}", names)
        raise NotFound(f"no route for {method} {path}")

    def _walk(
        self, node: _Node, parts: list[str], depth: int, values: list[str], method: str, allowed: set[str]
    ) -> Match | None:
        if depth == len(parts):
            if not node.methods:
                return None
            hit = _for_method(node.methods, method)
            if hit is None:
                allowed.update(node.methods)
                return None
            function, names, is_async, url = hit
            chosen = function if isinstance(function, str) else function.pick()
            return Match(chosen, dict(zip(names, values, strict=True)), is_async, url)
        literal = node.literals.get(parts[depth])
        if literal is not None:
            found = self._walk(literal, parts, depth + 1, values, method, allowed)
            if found is not None:
                return found
        if node.param is not None:
            values.append(parts[depth])
            found = self._walk(node.param, parts, depth + 1, values, method, allowed)
            values.pop()
            if found is not None:
                return found
        return None
