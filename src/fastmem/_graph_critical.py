"""Critical samples on a layer graph (max pooling, residual blocks): the search's forward
and backward passes, and interval bounds (IBP).

:class:`GraphModel` stands in for ``fastmem.critical._Model`` (same interface: ``forward``
with the per-sample derivative state ``ds``, ``ce_input_grad``, ``margin_input_grad``,
``certify``), so LASS / PGD, the certificate's order, early stopping and the CSR
sandwich are the code dense networks use. What differs is the layer algebra:

- forward: the ops of ``fastmem._graph``; an activation records its derivative through the
  kernels' ``crit_activate`` (the slope convention of ``fastmem._kinds``: PyTorch
  autograd's at kinks), max pooling the argmax of each window (the first of equal
  entries, as ``torch``);
- backward: linear ``g W``; convolution its transpose (one GEMM per group, the columns
  added back tap by tap); average pooling spread over each window; max pooling routed to
  the argmax; a residual add sends the gradient into both branches and sums;
- IBP: affine ops in centre-radius form with Higham's rounding allowance
  ``2 gamma_{n+4} (|A| |c| + |b| + |A| r)`` for ``n`` terms per output (as the dense path),
  activations through the kernels' ``crit_interval``, max pooling by the max of each
  end (exact), residual sums rounded outward; the last linear op gives the class-margin
  rows ``f_c - f_j`` directly (as the dense path);
- CROWN: :mod:`fastmem._graph_crown`; alpha-CROWN (the final rows' lower slopes
  optimized on the samples CROWN leaves unknown): :mod:`fastmem._graph_alpha`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _graph
from ._graph import Op, apply_affine, windows
from ._kinds import ACTIVATIONS
from ._threads import Scratch
from .critical import _Model
from .errors import InputError

__all__ = ["GraphModel"]


class GraphModel(_Model):
    """``critical._Model`` for a network with a layer graph."""

    def __init__(self, net: Any, be: Any) -> None:
        xp = be.xp
        self.be = be
        self.k = be.kernels
        self.xp = xp
        self.dtype = net.dtype
        self.graph = net.layer_graph
        self.n_out = self.graph.output_dim
        self.n_classes = max(2, self.n_out)
        acts = self.graph.act_ops()
        self.kinds = [ACTIVATIONS[op.params["activation"]] for op in acts]
        self.slopes = [op.params["slope"] for op in acts]
        self.n_hidden = len(acts)
        self.eps = float(np.finfo(self.dtype).eps)
        self.max_width = self.graph.max_width()
        self._wide = None
        self._norm_info = None
        self._wt0_64 = None
        self.macs = []  # multiply-adds of the certificates (appended, as the dense path)
        self._abs: dict[int, Op] = {}
        self._crown: Any = None
        # the order heuristic of fastmem.critical reads sum(w.size for w in model.W) as the
        # multiply-adds of one forward pass per sample
        self.forward_macs = sum(
            self._terms(op) * op.size
            for op in _graph.walk(self.graph.ops)
            if op.kind in _graph._AFFINE
        )
        self.W = [_MacCount(self.forward_macs)]
        op = self.graph.first_structural()
        self.where = op.where if op is not None else "its layer graph"

    def wide(self) -> GraphModel:
        """The same graph in float64 (a float32 net's arrays are exact there; leaky slopes
        rounded to the dtype first, as the kernels do), for CROWN's certificate."""
        if self.dtype == np.float64:
            return self
        if self._wide is None:
            w = object.__new__(GraphModel)
            w.__dict__.update(self.__dict__)
            graph = self.graph.map_arrays(lambda a: a.astype(np.float64))
            for op in _graph.walk(graph.ops):
                if op.kind == "act":
                    op.params["slope"] = float(np.asarray(op.params["slope"], dtype=self.dtype))
            w.graph = graph
            w.slopes = [op.params["slope"] for op in graph.act_ops()]
            w.dtype = np.dtype(np.float64)
            w.eps = float(np.finfo(np.float64).eps)
            w._abs = {}
            w._wide = None
            w._crown = None
            self._wide = w
        return self._wide

    # -------------------------------------------------------------- forward
    def _forward(self, x: Any, derivs: bool, n_layers: int) -> tuple[Any, list[Any]]:
        ds: list[Any] = []
        h = _graph.forward(
            self.graph, x, self.be, derivs=ds if derivs else None, check=bool(n_layers)
        )
        if self.n_out == 1:  # one logit f: the classes are argmax (0, f)
            h = self.xp.concatenate([self.xp.zeros_like(h), h], axis=1)
        return h, ds

    # -------------------------------------------------------------- backward
    def _input_grad(self, g: Any, ds: list[Any]) -> Any:
        if self.n_out == 1:
            g = g[:, 1:2] - g[:, 0:1]
        return self._back(self.graph.ops, self.xp.ascontiguousarray(g), list(ds))

    def _back(self, ops: tuple[Op, ...], g: Any, ds: list[Any]) -> Any:
        xp = self.xp
        for op in reversed(ops):
            if op.kind in _graph._AFFINE:
                g = _back_op(op, g, xp)
            elif op.kind == "act":
                g = g * ds.pop()
            elif op.kind == "maxpool2d":
                g = _spread(g, op, xp, ds.pop())
            elif op.kind == "residual":
                gb = self._back(op.branches[1], g, ds)
                g = self._back(op.branches[0], g, ds) + gb
            elif op.kind == "concat":  # each branch gets its channels' part
                cut = _graph.branch_size(op, 0)
                gb = self._back(op.branches[1], xp.ascontiguousarray(g[:, cut:]), ds)
                g = self._back(op.branches[0], xp.ascontiguousarray(g[:, :cut]), ds) + gb
            else:  # pragma: no cover
                raise AssertionError(op.kind)
        return g

    # -------------------------------------------------------------- bounds
    def certify(self, lo: Any, hi: Any, pred: Any, method: str, keep: bool = False) -> dict:
        """Margin bounds of one batch of balls (the ``_Model.certify`` result dict).

        ``"ibp"``: interval bounds, no sample decided exactly, no corner proposed.
        ``"crown"``: :mod:`fastmem._graph_crown` in float64 (a float32 net's bounds
        rounded down to float32): per-class rows, their input coefficients (the corner
        candidates) and ``stable`` where every activation and pooling window is decided
        on the ball (the rows are then exact up to rounding). ``keep``: the pass's bounds
        and relaxations kept too (``"bounds"``, float64), for :meth:`alpha_margin`."""
        if method == "crown":
            return self._crown_certify(lo, hi, pred, keep)
        if method != "ibp":  # pragma: no cover (fastmem.critical checks the method)
            raise InputError(f"certify: unknown method {method!r}")
        xp = self.xp
        n = lo.shape[0]
        self.macs.append(3 * self.forward_macs * n)  # centre, radius and magnitude passes
        rows = self._ibp_rows(lo, hi, pred, None)
        return {
            "margin": rows.min(axis=1),
            "slack": xp.zeros(n, dtype=self.dtype),
            "stable": xp.zeros(n, dtype=bool),
            "rows": xp.full((n, self.n_classes), xp.inf, dtype=self.dtype),
            "lam_x": xp.zeros((0, lo.shape[1]), dtype=self.dtype),
            "pos": xp.zeros((n, self.n_classes), dtype=np.int64),
        }

    def _ibp_rows(self, lo: Any, hi: Any, pred: Any, bounds: Any) -> Any:
        """IBP lower bounds of ``f_c - f_j`` (n, k), +inf on the own class. ``bounds``:
        the nodes' bounds of a CROWN pass (its last linear op's input), or None."""
        xp = self.xp
        n = lo.shape[0]
        ops = self.graph.ops
        last = ops[-1]
        if last.kind == "linear":
            post = self._ibp(ops[:-1], lo, hi) if bounds is None else bounds
            rows = self._margin_rows(post, pred, last)
        else:
            zl, zu = self._ibp(ops, lo, hi) if bounds is None else bounds
            if self.n_out == 1:
                zl = xp.concatenate([xp.zeros_like(zl), zl], axis=1)
                zu = xp.concatenate([xp.zeros_like(zu), zu], axis=1)
            own = zl[xp.arange(n), pred][:, None]
            rows = xp.nextafter(own - zu, -xp.inf)
        rows[xp.arange(n), pred] = xp.inf
        return xp.where(xp.isnan(rows), -xp.inf, rows)

    def _crown_certify(self, lo: Any, hi: Any, pred: Any, keep: bool = False) -> dict:
        from ._graph_crown import GraphCrown
        from .critical import _round_down

        xp = self.xp
        n = lo.shape[0]
        K = self.n_classes
        if self.dtype != np.float64:
            f64 = np.float64
            out = self.wide().certify(lo.astype(f64), hi.astype(f64), pred, "crown", keep)
            for key in ("margin", "rows"):
                out[key] = _round_down(out[key], self.dtype, xp)
            out["lam_x"] = out["lam_x"].astype(self.dtype)
            out["slack"] = xp.zeros(n, dtype=self.dtype)  # float64 already: no recheck
            return out
        if self._crown is None:
            self._crown = GraphCrown(self)
        cr = self._crown
        b = cr.bounds(lo, hi, True)
        top = len(cr.nodes) - 1
        last = cr.nodes[top]
        s_idx, lam, pos = self._spec(pred)
        R = s_idx.size
        self.macs.append(2 * self.forward_macs * R)
        bound, lam_x = cr.backward(b, {top: lam}, top, s_idx, xp.zeros(R), xp.zeros(R))
        crown_rows = xp.full((n, K), xp.inf)
        crown_rows[pos >= 0] = bound[pos[pos >= 0]]
        last_in = last.inputs[0] if last.kind == "linear" else top
        ibp = self._ibp_rows(lo, hi, pred, (b.L[last_in], b.U[last_in]))
        margin = xp.maximum(crown_rows, ibp).min(axis=1)
        return {
            "margin": margin,
            "slack": xp.zeros(n),
            "stable": b.stable,
            "rows": crown_rows,
            "lam_x": lam_x,
            "pos": pos,
            "pre": [],
            "bounds": b if keep else None,
            "ibp_rows": ibp if keep else None,
        }

    def _spec(self, pred: Any) -> tuple[Any, Any, Any]:
        """The margin rows ``e_c - e_j`` on the logits (n_out == 1: ``+-f``, classes
        (0, f)): each row's sample (R,), the rows (R, n_out) and the row of each
        (sample, class) (n, K), -1 on the own class."""
        xp = self.xp
        n = pred.shape[0]
        K = self.n_classes
        if self.n_out == 1:
            s_idx = xp.arange(n, dtype=np.int64)
            lam = xp.where(pred == 1, 1.0, -1.0)[:, None]
            pos = xp.full((n, 2), -1, dtype=np.int64)
            pos[s_idx, 1 - pred] = s_idx
        else:
            other = xp.ones((n, K), dtype=bool)
            other[xp.arange(n), pred] = False
            s_idx, c_idx = xp.nonzero(other)
            s_idx = s_idx.astype(np.int64)
            lam = xp.zeros((s_idx.size, K))
            lam[xp.arange(s_idx.size), pred[s_idx]] = 1.0
            lam[xp.arange(s_idx.size), c_idx] = -1.0
            pos = xp.full((n, K), -1, dtype=np.int64)
            pos[s_idx, c_idx] = xp.arange(s_idx.size, dtype=np.int64)
        return s_idx, lam, pos

    def alpha_margin(self, lo: Any, hi: Any, pred: Any, out: dict, todo: Any) -> Any:
        """alpha-CROWN's margin lower bounds (len(todo),) of the samples ``todo`` of a
        CROWN pass ``out`` (``certify(..., "crown", keep=True)`` on the balls of which
        [lo, hi], pred are the rows ``todo``): :mod:`fastmem._graph_alpha`, each row the
        best of its alpha-CROWN, CROWN and IBP bounds (in the model's dtype, rounded down)."""
        from ._graph_alpha import alpha_rows
        from ._graph_crown import GraphCrown
        from .critical import _ALPHA_ITERS, _ALPHA_LR, _round_down

        xp = self.xp
        wide = self.wide()
        if wide._crown is None:
            wide._crown = GraphCrown(wide)
        s_idx, lam, pos = wide._spec(pred)
        got = alpha_rows(wide._crown, out["bounds"], todo, lam, s_idx, _ALPHA_ITERS, _ALPHA_LR)
        n = pred.shape[0]
        # each row the best of the three bounds (IBP's too: +inf on the own class)
        rows = xp.maximum(out["rows"][todo], out["ibp_rows"][todo]).astype(np.float64)
        sel = pos >= 0
        rows[sel] = xp.maximum(rows[sel], got[pos[sel]])
        m = rows.min(axis=1) if self.n_classes > 1 else xp.full(n, -xp.inf)
        return m if self.dtype == np.float64 else _round_down(m, self.dtype, xp)

    def stable_all(self, lo: Any, hi: Any, batch: int) -> Any:
        """IBP: whether every activation and every pooling window is decided on each ball
        (n,): the network is then affine there and CROWN's rows exact."""
        from ._graph_crown import GraphCrown

        wide = self.wide()
        if wide._crown is None:
            wide._crown = GraphCrown(wide)
        f64 = np.float64
        out = self.xp.empty(lo.shape[0], dtype=bool)
        for a in range(0, lo.shape[0], batch):
            lo_a, hi_a = lo[a : a + batch].astype(f64), hi[a : a + batch].astype(f64)
            b = wide._crown.bounds(lo_a, hi_a, False)
            out[a : a + batch] = b.stable
        return out

    def _abs_op(self, op: Op) -> Op:
        """``|A|`` of an affine op (absolute weights, no bias)."""
        got = self._abs.get(id(op))
        if got is None:
            arrays = {k: self.xp.abs(v) for k, v in op.arrays.items() if k not in ("bias", "shift")}
            if op.kind == "linear":
                arrays["bias"] = self.xp.zeros(op.size, dtype=self.dtype)
            if op.kind == "channel_affine":
                arrays["shift"] = self.xp.zeros(op.in_shape[0], dtype=self.dtype)
            got = Op(op.kind, op.name, op.source, op.in_shape, op.out_shape, arrays, op.params)
            self._abs[id(op)] = got
        return got

    def _terms(self, op: Op) -> int:
        """Products summed per output of an affine op."""
        if op.kind == "linear":
            return int(op.in_shape[0])
        if op.kind == "conv2d":
            return int(op.in_shape[0] // op.params["groups"] * op.window)
        if op.kind == "avgpool2d":
            return int(op.window)
        return 1

    def _ibp(self, ops: tuple[Op, ...], lo: Any, hi: Any) -> tuple[Any, Any]:
        xp, k = self.xp, self.k
        for op in ops:
            if op.kind == "flatten":
                continue
            if op.kind in _graph._AFFINE:
                c = (lo + hi) * 0.5
                r = hi - c
                absop = self._abs_op(op)
                zc = apply_affine(op, c, xp)
                zr = apply_affine(absop, r, xp)
                mag = apply_affine(absop, xp.abs(c), xp) + zr
                bias = op.arrays.get("bias", op.arrays.get("shift"))
                if bias is not None:
                    b = xp.abs(bias)
                    mag = (mag.reshape(mag.shape[0], b.shape[0], -1) + b[:, None]).reshape(
                        mag.shape[0], -1
                    )
                slack = mag * (2 * self._gamma(self._terms(op) + 4)) + np.finfo(self.dtype).tiny
                lo, hi = zc - zr - slack, zc + zr + slack
            elif op.kind == "act":
                lo = xp.array(lo, copy=True, order="C")
                hi = xp.array(hi, copy=True, order="C")
                k.crit_interval(lo, hi, ACTIVATIONS[op.params["activation"]], op.params["slope"])
            elif op.kind == "maxpool2d":
                n = lo.shape[0]
                lo = xp.ascontiguousarray(windows(lo, op, -np.inf, xp).max(axis=-1).reshape(n, -1))
                hi = xp.ascontiguousarray(windows(hi, op, -np.inf, xp).max(axis=-1).reshape(n, -1))
            elif op.kind == "residual":
                la, ha = self._ibp(op.branches[0], lo, hi)
                lb, hb = self._ibp(op.branches[1], lo, hi)
                lo = xp.nextafter(la + lb, -xp.inf)
                hi = xp.nextafter(ha + hb, xp.inf)
            elif op.kind == "concat":
                la, ha = self._ibp(op.branches[0], lo, hi)
                lb, hb = self._ibp(op.branches[1], lo, hi)
                lo = xp.concatenate([la, lb], axis=1)
                hi = xp.concatenate([ha, hb], axis=1)
            else:  # pragma: no cover
                raise AssertionError(op.kind)
        return lo, hi

    def _margin_rows(self, post: tuple[Any, Any], pred: Any, last: Op) -> Any:
        """IBP lower bounds of ``f_c - f_j`` (n, k) through the last linear op, each
        row's weights ``W_c - W_j`` applied to the interval at once (as the dense path)."""
        xp = self.xp
        lo, hi = post
        c = (lo + hi) * 0.5
        r = hi - c
        W, b = last.arrays["weight"], last.arrays["bias"]
        if self.n_out == 1:
            W = xp.concatenate([xp.zeros_like(W), W])
            b = xp.concatenate([xp.zeros_like(b), b])
        center = c @ W.T + b
        rows = xp.arange(c.shape[0])
        mc = center[rows, pred][:, None] - center
        rad = xp.empty_like(mc)
        for cls in range(self.n_classes):  # a loop over classes, not samples
            sel = xp.flatnonzero(pred == cls)
            if sel.size:
                rad[sel] = r[sel] @ xp.abs(W[cls][None, :] - W).T
        gamma = self._gamma(W.shape[1] + 6)
        mag = xp.abs(c) @ xp.abs(W).T + xp.abs(b) + r @ xp.abs(W).T
        slack = (mag[rows, pred][:, None] + mag) * (2 * gamma)
        return mc - rad - slack


class _MacCount:
    """Stands in for a weight array whose ``size`` is the multiply-adds of a forward pass."""

    def __init__(self, size: int) -> None:
        self.size = int(size)


def _back_op(op: Op, g: Any, xp: Any) -> Any:
    """``g A``: rows ``g`` on an affine op's output carried to its input (its linear part
    transposed)."""
    if op.kind == "linear":
        return g @ op.arrays["weight"]
    if op.kind == "conv2d":
        return _conv2d_back(g, op, xp)
    if op.kind == "avgpool2d":
        n = g.shape[0]
        gs = (g.reshape(n, *op.out_shape) * op.arrays["inv_divisor"]).reshape(n, -1)
        return _spread(gs, op, xp, None)
    if op.kind == "channel_affine":
        C = op.in_shape[0]
        return (g.reshape(g.shape[0], C, -1) * op.arrays["scale"][:, None]).reshape(g.shape[0], -1)
    if op.kind == "flatten":
        return g
    raise AssertionError(op.kind)  # pragma: no cover


def _spread(g: Any, op: Op, xp: Any, argmax: Any) -> Any:
    """The transpose of a pooling op's window gather: each output's gradient added to the
    window entries (all of them, or only the argmax's)."""
    n = g.shape[0]
    C, H, W = op.in_shape
    _, Ho, Wo = op.out_shape
    (pt, pb), (pl, pr) = op.params["pads"]
    sh, sw = op.params["stride"]
    out = xp.zeros((n, C, H + pt + pb, W + pl + pr), dtype=g.dtype)
    g4 = g.reshape(n, C, Ho, Wo)
    idx = None if argmax is None else argmax.reshape(n, C, Ho, Wo)
    for k, (r, s) in enumerate(_graph._taps(op)):
        part = g4 if idx is None else xp.where(idx == k, g4, 0.0)
        out[:, :, r : r + sh * (Ho - 1) + 1 : sh, s : s + sw * (Wo - 1) + 1 : sw] += part
    return xp.ascontiguousarray(out[:, :, pt : pt + H, pl : pl + W]).reshape(n, -1)


def _conv2d_back(g: Any, op: Op, xp: Any) -> Any:
    """The input gradient of a convolution: ``g`` (n, O Ho Wo) to (n, C H W)."""
    n = g.shape[0]
    C, H, W = op.in_shape
    _, Ho, Wo = op.out_shape
    (pt, pb), (pl, pr) = op.params["pads"]
    out = xp.empty((n, C, H, W), dtype=g.dtype)
    conv_transpose(g.reshape(n, -1, Ho, Wo), op, xp, (H + pt + pb, W + pl + pr), out, (pt, pl))
    return out.reshape(n, -1)


def conv_transpose(
    g: Any, op: Op, xp: Any, size: tuple[int, int], out: Any = None, crop: Any = (0, 0)
) -> Any:
    """The transposed convolution of ``g`` (n, O, ho, wo) onto a padded input frame of
    ``size`` (its top-left entry the window origin of output (0, 0)): one GEMM per group
    and block of rows, the columns added back tap by tap. Blocks of about
    ``_graph._IM2COL_BYTES`` of columns, in a frame reused from block to block (fresh
    pages cost a fault each on first touch). ``out`` (n, C, H, W): where the frame's
    window at ``crop`` goes (else the frames are returned whole)."""
    n, n_out, ho, wo = g.shape
    C = op.in_shape[0]
    w = op.arrays["weight"]
    grp = op.params["groups"]
    sh, sw = op.params["stride"]
    cg, og = C // grp, n_out // grp
    K = op.window
    taps = _graph._taps(op)
    if out is None:
        out = xp.empty((n, C, *size), dtype=g.dtype)
    ct, cl = crop
    H, W = out.shape[2], out.shape[3]
    block = max(1, _graph._IM2COL_BYTES // (ho * wo * cg * K * g.dtype.itemsize))
    wt = [
        xp.ascontiguousarray(
            w[gi * og : (gi + 1) * og].reshape(og, cg, K).transpose(2, 1, 0)
        ).reshape(K * cg, og)
        for gi in range(grp)
    ]
    rows = min(block, n)
    # the frame, the transposed rows and the product kept per thread from call to call
    # (CPU): fresh arrays of a few MB are new pages each time (see _graph._conv2d_block)
    buf = Scratch(xp)
    if rows < wo:
        # few rows (a search's last active samples): the frame (C, rows, h, w), each tap's
        # adds along the image's rows
        frame = buf.get("ct_frame", (C, rows, *size), g.dtype)
        for a in range(0, n, block):
            b = min(a + block, n)
            f = frame[:, : b - a]
            f[...] = 0
            gt = buf.get("ct_g", (n_out, b - a, ho, wo), g.dtype)
            gt[...] = g[a:b].transpose(1, 0, 2, 3)
            gt = gt.reshape(n_out, -1)
            for gi in range(grp):
                prod = buf.get("ct_cols", (K * cg, gt.shape[1]), g.dtype)
                xp.matmul(wt[gi], gt[gi * og : (gi + 1) * og], out=prod)
                cols = prod.reshape(K, cg, b - a, ho, wo)
                for k, (r, s) in enumerate(taps):
                    dst = f[gi * cg : (gi + 1) * cg, :, r : r + sh * (ho - 1) + 1 : sh]
                    dst[..., s : s + sw * (wo - 1) + 1 : sw] += cols[k]
            out[a:b] = f[:, :, ct : ct + H, cl : cl + W].transpose(1, 0, 2, 3)
        return out
    # the frame (C, h, w, rows), rows innermost: each tap's columns are one contiguous
    # block of the product (K, C/g, ho, wo, rows), and its adds run along the block's
    # rows (long inner loops for small patches and images; 1.4-4.8x faster for CROWN's
    # patches of 3-9 pixels a side, the same sums in the same order)
    frame = buf.get("ct_frame", (C, *size, rows), g.dtype)
    for a in range(0, n, block):
        b = min(a + block, n)
        f = frame[..., : b - a]
        f[...] = 0
        gt = buf.get("ct_g", (n_out, ho, wo, b - a), g.dtype)
        gt[...] = g[a:b].transpose(1, 2, 3, 0)
        gt = gt.reshape(n_out, -1)
        for gi in range(grp):
            prod = buf.get("ct_cols", (K * cg, gt.shape[1]), g.dtype)
            xp.matmul(wt[gi], gt[gi * og : (gi + 1) * og], out=prod)
            cols = prod.reshape(K, cg, ho, wo, b - a)
            for k, (r, s) in enumerate(taps):
                dst = f[gi * cg : (gi + 1) * cg, r : r + sh * (ho - 1) + 1 : sh]
                dst[:, :, s : s + sw * (wo - 1) + 1 : sw] += cols[k]
        out[a:b] = f[:, ct : ct + H, cl : cl + W].transpose(3, 0, 1, 2)
    return out
