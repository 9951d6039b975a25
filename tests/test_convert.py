"""Network.from_torch / from_sklearn reproduce the frameworks' own outputs."""

from __future__ import annotations

import numpy as np
import pytest

from fastmem import InputError, Network

torch = pytest.importorskip("torch")
nn = torch.nn


def _torch_out(model, X):
    with torch.no_grad():
        return model.double().eval()(torch.from_numpy(X)).numpy()


def test_from_torch_nested_sequential_matches_torch():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(6, 16),
        nn.ReLU(),
        nn.Sequential(nn.Linear(16, 12), nn.LeakyReLU(0.2), nn.Dropout(0.5)),
        nn.Identity(),
        nn.Linear(12, 9),
        nn.Hardtanh(),
        nn.Linear(9, 3),
    )
    X = np.random.default_rng(0).normal(size=(50, 6))
    net = Network.from_torch(model)
    assert net.widths == (6, 16, 12, 9, 3)
    assert net.activation == ("relu", "leaky_relu", "hardtanh")
    assert net.negative_slopes == (0.0, 0.2, 0.0)
    np.testing.assert_allclose(net.forward(X), _torch_out(model, X), rtol=1e-12, atol=1e-12)


def test_from_torch_single_linear_and_no_bias():
    model = nn.Linear(4, 2, bias=False)
    X = np.random.default_rng(1).normal(size=(5, 4))
    net = Network.from_torch(model)
    np.testing.assert_allclose(net.forward(X), _torch_out(model, X), rtol=1e-12)


def test_from_torch_composes_consecutive_linears():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    X = np.random.default_rng(2).normal(size=(20, 3))
    net = Network.from_torch(model)
    assert net.widths == (3, 4, 2)
    np.testing.assert_allclose(net.forward(X), _torch_out(model, X), rtol=1e-10, atol=1e-12)


def test_from_torch_float32():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    net = Network.from_torch(model, dtype=np.float32)
    assert net.dtype == np.float32


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1)),
            r"module\[1\] \(Sigmoid\): unsupported layer",
        ),
        (
            nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Tanh()), nn.Linear(3, 1)),
            r"module\[1\]\[1\] \(Tanh\)",
        ),
        (
            nn.Sequential(nn.Linear(2, 3), nn.Hardtanh(-2.0, 2.0), nn.Linear(3, 1)),
            r"Hardtanh\(-1, 1\)",
        ),
        (nn.Sequential(nn.ReLU(), nn.Linear(2, 1)), r"module\[0\] \(ReLU\): an activation must"),
        (nn.Sequential(nn.Linear(2, 3), nn.ReLU()), "must end with a Linear"),
        (
            nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.ReLU(), nn.Linear(3, 1)),
            r"module\[2\] \(ReLU\)",
        ),
        (nn.Sequential(nn.Dropout()), "no Linear"),
        (nn.Conv2d(1, 1, 3), r"module \(Conv2d\): unsupported"),
    ],
)
def test_from_torch_rejects_unsupported(model, message):
    with pytest.raises(InputError, match=message):
        Network.from_torch(model)


def test_from_torch_rejects_non_modules():
    with pytest.raises(InputError, match=r"torch\.nn\.Module"):
        Network.from_torch([np.eye(2)])


sklearn_nn = pytest.importorskip("sklearn.neural_network")
# The tests compare outputs of whatever the short fits produce; convergence is irrelevant.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_from_sklearn_multiclass_classifier():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4))
    y = np.argmax(X[:, :3], axis=1)
    clf = sklearn_nn.MLPClassifier(hidden_layer_sizes=(10, 7), max_iter=300, random_state=0).fit(
        X, y
    )
    net = Network.from_sklearn(clf)
    assert net.widths == (4, 10, 7, 3)
    np.testing.assert_allclose(
        _softmax(net.forward(X)), clf.predict_proba(X), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_array_equal(clf.classes_[net.predict(X)], clf.predict(X))


def test_from_sklearn_binary_classifier_and_regressor():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 3))
    clf = sklearn_nn.MLPClassifier(hidden_layer_sizes=(6,), max_iter=300, random_state=0).fit(
        X, X[:, 0] > 0
    )
    net = Network.from_sklearn(clf)
    p = 1.0 / (1.0 + np.exp(-net.forward(X)[:, 0]))
    np.testing.assert_allclose(p, clf.predict_proba(X)[:, 1], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[net.predict(X)], clf.predict(X))
    reg = sklearn_nn.MLPRegressor(hidden_layer_sizes=(5, 5), max_iter=300, random_state=0).fit(
        X, X.sum(axis=1)
    )
    np.testing.assert_allclose(
        Network.from_sklearn(reg).forward(X)[:, 0], reg.predict(X), rtol=1e-10, atol=1e-12
    )


def test_from_sklearn_identity_is_composed():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 3))
    reg = sklearn_nn.MLPRegressor(
        hidden_layer_sizes=(4, 3), activation="identity", max_iter=300, random_state=0
    ).fit(X, X @ [1.0, -2.0, 0.5])
    net = Network.from_sklearn(reg)
    assert net.n_layers == 1
    np.testing.assert_allclose(net.forward(X)[:, 0], reg.predict(X), rtol=1e-10, atol=1e-12)


def test_from_sklearn_rejects():
    with pytest.raises(InputError, match="not fitted"):
        Network.from_sklearn(sklearn_nn.MLPClassifier())
    X = np.random.default_rng(6).normal(size=(30, 2))
    tanh = sklearn_nn.MLPRegressor(hidden_layer_sizes=(3,), activation="tanh", max_iter=20).fit(
        X, X[:, 0]
    )
    with pytest.raises(InputError, match="'tanh' is not piecewise linear"):
        Network.from_sklearn(tanh)
    with pytest.raises(InputError, match="MLPClassifier or MLPRegressor"):
        Network.from_sklearn(object())
