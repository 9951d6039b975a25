"""CROWN (Zhang et al. 2018) on a layer graph: convolutions, pooling, residual additions.

The graph's ops are laid out as nodes in execution order (:func:`nodes_of`): the input,
then one node per op (``flatten`` is the identity and makes none), a residual op's two
branches each a run of nodes and its sum an ``add`` node. A bound is a backward pass over
the nodes from a start node down to the input: each row's coefficients ``lam`` on a
node's value are carried to its inputs (an affine op: ``lam A``, its offset ``lam . b``
added to the row's constant; an ``add``: ``lam`` to both inputs; an input used twice,
as a residual block's fork: the sum of what reaches it), through an activation by the
linear bound of the side ``lam``'s sign asks for (the kernels' ``crit_relax``, as on
dense nets), through max pooling by auto_LiRPA's relaxation (below), and at the input
concretized over the box.

**Max pooling** ``y = max_i x_i`` over a window with entry bounds ``[l_i, u_i]``: below,
``y >= x_j`` for ``j`` the entry of largest lower bound (the first of equal ones); above,
``y = x_j`` where ``l_j >= u_i`` for every other entry (the window is decided), else the
constant ``y <= max_i u_i`` -- the relaxation of auto_LiRPA's ``BoundMaxPool``.

**Intermediate bounds.** Before each activation or max pooling, the bounds of its input
are the tighter of interval bounds (IBP) and CROWN's, the latter computed for the
entries whose relaxation they can change: the unstable neurons, the entries of
undecided windows that may hold the window's maximum, and every non-constant output a
max pooling reads. A ReLU's neurons take the bound nearer 0 first, the other only where
still unstable (a stable neuron's relaxation is exact). Nodes reached from the input by
affine ops alone keep their IBP bounds (exact up to rounding). A row that starts at a
linear node starts as its weight row; a convolution's rows (and a kept BatchNorm's after
one, and unit rows of residual sums and channel maps) are local and are carried as
patches, one window per row, through convolutions, activations, channel maps and
residual sums (auto_LiRPA's "patches mode"), full rows from the first other node on.

**Rounding.** Everything runs in float64 (a float32 net's arrays are exact there), and
every step's rounding error is bounded by the magnitudes of the terms it sums (Higham's
``gamma_n``) times bounds of ``|value|`` at the node the coefficients act on (known from
the forward bounds), accumulated per row and subtracted, with 1 % on top, from the
bound: the bounds are rigorous, as the dense path's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _graph
from ._graph import Op, apply_affine, windows
from ._kinds import ACTIVATIONS, CLAMPS, LEAKY_RELU, RELU, THRESHOLD

__all__ = ["Bounds", "GraphCrown", "Node", "nodes_of"]

_EPS = float(np.finfo(np.float64).eps)
# bytes of one chunk's coefficient rows: rows are processed in chunks of this size
_ROW_BYTES = 32 * 2**20


def _gamma(n: int) -> float:
    t = n * _EPS
    return t / (1 - t)


@dataclass
class Bounds:
    """One pass's state: bounds ``L``/``U`` and magnitudes ``mag`` of every node (n, dim),
    each affine node's ``|A| mag_in`` (``vmag``), each state node's relaxation, the
    nodes already tightened, and ``stable`` (n,)."""

    L: list[Any]
    U: list[Any]
    mag: list[Any]
    vmag: dict[int, Any]  # affine nodes: gamma_t |A| mag_in, per unit |lam| on the output
    relax: dict[int, dict[str, Any]]
    tightened: set[int]
    stable: Any
    padded: dict[Any, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Node:
    """One value of the graph: ``kind`` is ``"input"``, ``"add"`` or an op's kind."""

    kind: str
    op: Op | None
    inputs: tuple[int, ...]
    dim: int


def nodes_of(graph: Any) -> list[Node]:
    """The graph's values in execution order (the input first, the output last)."""
    nodes = [Node("input", None, (), int(graph.input_dim))]

    def run(ops: tuple[Op, ...], v: int) -> int:
        for op in ops:
            if op.kind == "flatten":
                continue
            if op.kind == "residual":
                a = run(op.branches[0], v)
                b = run(op.branches[1], v)
                nodes.append(Node("add", op, (a, b), nodes[a].dim))
            elif op.kind == "concat":
                a = run(op.branches[0], v)
                b = run(op.branches[1], v)
                nodes.append(Node("cat", op, (a, b), nodes[a].dim + nodes[b].dim))
            else:
                nodes.append(Node(op.kind, op, (v,), int(op.size)))
            v = len(nodes) - 1
        return v

    run(graph.ops, 0)
    return nodes


def _terms(op: Op) -> int:
    """Products summed per entry by an affine op, forward or backward (a bound)."""
    if op.kind == "linear":
        return int(max(op.in_shape[0], op.size))
    if op.kind == "conv2d":
        return int(max(op.in_shape[0], op.out_shape[0]) * op.window)
    if op.kind == "avgpool2d":
        return int(op.window)
    return 1


class GraphCrown:
    """CROWN bounds of one batch of boxes on a float64 layer graph (see the module)."""

    def __init__(self, model: Any) -> None:
        self.m = model  # a float64 fastmem._graph_critical.GraphModel
        self.xp = model.xp
        self.k = model.k
        self.nodes = nodes_of(model.graph)
        self.consumers = [0] * len(self.nodes)
        for node in self.nodes:
            for i in node.inputs:
                self.consumers[i] += 1
        self.users: list[list[int]] = [[] for _ in self.nodes]  # each node's consumers
        for k, node in enumerate(self.nodes):
            for i in node.inputs:
                self.users[i].append(k)
        # nodes whose value a max pooling reads (its relaxation reads every entry's bounds)
        self.pooled = {node.inputs[0] for node in self.nodes if node.kind == "maxpool2d"}
        # whether an activation or max pooling lies between the input and the node
        state = [False] * len(self.nodes)
        for k, node in enumerate(self.nodes):
            state[k] = any(state[i] or self.nodes[i].kind in ("act", "maxpool2d")
                           for i in node.inputs)  # fmt: skip
        self.after_state = state
        self._tables: dict[int, Any] = {}  # each convolution's dilated kernels

    # ---------------------------------------------------------------- forward
    def bounds(self, lo: Any, hi: Any, crown: bool) -> Bounds:
        """Bounds of every node on the boxes [lo, hi] (n, d), each state node's relaxation,
        and whether every state is decided on each box (``stable``, (n,))."""
        xp, k = self.xp, self.k
        n = lo.shape[0]
        N = len(self.nodes)
        st = Bounds([None] * N, [None] * N, [None] * N, {}, {}, set(), xp.ones(n, dtype=bool))
        L, U = st.L, st.U
        L[0], U[0] = lo, hi
        st.mag[0] = xp.maximum(xp.abs(lo), xp.abs(hi))
        stable = st.stable
        for j, node in enumerate(self.nodes[1:], start=1):
            i = node.inputs[0]
            if node.kind == "add":
                a, b = node.inputs
                L[j] = xp.nextafter(L[a] + L[b], -xp.inf)
                U[j] = xp.nextafter(U[a] + U[b], xp.inf)
            elif node.kind == "cat":
                a, b = node.inputs
                L[j] = xp.concatenate([L[a], L[b]], axis=1)
                U[j] = xp.concatenate([U[a], U[b]], axis=1)
            elif node.kind in _graph._AFFINE:
                L[j], U[j] = self.m._ibp((node.op,), L[i], U[i])
                if not crown:  # stability only: no backward pass reads the allowances
                    st.mag[j] = xp.maximum(xp.abs(L[j]), xp.abs(U[j]))
                    continue
                v = apply_affine(self.m._abs_op(node.op), st.mag[i], xp)
                # the allowance of lam A's rounding per unit |lam| on the op's output
                v *= (1 + 2 * _gamma(_terms(node.op) + 2)) * 2 * _gamma(_terms(node.op) + 2)
                st.vmag[j] = v + 1e-300
            elif node.kind == "act":
                kind = ACTIVATIONS[node.op.params["activation"]]
                slope = node.op.params["slope"]
                if crown and self.after_state[i]:
                    mask = self._to_tighten(st, i, kind, j in self.pooled)
                    one_side = kind in (RELU, LEAKY_RELU) and j not in self.pooled
                    self._tighten(st, i, mask, one_side)
                zl, zu = L[i], U[i]
                rel = tuple(xp.empty_like(zl) for _ in range(4))
                k.crit_relax(zl, zu, kind, slope, *rel)
                aL, bL, aU, bU = rel
                bad = _unstable(zl, zu, kind)
                stable &= ~bad.any(axis=1)
                mz = xp.maximum(xp.abs(zl), xp.abs(zu))
                amax = xp.maximum(xp.abs(aL), xp.abs(aU))
                bmax = xp.maximum(xp.abs(bL), xp.abs(bU))
                # per unit |lam|: lam a rounded (eps a m), the sum of the lam b (gamma b);
                # an unstable neuron's line, computed in floating point, may miss the
                # activation by a few ulps of its terms (as the dense path)
                act = amax * mz * _EPS + bmax * (2 * _gamma(node.dim + 1))
                act += xp.where(bad, (amax * mz + mz + bmax + 1) * (8 * _EPS), 0)
                st.relax[j] = {"rel": rel, "act": act}
                L[j], U[j] = zl.copy(), zu.copy()
                k.crit_interval(L[j], U[j], kind, slope)
            elif node.kind == "maxpool2d":
                op = node.op
                if crown and self.after_state[i]:
                    self._tighten(st, i, self._unstable_pool(st, i, op))
                wl = windows(L[i], op, -np.inf, xp)
                wu = windows(U[i], op, -np.inf, xp)
                best = wl.argmax(axis=-1)
                top_l = wl.max(axis=-1)
                chosen = xp.arange(op.window) == best[..., None]
                others = xp.where(chosen, -np.inf, wu)
                decided = top_l >= others.max(axis=-1)
                umax = wu.max(axis=-1)
                wm = xp.maximum(xp.abs(wl), xp.abs(wu))
                wm = xp.where(xp.isfinite(wm), wm, 0).max(axis=-1)
                stable &= decided.reshape(n, -1).all(axis=1)
                st.relax[j] = {
                    "best": best.reshape(n, -1),
                    "decided": decided.reshape(n, -1),
                    "umax": umax.reshape(n, -1),
                    "mag": wm.reshape(n, -1),
                }
                L[j] = xp.ascontiguousarray(top_l.reshape(n, -1))
                U[j] = xp.ascontiguousarray(umax.reshape(n, -1))
            else:  # pragma: no cover
                raise AssertionError(node.kind)
            st.mag[j] = xp.maximum(xp.abs(L[j]), xp.abs(U[j]))
        return st

    def _folds(self, i: int) -> bool:
        """Whether an activation step adds the allowance of the affine node i below it
        (its only consumer: the rows reach i through the activation alone)."""
        return self.nodes[i].kind in _graph._AFFINE and self.consumers[i] == 1

    def _to_tighten(self, st: Bounds, i: int, kind: int, pooled: bool) -> Any:
        """The neurons whose bounds the relaxations read (n, dim): the unstable ones, and
        where the activation's output is max-pooled every neuron whose output is not a
        constant on the box (the pooling's relaxation reads their output's bounds)."""
        zl, zu = st.L[i], st.U[i]
        mask = _unstable(zl, zu, kind)
        if pooled:
            if kind == RELU:
                mask |= zu > 0
            elif kind in CLAMPS:
                mask |= (zu > CLAMPS[kind][0]) & (zl < CLAMPS[kind][1])
            elif kind != THRESHOLD:  # leaky: never constant
                mask[...] = True
        return mask

    def _unstable_pool(self, st: Bounds, i: int, op: Op) -> Any:
        """Entries of undecided windows that may hold the window's maximum (n, dim)."""
        xp = self.xp
        n = st.L[i].shape[0]
        wl = windows(st.L[i], op, -np.inf, xp)
        wu = windows(st.U[i], op, -np.inf, xp)
        top = wl.max(axis=-1, keepdims=True)
        cand = wu >= top
        cand &= (cand.sum(axis=-1) > 1)[..., None]
        idx = windows(xp.arange(self.nodes[i].dim, dtype=np.float64)[None, :], op, -1.0, xp)
        idx = xp.broadcast_to(idx.astype(np.int64), cand.shape)
        flags = xp.zeros((n, self.nodes[i].dim + 1), dtype=bool)
        s = xp.broadcast_to(xp.arange(n)[:, None, None, None, None], cand.shape)
        flags[s[cand], xp.where(idx[cand] >= 0, idx[cand], self.nodes[i].dim)] = True
        return flags[:, :-1]

    def _tighten(self, st: Bounds, i: int, mask: Any, one_side: bool = False) -> None:
        """CROWN bounds of node i's entries in ``mask`` (n, dim), in place on its bounds.

        An activation's or max pooling's output is not tightened: its bounds are the
        image of its input's (tightened) bounds, which CROWN through the relaxation
        cannot improve. ``one_side`` (a ReLU's input, not max-pooled): each neuron's
        bound on the side nearer 0 first (the lower one where ``-l < u``), the other only
        where the first left it unstable: a stable neuron's relaxation is exact whatever
        its other bound, so the relaxations are those of both sides computed."""
        if i in st.tightened or self.nodes[i].kind in ("act", "maxpool2d"):
            return
        st.tightened.add(i)
        xp = self.xp
        L, U = st.L[i], st.U[i]
        s_idx, j_idx = xp.nonzero(mask)
        s_idx = s_idx.astype(np.int64)
        if not one_side:
            both = xp.concatenate([xp.ones(s_idx.size), -xp.ones(s_idx.size)])
            ss, jj = xp.concatenate([s_idx, s_idx]), xp.concatenate([j_idx, j_idx])
            self._tighten_rows(st, i, ss, jj, both)
        else:
            first = xp.where(-L[s_idx, j_idx] < U[s_idx, j_idx], 1.0, -1.0)
            self._tighten_rows(st, i, s_idx, j_idx, first)
            left = (L[s_idx, j_idx] < 0) & (U[s_idx, j_idx] > 0)
            self._tighten_rows(st, i, s_idx[left], j_idx[left], -first[left])
        st.mag[i] = xp.maximum(xp.abs(L), xp.abs(U))

    def _tighten_rows(self, st: Bounds, i: int, s_idx: Any, j_idx: Any, sign: Any) -> None:
        """CROWN bound of ``sign * value_i[j]`` for each (sample, entry, sign), by chunks;
        lower bounds (sign 1) raise ``L``, upper bounds (sign -1) lower ``U``."""
        xp = self.xp
        L, U = st.L[i], st.U[i]
        width = max(node.dim for node in self.nodes)
        chunk = max(1, _ROW_BYTES // (8 * width))
        for a in range(0, s_idx.size, chunk):
            s, jj, sg = s_idx[a : a + chunk], j_idx[a : a + chunk], sign[a : a + chunk]
            bound, _ = self.backward_unit(st, i, jj, sg, s)
            lo, up = sg > 0, sg < 0
            L[s[lo], jj[lo]] = xp.maximum(L[s[lo], jj[lo]], bound[lo])
            U[s[up], jj[up]] = xp.minimum(U[s[up], jj[up]], -bound[up])

    # ---------------------------------------------------------------- backward
    def backward_unit(
        self, st: Bounds, start: int, j: Any, sign: Any, rows: Any
    ) -> tuple[Any, Any]:
        """Lower bounds of ``sign_r * value_start[j_r]`` over each row's box."""
        xp = self.xp
        node = self.nodes[start]
        R = rows.shape[0]
        const = xp.zeros(R)
        err = xp.zeros(R)
        i = node.inputs[0] if node.inputs else 0
        if node.kind == "linear":
            # the op's row itself, on its input: exact (no product)
            lam = node.op.arrays["weight"][j] * sign[:, None]
            const += node.op.arrays["bias"][j] * sign
            return self.backward(st, {i: lam}, i, rows, const, err)
        if node.kind == "conv2d" and self._patch_pays(start):
            return self._patch_backward(st, start, j, sign, rows)
        if node.kind == "channel_affine" and self._bn_after_conv(start):
            # a BatchNorm kept after a convolution: the convolution's rows scaled
            return self._patch_backward(st, i, j, sign, rows, scale=node.op)
        if node.kind in ("add", "channel_affine") and len(self._shape(start)) == 3:
            # unit rows: 1x1 patches, grown by the convolutions below
            C, H, W = self._shape(start)
            lam = xp.zeros((R, C, 1, 1))
            lam[xp.arange(R), j // (H * W), 0, 0] = sign
            p = j % (H * W)
            return self._patch_walk(st, {start: (lam, p // W, p % W)}, rows, const, err)
        lam = xp.zeros((R, node.dim))
        lam[xp.arange(R), j] = sign
        return self.backward(st, {start: lam}, start, rows, const, err)

    # ------------------------------------------------------- patches (local rows)
    def _shape(self, k: int) -> tuple[int, ...]:
        node = self.nodes[k]
        return tuple(self.m.graph.input_shape) if node.op is None else tuple(node.op.out_shape)

    def _paths(self, i: int, start: int) -> int:
        """Consumers of node i that a backward pass from ``start`` can reach i through
        (at most ``start`` in execution order; those after it are downstream): with one,
        the rows reach i along a single path (a residual fork's other branch, used after
        ``start``, adds nothing)."""
        return sum(1 for k in self.users[i] if k <= start)

    def _bn_after_conv(self, k: int) -> bool:
        i = self.nodes[k].inputs[0]
        return self.nodes[i].kind == "conv2d" and self._paths(i, k) == 1 and self._patch_pays(i)

    def _patch_pays(self, start: int) -> bool:
        """A convolution's rows are local (its kernel's window): carried as patches
        while the nodes below are convolutions, activations and channel maps, if the
        window is well under the input's size."""
        op = self.nodes[start].op
        i = self.nodes[start].inputs[0]
        if len(op.in_shape) != 3 or self._paths(i, start) != 1 or i == 0:
            return False
        kh, kw = op.params["kernel"]
        dh, dw = op.params["dilation"]
        _, H, W = op.in_shape
        return ((kh - 1) * dh + 1) * ((kw - 1) * dw + 1) * 2 <= H * W

    def _patch_backward(
        self, st: Bounds, start: int, j: Any, sign: Any, rows: Any, scale: Op | None = None
    ) -> tuple[Any, Any]:
        """:meth:`backward_unit` of a convolution's rows carried as patches: each row
        is nonzero on a window of the value it acts on, ``(C, h, w)`` at (y0, x0) (the
        rows of one output position share it); the window grows through each
        convolution below. The same steps and allowances as :meth:`backward`, on the
        per-row windows of the per-sample arrays (gathered, zero outside the image);
        where a node below is of another kind, the patch is placed into a full row and
        :meth:`backward` goes on from there. ``scale``: a channel map after the
        convolution (a kept BatchNorm), the rows' start (its products rounded: eps)."""
        xp = self.xp
        node = self.nodes[start]
        op = node.op
        R = rows.shape[0]
        _, Ho, Wo = op.out_shape
        o, p = j // (Ho * Wo), j % (Ho * Wo)
        (pt, _), (pl, _) = op.params["pads"]
        sh, sw = op.params["stride"]
        y0 = (p // Wo) * sh - pt
        x0 = (p % Wo) * sw - pl
        lam = self._dilated(start)[o] * sign[:, None, None, None]
        const = op.arrays["bias"][o] * sign if "bias" in op.arrays else xp.zeros(R)
        err = xp.zeros(R)
        cur = node.inputs[0]
        if scale is not None:
            a, b = scale.arrays["scale"][o], scale.arrays["shift"][o]
            lam = lam * a[:, None, None, None]
            const = const * a
            err += (xp.abs(const) + xp.abs(b)) * (4 * _EPS)
            const = const + b * sign
            h, w = lam.shape[2], lam.shape[3]
            at, m = self._gather(st, cur, "mag", rows, y0, x0, h, w)
            self._dot_abs(xp.ascontiguousarray(lam.reshape(R, -1)), at, m, err, 2 * _EPS)
        lam = self._mask(lam, cur, y0, x0)
        return self._patch_walk(st, {cur: (lam, y0, x0)}, rows, const, err)

    def _patch_walk(self, st: Bounds, pend: dict[int, Any], rows: Any, const: Any, err: Any):
        """Carry patches ``pend`` (node -> (patches, y0, x0)) down to the input, node by
        node in reverse execution order (a node after all its consumers): through
        activations, convolutions, channel maps and residual sums (both inputs take
        the patch; where two meet, their windows are united: the same relative offset
        on every row, else both become full rows). At any other node every pending
        patch becomes a full row and :meth:`backward` goes on."""
        xp, k = self.xp, self.k
        R = rows.shape[0]
        cmag = xp.abs(const)
        folded: set[int] = set()  # affine nodes whose allowance an activation step added
        for cur in range(max(pend), -1, -1):
            if cur not in pend:
                continue
            if cur == 0:
                lam, y0, x0 = pend.pop(0)
                h, w = lam.shape[2], lam.shape[3]
                flat = xp.ascontiguousarray(lam.reshape(R, -1))
                at, g = self._gathers(st, 0, ("L", "U", "mag"), rows, y0, x0, h, w)
                k.crit_concretize(flat, at, g[0], g[1], const)
                cmag += xp.abs(const)
                self._dot_abs(flat, at, g[2], err, 2 * _gamma(flat.shape[1] + 2))
                err += cmag * (2 * _gamma(2))
                bound = const - (err * 1.01 + 4e-300)
                return xp.where(xp.isnan(bound), -xp.inf, bound), None
            nd = self.nodes[cur]
            if nd.kind not in ("act", "conv2d", "channel_affine", "add") or pend[cur][0].ndim == 2:
                full = {i: self._densify(*v, i) for i, v in pend.items()}
                err += cmag * (2 * _gamma(2))  # the constant's updates so far
                bound, lam_x = self.backward(st, full, cur, rows, const, err)
                return bound, lam_x
            lam, y0, x0 = pend.pop(cur)
            C = self._shape(cur)[0]
            h, w = lam.shape[2], lam.shape[3]
            flat = xp.ascontiguousarray(lam.reshape(R, -1))
            below = nd.inputs[0]
            if nd.kind == "add":
                self._merge(pend, nd.inputs[1], (lam.copy(), y0, x0), err, st, rows)
            elif nd.kind == "act":
                shared = self._shared(rows, y0, x0)
                keys = ("aL", "bL", "aU", "bU", "act")
                at, g = self._gathers(st, cur, keys, rows, y0, x0, h, w, shared)
                fold = self._folds(below)
                lin = g[4]
                if fold:
                    lin = self._gathers(st, below, ("vmag",), rows, y0, x0, h, w, shared)[1][0]
                k.crit_backward_err(flat, at, *g, lin, fold, const, err)
                if fold:
                    folded.add(below)
                cmag += xp.abs(const)
                lam = flat.reshape(R, C, h, w)
            elif nd.kind == "channel_affine":
                if cur not in folded:
                    at, v = self._gather(st, cur, "vmag", rows, y0, x0, h, w)
                    self._dot_abs(flat, at, v, err, 1.0)
                shift, scale = nd.op.arrays["shift"], nd.op.arrays["scale"]
                const += lam.sum(axis=(2, 3)) @ shift
                err += (xp.abs(lam).sum(axis=(2, 3)) @ xp.abs(shift)) * (2 * _gamma(C * h * w + 2))
                cmag += xp.abs(const)
                lam = lam * scale[None, :, None, None]
            else:  # conv2d
                cop = nd.op
                if cur not in folded:
                    at, v = self._gather(st, cur, "vmag", rows, y0, x0, h, w)
                    self._dot_abs(flat, at, v, err, 1.0)
                if "bias" in cop.arrays:
                    b = cop.arrays["bias"]
                    const += lam.sum(axis=(2, 3)) @ b
                    err += (xp.abs(lam).sum(axis=(2, 3)) @ xp.abs(b)) * (2 * _gamma(C * h * w + 2))
                    cmag += xp.abs(const)
                lam = _conv_back_patch(lam, cop, xp)
                (pt, _), (pl, _) = cop.params["pads"]
                sh, sw = cop.params["stride"]
                y0, x0 = y0 * sh - pt, x0 * sw - pl
                lam = self._mask(lam, below, y0, x0)
            self._merge(pend, below, (lam, y0, x0), err, st, rows)
        raise AssertionError("the input node was not reached")  # pragma: no cover

    def _merge(self, pend: dict[int, Any], i: int, item: Any, err: Any, st: Bounds, rows):
        """Add patches ``item`` to those pending at node i: on the union of the two
        windows where their offsets differ by one constant (else both as full rows,
        a (R, dim) array kept under the same key: ``_densify`` passes them through).
        The sum's rounding: eps |sum| . |value| (as :meth:`backward`)."""
        xp = self.xp
        have = pend.get(i)
        if have is None:
            pend[i] = item
            return
        (la, ya, xa), (lb, yb, xb) = have, item
        same = la.ndim == 4 and lb.ndim == 4
        if same:
            dy, dx = yb - ya, xb - xa
            same = bool((dy == dy[0]).all() & (dx == dx[0]).all())
        if same:
            oy, ox = int(dy[0]), int(dx[0])
            top, left = min(0, oy), min(0, ox)
            hu = max(la.shape[2], oy + lb.shape[2]) - top
            wu = max(la.shape[3], ox + lb.shape[3]) - left
            u = xp.zeros((la.shape[0], la.shape[1], hu, wu))
            u[:, :, -top : -top + la.shape[2], -left : -left + la.shape[3]] += la
            u[:, :, oy - top : oy - top + lb.shape[2], ox - left : ox - left + lb.shape[3]] += lb
            y0, x0 = ya + top, xa + left
            flat = xp.ascontiguousarray(u.reshape(u.shape[0], -1))
            at, m = self._gather(st, i, "mag", rows, y0, x0, hu, wu)
            self._dot_abs(flat, at, m, err, _EPS)
            pend[i] = (u, y0, x0)
            return
        full = self._densify(*have, i) + self._densify(*item, i)
        self._dot_abs(full, rows, st.mag[i], err, _EPS)
        pend[i] = (full, None, None)

    def _dilated(self, k: int) -> Any:
        """A convolution's kernels on all input channels, dilated: (O, C, h, w) (cached;
        zero on other groups' channels and between dilated taps)."""
        got = self._tables.get(k)
        if got is None:
            xp = self.xp
            op = self.nodes[k].op
            n_out = op.out_shape[0]
            C = op.in_shape[0]
            g = op.params["groups"]
            cg, og = C // g, n_out // g
            kh, kw = op.params["kernel"]
            dh, dw = op.params["dilation"]
            got = xp.zeros((n_out, C, (kh - 1) * dh + 1, (kw - 1) * dw + 1))
            wt = op.arrays["weight"]
            for gi in range(g):
                got[gi * og : (gi + 1) * og, gi * cg : (gi + 1) * cg, ::dh, ::dw] = wt[
                    gi * og : (gi + 1) * og
                ]
            self._tables[k] = got
        return got

    def _mask(self, lam: Any, k: int, y0: Any, x0: Any) -> Any:
        """Zero the patch entries outside node k's image (they meet zero padding), in
        place (``lam`` is always a fresh array of the caller's)."""
        xp = self.xp
        _, H, W = self._shape(k)
        h, w = lam.shape[2], lam.shape[3]
        ys = y0[:, None] + xp.arange(h)[None, :]
        xs = x0[:, None] + xp.arange(w)[None, :]
        my = (ys >= 0) & (ys < H)
        mx = (xs >= 0) & (xs < W)
        if bool(my.all()) and bool(mx.all()):
            return lam
        lam *= my[:, None, :, None]
        lam *= mx[:, None, None, :]
        return lam

    def _padded(self, st: Bounds, k: int, key: str, pad: int) -> tuple[int, Any]:
        """A per-sample array of node k as (n, C, H + 2 pad, W + 2 pad), zero outside
        the image (cached per pass)."""
        xp = self.xp
        got = st.padded.get((k, key))
        if got is not None and got[0] >= pad:
            return got
        C, H, W = self._shape(k)
        if key in ("L", "U", "mag"):
            arr = {"L": st.L, "U": st.U, "mag": st.mag}[key][k]
        elif key == "vmag":
            arr = st.vmag[k]
        elif key == "act":
            arr = st.relax[k]["act"]
        else:
            arr = st.relax[k]["rel"][("aL", "bL", "aU", "bU").index(key)]
        n = arr.shape[0]
        out = xp.zeros((n, C, H + 2 * pad, W + 2 * pad))
        out[:, :, pad : pad + H, pad : pad + W] = arr.reshape(n, C, H, W)
        st.padded[(k, key)] = (pad, out)
        return pad, out

    def _window(self, k: int, y0: Any, x0: Any, h: int, w: int) -> int:
        """Padding that holds every row's window of node k's image."""
        _, H, W = self._shape(k)
        return max(h, w, int(-y0.min()), int(-x0.min()), int((y0 + h - H).max()),
                   int((x0 + w - W).max()), 0)  # fmt: skip

    def _gather(self, st: Bounds, k: int, key: str, rows, y0, x0, h: int, w: int) -> Any:
        """The rows' windows of a per-sample array of node k, each distinct window once:
        (index (R,), windows (U, C h w)), row r's window ``windows[index[r]]``, zero
        outside the image (the kernels read it through ``index`` as through a sample
        index)."""
        index, (got,) = self._gathers(st, k, (key,), rows, y0, x0, h, w)
        return index, got

    def _gathers(self, st: Bounds, k: int, keys, rows, y0, x0, h: int, w: int, shared=None):
        """:meth:`_gather` of several arrays of node k at the same windows; ``shared``:
        (index, first) of :meth:`_shared` when known."""
        index, first = shared if shared is not None else self._shared(rows, y0, x0)
        return index, self._take_windows(st, k, keys, rows[first], y0[first], x0[first], h, w)

    def _shared(self, rows: Any, y0: Any, x0: Any) -> tuple[Any, Any]:
        """Rows that read the same window (one sample, one origin: e.g. one position's
        output channels, and both signs of each) share it: (index (R,) into the distinct
        windows, the first row of each)."""
        xp = self.xp
        ya, xa = y0 - y0.min(), x0 - x0.min()
        wy, wx = int(ya.max()) + 1, int(xa.max()) + 1
        key = (rows * wy + ya) * wx + xa
        _, first, index = xp.unique(key, return_index=True, return_inverse=True)
        return xp.ascontiguousarray(index.reshape(-1).astype(np.int64)), first

    def _take_windows(self, st: Bounds, k: int, keys, rows, y0, x0, h: int, w: int) -> list[Any]:
        """The windows of node k's arrays ``keys`` at the given rows: their flat indices
        computed once, each window one ``take`` of whole ``(C, h, w)`` blocks in the
        patches' own order (no transpose)."""
        xp = self.xp
        need = self._window(k, y0, x0, h, w)
        C = self._shape(k)[0]
        index: dict[int, Any] = {}
        out = []
        for key in keys:
            pad, arr = self._padded(st, k, key, need)
            idx = index.get(pad)
            if idx is None:
                _, _, Hp, Wp = arr.shape
                base = rows * (C * Hp * Wp) + (y0 + pad) * Wp + (x0 + pad)
                off = xp.arange(C)[:, None, None] * (Hp * Wp)
                off = off + xp.arange(h)[None, :, None] * Wp + xp.arange(w)[None, None, :]
                idx = index[pad] = base[:, None] + off.reshape(1, -1)
            out.append(arr.reshape(-1).take(idx))
        return out

    def _densify(self, lam: Any, y0: Any, x0: Any, k: int) -> Any:
        """Patches placed into full rows of node k's value: (R, C H W) (full rows as
        they are)."""
        xp = self.xp
        if lam.ndim == 2:
            return lam
        C, H, W = self._shape(k)
        R, _, h, w = lam.shape
        pad = self._window(k, y0, x0, h, w)
        full = xp.zeros((R, H + 2 * pad, W + 2 * pad, C))
        Y = (y0 + pad)[:, None, None] + xp.arange(h)[None, :, None]
        X = (x0 + pad)[:, None, None] + xp.arange(w)[None, None, :]
        full[xp.arange(R)[:, None, None], Y, X] = lam.transpose(0, 2, 3, 1)
        full = full[:, pad : pad + H, pad : pad + W, :].transpose(0, 3, 1, 2)
        return xp.ascontiguousarray(full).reshape(R, -1)

    def backward(
        self, st: Bounds, lams: dict[int, Any], top: int, rows: Any, const: Any, err: Any
    ) -> tuple[Any, Any]:
        """Carry the coefficients ``lams`` (node -> rows' coefficients) down to the input:
        (lower bound of each row's linear function plus ``const``, lam on the input).

        ``err`` holds the rounding allowance so far (in place)."""
        xp, k = self.xp, self.k
        cmag = xp.abs(const)
        lam = None
        folded: set[int] = set()  # affine nodes whose allowance an activation step added
        for j in range(top, 0, -1):
            lam = lams.pop(j, None)
            if lam is None:
                continue
            node = self.nodes[j]
            op = node.op
            if node.kind == "add":
                out = [(node.inputs[0], lam), (node.inputs[1], lam.copy())]
            elif node.kind == "cat":  # exact: each input takes its columns
                cut = self.nodes[node.inputs[0]].dim
                out = [
                    (node.inputs[0], xp.ascontiguousarray(lam[:, :cut])),
                    (node.inputs[1], xp.ascontiguousarray(lam[:, cut:])),
                ]
            elif node.kind in _graph._AFFINE:
                # err: |rounding of lam A| . |h below| <= gamma_t |lam| . (|A| |h|)
                if j not in folded:
                    self._dot_abs(lam, rows, st.vmag[j], err, 1.0)
                bias = op.arrays.get("bias", op.arrays.get("shift"))
                if bias is not None:
                    per = lam.reshape(lam.shape[0], bias.shape[0], -1).sum(axis=2)
                    const += per @ bias
                    ab = xp.abs(lam).reshape(lam.shape[0], bias.shape[0], -1).sum(axis=2)
                    err += (ab @ xp.abs(bias)) * (2 * _gamma(node.dim + 2))
                    cmag += xp.abs(const)
                out = [(node.inputs[0], self._back_affine(op, lam))]
            elif node.kind == "act":
                rel = st.relax[j]
                lam = xp.ascontiguousarray(lam)
                i = node.inputs[0]
                fold = self._folds(i)
                lin = st.vmag[i] if fold else rel["act"]
                k.crit_backward_err(lam, rows, *rel["rel"], rel["act"], lin, fold, const, err)
                if fold:
                    folded.add(i)
                cmag += xp.abs(const)
                out = [(node.inputs[0], lam)]
            elif node.kind == "maxpool2d":
                rel = st.relax[j]
                dec = rel["decided"][rows]
                route = xp.where((lam >= 0) | dec, lam, 0.0)
                const += xp.where((lam < 0) & ~dec, lam * rel["umax"][rows], 0.0).sum(axis=1)
                cmag += xp.abs(const)
                # the constant's products and sum, and the routed sums of overlapping
                # windows, each within gamma of their magnitudes
                g = _gamma(op.window + node.dim + 4) * 2
                self._dot_abs(lam, rows, rel["mag"], err, g)
                nxt = _graph_spread(route, op, xp, rel["best"][rows])
                out = [(node.inputs[0], nxt)]
            else:  # pragma: no cover
                raise AssertionError(node.kind)
            for i, v in out:
                have = lams.get(i)
                if have is None:
                    lams[i] = v
                else:
                    have += v
                    self._dot_abs(have, rows, st.mag[i], err, _EPS)
        lam = lams.pop(0)
        lam = xp.ascontiguousarray(lam)
        self.k.crit_concretize(lam, rows, st.L[0], st.U[0], const)
        cmag += xp.abs(const)
        self._dot_abs(lam, rows, st.mag[0], err, 2 * _gamma(lam.shape[1] + 2))
        err += cmag * (2 * _gamma(2))
        bound = const - (err * 1.01 + 4e-300)
        return xp.where(xp.isnan(bound), -xp.inf, bound), lam

    def _dot_abs(self, lam: Any, rows: Any, v: Any, err: Any, factor: float) -> None:
        """``err += factor * sum_j |lam_rj| v[rows_r, j]`` (v >= 0), without gathering v."""
        xp = self.xp
        neg = xp.zeros(lam.shape[0])
        lam = xp.ascontiguousarray(lam)
        self.k.crit_concretize(lam, rows, xp.ascontiguousarray(-v), xp.ascontiguousarray(v), neg)
        err -= neg * (factor * (1 + 4 * _EPS))

    def _back_affine(self, op: Op, lam: Any) -> Any:
        from ._graph_critical import _back_op

        return _back_op(op, lam, self.xp)


def _conv_back_patch(lam: Any, op: Op, xp: Any) -> Any:
    """The transposed convolution of patches ``(R, O, h, w)`` on the op's output: the
    patches ``(R, C, (h-1) s + (k-1) d + 1, ...)`` on its input (padding kept: the
    caller masks it)."""
    from ._graph_critical import conv_transpose

    _, _, h, w = lam.shape
    kh, kw = op.params["kernel"]
    dh, dw = op.params["dilation"]
    sh, sw = op.params["stride"]
    size = ((h - 1) * sh + (kh - 1) * dh + 1, (w - 1) * sw + (kw - 1) * dw + 1)
    return conv_transpose(lam, op, xp, size)


def _unstable(zl: Any, zu: Any, kind: int) -> Any:
    from .critical import _unstable as unstable

    return unstable(zl, zu, kind)


def _graph_spread(g: Any, op: Op, xp: Any, argmax: Any) -> Any:
    from ._graph_critical import _spread

    return _spread(g, op, xp, argmax)
