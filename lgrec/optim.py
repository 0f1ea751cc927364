r"""Hand-written Adam over a dict of parameter arrays.

Kingma & Ba (2015), in PyTorch's form (no weight decay; regularisation is part
of the loss):

.. math::

    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
    \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\,
        \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}.

Gradients are dense arrays, or :class:`RowGrad` for embedding tables of which a
batch touches only a few rows: then only those rows of ``m``, ``v`` and the
parameter move ("lazy" Adam, as TensorFlow's LazyAdam and PyTorch's SparseAdam),
which keeps a BPR-MF step proportional to the batch instead of the catalogue.
The arithmetic runs in the fused kernels of :mod:`lgrec.kernels.optim`.

:class:`SGD` holds only the step sizes of plain per-triplet SGD, which BPR-MF's
fused epoch kernel applies itself (:func:`lgrec.kernels.bpr_sgd_epoch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kernels import accumulate_rows, adam_dense, adam_rows

__all__ = ["Adam", "RowGrad", "SGD", "row_grad"]


@dataclass(frozen=True)
class RowGrad:
    """Gradient of a 2-D parameter that is zero outside a few rows.

    Attributes
    ----------
    rows : ndarray of shape (r,), int64
        Unique row ids.
    values : ndarray of shape (r, d)
        Gradient of each listed row.
    """

    rows: np.ndarray
    values: np.ndarray

    def to_dense(self, n_rows: int) -> np.ndarray:
        """The full gradient of shape (n_rows, d) (for tests)."""
        dense = np.zeros((n_rows, self.values.shape[1]), dtype=self.values.dtype)
        dense[self.rows] = self.values
        return dense


def row_grad(index: np.ndarray, values: np.ndarray) -> RowGrad:
    """Sum per-sample row gradients that hit the same row.

    Parameters
    ----------
    index : ndarray of shape (n,), int
        Parameter row of each sample (repeats allowed).
    values : ndarray of shape (n, d)
        Gradient contributed by each sample.

    Returns
    -------
    RowGrad
    """
    rows, inverse = np.unique(index, return_inverse=True)
    return RowGrad(rows, accumulate_rows(inverse.astype(np.int64, copy=False), values, rows.shape[0]))


class Adam:
    """Adam optimiser state (``m``, ``v`` and a step count ``steps`` per parameter) over a dict of parameters.

    Parameters
    ----------
    params : dict of str to ndarray
        Parameters to optimise; updated in place by :meth:`step`.
    learning_rate : float, default=1e-3
    beta1 : float, default=0.9
    beta2 : float, default=0.999
    eps : float, default=1e-8
    learning_rates : dict of str to float, optional
        Step sizes of individual parameters (by name) that differ from ``learning_rate``.
    """

    def __init__(self, params: dict[str, np.ndarray], learning_rate: float = 1e-3,
                 beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 learning_rates: dict[str, float] | None = None):
        unknown = sorted(set(learning_rates or {}) - set(params))
        if unknown:
            raise ValueError(f"learning_rates must name parameters among {sorted(params)}; got {unknown}.")
        self.learning_rate = learning_rate
        self.learning_rates = dict(learning_rates or {})
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.steps = dict.fromkeys(params, 0)
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray | RowGrad]) -> None:
        """Apply one update to every parameter that has a gradient in ``grads``.

        Parameters
        ----------
        params : dict of str to ndarray
            The parameters given at construction (same arrays), updated in place.
        grads : dict of str to ndarray or RowGrad
            Gradient per parameter name; dense gradients have the parameter's shape.
            A parameter missing from ``grads`` is left alone, and its own step
            count (used for the bias corrections) does not advance.
        """
        for name, grad in grads.items():
            param = params[name]
            self.steps[name] += 1
            t = self.steps[name]
            lr = self.learning_rates.get(name, self.learning_rate)
            args = (lr, self.beta1, self.beta2, self.eps, 1.0 - self.beta1**t, 1.0 - self.beta2**t)
            if isinstance(grad, RowGrad):
                adam_rows(param, grad.rows, grad.values, self.m[name], self.v[name], *args)
            else:
                if grad.shape != param.shape:
                    raise ValueError(f"gradient of {name!r} has shape {grad.shape}, parameter has {param.shape}")
                adam_dense(
                    param.reshape(-1), np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1),
                    self.m[name].reshape(-1), self.v[name].reshape(-1), *args,
                )


@dataclass(frozen=True)
class SGD:
    """Plain SGD, one step per training triplet: only step sizes, no state.

    Stepping is the objective's own fused epoch (``MFObjective.run_epoch`` with
    :func:`lgrec.kernels.bpr_sgd_epoch`); objectives that train with it list
    ``"sgd"`` in their ``optimizers``.

    Attributes
    ----------
    learning_rate : float
        Step size :math:`\\eta` of every parameter not in ``learning_rates``.
    learning_rates : dict of str to float
        Step sizes of individual parameters (by name) that differ from ``learning_rate``.
    """

    learning_rate: float
    learning_rates: dict = field(default_factory=dict)
