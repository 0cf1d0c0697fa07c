"""A local Debian base image, for where no registry answers.

``mmdebstrap`` makes a minimal Debian (bookworm) with the packages a recipe
needs, from this host's own apt sources, and the engine imports the tarball as
an image labelled ``faasd.base=<suite>:<packages>``. It stands in for a
recipe's official base (python:3.12-slim-bookworm, ...), which a machine with
a registry pulls instead. Needs ``mmdebstrap`` (Debian's package of that name)
and, in practice, root.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import docker

SUITE = "bookworm"
BASE_LABEL = "faasd.base"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# Documentation, manuals and translations stay out: the bases are for running code.
_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)
MMDEBSTRAP_TIMEOUT = 900.0
# The mmdebstrap runs in progress, so that a stopping faasd can end them (faasd/engines/runtime_images.py).
_running: set[subprocess.Popen[str]] = set()
_running_lock = threading.Lock()


class BaseImageError(Exception):
    """A local base could not be made; the message says why and what to install."""


def host_apt_sources() -> list[Path]:
    """The files that describe this host's apt sources (what apt-get itself uses)."""
    main, folder = APT_SOURCES
    found: list[Path] = []
    if main.is_file() and any(line.strip().startswith("deb") for line in main.read_text().splitlines()):
        found.append(main)
    if folder.is_dir():
        found += sorted(p for p in folder.iterdir() if p.suffix in (".list", ".sources") and p.stat().st_size > 0)
    return found


def base_label(packages: str) -> str:
    return f"{SUITE}:{packages}"


def has_base(client: docker.DockerClient, image: str, packages: str) -> bool:
    """Whether ``image`` is here and was made with these packages."""
    try:
        labels = client.api.inspect_image(image)["Config"].get("Labels") or {}
    except docker.errors.ImageNotFound:
        return False
    # scripts/build-images.sh, before faasd built its own images, wrote <suite>-<packages> for the runtimes'.
    return labels.get(BASE_LABEL) in (base_label(packages), f"{SUITE}-{packages}")


def cancel_all() -> None:
    """End every mmdebstrap in progress (faasd is stopping; its temporary folder goes with its thread)."""
    with _running_lock:
        for process in _running:
            if process.poll() is None:
                process.terminate()


def make_base(client: docker.DockerClient, packages: str, image: str, sources: Sequence[Path] | None = None) -> None:
    """mmdebstrap ``SUITE`` with ``packages`` (a comma list), imported as ``image``."""
    if shutil.which("mmdebstrap") is None:
        raise BaseImageError(
            f"the recipe's official base could not be pulled and mmdebstrap, which makes the local base {image} "
            "instead, is not installed: let the engine reach a registry, or install mmdebstrap "
            "(apt-get install mmdebstrap) and run `faasd images build` on the host"
        )
    sources = list(sources if sources is not None else host_apt_sources())
    if not sources:
        raise BaseImageError(f"cannot make the local base {image}: this host has no apt sources for mmdebstrap")
    with tempfile.TemporaryDirectory(prefix="faasd-base-") as work:
        tarball = Path(work) / "base.tar"
        command = [
            "mmdebstrap",
            "--quiet",
            "--variant=essential",
            f"--include={packages}",
            *(f"--dpkgopt={option}" for option in _DPKG_OPTIONS),
            SUITE,
            str(tarball),
            *(str(source) for source in sources),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with _running_lock:
            _running.add(process)
        try:
            output, _ = process.communicate(timeout=MMDEBSTRAP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.communicate()
            raise BaseImageError(f"mmdebstrap for {image} took longer than {MMDEBSTRAP_TIMEOUT:.0f} s") from exc
        finally:
            with _running_lock:
                _running.discard(process)
        if process.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise BaseImageError(f"mmdebstrap failed for {image} (exit {process.returncode}):\n{tail}")
        repository, _, tag = image.rpartition(":")
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=tag,
            changes=[
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                f"LABEL {BASE_LABEL}={base_label(packages)}",
            ],
        )
