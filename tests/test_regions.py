"""fastmem.regions: exact pieces along segments against an independent NumPy walk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import hash_rows, packed_patterns, preactivations
from segment_reference import forward, random_net, walk
from support import on_backend_device, to_numpy

import fastmem
from fastmem import InputError, Network, _engine
from fastmem import regions as R

ACTS = ["relu", "leaky_relu", "hardtanh", "relu6", "threshold"]


def _net(Ws, bs, acts, slopes, backend="cpp"):
    net = Network.from_arrays(Ws, bs, acts or "relu", negative_slope=slopes or 0.01)
    return net.to("cuda") if backend == "cuda" else net


def _segments(rng, m, d, scale=3.0):
    return rng.normal(scale=scale, size=(m, d)), rng.normal(scale=scale, size=(m, d))


def _check_against_walk(Ws, bs, acts, slopes, A, B, backend, t_range=(0.0, 1.0)):
    net = _net(Ws, bs, acts, slopes, backend)
    r = R.along_segments(
        net, on_backend_device(A, backend), on_backend_device(B, backend), t_range=t_range,
        backend=backend,
    )  # fmt: skip
    assert r.backend == backend and r.method == "exact"
    counts = to_numpy(r.counts)
    for i in range(A.shape[0]):
        bps, pats = walk(Ws, bs, acts, slopes, A[i], B[i], *t_range)
        assert counts[i] == len(bps) + 1, (i, counts[i], len(bps) + 1)
        np.testing.assert_allclose(to_numpy(r.breakpoints[i]), bps, rtol=0, atol=1e-9)
        # piece hashes: the reference's bits, packed and hashed as documented
        if pats[0].size:
            bits = np.array(pats)
            padded = np.zeros((bits.shape[0], 64 * -(-bits.shape[1] // 64)), dtype=bool)
            padded[:, : bits.shape[1]] = bits
            codes = np.packbits(padded, axis=1, bitorder="little").view("<u8").astype(np.uint64)
            np.testing.assert_array_equal(to_numpy(r.pattern_hashes[i]), hash_rows(codes))
    return r


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("widths", [(2, 6, 1), (3, 8, 7, 3), (2, 5, 6, 5, 4, 2)])
def test_counts_match_walk(backend, act, widths):
    rng = np.random.default_rng(hash((act, widths)) % 2**32)
    Ws, bs, acts, slopes = random_net(rng, widths, act)
    A, B = _segments(rng, 12, widths[0])
    _check_against_walk(Ws, bs, acts, slopes, A, B, backend)


@pytest.mark.parametrize("act", ACTS)
def test_wide_layers_match_walk(backend, act):
    # wider than one 64-neuron scan block, with layers that start inside a pattern word
    # (bit offsets 70 and 200: codes straddle words)
    rng = np.random.default_rng(11)
    Ws, bs, acts, slopes = random_net(rng, (3, 70, 130, 65, 2), act)
    A, B = _segments(rng, 3, 3)
    _check_against_walk(Ws, bs, acts, slopes, A, B, backend)


@settings(max_examples=12, derandomize=True)
@given(
    seed=st.integers(0, 2**31),
    widths=st.lists(st.integers(1, 9), min_size=2, max_size=5),
    act=st.sampled_from(ACTS),
    t_range=st.sampled_from([(0.0, 1.0), (-1.0, 2.0), (0.25, 0.5)]),
)
def test_counts_match_walk_hypothesis(backend, seed, widths, act, t_range):
    rng = np.random.default_rng(seed)
    Ws, bs, acts, slopes = random_net(rng, [rng.integers(1, 5), *widths], act)
    A, B = _segments(rng, 4, Ws[0].shape[1])
    _check_against_walk(Ws, bs, acts, slopes, A, B, backend, t_range)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6"])
def test_dense_sampling_never_finds_more(backend, act):
    rng = np.random.default_rng(7)
    Ws, bs, acts, slopes = random_net(rng, (3, 10, 10, 2), act)
    A, B = _segments(rng, 3, 3)
    net = _net(Ws, bs, acts, slopes, backend)
    r = R.along_segments(net, on_backend_device(A, backend), on_backend_device(B, backend),
                         backend=backend)  # fmt: skip
    ts = np.linspace(0.0, 1.0, 100_001)
    for i in range(3):
        X = A[i] + ts[:, None] * (B[i] - A[i])
        zs, _ = preactivations(Ws, bs, acts, slopes, X)
        codes = packed_patterns(zs, acts)
        changes = int((codes[1:] != codes[:-1]).any(axis=1).sum())
        assert changes + 1 <= int(to_numpy(r.counts)[i])


def test_piece_hash_equals_pattern_hash_at_interior_point(backend):
    rng = np.random.default_rng(3)
    Ws, bs, acts, slopes = random_net(rng, (4, 16, 16, 16, 3), "relu")
    A, B = _segments(rng, 20, 4)
    net = _net(Ws, bs, acts, slopes, backend)
    r = R.along_segments(net, on_backend_device(A, backend), on_backend_device(B, backend),
                         backend=backend)  # fmt: skip
    counts = to_numpy(r.counts)
    seg = np.repeat(np.arange(20), counts)
    lo = np.concatenate([np.concatenate([[0.0], to_numpy(r.breakpoints[i])]) for i in range(20)])
    hi = np.concatenate([np.concatenate([to_numpy(r.breakpoints[i]), [1.0]]) for i in range(20)])
    assert lo.size == counts.sum()
    mid = 0.5 * (lo + hi)
    X = A[seg] + mid[:, None] * (B[seg] - A[seg])
    expect = to_numpy(net.pattern_hashes(on_backend_device(X, backend), backend=backend))
    np.testing.assert_array_equal(to_numpy(r.pattern_hashes.values), expect)


@pytest.mark.parametrize("k", range(1, 21))
def test_sawtooth_has_2_to_the_k_pieces(backend, k):
    net = fastmem.sawtooth(k)
    if backend == "cuda":
        net = net.to("cuda")
    z, o = np.zeros((1, 1)), np.ones((1, 1))
    r = R.along_segments(net, on_backend_device(z, backend), on_backend_device(o, backend),
                         backend=backend)  # fmt: skip
    assert int(to_numpy(r.counts)[0]) == 2**k
    np.testing.assert_array_equal(to_numpy(r.breakpoints.values), np.arange(1, 2**k) / 2**k)


def test_sawtooth_function():
    x = np.linspace(0, 1, 1001)[:, None]
    for k in (1, 2, 5):
        y = x.copy()
        for _ in range(k):
            y = np.where(y <= 0.5, 2 * y, 2 - 2 * y)
        np.testing.assert_allclose(fastmem.sawtooth(k).forward(x), y, atol=1e-12)
    with pytest.raises(InputError, match="depth"):
        fastmem.sawtooth(0)


def test_perturbed():
    net = fastmem.sawtooth(6)
    same = net.perturbed(0.0, rng=1)
    for w0, w1 in zip(net.weights, same.weights, strict=True):
        np.testing.assert_array_equal(w0, w1)
    a, b = net.perturbed(0.05, rng=1), net.perturbed(0.05, rng=1)
    for w0, w1, w2 in zip(net.weights, a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(w1, w2)
        assert np.abs(w1 - w0).max() > 0
        rms = np.sqrt(np.mean(w0**2))
        assert np.abs(w1 - w0).max() < 6 * 0.05 * rms
    absolute = net.perturbed(1e-3, relative=False, rng=np.random.default_rng(2))
    assert np.abs(absolute.biases[0] - net.biases[0]).max() < 6e-3
    with pytest.raises(InputError, match="sigma"):
        net.perturbed(-1.0)
    # perturbing the sawtooth destroys most of its 2**k pieces
    z, o = np.zeros((1, 1)), np.ones((1, 1))
    noisy = int(R.along_segments(net.perturbed(0.3, rng=0), z, o).counts[0])
    assert noisy < 2**6


# ----------------------------------------------------------------------- ties
def test_tie_several_neurons_cross_at_one_t(backend):
    # three neurons all cross at x = 0.5: ONE breakpoint, two pieces
    Ws = [np.array([[1.0], [2.0], [-4.0]]), np.ones((1, 3))]
    bs = [np.array([-0.5, -1.0, 2.0]), np.zeros(1)]
    net = _net(Ws, bs, [], [], backend)
    r = R.along_segments(net, on_backend_device(np.zeros((1, 1)), backend),
                         on_backend_device(np.ones((1, 1)), backend), backend=backend)  # fmt: skip
    assert int(to_numpy(r.counts)[0]) == 2
    np.testing.assert_array_equal(to_numpy(r.breakpoints.values), [0.5])
    h = to_numpy(r.pattern_hashes.values)
    expect = hash_rows(np.array([[0b100], [0b011]], dtype=np.uint64))
    np.testing.assert_array_equal(h, expect)


def test_tie_neuron_constant_along_segment(backend):
    # neuron 0 depends on y only (constant along the x-axis segment); neuron 1 is constant
    # exactly at its threshold (off, as Network.activation_patterns says); neuron 2 crosses.
    Ws = [np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), np.ones((1, 3))]
    bs = [np.array([0.3, 0.0, -0.25]), np.zeros(1)]
    net = _net(Ws, bs, [], [], backend)
    A, B = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])
    r = R.along_segments(net, on_backend_device(A, backend), on_backend_device(B, backend),
                         backend=backend)  # fmt: skip
    assert int(to_numpy(r.counts)[0]) == 2
    np.testing.assert_array_equal(to_numpy(r.breakpoints.values), [0.25])
    np.testing.assert_array_equal(
        to_numpy(r.pattern_hashes.values), hash_rows(np.array([[0b001], [0b101]], dtype=np.uint64))
    )


@pytest.mark.parametrize("bias", [0.0, -1.0])
def test_tie_breakpoint_at_segment_end(backend, bias):
    # relu(x + bias) crosses exactly at t = 0 (bias 0) or t = 1 (bias -1): no extra piece
    net = _net([np.ones((1, 1)), np.ones((1, 1))], [np.array([bias]), np.zeros(1)], [], [], backend)
    r = R.along_segments(net, on_backend_device(np.zeros((1, 1)), backend),
                         on_backend_device(np.ones((1, 1)), backend), backend=backend)  # fmt: skip
    assert int(to_numpy(r.counts)[0]) == 1
    assert to_numpy(r.breakpoints.values).size == 0
    # the piece's pattern is the interior's: on for bias 0, off for bias -1
    expect = hash_rows(np.array([[1 if bias == 0 else 0]], dtype=np.uint64))
    np.testing.assert_array_equal(to_numpy(r.pattern_hashes.values), expect)


def test_tie_zero_length_segments(backend):
    rng = np.random.default_rng(5)
    Ws, bs, acts, slopes = random_net(rng, (3, 8, 8, 2), "relu")
    net = _net(Ws, bs, acts, slopes, backend)
    A = rng.normal(size=(5, 3))
    B = A.copy()
    B[2] += 10.0  # one real segment among zero-length ones
    r = R.along_segments(net, on_backend_device(A, backend), on_backend_device(B, backend),
                         backend=backend)  # fmt: skip
    counts = to_numpy(r.counts)
    assert list(counts[[0, 1, 3, 4]]) == [1, 1, 1, 1]
    assert counts[2] == len(walk(Ws, bs, acts, slopes, A[2], B[2])[0]) + 1
    h = to_numpy(net.pattern_hashes(on_backend_device(A, backend), backend=backend))
    np.testing.assert_array_equal(to_numpy(r.pattern_hashes[0]), h[:1])
    np.testing.assert_array_equal(to_numpy(r.pattern_hashes[4]), h[4:])


# ------------------------------------------- values carried to the new vertices
def _split_logits(net, A, B, backend, t_range=(0.0, 1.0)):
    """The engine's logits at every piece's two ends (pieces, t_lo, t_hi, lo, hi), through
    the engine module's internal interface (``fastmem._engine.split``, one chunk)."""
    be = fastmem.select_backend(net.device, backend)
    A_, B_ = on_backend_device(A, backend), on_backend_device(B, backend)
    p = _engine.split(net, be, A_, B_ - A_, *t_range, logits=True)
    return tuple(to_numpy(x) for x in (p.seg, p.t_lo, p.t_hi, p.logits_lo, p.logits_hi))


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6"])
@pytest.mark.parametrize("widths", [(3, 9, 4), (4, 12, 12, 12, 3), (2, 20, 6, 20, 5)])
def test_values_at_new_vertices_match_direct_forward(backend, act, widths):
    # next_preactivations carries each layer's values to the breakpoints by rank-1 updates;
    # the logits at every vertex must equal a plain forward pass at that point.
    rng = np.random.default_rng(hash((act, widths, "carry")) % 2**32)
    Ws, bs, acts, slopes = random_net(rng, widths, act)
    A, B = _segments(rng, 25, widths[0])
    net = _net(Ws, bs, acts, slopes, backend)
    seg, t_lo, t_hi, lo, hi = _split_logits(net, A, B, backend)
    assert np.unique(seg).size == 25 and (t_lo < t_hi).all()
    for t, got in ((t_lo, lo), (t_hi, hi)):
        X = A[seg] + t[:, None] * (B - A)[seg]
        want = forward(Ws, bs, acts, slopes, X)
        scale = 1.0 + np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * scale)


@settings(max_examples=15, derandomize=True)
@given(
    seed=st.integers(0, 2**31),
    widths=st.lists(st.integers(1, 24), min_size=2, max_size=5),
    act=st.sampled_from(["relu", "leaky_relu", "hardtanh", "relu6"]),
    t_range=st.sampled_from([(0.0, 1.0), (-1.0, 2.0), (0.25, 0.5)]),
)
def test_values_at_new_vertices_hypothesis(backend, seed, widths, act, t_range):
    rng = np.random.default_rng(seed)
    Ws, bs, acts, slopes = random_net(rng, [rng.integers(1, 6), *widths], act)
    A, B = _segments(rng, 5, Ws[0].shape[1])
    net = _net(Ws, bs, acts, slopes, backend)
    seg, _t_lo, t_hi, _lo, hi = _split_logits(net, A, B, backend, t_range)
    X = A[seg] + t_hi[:, None] * (B - A)[seg]
    want = forward(Ws, bs, acts, slopes, X)
    np.testing.assert_allclose(hi, want, rtol=0, atol=1e-11 * (1.0 + np.abs(want).max()))


def test_dead_region_inside_a_piece_keeps_exact_values(backend):
    # x = -2 + 4t: the first layer relu(x + 1.1), relu(-x + 0.9) cuts at t = 0.225, 0.725;
    # the second, relu(h0 - 1.7) and relu(h1 - 1.3), is all off for x in [-0.4, 0.6] (t in
    # [0.4, 0.65]), inside the first layer's middle piece. There the logits are exactly the
    # output bias: the carried values must not pick up rounding from the rank-1 updates.
    Ws = [np.array([[1.0], [-1.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]),
          np.array([[0.3, -0.7], [1.1, 0.4]])]  # fmt: skip
    bs = [np.array([1.1, 0.9]), np.array([-1.7, -1.3]), np.array([0.1, 0.7])]
    net = _net(Ws, bs, ["relu", "relu"], [], backend)
    A, B = np.array([[-2.0]]), np.array([[2.0]])
    _seg, t_lo, t_hi, lo, hi = _split_logits(net, A, B, backend)
    np.testing.assert_allclose(t_lo[1:], [0.225, 0.4, 0.65, 0.725], atol=1e-12)
    dead = (t_lo > 0.39) & (t_hi < 0.66)
    assert dead.sum() == 1
    assert lo[dead].tolist() == [[0.1, 0.7]] and hi[dead].tolist() == [[0.1, 0.7]]
    r = R.along_segments(net, on_backend_device(A, backend), on_backend_device(B, backend),
                         backend=backend)  # fmt: skip
    assert int(to_numpy(r.counts)[0]) == 5


# ------------------------------------------------------------ backends, chunks
def test_backends_agree_exactly():
    from conftest import AVAILABLE_BACKENDS
    from support import backends_to_compare

    backends_to_compare(AVAILABLE_BACKENDS)
    rng = np.random.default_rng(11)
    for act in ACTS:
        Ws, bs, acts, slopes = random_net(rng, (5, 12, 12, 12, 3), act)
        A, B = _segments(rng, 30, 5)
        results = []
        for be in AVAILABLE_BACKENDS:
            net = _net(Ws, bs, acts, slopes, be)
            results.append(R.along_segments(net, on_backend_device(A, be),
                                            on_backend_device(B, be), backend=be))  # fmt: skip
        logits = [_split_logits(_net(Ws, bs, acts, slopes, be), A, B, be)
                  for be in AVAILABLE_BACKENDS]  # fmt: skip
        for got in logits[1:]:
            for x, y in zip(got, logits[0], strict=True):
                np.testing.assert_array_equal(x, y)
        for r in results[1:]:
            np.testing.assert_array_equal(to_numpy(r.counts), to_numpy(results[0].counts))
            np.testing.assert_array_equal(to_numpy(r.breakpoints.values),
                                          to_numpy(results[0].breakpoints.values))  # fmt: skip
            np.testing.assert_array_equal(to_numpy(r.pattern_hashes.values),
                                          to_numpy(results[0].pattern_hashes.values))  # fmt: skip


@pytest.mark.parametrize("chunk_size", [None, 23])
def test_chunks_cut_side_by_side_equal_one_at_a_time(backend, chunk_size):
    # With two or more threads the C++ backend cuts two chunks at once, each on its share
    # of the threads; with one thread it cuts them one after the other. Same chunks, same
    # GEMM blocks: identical bits, and the counts of an independent walk.
    from fastmem._threads import kernel_threads

    rng = np.random.default_rng(5)
    Ws, bs, acts, slopes = random_net(rng, (6, 16, 16, 3), "relu")
    net = _net(Ws, bs, acts, slopes, backend)
    A, B = _segments(rng, 300, 6)
    Ad, Bd = on_backend_device(A, backend), on_backend_device(B, backend)
    got = R.along_segments(net, Ad, Bd, chunk_size=chunk_size, backend=backend)
    be = fastmem.select_backend(backend)
    with kernel_threads(be, 1):
        one = R.along_segments(net, Ad, Bd, chunk_size=chunk_size, backend=backend)
    for name in ("counts",):
        np.testing.assert_array_equal(to_numpy(getattr(got, name)), to_numpy(getattr(one, name)))
    for name in ("breakpoints", "pattern_hashes"):
        np.testing.assert_array_equal(to_numpy(getattr(got, name).values),
                                      to_numpy(getattr(one, name).values))  # fmt: skip
    counts = to_numpy(got.counts)
    for i in range(0, 300, 37):
        assert counts[i] == len(walk(Ws, bs, acts, slopes, A[i], B[i], 0.0, 1.0)[0]) + 1


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_overflow_in_a_later_chunk_raises(backend):
    # the last segments overflow in layer 1 while earlier chunks are being cut
    net = _big_net(np.float64, backend, float(np.sqrt(np.finfo(np.float64).max)))
    A, B = -np.ones((400, 2)), -2 * np.ones((400, 2))
    A[-5:], B[-5:] = -1.0, 1.0
    Ad, Bd = on_backend_device(A, backend), on_backend_device(B, backend)
    for chunk_size in (None, 7):
        with pytest.raises(InputError, match=r"output of layer 1 \(a hidden layer\) overflows"):
            R.along_segments(net, Ad, Bd, chunk_size=chunk_size, backend=backend)
    ok = R.along_segments(net, Ad[:-5], Bd[:-5], backend=backend)
    assert (to_numpy(ok.counts) == 1).all()


def test_chunk_size_does_not_change_results(backend):
    rng = np.random.default_rng(2)
    Ws, bs, acts, slopes = random_net(rng, (4, 10, 10, 2), "hardtanh")
    net = _net(Ws, bs, acts, slopes, backend)
    A, B = (on_backend_device(x, backend) for x in _segments(rng, 17, 4))
    ref = R.along_segments(net, A, B, backend=backend)
    for chunk in (1, 4, 100):
        r = R.along_segments(net, A, B, chunk_size=chunk, backend=backend)
        assert r.chunk_size == min(chunk, 17)
        np.testing.assert_array_equal(to_numpy(r.counts), to_numpy(ref.counts))
        np.testing.assert_array_equal(
            to_numpy(r.breakpoints.values), to_numpy(ref.breakpoints.values)
        )
        np.testing.assert_array_equal(
            to_numpy(r.pattern_hashes.values), to_numpy(ref.pattern_hashes.values)
        )


def test_float32_network_runs(backend):
    rng = np.random.default_rng(4)
    Ws, bs, acts, slopes = random_net(rng, (3, 8, 8, 2), "relu")
    net = _net(Ws, bs, acts, slopes, backend).astype(np.float32)
    A, B = _segments(rng, 6, 3)
    r = R.along_segments(net, on_backend_device(A, backend), on_backend_device(B, backend),
                         backend=backend)  # fmt: skip
    assert to_numpy(r.breakpoints.values).dtype == np.float32
    exact = [len(walk(Ws, bs, acts, slopes, A[i], B[i])[0]) + 1 for i in range(6)]
    assert np.abs(to_numpy(r.counts) - exact).max() <= 1


def test_linear_network_has_one_piece(backend):
    net = _net([np.ones((2, 3))], [np.zeros(2)], [], [], backend)
    A = np.zeros((2, 3))
    r = R.along_segments(net, on_backend_device(A, backend), on_backend_device(A + 1, backend),
                         backend=backend)  # fmt: skip
    assert to_numpy(r.counts).tolist() == [1, 1]


# -------------------------------------------------------------------- sampled
def test_sampled_matches_numpy_sampling(backend):
    rng = np.random.default_rng(9)
    Ws, bs, acts, slopes = random_net(rng, (3, 10, 10, 2), "leaky_relu")
    net = _net(Ws, bs, acts, slopes, backend)
    A, B = _segments(rng, 5, 3)
    samples = 300
    r = R.along_segments(net, on_backend_device(A, backend), on_backend_device(B, backend),
                         method="sampled", samples=samples, backend=backend)  # fmt: skip
    exact = R.along_segments(net, on_backend_device(A, backend), on_backend_device(B, backend),
                             backend=backend)  # fmt: skip
    assert r.method == "sampled" and r.samples == samples
    ts = np.arange(samples) / (samples - 1)
    for i in range(5):
        X = A[i] + ts[:, None] * (B[i] - A[i])
        zs, _ = preactivations(Ws, bs, acts, slopes, X)
        codes = packed_patterns(zs, acts)
        change = (codes[1:] != codes[:-1]).any(axis=1)
        assert int(to_numpy(r.counts)[i]) == change.sum() + 1
        np.testing.assert_allclose(
            to_numpy(r.breakpoints[i]), (ts[1:][change] + ts[:-1][change]) / 2
        )
        keep = np.concatenate([[True], change])
        np.testing.assert_array_equal(to_numpy(r.pattern_hashes[i]), hash_rows(codes[keep]))
    assert (to_numpy(r.counts) <= to_numpy(exact.counts)).all()


# ------------------------------------------------------------ distinct patterns
def test_distinct_patterns(backend):
    rng = np.random.default_rng(1)
    Ws, bs, acts, slopes = random_net(rng, (2, 5, 2), "relu")
    net = _net(Ws, bs, acts, slopes, backend)
    X = rng.normal(size=(200, 2))
    d = R.distinct_patterns(net, on_backend_device(X, backend), backend=backend)
    zs, _ = preactivations(Ws, bs, acts, slopes, X)
    codes = packed_patterns(zs, acts)
    uniq, inv = np.unique(codes, axis=0, return_inverse=True)
    assert d.n_distinct == uniq.shape[0]
    inverse = to_numpy(d.inverse)
    # same partition of the rows as the reference
    pairs = {(int(a), int(b)) for a, b in zip(inverse, inv.reshape(-1), strict=True)}
    assert len(pairs) == d.n_distinct
    np.testing.assert_array_equal(np.sort(to_numpy(d.hashes)), np.sort(hash_rows(uniq)))
    assert to_numpy(d.counts).sum() == 200
    assert not d.all_distinct
    assert R.distinct_patterns(net, on_backend_device(X[:1], backend), backend=backend).all_distinct


# ---------------------------------------------------------------- bad inputs
def test_bad_inputs():
    net = fastmem.sawtooth(2)
    z, o = np.zeros((2, 1)), np.ones((2, 1))
    with pytest.raises(InputError, match="ends"):
        R.along_segments(net, z, np.ones((3, 1)))
    with pytest.raises(InputError, match="starts"):
        R.along_segments(net, np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(InputError, match="NaN"):
        R.along_segments(net, z, np.full((2, 1), np.nan))
    with pytest.raises(InputError, match="t_range"):
        R.along_segments(net, z, o, t_range=(1.0, 0.0))
    with pytest.raises(InputError, match="t_range"):
        R.along_segments(net, z, o, t_range=(0.0, np.inf))
    with pytest.raises(InputError, match="method"):
        R.along_segments(net, z, o, method="walk")
    with pytest.raises(InputError, match="samples"):
        R.along_segments(net, z, o, samples=10)
    with pytest.raises(InputError, match="samples"):
        R.along_segments(net, z, o, method="sampled", samples=1)
    with pytest.raises(InputError, match="chunk_size"):
        R.along_segments(net, z, o, chunk_size=0)
    with pytest.raises(InputError, match="net"):
        R.along_segments("net", z, o)
    with pytest.raises(InputError):
        R.along_segments(net, np.zeros((0, 1)), np.zeros((0, 1)))


def test_to_dict_and_ragged():
    r = R.along_segments(fastmem.sawtooth(2), np.zeros((2, 1)), np.array([[1.0], [0.5]]))
    d = r.to_dict()
    assert d["counts"] == [4, 2]
    assert d["breakpoints"]["offsets"] == [0, 3, 4]
    assert len(r.breakpoints) == 2 and r.breakpoints[-1].tolist() == [0.5]
    assert all(isinstance(h, int) for h in d["pattern_hashes"]["values"])
    with pytest.raises(IndexError):
        r.breakpoints[2]


def test_forward_reference_consistency():
    # guards the reference itself against silently diverging from Network.forward
    rng = np.random.default_rng(0)
    for act in ACTS:
        Ws, bs, acts, slopes = random_net(rng, (3, 6, 4), act)
        X = rng.normal(size=(10, 3))
        np.testing.assert_allclose(forward(Ws, bs, acts, slopes, X),
                                   _net(Ws, bs, acts, slopes).forward(X), atol=1e-12)  # fmt: skip


# --------------------------------------------------------- distance to boundary
def _numeric_distances(Ws, bs, acts, slopes, x, h=1e-6):
    """Per hidden neuron |z - c| / ||grad z|| with gradients by central differences."""

    def pre(xx):
        zs, _ = preactivations(Ws, bs, acts, slopes, xx)
        return np.concatenate(zs, axis=1)

    z = pre(x[None])[0]
    E = np.eye(x.size) * h
    grad = (pre(x[None] + E) - pre(x[None] - E)).T / (2 * h)  # (neurons, d)
    names = np.concatenate([[a] * W.shape[0] for W, a in zip(Ws[:-1], acts, strict=True)])
    gap = np.where(names == "hardtanh", np.minimum(abs(z + 1), abs(z - 1)), abs(z))
    gn = np.linalg.norm(grad, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gn > 1e-9, gap / gn, np.inf)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "hardtanh", "relu6"])
def test_distance_to_boundary(backend, act):
    rng = np.random.default_rng(21)
    Ws, bs, acts, slopes = random_net(rng, (3, 7, 6, 5, 2), act)
    net = _net(Ws, bs, acts, slopes, backend)
    X = rng.normal(size=(40, 3))
    r = R.distance_to_boundary(net, on_backend_device(X, backend), backend=backend)
    dist, layer, neuron = (to_numpy(v) for v in (r.distance, r.layer, r.neuron))
    offsets = np.cumsum([0] + [W.shape[0] for W in Ws[:-1]])
    for i in range(40):
        ref = _numeric_distances(Ws, bs, acts, slopes, X[i])
        np.testing.assert_allclose(dist[i], ref.min(), rtol=1e-5)
        assert ref[offsets[layer[i]] + neuron[i]] == pytest.approx(ref.min(), rel=1e-5)
    np.testing.assert_array_equal(to_numpy(r.exact), layer == 0)


def test_distance_first_layer_is_exact():
    rng = np.random.default_rng(4)
    Ws, bs, acts, slopes = random_net(rng, (4, 9, 1), "relu")
    X = rng.normal(size=(25, 4))
    r = R.distance_to_boundary(_net(Ws, bs, acts, slopes), X)
    W, b = Ws[0], bs[0]
    for i in range(25):
        j = int(r.neuron[i])
        # stepping the distance along the normal lands on neuron j's hyperplane
        z = W[j] @ X[i] + b[j]
        y = X[i] - np.sign(z) * r.distance[i] * W[j] / np.linalg.norm(W[j])
        assert abs(W[j] @ y + b[j]) < 1e-12
        assert r.distance[i] == pytest.approx(
            np.min(np.abs(X[i] @ W.T + b) / np.linalg.norm(W, axis=1))
        )
    assert r.exact.all()


# ------------------------------------------------ values that stop being finite
def _big_net(dtype, backend, hidden_scale):
    big = float(np.sqrt(np.finfo(dtype).max))
    ws = [np.full((3, 2), big), np.full((3, 3), hidden_scale), np.ones((2, 3))]
    net = Network.from_arrays(ws, [np.zeros(3), np.zeros(3), np.zeros(2)], dtype=dtype)
    return net.to("cuda") if backend == "cuda" else net


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_segments_whose_values_overflow_raise(backend, dtype, method):
    top = float(np.finfo(dtype).max)
    kw = dict(backend=backend, method=method)

    def run(net, A, B):
        A, B = (on_backend_device(np.asarray(x, dtype=dtype), backend) for x in (A, B))
        return R.along_segments(net, A, B, **kw)

    # layer 1 overflows on the positive half of the input space (weights sqrt(max)^2)
    net = _big_net(dtype, backend, float(np.sqrt(top)))
    with pytest.raises(InputError, match=r"output of layer 1 \(a hidden layer\) overflows"):
        run(net, -np.ones((4, 2)), np.ones((4, 2)))
    r = run(net, -np.ones((4, 2)), -2 * np.ones((4, 2)))  # all ReLUs off: finite, one piece
    assert to_numpy(r.counts).tolist() == [1, 1, 1, 1]
    # huge inputs: layer 0 (sums of two top / 2 values)
    with pytest.raises(InputError, match=r"output of layer 0 \(a hidden layer\) overflows"):
        run(net, np.full((3, 2), top / 2), np.full((3, 2), top / 2))
    # ends - starts overflows
    with pytest.raises(InputError, match=r"^ends: ends - starts overflows"):
        run(net, np.full((3, 2), -top / 2), np.full((3, 2), top))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_exact_engine_bound_is_an_eighth_of_the_range(backend):
    # values finite for forward (max / 4) but beyond the exact engine's max / 8
    top = float(np.finfo(np.float64).max)
    net = _net([np.array([[top / 4], [-1.0]]), np.ones((1, 2))], [np.zeros(2), np.zeros(1)],
               [], [], backend)  # fmt: skip
    A, B = on_backend_device(np.zeros((1, 1)), backend), on_backend_device(np.ones((1, 1)), backend)
    assert np.isfinite(to_numpy(net.forward(B, backend=backend))).all()
    with pytest.raises(InputError, match=r"layer 0 \(a hidden layer\) overflows .* beyond"):
        R.along_segments(net, A, B, backend=backend)
    smaller = _net([np.array([[top / 16], [-1.0]]), np.ones((1, 2))], [np.zeros(2), np.zeros(1)],
                   [], [], backend)  # fmt: skip
    assert int(to_numpy(R.along_segments(smaller, A, B, backend=backend).counts)[0]) == 1


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_distance_with_weights_whose_squares_overflow(backend):
    # the first example of distance_to_boundary scaled by 1e160: |w| = 5e160 (its square
    # overflows), the distances do not change
    s = 1e160
    net = _net([np.array([[3.0 * s, 4.0 * s]]), np.ones((1, 1))], [np.array([-5.0 * s]),
               np.zeros(1)], [], [], backend)  # fmt: skip
    X = on_backend_device(np.array([[0.0, 0.0], [1.0, 1.0]]), backend)
    r = R.distance_to_boundary(net, X, backend=backend)
    np.testing.assert_allclose(to_numpy(r.distance), [1.0, 0.4], rtol=1e-15)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_overflow_in_the_row_blocked_gemm_raises_without_warnings(backend):
    # 2 x 2500 vertex rows: the first GEMM runs in row blocks on fastmem's GEMM threads,
    # where NumPy's floating-point error state is set separately
    top = float(np.finfo(np.float64).max)
    net = _big_net(np.float64, backend, 1.0)
    A = on_backend_device(np.full((2500, 2), top / 2), backend)
    with pytest.raises(InputError, match=r"output of layer 0 \(a hidden layer\) overflows"):
        R.along_segments(net, A, A, backend=backend, chunk_size=2500)


def _narrow_band_net(scale: float) -> Network:
    """A hard-tanh neuron of weight ``scale`` whose linear band along x = -1 + 2t is
    1 / scale wide in t (helper sweep): at 1e14 it is below the walk's tie tolerance."""
    return Network.from_arrays(
        [np.array([[scale], [scale]]), np.array([[1.0, 1.0]]), np.array([[1.0]])],
        [np.array([0.0, -0.3 * scale]), np.array([-0.5]), np.array([-0.1])],
        activation=["hardtanh", "relu"],
    )


def test_walks_whose_values_lose_precision_are_refused(backend):
    """Where the values along the lines are large (> 1e8), pieces are checked against the
    forward pass at their midpoints: the narrow hard-tanh band at weights 1e14 merged its
    two crossings and put the next layer's crossing at t = 0.5375 (truth: 0.65), a piece
    whose hash matched no point inside it; now refused. At 1e13 the walk is right and
    passes the check; generalization_intervals checks its intervals the same way (it
    returned [-1, 0.04] for a class that holds until t = 0.25)."""
    A, B = np.array([[-1.0]]), np.array([[1.0]])
    with pytest.raises(InputError, match=r"starts, ends, t_range: the exact walk lost its"):
        fastmem.along_segments(_narrow_band_net(1e14), A, B, backend=backend)
    with pytest.raises(InputError, match=r"directions, t_range: the exact walk lost its"):
        fastmem.generalization_intervals(
            _narrow_band_net(1e14), np.array([[0.05]]), np.array([[1.0]]), t_range=(-1.0, 1.0),
            backend=backend,
        )  # fmt: skip
    net = _narrow_band_net(1e13)
    r = fastmem.along_segments(net, A, B, backend=backend)
    edges = np.concatenate([[0.0], to_numpy(r.breakpoints[0]), [1.0]])
    # each hard-tanh band (5e-14 wide in t) is a piece of its own at 1e13
    np.testing.assert_allclose(edges[1:-1], [0.5, 0.5, 0.65, 0.65], rtol=0, atol=1e-12)
    mid = (edges[1:] + edges[:-1]) / 2
    wide = np.diff(edges) > 1e-9
    got = to_numpy(net.pattern_hashes(A + mid[wide, None] * (B - A)))
    np.testing.assert_array_equal(to_numpy(r.pattern_hashes[0])[wide], got)
    iv = fastmem.generalization_intervals(
        net, np.array([[0.05]]), np.array([[1.0]]), t_range=(-1.0, 1.0), backend=backend
    )
    np.testing.assert_allclose(to_numpy(iv.upper), [0.25], rtol=0, atol=1e-12)


def test_relu6_walk_crosses_both_ends(backend):
    """relu6 (its own kind): the walk against the NumPy walk on a net whose neurons cross
    both 0 and 6 along the segments (the high state bit changes too)."""
    rng = np.random.default_rng(66)
    Ws, bs, acts, slopes = random_net(rng, (3, 9, 8, 2), "relu6")
    Ws = [W * 4.0 for W in Ws]
    A, B = _segments(rng, 8, 3)
    _check_against_walk(Ws, bs, acts, slopes, A, B, backend)
    high_flips = 0
    for i in range(8):
        pats = np.array(walk(Ws, bs, acts, slopes, A[i], B[i])[1])
        high_flips += int((pats[1:, 1::2] != pats[:-1, 1::2]).sum())
    assert high_flips > 10
