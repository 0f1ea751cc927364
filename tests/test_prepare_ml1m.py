"""Tests of tools/prepare_ml1m.py: the validation carve-out by hand, ids, text variants, the text choice rule,
feature alignment and a byte-identical rebuild."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ML1M = SHARED / "data" / "ml1m-mm"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _load("prepare_ml1m", ROOT / "tools" / "prepare_ml1m.py")


# ----------------------------------------------------------------------------
# The validation carve-out
# ----------------------------------------------------------------------------


def test_valid_counts_round_half_up_and_keep_one_train_item():
    sizes = np.arange(1, 41)
    users = np.repeat(np.arange(sizes.size), sizes)
    items = np.concatenate([np.arange(n) * 3 for n in sizes])
    valid = P.valid_labels(users, items)
    per_user = np.bincount(users, weights=valid).astype(int)
    # 10 % rounded half up: n = 1..4 -> 0, 5..14 -> 1 (n = 5: 0.5 -> 1), 15..24 -> 2, 25..34 -> 3, 35.. -> 4
    expected = [0] * 4 + [1] * 10 + [2] * 10 + [3] * 10 + [4] * 6
    assert per_user.tolist() == expected
    assert P.valid_labels(np.zeros(2, int), np.array([0, 1]), fraction=0.9).sum() == 1  # one stays in train


def test_valid_items_are_those_with_the_smallest_keys():
    users = np.array([5] * 15 + [9] * 25)
    items = np.concatenate([np.arange(15) * 2 + 1, np.arange(25) + 100])
    keys = np.random.default_rng(0).random(40)
    valid = P.valid_labels(users, items)
    assert set(np.flatnonzero(valid)) == set(np.argsort(keys[:15])[:2]) | set(15 + np.argsort(keys[15:])[:3])
    np.testing.assert_array_equal(P.valid_labels(users, items, seed=0), valid)
    assert not np.array_equal(P.valid_labels(users, items, seed=1), valid)


def test_valid_labels_need_sorted_pairs():
    with pytest.raises(ValueError, match="sorted by \\(user, item\\)"):
        P.valid_labels(np.array([0, 0, 1]), np.array([2, 1, 0]))
    with pytest.raises(ValueError, match="sorted by \\(user, item\\)"):
        P.valid_labels(np.array([0, 0]), np.array([1, 1]))


# Users and movies whose numeric order differs from the row order (and from string order: 9 < 30 < 250).
USERS = [40, 7, 300, 12]
MOVIES = [30, 4, 250, 9, 17, 81, 2, 66]


def interactions():
    """Each user: 6 train movies and 1 test movie (n = 6 train pairs -> 1 valid pair each)."""
    rows = []
    for k, user in enumerate(USERS):
        chosen = [MOVIES[(k + j) % len(MOVIES)] for j in range(7)]
        rows += [(user, m, "train") for m in chosen[:6]] + [(user, chosen[6], "test")]
    return pd.DataFrame(rows, columns=["user", "item", "split"])


def test_split_keeps_test_and_carves_valid_from_train():
    table = interactions()
    pairs = P.split_pairs(table)
    assert pairs[["user", "item"]].equals(pairs[["user", "item"]].sort_values(["user", "item"]).reset_index(drop=True))
    merged = pairs.merge(table, on=["user", "item"])
    assert (merged.loc[merged["split"] == "test", "x_label"] == 2).all()
    assert set(merged.loc[merged["split"] == "train", "x_label"]) == {0, 1}
    assert pairs.groupby("user")["x_label"].apply(lambda x: int((x == 1).sum())).tolist() == [1, 1, 1, 1]
    shuffled = table.sample(frac=1.0, random_state=3)
    assert P.split_pairs(shuffled).equals(pairs)  # the file's row order does not matter
    users, items = np.unique(pairs["user"]), np.unique(pairs["item"])
    inter = P.build_inter(pairs, users, items)
    assert users.tolist() == [7, 12, 40, 300] and items.tolist() == sorted(MOVIES)
    assert list(inter.columns) == ["userID", "itemID", "x_label"]
    assert inter["userID"].tolist() == sorted(inter["userID"].tolist())
    first = pairs[pairs["user"] == 7]
    assert inter.loc[inter["userID"] == 0, "itemID"].tolist() == [items.tolist().index(m) for m in first["item"]]


# ----------------------------------------------------------------------------
# Texts and the choice rule
# ----------------------------------------------------------------------------


def test_title_genres_and_variants():
    assert P.title_genres("Toy Story (1995)", "Animation|Children's|Comedy") == (
        "Toy Story (1995). Genres: Animation, Children's, Comedy."
    )
    assert P.title_genres(" Heat (1995) ", "") == "Heat (1995)."
    items = pd.DataFrame({"title": ["A (1990)", "B (1991)", "C (1992)"], "genres": ["Drama", "War|Drama", "Comedy"]})
    texts = P.variant_texts(items, ["real plot a", "", " real plot c "], ["llm a", "llm b", "llm c"])
    assert list(texts) == list(P.TEXT_VARIANTS)
    assert texts["title_genres"] == ["A (1990). Genres: Drama.", "B (1991). Genres: War, Drama.", "C (1992). Genres: Comedy."]
    assert texts["title_genres_overview"] == [
        "A (1990). Genres: Drama. real plot a", "B (1991). Genres: War, Drama.", "C (1992). Genres: Comedy. real plot c",
    ]
    assert texts["llm"] == ["llm a", "llm b", "llm c"]
    assert texts["title_genres_overview_llm"] == [
        "A (1990). Genres: Drama. real plot a", "B (1991). Genres: War, Drama. llm b",
        "C (1992). Genres: Comedy. real plot c",
    ]


def _results(vbpr, knn):
    return {
        name: {"recall@20_mean": float(np.mean(r)), "recall@20_std": float(np.std(r, ddof=1)),
               "contentknn": {"recall@20": k}}
        for name, r, k in zip(P.TEXT_VARIANTS, vbpr, knn)
    }


def test_choice_rule_vbpr_first_contentknn_breaks_ties():
    # Clear VBPR winner (margin 0.02 > spreads of 0.0014): chosen even with the worst ContentKNN.
    results = _results([(0.10, 0.102), (0.12, 0.122), (0.09, 0.09), (0.10, 0.10)], [0.05, 0.01, 0.09, 0.06])
    assert P.choose_text_variant(results) == ("title_genres_overview", ["title_genres_overview"])
    # Best mean 0.121, the second 0.1185 is within the best's spread (std 0.0028): ContentKNN decides.
    results = _results([(0.118, 0.119), (0.119, 0.123), (0.09, 0.09), (0.10, 0.10)], [0.06, 0.05, 0.09, 0.07])
    assert P.choose_text_variant(results) == ("title_genres", ["title_genres", "title_genres_overview"])
    # Exact ties everywhere: the earlier variant.
    results = _results([(0.1, 0.1)] * 4, [0.05] * 4)
    assert P.choose_text_variant(results) == ("title_genres", list(P.TEXT_VARIANTS))


# ----------------------------------------------------------------------------
# End to end on a synthetic ml1m-mm folder with tiny ONNX models
# ----------------------------------------------------------------------------

TITLES = {m: f"red dress {k} ({1990 + k})" for k, m in enumerate(MOVIES)}
GENRES = {m: ("Drama|War" if k % 2 else "Comedy") for k, m in enumerate(MOVIES)}
OVERVIEWS = {30: "soft cotton shirt", 250: "long wool dress", 17: "blue shirt short"}
LLM = {m: f"a long blue wool film {k}" for k, m in enumerate(MOVIES)}
POSTERS = (30, 4, 9, 17, 81, 66)  # 250 and 2 have none


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("onnx", reason="the tiny test models are built with the onnx package (lgrec[test])")
    pytest.importorskip("onnxruntime", reason="ONNX extraction needs onnxruntime (lgrec[onnx])")
    pytest.importorskip("tokenizers", reason="text extraction needs tokenizers (lgrec[onnx])")
    pytest.importorskip("PIL", reason="image decoding needs pillow (lgrec[onnx])")
    helpers = _load("features_test_helpers", ROOT / "tests" / "test_features.py")
    root = tmp_path_factory.mktemp("ml1m")
    src = root / "data" / "ml1m-mm"
    (src / "images").mkdir(parents=True)
    interactions().to_csv(src / "interactions.csv", index=False)
    order = [2, 0, 5, 1, 7, 3, 6, 4]  # files list movies out of id order
    movies = [MOVIES[k] for k in order]
    pd.DataFrame({"item": movies, "title": [TITLES[m] for m in movies], "genres": [GENRES[m] for m in movies],
                  "has_image": [m in POSTERS for m in movies], "has_tmdb_overview": [m in OVERVIEWS for m in movies]}
                 ).to_csv(src / "items.csv", index=False)
    pd.DataFrame({"item": list(OVERVIEWS), "text": list(OVERVIEWS.values()), "src": "tmdb_top10k"}).to_csv(
        src / "texts_tmdb_overview.csv", index=False)
    pd.DataFrame({"item": movies, "text": [LLM[m] for m in movies]}).to_csv(src / "texts_llm.csv", index=False)
    pd.DataFrame({"item": list(POSTERS), "src_w": 60, "src_h": 80, "w": 60, "h": 80, "src_mode": "RGB",
                  "upscaled": [m == 9 for m in POSTERS]}).to_csv(src / "images_manifest.csv", index=False)
    for k, movie in enumerate(POSTERS):
        helpers.write_image(src / "images" / f"{movie}.jpg", size=(60, 80), seed=k)
    models = root / "models"
    models.mkdir()
    paths = {
        "image": helpers.make_image_model(models / "efficientnet-lite0.onnx"),
        "text": helpers.make_text_model(models / "text.onnx"),
        "tokenizer": helpers.make_tokenizer(models / "all-minilm-l6-v2-tokenizer.json"),
    }
    out = root / "out"
    code = P.main(["--src", str(src), "--out", str(out), "--text-model", str(paths["text"]),
                   "--image-batch-size", "2", "--vbpr-max-epochs", "6", "--no-progress"])
    assert code == 0
    return {"src": src, "out": out, "models": paths, "root": root}


def test_folder_files_and_id_maps(tiny):
    out = tiny["out"]
    assert (out / "ml1m.inter").read_text().splitlines()[0] == "userID\titemID\tx_label"
    items = pd.read_csv(out / "i_id_mapping.csv")
    assert list(items.columns) == ["movie_id", "itemID"] and items["movie_id"].tolist() == sorted(MOVIES)
    users = pd.read_csv(out / "u_id_mapping.csv")
    assert list(users.columns) == ["user_id", "userID"] and users["user_id"].tolist() == sorted(USERS)
    info = pd.read_csv(out / "item_info.csv", keep_default_na=False).set_index("movie_id")
    assert list(info.columns) == ["itemID", "title", "genres", "has_image", "has_text", "has_tmdb_overview",
                                  "poster_upscaled"]
    assert info.loc[30, "title"] == TITLES[30] and info.loc[4, "genres"] == GENRES[4]
    assert info.loc[sorted(MOVIES), "has_image"].tolist() == [int(m in POSTERS) for m in sorted(MOVIES)]
    assert info.loc[sorted(MOVIES), "has_tmdb_overview"].tolist() == [int(m in OVERVIEWS) for m in sorted(MOVIES)]
    assert info["has_text"].tolist() == [1] * 8
    assert info.loc[sorted(MOVIES), "poster_upscaled"].tolist() == [int(m == 9) for m in sorted(MOVIES)]


def test_features_are_aligned_with_items(tiny):
    from lgrec.features import ImageEncoder, TextEncoder

    out, models, src = tiny["out"], tiny["models"], tiny["src"]
    movies = sorted(MOVIES)
    image = np.load(out / "image_feat.npy")
    assert image.dtype == np.float32 and image.shape == (8, 5)
    np.testing.assert_array_equal(np.load(out / "image_item_ids.npy"), np.arange(8))
    np.testing.assert_array_equal(np.load(out / "text_item_ids.npy"), np.arange(8))
    encoder = ImageEncoder(models["image"], progress=False)
    for row, movie in enumerate(movies):
        if movie in POSTERS:
            np.testing.assert_allclose(image[row], encoder.encode([src / "images" / f"{movie}.jpg"])[0], rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(image[row], 0.0)
    text_encoder = TextEncoder(models["text"], models["tokenizer"], progress=False)
    table = pd.DataFrame({"title": [TITLES[m] for m in movies], "genres": [GENRES[m] for m in movies]})
    texts = P.variant_texts(table, [OVERVIEWS.get(m, "") for m in movies], [LLM[m] for m in movies])
    for name in P.TEXT_VARIANTS:
        feats = np.load(out / f"text_feat_{name}.npy")
        assert feats.dtype == np.float32 and feats.shape == (8, 4)
        for row in range(8):
            np.testing.assert_allclose(feats[row], text_encoder.encode([texts[name][row]])[0], rtol=1e-6, atol=1e-7)
    assert not np.allclose(np.load(out / "text_feat_llm.npy"), np.load(out / "text_feat_title_genres.npy"))


def test_record_holds_the_choice_and_counts(tiny):
    out = tiny["out"]
    record = json.loads((out / "prepare_record.json").read_text())
    choice = record["text_choice"]
    assert choice["chosen"] in P.TEXT_VARIANTS and choice["rule"] == P.TEXT_CHOICE_RULE
    assert choice["chosen"] == P.choose_text_variant(choice["results"])[0]
    assert choice["vbpr"]["max_epochs"] == 6 and choice["vbpr"]["patience"] == 20
    assert list(choice["results"]) == list(P.TEXT_VARIANTS)
    for row in choice["results"].values():
        assert [r["seed"] for r in row["vbpr"]] == list(P.VBPR_SEEDS)
        assert all(1 <= r["best_epoch"] <= r["epochs"] <= 6 for r in row["vbpr"])
        assert 0.0 <= row["contentknn"]["recall@20"] <= 1.0 and row["recall@20_std"] >= 0.0
    assert (out / "text_feat.npy").read_bytes() == (out / f"text_feat_{choice['chosen']}.npy").read_bytes()
    assert record["item_text"]["text_feat.npy"] == choice["chosen"]
    assert "SYNTHETIC" in record["item_text"]["variants"]["llm"]
    counts = record["counts"]
    assert (counts["n_users"], counts["n_items"]) == (4, 8)
    assert counts["pairs_per_split"] == {"train": 20, "valid": 4, "test": 4}
    assert counts["items_with_image"] == 6 and counts["items_with_tmdb_overview"] == 3
    assert counts["posters_upscaled"] == 1
    assert record["sources"]["photo_files_found"] == 6
    assert record["image_preprocessing"]["model_sha256"] == P.hm.sha256_file(tiny["models"]["image"])
    assert record["split"]["seed"] == P.SPLIT_SEED


def test_folder_loads_with_lgrec(tiny):
    import lgrec

    data = lgrec.load_mmrec(tiny["out"])
    assert (data.n_users, data.n_items) == (4, 8)
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (20, 4, 4)
    assert data.item_ids.tolist() == [str(m) for m in sorted(MOVIES)]
    assert data.image.shape == (8, 5) and data.text.shape == (8, 4)


def test_rebuild_with_a_given_variant_is_byte_identical(tiny):
    again = tiny["root"] / "again"
    assert P.main(["--src", str(tiny["src"]), "--out", str(again), "--text-model", str(tiny["models"]["text"]),
                   "--image-batch-size", "2", "--text", "llm", "--no-progress"]) == 0
    names = ["ml1m.inter", "image_feat.npy", "image_item_ids.npy", "text_item_ids.npy", "i_id_mapping.csv",
             "u_id_mapping.csv", *(f"text_feat_{name}.npy" for name in P.TEXT_VARIANTS)]
    for name in names:
        assert (again / name).read_bytes() == (tiny["out"] / name).read_bytes(), name
    assert (again / "text_feat.npy").read_bytes() == (again / "text_feat_llm.npy").read_bytes()
    record = json.loads((again / "prepare_record.json").read_text())
    assert record["text_choice"] == {"chosen": "llm", "rule": "given on the command line (--text); no comparison run"}


def test_comparison_in_worker_processes_gives_the_same_numbers(tiny):
    import lgrec

    data = lgrec.load_mmrec(tiny["out"])
    features = {name: np.load(tiny["out"] / f"text_feat_{name}.npy") for name in P.TEXT_VARIANTS[1:3]}
    serial = P.compare_text_variants(data.train, data.valid, features, vbpr_max_epochs=3)
    parallel = P.compare_text_variants(data.train, data.valid, features, vbpr_max_epochs=3, n_jobs=2)
    for name in features:
        for a, b in zip(serial[name]["vbpr"], parallel[name]["vbpr"]):
            assert (a["seed"], a["recall@20"], a["ndcg@20"], a["epochs"]) == (b["seed"], b["recall@20"], b["ndcg@20"], b["epochs"])
        assert serial[name]["contentknn"]["recall@20"] == parallel[name]["contentknn"]["recall@20"]


def test_unknown_text_variant_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="text must be 'validation' or one of"):
        P.prepare(tmp_path, tmp_path / "out", image_model="x", tokenizer="y", text="plots")


# ----------------------------------------------------------------------------
# The real split (pandas only, fast)
# ----------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.skipif(not (ML1M / "interactions.csv").exists(), reason=f"real ml1m-mm data not found at {ML1M}")
def test_real_ml1m_split_counts_match_tools_readme():
    pairs = P.split_pairs(P.read_interactions(ML1M / "interactions.csv"))
    assert pairs["user"].nunique() == 6040 and pairs["item"].nunique() == 3260
    assert np.bincount(pairs["x_label"]).tolist() == [720823, 80395, 197321]
