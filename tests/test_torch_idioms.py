"""The ways researchers write their torch networks, imported by ``Network.from_torch``.

The PyTorch tutorial's LeNet (``F.max_pool2d``, ``torch.flatten`` or ``x.view(-1, N)``),
torchvision's ResNet basic block (one ``nn.ReLU(inplace=True)`` called twice,
``out += identity``, ``AdaptiveAvgPool2d((1, 1))``), the CIFAR ResNets of kuangliu's
pytorch-cifar (``F.avg_pool2d(out, 4)``, ``out.view(out.size(0), -1)``, an empty
``nn.Sequential`` shortcut), VGG's ``AdaptiveAvgPool2d((7, 7))`` and ``Dropout``, global
mean pooling ``x.mean((2, 3))``. References: torch's own float64 forward, and for every
functional form the layer graph of the same network written with modules (already
tested against torch autograd and an independent region walk in ``test_graph.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from support import init_torch_module, small_inception, traced

import fastmem
from fastmem import InputError

torch = pytest.importorskip("torch", reason="the torch importer needs torch")
nn = torch.nn
F = torch.nn.functional


def _init(module: nn.Module, seed: int) -> nn.Module:
    return init_torch_module(module, seed, 0.4)


def _forward_matches_torch(net: fastmem.Network, module: nn.Module, shape) -> None:
    X = np.random.default_rng(3).normal(size=(6, int(np.prod(shape))))
    with torch.no_grad():
        want = module.double()(torch.from_numpy(X.reshape(6, *shape))).numpy()
    got = net.forward(X)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    np.testing.assert_array_equal(net.predict(X), want.argmax(axis=1))


# ------------------------------------------------------------ whole architectures
class LeNet(nn.Module):
    """The PyTorch tutorial's network (functional pooling and flatten)."""

    def __init__(self, view: bool = False) -> None:
        super().__init__()
        self.view = view
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, 16 * 4 * 4) if self.view else torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class TVBasicBlock(nn.Module):
    """torchvision's ``BasicBlock``."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TVResNet(nn.Module):
    """torchvision's ResNet layout, small: stem, max pool, two stages, global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(TVBasicBlock(4, 4))
        down = nn.Sequential(nn.Conv2d(4, 8, 1, 2, bias=False), nn.BatchNorm2d(8))
        self.layer2 = nn.Sequential(TVBasicBlock(4, 8, 2, down))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class CifarBlock(nn.Module):
    """kuangliu/pytorch-cifar's ``BasicBlock`` (an empty ``nn.Sequential`` shortcut)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = CifarBlock(4, 4)
        self.layer2 = CifarBlock(4, 8, 2)
        self.linear = nn.Linear(8, 5)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer2(self.layer1(out))
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        return self.linear(out)


class VGGish(nn.Module):
    """VGG's layout: features, ``AdaptiveAvgPool2d``, a classifier with ``Dropout``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1),
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(6 * 2 * 2, 12), nn.ReLU(True), nn.Dropout(), nn.Linear(12, 5)
        )

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


class MeanPool(nn.Module):
    """Global average pooling written as a mean over the map, then reshaped by x.shape."""

    def __init__(self, keepdim: bool) -> None:
        super().__init__()
        self.keepdim = keepdim
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = F.leaky_relu(self.conv(x), 0.1)
        x = x.mean(dim=(-2, -1), keepdim=True) if self.keepdim else x.mean((2, 3))
        return self.fc(x.reshape(x.shape[0], -1))


class LambdaLayer(nn.Module):
    def __init__(self, lambd) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class OptionABlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10's ``BasicBlock`` (He et al.'s CIFAR ResNets):
    the option-A shortcut subsamples ``x[:, :, ::2, ::2]`` and pads channels with zeros."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = LambdaLayer(
                lambda x: F.pad(
                    x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0
                )
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class CifarResNetA(nn.Module):
    """akamaster's ``ResNet`` (three stages, ``F.avg_pool2d(out, out.size()[3])``), one
    block per stage and a quarter of the width."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(OptionABlock(4, 4))
        self.layer2 = nn.Sequential(OptionABlock(4, 8, 2))
        self.layer3 = nn.Sequential(OptionABlock(8, 16, 2))
        self.linear = nn.Linear(16, 5)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 block: 1x1 expansion, depthwise 3x3, 1x1 projection,
    ReLU6, and the skip without an activation after it."""

    def __init__(self, c: int, expand: int) -> None:
        super().__init__()
        h = c * expand
        self.conv = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(inplace=True),
            nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU6(inplace=True),
            nn.Conv2d(h, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x):
        return x + self.conv(x)


class MobileNetish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, 2, 1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU6(inplace=True),
            InvertedResidual(4, 2),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(4, 5))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


def SmallInception() -> nn.Module:
    """Zhang et al.'s small Inception (``support.small_inception``), a sixteenth of the
    width and fewer modules."""
    return small_inception(6, [("i", 2, 2), ("i", 2, 3), ("d", 5), ("i", 7, 3), ("d", 6)])


ARCHITECTURES = {
    "small-inception": (SmallInception, (3, 12, 12)),
    "mobilenet-v2-block": (MobileNetish, (3, 8, 8)),
    "cifar-resnet-option-a": (CifarResNetA, (3, 8, 8)),
    "lenet": (lambda: LeNet(), (1, 28, 28)),
    "lenet-view": (lambda: LeNet(view=True), (1, 28, 28)),
    "torchvision-resnet": (TVResNet, (3, 8, 8)),
    "cifar-resnet": (CifarResNet, (3, 8, 8)),
    "vgg": (VGGish, (3, 8, 8)),
    "mean-pool": (lambda: MeanPool(False), (3, 6, 6)),
    "mean-pool-keepdim": (lambda: MeanPool(True), (3, 6, 6)),
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_architecture_imports_and_matches_torch(name: str) -> None:
    build, shape = ARCHITECTURES[name]
    module = _init(build(), seed=1)
    net = fastmem.Network.from_torch(module, input_shape=shape)
    assert net.layer_graph is not None
    _forward_matches_torch(net, module, shape)


@pytest.mark.parametrize(
    "name",
    [
        "torchvision-resnet",
        "cifar-resnet",
        "cifar-resnet-option-a",
        "mobilenet-v2-block",
        "small-inception",
    ],
)
def test_residual_architectures_certify_soundly_and_find_real_flips(name: str) -> None:
    build, shape = ARCHITECTURES[name]
    module = _init(build(), seed=2).double()
    net = fastmem.Network.from_torch(module, input_shape=shape)
    X = np.random.default_rng(5).random((12, int(np.prod(shape))))
    r = 0.02
    res = fastmem.critical_samples(net, X, radius=r, steps=30, certify="crown", rng=0)
    assert res.n_critical + res.n_robust > 0
    xt = torch.from_numpy(X.reshape(-1, *shape))
    with torch.no_grad():
        pred = module(xt).argmax(1).numpy()
    for i in np.flatnonzero(res.status == "critical"):  # each reported flip flips torch's class
        adv = res.adversarial[i]
        assert np.abs(adv - X[i]).max() <= r * (1 + 1e-12)
        with torch.no_grad():
            got = module(torch.from_numpy(adv.reshape(1, *shape))).argmax(1).item()
        assert got != pred[i]
    # a torch PGD of its own never flips a sample certified robust
    rob = np.flatnonzero(res.status == "robust")
    if rob.size:
        x0 = xt[rob]
        y = torch.from_numpy(pred[rob])
        lo, hi = (x0 - r).clamp(0, 1), (x0 + r).clamp(0, 1)
        x = x0.clone()
        for _ in range(50):
            x.requires_grad_(True)
            loss = F.cross_entropy(module(x), y)
            (g,) = torch.autograd.grad(loss, x)
            x = torch.min(torch.max(x.detach() + 0.005 * g.sign(), lo), hi)
        with torch.no_grad():
            assert (module(x).argmax(1) == y).all()


# ------------------------------------------------- functional forms = module forms
class Body(nn.Module):
    """conv -> ``step`` -> a flattening ``tail`` -> linear; ``step`` and ``tail`` are the
    forms compared."""

    def __init__(self, step, tail, width: int, shape=(3, 6, 6), seed: int = 0) -> None:
        super().__init__()
        self.step, self.tail = step, tail
        self.conv = nn.Conv2d(shape[0], 3, 3, padding=1)
        self.fc = nn.Linear(width, 4)
        _init(self, seed)

    def forward(self, x):
        return self.fc(self.tail(self.step(self.conv(x))))


def _flat(x):
    return torch.flatten(x, 1)


class Mod(nn.Module):
    """Wraps a module so that ``step`` can be a module call in the traced forward."""

    def __init__(self, *mods) -> None:
        super().__init__()
        self.seq = nn.ModuleList(mods)

    def forward(self, x):
        for m in self.seq:
            x = m(x)
        return x


def _graph_signature(ops) -> list:
    """Everything that defines each op (not its name): kind, shapes, parameters, arrays."""
    out = []
    for op in ops:
        arrays = {k: np.asarray(v).tolist() for k, v in sorted(op.arrays.items())}
        branches = [_graph_signature(br) for br in op.branches]
        out.append((op.kind, op.in_shape, op.out_shape, sorted(op.params.items()), arrays,
                    branches))  # fmt: skip
    return out


PAIRS = {
    # name: (functional step, functional tail, module step, module tail, flat width)
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), _flat, Mod(nn.MaxPool2d(2)), _flat, 27),
    "max_pool2d-kwargs": (
        lambda x: F.max_pool2d(x, kernel_size=3, stride=2, padding=1),
        _flat,
        Mod(nn.MaxPool2d(3, 2, 1)),
        _flat,
        27,
    ),
    "torch.max_pool2d": (lambda x: torch.max_pool2d(x, 2), _flat, Mod(nn.MaxPool2d(2)), _flat, 27),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), _flat, Mod(nn.AvgPool2d(2)), _flat, 27),
    "avg_pool2d-no-pad-count": (
        lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
        _flat,
        Mod(nn.AvgPool2d(3, 1, 1, count_include_pad=False)),
        _flat,
        108,
    ),
    "adaptive_avg_pool2d": (
        lambda x: F.adaptive_avg_pool2d(x, 3),
        _flat,
        Mod(nn.AvgPool2d(2)),
        _flat,
        27,
    ),
    "AdaptiveAvgPool2d-global": (
        Mod(nn.AdaptiveAvgPool2d((1, 1))),
        _flat,
        Mod(nn.AvgPool2d(6)),
        _flat,
        3,
    ),
    "AdaptiveAvgPool2d-None": (
        Mod(nn.AdaptiveAvgPool2d((2, None))),
        _flat,
        Mod(nn.AvgPool2d((3, 1))),
        _flat,
        36,
    ),
    "AdaptiveMaxPool2d": (Mod(nn.AdaptiveMaxPool2d(3)), _flat, Mod(nn.MaxPool2d(2)), _flat, 27),
    "adaptive_max_pool2d": (
        lambda x: F.adaptive_max_pool2d(x, 1),
        _flat,
        Mod(nn.MaxPool2d(6)),
        _flat,
        3,
    ),
    "mean": (
        lambda x: x.mean((2, 3)),
        lambda x: x,
        Mod(nn.AvgPool2d(6)),
        _flat,
        3,
    ),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), _flat, Mod(nn.LeakyReLU(0.2)), _flat, 108),
    "hardtanh": (lambda x: F.hardtanh(x), _flat, Mod(nn.Hardtanh()), _flat, 108),
    "relu6": (lambda x: F.relu6(x), _flat, Mod(nn.ReLU6()), _flat, 108),
    "Hardtanh(0, 6)": (Mod(nn.Hardtanh(0.0, 6.0)), _flat, Mod(nn.ReLU6()), _flat, 108),
    "hardtanh-bounds": (
        lambda x: F.hardtanh(x, -2.0, 3.0),
        _flat,
        Mod(nn.Hardtanh(-2.0, 3.0)),
        _flat,
        108,
    ),
    "max_pool2d-ceil": (
        lambda x: F.max_pool2d(x, 4, ceil_mode=True),
        _flat,
        Mod(nn.MaxPool2d(4, ceil_mode=True)),
        _flat,
        12,
    ),
    "avg_pool2d-ceil": (
        lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        _flat,
        Mod(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
        _flat,
        48,
    ),
    "hardsigmoid": (lambda x: F.hardsigmoid(x), _flat, Mod(nn.Hardsigmoid()), _flat, 108),
    "zero-pad": (
        lambda x: F.pad(x, (1, 1, 1, 1)),
        _flat,
        Mod(nn.ZeroPad2d(1)),
        _flat,
        192,
    ),
    "constant-pad-0": (
        lambda x: F.pad(x, (2, 0, 1, 1)),
        _flat,
        Mod(nn.ConstantPad2d((2, 0, 1, 1), 0.0)),
        _flat,
        192,
    ),
    "relu-inplace": (lambda x: F.relu(x, inplace=True), _flat, Mod(nn.ReLU()), _flat, 108),
    "tanh-method": (lambda x: x.tanh(), _flat, Mod(nn.Tanh()), _flat, 108),
    "sigmoid": (lambda x: torch.sigmoid(x), _flat, Mod(nn.Sigmoid()), _flat, 108),
    "dropout-eval": (
        lambda x: F.relu(F.dropout(x, 0.5, training=False)),
        _flat,
        Mod(nn.ReLU()),
        _flat,
        108,
    ),
    "view-minus-one": (F.relu, lambda x: x.view(-1, 108), Mod(nn.ReLU()), _flat, 108),
    "reshape-shape0": (
        F.relu,
        lambda x: x.reshape(x.shape[0], -1),
        Mod(nn.ReLU()),
        _flat,
        108,
    ),
    "view-size-product": (
        F.relu,
        lambda x: x.view(x.size(0), x.size(1) * x.size(2) * x.size()[3]),
        Mod(nn.ReLU()),
        _flat,
        108,
    ),
    "torch.reshape": (
        F.relu,
        lambda x: torch.reshape(x, (x.size(0), -1)),
        Mod(nn.ReLU()),
        _flat,
        108,
    ),
    "flatten-kwarg": (
        F.relu,
        lambda x: x.flatten(start_dim=1),
        Mod(nn.ReLU()),
        _flat,
        108,
    ),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_functional_form_is_the_module_form(name: str) -> None:
    f_step, f_tail, m_step, m_tail, width = PAIRS[name]
    functional = Body(f_step, f_tail, width, seed=4)
    modules = Body(m_step, m_tail, width, seed=4)
    a = fastmem.Network.from_torch(functional, input_shape=(3, 6, 6))
    b = fastmem.Network.from_torch(modules, input_shape=(3, 6, 6))
    assert _graph_signature(a.layer_graph.ops) == _graph_signature(b.layer_graph.ops)
    _forward_matches_torch(a, functional, (3, 6, 6))


SLICES = {
    "subsample": lambda x: x[:, :, ::2, ::2],
    "offset-subsample": lambda x: x[:, :, 1::2, 2::3],
    "channels": lambda x: x[:, 1:],
    "channel-step": lambda x: x[:, ::2, :, 1:],
    "short-index": lambda x: x[:, :2],
    "pad-channels": lambda x: F.pad(x, (0, 0, 0, 0, 2, 1)),
    "pad-spatial": lambda x: F.pad(x, (1, 0, 2, 1)),
    "pad-width-only": lambda x: F.pad(x, [2, 2], mode="constant", value=0.0),
    "option-a": lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 1, 1), "constant", 0),
}


class Sliced(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            width = int(np.prod(fn(torch.zeros(1, 3, 6, 6)).shape))
        self.fc = nn.Linear(width, 4)
        _init(self, 12)

    def forward(self, x):
        return self.fc(torch.flatten(self.fn(F.relu(self.conv(x))), 1))


@pytest.mark.parametrize("name", sorted(SLICES))
def test_slices_and_zero_padding_match_torch(name: str) -> None:
    module = Sliced(SLICES[name])
    net = fastmem.Network.from_torch(module, input_shape=(3, 6, 6))
    _forward_matches_torch(net, module, (3, 6, 6))


class SliceOnly(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return torch.flatten(self.fn(x), 1)


@pytest.mark.parametrize("name", sorted(SLICES))
def test_slices_and_zero_padding_are_exact_selections(name: str) -> None:
    """The 0/1 convolution of a slice or a zero pad returns its inputs bit for bit."""
    net = fastmem.Network.from_torch(SliceOnly(SLICES[name]), input_shape=(3, 6, 6))
    X = np.random.default_rng(1).normal(size=(3, 108)) * 10.0 ** np.arange(-150, 150, 100)[:, None]
    want = SLICES[name](torch.from_numpy(X.reshape(3, 3, 6, 6))).reshape(3, -1).numpy()
    np.testing.assert_array_equal(net.forward(X), want)


def test_sequential_with_adaptive_pooling() -> None:
    """An ``nn.Sequential`` with ``AdaptiveAvgPool2d`` is lowered to dense matrices (as
    with ``AvgPool2d``); with ``AdaptiveMaxPool2d`` it is a layer graph."""
    avg = _init(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                              nn.Flatten(), nn.Linear(12, 3)), seed=6)  # fmt: skip
    net = fastmem.Network.from_torch(avg, input_shape=(1, 8, 8))
    assert net.layer_graph is None
    _forward_matches_torch(net, avg, (1, 8, 8))
    same = _init(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AvgPool2d(3),
                               nn.Flatten(), nn.Linear(12, 3)), seed=6)  # fmt: skip
    ref = fastmem.Network.from_torch(same, input_shape=(1, 8, 8))
    for w, v in zip(net.weights + net.biases, ref.weights + ref.biases, strict=True):
        np.testing.assert_array_equal(w, v)
    mx = _init(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(3),
                             nn.Flatten(), nn.Linear(27, 3)), seed=6)  # fmt: skip
    net = fastmem.Network.from_torch(mx, input_shape=(1, 8, 8))
    assert net.layer_graph is not None
    _forward_matches_torch(net, mx, (1, 8, 8))


# ------------------------------------------------------------------ refusals
REFUSED = {
    "negative-kernel": (
        lambda x: F.max_pool2d(x, -2),
        _flat,
        27,
        r"\(max_pool2d\): kernel \(-2, -2\), stride \(-2, -2\) and dilation \(1, 1\) must be >= 1",
    ),
    "slope-not-a-number": (
        lambda x: F.leaky_relu(x, "a"),
        _flat,
        108,
        r"\(leaky_relu\): negative_slope must be a number, got 'a'",
    ),
    "product-of-sizes-with-batch": (
        F.relu,
        lambda x: x.view(x.size(0) * 2, -1),
        108,
        r"\(mul\): unsupported arguments|only with a finite number",
    ),
    "adaptive-unequal": (
        Mod(nn.AdaptiveAvgPool2d(4)),
        _flat,
        48,
        r"\(AdaptiveAvgPool2d\): output size 4x4 does not divide the input map 6x6",
    ),
    "adaptive-functional-unequal": (
        lambda x: F.adaptive_max_pool2d(x, (4, 3)),
        _flat,
        36,
        r"adaptive_max_pool2d.*output size 4x3 does not divide the input map 6x6",
    ),
    "dropout-training": (
        lambda x: F.dropout(x, 0.5),
        _flat,
        108,
        r"\(dropout\): training=True when traced",
    ),
    "constant-pad-nonzero": (
        Mod(nn.ConstantPad2d(1, 0.5)),
        _flat,
        192,
        r"\(ConstantPad2d\): only zero padding",
    ),
    "prelu-per-channel": (
        Mod(nn.PReLU(3)),
        _flat,
        108,
        r"\(PReLU\): has 3 slopes \(num_parameters=3\); only one slope",
    ),
    "hardswish": (lambda x: F.hardswish(x), _flat, 108, r"\(hardswish\): not supported"),
    "return_indices": (
        lambda x: F.max_pool2d(x, 2, return_indices=True)[0],
        _flat,
        27,
        r"max_pool2d_with_indices \(max_pool2d_with_indices\): unsupported operation",
    ),
    "view-constant-batch": (
        F.relu,
        lambda x: x.view(6, -1),
        108,
        r"\(view\): only flattening each sample",
    ),
    "mean-channels": (
        lambda x: x.mean(1),
        _flat,
        36,
        r"\(mean\): only the mean over the spatial dimensions",
    ),
    "indexing": (lambda x: x[:, 0], _flat, 36, r"\(getitem\): indexing a tensor is not supported"),
    "slice-stops-early": (
        lambda x: x[:, :, :4:2],
        _flat,
        36,
        r"a slice that stops before the map's end",
    ),
    "slice-batch": (lambda x: x[1:], _flat, 108, r"\(getitem\): slices the batch"),
    "cat-batch": (lambda x: torch.cat([x, x]), _flat, 108, r"\(cat\): only along the channels"),
    "cat-width": (
        lambda x: torch.cat([x, x[:, :, ::2]], 1),
        _flat,
        162,
        r"\(cat\): joins tensors of shapes \(3, 6, 6\) and \(3, 3, 6\)",
    ),
    "pad-reflect": (
        lambda x: F.pad(x, (1, 1), mode="reflect"),
        _flat,
        144,
        r"\(pad\): only zero padding",
    ),
    "pad-value": (lambda x: F.pad(x, (1, 1), value=1.0), _flat, 144, r"only zero padding"),
    "pad-crop": (lambda x: F.pad(x, (-1, 0)), _flat, 90, r"by non-negative amounts"),
    "pool-size-from-tensor": (
        lambda x: F.max_pool2d(x, x.size(0)),
        _flat,
        3,
        r"kernel_size must be a constant",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_forms_are_refused_naming_the_node(name: str) -> None:
    step, tail, width, message = REFUSED[name]
    with pytest.raises(InputError, match=message):
        fastmem.Network.from_torch(Body(step, tail, width), input_shape=(3, 6, 6))


@pytest.mark.parametrize("pool", ["max", "avg", "avg-no-pad-count"])
def test_ceil_mode_pooling_matches_torch(pool: str) -> None:
    """``ceil_mode=True`` over map sizes, kernels, strides, paddings and dilations: a last
    window over the map's edge where torch's rule adds one (never one that would start in
    the padding); max pooling ignores what hangs over, average pooling divides by torch's
    divisor. Forward and predictions against torch in float64; walks and certificates run
    on such pools in tests/test_graph.py (``CeilNet``)."""
    tried = 0
    for size in (5, 6, 7, 8):
        for k in (2, 3):
            for s in (1, 2, 3):
                for p in range(k // 2 + 1):
                    for d in (1, 2) if pool == "max" else (1,):
                        if size + 2 * p < d * (k - 1) + 1:
                            continue
                        if pool == "max":
                            mod = nn.MaxPool2d(k, s, p, dilation=d, ceil_mode=True)
                        else:
                            mod = nn.AvgPool2d(
                                k, s, p, ceil_mode=True, count_include_pad=pool == "avg"
                            )
                        with torch.no_grad():
                            out = mod(torch.zeros(1, 3, size, size))
                        shape = (2, size, size)
                        seed = size * 7 + k * 3 + s + p + d
                        graph = Body(Mod(mod), _flat, int(out.numel()), shape=shape, seed=seed)
                        net = fastmem.Network.from_torch(graph, input_shape=shape)
                        _forward_matches_torch(net, graph, shape)
                        tried += 1
    assert tried > 40


def test_ceil_mode_pads_follow_torch_output_size() -> None:
    """:func:`fastmem._graph.ceil_mode_pads` gives torch's output size under floor
    division, checked against torch's own pooling on every small case."""
    from fastmem._graph import ceil_mode_pads

    for size in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 5):
                for p in range(k // 2 + 1):
                    for d in (1, 2, 3):
                        if size + 2 * p < d * (k - 1) + 1:
                            continue
                        want = F.max_pool2d(
                            torch.zeros(1, 1, size, size), k, s, p, d, ceil_mode=True
                        ).shape[-1]
                        (pt, pb), (pl, pr) = ceil_mode_pads(
                            "p", (1, size, size), k, s, ((p, p),) * 2, d
                        )
                        assert (pt, pl) == (p, p) and pb == pr and p <= pb < p + s
                        assert (size + pt + pb - d * (k - 1) - 1) // s + 1 == want


def test_prelu_and_hardsigmoid_kinks_are_exact() -> None:
    """A one-slope PReLU is a leaky ReLU of its slope (negative slopes too); Hardsigmoid is
    0 at -3 and below, 1 at 3 and above, with its pattern bits flipping exactly there."""
    for slope in (0.25, -0.5, 1.5):
        seq = nn.Sequential(nn.Linear(2, 3), nn.PReLU(init=slope), nn.Linear(3, 2)).double()
        net = fastmem.Network.from_torch(seq, input_shape=(2,))
        X = np.random.default_rng(0).normal(size=(20, 2))
        with torch.no_grad():
            want = seq(torch.from_numpy(X)).numpy()
        np.testing.assert_allclose(net.forward(X), want, rtol=1e-13, atol=1e-13)
    seq = nn.Sequential(nn.Linear(1, 1), nn.Hardsigmoid(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        seq[0].weight.fill_(1.0)
        seq[0].bias.zero_()
        seq[2].weight.fill_(1.0)
        seq[2].bias.zero_()
    net = fastmem.Network.from_torch(seq, input_shape=(1,))
    z = np.array([[-4.0], [-3.0], [-1.5], [0.0], [2.25], [3.0], [5.0]])
    np.testing.assert_array_equal(net.forward(z)[:, 0], [0, 0, 0.25, 0.5, 0.875, 1, 1])
    # the states of hard-tanh at z / 3 (its bits z > -1, z > 1: the kink z = 3 has the
    # middle piece's bits), three in all
    codes = [int(c) for c in net.activation_patterns(z)[:, 0]]
    assert codes[0] == codes[1] and codes[2] == codes[3] == codes[4] == codes[5] != codes[6]
    assert len(set(codes)) == 3
    # the slope at the kinks is autograd's (0 at z = -3 and z = 3)
    seq3 = nn.Sequential(nn.Linear(1, 1), nn.Hardsigmoid(), nn.Linear(1, 2)).double()
    with torch.no_grad():
        seq3[0].weight.fill_(1.0)
        seq3[0].bias.zero_()
    net3 = fastmem.Network.from_torch(seq3, input_shape=(1,))
    y = np.zeros(z.shape[0], dtype=np.int64)
    xt = torch.from_numpy(z).requires_grad_(True)
    loss = F.cross_entropy(seq3(xt), torch.from_numpy(y), reduction="sum")
    (g,) = torch.autograd.grad(loss, xt)
    ls = fastmem.loss_sensitivity(net3, z, y)
    # (torch's float64 hardsigmoid backward multiplies by 1.0f / 6, a float32 constant:
    # 3e-8 off 1/6)
    np.testing.assert_allclose(ls.values, np.abs(g.numpy())[:, 0], rtol=1e-7, atol=1e-15)
    assert ls.values[1] == ls.values[5] == 0 and (ls.values[2:5] > 0).all()


def test_adaptive_pool_kernel_checks_output_size() -> None:
    from fastmem._graph import adaptive_pool_kernel

    assert adaptive_pool_kernel("p", 1, (2, 5, 5)) == (5, 5)
    assert adaptive_pool_kernel("p", (None, 2), (2, 5, 4)) == (1, 2)
    for bad in (0, (2, 0), (2,), "2", (True, 1), 2.0):
        with pytest.raises(InputError, match="p: output_size"):
            adaptive_pool_kernel("p", bad, (2, 4, 4))
    with pytest.raises(InputError, match=r"p: takes a \(C, H, W\) tensor"):
        adaptive_pool_kernel("p", 1, (16,))


# ------------------------------------------------------- a final softmax / log_softmax
class ExamplesMnist(nn.Module):
    """pytorch/examples' mnist/main.py ``Net``: its forward ends in ``F.log_softmax``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = torch.flatten(self.dropout1(F.max_pool2d(x, 2)), 1)
        x = self.fc2(self.dropout2(F.relu(self.fc1(x))))
        return F.log_softmax(x, dim=1)


def _logits_then(module: nn.Module, net: fastmem.Network, shape, kind: str) -> None:
    """``net`` outputs the logits whose softmax / log_softmax ``module`` returns."""
    X = np.random.default_rng(8).random((5, int(np.prod(shape))))
    with torch.no_grad():
        want = module.double()(torch.from_numpy(X.reshape(5, *shape)))
    z = torch.from_numpy(net.forward(X))
    got = torch.log_softmax(z, 1) if kind == "log_softmax" else torch.softmax(z, 1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(net.predict(X), want.numpy().argmax(axis=1))


FINALS = {
    "examples-mnist": (ExamplesMnist, (1, 28, 28), "log_softmax"),
    "sequential-softmax": (
        lambda: nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), nn.Softmax(dim=1)),
        None,
        "softmax",
    ),
    "sequential-conv-logsoftmax": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3), nn.LogSoftmax(-1)
        ),
        (1, 6, 6),
        "log_softmax",
    ),
}


class SoftmaxHead(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.body = Body(F.relu, _flat, 108, seed=9)
        self.logsm = nn.LogSoftmax(dim=1)

    def forward(self, x):
        z = self.body(x)
        if self.how == "method":
            return z.softmax(dim=1)
        if self.how == "torch":
            return torch.softmax(z, -1)
        return self.logsm(z)


@pytest.mark.parametrize("how", ["method", "torch", "module"])
def test_final_softmax_forms_are_left_out(how: str) -> None:
    module = SoftmaxHead(how).eval()
    net = fastmem.Network.from_torch(module, input_shape=(3, 6, 6))
    _logits_then(module, net, (3, 6, 6), "log_softmax" if how == "module" else "softmax")


@pytest.mark.parametrize(
    "name", ["examples-mnist", "sequential-softmax", "sequential-conv-logsoftmax"]
)
def test_networks_ending_in_softmax_import_their_logits(name: str) -> None:
    build, shape, kind = FINALS[name]
    module = _init(build(), seed=3)
    net = fastmem.Network.from_torch(module, input_shape=shape)
    _logits_then(module, net, shape if shape is not None else (6,), kind)


def test_softmax_over_one_output_is_refused() -> None:
    """A softmax over a single output is a constant (one class); left out, the one logit
    would read as a binary classifier's, other classes than the module's: refused, in the
    dense import, a traced Sequential and a forward of one's own."""
    dense = nn.Sequential(nn.Linear(3, 1), nn.LogSoftmax(1))
    pooled = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 1),
        nn.Softmax(dim=1),
    )  # fmt: skip

    class Own(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 1)

        def forward(self, x):
            return torch.log_softmax(self.a(x), 1)

    for module, shape, where in (
        (dense, (3,), r"module\[1\] \(LogSoftmax\)"),
        (pooled, (1, 4, 4), r"module \(softmax\)"),
        (Own(), (3,), r"module \(log_softmax\)"),
    ):
        with pytest.raises(InputError, match=where + r": a softmax over a single output"):
            fastmem.Network.from_torch(module, input_shape=shape)


def test_softmax_elsewhere_is_refused() -> None:
    class Middle(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.b(F.softmax(self.a(x), dim=1))

    with pytest.raises(InputError, match=r"b: uses the result of a softmax; .* last operation"):
        fastmem.Network.from_torch(Middle(), input_shape=(4,))

    class OverBatch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 3)

        def forward(self, x):
            return F.log_softmax(self.a(x), dim=0)

    with pytest.raises(
        InputError, match=r"log_softmax.*only over the classes \(dim=1\), got dim=0"
    ):
        fastmem.Network.from_torch(OverBatch(), input_shape=(4,))
    seq = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=0))
    with pytest.raises(InputError, match=r"module\[1\] \(Softmax\): only over the classes"):
        fastmem.Network.from_torch(seq)
    seq = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1), nn.Linear(3, 2))
    with pytest.raises(InputError, match=r"module\[1\] \(Softmax\)"):
        fastmem.Network.from_torch(seq)


# ------------------------------------------------------- arithmetic with numbers
class Scaled(nn.Module):
    """Input scaling written in the forward (MNIST's normalisation, [-1, 1] scaling)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(32, 3)
        _init(self, 11)

    def forward(self, x):
        if self.how == "mnist":
            x = (x - 0.1307) / 0.3081
        elif self.how == "sym":
            x = 2 * x - 1
        elif self.how == "neg":
            x = 1.0 - (-x) * 0.5
        elif self.how == "inplace":
            x = x * 1
            x += 3
            x /= 255
        y = F.relu(self.conv(x))
        return self.fc(torch.flatten(y, 1) * 0.25 + 1)


@pytest.mark.parametrize("how", ["mnist", "sym", "neg", "inplace"])
def test_arithmetic_with_numbers_matches_torch(how: str) -> None:
    module = Scaled(how)
    net = fastmem.Network.from_torch(module, input_shape=(1, 6, 6))
    assert {op.kind for op in net.layer_graph.ops} >= {"channel_affine"}
    _forward_matches_torch(net, module, (1, 6, 6))
    X = np.random.default_rng(2).random((4, 36))
    res = fastmem.along_segments(net, X[:2], X[2:])
    assert (res.counts >= 1).all()


def test_arithmetic_that_is_not_affine_is_refused() -> None:
    class Product(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) * x

    with pytest.raises(InputError, match=r"\(mul\): of two tensors is not supported"):
        fastmem.Network.from_torch(Product(), input_shape=(4,))

    class ByZero(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x / 0)

    with pytest.raises(InputError, match=r"\(div\): only division of a tensor by a nonzero"):
        fastmem.Network.from_torch(ByZero(), input_shape=(4,))

    class Reciprocal(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(1 / x)

    with pytest.raises(InputError, match=r"\(div\): only division of a tensor by a nonzero"):
        fastmem.Network.from_torch(Reciprocal(), input_shape=(4,))


def test_imported_architectures_save_and_load(tmp_path) -> None:
    for name in ("torchvision-resnet", "mean-pool"):
        build, shape = ARCHITECTURES[name]
        module = _init(build(), seed=1)
        net = fastmem.Network.from_torch(module, input_shape=shape)
        net.save(tmp_path / f"{name}.npz")
        back = fastmem.Network.load(tmp_path / f"{name}.npz")
        X = np.random.default_rng(0).random((3, int(np.prod(shape))))
        np.testing.assert_array_equal(back.forward(X), net.forward(X))
        np.testing.assert_array_equal(back.pattern_hashes(X), net.pattern_hashes(X))


# ------------------------------------------------------------------ clamps (ReLU6)
def test_relu6_regions_and_kinks_on_a_line() -> None:
    """Along a line of a 1-input ReLU6 net, the breakpoints are exactly where a neuron's
    pre-activation crosses 0 or 6 (computed here by hand), and the gradient at a kink
    is autograd's."""
    gen = np.random.default_rng(4)
    w, b = gen.normal(size=5) * 3, gen.normal(size=5) * 4
    module = nn.Sequential(nn.Linear(1, 5), nn.ReLU6(), nn.Linear(5, 3)).double().eval()
    with torch.no_grad():
        module[0].weight.copy_(torch.from_numpy(w[:, None]))
        module[0].bias.copy_(torch.from_numpy(b))
    net = fastmem.Network.from_torch(module, input_shape=(1,))
    crossings = np.concatenate([-b / w, (6 - b) / w])
    want = np.sort(crossings[(crossings > -10) & (crossings < 10)])
    res = fastmem.along_segments(net, np.array([[-10.0]]), np.array([[10.0]]))
    assert res.counts[0] == want.size + 1
    got = -10 + 20 * np.asarray(res.breakpoints[0])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # states: a point between consecutive kinks has the forward pass's pattern
    mids = (np.concatenate([[-10], want]) + np.concatenate([want, [10]])) / 2
    assert len(set(net.pattern_hashes(mids[:, None]).tolist())) == mids.size
    # loss sensitivity against autograd, at points exactly on the kinks z = 0 and z = 6
    X = np.array([[-b[0] / w[0]], [(6 - b[1]) / w[1]], [0.3]])
    y = np.array([0, 1, 2])
    xt = torch.from_numpy(X).requires_grad_(True)
    loss = F.cross_entropy(module(xt), torch.from_numpy(y), reduction="sum")
    (g,) = torch.autograd.grad(loss, xt)
    ls = fastmem.loss_sensitivity(net, X, y)
    np.testing.assert_allclose(ls.values, np.abs(g.numpy()).sum(axis=1), rtol=1e-12, atol=1e-15)


def test_clamp_bounds_are_checked() -> None:
    for low, high in ((1.0, 1.0), (2.0, -2.0), (float("-inf"), 1.0)):
        clamp = nn.Hardtanh()
        clamp.min_val, clamp.max_val = low, high  # torch checks these only when built
        module = nn.Sequential(nn.Linear(2, 3), clamp, nn.Linear(3, 1))
        with pytest.raises(InputError, match=r"\(Hardtanh\): needs finite min_val < max_val"):
            fastmem.Network.from_torch(module, input_shape=(2,))
    with pytest.raises(InputError, match=r"input_shape: required .* such as Hardsigmoid"):
        fastmem.Network.from_torch(
            nn.Sequential(nn.Linear(2, 3), nn.Hardsigmoid(), nn.Linear(3, 1))
        )


def test_relu6_is_a_native_kind_in_both_imports() -> None:
    """ReLU6 and Hardtanh(0, 6) import as the activation kind relu6: an nn.Sequential
    without input_shape (a dense network), and a traced forward (a layer graph), with
    torch's values, and exactly torch's near 0 (relu6(1e-12) = 1e-12; through hard-tanh
    between affine maps it was 1.0000889e-12)."""
    rng = np.random.default_rng(5)
    for clamp in (nn.ReLU6(), nn.Hardtanh(0.0, 6.0)):
        seq = _init(nn.Sequential(nn.Linear(3, 6), clamp, nn.Linear(6, 2)), seed=3).double()
        with torch.no_grad():
            seq[0].weight.mul_(8.0)  # pre-activations on both sides of 0 and 6
        dense = fastmem.Network.from_torch(seq)
        assert dense.activation == ("relu6",)
        X = np.concatenate([rng.normal(size=(200, 3)), np.zeros((1, 3))])
        want = seq(torch.from_numpy(X)).detach().numpy()
        graph = fastmem.Network.from_torch(traced(seq), input_shape=(3,))
        for net in (dense, graph):
            np.testing.assert_allclose(net.forward(X), want, rtol=1e-13, atol=1e-15)
        h = torch.from_numpy(X) @ seq[0].weight.T + seq[0].bias
        assert ((h > 0) & (h < 6)).any() and (h > 6).any() and (h < 0).any()
    # a convolutional nn.Sequential given input_shape: lowered to dense layers, relu6 too
    for clamp in (nn.ReLU6(), nn.Hardtanh(0.0, 6.0)):
        cnn = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), clamp, nn.Flatten(), nn.Linear(32, 3))
        cnn = _init(cnn, seed=4).double()
        with torch.no_grad():
            cnn[0].weight.mul_(10.0)
        net = fastmem.Network.from_torch(cnn, input_shape=(1, 4, 4))
        assert net.layer_graph is None and net.activation == ("relu6",)
        X = rng.normal(size=(20, 16))
        want = cnn(torch.from_numpy(X.reshape(-1, 1, 4, 4))).detach().numpy()
        np.testing.assert_allclose(net.forward(X), want, rtol=1e-13, atol=1e-14)
    tiny = nn.Sequential(nn.Linear(1, 1), nn.ReLU6(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        tiny[0].weight.fill_(1.0), tiny[0].bias.zero_(), tiny[2].weight.fill_(1.0)
        tiny[2].bias.zero_()
    for net in (
        fastmem.Network.from_torch(tiny),
        fastmem.Network.from_torch(traced(tiny), input_shape=(1,)),
    ):
        assert net.forward(np.array([[1e-12]]))[0, 0] == 1e-12


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's own imports
def test_wrapped_models_import_as_the_model_inside() -> None:
    """``nn.DataParallel`` and ``torch.compile`` wrap the model without changing it."""
    seq = _init(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)), seed=13)
    want = fastmem.Network.from_torch(seq)
    for wrapped in (nn.DataParallel(seq), torch.compile(seq), nn.DataParallel(torch.compile(seq))):
        got = fastmem.Network.from_torch(wrapped)
        for a, b in zip(got.weights + got.biases, want.weights + want.biases, strict=True):
            np.testing.assert_array_equal(a, b)
    lenet = LeNet().eval()
    net = fastmem.Network.from_torch(torch.compile(lenet), input_shape=(1, 28, 28))
    _forward_matches_torch(net, lenet, (1, 28, 28))


class DenseBlock(nn.Module):
    """DenseNet's block: each layer reads the concatenation of all earlier outputs."""

    def __init__(self, c: int, growth: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(c + i * growth),
                nn.ReLU(),
                nn.Conv2d(c + i * growth, growth, 3, padding=1),
            )
            for i in range(layers)
        )

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class TinyDenseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.block = DenseBlock(2, 2, 4)
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        x = self.block(self.conv(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(x), 1), 1))


def test_densenet_block_joins_without_recomputing() -> None:
    """Each layer of a dense block is imported once: as many activations as the module
    has ReLUs (a join rebuilt for every later layer would repeat earlier layers, 2^k
    times the k-th)."""
    module = _init(TinyDenseNet(), seed=14)
    net = fastmem.Network.from_torch(module, input_shape=(1, 6, 6))
    relus = sum(isinstance(m, nn.ReLU) for m in module.modules()) + 1  # + the F.relu
    assert len(net.layer_graph.act_ops()) == relus
    _forward_matches_torch(net, module, (1, 6, 6))
    X = np.random.default_rng(6).random((3, 36))
    res = fastmem.along_segments(net, X[:1], X[1:2])
    assert res.counts[0] >= 1
