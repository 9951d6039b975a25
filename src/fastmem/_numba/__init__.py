"""Numba kernels: the same names, arguments and results as ``fastmem._core``.

Used when fastmem was installed without the C++ extension, or when
``FASTMEM_BACKEND=numba``. Each public function checks the contract the
Python layer promises (dtype, C order, shapes) exactly as the compiled
bindings do, then calls a ``parallel=True`` JIT kernel.
"""

from __future__ import annotations

import numba

from .information import bin_codes as bin_codes
from .information import bin_keys as bin_keys
from .information import bin_rows_equal as bin_rows_equal
from .information import kde_tile as kde_tile
from .memorize import cover_gains as cover_gains
from .memorize import cover_margins as cover_margins
from .memorize import cover_matrix as cover_matrix
from .memorize import linear_recurrence as linear_recurrence
from .memorize import relu_sum_eval as relu_sum_eval
from .patterns import apply_activation, hash_patterns, pack_and_activate
from .regions import collect_crossings as collect_crossings
from .regions import count_crossings as count_crossings
from .regions import emit_pieces as emit_pieces
from .regions import next_preactivations as next_preactivations

numba_version = numba.__version__

__all__ = [
    "apply_activation",
    "collect_crossings",
    "count_crossings",
    "cover_gains",
    "cover_margins",
    "cover_matrix",
    "emit_pieces",
    "hash_patterns",
    "linear_recurrence",
    "next_preactivations",
    "numba_version",
    "pack_and_activate",
    "relu_sum_eval",
]
