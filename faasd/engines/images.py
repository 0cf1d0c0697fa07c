"""Building the images of faasd's recipes (faasd/core/recipes.py) on the engine.

The one way faasd's images are made: `make images`, `faasd images build`, and
the daemon's own first start (faasd/engines/runtime_images.py) all come here.

For each recipe whose tag (the hash of its files) is not on the engine yet:

1. a base: the Dockerfile's official ``BASE_IMAGE`` when it is here or a
   registry gives it, else a local Debian base made with mmdebstrap
   (faasd/engines/debian.py). A builder is built on its runtime's base, so
   what pip or npm installs fits the runtime: the same official image, or the
   local Debian base with the package manager added;
2. ``docker build`` (the classic builder) with ``--build-arg BASE_IMAGE``,
   labelled ``faasd.<kind>.hash`` (the full digest) and ``faasd.<kind>.base``,
   tagged ``<repository>:<tag>`` and ``:latest``.

Synchronous (the Docker SDK is): the daemon runs it in a thread. Every step
is reported as one line through ``report``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from faasd.core.recipes import BUILDER, RUNTIME, Recipe, RecipeBook
from faasd.engines import debian

Report = Callable[[str], None]
PULL_TIMEOUT = 300.0
_BUILD_TAIL = 25  # lines of a failed build's output kept in the error


class ImageBuildError(Exception):
    """A recipe's image could not be built; the message says which and why."""


@dataclass(frozen=True)
class ImageState:
    """One recipe's image on the engine, for `faasd images list` and `faasd doctor`."""

    recipe: Recipe
    present: bool
    base: str  # the base it was built on, '' when absent
    size: int  # bytes, 0 when absent


def _quiet(_: str) -> None:
    pass


def image_labels(client: docker.DockerClient, reference: str) -> dict[str, str] | None:
    """The image's labels, or None when it is not on the engine."""
    try:
        config = client.api.inspect_image(reference)["Config"]
    except docker.errors.ImageNotFound:
        return None
    return dict(config.get("Labels") or {})


class ImageBuilder:
    def __init__(
        self,
        client: docker.DockerClient,
        book: RecipeBook,
        report: Report = _quiet,
        apt_sources: list[Path] | None = None,
        pull: bool = True,
    ) -> None:
        self._client = client
        self._book = book
        self._report = report
        self._apt_sources = apt_sources
        self._pull = pull
        self._pullable: dict[str, bool] = {}  # one pull attempt per base and run

    # -- what is there -----------------------------------------------------------

    def is_current(self, recipe: Recipe) -> bool:
        """Whether the recipe's tag is on the engine, built from these very files (and a builder on
        the base its runtime is on now: what pip or npm installs must fit the runtime)."""
        labels = image_labels(self._client, recipe.reference)
        if labels is None or labels.get(recipe.label) != recipe.digest:
            return False
        if recipe.kind == BUILDER:
            return labels.get(f"faasd.{BUILDER}.base") == self._builder_base_name(recipe)
        return True

    def _builder_base_name(self, recipe: Recipe) -> str | None:
        """The base a builder belongs on, from its runtime's image (None when the runtime is not built)."""
        runtime = self._book.runtime(recipe.name)
        labels = image_labels(self._client, runtime.reference)
        if labels is None:
            return None
        if labels.get(f"faasd.{RUNTIME}.base") == runtime.default_base:
            return runtime.default_base
        return recipe.local_base

    def states(self, recipes: Iterable[Recipe]) -> list[ImageState]:
        found: list[ImageState] = []
        for recipe in recipes:
            try:
                attrs = self._client.api.inspect_image(recipe.reference)
            except docker.errors.ImageNotFound:
                found.append(ImageState(recipe, False, "", 0))
                continue
            labels = attrs["Config"].get("Labels") or {}
            found.append(ImageState(recipe, True, labels.get(f"faasd.{recipe.kind}.base", ""), int(attrs["Size"])))
        return found

    def missing(self, recipes: Iterable[Recipe], force: bool = False) -> list[Recipe]:
        """The recipes to build, runtimes before their builders (a builder needs its runtime's base).

        A builder whose runtime is to be built is listed too: the runtime may move to another
        base; :meth:`build_all` checks it again when its turn comes.
        """
        wanted = list(recipes)
        todo = [r for r in wanted if force or not self.is_current(r)]
        rebuilt = {r.name for r in todo if r.kind == RUNTIME}
        todo += [r for r in wanted if r.kind == BUILDER and r.name in rebuilt and r not in todo]
        return sorted(todo, key=lambda r: r.kind == BUILDER)

    # -- building ----------------------------------------------------------------

    def build_all(self, recipes: Iterable[Recipe], force: bool = False) -> list[str]:
        """Build every recipe not current (all with ``force``); returns the references built."""
        built: list[str] = []
        for recipe in self.missing(recipes, force):
            if force or not self.is_current(recipe):
                built.append(self.build(recipe))
        return built

    def build(self, recipe: Recipe) -> str:
        """Build one recipe's image (its base first when needed); returns its reference."""
        started = time.monotonic()
        base = self.base_for(recipe)
        self._report(f"building {recipe.reference} on {base}")
        output: list[str] = []
        try:
            stream = self._client.api.build(
                path=str(recipe.directory),
                tag=recipe.reference,
                buildargs={"BASE_IMAGE": base},
                labels={recipe.label: recipe.digest, f"faasd.{recipe.kind}.base": base},
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    output.append(str(chunk["error"]).strip())
                    tail = "\n".join(output[-_BUILD_TAIL:])
                    raise ImageBuildError(f"docker build of {recipe.reference} failed:\n{tail}")
                line = str(chunk.get("stream", "")).rstrip()
                if line:
                    output.append(line)
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"docker build of {recipe.reference} failed: {exc.explanation or exc}") from exc
        self._client.api.tag(recipe.reference, recipe.repository, "latest")
        size = int(self._client.api.inspect_image(recipe.reference)["Size"])
        self._report(f"built {recipe.reference} ({size / 1e6:.0f} MB, {time.monotonic() - started:.1f} s)")
        return recipe.reference

    def base_for(self, recipe: Recipe) -> str:
        """The base to build ``recipe`` on, made or pulled when it is not here."""
        if recipe.kind == BUILDER:
            return self._builder_base(recipe)
        if self._present_or_pulled(recipe.default_base):
            return recipe.default_base
        self._ensure_local_base(recipe.local_base, recipe.debian_packages)
        return recipe.local_base

    def _builder_base(self, recipe: Recipe) -> str:
        runtime = self._book.runtime(recipe.name)
        base = self._builder_base_name(recipe)
        if base is None:
            raise ImageBuildError(f"{recipe.reference} is built on its runtime's base: build {runtime.reference} first")
        if base == runtime.default_base:
            if not self._present_or_pulled(base):
                raise ImageBuildError(f"the base of {runtime.reference}, {base}, is gone")
            return base
        self._ensure_local_base(recipe.local_base, recipe.debian_packages)
        return recipe.local_base

    def _present_or_pulled(self, image: str) -> bool:
        if image_labels(self._client, image) is not None:
            return True
        if not self._pull:
            return False
        if image not in self._pullable:
            self._pullable[image] = self._try_pull(image)
        return self._pullable[image]

    def _try_pull(self, image: str) -> bool:
        started = time.monotonic()
        self._report(f"pulling {image}")
        repository, _, tag = image.rpartition(":")
        try:
            for chunk in self._client.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    raise docker.errors.APIError(str(chunk["error"]))
                if time.monotonic() - started > PULL_TIMEOUT:
                    raise docker.errors.APIError(f"no image after {PULL_TIMEOUT:.0f} s")
        except (docker.errors.APIError, OSError) as exc:
            reason = getattr(exc, "explanation", None) or str(exc)
            self._report(f"cannot pull {image} ({_first_line(reason)}); using a local Debian base")
            return False
        self._report(f"pulled {image} ({time.monotonic() - started:.1f} s)")
        return True

    def _ensure_local_base(self, image: str, packages: str) -> None:
        if debian.has_base(self._client, image, packages):
            return
        started = time.monotonic()
        self._report(f"making the local base {image} with mmdebstrap ({debian.SUITE} + {packages})")
        try:
            debian.make_base(self._client, packages, image, self._apt_sources)
        except debian.BaseImageError as exc:
            raise ImageBuildError(str(exc)) from exc
        self._report(f"made {image} ({time.monotonic() - started:.1f} s)")

    # -- pruning -----------------------------------------------------------------

    def stale(self, keep: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
        """(image id, its tags to remove) of faasd's images that neither a current recipe nor ``keep`` uses.

        An image is faasd's when it carries a recipe label (faasd.runtime.hash, ...)
        and a tag in one of the book's repositories, or no tag at all (a build
        that a newer one replaced). ``keep`` holds the references in use
        (environments' images, resolved). Only the book's tags are listed: an
        image another namespace also tags keeps those.
        """
        current = {recipe.reference for recipe in self._book.recipes}
        kept_ids = set()
        for reference in [*current, *keep]:
            try:
                kept_ids.add(self._client.api.inspect_image(reference)["Id"])
            except docker.errors.ImageNotFound:
                continue
        repositories = {recipe.repository for recipe in self._book.recipes}
        for kind in sorted({recipe.kind for recipe in self._book.recipes}):
            for image in self._client.api.images(filters={"label": f"faasd.{kind}.hash"}):
                if image["Id"] in kept_ids:
                    continue
                all_tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
                # Only the tags faasd gave (the recipe's hash, or :latest): an image of the user's own
                # built FROM a runtime inherits its labels, under a tag of the user's choosing.
                made = {str(image.get("Labels", {}).get(f"faasd.{kind}.hash", ""))[:12], "latest"}
                ours = [t for t in all_tags if t.rpartition(":")[0] in repositories and t.rpartition(":")[2] in made]
                if ours or not all_tags:
                    yield image["Id"], ours

    def remove(self, image_id: str, tags: list[str]) -> str | None:
        """Remove the tags (the image itself with its last tag, or when it has none);
        returns why not when the engine refuses (a container uses it)."""
        try:
            for name in tags or [image_id]:
                self._client.api.remove_image(name, force=False, noprune=False)
        except docker.errors.APIError as exc:
            return _first_line(str(exc.explanation or exc))
        return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def describe(states: Iterable[ImageState]) -> list[dict[str, Any]]:
    """`faasd images list -o json`."""
    return [
        {
            "image": state.recipe.reference,
            "kind": state.recipe.kind,
            "present": state.present,
            "base": state.base,
            "size": state.size,
        }
        for state in states
    ]
