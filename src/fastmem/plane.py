"""Exact 2-D slices: the partition of a plane of input space into linear regions.

The slice is ``x(s, t) = origin + s * directions[0] + t * directions[1]`` over the
rectangle ``extent = (s0, s1, t0, t1)``. The network is affine on each *region* of the
slice (a convex polygon on which every hidden neuron stays on one linear branch);
:func:`plane_regions` finds them all, exactly, with their activation patterns, logits and
the decision boundary (SplineCam, regioncam; Hanin & Rolnick, "Deep ReLU networks have
surprisingly few activation patterns", NeurIPS 2019, measure region density this way).

Algorithm (the segment engine's, one dimension up; see :mod:`fastmem.regions`)
    Layer by layer, every polygon carries the layer's pre-activations as an affine map of
    ``(s, t)`` (three rows: value at the origin of the slice and the two slopes); one GEMM
    per layer over those rows gives the next layer's maps. A kernel (C++ or Numba,
    identical results; ``cpp/include/fastmem/plane.hpp``) then cuts every polygon,
    independently and in parallel, by each neuron's threshold line (``z_j(s, t) = c``, ``c``
    = 0, or -1 and +1 for hard-tanh) that separates two of its corners, in the order
    (neuron, threshold), and a second kernel reads each new polygon's pattern bits and
    branch at its vertex mean (an interior point, never on a cut, as the segment engine
    reads them at a piece's midpoint; the bits by the packing of
    :meth:`Network.pattern_hashes`, so ``pattern_hashes`` equal it at interior points) and
    writes the maps of its post-activations. Vertices are shared by neighbouring polygons:
    a vertex's values are read from the maps of one polygon that owns it (the network is
    continuous: every owner agrees up to rounding), and a new vertex on a side is computed
    from the side's ends in a canonical order, so the two polygons on a side see the same
    signs and cut it at bitwise the same points, which are then merged: the partition is
    conforming (no vertex in the middle of a neighbour's side). A ``threshold`` layer makes
    the network constant on each polygon after it (and discontinuous): its lines are cut,
    then the whole pattern and the logits are read at the vertex means.

Layer graphs (convolutions, max pooling, residual blocks)
    The same polygons and kernels op by op (:mod:`fastmem._graph_plane`): the current
    tensor's maps per polygon, max pooling's argmax cells cut out by the tie lines of its
    windows' entries and merged back to one polygon per pattern.

Ties and tolerance (float64; float32 networks are promoted to float64 for the geometry)
    ``tol = 128 * eps * max(|s0|, |s1|, |t0|, |t1|, s1 - s0, t1 - t0)`` in slice units (the
    segment engine's rule with the extent for the range). A vertex is *on* the line of
    neuron ``j`` when ``|z_j - c| <= tol * G_j``, ``G_j`` the neuron's steepest slope on the
    slice (one number per neuron, so that both polygons on a side decide alike): within
    ``tol`` of the line where the slope is steepest, closer where it is flatter. The line
    passes through such a vertex and adds none there, so several lines through one point
    (ties) meet at one vertex, and a line that close to a polygon's side does not cut it. A
    neuron whose pre-activation is constant on a polygon never cuts it (its state is its
    value's). A class is *constant* on a region when at every vertex its logit is within
    ``tol`` (times the gradient of the difference) of the largest.

Memory
    The state of a layer is the maps of its polygons (``3 * width`` float64 each: the
    parents' while their children's are computed, then the children's), their pattern
    words, and per vertex / corner a few int64 and float64. Beyond that the working memory
    is bounded: the post-activation maps go to the next layer's GEMM by blocks of 8 MiB
    of polygons (not all at once), the per-neuron tolerances are reduced block by block,
    and the cut keeps per-thread scratch for one polygon (grown while a polygon needs
    more). Refused before allocating when a layer's maps cannot fit (``InputError``
    naming ``net`` and saying how much it would need); the cut's own output (a few int64
    a polygon, some 40 times less than the maps) grows as it goes, and running out of
    memory there is an ``InputError`` naming ``net`` too. A slice with millions of regions
    still needs gigabytes (its maps: 3 * 8 * width bytes a region).
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import Backend, select_backend
from ._json import jsonable
from ._kinds import ACTIVATIONS, THRESHOLD, bits_per_neuron
from ._threads import (
    cpu_threads,
    kernel_threads,
    kernels_callable_side_by_side,
    kernels_own_the_cores,
    row_parallel_matmul,
    run_tasks,
)
from ._validate import as_float_array, check_allocation
from ._validate import to_host as _host
from .errors import InputError
from .network import Network
from .regions import Ragged

__all__ = ["PlaneRegions", "plane_regions", "plane_through"]

_TOL_ULPS = 128
# the post-activation maps of this many bytes of polygons per kernel call and GEMM (and
# the per-neuron tolerances' temporaries): the working memory beyond the layer's maps
_BLOCK_BYTES = 8 << 20
# host temporaries of a reduction over polygons (a few L2-sized blocks)
_SMALL_BLOCK_BYTES = 256 << 10
# the children and their GEMMs: this many blocks of polygons, each of at most this many
# bytes of post-activation maps (host); the cut: up to this many ranges of parents per
# thread, of at least this many parents
_CHILD_BLOCKS = 16
_CHILD_BLOCK_BYTES = 2 << 20
_CUT_CHUNKS_PER_THREAD = 4
_CUT_MIN_PARENTS = 32


# ------------------------------------------------------------------ the result
@dataclass(frozen=True)
class PlaneRegions:
    """The linear regions of a network on a 2-D slice of input space (:func:`plane_regions`).

    Slice coordinates ``(s, t)`` map to the input ``origin + s * directions[0] + t *
    directions[1]`` (:meth:`point`).

    Attributes
    ----------
    count : int
        Number of regions (polygons).
    vertices : ndarray (m, 2) float64
        Slice coordinates of the polygons' vertices (shared by neighbouring polygons).
    polygons : Ragged
        Per region, indices into ``vertices`` in counter-clockwise order (int64 values +
        offsets). Convex; a vertex where a neighbour's side ends may lie on a straight side.
    areas : ndarray (count,) float64
        Area of each region in slice units (they sum to the extent's area).
    pattern_hashes : ndarray (count,) uint64
        Hash of each region's activation pattern: equal to ``net.pattern_hashes`` at any
        interior point.
    patterns : ndarray (count, n_pattern_words) uint64
        The packed patterns (bit layout of :meth:`Network.activation_patterns`).
    predicted : ndarray (count,) int64
        The predicted class on each region where it is constant, else -1 (the decision
        boundary crosses the region).
    boundary : Ragged
        The decision boundary as polylines: ``values`` (q, 2) slice coordinates,
        ``offsets`` one polyline per row. Its straight pieces (inside a region, or along a
        side between two regions) are joined where they meet on a side or at a vertex; a
        polyline ends at the extent's border or where three classes meet.
    logits : ndarray (count, 3, n_outputs) float64
        Per region the logits as an affine map: ``logits[i, 0] + s * logits[i, 1] + t *
        logits[i, 2]``.
    origin : ndarray (d,), directions : ndarray (2, d)
        The slice (float64).
    extent : tuple of float
        ``(s0, s1, t0, t1)``.
    marks : ndarray (k, 2) or None
        Slice coordinates of the ``points`` given to :func:`plane_regions` (their
        projections onto the plane), marked by :meth:`plot`.
    backend : str
        Kernel backend that packed and hashed the patterns.
    params : dict
        ``tolerance``, ``dtype`` of the network, ``n_outputs``.
    """

    count: int
    vertices: Any
    polygons: Ragged
    areas: Any
    pattern_hashes: Any
    patterns: Any
    predicted: Any
    boundary: Ragged
    logits: Any
    origin: Any
    directions: Any
    extent: tuple[float, float, float, float]
    marks: Any
    backend: str
    params: dict[str, Any] = field(default_factory=dict)

    def point(self, s: Any, t: Any) -> Any:
        """The input-space point(s) at slice coordinates ``(s, t)`` (scalars or arrays that
        broadcast): shape ``broadcast(s, t).shape + (d,)``."""
        s = np.asarray(s, dtype=np.float64)[..., None]
        t = np.asarray(t, dtype=np.float64)[..., None]
        return self.origin + s * self.directions[0] + t * self.directions[1]

    def centroids(self) -> Any:
        """The vertex mean of every region (an interior point), ``(count, 2)``."""
        V, poly = self.vertices, self.polygons
        return _vertex_means(_Mesh(V[:, 0], V[:, 1], poly.values, poly.offsets, None))

    def plot(
        self,
        ax: Any = None,
        *,
        color: str = "class",
        edges: bool = True,
        points: bool = True,
    ) -> Any:
        """Draw the regions (matplotlib, imported here).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw (default: a new figure's axes via pyplot).
        color : {"class", "pattern"}
            Fill each region by the class predicted at its vertex mean, or by a colour
            derived from its pattern hash.
        edges : bool
            Draw the regions' sides (thin grey).
        points : bool
            Mark the projected ``points`` (``marks``), labelled ``x0, x1, ...``.

        Returns
        -------
        matplotlib Axes

        The decision boundary is drawn in black.
        """
        if color not in ("class", "pattern"):
            raise InputError(f"color: must be 'class' or 'pattern', got {color!r}")
        if color == "class":
            faces = _class_at(self.logits, self.centroids())
        else:
            faces = self.pattern_hashes
        return draw_regions(
            ax,
            self.vertices,
            self.polygons,
            faces,
            self.boundary,
            self.marks if points else None,
            self.extent,
            color=color,
            edges=edges,
        )

    def to_svg(self, path: Any, **plot_kwargs: Any) -> None:
        """Write :meth:`plot`'s picture to ``path`` as SVG (matplotlib, no GUI backend)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 6))
        ax = fig.subplots()
        self.plot(ax, **plot_kwargs)
        fig.savefig(path, format="svg")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields (uint64 hashes as Python ints)."""
        return jsonable(
            {
                "count": self.count,
                "vertices": self.vertices,
                "polygons": self.polygons.to_dict(),
                "areas": self.areas,
                "pattern_hashes": self.pattern_hashes,
                "patterns": self.patterns,
                "predicted": self.predicted,
                "boundary": self.boundary.to_dict(),
                "logits": self.logits,
                "origin": self.origin,
                "directions": self.directions,
                "extent": list(self.extent),
                "marks": self.marks,
                "backend": self.backend,
                "params": self.params,
            }
        )


def draw_regions(
    ax: Any,
    vertices: Any,
    polygons: Ragged,
    faces: Any,
    boundary: Ragged,
    marks: Any,
    extent: tuple[float, float, float, float],
    *,
    color: str = "class",
    edges: bool = True,
) -> Any:
    """Draw a slice's regions from its arrays (:meth:`PlaneRegions.plot`'s picture).

    ``faces``: per region the class (``color="class"``, pastel tab10) or the pattern hash
    (``color="pattern"``). Also used by the study, which keeps only these arrays.
    """
    from matplotlib.collections import LineCollection, PolyCollection

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    V = np.asarray(vertices)
    count = len(polygons)
    verts = [V[polygons[i]] for i in range(count)]
    if color == "class":
        import matplotlib as mpl

        rgba = mpl.colormaps["tab10"](np.asarray(faces) % 10)
        rgba[:, :3] = 0.55 * rgba[:, :3] + 0.45  # pastel, so the boundary stands out
    else:
        h = np.asarray(faces).astype(np.uint64)
        rgb = np.stack([(h >> np.uint64(s)) & np.uint64(255) for s in (0, 8, 16)], axis=1)
        rgba = np.concatenate([0.35 + 0.6 * rgb / 255.0, np.ones((count, 1))], axis=1)
    ax.add_collection(
        PolyCollection(
            verts,
            facecolors=rgba,
            edgecolors="0.45" if edges else "face",
            linewidths=0.3 if edges else 0.0,
        )
    )
    if len(boundary):
        lines = [boundary[i] for i in range(len(boundary))]
        ax.add_collection(LineCollection(lines, colors="k", linewidths=1.2))
    if marks is not None:
        m = np.asarray(marks)
        ax.plot(m[:, 0], m[:, 1], "o", color="k", markersize=4)
        for i, (s, t) in enumerate(m):
            ax.annotate(f"x{i}", (s, t), textcoords="offset points", xytext=(4, 4))
    s0, s1, t0, t1 = extent
    ax.set_xlim(s0, s1)
    ax.set_ylim(t0, t1)
    ax.set_aspect("equal")
    ax.set_title(f"{count} linear regions")
    return ax


# ------------------------------------------------------------------ the plane
def plane_through(
    x0: Any, x1: Any, x2: Any, *, margin: float = 0.25
) -> tuple[Any, Any, tuple[float, float, float, float]]:
    """The plane through three inputs, with a margin around their triangle.

    ``origin = x0``; ``directions`` are orthonormal (Gram-Schmidt of ``x1 - x0`` and
    ``x2 - x0``), so slice areas are input-space areas; the extent is the bounding box of
    the three points in slice coordinates widened by ``margin`` times its larger side on
    every side.

    Parameters
    ----------
    x0, x1, x2 : array_like (d,)
        Three inputs, not collinear.
    margin : float
        >= 0.

    Returns
    -------
    origin : ndarray (d,) float64
    directions : ndarray (2, d) float64
    extent : (s0, s1, t0, t1)

    Raises
    ------
    InputError
        Shapes differ, non-finite values, collinear or coincident points (naming ``x1`` or
        ``x2``), a bad ``margin``.

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> origin, dirs, extent = fastmem.plane_through([0.0, 0, 0], [2.0, 0, 0], [0.0, 1, 0])
    >>> dirs
    array([[1., 0., 0.],
           [0., 1., 0.]])
    >>> extent
    (-0.5, 2.5, -0.5, 1.5)
    """
    pts = []
    for name, x in (("x0", x0), ("x1", x1), ("x2", x2)):
        a = as_float_array(x, name, ndim=1, dtype=np.float64, xp=np)
        if a.shape[0] == 0:
            raise InputError(f"{name}: is empty")
        pts.append(np.asarray(a, dtype=np.float64))
    if not (pts[0].shape == pts[1].shape == pts[2].shape):
        raise InputError(
            f"x1, x2: shapes {pts[1].shape}, {pts[2].shape} differ from x0's {pts[0].shape}"
        )
    try:
        margin = float(margin)
    except (TypeError, ValueError) as exc:
        raise InputError(f"margin: must be a number, got {margin!r}") from exc
    if not (math.isfinite(margin) and margin >= 0):
        raise InputError(f"margin: must be finite and >= 0, got {margin}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused by name below
        u = pts[1] - pts[0]
        nu = float(np.linalg.norm(u))
        if not nu > 0 or not math.isfinite(nu):
            raise InputError("x1: coincides with x0 (or the difference is not finite)")
        d0 = u / nu
        v = pts[2] - pts[0]
        w = v - (d0 @ v) * d0
        nw = float(np.linalg.norm(w))
        nv = float(np.linalg.norm(v))
        if not (math.isfinite(nv) and nw > 1e-12 * max(nv, nu)):
            raise InputError(
                "x2: is collinear with x0 and x1 (no plane through the three), or its "
                "difference from x0 is not finite"
            )
        d1 = w / nw
        dirs = np.stack([d0, d1])
        st = np.array([[0.0, 0.0], [nu, 0.0], [d0 @ v, nw]])
        lo, hi = st.min(axis=0), st.max(axis=0)
        pad = margin * float((hi - lo).max())
        extent = (
            float(lo[0] - pad), float(hi[0] + pad), float(lo[1] - pad), float(hi[1] + pad)
        )  # fmt: skip
    if not all(math.isfinite(v) for v in extent):
        raise InputError(f"margin: {margin} makes the extent overflow (not finite)")
    return pts[0].copy(), dirs, extent


def _check_extent(extent: Any) -> tuple[float, float, float, float]:
    try:
        vals = tuple(float(v) for v in extent)
    except (TypeError, ValueError) as exc:
        raise InputError(f"extent: must be four numbers (s0, s1, t0, t1), got {extent!r}") from exc
    if len(vals) != 4:
        raise InputError(f"extent: must be four numbers (s0, s1, t0, t1), got {extent!r}")
    if not all(math.isfinite(v) for v in vals):
        raise InputError(f"extent: must be finite, got {extent!r}")
    s0, s1, t0, t1 = vals
    if not (s0 < s1 and t0 < t1):
        raise InputError(f"extent: is empty (needs s0 < s1 and t0 < t1), got {extent!r}")
    if max(abs(v) for v in vals) > _MAX_EXTENT:
        raise InputError(
            f"extent: coordinates up to {_MAX_EXTENT:g} in magnitude (the regions' areas are "
            f"sums of products of two coordinates, which would overflow float64), got {extent!r}"
        )
    return s0, s1, t0, t1


# The largest |s|, |t| of an extent: products of two coordinates (the areas) stay finite.
_MAX_EXTENT = 1e150


def tolerance(extent: tuple[float, float, float, float]) -> float:
    """The tie tolerance (slice units) of a slice over ``extent`` (module docstring)."""
    s0, s1, t0, t1 = extent
    scale = max(abs(s0), abs(s1), abs(t0), abs(t1), s1 - s0, t1 - t0)
    return _TOL_ULPS * float(np.finfo(np.float64).eps) * scale


# ------------------------------------------------------------------ the mesh
def _ragged_index(starts: Any, sizes: Any) -> Any:
    """The indices ``starts[i] + 0 .. sizes[i] - 1`` for every ``i``, concatenated."""
    total = int(sizes.sum())
    before = np.cumsum(sizes) - sizes
    return np.repeat(starts - before, sizes) + np.arange(total, dtype=np.int64)


@dataclass
class _Mesh:
    """Convex polygons sharing vertices: vertex coordinates ``S``, ``T``; polygon ``i`` is
    ``corners[off[i]:off[i + 1]]`` (counter-clockwise); ``parent[i]``: the polygon of the
    current layer's start it lies in (whose maps hold its pre-activations); ``means``: the
    polygons' vertex means once computed (:func:`_vertex_means`), else None."""

    S: Any
    T: Any
    corners: Any
    off: Any
    parent: Any
    means: Any = None

    @property
    def n(self) -> int:
        return int(self.off.shape[0]) - 1

    def poly_of_corner(self) -> Any:
        return np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.off))


def _cut_layer(
    mesh: _Mesh, be: Backend, maps: Any, kind: int, tol: float, layer: int, threads: int = 1
) -> _Mesh:
    """Cut every polygon of ``mesh`` by the threshold lines of one layer whose
    pre-activations on polygon ``i`` are ``maps[0, i] + s maps[1, i] + t maps[2, i]``.

    The kernels (``plane_cut_count``, ``plane_cut_emit``; cpp/include/fastmem/plane.hpp)
    cut each polygon independently from the values at its vertices; new vertices that two
    neighbours created on their shared side are bitwise equal and merged here. The mesh
    lives on the host; on the CUDA backend ``maps`` lives on the device and the kernels'
    inputs and outputs cross over. ``threads >= 2`` (CPU kernels that two threads may
    call at once): ranges of parents cut side by side (:func:`run_tasks`), each on one
    core, and joined in parent order: the same mesh as one call gives.
    """
    k, xp = be.kernels, be.xp
    _, n, width = maps.shape
    S, T, corners, off = mesh.S, mesh.T, mesh.corners, mesh.off
    nv = S.shape[0]
    # Each vertex's values come from one polygon that owns it (the network is continuous:
    # every owner agrees up to rounding, and one owner per vertex makes neighbours agree
    # exactly); the kernels evaluate them from its maps.
    owner = np.empty(nv, dtype=np.int64)
    owner[corners] = mesh.poly_of_corner()
    # One tolerance per neuron (its steepest slope on the slice): the same number on both
    # sides of every shared side.
    tolz = _steepest(xp, maps, width) * tol
    dev = _to_backend(be)
    args = (dev(S), dev(T), maps, dev(owner), dev(corners), dev(off), kind, tolz)
    what = f"the regions of the slice at hidden layer {layer} (and their maps)"
    if hasattr(k, "plane_cut"):  # C++: the cut in one pass, each parent cut once
        try:
            sizes, out_corners, parent, st = _plane_cut(k, be, args, n, nv, threads)
        except MemoryError as exc:  # the cut's own output did not fit
            raise InputError(
                f"net: the cut of hidden layer {layer} ran out of memory ({n} polygons of "
                f"width {width} in; the regions it makes and their maps would need at least "
                f"{3 * 8 * n * width / 2**30:.3g} GiB more): shrink the extent or the network"
            ) from exc
        n_poly = sizes.shape[0]
        # the largest arrays come next: the maps of every region (checked before)
        check_allocation(3 * 8 * n_poly * width, f"{what[:4]}{n_poly} {what[4:]}", "net")
    else:  # count, then emit where the counts say
        counts = xp.zeros((n, 3), dtype=np.int64)
        k.plane_cut_count(*args, counts)
        offsets = np.zeros((n + 1, 3), dtype=np.int64)
        np.cumsum(_host(counts), axis=0, out=offsets[1:])
        n_poly, n_corners, n_new = (int(x) for x in offsets[-1])
        check_allocation(
            8 * (3 * n_poly + 3 * n_corners + 6 * n_new + 4 * nv) + 3 * 8 * n_poly * width,
            f"{what[:4]}{n_poly} {what[4:]}",
            "net",
        )
        sizes = xp.empty(n_poly, dtype=np.int64)
        out_corners = xp.empty(n_corners, dtype=np.int64)
        parent = xp.empty(n_poly, dtype=np.int64)
        st = xp.empty((n_new, 2))
        k.plane_cut_emit(*args, dev(offsets), sizes, out_corners, parent, st)
        sizes, out_corners, parent, st = (_host(a) for a in (sizes, out_corners, parent, st))
    # merge the new vertices two neighbours made on their shared side (bitwise equal; as
    # complex numbers, which sort faster than 16-byte keys; -0.0 and 0.0 are one point)
    keys = np.ascontiguousarray(st).view(np.complex128).reshape(-1)
    _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    new = out_corners >= nv
    out_corners[new] = nv + inv.reshape(-1)[out_corners[new] - nv]
    first_st = st[first]
    return _Mesh(
        np.concatenate([S, first_st[:, 0]]),
        np.concatenate([T, first_st[:, 1]]),
        out_corners,
        np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        parent,
    )


def _plane_cut(k: Any, be: Backend, args: tuple, n: int, nv: int, threads: int) -> tuple:
    """``k.plane_cut(*args)``; with ``threads >= 2`` by ranges of parents side by side,
    joined in parent order (each range numbers its new vertices from ``nv``: shifted by
    those of the ranges before it), which is what one call returns."""
    n_chunks = min(_CUT_CHUNKS_PER_THREAD * threads, n // _CUT_MIN_PARENTS)
    if threads < 2 or n_chunks < 2:
        return k.plane_cut(*args)
    bounds = [n * i // n_chunks for i in range(n_chunks + 1)]
    parts: list[Any] = [None] * n_chunks

    def cut(i: int) -> None:
        parts[i] = k.plane_cut(*args, bounds[i], bounds[i + 1])

    run_tasks(be, n_chunks, cut, threads)
    shift = 0
    for _, corners, _, st in parts:
        if shift:
            corners[corners >= nv] += shift
        shift += st.shape[0]
    return tuple(np.concatenate([p[e] for p in parts]) for e in range(4))


def _children_block(n: int, width: int, be: Backend) -> int:
    """Polygons per block of children and GEMMs: some _CHILD_BLOCKS blocks of at most
    _CHILD_BLOCK_BYTES of post-activation maps with NumPy arrays (side by side, and in the
    cache), of _BLOCK_BYTES with a GPU's; a function of ``n`` and ``width`` only (a GEMM's
    rounding may follow its number of rows)."""
    if be.xp is not np:
        return max(1, _BLOCK_BYTES // (24 * width))
    most = max(1, _CHILD_BLOCK_BYTES // (24 * width))
    return max(1, min(most, -(-n // _CHILD_BLOCKS)))


def _children_task(
    be: Backend, Z: Any, par: Any, st: Any, kind: int, slope: float, codes: Any, bit: int,
    WT: Any, bias: Any, Z_next: Any, block: int, big: Any,
) -> Any:  # fmt: skip
    """Block ``i`` of the children (``block`` polygons): their bits into ``codes``, their
    post-activation maps into a scratch block, times ``WT`` plus ``bias`` into ``Z_next``,
    the rows' largest magnitudes into ``big[i]``."""
    n, width = par.shape[0], Z.shape[2]

    def task(i: int) -> None:
        lo, hi = i * block, min((i + 1) * block, n)
        Hb = _scratch(be.xp, "h", (3, hi - lo, width))
        be.kernels.plane_children(Z, par[lo:hi], st[lo:hi], kind, slope, codes[lo:hi], bit, Hb)
        Zb = Z_next[:, lo:hi]
        for r in range(3):  # straight into the next maps (contiguous row ranges)
            row_parallel_matmul(Hb[r], WT, be, out=Zb[r], threads=1)
        Zb[0] += bias
        big[i] = _magnitudes(Zb)

    return task


_LOCAL = threading.local()


def _scratch(xp: Any, slot: str, shape: tuple[int, ...]) -> Any:
    """A C-contiguous float64 array of ``shape``: on the host a view of this thread's
    buffer ``slot``, kept from call to call (a fresh one's pages fault in on every call;
    at most _CHILD_BLOCK_BYTES: the blocks' maps); on a GPU a new array."""
    size = math.prod(shape)
    if xp is not np:
        return xp.empty(shape)
    buf = getattr(_LOCAL, slot, None)
    if buf is None or buf.shape[0] < size:
        buf = np.empty(size)
        setattr(_LOCAL, slot, buf)
    return buf[:size].reshape(shape)


def _steepest(xp: Any, maps: Any, width: int) -> Any:
    """Each neuron's steepest slope ``max_i hypot(d/ds, d/dt)`` over the polygons of
    ``maps``, as ``sqrt(max(gs**2 + gt**2))`` (np.hypot is several times slower), by
    blocks of polygons (the temporaries stay the size of one block); through np.hypot
    where a square would overflow."""
    n = maps.shape[1]
    g2 = xp.zeros(width)
    # on the host, temporaries that stay in the cache and in the allocator's free lists
    # (a fresh 8 MiB one costs a page fault per page on every call); on a GPU, large ones
    scratch = _SMALL_BLOCK_BYTES if xp is np else _BLOCK_BYTES
    block = max(1, scratch // (8 * max(width, 1)))
    with np.errstate(over="ignore", invalid="ignore"):
        for lo in range(0, n, block):
            gs, gt = maps[1, lo : lo + block], maps[2, lo : lo + block]
            sq = gs * gs
            sq += gt * gt
            xp.maximum(g2, sq.max(axis=0), out=g2)
        g = xp.sqrt(g2)
        if not bool(xp.isfinite(g).all()):  # a square overflowed: the careful way
            g = xp.zeros(width)
            for lo in range(0, n, block):
                h = xp.hypot(maps[1, lo : lo + block], maps[2, lo : lo + block]).max(axis=0)
                xp.maximum(g, h, out=g)
    return xp.ascontiguousarray(g)


def _to_backend(be: Backend) -> Any:
    """Host arrays to the backend's array module (the device for CUDA; else as they are)."""
    if be.device == "cpu":
        return lambda a: a
    return lambda a: be.xp.ascontiguousarray(be.xp.asarray(a))


def _vertex_means(mesh: _Mesh) -> Any:
    """The vertex mean of every polygon (an interior point), ``(n, 2)`` C-contiguous."""
    off, corners = mesh.off, mesh.corners
    sizes = np.diff(off).astype(np.float64)
    st = np.empty((mesh.n, 2))
    st[:, 0] = np.add.reduceat(mesh.S[corners], off[:-1]) / sizes
    st[:, 1] = np.add.reduceat(mesh.T[corners], off[:-1]) / sizes
    return st


def _areas(S: Any, T: Any, corners: Any, off: Any) -> Any:
    """Shoelace area of every polygon (positive: counter-clockwise)."""
    n = off.shape[0] - 1
    pc = np.repeat(np.arange(n), np.diff(off))
    nxt = np.arange(corners.shape[0]) + 1
    wrap = nxt == off[pc + 1]
    nxt[wrap] = off[pc[wrap]]
    u, v = corners, corners[nxt]
    return np.add.reduceat(S[u] * T[v] - S[v] * T[u], off[:-1]) / 2


def _class_at(logits: Any, st: Any) -> Any:
    """Predicted class (``Network.predict``'s rule) of each region at points ``st``."""
    L = logits[:, 0] + st[:, :1] * logits[:, 1] + st[:, 1:] * logits[:, 2]
    if L.shape[1] == 1:
        return (L[:, 0] > 0).astype(np.int64)
    return L.argmax(axis=1).astype(np.int64)


# ------------------------------------------------------------------ the engine
def plane_regions(
    net: Network,
    origin: Any,
    directions: Any,
    *,
    extent: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0),
    points: Any = None,
    backend: str | None = None,
) -> PlaneRegions:
    """The exact linear regions of a network on a 2-D slice of its input space.

    The slice is ``x(s, t) = origin + s * directions[0] + t * directions[1]`` for
    ``(s, t)`` in the rectangle ``extent``; every region is a convex polygon on which the
    network is affine (see the module docstring for the algorithm, ties and memory). The
    picture of SplineCam / regioncam and of Hanin & Rolnick, "Deep ReLU networks have
    surprisingly few activation patterns" (NeurIPS 2019), computed exactly in float64.

    Parameters
    ----------
    net : Network
        Piecewise-linear hidden layers (relu, leaky_relu, hardtanh, relu6, threshold); a CUDA
        network selects the CUDA backend. A layer graph (:attr:`Network.layer_graph`:
        convolutions, max pooling, residual blocks) runs op by op
        (:mod:`fastmem._graph_plane`): max pooling's argmax cells are cut out of every
        polygon, ``pattern_hashes`` include their bits; a ``threshold`` activation inside
        a residual block is refused.
    origin : array_like (d,)
    directions : array_like (2, d)
        Not zero, not parallel.
    extent : (s0, s1, t0, t1)
        The rectangle of slice coordinates, ``s0 < s1``, ``t0 < t1``.
    points : array_like (k, d), optional
        Inputs to mark in :meth:`PlaneRegions.plot` (projected onto the plane), e.g. the
        three points of :func:`plane_through`.
    backend : {"cpp", "numba", "cuda"}, optional
        Kernel backend of the cuts, pattern bits and hashes (identical results). CuPy
        ``origin`` / ``directions`` or a CUDA network choose ``"cuda"`` (the GEMMs and
        kernels on the device, the mesh bookkeeping on the host); results are NumPy.

    Returns
    -------
    PlaneRegions

    Raises
    ------
    InputError
        A smooth layer (named; the op of a layer graph), bad shapes, non-finite values,
        zero or parallel directions, an empty or non-finite extent, pre-activations that
        overflow (the layer named), regions that cannot fit in memory (how much they
        would need).

    Examples
    --------
    Two ReLUs ``max(s, 0)`` and ``max(t, 0)`` cut the square into four quadrants:

    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.eye(2), np.ones((1, 2))],
    ...                                   [np.zeros(2), np.zeros(1)])
    >>> r = fastmem.plane_regions(net, np.zeros(2), np.eye(2))
    >>> r.count, float(r.areas.sum())
    (4, 4.0)
    >>> bool((r.pattern_hashes == net.pattern_hashes(r.point(*r.centroids().T))).all())
    True
    """
    if not isinstance(net, Network):
        raise InputError(f"net: must be a fastmem.Network, got {type(net).__name__}")
    graph = net.layer_graph
    smooth = graph.first_smooth() if graph is not None else None
    if smooth is not None:
        raise InputError(
            f"net: {smooth.where} ({smooth.params['activation']}) is not piecewise linear; "
            "plane_regions needs relu, leaky_relu, hardtanh, relu6 or threshold activations"
        )
    net.require_piecewise_linear("plane_regions")
    on_gpu = net.device == "cuda" or any(
        hasattr(a, "__cuda_array_interface__") for a in (origin, directions)
    )
    be = select_backend("cuda" if on_gpu else "cpu", backend)
    host = net.to("cpu")
    if host.dtype != np.float64:
        host = host.astype(np.float64)
    d = host.widths[0]
    o = np.asarray(_host_array(origin, "origin", 1), dtype=np.float64)
    D = np.asarray(_host_array(directions, "directions", 2), dtype=np.float64)
    if o.shape != (d,):
        raise InputError(f"origin: has shape {o.shape} but the network takes {d} inputs")
    if D.shape != (2, d):
        raise InputError(f"directions: has shape {D.shape}, needs (2, {d})")
    with np.errstate(over="ignore"):  # an overflowing norm is refused just below
        n0, n1 = (float(np.linalg.norm(D[i])) for i in range(2))
    if not (math.isfinite(n0) and math.isfinite(n1)):
        raise InputError("directions: their norms overflow (not finite)")
    if n0 == 0 or n1 == 0:
        raise InputError(f"directions: row {0 if n0 == 0 else 1} is zero")
    cos = float(D[0] @ D[1]) / (n0 * n1)
    if not abs(cos) < 1 - 1e-12:
        raise InputError("directions: the two rows are parallel (no plane)")
    ext = _check_extent(extent)
    marks = None
    if points is not None:
        P = np.asarray(_host_array(points, "points", 2), dtype=np.float64)
        if P.shape[1] != d:
            raise InputError(f"points: has {P.shape[1]} columns but the network takes {d}")
        # least-squares coordinates of the projections onto the plane
        G = D @ D.T
        marks = np.linalg.solve(G, D @ (P - o).T).T
    tol = tolerance(ext)
    # BLAS on one thread while its GEMMs alternate with the kernels (its spinning idle
    # threads would take the cores from them); the GEMMs split rows over fixed blocks
    # On a CPU whose kernels two threads may call at once, a dense network's slice runs its
    # kernels and GEMMs as tasks side by side, each on one core (_slice, run_tasks), its
    # kernels held to one thread: no OpenMP team whose idle member would spin-wait against
    # the serial NumPy work in between.
    threads = cpu_threads(be) if kernels_callable_side_by_side(be) else 1
    with contextlib.ExitStack() as stack:
        stack.enter_context(kernels_own_the_cores(be))
        if host.layer_graph is not None:  # conv, pooling, residual blocks
            from ._graph_plane import graph_slice

            words = host.n_pattern_words
            mesh, codes, logits = graph_slice(host.layer_graph, be, o, D, ext, tol, words)
        else:
            if threads >= 2:
                stack.enter_context(kernel_threads(be, 1))
            mesh, codes, logits = _slice(host, be, o, D, ext, tol, threads)
        hashes = be.xp.empty(mesh.n, dtype=np.uint64)
        dcodes = _to_backend(be)(codes)
        rows = max(1, -(-mesh.n // _CHILD_BLOCKS))

        def hash_rows(i: int) -> None:
            lo, hi = i * rows, min((i + 1) * rows, mesh.n)
            be.kernels.hash_patterns(dcodes[lo:hi], hashes[lo:hi])

        if threads >= 2:
            run_tasks(be, -(-mesh.n // rows), hash_rows, threads)
        else:
            be.kernels.hash_patterns(dcodes, hashes)
        hashes = _host(hashes)
        predicted, boundary = _decisions(mesh, logits, tol, be, None, threads)
    V = np.stack([mesh.S, mesh.T], axis=1)
    areas = _areas(mesh.S, mesh.T, mesh.corners, mesh.off)
    return PlaneRegions(
        count=mesh.n,
        vertices=V,
        polygons=Ragged(mesh.corners, mesh.off),
        areas=areas,
        pattern_hashes=hashes,
        patterns=codes,
        predicted=predicted,
        boundary=boundary,
        logits=logits,
        origin=o,
        directions=D,
        extent=ext,
        marks=marks,
        backend=be.name,
        params={"tolerance": tol, "dtype": str(net.dtype), "n_outputs": int(net.widths[-1])},
    )


def _host_array(x: Any, name: str, ndim: int) -> Any:
    if hasattr(x, "__cuda_array_interface__"):
        x = _host(x)  # the slice is computed on the host
    return as_float_array(x, name, ndim=ndim, dtype=np.float64, xp=np)


def _magnitudes(Z: Any) -> Any:
    """The largest magnitude of each of the three rows of maps ``Z`` (a min and a max, no
    temporaries; NaN where a row holds one), as a host array."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array([max(-float(x.min()), float(x.max())) for x in Z])


def _check_maps(
    Z: Any,
    layer: int,
    net: Network,
    ext: tuple[float, float, float, float],
    big: Any = None,
) -> None:
    """``InputError`` naming the layer when its pre-activations can overflow on the slice:
    ``|value| + |s| |d/ds| + |t| |d/dt|`` must stay within ``finfo.max / 8`` (the cuts take
    differences and interpolate between vertices, which must not overflow either).
    ``big``: the rows' largest magnitudes (:func:`_magnitudes`) when known."""
    smax = max(abs(ext[0]), abs(ext[1]))
    tmax = max(abs(ext[2]), abs(ext[3]))
    limit = float(np.finfo(np.float64).max) / 8
    if big is None:
        big = _magnitudes(Z)
    with np.errstate(over="ignore", invalid="ignore"):
        bound = big[0] + smax * big[1] + tmax * big[2]
        ok = bool(bound <= limit)  # also False for NaN
    if not ok:
        what = "the output layer" if layer == net.n_layers - 1 else "a hidden layer"
        raise InputError(
            f"net: layer {layer} ({what}): pre-activations on the slice are not finite (or "
            f"beyond +-{limit:.3g}): origin, directions, extent or the weights "
            "are too large"
        )


def _slice(
    net: Network,
    be: Backend,
    o: Any,
    D: Any,
    ext: tuple[float, float, float, float],
    tol: float,
    threads: int = 1,
) -> tuple[_Mesh, Any, Any]:
    """Cut the extent through every hidden layer: the mesh, its patterns and logit maps.
    ``threads >= 2``: the cuts and the blocks of children and GEMMs side by side
    (:func:`run_tasks`), each on one core (the caller holds the kernels to one thread)."""
    k, xp, dev = be.kernels, be.xp, _to_backend(be)
    s0, s1, t0, t1 = ext
    mesh = _Mesh(
        np.array([s0, s1, s1, s0], dtype=np.float64),
        np.array([t0, t0, t1, t1]),
        np.arange(4, dtype=np.int64),
        np.array([0, 4], dtype=np.int64),
        np.zeros(1, dtype=np.int64),
    )
    n_words = net.n_pattern_words
    codes = np.zeros((1, n_words), dtype=np.uint64)
    # The maps of a layer's pre-activations, (3, n, width): the value at (0, 0), d/ds and
    # d/dt of each polygon's n neurons. Layer 0: one GEMM over origin and directions.
    with np.errstate(over="ignore", invalid="ignore"):
        Z = np.ascontiguousarray((np.concatenate([o[None], D]) @ net.weights[0].T)[:, None, :])
        Z[0] += net.biases[0]
    _check_maps(Z, 0, net, ext)
    Z = dev(Z)
    bit = 0
    n_hidden = net.n_layers - 1
    step = False
    for layer in range(n_hidden):
        kind = ACTIVATIONS[net.activation[layer]]
        slope = net.negative_slopes[layer]
        width = Z.shape[2]
        mesh = _cut_layer(mesh, be, Z, kind, tol, layer, threads)
        # This layer's bits and branch at each polygon's vertex mean (interior, never on a
        # cut, as the segment engine reads them at a piece's midpoint), and the maps of
        # its post-activations: one kernel pass per polygon.
        par = dev(mesh.parent)
        st_host = mesh.means = _vertex_means(mesh)
        st = dev(st_host)
        codes = dev(np.ascontiguousarray(_host(codes)[mesh.parent]))
        step = kind == THRESHOLD
        n = mesh.n
        if step:
            k.plane_children(Z, par, st, kind, slope, codes, bit, xp.empty((3, 0, width)))
            bit += width * bits_per_neuron(kind)
            break
        # The post-activation maps go straight into the next layer's GEMM, a block of
        # polygons at a time: the maps of every polygon at once (3 x width float64 each)
        # would be the largest array of the call (GiBs for wide layers). The blocks follow
        # from n and width only (each GEMM's rounding with them), never from the threads.
        W = net.weights[layer + 1]
        WT = dev(np.ascontiguousarray(W.T))
        Z_next = xp.empty((3, n, W.shape[0]))
        block = _children_block(n, width, be)

        n_blocks = -(-n // block)
        big = np.zeros((n_blocks, 3))
        b = dev(net.biases[layer + 1])
        children = _children_task(
            be, Z, par, st, kind, slope, codes, bit, WT, b, Z_next, block, big
        )
        run_tasks(be, n_blocks, children, threads)
        bit += width * bits_per_neuron(kind)
        Z = Z_next
        # the largest magnitudes over the blocks (NaN if any block has one)
        _check_maps(Z, layer + 1, net, ext, big.max(axis=0))
    if step:
        # Constant after a threshold layer: the whole pattern and the logits at the vertex
        # means, by the forward pass of Network.pattern_hashes.
        X = o + st_host[:, :1] * D[0] + st_host[:, 1:] * D[1]
        codes = xp.zeros((mesh.n, n_words), dtype=np.uint64)
        out = net.to(be.device)._propagate(dev(X), be, codes=codes, output=True)
        logits = np.zeros((mesh.n, 3, out.shape[1]))
        logits[:, 0] = _host(out)
        return mesh, _host(codes), logits
    return mesh, _host(codes), np.ascontiguousarray(_host(Z).transpose(1, 0, 2))


# ------------------------------------------------------------------ decisions
def _decisions(
    mesh: _Mesh,
    logits: Any,
    tol: float,
    be: Backend | None = None,
    st: Any = None,
    threads: int = 1,
) -> tuple[Any, Ragged]:
    """Predicted class where constant (else -1) and the decision boundary's pieces.

    ``be``: a CPU backend's kernel set decides the regions (``plane_decide``; by blocks side
    by side when ``threads >= 2``); without one (the CUDA backend, whose mesh is on the
    host) NumPy does, with the same operations (identical results). ``st``: the regions'
    vertex means, when known."""
    S, T, corners, off = mesh.S, mesh.T, mesh.corners, mesh.off
    n_out = logits.shape[2]
    # A binary network's single logit l decides by l > 0: the same as two logits (0, l).
    L = logits if n_out > 1 else np.concatenate([np.zeros_like(logits), logits], axis=2)
    L = np.ascontiguousarray(L)
    if st is None:
        st = _vertex_means(mesh) if mesh.means is None else mesh.means
    n, classes = L.shape[0], L.shape[2]
    # top class k is constant on a region when l_k >= l_m - tol |grad(l_k - l_m)| at every
    # corner (a convex polygon: then everywhere)
    k = be.kernels if be is not None and be.xp is np else None
    if k is not None and hasattr(k, "plane_decide"):
        top = np.empty(n, dtype=np.int64)
        flags = np.empty(n, dtype=np.uint8)
        rows = max(1, -(-n // _CHILD_BLOCKS))

        def decide(i: int) -> None:
            lo, hi = i * rows, min((i + 1) * rows, n)
            k.plane_decide(L[lo:hi], S, T, corners, off[lo : hi + 1], st[lo:hi], tol,
                           top[lo:hi], flags[lo:hi])  # fmt: skip

        run_tasks(be, -(-n // rows), decide, threads)
        const = (flags & 1) != 0
        any_tie = (flags & 2) != 0
    else:
        top = _class_at(logits, st)
        gm, tg, _ = _margins(mesh, L, top, tol, np.arange(n))
        # column by column: a reduction along the short axis of many rows is slow in NumPy
        ok = np.ones(gm.shape[0], dtype=bool)
        for c in range(classes):
            ok &= gm[:, c] >= -tg[:, c]
        const = np.minimum.reduceat(ok.astype(np.int8), off[:-1]) > 0
        tie = np.abs(gm) <= tg
        tie[np.arange(tie.shape[0]), top[mesh.poly_of_corner()]] = False
        tie_any = np.zeros(tie.shape[0], dtype=bool)
        for c in range(classes):
            tie_any |= tie[:, c]
        any_tie = np.add.reduceat(tie_any.astype(np.int64), off[:-1]) >= 2
    predicted = np.where(const, top, -1).astype(np.int64)
    # The boundary: per region and pair of classes (k, m), the part of the line
    # l_k = l_m inside the region where k and m are the top two. Constant regions only
    # meet it along a side where the top class ties with another at two corners or more
    # (rare: counted per class only where two corners tie at all); mixed regions (few:
    # those the boundary crosses) try every pair.
    some = np.flatnonzero(const & any_tie)
    cand = [np.zeros((0, 3), dtype=np.int64)]
    if some.size:
        gm, tg, local = _margins(mesh, L, top, tol, some)
        tie = np.abs(gm) <= tg
        tie[np.arange(tie.shape[0]), top[some][local]] = False
        sz = np.diff(off)[some]
        tied = np.add.reduceat(tie.astype(np.int64), np.cumsum(sz) - sz, axis=0)
        sp, cm = np.nonzero(tied >= 2)  # (some, classes)
        cp = some[sp]
        cand.append(np.stack([cp, top[cp], cm], axis=1))
    mixed = np.flatnonzero(~const)
    pa, pb = np.triu_indices(classes, 1)  # the pairs (a, b), a < b, in lexicographic order
    sizes_all = np.diff(off)
    # every pair at once, by blocks of mixed regions (temporaries of _BLOCK_BYTES or so)
    per = max(1, 8 * len(pa) * int(sizes_all.max(initial=1)))
    block = max(1, _BLOCK_BYTES // per)
    hits = []
    for lo in range(0, mixed.size, block):
        mb = mixed[lo : lo + block]
        sizes = sizes_all[mb]
        ci = _ragged_index(off[mb], sizes)
        moff = np.cumsum(sizes) - sizes
        local = np.repeat(np.arange(mb.shape[0]), sizes)
        pm = mb[local]
        Lm = L[pm, 0] + S[corners[ci]][:, None] * L[pm, 1] + T[corners[ci]][:, None] * L[pm, 2]
        # the line l_a = l_b meets the region: corners strictly on both sides, or on it at
        # two corners (along a side); its tolerance per region, then per corner
        g = Lm[:, pa] - Lm[:, pb]
        Ls, Lt = L[mb, 1], L[mb, 2]
        eps = (tol * np.hypot(Ls[:, pa] - Ls[:, pb], Lt[:, pa] - Lt[:, pb]))[local]
        pos = np.maximum.reduceat((g > eps).astype(np.int8), moff, axis=0) > 0
        neg = np.maximum.reduceat((g < -eps).astype(np.int8), moff, axis=0) > 0
        on = np.add.reduceat((np.abs(g) <= eps).astype(np.int64), moff, axis=0) >= 2
        hits.append(((pos & neg) | on).T)  # (pairs, regions of the block)
    if hits:
        pi, mi = np.nonzero(np.concatenate(hits, axis=1))  # pair by pair, regions in order
        cand.append(np.stack([mixed[mi], pa[pi], pb[pi]], axis=1))
    segs, keys = _pair_segments(mesh, L, np.concatenate(cand).astype(np.int64), tol)
    return predicted, _polylines(segs, keys)


def _margins(mesh: _Mesh, L: Any, top: Any, tol: float, regions: Any) -> tuple[Any, Any, Any]:
    """At the corners of ``regions`` (in order): the margins ``l_top - l_m`` of every class
    ``m`` (``(corners, classes)``), their tolerances ``tol |grad(l_top - l_m)|`` and each
    corner's index into ``regions``."""
    off = mesh.off
    sz = np.diff(off)[regions]
    local = np.repeat(np.arange(regions.shape[0]), sz)
    ci = mesh.corners[_ragged_index(off[regions], sz)]
    Lr = L[regions]
    Dm = Lr[np.arange(regions.shape[0]), :, top[regions]][:, :, None] - Lr  # l_k - l_m maps
    tolG = tol * np.hypot(Dm[:, 1], Dm[:, 2])  # (regions, classes)
    cs, ct = mesh.S[ci][:, None], mesh.T[ci][:, None]
    G = Dm[local]  # one gather of each corner's region rows
    gm = G[:, 0] + cs * G[:, 1] + ct * G[:, 2]  # (corners, classes)
    return gm, tolG[local], local


def _polylines(segs: Any, keys: Any) -> Ragged:
    """Join the boundary's straight pieces into polylines: pieces meet where their ends
    have the same key (a vertex, or a side crossed by the same pair of classes); a
    polyline ends where the boundary ends or branches (where three classes meet). A piece
    found twice (along a side, from both regions) is kept once. A loop over the pieces
    (the boundary's, not the regions')."""
    interior = iter(range(-1, -(2 * segs.shape[0] + 2), -1))
    ends: list[tuple[Any, Any]] = []
    seen: set[frozenset[Any]] = set()
    pieces: list[int] = []
    for i in range(segs.shape[0]):
        k0 = tuple(keys[i, 0].tolist()) if keys[i, 0, 0] != 2 else next(interior)
        k1 = tuple(keys[i, 1].tolist()) if keys[i, 1, 0] != 2 else next(interior)
        if k0 == k1:
            continue
        pair = frozenset((k0, k1))
        if pair in seen:
            continue
        seen.add(pair)
        pieces.append(i)
        ends.append((k0, k1))
    at: dict[Any, list[int]] = {}
    for q, (k0, k1) in enumerate(ends):
        at.setdefault(k0, []).append(q)
        at.setdefault(k1, []).append(q)
    used = [False] * len(ends)
    lines: list[Any] = []

    def walk(q: int, key: Any) -> None:
        # from end `key` of piece q, along pieces that continue through degree-2 keys
        pts = []
        while True:
            used[q] = True
            k0, k1 = ends[q]
            seg = segs[pieces[q]]
            a, b = (seg[0], seg[1]) if k0 == key else (seg[1], seg[0])
            if not pts:
                pts.append(a)
            pts.append(b)
            key = k1 if k0 == key else k0
            nxt = [r for r in at[key] if not used[r]]
            if len(at[key]) != 2 or not nxt:
                break
            q = nxt[0]
        lines.append(np.array(pts))

    for key, qs in at.items():  # open polylines: from their ends (degree != 2)
        if len(qs) != 2:
            for q in qs:
                if not used[q]:
                    walk(q, key)
    for q in range(len(ends)):  # closed loops
        if not used[q]:
            walk(q, ends[q][0])
    sizes = [ln.shape[0] for ln in lines]
    values = np.concatenate(lines) if lines else np.zeros((0, 2))
    return Ragged(values, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))


def _pair_segments(mesh: _Mesh, L: Any, cand: Any, tol: float) -> Any:
    """The pieces of ``l_a = l_b`` inside region ``i`` where ``a`` and ``b`` are on top, for
    each candidate row ``(i, a, b)`` of ``cand``: ``(q, 2, 2)`` segment ends.

    Per candidate: the line meets the convex region in the segment between its extreme
    points along the line (corners on it, within ``tol``, and crossings of sides whose
    ends are strictly on both sides), clipped to where ``a`` is at least every other class.
    """
    none = (np.zeros((0, 2, 2)), np.zeros((0, 2, 4), dtype=np.int64))
    if cand.shape[0] == 0:
        return none
    S, T, corners, off = mesh.S, mesh.T, mesh.corners, mesh.off
    ci, ca, cb = cand[:, 0], cand[:, 1], cand[:, 2]
    nc = ci.shape[0]
    rows = np.arange(nc)
    M = L[ci]  # (candidates, 3, classes)
    g0 = M[rows, 0, ca] - M[rows, 0, cb]
    gs = M[rows, 1, ca] - M[rows, 1, cb]
    gt = M[rows, 2, ca] - M[rows, 2, cb]
    eps = tol * np.hypot(gs, gt)
    sizes = np.diff(off)[ci]
    k = _ragged_index(off[ci], sizes)  # the candidates' corners, candidate by candidate
    cp = np.repeat(rows, sizes)
    start = np.cumsum(sizes) - sizes
    nxt = np.arange(k.shape[0]) + 1
    wrap = nxt == (start + sizes)[cp]
    nxt[wrap] = start[cp[wrap]]
    ps, pt = S[corners[k]], T[corners[k]]
    g = (g0[cp] + ps * gs[cp]) + pt * gt[cp]
    g2, qs, qt = g[nxt], ps[nxt], pt[nxt]
    e = eps[cp]
    zero = np.abs(g) <= e
    cross = ((g > e) & (g2 < -e)) | ((g < -e) & (g2 > e))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(cross, g / (g - g2), 0.0)
    # at most one point per corner: the corner on the line, or the crossing after it
    xs = np.where(zero, ps, ps + r * (qs - ps))
    xt = np.where(zero, pt, pt + r * (qt - pt))
    valid = zero | cross
    lam = xs * -gt[cp] + xt * gs[cp]  # position along the line
    # what each point is: a vertex (kind 0, its id), or the crossing of side (u, v) by the
    # line of the pair (kind 1): the neighbour across the side finds the same key
    u, v = corners[k], corners[k[nxt]]
    pkey = np.stack(
        [
            np.where(zero, 0, 1),
            np.where(zero, u, np.minimum(u, v)),
            np.where(zero, -1, np.maximum(u, v)),
            np.where(zero, -1, ca[cp] * L.shape[2] + cb[cp]),
        ],
        axis=1,
    )
    vi = np.flatnonzero(valid)
    if vi.size == 0:
        return none
    order = vi[np.lexsort((lam[vi], cp[vi]))]
    oc = cp[order]
    n_pts = np.bincount(oc, minlength=nc)
    first = np.cumsum(n_pts) - n_pts
    ok = (n_pts >= 2) & (eps > 0)
    lo_i = order[np.minimum(first, order.shape[0] - 1)]
    hi_i = order[np.maximum(first + n_pts - 1, 0)]
    p0 = np.stack([xs[lo_i], xt[lo_i]], axis=1)
    p1 = np.stack([xs[hi_i], xt[hi_i]], axis=1)
    # clip to where a (hence b) is at least every other class c
    v0 = M[:, 0] + p0[:, :1] * M[:, 1] + p0[:, 1:] * M[:, 2]  # (candidates, classes)
    v1 = M[:, 0] + p1[:, :1] * M[:, 1] + p1[:, 1:] * M[:, 2]
    h0 = v0[rows, ca][:, None] - v0
    h1 = v1[rows, ca][:, None] - v1
    other = np.ones_like(h0, dtype=bool)
    other[rows, ca] = False
    other[rows, cb] = False
    with np.errstate(divide="ignore", invalid="ignore"):
        f = h0 / (h0 - h1)
    lo = np.where(other & (h0 < 0) & (h1 >= 0), f, 0.0).max(axis=1)
    hi = np.where(other & (h1 < 0) & (h0 >= 0), f, 1.0).min(axis=1)
    empty = (other & (h0 < 0) & (h1 < 0)).any(axis=1)
    length = np.hypot(*(p1 - p0).T) * (hi - lo)
    keep = ok & ~empty & (hi > lo) & (length > tol)
    a0 = p0 + lo[:, None] * (p1 - p0)
    a1 = p0 + hi[:, None] * (p1 - p0)
    # an end clipped by a third class lies inside the region (kind 2: joins nothing)
    k0 = np.where((lo > 0)[:, None], np.array([2, -1, -1, -1]), pkey[lo_i])
    k1 = np.where((hi < 1)[:, None], np.array([2, -1, -1, -1]), pkey[hi_i])
    return np.stack([a0[keep], a1[keep]], axis=1), np.stack([k0[keep], k1[keep]], axis=1)
