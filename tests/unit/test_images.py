"""ImageBuilder's decisions (what is current, what prune takes), against a fake of the engine's image API.

The fake answers the few calls the decisions make (inspect_image, images) from
a dict, as the Docker SDK's APIClient does; building itself is tested on the
real engine (tests/install/test_wheel.py, the runtime image tests).
"""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from faasd.core.recipes import Recipe, RecipeBook, runtime_recipes
from faasd.engines.images import ImageBuilder


class FakeApi:
    def __init__(self) -> None:
        self.images_by_ref: dict[str, dict[str, Any]] = {}
        self.removed: list[str] = []

    def add(self, image_id: str, tags: list[str], labels: dict[str, str]) -> None:
        image = {"Id": image_id, "RepoTags": tags, "Labels": labels, "Config": {"Labels": labels}, "Size": 1}
        for ref in [image_id, *tags]:
            self.images_by_ref[ref] = image

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.images_by_ref:
            raise docker.errors.ImageNotFound(ref)
        return self.images_by_ref[ref]

    def images(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        key = filters["label"]
        unique = {i["Id"]: i for i in self.images_by_ref.values() if key in i["Labels"]}
        return list(unique.values())

    def remove_image(self, ref: str, force: bool = False, noprune: bool = False) -> None:
        self.removed.append(ref)


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


@pytest.fixture
def book() -> RecipeBook:
    return RecipeBook(runtime_recipes())


def built(api: FakeApi, recipe: Recipe, base: str, image_id: str, tag: str | None = None) -> None:
    labels = {recipe.label: recipe.digest, f"faasd.{recipe.kind}.base": base}
    api.add(image_id, [f"{recipe.repository}:{tag or recipe.tag}"], labels)


def test_a_builder_is_current_only_on_its_runtimes_base(book: RecipeBook) -> None:
    client = FakeClient()
    python = book.runtime("python")
    builder = book.builder_of(python)
    assert builder is not None
    images = ImageBuilder(client, book)  # type: ignore[arg-type]
    # Both on the local Debian bases (no registry at the first start).
    built(client.api, python, python.local_base, "sha256:r1")
    built(client.api, builder, builder.local_base, "sha256:b1")
    assert images.is_current(python) and images.is_current(builder)
    # The runtime is rebuilt on the official base (a registry answers now): the builder is stale.
    built(client.api, python, python.default_base, "sha256:r2")
    assert images.is_current(python)
    assert not images.is_current(builder)
    assert images.missing([python, builder]) == [builder]
    # Without its runtime a builder is never current.
    del client.api.images_by_ref[python.reference]
    assert not images.is_current(builder)


def test_a_builder_is_listed_when_its_runtime_is_to_be_built(book: RecipeBook) -> None:
    client = FakeClient()
    nodejs = book.runtime("nodejs")
    builder = book.builder_of(nodejs)
    assert builder is not None
    built(client.api, builder, builder.local_base, "sha256:b1")  # the runtime is missing
    images = ImageBuilder(client, book)  # type: ignore[arg-type]
    assert images.missing([builder, nodejs]) == [nodejs, builder]


def test_prune_takes_old_builds_only_by_the_tags_faasd_gave(book: RecipeBook) -> None:
    client = FakeClient()
    python = book.runtime("python")
    images = ImageBuilder(client, book)  # type: ignore[arg-type]
    built(client.api, python, python.local_base, "sha256:current")
    # An old build: its own hash tag.
    old_labels = {python.label: "0" * 64, "faasd.runtime.base": python.local_base}
    client.api.add("sha256:old", [f"{python.repository}:000000000000"], old_labels)
    # The user's image FROM the runtime (labels inherited), under a tag of their own: never ours to remove.
    client.api.add("sha256:mine", [f"{python.repository}:numpy"], {python.label: python.digest})
    # Another namespace's build of the same recipe: not this book's.
    client.api.add("sha256:other", ["elsewhere/runtime-python:000000000000"], old_labels)
    # A build that a newer one replaced, with no tag left.
    client.api.add("sha256:dangling", [], old_labels)
    # Kept because an environment names it.
    client.api.add("sha256:pinned", [f"{python.repository}:111111111111"], {python.label: "1" * 64})
    stale = dict(images.stale(keep=[f"{python.repository}:111111111111"]))
    assert stale == {"sha256:old": [f"{python.repository}:000000000000"], "sha256:dangling": []}
    assert images.remove("sha256:dangling", []) is None
    assert images.remove("sha256:old", [f"{python.repository}:000000000000"]) is None
    assert client.api.removed == ["sha256:dangling", f"{python.repository}:000000000000"]
