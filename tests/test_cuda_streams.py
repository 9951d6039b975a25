"""The CUDA kernels' stream and device handling (cpp/cuda/bind.hpp, ``Launch``).

Every fastmem._cuda call launches on the stream its arrays name in
``__cuda_array_interface__`` (CuPy's current stream), runs on the device that holds
them, and never waits on the host. The first tests need only the built module (they
run wherever nvcc built it, GPU or not); the rest need a CUDA device and CuPy.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import fastmem

CUDA_INFO = fastmem.backends()["cuda"]
# The CPU reference backend, named explicitly: FASTMEM_BACKEND=cuda must not redirect it.
CPU = "cpp" if fastmem.backends()["cpp"].available else "numba"


def _cuda_module():
    try:
        return importlib.import_module("fastmem._cuda")
    except ImportError:
        pytest.skip("fastmem._cuda not built here (no nvcc at build time)")


class _Interface:
    """An object exposing a hand-written ``__cuda_array_interface__``."""

    def __init__(self, ptr: int, shape: tuple[int, ...], typestr: str, **extra):
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": typestr,
            "data": (ptr, False),
            "version": 3,
            **extra,
        }


def test_stream_zero_is_rejected_before_any_launch():
    cuda = _cuda_module()
    codes = _Interface(0, (0, 1), "<u8", stream=0)
    out = _Interface(0, (0,), "<u8")
    with pytest.raises(ValueError, match="codes: __cuda_array_interface__ stream 0 is invalid"):
        cuda.hash_patterns(codes, out)


def test_empty_arrays_need_no_device():
    cuda = _cuda_module()
    codes = _Interface(0, (0, 2), "<u8", stream=1)
    out = _Interface(0, (0,), "<u8", stream=1)
    assert cuda.hash_patterns(codes, out) is None  # nothing to do: no CUDA call at all


def test_host_memory_is_refused_not_dereferenced():
    cuda = _cuda_module()
    host_codes = np.arange(12, dtype=np.uint64).reshape(4, 3)
    host_out = np.zeros(4, dtype=np.uint64)
    codes = _Interface(host_codes.ctypes.data, host_codes.shape, "<u8")
    out = _Interface(host_out.ctypes.data, host_out.shape, "<u8")
    if CUDA_INFO.available:
        with pytest.raises(ValueError, match="codes is not CUDA device memory"):
            cuda.hash_patterns(codes, out)
    else:  # no device: the runtime's own error, raised before any launch
        with pytest.raises(RuntimeError, match=r"fastmem\._cuda: "):
            cuda.hash_patterns(codes, out)
    np.testing.assert_array_equal(host_out, 0)


gpu = pytest.mark.skipif(not CUDA_INFO.available, reason=f"cuda: {CUDA_INFO.reason}")


def _late_copy():
    """A CuPy kernel that spins for ``cycles`` clock ticks, then copies src to dst: work
    still pending on its stream when the next launch is queued."""
    import cupy

    return cupy.RawKernel(
        r"""
        extern "C" __global__ void late_copy(unsigned long long* dst,
                                             const unsigned long long* src, long long n,
                                             long long cycles) {
          const long long start = clock64();
          while (clock64() - start < cycles) {
          }
          for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
               i += (long long)gridDim.x * blockDim.x)
            dst[i] = src[i];
        }
        """,
        "late_copy",
    )


def _cpu_hashes(codes: np.ndarray) -> np.ndarray:
    out = np.empty(codes.shape[0], dtype=np.uint64)
    fastmem.select_backend("cpu", backend=CPU).kernels.hash_patterns(codes, out)
    return out


@pytest.mark.gpu
@gpu
def test_launch_follows_the_arrays_stream():
    """On a non-blocking stream whose last kernel has not finished, a launch on any other
    stream would read the codes before they are written."""
    import cupy

    cuda = _cuda_module()
    rng = np.random.default_rng(11)
    want = rng.integers(0, 2**63, size=(4096, 3), dtype=np.uint64)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        src = cupy.asarray(want)
        codes = cupy.zeros_like(src)
        out = cupy.zeros(want.shape[0], dtype=cupy.uint64)
        stream.synchronize()
        _late_copy()((64,), (128,), (codes, src, np.int64(codes.size), np.int64(200_000_000)))
        cuda.hash_patterns(codes, out)  # queued behind late_copy on `stream`
        got = out.get()
    np.testing.assert_array_equal(got, _cpu_hashes(want))


@pytest.mark.gpu
@gpu
def test_public_api_under_a_user_stream_matches_cpu():
    import cupy

    rng = np.random.default_rng(12)
    net = fastmem.Network.from_arrays(
        [rng.normal(size=(40, 6)), rng.normal(size=(3, 40))],
        [rng.normal(size=40), rng.normal(size=3)],
        "relu",
    )
    X = rng.normal(size=(3000, 6))
    with cupy.cuda.Stream(non_blocking=True):
        got = net.pattern_hashes(cupy.asarray(X)).get()
    np.testing.assert_array_equal(got, net.pattern_hashes(X, backend=CPU))


def _two_devices():
    import cupy

    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA devices")


@pytest.mark.gpu
@gpu
def test_device_guard_runs_on_the_arrays_device():
    import cupy

    _two_devices()
    cuda = _cuda_module()
    want = np.random.default_rng(13).integers(0, 2**63, size=(500, 2), dtype=np.uint64)
    with cupy.cuda.Device(1):
        codes = cupy.asarray(want)
        out = cupy.zeros(want.shape[0], dtype=cupy.uint64)
    with cupy.cuda.Device(0):  # the legacy default stream: the guard switches device
        cuda.hash_patterns(codes, out)
        assert cupy.cuda.runtime.getDevice() == 0  # restored
    with cupy.cuda.Device(1):
        np.testing.assert_array_equal(out.get(), _cpu_hashes(want))
    with cupy.cuda.Device(0), cupy.cuda.Stream(non_blocking=True):
        with pytest.raises(ValueError, match="belongs to the current device 0"):
            cuda.hash_patterns(codes, out)
    with cupy.cuda.Device(1):
        other = cupy.zeros_like(out)
    with cupy.cuda.Device(0):
        codes0 = cupy.asarray(want)
        with pytest.raises(ValueError, match="out is on CUDA device 1 but codes is on device 0"):
            cuda.hash_patterns(codes0, other)
