r"""A whole BPR-MF epoch in one kernel: mini-batch lazy Adam (:func:`bpr_adam_epoch`) or
per-triplet SGD (:func:`bpr_sgd_epoch`).

**Adam.**
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

**SGD.** Every triplet :math:`t` takes its own step (Rendle et al.'s BPR learning
algorithm, as in the ``implicit`` package) on its own loss

.. math::

    \ell_t = \log\bigl(1 + e^{-x_t}\bigr)
        + \frac{\lambda}{2}\bigl(\lVert p_{u_t}\rVert^2 + \lVert q_{i_t}\rVert^2
        + \lVert q_{j_t}\rVert^2\bigr),
    \qquad x_t = p_{u_t}^\top (q_{i_t} - q_{j_t}),

    p_{u_t} \leftarrow p_{u_t} - \eta_u \,\partial\ell_t/\partial p_{u_t}, \quad
    q_{i_t} \leftarrow q_{i_t} - \eta_i \,\partial\ell_t/\partial q_{i_t}, \quad
    q_{j_t} \leftarrow q_{j_t} - \eta_i \,\partial\ell_t/\partial q_{j_t},

with all three gradients taken at the rows as they were before the step
(:math:`\ell_t` is ``MFObjective.loss_and_grads`` of the one-triplet batch ``[t]``;
``tests/test_bpr_kernel.py`` checks it). The result is that of visiting the
triplets in the given order, each step reading the rows earlier steps wrote. It
runs in parallel without Hogwild races: triplet :math:`t`'s *level* is one more
than the highest level of the earlier triplets that share a row with it (its
user, positive or negative), so triplets of one level share no row and every
row sees its updates in the given order. The levels run one after the other,
the triplets of a level in parallel; no two threads ever touch the same row at
once, and the result is bit-identical to the one-thread visit in order, for any
number of threads (``tests/test_bpr_kernel.py``). On Amazon Baby an epoch has
~600 levels of ~200 triplets (the popular items' triplets make the long chain);
levels of fewer than ``SGD_PARALLEL_MIN`` triplets run on one thread.
"""

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .optim import _adam_row

__all__ = ["bpr_adam_epoch", "bpr_sgd_epoch"]


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


#: How many samples (or distinct rows) ahead of the current one the kernels prefetch the table rows of.
PREFETCH_AHEAD = 4


@intrinsic
def _prefetch(typingctx, array, row, col):
    """Hint the CPU to load the cache line of ``array[row, col]`` (LLVM's ``llvm.prefetch``; no effect on results)."""
    signature = types.void(array, row, col)

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        index = [context.cast(builder, args[k], sig.args[k], types.intp) for k in (1, 2)]
        pointer = builder.bitcast(cgutils.get_item_pointer(context, builder, array_type, view, index),
                                  ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        function = builder.module.declare_intrinsic(
            "llvm.prefetch", [pointer.type], ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]))
        builder.call(function, [pointer, i32(0), i32(3), i32(1)])  # read, keep in all caches, data
        return context.get_dummy_value()

    return signature, codegen


@numba.njit(inline="always", cache=True)
def _prefetch_row(array, row):
    """Prefetch every 64-byte cache line of ``array[row]`` (a C-contiguous 2-D array)."""
    step = max(1, 64 // array.itemsize)
    for c in range(0, array.shape[1], step):
        _prefetch(array, row, c)


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

    Phases 1 and 3 prefetch the rows ``PREFETCH_AHEAD`` samples / rows ahead (the
    rows are scattered over the tables; a hint to the CPU that changes no result:
    on Amazon Baby one thread's epoch went from about 110 ms to 40 ms, bit-identical).
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
            if s + PREFETCH_AHEAD < size:
                _prefetch_row(user, users[start + s + PREFETCH_AHEAD])
                _prefetch_row(item, pos[start + s + PREFETCH_AHEAD])
                _prefetch_row(item, neg[start + s + PREFETCH_AHEAD])
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
            ahead = k + PREFETCH_AHEAD
            if ahead < n_user_rows:
                _prefetch_row(user, rows[ahead])
                _prefetch_row(user_m, rows[ahead])
                _prefetch_row(user_v, rows[ahead])
            elif ahead < n_rows:
                _prefetch_row(item, rows[ahead])
                _prefetch_row(item_m, rows[ahead])
                _prefetch_row(item_v, rows[ahead])
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


@numba.njit(inline="always", cache=True, error_model="numpy")
def _margin_and_squares(p_u, q_i, q_j, zero):
    """``(p_u . (q_i - q_j), |p_u|^2 + |q_i|^2 + |q_j|^2)`` in the rows' dtype.

    Column ``c`` goes to partial sum ``c % 8`` (the last ``d % 8`` columns to the
    first), and the eight partial sums are added pairwise: a fixed order, the same
    on every run, with eight independent chains of additions instead of one (on
    Amazon Baby the SGD epoch took ~16 ms instead of ~23 ms with one running sum).
    """
    d = p_u.shape[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    for c in range(0, d - d % 8, 8):
        a0 += p_u[c] * (q_i[c] - q_j[c])
        a1 += p_u[c + 1] * (q_i[c + 1] - q_j[c + 1])
        a2 += p_u[c + 2] * (q_i[c + 2] - q_j[c + 2])
        a3 += p_u[c + 3] * (q_i[c + 3] - q_j[c + 3])
        a4 += p_u[c + 4] * (q_i[c + 4] - q_j[c + 4])
        a5 += p_u[c + 5] * (q_i[c + 5] - q_j[c + 5])
        a6 += p_u[c + 6] * (q_i[c + 6] - q_j[c + 6])
        a7 += p_u[c + 7] * (q_i[c + 7] - q_j[c + 7])
        s0 += p_u[c] * p_u[c] + q_i[c] * q_i[c] + q_j[c] * q_j[c]
        s1 += p_u[c + 1] * p_u[c + 1] + q_i[c + 1] * q_i[c + 1] + q_j[c + 1] * q_j[c + 1]
        s2 += p_u[c + 2] * p_u[c + 2] + q_i[c + 2] * q_i[c + 2] + q_j[c + 2] * q_j[c + 2]
        s3 += p_u[c + 3] * p_u[c + 3] + q_i[c + 3] * q_i[c + 3] + q_j[c + 3] * q_j[c + 3]
        s4 += p_u[c + 4] * p_u[c + 4] + q_i[c + 4] * q_i[c + 4] + q_j[c + 4] * q_j[c + 4]
        s5 += p_u[c + 5] * p_u[c + 5] + q_i[c + 5] * q_i[c + 5] + q_j[c + 5] * q_j[c + 5]
        s6 += p_u[c + 6] * p_u[c + 6] + q_i[c + 6] * q_i[c + 6] + q_j[c + 6] * q_j[c + 6]
        s7 += p_u[c + 7] * p_u[c + 7] + q_i[c + 7] * q_i[c + 7] + q_j[c + 7] * q_j[c + 7]
    for c in range(d - d % 8, d):
        a0 += p_u[c] * (q_i[c] - q_j[c])
        s0 += p_u[c] * p_u[c] + q_i[c] * q_i[c] + q_j[c] * q_j[c]
    x = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    squares = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    return x, squares


@numba.njit(inline="always", cache=True, error_model="numpy")
def _sgd_step(user, item, u, i, j, reg, lr_u, lr_i):
    """One triplet's SGD step in place; returns its BPR loss and squared norms (float64), taken before the step."""
    d = user.shape[1]
    p_u = user[u]
    q_i = item[i]
    q_j = item[j]
    x, squares = _margin_and_squares(p_u, q_i, q_j, reg * 0)
    dx = -_sigmoid_neg(x)
    if i != j:
        for c in range(d):
            pu = p_u[c]
            qi = q_i[c]
            qj = q_j[c]
            d_i = dx * pu
            p_u[c] = pu - lr_u * (dx * (qi - qj) + pu * reg)
            q_i[c] = qi - lr_i * (d_i + qi * reg)
            q_j[c] = qj - lr_i * (-d_i + qj * reg)
    else:  # one row as positive and negative: its two gradients add up (x = 0)
        for c in range(d):
            pu = p_u[c]
            qi = q_i[c]
            d_i = dx * pu
            p_u[c] = pu - lr_u * (dx * (qi - qi) + pu * reg)
            q_i[c] = qi - lr_i * ((d_i + qi * reg) + (-d_i + qi * reg))
    return _softplus_neg(np.float64(x)), np.float64(squares)


@numba.njit(nogil=True, cache=True)
def _dependency_levels(users, pos, neg, n_users, n_items, order, level_ptr):
    """Group the triplets into levels in which no two share a row; returns the number of levels.

    Triplet ``t``'s level is one more than the highest level among the earlier
    triplets that use ``users[t]``, ``pos[t]`` or ``neg[t]`` (the first level
    when there are none). Fills ``order`` (shape (n,)) with the triplet indices
    sorted by level, stably, and the first ``n_levels + 1`` entries of
    ``level_ptr`` (shape (n + 1,)) with the bounds of each level's slice of
    ``order``.
    """
    n = users.shape[0]
    last_user = np.zeros(n_users, dtype=np.int32)
    last_item = np.zeros(n_items, dtype=np.int32)
    level = np.empty(n, dtype=np.int32)
    n_levels = 0
    for t in range(n):
        lv = max(last_user[users[t]], last_item[pos[t]], last_item[neg[t]]) + 1
        level[t] = lv
        last_user[users[t]] = lv
        last_item[pos[t]] = lv
        last_item[neg[t]] = lv
        n_levels = max(n_levels, lv)
    level_ptr[: n_levels + 1] = 0
    for t in range(n):
        level_ptr[level[t]] += 1
    for lv in range(n_levels):
        level_ptr[lv + 1] += level_ptr[lv]
    fill = level_ptr[:n_levels].copy()
    for t in range(n):
        lv = level[t] - 1
        order[fill[lv]] = t
        fill[lv] += 1
    return n_levels


#: Levels with fewer triplets than this run on one thread (the others are split evenly among the threads).
SGD_PARALLEL_MIN = 64


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _sgd_run(user, item, users, pos, neg, order, start, stop, reg, lr_u, lr_i, triplet_loss, triplet_squares):
    """Steps of the triplets ``order[start:stop]`` (no two share a row), prefetching rows ahead."""
    for s in range(start, stop):
        if s + PREFETCH_AHEAD < stop:
            ahead = order[s + PREFETCH_AHEAD]
            _prefetch_row(user, users[ahead])
            _prefetch_row(item, pos[ahead])
            _prefetch_row(item, neg[ahead])
        t = order[s]
        triplet_loss[t], triplet_squares[t] = _sgd_step(user, item, users[t], pos[t], neg[t], reg, lr_u, lr_i)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _bpr_sgd_epoch(user, item, users, pos, neg, block_size, regularization, user_lr, item_lr, losses, n_parts):
    """See :func:`bpr_sgd_epoch`: the levels one after the other, each level's triplets in ``n_parts``
    parallel parts (any split gives the same result: a level's triplets share no row)."""
    n = users.shape[0]
    order = np.empty(n, dtype=np.int64)
    level_ptr = np.empty(n + 1, dtype=np.int64)
    n_levels = _dependency_levels(users, pos, neg, user.shape[0], item.shape[0], order, level_ptr)
    typed = np.empty(3, dtype=user.dtype)  # scalars in the parameters' dtype, so float32 runs in float32
    typed[0] = regularization
    typed[1] = user_lr
    typed[2] = item_lr
    reg = typed[0]
    lr_u = typed[1]
    lr_i = typed[2]
    triplet_loss = np.empty(n, dtype=np.float64)
    triplet_squares = np.empty(n, dtype=np.float64)
    for lv in range(n_levels):
        start = level_ptr[lv]
        stop = level_ptr[lv + 1]
        if stop - start < SGD_PARALLEL_MIN:
            _sgd_run(user, item, users, pos, neg, order, start, stop, reg, lr_u, lr_i, triplet_loss, triplet_squares)
            continue
        for part in numba.prange(n_parts):
            _sgd_run(user, item, users, pos, neg, order, start + (stop - start) * part // n_parts,
                     start + (stop - start) * (part + 1) // n_parts, reg, lr_u, lr_i, triplet_loss, triplet_squares)
    for b in range(losses.shape[0]):  # in triplet order, as one thread visiting them in order would add them
        first = b * block_size
        last = min(n, first + block_size)
        block_loss = 0.0
        block_squares = 0.0
        for t in range(first, last):
            block_loss += triplet_loss[t]
            block_squares += triplet_squares[t]
        losses[b] = (block_loss + 0.5 * regularization * block_squares) / (last - first)


def bpr_sgd_epoch(user, item, users, pos, neg, *, regularization, learning_rate, block_size,
                  user_learning_rate=None, item_learning_rate=None):
    """One BPR-MF epoch of per-triplet SGD, in place (see the module docstring for the exact maths).

    Triplet ``t`` of ``users`` / ``pos`` / ``neg`` takes one plain SGD step on
    its own BPR + L2 loss (the gradient of ``MFObjective.loss_and_grads`` on the
    batch ``[t]``), with the result of visiting them in the given order. Triplets
    that share no row run in parallel (dependency levels, module docstring); the
    result is bit-identical for any number of Numba threads.

    Parameters
    ----------
    user : ndarray of shape (n_users, d), float32 or float64
        User factors; updated in place.
    item : ndarray of shape (n_items, d), same dtype
        Item factors; updated in place.
    users, pos, neg : ndarray of shape (n,), int
        The epoch's triplets in training order (as from ``TripletSampler.epoch``).
        ``pos[t] == neg[t]`` is allowed (the row then takes the sum of both gradients).
    regularization : float
        L2 weight :math:`\\lambda` (per triplet, on the three rows it touches).
    learning_rate : float
        SGD step size :math:`\\eta` of both tables (unless overridden below).
    block_size : int
        Triplets per reported loss (>= 1); the steps do not depend on it.
    user_learning_rate, item_learning_rate : float, optional
        Per-table step sizes (default ``learning_rate``).

    Returns
    -------
    losses : ndarray of shape (ceil(n / block_size),), float64
        Mean over each block of consecutive triplets of :math:`\\ell_t`, each taken
        at the parameters just before the triplet's own step (accumulated in float64).
    """
    _check_table(user, "user")
    dtype, d = user.dtype, user.shape[1]
    _check_table(item, "item", dtype)
    if item.shape[1] != d:
        raise ValueError(f"item must have {d} columns like user; got {item.shape[1]}.")
    users = _check_ids(users, "users", None, user.shape[0])
    n = users.shape[0]
    pos = _check_ids(pos, "pos", n, item.shape[0])
    neg = _check_ids(neg, "neg", n, item.shape[0])
    if not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"block_size must be a positive int; got {block_size!r}.")
    losses = np.empty(-(-n // block_size), dtype=np.float64)
    user_lr = learning_rate if user_learning_rate is None else user_learning_rate
    item_lr = learning_rate if item_learning_rate is None else item_learning_rate
    _bpr_sgd_epoch(user, item, users, pos, neg, int(block_size), float(regularization), float(user_lr),
                   float(item_lr), losses, numba.get_num_threads())
    return losses
