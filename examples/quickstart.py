"""Quickstart: import a trained scikit-learn MLP and inspect its activation regions.

Trains a small ReLU MLP on scikit-learn's bundled digits (no download), imports
it into fastmem, checks that fastmem reproduces the classifier, and counts how
many distinct linear regions (activation patterns) the training points occupy:
do all training points sit in different regions?

Run:  python examples/quickstart.py        (needs scikit-learn: pip install fastmem[study])
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

import fastmem


def main() -> None:
    print("backends:")
    for info in fastmem.backends().values():
        print("  ", info)

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=400, random_state=0).fit(X, y)
    net = fastmem.Network.from_sklearn(clf)
    print(f"\nimported {net}")

    agree = np.mean(clf.classes_[net.predict(X)] == clf.predict(X))
    print(f"fastmem predictions equal scikit-learn's on {agree:.1%} of {len(X)} digits")

    start = time.perf_counter()
    hashes = net.pattern_hashes(X)
    elapsed = time.perf_counter() - start
    n_regions = np.unique(hashes).size
    print(
        f"{n_regions} distinct activation regions among {len(X)} training points "
        f"({net.n_neurons} hidden neurons; hashed in {elapsed * 1e3:.1f} ms)"
    )

    # Points per region: memorization studies ask whether each point has its own region.
    _, counts = np.unique(hashes, return_counts=True)
    print(f"largest region holds {counts.max()} points; {np.sum(counts == 1)} points are alone")


if __name__ == "__main__":
    main()
