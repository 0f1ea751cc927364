"""Dataset loading, splitting and saving."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import lgrec
from lgrec import DataWarning, Dataset, load_mmrec, save_mmrec
from lgrec.datasets import make_multimodal

from conftest import BABY, needs_baby


def _write_inter(folder, rows, name="toy", header="userID\titemID\tx_label"):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [header] + ["\t".join(map(str, r)) for r in rows]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")


def test_load_mmrec_builds_the_three_splits(tmp_path):
    _write_inter(tmp_path, [(0, 0, 0), (0, 1, 0), (1, 2, 0), (1, 0, 1), (0, 2, 2)])
    ds = load_mmrec(tmp_path)
    assert (ds.n_users, ds.n_items, ds.name) == (2, 3, "toy")
    np.testing.assert_array_equal(ds.train.toarray(), [[1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(ds.valid.toarray(), [[0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(ds.test.toarray(), [[0, 0, 1], [0, 0, 0]])
    assert ds.image is None and ds.text is None
    assert ds.train.dtype == np.float32 and ds.train.indices.dtype == np.int32


def test_load_mmrec_ignores_extra_columns_and_warns_on_duplicates(tmp_path):
    _write_inter(tmp_path, [(0, 0, 5, 0), (0, 0, 6, 0), (1, 1, 7, 0)], header="userID\titemID\ttimestamp\tx_label")
    with pytest.warns(DataWarning, match="1 duplicate"):
        ds = load_mmrec(tmp_path)
    assert ds.train.nnz == 2 and ds.train.data.max() == 1


def test_features_are_aligned_by_item_id_files(tmp_path):
    _write_inter(tmp_path, [(0, 0, 0), (0, 1, 0), (1, 2, 0)])
    np.save(tmp_path / "image_feat.npy", np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    np.save(tmp_path / "image_item_ids.npy", np.array([2, 0]))
    np.save(tmp_path / "text_feat.npy", np.ones((3, 4), np.float32))
    ds = load_mmrec(tmp_path)
    np.testing.assert_array_equal(ds.image, [[3, 4], [0, 0], [1, 2]])  # item 1 lacks an image: zero row
    assert ds.text.shape == (3, 4)


def test_feature_rows_without_ids_must_match_items(tmp_path):
    _write_inter(tmp_path, [(0, 0, 0), (0, 1, 0)])
    np.save(tmp_path / "text_feat.npy", np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="has 3 rows but the dataset has 2 items"):
        load_mmrec(tmp_path)


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([(0, 0, 0)], "user\titem\tx_label", "missing \\['userID', 'itemID'\\]"),
        ([(0, 0, 3)], "userID\titemID\tx_label", "x_label must be 0"),
        ([(-1, 0, 0)], "userID\titemID\tx_label", "negative values"),
        ([(0, 0, 1)], "userID\titemID\tx_label", "train split is empty"),
    ],
)
def test_load_mmrec_errors(tmp_path, rows, header, message):
    _write_inter(tmp_path, rows, header=header)
    with pytest.raises(ValueError, match=message):
        load_mmrec(tmp_path)


def test_load_mmrec_needs_one_inter_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mmrec(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="found none"):
        load_mmrec(tmp_path)
    _write_inter(tmp_path, [(0, 0, 0)], name="a")
    _write_inter(tmp_path, [(0, 0, 0)], name="b")
    with pytest.raises(FileNotFoundError, match="pass name="):
        load_mmrec(tmp_path)
    assert load_mmrec(tmp_path, name="b").name == "b"


def test_save_and_load_round_trip(tmp_path):
    ds = make_multimodal(n_users=40, n_items=30, interactions_per_user=5.0, random_state=3)
    back = load_mmrec(save_mmrec(ds, tmp_path / "synth"))
    for split in ("train", "valid", "test"):
        assert (getattr(back, split) != getattr(ds, split)).nnz == 0
    np.testing.assert_array_equal(back.image, ds.image)
    np.testing.assert_array_equal(back.text, ds.text)


def test_from_frame_random_split_is_per_user_and_seeded():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user": rng.integers(0, 30, 600).astype(str), "item": rng.integers(100, 160, 600)})
    before = frame.copy()
    a = Dataset.from_frame(frame, random_state=1)
    b = Dataset.from_frame(frame, random_state=1)
    pd.testing.assert_frame_equal(frame, before)
    assert (a.test != b.test).nnz == 0
    total = a.train + a.valid + a.test
    assert total.max() == 1  # splits are disjoint
    assert total.nnz == frame.drop_duplicates().shape[0]
    assert (np.diff(a.train.indptr) >= 1).all()
    assert list(a.user_ids) == sorted(frame["user"].unique())
    assert abs(a.test.nnz / total.nnz - 0.1) < 0.05


def test_from_frame_temporal_split_uses_quantiles_and_drops_unknown_users():
    frame = pd.DataFrame({
        "u": ["a", "a", "b", "c", "a", "b", "d", "d", "c", "a"],
        "i": [1, 2, 1, 3, 1, 2, 4, 5, 1, 3],
        "t": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    })
    ds = Dataset.from_frame(frame, "u", "i", "t", split="temporal", valid_size=0.2, test_size=0.2)
    # unique pairs keep the earliest time: (a,1)@1 (a,2)@2 (b,1)@3 (c,3)@4 (b,2)@6 (d,4)@7 (d,5)@8 (c,1)@9 (a,3)@10
    # q60 = 6.8, q80 = 8.4: train t < 6.8, valid 6.8 <= t < 8.4 (user d, unseen in train: dropped), test t >= 8.4
    assert list(ds.user_ids) == ["a", "b", "c"] and list(ds.item_ids) == [1, 2, 3]
    assert ds.train.nnz == 5 and ds.valid.nnz == 0 and ds.test.nnz == 2


def test_from_frame_errors():
    frame = pd.DataFrame({"user": [1, 2], "item": [1, None]})
    with pytest.raises(ValueError, match="no column"):
        Dataset.from_frame(frame, user_col="uid")
    with pytest.raises(ValueError, match="missing value"):
        Dataset.from_frame(frame)
    with pytest.raises(ValueError, match="needs time_col"):
        Dataset.from_frame(frame.dropna(), split="temporal")
    with pytest.raises(ValueError, match="split must be"):
        Dataset.from_frame(frame.dropna(), split="by-user")


def test_dataset_checks_shapes():
    train = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="valid must have shape"):
        Dataset(train, sp.csr_matrix((3, 4), dtype=np.float32), train)
    with pytest.raises(ValueError, match="image has 2 rows but interactions has 3 item columns"):
        Dataset(train, train, train, image=np.ones((2, 5)))


def test_make_multimodal_is_seeded_and_plants_cold_items():
    a = make_multimodal(n_users=60, n_items=50, random_state=5)
    b = make_multimodal(n_users=60, n_items=50, random_state=5)
    assert (a.train != b.train).nnz == 0
    np.testing.assert_array_equal(a.image, b.image)
    cold = a.cold_items()
    assert cold.size > 0
    assert a.train[:, cold].nnz == 0 and a.valid[:, cold].nnz == 0
    summary = a.summary()
    assert summary["items_without_image"] == int((~a.image.any(axis=1)).sum()) > 0


@needs_baby
def test_real_amazon_baby_counts():
    ds = lgrec.load_mmrec(BABY)
    assert (ds.n_users, ds.n_items) == (19445, 7050)
    assert (ds.train.nnz, ds.valid.nnz, ds.test.nnz) == (119674, 20559, 20559)
    assert ds.image is None and ds.text is None


def test_item_groups_reads_the_first_known_group_column():
    from lgrec.data import ITEM_GROUP_COLUMNS

    info = pd.DataFrame({"itemID": [2, 0], "category": ["b", None], "other": ["x", "y"]})
    train = sp.csr_matrix(np.eye(3, dtype=np.float32))
    data = lgrec.Dataset(train, train, train, item_info=info)
    labels, column = data.item_groups()
    assert column == "category" and "category" in ITEM_GROUP_COLUMNS
    assert labels.tolist() == ["(none)", "(none)", "b"]
    assert data.item_groups("other")[0].tolist() == ["y", "(none)", "x"]
    assert data.item_groups(None) == (None, None)
    with pytest.raises(ValueError, match="'nope' is not a column of item_info"):
        data.item_groups("nope")


def test_repr_is_the_summary_not_the_arrays():
    train = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    valid = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    image = np.zeros((4, 7), dtype=np.float32)
    image[:3] = 0.5
    ds = Dataset(train, valid, test, image=image, name="toy", user_ids=np.array(["alice-1", "bob-2", "carol-3"]),
                 item_ids=np.array([1001, 1002, 1003, 1004]))
    # item 2 is only in test: cold; item 3 has an all-zero image row; there is no text at all.
    assert repr(ds) == ("Dataset(name='toy', n_users=3, n_items=4, train=4, valid=1, test=2, cold_test_items=1, "
                        "image_dim=7, items_without_image=1, text_dim=None, items_without_text=4)")
    big = Dataset.from_frame(pd.DataFrame({"user": np.repeat(np.arange(2000), 3), "item": np.arange(6000) % 997}),
                             random_state=0)
    assert len(repr(big)) < 250 and "array" not in repr(big) and "[" not in repr(big)


def test_dataset_maps_original_ids_both_ways(tmp_path):
    frame = pd.DataFrame({"u": ["007", "007", "7", "7", "x"], "i": ["0010", "10", "0010", "abc", "10"]})
    data = Dataset.from_frame(frame, "u", "i", valid_size=0.0, test_size=0.0)
    assert data.user_index(["7", "007", "x"]).tolist() == [1, 0, 2]
    assert data.original_item_ids(data.item_index(["10", "0010"])).tolist() == ["10", "0010"]
    assert data.original_item_ids([-1, 0]).tolist() == [None, "0010"]
    back = load_mmrec(save_mmrec(data, tmp_path / "ids"))
    assert back.user_ids.tolist() == data.user_ids.tolist() and back.item_ids.tolist() == data.item_ids.tolist()
    with pytest.raises(lgrec.data.UnknownIdError, match=r"2 unknown item id\(s\).*'010', '99'"):
        back.item_index(["0010", "010", "99"])
    with pytest.raises(ValueError, match="unknown user id"):  # also a ValueError, for the CLI
        back.user_index("nobody")


def test_id_lookup_falls_back_to_text_and_without_maps_to_lgrec_ids():
    frame = pd.DataFrame({"u": [3, 3, 5], "i": [10, 11, 10]})
    data = Dataset.from_frame(frame, "u", "i", valid_size=0.0, test_size=0.0)
    assert data.user_index(["5", 3]).tolist() == [1, 0]  # a command line's "5" finds the int id 5
    plain = Dataset(data.train, data.valid, data.test)
    assert plain.item_index(["1", 0]).tolist() == [1, 0]
    with pytest.raises(KeyError, match=r"outside 0\.\.1"):
        plain.item_index([2])
