"""Synthetic datasets with planted multimodal structure (for the demo and the tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._validation import check_float, check_int, check_random_state
from .data import Dataset, _random_labels

__all__ = ["make_multimodal"]


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
