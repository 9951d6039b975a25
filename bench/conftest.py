"""Shared setup of the benchmarks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastmem


def make_he_relu_net(widths, rng: np.random.Generator):
    """A ReLU network with He-initialised weights and small biases, drawn from ``rng``.

    Returns ``(net, weights, biases)``: the fastmem Network and its plain arrays (the
    baselines compute with the arrays).
    """
    weights = [
        rng.normal(scale=np.sqrt(2.0 / i), size=(o, i)) for i, o in itertools.pairwise(widths)
    ]
    biases = [rng.normal(scale=0.01, size=o) for o in widths[1:]]
    return fastmem.Network.from_arrays(weights, biases, "relu"), weights, biases


@pytest.fixture(scope="session")
def he_relu_net():
    """:func:`make_he_relu_net`, for the benchmark modules' fixtures."""
    return make_he_relu_net
