"""Plain-NumPy float64 references for the segment engine, independent of fastmem.

``walk`` follows a segment region by region (the classic walk: in the current region
every neuron is affine in t, so the next crossing is the smallest positive root; then
the next region's pattern is read from values and slopes just right of it), unlike
fastmem's layer-by-layer splitting. ``bisect_interval`` finds generalization intervals
by scanning and bisecting on the argmax.
"""

from __future__ import annotations

import numpy as np


def random_net(rng, widths, act, *, slope=0.1, bias_scale=1.0):
    """Weights (out, in), biases, per-layer activation names and slopes (plain lists)."""
    Ws = [
        rng.normal(size=(widths[i + 1], widths[i])) / np.sqrt(widths[i])
        for i in range(len(widths) - 1)
    ]
    bs = [rng.normal(scale=bias_scale, size=widths[i + 1]) for i in range(len(widths) - 1)]
    acts = [act] * (len(widths) - 2)
    slopes = [slope if act == "leaky_relu" else 0.0] * (len(widths) - 2)
    return Ws, bs, acts, slopes


def _thresholds(name):
    return {"hardtanh": (-1.0, 1.0), "relu6": (0.0, 6.0)}.get(name, (0.0,))


def _right_above(z, dz, c, tz):
    """z(t + 0) > c for z affine with value z and slope dz at t."""
    return (z - c > tz) | ((np.abs(z - c) <= tz) & (dz > 0))


def walk(Ws, bs, acts, slopes, a, b, t0=0.0, t1=1.0, *, tol=1e-12):
    """Breakpoints and per-piece state bits of the segment a + t (b - a), t in [t0, t1].

    Returns (breakpoints, patterns): ``patterns`` is a list of boolean bit vectors in
    fastmem's documented order (hard-tanh: low bit z > -1, high bit z > 1).
    """
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    t = t0
    bps, pats = [], []
    while True:
        h, dh = a + t * d, d
        bits, s_next = [], np.inf
        for W, bias, name, slope in zip(Ws[:-1], bs[:-1], acts, slopes, strict=True):
            z = W @ h + bias
            dz = W @ dh
            tz = 1e-11 * (1.0 + np.abs(z))
            for c in _thresholds(name):
                with np.errstate(divide="ignore", invalid="ignore"):
                    s = (c - z) / dz
                s = s[(dz != 0) & (s > tol * max(1.0, abs(t)))]
                if s.size:
                    s_next = min(s_next, float(s.min()))
            if name in ("hardtanh", "relu6"):
                c0, c1 = _thresholds(name)
                low, high = _right_above(z, dz, c0, tz), _right_above(z, dz, c1, tz)
                bits.append(np.stack([low, high], axis=1).reshape(-1))
                lin = low & ~high
                h = np.where(lin, z, np.where(high, c1, c0))
                dh = np.where(lin, dz, 0.0)
            else:
                on = _right_above(z, dz, 0.0, tz)
                if name == "threshold":
                    on = on | ((np.abs(z) <= tz) & (dz == 0))
                bits.append(on)
                if name == "relu":
                    h, dh = np.where(on, z, 0.0), np.where(on, dz, 0.0)
                elif name == "leaky_relu":
                    h, dh = np.where(on, z, slope * z), np.where(on, dz, slope * dz)
                else:
                    h, dh = on.astype(np.float64), np.zeros_like(dz)
        pats.append(np.concatenate(bits) if bits else np.zeros(0, dtype=bool))
        t_next = t + s_next
        if not t_next < t1 - tol * max(1.0, abs(t1)):
            return np.array(bps), pats
        bps.append(t_next)
        t = t_next


def forward(Ws, bs, acts, slopes, X):
    """Logits of the rows of X (float64)."""
    h = np.asarray(X, dtype=np.float64)
    for W, bias, name, slope in zip(Ws[:-1], bs[:-1], acts, slopes, strict=True):
        z = h @ W.T + bias
        if name == "relu":
            h = np.maximum(z, 0)
        elif name == "leaky_relu":
            h = np.where(z > 0, z, slope * z)
        elif name == "hardtanh":
            h = np.clip(z, -1, 1)
        elif name == "relu6":
            h = np.clip(z, 0, 6)
        else:
            h = (z >= 0).astype(np.float64)
    return h @ Ws[-1].T + bs[-1]


def predict(Ws, bs, acts, slopes, X):
    out = forward(Ws, bs, acts, slopes, X)
    if out.shape[1] == 1:
        return (out[:, 0] > 0).astype(np.int64)
    return out.argmax(axis=1)


def bisect_interval(Ws, bs, acts, slopes, x0, d, t0=-1.0, t1=2.0, *, n_scan=30001, tol=1e-13):
    """Largest interval around 0 in [t0, t1] on which the class of x0 + t d is the class at 0.

    Scans a grid, then bisects the first class change on each side to ``tol``.
    """
    c0 = predict(Ws, bs, acts, slopes, x0[None, :])[0]

    def same(t):
        return (
            predict(Ws, bs, acts, slopes, x0[None, :] + np.asarray(t)[:, None] * d[None, :]) == c0
        )

    ends = []
    for lim in (t1, t0):
        ts = np.linspace(0.0, lim, n_scan)
        ok = same(ts)
        bad = np.flatnonzero(~ok)
        if bad.size == 0:
            ends.append(lim)
            continue
        inside, outside = ts[bad[0] - 1], ts[bad[0]]
        while abs(outside - inside) > tol:
            mid = 0.5 * (inside + outside)
            if same(np.array([mid]))[0]:
                inside = mid
            else:
                outside = mid
        ends.append(0.5 * (inside + outside))
    return ends[1], ends[0], c0
