"""random_threshold / interpolation_grid against a plain-NumPy port of the authors' algorithm.

The port follows Dirksen, Finke & Genzel's published code (github.com/patrickfinke/memo,
algorithm.py, SecondLayer.fit): dense 0/1 features, one dense matrix-vector product per draw,
firing rule <U, z> < m; it makes the same generator calls as fastmem, so the draws are equal.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmem
from fastmem import memorize


def authors_numpy(X, labels, width, max_bias, seed, rule="code"):
    """Returns (U rows, m values, number of negatives left uncovered, first layer)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((width, X.shape[1]))
    b = rng.uniform(-max_bias, max_bias, size=width)
    phi = (X @ W.T + b >= 0).astype(np.float64)
    classes = np.unique(labels)
    neg, pos = labels == classes[0], labels != classes[0]
    neg_phi = phi[neg]
    cand = np.ones(neg.sum(), dtype=bool)
    universe = cand.copy()
    Us, ms = [], []
    while cand.any() and universe.any():
        i = rng.choice(np.flatnonzero(cand))
        cand[i] = False
        U = (neg_phi[i] == 0).astype(np.float64)
        sp = phi @ U
        m = sp[pos].min()
        if m > 0:
            covered = sp[neg] < m if rule == "code" else 2 * sp[neg] <= m
            cand &= ~covered
            universe &= ~covered
            Us.append(U)
            ms.append(m)
    return np.array(Us), np.array(ms), int(universe.sum()), (W, b)


def moons(n, seed=0):
    from sklearn.datasets import make_moons

    X, labels = make_moons(n, noise=0.05, random_state=seed)
    return X / np.linalg.norm(X, axis=1).max(), labels


@pytest.mark.parametrize("rule", ["code", "half"])
@pytest.mark.parametrize(("N", "width", "lam", "seed"), [(1000, 500, 1.0, 0), (600, 60, 0.3, 4)])
def test_random_threshold_equals_authors_port(backend, rule, N, width, lam, seed):
    X, labels = moons(N)
    Us, ms, left, (W, b) = authors_numpy(X, labels, width, lam, seed, rule)
    res = memorize.random_threshold(
        X, labels, width=width, max_bias=lam, rule=rule, rng=seed, backend=backend
    )
    net = res.network.to("cpu")
    assert np.array_equal(np.asarray(net.weights[0]), W)
    assert res.details["width_after"] == len(ms)
    if len(ms):
        assert np.array_equal(-np.asarray(net.weights[1]), Us)
        want_b = ms - 0.5 if rule == "code" else ms / 2
        assert np.array_equal(np.asarray(net.biases[1]), want_b)
    assert res.interpolates == (left == 0)
    # the network's predictions against the port's dense forward pass
    phi = (X @ W.T + b >= 0).astype(np.float64)
    fires = (phi @ Us.T < ms) if rule == "code" else (2 * (phi @ Us.T) <= ms)
    port_pred = np.where(fires.any(axis=1), 0, 1) if len(ms) else np.ones(N, dtype=int)
    assert np.array_equal(np.asarray(net.predict(X)), port_pred)


def test_set_cover_not_wider_than_random_on_average():
    X, labels = moons(800)
    rand, cover = [], []
    for seed in range(8):
        kw = {"width": 300, "max_bias": 1.0, "rng": seed}
        r = memorize.random_threshold(X, labels, **kw)
        c = memorize.random_threshold(X, labels, prune="set_cover", **kw)
        assert r.interpolates and c.interpolates
        assert c.details["candidates_tried"] == c.details["width_before"]
        assert r.details["width_after"] <= r.details["candidates_tried"]
        rand.append(r.details["width_after"])
        cover.append(c.details["width_after"])
    assert np.mean(cover) <= np.mean(rand)


def test_code_rule_covers_more_than_half_rule():
    X, labels = moons(2000)
    code = [
        memorize.random_threshold(X, labels, width=500, max_bias=1.0, rng=s).details["width_after"]
        for s in range(5)
    ]
    half = [
        memorize.random_threshold(X, labels, width=500, max_bias=1.0, rule="half", rng=s).details[
            "width_after"
        ]
        for s in range(5)
    ]
    assert np.mean(code) < np.mean(half)


def test_interpolation_grid_matches_authors_port_within_sampling_error():
    X, labels = moons(400)
    widths, lams, R = [10, 40, 120], [0.0, 0.4, 1.0, 2.0], 40
    grid = memorize.interpolation_grid(X, labels, widths=widths, max_biases=lams, restarts=R, rng=0)
    assert grid.probability.shape == (3, 4) and grid.backend in ("cpp", "numba", "cuda")
    ref = np.zeros((3, 4))
    for i, n in enumerate(widths):
        for j, lam in enumerate(lams):
            ref[i, j] = np.mean(
                [authors_numpy(X, labels, n, lam, 1000 + r)[2] == 0 for r in range(R)]
            )
    p = (grid.probability + ref) / 2
    sd = np.sqrt(np.maximum(p * (1 - p), 0.02) * 2 / R)
    assert np.all(np.abs(grid.probability - ref) <= 4 * sd), (grid.probability, ref)
    assert ref.max() > 0.5 and ref.min() < 0.5  # the grid spans the transition
    import json

    out = json.loads(json.dumps(grid.to_dict()))
    assert out["widths"] == widths and out["restarts"] == R


def test_interpolation_grid_bad_inputs():
    X, labels = moons(50)
    with pytest.raises(fastmem.InputError, match="widths"):
        memorize.interpolation_grid(X, labels, widths=[0], max_biases=[1.0])
    with pytest.raises(fastmem.InputError, match="max_biases"):
        memorize.interpolation_grid(X, labels, widths=[5], max_biases=[-1.0])
    with pytest.raises(fastmem.InputError, match="two classes"):
        memorize.interpolation_grid(X, labels % 3 + (X[:, 0] > 0), widths=[5], max_biases=[1.0])
    with pytest.raises(fastmem.InputError, match="rule"):
        memorize.random_threshold(X, labels, width=5, max_bias=1.0, rule="slides")
    with pytest.raises(fastmem.InputError, match="prune"):
        memorize.random_threshold(X, labels, width=5, max_bias=1.0, prune="greedy")


@pytest.mark.parametrize("n_classes", [2, 3])
def test_cheap_verification_counts_what_predict_gets_wrong(backend, n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.uniform(-0.7, 0.7, size=(300, 2))
    labels = rng.integers(0, n_classes, size=300)
    for width in (4, 40, 400):
        res = memorize.random_threshold(
            X, labels, width=width, max_bias=1.0, rng=width, backend=backend
        )
        wrong = int((np.asarray(res.network.to("cpu").predict(X)) != labels).sum())
        assert res.residual == wrong and res.interpolates == (wrong == 0)
