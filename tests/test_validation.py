"""Every bad input raises InputError naming the argument."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from fastmem import InputError, Network


def _net():
    rng = np.random.default_rng(0)
    return Network.from_arrays(
        [rng.normal(size=(4, 3)), rng.normal(size=(2, 4))], [np.zeros(4), np.zeros(2)]
    )


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.ones(3), r"X: expected a 2-D array"),
        (np.ones((2, 3, 1)), r"X: expected a 2-D array"),
        (np.ones((2, 5)), r"X: has 5 columns but the network takes 3"),
        (np.ones((0, 3)), r"X: is empty"),
        (np.array([[1.0, np.nan, 0.0]]), r"X: contains 1 NaN or Inf"),
        (np.array([[1.0, np.inf, -np.inf]]), r"X: contains 2 NaN or Inf"),
        (np.array([["a", "b", "c"]]), r"X: must be numeric"),
        (np.ones((2, 3), dtype=complex), r"X: must be numeric"),
        (np.array([[1, None, 2]], dtype=object), r"X: must be numeric"),
    ],
)
@pytest.mark.parametrize("method", ["forward", "activation_patterns", "pattern_hashes", "predict"])
def test_bad_inputs(X, message, method):
    with pytest.raises(InputError, match=message):
        getattr(_net(), method)(X)


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


def test_accepted_inputs_int_float32_noncontiguous_lists():
    net = _net()
    base = net.forward(np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(net.forward(np.arange(6).reshape(2, 3)), base)
    np.testing.assert_allclose(net.forward([[0, 1, 2], [3, 4, 5]]), base)
    np.testing.assert_allclose(net.forward(np.arange(6.0, dtype=np.float32).reshape(2, 3)), base)
    wide = np.zeros((2, 6))
    wide[:, ::2] = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(net.forward(wide[:, ::2]), base)


def test_float64_overflowing_float32_is_rejected():
    net = _net().astype(np.float32)
    with pytest.raises(InputError, match="X: contains 1 NaN or Inf"):
        net.forward(np.array([[1e300, 0.0, 0.0]]))


@pytest.mark.parametrize(
    ("weights", "biases", "message"),
    [
        ([], [], r"weights: at least one layer"),
        (np.ones((2, 2)), [np.zeros(2)], r"weights: must be a sequence"),
        ([np.ones((2, 2))], np.zeros((1, 2)), r"biases: must be a sequence"),
        ([np.ones((2, 2))], [np.zeros(2), np.zeros(2)], r"biases: got 2 bias vectors for 1"),
        ([np.ones(2)], [np.zeros(2)], r"weights\[0\]: expected a 2-D array"),
        ([np.ones((2, 2))], [np.zeros((2, 1))], r"biases\[0\]: expected a 1-D array"),
        ([np.ones((2, 2))], [np.zeros(3)], r"biases\[0\]: has 3 entries but weights\[0\] has 2"),
        (
            [np.ones((4, 2)), np.ones((1, 3))],
            [np.zeros(4), np.zeros(1)],
            r"weights\[1\]: takes 3 inputs but layer 0 has 4 outputs",
        ),
        ([np.array([[np.nan, 1.0]])], [np.zeros(1)], r"weights\[0\]: contains 1 NaN"),
        ([np.ones((1, 2))], [np.array([np.inf])], r"biases\[0\]: contains 1 NaN or Inf"),
        ([np.ones((0, 2))], [np.zeros(0)], r"weights\[0\]: is empty"),
        ([np.array([["x", "y"]])], [np.zeros(1)], r"weights\[0\]: must be numeric"),
    ],
)
def test_bad_layers(weights, biases, message):
    with pytest.raises(InputError, match=message):
        Network.from_arrays(weights, biases)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "softplus"}, r"activation\[0\]: unknown activation 'softplus'"),
        ({"activation": ["relu"]}, r"activation: got 1 values for 2 hidden layer"),
        ({"activation": ["relu", 3]}, r"activation\[1\]: invalid value 3"),
        ({"negative_slope": float("nan")}, r"negative_slope\[0\]: must be finite"),
        ({"negative_slope": [0.1]}, r"negative_slope: got 1 values"),
        ({"dtype": np.int32}, r"dtype: must be float32 or float64"),
        ({"dtype": "nonsense"}, r"dtype"),
    ],
)
def test_bad_activation_arguments(kwargs, message):
    ws = [np.ones((3, 2)), np.ones((3, 3)), np.ones((1, 3))]
    bs = [np.zeros(3), np.zeros(3), np.zeros(1)]
    with pytest.raises(InputError, match=message):
        Network.from_arrays(ws, bs, **kwargs)


def test_mixed_devices_are_rejected(monkeypatch):
    # A stand-in CuPy module: detection goes through sys.modules, so the
    # mixing checks can be exercised without a GPU.
    fake = types.ModuleType("cupy")

    class ndarray(np.ndarray):  # mirrors cupy.ndarray
        pass

    fake.ndarray = ndarray
    monkeypatch.setitem(sys.modules, "cupy", fake)
    gpu_w = np.ones((2, 2)).view(ndarray)
    with pytest.raises(InputError, match=r"different devices \(weights\[0\] on cuda, weights\[1\]"):
        Network.from_arrays([gpu_w, np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    with pytest.raises(InputError, match=r"X: lives on cuda but the network is on cpu"):
        _net().forward(np.ones((2, 3)).view(ndarray))
