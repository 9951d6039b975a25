"""One JSON policy for every result's to_dict and the study's files (fastmem._json).

NaN, +Inf and -Inf become null everywhere; NumPy arrays and scalars become Python lists
and numbers (uint64 hashes exactly); ``json.dumps(..., allow_nan=False)`` accepts all.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import fastmem
from fastmem import critical, information, intervals, linalg, regions
from fastmem._json import jsonable
from fastmem.memorize import Construction
from fastmem.memorize._dirksen import InterpolationGrid

BAD = np.array([1.5, np.nan, np.inf, -np.inf])
WANT = [1.5, None, None, None]


def _walk(v):
    """Every leaf of a JSON-able value (asserting the container types)."""
    if isinstance(v, dict):
        assert all(isinstance(k, str) for k in v)
        for x in v.values():
            yield from _walk(x)
    elif isinstance(v, list):
        for x in v:
            yield from _walk(x)
    else:
        assert v is None or type(v) in (bool, int, float, str), type(v)
        yield v


def _results():
    net = fastmem.Network.from_arrays([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    ragged = regions.Ragged(np.array([1.0, np.nan, np.inf]), np.array([0, 1, 3]))
    hashes = regions.Ragged(np.array([2**64 - 1, 3], dtype=np.uint64), np.array([0, 1, 2]))
    p = {"radius": np.float64(np.inf), "note": (np.nan, 1)}
    return {
        "CriticalSamples": critical.CriticalSamples(
            status=np.array(["critical", "robust", "unknown", "robust"]),
            adversarial=np.array([[0.5, np.nan], [np.inf, 0.0], [0, 0], [0, 0]]),
            steps_taken=np.arange(4),
            margin_lower=BAD,
            predicted=np.arange(4),
            decided_exactly={"a": 1},
            csr_lower=float("nan"),
            csr_upper=0.5,
            backend="cpp",
            params=p,
        ),
        "CSRCurve": critical.CSRCurve(BAD, BAD, BAD, *(np.arange(4),) * 3, "cpp", p),
        "CertifiedRadius": critical.CertifiedRadius(BAD, "cpp", p),
        "LossSensitivity": critical.LossSensitivity(BAD, float("inf"), "cpp", p),
        "BoundaryDistances": regions.BoundaryDistances(
            BAD, np.arange(4), np.arange(4), np.ones(4, bool), "cpp"
        ),
        "DistinctPatterns": regions.DistinctPatterns(
            2, np.arange(4), np.array([2**64 - 1, 5], dtype=np.uint64), np.array([3, 1]), "cpp"
        ),
        "Ragged": ragged,
        "SegmentRegions": regions.SegmentRegions(
            np.array([1, 2]), ragged, hashes, "cpp", "exact", (-np.inf, 1.0), None, 2
        ),
        "Intervals": intervals.Intervals(BAD, BAD, BAD, np.arange(4), "cpp", (0.0, np.inf)),
        "Solution": linalg.Solution(BAD, 0.0, float("nan"), "general"),
        "InformationPlane": information.InformationPlane(
            BAD[None, :], BAD[None, :], BAD[None, :], np.array([1]), "binned", "fixed", "cpp", p
        ),
        "MutualInformation": information.MutualInformation(
            float("nan"), (1.0, float("inf")), 0.0, 0.0, 3, None, float("nan"), "cpp", "fixed"
        ),
        "Construction": Construction(
            "zhang",
            net,
            float("nan"),
            float("inf"),
            0.1,
            {"l2": np.inf},
            "cpp",
            True,
            p,
            {"norm": np.float64(np.inf), "arr": BAD},
        ),
        "InterpolationGrid": InterpolationGrid(
            BAD[None, :], np.arange(1), BAD, 3, "rule", float("nan"), "cpp", p
        ),
    }


@pytest.mark.parametrize("name", list(_results()))
def test_every_to_dict_follows_one_policy(name):
    res = _results()[name]
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)  # raises on NaN or Inf
    assert json.loads(text) == d
    leaves = list(_walk(d))
    if name != "DistinctPatterns":  # (integers only)
        assert None in leaves  # the non-finite inputs became null
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in leaves)


def test_policy_values():
    r = _results()
    assert r["Intervals"].to_dict()["lower"] == WANT
    assert r["Intervals"].to_dict()["t_range"] == [0.0, None]
    assert r["CriticalSamples"].to_dict()["margin_lower"] == WANT
    assert r["CriticalSamples"].to_dict()["adversarial"][:2] == [[0.5, None], [None, 0.0]]
    assert r["CriticalSamples"].to_dict()["params"] == {"radius": None, "note": [None, 1]}
    assert r["Construction"].to_dict()["details"]["norm"] is None
    assert r["Construction"].to_dict()["condition"] is None
    assert r["MutualInformation"].to_dict()["i_ty"] == [1.0, None]
    assert r["DistinctPatterns"].to_dict()["hashes"] == [2**64 - 1, 5]  # exact
    assert r["SegmentRegions"].to_dict()["pattern_hashes"]["values"] == [2**64 - 1, 3]


def test_jsonable_scalars_and_containers():
    assert jsonable(np.float32(np.nan)) is None
    assert jsonable(np.float64(-np.inf)) is None
    assert jsonable(np.int64(7)) == 7 and type(jsonable(np.int64(7))) is int
    assert jsonable(np.bool_(True)) is True
    assert jsonable({1: (np.uint64(2**64 - 1),)}) == {"1": [2**64 - 1]}
    assert jsonable(np.array([[1, 2]], dtype=np.int8)) == [[1, 2]]
    assert jsonable(np.array([np.nan], dtype=np.float32)) == [None]
    assert jsonable("x") == "x" and jsonable(None) is None


def test_study_io_has_no_runner_report_cycle():
    import ast
    import inspect

    from fastmem.study import io, report

    for mod in (io, report):
        tree = ast.parse(inspect.getsource(mod))
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "runner" not in names, mod.__name__
