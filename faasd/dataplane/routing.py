"""The in-memory route table: (method, path) -> function and path parameters.

Static URLs are one dict lookup; URLs with ``{param}`` segments live in a trie
walked one segment at a time, a literal segment before a parameter (/users/me
wins over /users/{id}), so a lookup costs the depth of the path, not the
number of routes. A route is added or removed in place, also in the depth of
its pattern: a route write costs the same with ten routes as with ten
thousand, and never touches the database.

No half-updated table is ever seen. :meth:`RouteTable.match` runs on the
event loop's thread (the data plane's protocol callbacks) and so does every
change (the controller, faasd/control/controller.py), and a change is plain
synchronous code: no ``await`` between its first step and its last, so no
lookup can run in the middle of one. A change the controller makes of
several steps (a route moved to another URL is a remove and an add; a forced
function delete removes its routes) is made the same way, between two
awaits. Nothing else may call :meth:`add` or :meth:`remove` (from another
thread, say).

A route that splits its calls between functions by weight holds a
:class:`Split`: each match draws one random number and bisects the running
weights (at most 5), so a call costs a draw and no allocation more.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import unquote

from faasd.core.errors import MethodNotAllowed, NotFound
from faasd.core.validation import PARAM_RE


@dataclass(slots=True)  # not frozen: that makes every match's __init__ 3 x slower (one per call); never change one
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
# At the end of a pattern: method -> (function, parameter names in order, async route, url pattern).
Endpoint = tuple[Target, tuple[str, ...], bool, str]


class _Node:
    __slots__ = ("literals", "methods", "param")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.methods: dict[str, Endpoint] = {}

    def empty(self) -> bool:
        return not self.literals and self.param is None and not self.methods


def split_path(path: str) -> list[str]:
    stripped = path.strip("/")
    if not stripped:
        return []
    parts = stripped.split("/")
    return [unquote(s) for s in parts] if "%" in stripped else parts


def _param(segment: str) -> re.Match[str] | None:
    """A ``{name}`` segment's match (its group 1 the name), else None."""
    return PARAM_RE.fullmatch(segment) if segment.startswith("{") else None


V = TypeVar("V")


def _for_method(methods: dict[str, V], method: str) -> V | None:
    found = methods.get(method)
    if found is None and method == "HEAD":
        found = methods.get("GET")
    return found


Functions = str | Sequence[tuple[str, int]]


class RouteTable:
    """Routes by method and URL pattern; changed in place by :meth:`add` and :meth:`remove`."""

    def __init__(
        self,
        routes: Iterable[tuple[str, str, Functions] | tuple[str, str, Functions, bool]] = (),
        draw: Callable[[], float] = random.random,
    ) -> None:
        """``routes`` holds (method, url pattern, function[, async]) tuples; a route that splits its calls
        gives (function, weight) pairs for its function. ``draw`` picks among them (uniform in [0, 1))."""
        self._draw = draw
        # Static URLs: the path without its outer slashes -> method -> endpoint (no parameter names).
        self._static: dict[str, dict[str, Endpoint]] = {}
        self._root = _Node()
        self.size = 0  # (method, pattern) pairs
        for route in routes:
            self.add(route[0], route[1], route[2], len(route) > 3 and bool(route[3]))

    def add(self, method: str, url: str, function: Functions, is_async: bool = False) -> None:
        """Route ``method`` ``url`` to ``function``, in place of the route of that method and pattern
        (parameter names aside) if there is one."""
        target: Target = function if isinstance(function, str) else Split(function, self._draw)
        parts = split_path(url)
        params = [_param(p) for p in parts]
        if not any(params):
            methods = self._static.setdefault("/".join(parts), {})
        else:
            node = self._root
            for part, param in zip(parts, params, strict=True):
                if param:
                    node.param = node.param or _Node()
                    node = node.param
                else:
                    node = node.literals.setdefault(part, _Node())
            methods = node.methods
        self.size += method not in methods
        methods[method] = (target, tuple(m.group(1) for m in params if m), is_async, url)

    def remove(self, method: str, url: str) -> None:
        """Take away the route of ``method`` and ``url``'s pattern (parameter names aside), if there is one."""
        parts = split_path(url)
        literals = [None if _param(p) else p for p in parts]  # None: a parameter
        if None not in literals:
            key = "/".join(parts)
            static = self._static.get(key)
            if static is not None and static.pop(method, None) is not None:
                self.size -= 1
                if not static:
                    del self._static[key]
            return
        trail: list[tuple[_Node, str | None]] = []  # (node, the step taken from it)
        node: _Node | None = self._root
        for literal in literals:
            assert node is not None
            trail.append((node, literal))
            node = node.param if literal is None else node.literals.get(literal)
            if node is None:
                return
        assert node is not None
        if node.methods.pop(method, None) is None:
            return
        self.size -= 1
        for parent, literal in reversed(trail):  # prune the nodes that lead nowhere now
            if not node.empty():
                break
            if literal is None:
                parent.param = None
            else:
                del parent.literals[literal]
            node = parent

    def match(self, method: str, path: str) -> Match:
        stripped = path.strip("/")
        if "%" in stripped:
            parts = split_path(stripped)
            key = "/".join(parts)
        else:
            parts, key = None, stripped
        allowed: set[str] = set()
        static = self._static.get(key)
        if static is not None:
            hit = _for_method(static, method)
            if hit is not None:
                function = hit[0]
                return Match(function if isinstance(function, str) else function.pick(), {}, hit[2], hit[3])
            allowed.update(static)
        if parts is None:
            parts = stripped.split("/") if stripped else []
        found = self._descend(parts, method) or self._walk(self._root, parts, 0, [], method, allowed)
        if found is not None:
            return found
        if allowed:
            names = sorted(allowed)
            raise MethodNotAllowed(f"{method} is not allowed on {path}; allowed: {', '.join(names)}", names)
        raise NotFound(f"no route for {method} {path}")

    def _descend(self, parts: list[str], method: str) -> Match | None:
        """The walk's first try, without going back: a literal segment where there is one, else the
        parameter. What it finds is what :meth:`_walk` would find first; when it finds nothing, the walk
        tries the other ways."""
        node = self._root
        values = []
        for part in parts:
            child = node.literals.get(part)
            if child is None:
                child = node.param
                if child is None:
                    return None
                values.append(part)
            node = child
        hit = _for_method(node.methods, method)
        if hit is None:
            return None
        function, names, is_async, url = hit
        chosen = function if isinstance(function, str) else function.pick()
        return Match(chosen, dict(zip(names, values, strict=True)), is_async, url)

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
