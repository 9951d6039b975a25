"""fastmem.plane: exact 2-D slices against independent NumPy references.

References: the packed patterns of tests/reference.py (a plain forward pass) at sampled
points, point-in-convex-polygon tests written here, the count of a line arrangement
(1 + lines + crossings, for one hidden layer in general position), the segment walk of
along_segments, and a brute-force grid.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import hash_rows, packed_patterns, preactivations
from segment_reference import random_net

import fastmem
from fastmem import InputError, Network

ACTS = ["relu", "leaky_relu", "hardtanh", "relu6", "threshold"]


# ------------------------------------------------------------------ helpers (independent)
def _net(Ws, bs, acts, slopes):
    return Network.from_arrays(Ws, bs, acts, negative_slope=slopes or 0.01)


def _inside(r, pts, eps=1e-12):
    """(n_points, count) boolean: point strictly inside polygon (every side's cross product
    above eps times the side's length), by plain NumPy over every polygon."""
    V, off, idx = r.vertices, r.polygons.offsets, r.polygons.values
    out = np.zeros((pts.shape[0], r.count), dtype=bool)
    for i in range(r.count):
        P = V[idx[off[i] : off[i + 1]]]
        Q = np.roll(P, -1, axis=0)
        e = Q - P
        ln = np.hypot(e[:, 0], e[:, 1])
        keep = ln > 0
        P, e, ln = P[keep], e[keep], ln[keep]
        cr = e[:, 0] * (pts[:, 1:2] - P[:, 1]) - e[:, 1] * (pts[:, 0:1] - P[:, 0])
        out[:, i] = (cr > eps * ln).all(axis=1)
    return out


def _segments(r):
    """The boundary's polylines as (q, 2, 2) consecutive point pairs."""
    b = r.boundary
    pairs = [np.stack([b[i][:-1], b[i][1:]], axis=1) for i in range(len(b))]
    return np.concatenate(pairs) if pairs else np.zeros((0, 2, 2))


def _ref_patterns(Ws, bs, acts, slopes, X):
    zs, _ = preactivations(Ws, bs, acts, slopes, X)
    return packed_patterns(zs, acts)


def _random_case(seed, widths, act, d_extent=2.0):
    rng = np.random.default_rng(seed)
    Ws, bs, acts, slopes = random_net(rng, widths, act, bias_scale=0.5)
    o = rng.normal(size=widths[0])
    D = rng.normal(size=(2, widths[0]))
    ext = (-d_extent, d_extent * 0.7, -d_extent * 0.8, d_extent)
    return Ws, bs, acts, slopes, o, D, ext


def _check_tiling(r, Ws, bs, acts, slopes, rng, n_samples=400):
    s0, s1, t0, t1 = r.extent
    area = (s1 - s0) * (t1 - t0)
    assert r.count == len(r.polygons) == r.areas.shape[0] == r.pattern_hashes.shape[0]
    assert abs(float(r.areas.sum()) - area) <= 1e-12 * area
    # counter-clockwise and convex: every turn is a left turn (or straight)
    V, off, idx = r.vertices, r.polygons.offsets, r.polygons.values
    for i in range(r.count):
        P = V[idx[off[i] : off[i + 1]]]
        assert P.shape[0] >= 3
        e = np.roll(P, -1, axis=0) - P
        f = np.roll(e, -1, axis=0)
        turn = e[:, 0] * f[:, 1] - e[:, 1] * f[:, 0]
        scale = np.hypot(*e.T) * np.hypot(*f.T)
        assert (turn >= -1e-9 * scale).all(), i
    assert (r.areas > 0).all()
    # conforming: a side inside the extent is shared by exactly two polygons (same two
    # vertices, no vertex of one in the middle of the other's side), a side on its border
    # belongs to one
    sides: dict[tuple[int, int], int] = {}
    for i in range(r.count):
        c = idx[off[i] : off[i + 1]].tolist()
        for a, b in zip(c, c[1:] + c[:1], strict=True):
            key = (min(a, b), max(a, b))
            sides[key] = sides.get(key, 0) + 1
    for (a, b), n in sides.items():
        pa, pb = V[a], V[b]
        on_border = any(
            pa[axis] == pb[axis] == bound for axis, bound in ((0, s0), (0, s1), (1, t0), (1, t1))
        )
        assert n == (1 if on_border else 2), (pa, pb, n)
    assert len({tuple(v) for v in V.tolist()}) == V.shape[0]  # no duplicate vertices
    # random points fall in exactly one polygon (those within 1e-12 of a side in none:
    # not sampled in practice), and their pattern is that polygon's
    pts = np.column_stack([rng.uniform(s0, s1, n_samples), rng.uniform(t0, t1, n_samples)])
    inside = _inside(r, pts)
    assert (inside.sum(axis=1) == 1).all()
    which = inside.argmax(axis=1)
    ref = _ref_patterns(Ws, bs, acts, slopes, r.point(pts[:, 0], pts[:, 1]))
    np.testing.assert_array_equal(r.patterns[which], ref)
    # each polygon's hash at its vertex mean (interior): the documented hash
    c = r.centroids()
    ref_c = _ref_patterns(Ws, bs, acts, slopes, r.point(c[:, 0], c[:, 1]))
    np.testing.assert_array_equal(r.patterns, ref_c)
    np.testing.assert_array_equal(r.pattern_hashes, hash_rows(ref_c))


# ------------------------------------------------------------------ known answers
def test_quadrants_and_public_api() -> None:
    net = Network.from_arrays([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    r = fastmem.plane_regions(net, np.zeros(2), np.eye(2))
    assert isinstance(r, fastmem.PlaneRegions)
    assert r.count == 4 and r.backend in ("cpp", "numba")
    np.testing.assert_array_equal(r.areas, np.ones(4))
    # the four quadrants: centroid signs give the patterns (bit 0: s > 0, bit 1: t > 0)
    c = r.centroids()
    expected = (c[:, 0] > 0).astype(np.uint64) | ((c[:, 1] > 0).astype(np.uint64) << 1)
    np.testing.assert_array_equal(r.patterns[:, 0], expected)
    # relu(s) + relu(t) > 0 except on the quadrant s, t < 0: there class 0, else 1
    np.testing.assert_array_equal(r.predicted, np.where(expected == 0, 0, 1))
    # the vertices are shared: 3 x 3 grid points, no duplicates
    assert r.vertices.shape == (9, 2)
    assert len({tuple(v) for v in r.vertices.tolist()}) == 9
    # the boundary runs along the negative axes (ties of the single logit with 0): one
    # polyline through the origin, joined at that shared vertex
    assert len(r.boundary) == 1
    line = r.boundary[0]
    if line[0, 0] != -1:
        line = line[::-1]
    np.testing.assert_array_equal(line, [[-1, 0], [0, 0], [0, -1]])


def test_ties_three_lines_through_one_point() -> None:
    """Lines s = 0, t = 0, s = t meet at the origin: 6 regions, the origin one vertex."""
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    net = Network.from_arrays([W, np.ones((1, 3))], [np.zeros(3), np.zeros(1)])
    r = fastmem.plane_regions(net, np.zeros(2), np.eye(2))
    assert r.count == 6
    assert sorted(np.round(r.areas * 4).astype(int).tolist()) == [2, 2, 2, 2, 4, 4]
    assert int((np.abs(r.vertices).max(axis=1) == 0).sum()) == 1


def test_hardtanh_two_lines_per_neuron_and_scaled_extent() -> None:
    net = Network.from_arrays([np.array([[1.0, 0.0]]), np.ones((1, 1))], [np.zeros(1)] * 2,
                              "hardtanh")  # fmt: skip
    r = fastmem.plane_regions(net, np.zeros(2), np.eye(2), extent=(-3, 3, 0, 1))
    assert r.count == 3
    np.testing.assert_allclose(np.sort(r.areas), [2.0, 2.0, 2.0])
    # low bit z > -1, high bit z > 1 -> patterns 0b00, 0b01, 0b11 from left to right
    order = np.argsort(r.centroids()[:, 0])
    np.testing.assert_array_equal(r.patterns[order, 0], [0, 1, 3])


def test_huge_extents_give_finite_areas_or_are_refused() -> None:
    """Areas are sums of products of two coordinates: up to |s|, |t| = 1e150 they are
    finite; beyond, the extent is refused (it gave NaN / inf areas)."""
    net = Network.from_arrays([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    E = 1e150
    r = fastmem.plane_regions(net, np.zeros(2), np.eye(2), extent=(-E, E, -E, E))
    assert r.count == 4 and np.isfinite(r.areas).all()
    np.testing.assert_allclose(r.areas, E * E, rtol=1e-12)
    with pytest.raises(InputError, match=r"extent: coordinates up to 1e\+150 in magnitude"):
        fastmem.plane_regions(net, np.zeros(2), np.eye(2), extent=(-1e160, 1.0, 0.0, 1.0))


@pytest.mark.parametrize("seed", range(4))
def test_one_layer_matches_the_line_arrangement(seed: int) -> None:
    """One hidden layer: the regions of n lines in general position in the rectangle are
    1 + (lines meeting it) + (crossings inside it)."""
    rng = np.random.default_rng(seed)
    n = 12
    W = rng.normal(size=(n, 2))
    b = rng.normal(size=n)
    net = Network.from_arrays([W, rng.normal(size=(2, n))], [b, np.zeros(2)])
    ext = (-1.5, 1.0, -1.0, 1.3)
    r = fastmem.plane_regions(net, np.zeros(2), np.eye(2), extent=ext)
    corners = np.array([[ext[0], ext[2]], [ext[1], ext[2]], [ext[1], ext[3]], [ext[0], ext[3]]])
    vals = corners @ W.T + b
    meets = int(((vals.min(axis=0) < 0) & (vals.max(axis=0) > 0)).sum())
    crossings = 0
    for i in range(n):
        for j in range(i + 1, n):
            p = np.linalg.solve(W[[i, j]], -b[[i, j]])
            crossings += int(ext[0] < p[0] < ext[1] and ext[2] < p[1] < ext[3])
    assert r.count == 1 + meets + crossings
    assert len(np.unique(r.pattern_hashes)) == r.count


def test_sawtooth_strips() -> None:
    """Telgarsky's sawtooth on the first coordinate: 2**depth vertical strips of equal
    area, every deeper layer's kinks exactly on the earlier ones (ties at every cut)."""
    for depth in (1, 3, 6):
        saw = fastmem.sawtooth(depth)
        Ws, bs = [np.asarray(w) for w in saw.weights], [np.asarray(b) for b in saw.biases]
        Ws[0] = np.concatenate([Ws[0], np.zeros((Ws[0].shape[0], 1))], axis=1)  # t unused
        net = Network.from_arrays(Ws, bs, list(saw.activation))
        r = fastmem.plane_regions(net, np.zeros(2), np.eye(2), extent=(0, 1, 0, 1))
        assert r.count == 2**depth
        np.testing.assert_allclose(r.areas, 2.0**-depth, rtol=1e-12)
        assert r.vertices.shape[0] == 2 * (2**depth + 1)  # no sliver, no stray vertex


@pytest.mark.parametrize("seed", range(3))
def test_lattice_lines_with_many_ties(seed: int) -> None:
    """Lines with small integer coefficients meet three and more at a time at lattice
    points. Reference: a line arrangement in a convex region has 1 + lines + sum over
    its distinct inner crossing points p of (lines through p - 1) faces (exact
    rational arithmetic)."""
    from fractions import Fraction

    rng = np.random.default_rng(seed)
    coeffs = {(1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2), (2, -1), (1, -2)}
    lines = set()
    while len(lines) < 14:
        a, b = sorted(coeffs)[rng.integers(len(coeffs))]
        lines.add((a, b, int(rng.integers(-2, 3))))
    lines = sorted(lines)
    W = np.array([[a, b] for a, b, _ in lines], dtype=float)
    bias = np.array([c for _, _, c in lines], dtype=float)
    net = Network.from_arrays([W, np.ones((1, len(lines)))], [bias, np.zeros(1)])
    lo, hi = -2.5, 2.5
    r = fastmem.plane_regions(net, np.zeros(2), np.eye(2), extent=(lo, hi, lo, hi))
    points: dict[tuple[Fraction, Fraction], set[int]] = {}
    for i, (a1, b1, c1) in enumerate(lines):
        for j in range(i + 1, len(lines)):
            a2, b2, c2 = lines[j]
            det = a1 * b2 - a2 * b1
            if det == 0:
                continue
            x = Fraction(-c1 * b2 + c2 * b1, det)
            y = Fraction(-a1 * c2 + a2 * c1, det)
            if lo < x < hi and lo < y < hi:
                points.setdefault((x, y), set()).update((i, j))
    # every line meets the square's inside (|c| <= 2 < 2.5 |(a, b)|)
    expected = 1 + len(lines) + sum(len(v) - 1 for v in points.values())
    assert r.count == expected
    assert len(np.unique(r.pattern_hashes)) == r.count
    # each crossing point is one vertex, shared by 2 k polygons
    V = r.vertices
    for x, y in points:
        near = np.hypot(V[:, 0] - float(x), V[:, 1] - float(y)) < 1e-9
        assert near.sum() == 1, (x, y)
    _check_tiling(r, [W, np.ones((1, len(lines)))], [bias, np.zeros(1)], ["relu"], [0.0],
                  rng)  # fmt: skip


# ------------------------------------------------------------------ random networks
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("widths", [(2, 6, 1), (3, 8, 8, 3), (4, 6, 5, 7, 4)])
def test_tiling_and_patterns_random(act: str, widths: tuple[int, ...], backend: str) -> None:
    Ws, bs, acts, slopes, o, D, ext = _random_case(sum(widths) + len(act), widths, act)
    r = fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, D, extent=ext, backend=backend)
    assert r.backend == backend
    rng = np.random.default_rng(1)
    _check_tiling(r, Ws, bs, acts, slopes, rng)
    # one polygon per pattern (the set of a pattern is convex in the plane)
    assert len(np.unique(r.pattern_hashes)) == r.count
    # logits: the affine map per region equals the forward pass at the vertex means
    c = r.centroids()
    _, out = preactivations(Ws, bs, acts, slopes, r.point(c[:, 0], c[:, 1]))
    L = r.logits[:, 0] + c[:, :1] * r.logits[:, 1] + c[:, 1:] * r.logits[:, 2]
    np.testing.assert_allclose(L, out, rtol=1e-9, atol=1e-9)


def test_backends_identical() -> None:
    names = [n for n, info in fastmem.backends().items() if info.available]
    if len(names) < 2:
        pytest.skip(f"only {names} available here: nothing to compare across backends")
    Ws, bs, acts, slopes, o, D, ext = _random_case(7, (5, 16, 16, 4), "relu")
    net = _net(Ws, bs, acts, slopes)
    rs = [fastmem.plane_regions(net, o, D, extent=ext, backend=n) for n in names]
    for r in rs[1:]:
        np.testing.assert_array_equal(r.vertices, rs[0].vertices)
        np.testing.assert_array_equal(r.polygons.values, rs[0].polygons.values)
        np.testing.assert_array_equal(r.pattern_hashes, rs[0].pattern_hashes)
        np.testing.assert_array_equal(r.logits, rs[0].logits)


def test_kernels_check_their_contract(backend: str) -> None:
    """The kernels refuse what the Python layer never passes (a bug, not an input)."""
    if backend == "cuda":
        pytest.skip("the CUDA kernels take device arrays (test_cuda_kernels_refuse_host_arrays)")
    from fastmem._backend import select_backend

    k = select_backend("cpu", backend).kernels
    S = np.array([0.0, 1.0, 1.0, 0.0])
    T = np.array([0.0, 0.0, 1.0, 1.0])
    maps = np.zeros((3, 1, 2))
    owner = np.zeros(4, dtype=np.int64)
    corners = np.arange(4, dtype=np.int64)
    off = np.array([0, 4], dtype=np.int64)
    tolz = np.zeros(2)
    counts = np.zeros((1, 3), dtype=np.int64)
    k.plane_cut_count(S, T, maps, owner, corners, off, 0, tolz, counts)
    np.testing.assert_array_equal(counts, [[1, 4, 0]])  # constant: not cut
    bad = [
        (S, T, maps, owner, np.array([0, 1, 2, 9]), off, 0, tolz, counts),  # corner range
        (S, T, maps, owner, corners, np.array([0, 2, 4]), 0, tolz, counts),  # 2-gons
        (S, T, maps, owner, corners, off, 7, tolz, counts),  # kind
        (S, T, maps, owner + 1, corners, off, 0, tolz, counts),  # owner range
        (S, T, maps, owner, corners, off, 0, np.zeros(3), counts),  # tolz width
        (S, T, maps.astype(np.float32), owner, corners, off, 0, tolz, counts),  # dtype
    ]
    for args in bad:
        with pytest.raises((ValueError, TypeError)):
            k.plane_cut_count(*args)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6"])
def test_device_path_on_the_host(act: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA backend's orchestration (arrays through ``xp``, results back to the host),
    run here with NumPy for ``xp`` and the C++ kernels in place of ``fastmem._cuda``: the
    same results as the CPU path, bit for bit."""
    import fastmem.plane as plane_mod
    from fastmem._backend import Backend, select_backend

    cpu = select_backend("cpu")
    Ws, bs, acts, slopes, o, D, ext = _random_case(21, (4, 12, 10, 3), act)
    net = _net(Ws, bs, acts, slopes)
    want = fastmem.plane_regions(net, o, D, extent=ext, backend=cpu.name)
    fake = Backend(name="cuda", kernels=cpu.kernels, xp=np)
    monkeypatch.setattr(plane_mod, "select_backend", lambda device, backend=None: fake)
    got = fastmem.plane_regions(net, o, D, extent=ext)
    assert got.backend == "cuda"
    for name in ("vertices", "areas", "pattern_hashes", "patterns", "predicted", "logits"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    np.testing.assert_array_equal(got.polygons.values, want.polygons.values)
    np.testing.assert_array_equal(got.boundary.values, want.boundary.values)


def test_one_pass_cut_equals_count_then_emit(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``plane_cut`` (one pass) and ``plane_cut_count`` + ``plane_cut_emit`` (the CUDA
    protocol) give the same mesh, layer by layer, on every CPU kernel set."""
    if backend == "cuda":
        pytest.skip("the CUDA kernels count, then emit (no one-pass cut)")
    import types

    import fastmem.plane as plane_mod
    from fastmem._backend import Backend, select_backend

    be = select_backend("cpu", backend)
    two = Backend(
        name=be.name,
        kernels=types.SimpleNamespace(
            plane_cut_count=be.kernels.plane_cut_count, plane_cut_emit=be.kernels.plane_cut_emit
        ),
        xp=np,
    )
    seen = []
    cut = plane_mod._cut_layer

    def both(mesh, be_, maps, kind, tol, layer, threads=1):
        one = cut(mesh, be_, maps, kind, tol, layer, threads)
        other = cut(mesh, two, maps, kind, tol, layer)
        for name in ("S", "T", "corners", "off", "parent"):
            np.testing.assert_array_equal(getattr(one, name), getattr(other, name))
        seen.append(one.n)
        return one

    monkeypatch.setattr(plane_mod, "_cut_layer", both)
    Ws, bs, acts, slopes, o, D, ext = _random_case(23, (4, 14, 12, 3), "hardtanh")
    fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, D, extent=ext, backend=backend)
    assert len(seen) == 2 and seen[-1] > seen[0] > 1


CUDA = fastmem.backends()["cuda"]


@pytest.mark.skipif(not CUDA.available, reason=f"cuda: {CUDA.reason}")
def test_cupy_inputs_choose_cuda() -> None:
    import cupy as cp

    Ws, bs, acts, slopes, o, D, ext = _random_case(22, (5, 16, 16, 4), "relu")
    net = _net(Ws, bs, acts, slopes)
    want = fastmem.plane_regions(net, o, D, extent=ext, backend="cpp")
    got = fastmem.plane_regions(net.to("cuda"), cp.asarray(o), cp.asarray(D), extent=ext)
    assert got.backend == "cuda" and isinstance(got.vertices, np.ndarray)
    np.testing.assert_array_equal(got.vertices, want.vertices)
    np.testing.assert_array_equal(got.polygons.values, want.polygons.values)
    np.testing.assert_array_equal(got.pattern_hashes, want.pattern_hashes)
    np.testing.assert_array_equal(got.logits, want.logits)


@pytest.mark.skipif(not CUDA.available, reason=f"cuda: {CUDA.reason}")
def test_cuda_kernels_refuse_host_arrays() -> None:
    from fastmem._backend import select_backend

    k = select_backend("cuda").kernels
    S = np.array([0.0, 1.0, 1.0, 0.0])
    with pytest.raises((ValueError, TypeError)):
        k.plane_cut_count(S, S, np.zeros((3, 1, 2)), np.zeros(4, dtype=np.int64),
                          np.arange(4), np.array([0, 4]), 0, np.zeros(2),
                          np.zeros((1, 3), dtype=np.int64))  # fmt: skip


def test_results_do_not_depend_on_the_threads(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One kernel thread, the machine's threads, and three threads side by side (the cut
    by ranges of parents, children and GEMMs by blocks, hashes by rows: run_tasks) give
    bitwise the same slice."""
    if backend == "cuda":
        pytest.skip("CPU threads: the CUDA kernels run one GPU thread per polygon")
    import fastmem.plane as plane_mod
    from fastmem._backend import select_backend
    from fastmem._threads import kernel_threads, kernels_callable_side_by_side

    # wide enough that the second layer's cut has a few hundred parents to share out
    Ws, bs, acts, slopes, o, D, ext = _random_case(8, (6, 40, 40, 24, 5), "leaky_relu", 4.0)
    net = _net(Ws, bs, acts, slopes)
    be = select_backend("cpu", backend)
    with kernel_threads(be, 1):
        one = fastmem.plane_regions(net, o, D, extent=ext, backend=backend)
    many = fastmem.plane_regions(net, o, D, extent=ext, backend=backend)
    results = [many]
    if kernels_callable_side_by_side(be):
        ranges: list[int] = []
        cut = plane_mod._plane_cut

        def counting(k, be_, args, n, nv, threads):
            ranges.append(min(plane_mod._CUT_CHUNKS_PER_THREAD * threads,
                              n // plane_mod._CUT_MIN_PARENTS))  # fmt: skip
            return cut(k, be_, args, n, nv, threads)

        monkeypatch.setattr(plane_mod, "cpu_threads", lambda be_: 3)
        monkeypatch.setattr(plane_mod, "_plane_cut", counting)
        results.append(fastmem.plane_regions(net, o, D, extent=ext, backend=backend))
        assert max(ranges) >= 2  # a cut was shared out by ranges
    assert one.count > 300
    for other in results:
        np.testing.assert_array_equal(one.vertices, other.vertices)
        np.testing.assert_array_equal(one.polygons.values, other.polygons.values)
        np.testing.assert_array_equal(one.polygons.offsets, other.polygons.offsets)
        np.testing.assert_array_equal(one.pattern_hashes, other.pattern_hashes)
        np.testing.assert_array_equal(one.logits, other.logits)
        np.testing.assert_array_equal(one.predicted, other.predicted)
        np.testing.assert_array_equal(one.boundary.values, other.boundary.values)


def test_cut_by_ranges_equals_one_cut(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``plane_cut(..., lo, hi)`` over consecutive ranges, each range's new vertices
    renumbered after those of the ranges before it, is the cut of all parents at once;
    an empty range gives empty arrays; a range out of bounds is refused."""
    if backend == "cuda":
        pytest.skip("the CUDA kernels count, then emit (no one-pass cut)")
    import fastmem.plane as plane_mod
    from fastmem._backend import select_backend

    be = select_backend("cpu", backend)
    k = be.kernels
    seen = []
    cut = plane_mod._cut_layer

    def check(mesh, be_, maps, kind, tol, layer, threads=1):
        out = cut(mesh, be_, maps, kind, tol, layer, threads)
        nv = mesh.S.shape[0]
        owner = np.empty(nv, dtype=np.int64)
        owner[mesh.corners] = mesh.poly_of_corner()
        tolz = plane_mod._steepest(np, maps, maps.shape[2]) * tol
        args = (mesh.S, mesh.T, maps, owner, mesh.corners, mesh.off, kind, tolz)
        whole = k.plane_cut(*args)
        n = mesh.n
        for bounds in ([0, n], [0, n // 3, n // 3, n], [0, 1, n - 1, n] if n > 2 else [0, n]):
            parts = [k.plane_cut(*args, lo, hi) for lo, hi in itertools.pairwise(bounds)]
            shift = 0
            for _, corners, _, new in parts:
                corners[corners >= nv] += shift
                shift += new.shape[0]
            for e in range(4):
                np.testing.assert_array_equal(np.concatenate([p[e] for p in parts]), whole[e])
        empty = k.plane_cut(*args, n, n)
        assert [a.shape[0] for a in empty] == [0, 0, 0, 0]
        for lo, hi in ((-1, n), (1, 0), (0, n + 1)):
            with pytest.raises(ValueError):
                k.plane_cut(*args, lo, hi)
        seen.append(n)
        return out

    monkeypatch.setattr(plane_mod, "_cut_layer", check)
    Ws, bs, acts, slopes, o, D, ext = _random_case(5, (4, 16, 12, 3), "relu")
    fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, D, extent=ext, backend=backend)
    assert len(seen) == 2 and seen[-1] > 3


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6"])
def test_neighbours_differ_in_the_neurons_of_their_shared_side(act: str) -> None:
    Ws, bs, acts, slopes, o, D, ext = _random_case(3, (3, 7, 6, 2), act)
    r = fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, D, extent=ext)
    off, idx = r.polygons.offsets, r.polygons.values
    sides: dict[tuple[int, int], list[int]] = {}
    for i in range(r.count):
        c = idx[off[i] : off[i + 1]].tolist()
        for a, b in zip(c, c[1:] + c[:1], strict=True):
            sides.setdefault((min(a, b), max(a, b)), []).append(i)
    # a conforming partition: every side is shared by at most two polygons, and the
    # sides on the extent's border by one
    assert max(len(v) for v in sides.values()) <= 2
    shared = [(k, v) for k, v in sides.items() if len(v) == 2]
    assert shared
    bits = np.unpackbits(r.patterns.view(np.uint8), axis=1, bitorder="little")
    for (a, b), (p, q) in shared:
        mid = (r.vertices[a] + r.vertices[b]) / 2
        zs, _ = preactivations(Ws, bs, acts, slopes, r.point(mid[0], mid[1])[None])
        z = np.concatenate(zs, axis=1)[0]
        if act in ("hardtanh", "relu6"):  # two bits per neuron: z > c0, z > c1
            c0, c1 = (-1.0, 1.0) if act == "hardtanh" else (0.0, 6.0)
            dist = np.stack([np.abs(z - c0), np.abs(z - c1)], axis=1).reshape(-1)
        else:
            dist = np.abs(z)
        on_line = dist < 1e-9
        differ = bits[p, : on_line.shape[0]] != bits[q, : on_line.shape[0]]
        np.testing.assert_array_equal(differ, on_line)


@pytest.mark.parametrize("act", ACTS)
def test_lines_in_the_slice_agree_with_along_segments(act: str) -> None:
    Ws, bs, acts, slopes, o, D, ext = _random_case(11, (4, 8, 8, 3), act)
    net = _net(Ws, bs, acts, slopes)
    r = fastmem.plane_regions(net, o, D, extent=ext)
    rng = np.random.default_rng(5)
    s0, s1, t0, t1 = ext
    V, off, idx = r.vertices, r.polygons.offsets, r.polygons.values
    for _ in range(6):
        a = np.array([rng.uniform(s0, s1), rng.uniform(t0, t1)])
        b = np.array([rng.uniform(s0, s1), rng.uniform(t0, t1)])
        # clip the segment a + lam (b - a) against every polygon (convex: an interval)
        pieces = []
        for i in range(r.count):
            P = V[idx[off[i] : off[i + 1]]]
            e = np.roll(P, -1, axis=0) - P
            lo, hi = 0.0, 1.0
            for p, ed in zip(P, e, strict=True):
                # inside: cross(ed, x - p) >= 0 with x = a + lam (b - a)
                c0 = ed[0] * (a[1] - p[1]) - ed[1] * (a[0] - p[0])
                c1 = ed[0] * (b[1] - a[1]) - ed[1] * (b[0] - a[0])
                if c1 == 0:
                    if c0 < 0:
                        lo, hi = 1.0, 0.0
                    continue
                lam = -c0 / c1
                if c1 > 0:
                    lo = max(lo, lam)
                else:
                    hi = min(hi, lam)
            if hi - lo > 1e-12:
                pieces.append((lo, hi, int(r.pattern_hashes[i])))
        pieces.sort()
        merged = [pieces[0]]
        for p in pieces[1:]:
            assert p[0] == pytest.approx(merged[-1][1], abs=1e-9)
            if p[2] == merged[-1][2]:
                merged[-1] = (merged[-1][0], p[1], p[2])
            else:
                merged.append(p)
        seg = fastmem.along_segments(net, r.point(*a)[None], r.point(*b)[None])
        assert int(seg.counts[0]) == len(merged)
        np.testing.assert_allclose(seg.breakpoints[0], [p[0] for p in merged[1:]], atol=1e-9)
        np.testing.assert_array_equal(seg.pattern_hashes[0], [p[2] for p in merged])


@pytest.mark.parametrize("act", ["relu", "hardtanh"])
def test_brute_force_grid(act: str) -> None:
    """Every point of a fine grid lies in a polygon with its pattern; every polygon wide
    enough to hold a grid cell's diagonal around its vertex mean is found by the grid."""
    Ws, bs, acts, slopes, o, D, ext = _random_case(21, (2, 6, 6, 2), act, d_extent=3.0)
    net = _net(Ws, bs, acts, slopes)
    r = fastmem.plane_regions(net, o, D, extent=ext)
    s0, s1, t0, t1 = ext
    n = 150
    ss, tt = np.meshgrid(np.linspace(s0, s1, n + 2)[1:-1], np.linspace(t0, t1, n + 2)[1:-1])
    pts = np.column_stack([ss.ravel(), tt.ravel()])
    grid_codes = _ref_patterns(Ws, bs, acts, slopes, r.point(pts[:, 0], pts[:, 1]))
    grid_hashes = set(hash_rows(np.unique(grid_codes, axis=0)).tolist())
    assert grid_hashes <= set(r.pattern_hashes.tolist())
    cell = math.hypot((s1 - s0) / (n + 1), (t1 - t0) / (n + 1))
    V, off, idx = r.vertices, r.polygons.offsets, r.polygons.values
    c = r.centroids()
    for i in range(r.count):
        P = V[idx[off[i] : off[i + 1]]]
        e = np.roll(P, -1, axis=0) - P
        ln = np.hypot(*e.T)
        keep = ln > 0
        dist = (e[keep, 0] * (c[i, 1] - P[keep, 1]) - e[keep, 1] * (c[i, 0] - P[keep, 0])) / ln[
            keep
        ]
        if dist.min() > cell:  # a disc of radius > a cell's diagonal holds a grid point
            assert int(r.pattern_hashes[i]) in grid_hashes


@pytest.mark.parametrize("act", ["relu", "hardtanh"])
def test_predicted_and_boundary(act: str) -> None:
    Ws, bs, acts, slopes, o, D, ext = _random_case(2, (3, 10, 10, 4), act, d_extent=3.0)
    net = _net(Ws, bs, acts, slopes)
    r = fastmem.plane_regions(net, o, D, extent=ext)
    rng = np.random.default_rng(0)
    s0, s1, t0, t1 = ext
    pts = np.column_stack([rng.uniform(s0, s1, 3000), rng.uniform(t0, t1, 3000)])
    inside = _inside(r, pts)
    which = inside.argmax(axis=1)
    _, out = preactivations(Ws, bs, acts, slopes, r.point(pts[:, 0], pts[:, 1]))
    cls = out.argmax(axis=1)
    const = r.predicted[which] >= 0
    assert const.any() and (~const).any()
    np.testing.assert_array_equal(r.predicted[which][const], cls[const])
    # the boundary's pieces: the top two logits tie along them
    segs = _segments(r)
    # each piece once
    assert len(r.boundary) <= segs.shape[0]
    keys = {tuple(np.round(np.sort(p, axis=0).ravel(), 9)) for p in segs}
    assert len(keys) == segs.shape[0]
    assert segs.shape[0] > 0
    for lam in (0.25, 0.5, 0.75):
        x = segs[:, 0] + lam * (segs[:, 1] - segs[:, 0])
        _, lo = preactivations(Ws, bs, acts, slopes, r.point(x[:, 0], x[:, 1]))
        top2 = np.sort(lo, axis=1)[:, -2:]
        np.testing.assert_allclose(top2[:, 0], top2[:, 1], atol=1e-9)
    # every region whose class is not constant meets the boundary
    mixed = np.flatnonzero(r.predicted < 0)
    assert mixed.size
    mids = (segs[:, 0] + segs[:, 1]) / 2
    hit = _inside(r, mids, eps=-1e-9)  # closed polygons
    assert hit[:, mixed].any(axis=0).all()


def test_boundary_polylines_are_joined() -> None:
    """A binary network's boundary crosses many regions: its pieces are joined into few
    polylines (where the boundary crosses a side, both regions' pieces end at the same
    key), which run on the zero set of the logit and tile it (same total length)."""
    rng = np.random.default_rng(0)
    Ws, bs, acts, slopes = random_net(rng, (2, 30, 30, 1), "relu", bias_scale=0.5)
    net = _net(Ws, bs, acts, slopes)
    r = fastmem.plane_regions(net, np.zeros(2), np.eye(2), extent=(-3, 3, -3, 3))
    segs = _segments(r)
    crossed = int((r.predicted < 0).sum())
    assert crossed >= 20
    assert len(r.boundary) * 5 <= segs.shape[0]
    mids = (segs[:, 0] + segs[:, 1]) / 2
    _, out = preactivations(Ws, bs, acts, slopes, mids)
    np.testing.assert_allclose(out[:, 0], 0, atol=1e-9)
    assert (np.hypot(*(segs[:, 1] - segs[:, 0]).T) > 0).all()


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_against_regioncam(act: str) -> None:
    """regioncam (Rust, float32; an optional peer) on the same float32 networks and
    square slices: region counts equal on >= 99% of 100 slices."""
    regioncam = pytest.importorskip("regioncam", reason="regioncam (optional peer) is absent")
    rng = np.random.default_rng(1)
    equal = 0
    for _ in range(100):
        Ws, bs, acts, slopes = random_net(rng, (6, 16, 16, 3), act, bias_scale=0.5)
        Ws = [w.astype(np.float32) for w in Ws]
        bs = [b.astype(np.float32) for b in bs]
        o = rng.normal(size=6).astype(np.float32)
        D = rng.normal(size=(2, 6)).astype(np.float32)
        size = 2.0
        net = Network.from_arrays(Ws, bs, acts, negative_slope=slopes, dtype=np.float32)
        r = fastmem.plane_regions(net, o, D, extent=(-size, size, -size, size))
        cam = regioncam.Regioncam(size)
        cam.linear(D, o)
        for i, (w, b) in enumerate(zip(Ws, bs, strict=True)):
            cam.linear(np.ascontiguousarray(w.T), b)
            if i < len(Ws) - 1:
                if act == "relu":
                    cam.relu()
                else:
                    cam.leaky_relu(slopes[i])
        equal += int(cam.num_faces == r.count)
    assert equal >= 99


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**31 - 1),
    act=st.sampled_from(ACTS),
    depth=st.integers(1, 3),
    width=st.integers(1, 7),
    d=st.integers(1, 5),
    outs=st.integers(1, 4),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
)
def test_hypothesis_shapes(seed, act, depth, width, d, outs, scale) -> None:
    rng = np.random.default_rng(seed)
    Ws, bs, acts, slopes = random_net(rng, (d, *([width] * depth), outs), act, bias_scale=0.5)
    o = rng.normal(size=d)
    D = rng.normal(size=(2, d))
    if d == 1:  # two directions in one dimension are parallel: refused
        with pytest.raises(InputError, match="directions"):
            fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, np.ones((2, 1)))
        return
    ext = (-scale, scale * 0.5, -scale * 0.3, scale)
    r = fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, D, extent=ext)
    _check_tiling(r, Ws, bs, acts, slopes, rng, n_samples=100)
    json.dumps(r.to_dict(), allow_nan=False)


# ------------------------------------------------------------------ plane_through
def test_plane_through() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 6))
    o, D, ext = fastmem.plane_through(*X, margin=0.1)
    np.testing.assert_allclose(D @ D.T, np.eye(2), atol=1e-14)
    # the three points lie in the plane, inside the extent
    net = Network.from_arrays([rng.normal(size=(5, 6)), rng.normal(size=(2, 5))],
                              [np.zeros(5), np.zeros(2)])  # fmt: skip
    r = fastmem.plane_regions(net, o, D, extent=ext, points=X)
    np.testing.assert_allclose(r.point(r.marks[:, 0], r.marks[:, 1]), X, atol=1e-12)
    s0, s1, t0, t1 = ext
    assert ((r.marks[:, 0] > s0) & (r.marks[:, 0] < s1)).all()
    assert ((r.marks[:, 1] > t0) & (r.marks[:, 1] < t1)).all()
    with pytest.raises(InputError, match="x2"):
        fastmem.plane_through(X[0], X[1], 2 * X[1] - X[0])
    with pytest.raises(InputError, match="x1"):
        fastmem.plane_through(X[0], X[0], X[2])
    with pytest.raises(InputError, match="margin"):
        fastmem.plane_through(*X, margin=-1)
    with pytest.raises(InputError, match="x1, x2"):
        fastmem.plane_through(X[0], X[1, :3], X[2])


# ------------------------------------------------------------------ errors
def test_bad_inputs() -> None:
    net = Network.from_arrays([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    o, D = np.zeros(2), np.eye(2)
    cases = [
        (dict(directions=np.array([[1.0, 2.0], [2.0, 4.0]])), "directions.*parallel"),
        (dict(directions=np.array([[0.0, 0.0], [0.0, 1.0]])), "directions.*zero"),
        (dict(directions=np.eye(3)[:2]), "directions"),
        (dict(origin=np.zeros(3)), "origin"),
        (dict(origin=np.array([np.nan, 0.0])), "origin"),
        (dict(extent=(1, 1, 0, 1)), "extent.*empty"),
        (dict(extent=(0, 1, 0, np.inf)), "extent.*finite"),
        (dict(extent=(0, 1, 0)), "extent"),
        (dict(points=np.zeros((2, 3))), "points"),
    ]
    for kw, match in cases:
        args = {"origin": o, "directions": D, **kw}
        with pytest.raises(InputError, match=match):
            fastmem.plane_regions(net, args.pop("origin"), args.pop("directions"), **args)
    smooth = Network.from_arrays([np.eye(2), np.eye(2), np.ones((1, 2))], [np.zeros(2)] * 2 +
                                 [np.zeros(1)], ["relu", "tanh"])  # fmt: skip
    with pytest.raises(InputError, match="layer 1 \\(tanh\\)"):
        fastmem.plane_regions(smooth, o, D)
    with pytest.raises(InputError, match="net"):
        fastmem.plane_regions("not a net", o, D)
    big = Network.from_arrays([np.full((2, 2), 1e300), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    with pytest.raises(InputError, match="layer"):
        fastmem.plane_regions(big, o, D, extent=(-1e10, 1e10, -1e10, 1e10))


def test_refuses_what_cannot_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    import fastmem._validate as v

    monkeypatch.setattr(v, "_UNCHECKED_BYTES", 0)
    monkeypatch.setattr(v, "available_memory", lambda xp=np: (100_000, "test"))
    Ws, bs, acts, slopes, o, D, ext = _random_case(0, (3, 32, 32, 2), "relu")
    with pytest.raises(InputError, match=r"net: .*regions.*would need"):
        fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, D, extent=ext)


def test_a_cut_out_of_memory_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass cut allocates its output as it goes: running out is an InputError
    naming ``net`` with a lower bound of what the layer needs, not a bare MemoryError."""
    import types

    import fastmem.plane as plane_mod
    from fastmem._backend import Backend, select_backend

    be = select_backend("cpu")

    def no_memory(*args):
        raise MemoryError

    fake = Backend(
        name=be.name,
        kernels=types.SimpleNamespace(
            **{n: getattr(be.kernels, n) for n in dir(be.kernels) if not n.startswith("_")},
        ),
        xp=np,
    )
    fake.kernels.plane_cut = no_memory
    monkeypatch.setattr(plane_mod, "select_backend", lambda device, backend=None: fake)
    Ws, bs, acts, slopes, o, D, ext = _random_case(0, (3, 8, 2), "relu")
    with pytest.raises(InputError, match=r"net: the cut of hidden layer 0 ran out of memory"):
        fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, D, extent=ext)


# ------------------------------------------------------------------ output
def test_to_dict_float32_and_pictures(tmp_path) -> None:
    Ws, bs, acts, slopes, o, D, ext = _random_case(4, (3, 8, 8, 3), "relu")
    net32 = _net(Ws, bs, acts, slopes).astype(np.float32)
    r = fastmem.plane_regions(net32, o, D, extent=ext, points=np.stack([o, o + D[0], o + D[1]]))
    assert r.params["dtype"] == "float32"
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["count"] == r.count and len(d["pattern_hashes"]) == r.count
    assert d["pattern_hashes"][0] == int(r.pattern_hashes[0])
    # the float32 network's own patterns at the vertex means (promoted to float64 for the
    # geometry: equal away from the boundaries, where every vertex mean lies here)
    c = r.centroids()
    np.testing.assert_array_equal(net32.pattern_hashes(r.point(c[:, 0], c[:, 1])),
                                  r.pattern_hashes)  # fmt: skip
    pytest.importorskip("matplotlib", reason="matplotlib is optional (plot, to_svg)")
    path = tmp_path / "slice.svg"
    r.to_svg(path, color="pattern")
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    assert r.plot(ax) is ax
    assert len(ax.collections) >= 1
    with pytest.raises(InputError, match="color"):
        r.plot(ax, color="rainbow")


def _decide_cases():
    """A slice's mesh and logit maps, then the same mesh with logits built to tie: two
    equal classes (tied everywhere), a margin whose zero line runs through corners, a
    binary network's single logit, and logits equal to 0 at the corners of a side."""
    import fastmem.plane as plane_mod

    Ws, bs, acts, slopes, o, D, ext = _random_case(31, (3, 10, 8, 4), "relu")
    r = fastmem.plane_regions(_net(Ws, bs, acts, slopes), o, D, extent=ext)
    mesh = plane_mod._Mesh(r.vertices[:, 0].copy(), r.vertices[:, 1].copy(),
                           r.polygons.values, r.polygons.offsets, None)  # fmt: skip
    tol = r.params["tolerance"]
    yield "slice", mesh, r.logits, tol
    L = r.logits.copy()
    L[:, 0, 0] += 1e3  # class 0 on top everywhere, and class 1 equal to it
    L[:, :, 1] = L[:, :, 0]
    yield "equal classes", mesh, L, tol
    V = r.vertices
    L = np.zeros((r.count, 3, 3))
    L[:, 1, 1] = 1.0  # class 1 - class 0 = s - s_v: zero at vertex v's s
    L[:, 0, 1] = -V[r.polygons.values[r.polygons.offsets[:-1]], 0]
    L[:, 2, 2] = 1e-3  # a third class, nearly flat
    yield "through corners", mesh, L, tol
    yield "binary", mesh, r.logits[:, :, :1].copy(), tol
    L = np.zeros((r.count, 3, 2))
    L[:, 2, 1] = 1.0  # class 1 = t: ties with class 0 along t = 0, on sides there
    yield "flat margin", mesh, L, tol


@pytest.mark.parametrize("backend", ["cpp", "numba"])
def test_decide_kernel_equals_numpy(backend: str) -> None:
    """``plane_decide`` (each CPU kernel set, alone and by blocks on three threads) gives the
    decisions of the NumPy path (the CUDA backend's) bit for bit: predicted classes and the
    boundary, on a slice and on logits built to tie."""
    import fastmem.plane as plane_mod
    from fastmem._backend import select_backend
    from fastmem._threads import kernels_callable_side_by_side

    be = select_backend("cpu", backend)
    side_by_side = kernels_callable_side_by_side(be)
    for name, mesh, logits, tol in _decide_cases():
        want_p, want_b = plane_mod._decisions(mesh, logits, tol)
        for threads in (1, 3) if side_by_side else (1,):
            got_p, got_b = plane_mod._decisions(mesh, logits, tol, be, None, threads)
            np.testing.assert_array_equal(got_p, want_p, err_msg=name)
            np.testing.assert_array_equal(got_b.values, want_b.values, err_msg=name)
            np.testing.assert_array_equal(got_b.offsets, want_b.offsets, err_msg=name)
        if name == "equal classes":
            assert (want_p == 0).all()  # the first of two equal classes is the top
        if name == "flat margin":
            assert len(want_b) >= 1  # the boundary along t = 0


@pytest.mark.parametrize("backend", ["cpp", "numba"])
def test_decide_kernel_reference(backend: str) -> None:
    """``plane_decide``'s top class and flags against a loop over regions in plain Python
    (the rule of the C++ header, hypot everywhere), and its refusals."""
    from fastmem._backend import select_backend

    k = select_backend("cpu", backend).kernels
    for name, mesh, logits, tol in _decide_cases():
        L = logits if logits.shape[2] > 1 else np.concatenate([0 * logits, logits], axis=2)
        L = np.ascontiguousarray(L)
        n = L.shape[0]
        off, corners = mesh.off, mesh.corners
        st = np.stack([np.add.reduceat(mesh.S[corners], off[:-1]),
                       np.add.reduceat(mesh.T[corners], off[:-1])], axis=1)  # fmt: skip
        st /= np.diff(off)[:, None]
        top = np.empty(n, dtype=np.int64)
        flags = np.empty(n, dtype=np.uint8)
        k.plane_decide(L, mesh.S, mesh.T, corners, off, st, tol, top, flags)
        for i in range(n):
            s, t = st[i]
            vals = [(L[i, 0, c] + s * L[i, 1, c]) + t * L[i, 2, c] for c in range(L.shape[2])]
            k_top = int(np.argmax(vals))
            constant, tied = True, 0
            for v in corners[off[i] : off[i + 1]]:
                cs, ct = mesh.S[v], mesh.T[v]
                tie = False
                for c in range(L.shape[2]):
                    d = L[i, :, k_top] - L[i, :, c]
                    g = (d[0] + cs * d[1]) + ct * d[2]
                    tg = tol * math.hypot(d[1], d[2])
                    constant &= bool(g >= -tg)
                    tie |= c != k_top and abs(g) <= tg
                tied += tie
            assert top[i] == k_top, (name, i)
            assert flags[i] == int(constant) | (2 if tied >= 2 else 0), (name, i)
    one = np.zeros((1, 3, 2))
    S = np.array([0.0, 1.0, 0.0])
    c3, off1, st1 = np.arange(3), np.array([0, 3]), np.zeros((1, 2))
    top1, fl1 = np.empty(1, dtype=np.int64), np.empty(1, dtype=np.uint8)
    bad = [
        (one, S, S, np.array([0, 1, 5]), off1, st1, 0.1, top1, fl1),  # corner range
        (one, S, S, c3, np.array([0, 4]), st1, 0.1, top1, fl1),  # off beyond corners
        (one, S, S, c3, np.array([0, 3, 3]), st1, 0.1, top1, fl1),  # off length
        (np.zeros((1, 2, 2)), S, S, c3, off1, st1, 0.1, top1, fl1),  # L rows
        (one, S, S, c3, off1, st1, 0.1, top1, fl1.astype(np.int64)),  # flags dtype
    ]
    for args in bad:
        with pytest.raises((ValueError, TypeError)):
            k.plane_decide(*args)
