"""Small datasets and Zhang et al.'s randomizations, for :mod:`fastmem.study`.

Nothing here downloads anything: :func:`digits` and :func:`moons` come with
scikit-learn, and :func:`load` reads the user's own files (MNIST IDX, gzipped or
not, CIFAR-10's binary batches, or ``.npz`` with arrays ``X`` and ``y``).

The randomizations are those of Zhang et al., "Understanding deep learning requires
rethinking generalization" (ICLR 2017): :func:`corrupt_labels` (each label replaced,
with probability ``p``, by a uniformly random class), :func:`shuffle_pixels` (one
fixed permutation of the pixels for every image), :func:`random_pixels` (a different
permutation per image) and :func:`gaussian_like` (Gaussian inputs with the data's mean
and covariance diagonal).

Examples
--------
>>> import numpy as np
>>> from fastmem import datasets
>>> X, y = datasets.digits()
>>> X.shape, int(y.max())
((1797, 64), 9)
"""

from __future__ import annotations

import gzip
import math
import os
import re
import stat
import struct
from typing import Any

import numpy as np

from ._validate import as_float_array, as_labels, as_path, check_allocation, finite_float
from ._validate import as_generator as _rng
from ._validate import positive_int as _positive_int
from .errors import InputError

__all__ = [
    "average_pool",
    "corrupt_labels",
    "digits",
    "gaussian_like",
    "load",
    "moons",
    "per_class_subset",
    "random_pixels",
    "shuffle_pixels",
]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits, pixels scaled to [0, 1].

    Returns
    -------
    X : ndarray (1797, 64) float64
    y : ndarray (1797,) int64

    Examples
    --------
    >>> from fastmem import datasets
    >>> X, y = datasets.digits()
    >>> float(X.min()), float(X.max())
    (0.0, 1.0)
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return np.asarray(X, dtype=np.float64) / 16.0, np.asarray(y, dtype=np.int64)


def moons(n: int = 1000, *, noise: float = 0.1, rng: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two interleaving half circles, scaled into the unit ball.

    Dirksen et al.'s memorization experiments assume points in the unit ball; the raw
    moons (x in [-1, 2]) are centred and divided by the largest norm.

    Parameters
    ----------
    n : int
        Number of points (half per class).
    noise : float
        Standard deviation of the Gaussian noise added by ``make_moons``.
    rng : int or numpy.random.Generator

    Returns
    -------
    X : ndarray (n, 2) float64, max row norm 1
    y : ndarray (n,) int64 in {0, 1}

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import datasets
    >>> X, y = datasets.moons(100)
    >>> X.shape, round(float(np.linalg.norm(X, axis=1).max()), 6)
    ((100, 2), 1.0)
    """
    from sklearn.datasets import make_moons

    n = _positive_int(n, "n", 2)
    noise = finite_float(noise, "noise")
    check_allocation(40.0 * n, f"{n} moons points", "n")
    seed = int(_rng(rng).integers(2**31 - 1))
    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    X = X - X.mean(axis=0)
    X = X / np.linalg.norm(X, axis=1).max()
    if not np.isfinite(X).all():
        raise InputError(f"noise: {noise:g} is too large: the points overflow")
    return X.astype(np.float64), y.astype(np.int64)


# ------------------------------------------------------------------ user data
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# The most one data file may hold (a header promising more is refused before reading).
_MAX_BYTES = 2**34


def _open_regular(path: str) -> Any:
    """Open ``path`` for reading (gunzipping when it starts with gzip's magic number).

    Only regular files: a FIFO would block, ``/dev/zero`` would never end.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"data: cannot read {path}: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"data: {path} is not a regular file (a FIFO, device or socket)")
    try:
        f = open(path, "rb")  # returned to the caller, who closes it
        if f.read(2) == b"\x1f\x8b":
            f.close()
            return gzip.open(path, "rb")
        f.seek(0)
        return f
    except OSError as exc:
        raise InputError(f"data: cannot read {path}: {exc}") from exc


def _read_exactly(f: Any, n: int, path: str, what: str) -> bytes:
    try:
        data = f.read(n)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"data: cannot read {path}: {exc}") from exc
    if len(data) != n:
        raise InputError(f"data: {path} is truncated: {what} needs {n} bytes, has {len(data)}")
    return data


def _read_idx(path: str) -> np.ndarray:
    with _open_regular(path) as f:
        head = _read_exactly(f, 4, path, "the IDX magic number")
        if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
            raise InputError(f"data: {path} is not an IDX file (bad magic number)")
        ndim = head[3]
        if ndim < 1:
            raise InputError(f"data: {path} is not an IDX file (bad header: 0 dimensions)")
        shape = struct.unpack(f">{ndim}I", _read_exactly(f, 4 * ndim, path, "the IDX header"))
        dtype = np.dtype(_IDX_TYPES[head[2]])
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        if nbytes > _MAX_BYTES:
            raise InputError(
                f"data: {path}: the IDX header promises {shape} ({nbytes} bytes), more than "
                f"the {_MAX_BYTES} bytes supported"
            )
        body = _read_exactly(f, nbytes, path, f"the header's shape {shape}")
        try:
            extra = f.read(1)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"data: cannot read {path}: {exc}") from exc
        if extra:
            raise InputError(
                f"data: {path} is malformed: longer than its header's shape {shape} "
                f"({nbytes} bytes)"
            )
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _idx_pair(path: str) -> tuple[str, str]:
    """The images and labels files named by ``path`` (a file of the pair, or a directory)."""
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        images = [n for n in names if "images" in n and "idx3" in n]
        train = [n for n in images if n.startswith("train")]
        pick = (train or images)[:1]
        if not pick:
            raise InputError(f"data: no *images-idx3-ubyte[.gz] file in directory {path}")
        path = os.path.join(path, pick[0])
    base = os.path.basename(path)
    if "labels" in base:
        images, labels = path.replace("labels-idx1", "images-idx3"), path
    else:
        images, labels = (
            path,
            os.path.join(os.path.dirname(path), base.replace("images-idx3", "labels-idx1")),
        )
    for p in (images, labels):
        if not os.path.exists(p):
            alt = p[:-3] if p.endswith(".gz") else p + ".gz"
            if os.path.exists(alt):
                if p is images:
                    images = alt
                else:
                    labels = alt
            else:
                raise InputError(f"data: {p} not found (MNIST needs its images and labels files)")
    return images, labels


_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, green, blue bytes each


def _cifar_files(path: str) -> list[str]:
    """CIFAR-10 binary batches named by ``path`` (a ``*.bin`` file, or a directory with
    ``data_batch_*.bin``: the five training batches), else ``[]``."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if re.fullmatch(r"data_batch_\d+\.bin", n))
        return [os.path.join(path, n) for n in names]
    return [path] if path.endswith(".bin") else []


def _read_cifar(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's binary version (no pickle): records of 1 label byte + 3072 pixel bytes."""
    Xs, ys = [], []
    for path in files:
        with _open_regular(path) as f:
            if isinstance(f, gzip.GzipFile):
                raise InputError(f"data: {path} is gzipped; gunzip the CIFAR-10 batches first")
            size = os.fstat(f.fileno()).st_size
            if size == 0 or size % _CIFAR_RECORD or size > _MAX_BYTES:
                raise InputError(
                    f"data: {path} is not a CIFAR-10 binary batch: {size} bytes is not a "
                    f"positive multiple of {_CIFAR_RECORD} (1 label byte + 3072 pixel bytes)"
                )
            raw = _read_exactly(f, size, path, "its records")
        rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
        if int(rec[:, 0].max()) > 9:
            raise InputError(
                f"data: {path} is not a CIFAR-10 binary batch: label byte "
                f"{int(rec[:, 0].max())} > 9 (CIFAR-100's two-label records are not supported)"
            )
        ys.append(rec[:, 0].astype(np.int64))
        Xs.append(rec[:, 1:])
    return np.concatenate(Xs), np.concatenate(ys)


def _check_xy(X: Any, y: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 2:
        raise InputError(
            f"data: X in {source} must have 2+ dimensions (n, features), got {X.shape}"
        )
    if X.shape[0] == 0 or math.prod(X.shape[1:]) == 0:
        raise InputError(f"data: {source} holds no samples or no features: X {X.shape}")
    X = X.reshape(X.shape[0], -1)
    if y.ndim != 1:
        raise InputError(f"data: y in {source} must be 1-D (n,), got shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise InputError(
            f"data: X and y in {source} disagree: {X.shape[0]} rows vs {y.shape[0]} labels"
        )
    if X.shape[0] < 10 or X.shape[1] < 1:
        raise InputError(f"data: {source} has too few samples or features: X {X.shape}")
    for name, a in (("X", X), ("y", y)):
        if np.iscomplexobj(a):
            raise InputError(f"data: {name} in {source} is complex ({a.dtype}); must be real")
        if a.dtype.kind not in "biuf":
            raise InputError(f"data: {name} in {source} must be real numbers, got dtype {a.dtype}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise InputError(f"data: X in {source} contains NaN or Inf")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise InputError(f"data: y in {source} contains NaN or Inf labels")
    if np.any(y != np.round(y)):
        raise InputError(f"data: y in {source} must hold integer class labels")
    _, y = np.unique(y.astype(np.int64), return_inverse=True)
    if np.unique(y).size < 2:
        raise InputError(f"data: y in {source} has a single class")
    return X, y.astype(np.int64)


def load(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a labelled dataset: MNIST IDX (gzipped or not), CIFAR-10 binary, or ``.npz``.

    IDX: ``path`` is the images file (``*-images-idx3-ubyte[.gz]``), the labels file,
    or a directory holding them (the training pair is preferred); pixels are scaled to
    [0, 1] when they are bytes. CIFAR-10 binary version (no pickle): ``path`` is a
    ``*.bin`` batch or a directory holding ``data_batch_*.bin`` (the training batches,
    concatenated in order); each record is one label byte and 3072 pixel bytes (the
    red, green and blue 32 x 32 planes), pixels scaled to [0, 1], rows (n, 3072) in the
    file's channel-major order. ``.npz``: arrays ``X`` (n, ...) and ``y`` (n,) of
    integer labels. Labels are renumbered ``0 .. k-1``.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    X : ndarray (n, d) float64
    y : ndarray (n,) int64

    Raises
    ------
    InputError
        Missing or unreadable file, bad magic number, truncated file, wrong shapes,
        non-integer labels, NaN/Inf.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from fastmem import datasets
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "toy.npz")
    >>> np.savez(p, X=np.eye(12), y=np.arange(12) % 3)
    >>> X, y = datasets.load(p)
    >>> X.shape, y[:4].tolist()
    ((12, 12), [0, 1, 2, 0])
    """
    path = as_path(path, "path")
    if not os.path.exists(path):
        raise InputError(f"data: {path} does not exist")
    if not os.path.isdir(path):
        _open_regular(path).close()  # refuses FIFOs and devices before any read
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                if "X" not in f.files or "y" not in f.files:
                    raise InputError(f"data: {path} must hold arrays 'X' and 'y', has {f.files}")
                X, y = f["X"], f["y"]
        except InputError:
            raise
        except Exception as exc:  # zipfile/pickle errors: a malformed file
            raise InputError(f"data: cannot read {path} as .npz: {exc}") from exc
        return _check_xy(X, y, path)
    cifar = _cifar_files(path)
    if cifar:
        X, y = _read_cifar(cifar)
        return _check_xy(X.astype(np.float64) / 255.0, y, path)
    images, labels = _idx_pair(path)
    X = _read_idx(images)
    y = _read_idx(labels)
    Xf = X.astype(np.float64) / (255.0 if X.dtype == np.uint8 else 1.0)
    return _check_xy(Xf, y, images)


# -------------------------------------------------------------- subsets, pooling
def per_class_subset(
    X: Any, y: Any, per_class: int, *, rng: Any = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A class-balanced random subset: ``per_class`` samples of every class.

    Salman & Liu's MNIST setting is ``per_class=100`` (1000 training samples).

    Returns
    -------
    X_sub, y_sub : ndarrays
    index : ndarray of int64
        Rows of ``X`` taken (sorted by class, then randomly within a class).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import datasets
    >>> X, y = datasets.digits()
    >>> Xs, ys, idx = datasets.per_class_subset(X, y, 5)
    >>> np.bincount(ys).tolist()
    [5, 5, 5, 5, 5, 5, 5, 5, 5, 5]
    """
    X = _rows(X)
    y = as_labels(y, "y", X.shape[0])
    per_class = _positive_int(per_class, "per_class")
    gen = _rng(rng)
    take = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        if rows.size < per_class:
            raise InputError(f"per_class: class {c} has only {rows.size} samples < {per_class}")
        take.append(gen.choice(rows, per_class, replace=False))
    idx = np.concatenate(take).astype(np.int64)
    return X[idx], y[idx], idx


def average_pool(X: Any, factor: int) -> np.ndarray:
    """Average-pool square images stored as rows (side ``s`` -> ``s // factor``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import datasets
    >>> datasets.average_pool(np.arange(16.0).reshape(1, 16), 2).tolist()
    [[2.5, 4.5, 10.5, 12.5]]
    """
    X = _rows(X)
    factor = _positive_int(factor, "factor")
    side = round(np.sqrt(X.shape[1]))
    if side * side != X.shape[1]:
        raise InputError(f"X: rows must be square images, got {X.shape[1]} features")
    if side % factor:
        raise InputError(f"factor: the image side {side} is not divisible by {factor}")
    s = side // factor
    return X.reshape(-1, s, factor, s, factor).mean(axis=(2, 4)).reshape(X.shape[0], s * s)


# ------------------------------------------------------------- randomizations
def corrupt_labels(
    y: Any, p: float, rng: Any = None, *, n_classes: int | None = None
) -> np.ndarray:
    """Zhang et al.'s partially corrupted labels.

    With probability ``p`` each label is replaced by a uniformly random class (which
    may equal the true one, as in the paper); ``p = 1`` gives completely random labels.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import datasets
    >>> y = np.zeros(1000, dtype=int)
    >>> bool(np.all(datasets.corrupt_labels(y, 0.0, 0, n_classes=10) == 0))
    True
    >>> 0.8 < float(np.mean(datasets.corrupt_labels(y, 1.0, 0, n_classes=10) != 0)) < 1.0
    True
    """
    y = as_labels(y, "y")
    p = finite_float(p, "p", high=1.0)
    k = int(y.max()) + 1 if n_classes is None else _positive_int(n_classes, "n_classes")
    if k > 2**62:
        what = "n_classes" if n_classes is not None else "y (its largest label + 1)"
        raise InputError(f"{what}: at most 2**62 classes are supported, got {k}")
    gen = _rng(rng)
    flip = gen.random(y.shape[0]) < float(p)
    out = y.copy()
    out[flip] = gen.integers(0, k, size=int(flip.sum()))
    return out


def shuffle_pixels(X: Any, rng: Any = None) -> np.ndarray:
    """One random permutation of the features, the same for every row (Zhang et al.).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import datasets
    >>> X = np.arange(6.0).reshape(2, 3)
    >>> Z = datasets.shuffle_pixels(X, 0)
    >>> bool(np.all(np.sort(Z, axis=1) == X)), bool(np.all(Z[1] - Z[0] == 3))
    (True, True)
    """
    X = _rows(X)
    return X[:, _rng(rng).permutation(X.shape[1])]


def random_pixels(X: Any, rng: Any = None) -> np.ndarray:
    """An independent random permutation of the features of every row (Zhang et al.).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import datasets
    >>> X = np.tile(np.arange(5.0), (3, 1))
    >>> bool(np.all(np.sort(datasets.random_pixels(X, 0), axis=1) == X))
    True
    """
    X = _rows(X)
    keys = _rng(rng).random(X.shape)
    return np.take_along_axis(X, np.argsort(keys, axis=1), axis=1)


def gaussian_like(X: Any, rng: Any = None) -> np.ndarray:
    """Gaussian inputs with the per-feature mean and standard deviation of ``X``.

    Zhang et al.'s "Gaussian" randomization (they match mean and variance of the
    original dataset).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem import datasets
    >>> X = np.random.default_rng(0).normal(3.0, 2.0, size=(4000, 2))
    >>> G = datasets.gaussian_like(X, 1)
    >>> np.round(G.mean(axis=0)).tolist(), np.round(G.std(axis=0)).tolist()
    ([3.0, 3.0], [2.0, 2.0])
    """
    X = _rows(X)
    # moments of X / s, s a power of two near max |X|: no overflow near the float range
    peak = float(np.abs(X).max()) if X.size else 0.0
    s = 2.0 ** math.frexp(peak)[1] if peak > 0 else 1.0
    mu, sd = (X / s).mean(axis=0), (X / s).std(axis=0)
    with np.errstate(over="ignore"):
        G = (mu + sd * _rng(rng).standard_normal(X.shape)) * s
    if not np.isfinite(G).all():
        raise InputError("X: its values are so large that Gaussian samples like them overflow")
    return G


def _rows(X: Any, name: str = "X") -> np.ndarray:
    """Data rows: a finite 2-D float64 array (n, d) with n, d >= 1."""
    X = as_float_array(X, name, ndim=2, dtype=np.dtype(np.float64))
    if X.shape[1] == 0:
        raise InputError(f"{name}: has no columns (shape {X.shape})")
    return X
