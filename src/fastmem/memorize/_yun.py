"""Yun, Sra & Jadbabaie (NeurIPS 2019): a three-layer hard-tanh network memorizing n <= p*q
points."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._backend import select_backend
from .._validate import as_float_array, check_allocation
from .._validate import as_generator as _rng
from .._validate import positive_int as _positive_int
from .._validate import to_host as _host
from ..errors import InputError
from ..network import Network
from ._base import Construction, _check_on_ill, _check_scale, _targets
from ._norms import weight_norms
from ._verify import _check_residual
from ._zhang import _direction, _line


def hardtanh_three_layer(
    X: Any,
    y: Any,
    p: int,
    q: int,
    *,
    projection: Any = "best_of",
    tries: int = 8,
    rng: Any = None,
    tol: float = 1e-8,
    on_ill: str = "raise",
) -> Construction:
    """Yun, Sra & Jadbabaie's three-layer hard-tanh network memorizing n <= p*q points.

    ``f(x) = W3 htanh(W2 htanh(W1 x + b1) + b2) + b3`` with ``htanh(z) =
    clip(z, -1, 1)``, first hidden width ``p``, second hidden width ``q``
    (``q + 1`` when ``q`` is even, see below). The proof's construction:

    1. Project on ``u`` and sort, ``c_1 < ... < c_n``; split the sorted points
       into ``p`` consecutive groups of at most ``q``. First-layer neuron ``g``
       maps the midpoints ``L_g``/``U_g`` below/above group ``g`` to -1/+1:
       ``W1_g = 2 u / (U_g - L_g)``, ``b1_g = -(U_g + L_g) / (U_g - L_g)`` (the
       paper's ``4 u / (c_{jq} + c_{jq+1} - c_{jq-q} - c_{jq-q+1})``). A point
       of group g sees ``(+1, ..., +1, s, -1, ..., -1)`` with ``s`` in (-1, 1) at
       position g.
    2. Second-layer neuron k is responsible for one point (slot) of every
       group. Its weights ``v`` and bias ``e`` satisfy, for every group g,
       ``sum_{l<g} v_l + s_(k,g) v_g - sum_{l>g} v_l + e = t_(k,g)`` (the
       matrix ``M`` of the proof: p equations, p + 1 unknowns), so it outputs
       ``t_(k,g)`` on its own points. ``M`` has a null vector ``nu`` whose
       entries alternate in sign; ``[v; e] = mu + alpha nu`` with ``mu`` a
       particular solution. **alpha**: the smallest value making every
       ``|v_g| >= 2 / ds_g`` with the sign of ``nu_g``, ``ds_g`` the smallest
       gap between the ``s`` slots of group g. Since ``|t| <= 1/2``, neuron k
       is then saturated, at exactly -1 or +1 (``|z| >= 3/2``), on every other
       point of every group: below its own slot on one side, above on the other.
    3. Output weights ``omega_k = omega (-1)^slot`` alternate along the slots
       (even groups use the slots in reverse order, which keeps the
       alternation and keeps ``nu`` of order 1). For an odd number of slots
       the saturated neurons then cancel exactly: ``f(x_i) = omega_k t_(k,g)``
       for the responsible neuron k. With ``t = y / omega_k`` and ``omega`` the
       power of two at least ``2 max|y|`` the output is exact up to the
       rounding of one neuron's pre-activation. With ``q`` even one slot per
       group is left empty: the extra "denoising" neuron of the proof (width
       ``q + 1``). Groups with fewer points get empty slots (target 0), placed
       evenly in the widest gap between the group's ``s`` values and +-1.

    Each ``(p + 1) x (p + 1)`` system (``M`` plus ``v_1 = 0`` for ``mu``,
    ``v_1 = 1`` for ``nu``) is solved by LU; ``condition`` is the largest
    1-norm condition estimate (LAPACK ``xGECON``) over the neurons.

    Parameters
    ----------
    X : array_like (n, d)
    y : array_like (n,)
    p, q : int
        Hidden widths; ``p <= n <= p * q``.
    projection, tries, rng, tol, on_ill
        As :func:`two_layer`.

    Returns
    -------
    Construction
        ``details``: ``alpha`` (per second-layer neuron), ``omega``,
        ``direction``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import memorize
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(35, 4)), rng.normal(size=35)
    >>> res = memorize.hardtanh_three_layer(X, y, 5, 7, rng=0)
    >>> res.network.widths, res.network.activation
    ((4, 5, 7, 1), ('hardtanh', 'hardtanh'))
    >>> bool(np.abs(res.network.forward(X)[:, 0] - y).max() <= 1e-8 * np.abs(y).max())
    True
    """
    from ..linalg import solve as dense_solve

    _check_on_ill(on_ill)
    p = _positive_int(p, "p")
    q = _positive_int(q, "q")
    X = as_float_array(_host(X), "X", ndim=2, dtype=np.float64)
    _check_scale(X, "X", np)
    n, d = X.shape
    y = _targets(_host(y), n, np, scale=True)
    if n > p * q:
        raise InputError(f"p, q: p * q = {p * q} is less than the number of points n = {n}")
    if p > n:
        raise InputError(f"p: must be at most n = {n} (one first-layer neuron per group), got {p}")
    # per second-layer neuron: its slots and targets in every group, its weights (and the
    # network's copies, the norms' temporaries), its outputs on the n points
    q_eff = q if q % 2 == 1 else q + 1
    check_allocation(
        q_eff * (56 * p + 16 * n + 64), f"{q_eff} second-layer neurons of {p} weights", "q"
    )
    tries = _positive_int(tries, "tries")
    check_allocation(16.0 * tries * (n + d), f"{tries} candidate directions", "tries")
    gen = _rng(rng)
    be = select_backend("cpu", None)
    a = _direction(X, np, projection, tries, gen)
    line, _t, order, min_gap = _line(X, be, a, 0.5)
    c = np.asarray(line.c)
    delta = min_gap if n > 1 else 1.0
    c_ext = np.concatenate([[c[0] - delta], c, [c[-1] + delta]])
    bounds = np.array([len(g) for g in np.array_split(np.arange(n), p)]).cumsum()
    starts = np.concatenate([[0], bounds[:-1]])
    L = (c_ext[starts] + c_ext[starts + 1]) / 2
    U = (c_ext[bounds] + c_ext[bounds + 1]) / 2
    W1 = (2.0 / (U - L))[:, None] * a[None, :]
    b1 = -(U + L) / (U - L)
    ymax = float(np.abs(y).max())
    omega = 2.0 ** math.ceil(math.log2(2 * ymax)) if ymax > 0 else 1.0
    slot_of = np.arange(q_eff)  # neuron k owns slot k (odd groups) or q_eff-1-k (even)
    S = np.empty((p, q_eff))  # slot s-values per group, ascending
    T = np.zeros((p, q_eff))  # target of the neuron owning each slot
    for g in range(p):
        idx = order[starts[g] : bounds[g]]
        s_real = X[idx] @ W1[g] + b1[g]
        m = idx.shape[0]
        v = q_eff - m
        slots_s = s_real
        real = np.ones(q_eff, dtype=bool)
        if v:
            # Empty slots go evenly into the widest of the intervals (-1, s_1),
            # (s_j, s_j+1), (s_m, 1), which keeps the slot spacing (and so alpha) small.
            edges = np.concatenate([[-1.0], s_real, [1.0]])
            j = int(np.argmax(np.diff(edges)))
            fill = edges[j] + (edges[j + 1] - edges[j]) * np.arange(1, v + 1) / (v + 1)
            slots_s = np.concatenate([s_real[:j], fill, s_real[j:]])
            real[j : j + v] = False
        S[g] = slots_s
        sign = (-1.0) ** np.arange(q_eff)  # omega_slot / omega, alternating along slots
        T[g, real] = y[idx] / (omega * sign[real])
    ds = np.diff(S, axis=1).min(axis=1) if q_eff > 1 else np.full(p, 2.0)
    W2 = np.empty((q_eff, p))
    b2 = np.empty(q_eff)
    alphas = np.empty(q_eff)
    condition = 0.0
    for k in range(q_eff):
        slots = np.where(np.arange(p) % 2 == 0, slot_of[k], q_eff - 1 - slot_of[k])
        s = S[np.arange(p), slots]
        t = T[np.arange(p), slots]
        M = np.zeros((p + 1, p + 1))
        M[:p, :p] = np.where(
            np.arange(p)[None, :] < np.arange(p)[:, None],
            1.0,
            np.where(np.arange(p)[None, :] > np.arange(p)[:, None], -1.0, 0.0),
        )
        M[np.arange(p), np.arange(p)] = s
        M[:p, p] = 1.0
        M[p, 0] = 1.0
        rhs = np.zeros((p + 1, 2))
        rhs[:p, 0] = t
        rhs[p, 1] = 1.0
        sol = dense_solve(M, rhs, on_ill=on_ill)
        condition = max(condition, sol.condition)
        mu, nu = sol.x[:, 0], sol.x[:, 1]
        need = (2.0 / ds + np.abs(mu[:p])) / np.abs(nu[:p])
        alpha = float(need.max())
        alphas[k] = alpha
        v = mu + alpha * nu
        W2[k] = v[:p]
        b2[k] = v[p]
    owner_sign = (-1.0) ** slot_of  # neuron k's slot in odd groups is k
    W3 = (omega * owner_sign)[None, :]
    net = Network.from_arrays([W1, W2, W3], [b1, b2, np.zeros(1)], "hardtanh")
    residual = float(np.abs(net.forward(X)[:, 0] - y).max())
    ok = _check_residual("hardtanh_three_layer", residual, ymax or 1.0, tol, condition, on_ill)
    return Construction(
        method="hardtanh_three_layer",
        network=net,
        residual=residual,
        condition=condition,
        min_gap=min_gap,
        norms=weight_norms(net),
        backend=be.name,
        interpolates=ok,
        params={"p": p, "q": q, "tries": tries, "tol": tol, "n": n, "d": d},
        details={"alpha": alphas, "omega": omega, "direction": a, "q_eff": q_eff},
    )
