"""BPR negative sampling.

Randomness is explicit: the caller draws one 64-bit seed per block of
``block_size`` triplets from its :class:`numpy.random.Generator`, and each block
runs its own SplitMix64 stream. The result depends only on the seeds, never on
the number of threads.
"""

import numba
import numpy as np

from .sparse import contains_sorted

__all__ = ["sample_negatives", "splitmix64_next"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@numba.njit(inline="always", cache=True)
def splitmix64_next(state):
    """Advance a SplitMix64 state; return ``(new_state, 64 random bits)``."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@numba.njit(parallel=True, nogil=True, cache=True)
def sample_negatives(indptr, indices, users, candidates, seeds, block_size, out):
    """Draw one negative item per user, uniform over the candidate items the user has not seen.

    Parameters
    ----------
    indptr : ndarray of shape (n_users + 1,), int32 or int64
        CSR row pointers of the training interactions.
    indices : ndarray of shape (nnz,), int32
        CSR column indices, sorted within each row.
    users : ndarray of shape (n,), int32 or int64
        User of each triplet.
    candidates : ndarray of shape (n_candidates,), int32 or int64
        Items negatives are drawn from (``np.arange(n_items)`` for all items).
    seeds : ndarray of shape (ceil(n / block_size),), uint64
        One seed per block of ``block_size`` consecutive triplets.
    block_size : int
        Triplets per seed.
    out : ndarray of shape (n,), int32
        Receives the negatives. A user who has seen at least as many items as
        there are candidates gets ``-1``; callers exclude users who have seen
        every candidate (otherwise the rejection loop would not end).
    """
    n = users.shape[0]
    n_candidates = candidates.shape[0]
    bound = np.uint64(n_candidates)
    for b in numba.prange(seeds.shape[0]):
        state = seeds[b]
        stop = min(n, (b + 1) * block_size)
        for t in range(b * block_size, stop):
            u = users[t]
            start = indptr[u]
            end = indptr[u + 1]
            if end - start >= n_candidates:
                out[t] = -1
                continue
            while True:
                state, bits = splitmix64_next(state)
                j = candidates[numba.int64(((bits >> np.uint64(32)) * bound) >> np.uint64(32))]
                if not contains_sorted(indices, start, end, j):
                    break
            out[t] = j
