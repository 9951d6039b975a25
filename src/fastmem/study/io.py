"""The study's file I/O: atomic writes (umask-respecting), JSON, reading job files safely.

``runner.py`` and ``report.py`` both use these; neither imports the other for them.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from .._json import jsonable


def clean(obj: Any) -> Any:
    """JSON-able copy: NumPy scalars/arrays to Python, NaN/Inf to None (:func:`jsonable`)."""
    return jsonable(obj)


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to a temp file in the same directory, then ``os.replace`` it.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 less the umask),
    not mkstemp's 0600.
    """
    d = os.path.dirname(path) or "."
    fd, tmp = _create_temp(d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _create_temp(d: str) -> tuple[int, str]:
    # Like mkstemp, but created with mode 0666 so that the kernel applies the umask
    # (mkstemp's 0600 would make index.html unreadable to a web server or a colleague).
    for _ in range(100):
        tmp = os.path.join(d, f".tmp-{secrets.token_hex(8)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {d}")


def atomic_write_json(path: str, obj: Any) -> None:
    """Write JSON (NaN/Inf as null) atomically, see :func:`write_atomic`."""
    write_atomic(path, json.dumps(clean(obj), indent=1, allow_nan=False).encode())
