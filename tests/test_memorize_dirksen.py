"""random_threshold / interpolation_grid against a plain-NumPy port of the authors' algorithm.

The port follows Dirksen, Finke & Genzel's published code (github.com/patrickfinke/memo,
algorithm.py, SecondLayer.fit): dense 0/1 features, one dense matrix-vector product per draw,
firing rule <U, z> < m; it makes the same generator calls as fastmem, so the draws are equal.
"""

from __future__ import annotations

import dirksen_reference as ref
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import backends_to_compare, on_backend_device, to_numpy

import fastmem
from fastmem import memorize
from fastmem._backend import select_backend
from fastmem.memorize._dirksen import _random_cover


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


# ------------------------------------------------------------ kernels
RULES = {"code": 0, "half": 1}


def _be(backend):
    return select_backend("cuda" if backend == "cuda" else "cpu", backend)


def _codes(rng, rows, width, density=0.5):
    return ref.pack(rng.random((rows, width)) < density)


@given(
    rows=st.integers(0, 20),
    width=st.integers(1, 200),
    seed=st.integers(0, 2**16),
)
def test_threshold_pack_kernel(backend, rows, width, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, width))
    b = rng.standard_normal(width)
    if rows:
        z[0, : width // 2] = -b[: width // 2]  # exactly on the threshold: fires (>= 0)
        z[-1, 0] = np.nan  # NaN never fires
    codes = on_backend_device(np.full((rows, -(-width // 64)), 7, dtype=np.uint64), backend)
    _be(backend).kernels.threshold_pack(
        on_backend_device(z, backend), on_backend_device(b, backend), codes
    )
    assert np.array_equal(to_numpy(codes), ref.threshold_pack(z, b))


@given(
    n_neg=st.integers(1, 60),
    n_pos=st.integers(1, 40),
    width=st.integers(1, 200),
    density=st.sampled_from([0.05, 0.5, 0.95]),
    rule=st.sampled_from(["code", "half"]),
    seed=st.integers(0, 2**16),
)
def test_cover_step_kernel(backend, n_neg, n_pos, width, density, rule, seed):
    rng = np.random.default_rng(seed)
    neg, pos = _codes(rng, n_neg, width, density), _codes(rng, n_pos, width, density)
    alive = np.sort(rng.permutation(n_neg)[: rng.integers(0, n_neg + 1)]).astype(np.int64)
    row = int(rng.integers(n_neg))
    m_ref, counts_ref, alive_ref = ref.cover_step(neg, pos, row, rule, alive.tolist())
    a = np.full(n_neg, -1, dtype=np.int64)
    a[: alive.size] = alive
    a_d = on_backend_device(a, backend)
    counts = on_backend_device(np.zeros(n_neg, dtype=np.int64), backend)
    state = on_backend_device(np.array([alive.size, -5], dtype=np.int64), backend)
    _be(backend).kernels.cover_step(
        on_backend_device(neg, backend),
        on_backend_device(pos, backend),
        row,
        RULES[rule],
        a_d,
        counts,
        state,
    )
    st_h = to_numpy(state)
    assert st_h[1] == m_ref
    assert to_numpy(a_d)[: st_h[0]].tolist() == alive_ref
    if counts_ref is not None:
        assert np.array_equal(to_numpy(counts)[: alive.size], counts_ref)


@given(
    n_neg=st.integers(0, 40),
    n_pos=st.integers(1, 30),
    words=st.integers(1, 4),
    n_sets=st.integers(1, 3),
    cells=st.integers(0, 6),
    density=st.sampled_from([0.1, 0.5, 0.9]),
    rule=st.sampled_from(["code", "half"]),
    seed=st.integers(0, 2**16),
)
def test_cover_walks_kernel(backend, n_neg, n_pos, words, n_sets, cells, density, rule, seed):
    rng = np.random.default_rng(seed)
    codes = np.stack([_codes(rng, n_neg + n_pos, 64 * words, density) for _ in range(n_sets)])
    sets = rng.integers(0, n_sets, size=cells).astype(np.int64)
    widths = rng.integers(1, 64 * words + 1, size=cells).astype(np.int64)
    orders = np.array([rng.permutation(n_neg) for _ in range(cells)], dtype=np.int64)
    orders = orders.reshape(cells, n_neg)
    flags = on_backend_device(np.full((cells, n_neg), 9, dtype=np.uint8), backend)
    left = on_backend_device(np.full(cells, -1, dtype=np.int64), backend)
    _be(backend).kernels.cover_walks(
        on_backend_device(codes, backend),
        n_neg,
        on_backend_device(sets, backend),
        on_backend_device(widths, backend),
        on_backend_device(orders, backend),
        RULES[rule],
        flags,
        left,
    )
    for c in range(cells):
        neg, pos = codes[sets[c], :n_neg], codes[sets[c], n_neg:]
        f_ref, left_ref = ref.walk(neg, pos, int(widths[c]), orders[c], rule)
        assert to_numpy(left)[c] == left_ref
        assert np.array_equal(to_numpy(flags)[c], f_ref)


@given(
    rows=st.integers(0, 50),
    k=st.integers(0, 8),
    width=st.integers(1, 150),
    n_classes=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_threshold_votes_kernel(backend, rows, k, width, n_classes, seed):
    rng = np.random.default_rng(seed)
    codes, units = _codes(rng, rows, width), _codes(rng, k, width)
    bias = rng.integers(0, width // 2 + 2, size=k) - rng.choice([0.5, 0.0], size=k)
    owner = rng.integers(0, n_classes, size=k).astype(np.int64)
    votes = on_backend_device(np.full((rows, n_classes), -3, dtype=np.int64), backend)
    _be(backend).kernels.threshold_votes(
        on_backend_device(codes, backend),
        on_backend_device(units, backend),
        on_backend_device(bias.astype(np.float64), backend),
        on_backend_device(owner, backend),
        votes,
    )
    assert np.array_equal(to_numpy(votes), ref.votes(codes, units, bias, owner, n_classes))


@pytest.mark.parametrize("width", [64, 255, 256, 700])  # 1, 4, 4 and 11 words
def test_threshold_votes_kernel_agrees_across_backends(backend, width):
    """threshold_votes (the vote added branch-free; in C++ an AVX2 build picked at run time
    counts four words a step) equals Numba's and the NumPy popcount reference: biases on
    a neuron's exact count (fires: bias - count == 0), just below it, negative, and -0.0."""
    rng = np.random.default_rng(width)
    rows, k, n_classes = 300, 40, 3
    codes, units = _codes(rng, rows, width), _codes(rng, k, width, 0.3)
    bias = rng.integers(0, width // 4 + 2, size=k) - rng.choice([0.5, 0.0], size=k)
    counts = ref.popcount_rows(codes[:1], units[0])
    bias[:4] = [float(counts[0]), float(counts[0]) - 0.5, -1.0, -0.0]
    owner = rng.integers(0, n_classes, size=k).astype(np.int64)
    want = ref.votes(codes, units, bias, owner, n_classes)
    assert 0 < want.sum() < rows * k  # some fire, some do not
    got = {}
    for b in dict.fromkeys(("numba", backend)):
        votes = on_backend_device(np.full((rows, n_classes), -3, dtype=np.int64), b)
        _be(b).kernels.threshold_votes(
            *(on_backend_device(a, b) for a in (codes, units, bias.astype(np.float64), owner)),
            votes,
        )
        got[b] = to_numpy(votes)
        np.testing.assert_array_equal(got[b], want, err_msg=b)
    np.testing.assert_array_equal(got["numba"], got[backend])


@given(
    n_neg=st.integers(1, 80),
    n_pos=st.integers(1, 60),
    width=st.integers(1, 150),
    density=st.sampled_from([0.2, 0.5, 0.8]),
    rule=st.sampled_from(["code", "half"]),
    seed=st.integers(0, 2**16),
)
def test_random_cover_equals_numpy_reference(backend, n_neg, n_pos, width, density, rule, seed):
    """Same draws, same layer: chosen rows, margins, draws and points left (also when some
    draws have m = 0 and stay uncovered: small widths, dense codes)."""
    rng = np.random.default_rng(seed)
    neg, pos = _codes(rng, n_neg, width, density), _codes(rng, n_pos, width, density)
    want = ref.random_cover(neg, pos, rule, np.random.default_rng(seed))
    got = _random_cover(
        on_backend_device(neg, backend),
        on_backend_device(pos, backend),
        rule,
        np.random.default_rng(seed),
        _be(backend),
    )
    assert got == want


def test_kernels_agree_across_backends():
    names = backends_to_compare([n for n, info in fastmem.backends().items() if info.available])
    X, labels = moons(3000)
    results = {}
    for name in names:
        res = memorize.random_threshold(X, labels, width=300, max_bias=1.0, rng=5, backend=name)
        grid = memorize.interpolation_grid(
            X[:400],
            labels[:400],
            widths=[8, 70, 130],
            max_biases=[0.2, 1.0],
            restarts=3,
            rng=7,
            backend=name,
        )
        net = res.network.to("cpu")
        results[name] = (
            [np.asarray(w) for w in net.weights],
            {k: v for k, v in res.details.items() if k != "classes"},
            res.residual,
            grid.probability,
        )
    first = results[names[0]]
    for name in names[1:]:
        other = results[name]
        for a, b in zip(first[0], other[0], strict=True):
            assert np.array_equal(a, b)
        assert first[1] == other[1] and first[2] == other[2]
        assert np.array_equal(first[3], other[3])


def test_kernels_reject_bad_shapes(backend):
    k = _be(backend).kernels
    dev = lambda a: on_backend_device(a, backend)  # noqa: E731
    neg, pos = dev(np.zeros((4, 2), np.uint64)), dev(np.zeros((3, 2), np.uint64))
    i8 = lambda n: dev(np.zeros(n, np.int64))  # noqa: E731
    with pytest.raises(ValueError, match="words"):
        k.threshold_pack(
            dev(np.zeros((2, 65))), dev(np.zeros(65)), dev(np.zeros((2, 1), np.uint64))
        )
    with pytest.raises(ValueError, match="row"):
        k.cover_step(neg, pos, 4, 0, i8(4), i8(4), dev(np.array([4, 0], np.int64)))
    with pytest.raises(ValueError, match="rule"):
        k.cover_step(neg, pos, 0, 2, i8(4), i8(4), dev(np.array([4, 0], np.int64)))
    with pytest.raises(ValueError, match="widths"):
        k.cover_walks(
            dev(np.zeros((1, 7, 2), np.uint64)),
            4,
            i8(1),
            dev(np.array([129], np.int64)),
            dev(np.zeros((1, 4), np.int64)),
            0,
            dev(np.zeros((1, 4), np.uint8)),
            i8(1),
        )
    with pytest.raises(ValueError, match="n_neg"):
        k.cover_walks(
            dev(np.zeros((1, 4, 2), np.uint64)),
            4,
            i8(1),
            dev(np.array([1], np.int64)),
            dev(np.zeros((1, 4), np.int64)),
            0,
            dev(np.zeros((1, 4), np.uint8)),
            i8(1),
        )
    with pytest.raises(ValueError, match="owner"):
        k.threshold_votes(
            neg,
            dev(np.zeros((1, 2), np.uint64)),
            dev(np.zeros(1)),
            dev(np.array([2], np.int64)),
            dev(np.zeros((4, 2), np.int64)),
        )


def test_interpolation_grid_equals_numpy_version(backend):
    """Same generator calls as the NumPy version (tests/dirksen_reference.py: one
    ``permutation`` per cell; fastmem: one row-wise ``permuted`` per restart, which NumPy
    fills with the same Fisher-Yates draws row after row), so the heatmaps are equal."""
    X, labels = moons(300)
    widths, lams = [5, 33, 64, 65, 130], [0.0, 0.3, 1.0]
    for rule in ("code", "half"):
        grid = memorize.interpolation_grid(
            X, labels, widths=widths, max_biases=lams, restarts=6, rule=rule, rng=11,
            backend=backend,
        )  # fmt: skip
        want = ref.grid(X, labels, widths, lams, 6, rule=rule, seed=11)
        assert np.array_equal(grid.probability, want)


def test_kernels_parallel_paths(backend):
    """Sizes above the kernels' 2^20-word parallel threshold (the hypothesis cases stay on
    one thread): cover_step and threshold_votes against NumPy popcounts."""
    rng = np.random.default_rng(0)
    words = 64
    neg = rng.integers(0, 2**64, size=(20_000, words), dtype=np.uint64)
    pos = rng.integers(0, 2**64, size=(20_000, words), dtype=np.uint64)
    alive = np.sort(rng.permutation(20_000)[:18_000]).astype(np.int64)
    row = int(alive[7])
    u = ~neg[row]
    m = int(ref.popcount_rows(pos, u).min())
    counts_ref = ref.popcount_rows(neg[alive], u)
    a = np.zeros(20_000, dtype=np.int64)
    a[: alive.size] = alive
    a_d = on_backend_device(a, backend)
    counts = on_backend_device(np.zeros(20_000, np.int64), backend)
    state = on_backend_device(np.array([alive.size, 0], dtype=np.int64), backend)
    k = _be(backend).kernels
    dev = lambda x: on_backend_device(x, backend)  # noqa: E731
    k.cover_step(dev(neg), dev(pos), row, 0, a_d, counts, state)
    st_h = to_numpy(state)
    assert st_h[1] == m > 0
    assert np.array_equal(to_numpy(counts)[: alive.size], counts_ref)
    kept = alive[~(counts_ref < m)]
    assert 0 < kept.size < alive.size and st_h[0] == kept.size
    assert np.array_equal(to_numpy(a_d)[: kept.size], kept)
    units = neg[:3]
    bias = np.array([float(m), 1500.0, -1.0])
    owner = np.array([0, 1, 1], dtype=np.int64)
    votes = dev(np.zeros((20_000, 2), np.int64))
    k.threshold_votes(dev(pos), dev(units), dev(bias), dev(owner), votes)
    assert np.array_equal(to_numpy(votes), ref.votes(pos, units, bias, owner, 2))
