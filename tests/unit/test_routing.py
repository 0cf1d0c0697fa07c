from __future__ import annotations

import pytest

from faasd.core.errors import BadRequest, MethodNotAllowed, NotFound
from faasd.core.validation import url_key, url_pattern
from faasd.dataplane.routing import Match, RouteTable


def table(*routes: tuple[str, str, str]) -> RouteTable:
    return RouteTable(routes)


def test_static_route_matches_its_method_only() -> None:
    routes = table(("GET", "/hello", "hello"))
    assert routes.match("GET", "/hello") == Match("hello", {})
    with pytest.raises(MethodNotAllowed) as err:
        routes.match("POST", "/hello")
    assert err.value.allowed == ["GET"]


def test_head_falls_back_to_get() -> None:
    assert table(("GET", "/hello", "hello")).match("HEAD", "/hello").function == "hello"


def test_trailing_slash_is_the_same_path() -> None:
    assert table(("GET", "/hello", "hello")).match("GET", "/hello/").function == "hello"


def test_unknown_path_is_404_naming_it() -> None:
    with pytest.raises(NotFound, match="no route for GET /nope"):
        table(("GET", "/hello", "hello")).match("GET", "/nope")


def test_path_parameters_are_extracted_and_decoded() -> None:
    routes = table(("GET", "/users/{id}/posts/{post}", "posts"))
    assert routes.match("GET", "/users/42/posts/a%20b") == Match("posts", {"id": "42", "post": "a b"})
    with pytest.raises(NotFound):
        routes.match("GET", "/users/42/posts")


def test_literal_segment_wins_over_parameter() -> None:
    routes = table(("GET", "/users/{id}", "user"), ("GET", "/users/me", "me"))
    assert routes.match("GET", "/users/me").function == "me"
    assert routes.match("GET", "/users/7") == Match("user", {"id": "7"})


def test_same_pattern_different_methods() -> None:
    routes = table(("GET", "/items/{id}", "read"), ("DELETE", "/items/{key}", "remove"))
    assert routes.match("GET", "/items/1") == Match("read", {"id": "1"})
    assert routes.match("DELETE", "/items/1").function == "remove"


def test_root_route() -> None:
    assert table(("GET", "/", "root")).match("GET", "/").function == "root"


def test_size_counts_method_pattern_pairs() -> None:
    assert table(("GET", "/a", "f"), ("POST", "/a", "f"), ("GET", "/b/{x}", "g")).size == 3


@pytest.mark.parametrize("url", ["/v1/x", "/healthz", "/metrics", "/function/foo", "/v1"])
def test_reserved_paths_cannot_be_claimed(url: str) -> None:
    with pytest.raises(BadRequest, match="reserved"):
        url_pattern(url)


@pytest.mark.parametrize("url", ["hello", "/a?b=1", "/a/{x}/{x}", "/a//b", "", "/a b"])
def test_invalid_patterns_are_refused(url: str) -> None:
    with pytest.raises(BadRequest):
        url_pattern(url)


def test_duplicate_detection_ignores_parameter_names() -> None:
    assert url_key("/users/{id}") == url_key("/users/{name}")
    assert url_key("/users/{id}") != url_key("/users/me")


def test_a_thousand_routes_still_match_the_right_one() -> None:
    routes = RouteTable(
        [("GET", f"/r{i}", f"f{i}") for i in range(500)] + [("POST", f"/p{i}/{{id}}", f"g{i}") for i in range(500)]
    )
    assert routes.match("GET", "/r499").function == "f499"
    assert routes.match("POST", "/p250/9") == Match("g250", {"id": "9"})


def test_a_literal_dead_end_falls_back_to_a_parameter() -> None:
    routes = table(("GET", "/a/{x}/c", "param"), ("GET", "/a/b/d", "literal"))
    assert routes.match("GET", "/a/b/c") == Match("param", {"x": "b"})
    assert routes.match("GET", "/a/b/d").function == "literal"


def test_method_not_allowed_lists_methods_of_every_matching_pattern() -> None:
    routes = table(("GET", "/a/{x}", "f"), ("PUT", "/a/b", "g"), ("DELETE", "/a/{y}", "h"))
    with pytest.raises(MethodNotAllowed) as err:
        routes.match("POST", "/a/b")
    assert err.value.allowed == ["DELETE", "GET", "PUT"]
