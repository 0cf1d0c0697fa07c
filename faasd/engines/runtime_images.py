"""The images a running faasd starts its containers from, built by faasd itself when missing.

At start, the stock environments' runtimes and their builders are checked; the
missing ones are built in the background (faasd/engines/images.py: the
official base where a registry answers, else a local Debian base), one after
the other, the runtimes first. faasd serves at once: the admin API works, and
a call that needs an image still being built answers 503 with ``Retry-After``
and a message that says so. When an image is ready, the pools fill.

A stock reference (``faasd/runtime-python`` or ``:latest``) is resolved to the
tag of this faasd's recipe (faasd/core/recipes.py) when a container is made,
so an upgraded faasd never starts an old runtime. Another recipe (ruby, or a
stock image removed by hand) is built on its first use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

import docker
import docker.errors

from faasd.core.errors import EngineUnavailable, ImageNotFound
from faasd.core.progress import Progress
from faasd.core.recipes import BUILDER, STOCK_ENVIRONMENTS, Recipe, RecipeBook
from faasd.engines.images import ImageBuildError, Report

T = TypeVar("T")
log = logging.getLogger("faasd.images")
RETRY_AFTER = "5"
# A failed build is tried again on a use after this long.
RETRY_FAILED = 30.0


class ImagesBuilding(EngineUnavailable):
    """The image a call needs is being built (faasd's first start, or a changed recipe)."""

    code = "images_building"

    def __init__(self, message: str) -> None:
        super().__init__(message, {"Retry-After": RETRY_AFTER})


class Builds(Protocol):
    """What RuntimeImages needs of faasd/engines/images.py's ImageBuilder (a fake in the unit tests)."""

    def missing(self, recipes: Iterable[Recipe], force: bool = False) -> list[Recipe]: ...
    def is_current(self, recipe: Recipe) -> bool: ...
    def build(self, recipe: Recipe) -> str: ...


class RuntimeImages:
    def __init__(self, book: RecipeBook, builder: Callable[[Report], Builds]) -> None:
        """``builder(report)`` gives an ImageBuilder that reports its steps through ``report``."""
        self.book = book
        self._builder = builder
        self._ready: set[str] = set()  # recipe references known to be on the engine
        self._failed: dict[str, tuple[str, float]] = {}  # reference -> (why, when)
        self._queue: list[Recipe] = []
        self._building: Recipe | None = None
        self._worker: asyncio.Task[None] | None = None
        self._done: dict[str, asyncio.Event] = {}
        self._listeners: list[Callable[[], None]] = []
        # Builds take minutes of engine time: one at a time, off the engine calls' threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="images")
        self._progress: Progress | None = None

    def on_ready(self, listener: Callable[[], None]) -> None:
        """Called (on the loop) each time an image becomes ready: the pools fill."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Check the stock images; queue the missing ones for a build in the background."""
        wanted: list[Recipe] = []
        for name in STOCK_ENVIRONMENTS:
            runtime = self.book.runtime(name)
            wanted.append(runtime)
            builder = self.book.builder_of(runtime)
            if builder is not None:
                wanted.append(builder)
        try:
            missing = await self._in_thread(lambda b: b.missing(wanted))
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("could not check the runtime images (%s): they are checked again at their first use", exc)
            return
        self._ready.update(r.reference for r in wanted if r not in missing)
        if missing:
            log.info(
                "building %d image(s) faasd needs: %s (calls that need them answer 503 until then)",
                len(missing),
                ", ".join(r.reference for r in missing),
            )
            self._progress = Progress(len(missing), emit=log.info)
            # The runtimes first: the stock environments serve before their builders are ready.
            for recipe in sorted(missing, key=lambda r: r.kind == BUILDER):
                self._enqueue(recipe)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        # A build in its thread goes on until the engine answers; faasd does not wait for it.
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- for the engine ------------------------------------------------------------

    def resolve(self, reference: str) -> str:
        """The image to create a container from; raises ImagesBuilding while it is being built."""
        recipe = self.book.of(reference)
        if recipe is None:
            return reference
        if recipe.reference in self._ready:
            return recipe.reference
        failed = self._failed.get(recipe.reference)
        if failed is not None and time.monotonic() - failed[1] < RETRY_FAILED:
            raise ImageNotFound(f"faasd could not build {recipe.reference}: {failed[0]}")
        self._enqueue(recipe)
        raise ImagesBuilding(
            f"image {recipe.reference} is being built (faasd builds its runtime images itself on a first start "
            "or after an upgrade); try again in a few seconds"
        )

    async def wait(self, reference: str) -> str:
        """Like :meth:`resolve`, but waits for a build in progress (package builds are asynchronous anyway)."""
        while True:
            try:
                return self.resolve(reference)
            except ImagesBuilding:
                recipe = self.book.of(reference)
                assert recipe is not None
                await self._done.setdefault(recipe.reference, asyncio.Event()).wait()

    def forget(self, reference: str) -> None:
        """The engine says the image is gone (removed by hand): build it again on the next use."""
        recipe = self.book.of(reference)
        if recipe is not None:
            self._ready.discard(recipe.reference)

    def report(self) -> dict[str, str]:
        """Every recipe's state, for GET /v1/status."""
        states: dict[str, str] = {}
        for recipe in self.book.recipes:
            if recipe.reference in self._ready:
                states[recipe.reference] = "ready"
            elif self._building is recipe or recipe in self._queue:
                states[recipe.reference] = "building"
            elif recipe.reference in self._failed:
                states[recipe.reference] = "failed: " + self._failed[recipe.reference][0]
        return states

    # -- building ----------------------------------------------------------------------

    def _enqueue(self, recipe: Recipe) -> None:
        if recipe is self._building or recipe in self._queue:
            return
        if recipe.kind == BUILDER:
            runtime = self.book.runtime(recipe.name)
            if runtime.reference not in self._ready:
                self._enqueue(runtime)
        self._queue.append(recipe)
        self._done.setdefault(recipe.reference, asyncio.Event()).clear()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="faasd-images")

    async def _work(self) -> None:
        while self._queue:
            recipe = self._building = self._queue.pop(0)
            try:
                await self._in_thread(_builder_of(recipe))
            except (ImageBuildError, docker.errors.DockerException, OSError) as exc:
                why = str(exc)
                self._failed[recipe.reference] = (why.splitlines()[0] if why else type(exc).__name__, time.monotonic())
                log.error("could not build %s: %s", recipe.reference, why)
            else:
                self._failed.pop(recipe.reference, None)
                self._ready.add(recipe.reference)
                if self._progress is not None:
                    self._progress.advance()
                for listener in self._listeners:
                    listener()
            finally:
                self._building = None
                self._done.setdefault(recipe.reference, asyncio.Event()).set()
        if self._progress is not None:
            self._progress.finish()
            self._progress = None

    def _in_thread(self, work: Callable[[Builds], T]) -> Awaitable[T]:
        def run() -> T:
            report = self._progress.line if self._progress is not None else log.info
            return work(self._builder(report))

        return asyncio.get_running_loop().run_in_executor(self._executor, run)


def _builder_of(recipe: Recipe) -> Callable[[Builds], str]:
    """The work of building ``recipe`` unless another faasd (or `faasd images build`) did meanwhile."""

    def build(builder: Builds) -> str:
        return recipe.reference if builder.is_current(recipe) else builder.build(recipe)

    return build
