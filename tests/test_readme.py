"""Every Python block of README.md runs as written.

The blocks run in order in one namespace, as a reader pasting them into one session
would (the tour defines the small inputs the later blocks use). A block whose first
line is ``# needs: torch`` or ``# needs: cuda`` is skipped, with the reason, where that
is missing; nothing else is skipped. The install and test commands of the README's
"two commands" section are checked for shape here and run literally by ``.ci/run``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import fastmem

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_NEEDS = re.compile(r"^# needs: (\w+)")


def _blocks() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def _missing(need: str) -> str | None:
    if need == "torch":
        return None if importlib.util.find_spec("torch") else "torch is not installed"
    if need == "cuda":
        cuda = fastmem.backends()["cuda"]
        return None if cuda.available else f"no CUDA backend ({cuda.reason})"
    raise AssertionError(f"README block declares an unknown need {need!r}")


def test_readme_has_python_blocks() -> None:
    assert len(_blocks()) >= 5


def test_readme_python_blocks_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # blocks that save files write here
    namespace: dict = {"__name__": "__readme__"}
    skipped = []
    for number, block in enumerate(_blocks()):
        match = _NEEDS.match(block)
        reason = _missing(match.group(1)) if match else None
        if reason is not None:
            skipped.append(f"block {number}: {reason}")
            continue
        code = compile(block, f"README.md python block {number}", "exec")
        try:
            exec(code, namespace)
        except Exception as exc:  # the block and its error, not just a line number
            raise AssertionError(f"README python block {number} failed:\n{block}") from exc
    for line in skipped:
        print("skipped", line)
    # The tour's network and data really were built by the blocks themselves.
    assert isinstance(namespace.get("net"), fastmem.Network)
    assert isinstance(namespace.get("X"), np.ndarray)


def test_readme_two_commands_set_themselves_up() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split("#", 1)[0].strip() for line in commands.strip().splitlines()]
    main, tests = lines
    assert main.startswith("python -m venv ") and 'pip install ".[study]"' in main
    assert "fastmem study" in main
    # The test command installs what the tests import before running them (the test
    # extra's list, without building fastmem again).
    assert "pip install -r tests/requirements.txt" in tests
    assert tests.endswith("python -m pytest tests")


def test_test_requirements_match_the_test_extra() -> None:
    """tests/requirements.txt (README's test command) and pyproject's ``test`` extra list
    the same requirements."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python >= 3.11")
    root = README.parent
    pyproject = root / "pyproject.toml"
    requirements = root / "tests" / "requirements.txt"
    if not pyproject.exists() or not requirements.exists():
        pytest.skip("needs the source tree (pyproject.toml and tests/requirements.txt)")
    extra = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["test"]
    lines = requirements.read_text(encoding="utf-8").splitlines()
    listed = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(listed) == sorted(extra)
