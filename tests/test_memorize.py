"""fastmem.memorize: constructions verified by Network.forward and an independent NumPy forward."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmem
from fastmem import memorize
from fastmem._backend import select_backend


# ------------------------------------------------------------- references
def np_forward(net: fastmem.Network, X: np.ndarray) -> np.ndarray:
    """Independent forward pass: relu / threshold (1[z >= 0]) hidden layers, linear output."""
    h = np.asarray(X, dtype=np.float64)
    for W, b, act in zip(net.weights[:-1], net.biases[:-1], net.activation, strict=True):
        z = h @ np.asarray(W).T + np.asarray(b)
        h = np.maximum(z, 0.0) if act == "relu" else (z >= 0).astype(np.float64)
    return h @ np.asarray(net.weights[-1]).T + np.asarray(net.biases[-1])


def dense_zhang_matrix(res: memorize.Construction, X: np.ndarray) -> np.ndarray:
    """The n x n triangular system A[i, j] = relu(c_(i) - b_j), formed densely."""
    t = np.sort(X @ res.details["direction"])
    b = -np.asarray(res.network.biases[0])
    return np.maximum(t[:, None] - b[None, :], 0.0)


def kernels(backend: str):
    return select_backend("cpu" if backend != "cuda" else "cuda", backend).kernels


def _dev(x, backend):
    if backend == "cuda":
        import cupy

        return cupy.asarray(x)
    return x


def _np(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


# ---------------------------------------------------------------- kernels
@settings(max_examples=15)
@given(n=st.integers(0, 300), seed=st.integers(0, 2**31 - 1))
def test_linear_recurrence_kernel(backend, n, seed):
    rng = np.random.default_rng(seed)
    alpha, beta = rng.uniform(-1.1, 1.1, n), rng.normal(size=n)
    ref = np.empty(n)
    s = 0.0
    for i in range(n):
        s = beta[i] if i == 0 else alpha[i] * s + beta[i]
        ref[i] = s
    out = _dev(np.empty(n), backend)
    kernels(backend).linear_recurrence(_dev(alpha, backend), _dev(beta, backend), out)
    assert np.array_equal(_np(out), ref)  # same operations, same order: same bits


@settings(max_examples=15)
@given(n=st.integers(1, 200), m=st.integers(0, 50), seed=st.integers(0, 2**31 - 1))
def test_relu_sum_eval_kernel_is_accurate(backend, n, m, seed):
    rng = np.random.default_rng(seed)
    b = np.sort(rng.normal(size=n))
    w = rng.normal(size=n) * 10.0 ** rng.integers(0, 6, size=n)
    t = np.concatenate([rng.normal(size=m), b[: min(3, n)]])  # include ties t == b_j
    exact = np.array(
        [math.fsum(wj * max(ti - bj, 0.0) for wj, bj in zip(w, b, strict=True)) for ti in t]
    )
    scale = np.array(
        [sum(abs(wj) * max(ti - bj, 0.0) for wj, bj in zip(w, b, strict=True)) for ti in t]
    )
    out = _dev(np.empty(t.shape[0]), backend)
    prefix = _dev(np.empty((n + 1, 4)), backend)
    kernels(backend).relu_sum_eval(
        _dev(t, backend), _dev(b, backend), _dev(w, backend), prefix, out
    )
    # fsum of the float64 products vs double-double: agree far below float64 dot accuracy
    assert np.all(np.abs(_np(out) - exact) <= 1e-14 * scale + 1e-300)


@settings(max_examples=10)
@given(
    n_neg=st.integers(1, 70),
    n_pos=st.integers(1, 20),
    bits=st.integers(1, 150),
    seed=st.integers(0, 2**31 - 1),
)
def test_cover_kernels(backend, n_neg, n_pos, bits, seed):
    rng = np.random.default_rng(seed)
    neg_b = rng.random((n_neg, bits)) < 0.5
    pos_b = rng.random((n_pos, bits)) < 0.5

    def pack(B):
        out = np.zeros((B.shape[0], (B.shape[1] + 63) // 64), dtype=np.uint64)
        for j in range(B.shape[1]):
            out[:, j // 64] |= B[:, j].astype(np.uint64) << np.uint64(j % 64)
        return out

    neg, pos = pack(neg_b), pack(pos_b)
    k = kernels(backend)
    m = _dev(np.empty(n_neg, dtype=np.int64), backend)
    k.cover_margins(_dev(neg, backend), _dev(pos, backend), m)
    sep = (~neg_b[:, None, :] & pos_b[None, :, :]).sum(axis=2)
    assert np.array_equal(_np(m), sep.min(axis=1))
    cover = _dev(np.empty((n_neg, (n_neg + 63) // 64), dtype=np.uint64), backend)
    k.cover_matrix(_dev(neg, backend), m, cover)
    cnt = (~neg_b[:, None, :] & neg_b[None, :, :]).sum(axis=2)
    want = 2 * cnt <= sep.min(axis=1)[:, None]
    assert np.array_equal(_np(cover), pack(want))
    unc = pack(rng.random((1, n_neg)) < 0.5)[0]
    gains = _dev(np.empty(n_neg, dtype=np.int64), backend)
    k.cover_gains(cover, _dev(unc, backend), gains)
    unc_b = np.array([(int(unc[s // 64]) >> (s % 64)) & 1 for s in range(n_neg)], dtype=bool)
    assert np.array_equal(_np(gains), (want & unc_b[None, :]).sum(axis=1))


# ------------------------------------------------------------ two_layer
@settings(max_examples=12)
@given(n=st.integers(1, 60), d=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_two_layer_memorizes(backend, n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    res = memorize.two_layer(_dev(X, backend), _dev(y, backend), rng=seed, backend=backend)
    assert res.backend == backend
    assert res.network.widths == (d, n, 1)
    tol = 1e-8 * np.abs(y).max()
    assert res.interpolates and res.residual <= tol
    assert (
        np.abs(_np(res.network.forward(_dev(X, backend), backend=backend))[:, 0] - y).max() <= tol
    )
    assert np.abs(np_forward(res.network.to("cpu"), X)[:, 0] - y).max() <= tol
    # the reported min gap and norms
    t = np.sort(X @ res.details["direction"])
    assert res.min_gap == (np.diff(t).min() if n > 1 else math.inf)
    W2 = np.asarray(res.network.to("cpu").weights[1])
    assert res.norms["layers"][1]["max_abs"] == pytest.approx(np.abs(W2).max())
    W1 = np.asarray(res.network.to("cpu").weights[0])
    for key, val in (
        ("l1", np.abs(W1).sum()),
        ("l2", np.linalg.norm(W1, 2)),
        ("fro", np.linalg.norm(W1)),
    ):
        assert res.norms["layers"][0][key] == pytest.approx(val, rel=1e-9)
    assert res.norms["path_l1"] == pytest.approx((np.abs(W2) @ np.abs(W1)).sum(), rel=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_two_layer_condition_estimate_within_factor_3(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    X = rng.normal(size=(n, 3))
    res = memorize.two_layer(X, rng.normal(size=n), rng=seed, on_ill="warn")
    true = float(np.linalg.cond(dense_zhang_matrix(res, X), 1))
    assert true / 3 <= res.condition <= true * (1 + 1e-6)


def test_two_layer_solution_matches_dense_triangular_solve():
    from scipy.linalg import solve_triangular

    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 2)), rng.normal(size=40)
    res = memorize.two_layer(X, y, projection="random", rng=3)
    A = dense_zhang_matrix(res, X)
    order = np.argsort(X @ res.details["direction"])
    w = solve_triangular(A, y[order], lower=True)
    assert np.allclose(np.asarray(res.network.weights[1])[0], w, rtol=1e-6, atol=1e-9)


def test_two_layer_backends_agree():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    from support import backends_to_compare

    avail = backends_to_compare(
        [n for n, i in fastmem.backends().items() if i.available and n != "cuda"]
    )
    ws = [np.asarray(memorize.two_layer(X, y, rng=1, backend=b).network.weights[1]) for b in avail]
    for w in ws[1:]:
        assert np.array_equal(w, ws[0])
    # the double-double evaluation kernel gives the same bits everywhere
    b = np.sort(rng.normal(size=300))
    w = rng.normal(size=300) * 1e4
    t = rng.normal(size=500)
    outs = []
    for name in avail:
        out = np.empty(500)
        kernels(name).relu_sum_eval(t, b, w, np.empty((301, 4)), out)
        outs.append(out)
    for out in outs[1:]:
        assert np.array_equal(out, outs[0])
    # and the same pruned threshold network
    Xc = rng.uniform(-0.7, 0.7, size=(300, 2))
    lab = (Xc**2).sum(axis=1) < 0.2
    nets = [
        memorize.random_threshold(Xc, lab, width=300, max_bias=1.0, rng=2, backend=n).network
        for n in avail
    ]
    for net in nets[1:]:
        assert all(np.array_equal(u, v) for u, v in zip(net.weights, nets[0].weights, strict=True))


def test_two_layer_duplicates_name_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 3))
    X[7] = X[3]
    with pytest.raises(fastmem.InputError, match=r"rows 3 and 7 \(identical points\)"):
        memorize.two_layer(X, rng.normal(size=10), rng=0)


@pytest.mark.parametrize(
    ("X", "y"),
    [
        (np.ones((3, 2)) * np.arange(3)[:, None], np.ones(4)),
        (np.array([[0.0], [np.nan]]), np.ones(2)),
        (np.array([[0.0], [1.0]]), np.array([1.0, np.inf])),
        (np.zeros((0, 2)), np.zeros(0)),
        (np.arange(3.0), np.ones(3)),
    ],
)
def test_two_layer_bad_inputs(X, y):
    with pytest.raises(fastmem.InputError):
        memorize.two_layer(X, y)


def _hopeless(seed: int = 0, n: int = 50, d: int = 10):
    """Two points whose projections differ by ~1e-15 relative, with different labels."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    v = rng.normal(size=d)
    X[1] = X[0] + 1e-15 * np.linalg.norm(X[0]) * v / np.linalg.norm(v)
    return X, rng


@pytest.mark.parametrize("labels", ["pm1", "gauss"])
@pytest.mark.parametrize("method", ["two_layer", "deep"])
def test_hopeless_case_raises_with_numbers(labels, method):
    X, rng = _hopeless()
    y = np.sign(rng.normal(size=50)) if labels == "pm1" else rng.normal(size=50)
    y[0], y[1] = 1.0, -1.0
    build = memorize.two_layer if method == "two_layer" else partial(memorize.deep, depth=2)
    with pytest.raises(fastmem.ConditioningError, match=r"condition estimate \d") as info:
        build(X, y, rng=0)
    assert info.value.condition > 1e12 and info.value.residual >= 0
    with pytest.warns(fastmem.ConditioningWarning):
        res = build(X, y, rng=0, on_ill="warn")
    assert not res.interpolates
    # adjacent floats: no bias fits between the projections
    with pytest.raises(fastmem.ConditioningError):
        memorize.two_layer(np.array([[1.0], [1.0 + 2**-52]]), np.ones(2), projection=[1.0])


def _structured_eval(res, X):
    """Independent O(n log n) evaluation: project, then the exact relu-sum kernel (cpp)."""
    net = res.network.to("cpu")
    a = np.asarray(net.weights[0][0])
    b = -np.asarray(net.biases[0])
    w = np.asarray(net.weights[1])[0]
    t = X @ a
    out = np.empty(t.shape[0])
    kernels("cpp" if "cpp" in fastmem.backends() else "numba").relu_sum_eval(
        t, b, w, np.empty((b.shape[0] + 1, 4)), out
    )
    return out


def _forward_chunked(net, X, rows=1000):
    return np.concatenate([net.forward(X[i : i + rows])[:, 0] for i in range(0, len(X), rows)])


@pytest.mark.parametrize(("n", "d", "labels"), [(2000, 48, "pm1"), (5000, 48, "gauss")])
def test_two_layer_default_succeeds_and_estimate_is_realistic(n, d, labels):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, d))
    y = np.sign(rng.normal(size=n)) if labels == "pm1" else rng.normal(size=n)
    res = memorize.two_layer(X, y, rng=0)
    assert res.interpolates
    fwd = _forward_chunked(res.network, X)
    structured = _structured_eval(res, X)
    measured = np.abs(fwd - structured).max()
    est = res.details["float64_error_estimate"]
    assert measured / 2 <= est <= 10 * measured  # realistic, not 100x pessimistic
    if labels == "pm1":
        assert res.details["task"] == "classify"
        assert np.array_equal(np.sign(fwd), y) and np.array_equal(np.sign(structured), y)
        assert res.details["min_margin"] > est
    else:
        assert res.details["task"] == "regress"
        assert res.residual <= 1e-6 * np.abs(y).max()
        assert np.abs(fwd - y).max() <= 1e-6 * np.abs(y).max()
        assert np.abs(structured - y).max() == pytest.approx(res.residual, rel=0.5, abs=1e-12)


def test_two_layer_structured_agrees_with_forward_n_2e4():
    n, d = 20_000, 64
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(n, d)), np.sign(rng.normal(size=n))
    res = memorize.two_layer(X, y, rng=0)
    assert res.interpolates
    fwd = _forward_chunked(res.network, X, rows=2000)
    measured = np.abs(fwd - _structured_eval(res, X)).max()
    est = res.details["float64_error_estimate"]
    assert measured / 2 <= est <= 10 * measured
    assert np.array_equal(np.sign(fwd), y)


def test_two_layer_1e6_pm1_labels_succeed():
    n, d = 1_000_000, 64
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    res = memorize.two_layer(X, y, rng=0)
    assert res.interpolates and res.details["task"] == "classify"
    assert np.array_equal(np.sign(_structured_eval(res, X)), y)
    assert res.details["min_margin"] > res.details["float64_error_estimate"]


def test_two_layer_task_option():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    ints = rng.integers(0, 4, size=60).astype(float)
    res = memorize.two_layer(X, ints, rng=0, task="classify")
    assert res.details["task"] == "classify" and list(res.details["classes"]) == [0, 1, 2, 3]
    assert np.array_equal(np.rint(res.network.forward(X)[:, 0]), ints)
    assert memorize.two_layer(X, ints, rng=0).details["task"] == "regress"
    pm = np.sign(rng.normal(size=60))
    assert memorize.two_layer(X, pm, rng=0, task="regress").details["task"] == "regress"
    with pytest.raises(fastmem.InputError, match="task"):
        memorize.two_layer(X, pm, task="cls")


def test_two_layer_large_n_interpolates():
    rng = np.random.default_rng(1)
    n = 100_000
    X, y = rng.normal(size=(n, 4)), rng.normal(size=n)
    res = memorize.two_layer(X, y, rng=1)
    assert res.interpolates
    assert res.residual <= 1e-6 * np.abs(y).max()
    # what a float64 forward pass may add is reported, realistically (sample of points)
    idx = rng.choice(n, 1000, replace=False)
    fwd = res.network.forward(X[idx])[:, 0]
    measured = np.abs(fwd - _structured_eval(res, X[idx])).max()
    assert measured <= 2 * res.details["float64_error_estimate"]
    # smooth labels on well-spread 1-D data: small weights, memorized to 1e-8
    X1 = np.arange(n, dtype=np.float64)[:, None] / n
    y1 = np.sin(2 * np.pi * X1[:, 0])
    res = memorize.two_layer(X1, y1, projection=[1.0])
    assert res.interpolates and res.residual <= 1e-8


# ------------------------------------------------------------------- deep
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_deep_memorizes(backend, depth):
    rng = np.random.default_rng(depth)
    n, d = 45, 3
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    res = memorize.deep(_dev(X, backend), _dev(y, backend), depth, rng=0, backend=backend)
    assert res.network.n_layers == depth + 1
    assert max(res.network.widths[1:-1]) <= math.ceil(n / depth) + 3
    tol = 1e-8 * np.abs(y).max()
    assert res.interpolates and res.residual <= tol
    assert np.abs(np_forward(res.network.to("cpu"), X)[:, 0] - y).max() <= tol
    cls = memorize.deep(X, np.sign(y), depth, rng=0)
    assert cls.interpolates and cls.details["task"] == "classify"
    assert np.array_equal(np.sign(np_forward(cls.network, X)[:, 0]), np.sign(y))
    # norms against a direct computation
    Ws = [np.asarray(W) for W in res.network.to("cpu").weights]
    for layer, W in zip(res.norms["layers"], Ws, strict=True):
        assert layer["max_abs"] == np.abs(W).max()
        assert layer["l1"] == pytest.approx(np.abs(W).sum())
        assert layer["l2"] == pytest.approx(np.linalg.svd(W, compute_uv=False)[0], rel=1e-9)
        assert layer["fro"] == pytest.approx(np.sqrt((W**2).sum()))
    v1 = np.ones(d)
    v2 = np.ones(d)
    for W in Ws:
        v1, v2 = np.abs(W) @ v1, (W**2) @ v2
    assert res.norms["path_l1"] == pytest.approx(v1.sum())
    assert res.norms["path_l2"] == pytest.approx(np.sqrt(v2.sum()))


def test_deep_bad_depth():
    with pytest.raises(fastmem.InputError):
        memorize.deep(np.eye(3), np.ones(3), 4)
    with pytest.raises(fastmem.InputError):
        memorize.deep(np.eye(3), np.ones(3), 0)


# --------------------------------------------------------------- min_norm
@pytest.mark.parametrize(("n", "d"), [(5, 20), (20, 20), (40, 7), (1, 1)])
def test_min_norm_equals_lstsq(n, d):
    rng = np.random.default_rng(n * d)
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    res = memorize.min_norm(X, y)
    w = np.asarray(res.network.weights[0])[0]
    ref = np.linalg.lstsq(X, y, rcond=None)[0]
    assert np.allclose(w, ref, rtol=1e-7, atol=1e-9)
    if n <= d:
        assert res.interpolates and res.details["solver"] == "cholesky"
        true = np.linalg.cond(X @ X.T, 1)
        assert true / 3 <= res.condition <= true * (1 + 1e-8)
        assert np.abs(np_forward(res.network, X)[:, 0] - y).max() <= 1e-8 * np.abs(y).max()
    else:
        assert res.details["solver"] == "gelsy" and res.details["rank"] == d


def test_min_norm_rank_deficient_and_ridge():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(30, 3))
    X = B @ rng.normal(size=(3, 10))  # rank 3, singular Gram matrix
    y = rng.normal(size=30)
    res = memorize.min_norm(X, y)
    assert res.details["solver"] == "gelsy" and res.details["rank"] == 3
    assert np.allclose(np.asarray(res.network.weights[0])[0], np.linalg.pinv(X) @ y, atol=1e-8)
    X2 = rng.normal(size=(6, 9))
    r = memorize.min_norm(X2, y[:6], ridge=0.5)
    want = X2.T @ np.linalg.solve(X2 @ X2.T + 0.5 * np.eye(6), y[:6])
    assert np.allclose(np.asarray(r.network.weights[0])[0], want)
    with pytest.raises(fastmem.InputError):
        memorize.min_norm(X2, y[:6], kernel="rbf")
    with pytest.raises(fastmem.InputError):
        memorize.min_norm(X2, y[:5])


# -------------------------------------------------------- random_threshold
def _moons():
    from sklearn.datasets import make_moons

    X, labels = make_moons(1000, noise=0.05, random_state=0)
    X = X - X.mean(axis=0)
    return X / (1.01 * np.linalg.norm(X, axis=1).max()), labels


def test_random_threshold_two_moons(backend):
    X, labels = _moons()
    res = memorize.random_threshold(
        _dev(X, backend), labels, width=1000, max_bias=1.0, rng=0, backend=backend
    )
    assert res.interpolates and res.residual == 0
    n_neg = int((labels == 0).sum())
    assert res.details["width_before"] == n_neg
    assert 1 <= res.details["width_after"] <= n_neg
    net = res.network.to("cpu")
    assert net.activation == ("threshold", "threshold")
    logits = np_forward(net, X)[:, 0]
    assert np.array_equal(logits > 0, labels == 1)
    assert np.array_equal(_np(res.network.predict(_dev(X, backend), backend=backend)), labels)


def test_random_threshold_unpruned_and_multiclass():
    rng = np.random.default_rng(2)
    centers = np.array([[0.5, 0.0], [-0.5, 0.0], [0.0, 0.5]])
    labels = np.repeat(["a", "b", "c"], 40)
    X = centers[np.repeat(np.arange(3), 40)] + rng.normal(0, 0.08, size=(120, 2))
    res = memorize.random_threshold(X, labels, width=600, max_bias=1.0, prune=False, rng=1)
    assert res.interpolates
    assert res.details["width_after"] == res.details["width_before"] - res.details["unseparated"]
    pred = np.argmax(np_forward(res.network, X), axis=1)
    assert np.array_equal(res.details["classes"][pred], labels)
    pruned = memorize.random_threshold(X, labels, width=600, max_bias=1.0, rng=1)
    assert pruned.interpolates and pruned.details["width_after"] <= res.details["width_after"]


def test_random_threshold_can_fail_and_says_so():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(200, 2))
    labels = rng.integers(0, 2, size=200)
    res = memorize.random_threshold(X, labels, width=5, max_bias=1.0, rng=0)
    assert not res.interpolates and res.residual > 0


@pytest.mark.parametrize(
    ("labels", "kw"),
    [
        (np.zeros(10), {}),
        (np.arange(9) % 2, {}),
        (np.arange(10) % 2, {"width": 0}),
        (np.arange(10) % 2, {"max_bias": -1.0}),
    ],
)
def test_random_threshold_bad_inputs(labels, kw):
    args = {"width": 10, "max_bias": 1.0} | kw
    with pytest.raises(fastmem.InputError):
        memorize.random_threshold(np.random.default_rng(0).normal(size=(10, 2)), labels, **args)


def test_construction_to_dict_is_json():
    import json

    rng = np.random.default_rng(0)
    res = memorize.two_layer(rng.normal(size=(10, 2)), rng.normal(size=10), rng=0)
    out = json.loads(json.dumps(res.to_dict()))
    assert out["method"] == "two_layer" and out["widths"] == [2, 10, 1]


# ----------------------------------------------------- hardtanh_three_layer
def np_forward_hardtanh(net: fastmem.Network, X: np.ndarray) -> np.ndarray:
    h = np.asarray(X, dtype=np.float64)
    for W, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        h = np.clip(h @ np.asarray(W).T + np.asarray(b), -1.0, 1.0)
    return h @ np.asarray(net.weights[-1]).T + np.asarray(net.biases[-1])


@pytest.mark.parametrize(("p", "q"), [(1, 1), (2, 3), (4, 5), (5, 7), (3, 4), (6, 2)])
def test_hardtanh_three_layer_exact_for_n_equal_pq(p, q):
    rng = np.random.default_rng(p * 10 + q)
    n = p * q
    X, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    res = memorize.hardtanh_three_layer(X, y, p, q, rng=1)
    assert res.network.activation == ("hardtanh", "hardtanh")
    assert res.network.widths == (3, p, q if q % 2 else q + 1, 1)
    tol = 1e-8 * np.abs(y).max()
    assert res.interpolates and res.residual <= tol
    assert np.abs(np_forward_hardtanh(res.network, X)[:, 0] - y).max() <= tol
    # the first layer puts each group in its own linear piece: every point has
    # exactly one first-layer neuron strictly inside (-1, 1)
    Z = X @ np.asarray(res.network.weights[0]).T + np.asarray(res.network.biases[0])
    assert np.array_equal((np.abs(Z) < 1).sum(axis=1), np.ones(n, dtype=int))
    assert np.all(res.details["alpha"] > 0) and res.condition >= 1


def test_hardtanh_three_layer_fewer_points_and_bad_sizes():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(17, 2)), rng.normal(size=17)
    res = memorize.hardtanh_three_layer(X, y, 4, 5, rng=0)
    assert res.residual <= 1e-8 * np.abs(y).max()
    with pytest.raises(fastmem.InputError, match="p \\* q"):
        memorize.hardtanh_three_layer(X, y, 3, 5)
    with pytest.raises(fastmem.InputError):
        memorize.hardtanh_three_layer(X[:2], y[:2], 3, 5)
    X[5] = X[2]
    with pytest.raises(fastmem.InputError, match="rows 2 and 5"):
        memorize.hardtanh_three_layer(X, y, 4, 5)


@settings(max_examples=15)
@given(
    p=st.integers(1, 6),
    q=st.integers(1, 6),
    frac=st.floats(0, 1),
    d=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_hardtanh_three_layer_any_n_up_to_pq(p, q, frac, d, seed):
    n = p + round(frac * (p * q - p))
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    res = memorize.hardtanh_three_layer(X, y, p, q, rng=seed)
    assert np.abs(np_forward_hardtanh(res.network, X)[:, 0] - y).max() <= 1e-8 * np.abs(y).max()
