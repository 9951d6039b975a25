"""Explicit memorizing networks, verified, with their conditioning and weight norms.

Constructions (each returns a :class:`Construction` whose ``network`` is a
:class:`fastmem.Network` reproducing the labels on the training points):

:func:`two_layer`
    Zhang, Bengio, Hardt, Recht & Vinyals, "Understanding deep learning
    requires rethinking generalization" (ICLR 2017), Theorem 1: a two-layer
    ReLU network with n hidden neurons, 2n + d weights.
:func:`deep`
    The depth-k version (width O(n/k)) of the same interpolant.
:func:`hardtanh_three_layer`
    Yun, Sra & Jadbabaie, "Small ReLU networks are powerful memorizers"
    (NeurIPS 2019): a three-layer hard-tanh network of widths p and q
    memorizing n <= p*q points.
:func:`random_threshold`
    Dirksen, Finke & Genzel, "Memorization with neural nets: going beyond the
    worst case": a random threshold layer, a second layer built from the
    negative class by the authors' randomized covering (or greedy set cover);
    :func:`interpolation_grid` computes their interpolation-probability heatmap.
:func:`min_norm`
    The minimum-norm linear interpolant through the Gram system ``K alpha = y``.

Layout: :mod:`._zhang` (two_layer, deep), :mod:`._yun` (hardtanh_three_layer),
:mod:`._dirksen` (random_threshold), :mod:`._min_norm`, :mod:`._base`
(:class:`Construction`, input checks), :mod:`._norms`, :mod:`._verify`.

Examples
--------
>>> import numpy as np
>>> from fastmem import memorize
>>> rng = np.random.default_rng(0)
>>> X, y = rng.normal(size=(50, 4)), rng.choice([-1.0, 1.0], size=50)
>>> res = memorize.two_layer(X, y, rng=0)
>>> bool(np.all(np.sign(res.network.forward(X)[:, 0]) == y))
True
"""

from __future__ import annotations

from ._base import SCALE_RANGE, Construction
from ._dirksen import MAX_RESTARTS, InterpolationGrid, interpolation_grid, random_threshold
from ._min_norm import min_norm
from ._norms import weight_norms
from ._yun import hardtanh_three_layer
from ._zhang import deep, two_layer

__all__ = [
    "MAX_RESTARTS",
    "SCALE_RANGE",
    "Construction",
    "InterpolationGrid",
    "deep",
    "hardtanh_three_layer",
    "interpolation_grid",
    "min_norm",
    "random_threshold",
    "two_layer",
    "weight_norms",
]
