r"""A whole BPR-MF epoch with lazy Adam in one kernel.

For each batch of :math:`B` consecutive triplets :math:`(u_b, i_b, j_b)` (the
last batch may be shorter; :math:`B` is its own size) with the rows
:math:`p_u` of ``user`` and :math:`q_i` of ``item`` read at the start of the batch,

.. math::

    x_b = p_{u_b}^\top (q_{i_b} - q_{j_b}), \qquad
    \mathcal L = \frac{1}{B}\sum_b \log\bigl(1 + e^{-x_b}\bigr)
        + \frac{\lambda}{2B}\sum_b \bigl(\lVert p_{u_b}\rVert^2 + \lVert q_{i_b}\rVert^2
        + \lVert q_{j_b}\rVert^2\bigr),

the gradient of every row the batch touches is summed over its samples
(:math:`\partial \mathcal L / \partial x_b = -\sigma(-x_b) / B`; users in sample
order; items over the positives in sample order, then over the negatives), and
Adam (PyTorch's formula, :mod:`lgrec.kernels.optim`) updates only those rows of
the parameter and of its moments ``m`` and ``v``; each parameter's step count
``t`` grows by one per batch. This is exactly one
``lgrec.models.bpr.MFObjective.loss_and_grads`` + ``lgrec.optim.Adam.step``
per batch (``tests/test_bpr_kernel.py`` checks it), without the per-batch Python
calls, gathers and temporaries.

The kernel runs in parallel over the samples and over the distinct rows of
each batch; every output element is computed by one thread in a fixed order,
so the result does not depend on the number of threads.
"""

import numba
import numpy as np

from .optim import _adam_row

__all__ = ["bpr_adam_epoch"]


@numba.njit(inline="always", cache=True, error_model="numpy")
def _softplus_neg(x):
    """``log(1 + exp(-x))`` without overflow (= ``np.logaddexp(0, -x)``)."""
    if x >= 0.0:
        return np.log1p(np.exp(-x))
    return -x + np.log1p(np.exp(x))


@numba.njit(inline="always", cache=True, error_model="numpy")
def _sigmoid_neg(x):
    """``1 / (1 + exp(x))`` without overflow."""
    if x >= 0.0:
        e = np.exp(-x)
        return e / (1.0 + e)
    return 1.0 / (1.0 + np.exp(x))


@numba.njit(inline="always", cache=True)
def _add_slot(slots, rows, counts, n_used, row):
    """Slot of ``row`` in this batch (a new one on first sight); counts its samples; returns the slots in use."""
    k = slots[row]
    if k < 0:
        k = n_used
        slots[row] = k
        rows[k] = row
        counts[k] = 0
        n_used += 1
    counts[k] += 1
    return n_used


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _bpr_adam_epoch(user, item, user_m, user_v, item_m, item_v, users, pos, neg, batch_size,
                    regularization, user_lr, item_lr, beta1, beta2, eps, user_step, item_step, losses):
    """See :func:`bpr_adam_epoch`. Per batch, three phases:

    1. per sample (parallel): margin, loss, and the gradient contributions to its
       user, positive and negative rows, in ``contrib`` rows ``s``, ``B + s``, ``2B + s``;
    2. (serial) the batch's distinct rows, users first then items in order of
       first appearance, and for each the list of its contributions in sample order
       (items: positives, then negatives), as CSR ``offsets`` / ``members``;
    3. per distinct row (parallel): the sum of its contributions in list order,
       then its Adam update. Rows are disjoint, and phase 3 reads only ``contrib``,
       so every result is independent of the number of threads.
    """
    d = user.shape[1]
    n = users.shape[0]
    dtype = user.dtype
    typed = np.empty(8, dtype=dtype)  # scalars cast to the parameters' dtype, as lgrec.optim.Adam passes them
    typed[0] = beta1
    typed[1] = beta2
    typed[2] = eps
    user_slots = np.full(user.shape[0], -1, dtype=np.int64)
    item_slots = np.full(item.shape[0], -1, dtype=np.int64)
    rows = np.empty(3 * batch_size, dtype=np.int64)
    counts = np.empty(3 * batch_size, dtype=np.int64)
    offsets = np.empty(3 * batch_size + 1, dtype=np.int64)
    members = np.empty(3 * batch_size, dtype=np.int64)
    contrib = np.empty((3 * batch_size, d), dtype=dtype)
    grads = np.empty((3 * batch_size, d), dtype=dtype)
    dx = np.empty(batch_size, dtype=dtype)
    sample_loss = np.empty(batch_size, dtype=np.float64)
    sample_squares = np.empty(batch_size, dtype=np.float64)
    for b in range(losses.shape[0]):
        start = b * batch_size
        size = min(n, start + batch_size) - start
        typed[3] = regularization / size
        reg_b = typed[3]
        for s in numba.prange(size):
            p_u = user[users[start + s]]
            q_i = item[pos[start + s]]
            q_j = item[neg[start + s]]
            x = reg_b * 0  # a zero of the parameters' dtype
            squares = 0.0
            for c in range(d):
                x += p_u[c] * (q_i[c] - q_j[c])
                squares += np.float64(p_u[c]) * p_u[c] + np.float64(q_i[c]) * q_i[c] + np.float64(q_j[c]) * q_j[c]
            sample_loss[s] = _softplus_neg(np.float64(x))
            sample_squares[s] = squares
            dx[s] = -_sigmoid_neg(x) / size
            dx_s = dx[s]
            g_u = contrib[s]
            g_i = contrib[size + s]
            g_j = contrib[2 * size + s]
            for c in range(d):
                g_u[c] = dx_s * (q_i[c] - q_j[c]) + p_u[c] * reg_b
                g_i[c] = dx_s * p_u[c] + q_i[c] * reg_b
                g_j[c] = -(dx_s * p_u[c]) + q_j[c] * reg_b
        loss = 0.0
        squares = 0.0
        for s in range(size):
            loss += sample_loss[s]
            squares += sample_squares[s]
        losses[b] = loss / size + regularization / (2.0 * size) * squares

        n_user_rows = 0
        for s in range(size):
            n_user_rows = _add_slot(user_slots, rows, counts, n_user_rows, users[start + s])
        n_rows = n_user_rows
        for s in range(size):
            n_rows = _add_slot(item_slots, rows, counts, n_rows, pos[start + s])
        for s in range(size):
            n_rows = _add_slot(item_slots, rows, counts, n_rows, neg[start + s])
        offsets[0] = 0
        for k in range(n_rows):
            offsets[k + 1] = offsets[k] + counts[k]
            counts[k] = offsets[k]  # from here on: the next free position of slot k
        for s in range(size):
            k = user_slots[users[start + s]]
            members[counts[k]] = s
            counts[k] += 1
        for s in range(size):
            k = item_slots[pos[start + s]]
            members[counts[k]] = size + s
            counts[k] += 1
        for s in range(size):
            k = item_slots[neg[start + s]]
            members[counts[k]] = 2 * size + s
            counts[k] += 1

        typed[4] = user_lr
        typed[5] = 1.0 - beta1 ** np.float64(user_step + b + 1)
        user_step_size = typed[4] / typed[5]
        typed[5] = 1.0 - beta2 ** np.float64(user_step + b + 1)
        user_inv_sqrt_bc2 = 1.0 / np.sqrt(typed[5])
        typed[4] = item_lr
        typed[5] = 1.0 - beta1 ** np.float64(item_step + b + 1)
        item_step_size = typed[4] / typed[5]
        typed[5] = 1.0 - beta2 ** np.float64(item_step + b + 1)
        item_inv_sqrt_bc2 = 1.0 / np.sqrt(typed[5])
        for k in numba.prange(n_rows):
            g = grads[k]
            for c in range(d):
                g[c] = 0
            for q in range(offsets[k], offsets[k + 1]):
                term = contrib[members[q]]
                for c in range(d):
                    g[c] += term[c]
            if k < n_user_rows:
                _adam_row(user, rows, grads, user_m, user_v, k, user_step_size, typed[0], typed[1], typed[2],
                          user_inv_sqrt_bc2)
            else:
                _adam_row(item, rows, grads, item_m, item_v, k, item_step_size, typed[0], typed[1], typed[2],
                          item_inv_sqrt_bc2)
        for k in range(n_rows):
            if k < n_user_rows:
                user_slots[rows[k]] = -1
            else:
                item_slots[rows[k]] = -1


def _check_table(array, name, dtype=None, shape=None):
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be a 2-D float32 or float64 ndarray; got "
                         f"{getattr(array, 'shape', type(array).__name__)}, {getattr(array, 'dtype', '')}.")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(f"{name} must be C-contiguous and writeable (it is updated in place).")
    if dtype is not None and array.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype} like the parameters; got {array.dtype}.")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {array.shape}.")


def _check_ids(ids, name, n, bound):
    ids = np.ascontiguousarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or (n is not None and ids.shape[0] != n):
        length = "" if n is None else f" of length {n} (like users)"
        raise ValueError(f"{name} must be a 1-D integer array{length}; got shape {ids.shape}, dtype {ids.dtype}.")
    if n and (ids.min() < 0 or ids.max() >= bound):
        raise ValueError(f"{name} must hold ids in [0, {bound}); got values in [{ids.min()}, {ids.max()}].")
    return ids


def bpr_adam_epoch(user, item, user_m, user_v, item_m, item_v, users, pos, neg, *, batch_size, regularization,
                   learning_rate, beta1, beta2, eps, user_step, item_step, user_learning_rate=None,
                   item_learning_rate=None):
    """One BPR-MF epoch with lazy Adam, in place (see the module docstring for the exact maths).

    Batch ``b`` is the triplets ``[b * batch_size, (b + 1) * batch_size)`` of
    ``users`` / ``pos`` / ``neg``; its Adam step uses the step count
    ``user_step + b + 1`` for ``user`` and ``item_step + b + 1`` for ``item``
    (the bias corrections :math:`1 - \\beta^t`). The caller owns the optimiser
    state: after the call, advance both step counts by ``len(losses)``. Equal
    to ``MFObjective.loss_and_grads`` followed by ``Adam.step`` for every batch
    (same formulas and order of the per-row sums; the float32 results differ
    from that path by rounding only).

    Parameters
    ----------
    user : ndarray of shape (n_users, d), float32 or float64
        User factors; updated in place.
    item : ndarray of shape (n_items, d), same dtype
        Item factors; updated in place.
    user_m, user_v : ndarray of shape (n_users, d), same dtype
        Adam's first and second moments of ``user``; updated in place (only the touched rows).
    item_m, item_v : ndarray of shape (n_items, d), same dtype
        The same for ``item``.
    users, pos, neg : ndarray of shape (n,), int
        The epoch's triplets in training order.
    batch_size : int
        Triplets per Adam step (>= 1).
    regularization : float
        L2 weight :math:`\\lambda`.
    learning_rate : float
        Adam step size of both tables (unless overridden below).
    beta1, beta2, eps : float
        Adam's constants.
    user_step, item_step : int
        Adam steps each table has taken before this epoch (>= 0).
    user_learning_rate, item_learning_rate : float, optional
        Per-table step sizes (default ``learning_rate``).

    Returns
    -------
    losses : ndarray of shape (ceil(n / batch_size),), float64
        The loss of every batch (BPR mean + L2 term), accumulated in float64.

    Notes
    -----
    Parallel over Numba's threads, bit-identical for any number of them.
    """
    _check_table(user, "user")
    dtype, d = user.dtype, user.shape[1]
    _check_table(item, "item", dtype)
    if item.shape[1] != d:
        raise ValueError(f"item must have {d} columns like user; got {item.shape[1]}.")
    for name, array, like in (("user_m", user_m, user), ("user_v", user_v, user),
                              ("item_m", item_m, item), ("item_v", item_v, item)):
        _check_table(array, name, dtype, like.shape)
    users = _check_ids(users, "users", None, user.shape[0])
    n = users.shape[0]
    pos = _check_ids(pos, "pos", n, item.shape[0])
    neg = _check_ids(neg, "neg", n, item.shape[0])
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    for name, step in (("user_step", user_step), ("item_step", item_step)):
        if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
            raise ValueError(f"{name} must be a non-negative int; got {step!r}.")
    losses = np.empty(-(-n // batch_size), dtype=np.float64)
    user_lr = learning_rate if user_learning_rate is None else user_learning_rate
    item_lr = learning_rate if item_learning_rate is None else item_learning_rate
    _bpr_adam_epoch(user, item, user_m, user_v, item_m, item_v, users, pos, neg, int(batch_size),
                    float(regularization), float(user_lr), float(item_lr), float(beta1), float(beta2), float(eps),
                    int(user_step), int(item_step), losses)
    return losses
