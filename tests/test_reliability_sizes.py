"""Sizes that cannot fit (or would never finish) are refused before they are attempted.

Issue 25, section 1: every call below raises `fastmem.InputError` naming the argument,
without allocating what it refuses. Each call runs with tracemalloc on (its peak must stay
far below what was refused) and, on Linux, under an address-space limit (``RLIMIT_AS``)
1 GiB above what the process already maps, so an attempted allocation fails loudly
instead of swapping. A SIGALRM guard turns a hang into a failure (it is not a timing
assertion: the refusals take milliseconds; the guard fires after minutes).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import tempfile
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmem
from fastmem import bounds, intervals, memorize

_HANG_GUARD_S = 300
_PEAK_LIMIT = 64 << 20  # a refused call may touch its inputs, never what it refused
_SETTINGS = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextlib.contextmanager
def _guarded() -> Iterator[dict[str, int]]:
    """tracemalloc's peak, an address-space limit and a hang guard around one call."""
    out: dict[str, int] = {}
    limit = None
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        want = mapped + (1 << 30)
        if (hard == resource.RLIM_INFINITY or want < hard) and (
            soft == resource.RLIM_INFINITY or want < soft
        ):
            resource.setrlimit(resource.RLIMIT_AS, (want, hard))
            limit = (resource, soft, hard)
    except (ImportError, OSError, ValueError):
        pass
    alarm = hasattr(signal, "SIGALRM")
    if alarm:

        def hung(*_: Any) -> None:
            raise AssertionError(f"still running after {_HANG_GUARD_S} s: it hangs")

        old = signal.signal(signal.SIGALRM, hung)
        signal.alarm(_HANG_GUARD_S)
    tracemalloc.start()
    try:
        yield out
    finally:
        out["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        if limit is not None:
            resource, soft, hard = limit
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _refused(call: Callable[[], Any], argument: str, *, small_peak: bool = True) -> str:
    """Run ``call``; it must raise InputError naming ``argument`` (before the colon)."""
    with _guarded() as g, pytest.raises(fastmem.InputError) as info:
        call()
    msg = str(info.value)
    named = msg.split(":", 1)[0]
    assert argument in [a.strip() for a in named.split(",")], msg
    if small_peak:
        assert g["peak"] < _PEAK_LIMIT, (g["peak"], msg)
    return msg


def _xy(n: int, d: int = 3, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(n, d))
    return X, np.arange(n) % classes


# ------------------------------------------------------------------ memory
_HUGE = st.integers(10**10, 10**15)


@_SETTINGS
@given(samples=_HUGE)
def test_sampled_segments_refuse_samples(samples: int) -> None:
    net = fastmem.sawtooth(2)
    msg = _refused(
        lambda: fastmem.along_segments(
            net, np.zeros((1, 1)), np.ones((1, 1)), method="sampled", samples=samples
        ),
        "samples",
    )
    assert "would need" in msg and "available" in msg


@_SETTINGS
@given(depth=st.integers(10**9, 10**13))
def test_sawtooth_refuses_depth(depth: int) -> None:
    _refused(lambda: fastmem.sawtooth(depth), "depth")


def test_exact_engine_refuses_pieces_that_cannot_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """sawtooth(34) has 2**34 pieces on [0, 1]: refused (here 96 MiB are said to be
    available; by the projection of its doubling, or at the layer whose pieces do not fit),
    not a MemoryError inside the engine."""
    import fastmem._validate as v

    monkeypatch.setattr(v, "_UNCHECKED_BYTES", 0)
    monkeypatch.setattr(v, "available_memory", lambda xp=np: (96 << 20, "test"))
    net = fastmem.sawtooth(34)
    msg = _refused(
        lambda: fastmem.along_segments(net, np.zeros((1, 1)), np.ones((1, 1))),
        "net",
        small_peak=False,
    )
    assert "pieces" in msg and "hidden layer" in msg and "96 MiB" in msg
    # the same network on a segment short enough to fit is exact: 2**34 / 2**20 pieces
    r = fastmem.along_segments(net, np.zeros((1, 1)), np.full((1, 1), 2.0**-20))
    assert int(r.counts[0]) == 2**14


def test_exact_engine_refuses_a_projected_doubling_up_front() -> None:
    """Issue 25: sawtooth(34) is refused at its fourth layer from the growth of its pieces
    (x2 per layer), before the layers that fill the memory are computed."""
    net = fastmem.sawtooth(34)
    msg = _refused(lambda: fastmem.along_segments(net, np.zeros((1, 1)), np.ones((1, 1))), "net")
    assert "2.00x per layer over layers 1-3" in msg and "1.72e+10 pieces" in msg
    assert "refused before computing them" in msg


def test_projection_spares_deep_random_networks() -> None:
    """Pieces of random networks grow ever more slowly with depth: a 16-layer one runs."""
    rng = np.random.default_rng(5)
    widths = [8] + [32] * 16 + [2]
    Ws = [rng.normal(0, np.sqrt(2 / widths[i]), (widths[i + 1], widths[i])) for i in range(17)]
    net = fastmem.Network.from_arrays(Ws, [np.zeros(w) for w in widths[1:]])
    a, b = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    r = fastmem.along_segments(net, a * 5, b * 5)
    assert (r.counts > 1).all()


@_SETTINGS
@given(k=st.integers(10**9, 10**12))
def test_triangle_midlines_refuse_max_triangles(k: int) -> None:
    X, _ = _xy(3000, 2)
    y = np.zeros(3000, dtype=np.int64)  # C(3000, 3) ~ 4.5e9 triangles
    _refused(lambda: intervals.triangle_midlines(X, y, max_triangles=k), "max_triangles")


def test_triangle_midlines_refuse_all_triangles() -> None:
    X, _ = _xy(3000, 2)
    _refused(lambda: intervals.triangle_midlines(X, np.zeros(3000, int)), "max_triangles")


@_SETTINGS
@given(n=st.integers(200_000, 400_000))
def test_pairwise_refuses_all_pairs(n: int) -> None:
    X, _ = _xy(n, 2)
    y = np.zeros(n, dtype=np.int64)  # n (n - 1) / 2 >= 2e10 same-class pairs
    _refused(lambda: intervals.pairwise(X, y), "max_pairs")


@_SETTINGS
@given(n=_HUGE)
def test_random_directions_refuse_n(n: int) -> None:
    X, _ = _xy(10)
    _refused(lambda: intervals.random_directions(X, n), "n")


@_SETTINGS
@given(q=st.integers(10**9, 10**13))
def test_hardtanh_three_layer_refuses_q(q: int) -> None:
    X, y = _xy(40)
    _refused(lambda: memorize.hardtanh_three_layer(X, y.astype(float), 30, q), "q")


@_SETTINGS
@given(width=_HUGE)
def test_random_threshold_refuses_width(width: int) -> None:
    X, y = _xy(20)
    _refused(lambda: memorize.random_threshold(X, y, width=width, max_bias=1.0), "width")


@_SETTINGS
@given(width=_HUGE)
def test_interpolation_grid_refuses_widths(width: int) -> None:
    X, y = _xy(20)
    _refused(lambda: memorize.interpolation_grid(X, y, widths=[width], max_biases=[1.0]), "widths")


@_SETTINGS
@given(
    bins=st.one_of(st.integers(10**10, 10**15), st.just(2**70)),
    mode=st.sampled_from(["idnns", "equal_width", "equal_mass", "adaptive_max"]),
)
def test_binned_mi_refuses_bins(bins: int, mode: str) -> None:
    T, y = _xy(50)
    _refused(lambda: fastmem.binned_mi(T, y, bins=bins, mode=mode), "bins")


@_SETTINGS
@given(
    bins=st.one_of(st.integers(10**10, 10**15), st.just(2**70)),
    mode=st.sampled_from(["idnns", "equal_width", "equal_mass", "adaptive_max"]),
)
def test_information_plane_refuses_bins(bins: int, mode: str) -> None:
    T, y = _xy(50)
    snapshots = [[T, T[:, :2]], [T, T[:, :2]]]
    _refused(lambda: fastmem.information_plane(snapshots, y, bins=bins, mode=mode), "bins")


def _npz(path: str, shape: tuple[int, ...]) -> None:
    """A network file whose W0 header promises ``shape`` but holds no data."""

    def npy(a: Any) -> bytes:
        b = io.BytesIO()
        np.save(b, a)
        return b.getvalue()

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("format_version.npy", npy(np.int64(1)))
        z.writestr("n_layers.npy", npy(np.int64(2)))
        z.writestr("activations.npy", npy(np.array(["relu"])))
        z.writestr("negative_slopes.npy", npy(np.array([0.01])))
        z.writestr("W0.npy", head.getvalue())
        z.writestr("b0.npy", npy(np.zeros(shape[0])))
        z.writestr("W1.npy", npy(np.zeros((1, shape[0]))))
        z.writestr("b1.npy", npy(np.zeros(1)))


@_SETTINGS
@given(rows=st.integers(10**4, 10**5), cols=st.integers(10**4, 10**5))
def test_network_load_refuses_headers_promising_too_much(rows: int, cols: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "big.npz")
        _npz(path, (rows, cols))
        msg = _refused(lambda: fastmem.Network.load(path), "path")
    assert "W0.npy" in msg


def test_network_load_refuses_arrays_beyond_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Honest headers whose arrays together exceed the memory available."""
    import fastmem._validate as v

    net = fastmem.Network.from_arrays(
        [np.ones((300, 300)), np.ones((1, 300))], [np.zeros(300), np.zeros(1)]
    )
    buf = io.BytesIO()
    net.save(buf)
    buf.seek(0)
    monkeypatch.setattr(v, "_UNCHECKED_BYTES", 0)
    monkeypatch.setattr(v, "available_memory", lambda xp=np: (100_000, "test"))
    msg = _refused(lambda: fastmem.Network.load(buf), "path")
    assert "available" in msg
    monkeypatch.undo()
    buf.seek(0)
    back = fastmem.Network.load(buf)  # the header check leaves a file object where it was
    assert np.array_equal(back.weights[0], net.weights[0])


# ------------------------------------------------------------------ exact big integers
_BIG = st.integers(3 * 10**6, 10**12)


@_SETTINGS
@given(n=_BIG, d=_BIG)
def test_zaslavsky_refuses_beyond_supported(n: int, d: int) -> None:
    msg = _refused(lambda: bounds.zaslavsky(n, d), "width")
    assert "MAX_BITS" in msg or "MAX_SECONDS" in msg


def test_zaslavsky_refuses_long_work_and_stays_exact() -> None:
    msg = _refused(lambda: bounds.zaslavsky(10**6, 5 * 10**5), "width")
    assert "MAX_SECONDS" in msg
    import math

    for n, d in [(60, 7), (61, 40), (64, 64), (30, 100), (1000, 3)]:
        assert bounds.zaslavsky(n, d) == sum(math.comb(n, i) for i in range(min(n, d) + 1))


@_SETTINGS
@given(w=st.integers(10**4, 10**7), n0=st.integers(10**4, 10**7), depth=st.integers(2, 6))
def test_serra_upper_refuses_beyond_supported(w: int, n0: int, depth: int) -> None:
    _refused(lambda: bounds.serra_upper([w] * depth, n0), "widths")


@_SETTINGS
@given(w=st.integers(10**8, 10**10), n0=st.integers(10**6, 10**7))
def test_montufar_lower_refuses_beyond_supported(w: int, n0: int) -> None:
    _refused(lambda: bounds.montufar_lower([w] * 3, n0), "widths")


@settings(max_examples=2, deadline=None, derandomize=True)
@given(w=st.integers(10**6, 10**9), depth=st.integers(2 * 10**5, 10**6))
def test_line_upper_refuses_beyond_supported(w: int, depth: int) -> None:
    _refused(lambda: bounds.line_upper([w] * depth), "widths", small_peak=False)


# ------------------------------------------------------------------ unbounded work
def _tiny_net() -> fastmem.Network:
    return fastmem.Network.from_arrays([np.array([[1.0, -1.0]]) * 10], [np.zeros(1)])


@_SETTINGS
@given(steps=st.integers(10**5 + 1, 10**13), restarts=st.integers(1, 3))
def test_critical_samples_refuse_steps(steps: int, restarts: int) -> None:
    net = _tiny_net()
    X = np.array([[0.5, 0.1]])
    _refused(
        lambda: fastmem.critical_samples(net, X, radius=0.01, steps=steps, restarts=restarts),
        "steps",
    )


@_SETTINGS
@given(iterations=st.integers(fastmem.critical.MAX_ITERATIONS + 1, 10**12))
def test_certified_radius_refuses_iterations(iterations: int) -> None:
    net = _tiny_net()
    _refused(
        lambda: fastmem.certified_radius(net, np.array([[0.5, 0.1]]), iterations=iterations),
        "iterations",
    )


# ------------------------------------------------------------------ the helper
def test_check_allocation_says_what_and_how_much(monkeypatch: pytest.MonkeyPatch) -> None:
    import fastmem._validate as v

    monkeypatch.setattr(v, "available_memory", lambda xp=np: (3 << 30, "MemAvailable"))
    v.check_allocation(2 << 30, "two GiB", "x")  # fits: nothing happens
    want = r"^x: the pieces would need about 4 GiB, but only 3 GiB is available"
    with pytest.raises(fastmem.InputError, match=want):
        v.check_allocation(4 << 30, "the pieces", "x")
    with pytest.raises(fastmem.InputError, match="PiB"):
        v.check_allocation(float(2**80), "the bins", "bins")


def test_available_memory_is_positive_and_bounded() -> None:
    import fastmem._validate as v

    avail, source = v.available_memory()
    assert avail > 0 and isinstance(source, str)
    if sys.platform.startswith("linux"):
        phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        assert avail <= phys
