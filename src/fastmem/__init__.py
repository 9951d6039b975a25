"""fastmem: exact, fast measurements of how neural networks memorize and generalize.

The public API is re-exported here. Kernel backends: see :func:`backends`.

Examples
--------
>>> import numpy as np, fastmem
>>> net = fastmem.Network.from_arrays([np.ones((3, 2)), np.ones((1, 3))],
...                                   [np.zeros(3), np.zeros(1)])
>>> net.pattern_hashes(np.zeros((2, 2))).dtype
dtype('uint64')
"""

from __future__ import annotations

from . import bounds, critical, information, intervals, linalg, memorize, plane, regions
from ._backend import BackendInfo, backends, select_backend
from .critical import (
    CertifiedRadius,
    CriticalSamples,
    CSRCurve,
    LossSensitivity,
    certified_radius,
    critical_samples,
    csr_curve,
    loss_sensitivity,
)
from .errors import BackendError, ConditioningError, ConditioningWarning, InputError
from .information import (
    InformationPlane,
    MutualInformation,
    binned_mi,
    information_plane,
    kde_mi,
)
from .intervals import Intervals, generalization_intervals
from .memorize import Construction
from .network import ACTIVATIONS, Network, sawtooth
from .plane import PlaneRegions, plane_regions, plane_through
from .regions import SegmentRegions, along_segments, distance_to_boundary, distinct_patterns

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "BackendError",
    "BackendInfo",
    "CSRCurve",
    "CertifiedRadius",
    "ConditioningError",
    "ConditioningWarning",
    "Construction",
    "CriticalSamples",
    "InformationPlane",
    "InputError",
    "Intervals",
    "LossSensitivity",
    "MutualInformation",
    "Network",
    "PlaneRegions",
    "SegmentRegions",
    "__version__",
    "along_segments",
    "backends",
    "binned_mi",
    "bounds",
    "certified_radius",
    "critical",
    "critical_samples",
    "csr_curve",
    "distance_to_boundary",
    "distinct_patterns",
    "generalization_intervals",
    "information",
    "information_plane",
    "intervals",
    "kde_mi",
    "linalg",
    "loss_sensitivity",
    "memorize",
    "plane",
    "plane_regions",
    "plane_through",
    "regions",
    "sawtooth",
    "select_backend",
]
