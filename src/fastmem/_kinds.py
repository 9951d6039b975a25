"""Activation kinds: the Python home of the codes the kernels use.

The C++/CUDA home is ``enum ActivationKind`` and ``bits_per_neuron`` in
cpp/include/fastmem/patterns.hpp; ``fastmem._core.activation_kinds()`` reports that
table, and tests/test_kernel_parity.py checks that the two agree.
"""

from __future__ import annotations

RELU, LEAKY_RELU, HARDTANH, THRESHOLD = 0, 1, 2, 3

#: Piecewise-linear hidden activations and their kernel codes.
ACTIVATIONS = {"relu": RELU, "leaky_relu": LEAKY_RELU, "hardtanh": HARDTANH, "threshold": THRESHOLD}


def bits_per_neuron(kind: int) -> int:
    """Pattern bits one neuron of activation code ``kind`` owns (hard-tanh: two states)."""
    return 2 if kind == HARDTANH else 1
