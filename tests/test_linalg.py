"""fastmem.linalg: dense solves with LAPACK-style condition estimates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmem
from fastmem import linalg


def _cond1(A: np.ndarray) -> float:
    return float(np.abs(A).sum(axis=0).max() * np.abs(np.linalg.inv(A)).sum(axis=0).max())


@settings(max_examples=25)
@given(
    n=st.integers(1, 30),
    seed=st.integers(0, 2**31 - 1),
    assume=st.sampled_from(["general", "pos", "lower"]),
)
def test_solve_matches_numpy_and_estimates_condition(n, seed, assume):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)) + 3 * np.sqrt(n) * np.eye(n)
    if assume == "pos":
        A = A @ A.T + np.eye(n)
    if assume == "lower":
        A = np.tril(A)
    b = rng.normal(size=n)
    x, rcond, berr = linalg.solve(A, b, assume=assume)
    assert np.allclose(x, np.linalg.solve(A, b), rtol=1e-9, atol=1e-12)
    assert berr < 1e-14
    true = _cond1(A)
    est = 1.0 / rcond
    assert est <= true * (1 + 1e-8)
    assert est >= true / 3


def test_solve_matrix_rhs_and_result_fields():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6)) + 5 * np.eye(6)
    B = rng.normal(size=(6, 3))
    sol = linalg.solve(A, B)
    assert sol.x.shape == (6, 3)
    assert np.allclose(A @ sol.x, B)
    assert sol.condition == pytest.approx(1 / sol.rcond)
    assert sol.to_dict()["assume"] == "general"


def test_ill_conditioned_raises_with_numbers():
    n = 14
    H = 1.0 / (np.arange(n)[:, None] + np.arange(n)[None, :] + 1.0)
    with pytest.raises(fastmem.ConditioningError) as info:
        linalg.solve(H, np.ones(n), assume="general", rcond_min=1e-12)
    assert info.value.condition > 1e12
    assert np.isfinite(info.value.residual)
    with pytest.warns(fastmem.ConditioningWarning) as rec:
        sol = linalg.solve(H, np.ones(n), rcond_min=1e-12, on_ill="warn")
    assert rec[0].message.condition == pytest.approx(sol.condition)
    assert rec[0].message.residual == pytest.approx(sol.backward_error)


def test_singular_always_raises():
    A = np.array([[1.0, 2.0], [2.0, 4.0]])
    for assume in ("general", "pos", "lower"):
        M = A if assume != "lower" else np.array([[1.0, 0.0], [3.0, 0.0]])
        with pytest.raises(fastmem.ConditioningError):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                linalg.solve(M, np.ones(2), assume=assume, on_ill="warn")


@pytest.mark.parametrize(
    ("A", "b", "kw"),
    [
        (np.ones((2, 3)), np.ones(2), {}),
        (np.eye(2), np.ones(3), {}),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), np.ones(2), {}),
        (np.zeros((0, 0)), np.zeros(0), {}),
        (np.eye(2), np.ones(2), {"assume": "upper"}),
        (np.eye(2), np.ones(2), {"on_ill": "ignore"}),
        (np.eye(2), np.ones((2, 2, 2)), {}),
    ],
)
def test_bad_inputs(A, b, kw):
    with pytest.raises(fastmem.InputError):
        linalg.solve(A, b, **kw)


@pytest.mark.parametrize("seed", range(10))
def test_onenorm_inverse_estimate_is_a_tight_lower_bound(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    A = rng.normal(size=(n, n))
    est = linalg.onenorm_inverse_estimate(
        lambda v: np.linalg.solve(A, v), lambda v: np.linalg.solve(A.T, v), n
    )
    true = np.abs(np.linalg.inv(A)).sum(axis=0).max()
    assert true / 3 <= est <= true * (1 + 1e-8)


def test_solution_unpacks_and_indexes_as_x_rcond_backward_error():
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    b = np.array([1.0, 2.0])
    sol = linalg.solve(A, b, assume="pos")
    x, rcond, berr = sol
    assert len(sol) == 3
    assert np.array_equal(sol[0], x) and sol[1] == rcond and sol[2] == berr
    assert np.array_equal(sol[-3], x) and sol[:2][1] == rcond
    assert np.allclose(sol[0], np.linalg.solve(A, b), rtol=1e-12)
    with pytest.raises(IndexError):
        sol[3]
