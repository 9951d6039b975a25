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


# Up to 20 series stay apart: 10 colours (tab10) x 2 line styles; the 11th series and
# later repeat a colour with a dashed line and another marker.
_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
_STYLES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def style(i: int) -> dict[str, Any]:
    """Colour, line style and marker of the i-th series: distinct for i < 40."""
    return {
        "color": _COLORS[i % len(_COLORS)],
        "ls": _STYLES[(i // len(_COLORS)) % len(_STYLES)],
        "marker": _MARKERS[(i // len(_COLORS)) % len(_MARKERS)],
    }


def band(
    ax: Any,
    x: Any,
    mean: Any,
    sd: Any = None,
    *,
    label: str | None = None,
    errorbars: bool = False,
    **kw: Any,
) -> Any:
    """Plot the mean over seeds with a +-1 sd band (or error bars); returns the line."""
    import numpy as np

    m = np.asarray(none_to_nan(mean), dtype=float)
    xs = np.asarray(none_to_nan(x), dtype=float)
    kw.setdefault("ms", 3)
    (line,) = ax.plot(xs, m, label=label, **kw)
    if sd is not None:
        s = np.asarray(none_to_nan(sd), dtype=float)
        if np.isfinite(s).any() and np.nanmax(s) > 0:
            if errorbars:
                ax.errorbar(xs, m, yerr=s, fmt="none", ecolor=line.get_color(), capsize=2, lw=0.8)
            else:
                ax.fill_between(xs, m - s, m + s, color=line.get_color(), alpha=0.18, lw=0)
    return line


def band_note(d: dict[str, Any]) -> str:
    n = int(d.get("n_seeds", 1))
    if n > 1:
        return f"Lines: mean over {n} seeds; shaded bands / error bars: +-1 standard deviation."
    return "One seed (no spread shown)."


def legend_below(ax: Any, ncol: int = 2, **kw: Any) -> None:
    """A legend under the axes, where it cannot cover the data."""
    kw.setdefault("fontsize", 8)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, frameon=False, **kw)


def legend_right(fig: Any, ax: Any, **kw: Any) -> None:
    """One legend for the figure, right of the panels (for many series)."""
    handles, labels = ax.get_legend_handles_labels()
    kw.setdefault("fontsize", 8)
    fig.legend(handles, labels, loc="outside right upper", frameon=False, **kw)


def thin_ticks(values: Any, max_ticks: int = 11) -> tuple[list[int], list[str]]:
    """Positions and labels of at most ``max_ticks`` evenly spread tick labels (no overprint)."""
    vals = list(values)
    n = len(vals)
    if n <= max_ticks:
        idx = list(range(n))
    else:
        step = -(-(n - 1) // (max_ticks - 1))
        idx = list(range(0, n, step))
        if idx[-1] != n - 1 and (n - 1) - idx[-1] >= step / 2:
            idx.append(n - 1)
    return idx, [f"{vals[i]:g}" for i in idx]
