"""``python -m fastmem``: the ``fastmem`` command (see :mod:`fastmem.study.cli`)."""

from __future__ import annotations

import sys

from .study.cli import main

if __name__ == "__main__":
    sys.exit(main())
