"""Backend discovery, selection, forcing, and the import-time contract."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastmem
from fastmem import BackendError, InputError, Network, select_backend


def test_backends_report_every_backend_with_reasons():
    info = fastmem.backends()
    assert set(info) == {"cpp", "cuda", "numba"}
    for name, b in info.items():
        assert b.name == name
        assert b.available == (b.reason == ""), b
        assert str(b).startswith(f"{name}: ")
    assert info["numba"].available  # numba is a hard dependency


def test_automatic_choice_prefers_cpp(monkeypatch):
    monkeypatch.delenv("FASTMEM_BACKEND", raising=False)
    expected = "cpp" if fastmem.backends()["cpp"].available else "numba"
    assert select_backend("cpu").name == expected


def test_environment_forces_backend(monkeypatch):
    monkeypatch.setenv("FASTMEM_BACKEND", "numba")
    assert select_backend("cpu").name == "numba"
    monkeypatch.setenv("FASTMEM_BACKEND", " NUMBA ")
    assert select_backend("cpu").name == "numba"


def test_explicit_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("FASTMEM_BACKEND", "numba")
    if fastmem.backends()["cpp"].available:
        assert select_backend("cpu", backend="cpp").name == "cpp"


def test_unknown_backend_names(monkeypatch):
    monkeypatch.setenv("FASTMEM_BACKEND", "tpu")
    with pytest.raises(BackendError, match="FASTMEM_BACKEND='tpu'"):
        select_backend("cpu")
    monkeypatch.delenv("FASTMEM_BACKEND")
    with pytest.raises(InputError, match="backend"):
        select_backend("cpu", backend="fortran")


def test_cpu_without_sse42_reports_cpp_unavailable(monkeypatch):
    import fastmem._backend as fb

    monkeypatch.setattr(fb, "_cpu_lacks_sse42", lambda: True)
    fb._probe.cache_clear()
    try:
        info = fastmem.backends()["cpp"]
        assert not info.available and "SSE4.2" in info.reason
        with pytest.raises(BackendError, match=r"SSE4\.2"):
            select_backend("cpu", backend="cpp")
    finally:
        monkeypatch.undo()
        fb._probe.cache_clear()
    if fastmem.backends()["cpp"].available:
        # Reported available: then _core's instructions really run on this CPU.
        net = Network.from_arrays([np.ones((1, 2))], [np.zeros(1)])
        np.testing.assert_array_equal(net.forward(np.ones((3, 2)), backend="cpp"), 2.0)


@pytest.mark.parametrize("name", ["cpp", "cuda", "numba"])
def test_forcing_an_unavailable_backend_is_an_error(monkeypatch, name):
    info = fastmem.backends()[name]
    if info.available:
        pytest.skip(f"{name} is available here")
    monkeypatch.setenv("FASTMEM_BACKEND", name)
    with pytest.raises(
        BackendError, match=f"backend {name!r}.*unavailable: {re.escape(info.reason)}"
    ):
        select_backend("cpu")
    net = Network.from_arrays([np.ones((1, 2))], [np.zeros(1)])
    with pytest.raises(BackendError):
        net.forward(np.ones((3, 2)))


def test_cuda_module_built_and_reports_no_device():
    expect_cuda = os.environ.get("FASTMEM_EXPECT_CUDA") == "1"
    try:
        cuda = importlib.import_module("fastmem._cuda")
    except ImportError:
        if expect_cuda:
            raise
        assert fastmem.backends()["cuda"].reason == "built without CUDA"
        pytest.skip("built without CUDA")
    n_devices, why = cuda.device_status()
    assert cuda.runtime_version() > 0
    info = fastmem.backends()["cuda"]
    if n_devices == 0:
        assert not info.available
        assert info.reason.startswith("no CUDA device"), info.reason
        assert why
    elif importlib.util.find_spec("cupy") is None:
        assert info.reason == "cupy not installed"


def test_import_does_not_pull_heavy_modules():
    code = (
        "import sys, numpy as np, fastmem\n"
        "net = fastmem.Network.from_arrays([np.ones((2, 2)), np.ones((1, 2))],"
        " [np.zeros(2), np.zeros(1)])\n"
        "net.forward(np.ones((3, 2)), backend='cpp' if fastmem.backends()['cpp'].available"
        " else 'numba')\n"
        "bad = [m for m in ('cupy', 'torch', 'sklearn') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FASTMEM_BACKEND"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd="/")


def test_compiled_kernels_reject_contract_violations(backend):
    if backend == "cuda":
        pytest.skip("device arrays are checked by the cuda bindings")
    k = select_backend("cpu", backend=backend).kernels
    z = np.zeros((3, 4))
    codes = np.zeros((3, 1), dtype=np.uint64)
    with pytest.raises((TypeError, ValueError)):
        k.pack_and_activate(z.astype(np.int64), codes, 0, 0, 0.0)
    with pytest.raises((TypeError, ValueError)):
        k.pack_and_activate(np.asfortranarray(np.zeros((3, 4))), codes, 0, 0, 0.0)
    with pytest.raises((TypeError, ValueError)):
        k.pack_and_activate(z, codes, 62, 2, 0.0)  # 8 bits from bit 62 exceed one word
    with pytest.raises((TypeError, ValueError)):
        k.pack_and_activate(z, codes, 0, 7, 0.0)
    with pytest.raises((TypeError, ValueError)):
        k.hash_patterns(codes, np.zeros(2, dtype=np.uint64))


def test_segment_kernels_reject_contract_violations(backend):
    # One segment (two vertices, width 2) with no crossing, carried to a width-3 layer.
    if backend == "cuda":
        pytest.skip("device arrays are checked by the cuda bindings")
    k = select_backend("cpu", backend=backend).kernels
    z = np.array([[1.0, 2.0], [1.5, 3.0]])
    vt, pseg = np.array([0.0, 1.0]), np.zeros(1, dtype=np.int64)
    offsets, child = np.zeros(2, dtype=np.int64), np.array([0, 1], dtype=np.int64)
    buf, scratch = np.zeros(0), np.zeros(0, dtype=np.int64)
    wt, zn = np.ones((3, 3)), np.ones((2, 3))
    out, counts = np.empty((2, 3)), np.empty(1, dtype=np.int64)
    k.next_preactivations(z, vt, pseg, buf, offsets, child, 0, 0.0, wt, zn, scratch, out, 0,
                          counts)  # fmt: skip
    np.testing.assert_array_equal(out, zn)  # no breakpoint: the ends are copied
    assert counts.tolist() == [0]
    bad = {
        "wt": np.ones((2, 3)),  # needs width + 1 rows (the bias row)
        "zn": np.ones((2, 4)),
        "out": np.empty((3, 3)),
        "kind_next": 7,
        "next_counts": np.empty(2, dtype=np.int64),
    }
    args = dict(z=z, vt=vt, pseg=pseg, buf=buf, offsets=offsets, child_offsets=child, kind=0,
                slope=0.0, wt=wt, zn=zn, scratch=scratch, out=out, kind_next=0,
                next_counts=counts)  # fmt: skip
    for name, value in bad.items():
        with pytest.raises((TypeError, ValueError)):
            k.next_preactivations(*{**args, name: value}.values())
    # emit_pieces writes the activations at the OLD vertices: out_h has one row per vertex
    codes = np.zeros((1, 1), dtype=np.uint64)
    out_vt, out_seg = np.empty(2), np.empty(1, dtype=np.int64)
    out_codes = np.empty((1, 1), dtype=np.uint64)
    with pytest.raises((TypeError, ValueError)):
        k.emit_pieces(z, vt, pseg, codes, buf, offsets, child, 0, 0.0, 0, True, out_vt,
                      out_seg, out_codes, np.empty((3, 3)), scratch)  # fmt: skip
    h = np.empty((2, 3))
    k.emit_pieces(z, vt, pseg, codes, buf, offsets, child, 0, 0.0, 0, True, out_vt, out_seg,
                  out_codes, h, scratch)  # fmt: skip
    np.testing.assert_array_equal(h, [[1.0, 2.0, 1.0], [1.5, 3.0, 1.0]])


def _random_pieces(rng, segments, width):
    """A chunk of ``segments`` pieces (two vertices each) with random pre-activations of
    ``width`` neurons at the vertices, and the crossings of the count and collect passes."""
    z = rng.normal(size=(2 * segments, width))
    vt = np.tile([0.0, 1.0], segments)
    pseg = np.arange(segments, dtype=np.int64)
    return z, vt, pseg


def test_sparse_columns_carry_equals_dense(backend):
    """next_preactivations_sparse against next_preactivations on the same matrix (its
    nonzeros as columns): equal values and next-layer counts, with many breakpoints per
    piece, flat children (a dead ReLU layer gives the bias) and every activation kind."""
    if backend == "cuda":
        pytest.skip("host arrays: the cuda bindings are checked by the layer-graph tests")
    k = select_backend("cpu", backend=backend).kernels
    rng = np.random.default_rng(4)
    width, width_next, segments = 37, 23, 9
    W = rng.normal(size=(width_next, width)) * (rng.random((width_next, width)) < 0.3)
    bias = rng.normal(size=width_next)
    wt = np.ascontiguousarray(np.concatenate([W.T, bias[None, :]]))
    ptr = np.zeros(width + 1, dtype=np.int64)
    ptr[1:] = np.cumsum((W != 0).sum(axis=0))
    idx = np.concatenate([np.nonzero(W[:, j])[0] for j in range(width)]).astype(np.int64)
    val = np.concatenate([W[W[:, j] != 0, j] for j in range(width)])
    for kind, slope in [(0, 0.0), (1, 0.1), (2, 0.0), (3, 0.0)]:
        z, vt, pseg = _random_pieces(rng, segments, width)
        z[2:4] = -np.abs(z[2:4])  # a piece on which every ReLU is off (a flat child)
        z[3, 0] = 1.0  # ... but one neuron, so the piece has a breakpoint
        n = segments
        counts = np.empty(n, dtype=np.int64)
        k.count_crossings(z, pseg, kind, counts)
        offsets = np.zeros(n + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(counts)
        buf = np.empty(int(offsets[-1]))
        k.collect_crossings(z, vt, pseg, kind, 1e-12, offsets, buf, counts)
        child = np.zeros(n + 1, dtype=np.int64)
        child[1:] = np.cumsum(counts + 1)
        assert counts.max() > 5
        h = np.maximum(z, 0.0) if kind == 0 else np.tanh(z)  # any values at the old vertices
        zn = np.ascontiguousarray(h @ W.T + bias)
        nv_out = int(child[-1]) + n
        res = []
        for sparse in (False, True):
            out = np.full((nv_out, width_next), np.nan)
            nxt = np.empty(int(child[-1]), dtype=np.int64)
            scratch = np.empty(2 * int(offsets[-1]), dtype=np.int64)
            if sparse:
                k.next_preactivations_sparse(z, vt, pseg, buf, offsets, child, kind, slope, ptr,
                                             idx, val, bias, zn, scratch, out, 0, nxt)  # fmt: skip
            else:
                k.next_preactivations(z, vt, pseg, buf, offsets, child, kind, slope, wt, zn,
                                      scratch, out, 0, nxt)  # fmt: skip
            res.append((out, nxt))
        np.testing.assert_array_equal(res[0][0], res[1][0])
        np.testing.assert_array_equal(res[0][1], res[1][1])
        assert np.isfinite(res[1][0]).all()


def test_sparse_columns_reject_contract_violations(backend):
    if backend == "cuda":
        pytest.skip("device arrays are checked by the cuda bindings")
    k = select_backend("cpu", backend=backend).kernels
    z = np.array([[1.0, 2.0], [1.5, 3.0]])
    vt, pseg = np.array([0.0, 1.0]), np.zeros(1, dtype=np.int64)
    offsets, child = np.zeros(2, dtype=np.int64), np.array([0, 1], dtype=np.int64)
    buf, scratch = np.zeros(0), np.zeros(0, dtype=np.int64)
    zn = np.ones((2, 3))
    out, counts = np.empty((2, 3)), np.empty(1, dtype=np.int64)
    args = dict(z=z, vt=vt, pseg=pseg, buf=buf, offsets=offsets, child_offsets=child, kind=0,
                slope=0.0, col_ptr=np.array([0, 1, 2], dtype=np.int64),
                col_idx=np.array([0, 2], dtype=np.int64), col_val=np.ones(2), bias=np.ones(3),
                zn=zn, scratch=scratch, out=out, kind_next=0, next_counts=counts)  # fmt: skip
    k.next_preactivations_sparse(*args.values())
    np.testing.assert_array_equal(out, zn)  # no breakpoint: the ends are copied
    bad = {
        "col_ptr": np.array([0, 1], dtype=np.int64),  # needs width + 1 entries
        "col_idx": np.array([0, 3], dtype=np.int64),  # outside [0, width_next)
        "col_val": np.ones(1),
        "bias": np.ones(4),  # width_next from the bias: zn and out disagree
    }
    for name, value in bad.items():
        with pytest.raises((TypeError, ValueError)):
            k.next_preactivations_sparse(*{**args, name: value}.values())
    with pytest.raises((TypeError, ValueError)):  # decreasing
        k.next_preactivations_sparse(
            *{**args, "col_ptr": np.array([0, 2, 1], dtype=np.int64)}.values()
        )


@pytest.mark.gpu
def test_forcing_cuda_moves_numpy_data_and_back():
    if not fastmem.backends()["cuda"].available:
        pytest.skip(f"cuda: {fastmem.backends()['cuda'].reason}")
    rng = np.random.default_rng(7)
    net = Network.from_arrays(
        [rng.normal(size=(33, 4)), rng.normal(size=(3, 33))],
        [rng.normal(size=33), rng.normal(size=3)],
        "hardtanh",
    )
    X = rng.normal(size=(500, 4))
    out = net.pattern_hashes(X, backend="cuda")
    assert isinstance(out, np.ndarray)
    cpu = "cpp" if fastmem.backends()["cpp"].available else "numba"
    np.testing.assert_array_equal(out, net.pattern_hashes(X, backend=cpu))
    np.testing.assert_allclose(
        net.forward(X, backend="cuda"), net.forward(X, backend=cpu), rtol=1e-12
    )


def test_row_parallel_matmul_is_deterministic_across_cpu_backends():
    from fastmem._threads import row_parallel_matmul

    rng = np.random.default_rng(8)
    H, M = rng.normal(size=(10_001, 33)), rng.normal(size=(33, 7))
    products = [
        row_parallel_matmul(H, M, select_backend("cpu", backend=name))
        for name, info in fastmem.backends().items()
        if info.available and name != "cuda"
    ]
    np.testing.assert_allclose(products[0], H @ M, rtol=1e-12, atol=1e-12)
    if len(products) < 2:
        pytest.skip("only one CPU backend here: nothing to compare across backends")
    for other in products[1:]:
        np.testing.assert_array_equal(other, products[0])


def test_kernels_own_the_cores_restores_blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastmem._threads import kernels_own_the_cores

    before = [p["num_threads"] for p in threadpoolctl.threadpool_info()]
    with kernels_own_the_cores(select_backend("cpu", backend="numba")):
        inside = [
            p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"
        ]
        assert all(n == 1 for n in inside)
    assert [p["num_threads"] for p in threadpoolctl.threadpool_info()] == before
