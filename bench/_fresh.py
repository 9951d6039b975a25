"""Running one benchmark contender in a fresh process (shared by the bench modules)."""

from __future__ import annotations

import json
import subprocess
import sys


def run_script_fresh(script: str, *args: object) -> dict:
    """Run a benchmark module as a script in a new Python process (one contender, so no
    other contender's threads are alive); the JSON its last output line holds. The
    process has exited when this returns."""
    done = subprocess.run(
        [sys.executable, script, *map(str, args)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
