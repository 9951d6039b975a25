"""alpha-CROWN (Xu et al. 2021) on a layer graph: the final margin rows' lower slopes
optimized through convolutions, max pooling and residual additions.

The dense path's alpha-CROWN (``fastmem.critical._alpha_crown``) on the nodes of
:mod:`fastmem._graph_crown`: each margin row ``f_c - f_j`` of a sample that graph CROWN
leaves unknown gets its own slopes ``alpha`` of the lower relaxation lines ``alpha z`` of
its unstable ReLU neurons (leaky ReLU of slope ``s <= 1``: ``alpha`` in ``[s, 1]``), and
projected Adam steps on them ascend the row's CROWN bound; the intermediate bounds, the
upper lines and max pooling's relaxation are CROWN's, kept fixed (as auto_LiRPA's
alpha-CROWN for the final specification, which also optimizes the intermediate layers'
slopes: looser here, and much cheaper).

**The optimization** runs in float64 without rounding control, batched over rows (no
loop over samples): a backward pass over the nodes (as ``GraphCrown.backward``, full
rows: ``lam A`` for affine ops, both inputs of a residual sum, the chosen line of an
activation, max pooling routed to the argmax of its largest lower bound or replaced by
the constant ``max u``), then the gradient of the bound with respect to every node's
coefficients by one forward pass over the nodes: at the input ``d/d lam_0 = lo`` where
``lam_0 >= 0`` else ``hi``; an affine op's ``d/d lam = A g + b`` (the op applied to its
input's gradient, bias included: the row's constant gains ``lam . b``); a residual sum's
the sum of its inputs'; an activation's ``g a + t`` (its line's slope and offset), and
the slopes' gradient ``g lam`` where the lower line is taken; max pooling's the gathered
gradient of each window's chosen entry, or ``max u`` where the constant is taken. Each
row keeps its best slopes (started at CROWN's own choice).

**The bound** is then computed again by ``GraphCrown.backward`` with the best slopes and
the same rounding allowances as graph CROWN (the activation step's allowance recomputed
for the new slopes): rigorous whatever the slopes' values, since any ``alpha`` in
``[0, 1]`` (``[s, 1]``) gives a valid lower line. Each row's result is the better of it
and CROWN's row; a sample's margin the smallest of its rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _graph
from ._adam import projected_adam_step
from ._graph import apply_affine, windows
from ._graph_crown import Bounds, GraphCrown, _gamma, _unstable
from ._kinds import ACTIVATIONS, LEAKY_RELU, RELU

__all__ = ["alpha_rows"]

_EPS = float(np.finfo(np.float64).eps)
# bytes of one chunk's per-row state (coefficients, gradients, slopes, Adam moments, the
# rows' copies of the relaxations): rows are optimized in chunks of about this size
_CHUNK_BYTES = 96 * 2**20


def _lower_mask(cr: GraphCrown, st: Bounds, j: int) -> Any:
    """The neurons of activation node j whose lower line alpha-CROWN optimizes (n, dim):
    unstable ReLU, and leaky ReLU of slope <= 1 (valid lower lines a z, a in [s, 1])."""
    op = cr.nodes[j].op
    kind = ACTIVATIONS[op.params["activation"]]
    i = cr.nodes[j].inputs[0]
    zl, zu = st.L[i], st.U[i]
    if kind == RELU or (kind == LEAKY_RELU and float(op.params["slope"]) <= 1):
        return (zl < 0) & (zu > 0)
    return cr.xp.zeros(zl.shape, dtype=bool)


def _floor(cr: GraphCrown, j: int) -> float:
    op = cr.nodes[j].op
    return float(op.params["slope"]) if ACTIVATIONS[op.params["activation"]] == LEAKY_RELU else 0.0


def _rows_bounds(cr: GraphCrown, st: Bounds, s: Any) -> Bounds:
    """The pass's per-sample arrays taken at the samples ``s`` of a chunk's rows (a row
    indexes itself in the backward pass: its slopes are its own)."""
    N = len(cr.nodes)
    L, U = [None] * N, [None] * N
    L[0], U[0] = st.L[0][s], st.U[0][s]
    relax: dict[int, dict[str, Any]] = {}
    for j, rel in st.relax.items():
        if "rel" in rel:
            relax[j] = {"rel": tuple(a[s] for a in rel["rel"]), "act": rel["act"][s]}
        else:
            relax[j] = {key: v[s] for key, v in rel.items()}
    return Bounds(
        L,
        U,
        [None if m is None else m[s] for m in st.mag],
        {j: v[s] for j, v in st.vmag.items()},
        relax,
        set(),
        st.stable[s],
    )


def _act_allowance(cr: GraphCrown, j: int, rel: tuple, mz: Any, bad: Any) -> Any:
    """The activation step's rounding allowance per unit |lam| (``GraphCrown.bounds``),
    for lines ``rel``."""
    xp = cr.xp
    aL, bL, aU, bU = rel
    amax = xp.maximum(xp.abs(aL), xp.abs(aU))
    bmax = xp.maximum(xp.abs(bL), xp.abs(bU))
    act = amax * mz * _EPS + bmax * (2 * _gamma(cr.nodes[j].dim + 1))
    act += xp.where(bad, (amax * mz + mz + bmax + 1) * (8 * _EPS), 0)
    return act


def _pass(cr: GraphCrown, st: Bounds, lam0: Any, alpha: dict[int, Any], lo: Any, hi: Any):
    """One backward pass of every row (float64, no rounding control): the bounds (R,)
    and what the gradient needs (each state node's coefficients and choices)."""
    xp = cr.xp
    nodes = cr.nodes
    top = len(nodes) - 1
    R = lam0.shape[0]
    lams = {top: lam0}
    const = xp.zeros(R)
    saved: dict[int, Any] = {}
    for j in range(top, 0, -1):
        lam = lams.pop(j, None)
        if lam is None:
            continue
        node = nodes[j]
        op = node.op
        if node.kind == "add":
            out = [(node.inputs[0], lam), (node.inputs[1], lam)]
        elif node.kind == "cat":
            cut = nodes[node.inputs[0]].dim
            out = [(node.inputs[0], lam[:, :cut]), (node.inputs[1], lam[:, cut:])]
        elif node.kind in _graph._AFFINE:
            bias = op.arrays.get("bias", op.arrays.get("shift"))
            if bias is not None:
                const += lam.reshape(R, bias.shape[0], -1).sum(axis=2) @ bias
            out = [(node.inputs[0], cr._back_affine(op, lam))]
        elif node.kind == "act":
            _, bL, aU, bU = st.relax[j]["rel"]
            pos = lam >= 0
            a = xp.where(pos, alpha[j], aU)
            t = xp.where(pos, bL, bU)
            const += (lam * t).sum(axis=1)
            saved[j] = (lam, pos, a, t)
            out = [(node.inputs[0], lam * a)]
        elif node.kind == "maxpool2d":
            rel = st.relax[j]
            keep = (lam >= 0) | rel["decided"]
            const += xp.where(keep, 0.0, lam * rel["umax"]).sum(axis=1)
            saved[j] = keep
            route = xp.where(keep, lam, 0.0)
            from ._graph_critical import _spread

            out = [(node.inputs[0], _spread(route, op, xp, rel["best"]))]
        else:  # pragma: no cover
            raise AssertionError(node.kind)
        for i, v in out:
            have = lams.get(i)
            lams[i] = v if have is None else have + v
    lam_x = lams.pop(0)
    pos_x = lam_x >= 0
    bound = const + xp.where(pos_x, lam_x * lo, lam_x * hi).sum(axis=1)
    return bound, saved, xp.where(pos_x, lo, hi)


def _grads(cr: GraphCrown, st: Bounds, saved: dict, g0: Any, masks: dict[int, Any]) -> dict:
    """The bound's gradient with respect to each activation node's lower slopes, by one
    forward pass over the nodes of ``d bound / d lam`` (see the module)."""
    xp = cr.xp
    nodes = cr.nodes
    top = len(nodes) - 1
    left = [len(u) for u in cr.users]  # consumers still to read each node's gradient
    g: dict[int, Any] = {0: g0}
    grads: dict[int, Any] = {}
    for j in range(1, top):
        node = nodes[j]
        op = node.op
        i = node.inputs[0]
        if node.kind == "add":
            gj = g[node.inputs[0]] + g[node.inputs[1]]
        elif node.kind == "cat":
            gj = xp.concatenate([g[node.inputs[0]], g[node.inputs[1]]], axis=1)
        elif node.kind in _graph._AFFINE:
            gj = apply_affine(op, g[i], xp)
        elif node.kind == "act":
            lam, pos, a, t = saved[j]
            grads[j] = xp.where(pos & masks[j], g[i] * lam, 0.0)
            gj = g[i] * a
            gj += t
        elif node.kind == "maxpool2d":
            R = g[i].shape[0]
            w = windows(g[i], op, 0.0, xp)
            best = st.relax[j]["best"].reshape(w.shape[:-1])[..., None]
            picked = xp.take_along_axis(w, best, axis=-1).reshape(R, -1)
            gj = xp.where(saved[j], picked, st.relax[j]["umax"])
        else:  # pragma: no cover
            raise AssertionError(node.kind)
        for k in node.inputs:
            left[k] -= 1
            if left[k] == 0:
                g.pop(k, None)
        g[j] = gj
    return grads


def alpha_rows(
    cr: GraphCrown, st: Bounds, samples: Any, lam: Any, s_of: Any, iters: int, lr: float
) -> Any:
    """Rigorous alpha-CROWN lower bounds (R,) of the margin rows ``lam`` (R, K) on the
    last node, row r belonging to sample ``samples[s_of[r]]`` of the pass ``st``."""
    xp = cr.xp
    nodes = cr.nodes
    top = len(nodes) - 1
    R = lam.shape[0]
    acts = [j for j, nd in enumerate(nodes) if nd.kind == "act"]
    if not acts or R == 0:
        return xp.full(R, -xp.inf)
    # per row: every node's coefficients and gradient, and five arrays per activation
    # (slopes, best slopes, two Adam moments, the rows' relaxations)
    per_row = 8 * (2 * sum(nd.dim for nd in nodes) + 12 * sum(nodes[j].dim for j in acts))
    chunk = max(1, _CHUNK_BYTES // per_row)
    masks_s = {j: _lower_mask(cr, st, j) for j in acts}
    bad_s = {}
    for j in acts:
        i = nodes[j].inputs[0]
        bad_s[j] = _unstable(st.L[i], st.U[i], ACTIVATIONS[nodes[j].op.params["activation"]])
    floor = {j: _floor(cr, j) for j in acts}
    out = xp.empty(R)
    for a in range(0, R, chunk):
        b = min(a + chunk, R)
        s = samples[s_of[a:b]]
        sr = _rows_bounds(cr, st, s)
        lo, hi = sr.L[0], sr.U[0]
        lam0 = xp.ascontiguousarray(lam[a:b])
        masks = {j: masks_s[j][s] for j in acts}
        alpha = {j: sr.relax[j]["rel"][0].copy() for j in acts}
        best_alpha = {j: v.copy() for j, v in alpha.items()}
        m1 = {j: xp.zeros_like(v) for j, v in alpha.items()}
        m2 = {j: xp.zeros_like(v) for j, v in alpha.items()}
        best = xp.full(b - a, -xp.inf)
        with np.errstate(over="ignore", invalid="ignore"):
            for it in range(iters + 1):
                bound, saved, g0 = _pass(cr, sr, lam0, alpha, lo, hi)
                better = bound > best
                best = xp.where(better, bound, best)
                for j in acts:
                    best_alpha[j][better] = alpha[j][better]
                if it == iters:
                    break
                grads = _grads(cr, sr, saved, g0, masks)
                del saved
                for j in acts:
                    alpha[j], m1[j], m2[j] = projected_adam_step(
                        xp, alpha[j], grads[j], m1[j], m2[j], it, lr, floor[j], masks[j]
                    )
            # the rigorous bound with each row's best slopes, graph CROWN's allowances
            for j in acts:
                _, bL, aU, bU = sr.relax[j]["rel"]
                aL = xp.ascontiguousarray(xp.where(masks[j], best_alpha[j], sr.relax[j]["rel"][0]))
                rel = (aL, bL, aU, bU)
                mz = sr.mag[nodes[j].inputs[0]]
                sr.relax[j] = {"rel": rel, "act": _act_allowance(cr, j, rel, mz, bad_s[j][s])}
            ids = xp.arange(b - a, dtype=np.int64)
            zero = xp.zeros(b - a)
            bound, _ = cr.backward(sr, {top: lam0.copy()}, top, ids, zero, zero.copy())
        out[a:b] = xp.where(xp.isnan(bound), -xp.inf, bound)
    return out
