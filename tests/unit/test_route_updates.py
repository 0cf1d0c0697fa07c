"""Routes and the catalog changed in place, write by write, are what a full rebuild makes of the same registry."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faasd.control.catalog import Catalog
from faasd.control.controller import Controller
from faasd.core.entities import Function, HttpTrigger
from faasd.core.errors import FaasdError, MethodNotAllowed
from faasd.core.validation import PARAM_RE, url_key
from faasd.dataplane.routing import Endpoint, Functions, Match, RouteTable, Split, _Node, split_path
from tests.unit.test_registry import HELLO, Registry

METHODS = ("GET", "POST", "HEAD")
LITERALS = ("a", "b", "c")
PARAMS = ("{x}", "{y}")
FUNCTIONS = ("f1", "f2", "f3")
WEIGHTED: tuple[tuple[tuple[str, int], ...], ...] = ((("f1", 30), ("f2", 70)), (("f1", 100), ("f2", 0)))


def draw() -> float:
    return 0.5


# -- what a table holds, to compare two tables ----------------------------------------------------


def _target(target: str | Split) -> object:
    return target if isinstance(target, str) else ("split", target._names, target._bounds)


def _endpoints(methods: dict[str, Endpoint]) -> dict[str, object]:
    return {m: (_target(e[0]), *e[1:]) for m, e in methods.items()}


def _node(node: _Node) -> object:
    return (
        {literal: _node(child) for literal, child in node.literals.items()},
        None if node.param is None else _node(node.param),
        _endpoints(node.methods),
    )


def shape(table: RouteTable) -> object:
    """Everything in the table, the trie's nodes included (a change must leave none leading nowhere)."""
    return table.size, {key: _endpoints(methods) for key, methods in table._static.items()}, _node(table._root)


def probes() -> list[str]:
    """Every path of up to 3 segments over the literals and one value."""
    segments = (*LITERALS, "v")
    return ["/" + "/".join(p) for depth in range(4) for p in itertools.product(segments, repeat=depth)]


def answer(table: RouteTable, method: str, path: str) -> object:
    try:
        return table.match(method, path)
    except MethodNotAllowed as exc:
        return ("405", exc.allowed)
    except FaasdError as exc:
        return type(exc).__name__


def reference(routes: list[tuple[str, str, Functions, bool]], method: str, path: str) -> object:
    """What a table answers, read off its routes one by one: of the patterns that fit the path, the one
    with a literal segment first where they differ (the first that has the method: HEAD falls back to GET)."""
    segments = split_path(path)
    patterns: dict[tuple[str, ...], dict[str, tuple[str, str, Functions, bool]]] = {}
    for route in routes:
        parts = tuple("{}" if PARAM_RE.fullmatch(p) else p for p in split_path(route[1]))
        if len(parts) == len(segments) and all(p in ("{}", s) for p, s in zip(parts, segments, strict=True)):
            patterns.setdefault(parts, {})[route[0]] = route
    for parts in sorted(patterns, key=lambda parts: [p == "{}" for p in parts]):
        methods = patterns[parts]
        route = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
        if route is not None:
            names = [m.group(1) for p in split_path(route[1]) if (m := PARAM_RE.fullmatch(p))]
            values = [s for p, s in zip(parts, segments, strict=True) if p == "{}"]
            target = route[2] if isinstance(route[2], str) else Split(route[2], draw).pick()
            return Match(target, dict(zip(names, values, strict=True)), route[3], route[1])
    allowed = sorted({m for methods in patterns.values() for m in methods})
    return ("405", allowed) if allowed else "NotFound"


def same_table(changed: RouteTable, routes: Iterable[tuple[str, str, Functions, bool]]) -> None:
    routes = list(routes)
    rebuilt = RouteTable(routes, draw=draw)
    assert shape(changed) == shape(rebuilt)
    for method in METHODS:
        for path in probes():
            found = answer(changed, method, path)
            assert found == answer(rebuilt, method, path) == reference(routes, method, path), (method, path)
            if isinstance(found, Match):
                assert found.route == reference(routes, method, path).route  # type: ignore[union-attr]


# -- the route table ----------------------------------------------------------------------------------

urls = st.lists(st.sampled_from(LITERALS + PARAMS), max_size=3).map(lambda parts: "/" + "/".join(parts))
targets = st.one_of(st.sampled_from(FUNCTIONS), st.sampled_from(WEIGHTED))
adds = st.tuples(st.just("add"), st.sampled_from(METHODS), urls, targets, st.booleans())
removes = st.tuples(st.just("remove"), st.sampled_from(METHODS), urls)


def key(method: str, url: str) -> tuple[str, str]:
    return method, url_key(url.rstrip("/") or "/")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(adds, removes), max_size=40))
def test_a_table_changed_route_by_route_is_the_table_built_anew(ops: list[tuple[Any, ...]]) -> None:
    table = RouteTable(draw=draw)
    model: dict[tuple[str, str], tuple[str, str, Functions, bool]] = {}
    for op in ops:
        if op[0] == "add":
            _, method, url, function, is_async = op
            table.add(method, url, function, is_async)
            model[key(method, url)] = (method, url, function, is_async)
        else:
            _, method, url = op
            table.remove(method, url)
            model.pop(key(method, url), None)
        same_table(table, model.values())


def test_removing_every_route_leaves_an_empty_table() -> None:
    routes = [("GET", "/a/{x}/c", "f1"), ("GET", "/a/{x}", "f2"), ("POST", "/a/b", "f3"), ("GET", "/", "f1")]
    table = RouteTable(routes)
    for method, url, _function in reversed(routes):
        table.remove(method, url)
    assert shape(table) == shape(RouteTable())
    table.remove("GET", "/never/{added}")  # nothing there: nothing happens
    assert table.size == 0


def test_a_route_is_replaced_by_one_of_the_same_pattern_whatever_its_parameter_names() -> None:
    table = RouteTable([("GET", "/u/{id}", "old")])
    table.add("GET", "/u/{name}", "new", True)
    assert table.size == 1
    found = table.match("GET", "/u/7")
    assert (found.function, found.params, found.is_async, found.route) == ("new", {"name": "7"}, True, "/u/{name}")
    table.remove("GET", "/u/{other}")
    assert table.size == 0


# -- the catalog ---------------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def function(name: str, code: str = "c1", environment: str = "nodejs", package: str = "") -> Function:
    return Function(name, environment, f"{name}.js", "", 60, code, 1, 1, NOW, NOW, package=package)


def trigger(name: str, method: str, url: str, target: Functions, is_async: bool) -> HttpTrigger:
    if isinstance(target, str):
        return HttpTrigger(name, method, url, target, NOW, NOW, is_async=is_async)
    heaviest = max(target, key=lambda pair: pair[1])[0]
    return HttpTrigger(name, method, url, heaviest, NOW, NOW, is_async=is_async, functions=tuple(target))


def same_catalog(changed: Catalog, functions: dict[str, Function], triggers: dict[str, HttpTrigger]) -> None:
    rebuilt = Catalog((), functions.values(), triggers.values())
    assert list(changed.functions.items()) == list(rebuilt.functions.items())
    assert list(changed.triggers.items()) == list(rebuilt.triggers.items())
    assert dict(changed.route_keys) == dict(rebuilt.route_keys)
    assert shape(changed.routes) == shape(rebuilt.routes)
    for name in FUNCTIONS:
        assert changed.routes_to(name) == rebuilt.routes_to(name)
        assert changed.routes_to(name) == [t for t in triggers.values() if name in t.names]
    for environment in ("nodejs", "python"):
        users = sorted(f.name for f in functions.values() if f.environment == environment)
        assert changed.functions_in(environment) == rebuilt.functions_in(environment) == users
    for package in ("p1", "p2"):
        users = sorted(f.name for f in functions.values() if f.package == package)
        assert [f.name for f in changed.functions_of(package)] == users
    for code in ("c1", "c2", "c3"):
        assert changed.code_used(code) == any(f.code_sha256 == code for f in functions.values())


functions_put = st.tuples(
    st.just("put_function"),
    st.sampled_from(FUNCTIONS),
    st.sampled_from(("c1", "c2", "c3")),
    st.sampled_from(("nodejs", "python")),
    st.sampled_from(("", "p1", "p2")),
)
functions_dropped = st.tuples(st.just("drop_function"), st.sampled_from(FUNCTIONS))
triggers_put = st.tuples(
    st.just("put_trigger"),
    st.sampled_from(("r1", "r2", "r3", "r4")),
    st.sampled_from(METHODS),
    urls,
    targets,
    st.booleans(),
)
triggers_dropped = st.tuples(st.just("drop_trigger"), st.sampled_from(("r1", "r2", "r3", "r4")))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(functions_put, functions_dropped, triggers_put, triggers_dropped), max_size=40))
def test_a_catalog_changed_write_by_write_is_the_catalog_built_anew(ops: list[tuple[Any, ...]]) -> None:
    """As the controller writes: a route names functions that exist, and no two routes share a pattern."""
    catalog = Catalog()
    functions: dict[str, Function] = {}
    triggers: dict[str, HttpTrigger] = {}
    for op in ops:
        if op[0] == "put_function":
            fn = function(op[1], op[2], op[3], op[4])
            catalog.put_function(fn)
            functions[fn.name] = fn
        elif op[0] == "drop_function":
            catalog.drop_function(op[1])
            functions.pop(op[1], None)
            triggers = {n: t for n, t in triggers.items() if op[1] not in t.names}
        elif op[0] == "put_trigger":
            t = trigger(*op[1:])
            taken = catalog.route_keys.get(key(t.method, t.url))
            if not set(t.names) <= functions.keys() or taken not in (None, t.name):
                continue  # the controller refuses it
            catalog.put_trigger(t)
            triggers[t.name] = t
        else:
            catalog.drop_trigger(op[1])
            triggers.pop(op[1], None)
        same_catalog(catalog, functions, triggers)


# -- the controller: every write applied in place, as the registry (SQLite or PostgreSQL) has it ----------


@pytest.fixture
async def registry(tmp_path: Path, database: str) -> AsyncIterator[Registry]:
    reg = Registry(tmp_path, database)
    yield reg
    await reg.close()


async def rebuilt_from_store(c: Controller) -> Catalog:
    contents = await c._store.load()
    return Catalog(contents.environments, contents.functions, contents.triggers, contents.packages)


def same_as(changed: Catalog, rebuilt: Catalog) -> None:
    for field in ("environments", "functions", "triggers", "packages", "route_keys"):
        assert dict(getattr(changed, field)) == dict(getattr(rebuilt, field)), field
    assert shape(changed.routes) == shape(rebuilt.routes)
    for name in rebuilt.functions:
        assert changed.routes_to(name) == rebuilt.routes_to(name)


def url_of(rng: random.Random) -> str:
    names = iter("xyz")
    parts = [rng.choice(LITERALS) if rng.random() < 0.6 else f"{{{next(names)}}}" for _ in range(rng.randint(0, 3))]
    return "/" + "/".join(parts)


async def random_write(c: Controller, rng: random.Random) -> None:
    """One create, update or delete of a function or a route, as a client might send it (many are refused)."""
    names = [f"f{i}" for i in range(4)]
    routes = [f"r{i}" for i in range(6)]
    fn, route = rng.choice(names), rng.choice(routes)
    weighted = [{"function": n, "weight": w} for n, w in zip(rng.sample(names, 2), (40, 60), strict=True)]
    one: dict[str, Any] = {"function": rng.choice(names)} if rng.random() < 0.7 else {"functions": weighted}
    writes: list[Callable[[], Any]] = [
        lambda: c.create_function({"name": fn, "environment": rng.choice(("nodejs", "python")), "code": HELLO}),
        lambda: c.update_function(fn, {"code": f"{HELLO}// {rng.randint(0, 3)}"}),
        lambda: c.delete_function(fn, force=rng.random() < 0.5),
        lambda: c.create_trigger(
            {"name": route, "method": rng.choice(METHODS), "url": url_of(rng), "async": rng.random() < 0.2, **one}
        ),
        lambda: c.update_trigger(route, {"url": url_of(rng), **one}),
        lambda: c.update_trigger(route, {"method": rng.choice(METHODS)}),
        lambda: c.delete_trigger(route),
    ]
    with contextlib.suppress(FaasdError):  # refused: nothing changed
        await rng.choices(writes, weights=(3, 1, 0.5, 4, 2, 1, 1))[0]()


@pytest.mark.parametrize("seed", range(4))
async def test_the_controllers_catalog_is_always_what_the_registry_holds(registry: Registry, seed: int) -> None:
    rng = random.Random(seed)
    c = await registry.open()
    for _ in range(120):
        await random_write(c, rng)
        same_as(c.catalog, await rebuilt_from_store(c))
    reopened = await registry.open()
    same_as(reopened.catalog, c.catalog)


# -- no reader sees half a write --------------------------------------------------------------------------


def state(catalog: Catalog) -> object:
    return dict(catalog.functions), dict(catalog.triggers), dict(catalog.route_keys), shape(catalog.routes)


async def test_readers_between_awaits_never_see_half_a_write(registry: Registry, monkeypatch: Any) -> None:
    """Every registry write yields to the loop several times before and after it commits; a reader that
    looks at the catalog whenever it runs sees it as it was before the write or as it is after it."""
    c = await registry.open()
    store = c._store
    for name in ("add_function", "update_function", "delete_function", "add_trigger", "update_trigger"):
        write = getattr(store, name)

        async def slow(*args: Any, _write: Any = write, **kwargs: Any) -> None:
            for _ in range(3):
                await asyncio.sleep(0)
            await _write(*args, **kwargs)
            for _ in range(3):
                await asyncio.sleep(0)

        monkeypatch.setattr(store, name, slow)
    seen: list[object] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            seen.append(state(c.catalog))
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    rng = random.Random(7)
    looks = 0
    for _ in range(150):
        before = state(c.catalog)
        seen.clear()
        await random_write(c, rng)
        after = state(c.catalog)
        assert all(look in (before, after) for look in seen)
        looks += len(seen)
    done.set()
    await task
    assert looks > 300


def test_a_function_write_changes_no_route() -> None:
    catalog = Catalog((), [function("f1")], [trigger("r1", "GET", "/a/{x}", "f1", False)])
    table = catalog.routes
    catalog.put_function(dataclasses.replace(function("f1", "c2"), revision=2))
    assert catalog.routes is table and catalog.routes.match("GET", "/a/1").function == "f1"
    assert not catalog.code_used("c1") and catalog.code_used("c2")
