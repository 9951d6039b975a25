"""Network: forward, activation patterns and pattern hashes on every backend,
against the plain-NumPy reference in tests/reference.py."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import hash_rows, packed_patterns, preactivations
from support import on_backend_device, to_numpy

import fastmem
from fastmem import InputError, Network

ACTS = ["relu", "leaky_relu", "hardtanh", "relu6", "threshold"]


@st.composite
def networks_and_inputs(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n_hidden = draw(st.integers(0, 3))
    # Widths up to 70 make patterns straddle 64-bit words, also for 2-bit hard-tanh neurons.
    widths = [draw(st.integers(1, 6))] + [draw(st.integers(1, 70)) for _ in range(n_hidden)]
    widths.append(draw(st.integers(1, 4)))
    acts = [draw(st.sampled_from(ACTS)) for _ in range(n_hidden)]
    slopes = [draw(st.sampled_from([0.01, 0.2, -0.5])) for _ in range(n_hidden)]
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 40))
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(o, i)) for i, o in itertools.pairwise(widths)]
    biases = [rng.normal(size=o) for o in widths[1:]]
    X = rng.normal(scale=2.0, size=(n, widths[0]))
    if draw(st.booleans()):
        X = np.asfortranarray(X)  # non-contiguous rows must be accepted
    net = Network.from_arrays(weights, biases, acts, negative_slope=slopes, dtype=dtype)
    return net, X


def _reference(net: Network, X: np.ndarray):
    Xd = np.ascontiguousarray(X, dtype=net.dtype)
    ws = [np.asarray(w) for w in net.weights]
    bs = [np.asarray(b) for b in net.biases]
    zs, out = preactivations(ws, bs, net.activation, net.negative_slopes, Xd)
    if zs:
        codes = packed_patterns(zs, net.activation)
    else:
        codes = np.zeros((X.shape[0], 0), dtype=np.uint64)
    return out, codes


@given(case=networks_and_inputs())
def test_forward_patterns_hashes_match_reference(backend, case):
    net, X = case
    ref_out, ref_codes = _reference(net, X)
    dev_net = net.to("cuda") if backend == "cuda" else net
    Xb = on_backend_device(X, backend)
    out = to_numpy(dev_net.forward(Xb, backend=backend))
    codes = to_numpy(dev_net.activation_patterns(Xb, backend=backend))
    hashes = to_numpy(dev_net.pattern_hashes(Xb, backend=backend))
    tol = 1e-5 if net.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol * np.abs(ref_out).max())
    assert out.dtype == net.dtype
    assert codes.dtype == np.uint64 and codes.shape == (X.shape[0], net.n_pattern_words)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(hashes, hash_rows(ref_codes))


def test_backends_agree_bitwise_on_a_large_net():
    rng = np.random.default_rng(1)
    widths = [20, 300, 129, 65, 7]
    weights = [rng.normal(size=(o, i)) / np.sqrt(i) for i, o in itertools.pairwise(widths)]
    biases = [rng.normal(size=o) * 0.1 for o in widths[1:]]
    net = Network.from_arrays(weights, biases, ["relu", "hardtanh", "leaky_relu"])
    X = rng.normal(size=(3000, 20))
    results = {}
    for name, info in fastmem.backends().items():
        if not info.available or name == "cuda":
            continue
        results[name] = (
            net.forward(X, backend=name),
            net.activation_patterns(X, backend=name),
            net.pattern_hashes(X, backend=name),
        )
    assert results, "no CPU backend available"
    first = next(iter(results.values()))
    for other in results.values():
        for a, b in zip(first, other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_chunked_rows_equal_single_pass():
    # More rows than one chunk: chunking must not change any result.
    rng = np.random.default_rng(2)
    net = Network.from_arrays(
        [rng.normal(size=(4096, 3)), rng.normal(size=(2, 4096))],
        [rng.normal(size=4096), rng.normal(size=2)],
    )
    # 5000 rows x 4096 neurons x 8 bytes = 164 MB of pre-activations: more than one of
    # Network's row chunks (64 MiB each)
    X = rng.normal(size=(5000, 3))
    ref_out, ref_codes = _reference(net, X)
    np.testing.assert_allclose(net.forward(X), ref_out, rtol=1e-10)
    np.testing.assert_array_equal(net.activation_patterns(X), ref_codes)


def test_absolute_value_network_regions():
    # |x| = relu(x) + relu(-x): two regions, x < 0 and x > 0.
    net = Network.from_arrays(
        [np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)]
    )
    X = np.array([[-3.0], [-0.5], [0.25], [4.0]])
    np.testing.assert_array_equal(net.forward(X)[:, 0], np.abs(X[:, 0]))
    np.testing.assert_array_equal(net.activation_patterns(X)[:, 0], [2, 2, 1, 1])
    h = net.pattern_hashes(X)
    assert h[0] == h[1] and h[2] == h[3] and h[0] != h[2]


def test_hardtanh_two_bit_states():
    net = Network.from_arrays(
        [np.array([[1.0]]), np.array([[1.0]])], [np.zeros(1), np.zeros(1)], "hardtanh"
    )
    X = np.array([[-2.0], [0.0], [2.0], [-1.0], [1.0]])
    # 00 saturated low, 01 linear, 11 saturated high; the kinks -1, +1 belong to the linear piece
    np.testing.assert_array_equal(net.activation_patterns(X)[:, 0], [0, 1, 3, 0, 1])
    np.testing.assert_array_equal(net.forward(X)[:, 0], [-1.0, 0.0, 1.0, -1.0, 1.0])


def test_threshold_is_heaviside_at_zero():
    net = Network.from_arrays(
        [np.array([[1.0]]), np.array([[1.0]])], [np.zeros(1), np.zeros(1)], "threshold"
    )
    np.testing.assert_array_equal(
        net.forward(np.array([[-1e-300], [0.0], [2.0]]))[:, 0], [0.0, 1.0, 1.0]
    )


def test_linear_model_is_a_network():
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    net = Network.from_arrays([W], [b])
    X = rng.normal(size=(10, 5))
    np.testing.assert_allclose(net.forward(X), X @ W.T + b, rtol=1e-12)
    assert net.n_neurons == 0 and net.activation == ()
    assert net.activation_patterns(X).shape == (10, 0)
    hashes = net.pattern_hashes(X)
    assert len(set(hashes.tolist())) == 1  # one region
    np.testing.assert_array_equal(hashes, hash_rows(np.zeros((10, 0), dtype=np.uint64)))


def test_predict():
    net = Network.from_arrays([np.eye(3)], [np.zeros(3)])
    np.testing.assert_array_equal(net.predict(np.array([[0.0, 2.0, 1.0], [5.0, 0.0, 0.0]])), [1, 0])
    single = Network.from_arrays([np.array([[1.0, -1.0]])], [np.zeros(1)])
    np.testing.assert_array_equal(single.predict(np.array([[2.0, 1.0], [0.0, 1.0]])), [1, 0])


def test_properties_and_immutability():
    rng = np.random.default_rng(4)
    W0 = rng.normal(size=(6, 2))
    net = Network.from_arrays(
        [W0, rng.normal(size=(5, 6)), rng.normal(size=(1, 5))],
        [np.zeros(6), np.zeros(5), np.zeros(1)],
        ["hardtanh", "relu"],
    )
    assert net.widths == (2, 6, 5, 1)
    assert net.n_layers == 3 and net.n_neurons == 11
    assert net.n_pattern_bits == 6 * 2 + 5 and net.n_pattern_words == 1
    assert net.device == "cpu" and net.dtype == np.float64
    with pytest.raises(ValueError):
        net.weights[0][0, 0] = 1.0
    W0[0, 0] = 1e6  # the caller's array stays theirs
    assert net.weights[0][0, 0] != 1e6
    assert "widths=(2, 6, 5, 1)" in repr(net)


def test_astype_and_to():
    rng = np.random.default_rng(5)
    net = Network.from_arrays(
        [rng.normal(size=(4, 2)), rng.normal(size=(1, 4))], [np.zeros(4), np.zeros(1)]
    )
    n32 = net.astype(np.float32)
    assert n32.dtype == np.float32 and all(w.dtype == np.float32 for w in n32.weights)
    X = rng.normal(size=(7, 2))
    np.testing.assert_allclose(n32.forward(X), net.forward(X), rtol=1e-5, atol=1e-5)
    assert net.to("cpu") is net
    with pytest.raises(InputError, match="device"):
        net.to("tpu")
    with pytest.raises(InputError, match="dtype"):
        net.astype(np.int32)


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(6)
    net = Network.from_arrays(
        [rng.normal(size=(4, 3)), rng.normal(size=(5, 4)), rng.normal(size=(2, 5))],
        [rng.normal(size=4), rng.normal(size=5), rng.normal(size=2)],
        ["leaky_relu", "hardtanh"],
        negative_slope=[0.3, 0.01],
        dtype=np.float32,
    )
    path = tmp_path / "net.npz"
    net.save(path)
    back = Network.load(path)
    assert back.activation == net.activation and back.negative_slopes == net.negative_slopes
    assert back.dtype == np.float32
    for a, b in zip(net.weights + net.biases, back.weights + back.biases, strict=True):
        np.testing.assert_array_equal(a, b)
    with np.load(path, allow_pickle=False) as data:  # no pickled objects inside
        assert "W0" in data.files
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(InputError, match="not a fastmem network"):
        Network.load(bad)


def test_network_never_aliases_caller_arrays():
    torch = pytest.importorskip("torch")
    W = torch.ones((2, 3), dtype=torch.float64)
    net = Network.from_arrays([W.numpy(), [[1.0, 1.0]]], [np.zeros(2), np.zeros(1)])
    W[0, 0] = 5.0  # edits the tensor's memory, which NumPy views share
    assert net.weights[0][0, 0] == 1.0
    b = np.zeros(2)
    net = Network.from_arrays([np.ones((2, 3)), np.ones((1, 2))], [b, np.zeros(1)])
    b[0] = 7.0
    assert net.biases[0][0] == 0.0 and b.flags.writeable
    half = net.astype(np.float32)
    assert not half.weights[0].flags.writeable


def test_layer_outputs_equal_a_plain_numpy_forward(backend):
    rng = np.random.default_rng(3)
    widths = [5, 7, 6, 3]
    ws = [rng.normal(size=(o, i)) for i, o in itertools.pairwise(widths)]
    bs = [rng.normal(size=o) for o in widths[1:]]
    net = Network.from_arrays(ws, bs, activation=["relu", "hardtanh"])
    X = rng.normal(size=(40, 5))
    outs = net.layer_outputs(X, backend=backend)
    h = X
    expected = []
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        z = h @ w.T + b
        if i == 0:
            z = np.maximum(z, 0.0)
        elif i == 1:
            z = np.clip(z, -1.0, 1.0)
        expected.append(z)
        h = z
    assert len(outs) == 3
    for got, want in zip(outs, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(outs[-1], net.forward(X, backend=backend))


# ------------------------------------------------------------ smooth activations
def _smooth_reference(ws, bs, acts, X):
    """Hidden outputs and logits with np.tanh and the textbook logistic 1 / (1 + exp(-z))."""
    h = X
    outs = []
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        z = h @ w.T + b
        if i < len(acts):
            name = acts[i]
            if name == "tanh":
                z = np.tanh(z)
            elif name == "sigmoid":
                z = 1.0 / (1.0 + np.exp(-z))
            elif name == "relu":
                z = np.maximum(z, 0.0)
            else:
                raise AssertionError(name)
        outs.append(z)
        h = z
    return outs


def _smooth_net(acts, dtype=np.float64, seed=7):
    rng = np.random.default_rng(seed)
    widths = [4, *([9] * len(acts)), 3]
    ws = [rng.normal(size=(o, i)) for i, o in itertools.pairwise(widths)]
    bs = [rng.normal(size=o) for o in widths[1:]]
    return Network.from_arrays(ws, bs, acts, dtype=dtype), ws, bs


@pytest.mark.parametrize("acts", [["tanh"], ["sigmoid"], ["tanh", "relu", "sigmoid"]])
def test_smooth_forward_and_layer_outputs_match_reference(backend, acts):
    net, ws, bs = _smooth_net(acts)
    X = np.random.default_rng(8).normal(scale=2.0, size=(60, 4))
    want = _smooth_reference(ws, bs, acts, X)
    dev_net = net.to("cuda") if backend == "cuda" else net
    Xb = on_backend_device(X, backend)
    outs = [to_numpy(o) for o in dev_net.layer_outputs(Xb, backend=backend)]
    assert len(outs) == len(want)
    for got, ref in zip(outs, want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(to_numpy(dev_net.forward(Xb, backend=backend)), outs[-1])
    np.testing.assert_array_equal(
        to_numpy(dev_net.predict(Xb, backend=backend)), np.argmax(want[-1], axis=1)
    )
    assert not net.is_piecewise_linear


def test_smooth_float32_and_chunks():
    rng = np.random.default_rng(9)
    ws = [rng.normal(size=(4096, 4)), rng.normal(size=(3, 4096)) / 64]
    bs = [rng.normal(size=4096), rng.normal(size=3)]
    net = Network.from_arrays(ws, bs, "sigmoid", dtype=np.float32)
    X = rng.normal(size=(10000, 4))
    # 10000 rows x 4096 float32 = 156 MiB of pre-activations: more than one 64 MiB chunk,
    # and chunking must not change the result
    want = _smooth_reference(ws, bs, ["sigmoid"], X)
    got = net.layer_outputs(X)
    assert all(g.dtype == np.float32 for g in got)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_sigmoid_is_stable_at_extreme_inputs():
    import math
    import warnings

    net = Network.from_arrays([np.array([[1.0]]), np.array([[1.0]])], [np.zeros(1)] * 2, "sigmoid")
    z = np.array([-1000.0, -700.0, -30.0, -1e-8, 0.0, 1e-8, 30.0, 700.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp
        got = net.forward(z[:, None])[:, 0]
    # math.exp of a non-positive argument never overflows; the expected value is formed
    # independently per sign, so tiny outputs are checked to full relative precision.
    want = [1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v)) for v in z]
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    assert got[0] == 0.0 and got[-1] == 1.0


def test_logistic_alias_and_unknown_names():
    net = Network.from_arrays([np.eye(2), np.eye(2)], [np.zeros(2)] * 2, "logistic")
    assert net.activation == ("sigmoid",)
    with pytest.raises(InputError, match=r"activation\[0\]: unknown activation 'softplus'.*tanh"):
        Network.from_arrays([np.eye(2), np.eye(2)], [np.zeros(2)] * 2, "softplus")
    relu = Network.from_arrays([np.eye(2), np.eye(2)], [np.zeros(2)] * 2, "relu")
    assert relu.is_piecewise_linear
    relu.require_piecewise_linear("anything")  # no error


def _refusals():
    from fastmem import intervals, regions

    X = np.random.default_rng(10).normal(size=(3, 4))
    return {
        "activation_patterns": lambda net: net.activation_patterns(X),
        "pattern_hashes": lambda net: net.pattern_hashes(X),
        "n_pattern_bits": lambda net: net.n_pattern_bits,
        "along_segments": lambda net: regions.along_segments(net, X, X + 1.0),
        "distinct_patterns": lambda net: regions.distinct_patterns(net, X),
        "distance_to_boundary": lambda net: regions.distance_to_boundary(net, X),
        "generalization_intervals": lambda net: intervals.generalization_intervals(
            net, X, np.ones_like(X)
        ),
    }


# ------------------------------------------------ values that stop being finite
def _overflowing_net(dtype, backend):
    """2-3-3-2 ReLU net, hidden weights sqrt(max): on inputs of ones layer 0 is finite
    (2 sqrt(max)), layer 1 overflows (6 max)."""
    big = float(np.sqrt(np.finfo(dtype).max))
    ws = [np.full((3, 2), big), np.full((3, 3), big), np.ones((2, 3))]
    bs = [np.zeros(3), np.zeros(3), np.zeros(2)]
    net = Network.from_arrays(ws, bs, dtype=dtype)
    return net.to("cuda") if backend == "cuda" else net


def _entry_points(net, X, backend):
    return {
        "forward": lambda: net.forward(X, backend=backend),
        "predict": lambda: net.predict(X, backend=backend),
        "layer_outputs": lambda: net.layer_outputs(X, backend=backend),
        "activation_patterns": lambda: net.activation_patterns(X, backend=backend),
        "pattern_hashes": lambda: net.pattern_hashes(X, backend=backend),
        "distinct_patterns": lambda: fastmem.regions.distinct_patterns(net, X, backend=backend),
        "distance_to_boundary": lambda: fastmem.regions.distance_to_boundary(
            net, X, backend=backend
        ),
    }


@pytest.mark.parametrize("analysis", list(_refusals()))
@pytest.mark.parametrize(("acts", "layer"), [(["relu", "tanh"], "1 (tanh)"), (["sigmoid"], "0")])
def test_piecewise_linear_analyses_refuse_smooth_layers(analysis, acts, layer):
    net, _, _ = _smooth_net(acts)
    with pytest.raises(InputError, match=rf"^{analysis}: layer {re.escape(layer)}.*not piecewise"):
        _refusals()[analysis](net)


def test_save_load_roundtrips_smooth_activations(tmp_path):
    net, _, _ = _smooth_net(["tanh", "relu", "sigmoid"])
    path = tmp_path / "smooth.npz"
    net.save(path)
    back = Network.load(path)
    assert back.activation == ("tanh", "relu", "sigmoid")
    X = np.random.default_rng(11).normal(size=(20, 4))
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    for a, b in zip(back.layer_outputs(X), net.layer_outputs(X), strict=True):
        np.testing.assert_array_equal(a, b)


def test_perturbed_keeps_smooth_activations():
    net, _, _ = _smooth_net(["tanh", "sigmoid"])
    assert net.perturbed(0.1, rng=0).activation == ("tanh", "sigmoid")


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_inputs_raise_naming_the_first_layer(backend, dtype):
    # finite inputs near the top of the range: 4 x max in layer 0 (weights 1, 4 inputs)
    net = Network.from_arrays([np.ones((3, 4)), np.ones((1, 3))], [np.zeros(3), np.zeros(1)],
                              dtype=dtype)  # fmt: skip
    net = net.to("cuda") if backend == "cuda" else net
    X = on_backend_device(np.full((5, 4), float(np.finfo(dtype).max) / 2, dtype=dtype), backend)
    for name, call in _entry_points(net, X, backend).items():
        with pytest.raises(InputError, match=r"output of layer 0 \(a hidden layer\) overflows"):
            call()
            pytest.fail(name)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_weights_raise_naming_the_layer_that_overflows(backend, dtype):
    net = _overflowing_net(dtype, backend)
    X = on_backend_device(np.ones((7, 2)), backend)
    for name, call in _entry_points(net, X, backend).items():
        with pytest.raises(InputError, match=r"output of layer 1 \(a hidden layer\) overflows"):
            call()
            pytest.fail(name)
    # negative inputs: every ReLU of layer 0 is off, nothing overflows
    X = on_backend_device(-np.ones((7, 2)), backend)
    for call in _entry_points(net, X, backend).values():
        call()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_output_overflow_names_the_output_layer_and_spares_the_patterns(backend):
    # hidden layers finite (~2 and ~6 sqrt(max)), the logits overflow (~18 max)
    big = float(np.sqrt(np.finfo(np.float64).max))
    net = Network.from_arrays([np.full((3, 2), big), np.ones((3, 3)), np.full((2, 3), big)],
                              [np.zeros(3), np.zeros(3), np.zeros(2)])  # fmt: skip
    net = net.to("cuda") if backend == "cuda" else net
    X = on_backend_device(np.ones((4, 2)), backend)
    for call in (net.forward, net.predict, net.layer_outputs):
        with pytest.raises(InputError, match=r"output of layer 2 \(the output layer\) overflows"):
            call(X, backend=backend)
    # the activation patterns need the hidden layers only: all on
    want = np.full((4, 1), 2**6 - 1, dtype=np.uint64)
    np.testing.assert_array_equal(to_numpy(net.activation_patterns(X, backend=backend)), want)
    assert fastmem.regions.distinct_patterns(net, X, backend=backend).n_distinct == 1
