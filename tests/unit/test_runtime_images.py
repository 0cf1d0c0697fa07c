"""RuntimeImages: the daemon's own builds of its missing images, with a fake builder (no engine).

The fake stands behind the same interface as faasd/engines/images.py's
ImageBuilder (missing, is_current, build); a build blocks on an event so a
test sees the state while it runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

import pytest

from faasd.core.errors import ImageNotFound
from faasd.core.recipes import Recipe, RecipeBook, runtime_recipes
from faasd.engines.images import ImageBuildError, Report
from faasd.engines.runtime_images import ImagesBuilding, RuntimeImages


class FakeBuilder:
    def __init__(self, present: set[str], gate: threading.Event, fail: set[str] | None = None) -> None:
        self.present = present
        self.gate = gate
        self.fail = fail or set()
        self.built: list[str] = []

    def missing(self, recipes: Iterable[Recipe], force: bool = False) -> list[Recipe]:
        return [r for r in recipes if force or r.reference not in self.present]

    def is_current(self, recipe: Recipe) -> bool:
        return recipe.reference in self.present

    def build(self, recipe: Recipe) -> str:
        assert self.gate.wait(10), "the test never opened the gate"
        if recipe.reference in self.fail:
            raise ImageBuildError(f"mmdebstrap failed for {recipe.reference}")
        self.present.add(recipe.reference)
        self.built.append(recipe.reference)
        return recipe.reference


@pytest.fixture
def book() -> RecipeBook:
    return RecipeBook(runtime_recipes())


def images_with(book: RecipeBook, fake: FakeBuilder) -> RuntimeImages:
    def make(report: Report) -> FakeBuilder:
        return fake

    return RuntimeImages(book, make)


async def wait_for(predicate: object, what: str) -> None:
    for _ in range(1000):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_present_images_resolve_at_once(book: RecipeBook) -> None:
    gate = threading.Event()
    fake = FakeBuilder({r.reference for r in book.recipes}, gate)
    images = images_with(book, fake)
    await images.start()
    python = book.runtime("python")
    assert images.resolve("faasd/runtime-python:latest") == python.reference
    assert images.resolve("someone/else:1") == "someone/else:1"
    assert fake.built == []
    await images.close()


async def test_missing_stock_images_are_built_and_calls_meanwhile_get_503(book: RecipeBook) -> None:
    gate = threading.Event()
    fake = FakeBuilder(set(), gate)
    images = images_with(book, fake)
    ready: list[int] = []
    images.on_ready(lambda: ready.append(1))
    await images.start()
    with pytest.raises(ImagesBuilding) as caught:
        images.resolve("faasd/runtime-nodejs:latest")
    error = caught.value
    assert error.status == 503 and error.headers["Retry-After"] == "5"
    assert "is being built" in error.message and book.runtime("nodejs").reference in error.message
    assert set(images.report().values()) == {"building"}
    gate.set()
    await wait_for(lambda: len(ready) == 4, "the four stock images (nodejs, python and their builders)")
    assert images.resolve("faasd/runtime-nodejs") == book.runtime("nodejs").reference
    # Runtimes before builders (a builder is built on its runtime's base); ruby is not stock.
    kinds = [ref.split("/")[1].split("-")[0] for ref in fake.built]
    assert kinds == ["runtime", "runtime", "builder", "builder"]
    assert book.runtime("ruby").reference not in fake.built
    await images.close()


async def test_another_recipe_is_built_on_first_use(book: RecipeBook) -> None:
    gate = threading.Event()
    gate.set()
    stock = {r.reference for r in book.recipes if "ruby" not in r.reference}
    fake = FakeBuilder(set(stock), gate)
    images = images_with(book, fake)
    await images.start()
    ruby = book.runtime("ruby")
    with pytest.raises(ImagesBuilding):
        images.resolve("faasd/runtime-ruby:latest")
    assert await images.wait("faasd/runtime-ruby:latest") == ruby.reference
    assert fake.built == [ruby.reference]
    await images.close()


async def test_a_builder_waits_for_its_runtime(book: RecipeBook) -> None:
    gate = threading.Event()
    gate.set()
    fake = FakeBuilder(set(), gate)
    images = images_with(book, fake)  # not started: nothing queued yet
    builder = book.builder_of(book.runtime("python"))
    assert builder is not None
    assert await images.wait(builder.repository + ":latest") == builder.reference
    assert fake.built == [book.runtime("python").reference, builder.reference]
    await images.close()


async def test_a_failed_build_is_a_clear_error_then_tried_again(
    book: RecipeBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    gate.set()
    nodejs = book.runtime("nodejs")
    fake = FakeBuilder({r.reference for r in book.recipes if r is not nodejs}, gate, fail={nodejs.reference})
    images = images_with(book, fake)
    await images.start()
    with pytest.raises(ImageNotFound) as caught:
        await images.wait("faasd/runtime-nodejs:latest")
    assert "could not build" in caught.value.message and "mmdebstrap failed" in caught.value.message
    assert images.report()[nodejs.reference].startswith("failed: ")
    # Within RETRY_FAILED the failure is answered at once; after it, a use builds again.
    with pytest.raises(ImageNotFound):
        images.resolve("faasd/runtime-nodejs")
    monkeypatch.setattr("faasd.engines.runtime_images.RETRY_FAILED", 0.0)
    fake.fail.clear()
    assert await images.wait("faasd/runtime-nodejs") == nodejs.reference
    await images.close()


async def test_an_image_removed_by_hand_is_built_again(book: RecipeBook) -> None:
    gate = threading.Event()
    gate.set()
    fake = FakeBuilder({r.reference for r in book.recipes}, gate)
    images = images_with(book, fake)
    await images.start()
    python = book.runtime("python")
    fake.present.discard(python.reference)
    images.forget("faasd/runtime-python:latest")
    assert await images.wait("faasd/runtime-python:latest") == python.reference
    assert fake.built == [python.reference]
    await images.close()


class ExplodingBuilder(FakeBuilder):
    """The first build raises something no one expected (a cut-off stream: not a DockerException)."""

    exploded = False

    def build(self, recipe: Recipe) -> str:
        if not self.exploded:
            self.exploded = True
            self.fail.add(recipe.reference)
            raise RuntimeError("stream cut")
        return super().build(recipe)


async def test_an_unexpected_error_fails_that_image_and_the_queue_goes_on(book: RecipeBook) -> None:
    gate = threading.Event()
    gate.set()
    fake = ExplodingBuilder(set(), gate)
    images = images_with(book, fake)
    await images.start()
    nodejs, python = book.runtime("nodejs"), book.runtime("python")
    assert await images.wait("faasd/runtime-python:latest") == python.reference
    with pytest.raises(ImageNotFound, match="stream cut"):
        images.resolve("faasd/runtime-nodejs:latest")
    # Its builder was queued behind it: it fails with the runtime's error at once, without a build.
    builder = book.builder_of(nodejs)
    assert builder is not None
    with pytest.raises(ImageNotFound, match=f"could not build {nodejs.reference}"):
        await images.wait(builder.reference)
    assert builder.reference not in fake.built
    await images.close()


async def test_failures_in_a_row_back_off(book: RecipeBook) -> None:
    from faasd.engines.runtime_images import RETRY_FAILED, RETRY_FAILED_MAX, _Failure

    assert [_Failure("x", 0.0, n).retry_in for n in (1, 2, 3)] == [RETRY_FAILED, 2 * RETRY_FAILED, 4 * RETRY_FAILED]
    assert _Failure("x", 0.0, 50).retry_in == RETRY_FAILED_MAX


async def test_a_rebuilt_runtime_has_its_builder_checked_again(book: RecipeBook) -> None:
    gate = threading.Event()
    gate.set()
    python = book.runtime("python")
    builder = book.builder_of(python)
    assert builder is not None
    fake = FakeBuilder({r.reference for r in book.recipes}, gate)
    images = images_with(book, fake)
    await images.start()
    # The runtime is rebuilt (removed by hand, say, and a registry answers now): its builder
    # may belong on another base, so it is checked (here: found stale) and built again.
    fake.present -= {python.reference, builder.reference}
    images.forget(python.reference)
    assert await images.wait(python.reference) == python.reference
    assert await images.wait(builder.reference) == builder.reference
    assert fake.built == [python.reference, builder.reference]
    await images.close()


async def test_builds_run_in_daemon_threads_and_close_does_not_wait(book: RecipeBook) -> None:
    gate = threading.Event()  # never opened before close: the build is stuck
    fake = FakeBuilder(set(), gate)
    images = images_with(book, fake)
    await images.start()
    await wait_for(lambda: any(t.name == "faasd-images" for t in threading.enumerate()), "the build thread")
    assert all(t.daemon for t in threading.enumerate() if t.name == "faasd-images")
    await images.close()
    with pytest.raises(ImagesBuilding, match="stopping"):
        images.resolve("faasd/runtime-ruby")
    gate.set()  # let the stuck thread end
