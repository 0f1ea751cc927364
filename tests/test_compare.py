"""lgrec.compare, lgrec.plots and the 'compare' / 'demo' commands, end to end on tiny generated data."""

import builtins
import json

import numpy as np
import pytest

import lgrec
from lgrec import compare as compare_module
from lgrec import save_mmrec
from lgrec.cli import main
from lgrec.compare import compare, expand_grid
from lgrec.data import Dataset
from lgrec.datasets import make_multimodal

FAST = {"*": {"max_epochs": 3, "batch_size": 256, "learning_rate": 0.01}}


@pytest.fixture(scope="module")
def tiny():
    return make_multimodal(n_users=80, n_items=60, interactions_per_user=8.0, random_state=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tiny):
    return save_mmrec(tiny, tmp_path_factory.mktemp("tiny"))


def test_expand_grid():
    assert expand_grid(None) == [{}]
    assert expand_grid({"b": [1, 2], "a": 0.5}) == [{"a": 0.5, "b": 1}, {"a": 0.5, "b": 2}]
    # Keys sorted, the last key varying fastest; a tuple is a list of values, a string one value.
    assert expand_grid({"c": (1, 2), "a": [3, 4], "b": "x"}) == [
        {"a": 3, "b": "x", "c": 1}, {"a": 3, "b": "x", "c": 2}, {"a": 4, "b": "x", "c": 1}, {"a": 4, "b": "x", "c": 2}]
    with pytest.raises(ValueError, match="'a'"):
        expand_grid({"a": []})


def test_grid_is_selected_on_validation_and_test_is_touched_once(tiny, monkeypatch):
    calls = []
    real_evaluate = compare_module.evaluate

    def spy(model, truth, exclude=None, k=(5, 10, 20, 50), **kw):
        calls.append(truth)
        return real_evaluate(model, truth, exclude, k, **kw)

    monkeypatch.setattr(compare_module, "evaluate", spy)
    grid = {"bpr": {"regularization": [1e-4, 1e-2], "embedding_size": [4, 8]}}
    result = compare(tiny, ["pop", "bpr"], seeds=2, grid=grid, params=FAST)
    bpr = result.models[1]
    assert [len(bpr["grid"]), len(bpr["runs"])] == [4, 2]
    scores = [g["valid_recall@20"] for g in bpr["grid"]]
    best = bpr["grid"][int(np.argmax(scores))]["params"]
    assert {k: bpr["params"][k] for k in best} == best and bpr["grid_best"] == max(scores)
    assert bpr["runs"][0]["valid_recall@20"] == max(scores)  # the selection fit is reused for the first seed
    n_test = sum(truth is tiny.test for truth in calls)
    assert n_test == 1 + 2  # popularity once (deterministic), bpr once per seed; never during the grid
    run = bpr["runs"][1]
    assert set(run["test"]) == set(compare_module.METRIC_KEYS) and "cold_recall@20" in run
    assert len(run["valid_curve"]) == run["epochs"] == 3
    assert bpr["std"]["recall@20"] == pytest.approx(np.std([r["test"]["recall@20"] for r in bpr["runs"]], ddof=1))
    pop = result.models[0]
    assert len(pop["runs"]) == 1 and "deterministic" in pop["note"] and pop["std"]["recall@20"] == 0.0


def test_same_seeds_give_the_same_table(tiny):
    a = compare(tiny, ["bpr", "vbpr"], seeds=[5], params=FAST)
    b = compare(tiny, ["bpr", "vbpr"], seeds=[5], params=FAST)
    assert [m["mean"]["recall@20"] for m in a.models] == [m["mean"]["recall@20"] for m in b.models]


def test_models_that_need_features_are_skipped_with_a_note(tiny):
    bare = Dataset(tiny.train, tiny.valid, tiny.test, name="bare")
    result = compare(bare, ["content", "bpr", "freedom"], seeds=1, params=FAST)
    status = {m["name"]: m["status"] for m in result.models}
    assert status == {"content": "skipped", "bpr": "ok", "freedom": "skipped"}
    assert "needs item features" in result.models[2]["note"]
    text = result.to_markdown()
    assert "freedom: skipped: FREEDOM needs item features" in text and "cold Recall@20" not in text
    assert "content" in result.to_text()


def test_errors(tiny):
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['nope'\]"):
        compare(tiny, ["nope"])
    with pytest.raises(ValueError, match=r"BPRMF has no parameter\(s\) \['speed'\]"):
        compare(tiny, ["bpr"], params={"bpr": {"speed": 1}})
    with pytest.raises(ValueError, match="seeds must be a positive int"):
        compare(tiny, ["bpr"], seeds=0)


def test_compare_command_end_to_end(data_dir, tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"lightgcn": {"regularization": [1e-4, 1e-3]}}))
    out = tmp_path / "out"
    code = main(["compare", str(data_dir), "--models", "pop,content,lightgcn,vbpr,freedom,rlmm", "--seeds", "2",
                 "--grid", str(grid), "--set", "max_epochs=2", "--set", "batch_size=256",
                 "--set", "vbpr.item_bias=True", "--out", str(out), "--plots", "--group-by", "category", "--quiet"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| model | Recall@10 | Recall@20 |" in table and "cold Recall@20" in table and "Wall time" in table
    report = json.loads((out / "results.json").read_text())
    by_name = {m["name"]: m for m in report["models"]}
    assert list(by_name) == ["pop", "content", "lightgcn", "vbpr", "freedom", "rlmm"]
    assert all(m["status"] == "ok" for m in by_name.values())
    assert len(by_name["lightgcn"]["grid"]) == 2 and by_name["vbpr"]["params"]["item_bias"] is True
    assert by_name["freedom"]["params"]["max_epochs"] == 2 and len(by_name["freedom"]["runs"]) == 2
    assert report["settings"]["seeds"] == [0, 1] and report["wall_seconds"] > 0
    assert (out / "results.md").read_text().startswith("# lgrec comparison on synthetic")
    for png in ("valid_recall_curves.png", "rlmm_image_share.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_command_errors(data_dir, tmp_path, capsys):
    assert main(["compare", str(data_dir), "--models", "bpr", "--grid", str(tmp_path / "none.json")]) == 2
    assert "grid file" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown model 'nomodel'"):
        main(["compare", str(data_dir), "--set", "nomodel.x=1"])


def test_plots_need_matplotlib_with_a_clear_message(monkeypatch, data_dir, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    from lgrec.plots import plot_image_share

    with pytest.raises(ImportError, match=r'pip install "lgrec\[plots\]"'):
        plot_image_share(np.array([0.5]), "x.png")
    with pytest.raises(SystemExit, match="lgrec\\[plots\\]"):
        main(["compare", str(data_dir), "--plots"])


def test_image_share_plot_skips_items_without_a_gate(tmp_path):
    from lgrec.plots import plot_image_share

    share = np.array([0.1, np.nan, 0.9, 0.4, np.nan], dtype=np.float32)
    groups = np.array(["a", "a", "b", "b", "c"])
    path = plot_image_share(share, tmp_path / "s.png", groups)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_demo_runs_the_comparison(capsys, monkeypatch, tmp_path):
    small = make_multimodal(n_users=60, n_items=50, interactions_per_user=6.0, random_state=0)
    monkeypatch.setattr("lgrec.datasets.make_multimodal", lambda random_state=None: small)
    assert main(["demo", "--models", "pop,bpr,vbpr", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "recall@20" in out and "vbpr" in out and "wall time" in out
    assert (tmp_path / "results.md").exists()
