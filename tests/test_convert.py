"""Network.from_torch / from_sklearn reproduce the frameworks' own outputs."""

from __future__ import annotations

import numpy as np
import pytest

from fastmem import InputError, Network

torch = pytest.importorskip("torch", reason="torch is optional: from_torch tests need it")
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
            nn.Sequential(nn.Linear(2, 3), nn.Softplus(), nn.Linear(3, 1)),
            r"module\[1\] \(Softplus\): unsupported layer",
        ),
        (
            nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Tanh()), nn.Linear(3, 1)),
            r"module\[1\]\[1\] \(Tanh\)",
        ),
        (
            nn.Sequential(nn.Linear(2, 3), nn.BatchNorm2d(3), nn.Linear(3, 1)),
            r"module\[1\] \(BatchNorm2d\): unsupported without input_shape",
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
        (nn.Conv2d(1, 1, 3), r"module \(Conv2d\): unsupported without input_shape"),
        (
            nn.Sequential(nn.Linear(2, 3), nn.MaxPool1d(2)),
            r"module\[1\] \(MaxPool1d\): unsupported",
        ),
    ],
)
def test_from_torch_rejects_unsupported(model, message):
    with pytest.raises(InputError, match=message):
        Network.from_torch(model)


def test_from_torch_rejects_non_modules():
    with pytest.raises(InputError, match=r"torch\.nn\.Module"):
        Network.from_torch([np.eye(2)])


def _bn(n, *, affine=True, seed=0):
    """An eval-mode BatchNorm1d with random running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm1d(n, affine=affine, eps=1e-3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=gen))
        bn.running_var.copy_(torch.rand(n, generator=gen) * 3.0 + 0.1)
        if affine:
            bn.weight.copy_(torch.randn(n, generator=gen))
            bn.bias.copy_(torch.randn(n, generator=gen))
    return bn.eval()


def _linear(i, o, *, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(i, o, bias=bias)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize(
    ("place", "widths"),
    [
        ("before_activation", (5, 8, 6, 3)),  # Linear, BN, ReLU: into the preceding Linear
        ("after_activation", (5, 8, 6, 3)),  # Linear, ReLU, BN, Linear: into the following
        ("input", (5, 8, 6, 3)),  # BN, Linear: into the first Linear
        ("output", (5, 8, 6, 3)),  # last Linear, BN: into the last Linear
        ("between_linears", (5, 6, 3)),  # Linear, BN, Linear: folded, then composed
        ("stacked", (5, 8, 6, 3)),  # two BNs after an activation, with Dropout between
    ],
)
def test_from_torch_folds_batchnorm(place, widths, bias, affine):
    lin = [_linear(5, 8, bias=bias, seed=1), _linear(8, 6, bias=bias, seed=2)]
    out = _linear(6, 3, bias=bias, seed=3)
    bn8, bn8b, bn5, bn3 = (
        _bn(8, affine=affine, seed=4),
        _bn(8, affine=affine, seed=5),
        _bn(5, affine=affine, seed=6),
        _bn(3, affine=affine, seed=7),
    )
    layers = {
        "before_activation": [lin[0], bn8, nn.ReLU(), lin[1], nn.Tanh(), out],
        "after_activation": [lin[0], nn.ReLU(), bn8, lin[1], nn.LeakyReLU(0.1), out],
        "input": [bn5, lin[0], nn.ReLU(), lin[1], nn.ReLU(), out],
        "output": [lin[0], nn.ReLU(), lin[1], nn.Hardtanh(), out, bn3],
        "between_linears": [lin[0], bn8, lin[1], nn.ReLU(), out],
        "stacked": [lin[0], nn.Sigmoid(), bn8, nn.Dropout(0.3), bn8b, lin[1], nn.ReLU(), out],
    }[place]
    model = nn.Sequential(*layers).double().eval()
    X = np.random.default_rng(7).normal(scale=2.0, size=(64, 5))
    net = Network.from_torch(model)
    assert net.widths == widths
    np.testing.assert_allclose(net.forward(X), _torch_out(model, X), rtol=1e-12, atol=1e-12)


def test_from_torch_folded_batchnorm_layer_outputs_match_torch():
    # Folding into the preceding Linear must give the BN's output as the layer's pre-activation.
    model = (
        nn.Sequential(
            _linear(4, 7, seed=1),
            _bn(7, seed=2),
            nn.Tanh(),
            _linear(7, 5, seed=3),
            nn.Sigmoid(),
            _bn(5, seed=4),
            _linear(5, 2, seed=5),
        )
        .double()
        .eval()
    )
    X = np.random.default_rng(8).normal(size=(30, 4))
    net = Network.from_torch(model)
    with torch.no_grad():
        h1 = model[:3](torch.from_numpy(X)).numpy()
        h2 = model[:5](torch.from_numpy(X)).numpy()
    outs = net.layer_outputs(X)
    for got, want in zip(outs, [h1, h2, _torch_out(model, X)], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            lambda: [_linear(3, 4), nn.ReLU(), _bn(4)],
            r"module\[2\] \(BatchNorm1d\): cannot be folded.*no Linear layer follows",
        ),
        (
            lambda: [_linear(3, 4), nn.ReLU(), _bn(4), nn.Tanh(), _linear(4, 1)],
            r"module\[2\] \(BatchNorm1d\): cannot be folded.*module\[3\] \(Tanh\)",
        ),
        (
            lambda: [_bn(3).train(), _linear(3, 1)],
            r"module\[0\] \(BatchNorm1d\): in training mode.*call \.eval\(\) first",
        ),
        (
            lambda: [
                _linear(3, 4),
                nn.BatchNorm1d(4, track_running_stats=False).eval(),
                _linear(4, 1),
            ],
            r"module\[1\] \(BatchNorm1d\): has no running statistics "
            r"\(track_running_stats=False\)",
        ),
        (
            lambda: [_bn(3), nn.Flatten(), _linear(3, 1)],
            r"module\[0\] \(BatchNorm1d\): before a Flatten",
        ),
        (
            lambda: [_linear(3, 4), _bn(5), _linear(5, 1)],
            r"module\[1\] \(BatchNorm1d\): has 5 features but the Linear before it has 4",
        ),
        (
            lambda: [_linear(3, 4), nn.ReLU(), _bn(5), _linear(4, 1)],
            r"module\[2\] \(BatchNorm1d\): has 5 features but the Linear after it "
            r"\(module\[3\]\) takes 4",
        ),
    ],
)
def test_from_torch_refuses_unfoldable_batchnorm(layers, message):
    with pytest.raises(InputError, match=message):
        Network.from_torch(nn.Sequential(*layers()))


def test_from_torch_tanh_sigmoid_forward_and_layer_outputs_match_torch():
    model = (
        nn.Sequential(
            _linear(6, 10, seed=1),
            nn.Tanh(),
            _linear(10, 8, seed=2),
            nn.Sigmoid(),
            _linear(8, 7, seed=3),
            nn.ReLU(),
            _linear(7, 4, seed=4),
        )
        .double()
        .eval()
    )
    X = np.random.default_rng(9).normal(scale=3.0, size=(80, 6))
    net = Network.from_torch(model)
    assert net.activation == ("tanh", "sigmoid", "relu")
    T = torch.from_numpy(X)
    with torch.no_grad():
        want = [model[:2](T), model[:4](T), model[:6](T), model(T)]
    outs = net.layer_outputs(X)
    for got, ref in zip(outs, want, strict=True):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(net.forward(X), outs[-1])
    np.testing.assert_array_equal(net.predict(X), want[-1].numpy().argmax(axis=1))


@pytest.fixture
def sklearn_nn():
    return pytest.importorskip(
        "sklearn.neural_network", reason="scikit-learn is optional: from_sklearn tests need it"
    )


# The tests compare outputs of whatever the short fits produce; convergence is irrelevant.
# (Matched by message: the warning's class cannot be named where scikit-learn is absent.)
pytestmark = pytest.mark.filterwarnings("ignore:Stochastic Optimizer")


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_from_sklearn_multiclass_classifier(sklearn_nn):
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


def test_from_sklearn_binary_classifier_and_regressor(sklearn_nn):
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


def test_from_sklearn_identity_is_composed(sklearn_nn):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 3))
    reg = sklearn_nn.MLPRegressor(
        hidden_layer_sizes=(4, 3), activation="identity", max_iter=300, random_state=0
    ).fit(X, X @ [1.0, -2.0, 0.5])
    net = Network.from_sklearn(reg)
    assert net.n_layers == 1
    np.testing.assert_allclose(net.forward(X)[:, 0], reg.predict(X), rtol=1e-10, atol=1e-12)


def test_from_sklearn_rejects(sklearn_nn):
    with pytest.raises(InputError, match="not fitted"):
        Network.from_sklearn(sklearn_nn.MLPClassifier())
    X = np.random.default_rng(6).normal(size=(30, 2))
    reg = sklearn_nn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=20).fit(X, X[:, 0])
    reg.activation = "softplus"  # not one sklearn offers: a future or hand-edited estimator
    with pytest.raises(InputError, match="unsupported activation 'softplus'"):
        Network.from_sklearn(reg)
    with pytest.raises(InputError, match="MLPClassifier or MLPRegressor"):
        Network.from_sklearn(object())


@pytest.mark.parametrize("activation", ["tanh", "logistic"])
def test_from_sklearn_smooth_activations_match_sklearn(sklearn_nn, activation):
    from sklearn.neural_network._base import ACTIVATIONS as SK_ACTIVATIONS

    rng = np.random.default_rng(12)
    X = rng.normal(size=(100, 4))
    y = np.argmax(X[:, :3], axis=1)
    clf = sklearn_nn.MLPClassifier(
        hidden_layer_sizes=(9, 6), activation=activation, max_iter=200, random_state=0
    ).fit(X, y)
    net = Network.from_sklearn(clf)
    assert net.activation == ({"tanh": "tanh", "logistic": "sigmoid"}[activation],) * 2
    # Hidden layers as scikit-learn computes them (its own in-place activation functions).
    h = X
    want = []
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        h = h @ W + b
        if i < len(clf.coefs_) - 1:
            SK_ACTIVATIONS[activation](h)
        want.append(h)
    outs = net.layer_outputs(X)
    for got, ref in zip(outs, want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        _softmax(net.forward(X)), clf.predict_proba(X), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_array_equal(clf.classes_[net.predict(X)], clf.predict(X))
    reg = sklearn_nn.MLPRegressor(
        hidden_layer_sizes=(5,), activation=activation, max_iter=200, random_state=0
    ).fit(X, X.sum(axis=1))
    np.testing.assert_allclose(
        Network.from_sklearn(reg).forward(X)[:, 0], reg.predict(X), rtol=1e-12, atol=1e-12
    )
