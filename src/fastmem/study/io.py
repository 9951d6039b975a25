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


# ------------------------------------------------------------------ validation
_HERE = os.path.dirname(__file__)
RESULTS_SCHEMA = os.path.join(_HERE, "results.schema.json")
JOB_SCHEMA = os.path.join(_HERE, "job.schema.json")


def load_schema(path: str) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(v: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, _TYPES[t])


def schema_error(obj: Any, schema: dict[str, Any], where: str = "") -> str | None:
    """The first way ``obj`` breaks ``schema`` (a message), or None when it conforms.

    Covers the keywords the study's schemas use (type, required, properties,
    additionalProperties, propertyNames, items, enum, const, minimum, minLength,
    minProperties, pattern), so that reading a file needs no jsonschema install.
    """
    import re

    at = where or "the top level"
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(obj, t) for t in types):
            return f"{at}: expected {' or '.join(types)}, got {type(obj).__name__}"
    if "const" in schema and obj != schema["const"]:
        return f"{at}: expected {schema['const']!r}, got {obj!r}"
    if "enum" in schema and obj not in schema["enum"]:
        return f"{at}: expected one of {schema['enum']}, got {obj!r}"
    if "minimum" in schema and _is_type(obj, "number") and not obj >= schema["minimum"]:
        return f"{at}: {obj!r} is below {schema['minimum']}"
    if isinstance(obj, str):
        if len(obj) < schema.get("minLength", 0):
            return f"{at}: string too short"
        if "pattern" in schema and not re.search(schema["pattern"], obj):
            return f"{at}: {obj!r} does not match {schema['pattern']}"
    if isinstance(obj, dict):
        if len(obj) < schema.get("minProperties", 0):
            return f"{at}: empty object"
        for k in schema.get("required", ()):
            if k not in obj:
                return f"{at}: missing {k!r}"
        props = schema.get("properties", {})
        for k, v in obj.items():
            sub = props.get(k, schema.get("additionalProperties"))
            if "propertyNames" in schema:
                err = schema_error(k, schema["propertyNames"], f"{where}.{k} (name)")
                if err:
                    return err
            if isinstance(sub, dict):
                err = schema_error(v, sub, f"{where}.{k}" if where else k)
                if err:
                    return err
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            err = schema_error(v, schema["items"], f"{where}[{i}]")
            if err:
                return err
    return None


def read_json_checked(path: str, schema_path: str) -> tuple[Any, str | None]:
    """``(content, None)``, or ``(None, why)`` when the file is unreadable or off-schema."""
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read().decode())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        return None, f"unreadable ({type(exc).__name__}: {exc})"
    err = schema_error(obj, load_schema(schema_path))
    return (obj, None) if err is None else (None, err)


def read_job(path: str, config_hash: str) -> tuple[dict[str, Any] | None, str | None]:
    """A job file's record, or ``(None, why)`` when it is damaged (then: recompute it)."""
    rec, why = read_json_checked(path, JOB_SCHEMA)
    if rec is not None and rec["config_hash"] != config_hash:
        return None, "its config_hash is another job's"
    return rec, why


# ------------------------------------------------------------------------ lock
LOCK_FILE = ".fastmem.lock"


def lock_holder(out: str) -> str:
    """Who holds ``out``'s lock, as the lock file says (pid, host, since when)."""
    try:
        with open(os.path.join(out, LOCK_FILE)) as f:
            info = json.load(f)
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another fastmem process"


class OutLock:
    """An exclusive ``flock`` on ``OUT/.fastmem.lock`` for the whole run.

    The kernel drops the lock when its holder exits, however it exits (kill -9 too), so
    a lock is never stale; the file's content only says who holds it.
    """

    def __init__(self, out: str) -> None:
        self.path = os.path.join(out, LOCK_FILE)
        self.fd: int | None = None

    def acquire(self, *, wait: bool, on_wait: Any = None) -> None:
        """Take the lock, or raise :class:`BlockingIOError` naming the holder (``wait``
        False); ``wait``: block until the holder ends, calling ``on_wait(holder)`` once."""
        import fcntl
        import socket
        import time

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = lock_holder(os.path.dirname(self.path))
                if not wait:
                    raise BlockingIOError(holder) from None
                if on_wait is not None:
                    on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None
