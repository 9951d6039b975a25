"""fastmem.intervals: exact generalization intervals vs a bisection reference; directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from segment_reference import bisect_interval, random_net
from support import on_backend_device, to_numpy

import fastmem
from fastmem import InputError, Network
from fastmem import intervals as I


def _net(Ws, bs, acts, slopes, backend="cpp"):
    net = Network.from_arrays(Ws, bs, acts or "relu", negative_slope=slopes or 0.01)
    return net.to("cuda") if backend == "cuda" else net


def _check(Ws, bs, acts, slopes, X0, Dir, backend, t_range=(-1.0, 2.0)):
    net = _net(Ws, bs, acts, slopes, backend)
    iv = I.generalization_intervals(
        net, on_backend_device(X0, backend), on_backend_device(Dir, backend), t_range=t_range,
        backend=backend,
    )  # fmt: skip
    assert iv.backend == backend
    lower, upper = to_numpy(iv.lower), to_numpy(iv.upper)
    np.testing.assert_allclose(to_numpy(iv.length), upper - lower)
    for i in range(X0.shape[0]):
        lo, hi, c0 = bisect_interval(Ws, bs, acts, slopes, X0[i], Dir[i], *t_range)
        assert int(to_numpy(iv.predicted_class)[i]) == c0
        assert abs(lower[i] - lo) < 1e-9, (i, lower[i], lo)
        assert abs(upper[i] - hi) < 1e-9, (i, upper[i], hi)
    return iv


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6", "threshold"])
@pytest.mark.parametrize("n_out", [1, 4])
def test_intervals_match_bisection(backend, act, n_out):
    rng = np.random.default_rng(abs(hash((act, n_out))) % 2**32)
    Ws, bs, acts, slopes = random_net(rng, (3, 8, 8, n_out), act)
    X0 = rng.normal(size=(10, 3))
    Dir = rng.normal(size=(10, 3))
    _check(Ws, bs, acts, slopes, X0, Dir, backend)


@settings(max_examples=8, derandomize=True)
@given(seed=st.integers(0, 2**31), depth=st.integers(1, 3), n_out=st.sampled_from([1, 2, 5]))
def test_intervals_match_bisection_hypothesis(backend, seed, depth, n_out):
    rng = np.random.default_rng(seed)
    Ws, bs, acts, slopes = random_net(rng, (2, *([6] * depth), n_out), "relu")
    X0 = rng.normal(size=(4, 2))
    Dir = rng.normal(size=(4, 2))
    _check(Ws, bs, acts, slopes, X0, Dir, backend, t_range=(-2.5, 2.5))


def test_pairwise_lines_on_trained_like_net(backend):
    # pairwise lines between same-class points (t = 0 and t = 1 are samples)
    rng = np.random.default_rng(1)
    Ws, bs, acts, slopes = random_net(rng, (4, 10, 10, 3), "relu")
    X = rng.normal(size=(12, 4))
    y = rng.integers(0, 3, 12)
    anchors, dirs, pairs = I.pairwise(X, y)
    iv = _check(Ws, bs, acts, slopes, anchors, dirs, backend)
    assert (to_numpy(iv.lower) <= 0).all() and (to_numpy(iv.upper) >= 0).all()
    assert (to_numpy(iv.lower) >= -1).all() and (to_numpy(iv.upper) <= 2).all()
    assert pairs.shape[0] == anchors.shape[0]


def test_analytic_interval(backend):
    # class 1 iff x > 0.25 (one logit): from x0 = 0 along +1, the interval is [-1, 0.25]
    net = _net([np.array([[1.0]]), np.array([[1.0]])], [np.array([-0.25]), np.zeros(1)], [], [],
               backend)  # fmt: skip
    X0 = on_backend_device(np.array([[0.0], [1.0]]), backend)
    D = on_backend_device(np.array([[1.0], [-2.0]]), backend)
    iv = I.generalization_intervals(net, X0, D, backend=backend)
    np.testing.assert_allclose(to_numpy(iv.lower), [-1.0, -1.0], atol=1e-15)
    np.testing.assert_allclose(to_numpy(iv.upper), [0.25, 0.375], atol=1e-15)
    assert to_numpy(iv.predicted_class).tolist() == [0, 1]


def test_backends_agree_exactly():
    from conftest import AVAILABLE_BACKENDS
    from support import backends_to_compare

    backends_to_compare(AVAILABLE_BACKENDS)
    rng = np.random.default_rng(5)
    Ws, bs, acts, slopes = random_net(rng, (6, 16, 16, 5), "relu")
    X0, D = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    res = [
        I.generalization_intervals(_net(Ws, bs, acts, slopes, be), on_backend_device(X0, be),
                                   on_backend_device(D, be), backend=be)
        for be in AVAILABLE_BACKENDS
    ]  # fmt: skip
    for r in res[1:]:
        np.testing.assert_array_equal(to_numpy(r.lower), to_numpy(res[0].lower))
        np.testing.assert_array_equal(to_numpy(r.upper), to_numpy(res[0].upper))
        np.testing.assert_array_equal(to_numpy(r.predicted_class), to_numpy(res[0].predicted_class))


def test_bad_inputs():
    net = fastmem.sawtooth(2)
    X0 = np.zeros((3, 1))
    D = np.ones((3, 1))
    D[1] = 0.0
    with pytest.raises(InputError, match="zero length"):
        I.generalization_intervals(net, X0, D)
    with pytest.raises(InputError, match="t_range"):
        I.generalization_intervals(net, X0, np.ones((3, 1)), t_range=(0.5, 2.0))
    with pytest.raises(InputError, match="directions"):
        I.generalization_intervals(net, X0, np.ones((2, 1)))
    with pytest.raises(InputError, match="chunk_size"):
        I.generalization_intervals(net, X0, np.ones((3, 1)), chunk_size=0)
    iv = I.generalization_intervals(net, X0, np.ones((3, 1)), chunk_size=1)
    assert iv.to_dict()["t_range"] == [-1.0, 2.0]


# ------------------------------------------------------------------ directions
def test_lines_too_long_to_resolve_the_anchor_are_refused():
    # a 1e200-long direction: the walk's resolution in t merges the anchor's region with
    # its neighbours, and the class it would see at t = 0 is not the anchor's
    rng = np.random.default_rng(0)
    net = Network.from_arrays(
        [rng.normal(size=(32, 144)) / 12, rng.normal(size=(10, 32)) / 6],
        [rng.normal(size=32) * 0.1, rng.normal(size=10) * 0.1],
    )
    X = rng.uniform(size=(6, 144))
    a, d = X[:3], X[3:] - X[:3]
    iv = I.generalization_intervals(net, a, d)
    np.testing.assert_array_equal(iv.predicted_class, net.predict(a))
    with pytest.raises(InputError, match=r"^directions, t_range: on \d+ line\(s\) .* the anchor"):
        I.generalization_intervals(net, a, d * 1e200)


def test_pairwise_enumeration_and_sampling():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = rng.integers(0, 4, 30)
    a, d, pairs = I.pairwise(X, y)
    sizes = np.bincount(y)
    assert pairs.shape[0] == sum(math.comb(int(s), 2) for s in sizes)
    assert (pairs[:, 0] < pairs[:, 1]).all() and (y[pairs[:, 0]] == y[pairs[:, 1]]).all()
    assert len({tuple(p) for p in pairs.tolist()}) == pairs.shape[0]
    np.testing.assert_array_equal(a, X[pairs[:, 0]])
    np.testing.assert_array_equal(d, X[pairs[:, 1]] - X[pairs[:, 0]])
    _, _, cross = I.pairwise(X, y, same_class=False)
    assert cross.shape[0] == math.comb(30, 2) - pairs.shape[0]
    assert (y[cross[:, 0]] != y[cross[:, 1]]).all() and (cross[:, 0] < cross[:, 1]).all()
    _, _, sub = I.pairwise(X, y, max_pairs=10, rng=3)
    _, _, sub2 = I.pairwise(X, y, max_pairs=10, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(sub, sub2)
    assert sub.shape == (10, 2)
    assert {tuple(p) for p in sub.tolist()} <= {tuple(p) for p in pairs.tolist()}
    with pytest.raises(InputError, match="y"):
        I.pairwise(X, y[:5])
    with pytest.raises(InputError, match="max_pairs"):
        I.pairwise(X, y, max_pairs=0)


def test_triangle_midlines():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(9, 2))
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    a, d, tri = I.triangle_midlines(X, y)
    assert tri.shape == (3 * (math.comb(4, 3) + 1), 3)
    assert (y[tri[:, 0]] == y[tri[:, 1]]).all() and (y[tri[:, 1]] == y[tri[:, 2]]).all()
    np.testing.assert_allclose(a, (X[tri[:, 0]] + X[tri[:, 1]]) / 2)
    np.testing.assert_allclose(d, (X[tri[:, 2]] - X[tri[:, 1]]) / 2)
    _, _, sub = I.triangle_midlines(X, y, max_triangles=2, rng=0)
    assert sub.shape == (6, 3)
    assert I.MIDLINE_RANGE == (-2.5, 2.5)


def test_lines_between_equal_rows_are_refused():
    """Duplicate samples give lines without a direction: the generators refuse them,
    naming two such rows (not zero directions that generalization_intervals refuses)."""
    X = np.random.default_rng(0).normal(size=(4, 3))
    X[2] = X[0]
    y = np.zeros(4, dtype=int)
    with pytest.raises(InputError, match=r"X: rows 0 and 2 are equal \(and 0 more"):
        I.pairwise(X, y)
    with pytest.raises(InputError, match=r"X: rows \d and \d are equal"):
        I.triangle_midlines(X, y)
    # distinct rows of other classes do not matter
    I.pairwise(X, np.array([0, 1, 1, 0]))


def test_principal_and_normal():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3)) * np.array([5.0, 1.0, 0.2])
    y = np.repeat([0, 1], 20)
    X[y == 1] += np.array([1.0, 4.0, 0.0])
    _, d, idx = I.principal(X, y, 0, 0)
    Xc = X[y == 0]
    _, evecs = np.linalg.eigh(np.cov(Xc.T))
    top = evecs[:, -1]
    radius = np.sqrt(np.mean(np.sum((Xc - Xc.mean(0)) ** 2, axis=1)))
    np.testing.assert_allclose(np.abs(d[0] @ top), radius, rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), radius)
    np.testing.assert_array_equal(idx, np.flatnonzero(y == 0))
    _, d_minor, _ = I.principal(X, y, 0, 2)
    np.testing.assert_allclose(np.abs(d_minor[0] @ evecs[:, 0]), radius, rtol=1e-8)
    _, n_dir, _ = I.normal(X, y, 0, 1)
    diff = X[y == 1].mean(0) - Xc.mean(0)
    np.testing.assert_allclose(n_dir[0], diff - (diff @ top) * top, atol=1e-10)
    assert abs(n_dir[0] @ top) < 1e-10
    with pytest.raises(InputError, match="k"):
        I.principal(X, y, 0, 3)
    with pytest.raises(InputError, match="cls"):
        I.principal(X, y, 7)


def test_random_directions():
    X = np.random.default_rng(3).normal(size=(20, 4))
    a, d, idx = I.random_directions(X, 50, rng=1)
    radius = np.sqrt(np.mean(np.sum((X - X.mean(0)) ** 2, axis=1)))
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), radius)
    np.testing.assert_array_equal(a, X[idx])
    _, d2, _ = I.random_directions(X, 50, rng=1)
    np.testing.assert_array_equal(d, d2)
    with pytest.raises(InputError, match="n"):
        I.random_directions(X, 0)


# ------------------------------------------------ values that stop being finite
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lines_whose_values_overflow_raise(backend, dtype):
    top = float(np.finfo(dtype).max)
    big = float(np.sqrt(top))
    ws = [np.full((3, 2), big), np.full((3, 3), big), np.ones((2, 3))]
    net = Network.from_arrays(ws, [np.zeros(3), np.zeros(3), np.zeros(2)], dtype=dtype)
    net = net.to("cuda") if backend == "cuda" else net

    def run(A, D, **kw):
        A, D = (on_backend_device(np.asarray(x, dtype=dtype), backend) for x in (A, D))
        return I.generalization_intervals(net, A, D, backend=backend, **kw)

    # layer 1 overflows where the inputs are positive (t = 2 on these lines)
    with pytest.raises(InputError, match=r"output of layer 1 \(a hidden layer\) overflows"):
        run(-np.ones((4, 2)), np.ones((4, 2)))
    iv = run(-np.ones((4, 2)), np.ones((4, 2)), t_range=(-1.0, 0.5))  # all off: finite
    assert to_numpy(iv.lower).tolist() == [-1.0] * 4 and to_numpy(iv.upper).tolist() == [0.5] * 4
    with pytest.raises(InputError, match=r"output of layer 0 \(a hidden layer\) overflows"):
        run(np.full((3, 2), top / 2), np.ones((3, 2)))
    with pytest.raises(InputError, match=r"^anchors, directions, t_range: the lines' points"):
        run(np.full((3, 2), top / 2), np.full((3, 2), top / 2))
