"""Critical samples and loss sensitivity (Arpit et al. 2017), with certified bounds.

Arpit et al., "A closer look at memorization in deep networks" (ICML 2017), call an
input ``x`` *critical* when some ``x'`` with ``||x' - x||_inf <= r`` changes the
predicted class (``argmax f(x') != argmax f(x)``); the critical sample ratio (CSR) is
the fraction of critical points. Their Langevin adversarial sample search (LASS), like
every PGD attack, only ever *finds* adversarial points, so what it reports is a lower
bound of the CSR. fastmem also *proves* robustness with certified bounds (interval
bound propagation, IBP, and CROWN's backward linear relaxation), so it reports both
sides::

    N_critical / N  <=  CSR  <=  1 - N_robust / N

and says which points remain unknown. Points on whose whole ball no hidden neuron can
change state (the network is one affine map there) are decided exactly, with no search.

Scale of the defaults: Arpit et al.'s code works on data scaled to [0, 1] with radius
``0.3/255``, LASS step ``0.25/255`` and noise ``0.2/255`` (:data:`LASS_RADIUS`,
:data:`LASS_STEP`, :data:`LASS_NOISE`), at most 100 steps. For another radius the
default step and noise keep those ratios to the radius.

Noise and random starts come from a counter-based generator (splitmix64 keyed by the
seed, the sample's index, the restart, the step and the coordinate) so every backend,
batch size and early-stop setting produces the same points. The Langevin noise is the
standardized sum of four uniforms (an Irwin-Hall approximation of N(0, 1), variance
exactly 1): it uses only integer and IEEE-exact arithmetic, so the CPU backends, which
also share NumPy's matrix products, give bit-identical adversarial points.

Examples
--------
>>> import numpy as np, fastmem
>>> rng = np.random.default_rng(0)
>>> net = fastmem.Network.from_arrays([rng.normal(size=(16, 2)), rng.normal(size=(3, 16))],
...                                   [rng.normal(size=16), np.zeros(3)])
>>> X = rng.random((50, 2))
>>> res = fastmem.critical_samples(net, X, radius=0.05, method="pgd", rng=0)
>>> res.csr_lower <= res.csr_upper
True
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _graph
from ._adam import projected_adam_step
from ._backend import Backend
from ._json import jsonable
from ._kinds import CLAMPS
from ._threads import Scratch as _Scratch
from ._threads import (
    cpu_threads,
    kernel_threads,
    kernels_callable_side_by_side,
    kernels_own_the_cores,
    run_tasks,
)
from ._validate import as_generator
from ._validate import positive_int as _positive_int
from ._validate import to_host as _host
from .errors import InputError
from .network import ACTIVATIONS, Network, dense_forward

__all__ = [
    "LASS_NOISE",
    "LASS_RADIUS",
    "LASS_STEP",
    "MAX_ITERATIONS",
    "MAX_SEARCH_STEPS",
    "CSRCurve",
    "CertifiedRadius",
    "CriticalSamples",
    "LossSensitivity",
    "certified_radius",
    "critical_samples",
    "csr_curve",
    "loss_sensitivity",
]

#: Arpit et al.'s search radius for data scaled to [0, 1] (0.3 on the 0..255 scale).
LASS_RADIUS = 0.3 / 255
#: Arpit et al.'s LASS step (sign-gradient step size), data in [0, 1].
LASS_STEP = 0.25 / 255
#: Arpit et al.'s LASS noise scale (standard deviation of the Langevin noise), data in [0, 1].
LASS_NOISE = 0.2 / 255

#: Most search steps per sample (``steps * restarts``) :func:`critical_samples` takes on.
MAX_SEARCH_STEPS = 100_000
#: Most bisection steps of :func:`certified_radius`: from ``max_radius`` <= 2**1024 down
#: to the smallest float64 (2**-1074) takes 2098 halvings; later ones change nothing.
MAX_ITERATIONS = 2100
_METHODS = ("lass", "pgd")
_CERTIFY = (None, "ibp", "crown", "alpha-crown")
# alpha-CROWN: projected Adam steps on the lower slopes, and its step size (decaying by
# 0.98 a step), as auto_LiRPA's defaults for the final specification
_ALPHA_ITERS = 20
_ALPHA_LR = 0.25
_LOSSES = ("ce", "margin")
# every piecewise-linear kind but threshold (its gradient is 0 almost everywhere)
_GRADIENT_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "threshold")
# Rows of a CROWN backward pass processed at once (bounds memory to rows x input width).
_CROWN_ROWS = 8192
_DEFAULT_BATCH = 4096
# On the CPU certification runs in parts of this many samples, side by side.
_CERTIFY_PART = 256
_IBP_PART = 512
# the radii of a ball below _SHORT times its largest are its clipped coordinates
_SHORT = 1 - 2.0**-15
# rows of CROWN's last-step product taken at once into a kept work array (_Scratch keeps
# arrays up to 8 MiB per thread)
_V_BLOCK_BYTES = 6 << 20
# CROWN's intermediate bounds of a (leaky) ReLU: the bound nearer 0 first (tests compare
# with both bounds of every unstable neuron)
_ONE_SIDE_FIRST = True
# Layer graphs' certificate parts are never smaller than this many samples.
_GRAPH_PART_MIN = 8
# On the CPU a batch of the search runs in parts of this many samples, side by side.
_SEARCH_PART = 512
# Loss sensitivity's batches: small enough that their temporaries stay in cache and are
# reused by the allocator (a fresh 4096-row batch costs page faults on every array).
_LS_BATCH = 1024
_STATUS_CODES = np.array(["unknown", "critical", "robust"])
# certified_radius without max_radius searches radii up to the box's width, at most this
_RADIUS_CAP = 2.0**512
# Samples of the look that picks the order (certify first, or search first), and the
# search steps it takes before certifying what they leave
_PROBE = 32
_PROBE_STEPS = 10
# The order, for tests: None (chosen by the look), "certify" or "search" (first)
_ORDER: str | None = None


# --------------------------------------------------------------------------- checks
def require_piecewise_linear(net: Network, purpose: str, *, gradient: bool) -> None:
    """Refuse networks this module cannot analyse, naming the layer and the reason.

    Gradient methods (LASS, PGD, loss sensitivity) need relu, leaky_relu, hardtanh or relu6
    layers; threshold (Heaviside) layers have a zero gradient almost everywhere.
    Certified bounds also accept threshold layers. (A later ``Network`` method of the
    same purpose can replace this function.)
    """
    if not isinstance(net, Network):
        raise InputError(f"net: must be a fastmem.Network, got {type(net).__name__}")
    allowed = _GRADIENT_ACTIVATIONS if gradient else (*_GRADIENT_ACTIVATIONS, "threshold")
    for i, act in enumerate(net.activation):
        if act in allowed:
            continue
        if act == "threshold":
            raise InputError(
                f"net: hidden layer {i} is a threshold (Heaviside) layer, whose gradient is "
                f"zero almost everywhere: {purpose} needs a gradient (use certify-only "
                "functions such as certified_radius, or relu/leaky_relu/hardtanh/relu6 layers)"
            )
        raise InputError(
            f"net: hidden layer {i} has activation {act!r}; {purpose} supports "
            f"{', '.join(allowed)} (piecewise-linear) layers only"
        )


def _positive(value: Any, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise InputError(f"{name}: must be a real number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"{name}: must be finite and > 0, got {value!r}")
    return v


def _nonnegative(value: Any, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise InputError(f"{name}: must be a real number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise InputError(f"{name}: must be finite and >= 0, got {value!r}")
    return v


def _check_box(box: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in box)
    except (TypeError, ValueError) as exc:
        raise InputError(f"box: must be a pair (low, high), got {box!r}") from exc
    if not (lo < hi) or math.isnan(lo) or math.isnan(hi):
        raise InputError(f"box: low must be < high, got {box!r}")
    return lo, hi


def _seed(rng: Any) -> int:
    return int(as_generator(rng, "rng").integers(0, 2**63))


# --------------------------------------------------------------------------- model
class _Model:
    """The network's arrays on the backend's device, laid out for the passes below."""

    def __init__(self, net: Network, be: Backend) -> None:
        xp = be.xp
        self.be = be
        self.k = be.kernels
        self.xp = xp
        self.dtype = net.dtype
        # float64 tables derived from the weights, kept on the network between calls
        self._memo: dict[str, Any] = net._memo.setdefault(("critical", be.name), {})
        arrays = self._memo.get("arrays")
        if arrays is None:  # the layout below, built once per network (~0.3 ms a call)
            ws = [xp.asarray(w) for w in net.weights]
            bs = [xp.asarray(b) for b in net.biases]
            if ws[-1].shape[0] == 1:
                # one logit f: the classes are argmax (0, f), i.e. class 1 iff f > 0
                ws[-1] = xp.concatenate([xp.zeros_like(ws[-1]), ws[-1]])
                bs[-1] = xp.concatenate([xp.zeros_like(bs[-1]), bs[-1]])
            wts = [xp.ascontiguousarray(w.T) for w in ws]
            arrays = self._memo["arrays"] = (ws, bs, wts, [xp.abs(w) for w in wts])
        # shared between calls: never modified (wide() makes float64 copies)
        self.W, self.b, self.WT, self.absWT = arrays
        self.kinds = [ACTIVATIONS[a] for a in net.activation]
        self.slopes = list(net.negative_slopes)
        self.n_hidden = len(self.W) - 1
        self.n_classes = int(self.W[-1].shape[0])
        self.eps = float(np.finfo(self.dtype).eps)
        self.max_width = max(max(int(w.shape[0]), int(w.shape[1])) for w in self.W)
        self._wide: _Model | None = None
        self._norm_info: dict[str, Any] | None = None
        self._wt0_64: tuple[Any, Any] | None = self._memo.get("wt0_64")
        self._rs64: Any = self._memo.get("rs64")
        self._ibp_tab: dict[str, Any] | None = self._memo.get("ibp")
        self.macs: list[int] = []  # multiply-adds of the backward passes (appended)
        # (WT, its ops for dense_forward), kept with the arrays
        self._chain: tuple[Any, Any] | None = self._memo.get("chain")

    def wide(self) -> _Model:
        """The same network in float64 (every float32 value is exact in float64; leaky
        slopes rounded to the dtype first, as the kernels do), for CROWN's certificate."""
        if self.dtype == np.float64:
            return self
        if self._wide is None:
            w = object.__new__(_Model)
            w.__dict__.update(self.__dict__)
            f = np.float64
            w._memo = self._memo.setdefault("wide", {})
            arrays = w._memo.get("arrays")
            if arrays is None:
                arrays = w._memo["arrays"] = tuple(
                    [a.astype(f) for a in group] for group in (self.W, self.b, self.WT, self.absWT)
                )
            w.W, w.b, w.WT, w.absWT = arrays
            w._chain = w._memo.get("chain")
            w.slopes = [float(np.asarray(s, dtype=self.dtype)) for s in self.slopes]
            w.dtype = np.dtype(f)
            w.eps = float(np.finfo(f).eps)
            w._wide = None
            w._norm_info = None
            w._wt0_64 = w._memo.get("wt0_64")
            w._rs64 = w._memo.get("rs64")
            w._ibp_tab = w._memo.get("ibp")
            self._wide = w
        return self._wide

    # -- plain passes -----------------------------------------------------------
    def forward(self, x: Any, *, derivs: bool, check: bool = False) -> tuple[Any, list[Any]]:
        """Logits, and (if asked) each hidden layer's activation derivative.

        ``check``: raise the ``InputError`` of :meth:`Network.forward` (naming the layer)
        where a layer's pre-activations overflow (used on the caller's inputs).
        """
        if check:
            with np.errstate(over="ignore", invalid="ignore"):  # the check names the layer
                return self._forward(x, derivs, self.n_hidden + 1)
        return self._forward(x, derivs, 0)

    def _forward(self, x: Any, derivs: bool, n_layers: int) -> tuple[Any, list[Any]]:
        ds: list[Any] = []
        k, kinds, slopes = self.k, self.kinds, self.slopes

        def hidden(i: int, z: Any) -> None:
            if derivs:
                d = self.xp.empty_like(z)
                k.crit_activate(z, d, kinds[i], slopes[i])
                ds.append(d)
            else:
                k.apply_activation(z, kinds[i], slopes[i])

        if self._chain is None or self._chain[0] is not self.WT:
            self._chain = (self.WT, _graph.dense_chain(self.WT, self.b))
            if self.WT is self._memo.get("arrays", (None,) * 4)[2]:
                self._memo["chain"] = self._chain
        return dense_forward(x, self._chain[1], hidden, self.be, check=bool(n_layers)), ds

    def ce_input_grad(self, logits: Any, ds: list[Any], labels: Any) -> Any:
        """Gradient of each row's cross-entropy ``CE(f(x), label)`` with respect to x.

        Through the activation pattern: the derivative of each hidden layer is a
        diagonal matrix, so the Jacobian product is GEMMs and elementwise masks.
        """
        xp = self.xp
        g = logits - logits.max(axis=1, keepdims=True)
        xp.exp(g, out=g)
        g /= g.sum(axis=1, keepdims=True)
        g[xp.arange(g.shape[0]), labels] -= 1
        return self._input_grad(g, ds)

    def margin_input_grad(self, logits: Any, ds: list[Any], labels: Any) -> Any:
        """Gradient of each row's margin loss ``max_{j != label} f_j(x) - f_label(x)``
        (Carlini and Wagner's, against the runner-up class) with respect to x."""
        xp = self.xp
        rows = xp.arange(logits.shape[0])
        other = logits.copy()
        other[rows, labels] = -xp.inf
        g = xp.zeros_like(logits)
        g[rows, other.argmax(axis=1)] = 1
        g[rows, labels] -= 1
        return self._input_grad(g, ds)

    def _input_grad(self, g: Any, ds: list[Any]) -> Any:
        """Back-propagate ``g`` (gradient on the logits) to the input."""
        g = g @ self.W[-1]
        for i in range(self.n_hidden - 1, -1, -1):
            g *= ds[i]
            g = g @ self.W[i]
        return g

    # -- bounds -------------------------------------------------------------------
    def _gamma(self, n: int) -> float:
        """Higham's ``gamma_n`` (a sum of n products is within gamma_n of the sum of
        their magnitudes, in any order, with or without FMA), with eps for the unit
        roundoff: a margin of two."""
        t = n * self.eps
        return t / (1 - t)

    def _ibp_affine(self, lo: Any, hi: Any, i: int) -> tuple[Any, Any]:
        """Bounds of ``W_i h + b_i`` over the box [lo, hi], widened for rounding."""
        c = (lo + hi) * 0.5
        r = hi - c
        zc = c @ self.WT[i]
        zc += self.b[i]
        zr = r @ self.absWT[i]
        # |rounding error| of the two products <= gamma_n (|c| |W|^T + |b| + r |W|^T)
        n_in = self.WT[i].shape[0]
        gamma = self._gamma(n_in + 4)
        mag = self.xp.abs(c) @ self.absWT[i]
        mag += self.xp.abs(self.b[i])
        mag += zr
        slack = mag * (2 * gamma) + np.finfo(self.dtype).tiny
        return zc - zr - slack, zc + zr + slack

    def _ibp_first(self, lo: Any, hi: Any, wide: bool = False) -> tuple[Any, Any]:
        """Bounds of the first layer's pre-activations ``W_0 x + b_0`` over [lo, hi].

        float64 nets: :meth:`_ibp_affine`. float32 nets: the box lies in ``c +- R`` (c its
        float32 centre, R rounded up); ``W_0 c + b_0`` is computed in float64 (products
        of float32 values are exact there: its error ~1e-13 of ``max|c| sum|W_0|``), the
        radius term ``|W_0| R`` in float32 and rounded up (relative error gamma_d: it
        scales with R, not with |c|), and the bounds rounded outward to float32. float32's
        worst-case allowance of the centre product, ``gamma_d |c| |W|^T`` (~3e-3 on a
        784-input layer of a He-init net), would loosen every later bound. ``wide``: the
        float64 bounds, not rounded to float32.
        """
        xp = self.xp
        if self.dtype != np.float32:
            return self._ibp_affine(lo, hi, 0)
        f64 = np.float64
        wt64, b64 = self._first64()
        c64, R, _, cmax, _ = self._centre_form(lo, hi)
        zc = c64 @ wt64
        zc += b64
        d = int(wt64.shape[0])
        e64 = float(np.finfo(f64).eps)
        g64 = (d + 4) * e64 / (1 - (d + 4) * e64)
        zr = (R @ self.absWT[0]).astype(f64)
        zr *= 1 + 2 * self._gamma(d + 2)
        # the centre product's error: gamma64 (max|c| sum_j |W_0| + |b_0|), and the sums
        # below (a few float64 roundings of their magnitudes)
        slack = cmax.astype(f64)[:, None] * self._rowsum64()[None, :]
        slack += xp.abs(b64)
        slack += zr
        slack *= 4 * g64
        slack += 1e-300
        zr += slack
        if wide:  # float64 bounds, for the float64 layers above (IBP of float32 nets)
            return zc - zr, zc + zr
        return _round_out(zc - zr, zc + zr, self.dtype, xp)

    def _rowsum64(self) -> Any:
        """``sum_j |W_0[:, j]|`` per first-layer neuron, float64, rounded up (cached)."""
        if self._rs64 is None:
            d = int(self.W[0].shape[1])
            e64 = float(np.finfo(np.float64).eps)
            rs = self.xp.abs(self.W[0].astype(np.float64)).sum(axis=1)
            self._rs64 = self._memo["rs64"] = rs * (1 + 2 * (d + 2) * e64)
        return self._rs64

    def _first64(self) -> tuple[Any, Any]:
        """The first layer's ``W_0^T`` and ``b_0`` in float64 (cached)."""
        if self._wt0_64 is None:
            self._wt0_64 = (self.WT[0].astype(np.float64), self.b[0].astype(np.float64))
            self._memo["wt0_64"] = self._wt0_64
        return self._wt0_64

    def _centre_form(self, lo: Any, hi: Any, buf: _Scratch | None = None) -> tuple[Any, ...]:
        """The boxes [lo, hi] in centre form, one pass of the ``crit_centre`` kernel: the
        centre ``c = (lo + hi) / 2`` in the dtype, stored in float64 (exact); the radii
        ``R = max(hi - c, c - lo)`` rounded up (``R >= |x - c|`` on the box); each row's
        largest radius and ``|c|``; and its count of radii below ``_SHORT`` times the
        largest (the clipped coordinates). In ``buf``'s kept arrays, or new ones."""
        xp = self.xp
        n = lo.shape[0]
        dt = lo.dtype

        def get(key: str, shape: tuple, dtype: Any) -> Any:
            return xp.empty(shape, dtype=dtype) if buf is None else buf.get(key, shape, dtype)

        out = (
            get("c64", lo.shape, np.float64),
            get("R", lo.shape, dt),
            get("rmax", (n,), dt),
            get("cmax", (n,), dt),
            get("low", (n,), np.int64),
        )
        lo, hi = xp.ascontiguousarray(lo), xp.ascontiguousarray(hi)
        self.k.crit_centre(lo, hi, 1 + 2 * self.eps, _SHORT, *out)
        return out

    def _stable(self, zl: Any, zu: Any, kind: int) -> Any:
        """Per row: no neuron of the layer can change state anywhere in [zl, zu]."""
        bad = _unstable(zl, zu, kind)
        return ~bad.any(axis=1), bad

    def _layer(
        self, zl: Any, zu: Any, bad: Any, i: int, m_below: Any, alpha: Any = None
    ) -> dict[str, Any]:
        """Relaxation of hidden layer ``i`` on [zl, zu] and the rounding allowances of a
        backward step through it, per sample and neuron (see :meth:`_backward`).

        ``m_below`` bounds ``|h|`` of the layer below (the input when i == 0); ``alpha``
        (a mask and slopes) replaces the lower lines' slopes there (alpha-CROWN: any
        slope in [0, 1] bounds a ReLU from below, in [s, 1] a leaky one of slope s <= 1).
        """
        xp = self.xp
        eps = self.eps
        rel = tuple(xp.empty_like(zl) for _ in range(4))
        self.k.crit_relax(zl, zu, self.kinds[i], self.slopes[i], *rel)
        if alpha is not None:  # alpha-CROWN: (mask, slopes) of the lower lines a z
            xp.copyto(rel[0], alpha[1].astype(self.dtype), where=alpha[0])
        aL, bL, aU, bU = rel
        w = int(self.W[i].shape[0])
        m = xp.maximum(xp.abs(zl), xp.abs(zu))  # |z| on the box
        amax = xp.maximum(xp.abs(aL), xp.abs(aU))
        bmax = xp.maximum(xp.abs(bL), xp.abs(bU))
        # activation step, per unit |lam_j|: lam_j a_j rounded (eps a m), sum of the
        # lam_j b_j (gamma b); where the neuron is unstable the line itself, computed
        # in double and rounded to the dtype, may miss the activation by a few ulps of
        # its terms (stable neurons' lines are exact: slopes 0/1/s, offsets 0/+-1)
        act = amax * m * eps + bmax * (2 * self._gamma(w + 1))
        act += xp.where(bad, (amax * m + m + bmax + 1) * (8 * eps), 0)
        # linear step: lam @ W_i (gamma_w |lam| |W_i| |h below|), const += lam @ b_i;
        # below the first layer the concretization's sum of d terms lam_x . (lo|hi)
        v = m_below @ self.absWT[i]
        g = self._gamma(w)
        if i == 0:
            g += self._gamma(int(self.W[0].shape[1]) + 1) * (1 + self._gamma(w))
        lin = v * g
        lin += xp.abs(self.b[i]) * (2 * self._gamma(w + 1))
        return {"relax": rel, "act": act, "lin": lin}

    def _backward(
        self, lam: Any, const: Any, rows: Any, top: int, layers: list, lo, hi, err, geo=None
    ):
        """Rigorous lower bound of ``lam . h_top + const`` over each row's input box.

        ``lam`` holds coefficients on the output of hidden layer ``top - 1`` (the input
        when ``top == 0``); CROWN's backward pass (Zhang et al. 2018) replaces each
        activation by the linear bound of the side the coefficient's sign asks for.
        Works in place on ``lam``/``const``; returns (bound, lam on the input).

        Rounding: each step's error is bounded by the magnitudes of the terms it sums
        (``layers[i]``'s allowances, per unit of ``|lam|``), dotted with the row's
        ``|lam|``; ``err`` (rows,) accumulates them (it may start with the error of the
        specification) and is subtracted, rounded up, at the end. With ``geo`` (the
        boxes' centre data, :meth:`_geo`) the last step is taken in centre form
        (:meth:`_finish_centred`).
        """
        cmag = self.xp.zeros_like(const)
        if top == 0:
            return self._finish_input(lam, const, rows, lo, hi, err, cmag)
        lam = self._steps(lam, const, rows, top, layers, err, cmag)
        if geo is not None:
            return self._finish_centred(lam, const, rows, geo, err, cmag)
        return self._finish_full(lam, const, rows, layers, lo, hi, err, cmag)

    def _steps(self, lam, const, rows, top, layers, err, cmag):
        """The backward steps from ``top`` down through the first layer's activation:
        returns ``lam`` on the first layer's pre-activations ``z_0 = W_0 x + b_0``
        (top >= 1); ``const``, ``err`` and ``cmag`` (the magnitudes of const's partial
        sums) are updated in place."""
        xp, k = self.xp, self.k
        self.macs.append(int(lam.shape[0]) * sum(int(w.size) for w in self.W[1:top]))
        for i in range(top - 1, -1, -1):
            L = layers[i]
            # the step, err += |lam| . act (before) + |lam'| . lin (after; not on z_0)
            k.crit_backward_err(lam, rows, *L["relax"], L["act"], L["lin"], i > 0, const, err)
            cmag += xp.abs(const)
            if i == 0:
                break
            const += lam @ self.b[i]
            cmag += xp.abs(const)
            lam = lam @ self.W[i]
        return lam

    def _finish_full(self, lam, const, rows, layers, lo, hi, err, cmag):
        """CROWN's last step, from ``z_0`` (see :meth:`_steps`) to the input box."""
        xp = self.xp
        self.macs.append(int(lam.shape[0]) * int(self.W[0].size))
        err += xp.einsum("ij,ij->i", xp.abs(lam), layers[0]["lin"][rows])
        const += lam @ self.b[0]
        cmag += xp.abs(const)
        lam = lam @ self.W[0]
        return self._finish_input(lam, const, rows, lo, hi, err, cmag)

    def _finish_centred(
        self, lam, const, rows, geo, err, cmag, keep_v: bool = True, centred: bool = False
    ):
        """CROWN's last step in centre form: ``min_x lam . (W_0 x + b_0) >= lam . z_0(c) -
        |lam W_0| . R`` over ``|x - c| <= R`` (the box, up to rounding). The same bound as
        the concretization over [lo, hi], but the product's rounding is scaled by the
        radius R instead of |x| (z_0(c) is computed in float64): in float32 the allowance
        of a small ball shrinks ~100-fold. Returns (bound, lam on the input); without
        ``keep_v`` (intermediate bounds) (bound, None), the product taken in blocks of
        rows in a kept work array (a fresh input-wide array per chunk of rows was ~18 %
        of the product's time in page faults). ``centred``: :meth:`_add_centre` was
        applied to ``const``, ``err`` and ``cmag`` already."""
        xp, k = self.xp, self.k
        self.macs.append(int(lam.shape[0]) * int(self.W[0].size))
        w = int(lam.shape[1])
        d = int(self.W[0].shape[1])
        if not centred:
            self._add_centre(lam, const, rows, geo, err, cmag)
        neg = xp.zeros_like(err)
        k.crit_concretize(lam, rows, geo["nWR"], geo["WR"], neg)  # -|lam| . |W_0| R
        err -= neg * (2 * self._gamma(w + 2))
        dev = xp.zeros_like(err)
        if keep_v:
            v = lam @ self.W[0]
            k.crit_concretize(v, rows, geo["nR"], geo["R"], dev)  # -|v| . R
        else:
            v = None
            block = max(1, _V_BLOCK_BYTES // (d * lam.dtype.itemsize))
            vb = _Scratch(xp).get("crown_v", (min(block, lam.shape[0]), d), lam.dtype)
            for a in range(0, lam.shape[0], block):
                b = min(a + block, lam.shape[0])
                xp.matmul(lam[a:b], self.W[0], out=vb[: b - a])
                k.crit_concretize(vb[: b - a], rows[a:b], geo["nR"], geo["R"], dev[a:b])
        err -= dev * (2 * self._gamma(d + 2))
        const += dev
        cmag += xp.abs(const)
        err += cmag * (2 * self._gamma(self.max_width + 2))
        bound = const - (err * 1.01 + np.finfo(self.dtype).tiny * 4)
        return bound, v

    def _finish_input(self, lam, const, rows, lo, hi, err, cmag):
        self.k.crit_concretize(lam, rows, lo, hi, const)
        cmag += self.xp.abs(const)
        # each update of const is within gamma of its result plus its terms (counted above)
        err += cmag * (2 * self._gamma(self.max_width + 2))
        # the allowance's own float sums: 1 % on top, and underflow
        bound = const - (err * 1.01 + np.finfo(self.dtype).tiny * 4)
        return bound, lam

    def _add_centre(self, lam, const, rows, geo, err, cmag) -> None:
        """The centre-form steps the last step's bounds share, in place: ``const += lam .
        z_0(c)`` (``zc``), ``cmag += |const|``, ``err += |lam| . ez`` (zc's error)."""
        k = self.k
        # the concretization kernel over the boxes [zc, zc] and [-ez, ez] gives lam . zc
        # and -|lam| . ez without gathering the rows' samples
        k.crit_concretize(lam, rows, geo["zc"], geo["zc"], const)
        cmag += self.xp.abs(const)
        neg = self.xp.zeros_like(err)
        k.crit_concretize(lam, rows, geo["nez"], geo["ez"], neg)
        err -= neg

    def _finish_norm(self, lam, const, rows, geo, err, cmag, gram: bool, centred: bool = False):
        """A cheaper rigorous lower bound of ``lam . z_0 + const`` over the box.

        With c the box's centre and ``R >= |x - c|`` coordinate-wise,
        ``lam . z_0(x) >= lam . z_0(c) - ||lam W_0||_2 ||R||_2`` (Cauchy-Schwarz), and
        ``||lam W_0||_2^2 = lam G lam^T`` with the Gram matrix ``G = W_0 W_0^T``
        (``gram``: width^2 multiply-adds per row instead of width x inputs), or
        ``<= sigma_max(W_0)^2 ||lam||^2`` (not ``gram``: width). Looser than CROWN's
        last step by about the ratio of a dense row's 2-norm bound to its 1-norm (~1.25):
        the filter that spares most intermediate neurons CROWN's full pass. Works on
        copies of ``const``, ``err``, ``cmag`` (``centred``: :meth:`_add_centre` applied).
        """
        xp = self.xp
        info = self._norms()
        const = const.copy()
        err = err.copy()
        cmag = cmag.copy()
        # lam . z_0(c): zc0 is within ez of it (its rounding, and the dot's gamma |zc0|)
        if not centred:
            self._add_centre(lam, const, rows, geo, err, cmag)
        w = int(lam.shape[1])
        # ||lam||^2, rounded up
        nl2 = xp.einsum("ij,ij->i", lam, lam) * (1 + 2 * self._gamma(w + 2))
        if gram:
            self.macs.append(int(lam.shape[0]) * w * w)
            q = xp.einsum("ij,ij->i", lam @ info["G"], lam)
            q = xp.maximum(q + nl2 * info["qfac"], 0)
        else:
            q = nl2 * info["sigma2"]
        dev = xp.sqrt(q) * geo["rn"][rows] * (1 + 16 * self.eps)
        const -= dev
        cmag += xp.abs(const) + dev
        err += cmag * (2 * self._gamma(self.max_width + 2))
        return const - (err * 1.01 + np.finfo(self.dtype).tiny * 4)

    def _norms(self) -> dict[str, Any]:
        """The first layer's Gram matrix (in the dtype) and rigorous constants for
        :meth:`_finish_norm`, computed once, in float64 on the host.

        ``qfac``: ``|lam G^ lam^T - ||lam W_0||^2| <= qfac ||lam||^2``, covering the
        products' rounding (gamma_{2w+2} rho(|G^|)), G^'s own (float64 sums of d exact
        products: gamma_d rho(|W_0| |W_0|^T)) and its rounding to the dtype, with the
        spectral radii bounded from above by Collatz-Wielandt (max_i (A v)_i / v_i for
        any positive v, here a power iterate). ``sigma2 >= sigma_max(W_0)^2``: a float64
        eigenvalue estimate t raised by 1e-6, proved by a Cholesky factorization of
        ``t I - G^`` (it succeeds only where ``t I - G^ + dA`` is positive semidefinite,
        ``|dA| <= gamma_{w+1} |R| |R^T|``: Higham, Accuracy and Stability, Thm 10.3),
        plus ``||dA||_F`` and G^'s error; infinite (no filter) where it fails.
        """
        if self._norm_info is not None:
            return self._norm_info
        kept = self._memo.get("norms")  # kept on the network: the weights never change
        if kept is not None:
            self._norm_info = kept
            return kept
        W = np.asarray(_host(self.W[0]), dtype=np.float64)
        w, d = W.shape
        e64 = float(np.finfo(np.float64).eps)

        def gamma64(n: int) -> float:
            return n * e64 / (1 - n * e64)

        def cw_radius(A: np.ndarray) -> float:
            # Collatz-Wielandt: an upper bound of the spectral radius of A >= 0
            v = np.ones(A.shape[0])
            for _ in range(30):
                v = A @ v
                v /= max(float(v.max()), 1e-300)
            v = np.maximum(v, 1e-3)
            r = float(((A @ v) / v).max())
            return r * (1 + 2 * gamma64(A.shape[0] + 2)) + 1e-300

        with np.errstate(over="ignore", invalid="ignore"):
            Gh = W @ W.T
            G = Gh.astype(self.dtype)
            rho1 = cw_radius(np.abs(G).astype(np.float64))
            rho2 = cw_radius(np.abs(W) @ np.abs(W).T)
            qfac = self._gamma(2 * w + 2) * rho1 + gamma64(d + 2) * rho2 * 2 + 2 * self.eps * rho1
            sigma2 = math.inf
            if np.isfinite(Gh).all():
                try:
                    t = float(np.linalg.eigvalsh(Gh).max()) * (1 + 1e-6) + 1e-300
                    A = t * np.eye(w) - Gh
                    R = np.linalg.cholesky(A)  # A + dA = R R^T
                    dA = gamma64(w + 1) * float(np.linalg.norm(np.abs(R) @ np.abs(R).T))
                    dA += 2 * e64 * float(np.abs(np.diag(A)).max())
                    sigma2 = (t + dA + gamma64(d + 2) * rho2 * 2) * (1 + 1e-12)
                except np.linalg.LinAlgError:
                    sigma2 = math.inf
        if not (math.isfinite(sigma2) and math.isfinite(qfac)):
            sigma2 = qfac = math.inf
        info = {
            "G": self.xp.asarray(G),
            "qfac": float(qfac),
            "sigma2": float(sigma2),
            "gram": d > w and math.isfinite(qfac),  # cheaper than the full last step
        }
        self._norm_info = self._memo["norms"] = info
        return info

    def margin_rows(self, pred: Any) -> tuple[Any, Any, Any, Any]:
        """Rows ``e_c - e_j`` (j != c) of the margin specification, as coefficients on the
        last hidden layer: (lam (n (k-1), width), const, sample of each row, the row of
        each (sample, class) or -1 for the sample's own class (n, k))."""
        xp = self.xp
        n, K = pred.shape[0], self.n_classes
        W, b = self.W[-1], self.b[-1]
        other = xp.ones((n, K), dtype=bool)
        other[xp.arange(n), pred] = False
        s_idx, c_idx = xp.nonzero(other)
        s_idx = s_idx.astype(np.int64)
        lam = W[pred[s_idx]] - W[c_idx]
        const = b[pred[s_idx]] - b[c_idx]
        pos = xp.full((n, K), -1, dtype=np.int64)
        pos[s_idx, c_idx] = xp.arange(s_idx.size, dtype=np.int64)
        return xp.ascontiguousarray(lam), xp.ascontiguousarray(const), s_idx, pos

    def ibp_margin(self, post: tuple[Any, Any], pred: Any) -> Any:
        """IBP lower bound of ``f_c - f_j`` for every class j: (n, k)."""
        xp = self.xp
        lo, hi = post
        c = (lo + hi) * 0.5
        r = hi - c
        W, b = self.W[-1], self.b[-1]
        center = c @ self.WT[-1] + b
        mc = center[xp.arange(c.shape[0]), pred][:, None] - center
        rad = xp.empty_like(mc)
        for cls in range(self.n_classes):  # a loop over classes, not samples
            sel = xp.flatnonzero(pred == cls)
            if sel.size:
                rad[sel] = r[sel] @ xp.abs(W[cls][None, :] - W).T
        n_in = W.shape[1]
        gamma = self._gamma(n_in + 6)
        mag = xp.abs(c) @ xp.abs(self.WT[-1]) + xp.abs(b) + r @ self.absWT[-1]
        slack = (mag[xp.arange(c.shape[0]), pred][:, None] + mag) * (2 * gamma)
        return mc - rad - slack

    def _ibp_tables(self) -> dict[str, Any]:
        """float64 tables of the IBP-only pass (cached): per layer ``W_i^T``, ``|W_i|^T``,
        ``b_i`` and ``sum_j |W_i[:, j]|`` rounded up; for the margin rows the matrix of
        every ``|W_c - W_j|^T``, per class c (k, width, k)."""
        if self._ibp_tab is None:
            xp = self.xp
            f64 = np.float64
            e64 = float(np.finfo(f64).eps)
            wt = [a.astype(f64) for a in self.WT]
            rowsum = []
            for a in self.absWT:
                d = int(a.shape[0])
                rowsum.append(a.astype(f64).sum(axis=0) * (1 + 2 * (d + 2) * e64))
            W = self.W[-1].astype(f64)
            # |W_c - W_j|^T per class c: (k, width, k), exact in float64
            diff = xp.abs(W[:, None, :] - W[None, :, :]).transpose(0, 2, 1)
            self._ibp_tab = {
                "WT": wt,
                "absWT": [a.astype(f64) for a in self.absWT],
                "b": [a.astype(f64) for a in self.b],
                "absb": [xp.abs(a.astype(f64)) for a in self.b],
                "rowsum": rowsum,
                "diffT": xp.ascontiguousarray(diff),
                # leaky slopes rounded to the dtype first, as the kernels and wide() do
                "slopes": [float(np.asarray(s, dtype=self.dtype)) for s in self.slopes],
            }
            self._memo["ibp"] = self._ibp_tab
        return self._ibp_tab

    def ibp_certify(self, lo: Any, hi: Any, pred: Any) -> dict[str, Any]:
        """IBP alone (``certify="ibp"``), the lean pass: interval bounds layer by layer
        in float64 (a float32 net's first layer as :meth:`_ibp_first`), two products per
        layer (centre and radius), the rounding allowance of the centre product from
        ``max|c| sum_j |W_ij|`` (float64: ~1e-13 of it, no third product), the margin
        rows folded into the last layer (``|W_c - W_j|``, as auto_LiRPA's IBP with a
        specification). Only the samples whose ball lies in one region and which IBP
        does not prove take the backward pass (exact there: :meth:`certify`), so the
        decisions are those of :meth:`certify`; the margin of a sample IBP proves is
        IBP's. The same keys as :meth:`certify` (margins in float64)."""
        xp, k = self.xp, self.k
        f64 = np.float64
        e64 = float(np.finfo(f64).eps)
        T = self._ibp_tables()
        n, K = lo.shape[0], self.n_classes

        def gamma64(m: int) -> float:
            return m * e64 / (1 - m * e64)

        buf = _Scratch(xp)
        if not self.n_hidden:
            # a linear model: the margin rows act on the input box itself (float64 copies
            # of its ends are exact)
            zl, zu = lo.astype(f64), hi.astype(f64)
        elif self.dtype == np.float32:
            zl, zu = self._ibp_first_lean(lo, hi, buf)
        else:
            zl, zu = self._ibp_interval(lo, hi, T, 0, gamma64, buf)
        stable = xp.ones(n, dtype=bool)
        for i in range(self.n_hidden):
            if i:
                zl, zu = self._ibp_interval(zl, zu, T, i, gamma64, buf)
            ok, _ = self._stable(zl, zu, self.kinds[i])
            stable &= ok
            k.crit_interval(zl, zu, self.kinds[i], T["slopes"][i])
        c = zl + zu
        c *= 0.5
        r = zu - c
        rows = xp.arange(n)
        center = c @ T["WT"][-1]
        center += T["b"][-1]
        mc = center[rows, pred][:, None] - center
        rad = xp.empty_like(mc)
        for cls in range(K):  # a loop over classes, not samples: k small products
            sel = xp.flatnonzero(pred == cls)
            if sel.size:
                rad[sel] = r[sel] @ T["diffT"][cls]
        # |error| <= gamma (|c| (|W_c| + |W_j|) + |b_c| + |b_j| + rad): |c| from max|c|
        cmax = xp.abs(c).max(axis=1, keepdims=True)
        rs, absb = T["rowsum"][-1], xp.abs(T["b"][-1])
        mag = cmax * (rs[pred][:, None] + rs[None, :])
        mag += absb[pred][:, None] + absb[None, :]
        mag += rad
        mag *= 4 * gamma64(int(c.shape[1]) + 6)
        mag += 1e-300
        bound = mc - rad - mag
        bound[rows, pred] = xp.inf
        margin = bound.min(axis=1) if K > 1 else xp.full(n, xp.inf, dtype=f64)
        out = {
            "margin": margin,
            "stable": stable,
            "rows": xp.full((n, K), xp.inf, dtype=f64),
            "lam_x": None,
            "pos": xp.full((n, K), -1, dtype=np.int64),
            "slack": xp.zeros(n, dtype=self.dtype),
            "pre": [],
        }
        sel = xp.flatnonzero(stable & ~(margin > 0))
        if sel.size and K > 1:
            # one region, not proved: the network is affine on the ball, the backward
            # bound is exact (and its worst corner a candidate critical point)
            sub = self.wide().certify(lo[sel].astype(f64), hi[sel].astype(f64), pred[sel], "ibp")
            margin[sel] = xp.maximum(margin[sel], sub["margin"])
            out["rows"][sel] = sub["rows"]
            out["pos"][sel] = sub["pos"]
            out["lam_x"] = sub["lam_x"]
        return out

    def _ibp_interval(
        self, lo: Any, hi: Any, T: dict, i: int, gamma64: Any, buf: _Scratch
    ) -> tuple[Any, Any]:
        """float64 bounds of ``W_i h + b_i`` over [lo, hi] (float64 tables ``T``), in
        ``buf``'s arrays (layer i's output alternates between two pairs, so that it never
        overwrites its input)."""
        xp = self.xp
        n, w = lo.shape[0], int(T["WT"][i].shape[1])
        c = buf.get("c", lo.shape)
        r = buf.get("r", lo.shape)
        xp.add(lo, hi, out=c)
        c *= 0.5
        xp.subtract(hi, c, out=r)
        zc = buf.get("zc", (n, w))
        zr = buf.get("zr", (n, w))
        xp.matmul(c, T["WT"][i], out=zc)
        zc += T["b"][i]
        xp.matmul(r, T["absWT"][i], out=zr)
        # |error| <= gamma (|c| |W_i|^T + |b_i| + r |W_i|^T), |c| |W_i|^T from max|c|
        slack = buf.get("slack", (n, w))
        xp.multiply(_absmax_rows(c, xp), T["rowsum"][i][None, :], out=slack)
        slack += T["absb"][i]
        slack += zr
        slack *= 4 * gamma64(int(c.shape[1]) + 4)
        slack += 1e-300
        zr += slack
        return _outward(zc, zr, buf, i, xp)

    def _ibp_first_lean(self, lo: Any, hi: Any, buf: _Scratch) -> tuple[Any, Any]:
        """:meth:`_ibp_first` (``wide=True``) in ``buf``'s arrays: the same centre ``c``,
        radii ``R`` (one pass of the ``crit_centre`` kernel, which also gives each row's
        largest ``R`` and ``|c|``) and centre product; the radius term by
        :meth:`_radius_by_max` where it applies (never looser), else the same product."""
        xp = self.xp
        f64 = np.float64
        wt64, b64 = self._first64()
        n, d = lo.shape
        w = int(wt64.shape[1])
        c64, R, rmax, cmax, low = self._centre_form(lo, hi, buf)
        zc = buf.get("zc", (n, w))
        xp.matmul(c64, wt64, out=zc)
        zc += b64
        e64 = float(np.finfo(f64).eps)
        g64 = (d + 4) * e64 / (1 - (d + 4) * e64)
        zr = buf.get("zr", (n, w))
        if not self._radius_by_max(R, rmax, low, zr, buf, g64):
            zr32 = buf.get("zr32", (n, w), lo.dtype)
            xp.matmul(R, self.absWT[0], out=zr32)
            zr[...] = zr32
            zr *= 1 + 2 * self._gamma(d + 2)
        slack = buf.get("slack", (n, w))
        xp.multiply(cmax.astype(f64)[:, None], self._rowsum64()[None, :], out=slack)
        slack += xp.abs(b64)
        slack += zr
        slack *= 4 * g64
        slack += 1e-300
        zr += slack
        return _outward(zc, zr, buf, 0, xp)

    def _radius_by_max(
        self, R: Any, rmax: Any, low: Any, zr: Any, buf: _Scratch, g64: float
    ) -> bool:
        """``zr >= R |W_0|^T`` (float64) without the product, where each ball's radii are
        nearly all its largest, ``Rmax`` (balls away from the box's faces): ``Rmax
        sum_j |W_ij|`` less the exact share of the radii below ``Rmax (1 - 2^-15)`` (the
        clipped coordinates; ``low`` counts them per row), rounded up. Never looser than
        the float32 product it replaces: the radii within ``2^-15`` of ``Rmax`` add at most
        3.1e-5 of the true value, the product's rounding allowance (``2 gamma_d`` less its
        rounding) at least 4.6e-5 with d >= 784 inputs (where the product costs most: the
        path is taken from there). Returns False, writing nothing, with fewer inputs, when
        over 1/8 of the radii are below (images with many pixels at the box's faces), or
        off the CPU."""
        xp = self.xp
        if xp is not np or R.shape[1] < 784:
            return False
        if int(low.sum()) > R.size // 8:
            return False
        f64 = np.float64
        e64 = float(np.finfo(f64).eps)
        rmax64 = rmax.astype(f64) * (1 + 4 * g64)
        xp.multiply(rmax64[:, None], self._rowsum64()[None, :], out=zr)  # >= Rmax sum|W|
        if low.any():
            absw = self._memo.get("absw0_64")
            if absw is None:
                absw = self._memo["absw0_64"] = xp.abs(self._first64()[0])
            # the clipped coordinates' share: float64 sums of exact non-negative terms
            # (rmax - R_j) |W_kj|, rounded down, so never above the true share
            share = buf.get("share", zr.shape)
            self.k.crit_radius_share(R, rmax, low, _SHORT, absw, share)
            share *= 1 - 2 * g64
            zr *= 1 + 8 * e64  # the subtraction's rounding
            zr -= share
        return True

    def certify(
        self, lo: Any, hi: Any, pred: Any, method: str, keep: bool = False, first: Any = None
    ) -> dict[str, Any]:
        """Bounds of one batch of balls [lo, hi].

        Returns the margin lower bound per sample (n,), whether every hidden neuron is
        stable on the ball (n,), the per-class rows' backward bound (n, k) (exact up to
        rounding where stable; +inf on the own class and where not computed), their
        coefficients on the input and the row of each (sample, class), for the corner
        candidates. ``"ibp"`` runs the backward pass on the stable samples only. ``first``:
        the first layer's bounds, computed before (IBP of float32 nets in float64).
        """
        xp, k = self.xp, self.k
        n = lo.shape[0]
        K = self.n_classes
        crown = method == "crown"
        stable = xp.ones(n, dtype=bool)
        layers: list[dict[str, Any]] = []
        kept: list[tuple[Any, Any, Any, Any]] = []  # IBP: pre-activation bounds, for later
        post = (lo, hi)
        post_ibp = (lo, hi)
        m_below = xp.maximum(xp.abs(lo), xp.abs(hi))
        geo = None
        pre: list[tuple[Any, Any]] = []  # keep: CROWN's pre-activation bounds per layer
        for i in range(self.n_hidden):
            if i == 0 and first is not None:
                zl, zu = first
            elif i == 0:
                zl, zu = self._ibp_first(lo, hi)
            else:
                zl, zu = self._ibp_affine(*post, i)
            if crown:
                # pure IBP kept alongside: the certificate is the best of both (the same
                # bounds up to the second layer, the first one CROWN tightens)
                if i <= 1:
                    pl, pu = zl.copy(), zu.copy()
                else:
                    pl, pu = self._ibp_affine(*post_ibp, i)
                k.crit_interval(pl, pu, self.kinds[i], self.slopes[i])
                post_ibp = (pl, pu)
                if i > 0:
                    if geo is None:
                        geo = self._geo(lo, hi)
                    self._tighten(zl, zu, i, layers, lo, hi, geo)
            ok, bad = self._stable(zl, zu, self.kinds[i])
            stable &= ok
            if crown:
                layers.append(self._layer(zl, zu, bad, i, m_below))
                if keep:
                    pre.append((zl.copy(), zu.copy()))
            else:
                kept.append((zl.copy(), zu.copy(), bad, m_below))
            k.crit_interval(zl, zu, self.kinds[i], self.slopes[i])
            post = (zl, zu)
            m_below = xp.maximum(xp.abs(zl), xp.abs(zu))
        ibp = self.ibp_margin(post, pred)
        if crown:
            ibp = xp.maximum(ibp, self.ibp_margin(post_ibp, pred))
            sel = None
        else:
            sel = xp.flatnonzero(stable).astype(np.int64)
        bound = xp.full((n, K), xp.inf, dtype=self.dtype)
        slack = xp.zeros(n, dtype=self.dtype)
        pos = xp.full((n, K), -1, dtype=np.int64)
        lam_x = None
        if sel is None or sel.size:
            if sel is not None:  # IBP: the stable samples' relaxations (all lines exact)
                layers = [self._layer(zl[sel], zu[sel], bad[sel], i, m[sel])
                          for i, (zl, zu, bad, m) in enumerate(kept)]  # fmt: skip
                lo_s, hi_s, m_top = lo[sel], hi[sel], m_below[sel]
            else:
                lo_s, hi_s, m_top = lo, hi, m_below
            lam, const, rows, pos_s = self.margin_rows(pred if sel is None else pred[sel])
            # the specification's rows were rounded: eps |lam| |h_top| + eps |const|
            err = xp.einsum("ij,ij->i", xp.abs(lam), m_top[rows]) * self.eps
            err += xp.abs(const) * self.eps
            if crown and geo is None and self.n_hidden:
                geo = self._geo(lo, hi)
            b_rows, lam_x = self._backward(
                lam, const, rows, self.n_hidden, layers, lo_s, hi_s, err, geo if crown else None
            )
            if sel is None:
                bound[pos_s >= 0] = b_rows
                pos = pos_s
                if K > 1:  # the largest rounding allowance of each sample's rows
                    slack = err.reshape(n, K - 1).max(axis=1)
            else:
                sub = xp.full((sel.size, K), xp.inf, dtype=self.dtype)
                sub[pos_s >= 0] = b_rows
                bound[sel] = sub
                pos[sel] = pos_s
        own = xp.zeros((n, K), dtype=bool)
        own[xp.arange(n), pred] = True
        if crown:
            rowwise = xp.maximum(bound, ibp)
        else:
            # IBP; where the net is affine on the ball the backward bound is exact
            rowwise = xp.where(stable[:, None], xp.maximum(bound, ibp), ibp)
        rowwise = xp.where(own, xp.inf, rowwise)
        margin = rowwise.min(axis=1) if K > 1 else xp.full(n, xp.inf, dtype=self.dtype)
        return {
            "margin": margin,
            "stable": stable,
            "rows": bound,
            "lam_x": lam_x,
            "pos": pos,
            "slack": slack,
            "pre": pre,
        }

    def _geo(self, lo: Any, hi: Any) -> dict[str, Any]:
        """The boxes' centre data for :meth:`_finish_norm` and :meth:`_finish_centred`,
        per sample: ``zc``, ``z_0`` at the centre c computed in float64 and rounded, and
        ``ez``, per neuron the bound of its error plus the gamma of a dot product with it;
        ``R >= |x - c|`` rounded up, ``rn >= ||R||_2``, ``WR >= |W_0| R`` (``n*``: the
        negated arrays, boxes for the concretization kernel)."""
        xp = self.xp
        f64 = np.float64
        e64 = float(np.finfo(f64).eps)
        c64, Rd, _, _, _ = self._centre_form(lo, hi)  # Rd rounded up: >= |x - c|
        c = c64.astype(self.dtype)  # exact
        d = int(self.W[0].shape[1])
        w = int(self.W[0].shape[0])
        wt64, b64 = self._first64()
        # z_0(c) in float64 (products of float32 values are exact there), then rounded:
        # within eps |zc| + gamma64_{d+2} (|c| |W_0|^T + |b_0|) of the exact value
        zc64 = c64 @ wt64
        zc64 += b64
        zc = zc64.astype(self.dtype)
        mag = xp.abs(c) @ self.absWT[0]
        mag += xp.abs(self.b[0])
        mag *= 1 + 2 * self._gamma(d + 2)  # an upper bound of the exact magnitudes
        g64 = (d + 4) * e64 / (1 - (d + 4) * e64)
        ez = mag * (2 * g64) + np.finfo(self.dtype).tiny
        ez += xp.abs(zc) * (self.eps + 2 * self._gamma(w + 2))
        R = Rd.astype(np.float64)
        rn = xp.sqrt((R * R).sum(axis=1) * (1 + 4 * (d + 2) * e64)) * (1 + 4 * e64)
        rn = (rn * (1 + 2 * (1 + 2 * self.eps) * self.eps) + 1e-300).astype(self.dtype)
        # |W_0| R per neuron (rounded up): bounds the product lam @ W_0's rounding times R
        WR = (Rd @ self.absWT[0]) * (1 + 2 * self._gamma(d + 2))
        return {
            "zc": zc,
            "nez": xp.ascontiguousarray(-ez),
            "ez": ez,
            "rn": rn,
            "R": xp.ascontiguousarray(Rd),
            "nR": xp.ascontiguousarray(-Rd),
            "WR": WR,
            "nWR": xp.ascontiguousarray(-WR),
        }

    def _tighten(self, zl: Any, zu: Any, i: int, layers: list, lo: Any, hi: Any, geo=None) -> None:
        """CROWN bounds for the unstable neurons of hidden layer ``i`` (in place).

        A cascade: each unstable neuron's rows (its lower and upper bound) run CROWN's
        backward steps down to the first layer's pre-activations; there the cheap
        2-norm bounds of :meth:`_finish_norm` (the spectral norm, then the Gram matrix)
        settle the neurons they prove stable (a stable neuron's relaxation is exact:
        a tighter bound changes nothing), and only the rest take CROWN's last step to
        the input. Each neuron keeps the tightest of its bounds.

        ReLU and leaky ReLU (one kink, at 0): the bound nearer 0 first, the other only
        for the neurons it leaves unstable. A neuron that one side proves stable takes
        the exact relaxation whatever its other bound (at 2/255 on the README's He net
        that side settles 85,524 of the 115,300 unstable neurons of the second layer and
        the other side is needed for 29,776 only: about a third fewer rows); the other
        bound stays IBP's, which only widens the next layer's starting bounds (CROWN's
        own bounds of that layer are the same) and the rounding allowances' magnitudes.
        """
        xp = self.xp
        kind = self.kinds[i]
        _, bad = self._stable(zl, zu, kind)
        info = self._norms() if geo is not None else None
        stages = []
        if info is not None and math.isfinite(info["sigma2"]):
            stages.append(False)
        if info is not None and info["gram"]:
            stages.append(True)
        if i == 1 and stages and not stages[0]:
            # the second layer's spectral-norm bounds for every neuron at once, the ones
            # IBP calls stable too (tighter next-layer IBP bounds: at 0.3/255 on the
            # README's net 41 instead of 106 neurons of 128 left for that layer's cascade)
            self._second_layer_norm(zl, zu, layers[0], geo, info["sigma2"])
            bad &= _unstable(zl, zu, kind)
            stages = stages[1:]
        s_idx, j_idx = xp.nonzero(bad)
        if s_idx.size == 0:
            return
        s_idx = s_idx.astype(np.int64)
        j_idx = j_idx.astype(np.int64)
        if _ONE_SIDE_FIRST and kind in (ACTIVATIONS["relu"], ACTIVATIONS["leaky_relu"]):
            lower = -zl[s_idx, j_idx] < zu[s_idx, j_idx]  # the lower bound is nearer 0
            self._tighten_rows(zl, zu, i, layers, lo, hi, geo, stages, s_idx, j_idx, lower)
            left = _unstable(zl[s_idx, j_idx], zu[s_idx, j_idx], kind)
            s_idx, j_idx, lower = s_idx[left], j_idx[left], ~lower[left]
            # the far side: the norm filters (~1.25x looser than the full step) rarely
            # settle it, and cost a sixth of the full step per row (He net 2/255: -5 %)
            stages = []
        else:  # two kinks (hard-tanh) or a step: both bounds of every unstable neuron
            m = s_idx.size
            s_idx, j_idx = xp.concatenate([s_idx, s_idx]), xp.concatenate([j_idx, j_idx])
            lower = xp.arange(2 * m) < m
        if s_idx.size:
            self._tighten_rows(zl, zu, i, layers, lo, hi, geo, stages, s_idx, j_idx, lower)

    def _tighten_rows(
        self, zl, zu, i: int, layers: list, lo, hi, geo, stages: list, s_idx, j_idx, lower
    ) -> None:
        """:meth:`_tighten`'s cascade for the rows of neurons ``(s_idx, j_idx)``: of the
        lower bound where ``lower``, else of the upper one (the lower bound of -z)."""
        xp = self.xp
        kind = self.kinds[i]
        for a in range(0, s_idx.size, _CROWN_ROWS):
            s = s_idx[a : a + _CROWN_ROWS]
            j = j_idx[a : a + _CROWN_ROWS]
            low = lower[a : a + _CROWN_ROWS]
            m = s.size
            lam = xp.take(self.W[i], j, axis=0)
            xp.negative(lam, out=lam, where=~low[:, None])
            const = xp.where(low, self.b[i][j], -self.b[i][j])
            rows = xp.ascontiguousarray(s)
            err = xp.zeros(m, dtype=self.dtype)  # the rows are exact (+-W, +-b)
            cmag = xp.zeros(m, dtype=self.dtype)
            lam = self._steps(lam, const, rows, i, layers, err, cmag)
            centred = geo is not None
            if centred:  # the steps every bound below shares, once
                self._add_centre(lam, const, rows, geo, err, cmag)
            left = xp.arange(m)  # the chunk's rows whose neuron is not yet proved stable
            for gram in list(stages):
                if left.size == m:
                    args = (lam, const, rows, geo, err, cmag)
                else:
                    args = (lam[left], const[left], rows[left], geo, err[left], cmag[left])
                bnd = self._finish_norm(*args, gram, centred=centred)
                k = left.size
                _keep_tighter(zl, zu, s[left], j[left], low[left], bnd, xp)
                left = left[_unstable(zl[s[left], j[left]], zu[s[left], j[left]], kind)]
                if 8 * (k - left.size) < k:
                    # it settled under 1/8 of its neurons (large balls: nearly all truly
                    # unstable): not worth its cost on this layer's next chunks (the
                    # full step's bound is never looser: the same linear function)
                    stages.remove(gram)
                if left.size == 0:
                    break
            if left.size == 0:
                continue
            args = (xp.ascontiguousarray(lam[left]), const[left], rows[left])
            if geo is not None:
                bnd, _ = self._finish_centred(
                    *args, geo, err[left], cmag[left], keep_v=False, centred=True
                )
            else:
                bnd, _ = self._finish_full(*args, layers, lo, hi, err[left], cmag[left])
            _keep_tighter(zl, zu, s[left], j[left], low[left], bnd, xp)

    def _second_layer_norm(self, zl: Any, zu: Any, L0: dict, geo: dict, sigma2: float) -> None:
        """:meth:`_finish_norm`'s spectral-norm bound for every neuron of the second hidden
        layer, as GEMMs against the shared weights (in place on its bounds [zl, zu]).

        The row of neuron j's lower bound, after CROWN's step through the first layer's
        relaxation, is ``lam_u = W_ju (aL_u if W_ju >= 0 else aU_u)``; with ``P = max(W, 0)``
        and ``N = min(W, 0)`` every sum the bound needs (the offsets lam . b, the centre
        lam . z_0(c), ``||lam||^2`` and the rounding allowances) is one product of P or N
        with a per-sample vector: 128 x 128 GEMMs for all neurons of all samples instead of
        a pass over 2 x 128 rows per sample. The upper bound's row is the lower bound's of
        -W: P and N swap roles. Rounding: each product within gamma_{w+4} of the product
        of magnitudes (Higham), added to the allowance as in :meth:`_backward`.
        """
        xp = self.xp
        W, b = self.W[1], self.b[1]
        w = int(W.shape[1])
        aL, bL, aU, bU = L0["relax"]
        zc, ez = geo["zc"], geo["ez"]
        P = xp.maximum(W, 0).T.copy()
        N = xp.minimum(W, 0).T.copy()
        A = xp.abs(W).T.copy()
        g = self._gamma(w + 4)
        with np.errstate(over="ignore", invalid="ignore"):
            act_err = L0["act"] @ A  # |lam| . act: the step's allowance (either sign)
            mag = xp.maximum(xp.abs(bL), xp.abs(bU)) @ A
            mag += (xp.maximum(xp.abs(aL), xp.abs(aU)) * xp.abs(zc)) @ A
            mag += xp.abs(b)
            for sign in (1, -1):
                # sign 1: lower bound of z_j (row W_j); -1: of -z_j (row -W_j), P <-> N
                Pa, Pb, Na, Nb = (aL, bL, aU, bU) if sign == 1 else (aU, bU, aL, bL)
                off = Pb @ P
                off += Nb @ N
                cen = (Pa * zc) @ P
                cen += (Na * zc) @ N
                q = (Pa * Pa) @ (P * P)
                q += (Na * Na) @ (N * N)
                ce = (xp.abs(Pa) * ez) @ P
                ce -= (xp.abs(Na) * ez) @ N  # N <= 0: |N| = -N
                if sign == 1:
                    val = off + cen + b
                else:
                    val = -(off + cen) - b
                q *= 1 + 2 * g + 4 * self.eps
                dev = xp.sqrt(q * sigma2) * geo["rn"][:, None] * (1 + 16 * self.eps)
                err = act_err + ce * (1 + 2 * g) + mag * (2 * g)
                err += (xp.abs(val) + dev) * (4 * self.eps)
                bound = val - dev - (err * 1.01 + np.finfo(self.dtype).tiny * 4)
                bound = xp.where(xp.isnan(bound), -xp.inf, bound)
                if sign == 1:
                    xp.maximum(zl, bound, out=zl)
                else:
                    xp.minimum(zu, -bound, out=zu)


def _keep_tighter(zl: Any, zu: Any, s: Any, j: Any, lower: Any, bound: Any, xp: Any) -> None:
    """Neuron ``(s, j)``'s lower bound raised to ``bound`` where ``lower``, else its
    upper bound lowered to ``-bound`` (a lower bound of -z), whichever is tighter."""
    ls, lj = s[lower], j[lower]
    zl[ls, lj] = xp.maximum(zl[ls, lj], bound[lower])
    up = ~lower
    us, uj = s[up], j[up]
    zu[us, uj] = xp.minimum(zu[us, uj], -bound[up])


def _absmax_rows(a: Any, xp: Any) -> Any:
    """``max_j |a_ij|`` per row as a column, with no temporary of a's size."""
    return xp.maximum(a.max(axis=1), -a.min(axis=1))[:, None]


def _outward(zc: Any, zr: Any, buf: _Scratch, i: int, xp: Any) -> tuple[Any, Any]:
    """``(zc - zr, zc + zr)`` in the pair of ``buf`` arrays for layer parity ``i % 2``."""
    lo = buf.get(("lo", i % 2), zc.shape)
    hi = buf.get(("hi", i % 2), zc.shape)
    xp.subtract(zc, zr, out=lo)
    xp.add(zc, zr, out=hi)
    return lo, hi


def _round_down(m: Any, dtype: Any, xp: Any) -> Any:
    """float64 values rounded down to ``dtype`` (NaN stays NaN)."""
    if np.dtype(dtype) == np.float64:
        return m
    m32 = m.astype(dtype)
    down = xp.nextafter(m32, np.dtype(dtype).type(-np.inf))
    return xp.where(m32.astype(np.float64) > m, down, m32)


def _round_out(zl: Any, zu: Any, dtype: Any, xp: Any) -> tuple[Any, Any]:
    """float64 bounds [zl, zu] rounded outward to ``dtype``."""
    lo = zl.astype(dtype)
    hi = zu.astype(dtype)
    t = np.dtype(dtype).type(np.inf)
    lo = xp.where(lo.astype(np.float64) > zl, xp.nextafter(lo, -t), lo)
    hi = xp.where(hi.astype(np.float64) < zu, xp.nextafter(hi, t), hi)
    return lo, hi


def _unstable(zl: Any, zu: Any, kind: int) -> Any:
    """Elementwise: a neuron of this kind may change state somewhere in [zl, zu]: not
    proved stable, so a NaN bound (an overflow's inf - inf) counts as unstable."""
    if kind in CLAMPS:
        c0, c1 = CLAMPS[kind]
        return ~((zu <= c0) | ((zl >= c0) & (zu <= c1)) | (zl >= c1))
    if kind == ACTIVATIONS["threshold"]:
        return ~((zu < 0) | (zl >= 0))
    return ~((zu <= 0) | (zl >= 0))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CriticalSamples:
    """Critical samples with both sides of the CSR (see :func:`critical_samples`).

    Attributes
    ----------
    status : ndarray (n,) of str
        ``"critical"`` (an adversarial point was found and verified by a forward pass),
        ``"robust"`` (the certified margin lower bound is > 0) or ``"unknown"``.
    adversarial : ndarray (n, d)
        The adversarial point of each critical sample; NaN rows elsewhere.
    steps_taken : ndarray (n,) of int64
        Search steps spent on each sample (over all restarts; 0 when decided without
        search).
    margin_lower : ndarray (n,)
        Certified lower bound of ``min_j f_c(x') - f_j(x')`` over the ball (c the
        predicted class); NaN when ``certify=None`` and where the search decided the
        sample before certification (see the order above). CROWN of a float32 net: with
        ``steps=0`` (the certificate alone) computed in float64 arithmetic, within ~1e-6
        of the exact CROWN bound (auto_LiRPA's); beside a search (``steps >= 1``), where
        the certificate's product is the status, in float32 with a rigorous rounding
        allowance (up to ~1e-3 lower) and the samples within a few allowances of 0
        certified again in float64: the same statuses, in about half the time.
    predicted : ndarray (n,) of int64
        Predicted class of each input.
    decided_exactly : dict
        ``{"critical": m, "robust": m}``: samples on whose whole ball no hidden neuron
        can change state, decided exactly from the affine map, without search.
    csr_lower, csr_upper : float
        ``N_critical / N`` and ``1 - N_robust / N``; the true CSR lies between.
    backend : str
    params : dict
    """

    status: np.ndarray
    adversarial: np.ndarray
    steps_taken: np.ndarray
    margin_lower: np.ndarray
    predicted: np.ndarray
    decided_exactly: dict[str, int]
    csr_lower: float
    csr_upper: float
    backend: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_critical(self) -> int:
        return int((self.status == "critical").sum())

    @property
    def n_robust(self) -> int:
        return int((self.status == "robust").sum())

    @property
    def n_unknown(self) -> int:
        return int((self.status == "unknown").sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (NaN and Inf written as None, :mod:`fastmem._json`)."""
        return jsonable(
            {
                "status": self.status,
                "adversarial": self.adversarial,
                "steps_taken": self.steps_taken,
                "margin_lower": self.margin_lower,
                "predicted": self.predicted,
                "decided_exactly": dict(self.decided_exactly),
                "n_critical": self.n_critical,
                "n_robust": self.n_robust,
                "n_unknown": self.n_unknown,
                "csr_lower": self.csr_lower,
                "csr_upper": self.csr_upper,
                "backend": self.backend,
                "params": dict(self.params),
            }
        )


@dataclass(frozen=True)
class CSRCurve:
    """CSR bounds over several radii (see :func:`csr_curve`).

    Attributes
    ----------
    radii, csr_lower, csr_upper : ndarray (m,)
        Radii in ascending order and the CSR sandwich at each.
    n_critical, n_robust, n_unknown : ndarray (m,) of int64
    backend : str
    params : dict
    """

    radii: np.ndarray
    csr_lower: np.ndarray
    csr_upper: np.ndarray
    n_critical: np.ndarray
    n_robust: np.ndarray
    n_unknown: np.ndarray
    backend: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return jsonable(
            {
                "radii": self.radii,
                "csr_lower": self.csr_lower,
                "csr_upper": self.csr_upper,
                "n_critical": self.n_critical,
                "n_robust": self.n_robust,
                "n_unknown": self.n_unknown,
                "backend": self.backend,
                "params": dict(self.params),
            }
        )


@dataclass(frozen=True)
class CertifiedRadius:
    """Largest certified L_inf radius per sample (see :func:`certified_radius`).

    Attributes
    ----------
    radius : ndarray (n,)
        Every ball of this radius (intersected with the box) is certified robust.
    backend : str
    params : dict
    """

    radius: np.ndarray
    backend: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return jsonable({"radius": self.radius, "backend": self.backend, "params": self.params})


@dataclass(frozen=True)
class LossSensitivity:
    """Per-sample input-gradient norms of the loss (see :func:`loss_sensitivity`).

    Attributes
    ----------
    values : ndarray (n,)
        ``||d CE(f(x_i), y_i) / d x_i||`` in the chosen norm.
    gini : float
        Gini coefficient of ``values`` (0: all equal; near 1: a few samples dominate).
    backend : str
    params : dict
    """

    values: np.ndarray
    gini: float
    backend: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return jsonable(
            {
                "values": self.values,
                "gini": self.gini,
                "backend": self.backend,
                "params": dict(self.params),
            }
        )


# --------------------------------------------------------------------------- helpers
def _prepare(
    net: Network,
    X: Any,
    backend: str | None,
    box: tuple[float, float] | None,
    certify: str | None = None,
):
    if not isinstance(net, Network):
        raise InputError(f"net: must be a fastmem.Network, got {type(net).__name__}")
    Xd, be, netd, _ = net._prepare(X, backend)
    if box is not None:
        lo, hi = box
        # X is finite (validated): its min and max decide, without boolean temporaries
        if Xd.size and (float(Xd.min()) < lo or float(Xd.max()) > hi):
            raise InputError(
                f"X: has values outside box=({lo}, {hi}); rescale the data or pass box="
            )
    if netd.layer_graph is not None or netd._conv is not None:
        # max pooling / residual blocks (fastmem._graph); a convolutional network lowered
        # to dense matrices runs on its convolutions (native, and CROWN's rows as patches)
        from ._graph_critical import GraphModel

        model = GraphModel(netd if netd.layer_graph is not None else netd._conv_network(), be)
        return Xd, be, model
    return Xd, be, _Model(netd, be)


def _ball(model: _Model, X: Any, radius: Any, box: tuple[float, float]) -> tuple[Any, Any]:
    xp = model.xp
    with np.errstate(over="ignore"):  # a radius past the dtype's range: inf, the box
        r = xp.asarray(radius, dtype=model.dtype).reshape(-1)
    if model.dtype != np.float64:
        # rounded up, not to nearest: a radius rounded down would leave out the dtype's
        # points near the ball's faces (float32 r = 0.7 misses x - 0.7 where x ~ 0.6)
        r64 = xp.asarray(radius, dtype=np.float64).reshape(-1)
        r = xp.where(r.astype(np.float64) < r64, xp.nextafter(r, r.dtype.type(np.inf)), r)
    r = xp.ascontiguousarray(r)
    # in the calling thread's kept arrays (one call's ball at a time per thread: the
    # radii of csr_curve and certified_radius are taken one after the other)
    buf = _Scratch(xp)
    lo = buf.get("ball_lo", X.shape, model.dtype)
    hi = buf.get("ball_hi", X.shape, model.dtype)
    # [max(X - r, box[0]), min(X + r, box[1])] in one pass (NumPy's four took ~1 ms for
    # 1000 x 784 float32 inputs, most of it in maximum's NaN handling; X is finite), on
    # one core: an OpenMP team's idle thread would spin on the core the parts need next
    # the box cut to the dtype's finite range (no input lies beyond it): an infinite end
    # would make the ball's corners, candidate adversarial points, infinite
    top = float(np.finfo(model.dtype).max)
    b0, b1 = max(box[0], -top), min(box[1], top)
    with kernel_threads(model.be, 1):
        model.k.crit_ball(xp.ascontiguousarray(X), r, b0, b1, lo, hi)
    return lo, hi


def _inner_ball(model: _Model, X: Any, lo: Any, hi: Any, radius: Any) -> tuple[Any, Any]:
    """The search's ball: points of the dtype within the real ball around ``X`` (radius
    ``radius`` in real arithmetic) and within [lo, hi], the certificate's ball
    (:func:`_ball`), which is rounded outward (a float32 radius rounded up, ``x - r``
    rounded to nearest): its faces may lie up to an ulp beyond the radius, and a point
    found there would be a critical sample farther than ``radius``. Here the radius is
    rounded down and ``x -+ r`` moved one ulp inward (each is within half an ulp of the
    exact value), kept within [lo, hi] and around x itself."""
    xp = model.xp
    dt = np.dtype(model.dtype)
    r64 = xp.asarray(radius, dtype=np.float64).reshape(-1)
    with np.errstate(over="ignore"):
        r = r64.astype(dt)
    r = xp.where(r.astype(np.float64) > r64, xp.nextafter(r, dt.type(0)), r)
    r = r[:, None] if r.size > 1 else r
    with np.errstate(over="ignore", invalid="ignore"):
        a = xp.nextafter(X - r, dt.type(np.inf))
        b = xp.nextafter(X + r, dt.type(-np.inf))
    a = xp.minimum(xp.maximum(a, lo), X)
    b = xp.maximum(xp.minimum(b, hi), X)
    return a, b


def _predict(model: _Model, X: Any) -> Any:
    """Each row's predicted class. On the CPU in parts of ``_IBP_PART`` rows side by side
    on the kernels' threads (BLAS is single-threaded under ``kernels_own_the_cores``):
    the parts never depend on the threads, so neither do the predictions."""
    xp = model.xp
    n = X.shape[0]
    pred = xp.empty(n, dtype=np.int64)

    def part(a: int, b: int) -> None:
        logits, _ = model.forward(X[a:b], derivs=False, check=True)
        pred[a:b] = logits.argmax(axis=1)

    if model.be.device != "cpu" or n <= _IBP_PART:
        part(0, n)
        return pred
    calls = [(part, (a, min(a + _IBP_PART, n)), {}) for a in range(0, n, _IBP_PART)]
    _side_by_side(model.be, cpu_threads(model.be), calls)
    return pred


def _changed(model: _Model, x: Any, labels: Any) -> Any:
    with np.errstate(over="ignore", invalid="ignore"):
        logits, _ = model.forward(x, derivs=False)
    flags = model.xp.empty(x.shape[0], dtype=np.uint8)
    model.k.crit_check(logits, labels, flags)
    # a point whose logits overflow has no class (Network.predict refuses it), and the
    # kernel's argmax reads NaN logits as class 0
    return flags.astype(bool) & model.xp.isfinite(logits).all(axis=1)


def _certify_all(model, lo, hi, pred, method, batch, tight=True):
    """Certification over sample batches; returns margin, stable, corner, corner_ok."""
    margin, stable, corner, has_corner, _ = _certify_parts(
        model, lo, hi, pred, method, batch, tight
    )
    return margin, stable, corner, has_corner


def _recheck64(model, lo, hi, pred, out) -> None:
    """Float32 nets certified in float32 arithmetic (``tight=False``): the rigorous
    rounding allowance (gamma_n |lam| |W| |h| per step above the first layer) can decide
    a sample; the samples it may have cost (margin within a few allowances of 0) are
    certified again in float64 arithmetic, where it is negligible: the same decisions
    as float64 throughout, at about half its time. The margin is rounded down;
    ``out["margin"]`` in place."""
    xp = model.xp
    margin = out["margin"]
    retry = xp.flatnonzero((margin <= 0) & (margin + 8 * out["slack"] > 0))
    if retry.size == 0 or model.n_classes < 2:
        return
    f64 = np.float64
    m = model.wide().certify(lo[retry].astype(f64), hi[retry].astype(f64), pred[retry], "crown")
    m = xp.where(xp.isnan(m["margin"]), -xp.inf, m["margin"])
    margin[retry] = xp.maximum(margin[retry], _round_down(m, model.dtype, xp))


def _alpha_part(model, lo, hi, pred, out) -> None:
    """alpha-CROWN on the samples of one part that CROWN left unknown (margin <= 0, not
    decided exactly); ``out["margin"]`` in place (the better of the two bounds)."""
    xp = model.xp
    margin = out["margin"]
    todo = xp.flatnonzero(~(margin > 0) & ~out["stable"])
    if todo.size == 0 or model.n_classes < 2 or model.n_hidden == 0:
        return
    if hasattr(model, "alpha_margin"):  # a layer graph (fastmem._graph_alpha)
        m = model.alpha_margin(lo[todo], hi[todo], pred[todo], out, todo)
    else:
        pre = [(zl[todo], zu[todo]) for zl, zu in out["pre"]]
        m = _alpha_crown(model, lo[todo], hi[todo], pred[todo], pre)
    margin[todo] = xp.maximum(margin[todo], m)


def _alpha_lower_mask(model, i: int, zl: Any, zu: Any) -> Any:
    """Neurons whose lower relaxation line alpha-CROWN optimizes: unstable ReLU, and
    leaky ReLU of slope <= 1 (its lower line a z is valid for a in [s, 1])."""
    kind = model.kinds[i]
    if kind == ACTIVATIONS["relu"]:
        return (zl < 0) & (zu > 0)
    if kind == ACTIVATIONS["leaky_relu"] and float(model.slopes[i]) <= 1:
        return (zl < 0) & (zu > 0)
    return model.xp.zeros(zl.shape, dtype=bool)


def _alpha_crown(model, lo, hi, pred, pre, iters: int | None = None) -> Any:
    """alpha-CROWN's margin lower bounds (n,) for the balls [lo, hi], over the given
    intermediate bounds ``pre`` (each hidden layer's CROWN bounds (zl, zu)).

    As auto_LiRPA's alpha-CROWN (Xu et al. 2021) for the final specification: each
    margin row ``f_c - f_j`` gets its own slopes alpha of the lower relaxation lines of
    its unstable neurons, optimized by projected gradient ascent (Adam) on the row's
    CROWN bound; started at CROWN's own choice and keeping each row's best slopes, so
    never looser than CROWN. The optimization runs in float64 without rounding control;
    the final bound is then computed rigorously (:meth:`_Model._backward` with the
    rounding allowance, in float64: exact copies of a float32 net) with the best
    slopes, which are valid whatever their values (any alpha in [0, 1]; [s, 1] leaky).
    Batched over rows: one GEMM per layer and pass, no loop over samples.
    """
    xp = model.xp
    wide = model.wide() if model.dtype != np.float64 else model
    f64 = np.float64
    iters = _ALPHA_ITERS if iters is None else iters
    n = lo.shape[0]
    K = model.n_classes
    L = model.n_hidden
    lo = lo.astype(f64)
    hi = hi.astype(f64)
    lam0, const0, rows, _ = wide.margin_rows(pred)
    R = int(rows.size)
    lo_r, hi_r = lo[rows], hi[rows]
    rel, U, alpha = [], [], []
    for i in range(L):
        zl, zu = (a.astype(f64) for a in pre[i])
        r4 = tuple(xp.empty_like(zl) for _ in range(4))
        wide.k.crit_relax(zl, zu, wide.kinds[i], wide.slopes[i], *r4)
        r4 = tuple(xp.ascontiguousarray(a[rows]) for a in r4)
        u = _alpha_lower_mask(wide, i, zl, zu)[rows]
        rel.append(r4)
        U.append(u)
        alpha.append(r4[0].copy())
    floor = [float(wide.slopes[i]) if wide.kinds[i] == ACTIVATIONS["leaky_relu"] else 0.0
             for i in range(L)]  # fmt: skip
    Ws = [wide.W[i] for i in range(L)]
    bs = [wide.b[i] for i in range(L)]
    best = xp.full(R, -xp.inf)
    best_alpha = [a.copy() for a in alpha]
    m1 = [xp.zeros_like(a) for a in alpha]
    m2 = [xp.zeros_like(a) for a in alpha]
    with np.errstate(over="ignore", invalid="ignore"):
        for it in range(iters + 1):
            mu = lam0.copy()
            const = const0.copy()
            saved = []
            for i in range(L - 1, -1, -1):
                _, bL, aU, bU = rel[i]
                pos = mu >= 0
                a = xp.where(pos, alpha[i], aU)
                t = xp.where(pos, bL, bU)
                const += (mu * t).sum(axis=1)
                nu = mu * a
                const += nu @ bs[i]
                saved.append((mu, pos, a, t))
                mu = nu @ Ws[i]
            bound = const + xp.where(mu >= 0, mu * lo_r, mu * hi_r).sum(axis=1)
            better = bound > best
            best = xp.where(better, bound, best)
            for i in range(L):
                best_alpha[i][better] = alpha[i][better]
            if it == iters:
                break
            g = xp.where(mu >= 0, lo_r, hi_r)  # d bound / d (coefficients on x)
            saved.reverse()  # saved[i] belongs to layer i
            for i in range(L):
                mu_i, pos, a, t = saved[i]
                g_nu = g @ Ws[i].T
                g_nu += bs[i]
                grad = xp.where(pos & U[i], g_nu * mu_i, 0)
                g = g_nu * a + t
                alpha[i], m1[i], m2[i] = projected_adam_step(
                    xp, alpha[i], grad, m1[i], m2[i], it, _ALPHA_LR, floor[i], U[i]
                )
        # the rigorous bound of each row with its best slopes (per-row layers: rows of
        # the backward pass index themselves)
        layers = []
        m_below = xp.maximum(xp.abs(lo_r), xp.abs(hi_r))
        for i in range(L):
            zl, zu = (xp.ascontiguousarray(a.astype(f64)[rows]) for a in pre[i])
            _, bad = wide._stable(zl, zu, wide.kinds[i])
            layers.append(wide._layer(zl, zu, bad, i, m_below, alpha=(U[i], best_alpha[i])))
            wide.k.crit_interval(zl, zu, wide.kinds[i], wide.slopes[i])
            m_below = xp.maximum(xp.abs(zl), xp.abs(zu))
        lam = lam0.copy()
        const = const0.copy()
        err = xp.einsum("ij,ij->i", xp.abs(lam), m_below) * wide.eps
        err += xp.abs(const) * wide.eps
        own = xp.arange(R, dtype=np.int64)
        geo = wide._geo(lo_r, hi_r)
        b_rows, _ = wide._backward(lam, const, own, L, layers, lo_r, hi_r, err, geo)
    b_rows = xp.where(xp.isnan(b_rows), -xp.inf, b_rows)
    m = b_rows.reshape(n, K - 1).min(axis=1)
    if model.dtype == f64:
        return m
    m32 = m.astype(model.dtype)
    down = xp.nextafter(m32, model.dtype.type(-xp.inf))
    return xp.where(m32.astype(f64) > m, down, m32)


def _stable_all(model, lo, hi, batch):
    """IBP: whether no hidden neuron can change state on each ball (n,)."""
    xp = model.xp
    if hasattr(model, "stable_all"):  # a layer graph (fastmem._graph_critical)
        return model.stable_all(lo, hi, batch)
    n = lo.shape[0]
    stable = xp.empty(n, dtype=bool)
    for a in range(0, n, batch):
        post = (lo[a : a + batch], hi[a : a + batch])
        ok = xp.ones(post[0].shape[0], dtype=bool)
        for i in range(model.n_hidden):
            zl, zu = model._ibp_first(*post) if i == 0 else model._ibp_affine(*post, i)
            ok &= model._stable(zl, zu, model.kinds[i])[0]
            model.k.crit_interval(zl, zu, model.kinds[i], model.slopes[i])
            post = (zl, zu)
        stable[a : a + batch] = ok
    return stable


def _certify_parts(model, lo, hi, pred, method, batch, tight=True):
    """:func:`_certify_all` in the model's dtype; also each sample's rounding allowance.

    CROWN of float32 nets: ``tight``, in float64 arithmetic (margins within ~1e-6 of the
    exact CROWN bound, as auto_LiRPA's); otherwise in float32 with :func:`_recheck64`
    (the same decisions, looser margins: what a search beside it needs). IBP of float32
    nets: the first layer as :meth:`_Model._ibp_first` (its centre product in float64),
    the layers above in float64 (float32's allowance of a 128-term sum, ~1e-4 of its
    magnitudes, cost 2 of auto_LiRPA's 800 samples on the digits MLP at 0.3/255)."""
    xp = model.xp
    n = lo.shape[0]
    margin = xp.empty(n, dtype=model.dtype)
    stable = xp.empty(n, dtype=bool)
    corner = xp.empty(lo.shape, dtype=model.dtype)  # read only where has_corner
    has_corner = xp.zeros(n, dtype=bool)
    slack = xp.zeros(n, dtype=model.dtype)

    def one(a: int, b: int) -> None:
        # bounds that overflow (huge balls or weights) certify nothing: a NaN margin
        # bound (inf - inf) is the trivial bound -inf
        alpha = method == "alpha-crown"
        base = "crown" if alpha else method
        with np.errstate(over="ignore", invalid="ignore"):
            if tight and base == "crown" and model.dtype != np.float64:
                # float32 nets: CROWN in float64 arithmetic (exact copies of the weights
                # and balls). float32's rigorous rounding allowance of a backward row,
                # gamma_w |lam| |W| |h| per step, is ~1e-4 on a 128-wide layer: above
                # the differences of the relaxation itself (auto_LiRPA's bounds, which
                # have no rounding control, are within ~1e-5 of the exact CROWN bound)
                wide = model.wide()
                f64 = np.float64
                l64, h64 = lo[a:b].astype(f64), hi[a:b].astype(f64)
                out = wide.certify(l64, h64, pred[a:b], base, keep=alpha)
                if alpha:
                    _alpha_part(wide, l64, h64, pred[a:b], out)
                out["margin"] = _round_down(out["margin"], model.dtype, xp)
            elif base == "ibp" and type(model) is _Model:  # dense: the lean IBP pass
                out = model.ibp_certify(lo[a:b], hi[a:b], pred[a:b])
                out["margin"] = _round_down(out["margin"], model.dtype, xp)
            else:
                out = model.certify(lo[a:b], hi[a:b], pred[a:b], base, keep=alpha)
                if base == "crown" and model.dtype != np.float64:
                    _recheck64(model, lo[a:b], hi[a:b], pred[a:b], out)
                if alpha:
                    _alpha_part(model, lo[a:b], hi[a:b], pred[a:b], out)
        margin[a:b] = xp.where(xp.isnan(out["margin"]), -xp.inf, out["margin"])
        slack[a:b] = out["slack"]
        stable[a:b] = out["stable"]
        rows = out["rows"]
        worst = rows.argmin(axis=1)
        neg = xp.flatnonzero(rows[xp.arange(b - a), worst] < 0)
        if neg.size:
            lam = out["lam_x"][out["pos"][neg, worst[neg]]]
            # the minimiser of lam . x over the box: a corner
            corner[a + neg] = xp.where(lam >= 0, lo[a + neg], hi[a + neg])
            has_corner[a + neg] = True

    if model.be.device != "cpu":
        for a in range(0, n, batch):
            one(a, min(a + batch, n))
        return margin, stable, corner, has_corner, slack
    # CPU: parts of fixed size (never dependent on the threads: samples are certified
    # independently, so the bounds are the same whatever the threads), side by side on
    # the kernels' threads with BLAS single-threaded (its GEMMs are most of the work)
    # IBP's parts are larger: its work per sample is small and each part costs the same
    # few dozen NumPy calls (a fixed size still: the bounds never depend on the threads)
    part = min(batch, _IBP_PART if method == "ibp" and type(model) is _Model else _CERTIFY_PART)
    if type(model) is not _Model and method != "ibp":
        # layer graphs: seconds per sample part (a ResNet's CROWN: ~0.15 s a sample), so
        # a batch under four parts is cut into four (of at least _GRAPH_PART_MIN samples)
        # that the threads take in turn (the cut follows the batch's size only)
        part = min(part, max(_GRAPH_PART_MIN, -(-n // 4)))
    calls = [(one, (a, min(a + part, n)), {}) for a in range(0, n, part)]
    _side_by_side(model.be, cpu_threads(model.be), calls)
    return margin, stable, corner, has_corner, slack


def _search(model, X, lo, hi, pred, todo, *, batch: int, **kw: Any) -> None:
    """Batched LASS / PGD on the samples ``todo``; fills the result arrays in place.

    On the CPU each batch is searched in parts of ``_SEARCH_PART`` samples (a batch of
    fewer than twice that in two halves, of at least 16), side by side
    on the kernels' threads (BLAS is single-threaded here, and the GEMMs are most of the
    work). The parts depend on the batch only, never on the threads, and samples are
    independent (their noise is keyed by sample id): the results are the same, bit for
    bit, whatever the number of threads. ``kw``: the keywords of :func:`_search_rows`.
    """
    threads = cpu_threads(model.be)
    for a in range(0, todo.size, batch):
        chunk = todo[a : a + batch]
        if model.be.device != "cpu":
            _search_rows(model, X, lo, hi, pred, chunk, **kw)
            continue
        # a small batch (what a certificate left undecided) in two parts, so that two
        # cores share it (the parts follow the batch's size, never the threads)
        size = _SEARCH_PART if chunk.size >= 2 * _SEARCH_PART else max(16, -(-chunk.size // 2))
        parts = [chunk[p : p + size] for p in range(0, chunk.size, size)]
        _side_by_side(model.be, threads, [(_search_rows, (model, X, lo, hi, pred, part), kw)
                                          for part in parts])  # fmt: skip


def _side_by_side(be: Any, threads: int, calls: list[tuple[Any, tuple, dict]]) -> None:
    """Run ``fn(*args, **kw)`` for every call, on up to ``threads`` threads, each call's
    kernels on one core (an OpenMP team per call would put twice the threads on the
    cores, spinning at every join); one after the other with fewer than two threads or
    calls, or where the kernels must not be entered from two threads at once (Numba's
    workqueue layer: :func:`kernels_callable_side_by_side`)."""
    calls = list(calls)
    if len(calls) == 1 and be.device == "cpu":
        # one part (a small batch: the look, or what the certificate left): its kernels
        # on one core, where an OpenMP team's joins would cost more than they share
        fn, args, kw = calls[0]
        with kernel_threads(be, 1):
            fn(*args, **kw)
        return
    if threads >= 2 and len(calls) >= 2 and not kernels_callable_side_by_side(be):
        fn, args, kw = calls.pop(0)  # the first call picks Numba's threading layer
        fn(*args, **kw)
    if threads < 2 or len(calls) < 2 or not kernels_callable_side_by_side(be):
        for fn, args, kw in calls:
            fn(*args, **kw)
        return

    def task(i: int) -> None:
        fn, args, kw = calls[i]
        fn(*args, **kw)

    # the caller and a pool kept from call to call (a new pool per call cost ~3 ms of
    # thread starts, more than a small net's whole certificate)
    run_tasks(be, len(calls), task, threads)


def _search_rows(
    model,
    X,
    lo,
    hi,
    pred,
    chunk,
    *,
    method,
    steps,
    step_size,
    noise,
    restarts,
    seed,
    early_stop,
    loss,
    adversarial,
    found,
    steps_taken,
    limit=None,
):
    """LASS / PGD on the samples ``chunk`` (one batch, or one thread's part of it);
    ``limit``: only the first ``limit`` steps of the first restart (the look)."""
    xp, k = model.xp, model.k
    last = steps if limit is None else min(steps, limit)
    for rs in range(restarts if limit is None else 1):
        ids = xp.ascontiguousarray(chunk[~found[chunk]]).astype(np.int64)
        if ids.size == 0:
            break
        x = xp.array(X[ids])
        if method == "pgd":
            k.crit_random_start(x, lo, hi, ids, seed, rs << 32)
        done = xp.zeros(ids.size, dtype=bool)  # only used without early stop
        for step in range(last + 1):
            want = step < last
            logits, ds = model.forward(x, derivs=want)
            if step > 0 or method == "pgd":
                flags = xp.empty(ids.size, dtype=np.uint8)
                k.crit_check(logits, pred[ids], flags)
                # overflowing logits: no class (as _changed)
                hit = flags.astype(bool) & ~done & xp.isfinite(logits).all(axis=1)
                if bool(hit.any()):
                    hid = ids[hit]
                    adversarial[hid] = x[hit]
                    found[hid] = True
                    steps_taken[hid] = rs * steps + step
                    if early_stop:
                        # active-set compaction: stopped samples cost nothing more
                        keep = xp.flatnonzero(~hit)
                        ids, x, logits = ids[keep], x[keep], logits[keep]
                        ds = [d[keep] for d in ds]
                        done = done[keep]
                        if ids.size == 0:
                            break
                    else:
                        done |= hit
            if not want:
                break
            if loss == "margin":
                grad = model.margin_input_grad(logits, ds, pred[ids])
            else:
                grad = model.ce_input_grad(logits, ds, pred[ids])
            k.crit_step(
                x,
                xp.ascontiguousarray(grad),
                lo,
                hi,
                ids,
                seed,
                (rs << 32) | (step + 1),
                step_size,
                noise,
            )


# --------------------------------------------------------------------------- public
def critical_samples(
    net: Network,
    X: Any,
    *,
    radius: float,
    method: str = "lass",
    steps: int = 100,
    step_size: float | None = None,
    noise: float | None = None,
    restarts: int = 1,
    box: tuple[float, float] = (0.0, 1.0),
    certify: str | None = "crown",
    loss: str = "ce",
    rng: Any = None,
    batch_size: int | None = None,
    backend: str | None = None,
    _early_stop: bool = True,
    _known: Any = None,
) -> CriticalSamples:
    """Critical samples of Arpit et al. (2017) with a certified CSR sandwich.

    ``x`` is critical when some ``x'`` in the L_inf ball of ``radius`` around it
    (intersected with ``box``) has ``argmax f(x') != argmax f(x)``. The search only
    finds such points (a lower bound on the CSR); the certificate proves the rest
    robust (an upper bound). In order:

    1. certify (``"ibp"``, ``"crown"`` or ``"alpha-crown"``): a sample whose certified
       lower bound of the class margin is > 0 is ``"robust"``. Where no hidden neuron can change
       state on the ball, the network is affine there and the margin's minimum over
       the box is attained at a corner: such samples are decided exactly (robust, or
       critical at that corner), counted in ``decided_exactly``. For other samples
       the corner of the worst bound is tried too (verified by a forward pass).
    2. search the rest: ``"lass"`` (Arpit et al.'s Langevin adversarial sample search:
       start at x, ``x' <- proj(x' + step_size sign(grad CE(f(x'), c)) + noise N(0,1))``)
       or ``"pgd"`` (Madry et al.: a uniform random start in the ball, then sign steps
       with no noise; ``restarts`` fresh starts). Each sample stops at its first class
       change. Every found point is kept only if a forward pass confirms the change.

    The order: with 128 samples or more, a look at 32 of them (searched, then the rest
    certified; their results are kept) estimates the share the certificate proves and
    the share the search finds at once. Where the certificate saves more search than
    the search saves certificate (small radii), the rest is certified first and only
    what it leaves undecided is searched; otherwise (large radii, where nearly every
    sample changes class in the first steps and the certificate proves little) the rest
    is searched first and only what the search leaves undecided is certified. The
    statuses do not depend on the order (a certificate never proves a sample the search
    breaks, and each sample's search trajectory is its own); ``margin_lower`` is NaN
    for the samples the search decided before certification.

    CROWN's bound is rigorous in floating point: each step's rounding error is bounded
    from the magnitudes of the terms it sums and subtracted. In float32 that allowance
    can decide a sample: those whose margin lies within a few allowances of 0 are
    certified again in float64 arithmetic (exact copies of their weights and balls),
    where it is negligible, so float32 nets are certified as tightly as in float64.

    Parameters
    ----------
    net : Network
        relu, leaky_relu, hardtanh or relu6 hidden layers (the search needs gradients).
    X : array_like (n, d)
        Inputs, all inside ``box``.
    radius : float
        L_inf radius (> 0). Arpit et al. use ``LASS_RADIUS = 0.3/255`` for data in [0, 1].
    method : {"lass", "pgd"}
    steps : int
        Most search steps per restart; ``steps * restarts`` at most
        :data:`MAX_SEARCH_STEPS` (100,000). ``0``: the certificate only, no search
        (needs ``certify``; a sample is critical only where the network is affine on its
        ball and the worst corner changes its class).
    step_size : float, optional
        Default: LASS ``radius * LASS_STEP / LASS_RADIUS`` (Arpit's 0.25/255 at their
        radius); PGD ``2.5 radius / steps`` (Madry et al.).
    noise : float, optional
        Langevin noise scale; default LASS ``radius * LASS_NOISE / LASS_RADIUS``, PGD 0.
    restarts : int
        Search restarts (PGD: new random starts; LASS: new noise).
    box : (float, float)
        Valid input range; the ball is clipped to it.
    loss : {"ce", "margin"}
        The search's objective: ``"ce"`` the cross-entropy of the predicted class (Arpit
        et al.), ``"margin"`` the margin ``max_{j != c} f_j - f_c`` to the runner-up class
        (Carlini and Wagner), which often finds more critical samples at small radii.
    certify : {"crown", "alpha-crown", "ibp", None}
        Certified bound. ``"crown"``: backward linear relaxation (intermediate bounds of
        unstable neurons tightened by CROWN, best of CROWN and IBP: never looser than IBP).
        The intermediate neurons are first bounded by two cheaper rigorous bounds (the
        first layer's spectral norm and Gram matrix: ``||lam W_0||_2 ||x - c||_2``), and
        only the ones these leave unstable take CROWN's full pass. ``"alpha-crown"``:
        CROWN, then, on the samples it leaves unknown, the final margin rows' lower
        relaxation slopes optimized per row (Xu et al. 2021, "Fast and complete", as
        auto_LiRPA's alpha-CROWN: 20 projected Adam steps, each row's best slopes kept);
        never looser than CROWN, and rigorous whatever the slopes (the final bound is
        recomputed with the rounding allowance, in float64).
    rng : int, Generator or None
        Seed of the counter-based noise.
    batch_size : int, optional
        Samples per certification / search batch (memory bound); results do not
        depend on it.
    backend : {"cpp", "numba", "cuda"}, optional

    Returns
    -------
    CriticalSamples

    Raises
    ------
    InputError
        radius <= 0, steps < 0, steps == 0 without certify (or steps * restarts >
        MAX_SEARCH_STEPS), X outside box,
        NaN/Inf, unknown method/certify,
        threshold layers (no gradient for the search).

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.array([[1.0, -1.0]]) * 10], [np.zeros(1)])
    >>> X = np.array([[0.5, 0.1], [0.5, 0.49]])   # one logit: class 1 iff x0 > x1
    >>> res = fastmem.critical_samples(net, X, radius=0.02, method="pgd", rng=0)
    >>> res.status.tolist(), res.csr_lower, res.csr_upper
    (['robust', 'critical'], 0.5, 0.5)
    """
    require_piecewise_linear(net, "critical_samples", gradient=True)
    radius = _positive(radius, "radius")
    if method not in _METHODS:
        raise InputError(f"method: must be one of {_METHODS}, got {method!r}")
    if isinstance(steps, numbers.Integral) and not isinstance(steps, bool) and steps == 0:
        if certify is None:
            raise InputError("steps: 0 (the certificate only, no search) needs certify")
        steps = 0
    else:
        try:
            steps = _positive_int(steps, "steps")
        except InputError as exc:
            raise InputError(
                f"{exc} (or 0 with certify: the certificate alone, no search)"
            ) from None
    restarts = _positive_int(restarts, "restarts")
    # each step is a Python-level pass (a forward and a backward GEMM chain and kernel
    # calls, 0.1 ms to a few ms even for one sample): beyond this a search is a hang
    if steps * restarts > MAX_SEARCH_STEPS:
        raise InputError(
            f"steps: steps * restarts = {steps * restarts} search steps per sample; at most "
            f"MAX_SEARCH_STEPS = {MAX_SEARCH_STEPS} are supported (Arpit et al. use 100)"
        )
    if certify not in _CERTIFY:
        raise InputError(f"certify: must be one of {_CERTIFY}, got {certify!r}")
    if loss not in _LOSSES:
        raise InputError(f"loss: must be one of {_LOSSES}, got {loss!r}")
    derived = step_size is None
    if derived:
        step_size = (
            radius * LASS_STEP / LASS_RADIUS if method == "lass" else 2.5 * radius / max(steps, 1)
        )
    step_name = "radius (the default step size derived from it)" if derived else "step_size"
    step_size = _positive(step_size, step_name)
    if noise is None:
        noise = radius * LASS_NOISE / LASS_RADIUS if method == "lass" else 0.0
    noise = _nonnegative(noise, "noise")
    box = _check_box(box)
    batch = _DEFAULT_BATCH if batch_size is None else _positive_int(batch_size, "batch_size")
    seed = _seed(rng)
    Xd, be, model = _prepare(net, X, backend, box, certify)
    # every GEMM inside, the prediction's too: a multi-threaded one would leave OpenBLAS's
    # workers spinning (~0.1 s) beside the kernels' threads
    with kernels_own_the_cores(be):
        lo, hi = _ball(model, Xd, radius, box)
        pred = _predict(model, Xd)
        return _critical_body(
            model,
            be,
            Xd,
            lo,
            hi,
            pred,
            _known,
            certify,
            batch,
            method,
            steps,
            step_size,
            noise,
            restarts,
            seed,
            _early_stop,
            radius,
            box,
            loss,
        )


def _critical_body(
    model,
    be,
    Xd,
    lo,
    hi,
    pred,
    _known,
    certify,
    batch,
    method,
    steps,
    step_size,
    noise,
    restarts,
    seed,
    _early_stop,
    radius,
    box,
    loss="ce",
) -> CriticalSamples:
    # BLAS single-threaded: its spinning idle threads would starve the OpenMP kernels
    xp = model.xp
    n = Xd.shape[0]
    adversarial = xp.full(Xd.shape, xp.nan, dtype=model.dtype)
    found = xp.zeros(n, dtype=bool)
    robust = xp.zeros(n, dtype=bool)
    steps_taken = xp.zeros(n, dtype=np.int64)
    margin = xp.full(n, xp.nan, dtype=model.dtype)
    exact = {"critical": 0, "robust": 0}
    if _known is not None:  # points already critical at a smaller radius (csr_curve)
        known_ids, known_adv = _known
        adversarial[known_ids] = known_adv
        found[known_ids] = True
    # the step and noise cut to an eighth of the dtype's range: a float32 step of inf made
    # the kernel's zero step inf - inf, NaN iterates (which a relu layer reads as 0: a
    # class change); below it x + step may overflow to +-inf (then clipped), but the
    # noise term (|N(0,1)| <= 3.5 here) stays finite, so no inf - inf
    top = float(np.finfo(model.dtype).max) / 8
    inner: list[Any] = []  # the search's ball (_inner_ball), made when first needed

    def inner_ball() -> tuple[Any, Any]:
        if not inner:
            inner.extend(_inner_ball(model, Xd, lo, hi, radius))
        return inner[0], inner[1]

    search_kw = dict(
        method=method,
        steps=steps,
        step_size=min(step_size, top),
        noise=min(noise, top),
        restarts=restarts,
        seed=seed,
        batch=batch,
        early_stop=_early_stop,
        loss=loss,
        adversarial=adversarial,
        found=found,
        steps_taken=steps_taken,
    )

    def certify_ids(ids: Any) -> None:
        """Certify the samples ``ids``; try the corner of each one's worst bound."""

        def take(a: Any) -> Any:  # (all samples, in order: no copy)
            return a if ids.size == n else a[ids]

        # with a search beside it the certificate's product is the decision (the float32
        # net's CROWN in float32, rechecked in float64 near 0); alone, its margins
        m, stable, corner, has_corner = _certify_all(
            model, take(lo), take(hi), take(pred), certify, batch, tight=steps == 0
        )
        margin[ids] = m
        rob = m > 0
        robust[ids[rob]] = True
        tri = xp.flatnonzero(has_corner & ~rob)
        if tri.size:
            # the corner of the certificate's ball, moved into the search's
            li, ui = inner_ball()
            corner[tri] = xp.clip(corner[tri], li[ids[tri]], ui[ids[tri]])
            ok = _changed(model, xp.ascontiguousarray(corner[tri]), pred[ids[tri]])
            hit = tri[ok]
            adversarial[ids[hit]] = corner[hit]
            found[ids[hit]] = True
            exact["critical"] += int(stable[hit].sum())
        exact["robust"] += int((rob & stable).sum())

    def search_ids(ids: Any) -> None:
        if ids.size and steps:
            steps_taken[ids] = restarts * steps
            _search(model, Xd, *inner_ball(), pred, ids, **search_kw)

    def undecided(ids: Any) -> Any:
        return ids[~found[ids] & ~robust[ids]]

    todo = xp.flatnonzero(~found).astype(np.int64)
    order = None
    if certify is None or model.n_classes == 1:
        search_ids(todo)
    else:
        order = _ORDER
        if steps == 0 or (order is None and certify == "ibp"):
            # no search, or IBP (its certificate costs about one search step): the
            # certificate first, with no look (the look costs more than it can save)
            order = "certify"
        shortcut_done = False
        if order == "search" or (order is None and todo.size >= 4 * _PROBE):
            # the exact shortcut, from an IBP pass: samples on whose ball no neuron can
            # change state are decided exactly, never searched. Before a look, first on
            # the samples it would look at: where none of them is one-region, the pass
            # over all waits for the order (certificate first, the certificate decides
            # such samples exactly itself: the pass would be spent for nothing)
            first = todo
            if order is None:
                first = todo[xp.linspace(0, todo.size - 1, _PROBE).astype(np.int64)]
            if order == "search" or _stable_all(model, lo[first], hi[first], batch).any():
                one_region = todo[_stable_all(model, lo[todo], hi[todo], batch)]
                if one_region.size:
                    certify_ids(one_region)
                    todo = undecided(todo)
                shortcut_done = True
        if order is None and todo.size >= 4 * _PROBE:
            # a look at a few samples, searched first and the rest certified (their
            # results are kept): the certificate first pays when the share it proves
            # (P) saves more search than the share the search finds quickly (q) wastes
            # of the certificate: P s > q c, with s the search's and c the certificate's
            # multiply-adds per sample. The look searches only the first _PROBE_STEPS
            # steps (of the first restart): what it finds there is final (the full
            # search follows the same trajectory), the rest is certified, and what stays
            # undecided is searched in full with the others later
            probe = todo[xp.linspace(0, todo.size - 1, _PROBE).astype(np.int64)]
            rest = xp.ones(todo.size, dtype=bool)
            rest[xp.searchsorted(todo, probe)] = False
            quick = min(steps, _PROBE_STEPS)
            _search(model, Xd, *inner_ball(), pred, probe, **{**search_kw, "limit": quick})
            left = undecided(probe)
            steps_taken[left] = quick
            model.macs.clear()
            if left.size:
                certify_ids(left)
            q = float(found[probe].mean())
            P = float(robust[probe].mean())
            # (at least the margin rows' own backward pass, if the look left none)
            flops = sum(int(w.size) for w in model.W)
            c = max(sum(model.macs) / max(left.size, 1), (model.n_classes - 1) * flops)
            s = restarts * steps * 2 * flops
            order = "certify" if P * s > q * c else "search"
            todo = todo[rest]
            again = undecided(probe)  # neither found quickly nor proved: searched in full
        else:
            again = todo[:0]
        order = "search" if order == "search" else "certify"  # (no look: too few to look)
        if order == "search" and not shortcut_done:
            one_region = todo[_stable_all(model, lo[todo], hi[todo], batch)]
            if one_region.size:
                certify_ids(one_region)
                todo = undecided(todo)
            search_ids(xp.sort(xp.concatenate([todo, again])))
            left = undecided(todo)
            if left.size:
                certify_ids(left)
        else:
            certify_ids(todo)
            search_ids(xp.sort(xp.concatenate([undecided(todo), again])))
    code = xp.where(found, 1, xp.where(robust, 2, 0))
    status = _STATUS_CODES[_host(code)]
    n_crit = int((status == "critical").sum())
    n_rob = int((status == "robust").sum())
    params = {
        "radius": radius,
        "method": method,
        "steps": steps,
        "step_size": step_size,
        "noise": noise,
        "restarts": restarts,
        "box": list(box),
        "certify": certify,
        "loss": loss,
        "seed": seed,
        "dtype": str(model.dtype),
        "order": order,  # "certify" or "search" first (None: no certificate)
    }
    return CriticalSamples(
        status=status,
        adversarial=_host(adversarial),
        steps_taken=_host(steps_taken),
        margin_lower=_host(margin),
        predicted=_host(pred),
        decided_exactly=exact,
        csr_lower=n_crit / n,
        csr_upper=1.0 - n_rob / n,
        backend=be.name,
        params=params,
    )


def csr_curve(net: Network, X: Any, radii: Any, **kw: Any) -> CSRCurve:
    """CSR lower and upper bounds for many radii in one call.

    Radii are processed in ascending order; a point found critical at a radius is
    critical at every larger one (its adversarial point lies in the larger ball), so
    it is neither certified nor searched again. Keywords as :func:`critical_samples`.

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.array([[1.0, -1.0]]) * 10], [np.zeros(1)])
    >>> X = np.array([[0.5, 0.1], [0.5, 0.49], [0.5, 0.3]])
    >>> curve = fastmem.csr_curve(net, X, [0.01, 0.15, 0.3], method="pgd", rng=0)
    >>> curve.n_critical.tolist(), curve.n_robust.tolist()   # x1 = 0.49, 0.3, 0.1 flip in turn
    ([1, 2, 3], [2, 1, 0])
    """
    try:
        rs = np.asarray(radii)
        if rs.dtype.kind not in "iuf":
            raise TypeError(f"dtype {rs.dtype}")
        rs = rs.astype(np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputError(f"radii: must be a sequence of real numbers ({exc})") from exc
    if rs.size == 0:
        raise InputError("radii: is empty")
    for r in rs:
        _positive(float(r), "radii")
    rs = np.sort(rs)
    known = None
    rows = []
    res = None
    for r in rs:
        res = critical_samples(net, X, radius=float(r), _known=known, **kw)
        crit = np.flatnonzero(res.status == "critical")
        known = (crit, res.adversarial[crit])
        rows.append((res.csr_lower, res.csr_upper, res.n_critical, res.n_robust, res.n_unknown))
    a = np.array(rows)
    params = {k: v for k, v in res.params.items() if k != "radius"}
    return CSRCurve(
        radii=rs,
        csr_lower=a[:, 0],
        csr_upper=a[:, 1],
        n_critical=a[:, 2].astype(np.int64),
        n_robust=a[:, 3].astype(np.int64),
        n_unknown=a[:, 4].astype(np.int64),
        backend=res.backend,
        params=params,
    )


def certified_radius(
    net: Network,
    X: Any,
    *,
    certify: str = "crown",
    box: tuple[float, float] = (0.0, 1.0),
    max_radius: float | None = None,
    iterations: int = 30,
    batch_size: int | None = None,
    backend: str | None = None,
) -> CertifiedRadius:
    """Largest L_inf radius at which each sample is certified robust (bisection).

    All samples bisect together, each on its own interval; after ``iterations``
    halvings the returned radius is certified and within ``max_radius / 2**iterations``
    of the largest radius the bound certifies (``max_radius`` cut at the box's width,
    where the ball already is the whole box). Without ``max_radius`` each sample's
    interval is found first among ``[0, 2]``, ``[2, 4]``, ``[4, 16]``, ... ``[2**2**(j-1),
    2**2**j]`` (cut at the box's width, and at ``2**512`` for an unbounded box: a sample
    certified there gets that radius), and the bisection is within the interval's top
    ``/ 2**iterations``. Threshold layers are accepted (no gradient is needed).
    ``iterations`` is at most :data:`MAX_ITERATIONS` (2100: no float64 radius changes after
    that many halvings). ``certify``: ``"crown"``, ``"alpha-crown"`` or ``"ibp"`` (as in
    :func:`critical_samples`; alpha-CROWN optimizes the slopes anew at every radius
    tried, for the samples CROWN does not certify there).

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.array([[1.0, -1.0]])], [np.zeros(1)])
    >>> r = fastmem.certified_radius(net, np.array([[0.5, 0.1]]), iterations=40).radius
    >>> round(float(r[0]), 6)   # the margin 0.4 shrinks by 2 r: r = 0.2
    0.2
    """
    require_piecewise_linear(net, "certified_radius", gradient=False)
    if certify not in ("ibp", "crown", "alpha-crown"):
        raise InputError(f"certify: must be 'ibp', 'crown' or 'alpha-crown', got {certify!r}")
    box = _check_box(box)
    if max_radius is None:
        # the box's width, capped (an unbounded box, or one wider than the float range)
        top = min(box[1] - box[0], _RADIUS_CAP)
        # brackets: 2, 4, 16, 256, ... (2**2**j) up to the top
        levels = [min(2.0 ** (2**j), top) for j in range(10)]
        levels = sorted({v for v in levels if v <= top} | {top})
    else:
        # past the box's width every ball is the whole box: bisect below it
        top = min(_positive(max_radius, "max_radius"), box[1] - box[0])
        levels = [top]
    iterations = _positive_int(iterations, "iterations")
    if iterations > MAX_ITERATIONS:
        raise InputError(
            f"iterations: at most MAX_ITERATIONS = {MAX_ITERATIONS} (after that many "
            f"halvings of [0, max_radius] no float64 radius changes), got {iterations}"
        )
    batch = _DEFAULT_BATCH if batch_size is None else _positive_int(batch_size, "batch_size")
    Xd, be, model = _prepare(net, X, backend, box, certify)
    xp = model.xp
    n = Xd.shape[0]
    with kernels_own_the_cores(be):  # parts certified side by side, BLAS on one thread
        pred = _predict(model, Xd)
        # each sample's bracket [lo_r, hi_r]: certified at lo_r (or lo_r = 0), not at hi_r
        lo_r = xp.zeros(n, dtype=np.float64)
        hi_r = xp.full(n, top, dtype=np.float64)
        open_ = xp.ones(n, dtype=bool)  # not yet bracketed
        for level in levels:
            lo, hi = _ball(model, Xd, level, box)
            m, *_ = _certify_all(model, lo, hi, pred, certify, batch)
            fail = open_ & ~(m > 0)
            hi_r = xp.where(fail, level, hi_r)
            open_ &= m > 0
            lo_r = xp.where(open_, level, lo_r)
            if not bool(open_.any()):
                break
        full = open_
        for _ in range(iterations):
            mid = (lo_r + hi_r) * 0.5
            lo, hi = _ball(model, Xd, mid, box)
            m, *_ = _certify_all(model, lo, hi, pred, certify, batch)
            ok = (m > 0) | full
            lo_r = xp.where(ok, mid, lo_r)
            hi_r = xp.where(ok, hi_r, mid)
    params = {"certify": certify, "box": list(box), "max_radius": top, "iterations": iterations}
    return CertifiedRadius(radius=_host(lo_r), backend=be.name, params=params)


def loss_sensitivity(
    net: Network, X: Any, y: Any, *, norm: float = 1, backend: str | None = None
) -> LossSensitivity:
    """Loss sensitivity of Arpit et al. (2017): ``||d L(x_i, y_i) / d x_i||`` per sample.

    ``L`` is the cross-entropy of the logits (softmax; a one-logit network is read as
    the two logits ``(0, f)``, i.e. the logistic loss). The gradient is computed
    analytically through the piecewise-linear network: the activation pattern of
    each input gives the Jacobian (GEMMs and elementwise masks, no autograd). At a
    kink the derivative is PyTorch autograd's (relu: 0 at z = 0; hard-tanh: 0 at
    z = -1 and z = +1).

    Parameters
    ----------
    net : Network
    X : array_like (n, d)
    y : array_like (n,) of int
        Labels in ``[0, n_classes)``.
    norm : {1, 2, inf}
        Norm of the gradient (Arpit et al. use 1).

    Returns
    -------
    LossSensitivity
        ``values`` (n,), ``gini`` (Gini coefficient of the values), ``backend``.

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> net = fastmem.Network.from_arrays([np.array([[2.0, 0.0], [0.0, 2.0]])], [np.zeros(2)])
    >>> ls = fastmem.loss_sensitivity(net, np.zeros((1, 2)), [0])
    >>> ls.values   # softmax (1/2, 1/2): gradient (-1/2, 1/2) @ W = (-1, 1)
    array([2.])
    """
    require_piecewise_linear(net, "loss_sensitivity", gradient=True)
    if not isinstance(norm, numbers.Real) or isinstance(norm, bool) or norm not in (1, 2, math.inf):
        raise InputError(f"norm: must be 1, 2 or inf, got {norm!r}")
    Xd, be, model = _prepare(net, X, backend, None)
    xp = model.xp
    labels = _labels(y, Xd.shape[0], model.n_classes, xp)
    n = Xd.shape[0]
    values = xp.empty(n, dtype=model.dtype)
    with kernels_own_the_cores(be):
        _ls_batches(model, Xd, labels, norm, values)
    host = _host(values)
    return LossSensitivity(
        values=host,
        gini=_gini(host),
        backend=be.name,
        params={"norm": norm if norm != math.inf else "inf"},
    )


def _ls_batches(model: _Model, Xd: Any, labels: Any, norm: float, values: Any) -> None:
    # GEMM-bound, with BLAS held to one thread (kernels_own_the_cores): fixed batches
    # (so the same rounding whatever the threads) run side by side on the kernels'
    # threads instead (NumPy's matmul releases the GIL)
    n = Xd.shape[0]
    calls = [(_ls_batch, (model, Xd, labels, norm, values, a, min(a + _LS_BATCH, n)), {})
             for a in range(0, n, _LS_BATCH)]  # fmt: skip
    threads = cpu_threads(model.be) if model.be.device == "cpu" else 1
    _side_by_side(model.be, threads, calls)


def _ls_batch(
    model: _Model, Xd: Any, labels: Any, norm: float, values: Any, a: int, b: int
) -> None:
    xp = model.xp
    logits, ds = model.forward(Xd[a:b], derivs=True, check=True)
    g = model.ce_input_grad(logits, ds, labels[a:b])
    if norm == 1:
        values[a:b] = xp.abs(g).sum(axis=1)
    elif norm == 2:
        values[a:b] = xp.sqrt((g * g).sum(axis=1))
    else:
        values[a:b] = xp.abs(g).max(axis=1)


def _labels(y: Any, n: int, n_classes: int, xp: Any) -> Any:
    try:
        arr = np.asarray(_host(y))
    except (TypeError, ValueError) as exc:
        raise InputError(f"y: cannot be converted to an array ({exc})") from exc
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"y: must have shape ({n},) like the rows of X, got {arr.shape}")
    if arr.dtype.kind not in "biu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"y: must hold integer class labels, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise InputError(f"y: labels must lie in [0, {n_classes}), got {arr.min()}..{arr.max()}")
    return xp.asarray(arr.astype(np.int64))


def _gini(v: np.ndarray) -> float:
    """Gini coefficient of non-negative values: ``sum_i (2i - n - 1) v_(i) / (n sum v)``."""
    s = np.sort(np.asarray(v, dtype=np.float64))
    n = s.size
    total = s.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * s).sum() / (n * total))
