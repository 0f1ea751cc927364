"""Fused Adam updates (dense and row-sparse) and row accumulation for sparse gradients.

The update is PyTorch's Adam without weight decay:

    m <- b1 m + (1 - b1) g
    v <- b2 v + (1 - b2) g^2
    p <- p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),   bc_i = 1 - b_i^t

One pass over memory instead of the seven passes of the equivalent NumPy
expression; ``lgrec.optim`` holds the state and the bias corrections.
``error_model="numpy"``: without it Numba checks every float division for
zero, which keeps LLVM from vectorising the loops (8x slower here); the
denominator ``sqrt(v) / sqrt(bc2) + eps`` is never zero.
"""

import numba
import numpy as np

__all__ = ["accumulate_rows", "adam_dense", "adam_rows"]


@numba.njit(inline="always", cache=True, error_model="numpy")
def _adam_entry(param, grad, m, v, i, step, beta1, beta2, eps, inv_sqrt_bc2):
    g = grad[i]
    mi = beta1 * m[i] + (1.0 - beta1) * g
    vi = beta2 * v[i] + (1.0 - beta2) * g * g
    m[i] = mi
    v[i] = vi
    param[i] -= step * mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _adam_dense_parallel(param, grad, m, v, lr, beta1, beta2, eps, bc1, bc2):
    step = lr / bc1
    inv_sqrt_bc2 = 1.0 / np.sqrt(bc2)
    for i in numba.prange(param.shape[0]):
        _adam_entry(param, grad, m, v, i, step, beta1, beta2, eps, inv_sqrt_bc2)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _adam_dense_serial(param, grad, m, v, lr, beta1, beta2, eps, bc1, bc2):
    step = lr / bc1
    inv_sqrt_bc2 = 1.0 / np.sqrt(bc2)
    for i in range(param.shape[0]):
        _adam_entry(param, grad, m, v, i, step, beta1, beta2, eps, inv_sqrt_bc2)


PARALLEL_MIN_SIZE = 1 << 18
"""Arrays smaller than this are updated on one thread (a parallel launch costs more than it saves)."""


def adam_dense(param, grad, m, v, lr, beta1, beta2, eps, bc1, bc2):
    """In-place Adam step on flat (1-D, contiguous) arrays of equal length.

    Runs on all Numba threads for arrays of at least :data:`PARALLEL_MIN_SIZE`
    entries, on one thread below; the result is the same either way.
    """
    kernel = _adam_dense_parallel if param.shape[0] >= PARALLEL_MIN_SIZE else _adam_dense_serial
    kernel(param, grad, m, v, *_typed(param, lr, beta1, beta2, eps, bc1, bc2))


@numba.njit(inline="always", cache=True, error_model="numpy")
def _adam_row(param, rows, grad_rows, m, v, r, step, beta1, beta2, eps, inv_sqrt_bc2):
    row = rows[r]
    for c in range(param.shape[1]):
        g = grad_rows[r, c]
        mi = beta1 * m[row, c] + (1.0 - beta1) * g
        vi = beta2 * v[row, c] + (1.0 - beta2) * g * g
        m[row, c] = mi
        v[row, c] = vi
        param[row, c] -= step * mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _adam_rows_parallel(param, rows, grad_rows, m, v, lr, beta1, beta2, eps, bc1, bc2):
    step, inv_sqrt_bc2 = lr / bc1, 1.0 / np.sqrt(bc2)
    for r in numba.prange(rows.shape[0]):
        _adam_row(param, rows, grad_rows, m, v, r, step, beta1, beta2, eps, inv_sqrt_bc2)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _adam_rows_serial(param, rows, grad_rows, m, v, lr, beta1, beta2, eps, bc1, bc2):
    step, inv_sqrt_bc2 = lr / bc1, 1.0 / np.sqrt(bc2)
    for r in range(rows.shape[0]):
        _adam_row(param, rows, grad_rows, m, v, r, step, beta1, beta2, eps, inv_sqrt_bc2)


def adam_rows(param, rows, grad_rows, m, v, lr, beta1, beta2, eps, bc1, bc2):
    """In-place Adam step on the listed rows of 2-D arrays only (lazy Adam).

    ``rows`` must be unique; ``grad_rows[r]`` is the gradient of row ``rows[r]``.
    Parallel for at least :data:`PARALLEL_MIN_SIZE` updated entries, one thread below.
    """
    big = rows.shape[0] * param.shape[1] >= PARALLEL_MIN_SIZE
    kernel = _adam_rows_parallel if big else _adam_rows_serial
    kernel(param, rows, grad_rows, m, v, *_typed(param, lr, beta1, beta2, eps, bc1, bc2))


def _typed(param, *scalars):
    """Scalars in the parameter's dtype, so float32 updates run (and vectorise) in float32."""
    return tuple(param.dtype.type(x) for x in scalars)


@numba.njit(nogil=True, cache=True)
def accumulate_rows(inverse, values, n_out):
    """Sum rows of ``values`` that share an output slot.

    Parameters
    ----------
    inverse : ndarray of shape (n,), int64
        Output row of each input row (as from ``np.unique(..., return_inverse=True)``).
    values : ndarray of shape (n, d)
        Rows to add up.
    n_out : int
        Number of output rows.

    Returns
    -------
    ndarray of shape (n_out, d), same dtype as ``values``
    """
    out = np.zeros((n_out, values.shape[1]), dtype=values.dtype)
    for r in range(values.shape[0]):
        o = inverse[r]
        for c in range(values.shape[1]):
            out[o, c] += values[r, c]
    return out
