"""Synthetic datasets: planted multimodal structure (the demo, the tests) and power-law scale data.

- :func:`make_multimodal`: a small dataset whose image and text features
  carry known, complementary signal.
- :func:`make_powerlaw`: a large binary interaction matrix with power-law
  degree skew on both sides, built in memory proportional to the number of
  interactions (for scale benchmarks up to 10^8 interactions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._validation import check_float, check_int, check_random_state
from .data import Dataset, _holdout_labels, _random_labels

__all__ = ["make_multimodal", "make_powerlaw"]


def make_multimodal(
    n_users: int = 1000,
    n_items: int = 800,
    n_categories: int = 8,
    n_styles: int = 6,
    interactions_per_user: float = 12.0,
    image_dim: int = 32,
    text_dim: int = 24,
    noise: float = 0.3,
    missing_image: float = 0.1,
    missing_text: float = 0.1,
    cold_items: float = 0.1,
    random_state=None,
) -> Dataset:
    """Generate a seeded multimodal interaction dataset with known structure.

    Every item has a category (visible in its text features) and a style
    (visible in its image features). Every user has preferences over both;
    the chance that a user picks an item is proportional to
    ``pref_category[u, c_i] * pref_style[u, s_i] * popularity_i``. So both
    modalities carry signal, neither alone carries all of it, and a model that
    reads features can rank items it never saw in training.

    Parameters
    ----------
    n_users, n_items : int, default=1000, 800
    n_categories, n_styles : int, default=8, 6
        Latent groups seen through the text and the image features.
    interactions_per_user : float, default=12.0
        Mean number of distinct items per user (at least 3 each).
    image_dim, text_dim : int, default=32, 24
        Feature dimensions.
    noise : float, default=0.3
        Standard deviation of the Gaussian noise added to the features.
    missing_image, missing_text : float, default=0.1
        Fraction of items whose image / text row is all zeros (missing).
    cold_items : float, default=0.1
        Fraction of items moved entirely to the test split (never in train or valid).
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    Dataset
        Per-user random 80/10/10 split (before moving the cold items), named
        ``"synthetic"``; ``item_info`` has ``category`` and ``style`` columns.
    """
    owner = "make_multimodal"
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_categories", n_categories),
                        ("n_styles", n_styles), ("image_dim", image_dim), ("text_dim", text_dim)):
        check_int(value, name, owner, low=1)
    check_float(interactions_per_user, "interactions_per_user", owner, low=3.0, high=float(n_items))
    check_float(noise, "noise", owner, low=0.0)
    for name, value in (("missing_image", missing_image), ("missing_text", missing_text), ("cold_items", cold_items)):
        check_float(value, name, owner, low=0.0, high=1.0, closed="left")
    rng = check_random_state(random_state)

    category = rng.integers(0, n_categories, n_items)
    style = rng.integers(0, n_styles, n_items)
    popularity = rng.lognormal(0.0, 0.7, n_items)
    pref_category = rng.dirichlet(np.full(n_categories, 0.3), n_users)
    pref_style = rng.dirichlet(np.full(n_styles, 0.3), n_users)

    counts = np.minimum(3 + rng.poisson(interactions_per_user - 3, n_users), n_items)
    users, items = _sample_items(rng, pref_category, pref_style, category, style, popularity, counts)

    text = np.eye(n_categories)[category] @ rng.standard_normal((n_categories, text_dim))
    image = np.eye(n_styles)[style] @ rng.standard_normal((n_styles, image_dim))
    text += noise * rng.standard_normal(text.shape)
    image += noise * rng.standard_normal(image.shape)
    image[rng.random(n_items) < missing_image] = 0.0
    text[rng.random(n_items) < missing_text] = 0.0

    labels = _random_labels(users, 0.1, 0.1, rng)
    cold = rng.random(n_items) < cold_items
    labels[cold[items]] = 2
    shape = (n_users, n_items)
    splits = [
        sp.csr_matrix((np.ones(int((labels == c).sum()), np.float32), (users[labels == c], items[labels == c])), shape=shape)
        for c in range(3)
    ]
    info = pd.DataFrame({"itemID": np.arange(n_items), "category": category, "style": style})
    return Dataset(*splits, image=image.astype(np.float32), text=text.astype(np.float32),
                   name="synthetic", item_info=info)


def _sample_items(rng, pref_category, pref_style, category, style, popularity, counts, block: int = 256):
    """Draw ``counts[u]`` distinct items per user by Gumbel top-k on log affinities, in user blocks."""
    log_pop = np.log(popularity)
    users, items = [], []
    for start in range(0, pref_category.shape[0], block):
        stop = min(start + block, pref_category.shape[0])
        logits = (np.log(pref_category[start:stop][:, category] + 1e-12)
                  + np.log(pref_style[start:stop][:, style] + 1e-12) + log_pop)
        keys = logits + rng.gumbel(size=logits.shape)
        order = np.argsort(-keys, axis=1)
        for row, u in enumerate(range(start, stop)):
            chosen = order[row, : counts[u]]
            users.append(np.full(chosen.shape[0], u))
            items.append(chosen)
    return np.concatenate(users), np.concatenate(items)


#: Interactions drawn per block of consecutive users: bounds the working memory of
#: :func:`make_powerlaw` (a few arrays of this length) and fixes the blocks, hence the
#: random streams, independently of anything but the arguments.
_POWERLAW_BLOCK = 1 << 20
_MAX_TOP_UPS = 64


def make_powerlaw(
    n_users: int = 10_000,
    n_items: int = 2_000,
    n_interactions: int = 100_000,
    *,
    user_exponent: float = 0.5,
    item_exponent: float = 0.75,
    min_user_interactions: int = 1,
    n_clusters: int = 16,
    cluster_affinity: float = 0.5,
    image_dim: int | None = None,
    text_dim: int | None = None,
    feature_noise: float = 1.0,
    valid_size: float = 0.1,
    test_size: float = 0.1,
    random_state=None,
) -> Dataset:
    r"""Generate a large binary interaction matrix with power-law degrees on both sides.

    Users and items are ranked in a random order. The user of activity rank
    :math:`r` (1 = most active) gets exactly

    .. math::

        d_r = m + e_r, \qquad e_r \propto r^{-a}, \qquad \sum_r d_r = N,

    distinct items (``m = min_user_interactions``, ``a = user_exponent``,
    ``N = n_interactions``; ``e`` rounded by largest remainders and capped so
    that no user holds more than half of the catalogue). Each of a user's
    items is drawn, with probability ``cluster_affinity``, from the items of
    the user's latent cluster, otherwise from all items, in both cases with
    probability proportional to the item's popularity :math:`(s)^{-b}` (item
    popularity rank :math:`s`, ``b = item_exponent``). Draws that repeat an
    item of the same user are replaced by further draws; the few surplus
    items of the last such round are dropped at random. This is a
    Chung-Lu-style bipartite model: the rank-degree curves of users and items
    are Zipf-like with the given exponents (real data: users 0.4-0.6 and
    items 0.7-0.75 on Amazon Baby, Sports and MovieLens-1M), and the latent
    clusters give the interactions a structure that item features can carry.

    Cost and memory are linear in ``n_interactions``: users are processed in
    blocks of about 2^20 draws, each block's (user, item) pairs are
    de-duplicated by sorting its int64 keys, and only the int32 item ids of
    the result are kept. No users x items array exists at any point; 10^8
    interactions take a few GiB. The result depends only on the arguments
    (the blocks and their random streams are fixed by them), never on the
    number of threads.

    Parameters
    ----------
    n_users, n_items : int, default=10_000, 2_000
    n_interactions : int, default=100_000
        Exact number of distinct (user, item) pairs over the three splits;
        between ``n_users * min_user_interactions`` and
        ``n_users * max(min_user_interactions, n_items // 2)``, below 2^31.
    user_exponent : float, default=0.5
        Zipf exponent :math:`a` of the user activity curve (0 = every user
        gets about the same number of items).
    item_exponent : float, default=0.75
        Zipf exponent :math:`b` of item popularity (0 = uniform).
    min_user_interactions : int, default=1
        Items of the least active users.
    n_clusters : int, default=16
        Latent item clusters; every user prefers one of them.
    cluster_affinity : float in [0, 1), default=0.5
        Share of a user's draws taken from the preferred cluster.
    image_dim, text_dim : int or None, default=None
        Dimensions of synthetic item features (None: no such modality). Each
        is a Gaussian centre per cluster plus Gaussian noise, float32, so
        content predicts the cluster and hence the users.
    feature_noise : float, default=1.0
        Standard deviation of that noise (the centres have unit variance).
    valid_size, test_size : float, default=0.1
        Per-user random hold-out fractions, as in :meth:`Dataset.from_frame`
        (at least one item of each user stays in train).
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    Dataset
        Canonical CSR splits (int32 indices, float32 ones, sorted, no
        duplicates) of shape (n_users, n_items), named ``"powerlaw"``;
        ``item_info`` has the item's latent cluster as column ``category``.
        Items may have no interaction at all (the popularity tail).

    Examples
    --------
    >>> from lgrec.datasets import make_powerlaw
    >>> data = make_powerlaw(1000, 500, 20_000, random_state=0)
    >>> data.train.nnz + data.valid.nnz + data.test.nnz
    20000
    """
    owner = "make_powerlaw"
    n_users = check_int(n_users, "n_users", owner, low=1)
    n_items = check_int(n_items, "n_items", owner, low=1)
    min_degree = check_int(min_user_interactions, "min_user_interactions", owner, low=1, high=n_items)
    cap = max(min_degree, n_items // 2)
    n_interactions = check_int(n_interactions, "n_interactions", owner, low=n_users * min_degree,
                               high=min(n_users * cap, 2**31 - 1))
    user_exponent = check_float(user_exponent, "user_exponent", owner, low=0.0, high=5.0)
    item_exponent = check_float(item_exponent, "item_exponent", owner, low=0.0, high=5.0)
    n_clusters = check_int(n_clusters, "n_clusters", owner, low=1)
    affinity = check_float(cluster_affinity, "cluster_affinity", owner, low=0.0, high=1.0, closed="left")
    for name, value in (("image_dim", image_dim), ("text_dim", text_dim)):
        if value is not None:
            check_int(value, name, owner, low=1)
    check_float(feature_noise, "feature_noise", owner, low=0.0)
    check_float(valid_size, "valid_size", owner, low=0.0, high=1.0, closed="left")
    check_float(test_size, "test_size", owner, low=0.0, high=1.0, closed="left")
    if valid_size + test_size >= 1.0:
        raise ValueError(f"valid_size + test_size of {owner} must be below 1; got {valid_size} + {test_size}.")
    rng = check_random_state(random_state)
    feature_rng = np.random.default_rng(rng.integers(2**63 - 1))

    degrees = np.empty(n_users, dtype=np.int64)
    degrees[rng.permutation(n_users)] = _zipf_degrees(n_users, n_interactions, user_exponent, min_degree, cap)
    popularity = np.empty(n_items, dtype=np.float64)
    popularity[rng.permutation(n_items)] = np.arange(1, n_items + 1, dtype=np.float64) ** -item_exponent
    item_cluster = rng.integers(0, n_clusters, n_items).astype(np.int32)
    occupied = np.flatnonzero(np.bincount(item_cluster, minlength=n_clusters))
    user_cluster = occupied[rng.integers(0, occupied.size, n_users)].astype(np.int32)
    sampler = _PopularitySampler(popularity, item_cluster, n_clusters, affinity)

    bounds = _block_bounds(degrees, _POWERLAW_BLOCK)
    seeds = rng.integers(0, 2**63 - 1, size=bounds.size - 1)
    parts = [[], [], []]
    counts = [np.zeros(n_users, dtype=np.int64) for _ in range(3)]
    for start, stop, seed in zip(bounds[:-1], bounds[1:], seeds):
        block_rng = np.random.default_rng(seed)
        owners, items = _distinct_items(block_rng, sampler, degrees[start:stop], user_cluster[start:stop], n_items)
        labels = _block_labels(block_rng, owners, degrees[start:stop], valid_size, test_size)
        for split in range(3):
            mask = labels == split
            parts[split].append(items[mask])
            counts[split][start:stop] = np.bincount(owners[mask], minlength=stop - start)

    shape = (n_users, n_items)
    splits = []
    for split in range(3):
        indptr = np.zeros(n_users + 1, dtype=np.int32)
        np.cumsum(counts[split], out=indptr[1:])
        indices = np.concatenate(parts[split]) if parts[split] else np.empty(0, dtype=np.int32)
        parts[split] = None
        matrix = sp.csr_matrix((np.ones(indices.shape[0], np.float32), indices, indptr), shape=shape)
        matrix.has_canonical_format = True
        splits.append(matrix)
    features = {
        name: _cluster_features(feature_rng, item_cluster, n_clusters, dim, feature_noise)
        for name, dim in (("image", image_dim), ("text", text_dim))
    }
    info = pd.DataFrame({"itemID": np.arange(n_items), "category": item_cluster})
    return Dataset(*splits, **features, name="powerlaw", item_info=info)


def _zipf_degrees(n_users: int, total: int, exponent: float, low: int, cap: int) -> np.ndarray:
    """Degrees ``low + e_r`` by activity rank, ``e_r`` proportional to ``r^-exponent`` capped at ``cap - low``.

    Water-filling: the most active users are capped, the rest share what is left in
    proportion to their weights; integer parts by largest remainders, so the sum is exact.
    """
    extra_total = total - n_users * low
    room = cap - low
    weights = np.arange(1, n_users + 1, dtype=np.float64) ** -exponent
    tail_mass = np.cumsum(weights[::-1])[::-1]
    n_capped = np.arange(n_users)
    fits = (extra_total - n_capped * room) * weights / tail_mass <= room
    first_free = int(np.argmax(fits)) if fits.any() else n_users
    extra = np.full(n_users, float(room))
    if first_free < n_users:
        left = extra_total - first_free * room
        extra[first_free:] = left * weights[first_free:] / tail_mass[first_free]
    whole = np.minimum(np.floor(extra), room).astype(np.int64)
    remainder = extra - whole
    remainder[whole >= room] = -1.0
    short = extra_total - int(whole.sum())
    if short > 0:
        whole[np.argsort(-remainder, kind="stable")[:short]] += 1
    return low + whole


def _block_bounds(degrees: np.ndarray, block: int) -> np.ndarray:
    """User offsets of consecutive blocks holding about ``block`` interactions each."""
    ends = np.cumsum(degrees)
    cuts = np.searchsorted(ends, np.arange(block, ends[-1], block), side="left") + 1
    return np.unique(np.concatenate([[0], cuts, [degrees.shape[0]]]))


class _PopularitySampler:
    """Items drawn with probability proportional to popularity, from all items or from one cluster.

    Items are laid out cluster by cluster and their popularities accumulated, so
    one ``searchsorted`` on the cumulative sums serves both kinds of draws.
    """

    def __init__(self, popularity: np.ndarray, item_cluster: np.ndarray, n_clusters: int, affinity: float):
        self.order = np.argsort(item_cluster, kind="stable").astype(np.int32)
        self.cumulative = np.cumsum(popularity[self.order])
        sizes = np.bincount(item_cluster, minlength=n_clusters)
        self.first = np.concatenate([[0], np.cumsum(sizes)])
        self.cluster_mass = np.bincount(item_cluster, weights=popularity, minlength=n_clusters)
        before = np.concatenate([[0.0], self.cumulative])
        self.mass_before = before[self.first[:-1]]
        self.total = self.cumulative[-1]
        self.popularity = popularity
        self.item_cluster = item_cluster
        self.affinity = affinity

    def draw(self, rng: np.random.Generator, clusters: np.ndarray) -> np.ndarray:
        """One item per entry of ``clusters`` (the drawing user's cluster); int32."""
        n = clusters.shape[0]
        local = rng.random(n) < self.affinity
        uniform = rng.random(n)
        target = np.where(local, self.mass_before[clusters] + uniform * self.cluster_mass[clusters],
                          uniform * self.total)
        position = np.searchsorted(self.cumulative, target, side="right")
        low = np.where(local, self.first[clusters], 0)
        high = np.where(local, self.first[clusters + 1], self.order.shape[0]) - 1
        return self.order[np.clip(position, low, high)]

    def probability(self, items: np.ndarray, clusters: np.ndarray) -> np.ndarray:
        """Probability that one draw for a user of ``clusters`` gives ``items``."""
        weight = self.popularity[items]
        same = self.item_cluster[items] == clusters
        return ((1.0 - self.affinity) * weight / self.total
                + np.where(same, self.affinity * weight / self.cluster_mass[clusters], 0.0))


def _distinct_items(rng, sampler: _PopularitySampler, degrees: np.ndarray, clusters: np.ndarray, n_items: int):
    """``degrees[u]`` distinct items for each user of a block.

    Returns
    -------
    owners : ndarray of shape (nnz,), int64
        Block-local user of each pair, ascending.
    items : ndarray of shape (nnz,), int32
        Items, ascending within each user.
    """
    n = degrees.shape[0]
    keys = np.empty(0, dtype=np.int64)
    draws = degrees
    for _ in range(_MAX_TOP_UPS):
        owners = np.repeat(np.arange(n, dtype=np.int64), draws)
        new = owners * n_items + sampler.draw(rng, clusters[owners])
        keys = _sorted_unique(np.concatenate([keys, new]))
        owners = keys // n_items
        have = np.bincount(owners, minlength=n)
        missing = degrees - have
        if not (missing > 0).any():
            break
        # Oversample by the chance that a draw is new for that user.
        taken = np.bincount(owners, weights=sampler.probability(keys - owners * n_items, clusters[owners]),
                            minlength=n)
        fresh = np.clip(1.0 - taken, 1.0 / 16.0, 1.0)
        draws = np.where(missing > 0, np.ceil(1.1 * missing / fresh).astype(np.int64) + 1, 0)
    else:
        raise ValueError(
            f"make_powerlaw could not draw {int(missing[missing > 0].sum())} more distinct items for its most "
            f"active users (up to {int(degrees.max())} items each) in {_MAX_TOP_UPS} rounds: item popularity is "
            "too concentrated for them. Lower item_exponent or cluster_affinity, or n_interactions."
        )
    if (have > degrees).any():
        keys = keys[_random_positions(rng, owners, have) < degrees[owners]]
        owners = keys // n_items
    return owners, (keys - owners * n_items).astype(np.int32)


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 keys by an in-place sort (NumPy 2's hash-based unique is far slower here)."""
    keys.sort()
    if keys.shape[0] < 2:
        return keys
    keep = np.empty(keys.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def _random_positions(rng, owners: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A random permutation of ``0 .. counts[u] - 1`` over the pairs of each user (``owners`` ascending, < 2^24)."""
    order = np.argsort(owners + rng.random(owners.shape[0]), kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(owners.shape[0], dtype=np.int64)
    position[order] = np.arange(owners.shape[0]) - np.repeat(starts, counts)
    return position


def _block_labels(rng, owners: np.ndarray, degrees: np.ndarray, valid_size: float, test_size: float) -> np.ndarray:
    """Per-user random hold-out of a block, with the rules of :meth:`Dataset.from_frame`."""
    return _holdout_labels(_random_positions(rng, owners, degrees), degrees[owners], valid_size, test_size)


def _cluster_features(rng, item_cluster: np.ndarray, n_clusters: int, dim: int | None, noise: float):
    if dim is None:
        return None
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    features = rng.standard_normal((item_cluster.shape[0], dim), dtype=np.float32)
    features *= np.float32(noise)
    features += centres[item_cluster]
    return features
