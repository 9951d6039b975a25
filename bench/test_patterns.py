"""pattern_hashes on 100k x 784 inputs through a 784-512-512-10 ReLU network:
fastmem (cpp, numba) side by side with the NumPy way (matmul + packbits + hashing).

Run:  python -m pytest bench/test_patterns.py --benchmark-columns=min,mean,rounds
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmem

N_ROWS = 100_000
WIDTHS = (784, 512, 512, 10)
IV = np.uint64(0x6A09E667F3BCC909)


@pytest.fixture(scope="module")
def case(he_relu_net):
    rng = np.random.default_rng(0)
    net, weights, biases = he_relu_net(WIDTHS, rng)
    X = rng.random((N_ROWS, WIDTHS[0]))
    return net, weights, biases, X


def _mix64(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def numpy_pattern_hashes(weights, biases, X, chunk=16384):
    """What users write today: matmul, threshold, packbits, a vectorised hash."""
    out = np.empty(X.shape[0], dtype=np.uint64)
    for lo in range(0, X.shape[0], chunk):
        h = X[lo : lo + chunk]
        bits = []
        for W, b in zip(weights[:-1], biases[:-1], strict=True):
            z = h @ W.T + b
            bits.append(z > 0)
            h = np.maximum(z, 0)
        allbits = np.concatenate(bits, axis=1)
        pad = (-allbits.shape[1]) % 64
        allbits = np.pad(allbits, ((0, 0), (0, pad)))
        words = np.packbits(allbits, axis=1, bitorder="little").view("<u8")
        hashed = np.full(words.shape[0], IV, dtype=np.uint64)
        for w in words.T:
            hashed = _mix64(hashed ^ w)
        out[lo : lo + chunk] = hashed
    return out


@pytest.mark.parametrize("impl", ["fastmem-cpp", "fastmem-numba", "numpy"])
def test_pattern_hashes(benchmark, case, impl):
    net, weights, biases, X = case
    benchmark.group = "pattern_hashes 100k x 784-512-512-10"
    if impl == "numpy":
        fn = lambda: numpy_pattern_hashes(weights, biases, X)  # noqa: E731
    else:
        backend = impl.split("-")[1]
        if not fastmem.backends()[backend].available:
            pytest.skip(f"{backend} unavailable")
        net.pattern_hashes(X[:10], backend=backend)  # JIT warm-up outside the timing
        fn = lambda: net.pattern_hashes(X, backend=backend)  # noqa: E731
    result = benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)
    reference = numpy_pattern_hashes(weights, biases, X[:2000])
    np.testing.assert_array_equal(result[:2000], reference)
