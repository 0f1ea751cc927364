"""Tests of tools/prepare_sports.py: the checks of the shipped files, the byte copy, maps and text features."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SPORTS = SHARED / "data" / "amazon-sports"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _load("prepare_sports", ROOT / "tools" / "prepare_sports.py")

# Rows in an order that is neither by user nor by item; 4 users, 5 items, labels 0/1/2.
INTER = [
    (2, 3, 0), (2, 0, 0), (2, 4, 1), (0, 1, 0), (0, 2, 0), (0, 3, 2),
    (3, 4, 0), (3, 0, 0), (3, 2, 2), (1, 1, 0), (1, 3, 0), (1, 2, 1),
]
ASINS = ["B0E", "A0X", "B0A", "C01", "A00"]  # itemID k has ASINS[k]; not alphabetical
REVIEWERS = ["RZ", "RA", "RM", "RB"]
TEXTS = ["red dress soft", "blue shirt", "long wool dress", "cotton shirt short", "red wool"]


def write_sports(folder, *, texts=TEXTS, asins=ASINS, inter=INTER):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userID\titemID\tx_label"] + [f"{u}\t{i}\t{x}" for u, i, x in inter]
    (folder / "sports.inter").write_text("\n".join(lines) + "\n")
    order = [3, 0, 4, 1, 2]  # maps and texts shipped out of id order
    (folder / "i_id_mapping.csv").write_text("asin\titemID\n" + "".join(f"{ASINS[k]}\t{k}\n" for k in order))
    (folder / "u_id_mapping.csv").write_text(
        "reviewerID\tuserID\n" + "".join(f"{REVIEWERS[k]}\t{k}\n" for k in (2, 0, 3, 1))
    )
    (folder / "item_text.tsv").write_text(
        "itemID\tasin\ttext\n" + "".join(f"{k}\t{asins[k]}\t{texts[k]}\n" for k in order)
    )
    return folder


def test_read_inter_checks(tmp_path):
    src = write_sports(tmp_path / "ok")
    table = P.read_inter(src / "sports.inter")
    assert table.values.tolist() == [list(row) for row in INTER]
    bad = write_sports(tmp_path / "dup", inter=INTER + [(2, 3, 2)])
    with pytest.raises(ValueError, match="1 duplicate"):
        P.read_inter(bad / "sports.inter")
    gap = write_sports(tmp_path / "gap", inter=[(u, i + (i == 4), x) for u, i, x in INTER])
    with pytest.raises(ValueError, match="itemID values must be 0..n-1"):
        P.read_inter(gap / "sports.inter")
    label = write_sports(tmp_path / "label", inter=INTER[:-1] + [(1, 2, 3)])
    with pytest.raises(ValueError, match="x_label must be 0, 1 or 2"):
        P.read_inter(label / "sports.inter")


def test_item_text_must_match_the_map_and_be_non_empty(tmp_path):
    src = write_sports(tmp_path / "ok")
    item_map = P.read_id_map(src / "i_id_mapping.csv", "asin", "itemID", 5)
    assert item_map["asin"].tolist() == ASINS
    table = P.read_item_text(src / "item_text.tsv", item_map)
    assert table["itemID"].tolist() == list(range(5)) and table["text"].tolist() == TEXTS
    wrong = write_sports(tmp_path / "wrong", asins=ASINS[:2] + ["XXX"] + ASINS[3:])
    with pytest.raises(ValueError, match="asin of 1 item"):
        P.read_item_text(wrong / "item_text.tsv", item_map)
    empty = write_sports(tmp_path / "empty", texts=TEXTS[:3] + ["  "] + TEXTS[4:])
    with pytest.raises(ValueError, match="1 item.* empty text .first itemID 3"):
        P.read_item_text(empty / "item_text.tsv", item_map)
    with pytest.raises(ValueError, match="ids 0..5"):
        P.read_id_map(src / "i_id_mapping.csv", "asin", "itemID", 6)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("onnx", reason="the tiny test models are built with the onnx package (lgrec[test])")
    pytest.importorskip("onnxruntime", reason="ONNX extraction needs onnxruntime (lgrec[onnx])")
    pytest.importorskip("tokenizers", reason="text extraction needs tokenizers (lgrec[onnx])")
    helpers = _load("features_test_helpers", ROOT / "tests" / "test_features.py")
    root = tmp_path_factory.mktemp("sports")
    src = write_sports(root / "data" / "amazon-sports")
    models = root / "models"
    models.mkdir()
    paths = {
        "text": helpers.make_text_model(models / "text.onnx"),
        "tokenizer": helpers.make_tokenizer(models / "all-minilm-l6-v2-tokenizer.json"),
    }
    out = root / "out"
    assert P.main(["--src", str(src), "--out", str(out), "--text-model", str(paths["text"]), "--no-progress"]) == 0
    return {"src": src, "out": out, "models": paths, "root": root}


def test_inter_is_a_byte_copy_and_maps_are_sorted(tiny):
    out, src = tiny["out"], tiny["src"]
    assert (out / "sports.inter").read_bytes() == (src / "sports.inter").read_bytes()
    items = pd.read_csv(out / "i_id_mapping.csv", dtype=str)
    assert list(items.columns) == ["asin", "itemID"]
    assert items["asin"].tolist() == ASINS and items["itemID"].tolist() == [str(k) for k in range(5)]
    users = pd.read_csv(out / "u_id_mapping.csv", dtype=str)
    assert users.values.tolist() == [[r, str(k)] for k, r in enumerate(REVIEWERS)]
    info = pd.read_csv(out / "item_info.csv", dtype=str, keep_default_na=False)
    assert list(info.columns) == ["itemID", "asin", "text"] and info["text"].tolist() == TEXTS


def test_text_features_are_aligned_with_items(tiny):
    from lgrec.features import TextEncoder

    out, models = tiny["out"], tiny["models"]
    text = np.load(out / "text_feat.npy")
    assert text.dtype == np.float32 and text.shape == (5, 4)
    np.testing.assert_array_equal(np.load(out / "text_item_ids.npy"), np.arange(5))
    encoder = TextEncoder(models["text"], models["tokenizer"], progress=False)
    for k in range(5):
        np.testing.assert_allclose(text[k], encoder.encode([TEXTS[k]])[0], rtol=1e-6, atol=1e-7)
    assert not np.allclose(text[0], text[1])
    assert not (out / "image_feat.npy").exists()


def test_record_and_load(tiny):
    import lgrec

    record = json.loads((tiny["out"] / "prepare_record.json").read_text())
    counts = record["counts"]
    assert (counts["n_users"], counts["n_items"]) == (4, 5)
    assert counts["pairs_per_split"] == {"train": 8, "valid": 2, "test": 2}
    assert counts["items_with_text"] == 5 and counts["items_with_image"] == 0
    assert record["sources"]["sports.inter"] == P.hm.sha256_file(tiny["src"] / "sports.inter")
    assert record["text_preprocessing"]["model_sha256"] == P.hm.sha256_file(tiny["models"]["text"])
    data = lgrec.load_mmrec(tiny["out"])
    assert (data.n_users, data.n_items) == (4, 5) and data.image is None
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (8, 2, 2)
    assert data.item_ids.tolist() == ASINS and data.user_ids.tolist() == REVIEWERS


def test_rebuild_is_byte_identical(tiny):
    again = tiny["root"] / "again"
    args = ["--src", str(tiny["src"]), "--out", str(again), "--text-model", str(tiny["models"]["text"]), "--no-progress"]
    assert P.main(args) == 0
    for name in ("sports.inter", "text_feat.npy", "text_item_ids.npy", "i_id_mapping.csv", "u_id_mapping.csv",
                 "item_info.csv"):
        assert (again / name).read_bytes() == (tiny["out"] / name).read_bytes(), name


@pytest.mark.shared
@pytest.mark.skipif(not (SPORTS / "sports.inter").exists(), reason=f"real Amazon Sports data not found at {SPORTS}")
def test_real_sports_files_pass_the_checks():
    inter = P.read_inter(SPORTS / "sports.inter")
    assert (inter["userID"].max() + 1, inter["itemID"].max() + 1) == (35598, 18357)
    assert np.bincount(inter["x_label"]).tolist() == [218409, 40029, 37899]
    item_map = P.read_id_map(SPORTS / "i_id_mapping.csv", "asin", "itemID", 18357)
    P.read_id_map(SPORTS / "u_id_mapping.csv", "reviewerID", "userID", 35598)
    assert len(P.read_item_text(SPORTS / "item_text.tsv", item_map)) == 18357
