"""Exact 2-D slices of a layer graph (:func:`fastmem.plane_regions` on conv, pooling and
residual networks; :mod:`fastmem._graph` holds the ops).

The dense path of :mod:`fastmem.plane`, op by op. Every polygon of the slice carries the
current tensor as an affine map of ``(s, t)``, ``(3, polygons, size)`` (value at the
origin of the slice, d/ds, d/dt), and a residual op's saved input with the index of the
polygon (at the block's start) each current polygon lies in:

``linear``, ``conv2d``, ``avgpool2d``, ``channel_affine``, ``flatten``
    the op on the value rows, its linear part (no bias) on the slope rows.
``act``
    the dense path's kernels: every polygon cut by the lines where an element meets a
    threshold (``plane_cut``), then the bits and post-activation maps at each new
    polygon's vertex mean (``plane_children``).
``maxpool2d``
    within a polygon each window's maximum is the upper envelope of ``K`` affine maps;
    its argmax cells are cut out as follows: the polygons are cut (same kernel, ``relu``
    kind) by the line ``e_a = e_b`` of every pair of entries of the windows, a block of
    windows at a time, which refines the cells (a line cuts where its pair is not on
    top too); the pieces of one polygon with the same argmax in every window of the
    block (read at their vertex means, the first of equal entries winning as in
    ``torch.max``) are merged back into one convex polygon: its boundary is the pieces'
    sides that no other piece of the group shares, chained into a cycle. The vertices
    left inside a merged polygon go; the vertices on its sides stay (a neighbour may
    have them: the mesh stays conforming). The argmax at the vertex means gives the
    pattern bits (``fastmem._graph``'s layout) and the output maps.
``residual``
    both branches on the same polygons: the first runs, the second starts from the
    block's input maps gathered to the (possibly cut) polygons, and the first branch's
    result is gathered again to the polygons the second one cut.

A ``threshold`` activation makes everything after it constant on each polygon (and the
network discontinuous): later ops cut nothing, their states are read at the vertex
means. A threshold inside a residual block is refused (as by the exact segment walk).
Ties, tolerances and the memory refusals are the dense path's (:mod:`fastmem.plane`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._graph import _AFFINE, LayerGraph, Op, apply_affine, pack_argmax, windows
from ._kinds import ACTIVATIONS, RELU, THRESHOLD
from ._validate import check_allocation
from ._validate import to_host as _host
from .errors import InputError

# bytes of pair maps of one max-pooling block (the windows cut, then merged, together)
_PAIR_BYTES = 64 << 20


def _linear_part(op: Op) -> Op:
    """The op without its bias / shift (applied to the slope rows)."""
    arrays = {k: v for k, v in op.arrays.items() if k not in ("bias", "shift")}
    if op.kind == "linear":
        arrays["bias"] = op.arrays["bias"] * 0
    if op.kind == "channel_affine":
        arrays["shift"] = op.arrays["shift"] * 0
    return Op(op.kind, op.name, op.source, op.in_shape, op.out_shape, arrays, op.params)


class _PlaneWalk:
    """The polygons of the slice (a :class:`fastmem.plane._Mesh`), the maps ``Z`` of the
    current tensor per polygon, the pattern words so far, and the saved tensors of the
    residual ops entered (``[maps, index of the polygon they belong to]``)."""

    def __init__(self, plane: Any, be: Any, mesh: Any, Z: Any, words: int, tol: float,
                 ext: tuple[float, float, float, float]) -> None:  # fmt: skip
        self.P = plane  # fastmem.plane (its mesh helpers and cut)
        self.be = be
        self.xp = be.xp
        self.dev = plane._to_backend(be)
        self.mesh = mesh
        self.Z = Z
        self.codes = np.zeros((mesh.n, words), dtype=np.uint64)
        self.bit = 0
        self.tol = tol
        self.ext = ext
        self.saved: list[list[Any]] = []
        self.constant = False
        self.state = 0  # state ops met (numbered as distance_to_boundary numbers them)

    # -------------------------------------------------------------- helpers
    def regroup(self, parent: Any) -> None:
        """The polygons are now children of ``parent`` (indices into the old ones)."""
        self.codes = np.ascontiguousarray(self.codes[parent])
        for entry in self.saved:
            entry[1] = entry[1][parent]

    def check(self, op: Op) -> None:
        """``InputError`` naming the op when its maps can overflow on the slice."""
        ext = self.ext
        smax = max(abs(ext[0]), abs(ext[1]))
        tmax = max(abs(ext[2]), abs(ext[3]))
        limit = float(np.finfo(np.float64).max) / 8
        Z = self.Z
        with np.errstate(over="ignore", invalid="ignore"):
            big = [max(-float(x.min()), float(x.max())) if x.size else 0.0 for x in Z]
            ok = bool(big[0] + smax * big[1] + tmax * big[2] <= limit)
        if not ok:
            raise InputError(
                f"net: the output of {op.where} on the slice is not finite (or beyond "
                f"+-{limit:.3g}): origin, directions, extent or the weights are too large"
            )

    def alloc(self, n: int, width: int, op: Op) -> None:
        check_allocation(
            3 * 8 * float(n) * width,
            f"the maps of the {n} regions of the slice after {op.where}",
            "net",
            self.xp,
        )

    # -------------------------------------------------------------- ops
    def run(self, ops: tuple[Op, ...]) -> None:
        for op in ops:
            self.apply(op)

    def apply(self, op: Op) -> None:
        xp = self.xp
        if op.kind == "flatten":
            return
        if op.kind in _AFFINE:
            n = self.Z.shape[1]
            self.alloc(n, op.size, op)
            out = xp.empty((3, n, op.size))
            with np.errstate(over="ignore", invalid="ignore"):
                out[0] = apply_affine(op, self.Z[0], xp)
                lin = _linear_part(op)
                slopes = self.Z[1:].reshape(2 * n, -1)
                out[1:] = apply_affine(lin, slopes, xp).reshape(2, n, op.size)
            self.Z = out
            self.check(op)
            return
        if op.kind in ("residual", "concat"):
            start = self.Z
            self.saved.append([start, np.arange(self.mesh.n)])
            self.run(op.branches[0])
            _, anc = self.saved.pop()
            self.saved.append([self.Z, np.arange(self.mesh.n)])
            self.Z = start[:, self.dev(anc)]
            self.run(op.branches[1])
            first, anc = self.saved.pop()
            if op.kind == "concat":  # the maps of both branches, channels joined
                self.Z = xp.concatenate([first[:, self.dev(anc)], self.Z], axis=2)
                return
            with np.errstate(over="ignore", invalid="ignore"):
                self.Z = first[:, self.dev(anc)] + self.Z
            self.check(op)
            return
        if op.kind == "act":
            self.act(op)
            return
        if op.kind == "maxpool2d":
            self.maxpool(op)
            return
        raise AssertionError(op.kind)

    def act(self, op: Op) -> None:
        P, xp, k = self.P, self.xp, self.be.kernels
        kind, slope = ACTIVATIONS[op.params["activation"]], op.params["slope"]
        Z = xp.ascontiguousarray(self.Z)
        if kind == THRESHOLD and self.saved:
            raise InputError(
                f"net: {op.where}: a threshold activation inside a residual block is not "
                "supported by plane_regions"
            )
        if not self.constant:
            self.mesh = P._cut_layer(self.mesh, self.be, Z, kind, self.tol, self.state)
            self.regroup(self.mesh.parent)
        else:
            self.mesh.parent = np.arange(self.mesh.n, dtype=np.int64)
        n, width = self.mesh.n, Z.shape[2]
        self.alloc(n, width, op)
        st = self.dev(P._vertex_means(self.mesh))
        codes = self.dev(self.codes)
        H = xp.empty((3, n, width))
        k.plane_children(Z, self.dev(self.mesh.parent), st, kind, slope, codes, self.bit, H)
        self.codes = np.ascontiguousarray(_host(codes))
        self.bit += op.state_bits
        self.state += 1
        self.Z = H
        if kind == THRESHOLD:
            self.constant = True  # constant on every polygon from here on

    def maxpool(self, op: Op) -> None:
        P, xp, k = self.P, self.xp, self.be.kernels
        K, m = op.window, op.size
        # the input element of every window entry (m, K); padding: -1 in `cols`, True in
        # `pad` (and element 0 in `cols`, masked wherever it is read)
        cols = windows(np.arange(_size(op.in_shape), dtype=np.float64)[None], op, -1.0, np)
        cols = cols.reshape(m, K).astype(np.int64)
        pad = cols < 0
        cols[pad] = 0
        anc = np.arange(self.mesh.n, dtype=np.int64)  # polygon -> polygon at the op's start
        if not self.constant and K > 1:
            pa, pb = (np.array(v, dtype=np.int64) for v in np.triu_indices(K, 1))
            lo = 0
            while lo < m:
                per = 3 * 8 * max(self.mesh.n, 1) * pa.shape[0]
                hi = min(m, lo + max(1, _PAIR_BYTES // per))
                anc = self.pool_block(anc, cols[lo:hi], pad[lo:hi], pa, pb)
                lo = hi
        else:
            self.mesh.parent = anc
        # the argmax at every polygon's vertex mean and the output maps, by blocks of
        # polygons (the windows of every polygon at once would be K times the maps)
        n = self.mesh.n
        self.alloc(n, m, op)
        ad = self.dev(anc)
        st = self.dev(P._vertex_means(self.mesh))
        out = xp.empty((3, n, m))
        idx = xp.empty((n, m), dtype=np.int64)
        dcols, dpad = self.dev(cols), self.dev(pad)
        rows = max(1, _PAIR_BYTES // (8 * m * K))
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            a = ad[lo:hi, None]
            top = self.entries(a, st[lo:hi], dcols, dpad).argmax(axis=2)  # first of equal
            idx[lo:hi] = top
            chosen = xp.take_along_axis(dcols[None], top[:, :, None], axis=2)[:, :, 0]
            lin = a * self.Z.shape[2] + chosen
            for r in range(3):
                out[r, lo:hi] = xp.take(self.Z[r], lin)
        self.Z = out
        nbits = op.state_bits // m if m else 0
        if nbits:
            codes = self.dev(self.codes)
            pack_argmax(idx, codes, self.bit, nbits, np.float64, k)
            self.codes = np.ascontiguousarray(_host(codes))
            self.bit += op.state_bits
        self.state += 1

    def entries(self, a: Any, st: Any, cols: Any, pad: Any) -> Any:
        """The window entries ``cols`` (b, K) at points ``st`` of polygons ``a`` (the
        current tensor's polygons, a column): (len(a), b, K), padding -inf."""
        xp = self.xp
        Z = self.Z
        lin = a * Z.shape[2] + cols.reshape(1, -1)  # flat indices: one gather per row
        shape = (a.shape[0], *cols.shape)
        s, t = st[:, 0, None, None], st[:, 1, None, None]
        with np.errstate(over="ignore", invalid="ignore"):
            E = xp.take(Z[0], lin).reshape(shape)
            E += s * xp.take(Z[1], lin).reshape(shape)
            E += t * xp.take(Z[2], lin).reshape(shape)
        E[:, pad] = -np.inf
        return E

    def pool_block(self, anc: Any, cols: Any, pad: Any, pa: Any, pb: Any) -> Any:
        """Cut the polygons by the tie lines of the windows ``cols`` (b, K) and merge the
        pieces of a polygon with one argmax; returns the new polygons' index at the op's
        start (``anc``: the current ones')."""
        P, xp = self.P, self.xp
        n = self.mesh.n
        b, npair = cols.shape[0], pa.shape[0]
        base = self.dev(anc)[:, None] * self.Z.shape[2]  # flat indices of the entries
        la = base + self.dev(cols[:, pa]).reshape(1, -1)
        lb = base + self.dev(cols[:, pb]).reshape(1, -1)
        D = xp.empty((3, n, b, npair))
        with np.errstate(over="ignore", invalid="ignore"):
            for r in range(3):
                Zr = self.Z[r]
                xp.subtract(xp.take(Zr, la), xp.take(Zr, lb), out=D[r].reshape(n, -1))
        # a pair with a padded entry never ties: a constant that cuts nothing
        padded = self.dev(pad[:, pa] | pad[:, pb])
        D[0][:, padded] = -1.0
        D[1][:, padded] = 0.0
        D[2][:, padded] = 0.0
        cut = P._cut_layer(self.mesh, self.be, D.reshape(3, n, b * npair), RELU, self.tol,
                           self.state)  # fmt: skip
        del D
        par = cut.parent
        if cut.n == n:  # nothing was cut
            self.mesh = cut
            self.regroup(par)
            return anc[par]
        # the argmax of the pieces of the polygons that were cut, at their vertex means;
        # a group: the pieces of one polygon with one argmax in every window
        kids = np.bincount(par, minlength=n)
        multi = np.flatnonzero(kids[par] > 1)
        sub = _sub_mesh(P, cut, multi)
        st = self.dev(P._vertex_means(sub))
        am = self.dev(anc[par[multi]])[:, None]
        top = _host(self.entries(am, st, self.dev(cols), self.dev(pad)).argmax(axis=2))
        key = np.concatenate([par[multi, None], top.astype(np.int64)], axis=1)
        ukey, inv = np.unique(key, axis=0, return_inverse=True)
        single = np.flatnonzero(kids[par] == 1)
        # groups in the order of their polygon: singles, then the merged ones
        gpar = np.concatenate([par[single], ukey[:, 0]])
        order = np.argsort(gpar, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.shape[0])
        group = np.empty(cut.n, dtype=np.int64)
        group[single] = rank[: single.shape[0]]
        group[multi] = rank[single.shape[0] + inv.reshape(-1)]
        self.mesh = _merge(P, cut, group, order.shape[0])
        self.mesh.parent = gpar[order]
        self.compact()  # the kernels want every vertex owned by a polygon
        self.regroup(self.mesh.parent)
        return anc[self.mesh.parent]

    def compact(self) -> None:
        """Drop the vertices no polygon uses any more (left inside merged polygons)."""
        mesh = self.mesh
        used = np.zeros(mesh.S.shape[0], dtype=bool)
        used[mesh.corners] = True
        if used.all():
            return
        new = np.cumsum(used) - 1
        mesh.S, mesh.T = mesh.S[used], mesh.T[used]
        mesh.corners = new[mesh.corners]


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


def _sub_mesh(P: Any, mesh: Any, which: Any) -> Any:
    """The polygons ``which`` of ``mesh`` (same vertex arrays)."""
    sizes = np.diff(mesh.off)[which]
    corners = mesh.corners[P._ragged_index(mesh.off[which], sizes)]
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return P._Mesh(mesh.S, mesh.T, corners, off, None)


def _merge(P: Any, cut: Any, group: Any, n_groups: int) -> Any:
    """The union of the pieces of each group (convex, conforming within a parent: a side
    inside a group is a side of two of its pieces, in opposite directions): the sides
    no other piece of the group has, chained counter-clockwise into one polygon."""
    corners, off = cut.corners, cut.off
    nv = cut.S.shape[0]
    pc = cut.poly_of_corner()
    nxt = np.arange(corners.shape[0]) + 1
    wrap = nxt == off[pc + 1]
    nxt[wrap] = off[pc[wrap]]
    u, v = corners, corners[nxt]
    g = group[pc]
    a, b = np.minimum(u, v), np.maximum(u, v)
    order = np.lexsort((b, a, g))
    go, ao, bo = g[order], a[order], b[order]
    same = (go[1:] == go[:-1]) & (ao[1:] == ao[:-1]) & (bo[1:] == bo[:-1])
    inner = np.zeros(corners.shape[0], dtype=bool)
    inner[order[1:][same]] = True
    inner[order[:-1][same]] = True
    keep = np.flatnonzero(~inner)
    eg, eu, ev = g[keep], u[keep], v[keep]
    # each boundary vertex starts one side of its group: the successor of side (u, v) is
    # the side starting at v
    start = eg * nv + eu
    srt = np.argsort(start, kind="stable")
    sk = start[srt]
    pos = np.searchsorted(sk, eg * nv + ev)
    ok = pos < sk.shape[0]
    ok[ok] = sk[pos[ok]] == (eg * nv + ev)[ok]
    if not ok.all() or (sk[1:] == sk[:-1]).any():
        raise AssertionError("plane_regions: a merged max-pooling cell is not one polygon")
    # in sorted order: succ[i] is the sorted index of side i's successor
    succ = np.empty(keep.shape[0], dtype=np.int64)
    succ[np.arange(keep.shape[0])] = pos[srt]
    gs = eg[srt]
    count = np.bincount(gs, minlength=n_groups)
    head = np.zeros(keep.shape[0], dtype=bool)
    firsts = np.cumsum(count) - count
    head[firsts] = True
    # list ranking by pointer jumping: steps from each side to its group's head
    dist = np.where(head, 0, 1).astype(np.int64)
    ptr = np.where(head, np.arange(keep.shape[0]), succ)
    while True:
        nd = dist + dist[ptr]
        np2 = ptr[ptr]
        if np.array_equal(np2, ptr) and np.array_equal(nd, dist):
            break
        dist, ptr = np.where(head, 0, nd), np.where(head, ptr, np2)
    L = count[gs]
    rank = (L - dist) % L
    final = np.lexsort((rank, gs))
    new_corners = eu[srt][final]
    new_off = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    return P._Mesh(cut.S, cut.T, new_corners, new_off, None)


def graph_slice(
    graph: LayerGraph, be: Any, o: Any, D: Any, ext: tuple[float, float, float, float],
    tol: float, words: int,
) -> tuple[Any, Any, Any]:  # fmt: skip
    """Cut the extent through every op of ``graph``: the mesh, its patterns and logit maps
    (as :func:`fastmem.plane._slice` returns them)."""
    from . import plane  # imported here: fastmem.plane imports this module lazily too

    s0, s1, t0, t1 = ext
    mesh = plane._Mesh(
        np.array([s0, s1, s1, s0], dtype=np.float64),
        np.array([t0, t0, t1, t1]),
        np.arange(4, dtype=np.int64),
        np.array([0, 4], dtype=np.int64),
        np.zeros(1, dtype=np.int64),
    )
    dev = plane._to_backend(be)
    Z = dev(np.ascontiguousarray(np.concatenate([o[None], D])[:, None, :]))
    walk = _PlaneWalk(plane, be, mesh, Z, words, tol, ext)
    walk.run(graph.ops)
    walk.compact()
    logits = np.ascontiguousarray(_host(walk.Z).transpose(1, 0, 2))
    return walk.mesh, walk.codes, logits
