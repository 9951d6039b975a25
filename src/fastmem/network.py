"""`Network`: the piecewise-linear model every fastmem analysis takes."""

from __future__ import annotations

import json
import math
import numbers
import os
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _convert, _graph
from ._backend import Backend, array_module, select_backend, to_device
from ._graph import LayerGraph
from ._kinds import ACTIVATIONS, bits_per_neuron, snap_to_thresholds
from ._validate import (
    array_device,
    as_bool,
    as_float_array,
    as_generator,
    as_path,
    check_allocation,
    check_dtype,
    check_npz_sizes,
    common_device,
)
from .errors import InputError

__all__ = ["ACTIVATIONS", "SMOOTH_ACTIVATIONS", "Network", "sawtooth"]

#: Smooth hidden-layer activations: supported by forward, predict and layer_outputs only
#: (no linear regions, so no patterns, regions, intervals or critical samples).
SMOOTH_ACTIVATIONS = ("tanh", "sigmoid")
# scikit-learn's name for the logistic sigmoid.
_ALIASES = {"logistic": "sigmoid"}
_FORMAT_VERSION = 1
_GRAPH_FORMAT_VERSION = 2
#: What a network with max pooling or residual blocks (a layer graph) supports today.
GRAPH_ANALYSES = (
    "forward",
    "predict",
    "layer_outputs",
    "activation_patterns",
    "pattern_hashes",
    "save/load",
    "regions.distinct_patterns",
    "regions.along_segments (exact and sampled)",
    "intervals.generalization_intervals",
    "critical_samples, csr_curve, certified_radius (certify='ibp' or None)",
    "loss_sensitivity",
    "regions.distance_to_boundary",
    "information_plane (on layer_outputs)",
    "plane_regions",
)
# Rows per chunk are chosen so that one layer's pre-activations stay near this size.
_CHUNK_BYTES = 64 * 2**20


class Network:
    """A feed-forward network with an identity output layer.

    ``f(x) = W_L h_{L-1} + b_L`` with ``h_l = act_l(W_l h_{l-1} + b_l)`` and
    ``h_0 = x``. Weights are ``(out, in)`` as in PyTorch; inputs are rows
    ``(n, d)``. A single layer (a linear model) is a valid network. Instances
    are immutable: the arrays they expose are read-only.

    Hidden activations are piecewise linear (``relu``, ``leaky_relu``,
    ``hardtanh``, ``relu6``, ``threshold``) or smooth (``tanh``, ``sigmoid``). Smooth
    layers work with :meth:`forward`, :meth:`predict` and :meth:`layer_outputs`
    (hence the information plane); the analyses that need linear regions
    (activation patterns, regions, intervals, boundary distances, critical
    samples) call :meth:`require_piecewise_linear` and refuse them.

    Build one with :meth:`from_arrays`, :meth:`from_torch`, :meth:`from_sklearn`
    or :meth:`load`.

    Activation patterns
        :meth:`activation_patterns` packs the state of every hidden neuron into
        ``uint64`` words, hidden neurons numbered consecutively over the layers.
        ``relu``/``leaky_relu`` neurons own one bit (``z > 0``), ``threshold``
        neurons one bit (``z >= 0``, the Heaviside step ``1[z >= 0]``) and
        ``hardtanh`` neurons two bits (low ``z > -1``, high ``z > 1``: ``00``
        saturated at -1, ``01`` linear, ``11`` saturated at +1), ``relu6`` neurons
        likewise at 0 and 6 (low ``z > 0``, high ``z > 6``). Global bit
        ``g`` is bit ``g % 64`` (least significant first) of word ``g // 64``;
        unused bits are zero. :meth:`pattern_hashes` mixes the words of a row
        as ``h = 0x6A09E667F3BCC909; h = mix64(h ^ w)`` for each word ``w``,
        ``mix64`` being the splitmix64 finaliser.

    Examples
    --------
    >>> import numpy as np
    >>> import fastmem
    >>> rng = np.random.default_rng(0)
    >>> net = fastmem.Network.from_arrays(
    ...     [rng.normal(size=(8, 2)), rng.normal(size=(3, 8))],
    ...     [np.zeros(8), np.zeros(3)],
    ...     activation="relu",
    ... )
    >>> net.widths
    (2, 8, 3)
    >>> net.forward(np.ones((4, 2))).shape
    (4, 3)
    >>> net.activation_patterns(np.ones((4, 2))).shape
    (4, 1)
    """

    __slots__ = (
        "_activations",
        "_b",
        "_conv",
        "_device",
        "_dtype",
        "_graph",
        "_memo",
        "_slopes",
        "_w",
    )

    def __init__(
        self,
        weights: tuple[Any, ...],
        biases: tuple[Any, ...],
        activations: tuple[str, ...],
        slopes: tuple[float, ...],
        *,
        _checked: bool = False,
        _graph: LayerGraph | None = None,
        _dtype: Any = None,
        _device: str = "cpu",
        _conv: LayerGraph | None = None,
    ) -> None:
        if not _checked:
            raise TypeError("use Network.from_arrays, from_torch, from_sklearn or load")
        # a convolutional network lowered to dense matrices keeps its layer graph too
        # (same function): the critical-sample passes run its convolutions natively
        self._conv = _conv
        # arrays derived from the (read-only) weights by the analyses, kept between calls
        self._memo: dict[Any, Any] = {}
        self._w = weights
        self._b = biases
        self._activations = activations
        self._slopes = slopes
        self._graph = _graph
        if _graph is None:
            self._dtype = weights[0].dtype
            self._device = array_device(weights[0])
        else:
            self._dtype = np.dtype(_dtype)
            self._device = _device

    def __getstate__(self) -> dict[str, Any]:
        # pickled without the derived tables (rebuilt on first use)
        return {k: getattr(self, k) for k in self.__slots__ if k != "_memo"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        self._memo = {}

    @classmethod
    def _from_graph(cls, graph: LayerGraph, dtype: Any) -> Network:
        """A network on the layer model (max pooling, residual blocks; fastmem._graph)."""
        dt = check_dtype(dtype)
        graph = graph.map_arrays(lambda a: _readonly(np.asarray(a, dtype=dt)))
        acts = graph.act_ops()
        return cls(
            (),
            (),
            tuple(str(op.params["activation"]) for op in acts),
            tuple(float(op.params["slope"]) for op in acts),
            _checked=True,
            _graph=graph,
            _dtype=dt,
        )

    @property
    def _weights(self) -> tuple[Any, ...]:
        if self._graph is not None:
            self._refuse_graph()
        return self._w

    @property
    def _biases(self) -> tuple[Any, ...]:
        if self._graph is not None:
            self._refuse_graph()
        return self._b

    def _refuse_graph(self) -> None:
        assert self._graph is not None
        op = self._graph.first_structural()
        what = op.where if op is not None else "its layer model"
        raise InputError(
            f"net: its layer {what} is max pooling or a residual addition, which this "
            "analysis does not support yet (it needs a chain of dense layers); networks "
            f"with max pooling or residual blocks support {', '.join(GRAPH_ANALYSES)}"
        )

    def _conv_network(self) -> Network:
        """The convolutional form of a dense lowering (``from_torch`` of a CNN), as a
        layer-graph network on the same device and dtype."""
        assert self._conv is not None
        return Network(
            (),
            (),
            self._activations,
            self._slopes,
            _checked=True,
            _graph=self._conv,
            _dtype=self._dtype,
            _device=self._device,
        )

    @property
    def layer_graph(self) -> LayerGraph | None:
        """The layer model of a network with max pooling or residual blocks (else None).

        See :mod:`fastmem._graph` for its operations and their pattern bits.

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.eye(2), np.eye(2)], [np.zeros(2)] * 2)
        >>> net.layer_graph is None  # a dense chain
        True
        """
        return self._graph

    # ------------------------------------------------------------------ build
    @classmethod
    def from_arrays(
        cls,
        weights: Sequence[Any],
        biases: Sequence[Any],
        activation: str | Sequence[str] = "relu",
        *,
        negative_slope: float | Sequence[float] = 0.01,
        dtype: Any = np.float64,
    ) -> Network:
        """Build a network from weight matrices and bias vectors.

        Parameters
        ----------
        weights : sequence of array_like, each (out_l, in_l)
            Layer weights in PyTorch's orientation; ``in_{l+1} == out_l``.
        biases : sequence of array_like, each (out_l,)
        activation : str or sequence of str
            ``"relu"``, ``"leaky_relu"``, ``"hardtanh"`` (clip to [-1, 1]),
            ``"relu6"`` (clip to [0, 6]), ``"threshold"`` (Heaviside ``1[z >= 0]``),
            ``"tanh"`` or ``"sigmoid"``
            (``1 / (1 + exp(-z))``; ``"logistic"`` is accepted as an alias): one
            name for all hidden layers or one per hidden layer. The output layer
            is linear. ``tanh`` and ``sigmoid`` are not piecewise linear (see
            :meth:`require_piecewise_linear`).
        negative_slope : float or sequence of float
            Slope of ``leaky_relu`` for ``z <= 0`` (PyTorch's default 0.01); one
            value or one per hidden layer. Ignored by other activations.
        dtype : {float64, float32}
            Storage and compute dtype. float64 by default: breakpoints and
            region counts need it.

        Returns
        -------
        Network

        Raises
        ------
        InputError
            Mismatched layer sizes, wrong ndim, NaN/Inf, empty or non-numeric
            arrays, arrays on different devices, unknown activation names.

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.eye(2)], [np.zeros(2)])  # linear model
        >>> net.n_neurons
        0
        """
        dt = check_dtype(dtype)
        if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
            raise InputError(
                "weights: must be a sequence (list/tuple) of 2-D arrays, one per layer"
            )
        if isinstance(biases, np.ndarray) or not isinstance(biases, Sequence):
            raise InputError("biases: must be a sequence (list/tuple) of 1-D arrays, one per layer")
        if len(weights) == 0:
            raise InputError("weights: at least one layer is needed")
        if len(biases) != len(weights):
            raise InputError(
                f"biases: got {len(biases)} bias vectors for {len(weights)} weight matrices"
            )
        named = {f"weights[{i}]": w for i, w in enumerate(weights)}
        named.update({f"biases[{i}]": b for i, b in enumerate(biases)})
        device = common_device(**named)
        xp = array_module(device)
        ws, bs = [], []
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            w = as_float_array(w, f"weights[{i}]", ndim=2, dtype=dt, xp=xp)
            b = as_float_array(b, f"biases[{i}]", ndim=1, dtype=dt, xp=xp)
            if b.shape[0] != w.shape[0]:
                raise InputError(
                    f"biases[{i}]: has {b.shape[0]} entries but weights[{i}] has "
                    f"{w.shape[0]} output rows"
                )
            if i > 0 and w.shape[1] != ws[-1].shape[0]:
                raise InputError(
                    f"weights[{i}]: takes {w.shape[1]} inputs but layer {i - 1} has "
                    f"{ws[-1].shape[0]} outputs"
                )
            ws.append(_readonly(w, weights[i]))
            bs.append(_readonly(b, biases[i]))
        n_hidden = len(ws) - 1
        acts = _per_layer(activation, n_hidden, "activation", str)
        acts = [_ALIASES.get(a, a) for a in acts]
        for i, a in enumerate(acts):
            if a not in ACTIVATIONS and a not in SMOOTH_ACTIVATIONS:
                known = sorted([*ACTIVATIONS, *SMOOTH_ACTIVATIONS, *_ALIASES])
                raise InputError(f"activation[{i}]: unknown activation {a!r}; use one of {known}")
        slopes = _per_layer(negative_slope, n_hidden, "negative_slope", numbers.Real)
        for i, s in enumerate(slopes):
            if not math.isfinite(float(s)):
                raise InputError(f"negative_slope[{i}]: must be finite, got {s}")
        slopes = tuple(
            float(s) if a == "leaky_relu" else 0.0 for a, s in zip(acts, slopes, strict=True)
        )
        return cls(tuple(ws), tuple(bs), tuple(acts), slopes, _checked=True)

    @classmethod
    def from_torch(
        cls, module: Any, *, input_shape: Any = None, dtype: Any = np.float64
    ) -> Network:
        """Import a PyTorch ``nn.Sequential`` (nested allowed).

        Supported layers: ``Linear``, ``ReLU``, ``LeakyReLU``, ``Hardtanh(-1, 1)``,
        ``ReLU6`` (also as ``Hardtanh(0, 6)``), ``Tanh``, ``Sigmoid``, ``BatchNorm1d``
        (folded, see below), ``Identity``,
        ``Flatten`` and ``Dropout`` (ignored: evaluation mode). Each activation
        must follow a ``Linear``; the last layer must be ``Linear``. Consecutive
        ``Linear`` layers with nothing in between are composed into one (the same
        function, fewer layers).

        ``nn.DataParallel`` / ``DistributedDataParallel`` and ``torch.compile``
        wrappers are looked through (the model inside computes the same function).

        A final ``Softmax`` / ``LogSoftmax`` over the classes (``dim=1``; also
        ``F.log_softmax(x, dim=1)`` at the end of a traced ``forward``) is left out: the
        network outputs the logits it normalises (the same classes and class margins).

        BatchNorm folding
            In evaluation mode ``BatchNorm1d`` is the per-feature affine map
            ``y = s * x + t`` with ``s = gamma / sqrt(running_var + eps)`` and
            ``t = beta - s * running_mean`` (``gamma = 1``, ``beta = 0`` without
            ``affine``). It is folded exactly (up to the rounding of the folded
            parameters, computed in float64) into an adjacent ``Linear``: into the
            preceding one when it directly follows a ``Linear`` (``W <- diag(s) W``,
            ``b <- s * b + t``), otherwise (at the input, or after an activation)
            into the following one (``W <- W diag(s)``, ``b <- W t + b``). The
            imported network has the same widths as without the BatchNorm layers.
            A ``Linear`` without bias gets one.

        Convolutional networks (``input_shape``)
            Given the per-sample input shape ``(C, H, W)`` (or ``(d,)``), the module
            may also hold ``Conv2d`` (stride, padding, dilation, groups, bias or not;
            ``padding_mode="zeros"``), ``AvgPool2d`` (``ceil_mode=False``),
            ``AdaptiveAvgPool2d`` (where the output size divides the map), eval-mode
            ``BatchNorm2d`` and ``Flatten``. Each affine operation is lowered exactly
            to the dense matrix of its action on the tensor flattened in PyTorch's
            ``(C, H, W)`` order (the kernel weights placed by index arithmetic; each
            lowered operation is checked against the module's own float64 forward),
            consecutive affine operations (BatchNorm included, wherever it sits) are
            composed into one matrix, and each activation closes a layer: the result
            is a dense ``Network`` on inputs ``X.reshape(n, -1)``, and every analysis
            runs on it unchanged. It also keeps the module's layer graph (when
            ``torch.fx`` can trace it; :meth:`save` keeps it): ``critical_samples``, ``csr_curve``,
            ``certified_radius`` and ``loss_sensitivity`` run the convolutions natively
            (the same function, ``certify="alpha-crown"`` included). The
            price is memory: a layer's matrix has
            ``C_out H_out W_out x C_in H_in W_in`` float64 entries (mostly zeros);
            a matrix needing more than half the available memory is refused with an
            ``InputError`` saying how much it needs.

        Max pooling and residual blocks (the layer model, ``input_shape`` required)
            A module holding ``MaxPool2d``, or one that is not an ``nn.Sequential`` (its
            ``forward`` is traced with ``torch.fx``: plain calls of the modules above and
            of ``MaxPool2d`` / ``AdaptiveMaxPool2d``, their ``torch.nn.functional`` forms
            (``F.relu``, ``F.max_pool2d``, ``F.avg_pool2d``, ``F.adaptive_avg_pool2d``,
            ...), flattening by ``torch.flatten(x, 1)`` / ``x.view(x.size(0), -1)`` /
            ``x.view(-1, C * H * W)``, ``x.mean((2, 3))``, and residual additions
            ``body(x) + shortcut(x)`` / ``out += identity``, as in a ResNet basic
            block, and ``torch.cat([a, b], 1)`` as in an Inception module; the full list
            is in ``fastmem._graph_torch``), is imported as a layer graph
            (:attr:`layer_graph`): convolutions run natively (im2col + GEMM), BatchNorm
            stays a per-channel affine map, max pooling's state is the argmax of each
            window. Such a network supports :meth:`forward`, :meth:`predict`,
            :meth:`layer_outputs`, :meth:`activation_patterns`, :meth:`pattern_hashes`,
            :meth:`save` / :meth:`load`, ``regions.distinct_patterns``,
            ``regions.along_segments`` (exact and sampled),
            ``intervals.generalization_intervals``, ``critical_samples``, ``csr_curve``
            and ``certified_radius`` with ``certify="crown"``, ``"alpha-crown"``,
            ``"ibp"`` or ``None``, ``loss_sensitivity``,
            ``regions.distance_to_boundary`` and ``plane_regions`` (exact 2-D slices);
            the other analyses (weight perturbation) refuse it with an ``InputError``
            naming the op (not supported yet).
            ``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` are taken where the output
            size divides the map (equal windows, e.g. global pooling to ``(1, 1)``);
            other sizes, and other modules or calls, are refused, naming them. An
            ``nn.Sequential`` holding pooling with ``ceil_mode=True``, ``ZeroPad2d``,
            ``PReLU`` (one slope: a leaky ReLU) or ``Hardsigmoid`` is imported as a
            layer graph too.

        Raises
        ------
        InputError
            Naming any other layer and its position, e.g.
            ``module[3] (Softplus): unsupported layer``; a ``BatchNorm1d`` in
            training mode (call ``.eval()`` first), without running statistics
            (``track_running_stats=False``), or with no adjacent ``Linear`` to
            fold into (e.g. after the last activation of a network ending in it,
            or between two activations). With ``input_shape``: a shape the
            next module cannot take (``module[0] (Conv2d): expects 3 input
            channels ...``), a matrix too large for memory, a module not
            supported yet.

        Examples
        --------
        >>> import torch, fastmem
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 1))
        >>> fastmem.Network.from_torch(model).widths
        (2, 4, 1)
        >>> cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))
        >>> fastmem.Network.from_torch(cnn, input_shape=(1, 4, 4)).widths
        (16, 32, 3)
        """
        module = _unwrapped(module)
        _refuse_hooks(module)
        if _needs_layer_graph(module):
            if input_shape is None:
                raise InputError(
                    "input_shape: required for a network with max pooling, residual blocks or "
                    "clamps other than Hardtanh(-1, 1) and ReLU6 such as Hardsigmoid (or any "
                    "forward that is "
                    "not an nn.Sequential), e.g. input_shape=(1, 28, 28) or (784,)"
                )
            from ._graph_torch import graph_from_torch

            return cls._from_graph(graph_from_torch(module, input_shape), dtype)
        weights, biases, acts, slopes = _convert.from_torch(module, input_shape)
        net = cls.from_arrays(weights, biases, acts, negative_slope=slopes, dtype=dtype)
        if input_shape is not None and any(
            type(m).__name__ in _convert._NEEDS_SHAPE for m in module.modules()
        ):
            from ._graph_torch import graph_from_torch

            dt = net.dtype
            try:  # a module fx cannot trace keeps the dense form only (same results)
                graph = graph_from_torch(module, input_shape)
            except InputError:
                graph = None
            if graph is not None:
                net._conv = graph.map_arrays(lambda a: _readonly(np.asarray(a, dtype=dt)))
        return net

    @classmethod
    def from_sklearn(cls, estimator: Any, *, dtype: Any = np.float64) -> Network:
        """Import a fitted scikit-learn ``MLPClassifier`` or ``MLPRegressor``.

        The network's output is the estimator's last pre-activation (the
        logits before softmax / logistic). Hidden activation ``relu``,
        ``tanh``, ``logistic`` (imported as ``sigmoid``) or ``identity`` (an
        identity MLP is composed into one linear layer).

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> from sklearn.neural_network import MLPClassifier
        >>> X = np.random.default_rng(0).normal(size=(40, 3)); y = X[:, 0] > 0
        >>> clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=500, random_state=0).fit(X, y)
        >>> fastmem.Network.from_sklearn(clf).widths
        (3, 5, 1)
        """
        weights, biases, acts = _convert.from_sklearn(estimator)
        return cls.from_arrays(weights, biases, acts, dtype=dtype)

    # ------------------------------------------------------------- properties
    @property
    def weights(self) -> tuple[Any, ...]:
        """Read-only weight matrices, ``(out, in)`` per layer."""
        return self._weights

    @property
    def biases(self) -> tuple[Any, ...]:
        """Read-only bias vectors, ``(out,)`` per layer."""
        return self._biases

    @property
    def activation(self) -> tuple[str, ...]:
        """Activation name of each hidden layer."""
        return self._activations

    @property
    def negative_slopes(self) -> tuple[float, ...]:
        """Leaky-ReLU slope of each hidden layer (0.0 for other activations)."""
        return self._slopes

    @property
    def widths(self) -> tuple[int, ...]:
        """``(input_dim, hidden widths..., output_dim)``.

        For a layer graph: the input size, the output size of each activation, the
        output size.
        """
        if self._graph is not None:
            return self._graph.widths
        return (int(self._weights[0].shape[1]), *(int(w.shape[0]) for w in self._weights))

    @property
    def n_layers(self) -> int:
        """Number of affine layers (hidden layers + output); for a layer graph, the number
        of activations + 1."""
        if self._graph is not None:
            return len(self._graph.widths) - 1
        return len(self._weights)

    @property
    def n_neurons(self) -> int:
        """Number of hidden neurons."""
        if self._graph is not None:
            return sum(self._graph.widths[1:-1])
        return sum(int(w.shape[0]) for w in self._weights[:-1])

    @property
    def is_piecewise_linear(self) -> bool:
        """True when every hidden activation is piecewise linear (no ``tanh``/``sigmoid``)."""
        return all(a in ACTIVATIONS for a in self._activations)

    def require_piecewise_linear(self, analysis: str) -> None:
        """Raise :class:`InputError` unless every hidden layer is piecewise linear.

        Called first by every analysis that needs linear regions (activation
        patterns, regions, intervals, boundary distances, critical samples).

        Parameters
        ----------
        analysis : str
            Name of the calling analysis, the start of the message.

        Raises
        ------
        InputError
            Naming the first smooth layer (layers numbered from 0) and why.

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.eye(2), np.eye(2)], [np.zeros(2)] * 2, "tanh")
        >>> net.is_piecewise_linear
        False
        >>> try:
        ...     net.require_piecewise_linear("along_segments")
        ... except fastmem.InputError as exc:
        ...     print(exc)
        along_segments: layer 0 (tanh) is not piecewise linear; exact regions/patterns
        need relu, leaky_relu, hardtanh, relu6 or threshold layers
        """
        for layer, a in enumerate(self._activations):
            if a not in ACTIVATIONS:
                raise InputError(
                    f"{analysis}: layer {layer} ({a}) is not piecewise linear; exact "
                    "regions/patterns need relu, leaky_relu, hardtanh, relu6 or threshold layers"
                )

    @property
    def n_pattern_bits(self) -> int:
        """Bits of a packed activation pattern (two per hard-tanh neuron).

        Raises :class:`InputError` for a network with smooth layers (no patterns).
        """
        self.require_piecewise_linear("n_pattern_bits")
        if self._graph is not None:
            return self._graph.n_pattern_bits
        return sum(
            int(w.shape[0]) * bits_per_neuron(ACTIVATIONS[a])
            for w, a in zip(self._weights[:-1], self._activations, strict=True)
        )

    @property
    def n_pattern_words(self) -> int:
        """``uint64`` words per packed activation pattern."""
        return -(-self.n_pattern_bits // 64)

    @property
    def dtype(self) -> np.dtype:
        """Storage and compute dtype (float32 or float64)."""
        return self._dtype

    @property
    def device(self) -> str:
        """``"cpu"`` (NumPy arrays) or ``"cuda"`` (CuPy arrays)."""
        return self._device

    def __repr__(self) -> str:
        if self._graph is not None:
            try:
                ops = self._graph.describe()
            except RecursionError:  # residual blocks nested hundreds deep
                ops = f"{len(self._graph.ops)} ops, nested too deeply to list"
            return (
                f"Network(input_shape={self._graph.input_shape}, ops=[{ops}], "
                f"dtype={self._dtype}, device={self._device!r})"
            )
        return (
            f"Network(widths={self.widths}, activation={self._activations}, "
            f"dtype={self._dtype}, device={self._device!r})"
        )

    # ------------------------------------------------------------ conversions
    def astype(self, dtype: Any) -> Network:
        """A copy with float32 or float64 parameters."""
        dt = check_dtype(dtype)
        if dt == self._dtype:
            return self
        return self._replace(lambda a: a.astype(dt))

    def to(self, device: str) -> Network:
        """A copy on ``"cpu"`` (NumPy) or ``"cuda"`` (CuPy; needs the ``gpu`` extra)."""
        if device not in ("cpu", "cuda"):
            raise InputError(f"device: must be 'cpu' or 'cuda', got {device!r}")
        if device == self._device:
            return self
        return self._replace(lambda a: to_device(a, device))

    def _replace(self, fn: Any) -> Network:
        if self._graph is not None:
            graph = self._graph.map_arrays(lambda a: _readonly(fn(a), a))
            probe = next((a for op in _graph.walk(graph.ops) for a in op.arrays.values()), None)
            return Network(
                (),
                (),
                self._activations,
                self._slopes,
                _checked=True,
                _graph=graph,
                _dtype=probe.dtype if probe is not None else self._dtype,
                _device=array_device(probe) if probe is not None else self._device,
            )
        ws = tuple(_readonly(fn(w), w) for w in self._weights)
        bs = tuple(_readonly(fn(b), b) for b in self._biases)
        conv = None
        if self._conv is not None:
            conv = self._conv.map_arrays(lambda a: _readonly(fn(a), a))
        return Network(ws, bs, self._activations, self._slopes, _checked=True, _conv=conv)

    # -------------------------------------------------------------- save/load
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save as ``.npz`` (no pickle): ``W{i}``, ``b{i}``, activations, slopes.

        A network with max pooling or residual blocks is saved as its layer graph (the
        ops as JSON, their arrays as members); a CNN imported from an ``nn.Sequential``
        (dense matrices) also stores its layer graph (``conv_*`` members), which
        :meth:`load` checks against the matrices.

        Examples
        --------
        >>> import os, tempfile, numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.eye(2), np.eye(2)], [np.zeros(2)] * 2, "tanh")
        >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
        >>> net.save(path)
        >>> fastmem.Network.load(path).activation
        ('tanh',)
        """
        if not hasattr(path, "write"):  # a file object (np.savez writes to it) or a path
            path = as_path(path, "path")
        host = self.to("cpu")
        if host._graph is not None:
            spec, members = _graph.to_spec(host._graph)
            try:
                np.savez(
                    path,
                    format_version=np.int64(_GRAPH_FORMAT_VERSION),
                    input_shape=np.array(host._graph.input_shape, dtype=np.int64),
                    graph=np.array(json.dumps(spec), dtype=np.str_),
                    **members,
                )
            except OSError as exc:
                raise InputError(f"path: cannot write {path}: {exc.strerror or exc}") from exc
            return
        arrays = {f"W{i}": w for i, w in enumerate(host._weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(host._biases)})
        if host._conv is not None:
            # a convolutional network lowered to dense matrices keeps its layer graph
            # (its critical samples run on the convolutions): stored beside them
            spec, members = _graph.to_spec(host._conv)
            arrays["conv_input_shape"] = np.array(host._conv.input_shape, dtype=np.int64)
            arrays["conv_graph"] = np.array(json.dumps(spec), dtype=np.str_)
            arrays.update({f"conv_{k}": v for k, v in members.items()})
        try:
            np.savez(
                path,
                format_version=np.int64(_FORMAT_VERSION),
                n_layers=np.int64(self.n_layers),
                activations=np.array(self._activations, dtype=np.str_).reshape(-1),
                negative_slopes=np.array(self._slopes, dtype=np.float64).reshape(-1),
                **arrays,
            )
        except OSError as exc:
            raise InputError(f"path: cannot write {path}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Load a network written by :meth:`save` (never unpickles).

        The arrays' headers are read first: a file whose arrays would not fit in memory,
        or promise more data than they hold, is refused (``InputError`` naming ``path``)
        before anything is allocated.
        """
        if not isinstance(path, str | os.PathLike) and not (
            hasattr(path, "read") and hasattr(path, "seek")
        ):
            raise InputError(
                f"path: must be a str, os.PathLike or a binary file object, got "
                f"{type(path).__name__}"
            )
        check_npz_sizes(path, "path")
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise InputError(f"path: {path} holds one array (.npy), not a fastmem network")
            with data:
                fv = data["format_version"]
                if fv.shape != () or fv.dtype.kind not in "iu":
                    raise InputError(f"path: {path}: format_version must be an integer")
                version = int(fv)
                if version == _GRAPH_FORMAT_VERSION:
                    return cls._load_graph(data, path)
                if version != _FORMAT_VERSION:
                    raise InputError(f"path: unsupported fastmem network format {version}")
                n_layers = data["n_layers"]
                if n_layers.shape != () or n_layers.dtype.kind not in "iu" or int(n_layers) < 1:
                    raise InputError(f"path: {path}: n_layers must be an integer >= 1")
                n = int(n_layers)
                weights = [data[f"W{i}"] for i in range(n)]
                biases = [data[f"b{i}"] for i in range(n)]
                acts = [str(a) for a in data["activations"]]
                slopes = [float(s) for s in data["negative_slopes"]]
                conv = None
                if "conv_graph" in data.files:
                    conv = (
                        str(data["conv_graph"]),
                        data["conv_input_shape"],
                        {k[5:]: data[k] for k in data.files if k.startswith("conv_op")},
                    )
        except (KeyError, ValueError, OSError, EOFError, TypeError, zipfile.BadZipFile) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"path: not a fastmem network file ({exc})") from exc
        for i, w in enumerate(weights):
            if w.dtype not in (np.float32, np.float64):
                raise InputError(
                    f"path: {path}: W{i} has dtype {w.dtype}; a fastmem network file holds "
                    "float32 or float64 weights"
                )
        net = cls.from_arrays(weights, biases, acts, negative_slope=slopes, dtype=weights[0].dtype)
        if conv is not None:
            net._conv = _load_conv(net, *conv, path)
        return net

    @classmethod
    def _load_graph(cls, data: Any, path: Any) -> Network:
        """A layer graph from an open ``.npz`` (format 2): every op rebuilt and checked."""
        shape = data["input_shape"]
        if shape.ndim != 1 or shape.dtype.kind not in "iu" or shape.shape[0] not in (1, 3):
            raise InputError(f"path: {path}: input_shape must be 1 or 3 integers")
        dtypes = {data[k].dtype for k in data.files if k.startswith("op")}
        if not dtypes <= {np.dtype(np.float32), np.dtype(np.float64)} or len(dtypes) > 1:
            raise InputError(
                f"path: {path}: a fastmem network file holds float32 or float64 arrays of one "
                f"dtype, got {sorted(map(str, dtypes))}"
            )
        try:
            spec = _load_spec(str(data["graph"]))
            graph = _graph.from_spec(spec, [int(s) for s in shape], data)
        except InputError as exc:
            raise InputError(f"path: {path}: {exc}") from exc
        except RecursionError as exc:
            raise InputError(f"path: {path}: the layer graph is nested too deeply") from exc
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise InputError(f"path: {path}: not a valid layer graph ({exc!r})") from exc
        return cls._from_graph(graph, dtypes.pop() if dtypes else np.float64)

    # ---------------------------------------------------------------- compute
    def forward(self, X: Any, *, backend: str | None = None) -> Any:
        """Network output (logits) for the rows of ``X``.

        Parameters
        ----------
        X : array_like (n, input_dim)
            NumPy / CuPy array or torch tensor on the network's device; any
            float or int dtype, any memory order; cast to ``self.dtype``.
        backend : {"cpp", "numba", "cuda"}, optional
            Force a kernel backend (see :func:`fastmem.backends`).

        Returns
        -------
        array (n, output_dim)
            On the same device as ``X``.

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.array([[1.0], [-1.0]]), np.ones((1, 2))],
        ...                                   [np.zeros(2), np.zeros(1)])
        >>> net.forward(np.array([[-2.0], [3.0]]))  # |x|
        array([[2.],
               [3.]])
        """
        X, be, net, device = self._prepare(X, backend)
        out = be.xp.empty((X.shape[0], self.widths[-1]), dtype=self._dtype)
        for lo, hi in net._chunks(X.shape[0]):
            out[lo:hi] = net._propagate(X[lo:hi], be, codes=None, output=True)
        return to_device(out, device)

    def layer_outputs(self, X: Any, *, backend: str | None = None) -> list[Any]:
        """Post-activation output of every hidden layer, then the logits.

        The layer representations ``T`` of information-plane studies
        (Shwartz-Ziv & Tishby 2017; Saxe et al. 2018).

        Parameters
        ----------
        X : array_like (n, input_dim)
            As for :meth:`forward`.
        backend : {"cpp", "numba", "cuda"}, optional
            Force a kernel backend.

        Returns
        -------
        list of arrays
            ``n_layers`` arrays: ``(n, widths[1])``, ..., ``(n, widths[-1])``; the last
            one is the output of :meth:`forward`. On the same device as ``X``.

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.array([[1.0], [-1.0]]), np.ones((1, 2))],
        ...                                   [np.zeros(2), np.zeros(1)])
        >>> hidden, logits = net.layer_outputs(np.array([[-2.0], [3.0]]))
        >>> hidden
        array([[0., 2.],
               [3., 0.]])
        >>> logits
        array([[2.],
               [3.]])
        """
        X, be, net, device = self._prepare(X, backend)
        outs = [be.xp.empty((X.shape[0], w), dtype=self._dtype) for w in self.widths[1:]]
        for lo, hi in net._chunks(X.shape[0]):

            def keep(layer: int, value: Any, lo: int = lo, hi: int = hi) -> None:
                outs[layer][lo:hi] = value

            outs[-1][lo:hi] = net._propagate(X[lo:hi], be, codes=None, output=True, keep=keep)
        return [to_device(o, device) for o in outs]

    def predict(self, X: Any, *, backend: str | None = None) -> Any:
        """Predicted class per row: argmax of the logits; with one output, ``logit > 0``.

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.eye(2)], [np.zeros(2)])
        >>> net.predict(np.array([[1.0, 0.0], [0.0, 2.0]]))
        array([0, 1])
        """
        logits = self.forward(X, backend=backend)
        if logits.shape[1] == 1:
            return (logits[:, 0] > 0).astype(np.int64)
        return logits.argmax(axis=1)

    def activation_patterns(self, X: Any, *, backend: str | None = None) -> Any:
        """Packed activation pattern of every row: ``(n, n_pattern_words)`` uint64.

        See the class docstring for the bit layout. Two inputs lie in the same
        linear region of the network exactly when their rows are equal.

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.array([[1.0], [-1.0]]), np.ones((1, 2))],
        ...                                   [np.zeros(2), np.zeros(1)])
        >>> net.activation_patterns(np.array([[-2.0], [3.0]]))  # bits: neuron 0, neuron 1
        array([[2],
               [1]], dtype=uint64)
        """
        self.require_piecewise_linear("activation_patterns")
        X, be, net, device = self._prepare(X, backend)
        codes = be.xp.zeros((X.shape[0], self.n_pattern_words), dtype=np.uint64)
        for lo, hi in net._chunks(X.shape[0]):
            net._propagate(X[lo:hi], be, codes=codes[lo:hi], output=False)
        return to_device(codes, device)

    def pattern_hashes(self, X: Any, *, backend: str | None = None) -> Any:
        """64-bit hash of the activation pattern of every row: ``(n,)`` uint64.

        Equal patterns give equal hashes; distinct patterns collide with
        probability about ``2**-64`` per pair.

        Examples
        --------
        >>> import numpy as np, fastmem
        >>> net = fastmem.Network.from_arrays([np.array([[1.0], [-1.0]]), np.ones((1, 2))],
        ...                                   [np.zeros(2), np.zeros(1)])
        >>> h = net.pattern_hashes(np.array([[-2.0], [-1.0], [3.0]]))
        >>> bool(h[0] == h[1]), bool(h[0] == h[2])
        (True, False)
        """
        self.require_piecewise_linear("pattern_hashes")
        X, be, net, device = self._prepare(X, backend)
        codes = be.xp.zeros((X.shape[0], self.n_pattern_words), dtype=np.uint64)
        out = be.xp.empty(X.shape[0], dtype=np.uint64)
        for lo, hi in net._chunks(X.shape[0]):
            net._propagate(X[lo:hi], be, codes=codes[lo:hi], output=False)
        be.kernels.hash_patterns(codes, out)
        return to_device(out, device)

    def perturbed(self, sigma: float, *, relative: bool = True, rng: Any = None) -> Network:
        """A copy with Gaussian noise added to every weight and bias.

        The weight-perturbation study of the sawtooth (Hanin & Rolnick 2019): the
        2**depth pieces of :func:`sawtooth` need exactly tuned weights, and region
        counts along a line fall towards the linear-in-depth typical count once the
        weights are perturbed.

        Parameters
        ----------
        sigma : float
            Noise scale, >= 0.
        relative : bool
            True: the noise of layer ``l`` (weights and bias) has standard deviation
            ``sigma * rms(W_l)`` (root mean square of the layer's weights), so ``sigma``
            is a fraction of the layer's weight scale. False: ``sigma`` itself.
        rng : numpy.random.Generator or int, optional
            Source of the noise (drawn on the host, then moved to the network's device).

        Examples
        --------
        >>> import fastmem
        >>> net = fastmem.sawtooth(3)
        >>> noisy = net.perturbed(0.01, rng=0)
        >>> noisy.widths == net.widths
        True
        """
        if not isinstance(sigma, numbers.Real) or isinstance(sigma, bool):
            raise InputError(f"sigma: must be a real number, got {sigma!r}")
        if not (math.isfinite(float(sigma)) and sigma >= 0):
            raise InputError(f"sigma: must be finite and >= 0, got {sigma}")
        relative = as_bool(relative, "relative")
        gen = as_generator(rng)
        host = self.to("cpu")
        ws, bs = [], []
        for w, b in zip(host._weights, host._biases, strict=True):
            rms = float(np.sqrt(np.mean(w.astype(np.float64) ** 2)))
            scale = float(sigma) * (rms if relative else 1.0)
            with np.errstate(over="ignore", invalid="ignore"):
                ws.append(w + scale * gen.standard_normal(w.shape))
                bs.append(b + scale * gen.standard_normal(b.shape))
            if not (np.isfinite(ws[-1]).all() and np.isfinite(bs[-1]).all()):
                raise InputError(
                    f"sigma: {sigma} makes the perturbed weights overflow (layer {len(ws) - 1})"
                )
        net = Network.from_arrays(
            ws, bs, list(self._activations), negative_slope=list(self._slopes), dtype=self._dtype
        )
        return net.to(self._device)

    # ---------------------------------------------------------------- helpers
    def _prepare(self, X: Any, backend: str | None) -> tuple[Any, Backend, Network, str]:
        """Validate ``X``; pick the backend; move data to the backend's device.

        Returns the checked input, the backend, the network on the backend's
        device, and the caller's device (where results go back to).
        """
        caller_device = array_device(X)
        if caller_device != self._device:
            raise InputError(
                f"X: lives on {caller_device} but the network is on {self._device}; "
                f"use net.to({caller_device!r}) or move X"
            )
        be = select_backend(caller_device, backend)
        net = self.to(be.device)
        X = as_float_array(X, "X", ndim=2, dtype=self._dtype, xp=array_module(caller_device))
        if X.shape[1] != self.widths[0]:
            raise InputError(f"X: has {X.shape[1]} columns but the network takes {self.widths[0]}")
        return to_device(X, be.device), be, net, caller_device

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        widest = max(self.widths) if self._graph is None else 4 * self._graph.max_width()
        rows = max(256, _CHUNK_BYTES // (widest * self._dtype.itemsize))
        return [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]

    def _activate(self, z: Any, layer: int, be: Backend) -> None:
        """Apply hidden layer ``layer``'s activation to ``z`` in place."""
        name = self._activations[layer]
        kind = ACTIVATIONS.get(name)
        if kind is not None:
            be.kernels.apply_activation(z, kind, self._slopes[layer])
            return
        # Smooth layers: elementwise xp ufuncs are as fast as a kernel would be (no
        # patterns to pack), and they keep every backend in agreement bitwise.
        xp = be.xp
        if name == "tanh":
            xp.tanh(z, out=z)
            return
        # Stable logistic: exp of a non-positive number never overflows, and e / (1 + e)
        # keeps full relative precision where the sigmoid is tiny.
        e = xp.exp(-xp.abs(z))
        r = 1.0 / (1.0 + e)
        xp.multiply(e, r, out=e)
        z[...] = xp.where(z >= 0, r, e)

    @np.errstate(over="ignore", invalid="ignore")  # overflow: the pass names the layer
    def _propagate(self, X: Any, be: Backend, *, codes: Any, output: bool, keep: Any = None) -> Any:
        """Run the layers on one chunk; OR pattern bits into ``codes`` if given; pass each
        hidden layer's output to ``keep(i, value)`` if given."""
        if self._graph is not None:
            outs: list[Any] | None = [] if keep is not None else None
            logits = _graph.forward(self._graph, X, be, codes=codes, outputs=outs)
            for i, value in enumerate(outs or ()):
                keep(i, value)
            return logits
        k = be.kernels
        bit = 0

        def hidden(layer: int, z: Any) -> None:
            nonlocal bit
            if codes is None:
                self._activate(z, layer, be)
            else:
                kind = ACTIVATIONS[self._activations[layer]]  # callers checked
                if layer > 0:  # hidden inputs only, as the segment engine (fastmem._kinds)
                    W = self._weights[layer]
                    snap_to_thresholds(
                        z, h_in[0], h_in[0].shape[1], be.xp.abs(W).sum(axis=1),
                        be.xp.abs(self._biases[layer]), kind, k,
                    )  # fmt: skip
                k.pack_and_activate(z, codes, bit, kind, self._slopes[layer])
                bit += z.shape[1] * bits_per_neuron(kind)
            if keep is not None:
                keep(layer, z)
            h_in[0] = z

        h_in = [X]  # the layer's input: the snap reads it
        chain = _graph.dense_chain([w.T for w in self._weights], self._biases)
        return dense_forward(X, chain, hidden, be, output=output)


def _refuse_hooks(module: Any) -> None:
    """A torch module whose forward runs hooks (``spectral_norm``, ``weight_norm`` of old,
    any ``register_forward_hook``) computes what its parameters alone do not say."""
    named = getattr(module, "named_modules", None)
    if named is None:
        return
    for name, mod in named():
        hooks = len(getattr(mod, "_forward_hooks", {})) + len(
            getattr(mod, "_forward_pre_hooks", {})
        )
        if hooks:
            where = name or "module"
            raise InputError(
                f"{where} ({type(mod).__name__}): has {hooks} forward hook(s), which fastmem "
                "cannot see (it reads the parameters); remove them first (e.g. "
                "torch.nn.utils.remove_spectral_norm or prune.remove, which keep the weights "
                "the hook computes)"
            )


# The deepest JSON nesting a saved layer graph may have (a residual block nested in
# another's branch adds three levels): json's C parser recurses per level and, where the
# interpreter's recursion limit has been raised, can overflow the C stack before it.
_MAX_SPEC_DEPTH = 2000


def _load_spec(text: str) -> Any:
    """The layer graph's JSON, its nesting depth checked before it is parsed (an
    ``InputError`` that the callers prefix with the file's path)."""
    import re

    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text).encode()  # strings out: their brackets
    codes = np.frombuffer(bare, dtype=np.uint8)
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
    step -= np.isin(codes, (ord("]"), ord("}")))
    depth = int(np.cumsum(step).max()) if step.size else 0
    if depth > _MAX_SPEC_DEPTH:
        raise InputError(
            f"the layer graph is nested too deeply ({depth} levels, at most {_MAX_SPEC_DEPTH})"
        )
    return json.loads(text)


def _load_conv(net: Network, spec: str, shape: Any, members: dict, path: Any) -> LayerGraph:
    """The layer graph stored beside a dense lowering (``save`` of a ``from_torch`` CNN),
    rebuilt and checked: it must take the dense net's inputs and compute the same logits
    (on a few fixed random inputs, to rounding), else ``InputError`` naming ``path``."""
    dt = net.dtype
    if shape.ndim != 1 or shape.dtype.kind not in "iu" or shape.shape[0] not in (1, 3):
        raise InputError(f"path: {path}: conv_input_shape must be 1 or 3 integers")
    if any(m.dtype != dt for m in members.values()):
        raise InputError(f"path: {path}: the layer graph's arrays must have the weights' dtype")
    try:
        graph = _graph.from_spec(_load_spec(spec), [int(s) for s in shape], members)
    except InputError as exc:
        raise InputError(f"path: {path}: {exc}") from exc
    except RecursionError as exc:
        raise InputError(f"path: {path}: the layer graph is nested too deeply") from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InputError(f"path: {path}: not a valid layer graph ({exc!r})") from exc
    graph = graph.map_arrays(lambda a: _readonly(np.asarray(a, dtype=dt)))
    if int(np.prod(graph.input_shape)) != net.widths[0]:
        raise InputError(
            f"path: {path}: the layer graph takes {int(np.prod(graph.input_shape))} inputs, "
            f"the dense matrices {net.widths[0]}"
        )
    probe = np.random.default_rng(0).random((4, net.widths[0])).astype(dt)
    conv = Network((), (), net._activations, net._slopes, _checked=True, _graph=graph, _dtype=dt)
    try:
        with np.errstate(all="ignore"):
            a = np.asarray(net.forward(probe), dtype=np.float64)
            b = np.asarray(conv.forward(probe), dtype=np.float64)
    except InputError as exc:
        raise InputError(f"path: {path}: the layer graph cannot run: {exc}") from exc
    tol = (1e-9 if dt == np.float64 else 1e-3) * (1 + np.abs(a).max())
    if a.shape != b.shape or not np.all(np.abs(a - b) <= tol):
        raise InputError(
            f"path: {path}: the layer graph stored beside the dense matrices does not compute "
            "the same function"
        )
    return graph


def _unwrapped(module: Any) -> Any:
    """The model inside the wrappers that only run it: ``nn.DataParallel`` /
    ``DistributedDataParallel`` (``.module``) and ``torch.compile``'s ``OptimizedModule``
    (``._orig_mod``), which compute the same function."""
    for _ in range(8):
        kind = type(module).__name__
        if kind in ("DataParallel", "DistributedDataParallel") and hasattr(module, "module"):
            module = module.module
        elif kind == "OptimizedModule" and hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            break
    return module


def _needs_layer_graph(module: Any) -> bool:
    """A torch module that the dense import cannot take: a module of the user's own class
    (its forward is traced), or a (nested) Sequential holding one, max pooling, pooling
    with ``ceil_mode=True``, zero padding, ``PReLU`` or a clamp other than Hardtanh(-1, 1)
    and ReLU6 (Hardsigmoid, Hardtanh(a, b))."""
    mro = type(module).__mro__
    if not any(c.__name__ == "Module" and c.__module__.startswith("torch.nn") for c in mro):
        return False  # not a torch module: the dense import says so
    if type(module).__name__ != "Sequential":
        return not type(module).__module__.startswith("torch.nn")
    graph_only = ("MaxPool2d", "AdaptiveMaxPool2d", "Hardsigmoid", "PReLU",
                  "ZeroPad2d", "ConstantPad2d")  # fmt: skip
    return any(
        _needs_layer_graph(child)
        or type(child).__name__ in graph_only
        or bool(getattr(child, "ceil_mode", False))
        or (
            type(child).__name__ == "Hardtanh"
            and (getattr(child, "min_val", -1.0), getattr(child, "max_val", 1.0))
            not in ((-1.0, 1.0), (0.0, 6.0))
        )
        for child in module.children()
    )


def sawtooth(depth: int, *, dtype: Any = np.float64) -> Network:
    """Telgarsky's sawtooth: the tent map composed ``depth`` times on [0, 1].

    The tent map ``T(x) = 2 relu(x) - 4 relu(x - 1/2)`` (``2x`` on [0, 1/2],
    ``2 - 2x`` on [1/2, 1]) needs two ReLUs; composing it ``depth`` times gives a
    network with ``depth`` hidden layers of width 2 whose restriction to [0, 1] has
    exactly ``2**depth`` linear pieces (Telgarsky, "Benefits of depth in neural
    networks", COLT 2016), far above the typical count for random weights (Hanin &
    Rolnick 2019; see :meth:`Network.perturbed`). Breakpoints are ``j / 2**depth``.

    Parameters
    ----------
    depth : int
        Number of compositions (hidden layers), >= 1.
    dtype : {float64, float32}

    Returns
    -------
    Network
        Widths ``(1, 2, ..., 2, 1)``; output ``T^depth(x)`` in [0, 1].

    Examples
    --------
    >>> import numpy as np, fastmem
    >>> net = fastmem.sawtooth(2)
    >>> net.forward(np.array([[0.0], [0.125], [0.25], [0.5]])).ravel()
    array([0. , 0.5, 1. , 0. ])
    """
    if not isinstance(depth, numbers.Integral) or isinstance(depth, bool) or depth < 1:
        raise InputError(f"depth: must be an integer >= 1, got {depth!r}")
    # each layer is two small read-only arrays and their Python objects: ~600 bytes
    check_allocation(600 * int(depth), f"a sawtooth of {depth} layers", "depth")
    first = np.array([[1.0], [1.0]])
    inner = np.array([[2.0, -4.0], [2.0, -4.0]])
    bias = np.array([0.0, -0.5])
    weights = [first] + [inner] * (int(depth) - 1) + [np.array([[2.0, -4.0]])]
    biases = [bias] * int(depth) + [np.zeros(1)]
    return Network.from_arrays(weights, biases, "relu", dtype=dtype)


def dense_forward(
    h: Any,
    chain: tuple[Any, ...],
    hidden: Callable[[int, Any], None],
    be: Backend,
    *,
    check: bool = True,
    output: bool = True,
) -> Any:
    """The forward pass of a dense chain, every analysis of dense networks runs it
    (:class:`Network`'s outputs, patterns and layer outputs, the critical-sample search
    and certificates, :func:`fastmem.regions.distance_to_boundary`, the segment engine and
    the 2-D slices through :meth:`Network._propagate`). It is the layer model's pass
    (``fastmem._graph``) over the chain's ``linear`` and ``act`` ops: the same loop, the
    same overflow check, as every layer graph's.

    Layer ``i`` computes ``z = h @ weights_t[i] + biases[i]``; each hidden layer's ``z``
    goes to ``hidden(i, z)``, which applies that layer's activation to it in place and
    records what its analysis needs (pattern bits, activation derivatives, layer outputs,
    Jacobians); the activated ``z`` is the next layer's input.

    Parameters
    ----------
    h : array (n, widths[0])
        The inputs (one chunk).
    chain : tuple of ops
        ``fastmem._graph.dense_chain(weights_t, biases)``: each layer's transposed weight
        matrix ``(in, out)`` (a view or a contiguous copy) and bias ``(out,)`` as the
        layer model's ops (built once by callers that run many passes).
    hidden : callable ``(i, z) -> None``
        Activates hidden layer ``i``'s pre-activations ``z`` (an array of its own) in place.
    be : Backend
        The backend of the arrays.
    check : bool
        Raise :class:`~fastmem.InputError` naming the layer where pre-activations are not
        finite (products of finite inputs and weights can overflow). False: the caller
        checks.
    output : bool
        Compute the output layer; False returns None after the last hidden layer.

    Returns
    -------
    array (n, widths[-1]) or None
        The logits.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmem._backend import select_backend
    >>> W = [np.array([[1.0], [-1.0]]), np.ones((1, 2))]
    >>> chain = _graph.dense_chain([w.T for w in W], [np.zeros(2), np.zeros(1)])
    >>> relu = lambda i, z: np.maximum(z, 0, out=z)
    >>> dense_forward(np.array([[-2.0], [3.0]]), chain, relu, select_backend("cpu"))
    array([[2.],
           [3.]])
    """
    if not check:
        return _graph.run_chain(h, chain, hidden, be, check=False, output=output)
    with np.errstate(over="ignore", invalid="ignore"):  # the check names the layer
        return _graph.run_chain(h, chain, hidden, be, check=True, output=output)


def _readonly(a: Any, source: Any = None) -> Any:
    """A read-only array owned by the network.

    Copied unless it is already a fresh conversion of ``source`` (so later edits
    to the caller's array cannot change the network, and large layers are not
    copied twice).
    """
    if isinstance(a, np.ndarray):
        if source is None or np.may_share_memory(a, np.asarray(source)):
            a = a.copy()
        a.flags.writeable = False
    return a


def _per_layer(value: Any, n: int, name: str, kind: Any) -> list[Any]:
    if isinstance(value, kind) and not isinstance(value, bool):
        return [value] * n
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InputError(f"{name}: must be a single value or a sequence of {n} values")
    if len(value) != n:
        raise InputError(f"{name}: got {len(value)} values for {n} hidden layer(s)")
    for i, v in enumerate(value):
        if not isinstance(v, kind) or isinstance(v, bool):
            raise InputError(f"{name}[{i}]: invalid value {v!r}")
    return list(value)
