"""Each activation kind's value and slope, at and around its kinks, in every home.

The C++/CUDA kernels (cpp/include/fastmem/activations.hpp, reached through
``crit_activate``), the Numba kernels (fastmem._numba.activations) and the Python table
(fastmem._kinds) against a plain NumPy reference written here and against torch autograd.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import AVAILABLE_BACKENDS
from support import on_backend_device, to_numpy

import fastmem
from fastmem import _kinds
from fastmem._backend import select_backend

# The kinks (0, -1, +1, 6), their float neighbours, signed zeros and points on each branch.
_Z = np.array(
    [
        -3.0,
        -1.0 - 2**-52,
        -1.0,
        -1.0 + 2**-53,
        -0.5,
        -(2**-60),
        -0.0,
        0.0,
        2**-60,
        0.5,
        1.0 - 2**-53,
        1.0,
        1.0 + 2**-52,
        3.0,
        6.0 - 2**-50,
        6.0,
        6.0 + 2**-49,
        7.5,
    ]
)
_SLOPE = 0.125


def _reference(z: np.ndarray, name: str, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """Value and derivative, written from the definitions (PyTorch's kink convention)."""
    value = np.empty_like(z)
    deriv = np.empty_like(z)
    for i, v in enumerate(z):
        if name == "relu":
            value[i], deriv[i] = (v, 1.0) if v > 0 else (0.0, 0.0)
        elif name == "leaky_relu":
            value[i], deriv[i] = (v, 1.0) if v > 0 else (slope * v, slope)
        elif name in ("hardtanh", "relu6"):
            low, high = (-1.0, 1.0) if name == "hardtanh" else (0.0, 6.0)
            if v < low:
                value[i], deriv[i] = low, 0.0
            elif v > high:
                value[i], deriv[i] = high, 0.0
            else:
                # at exactly low or high the value is v, the derivative 0 (autograd's choice)
                value[i], deriv[i] = v, (1.0 if low < v < high else 0.0)
        else:  # threshold: Heaviside 1[z >= 0], derivative 0 everywhere
            value[i], deriv[i] = (1.0 if v >= 0 else 0.0), 0.0
    return value, deriv


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(_kinds.ACTIVATIONS))
@pytest.mark.parametrize("backend_name", AVAILABLE_BACKENDS)
def test_kernel_value_and_slope_match_reference(backend_name, name, dtype):
    z = _Z.astype(dtype)
    be = select_backend("cuda" if backend_name == "cuda" else "cpu", backend=backend_name)
    code = _kinds.ACTIVATIONS[name]
    zz = on_backend_device(np.ascontiguousarray(np.tile(z, (3, 1))), backend_name)
    d = be.xp.empty_like(zz)
    be.kernels.crit_activate(zz, d, code, _SLOPE)
    value, deriv = _reference(z.astype(np.float64), name, _SLOPE)
    for row in range(3):
        np.testing.assert_array_equal(to_numpy(zz)[row], value.astype(dtype))
        np.testing.assert_array_equal(to_numpy(d)[row], deriv.astype(dtype))
    # the activation-only kernel gives the same values
    zz2 = on_backend_device(np.ascontiguousarray(z[None, :]), backend_name)
    be.kernels.apply_activation(zz2, code, _SLOPE)
    np.testing.assert_array_equal(to_numpy(zz2)[0], value.astype(dtype))


@pytest.mark.parametrize("name", list(_kinds.ACTIVATIONS))
def test_python_table_slope_matches_reference(name):
    for dtype in (np.float64, np.float32):
        z = _Z.astype(dtype)
        got = _kinds.activation_slope(z, _kinds.ACTIVATIONS[name], _SLOPE, np)
        assert got.dtype == dtype
        want = _reference(z.astype(np.float64), name, _SLOPE)[1]
        np.testing.assert_array_equal(got, want.astype(dtype))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "hardtanh", "relu6"])
def test_reference_is_torch_autograd(name):
    torch = pytest.importorskip("torch", reason="torch is optional: the autograd check needs it")
    f = {
        "relu": torch.nn.functional.relu,
        "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, _SLOPE),
        "hardtanh": torch.nn.functional.hardtanh,
        "relu6": torch.nn.functional.relu6,
    }[name]
    t = torch.tensor(_Z, dtype=torch.float64, requires_grad=True)
    out = f(t)
    out.sum().backward()
    value, deriv = _reference(_Z, name, _SLOPE)
    np.testing.assert_array_equal(out.detach().numpy(), value)
    np.testing.assert_array_equal(t.grad.numpy(), deriv)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "hardtanh", "relu6"])
def test_loss_gradient_at_kinks_matches_torch(name, backend):
    """End to end: the input gradient of the loss with pre-activations exactly at kinks."""
    torch = pytest.importorskip("torch", reason="torch is optional: the autograd check needs it")
    kinks = {"relu": [0.0], "leaky_relu": [0.0], "hardtanh": [-1.0, 1.0], "relu6": [0.0, 6.0]}[name]
    d = 4
    rng = np.random.default_rng(3)
    w2 = rng.normal(size=(3, d))
    # Identity first layer with zero bias: the pre-activations are the inputs themselves.
    X = np.array([[kinks[0], kinks[-1], 0.25, -0.75], [kinks[-1], -2.0, kinks[0], 0.5]])
    y = np.array([0, 2])
    net = fastmem.Network.from_arrays(
        [np.eye(d), w2], [np.zeros(d), np.zeros(3)], name, negative_slope=_SLOPE
    )
    got = fastmem.loss_sensitivity(
        net, on_backend_device(X, backend), on_backend_device(y, backend), norm=1, backend=backend
    )
    model = torch.nn.Sequential(
        torch.nn.Linear(d, d),
        {
            "relu": torch.nn.ReLU(),
            "leaky_relu": torch.nn.LeakyReLU(_SLOPE),
            "hardtanh": torch.nn.Hardtanh(),
            "relu6": torch.nn.ReLU6(),
        }[name],
        torch.nn.Linear(d, 3),
    ).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(d, dtype=torch.float64))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.from_numpy(w2))
        model[2].bias.zero_()
    x = torch.tensor(X, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(y), reduction="sum")
    loss.backward()
    want = x.grad.abs().sum(dim=1).numpy()
    np.testing.assert_allclose(to_numpy(got.values), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", sorted(_kinds.ACTIVATIONS.values()))
def test_snap_thresholds_kernels_match_the_reference(kind):
    """snap_thresholds (activations.hpp's snap_row, its Numba twin) against the plain NumPy
    statement in fastmem._kinds, entries near and on the band's edge included."""
    from fastmem._kinds import _gamma64, snap_reference, thresholds

    rng = np.random.default_rng(kind)
    rows, fan_in, width = 300, 7, 33
    h = rng.normal(size=(rows, fan_in + 1))  # a last column the kernel must not read
    h[:, -1] = 1e300
    w_abs = np.abs(rng.normal(size=width)) * 3
    b_abs = np.abs(rng.normal(size=width))
    gamma = _gamma64(fan_in)
    band = gamma * (np.abs(h[:, :fan_in]).max(axis=1)[:, None] * w_abs + b_abs)
    theta = np.array(thresholds(kind))[rng.integers(0, len(thresholds(kind)), (rows, width))]
    # on the threshold, inside, on the edge, just outside, far, NaN and inf
    scale = rng.choice([0.0, 0.5, 1.0, 1.0 + 1e-9, 3.0, 1e6], size=(rows, width))
    z = theta + rng.choice([-1.0, 1.0], size=(rows, width)) * scale * band
    z[0, 0], z[1, 1] = np.nan, np.inf
    w_abs[2] = 1e308  # its band overflows: never snapped, inf entries included
    z[2:5, 2] = np.inf
    ref = z.copy()
    snap_reference(ref, h[:, :fan_in], w_abs, b_abs, kind)
    assert (ref == theta).sum() > rows * width // 4  # the case snaps a good share
    for name, info in fastmem.backends().items():
        if not info.available or name == "cuda":
            continue
        k = fastmem.select_backend("cpu", name).kernels
        got = z.copy()
        k.snap_thresholds(got, np.ascontiguousarray(h), fan_in, w_abs, b_abs, kind, gamma)
        np.testing.assert_array_equal(got, ref, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", sorted(_kinds.ACTIVATIONS.values()))
@pytest.mark.parametrize("width", [1, 31, 32, 33, 64, 65, 200])
def test_pack_and_activate_kernel_agrees_across_backends(backend, dtype, kind, width):
    """pack_and_activate (64 pattern bits a block: states into bytes, packed into a word,
    hard-tanh's low and high bits interleaved) equals Numba's and the documented layout
    (tests/reference.py) bit for bit: bit offsets inside a word, at a word's end and
    straddling two words, bits ORed into codes already set, kinks and signed zeros."""
    import reference

    rng = np.random.default_rng(100 * kind + width)
    rows = 9
    name = {v: k for k, v in _kinds.ACTIVATIONS.items()}[kind]
    z = rng.normal(scale=2.0, size=(rows, width)).astype(dtype)
    edge = [0.0, -0.0, 1.0, -1.0, np.nan, 1e-30, -1e-30, np.inf, -np.inf, 6.0]
    z.flat[: min(z.size, len(edge))] = edge[: z.size]
    s = dtype(0.1)
    want_z = {  # activations.hpp's table (NaN: relu 0, the others NaN)
        0: np.where(z > 0, z, dtype(0)),
        1: np.where(z > 0, z, s * z),
        2: np.where(z < -1, dtype(-1), np.where(z > 1, dtype(1), z)),
        3: np.where(z >= 0, dtype(1), dtype(0)),
        4: np.where(z < 0, dtype(0), np.where(z > 6, dtype(6), z)),
    }[kind].astype(dtype)
    bits = reference.states(z, name)
    for offset in (0, 5, 63, 64, 127):
        n_words = -(-(offset + bits.shape[1]) // 64)
        prior = rng.integers(0, 2**63, size=(rows, n_words), dtype=np.uint64)
        prior &= rng.integers(0, 2**63, size=prior.shape, dtype=np.uint64)  # some bits set
        padded = np.zeros((rows, 64 * n_words), dtype=bool)
        padded[:, offset : offset + bits.shape[1]] = bits
        packed = np.packbits(padded, axis=1, bitorder="little").view("<u8").astype(np.uint64)
        want_codes = prior | packed
        outs = {}
        for b in dict.fromkeys(("numba", backend)):
            k = select_backend("cuda" if b == "cuda" else "cpu", b).kernels
            zz = on_backend_device(z.copy(), b)
            codes = on_backend_device(prior.copy(), b)
            k.pack_and_activate(zz, codes, offset, kind, 0.1)
            outs[b] = (to_numpy(zz), to_numpy(codes))
        for got_z, got_codes in outs.values():
            np.testing.assert_array_equal(got_codes, want_codes, err_msg=f"offset {offset}")
            np.testing.assert_array_equal(got_z, want_z)
            assert np.array_equal(np.signbit(got_z), np.signbit(want_z))
        np.testing.assert_array_equal(outs["numba"][0], outs[backend][0])
        assert np.array_equal(np.signbit(outs["numba"][0]), np.signbit(outs[backend][0]))
