"""Figure helpers: matplotlib without pyplot (Agg through Figure.savefig, no GUI)."""

from __future__ import annotations

from typing import Any


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 4.2, height: float = 3.3) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def bar_hist(ax: Any, hist: dict[str, list[float]], label: str, *, density: bool = True) -> None:
    """Draw a stored histogram ({"edges", "counts"}) as a step line."""
    import numpy as np

    edges = np.asarray(hist["edges"], dtype=float)
    counts = np.asarray(hist["counts"], dtype=float)
    if density and counts.sum() > 0:
        counts = counts / (counts.sum() * np.diff(edges))
    ax.stairs(counts, edges, label=label)


def none_to_nan(values: Any) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]
