"""Plain-NumPy reference implementations, written independently of fastmem's kernels."""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1


def activate(z: np.ndarray, name: str, slope: float) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, z.dtype.type(slope) * z)
    if name == "hardtanh":
        return np.clip(z, -1, 1)
    if name == "relu6":
        return np.clip(z, 0, 6)
    if name == "threshold":
        return (z >= 0).astype(z.dtype)
    raise AssertionError(name)


def states(z: np.ndarray, name: str) -> np.ndarray:
    """Boolean state bits (n, bits) of one layer in the documented order."""
    if name in ("hardtanh", "relu6"):
        low, high = (z > -1, z > 1) if name == "hardtanh" else (z > 0, z > 6)
        return np.stack([low, high], axis=2).reshape(z.shape[0], -1)
    if name == "threshold":
        return z >= 0
    return z > 0


def preactivations(weights, biases, acts, slopes, X):
    """Hidden pre-activations per layer and the output, computed as fastmem does (h @ W.T + b)."""
    h = X
    zs = []
    for W, b, a, s in zip(weights[:-1], biases[:-1], acts, slopes, strict=True):
        z = h @ W.T
        z += b
        zs.append(z.copy())
        h = activate(z, a, s)
    out = h @ weights[-1].T
    out += biases[-1]
    return zs, out


def packed_patterns(zs, acts) -> np.ndarray:
    n = zs[0].shape[0] if zs else 0
    bits = [states(z, a) for z, a in zip(zs, acts, strict=True)]
    allbits = np.concatenate(bits, axis=1) if bits else np.zeros((n, 0), dtype=bool)
    n_words = -(-allbits.shape[1] // 64)
    padded = np.zeros((allbits.shape[0], 64 * n_words), dtype=bool)
    padded[:, : allbits.shape[1]] = allbits
    as_bytes = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(as_bytes).view("<u8").astype(np.uint64).reshape(-1, n_words)


def _mix64(z: int) -> int:
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z


def hash_rows(codes: np.ndarray) -> np.ndarray:
    """The documented hash with Python integers (slow; small inputs only)."""
    out = np.empty(codes.shape[0], dtype=np.uint64)
    for i, row in enumerate(codes.tolist()):
        h = 0x6A09E667F3BCC909
        for w in row:
            h = _mix64(h ^ w)
        out[i] = h
    return out
