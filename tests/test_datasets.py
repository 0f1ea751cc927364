"""lgrec.datasets.make_powerlaw: exact size, canonical CSR, degree skew, determinism, errors."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from lgrec import datasets
from lgrec.datasets import make_powerlaw


def _all(data):
    return data.train + data.valid + data.test


def _digest(data) -> str:
    h = hashlib.sha256()
    for m in (data.train, data.valid, data.test):
        for a in (m.indptr, m.indices, m.data):
            h.update(a.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small():
    return make_powerlaw(2000, 1500, 40_000, random_state=0)


def test_exact_size_and_canonical_splits(small):
    assert (small.n_users, small.n_items) == (2000, 1500)
    assert small.train.nnz + small.valid.nnz + small.test.nnz == 40_000
    for m in (small.train, small.valid, small.test):
        assert m.indices.dtype == np.int32 and m.indptr.dtype == np.int32 and m.dtype == np.float32
        assert (m.data == 1).all()
        coo = m.tocoo()
        keys = coo.row.astype(np.int64) * m.shape[1] + coo.col
        assert (np.diff(keys) > 0).all()  # sorted within rows, rows in order, no duplicate
    both = _all(small)
    assert both.nnz == 40_000 and both.max() == 1.0  # the splits are disjoint


def test_user_degrees_follow_the_zipf_profile(small):
    degrees = np.diff(_all(small).indptr)
    expected = datasets._zipf_degrees(2000, 40_000, 0.5, 1, 750)
    assert np.array_equal(np.sort(degrees)[::-1], expected)
    assert degrees.min() >= 1 and degrees.max() <= 750
    assert (np.diff(expected) <= 0).all() and expected[0] > 10 * np.median(expected)
    flat = datasets._zipf_degrees(100, 1234, 0.0, 3, 50)
    assert flat.sum() == 1234 and flat.max() - flat.min() <= 1


def test_water_filling_caps_the_most_active_users():
    degrees = datasets._zipf_degrees(50, 50 * 20 - 7, 1.5, 2, 20)
    assert degrees.sum() == 993 and degrees.max() == 20 and degrees.min() >= 2
    assert (np.diff(degrees) <= 0).all()


def test_item_popularity_is_skewed(small):
    counts = np.sort(np.bincount(_all(small).indices, minlength=small.n_items))[::-1]
    top_share = counts[: small.n_items // 100].sum() / counts.sum()
    assert top_share > 0.12  # Zipf 0.75 over 1,500 items: ~0.18 expected; uniform would give ~0.01-0.02
    uniform = make_powerlaw(2000, 1500, 40_000, item_exponent=0.0, cluster_affinity=0.0, random_state=0)
    counts = np.sort(np.bincount(_all(uniform).indices, minlength=1500))[::-1]
    assert counts[:15].sum() / counts.sum() < 0.03


def test_same_seed_same_data_other_seed_other_data(small):
    again = make_powerlaw(2000, 1500, 40_000, random_state=0)
    assert _digest(again) == _digest(small)
    assert _digest(make_powerlaw(2000, 1500, 40_000, random_state=np.random.default_rng(0))) == _digest(small)
    assert _digest(make_powerlaw(2000, 1500, 40_000, random_state=1)) != _digest(small)


def test_many_blocks_and_top_up_rounds_stay_exact(monkeypatch):
    monkeypatch.setattr(datasets, "_POWERLAW_BLOCK", 256)
    # 60 users at up to half of 40 items with a steep popularity: repeats are common.
    data = make_powerlaw(60, 40, 60 * 20 - 5, item_exponent=1.5, cluster_affinity=0.8, random_state=3)
    both = _all(data)
    assert both.nnz == 1195 and both.max() == 1.0
    assert np.array_equal(np.sort(np.diff(both.indptr))[::-1], datasets._zipf_degrees(60, 1195, 0.5, 1, 20))
    assert _digest(make_powerlaw(60, 40, 1195, item_exponent=1.5, cluster_affinity=0.8, random_state=3)) == _digest(data)


def test_result_does_not_depend_on_thread_counts(tmp_path):
    code = ("import hashlib; from lgrec.datasets import make_powerlaw; d = make_powerlaw(3000, 800, 30000, "
            "image_dim=4, random_state=5); h = hashlib.sha256(); "
            "[h.update(a.tobytes()) for m in (d.train, d.valid, d.test) for a in (m.indptr, m.indices)]; "
            "h.update(d.image.tobytes()); print(h.hexdigest())")
    digests = set()
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "NUMBA_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_per_user_split_keeps_a_train_item():
    data = make_powerlaw(500, 300, 6000, min_user_interactions=2, valid_size=0.2, test_size=0.2, random_state=2)
    assert (np.diff(data.train.indptr) >= 1).all()
    held = data.valid.nnz + data.test.nnz
    assert 0.3 < held / 6000 < 0.45
    zero = make_powerlaw(500, 300, 6000, valid_size=0.0, test_size=0.0, random_state=2)
    assert zero.train.nnz == 6000 and zero.valid.nnz == zero.test.nnz == 0


def test_features_carry_the_clusters_and_leave_interactions_unchanged(small):
    data = make_powerlaw(2000, 1500, 40_000, image_dim=16, text_dim=8, random_state=0)
    assert _digest(data) == _digest(small)
    assert data.image.shape == (1500, 16) and data.text.shape == (1500, 8)
    assert data.image.dtype == np.float32 and data.text.dtype == np.float32
    cluster = data.item_info["category"].to_numpy()
    centroids = np.stack([data.image[cluster == c].mean(axis=0) for c in range(16)])
    nearest = np.argmin(((data.image[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == cluster).mean() > 0.9
    # Interactions concentrate on each user's cluster: the modal cluster of a user's items
    # holds far more than the 1/16 a cluster-blind draw would give.
    both = _all(data).tocoo()
    per_user = sp.csr_matrix((np.ones(both.nnz), (both.row, cluster[both.col])), shape=(2000, 16)).toarray()
    active = per_user.sum(axis=1) >= 10
    assert (per_user[active].max(axis=1) / per_user[active].sum(axis=1)).mean() > 0.4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_interactions=10), "'n_interactions' parameter of make_powerlaw must be an int in the range [100,"),
        (dict(n_interactions=100 * 25 + 1), "'n_interactions' parameter of make_powerlaw"),
        (dict(n_users=0), "'n_users' parameter of make_powerlaw"),
        (dict(user_exponent=-1.0), "'user_exponent' parameter of make_powerlaw"),
        (dict(item_exponent=float("nan")), "'item_exponent' parameter of make_powerlaw"),
        (dict(cluster_affinity=1.0), "'cluster_affinity' parameter of make_powerlaw"),
        (dict(min_user_interactions=51), "'min_user_interactions' parameter of make_powerlaw"),
        (dict(image_dim=0), "'image_dim' parameter of make_powerlaw"),
        (dict(valid_size=0.5, test_size=0.5), "valid_size + test_size of make_powerlaw must be below 1"),
        (dict(random_state="seed"), "random_state must be None, an int or a numpy.random.Generator"),
    ],
)
def test_errors_name_the_argument(kwargs, message):
    args = {"n_users": 100, "n_items": 50, "n_interactions": 1000, **kwargs}
    with pytest.raises(ValueError) as info:
        make_powerlaw(**args)
    assert message in str(info.value)


def test_impossible_concentration_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="Lower item_exponent"):
        make_powerlaw(20, 2000, 20 * 1000, item_exponent=5.0, random_state=0)
