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
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import docker
import docker.errors

from faasd.core.errors import EngineUnavailable, ImageNotFound
from faasd.core.progress import Progress
from faasd.core.recipes import BUILDER, STOCK_ENVIRONMENTS, Recipe, RecipeBook
from faasd.engines import debian
from faasd.engines.images import Report

T = TypeVar("T")
log = logging.getLogger("faasd.images")
RETRY_AFTER = "5"
# A failed build is tried again on a use after this long, doubled after each
# failure in a row up to RETRY_FAILED_MAX (no registry and no mmdebstrap: not every 30 s forever).
RETRY_FAILED = 30.0
RETRY_FAILED_MAX = 600.0


@dataclass
class _Failure:
    why: str
    at: float
    count: int

    @property
    def retry_in(self) -> float:
        return float(min(RETRY_FAILED * 2 ** (self.count - 1), RETRY_FAILED_MAX))


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
        self._failed: dict[str, _Failure] = {}  # reference -> the last failure
        self._queue: list[Recipe] = []
        self._building: Recipe | None = None
        self._worker: asyncio.Task[None] | None = None
        self._done: dict[str, asyncio.Event] = {}
        self._listeners: list[Callable[[], None]] = []
        self._progress: Progress | None = None
        self._closing = False

    def on_ready(self, listener: Callable[[], None]) -> None:
        """Called (on the loop) each time an image becomes ready: the pools fill."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Check every recipe's image; queue the missing stock ones for a build in the background."""
        stock: list[Recipe] = []
        for name in STOCK_ENVIRONMENTS:
            runtime = self.book.runtime(name)
            stock.append(runtime)
            builder = self.book.builder_of(runtime)
            if builder is not None:
                stock.append(builder)
        try:
            missing = await self._in_thread(lambda b: b.missing(self.book.recipes))
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("could not check the runtime images (%s): they are checked again at their first use", exc)
            return
        self._ready.update(r.reference for r in self.book.recipes if r not in missing)
        todo = [r for r in missing if r in stock]
        if todo:
            log.info(
                "building %d image(s) faasd needs: %s (calls that need them answer 503 until then)",
                len(todo),
                ", ".join(r.reference for r in todo),
            )
            self._progress = Progress(len(todo), emit=log.info)
            self._progress.attach_to_log()
            # The runtimes first: the stock environments serve before their builders are ready.
            for recipe in sorted(todo, key=lambda r: r.kind == BUILDER):
                self._enqueue(recipe)

    async def close(self) -> None:
        """Stop building: faasd's stop never waits for a build (an mmdebstrap in progress is killed)."""
        self._closing = True
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        debian.cancel_all()
        if self._progress is not None:
            self._progress.finish()

    # -- for the engine ------------------------------------------------------------

    def resolve(self, reference: str) -> str:
        """The image to create a container from; raises ImagesBuilding while it is being built."""
        recipe = self.book.of(reference)
        if recipe is None:
            return reference
        if recipe.reference in self._ready:
            return recipe.reference
        for needed in self._needs(recipe):
            failed = self._failed.get(needed.reference)
            if failed is not None and time.monotonic() - failed.at < failed.retry_in:
                raise ImageNotFound(f"faasd could not build {needed.reference}: {failed.why}")
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
                states[recipe.reference] = "failed: " + self._failed[recipe.reference].why
        return states

    # -- building ----------------------------------------------------------------------

    def _needs(self, recipe: Recipe) -> list[Recipe]:
        """The recipe, after its runtime when it is a builder (built on the runtime's base)."""
        if recipe.kind == BUILDER:
            return [self.book.runtime(recipe.name), recipe]
        return [recipe]

    def _enqueue(self, recipe: Recipe) -> None:
        if self._closing:
            raise ImagesBuilding(f"faasd is stopping; image {recipe.reference} is not built")
        for needed in self._needs(recipe):
            if needed.reference in self._ready or needed is self._building or needed in self._queue:
                continue
            self._queue.append(needed)
            self._done.setdefault(needed.reference, asyncio.Event()).clear()
        if self._queue and (self._worker is None or self._worker.done()):
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="faasd-images")

    async def _work(self) -> None:
        while self._queue:
            recipe = self._building = self._queue.pop(0)
            try:
                await self._in_thread(_builder_of(recipe))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever it was, the queue goes on (a worker that died would stall it)
                self._record_failure(recipe, exc)
            else:
                self._failed.pop(recipe.reference, None)
                self._ready.add(recipe.reference)
                if self._progress is not None:
                    self._progress.advance()
                if recipe.kind != BUILDER:
                    # A runtime moved to another base (a registry that answers now): its builder follows it.
                    builder = self.book.builder_of(recipe)
                    if builder is not None and builder.reference in self._ready:
                        self._ready.discard(builder.reference)
                        self._queue.append(builder)
                for listener in self._listeners:
                    listener()
            finally:
                self._building = None
                self._done.setdefault(recipe.reference, asyncio.Event()).set()
        if self._progress is not None:
            self._progress.finish()
            self._progress = None

    def _record_failure(self, recipe: Recipe, exc: Exception) -> None:
        why = str(exc) or type(exc).__name__
        first = why.splitlines()[0]
        last = self._failed.get(recipe.reference)
        count = last.count + 1 if last is not None else 1
        self._failed[recipe.reference] = _Failure(first, time.monotonic(), count)
        if last is not None and last.why == first:
            log.warning(
                "could not build %s again (%s); next try in %.0f s at the earliest",
                recipe.reference,
                first,
                self._failed[recipe.reference].retry_in,
            )
        else:
            log.error("could not build %s: %s", recipe.reference, why)
        # What was queued behind a runtime that failed (its builder) fails with it.
        for queued in [r for r in self._queue if recipe in self._needs(r) and r is not recipe]:
            self._queue.remove(queued)
            self._done.setdefault(queued.reference, asyncio.Event()).set()

    def _in_thread(self, work: Callable[[Builds], T]) -> asyncio.Future[T]:
        """Run ``work`` in a daemon thread of its own: a build never holds faasd's exit back."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        report = self._progress.line if self._progress is not None else log.info

        def settle(outcome: T | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(outcome)  # type: ignore[arg-type]

        def run() -> None:
            try:
                outcome = work(self._builder(report))
            except BaseException as exc:  # handed to the loop
                error: BaseException | None = exc
                outcome = None
            else:
                error = None
            with contextlib.suppress(RuntimeError):  # the loop is closed: faasd has stopped
                loop.call_soon_threadsafe(settle, outcome, error)

        threading.Thread(target=run, name="faasd-images", daemon=True).start()
        return future


def _builder_of(recipe: Recipe) -> Callable[[Builds], str]:
    """The work of building ``recipe`` unless another faasd (or `faasd images build`) did meanwhile."""

    def build(builder: Builds) -> str:
        return recipe.reference if builder.is_current(recipe) else builder.build(recipe)

    return build
