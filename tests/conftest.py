"""Shared fixtures: the backends present here, and the installed-wheel check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings
from support import on_backend_device, to_numpy  # noqa: F401  (re-exported for tests)

import fastmem

# Numba compiles on first use: no per-example deadline.
settings.register_profile("fastmem", deadline=None, max_examples=40, print_blob=True)
settings.load_profile("fastmem")

BACKEND_INFO = fastmem.backends()
AVAILABLE_BACKENDS = [name for name, info in BACKEND_INFO.items() if info.available]
# The package sources (a .venv inside the checkout, as the README makes, is fine).
SOURCE_TREE = Path(__file__).resolve().parents[1] / "src"


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"fastmem {fastmem.__version__} from {Path(fastmem.__file__).parent}"]
    lines += [f"  {info}" for info in BACKEND_INFO.values()]
    lines.append(f"  FASTMEM_BACKEND={os.environ.get('FASTMEM_BACKEND', '')!r}")
    return lines


def pytest_sessionstart(session: pytest.Session) -> None:
    # CI sets this so that a test run can never silently pick up the source tree.
    if os.environ.get("FASTMEM_REQUIRE_INSTALLED"):
        where = Path(fastmem.__file__).resolve()
        if SOURCE_TREE in where.parents:
            raise pytest.UsageError(f"fastmem imported from the source tree ({where})")


# The study end to end: its analyses are bit-identical across backends and tested on each by
# their own tests, and its runner, report and fault handling (processes, signals, files,
# rendering) do not depend on the backend. A run with FASTMEM_BACKEND set (CI's second run,
# numba) leaves these files to the run without it: about two minutes of CI's 30.
_STUDY_FILES = ("test_study.py", "test_study_faults.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    forced = os.environ.get("FASTMEM_BACKEND", "").strip()
    if not forced:
        return
    skip = pytest.mark.skip(
        reason=f"the study end to end runs without FASTMEM_BACKEND (set: {forced!r}); its "
        "analyses are tested on every backend by their own tests"
    )
    for item in items:
        if item.path.name in _STUDY_FILES:
            item.add_marker(skip)


def _fixture_backends() -> list[str]:
    """The ``backend`` fixture's parameters: every available backend, or only the one
    ``FASTMEM_BACKEND`` names. A run with the variable set (CI's second run, numba; the
    ASan run, cpp; the GPU check, cuda) then covers that backend as the default and as
    the parameter, without repeating the other backends' cases, which the run without
    it covers; the cross-backend comparisons still use every available backend."""
    forced = os.environ.get("FASTMEM_BACKEND", "").strip().lower()
    return [forced] if forced in AVAILABLE_BACKENDS else AVAILABLE_BACKENDS


@pytest.fixture(params=_fixture_backends(), scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend available on this machine (cpp, numba, and cuda with a GPU), or the
    one ``FASTMEM_BACKEND`` names."""
    return request.param
