"""The projected Adam ascent step of alpha-CROWN's slope optimization.

One home for the update that the dense path (:mod:`fastmem.critical`) and the layer-graph
path (:mod:`fastmem._graph_alpha`) both take on the lower slopes of unstable neurons.
"""

from __future__ import annotations

from typing import Any

#: Adam's moment decay rates, as auto_LiRPA's defaults.
BETA1, BETA2 = 0.9, 0.999


def projected_adam_step(
    xp: Any, alpha: Any, grad: Any, m1: Any, m2: Any, it: int, lr: float, floor: Any, mask: Any
) -> tuple[Any, Any, Any]:
    """Take one Adam ascent step on the slopes ``alpha`` and project onto ``[floor, 1]``.

    Parameters
    ----------
    xp : module
        NumPy or CuPy.
    alpha, grad, m1, m2 : array
        The slopes, the bound's gradient in them, and Adam's first and second moments
        (all one shape).
    it : int
        The step's index from 0 (bias correction, and the step size's decay of 0.98 a step).
    lr : float
        The initial step size.
    floor : array or float
        The lowest slope allowed (0 for ReLU, the negative slope for leaky ReLU).
    mask : array of bool
        Where a slope is free (unstable neurons); elsewhere ``alpha`` is kept.

    Returns
    -------
    alpha, m1, m2 : array
        The new slopes and moments.

    Examples
    --------
    >>> import numpy as np
    >>> a, m1, m2 = projected_adam_step(np, np.array([0.5]), np.array([1.0]),
    ...     np.zeros(1), np.zeros(1), 0, 0.25, 0.0, np.array([True]))
    >>> round(float(a[0]), 9)  # the first step is lr times the gradient's sign
    0.75
    """
    m1 = BETA1 * m1 + (1 - BETA1) * grad
    m2 = BETA2 * m2 + (1 - BETA2) * grad * grad
    step = (m1 / (1 - BETA1 ** (it + 1))) / (xp.sqrt(m2 / (1 - BETA2 ** (it + 1))) + 1e-12)
    upd = xp.clip(alpha + (lr * 0.98**it) * step, floor, 1.0)
    return xp.where(mask, upd, alpha), m1, m2
