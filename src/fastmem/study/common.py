"""Shared pieces of the study's experiments: data, splits, training, small statistics.

Every experiment is a function ``(params, seed) -> dict`` of plain numbers; the
helpers here keep those functions short and make them deterministic: every random
choice comes from :func:`rng_for` (the study seed plus string keys).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import datasets
from ..network import Network


class StudyInputError(Exception):
    """Bad command-line input (unknown experiment, bad data file, foreign --out)."""


def rng_for(seed: int, *keys: Any) -> np.random.Generator:
    """A generator determined by the study seed and string keys (stable across runs)."""
    return np.random.default_rng([int(seed), *(zlib.crc32(str(k).encode()) for k in keys)])


def int_seed(seed: int, *keys: Any) -> int:
    return int(rng_for(seed, *keys).integers(2**31 - 1))


# ---------------------------------------------------------------------- timing
# Seconds per label within the job running in this thread (the runner clears them before
# each job and stores them in the job file): "train" is filled by :func:`train`; an
# experiment wraps its analysis calls in ``with timed("label"):`` for a finer split.
# Per thread: a dask worker runs several jobs at once in one process.
_LOCAL = threading.local()


def timings() -> dict[str, float]:
    """This thread's ``{label: seconds}`` for the job it runs."""
    if not hasattr(_LOCAL, "t"):
        _LOCAL.t = {}
    return _LOCAL.t


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    """Add the block's wall time to ``timings()[label]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        t = timings()
        t[label] = t.get(label, 0.0) + time.perf_counter() - t0


# ------------------------------------------------------------------------ data
@dataclass(frozen=True)
class Data:
    name: str
    X: np.ndarray
    y: np.ndarray
    n_classes: int
    image_side: int | None  # square images (rows are side*side pixels), else None


@functools.lru_cache(maxsize=4)
def load_data(spec: str) -> Data:
    """``"digits"``, ``"moons"`` or a path (MNIST IDX / .npz); cached per process."""
    if spec == "digits":
        X, y = datasets.digits()
        name = "digits"
    elif spec == "moons":
        X, y = datasets.moons(1000, rng=0)
        name = "moons"
    else:
        X, y = datasets.load(spec)
        name = spec
    side = round(np.sqrt(X.shape[1]))
    image_side = side if side * side == X.shape[1] and side >= 4 else None
    X.setflags(write=False)
    y.setflags(write=False)
    return Data(name, X, y, int(y.max()) + 1, image_side)


@dataclass(frozen=True)
class Split:
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    image_side: int | None


def split(data: Data, per_class: int, seed: int, *, test_max: int = 1000) -> Split:
    """Class-balanced training set (``per_class`` per class), the rest (capped) for test.

    ``per_class=100`` on MNIST is Salman & Liu's setting (1000 training samples).
    """
    counts = np.bincount(data.y, minlength=data.n_classes)
    per_class = int(min(per_class, max(1, counts.min() - 1)))
    gen = rng_for(seed, "split", data.name)
    _, _, idx = datasets.per_class_subset(data.X, data.y, per_class, rng=gen)
    rest = np.setdiff1d(np.arange(data.y.size), idx)
    if rest.size > test_max:
        rest = np.sort(gen.choice(rest, test_max, replace=False))
    return Split(
        data.X[idx], data.y[idx], data.X[rest], data.y[rest], data.n_classes, data.image_side
    )


# -------------------------------------------------------------------- training
def shift_images(X: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """Random shifts by at most one pixel in each direction, zero fill (augmentation)."""
    imgs = X.reshape(-1, side, side)
    out = np.zeros_like(imgs)
    dy = rng.integers(-1, 2, size=imgs.shape[0])
    dx = rng.integers(-1, 2, size=imgs.shape[0])
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            m = (dy == sy) & (dx == sx)
            if not m.any():
                continue
            src = imgs[m]
            dst = np.zeros_like(src)
            ys_d = slice(max(sy, 0), side + min(sy, 0))
            ys_s = slice(max(-sy, 0), side + min(-sy, 0))
            xs_d = slice(max(sx, 0), side + min(sx, 0))
            xs_s = slice(max(-sx, 0), side + min(-sx, 0))
            dst[:, ys_d, xs_d] = src[:, ys_s, xs_s]
            out[m] = dst
    return out.reshape(X.shape)


@dataclass
class Trained:
    clf: Any
    history: dict[str, list[Any]] = field(default_factory=dict)
    snapshots: list[tuple[int, Network]] = field(default_factory=list)
    stopped_epoch: int | None = None

    @property
    def network(self) -> Network:
        return Network.from_sklearn(self.clf)


def train(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: tuple[int, ...],
    epochs: int,
    seed: int,
    n_classes: int,
    solver: str = "adam",
    lr: float = 0.005,
    alpha: float = 0.0,
    activation: str = "relu",
    batch_size: int = 64,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    snapshot_epochs: tuple[int, ...] | list[int] = (),
    augment_side: int | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    patience: int | None = None,
    stop_at_fit: bool = False,
) -> Trained:
    """Train a scikit-learn MLPClassifier epoch by epoch (``partial_fit``).

    Records per epoch the training loss (``loss_``, the epoch's mean minibatch loss),
    the training accuracy on the un-augmented set and, when given, the test and
    validation accuracies; keeps fastmem snapshots at ``snapshot_epochs`` (1-based).
    ``patience``: early stopping on the validation accuracy, keeping the best weights.
    """
    with timed("train"):
        return _train(
            X, y, hidden=hidden, epochs=epochs, seed=seed, n_classes=n_classes, solver=solver,
            lr=lr, alpha=alpha, activation=activation, batch_size=batch_size, X_test=X_test,
            y_test=y_test, snapshot_epochs=snapshot_epochs, augment_side=augment_side,
            validation=validation, patience=patience, stop_at_fit=stop_at_fit,
        )  # fmt: skip


def _train(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: tuple[int, ...],
    epochs: int,
    seed: int,
    n_classes: int,
    solver: str,
    lr: float,
    alpha: float,
    activation: str,
    batch_size: int,
    X_test: np.ndarray | None,
    y_test: np.ndarray | None,
    snapshot_epochs: tuple[int, ...] | list[int],
    augment_side: int | None,
    validation: tuple[np.ndarray, np.ndarray] | None,
    patience: int | None,
    stop_at_fit: bool,
) -> Trained:
    import copy

    from sklearn.neural_network import MLPClassifier

    kw: dict[str, Any] = {"momentum": 0.9} if solver == "sgd" else {}
    clf = MLPClassifier(
        hidden_layer_sizes=hidden,
        activation=activation,
        solver=solver,
        learning_rate_init=lr,
        alpha=alpha,
        batch_size=min(batch_size, X.shape[0]),
        random_state=int_seed(seed, "mlp"),
        **kw,
    )
    classes = np.arange(n_classes)
    gen = rng_for(seed, "augment")
    hist: dict[str, list[Any]] = {"epoch": [], "loss": [], "train_acc": []}
    if X_test is not None:
        hist["test_acc"] = []
    if validation is not None:
        hist["val_acc"] = []
    want = set(snapshot_epochs)
    out = Trained(clf, hist)
    best, best_acc, waited = None, -1.0, 0
    for epoch in range(1, epochs + 1):
        Xe = shift_images(X, augment_side, gen) if augment_side else X
        clf.partial_fit(Xe, y, classes=classes)
        hist["epoch"].append(epoch)
        hist["loss"].append(float(clf.loss_))
        train_acc = float(clf.score(X, y))
        hist["train_acc"].append(train_acc)
        if X_test is not None:
            hist["test_acc"].append(float(clf.score(X_test, y_test)))
        if epoch in want:
            out.snapshots.append((epoch, Network.from_sklearn(clf)))
        if validation is not None:
            acc = float(clf.score(*validation))
            hist["val_acc"].append(acc)
            if patience is not None:
                if acc > best_acc:
                    best, best_acc, waited = copy.deepcopy(clf), acc, 0
                else:
                    waited += 1
                    if waited >= patience:
                        out.stopped_epoch = epoch
                        break
        if stop_at_fit and train_acc == 1.0:
            break
    if patience is not None and best is not None:
        out.clf = best
    return out


def accuracy(net_or_clf: Any, X: np.ndarray, y: np.ndarray) -> float:
    if isinstance(net_or_clf, Network):
        return float(np.mean(np.asarray(net_or_clf.predict(X)) == y))
    return float(net_or_clf.score(X, y))


def he_network(widths: list[int], seed: int, *, bias_std: float = 0.01) -> Network:
    """A ReLU network at He initialization (Hanin & Rolnick's setting)."""
    gen = rng_for(seed, "he", *widths)
    Ws, bs = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        Ws.append(gen.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in))
        bs.append(gen.standard_normal(fan_out) * bias_std)
    return Network.from_arrays(Ws, bs)


# ------------------------------------------------------------------ statistics
def histogram(values: Any, bins: Any) -> dict[str, list[float]]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    counts, edges = np.histogram(v, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.astype(int).tolist()}


def summary(values: Any) -> dict[str, float | int | None]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0, "mean": None, "median": None, "q10": None, "q90": None}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "q10": float(np.quantile(v, 0.1)),
        "q90": float(np.quantile(v, 0.9)),
    }


def random_labels(y: np.ndarray, n_classes: int, seed: int, key: str = "random") -> np.ndarray:
    return datasets.corrupt_labels(y, 1.0, rng_for(seed, key), n_classes=n_classes)


def train_cnn(
    sp: Split, side: int | None, channels: Any, epochs: int, labels: np.ndarray, seed: int
) -> dict[str, Any]:
    """A small CNN with max pooling, He init and trained with torch (Adam, lr 0.01,
    batches of 64, cross-entropy) on ``sp.X`` with ``labels``: ``Conv2d(1, c1, 3, pad 1)-
    ReLU-MaxPool2d(2)-Conv2d(c1, c2, 3, pad 1)-ReLU-Flatten-Linear``, float64, imported
    as a layer graph (fastmem._graph). ``{"init": Network, "trained": Network}``, or
    ``{"skipped": reason}`` without torch or square images of even side."""
    try:
        import torch
    except ImportError:
        return {"skipped": "needs torch"}
    if side is None or side % 2:
        return {"skipped": "needs square images of even side"}
    nn = torch.nn
    c1, c2 = (int(c) for c in channels)
    torch.manual_seed(int_seed(seed, "cnn"))
    model = nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(c2 * (side // 2) ** 2, sp.n_classes),
    ).double()  # fmt: skip
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
    shape = (1, side, side)
    out = {"init": Network.from_torch(model.eval(), input_shape=shape)}
    X = torch.from_numpy(sp.X.reshape(-1, *shape).astype(np.float64))
    y = torch.from_numpy(np.asarray(labels).astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(int_seed(seed, "cnn-batches"))
    with timed("train"):
        model.train()
        for _ in range(int(epochs)):
            for idx in torch.randperm(X.shape[0], generator=gen).split(64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
                opt.step()
    out["trained"] = Network.from_torch(model.eval(), input_shape=shape)
    return out


def cnn_label_runs(params: dict[str, Any], seed: int, measure: Any) -> dict[str, Any]:
    """The study's CNN rows: :func:`train_cnn` on real and on random labels of the split of
    ``params["data"]`` (``per_class``), settings ``params["cnn"]`` (``channels``,
    ``epochs``); ``measure(net, sp, y)`` gives each one's numbers (a dict). Returns
    ``{"channels", "real", "random"}`` or ``{"skipped": reason}``."""
    data = load_data(params["data"])
    sp = split(data, params["per_class"], seed)
    cfg = params["cnn"]
    out: dict[str, Any] = {"channels": [int(c) for c in cfg["channels"]]}
    for lab in ("real", "random"):
        y = sp.y if lab == "real" else random_labels(sp.y, sp.n_classes, seed)
        got = train_cnn(sp, data.image_side, cfg["channels"], cfg["epochs"], y, seed)
        if "skipped" in got:
            return {"skipped": got["skipped"]}
        net = got["trained"]
        out[lab] = {"train_acc": float(np.mean(net.predict(sp.X) == y)), **measure(net, sp, y)}
    return out


def skipped_text(row: dict[str, Any] | None) -> str | None:
    """The reading of a study row that did not run: "" for no row, the skip's reason for a
    skipped one; None for a row with numbers (the caller reads them)."""
    if not row:
        return ""
    if "skipped" in row:
        return f"The CNN row was skipped ({row['skipped']}). "
    return None
