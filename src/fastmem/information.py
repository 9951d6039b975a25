"""Information plane: binned and kernel (KDE) mutual information of layer representations.

For a layer representation ``T`` (the activations of one layer on ``N`` inputs), labels
``Y`` and inputs ``X``, the information-plane coordinates are ``I(X;T)`` and ``I(T;Y)``
(Shwartz-Ziv & Tishby 2017; Saxe et al. 2018), always reported in bits.

Binned estimators discretise every activation, treat each distinct row of codes as one
value of ``T`` and use plug-in entropies: ``I(X;T) = H(T) - H(T|X)``, ``I(T;Y) = H(T) -
H(T|Y)``; with every input its own ``x`` (the default) ``H(T|X) = 0``. The modes
reproduce the research codes:

``"idnns"``
    Shwartz-Ziv's IDNNs: edges ``float32 linspace(lo, hi, bins)``; a value becomes
    ``edges[digitize(a, edges) - 1]``, so a value below the first edge wraps to the
    *last* edge (the same bin as values ``>= hi``). Kept for reproduction only.
``"ibsgd"``
    Saxe et al.'s ibsgd (``simplebinmi``): integer codes ``floor(a / binsize)`` computed
    in the activation's precision, unbounded (no range, no clipping).
``"equal_width"``
    The default for new work: ``bins`` equal-width bins over ``range``, values outside
    clipped into the end bins, no wrap: ``clip(floor((a - lo) * bins / (hi - lo)), 0,
    bins - 1)`` in float64.
``"equal_mass"``
    Chelombiev et al. 2019's adaptive binning: ``bins`` bins whose edges are the
    quantiles of the layer's activations pooled over its units (per checkpoint).
``"adaptive_max"``
    Chelombiev et al. 2019's range rule: equal-width bins over ``[min, max]`` of the
    layer's activations, taken over all checkpoints of the layer in
    :func:`information_plane` (over the one array in :func:`binned_mi`).

The kernels fold the codes of each row into two independent 64-bit keys in one pass,
count (key, label) groups with one sort, and compare the codes of rows whose keys
agree exactly: a hash collision is detected, never merged (an exact, slower path then
takes over). :func:`information_plane` instead hands every (checkpoint, layer) of the
plane to one kernel call (``bin_plane``), which groups each segment's exactly packed code
rows in its own small hash table (cache-resident for IDNNs-sized layers) and sums
``c log2 c`` from a histogram of group sizes, so the bits do not depend on the order in
which groups are found (backends and thread counts agree).

The KDE estimator (:func:`kde_mi`) is Kolchinsky & Tracey's pairwise-distance bound
on the entropy of a Gaussian mixture with noise variance ``s^2`` around each row, as
used by ibsgd, computed over row tiles: the ``N x N`` distance matrix never exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import Backend, select_backend, to_device
from ._json import jsonable
from ._validate import _to_host_or_cupy, check_allocation, common_device
from .errors import InputError

__all__ = [
    "MODES",
    "InformationPlane",
    "MutualInformation",
    "binned_mi",
    "information_plane",
    "kde_mi",
]

MODES = ("idnns", "ibsgd", "equal_width", "equal_mass", "adaptive_max")
_KIND_EDGES_WRAP, _KIND_EDGES, _KIND_UNIFORM, _KIND_FLOOR = 0, 1, 2, 3
# Rows of one layer stacked over checkpoints per kernel call (bytes of activations).
_CHUNK_BYTES = 256 << 20
_KDE_TILE = 1024
_LN2 = math.log(2.0)
# "ibsgd" codes are int64, exact below this magnitude (the kernels clamp at it)
_FLOOR_LIMIT = 2.0**62
builtins_range = range  # binned_mi's `range` argument shadows the builtin


def _fold_keys(key1: Any) -> Any:
    """The sort key's hash part (a hook: tests replace it to force key collisions)."""
    return key1


@dataclass(frozen=True)
class MutualInformation:
    """Mutual-information estimates of one layer (floats) or several (tuples, in order).

    Attributes
    ----------
    i_xt, i_ty : float or tuple of float
        ``I(X;T)`` and ``I(T;Y)`` in bits.
    h_t : float or tuple of float
        ``H(T)`` in bits (for KDE: the bound on the differential entropy).
    h_t_given_y : float or tuple of float
        ``H(T|Y)`` in bits.
    n_distinct : int or tuple of int or None
        Distinct binned rows (None for KDE).
    saturation : float or tuple of float or None
        ``H(T) / log2 N``: 1 when every row is distinct, when ``I(X;T)`` cannot grow.
    empty_bin_fraction : float or tuple of float or None
        Fraction of (unit, bin) cells that no row falls into (NaN for the unbounded
        ``"ibsgd"`` codes, None for KDE).
    backend, mode, estimator : str
    params : dict
    """

    i_xt: Any
    i_ty: Any
    h_t: Any
    h_t_given_y: Any
    n_distinct: Any
    saturation: Any
    empty_bin_fraction: Any
    backend: str
    mode: str
    estimator: str = "binned"
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able dict of every field (NaN and Inf as None, :mod:`fastmem._json`)."""
        return jsonable({
            k: getattr(self, k)
            for k in (
                "i_xt", "i_ty", "h_t", "h_t_given_y", "n_distinct", "saturation",
                "empty_bin_fraction", "backend", "mode", "estimator", "params",
            )
        })  # fmt: skip


@dataclass(frozen=True)
class InformationPlane:
    """Information-plane trajectory: one point per (checkpoint, layer).

    Attributes
    ----------
    i_xt, i_ty, h_t : ndarray (n_checkpoints, n_layers)
        ``I(X;T)``, ``I(T;Y)`` and ``H(T)`` in bits.
    epochs : ndarray (n_checkpoints,)
        The epoch (or step) of each checkpoint.
    estimator, mode, backend : str
    params : dict
    """

    i_xt: np.ndarray
    i_ty: np.ndarray
    h_t: np.ndarray
    epochs: np.ndarray
    estimator: str
    mode: str
    backend: str
    params: dict = field(default_factory=dict)

    @property
    def n_checkpoints(self) -> int:
        return int(self.i_xt.shape[0])

    @property
    def n_layers(self) -> int:
        return int(self.i_xt.shape[1])

    def to_dict(self) -> dict:
        """JSON-able dict: arrays as nested lists (checkpoint-major)."""
        return jsonable(
            {
                "i_xt": self.i_xt,
                "i_ty": self.i_ty,
                "h_t": self.h_t,
                "epochs": self.epochs,
                "estimator": self.estimator,
                "mode": self.mode,
                "backend": self.backend,
                "params": self.params,
            }
        )

    def plot(self, ax: Any = None, *, cmap: str = "viridis") -> Any:
        """The usual picture: each layer's trajectory, points coloured by epoch.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw (a new figure when None). Needs matplotlib (extra ``study``).
        cmap : str
            Colour map of the epochs.

        Returns
        -------
        matplotlib Axes

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> rng = np.random.default_rng(0)
        >>> snaps = [[np.tanh(rng.normal(size=(64, 3)) * s)] for s in (0.5, 2.0, 8.0)]
        >>> plane = fastmem.information_plane(snaps, rng.integers(0, 2, 64))
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plane.plot()
        >>> ax.get_xlabel()
        'I(X;T) [bits]'
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "InformationPlane.plot needs matplotlib (pip install matplotlib)"
            ) from exc
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4))
        ep = np.asarray(self.epochs, dtype=float)
        norm = plt.Normalize(vmin=float(ep.min()), vmax=float(max(ep.max(), ep.min() + 1e-12)))
        for layer in range(self.n_layers):
            ax.plot(self.i_xt[:, layer], self.i_ty[:, layer], color="0.8", lw=0.5, zorder=1)
            sc = ax.scatter(
                self.i_xt[:, layer], self.i_ty[:, layer], c=ep, cmap=cmap, norm=norm, s=12,
                zorder=2,
            )  # fmt: skip
        ax.set_xlabel("I(X;T) [bits]")
        ax.set_ylabel("I(T;Y) [bits]")
        ax.set_title(f"information plane ({self.estimator}, {self.mode})")
        if self.n_layers:
            ax.figure.colorbar(sc, ax=ax, label="epoch")
        return ax


# ----------------------------------------------------------------------------- checks


def _activation(x: Any, name: str, xp: Any) -> Any:
    if (
        xp is np and type(x) is np.ndarray and x.dtype in (np.float32, np.float64)
        and x.ndim == 2 and x.shape[1] > 0 and x.flags.c_contiguous
    ):  # fmt: skip
        return x  # already what the checks below return (the plane makes thousands)
    arr = _to_host_or_cupy(x, name)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (n, width), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise InputError(f"{name}: has no columns (shape {arr.shape})")
    dt = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    return xp.ascontiguousarray(xp.asarray(arr), dtype=dt)


def _labels(labels: Any, n: int | None) -> tuple[np.ndarray, int, np.ndarray]:
    """Labels as classes 0..C-1 (host int64), C, and the class counts."""
    y = _to_host_or_cupy(labels, "labels")
    y = y.get() if hasattr(y, "get") else np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"labels: expected a 1-D integer array, got shape {y.shape}")
    if y.dtype.kind not in "biu":
        raise InputError(f"labels: must be integers, got dtype {y.dtype}")
    if n is not None and y.shape[0] != n:
        raise InputError(f"labels: has {y.shape[0]} entries for {n} activation rows")
    if y.shape[0] < 2:
        raise InputError(f"labels: N must be at least 2, got {y.shape[0]}")
    _, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    return inv.astype(np.int64).ravel(), int(counts.shape[0]), counts


def _inputs(inputs: Any, n: int) -> tuple[np.ndarray | None, int]:
    if inputs is None:
        return None, n
    x = _to_host_or_cupy(inputs, "inputs")
    x = x.get() if hasattr(x, "get") else np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n:
        raise InputError(f"inputs: expected {n} rows, got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise InputError(f"inputs: must be numeric, got dtype {x.dtype}")
    if x.dtype.kind == "f":
        x = x + 0.0  # -0.0 and 0.0 are the same input
    if x.dtype.kind in "biu" or (x.dtype.kind == "f" and bool(np.isfinite(x).all())):
        # rows as raw bytes: the same groups as np.unique(axis=0) (no NaN, one zero), ~50x
        # faster (one 1-D sort)
        x = np.ascontiguousarray(x)
        rows = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
        _, inv = np.unique(rows, return_inverse=True)
    else:
        _, inv = np.unique(x, axis=0, return_inverse=True)
    inv = inv.astype(np.int64).ravel()
    return inv, int(inv.max()) + 1


def _entropy_bits(counts: np.ndarray, n: int) -> float:
    c = counts.astype(np.float64)
    return float(math.log2(n) - float(np.sum(c * np.log2(c))) / n)


# ----------------------------------------------------------------------------- binning


@dataclass(frozen=True)
class _Spec:
    kind: int
    edges: np.ndarray
    lo: float
    scale: float
    n_codes: int


def _check_mode(mode: str, bins: Any, range_: Any, binsize: float) -> tuple[int, float, float]:
    if mode not in MODES:
        raise InputError(f"mode: must be one of {MODES}, got {mode!r}")
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2:
        raise InputError(f"bins: must be an integer >= 2, got {bins!r}")
    try:
        lo, hi = (float(v) for v in range_)
    except (TypeError, ValueError) as exc:
        raise InputError(f"range: must be a pair (lo, hi), got {range_!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"range: must be finite with lo < hi, got {range_!r}")
    if not (isinstance(binsize, int | float) and math.isfinite(binsize) and binsize > 0):
        raise InputError(f"binsize: must be a positive number, got {binsize!r}")
    return int(bins), lo, hi


def _check_bins_fit(mode: str, bins: int, width: int, xp: Any) -> None:
    """`InputError` naming ``bins`` before bins that cannot fit are allocated: every mode
    but ``"ibsgd"`` keeps an occupancy byte per (unit, bin) and its edges / quantiles."""
    if mode != "ibsgd":
        check_allocation(
            width * bins + 32 * bins, f"{bins} bins for each of {width} units", "bins", xp
        )


def _spec(
    mode: str, bins: int, lo: float, hi: float, binsize: float, xp: Any, arrays: list[Any]
) -> _Spec:
    empty = np.empty(0, dtype=np.float64)
    if mode == "idnns":
        edges = np.linspace(lo, hi, bins).astype(np.float32).astype(np.float64)
        return _Spec(_KIND_EDGES_WRAP, edges, 0.0, 0.0, bins)
    if mode == "ibsgd":
        _check_floor_codes(xp, arrays, float(binsize))
        return _Spec(_KIND_FLOOR, empty, 0.0, float(binsize), 0)
    if mode == "equal_width":
        if not math.isfinite(hi - lo):
            raise InputError(f"range: hi - lo overflows, got ({lo}, {hi}); use a narrower range")
        return _Spec(_KIND_UNIFORM, empty, lo, bins / (hi - lo), bins)
    if mode == "adaptive_max":
        a_lo = min(float(xp.min(a)) for a in arrays)
        a_hi = max(float(xp.max(a)) for a in arrays)
        if not (math.isfinite(a_lo) and math.isfinite(a_hi)):
            raise InputError("activations: contain NaN or Inf value(s)")
        if not math.isfinite(a_hi - a_lo):
            raise InputError(
                f"activations: max - min overflows ({a_lo} .. {a_hi}); rescale the activations"
            )
        scale = bins / (a_hi - a_lo) if a_hi > a_lo else 0.0
        return _Spec(_KIND_UNIFORM, empty, a_lo, scale, bins)
    # equal_mass: interior edges at the pooled quantiles
    pooled = xp.concatenate([xp.ravel(a).astype(np.float64) for a in arrays])
    if not bool(xp.isfinite(pooled).all()):
        raise InputError("activations: contain NaN or Inf value(s)")
    q = xp.quantile(pooled, xp.linspace(0.0, 1.0, bins + 1)[1:-1])
    q = q.get() if hasattr(q, "get") else np.asarray(q)
    return _Spec(_KIND_EDGES, np.ascontiguousarray(q, dtype=np.float64), 0.0, 0.0, bins)


def _check_floor_codes(xp: Any, arrays: list[Any], binsize: float) -> None:
    """Refuse ``"ibsgd"`` codes ``floor(a / binsize)`` (in the activations' dtype, as the
    kernels compute them) that int64 codes cannot hold exactly (``|code| >= 2**62``, or an
    infinite quotient); NaN / Inf activations are left to the kernels' check."""
    for a in arrays:
        if a.size == 0:
            continue
        top = max(abs(float(xp.min(a))), abs(float(xp.max(a))))
        if not math.isfinite(top):
            return
        dt = np.dtype(a.dtype)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            q = float(dt.type(top) / dt.type(binsize))
        if not q < _FLOOR_LIMIT:
            raise InputError(
                f"binsize: {binsize!r} gives codes floor(a / binsize) of magnitude {q:.3g} "
                f"for activations up to |a| = {top:.3g} ({dt}); the codes must stay below "
                "2**62: use a larger binsize or rescale the activations"
            )


def _run_sums(xp: Any, starts: Any, rows: int, seg_of_run: Any, n_seg: int) -> tuple[Any, Any]:
    """Per segment: sum of c log2 c over runs, and the number of runs."""
    ends = xp.concatenate([starts[1:], xp.asarray([rows], dtype=starts.dtype)])
    c = (ends - starts).astype(np.float64)
    s = xp.bincount(seg_of_run, weights=c * xp.log2(c), minlength=n_seg)
    return s, xp.bincount(seg_of_run, minlength=n_seg)


def _joint_sums(xp: Any, tid: Any, other: Any, n_other: int, n: int, n_seg: int) -> Any:
    """sum c log2 c over the groups of (tid, other), per segment (tid never spans two)."""
    key = tid * n_other + other
    order = xp.argsort(key)
    ks = key[order]
    start = xp.ones(ks.shape[0], dtype=bool)
    start[1:] = ks[1:] != ks[:-1]
    starts = xp.flatnonzero(start)
    return _run_sums(xp, starts, ks.shape[0], order[starts] // n, n_seg)[0]


def _layer_stats(
    be: Backend, a: Any, n: int, spec: _Spec, y: Any, b: int, xid: Any, n_x: int, occ: bool
) -> dict[str, np.ndarray]:
    """Entropy sums of every segment (checkpoint) of ``a`` (segments x n rows)."""
    xp, k = be.xp, be.kernels
    rows, width = a.shape
    n_seg = rows // n
    key1 = xp.empty(rows, dtype=np.uint64)
    key2 = xp.empty(rows, dtype=np.uint64)
    bad = xp.zeros(1, dtype=np.int64)
    occupancy = xp.zeros(n_seg * width * spec.n_codes if occ else 0, dtype=np.uint8)
    edges = xp.asarray(spec.edges)
    args = (spec.kind, edges, spec.lo, spec.scale, spec.n_codes)
    k.bin_keys(a, *args, n, key1, key2, occupancy, bad)
    if int(bad[0]):
        raise InputError(f"activations: contain {int(bad[0])} NaN or Inf value(s)")
    yy = xp.tile(y, n_seg)
    low = np.uint64((1 << b) - 1)
    s = (_fold_keys(key1) & ~low) | yy.astype(np.uint64)
    order = xp.argsort(s)
    ss = s[order]
    t_start = xp.ones(rows, dtype=bool)
    t_start[1:] = (ss[1:] & ~low) != (ss[:-1] & ~low)
    ty_start = t_start.copy()
    ty_start[1:] |= ss[1:] != ss[:-1]
    t_starts = xp.flatnonzero(t_start)
    gid = xp.cumsum(t_start) - 1
    head = order[t_starts[gid]]
    need = head != order
    ra, rb = order[need], head[need]
    exact = bool(((ra // n) == (rb // n)).all()) and bool((key2[ra] == key2[rb]).all())
    if exact and ra.shape[0]:
        differ = xp.zeros(1, dtype=np.int64)
        k.bin_rows_equal(a, *args, xp.ascontiguousarray(ra), xp.ascontiguousarray(rb), differ)
        exact = int(differ[0]) == 0
    if exact:
        s_t, n_distinct = _run_sums(xp, t_starts, rows, order[t_starts] // n, n_seg)
        ty_starts = xp.flatnonzero(ty_start)
        s_ty = _run_sums(xp, ty_starts, rows, order[ty_starts] // n, n_seg)[0]
        tid = xp.empty(rows, dtype=np.int64)
        tid[order] = gid
    else:
        # A collision on both keys (or a forced one in tests): group the codes exactly.
        codes = xp.empty((rows, width), dtype=np.int64)
        k.bin_codes(a, *args, codes)
        seg = (xp.arange(rows, dtype=np.int64) // n)[:, None]
        host = to_device(xp.concatenate([seg, codes], axis=1), "cpu")
        _, inv = np.unique(host, axis=0, return_inverse=True)
        tid = xp.asarray(inv.astype(np.int64).ravel())
        starts_order = xp.argsort(tid)
        ts = tid[starts_order]
        st = xp.ones(rows, dtype=bool)
        st[1:] = ts[1:] != ts[:-1]
        t_st = xp.flatnonzero(st)
        s_t, n_distinct = _run_sums(xp, t_st, rows, starts_order[t_st] // n, n_seg)
        s_ty = _joint_sums(xp, tid, yy, 1 << b, n, n_seg)
    if xid is None or n_x == n:
        s_tx = xp.full(n_seg, np.nan)
    else:
        s_tx = _joint_sums(xp, tid, xp.tile(xid, n_seg), n_x, n, n_seg)
    out = {"s_t": s_t, "s_ty": s_ty, "s_tx": s_tx, "n_distinct": n_distinct}
    if occ:
        filled = occupancy.reshape(n_seg, -1).sum(axis=1, dtype=np.int64)
        out["empty"] = 1.0 - filled / float(width * spec.n_codes)
    else:
        out["empty"] = xp.full(n_seg, np.nan)
    return {key: np.asarray(to_device(v, "cpu")) for key, v in out.items()}


def _finish(stats: dict[str, np.ndarray], n: int, h_y: float, h_x: float) -> dict[str, np.ndarray]:
    log_n = math.log2(n)
    h_t = log_n - stats["s_t"] / n
    h_ty = log_n - stats["s_ty"] / n
    h_t_given_y = h_ty - h_y
    s_tx = stats["s_tx"]
    h_t_given_x = np.where(np.isnan(s_tx), 0.0, (log_n - s_tx / n) - h_x)
    return {
        "i_xt": h_t - h_t_given_x,
        "i_ty": h_t - h_t_given_y,
        "h_t": h_t,
        "h_t_given_y": h_t_given_y,
        "n_distinct": stats["n_distinct"].astype(np.int64),
        "saturation": h_t / log_n,
        "empty": stats["empty"],
    }


def _binned_layers(
    be: Backend,
    layers: list[list[Any]],
    y: np.ndarray,
    n_classes: int,
    xid: np.ndarray | None,
    n_x: int,
    mode: str,
    bins: int,
    lo: float,
    hi: float,
    binsize: float,
) -> list[dict[str, np.ndarray]]:
    """Per layer: the statistics of each of its checkpoints (arrays of length n_ckpt)."""
    xp = be.xp
    n = int(layers[0][0].shape[0])
    b = max(1, (n_classes - 1).bit_length())
    y_dev = xp.asarray(y.astype(np.uint64))
    x_dev = None if xid is None else xp.asarray(xid)
    h_y = _entropy_bits(np.bincount(y), n)
    h_x = 0.0 if xid is None else _entropy_bits(np.bincount(xid), n)
    occ = mode != "ibsgd"
    results = []
    for arrays in layers:
        parts = []
        if mode == "equal_mass":
            groups = [[a] for a in arrays]  # edges of their own per checkpoint
        else:
            per = max(1, _CHUNK_BYTES // max(1, arrays[0].nbytes))
            groups = [arrays[i : i + per] for i in range(0, len(arrays), per)]
        layer_spec = (
            None if mode == "equal_mass" else _spec(mode, bins, lo, hi, binsize, xp, arrays)
        )
        for group in groups:
            spec = layer_spec or _spec(mode, bins, lo, hi, binsize, xp, group)
            a = group[0] if len(group) == 1 else xp.concatenate(group, axis=0)
            parts.append(_layer_stats(be, a, n, spec, y_dev, b, x_dev, n_x, occ))
        stats = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        results.append(_finish(stats, n, h_y, h_x))
    return results


def _clog_table(n: int) -> np.ndarray:
    """``c log2 c`` for c = 0..n (0 at c = 0): the kernels' per-group terms."""
    c = np.arange(n + 1, dtype=np.float64)
    out = np.zeros(n + 1)
    out[1:] = c[1:] * np.log2(c[1:])
    return out


def _plane_words(kind: int, n_codes: int, width: int) -> int:
    """Words of one row in bin_plane's scratch (plane_words in information.hpp)."""
    bits = 64 if kind == _KIND_FLOOR else max(1, (n_codes - 1).bit_length())
    per_word = 64 // bits
    return -(-width // per_word)


def _plane_scratch_words(n: int, n_words: int) -> int:
    """plane_scratch_words in information.hpp (CUDA: scratch of one segment)."""
    cap = 2
    while cap < 2 * n:
        cap <<= 1
    return n * n_words + 4 * n + 4 * cap + n + 1


def _binned_plane(
    be: Backend,
    layers: list[list[Any]],
    y: np.ndarray,
    n_classes: int,
    xid: np.ndarray | None,
    n_x: int,
    mode: str,
    bins: int,
    lo: float,
    hi: float,
    binsize: float,
) -> dict[str, np.ndarray]:
    """I(X;T), I(T;Y), H(T) (n_ckpt, n_layers) of a whole plane: every (checkpoint, layer)
    is a segment of one bin_plane call over the caller's arrays (no copy), grouped on its
    own in the kernel; one call per dtype (float32, float64), and on CUDA more when the
    segments' scratch exceeds _CHUNK_BYTES."""
    xp = be.xp
    n_layers, n_ckpt = len(layers), len(layers[0])
    n = int(layers[0][0].shape[0])
    # Per segment (checkpoint c, layer l), in checkpoint-major order: its spec.
    specs: list[list[_Spec]] = []
    for arrays in layers:
        if mode == "equal_mass":
            specs.append([_spec(mode, bins, lo, hi, binsize, xp, [a]) for a in arrays])
        else:
            specs.append([_spec(mode, bins, lo, hi, binsize, xp, arrays)] * n_ckpt)
    kind, n_codes = specs[0][0].kind, specs[0][0].n_codes
    n_edges = int(specs[0][0].edges.shape[0])
    y_dev = xp.asarray(y.astype(np.int64))
    exact_x = xid is None or n_x == n
    x_dev = xp.empty(0, dtype=np.int64) if exact_x else xp.asarray(xid.astype(np.int64))
    clog = xp.asarray(_clog_table(n))
    sums = np.empty((n_ckpt, n_layers, 3))
    segs = [(c, ell) for c in builtins_range(n_ckpt) for ell in builtins_range(n_layers)]
    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        mine = [(c, ell) for c, ell in segs if layers[ell][c].dtype == dtype]
        at = 0
        while at < len(mine):
            # one chunk: on CUDA, segments up to _CHUNK_BYTES of scratch (at least one)
            chunk, size = [], 0
            while at < len(mine):
                c, ell = mine[at]
                a = layers[ell][c]
                # no copy of the activations on the CPU: only CUDA's scratch is bounded
                cost = 0
                if be.name == "cuda":
                    cost = 8 * _plane_scratch_words(n, _plane_words(kind, n_codes, a.shape[1]))
                if chunk and size + cost > _CHUNK_BYTES:
                    break
                chunk.append((c, ell))
                size += cost
                at += 1
            _plane_chunk(be, layers, specs, chunk, dtype, n, kind, n_edges, n_codes, y_dev,
                         n_classes, x_dev, n_x, clog, sums)  # fmt: skip
    h_y = _entropy_bits(np.bincount(y), n)
    h_x = 0.0 if xid is None else _entropy_bits(np.bincount(xid), n)
    log_n = math.log2(n)
    h_t = log_n - sums[..., 0] / n
    h_t_given_y = (log_n - sums[..., 1] / n) - h_y
    h_t_given_x = 0.0 if exact_x else (log_n - sums[..., 2] / n) - h_x
    return {"i_xt": h_t - h_t_given_x, "i_ty": h_t - h_t_given_y, "h_t": h_t}


def _plane_chunk(
    be: Backend, layers: list[list[Any]], specs: list[list[_Spec]], chunk: list[tuple[int, int]],
    dtype: Any, n: int, kind: int, n_edges: int, n_codes: int, y_dev: Any, n_classes: int,
    x_dev: Any, n_x: int, clog: Any, sums: np.ndarray,
) -> None:  # fmt: skip
    """One bin_plane call over the segments ``chunk`` (all of ``dtype``) into ``sums``."""
    xp, k = be.xp, be.kernels
    arrays = [layers[ell][c] for c, ell in chunk]
    seg_specs = [specs[ell][c] for c, ell in chunk]
    slot: dict[int, int] = {}  # one copy of each distinct edge array
    for sp in seg_specs:
        slot.setdefault(id(sp.edges), len(slot))
    edge_off = np.array([slot[id(sp.edges)] for sp in seg_specs], dtype=np.int64) * n_edges
    firsts = {slot[id(sp.edges)]: sp.edges for sp in seg_specs}
    edges = np.concatenate([firsts[i] for i in builtins_range(len(firsts))])
    lo = np.array([sp.lo for sp in seg_specs])
    scale = np.array([sp.scale for sp in seg_specs])
    if be.name == "cuda":
        words = max(_plane_words(kind, n_codes, int(a.shape[1])) for a in arrays)
        # the segments' pointers and widths, then one segment's scratch per segment
        count = 2 * len(chunk) + len(chunk) * _plane_scratch_words(n, words)
        scratch = xp.empty(count, dtype=np.int64)
    else:
        scratch = xp.empty(0, dtype=np.int64)
    out = xp.empty((len(chunk), 3))
    bad = xp.zeros(1, dtype=np.int64)
    dev = (lambda v: xp.asarray(v)) if be.name == "cuda" else (lambda v: v)
    k.bin_plane(
        arrays, kind, dev(np.ascontiguousarray(edges, np.float64)), n_edges, dev(edge_off),
        dev(lo), dev(scale), n_codes, y_dev, n_classes, x_dev, n_x, clog, scratch, out, bad,
    )  # fmt: skip
    if int(bad[0]):
        raise InputError(f"activations: contain {int(bad[0])} NaN or Inf value(s)")
    host = np.asarray(to_device(out, "cpu"))
    for (c, ell), row in zip(chunk, host, strict=True):
        sums[c, ell] = row


def _prepare_layers(activations: Any, name: str) -> tuple[list[Any], bool, str]:
    single = not isinstance(activations, list | tuple)
    layers = [activations] if single else list(activations)
    if not layers:
        raise InputError(f"{name}: no layers given")
    device = common_device(**{f"{name}[{i}]": a for i, a in enumerate(layers)})
    return layers, single, device


def binned_mi(
    activations: Any,
    labels: Any,
    *,
    bins: int = 30,
    range: tuple[float, float] = (-1.0, 1.0),
    mode: str = "idnns",
    inputs: Any = None,
    binsize: float = 0.07,
    backend: str | None = None,
) -> MutualInformation:
    """Binned (plug-in) ``I(X;T)`` and ``I(T;Y)`` of one layer or a list of layers.

    Parameters
    ----------
    activations : array_like (N, width), or a list of them
        The layer representation(s) ``T`` (NumPy, CuPy or torch). float32 stays float32.
    labels : array_like (N,) of int
        The class of every row.
    bins : int
        Number of bins (``"idnns"``: number of edges, as in IDNNs). At least 2.
    range : (float, float)
        ``(lo, hi)`` of the ``"idnns"`` edges and the ``"equal_width"`` bins.
    mode : {"idnns", "ibsgd", "equal_width", "equal_mass", "adaptive_max"}
        The discretisation; see the module docstring for each mode's source and quirk.
        ``"equal_width"`` is the recommended choice for new work; ``"idnns"`` (the
        default) reproduces the published information planes.
    inputs : array_like (N, input_dim), optional
        Identifies equal inputs (rows equal as values are one ``x``). Default: every
        row is its own ``x``, so ``I(X;T) = H(T)``.
    binsize : float
        ``"ibsgd"`` bin width (ibsgd's 0.07).
    backend : {"cpp", "numba", "cuda"}, optional
        Force a kernel backend.

    Returns
    -------
    MutualInformation
        Floats for one array, tuples (one entry per layer) for a list.

    Raises
    ------
    InputError
        Non-integer labels or labels of the wrong length, N < 2, bins < 2, NaN or Inf
        activations, an unknown mode; ``"ibsgd"`` codes ``floor(a / binsize)`` of
        magnitude 2**62 or more (int64 codes would saturate: a larger ``binsize``).

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> t = np.array([[0.1], [0.1], [0.9], [0.9]])
    >>> mi = fastmem.binned_mi(t, np.array([0, 0, 1, 1]), mode="equal_width", bins=2,
    ...                        range=(0.0, 1.0))
    >>> mi.i_xt, mi.i_ty, mi.n_distinct
    (1.0, 1.0, 2)
    """
    bins, lo, hi = _check_mode(mode, bins, range, binsize)
    layers, single, device = _prepare_layers(activations, "activations")
    be = select_backend(device, backend)
    arrs = [
        _activation(a, "activations" if single else f"activations[{i}]", be.xp)
        for i, a in enumerate(layers)
    ]
    n = int(arrs[0].shape[0])
    for i, a in enumerate(arrs):
        if a.shape[0] != n:
            raise InputError(f"activations[{i}]: has {a.shape[0]} rows, layer 0 has {n}")
    _check_bins_fit(mode, bins, max(int(a.shape[1]) for a in arrs), be.xp)
    y, n_classes, _ = _labels(labels, n)
    xid, n_x = _inputs(inputs, n)
    res = _binned_layers(
        be, [[a] for a in arrs], y, n_classes, xid, n_x, mode, bins, lo, hi, binsize
    )

    def pick(key: str, cast: Any = float) -> Any:
        vals = tuple(cast(r[key][0]) for r in res)
        return vals[0] if single else vals

    params = {"bins": bins, "range": [lo, hi], "binsize": float(binsize), "n": n,
              "n_classes": n_classes, "inputs": inputs is not None}  # fmt: skip
    return MutualInformation(
        i_xt=pick("i_xt"), i_ty=pick("i_ty"), h_t=pick("h_t"),
        h_t_given_y=pick("h_t_given_y"), n_distinct=pick("n_distinct", int),
        saturation=pick("saturation"), empty_bin_fraction=pick("empty"),
        backend=be.name, mode=mode, estimator="binned", params=params,
    )  # fmt: skip


# ----------------------------------------------------------------------------- KDE


# Pruning of tile pairs (kde_mi): a skipped pair's terms are each <= exp(-scale * cutoff)
# with scale * cutoff = ln N + _KDE_PRUNE_BITS ln 2, so all skipped terms of a row sum to at
# most 2^-_KDE_PRUNE_BITS, while every row sum (and class sum) is >= 1 (its diagonal term):
# far below the half ulp (2^-53 relative) of the float64 sum, which cannot see them.
_KDE_PRUNE_BITS = 64
# A screened tile with at most this fraction of near entries gets their exact values
# from float64 dot products (kde_sparse_tile) instead of the float64 GEMM: a dot
# product costs about what 1/50 of a tile's GEMM does per entry.
_KDE_SPARSE = 0.01
_U32 = 2.0**-24
_POWER_STEPS = 6
_POWER_ROWS = 1024


@dataclass
class _KdePrep:
    """One layer's rows sorted along a principal direction, with per-tile bounds."""

    t: Any  # the rows (float64), caller's order
    y: Any  # labels in sorted order (device)
    order: Any  # sorted position -> original row (device)
    norms: Any
    lengths: Any  # >= the rows' Euclidean lengths
    tiles: list[tuple[int, int]]
    p_lo: np.ndarray  # per tile: projections' min / max (widened by the rounding slack)
    p_hi: np.ndarray
    r_lo: np.ndarray  # per tile: residual lengths' min / max (widened)
    r_hi: np.ndarray
    t32: Any = None  # float32 rows, made when a screen first needs them
    screen_ok: bool = True  # float32 products cannot overflow and d u32 is small


def _kde_prepare(be: Backend, t: Any, y: np.ndarray) -> _KdePrep:
    """Sort rows by their projection on the top principal direction and bound each tile.

    For a unit vector ``v``, ``p = <t, v>`` and the residual ``r = t - p v``:
    ``|a - b|^2 = (p_a - p_b)^2 + |r_a - r_b|^2 >= (p_a - p_b)^2 + (|r_a| - |r_b|)^2``,
    for any ``v``; a good one (a few power steps on the centred rows) separates clusters,
    and sorting by ``p`` makes tiles slabs whose intervals are far apart.
    """
    xp = be.xp
    n, d = t.shape
    # The direction only has to be good, not exact (the bound holds for any v): power
    # steps on a subsample of the centred rows cost a small fraction of one pass.
    sub = xp.ascontiguousarray(t[:: max(1, n // _POWER_ROWS)])
    mu = sub.mean(axis=0)
    v = xp.asarray(np.random.default_rng(0).standard_normal(d))
    for _ in builtins_range(_POWER_STEPS):
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: stop, as below
            c = sub @ v - float(mu @ v)
            w = sub.T @ c - mu * float(c.sum())
            nw = float(xp.linalg.norm(w))
        if not (math.isfinite(nw) and nw > 0.0):
            break  # constant rows (or products past float64): any direction will do
        v = w / nw
    v = v / float(xp.linalg.norm(v))
    p = t @ v
    norms = xp.einsum("ij,ij->i", t, t)
    order = xp.argsort(p, kind="stable")
    ps = p[order]
    norms = norms[order]
    ts_n = min(n, _KDE_TILE)
    tiles = [(i0, min(n, i0 + ts_n)) for i0 in builtins_range(0, n, ts_n)]
    max_len = float(xp.sqrt(norms.max()))
    # Rounding: p and the norms are float64 dot products of length d (error <= d 2^-53
    # |t| resp. |t|^2, v of unit length to a few ulps), so |r|^2 = |t|^2 - p^2 is known to
    # within 4 (d + 4) 2^-53 |t|^2 and p to far within (d + 4) 2^-50 max_len.
    slack = (d + 4) * 2.0**-50 * max_len
    r2 = norms - ps * ps
    dr2 = 4.0 * (d + 4) * 2.0**-53 * norms
    host = np.asarray(to_device(xp.stack([ps, r2 - dr2, r2 + dr2]), "cpu"))
    host_p = host[0]
    host_rlo = np.sqrt(np.maximum(host[1], 0.0)) * (1.0 - 2.0**-50)
    host_rhi = np.sqrt(host[2]) * (1.0 + 2.0**-50)
    p_lo = np.array([host_p[i0:i1].min() for i0, i1 in tiles]) - slack
    p_hi = np.array([host_p[i0:i1].max() for i0, i1 in tiles]) + slack
    r_lo = np.array([host_rlo[i0:i1].min() for i0, i1 in tiles])
    r_hi = np.array([host_rhi[i0:i1].max() for i0, i1 in tiles])
    # float32 screening: products must stay finite (d max^2 < 3e38) and d u32 small
    screen_ok = max_len <= 1e15 and d * _U32 < 1e-3
    return _KdePrep(
        t=t, y=xp.asarray(y)[order], order=order, norms=norms,
        lengths=xp.sqrt(norms) * (1.0 + 1e-12 + (d + 2) * 2.0**-53), tiles=tiles,
        p_lo=p_lo, p_hi=p_hi, r_lo=r_lo, r_hi=r_hi, screen_ok=screen_ok,
    )  # fmt: skip


def _sorted_rows(prep: _KdePrep, xp: Any, i0: int, i1: int, dtype: Any) -> Any:
    """Rows i0..i1 of the sorted order, as a contiguous array of ``dtype``."""
    return xp.ascontiguousarray(xp.take(prep.t, prep.order[i0:i1], axis=0), dtype=dtype)


def _tile_gap2(prep: _KdePrep, a: int, b: int) -> float:
    """Lower bound on the squared distance of any row of tile a to any row of tile b."""
    gp = max(0.0, prep.p_lo[b] - prep.p_hi[a], prep.p_lo[a] - prep.p_hi[b])
    gr = max(0.0, prep.r_lo[b] - prep.r_hi[a], prep.r_lo[a] - prep.r_hi[b])
    return gp * gp + gr * gr


def _kde_entropies(
    be: Backend, prep: _KdePrep, y: np.ndarray, counts: np.ndarray, var: float
) -> tuple[float, float, dict[str, int]]:
    """KL-form entropy bound (nats) of T and sum_y p(y) of T|y, kernel variance ``var``.

    Tile pairs (upper triangle) whose every squared distance provably exceeds
    ``cutoff`` (see _KDE_PRUNE_BITS) are skipped: first by the tiles' intervals of
    projections and residual lengths (free), else by a float32 GEMM screen with a
    rigorous rounding bound (kde_screen), about half the cost of the float64 tile. A
    skipped diagonal tile contributes its diagonal terms, exactly 1 each.
    """
    xp, k = be.xp, be.kernels
    n, d = prep.t.shape
    scale = 1.0 / (2.0 * var)
    cutoff = (math.log(n) + _KDE_PRUNE_BITS * _LN2) / scale
    # Rounding of the float32 products (see kde_far): relative part err, and an absolute
    # part for float32 underflow, added to the cutoff.
    # The float64 norms themselves are off by at most 1.01 d 2^-53 of the largest: that
    # (beyond kde_far's fixed slack) goes into the cutoff too.
    err = 1.01 * (d + 2) * _U32
    max_len = float(prep.lengths.max())
    cut32 = cutoff + 1e-30 * (d + 1) * (1.0 + max_len) + 2.02 * d * 2.0**-53 * max_len**2
    row_all = xp.zeros(n)
    row_cls = xp.zeros(n)
    ts = prep.tiles[0][1]
    buf = xp.empty(ts * ts)
    buf32 = xp.empty(ts * ts, dtype=np.float32)
    count = xp.zeros(1, dtype=np.int64)
    yd = prep.y
    stats = {"tiles": 0, "skipped_bound": 0, "skipped_screen": 0, "screened": 0, "sparse": 0}
    # Screening wastes its GEMM when it fails: keep trying (separately on the diagonal and
    # off it) only while it has succeeded about as often as it failed.
    tried = {True: [0, 0], False: [0, 0]}  # diagonal? -> [successes, failures]
    nt = len(prep.tiles)
    for a in builtins_range(nt):
        i0, i1 = prep.tiles[a]
        rows_a = None  # the float64 rows of tile a, gathered when an exact tile needs them
        for b in builtins_range(a, nt):
            j0, j1 = prep.tiles[b]
            stats["tiles"] += 1
            if b != a and _tile_gap2(prep, a, b) > cutoff:
                stats["skipped_bound"] += 1
                continue
            ok, bad = tried[a == b]
            if prep.screen_ok and ok + 1 >= bad:
                if prep.t32 is None:
                    prep.t32 = xp.empty((n, d), dtype=np.float32)
                    for c0, c1 in prep.tiles:
                        prep.t32[c0:c1] = _sorted_rows(prep, xp, c0, c1, np.float32)
                g32 = buf32[: (i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0)
                xp.matmul(prep.t32[i0:i1], prep.t32[j0:j1].T, out=g32)
                k.kde_screen(
                    g32, prep.norms[i0:i1], prep.norms[j0:j1], prep.lengths[i0:i1],
                    prep.lengths[j0:j1], err, cut32, i0, j0, count,
                )  # fmt: skip
                stats["screened"] += 1
                near = int(count[0])
                if near == 0:
                    tried[a == b][0] += 1
                    stats["skipped_screen"] += 1
                    if a == b:
                        row_all[i0:i1] += 1.0
                        row_cls[i0:i1] += 1.0
                    continue
                if near <= _KDE_SPARSE * (i1 - i0) * (j1 - j0):
                    tried[a == b][0] += 1
                    stats["sparse"] += 1
                    if rows_a is None:
                        rows_a = _sorted_rows(prep, xp, i0, i1, np.float64)
                    rows_b = rows_a if b == a else _sorted_rows(prep, xp, j0, j1, np.float64)
                    k.kde_sparse_tile(
                        g32, rows_a, rows_b, prep.norms[i0:i1], prep.norms[j0:j1],
                        prep.lengths[i0:i1], prep.lengths[j0:j1], yd[i0:i1], yd[j0:j1], err,
                        cut32, scale, i0, j0, row_all[i0:i1], row_cls[i0:i1], row_all[j0:j1],
                        row_cls[j0:j1], j0 != i0,
                    )  # fmt: skip
                    continue
                tried[a == b][1] += 1
            if rows_a is None:
                rows_a = _sorted_rows(prep, xp, i0, i1, np.float64)
            rows_b = rows_a if b == a else _sorted_rows(prep, xp, j0, j1, np.float64)
            g = buf[: (i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0)
            xp.matmul(rows_a, rows_b.T, out=g)
            k.kde_tile(
                g, prep.norms[i0:i1], prep.norms[j0:j1], yd[i0:i1], yd[j0:j1], scale, i0, j0,
                row_all[i0:i1], row_cls[i0:i1], row_all[j0:j1], row_cls[j0:j1], j0 != i0,
            )  # fmt: skip
    # back to the caller's row order
    s_all = np.empty(n)
    s_cls = np.empty(n)
    order = np.asarray(to_device(prep.order, "cpu"))
    s_all[order] = np.asarray(to_device(row_all, "cpu"))
    s_cls[order] = np.asarray(to_device(row_cls, "cpu"))
    normconst = d / 2.0 * math.log(2.0 * math.pi * var)
    h_all = d / 2.0 - float(np.mean(np.log(s_all) - math.log(n) - normconst))
    h_cls = 0.0
    for c, n_c in enumerate(counts):
        lp = np.log(s_cls[y == c]) - math.log(n_c) - normconst
        h_cls += n_c / n * (d / 2.0 - float(np.mean(lp)))
    return h_all, h_cls, stats


def kde_mi(
    activations: Any,
    labels: Any,
    *,
    noise_var: float = 1e-3,
    bound: str = "upper",
    backend: str | None = None,
) -> MutualInformation:
    """Kernel (KDE) bounds on ``I(X;T)`` and ``I(T;Y)`` (Kolchinsky & Tracey; ibsgd).

    ``T`` is taken with added Gaussian noise of variance ``noise_var``. The entropy of
    the mixture is bounded above by the pairwise-KL form ``H(T) <= d/2 - mean_i log
    mean_j exp(-||t_i - t_j||^2 / (2 s^2)) - d/2 log(2 pi s^2)`` and below by the
    Bhattacharyya form (the same with ``4 s^2``, plus ``d/2 log(1/4)``). ``I(X;T) =
    H(T) - d/2 (log(2 pi s^2) + 1)`` and ``I(T;Y) = H(T) - sum_y p(y) H(T|y)``, in bits.
    Squared distances come from GEMMs over row tiles (upper triangle only); a fused
    kernel turns each tile into kernel values and accumulates row and column sums in
    float64, so memory stays at one tile. Rows are first sorted along their principal
    direction; a tile pair is skipped when a proven lower bound on all its distances
    (tile intervals of projections and residual lengths, else a float32 GEMM with a
    rigorous rounding bound) shows that its terms sum to below ``2^-64`` of every row
    sum (each sum is at least 1, its diagonal term), so below float64 rounding.
    ``params["tiles"]`` counts the tile pairs and the skipped ones.

    Parameters
    ----------
    activations : array_like (N, d), or a list of them
    labels : array_like (N,) of int
    noise_var : float
        ``s^2`` (ibsgd: 1e-3). Positive.
    bound : {"upper", "lower"}
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    MutualInformation
        With ``n_distinct``, ``saturation`` and ``empty_bin_fraction`` None.

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> t = np.array([[0.0], [0.0], [5.0], [5.0]])
    >>> mi = fastmem.kde_mi(t, np.array([0, 0, 1, 1]))
    >>> round(mi.i_ty, 6)
    1.0
    """
    if bound not in ("upper", "lower"):
        raise InputError(f"bound: must be 'upper' or 'lower', got {bound!r}")
    if not (
        isinstance(noise_var, int | float)
        and not isinstance(noise_var, bool)
        and math.isfinite(noise_var)
        and 0 < noise_var <= 1e150
    ):
        # beyond 1e150 the kernel's 1 / (4 noise_var) products under- and overflow
        raise InputError(f"noise_var: must be a number in (0, 1e150], got {noise_var!r}")
    layers, single, device = _prepare_layers(activations, "activations")
    be = select_backend(device, backend)
    y, _, counts = _labels(labels, None)
    vals: dict[str, list[float]] = {"i_xt": [], "i_ty": [], "h_t": [], "h_t_given_y": []}
    tiles: list[dict[str, int]] = []
    for i, layer in enumerate(layers):
        name = "activations" if single else f"activations[{i}]"
        t = _activation(layer, name, be.xp).astype(np.float64, copy=False)
        t = be.xp.ascontiguousarray(t)
        if t.shape[0] != y.shape[0]:
            raise InputError(f"labels: has {y.shape[0]} entries for {t.shape[0]} rows of {name}")
        if not bool(be.xp.isfinite(t).all()):
            raise InputError(f"{name}: contains NaN or Inf value(s)")
        # squared distances between rows, up to 4 d max|t|^2, must be finite in float64
        top = float(be.xp.abs(t).max()) if t.size else 0.0
        limit = math.sqrt(1e307 / (4.0 * max(t.shape[1], 1)))
        if top > limit:
            raise InputError(
                f"{name}: values up to {top:.3g}, beyond {limit:.3g}, where squared distances "
                "between rows overflow float64; rescale the values (the estimate is the same "
                "for values times s and noise_var times s^2)"
            )
        h, hy, stats = _kde_point(be, t, y, counts, float(noise_var), bound)
        tiles.append(stats)
        d = t.shape[1]
        h_given_x = d / 2.0 * (math.log(2.0 * math.pi * noise_var) + 1.0)
        vals["h_t"].append(float(h / _LN2))
        vals["h_t_given_y"].append(float(hy / _LN2))
        vals["i_xt"].append(float((h - h_given_x) / _LN2))
        vals["i_ty"].append(float((h - hy) / _LN2))

    def pick(key: str) -> Any:
        return vals[key][0] if single else tuple(vals[key])

    return MutualInformation(
        i_xt=pick("i_xt"), i_ty=pick("i_ty"), h_t=pick("h_t"), h_t_given_y=pick("h_t_given_y"),
        n_distinct=None, saturation=None, empty_bin_fraction=None, backend=be.name,
        mode=bound, estimator="kde",
        params={"noise_var": float(noise_var), "bound": bound,
                "tiles": tiles[0] if single else tiles},
    )  # fmt: skip


def _kde_point(
    be: Backend, t: Any, y: np.ndarray, counts: np.ndarray, var: float, bound: str
) -> tuple[float, float, dict[str, int]]:
    d = t.shape[1]
    prep = _kde_prepare(be, t, y)
    if bound == "upper":
        return _kde_entropies(be, prep, y, counts, var)
    h, hy, stats = _kde_entropies(be, prep, y, counts, 4.0 * var)
    shift = d / 2.0 * math.log(0.25)
    return h + shift, hy + shift, stats


# ----------------------------------------------------------------------------- plane


def information_plane(
    snapshots: Sequence[Any],
    labels: Any,
    *,
    estimator: str = "binned",
    X: Any = None,
    epochs: Any = None,
    inputs: Any = None,
    backend: str | None = None,
    **kw: Any,
) -> InformationPlane:
    """``I(X;T)`` and ``I(T;Y)`` of every layer at every checkpoint.

    Parameters
    ----------
    snapshots : sequence
        One entry per checkpoint: a list of per-layer activation arrays (all with N
        rows; layer l has the same width at every checkpoint), or a
        :class:`fastmem.Network`, in which case ``X`` is required and the layers are
        ``Network.layer_outputs(X)`` (hidden post-activations, then the logits).
    labels : array_like (N,) of int
    estimator : {"binned", "kde"}
        :func:`binned_mi` (all checkpoints of a layer in one kernel call, chunked to
        bound memory) or :func:`kde_mi`.
    X : array_like (N, input_dim), optional
        Inputs of Network snapshots.
    epochs : array_like (n_checkpoints,), optional
        Epoch of each checkpoint (default 0, 1, ...).
    inputs : array_like, optional
        As for :func:`binned_mi` (binned only).
    backend : {"cpp", "numba", "cuda"}, optional
    **kw
        Passed on: ``mode``, ``bins``, ``range``, ``binsize`` (binned); ``noise_var``,
        ``bound`` (kde). ``"adaptive_max"`` takes its range over all checkpoints.

    Returns
    -------
    InformationPlane

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 100)
    >>> snaps = [[np.tanh(s * rng.normal(size=(100, 4))), np.eye(2)[y]] for s in (0.1, 1, 10)]
    >>> plane = fastmem.information_plane(snaps, y, mode="equal_width", bins=10)
    >>> plane.i_xt.shape
    (3, 2)
    >>> bool(np.allclose(plane.i_ty[:, 1], plane.i_ty[0, 1]))
    True
    """
    from .network import Network

    if estimator not in ("binned", "kde"):
        raise InputError(f"estimator: must be 'binned' or 'kde', got {estimator!r}")
    try:
        if isinstance(snapshots, str):
            raise TypeError
        snaps = list(snapshots)
    except TypeError:
        raise InputError(
            f"snapshots: must be a sequence of checkpoints, got {type(snapshots).__name__}"
        ) from None
    if not snaps:
        raise InputError("snapshots: no checkpoints given")
    if any(isinstance(s, Network) for s in snaps):
        if X is None:
            raise InputError("X: required when snapshots are Networks")
        snaps = [
            s.layer_outputs(X, backend=backend) if isinstance(s, Network) else s for s in snaps
        ]
    layers_per: list[list[Any]] = []
    for c, s in enumerate(snaps):
        if not isinstance(s, list | tuple) or not s:
            raise InputError(f"snapshots[{c}]: must be a non-empty list of layer activations")
        layers_per.append(list(s))
    n_layers = len(layers_per[0])
    for c, s in enumerate(layers_per):
        if len(s) != n_layers:
            raise InputError(f"snapshots[{c}]: has {len(s)} layers, snapshots[0] has {n_layers}")
    try:
        ep = np.arange(len(snaps)) if epochs is None else np.asarray(epochs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"epochs: cannot be converted to an array ({exc})") from exc
    if ep.shape != (len(snaps),):
        raise InputError(f"epochs: expected {len(snaps)} entries, got shape {ep.shape}")
    device = common_device(**{f"snapshots[0][{i}]": a for i, a in enumerate(layers_per[0])})
    be = select_backend(device, backend)
    shape0 = []
    cols: list[list[Any]] = [[] for _ in builtins_range(n_layers)]
    for c, s in enumerate(layers_per):
        for i, a in enumerate(s):
            arr = _activation(a, f"snapshots[{c}][{i}]", be.xp)
            if c == 0:
                shape0.append(arr.shape)
            elif arr.shape != shape0[i]:
                raise InputError(
                    f"snapshots[{c}][{i}]: shape {arr.shape} differs from snapshots[0][{i}] "
                    f"{shape0[i]}"
                )
            cols[i].append(arr)
    n = shape0[0][0]
    for i, sh in enumerate(shape0):
        if sh[0] != n:
            raise InputError(f"snapshots[0][{i}]: has {sh[0]} rows, layer 0 has {n}")
    if estimator == "kde":
        if inputs is not None:
            raise InputError("inputs: not used by the kde estimator")
        unknown = sorted(set(kw) - {"noise_var", "bound"})
        if unknown:
            raise InputError(f"{unknown[0]}: unknown keyword for the kde estimator")
        res = [
            [kde_mi(cols[i][c], labels, backend=be.name, **kw) for i in builtins_range(n_layers)]
            for c in builtins_range(len(snaps))
        ]
        grid = {
            key: np.array([[getattr(r, key) for r in row] for row in res], dtype=np.float64)
            for key in ("i_xt", "i_ty", "h_t")
        }
        return InformationPlane(
            **grid, epochs=ep, estimator="kde", mode=res[0][0].mode, backend=be.name,
            params={k: v for k, v in res[0][0].params.items() if k != "tiles"},
        )  # fmt: skip
    mode = kw.pop("mode", "idnns")
    bins, lo, hi = _check_mode(
        mode, kw.pop("bins", 30), kw.pop("range", (-1.0, 1.0)), kw.get("binsize", 0.07)
    )
    binsize = float(kw.pop("binsize", 0.07))
    if kw:
        raise InputError(f"{sorted(kw)[0]}: unknown keyword for the binned estimator")
    _check_bins_fit(mode, bins, max(int(c.shape[1]) for layer in cols for c in layer), be.xp)
    y, n_classes, _ = _labels(labels, n)
    xid, n_x = _inputs(inputs, n)
    grid = _binned_plane(be, cols, y, n_classes, xid, n_x, mode, bins, lo, hi, binsize)
    params = {"bins": bins, "range": [lo, hi], "binsize": binsize, "n": int(n),
              "n_classes": n_classes, "inputs": inputs is not None}  # fmt: skip
    return InformationPlane(
        **grid, epochs=ep, estimator="binned", mode=mode, backend=be.name, params=params
    )
