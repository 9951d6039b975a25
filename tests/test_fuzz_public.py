"""Fuzz every public function with hostile arguments (issue 25, section 5).

Each public callable of fastmem has a *case*: a small well-formed call and, for each of
its arguments, the kind of value it takes. Hypothesis picks an argument and replaces it
with a hostile value of its kind (NaN, inf, values near the float range, empty or
mis-shaped arrays, object / complex / string arrays, None, negative, zero, huge or
non-integer sizes, unknown options). The promise checked, for every draw:

* the call raises a fastmem error (``InputError``, ``BackendError``, ``ConditioningError``)
  whose message names the argument, or
* it returns, and every floating-point number in the result is finite (except the fields
  a case documents as possibly infinite, e.g. an interval that never leaves its region);

never a raw exception, a hang or an attempted giant allocation (each call runs under an
address-space limit and a hang guard, see ``test_reliability_sizes._guarded``).

Value-preserving variants of the well-formed input (a nested list instead of an array, a
Fortran-ordered or strided copy) must give *the same* result as the array itself.

``test_every_public_callable_has_a_case`` keeps it so: a new public function without a
case here fails the suite.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability_sizes import _guarded

import fastmem
from fastmem import bounds, datasets, information, intervals, linalg, memorize
from fastmem.errors import BackendError, ConditioningError, InputError

_FASTMEM_ERRORS = (InputError, BackendError, ConditioningError)
_EXAMPLES = int(os.environ.get("FASTMEM_FUZZ_EXAMPLES", "80"))
_SETTINGS = settings(
    max_examples=_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------- inputs


def _net(widths=(4, 6, 5, 3), activation="relu", seed=0) -> fastmem.Network:
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(size=(widths[i + 1], widths[i])) for i in range(len(widths) - 1)]
    bs = [rng.normal(size=widths[i + 1]) * 0.1 for i in range(len(widths) - 1)]
    return fastmem.Network.from_arrays(Ws, bs, activation)


def _X(n=12, d=4, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d))


def _labels(n=12, k=3) -> np.ndarray:
    return np.arange(n) % k


def _binary(n=12) -> np.ndarray:
    return np.where(np.arange(n) % 2 == 0, 1.0, -1.0)


# --------------------------------------------------------------- hostile values by kind

# Each entry: (label, function of the well-formed value -> hostile value). The label
# shows in hypothesis' failure report.


def _with(value: Any, index: Any, x: float) -> np.ndarray:
    a = np.array(value, dtype=np.float64, copy=True)
    a[index] = x
    return a


_ARRAY_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("nan", lambda a: _with(a, (0,) * np.ndim(a), np.nan)),
    ("+inf", lambda a: _with(a, (-1,) * np.ndim(a), np.inf)),
    ("-inf", lambda a: _with(a, (0,) * np.ndim(a), -np.inf)),
    ("near max", lambda a: np.asarray(a, dtype=np.float64) * 1e307 + 1e307),
    ("tiny", lambda a: np.asarray(a, dtype=np.float64) * 1e-300),
    ("empty rows", lambda a: np.asarray(a, dtype=np.float64)[:0]),
    ("one more dim", lambda a: np.asarray(a, dtype=np.float64)[None]),
    ("scalar", lambda a: 1.0),
    ("None", lambda a: None),
    ("string", lambda a: "abc"),
    ("object array", lambda a: np.asarray(a, dtype=np.float64).astype(object)),
    ("None inside", lambda a: _object_with_none(a)),
    ("complex", lambda a: np.asarray(a, dtype=np.float64) + 1j),
    ("string array", lambda a: np.asarray(a).astype(str)),
    ("ragged list", lambda a: [[1.0, 2.0], [3.0]]),
]

_MATRIX_HOSTILE = [
    *_ARRAY_HOSTILE,
    ("flat", lambda a: np.asarray(a, dtype=np.float64).ravel()),
    ("one column less", lambda a: np.asarray(a, dtype=np.float64)[:, :-1]),
    ("no columns", lambda a: np.asarray(a, dtype=np.float64)[:, :0]),
]

_LABEL_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("nan labels", lambda y: _with(y, 0, np.nan)),
    ("inf labels", lambda y: _with(y, 0, np.inf)),
    ("fractional labels", lambda y: np.asarray(y, dtype=np.float64) + 0.5),
    ("negative labels", lambda y: np.asarray(y) - 5),
    ("huge labels", lambda y: np.asarray(y, dtype=np.int64) + 2**62),
    ("one label less", lambda y: np.asarray(y)[:-1]),
    ("no labels", lambda y: np.asarray(y)[:0]),
    ("2-D labels", lambda y: np.asarray(y)[:, None].repeat(2, axis=1)),
    ("None", lambda y: None),
    ("string", lambda y: "abc"),
    ("object labels", lambda y: np.array([None, *list(np.asarray(y)[1:])], dtype=object)),
    ("complex labels", lambda y: np.asarray(y) + 1j),
    ("bool labels", lambda y: np.asarray(y) > 0),
]

_COUNT_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("zero", lambda v: 0),
    ("negative", lambda v: -3),
    ("huge", lambda v: 10**12),
    ("2**70", lambda v: 2**70),
    ("fractional", lambda v: 2.5),
    ("nan", lambda v: float("nan")),
    ("inf", lambda v: float("inf")),
    ("string", lambda v: "3"),
    ("None", lambda v: None),
    ("bool", lambda v: True),
    ("array", lambda v: np.array([3, 4])),
]

_POSITIVE_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("zero", lambda v: 0.0),
    ("negative", lambda v: -1.0),
    ("nan", lambda v: float("nan")),
    ("inf", lambda v: float("inf")),
    ("-inf", lambda v: float("-inf")),
    ("near max", lambda v: 1e308),
    ("tiny", lambda v: 1e-320),
    ("string", lambda v: "a"),
    ("None", lambda v: None),
    ("array", lambda v: np.array([1.0, 2.0])),
    ("complex", lambda v: 1 + 1j),
]

_CHOICE_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("unknown option", lambda v: "no-such-option"),
    ("empty string", lambda v: ""),
    ("int", lambda v: 3),
    ("list", lambda v: [v]),
]

_RANGE_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("reversed", lambda r: (r[1], r[0])),
    ("empty", lambda r: (r[0], r[0])),
    ("nan end", lambda r: (r[0], float("nan"))),
    ("inf end", lambda r: (r[0], float("inf"))),
    ("-inf start", lambda r: (float("-inf"), r[1])),
    ("one number", lambda r: (r[0],)),
    ("three numbers", lambda r: (r[0], r[1], r[1])),
    ("scalar", lambda r: 1.0),
    ("None", lambda r: None),
    ("strings", lambda r: ("a", "b")),
    ("near max", lambda r: (-1e308, 1e308)),
]

_SEQUENCE_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("empty", lambda s: []),
    ("None", lambda s: None),
    ("string", lambda s: "abc"),
    ("negative entry", lambda s: [-1, *list(s)[1:]]),
    ("zero entry", lambda s: [0, *list(s)[1:]]),
    ("fractional entry", lambda s: [2.5, *list(s)[1:]]),
    ("huge entry", lambda s: [10**12, *list(s)[1:]]),
    ("nan entry", lambda s: [float("nan"), *list(s)[1:]]),
    ("None entry", lambda s: [None, *list(s)[1:]]),
    ("nested", lambda s: [list(s)]),
]

_NETWORK_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("None", lambda n: None),
    ("an array", lambda n: np.zeros((3, 3))),
    ("a string", lambda n: "net"),
    ("wider input", lambda n: _net((n.widths[0] + 1, 5, n.widths[-1]))),
    ("tanh", lambda n: _net(n.widths, "tanh")),
    ("non-finite weights", lambda n: _nan_net(n)),
    ("overflowing weights", lambda n: _scaled_net(n, 1e200)),
    ("tiny weights", lambda n: _scaled_net(n, 1e-200)),
]

_PATH_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("None", lambda p: None),
    ("int", lambda p: 3),
    ("missing file", lambda p: os.path.join(tempfile.gettempdir(), "fastmem-no-such-file.npz")),
    ("a directory", lambda p: tempfile.gettempdir()),
    ("empty file", lambda p: _file(b"")),
    ("garbage", lambda p: _file(b"\x00garbage" * 10)),
    ("a .npy", lambda p: _npy_file()),
]

_DTYPE_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("int dtype", lambda d: np.int64),
    ("complex dtype", lambda d: np.complex128),
    ("float16", lambda d: np.float16),
    ("string", lambda d: "no-such-dtype"),
    ("None", lambda d: None),
    ("object", lambda d: object),
]

_BOOL_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("string", lambda b: "yes"),
    ("None", lambda b: None),
    ("array", lambda b: np.array([True, False])),
]

_RNG_HOSTILE: list[tuple[str, Callable[[Any], Any]]] = [
    ("negative seed", lambda r: -1),
    ("string", lambda r: "seed"),
    ("float", lambda r: 0.5),
    ("huge seed", lambda r: 2**200),
]

_HOSTILE = {
    "matrix": _MATRIX_HOSTILE,
    "array": _ARRAY_HOSTILE,
    "labels": _LABEL_HOSTILE,
    "count": _COUNT_HOSTILE,
    "positive": _POSITIVE_HOSTILE,
    "choice": _CHOICE_HOSTILE,
    "range": _RANGE_HOSTILE,
    "sequence": _SEQUENCE_HOSTILE,
    "network": _NETWORK_HOSTILE,
    "path": _PATH_HOSTILE,
    "dtype": _DTYPE_HOSTILE,
    "bool": _BOOL_HOSTILE,
    "rng": _RNG_HOSTILE,
}


def _object_with_none(a: Any) -> np.ndarray:
    o = np.asarray(a, dtype=np.float64).astype(object)
    o.flat[0] = None
    return o


def _nan_net(n: fastmem.Network) -> fastmem.Network:
    Ws = [np.array(W, dtype=np.float64, copy=True) for W in n.weights]
    Ws[-1][0, 0] = np.nan
    return _raw_net(Ws, [np.asarray(b) for b in n.biases], n)


def _scaled_net(n: fastmem.Network, s: float) -> fastmem.Network:
    Ws = [np.asarray(W, dtype=np.float64) * s for W in n.weights]
    return _raw_net(Ws, [np.asarray(b) * s for b in n.biases], n)


def _raw_net(Ws: list, bs: list, n: fastmem.Network) -> Any:
    try:
        return fastmem.Network.from_arrays(Ws, bs, list(n.activation))
    except InputError as e:  # refused at construction already: the case is covered there
        return _Refused(str(e))


@dataclass
class _Refused:
    """A hostile argument that could not even be built (its constructor refused it)."""

    why: str


def _file(data: bytes) -> str:
    fd, path = tempfile.mkstemp(suffix=".npz", prefix="fastmem-fuzz-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _npy_file() -> str:
    fd, path = tempfile.mkstemp(suffix=".npy", prefix="fastmem-fuzz-")
    os.close(fd)
    np.save(path, np.zeros(3))
    return path


# ------------------------------------------------------- value-preserving input variants

_PRESERVING: list[tuple[str, Callable[[np.ndarray], Any]]] = [
    ("nested list", lambda a: a.tolist()),
    ("Fortran order", lambda a: np.asfortranarray(a)),
    ("strided view", lambda a: np.repeat(a, 2, axis=-1)[..., ::2]),
    ("read-only", lambda a: _read_only(a)),
]


def _read_only(a: np.ndarray) -> np.ndarray:
    b = a.copy()
    b.flags.writeable = False
    return b


# ------------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One public callable: a well-formed call and the kind of each argument."""

    name: str
    fn: Callable[..., Any]
    base: Callable[[], dict[str, Any]]
    kinds: dict[str, str]
    # names an error about an argument may use instead of the argument's own
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # result fields that may legitimately hold inf or NaN (documented meaning)
    non_finite_ok: tuple[str, ...] = ()
    # arguments whose value-preserving variants must give the same result
    preserving: tuple[str, ...] = ()
    method: str | None = None  # call a method of the first argument
    # a nested list is not the same value here (a list means several layers)
    lists_mean_layers: bool = False

    def call(self, kw: dict[str, Any]) -> Any:
        if self.method is not None:
            kw = dict(kw)
            obj = kw.pop("self")
            return getattr(obj, self.method)(**kw)
        return self.fn(**kw)


_NET_ALIASES = ("net", "network", "weights", "layer", "X")
_PL = {"net": "network"}


def _segment_case(method: str) -> Case:
    extra = {"samples": 16} if method == "sampled" else {"chunk_size": 4}
    kinds = {
        "net": "network",
        "starts": "matrix",
        "ends": "matrix",
        "t_range": "range",
        "method": "choice",
    }
    kinds.update({k: "count" for k in extra})
    return Case(
        f"along_segments[{method}]",
        fastmem.along_segments,
        lambda: {
            "net": _net(),
            "starts": _X(6),
            "ends": _X(6, seed=2),
            "method": method,
            **extra,
        },
        kinds,
        aliases={"starts": ("starts", "ends"), "ends": ("starts", "ends"), "net": _NET_ALIASES},
        preserving=("starts", "ends"),
    )


def _critical_case() -> Case:
    return Case(
        "critical_samples",
        fastmem.critical_samples,
        lambda: {
            "net": _net(),
            "X": _X(),
            "radius": 0.05,
            "steps": 5,
            "method": "pgd",
            "rng": 0,
        },
        {
            "net": "network",
            "X": "matrix",
            "radius": "positive",
            "steps": "count",
            "method": "choice",
            "certify": "choice",
            "loss": "choice",
            "box": "range",
            "step_size": "positive",
            "restarts": "count",
            "batch_size": "count",
            "rng": "rng",
        },
        aliases={"net": _NET_ALIASES},
        # NaN where no certificate was computed / no adversarial point was found
        non_finite_ok=("margin_lower", "adversarial"),
        preserving=("X",),
    )


CASES: list[Case] = [
    _segment_case("exact"),
    _segment_case("sampled"),
    Case(
        "distinct_patterns",
        fastmem.distinct_patterns,
        lambda: {"net": _net(), "X": _X()},
        {"net": "network", "X": "matrix"},
        aliases={"net": _NET_ALIASES},
        preserving=("X",),
    ),
    Case(
        "distance_to_boundary",
        fastmem.distance_to_boundary,
        lambda: {"net": _net(), "X": _X()},
        {"net": "network", "X": "matrix"},
        aliases={"net": _NET_ALIASES},
        non_finite_ok=("distance",),  # inf: no neuron's boundary is reachable
        preserving=("X",),
    ),
    Case(
        "generalization_intervals",
        fastmem.generalization_intervals,
        lambda: {"net": _net(), "anchors": _X(5), "directions": _X(5, seed=3) - 0.5},
        {"net": "network", "anchors": "matrix", "directions": "matrix", "t_range": "range"},
        aliases={
            "net": _NET_ALIASES,
            "anchors": ("anchors", "directions"),
            "directions": ("anchors", "directions"),
        },
        non_finite_ok=("length", "t_lo", "t_hi", "lo", "hi"),  # never leaves its region
        preserving=("anchors", "directions"),
    ),
    _critical_case(),
    Case(
        "csr_curve",
        fastmem.csr_curve,
        lambda: {"net": _net(), "X": _X(), "radii": [0.01, 0.05], "steps": 5, "rng": 0},
        {"net": "network", "X": "matrix", "radii": "array"},
        aliases={"net": _NET_ALIASES, "radii": ("radii", "radius")},
        preserving=("X",),
    ),
    Case(
        "certified_radius",
        fastmem.certified_radius,
        lambda: {"net": _net(), "X": _X(), "iterations": 8},
        {
            "net": "network",
            "X": "matrix",
            "certify": "choice",
            "box": "range",
            "max_radius": "positive",
            "iterations": "count",
            "batch_size": "count",
        },
        aliases={"net": _NET_ALIASES},
        preserving=("X",),
    ),
    Case(
        "loss_sensitivity",
        fastmem.loss_sensitivity,
        lambda: {"net": _net(), "X": _X(), "y": _labels()},
        {"net": "network", "X": "matrix", "y": "labels", "norm": "positive"},
        aliases={"net": _NET_ALIASES, "y": ("y", "X")},
        preserving=("X",),
    ),
    Case(
        "binned_mi",
        fastmem.binned_mi,
        lambda: {"activations": np.tanh(_X(40, 5) * 4 - 2), "labels": _labels(40)},
        {
            "activations": "matrix",
            "labels": "labels",
            "bins": "count",
            "range": "range",
            "mode": "choice",
            "binsize": "positive",
        },
        aliases={
            "labels": ("labels", "activations"),
            "activations": ("activations", "labels"),
            "binsize": ("binsize", "activations"),
        },
        preserving=("activations",),
        lists_mean_layers=True,
    ),
    Case(
        "kde_mi",
        fastmem.kde_mi,
        lambda: {"activations": _X(30, 3), "labels": _labels(30)},
        {"activations": "matrix", "labels": "labels", "noise_var": "positive", "bound": "choice"},
        aliases={"labels": ("labels", "activations")},
        preserving=("activations",),
        lists_mean_layers=True,
    ),
    Case(
        "information_plane",
        fastmem.information_plane,
        lambda: {
            "snapshots": [[np.tanh(_X(30, 4, seed=s))] for s in range(3)],
            "labels": _labels(30),
        },
        {"snapshots": "sequence", "labels": "labels", "estimator": "choice", "epochs": "array"},
        aliases={"labels": ("labels", "snapshots"), "epochs": ("epochs", "snapshots")},
    ),
    Case(
        "plane_regions",
        fastmem.plane_regions,
        lambda: {
            "net": _net(),
            "origin": _X(1)[0],
            "directions": _X(2, seed=3) - 0.5,
            "points": _X(3),
        },
        {
            "net": "network",
            "origin": "array",
            "directions": "matrix",
            "extent": "range",
            "points": "matrix",
            "backend": "choice",
        },
        aliases={
            "net": _NET_ALIASES,
            # pre-activations that overflow on the slice: any of the four may be the cause
            "origin": ("origin", "net"),
            "directions": ("directions", "net"),
        },
        preserving=("origin", "directions"),
    ),
    Case(
        "plane_through",
        fastmem.plane_through,
        lambda: {"x0": _X(1)[0], "x1": _X(1, seed=2)[0], "x2": _X(1, seed=3)[0]},
        {"x0": "array", "x1": "array", "x2": "array", "margin": "positive"},
        aliases={"x0": ("x0", "x1", "x2"), "x1": ("x1", "x2"), "x2": ("x1", "x2")},
        preserving=("x0", "x1", "x2"),
    ),
    Case(
        "sawtooth",
        fastmem.sawtooth,
        lambda: {"depth": 3},
        {"depth": "count", "dtype": "dtype"},
    ),
    Case(
        "bounds.zaslavsky",
        bounds.zaslavsky,
        lambda: {"width": 6, "input_dim": 3},
        {"width": "count", "input_dim": "count"},
    ),
    Case(
        "bounds.serra_upper",
        bounds.serra_upper,
        lambda: {"widths": [4, 5, 3], "input_dim": 3},
        {"widths": "sequence", "input_dim": "count"},
    ),
    Case(
        "bounds.montufar_lower",
        bounds.montufar_lower,
        lambda: {"widths": [4, 6, 6], "input_dim": 2},
        {"widths": "sequence", "input_dim": "count"},
    ),
    Case(
        "bounds.line_upper",
        bounds.line_upper,
        lambda: {"widths": [4, 5, 3]},
        {"widths": "sequence", "activation": "choice"},
    ),
    Case(
        "intervals.pairwise",
        intervals.pairwise,
        lambda: {"X": _X(), "y": _labels(), "rng": 0},
        {"X": "matrix", "y": "labels", "max_pairs": "count", "same_class": "bool", "rng": "rng"},
        aliases={"y": ("y", "X")},
        preserving=("X",),
    ),
    Case(
        "intervals.triangle_midlines",
        intervals.triangle_midlines,
        lambda: {"X": _X(), "y": _labels(), "rng": 0},
        {"X": "matrix", "y": "labels", "max_triangles": "count", "rng": "rng"},
        aliases={"y": ("y", "X")},
        preserving=("X",),
    ),
    Case(
        "intervals.random_directions",
        intervals.random_directions,
        lambda: {"X": _X(), "n": 5, "rng": 0},
        {"X": "matrix", "n": "count", "rng": "rng"},
        preserving=("X",),
    ),
    Case(
        "intervals.principal",
        intervals.principal,
        lambda: {"X": _X(), "y": _labels(), "cls": 1, "k": 0},
        {"X": "matrix", "y": "labels", "cls": "count", "k": "count"},
        aliases={"y": ("y", "X", "cls"), "cls": ("cls", "y"), "k": ("k", "cls")},
        preserving=("X",),
    ),
    Case(
        "intervals.normal",
        intervals.normal,
        lambda: {"X": _X(), "y": _labels(), "cls_from": 0, "cls_to": 1},
        {"X": "matrix", "y": "labels", "cls_from": "count", "cls_to": "count"},
        aliases={
            "y": ("y", "X", "cls_from", "cls_to"),
            "cls_from": ("cls_from", "cls_to", "y"),
            "cls_to": ("cls_from", "cls_to", "y"),
        },
        preserving=("X",),
    ),
    Case(
        "memorize.two_layer",
        memorize.two_layer,
        lambda: {"X": _X(8, 3), "y": _binary(8), "rng": 0},
        {
            "X": "matrix",
            "y": "array",
            "tries": "count",
            "bias_position": "positive",
            "tol": "positive",
            "task": "choice",
            "on_ill": "choice",
            "rng": "rng",
        },
        aliases={"y": ("y", "X"), "tol": ("tol", "X")},
        preserving=("X",),
    ),
    Case(
        "memorize.deep",
        memorize.deep,
        lambda: {"X": _X(8, 3), "y": _binary(8), "depth": 2, "rng": 0},
        {"X": "matrix", "y": "array", "depth": "count", "tries": "count", "rng": "rng"},
        aliases={"y": ("y", "X")},
        preserving=("X",),
    ),
    Case(
        "memorize.hardtanh_three_layer",
        memorize.hardtanh_three_layer,
        lambda: {"X": _X(8, 3), "y": _binary(8), "p": 2, "q": 4, "rng": 0},
        {"X": "matrix", "y": "array", "p": "count", "q": "count", "rng": "rng"},
        aliases={"y": ("y", "X"), "p": ("p", "q", "X"), "q": ("p", "q", "X")},
        preserving=("X",),
    ),
    Case(
        "memorize.min_norm",
        memorize.min_norm,
        lambda: {"X": _X(3, 8), "y": _binary(3)},
        {"X": "matrix", "y": "array", "kernel": "choice", "ridge": "positive"},
        aliases={"y": ("y", "X")},
        preserving=("X",),
    ),
    Case(
        "memorize.random_threshold",
        memorize.random_threshold,
        lambda: {"X": _X(10, 3), "labels": _labels(10, 2), "width": 20, "max_bias": 1.0, "rng": 0},
        {
            "X": "matrix",
            "labels": "labels",
            "width": "count",
            "max_bias": "positive",
            "rule": "choice",
            "rng": "rng",
        },
        aliases={"labels": ("labels", "X")},
        preserving=("X",),
    ),
    Case(
        "memorize.interpolation_grid",
        memorize.interpolation_grid,
        lambda: {
            "X": _X(10, 3),
            "labels": _labels(10, 2),
            "widths": [4, 8],
            "max_biases": [0.5, 1.0],
            "restarts": 2,
            "rng": 0,
        },
        {
            "X": "matrix",
            "labels": "labels",
            "widths": "sequence",
            "max_biases": "sequence",
            "restarts": "count",
        },
        aliases={"labels": ("labels", "X")},
        non_finite_ok=("error",),
        preserving=("X",),
    ),
    Case(
        "memorize.weight_norms",
        memorize.weight_norms,
        lambda: {"network": _net()},
        {"network": "network", "spectral": "sequence"},
        aliases={"network": ("network", "net", "weights")},
        # documented: Inf exactly when the norm itself exceeds the float range
        non_finite_ok=("l1", "l2", "fro", "path_l1", "path_l2"),
    ),
    Case(
        "linalg.solve",
        linalg.solve,
        lambda: {"A": np.eye(4) + _X(4, 4) * 0.1, "b": _X(4, 1)[:, 0]},
        {"A": "matrix", "b": "array", "assume": "choice", "rcond_min": "positive"},
        aliases={"b": ("b", "A")},
        preserving=("A",),
    ),
    Case(
        "datasets.average_pool",
        datasets.average_pool,
        lambda: {"X": _X(3, 64), "factor": 2},
        {"X": "matrix", "factor": "count"},
        preserving=("X",),
    ),
    Case(
        "datasets.corrupt_labels",
        datasets.corrupt_labels,
        lambda: {"y": _labels(), "p": 0.5, "rng": 0},
        {"y": "labels", "p": "positive", "n_classes": "count", "rng": "rng"},
    ),
    Case(
        "datasets.gaussian_like",
        datasets.gaussian_like,
        lambda: {"X": _X(), "rng": 0},
        {"X": "matrix", "rng": "rng"},
        preserving=("X",),
    ),
    Case(
        "datasets.per_class_subset",
        datasets.per_class_subset,
        lambda: {"X": _X(), "y": _labels(), "per_class": 2},
        {"X": "matrix", "y": "labels", "per_class": "count", "rng": "rng"},
        aliases={"y": ("y", "X")},
        preserving=("X",),
    ),
    Case(
        "datasets.random_pixels",
        datasets.random_pixels,
        lambda: {"X": _X(), "rng": 0},
        {"X": "matrix", "rng": "rng"},
        preserving=("X",),
    ),
    Case(
        "datasets.shuffle_pixels",
        datasets.shuffle_pixels,
        lambda: {"X": _X(), "rng": 0},
        {"X": "matrix", "rng": "rng"},
        preserving=("X",),
    ),
    Case(
        "datasets.moons",
        datasets.moons,
        lambda: {"n": 20, "noise": 0.1},
        {"n": "count", "noise": "positive", "rng": "rng"},
    ),
    Case(
        "datasets.load",
        datasets.load,
        lambda: {"path": _saved_data()},
        {"path": "path"},
        aliases={"path": ("path", "data")},  # the CLI's --data shares the messages
    ),
    Case(
        "Network.from_arrays",
        fastmem.Network.from_arrays,
        lambda: {
            "weights": [np.ones((3, 2)), np.ones((1, 3))],
            "biases": [np.zeros(3), np.zeros(1)],
        },
        {
            "weights": "sequence",
            "biases": "sequence",
            "activation": "choice",
            "negative_slope": "positive",
            "dtype": "dtype",
        },
        aliases={"weights": ("weights", "biases"), "biases": ("weights", "biases")},
    ),
    Case(
        "Network.load",
        fastmem.Network.load,
        lambda: {"path": _saved_net()},
        {"path": "path"},
    ),
    Case(
        "Network.perturbed",
        None,
        lambda: {"self": _net(), "sigma": 0.1, "rng": 0},
        {"sigma": "positive", "relative": "bool", "rng": "rng"},
        method="perturbed",
    ),
    Case(
        "Network.astype",
        None,
        lambda: {"self": _net(), "dtype": np.float32},
        {"dtype": "dtype"},
        method="astype",
    ),
    Case(
        "Network.to",
        None,
        lambda: {"self": _net(), "device": "cpu"},
        {"device": "choice"},
        method="to",
    ),
    Case(
        "Network.save",
        None,
        lambda: {"self": _net(), "path": os.path.join(tempfile.mkdtemp(), "net.npz")},
        {"path": "path"},
        method="save",
    ),
]

for _m in ("forward", "predict", "activation_patterns", "pattern_hashes", "layer_outputs"):
    CASES.append(
        Case(
            f"Network.{_m}",
            None,
            lambda: {"self": _net(), "X": _X()},
            {"X": "matrix"},
            preserving=("X",),
            method=_m,
        )
    )


def _saved_data() -> str:
    d = tempfile.mkdtemp(prefix="fastmem-fuzz-")
    path = os.path.join(d, "data.npz")
    np.savez(path, X=_X(), y=_labels())
    return path


def _saved_net() -> str:
    d = tempfile.mkdtemp(prefix="fastmem-fuzz-")
    path = os.path.join(d, "net.npz")
    _net().save(path)
    return path


# Public callables with nothing to fuzz, and why.
_NOT_FUZZED = {
    "backends": "takes no arguments",
    "select_backend": "its two string options are fuzzed through every backend= argument",
    "datasets.digits": "takes no arguments",
    "linalg.onenorm_inverse_estimate": "takes solver callables (internal building block)",
    "Network.from_torch": "takes a torch module: tests/test_convert.py's hostile modules",
    "Network.from_sklearn": "takes an estimator: tests/test_convert.py's hostile estimators",
    "Network.require_piecewise_linear": "takes a purpose string for its own message",
}


# ---------------------------------------------------------------------- result checks


def _floats(obj: Any, path: str, out: list[tuple[str, np.ndarray]], depth: int = 0) -> None:
    """Every floating-point array or number reachable from a result, with its path."""
    if depth > 6 or obj is None or isinstance(obj, (str, bytes, bool)):
        return
    if isinstance(obj, fastmem.Network):
        for i, (W, b) in enumerate(zip(obj.weights, obj.biases, strict=True)):
            out.append((f"{path}.weights[{i}]", np.asarray(W)))
            out.append((f"{path}.biases[{i}]", np.asarray(b)))
        return
    if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
        a = np.asarray(obj.get() if hasattr(obj, "get") else obj)
        if a.dtype.kind in "fc":
            out.append((path, a))
        return
    if isinstance(obj, (float, np.floating)):
        out.append((path, np.asarray(obj)))
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _floats(v, f"{path}.{k}", out, depth + 1)
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _floats(v, f"{path}[{i}]", out, depth + 1)
        return
    if is_dataclass(obj):
        for f in fields(obj):
            _floats(getattr(obj, f.name), f"{path}.{f.name}", out, depth + 1)


def _check_finite(case: Case, result: Any) -> None:
    leaves: list[tuple[str, np.ndarray]] = []
    _floats(result, "result", leaves)
    for path, a in leaves:
        parts = path.replace("[", ".").split(".")
        if "params" in parts or any(part in case.non_finite_ok for part in parts):
            continue
        assert np.isfinite(a).all(), f"{case.name}: {path} holds non-finite values: {a}"


def _same(case: Case, a: Any, b: Any, what: str) -> None:
    la: list[tuple[str, np.ndarray]] = []
    lb: list[tuple[str, np.ndarray]] = []
    _floats(a, "result", la)
    _floats(b, "result", lb)
    assert [p for p, _ in la] == [p for p, _ in lb], f"{case.name}: {what} changed the fields"
    for (path, x), (_, y) in zip(la, lb, strict=True):
        if path.endswith(("seconds", "_s")):  # wall-clock timings
            continue
        np.testing.assert_array_equal(x, y, err_msg=f"{case.name} with {what}: {path}")


def _names_argument(case: Case, arg: str, message: str) -> bool:
    names = (*case.aliases.get(arg, ()), arg)
    return any(n in message for n in names)


def _run_hostile(case: Case, arg: str, label: str, make: Callable[[Any], Any]) -> None:
    kw = case.base()
    try:
        kw[arg] = make(kw.get(arg, _DEFAULTS.get((case.name, arg))))
    except Exception:
        return
    if isinstance(kw[arg], _Refused):
        return
    try:
        with _guarded():
            result = case.call(kw)
    except _FASTMEM_ERRORS as e:
        assert _names_argument(case, arg, str(e)), (
            f"{case.name}({arg}={label}): the error does not name {arg!r}: {e}"
        )
        return
    except Exception as e:
        pytest.fail(f"{case.name}({arg}={label}) raised {type(e).__name__}: {e}")
    _check_finite(case, result)


# well-formed values of arguments a case's base call leaves at their defaults
_DEFAULTS: dict[tuple[str, str], Any] = {}


def _fill_defaults() -> None:
    for case in CASES:
        fn = getattr(fastmem.Network, case.method) if case.method else case.fn
        sig = inspect.signature(fn)
        for arg in case.kinds:
            p = sig.parameters.get(arg)
            if p is not None and p.default is not inspect.Parameter.empty:
                default = p.default
                if default is None:  # an optional size: a well-formed stand-in
                    default = {"count": 4, "positive": 0.5, "rng": 0}.get(case.kinds[arg])
                _DEFAULTS[(case.name, arg)] = default


_fill_defaults()


# ------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@_SETTINGS
@given(data=st.data())
def test_hostile_argument(case: Case, data: st.DataObject) -> None:
    arg = data.draw(st.sampled_from(sorted(case.kinds)), label="argument")
    label, make = data.draw(st.sampled_from(_HOSTILE[case.kinds[arg]]), label="value")
    _run_hostile(case, arg, label, make)


_PRESERVING_CASES = [c for c in CASES if c.preserving]


@pytest.mark.parametrize("case", _PRESERVING_CASES, ids=[c.name for c in _PRESERVING_CASES])
def test_value_preserving_variants_give_the_same_result(case: Case) -> None:
    reference = case.call(case.base())
    for arg in case.preserving:
        for label, make in _PRESERVING:
            if label == "nested list" and case.lists_mean_layers:
                continue
            kw = case.base()
            kw[arg] = make(np.asarray(kw[arg]))
            _same(case, reference, case.call(kw), f"{arg} as {label}")


def _public_callables() -> list[str]:
    names = []
    mods = {"": fastmem, "bounds.": bounds, "intervals.": intervals, "memorize.": memorize}
    mods.update({"linalg.": linalg, "information.": information, "datasets.": datasets})
    seen: set[int] = set()
    for prefix, mod in mods.items():
        for n in mod.__all__:
            obj = getattr(mod, n)
            if callable(obj) and not inspect.isclass(obj) and id(obj) not in seen:
                seen.add(id(obj))
                names.append(prefix + n)
    for n in dir(fastmem.Network):
        obj = getattr(fastmem.Network, n)
        if not n.startswith("_") and callable(obj):
            names.append("Network." + n)
    return names


def test_every_public_callable_has_a_case() -> None:
    covered = {c.name.split("[")[0] for c in CASES}
    # the top-level names of functions that live in submodules are the same objects
    covered |= {n.split(".", 1)[1] for n in covered if n.split(".")[0] in ("information",)}
    missing = [
        n
        for n in _public_callables()
        if n not in covered
        and n not in _NOT_FUZZED
        and n.split(".")[-1] not in {c.name.split(".")[-1] for c in CASES}
    ]
    assert not missing, f"public callables without a fuzz case: {missing}"
