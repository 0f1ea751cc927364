"""Where a fused lazy-Adam BPR-MF epoch goes (issue 12): the kernel cut after each of its phases.

``_phases`` is a copy of ``lgrec.kernels.bpr._bpr_adam_epoch`` (as of this script's commit) with a
``mode`` that stops each batch after phase 1 (margins, losses, per-sample gradients; mode 1), after
building the batch's distinct rows (2), after the per-row sums (3), or runs it whole (4), and a
``prefetch`` switch for the kernel's prefetch hints. Each mode's time minus the previous one's is that
phase's cost. It is a profiling copy, not library code: if the kernel changes, re-copy it.

Usage::

    NUMBA_NUM_THREADS=1 flock /tmp/lgrec-bench.lock python benchmarks/profile_bpr_adam.py \\
        --data ../shared/data/amazon-baby
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np

import lgrec
from lgrec.kernels.bpr import PREFETCH_AHEAD, _add_slot, _prefetch_row, _sigmoid_neg, _softplus_neg
from lgrec.kernels.optim import _adam_row
from lgrec.models._base import xavier_normal
from lgrec.training import TripletSampler

@numba.njit(parallel=True, nogil=True, error_model="numpy")
def _phases(mode, prefetch, user, item, user_m, user_v, item_m, item_v, users, pos, neg, batch_size,
            regularization, user_lr, item_lr, beta1, beta2, eps, user_step, item_step, losses):
    d = user.shape[1]
    n = users.shape[0]
    dtype = user.dtype
    typed = np.empty(8, dtype=dtype)
    typed[0] = beta1; typed[1] = beta2; typed[2] = eps
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
            if prefetch and s + PREFETCH_AHEAD < size:
                _prefetch_row(user, users[start + s + PREFETCH_AHEAD])
                _prefetch_row(item, pos[start + s + PREFETCH_AHEAD])
                _prefetch_row(item, neg[start + s + PREFETCH_AHEAD])
            p_u = user[users[start + s]]; q_i = item[pos[start + s]]; q_j = item[neg[start + s]]
            x = reg_b * 0
            squares = 0.0
            for c in range(d):
                x += p_u[c] * (q_i[c] - q_j[c])
                squares += np.float64(p_u[c]) * p_u[c] + np.float64(q_i[c]) * q_i[c] + np.float64(q_j[c]) * q_j[c]
            sample_loss[s] = _softplus_neg(np.float64(x))
            sample_squares[s] = squares
            dx[s] = -_sigmoid_neg(x) / size
            dx_s = dx[s]
            g_u = contrib[s]; g_i = contrib[size + s]; g_j = contrib[2 * size + s]
            for c in range(d):
                g_u[c] = dx_s * (q_i[c] - q_j[c]) + p_u[c] * reg_b
                g_i[c] = dx_s * p_u[c] + q_i[c] * reg_b
                g_j[c] = -(dx_s * p_u[c]) + q_j[c] * reg_b
        loss = 0.0; squares = 0.0
        for s in range(size):
            loss += sample_loss[s]; squares += sample_squares[s]
        losses[b] = loss / size + regularization / (2.0 * size) * squares
        if mode == 1:
            continue
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
            counts[k] = offsets[k]
        for s in range(size):
            k = user_slots[users[start + s]]; members[counts[k]] = s; counts[k] += 1
        for s in range(size):
            k = item_slots[pos[start + s]]; members[counts[k]] = size + s; counts[k] += 1
        for s in range(size):
            k = item_slots[neg[start + s]]; members[counts[k]] = 2 * size + s; counts[k] += 1
        if mode == 2:
            for k in range(n_rows):
                if k < n_user_rows: user_slots[rows[k]] = -1
                else: item_slots[rows[k]] = -1
            continue
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
            if prefetch and ahead < n_user_rows:
                _prefetch_row(user, rows[ahead])
                _prefetch_row(user_m, rows[ahead])
                _prefetch_row(user_v, rows[ahead])
            elif prefetch and ahead < n_rows:
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
            if mode == 3:
                continue
            if k < n_user_rows:
                _adam_row(user, rows, grads, user_m, user_v, k, user_step_size, typed[0], typed[1], typed[2], user_inv_sqrt_bc2)
            else:
                _adam_row(item, rows, grads, item_m, item_v, k, item_step_size, typed[0], typed[1], typed[2], item_inv_sqrt_bc2)
        for k in range(n_rows):
            if k < n_user_rows: user_slots[rows[k]] = -1
            else: item_slots[rows[k]] = -1


PHASES = {1: "phase 1: margins, losses, per-sample gradients", 2: "phase 2: distinct rows (serial)",
          3: "phase 3a: per-row sums", 4: "phase 3b: Adam updates"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/amazon-baby")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    train = lgrec.load_mmrec(args.data).train
    rng = np.random.default_rng(0)
    sampler = TripletSampler(train)
    user, item = xavier_normal(rng, train.shape[0], 64), xavier_normal(rng, train.shape[1], 64)
    moments = [np.zeros_like(user), np.zeros_like(user), np.zeros_like(item), np.zeros_like(item)]
    users, pos, neg = sampler.epoch(rng)
    losses = np.empty(-(-users.shape[0] // 2048))
    print(f"{numba.get_num_threads()} Numba thread(s), load average {os.getloadavg()[0]:.2f}, "
          f"{losses.shape[0]} batches of 2,048")

    def run(mode, prefetch):
        _phases(mode, prefetch, user, item, *moments, users, pos, neg, 2048, 1e-4, 1e-3, 1e-3, 0.9, 0.999, 1e-8, 0,
                0, losses)

    for prefetch in (False, True):
        for mode in PHASES:
            run(mode, prefetch)  # compile and warm up
    times = {(prefetch, mode): [] for prefetch in (False, True) for mode in [0, *PHASES]}
    for _ in range(args.repeats):  # interleaved, so drift hits every column alike
        for prefetch in (False, True):
            start = time.perf_counter()
            sampler.epoch(rng)
            times[(prefetch, 0)].append(time.perf_counter() - start)
            for mode in PHASES:
                start = time.perf_counter()
                run(mode, prefetch)
                times[(prefetch, mode)].append(time.perf_counter() - start)
    for prefetch in (False, True):
        print(f"prefetch={prefetch}: sampler (TripletSampler.epoch) {np.median(times[(prefetch, 0)]) * 1e3:.1f} ms")
        previous = 0.0
        for mode, label in PHASES.items():
            total = np.median(times[(prefetch, mode)]) * 1e3
            print(f"  {label:48s} {total - previous:6.1f} ms (cumulative {total:.1f} ms)")
            previous = total


if __name__ == "__main__":
    main()
