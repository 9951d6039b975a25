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

from . import linalg, memorize, regions
from ._backend import BackendInfo, backends, select_backend
from .errors import BackendError, ConditioningError, ConditioningWarning, InputError
from .network import ACTIVATIONS, Network
from .network import sawtooth as sawtooth

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "BackendError",
    "BackendInfo",
    "ConditioningError",
    "ConditioningWarning",
    "InputError",
    "Network",
    "__version__",
    "backends",
    "bounds",
    "intervals",
    "linalg",
    "memorize",
    "regions",
    "sawtooth",
    "select_backend",
]
