"""Tests of tools/prepare_hm.py: the split rule by hand, text joining, id maps and feature alignment."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
HM = SHARED / "data" / "hm"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _load("prepare_hm", ROOT / "tools" / "prepare_hm.py")

# Customers and articles chosen so that string order is not insertion order.
C1, C2, C3, C4, C5 = "ff01", "0a02", "b103", "0a01", "c5"
A = {k: f"0{k}00000{k}01" for k in range(1, 9)}  # e.g. A[1] = "0100000101"
DAY0 = pd.Timestamp("2020-01-01")

# (customer, article, day): pair dates sorted are 0 1 2 3 4 5 6 8 8 18, so with
# numpy/pandas linear quantiles q80 = v7 + 0.2 (v8 - v7) = 8 and q90 = v8 + 0.1 (v9 - v8) = 9.
PURCHASES = [
    (C1, A[1], 0), (C1, A[2], 1), (C1, A[3], 8),
    (C2, A[1], 2), (C2, A[4], 3), (C2, A[4], 20), (C2, A[5], 18),  # (C2, A4) again on day 20: earliest kept
    (C3, A[2], 4), (C3, A[6], 5), (C3, A[6], 5),
    (C4, A[7], 6),
    (C5, A[8], 8),  # valid pair of a customer without train: dropped, and A8 with it
]


def transactions():
    return pd.DataFrame(
        {
            "t_dat": [DAY0 + pd.Timedelta(days=d) for _, _, d in PURCHASES],
            "customer_id": [c for c, _, _ in PURCHASES],
            "article_id": [a for _, a, _ in PURCHASES],
        }
    )


def test_split_by_hand():
    pairs, info = P.split_pairs(transactions())
    assert info["q80"] == "2020-01-09T00:00:00" and info["q90"] == "2020-01-10T00:00:00"
    assert info["n_pairs_before_drop"] == 10 and info["n_pairs_dropped"] == {"valid": 1, "test": 0}
    labels = {(c, a): (int((d - DAY0).days), int(x)) for c, a, d, x in pairs.itertuples(index=False)}
    assert labels == {
        (C1, A[1]): (0, 0), (C1, A[2]): (1, 0), (C2, A[1]): (2, 0), (C2, A[4]): (3, 0),
        (C3, A[2]): (4, 0), (C3, A[6]): (5, 0), (C4, A[7]): (6, 0),
        (C1, A[3]): (8, 1),  # date == q80: valid, not train
        (C2, A[5]): (18, 2),
    }


def test_quantile_boundaries_follow_pandas_linear():
    days = [0, 1, 2, 3, 4, 5, 6, 7, 17, 27]  # q80 = 7 + 0.2 * 10 = 9, q90 = 17 + 0.1 * 10 = 18
    table = pd.DataFrame(
        {
            "t_dat": [DAY0 + pd.Timedelta(days=d) for d in days],
            "customer_id": ["u"] * len(days),
            "article_id": [f"{i:010d}" for i in range(len(days))],
        }
    )
    pairs, info = P.split_pairs(table)
    assert info["q80"] == "2020-01-10T00:00:00" and info["q90"] == "2020-01-19T00:00:00"
    assert pairs["x_label"].tolist() == [0] * 8 + [1, 2]


def test_ids_are_numbered_in_string_order():
    pairs, _ = P.split_pairs(transactions())
    users = P.number_ids(pairs["customer_id"])
    items = P.number_ids(pairs["article_id"])
    assert users.tolist() == ["0a01", "0a02", "b103", "ff01"]
    assert items.tolist() == sorted(A[k] for k in range(1, 8))
    inter = P.build_inter(pairs, users, items)
    assert list(inter.columns) == ["userID", "itemID", "timestamp", "x_label"]
    first = inter.iloc[0]
    assert (first.userID, first.itemID) == (0, items.get_loc(A[7]))
    assert first.timestamp == (DAY0 - pd.Timestamp("1970-01-01")).days + 6 == 18268
    assert inter[["userID", "timestamp", "itemID"]].equals(
        inter[["userID", "timestamp", "itemID"]].sort_values(["userID", "timestamp", "itemID"])
    )


def test_item_text_joins_non_empty_fields():
    row = {
        "prod_name": "Shape Up 30 den",
        "product_type_name": "Leggings/Tights",
        "colour_group_name": " Black ",
        "graphical_appearance_name": "",
        "section_name": "Womens Nightwear, Socks & Tigh",
        "detail_desc": "Tights with built-in support.",
    }
    assert P.item_text(row) == (
        "Shape Up 30 den. Leggings/Tights. Black. Womens Nightwear, Socks & Tigh. Tights with built-in support."
    )
    assert P.item_text(dict.fromkeys(P.TEXT_FIELDS, "")) == ""


# ----------------------------------------------------------------------------
# End to end on a synthetic H&M folder with tiny ONNX models
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("onnx", reason="the tiny test models are built with the onnx package (lgrec[test])")
    pytest.importorskip("onnxruntime", reason="ONNX extraction needs onnxruntime (lgrec[onnx])")
    pytest.importorskip("tokenizers", reason="text extraction needs tokenizers (lgrec[onnx])")
    pytest.importorskip("PIL", reason="image decoding needs pillow (lgrec[onnx])")
    helpers = _load("features_test_helpers", ROOT / "tests" / "test_features.py")
    root = tmp_path_factory.mktemp("hm")
    src = root / "data" / "hm"
    (src / "images").mkdir(parents=True)
    table = transactions()
    table["t_dat"] = table["t_dat"].dt.strftime("%Y-%m-%d")
    table["price"] = 0.01
    table["sales_channel_id"] = 2
    table.to_csv(src / "transactions.csv", index=False)
    rows = []
    for k in (1, 2, 3, 4, 5):
        row = {column: "" for column in ("article_id", "product_code", "product_group_name", *P.TEXT_FIELDS)}
        row.update(article_id=A[k], product_code=str(k), prod_name=f"red dress {k}", product_type_name="Dress",
                   colour_group_name="Red", graphical_appearance_name="Solid", section_name="Womens",
                   detail_desc="soft cotton" if k != 5 else "", product_group_name="Garment Full body")
        rows.append(row)
    pd.DataFrame(rows).to_csv(src / "articles.csv", index=False)
    for k, seed in ((1, 1), (2, 2), (4, 4), (6, 6)):
        path = P.image_path(src / "images", A[k])
        path.parent.mkdir(exist_ok=True)
        helpers.write_image(path, size=(60, 80), seed=seed)
    corrupt = P.image_path(src / "images", A[3])
    corrupt.parent.mkdir(exist_ok=True)
    corrupt.write_bytes(b"\xff\xd8\xff not really a jpeg")
    models = root / "models"
    models.mkdir()
    paths = {
        "image": helpers.make_image_model(models / "efficientnet-lite0.onnx"),
        "text": helpers.make_text_model(models / "text.onnx"),
        "tokenizer": helpers.make_tokenizer(models / "all-minilm-l6-v2-tokenizer.json"),
    }
    out = root / "out"
    code = P.main(["--src", str(src), "--out", str(out), "--text-model", str(paths["text"]),
                   "--image-batch-size", "2", "--no-progress"])
    assert code == 0
    return {"src": src, "out": out, "models": paths, "helpers": helpers}


def test_folder_files_and_id_maps(tiny):
    out = tiny["out"]
    assert (out / "hm.inter").read_text().splitlines()[0] == "userID\titemID\ttimestamp\tx_label"
    items = pd.read_csv(out / "i_id_mapping.csv", dtype={"article_id": str})
    assert list(items.columns) == ["article_id", "itemID"]
    assert items["article_id"].tolist() == sorted(A[k] for k in range(1, 8))
    assert items["itemID"].tolist() == list(range(7))
    users = pd.read_csv(out / "u_id_mapping.csv", dtype={"customer_id": str})
    assert users["customer_id"].tolist() == ["0a01", "0a02", "b103", "ff01"]
    info = pd.read_csv(out / "item_info.csv", dtype={"article_id": str}, keep_default_na=False)
    assert list(info.columns) == ["itemID", "article_id", "has_image", "has_text", "product_group_name", "product_type_name"]
    by_article = info.set_index("article_id")
    assert by_article.loc[[A[k] for k in range(1, 8)], "has_image"].tolist() == [1, 1, 0, 1, 0, 1, 0]
    assert by_article.loc[[A[k] for k in range(1, 8)], "has_text"].tolist() == [1, 1, 1, 1, 1, 0, 0]
    assert by_article.loc[A[6], "product_group_name"] == "" and by_article.loc[A[1], "product_type_name"] == "Dress"


def test_features_are_aligned_with_items(tiny):
    out, helpers, models = tiny["out"], tiny["helpers"], tiny["models"]
    from lgrec.features import ImageEncoder, TextEncoder

    items = pd.read_csv(out / "i_id_mapping.csv", dtype={"article_id": str})["article_id"].tolist()
    image = np.load(out / "image_feat.npy")
    text = np.load(out / "text_feat.npy")
    assert image.dtype == np.float32 and image.shape == (7, 5) and text.shape == (7, 4)
    np.testing.assert_array_equal(np.load(out / "image_item_ids.npy"), np.arange(7))
    np.testing.assert_array_equal(np.load(out / "text_item_ids.npy"), np.arange(7))
    encoder = ImageEncoder(models["image"], progress=False)
    for k in (1, 2, 4, 6):
        row = items.index(A[k])
        expected = encoder.encode([P.image_path(tiny["src"] / "images", A[k])])[0]
        np.testing.assert_allclose(image[row], expected, rtol=1e-6, atol=1e-7)
    for k in (3, 5, 7):
        np.testing.assert_array_equal(image[items.index(A[k])], 0.0)
    articles = P.read_articles(tiny["src"] / "articles.csv")
    assert P.item_text(articles.loc[A[5]]) == "red dress 5. Dress. Red. Solid. Womens"
    text_encoder = TextEncoder(models["text"], models["tokenizer"], progress=False)
    for k in (1, 2, 3, 4, 5):
        expected = text_encoder.encode([P.item_text(articles.loc[A[k]])])[0]
        np.testing.assert_allclose(text[items.index(A[k])], expected, rtol=1e-6, atol=1e-7)
    for k in (6, 7):
        np.testing.assert_array_equal(text[items.index(A[k])], 0.0)


def test_record_counts(tiny):
    record = json.loads((tiny["out"] / "prepare_record.json").read_text())
    counts = record["counts"]
    assert counts["n_users"] == 4 and counts["n_items"] == 7
    assert counts["pairs_per_split"] == {"train": 7, "valid": 1, "test": 1}
    assert counts["items_without_image"] == 3 and counts["items_without_text"] == 2
    assert counts["items_without_any_feature"] == 1
    assert counts["test_items_not_in_train"] == 1 and counts["valid_items_not_in_train"] == 1
    assert [f["itemID"] for f in record["image_failures"]] == [2]
    assert record["sources"]["photo_files_found"] == 5
    assert record["image_preprocessing"]["model_sha256"] == P.sha256_file(tiny["models"]["image"])
    assert record["timestamp"].startswith("integer days since 1970-01-01")


def test_folder_loads_with_lgrec(tiny):
    import lgrec

    data = lgrec.load_mmrec(tiny["out"])
    assert (data.n_users, data.n_items) == (4, 7)
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (7, 1, 1)
    assert data.summary()["items_without_image"] == 3


# ----------------------------------------------------------------------------
# The real split (pandas only, fast)
# ----------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.skipif(not (HM / "transactions.csv").exists(), reason=f"real H&M data not found at {HM}")
def test_real_hm_split_counts_match_tools_readme():
    pairs, info = P.split_pairs(P.read_transactions(HM / "transactions.csv"))
    assert (info["q80"], info["q90"]) == ("2020-05-15T00:00:00", "2020-07-08T00:00:00")
    assert pairs["customer_id"].nunique() == 1247 and pairs["article_id"].nunique() == 16732
    assert np.bincount(pairs["x_label"]).tolist() == [21913, 2429, 2431]
