"""fastmem.datasets: loaders (IDX, .npz) and Zhang et al.'s randomizations."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="fastmem.datasets needs scikit-learn ([study] extra)")

from fastmem import InputError, datasets


def _write_idx(path, arr, gz=False):
    codes = {np.dtype(np.uint8): 0x08}
    head = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(20, 4, 4), dtype=np.uint8)
    labels = (np.arange(20) % 3).astype(np.uint8)
    suf = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suf}", imgs, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suf}", labels, gz)
    for p in (tmp_path / f"train-images-idx3-ubyte{suf}", tmp_path):
        X, y = datasets.load(p)
        np.testing.assert_array_equal(X, imgs.reshape(20, 16) / 255.0)
        np.testing.assert_array_equal(y, labels)


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        datasets.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="cannot read"):
        datasets.load(bad)
    p = tmp_path / "shape.npz"
    np.savez(p, X=np.zeros((12, 3)), y=np.zeros(11))
    with pytest.raises(InputError, match="disagree"):
        datasets.load(p)
    p = tmp_path / "noy.npz"
    np.savez(p, X=np.zeros((12, 3)))
    with pytest.raises(InputError, match="'X' and 'y'"):
        datasets.load(p)
    img = tmp_path / "t-images-idx3-ubyte"
    img.write_bytes(b"\x01\x02\x03\x04rubbish")
    (tmp_path / "t-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(InputError, match="magic"):
        datasets.load(img)
    # truncated body
    img.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 5, 2, 2) + b"\x00" * 7)
    with pytest.raises(InputError, match="truncated"):
        datasets.load(img)
    # longer than its header says
    img.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 5, 2, 2) + b"\x00" * 21)
    with pytest.raises(InputError, match="longer than"):
        datasets.load(img)


def test_load_refuses_what_it_cannot_read_in_full(tmp_path):
    """Issue 25: dimensions that overflow, /dev/zero, a FIFO, no rows, complex, inf labels."""
    img = tmp_path / "t-images-idx3-ubyte"
    (tmp_path / "t-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")
    for dims in ((2**32 - 1,) * 3, (2**31, 2**31, 8), (70000, 28, 2**20)):
        img.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", *dims) + b"\x00" * 64)
        with pytest.raises(InputError, match="header promises"):
            datasets.load(img)
    for gz in (False, True):  # a header promising 2**40 bytes, gzipped or not
        head = bytes([0, 0, 8, 2]) + struct.pack(">2I", 2**20, 2**20)
        (gzip.open if gz else open)(img, "wb").write(head + b"\x00" * 10)
        with pytest.raises(InputError, match="header promises"):
            datasets.load(img)
    if os.path.exists("/dev/zero"):
        with pytest.raises(InputError, match="not a regular file"):
            datasets.load("/dev/zero")
    fifo = tmp_path / "f-images-idx3-ubyte"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        datasets.load(fifo)
    fifo_npz = tmp_path / "f.npz"
    os.mkfifo(fifo_npz)
    with pytest.raises(InputError, match="not a regular file"):
        datasets.load(fifo_npz)
    p = tmp_path / "d.npz"
    for X, y, match in [
        (np.zeros((0, 4)), np.zeros(0, dtype=int), "no samples"),
        (np.zeros((12, 0)), np.arange(12) % 2, "no samples or no features"),
        (np.ones((12, 3)) * (1 + 2j), np.arange(12) % 2, "real"),
        (np.ones((12, 3)), (np.arange(12) % 2) * (1 + 0j), "real"),
        (np.ones((12, 3)), np.r_[np.arange(11) % 2, np.inf], "NaN or Inf"),
        (np.ones((12, 3)), np.r_[np.arange(11) % 2, np.nan], "NaN or Inf"),
        (np.ones((12, 3)).astype(str), np.arange(12) % 2, "real"),
    ]:
        np.savez(p, X=X, y=y)
        with pytest.raises(InputError, match=match):
            datasets.load(p)


def test_corrupt_labels_rate():
    y = np.arange(20000) % 10
    for p in (0.0, 0.4, 1.0):
        z = datasets.corrupt_labels(y, p, 1, n_classes=10)
        # a replaced label equals the old one with probability 1/10
        assert abs(np.mean(z != y) - p * 0.9) < 0.02
    with pytest.raises(InputError):
        datasets.corrupt_labels(y, 1.5, 0)


def test_pixel_randomizations():
    X, _ = datasets.digits()
    S = datasets.shuffle_pixels(X[:50], 0)
    np.testing.assert_array_equal(np.sort(S, axis=1), np.sort(X[:50], axis=1))
    col_sums = np.sort(X[:50].sum(axis=0))
    np.testing.assert_allclose(np.sort(S.sum(axis=0)), col_sums)
    R = datasets.random_pixels(X[:50], 0)
    np.testing.assert_array_equal(np.sort(R, axis=1), np.sort(X[:50], axis=1))
    assert not np.allclose(np.sort(R.sum(axis=0)), col_sums)
    G = datasets.gaussian_like(X, 0)
    np.testing.assert_allclose(G.mean(axis=0), X.mean(axis=0), atol=0.05)


def test_average_pool_and_subset():
    X, y = datasets.digits()
    P = datasets.average_pool(X, 2)
    np.testing.assert_allclose(P[:, 0], X[:, [0, 1, 8, 9]].mean(axis=1))
    Xs, ys, idx = datasets.per_class_subset(X, y, 100, rng=0)
    assert Xs.shape == (1000, 64) and np.all(np.bincount(ys) == 100)
    assert np.unique(idx).size == 1000


def _write_cifar(path, labels, images):
    """CIFAR-10 binary layout, record by record: label byte, then R, G, B 32x32 planes."""
    with open(path, "wb") as f:
        for lab, img in zip(labels, images, strict=True):  # img: (32, 32, 3) uint8, HWC
            f.write(bytes([int(lab)]))
            for c in range(3):
                f.write(img[:, :, c].tobytes())


def test_cifar10_binary(tmp_path):
    rng = np.random.default_rng(3)
    batches = []
    for b in (1, 2):  # two training batches, and a test batch that is not read
        labels = rng.integers(0, 10, size=12)
        labels[:2] = [0, 9]
        images = rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
        _write_cifar(tmp_path / f"data_batch_{b}.bin", labels, images)
        batches.append((labels, images))
    _write_cifar(tmp_path / "test_batch.bin", [5] * 3, np.zeros((3, 32, 32, 3), np.uint8))
    X, y = datasets.load(tmp_path)
    labels = np.concatenate([b[0] for b in batches])
    images = np.concatenate([b[1] for b in batches])
    assert X.shape == (24, 3072) and X.dtype == np.float64
    # channel-major rows: pixel (r, c) of channel k at k * 1024 + r * 32 + c
    for i in (0, 5, 13, 23):
        for k, r, c in ((0, 0, 0), (1, 4, 31), (2, 31, 7)):
            assert X[i, k * 1024 + r * 32 + c] == images[i, r, c, k] / 255.0
    _, want = np.unique(labels, return_inverse=True)
    np.testing.assert_array_equal(y, want)
    Xt, yt = datasets.load(tmp_path / "data_batch_2.bin")  # one batch file
    np.testing.assert_array_equal(Xt, X[12:])
    np.testing.assert_array_equal(yt, np.unique(labels[12:], return_inverse=True)[1])
    # damaged batches: a cut record, a label byte above 9, gzipped, empty
    bad = tmp_path / "bad" / "data_batch_1.bin"
    bad.parent.mkdir()
    raw = (tmp_path / "data_batch_1.bin").read_bytes()
    for content, match in [
        (raw[:-5], "multiple of 3073"),
        (bytes([10]) + raw[1:], "label byte 10"),
        (gzip.compress(raw), "gzipped"),
        (b"", "multiple of 3073"),
    ]:
        bad.write_bytes(content)
        with pytest.raises(InputError, match=match):
            datasets.load(bad.parent)
