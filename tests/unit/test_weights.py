"""Routes that split their calls between functions by weight: the rules, the draw, the registry."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faasd.core.errors import BadRequest, Conflict
from faasd.core.validation import heaviest, weights
from faasd.dataplane.routing import Match, RouteTable, Split
from tests.unit.test_registry import HELLO, Registry


def w(*pairs: tuple[str, int]) -> list[dict[str, object]]:
    return [{"function": name, "weight": weight} for name, weight in pairs]


# -- the rules -----------------------------------------------------------------------------


def test_weights_are_whole_numbers_adding_up_to_100() -> None:
    assert weights(w(("a", 90), ("b", 10))) == (("a", 90), ("b", 10))
    assert weights(w(("a", 100), ("b", 0))) == (("a", 100), ("b", 0))
    with pytest.raises(BadRequest, match="the weights of functions add up to 95; they must add up to 100"):
        weights(w(("a", 90), ("b", 5)))
    with pytest.raises(BadRequest, match=r"functions\[1\].weight must be between 0 and 100, got 101"):
        weights(w(("a", 0), ("b", 101)))
    with pytest.raises(BadRequest, match=r"functions\[0\].weight must be a whole number"):
        weights(w(("a", 50.5), ("b", 49.5)))  # type: ignore[arg-type]


def test_at_most_five_different_functions() -> None:
    five = w(*((f"f{i}", 20) for i in range(5)))
    assert len(weights(five)) == 5
    with pytest.raises(BadRequest, match="names 6 functions; a route splits its calls between at most 5"):
        weights(w(*((f"f{i}", 10) for i in range(5)), ("g", 50)))
    with pytest.raises(BadRequest, match="functions names function 'a' twice"):
        weights(w(("a", 50), ("a", 50)))


def test_the_shape_is_checked_and_named() -> None:
    for bad in ([], "a", None, {"a": 100}):
        with pytest.raises(BadRequest, match="functions must be a non-empty list"):
            weights(bad)
    with pytest.raises(BadRequest, match=r"functions\[0\] must be an object with function and weight"):
        weights([{"function": "a"}])
    with pytest.raises(BadRequest, match=r"functions\[0\].function 'A' is invalid"):
        weights(w(("A", 100)))


def test_the_heaviest_names_the_route_and_the_first_wins_a_tie() -> None:
    assert heaviest((("a", 10), ("b", 90))) == "b"
    assert heaviest((("a", 50), ("b", 50))) == "a"


# -- the draw ----------------------------------------------------------------------------------


def test_a_split_picks_each_function_in_proportion() -> None:
    split = Split((("a", 90), ("b", 10)), random.Random(15).random)
    counts = Counter(split.pick() for _ in range(2000))
    assert abs(counts["a"] / 2000 - 0.90) < 0.05 and abs(counts["b"] / 2000 - 0.10) < 0.05
    three = Split((("a", 20), ("b", 30), ("c", 50)), random.Random(16).random)
    counts = Counter(three.pick() for _ in range(2000))
    assert all(abs(counts[n] / 2000 - share) < 0.05 for n, share in (("a", 0.2), ("b", 0.3), ("c", 0.5)))


def test_a_zero_weight_is_never_drawn_even_at_the_edges() -> None:
    for draw in (0.0, 0.5, 0.999999999):
        assert Split((("old", 100), ("new", 0)), lambda d=draw: d).pick() == "old"  # type: ignore[misc]
        assert Split((("old", 0), ("new", 100)), lambda d=draw: d).pick() == "new"  # type: ignore[misc]
    middle = Split((("a", 50), ("z", 0), ("b", 50)), lambda: 0.5)
    assert middle.pick() == "b"


def test_the_route_table_draws_per_match() -> None:
    draws = iter([0.0, 0.95, 0.5])
    table = RouteTable(
        [("GET", "/x", [("a", 90), ("b", 10)]), ("GET", "/u/{id}", [("a", 50), ("b", 50)], True)],
        draw=lambda: next(draws),
    )
    assert table.match("GET", "/x") == Match("a", {})
    assert table.match("GET", "/x") == Match("b", {})
    assert table.match("GET", "/u/7") == Match("b", {"id": "7"}, True)


# -- the registry -------------------------------------------------------------------------------


@pytest.fixture
async def registry(tmp_path: Path, database: str) -> AsyncIterator[Registry]:
    reg = Registry(tmp_path, database)
    yield reg
    await reg.close()


async def test_a_split_route_is_kept_answered_and_matched(registry: Registry) -> None:
    c = await registry.open()
    for name in ("a", "b"):
        await c.create_function({"name": name, "environment": "nodejs", "code": HELLO})
    route = await c.create_trigger({"url": "/x", "functions": w(("a", 10), ("b", 90)), "name": "x"})
    doc = route.to_json()
    assert doc["function"] == "b"  # the heaviest
    assert doc["functions"] == w(("a", 10), ("b", 90))
    plain = await c.create_trigger({"url": "/y", "function": "a"})
    assert plain.to_json()["functions"] == w(("a", 100))  # always there
    c = await registry.open()  # it survives a restart
    assert c.catalog.triggers["x"].functions == (("a", 10), ("b", 90))
    assert {c.catalog.routes.match("GET", "/x").function for _ in range(200)} == {"a", "b"}
    # An update with function names one again; with functions it splits again.
    one = await c.update_trigger("x", {"function": "a"})
    assert (one.function, one.functions) == ("a", ())
    again = await c.update_trigger("x", {"functions": w(("a", 100), ("b", 0))})
    assert {c.catalog.routes.match("GET", "/x").function for _ in range(200)} == {"a"}
    assert again.function == "a" and again.names == ("a", "b")
    single = await c.update_trigger("x", {"functions": w(("b", 100))})
    assert (single.function, single.functions) == ("b", ())


async def test_a_split_route_names_functions_that_exist_and_one_way_only(registry: Registry) -> None:
    c = await registry.open()
    await c.create_function({"name": "a", "environment": "nodejs", "code": HELLO})
    with pytest.raises(BadRequest, match="function 'ghost' does not exist"):
        await c.create_trigger({"url": "/x", "functions": w(("a", 50), ("ghost", 50))})
    with pytest.raises(BadRequest, match=r"either function \(one\) or functions \(with weights\), not both"):
        await c.create_trigger({"url": "/x", "function": "a", "functions": w(("a", 100))})
    with pytest.raises(BadRequest, match="add up to 150"):
        await c.create_trigger({"url": "/x", "functions": w(("a", 50), ("b", 100))})
    assert not c.catalog.triggers


async def test_deleting_a_function_a_split_route_names_is_409_unless_forced(registry: Registry) -> None:
    c = await registry.open()
    for name in ("a", "b"):
        await c.create_function({"name": name, "environment": "nodejs", "code": HELLO})
    await c.create_trigger({"url": "/x", "functions": w(("a", 90), ("b", 10)), "name": "x"})
    with pytest.raises(Conflict, match=r"function 'b' is used by route\(s\) GET /x"):
        await c.delete_function("b")
    await c.delete_function("b", force=True)
    assert "x" not in c.catalog.triggers
    c = await registry.open()
    assert "x" not in c.catalog.triggers and "a" in c.catalog.functions
