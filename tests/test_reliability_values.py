"""Issue 25, sections 2 and 3: no silent wrong or non-finite results, no raw exceptions.

Each test reproduces a reported case and checks the result against an independent
reference (closed forms, plain NumPy), or that an InputError names the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import on_backend_device, to_numpy

import fastmem
import fastmem.datasets
from fastmem import InputError, Network


# ------------------------------------------------ distance_to_boundary, tiny weights
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("s", [1.0, 1e-100, 1e-160, 1e-200, 1e-300])
def test_distance_with_tiny_weights_is_scale_invariant(backend, s):
    net = Network.from_arrays([np.array([[1.0, 1.0, 1.0]]) * s, np.array([[1.0]])],
                              [np.zeros(1), np.zeros(1)])  # fmt: skip
    net = net.to("cuda") if backend == "cuda" else net
    X = on_backend_device(np.array([[0.3, 0.2, 0.1]]), backend)
    r = fastmem.regions.distance_to_boundary(net, X, backend=backend)
    # |w . x| / ||w|| = 0.6 s / (sqrt(3) s)
    np.testing.assert_allclose(to_numpy(r.distance), [0.6 / math.sqrt(3)], rtol=1e-14)


def _relu_distances(Ws, bs, x):
    """Plain NumPy: |z| / ||grad z|| per hidden ReLU neuron (exact Jacobian products)."""
    h, J, out = x, np.eye(x.size), []
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        z = W @ h + b
        G = W @ J
        out.append(np.where(np.linalg.norm(G, axis=1) > 0,
                            np.abs(z) / np.linalg.norm(G, axis=1), np.inf))  # fmt: skip
        J = (z > 0)[:, None] * G
        h = np.maximum(z, 0)
    return np.concatenate(out)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_distance_deep_layers_with_tiny_weights(backend):
    # ReLU is positively homogeneous: scaling layer l by s_l (its bias by s_1..s_l)
    # scales every pre-activation of layer l and its gradient alike; the distances of
    # the scaled network equal the unscaled one's, whose gradients are ordinary numbers
    rng = np.random.default_rng(3)
    Ws = [rng.normal(size=(6, 3)), rng.normal(size=(5, 6)), rng.normal(size=(4, 5)),
          rng.normal(size=(2, 4))]  # fmt: skip
    bs = [rng.normal(size=6), rng.normal(size=5), rng.normal(size=4), np.zeros(2)]
    scales = [1e-120, 1e-120, 1e-60, 1.0]
    cum = np.cumprod(scales)
    net = Network.from_arrays([W * s for W, s in zip(Ws, scales, strict=True)],
                              [b * c for b, c in zip(bs, cum, strict=True)])  # fmt: skip
    net = net.to("cuda") if backend == "cuda" else net
    X = rng.normal(size=(12, 3))
    r = fastmem.regions.distance_to_boundary(net, on_backend_device(X, backend), backend=backend)
    ref = np.array([_relu_distances(Ws, bs, x).min() for x in X])
    np.testing.assert_allclose(to_numpy(r.distance), ref, rtol=1e-12)


# ------------------------------------------------ overflowing logits
def _huge_net():
    rng = np.random.default_rng(0)
    return Network.from_arrays([rng.normal(size=(8, 2)) * 1e200, rng.normal(size=(3, 8)) * 1e200],
                               [np.zeros(8), np.zeros(3)])  # fmt: skip


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize(
    "call",
    [
        lambda net, X: fastmem.critical_samples(net, X, radius=0.01, rng=0),
        lambda net, X: fastmem.certified_radius(net, X),
        lambda net, X: fastmem.loss_sensitivity(net, X, [0] * X.shape[0]),
        lambda net, X: net.forward(X),
    ],
    ids=["critical_samples", "certified_radius", "loss_sensitivity", "forward"],
)
def test_overflowing_logits_raise_like_forward(call):
    X = np.random.default_rng(1).random((5, 2))
    with pytest.raises(InputError, match=r"output of layer 1 \(the output layer\) overflows"):
        call(_huge_net(), X)


# ------------------------------------------------ certified_radius on an unbounded box
def _linear_radius(W, b, X):
    """Exact L_inf certified radius of the affine classifier x -> W x + b (no box):
    min over j != c of (f_c - f_j) / ||w_c - w_j||_1."""
    f = X @ W.T + b
    c = f.argmax(axis=1)
    out = []
    for i in range(X.shape[0]):
        d = [(f[i, c[i]] - f[i, j]) / np.abs(W[c[i]] - W[j]).sum()
             for j in range(W.shape[0]) if j != c[i]]  # fmt: skip
        out.append(min(d))
    return np.array(out)


@pytest.mark.parametrize("box", [(-np.inf, np.inf), (-1e308, 1e308), (-50.0, 50.0)])
def test_certified_radius_unbounded_box(backend, box):
    rng = np.random.default_rng(5)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    net = Network.from_arrays([W], [b])
    net = net.to("cuda") if backend == "cuda" else net
    X = rng.normal(size=(20, 4)) * 3
    ref = _linear_radius(W, b, X)
    r = fastmem.certified_radius(net, on_backend_device(X, backend), box=box, backend=backend,
                                 iterations=40).radius  # fmt: skip
    assert np.isfinite(r).all()
    assert (r <= ref * (1 + 1e-9)).all()  # certified: never above the exact radius
    np.testing.assert_allclose(r, ref, rtol=1e-6)
    # and critical_samples agrees: robust below the radius, critical above it
    for radius, status in ((0.5 * float(ref.min()), "robust"),):
        res = fastmem.critical_samples(net, on_backend_device(X, backend), radius=radius,
                                       box=box, rng=0, backend=backend)  # fmt: skip
        assert (res.status == status).all()
    big = 2 * float(ref.max())
    res = fastmem.critical_samples(net, on_backend_device(X, backend), radius=big, box=box,
                                   method="pgd", rng=0, backend=backend)  # fmt: skip
    assert (res.status == "critical").all()


# ------------------------------------------------ binned_mi ibsgd codes
def _plugin_ixt(codes):
    _, counts = np.unique(codes, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum()), counts.size


def test_ibsgd_codes_exact_or_refused(backend):
    rng = np.random.default_rng(0)
    T = rng.normal(size=(50, 4))
    y = rng.integers(0, 2, 50)
    # codes up to ~2**58: exact (50 distinct rows, I(X;T) = log2 50)
    big = T * 1e16
    mi = fastmem.binned_mi(big, y, mode="ibsgd", backend=backend)
    ref, distinct = _plugin_ixt(np.floor(big / 0.07))
    assert mi.n_distinct == distinct == 50
    assert mi.i_xt == pytest.approx(ref) and ref == pytest.approx(math.log2(50))
    # codes beyond 2**62 cannot be int64 codes: refused, naming binsize
    with pytest.raises(InputError, match=r"^binsize: .*2\*\*62"):
        fastmem.binned_mi(T, y, mode="ibsgd", binsize=1e-300, backend=backend)
    with pytest.raises(InputError, match=r"^binsize: "):
        fastmem.binned_mi(T * 1e20, y, mode="ibsgd", backend=backend)
    with pytest.raises(InputError, match=r"^binsize: "):
        fastmem.information_plane([[T * 1e20]], y, mode="ibsgd", backend=backend)
    # float32 activations: binsize 1e-50 is 0 in float32
    with pytest.raises(InputError, match=r"^binsize: "):
        fastmem.binned_mi(T.astype(np.float32), y, mode="ibsgd", binsize=1e-50, backend=backend)


def test_equal_width_range_that_overflows_is_refused():
    T = np.random.default_rng(0).normal(size=(10, 2))
    y = np.arange(10) % 2
    with pytest.raises(InputError, match=r"^range: hi - lo overflows"):
        fastmem.binned_mi(T, y, mode="equal_width", range=(-1e308, 1e308))
    with pytest.raises(InputError, match=r"^activations: max - min overflows"):
        fastmem.binned_mi(np.array([[-1e308], [1e308]] * 5), y, mode="adaptive_max")


# ------------------------------------------------ direction generators near 1e308
def _huge_data():
    rng = np.random.default_rng(0)
    X = np.clip(rng.normal(size=(9, 3)), -1, 1)
    return X, np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_direction_generators_near_the_float_range():
    X, y = _huge_data()
    big = 2.0**1020  # ~1.1e307: X * big is finite, its sums and squares are not
    iv = fastmem.intervals
    # pairwise: x_j - x_i fits for X * big / 2; beyond it does not exist: refused
    a, d, p = iv.pairwise(X * big / 2, y)
    np.testing.assert_array_equal(d, (X[p[:, 1]] - X[p[:, 0]]) * big / 2)
    with pytest.raises(InputError, match=r"^X: the direction x_j - x_i of pair"):
        iv.pairwise(X * big * 8, y)
    # midlines: midpoints and half differences always fit
    a, d, t = iv.triangle_midlines(X * big * 8, y)
    np.testing.assert_allclose(a / (big * 8), (X[t[:, 0]] + X[t[:, 1]]) / 2, rtol=1e-15)
    np.testing.assert_allclose(d / (big * 8), (X[t[:, 2]] - X[t[:, 1]]) / 2, rtol=1e-14,
                               atol=1e-15)  # fmt: skip
    # principal / random / normal: radius and directions as for X (scaled by big)
    Xc = X[y == 0]
    c = Xc - Xc.mean(axis=0)
    radius = np.sqrt(np.mean(np.sum(c**2, axis=1)))
    v = np.linalg.svd(c)[2][0]
    a, d, _ = iv.principal(X * big, y, 0)
    assert np.isfinite(d).all()
    np.testing.assert_allclose(np.abs(d[0] / big), np.abs(v) * radius, rtol=1e-12)
    a, d, _ = iv.random_directions(X * big, 5, rng=0)
    full = np.sqrt(np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1)))
    np.testing.assert_allclose(np.linalg.norm(d / big, axis=1), full, rtol=1e-12)
    a, d, _ = iv.normal(X * big, y, 0, 1)
    diff = X[y == 1].mean(axis=0) - Xc.mean(axis=0)
    np.testing.assert_allclose(d[0] / big, diff - (diff @ v) * v, rtol=1e-10, atol=1e-14)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_direction_generators_with_tiny_data():
    X, _ = _huge_data()
    tiny = 2.0**-700  # squares underflow to 0
    d = fastmem.intervals.random_directions(X * tiny, 3, rng=0)[1]
    full = np.sqrt(np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1)))
    np.testing.assert_allclose(np.linalg.norm(d / tiny, axis=1), full, rtol=1e-12)


# ------------------------------------------------ min_norm on scaled data
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("s", [1e-200, 1e200])
def test_min_norm_scaled_data_gives_finite_weights_and_norms(s):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 20)), rng.normal(size=5)
    ref = np.linalg.lstsq(X, y, rcond=None)[0]  # min-norm interpolant of X; of X s: ref / s
    res = fastmem.memorize.min_norm(X * s, y)
    w = res.network.weights[0][0]
    np.testing.assert_allclose(w * s, ref, rtol=1e-10)
    norm = float(np.linalg.norm(ref))
    assert res.details["norm"] * s == pytest.approx(norm, rel=1e-12)
    layer = res.norms["layers"][0]
    for key in ("l2", "fro"):
        assert layer[key] * s == pytest.approx(norm, rel=1e-12)
    assert res.norms["path_l2"] * s == pytest.approx(norm, rel=1e-12)
    assert res.norms["path_l1"] * s == pytest.approx(np.abs(ref).sum(), rel=1e-12)
    assert res.interpolates


def test_weight_norms_of_deep_tiny_products():
    # large and small layers whose partial products leave the float range (1e200 * 1e100)
    Ws = [np.full((2, 2), 1e100)] * 2 + [np.full((1, 2), 1e-150), np.full((1, 1), 1e-150)]
    net = Network.from_arrays(Ws, [np.zeros(2)] * 2 + [np.zeros(1)] * 2)
    n = fastmem.memorize.weight_norms(net)
    # paths 1e100 * 1e100 * 1e-150 * 1e-150 = 1e-100; 4 of them
    assert n["path_l1"] == pytest.approx(4e-100, rel=1e-12)
    assert n["path_l2"] == pytest.approx(2e-100, rel=1e-12)


# ------------------------------------------------ complex data, inf labels
def test_from_torch_refuses_complex_layers():
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(2, 3)
    with torch.no_grad():
        lin.weight = torch.nn.Parameter(lin.weight.to(torch.complex64))
    m = torch.nn.Sequential(lin, torch.nn.ReLU(), torch.nn.Linear(3, 1))
    with pytest.raises(InputError, match=r"^module\[0\]\.weight: has complex dtype"):
        Network.from_torch(m)


def test_data_loader_refuses_complex_x_and_inf_labels(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), (np.arange(20) % 2).astype(np.float64)
    np.savez(tmp_path / "c.npz", X=X + 1j * X, y=y)
    with pytest.raises(InputError, match=r"^data: X in .* is complex"):
        fastmem.datasets.load(tmp_path / "c.npz")
    y_inf = y.copy()
    y_inf[3] = np.inf
    np.savez(tmp_path / "i.npz", X=X, y=y_inf)
    with pytest.raises(InputError, match=r"^data: y in .* NaN or Inf labels"):
        fastmem.datasets.load(tmp_path / "i.npz")
    np.savez(tmp_path / "ok.npz", X=X, y=y)
    _, yl = fastmem.datasets.load(tmp_path / "ok.npz")
    np.testing.assert_array_equal(yl, np.arange(20) % 2)


# ------------------------------------------------ section 3: errors naming the argument
def _saved(tmp_path, **changes):
    net = Network.from_arrays([np.eye(2), np.eye(2)], [np.zeros(2)] * 2)
    net.save(tmp_path / "n.npz")
    z = dict(np.load(tmp_path / "n.npz"))
    z.update(changes)
    np.savez(tmp_path / "m.npz", **z)
    return tmp_path / "m.npz"


def test_network_load_errors(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    np.save(tmp_path / "a.npy", np.eye(2))
    cases = [
        (None, r"^path: must be a str, os.PathLike or a binary file object, got NoneType"),
        (3, r"^path: must be a str, os.PathLike or a binary file object, got int"),
        (tmp_path / "empty.npz", r"^path: not a fastmem network file"),
        (tmp_path / "a.npy", r"^path: .*a\.npy holds one array"),
        (_saved(tmp_path, n_layers=np.int64(0)), r"^path: .*n_layers must be an integer >= 1"),
    ]
    for path, msg in cases:
        with pytest.raises(InputError, match=msg):
            Network.load(path)
    with pytest.raises(InputError, match=r"^path: .*n_layers must be an integer >= 1"):
        Network.load(_saved(tmp_path, n_layers=np.array([1, 2])))
    with pytest.raises(InputError, match=r"^path: .*m\.npz: W0 has dtype int64"):
        Network.load(_saved(tmp_path, W0=np.eye(2, dtype=np.int64)))


def test_raw_exceptions_become_input_errors():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), np.arange(20) % 2
    T = rng.normal(size=(20, 2))
    mem = fastmem.memorize
    cases = [
        (
            lambda: mem.random_threshold(
                X[:2], np.array([None, 1], dtype=object), width=4, max_bias=1.0, rng=0
            ),
            r"^labels: ",
        ),
        (lambda: mem.interpolation_grid(X, y, widths=[4], max_biases=["a"]), r"^max_biases: "),
        (
            lambda: fastmem.binned_mi(T, y, inputs=np.array([None] * 20, dtype=object)),
            r"^inputs: must be numeric",
        ),
        (
            lambda: fastmem.information_plane([[T]], y, estimator="kde", bins=10),
            r"^bins: unknown keyword for the kde estimator",
        ),
        (lambda: fastmem.information_plane(None, y), r"^snapshots: must be a sequence"),
        (lambda: mem.two_layer(X, y, tol=-1), r"^tol: must be a number > 0"),
        (lambda: mem.two_layer(X, y, tol=float("nan")), r"^tol: must be a number > 0"),
        (lambda: mem.deep(X, y, depth=2, tol=float("inf")), r"^tol: must be finite"),
        (
            lambda: Network.from_arrays(
                [np.ones((50, 50)), np.ones((1, 50))], [np.zeros(50), np.zeros(1)]
            ).perturbed(1e308, rng=0),
            r"^sigma: 1e\+308 makes the perturbed weights overflow",
        ),
    ]
    for call, msg in cases:
        with pytest.raises(InputError, match=msg):
            call()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_random_threshold_with_huge_max_bias():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), np.arange(20) % 2
    res = fastmem.memorize.random_threshold(X, y, width=50, max_bias=1e308, rng=0)
    b = res.network.biases[0]
    assert np.isfinite(b).all() and np.abs(b).max() <= 1e308
    assert np.abs(b).max() > 1e306  # drawn on the whole interval, not squashed


@pytest.mark.parametrize(
    ("activation", "bias"),
    [("hardtanh", -1.0), ("hardtanh", 1.0), ("relu", 0.0), ("leaky_relu", 0.0)],
)
def test_states_on_a_threshold_do_not_flicker(backend, activation, bias):
    """Issue 25: a neuron whose exact pre-activation sits on a threshold while its inputs
    vary (weights that cancel: w . (c x, c x, c x, c x) = 0) is computed as the threshold
    plus rounding noise of either sign. The forward pass reads it as on the threshold, as
    the exact engine does: sampled counts equal exact ones, one pattern on every line."""
    rng = np.random.default_rng(1)
    mismatches = 0
    for _ in range(40):
        W1 = np.repeat(rng.normal(size=(1, 3)), 4, axis=0)
        w = rng.normal(size=3)
        W2 = np.append(w, -w.sum())[None, :]  # sums to 0 exactly in reals, not in floats
        net = fastmem.Network.from_arrays(
            [W1, W2, np.ones((1, 1))], [np.zeros(4), np.array([bias]), np.zeros(1)], activation
        )
        a, b = rng.random((10, 3)) * 0.3, rng.random((10, 3)) * 0.3
        ex = fastmem.along_segments(net, a, b, backend=backend)
        sa = fastmem.along_segments(net, a, b, method="sampled", samples=200, backend=backend)
        mismatches += int((np.asarray(ex.counts) != np.asarray(sa.counts)).sum())
        # the second layer's neuron reads as on its threshold at every point
        pts = a[:, None, :] + np.linspace(0, 1, 50)[None, :, None] * (b - a)[:, None, :]
        bits = np.asarray(net.activation_patterns(pts.reshape(-1, 3), backend=backend))
        n1 = 4 * (2 if activation == "hardtanh" else 1)  # bits of the first layer
        second = (bits[:, 0] >> np.uint64(n1)) & np.uint64(3 if activation == "hardtanh" else 1)
        assert np.unique(second).size == 1
    assert mismatches == 0
