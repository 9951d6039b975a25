"""Numba kernels: the same names, arguments and results as ``fastmem._core``.

Used when fastmem was installed without the C++ extension, or when
``FASTMEM_BACKEND=numba``. Each public function checks the contract the
Python layer promises (dtype, C order, shapes) exactly as the compiled
bindings do, then calls a ``parallel=True`` JIT kernel.
"""

from __future__ import annotations

import numba

from .patterns import apply_activation, hash_patterns, pack_and_activate

numba_version = numba.__version__

__all__ = ["apply_activation", "hash_patterns", "numba_version", "pack_and_activate"]
