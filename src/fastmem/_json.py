"""The one JSON policy of every result's ``to_dict`` (and of the study's files).

NumPy (and CuPy) arrays become nested lists, NumPy scalars Python scalars, tuples lists,
mapping keys strings, and every non-finite float (NaN, +Inf, -Inf) ``None``, so that
``json.dumps(x, allow_nan=False)`` accepts the result and any JSON reader can read it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["jsonable"]


def jsonable(v: Any) -> Any:
    """A JSON-able copy of ``v``: arrays to lists, non-finite floats to ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem._json import jsonable
    >>> jsonable({"a": np.array([1.0, np.nan, np.inf]), 2: (np.int64(3), np.bool_(True))})
    {'a': [1.0, None, None], '2': [3, True]}
    """
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "__cuda_array_interface__") and hasattr(v, "get"):
        v = v.get()  # CuPy array -> NumPy
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "biu":
            return v.tolist()  # uint64 hashes stay exact Python ints
        if v.dtype.kind == "f" and bool(np.isfinite(v).all()):
            return v.tolist()
        return jsonable(v.tolist())
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.generic):
        return v.item()
    return v
