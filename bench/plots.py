"""PNG figures next to BENCHMARKS.md: what is easier seen than read.

- the burst: containers alive and calls answered over time (bench/burst.py's timeline);
- the warm path's latency distribution, faasd next to direct (bench/warm.py's percentiles),
  on an HdrHistogram-style axis (50 %, 90 %, 99 %, 99.9 % equally spaced).

matplotlib is a development dependency (pyproject's [dev]); without it the
figures are skipped with a note, never the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Series = Mapping[str, Sequence[tuple[float, float]]]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def available() -> bool:
    try:
        _pyplot()
    except ImportError:
        return False
    return True


def timeline(
    series: Series, path: Path, title: str, right: Series | None = None, ylabel: str = "", right_label: str = ""
) -> Path:
    """Step lines over time (x: seconds from the start); ``right`` on a second y axis (dashed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for name, points in series.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.step(xs, ys, where="post", label=name)
    ax.set_xlabel("seconds from the first call")
    ax.set_ylabel(ylabel or ", ".join(series))
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if right:
        other = ax.twinx()
        for name, points in right.items():
            if points:
                xs, ys = zip(*points, strict=True)
                other.step(xs, ys, where="post", linestyle="--", color="black", label=name)
        other.set_ylabel(right_label or ", ".join(right))
        more_handles, more_labels = other.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _nines(percentile: float) -> float:
    """50 -> 0.30, 90 -> 1, 99 -> 2, 99.9 -> 3: the HdrHistogram axis."""
    return -math.log10(max(1e-6, 1 - percentile / 100))


def latency_distribution(series: Series, path: Path, title: str) -> Path:
    """Latency (ms, log scale) by percentile, one line per target."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    ticks = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99]
    for name, points in series.items():
        if points:
            ordered = sorted(points)
            ax.plot([_nines(p) for p, _ in ordered], [ms for _, ms in ordered], marker="o", markersize=3, label=name)
    ax.set_xticks([_nines(t) for t in ticks])
    ax.set_xticklabels([f"{t:g} %" for t in ticks])
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _pos: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency, ms (log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
