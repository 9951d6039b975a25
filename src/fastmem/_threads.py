"""CPU threads: who owns the cores while fastmem's kernels and BLAS GEMMs alternate.

Kept apart from backend choice (:mod:`fastmem._backend`): limiting BLAS to one thread
during the segment engine and the critical-sample search, and fastmem's own row-parallel
GEMM whose fixed row blocks make every CPU backend round identically.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

# imported with fastmem, not on the first call (~5 ms: the first call is timed by users)
from threadpoolctl import ThreadpoolController

from ._backend import Backend


@contextlib.contextmanager
def kernels_own_the_cores(backend: Backend) -> Iterator[None]:
    """Limit the BLAS library to one thread while GEMMs alternate with CPU kernels.

    OpenBLAS's idle threads spin (about 2**28 cycles) after every GEMM. When
    short GEMMs alternate with fastmem's own multi-threaded kernels, those
    spinning threads take the cores from the kernels, which then run no
    faster on two threads than on one. Giving the cores to the kernels is the
    faster trade where the kernels do much of the work (the segment engine).
    The limit is lifted on exit; CUDA backends are unaffected.
    """
    if backend.device != "cpu":
        yield
        return
    global _BLAS_CONTROLLER, _BLAS_CONTROLLER_MODULES
    if _BLAS_CONTROLLER is None or _BLAS_CONTROLLER_MODULES != len(sys.modules):
        # Scan the loaded libraries again only after new imports (which may have loaded
        # another BLAS, e.g. SciPy's): threadpool_limits rescans on every call, ~1 ms.
        _BLAS_CONTROLLER = ThreadpoolController()
        _BLAS_CONTROLLER_MODULES = len(sys.modules)
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        yield


_BLAS_CONTROLLER: Any = None
_BLAS_CONTROLLER_MODULES = -1


_GEMM_POOL: Any = None
# Fixed row blocks: the blocking (hence every rounding) depends on the number of rows
# only, never on how many threads run, so all CPU backends see identical products.
_GEMM_BLOCK_ROWS = 4096


def cpu_threads(backend: Backend) -> int:
    """Threads the backend's CPU kernels use (OMP_NUM_THREADS / NUMBA_NUM_THREADS)."""
    if backend.name == "cpp":
        return int(backend.kernels.max_threads())
    if backend.name == "numba":
        import numba

        return int(numba.get_num_threads())
    return 1


def kernels_callable_side_by_side(backend: Backend) -> bool:
    """Whether two Python threads may call the backend's CPU kernels at the same time.

    The C++ kernels may (each OpenMP call has its own team). Numba's may with its omp or
    tbb threading layer, never with workqueue (its fallback where neither is installed,
    which aborts the process on concurrent use). Numba picks its layer on the first
    parallel call: before that, False.
    """
    if backend.device != "cpu":
        return False
    if backend.name == "cpp":
        return True
    import numba

    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:  # no parallel function has run yet
        return False


@contextlib.contextmanager
def kernel_threads(backend: Backend, n: int) -> Iterator[None]:
    """Run the CPU kernels that this thread calls on ``n`` threads, then restore.

    The setting belongs to the calling thread only (OpenMP's and Numba's thread counts
    are per thread), so threads that process different chunks side by side can each
    keep their kernels on one core. No effect on CUDA backends.
    """
    if backend.device != "cpu":
        yield
        return
    if backend.name == "cpp":
        k = backend.kernels
        old = int(k.max_threads())
        k.set_num_threads(n)
        try:
            yield
        finally:
            k.set_num_threads(old)
        return
    import numba

    old = int(numba.get_num_threads())
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(old)


_TASK_POOL: Any = None


def run_tasks(be: Backend, n_tasks: int, task: Callable[[int], None], threads: int) -> None:
    """Run ``task(0) .. task(n_tasks - 1)`` on ``threads`` threads, each kernel on one core.

    The calling thread and ``threads - 1`` workers of a pool kept from call to call take
    the next task in turn (the slowest thread, e.g. one whose core another process holds,
    simply takes fewer), each with its kernels on one thread (:func:`kernel_threads`).
    Between tasks and after the last the workers wait asleep on the pool's queue: no
    OpenMP team is formed, so no idle team member spin-waits after a parallel region
    against the caller's serial NumPy work (libgomp's default wait policy spins for some
    milliseconds), and a worker woken for the next batch is not behind in the scheduler's
    queue. Tasks must write disjoint outputs; the results then cannot depend on
    ``threads``. The first exception of any task is raised here after every thread has
    stopped (no task starts after it). ``threads < 2``: the tasks in order on the calling
    thread, its kernels as they are.
    """
    global _TASK_POOL
    if threads < 2 or n_tasks < 2:
        for i in range(n_tasks):
            task(i)
        return
    helpers = min(threads, n_tasks) - 1
    if _TASK_POOL is None or _TASK_POOL._max_workers < helpers:
        from concurrent.futures import ThreadPoolExecutor

        _TASK_POOL = ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="fastmem-task")
    order = itertools.count()  # next() on a count is atomic under the GIL
    failed: list[BaseException] = []

    def work() -> None:
        with kernel_threads(be, 1):
            while not failed:
                i = next(order)
                if i >= n_tasks:
                    return
                try:
                    task(i)
                except BaseException as exc:  # re-raised by the caller below
                    failed.append(exc)
                    return

    jobs = [_TASK_POOL.submit(work) for _ in range(helpers)]
    try:
        work()
    finally:
        for job in jobs:  # one that never started has nothing to do (the tasks are taken)
            if not job.cancel():
                job.exception()
    if failed:
        raise failed[0]


def row_parallel_matmul(
    H: Any, M: Any, backend: Backend, out: Any = None, *, threads: int | None = None
) -> Any:
    """``H @ M`` with the rows of ``H`` split over the kernels' threads.

    Used under :func:`kernels_own_the_cores`, where BLAS runs single-threaded:
    NumPy releases the GIL in matmul, so blocks of rows multiply in parallel
    without BLAS's own (spinning) thread pool. ``out``: where to write the
    product (C-contiguous, ``(H.shape[0], M.shape[1])``); a new array if None.
    ``threads``: how many threads may multiply (default: the kernels' threads); the
    row blocks, hence the result, do not depend on it.
    Overflow raises no warning (on any thread): the caller checks the product.
    """
    global _GEMM_POOL
    n = H.shape[0]
    if backend.device != "cpu" or n <= _GEMM_BLOCK_ROWS:
        if out is None:
            out = backend.xp.empty((n, M.shape[1]), dtype=np.result_type(H, M))
        _matmul_quiet(backend.xp, H, M, out)
        return out
    if out is None:
        out = np.empty((n, M.shape[1]), dtype=np.result_type(H, M))
    blocks = list(itertools.pairwise([*range(0, n, _GEMM_BLOCK_ROWS), n]))
    threads = cpu_threads(backend) if threads is None else threads
    if threads < 2:
        for lo, hi in blocks:
            _matmul_quiet(np, H[lo:hi], M, out[lo:hi])
        return out
    if _GEMM_POOL is None or _GEMM_POOL._max_workers < threads:
        from concurrent.futures import ThreadPoolExecutor

        _GEMM_POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fastmem-gemm")
    jobs = [_GEMM_POOL.submit(_matmul_quiet, np, H[lo:hi], M, out[lo:hi]) for lo, hi in blocks]
    for job in jobs:
        job.result()
    return out


def _matmul_quiet(xp: Any, H: Any, M: Any, out: Any) -> None:
    # np.errstate is per thread (a context variable): set it where the product runs
    with np.errstate(over="ignore", invalid="ignore"):
        xp.matmul(H, M, out=out)


# Work arrays kept per thread between calls (Scratch) up to this size each.
SCRATCH_KEEP_BYTES = 8 << 20


class Scratch:
    """Work arrays of one pass, by name: on the CPU each thread keeps them from call to
    call (fresh arrays of a few hundred kB are new pages for the allocator each time, and
    their page faults cost more than a small layer's products); on a GPU, new arrays
    (CuPy's pool reuses its memory)."""

    _local = threading.local()

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.keep = xp is np
        if self.keep and not hasattr(self._local, "arrays"):
            self._local.arrays = {}

    def get(self, name: Any, shape: tuple[int, ...], dtype: Any = np.float64) -> Any:
        size = math.prod(shape)
        if not self.keep or size * np.dtype(dtype).itemsize > SCRATCH_KEEP_BYTES:
            # (a huge layer's page faults are small beside its products; not kept)
            return self.xp.empty(shape, dtype=dtype)
        arrays = self._local.arrays
        key = (name, np.dtype(dtype).str)
        flat = arrays.get(key)
        if flat is None or flat.size < size:
            flat = arrays[key] = np.empty(size, dtype=dtype)
        return flat[:size].reshape(shape)
