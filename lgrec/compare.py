"""Reproducible model comparisons: grids selected on validation, several seeds, test touched once.

:func:`compare` trains every requested model of :data:`lgrec.models.MODELS` on
one :class:`lgrec.Dataset`:

1. Hyperparameters: each model's grid (:data:`DEFAULT_GRIDS` or your own) is
   expanded into configurations; with more than one, each is fitted with the
   first seed and the configuration with the best validation Recall@20 wins
   (early-stopped models report their best epoch's score; models without
   epochs are evaluated on the validation split). The test split is not
   looked at.
2. Seeds: the chosen configuration is fitted once per seed (the selection fit
   is reused for the first seed), with early stopping on validation.
3. Test: each fitted model is evaluated on the test split exactly once
   (Recall, NDCG, Precision, MAP at 10 and 20, training items excluded as in
   MMRec) and, when the dataset has item features and cold test items, on
   the test interactions of items never seen in training (cold Recall@20).

Models that need item features (the class tag ``requires_features``) are
skipped, with a note in the results, on datasets without features. Results are mean and sample standard deviation over seeds,
fit time (with per-epoch validation) and epochs, written by
:meth:`Comparison.save` as ``results.json`` and ``results.md`` (and PNG plots
with ``plots=True``, see :mod:`lgrec.plots`).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._validation import check_int
from .evaluation import evaluate, restrict_items
from .models import MODELS

__all__ = ["DEFAULT_GRIDS", "DEMO_PARAMS", "Comparison", "compare", "expand_grid"]

#: Small per-model grids used with ``grid=True`` / ``lgrec compare --grid``, selected on validation.
#: Step size and L2 weight for every trained model (MMRec searches only the regulariser, at a fixed
#: step of 1e-3; on small data a larger step reaches the same place in far fewer epochs), plus the
#: parameters MMRec searches for FREEDOM (edge dropout, modality weight) and VBPR's optional biases.
DEFAULT_GRIDS = {
    "bpr": {"learning_rate": [1e-3, 5e-3], "regularization": [1e-3, 1e-2, 1e-1]},
    "lightgcn": {"learning_rate": [1e-3, 5e-3], "regularization": [1e-4, 1e-2]},
    "vbpr": {"learning_rate": [1e-3, 5e-3], "regularization": [1e-4, 1e-2], "item_bias": [False, True]},
    "freedom": {"learning_rate": [1e-3, 5e-3], "dropout": [0.8, 0.9], "modality_weight": [1e-4, 1e-3]},
    "rlmm": {"learning_rate": [1e-3, 1e-4], "embedding_size": [64, 128]},
}

#: Settings of ``lgrec demo``: a larger step and a short patience so that every model trains in seconds.
DEMO_PARAMS = {"*": {"learning_rate": 0.01, "patience": 5, "max_epochs": 60}}

METRIC_KEYS = tuple(f"{m}@{k}" for m in ("recall", "ndcg", "precision", "map") for k in (10, 20))
COLD_KEY = "cold_recall@20"
VALID_KEY = "recall@20"


def expand_grid(grid: dict | None) -> list[dict]:
    """All combinations of a ``{param: [values]}`` grid, keys in sorted order (``[{}]`` when empty).

    A value that is not a list or tuple counts as a single value. The
    combinations are those of :class:`sklearn.model_selection.ParameterGrid`,
    which raises a ValueError naming an entry whose list is empty.
    """
    if not grid:
        return [{}]
    # lazily: importing scikit-learn sets KMP_* variables (and takes ~0.8 s)
    from sklearn.model_selection import ParameterGrid

    return list(ParameterGrid({key: v if isinstance(v, (list, tuple)) else [v] for key, v in grid.items()}))


def environment() -> dict:
    """Versions and thread counts, recorded with every comparison."""
    import numba
    import scipy

    from . import __version__

    return {
        "lgrec": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "machine": platform.machine(),
        "platform": platform.platform(),
    }


@dataclass
class Comparison:
    """The outcome of :func:`compare`.

    Attributes
    ----------
    dataset : dict
        :meth:`lgrec.Dataset.summary` of the data compared on.
    models : list of dict
        One entry per requested model, JSON-ready: ``name``, ``model`` (class),
        ``status`` (``"ok"`` or ``"skipped"``), ``note``, ``params`` (chosen),
        ``grid`` (every configuration tried with its validation Recall@20),
        ``runs`` (per seed: test metrics, cold Recall@20, fit seconds,
        epochs, the validation Recall@20 of every epoch), ``mean`` and ``std``.
    settings : dict
        Seeds, cut-offs, grids and overrides used.
    wall_seconds : float
        Wall time of the whole comparison (grid search included).
    environment : dict
    image_share : dict of str to ndarray of shape (n_items,)
        ``image_share_`` of the first seed's fitted model, for models that have one.
    item_groups : ndarray of shape (n_items,) or None
        Group label of each item (e.g. H&M's product group), for the plots.
    group_column : str or None
    """

    dataset: dict
    models: list[dict]
    settings: dict
    wall_seconds: float
    environment: dict
    image_share: dict = field(default_factory=dict)
    item_groups: np.ndarray | None = None
    group_column: str | None = None

    def to_dict(self) -> dict:
        """Everything except the per-item arrays, as JSON-ready values."""
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "wall_seconds": self.wall_seconds,
            "environment": self.environment,
            "models": self.models,
        }

    def ok_models(self) -> list[dict]:
        return [m for m in self.models if m["status"] == "ok"]

    def to_text(self) -> str:
        """A compact plain-text table for the terminal (Recall@20, NDCG@20, cold Recall@20, epochs, fit time)."""
        ok = self.ok_models()
        has_cold = any(COLD_KEY in m["mean"] for m in ok)
        seeds = len(self.settings["seeds"])
        plus = " ± std" if seeds > 1 else ""
        head = f"{'model':<10} {'recall@20' + plus:>17} {'ndcg@20' + plus:>17}"
        head += f" {'cold recall@20':>15}" if has_cold else ""
        lines = [head + f" {'epochs':>7} {'fit s':>7}"]
        for m in ok:
            def cell(key, width=17):
                if key not in m["mean"]:
                    return f"{'-':>{width}}"
                text = f"{m['mean'][key]:.4f}" + (f" ± {m['std'][key]:.4f}" if seeds > 1 else "")
                return f"{text:>{width}}"
            line = f"{m['name']:<10} {cell('recall@20')} {cell('ndcg@20')}"
            line += f" {cell(COLD_KEY, 15)}" if has_cold else ""
            epochs = f"{m['mean']['epochs']:.0f}" if m["mean"]["epochs"] else "-"
            lines.append(line + f" {epochs:>7} {m['mean']['fit_seconds']:>7.1f}")
        for m in self.models:
            if m["status"] != "ok":
                lines.append(f"{m['name']:<10} {m['note']}")
        lines.append(f"wall time {self.wall_seconds:.1f} s")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The results table with notes, as Markdown."""
        ok = self.ok_models()
        d = self.dataset
        seeds = self.settings["seeds"]
        lines = [f"# lgrec comparison on {d.get('name', 'dataset')}", ""]
        feats = []
        for modality in ("image", "text"):
            if d.get(f"{modality}_dim"):
                feats.append(f"{modality} {d[f'{modality}_dim']}-d ({d['n_items'] - d[f'items_without_{modality}']} items)")
        lines.append(
            f"Data: {d['n_users']} users, {d['n_items']} items, train/valid/test {d['train']}/{d['valid']}/{d['test']} "
            f"interactions; features: {', '.join(feats) if feats else 'none'}; "
            f"{d['cold_test_items']} test items never seen in training."
        )
        lines.append(
            f"Protocol: {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), mean ± sample std; early stopping and "
            "hyperparameter selection on validation Recall@20; test evaluated once per fitted model, "
            "training items excluded (MMRec's full ranking)."
        )
        lines.append("")
        headers = ["model"] + [_pretty(key) for key in METRIC_KEYS]
        has_cold = any(COLD_KEY in m["mean"] for m in ok)
        if has_cold:
            headers.append("cold Recall@20")
        headers += ["fit s", "epochs"]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|")
        keys = list(METRIC_KEYS) + ([COLD_KEY] if has_cold else [])
        best = {key: max((m["mean"].get(key, -np.inf) for m in ok), default=None) for key in keys}
        for m in ok:
            cells = [m["name"] + (f" ({m['model']})" if m["model"].lower() != m["name"] else "")]
            for key in keys:
                if key not in m["mean"]:
                    cells.append("–")
                    continue
                text = _mean_std(m["mean"][key], m["std"][key])
                cells.append(f"**{text}**" if len(ok) > 1 and m["mean"][key] == best[key] else text)
            cells.append(_mean_std(m["mean"]["fit_seconds"], m["std"]["fit_seconds"], digits=1))
            cells.append(_mean_std(m["mean"]["epochs"], m["std"]["epochs"], digits=0) if m["mean"]["epochs"] else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for key in ("recall@20", "ndcg@20"):
            ranked = sorted(ok, key=lambda m: -m["mean"][key])
            if len(ranked) > 1:
                top = ranked[0]["mean"][key]
                parts = [f"{ranked[0]['name']} {top:.4f}"] + [
                    f"{m['name']} {m['mean'][key]:.4f} ({_relative(m['mean'][key], top)})" for m in ranked[1:]
                ]
                lines.append(f"Ranking by test {_pretty(key)}: " + " > ".join(parts) + ".")
        lines.append("")
        lines.append(f"Wall time of the whole comparison: {self.wall_seconds:.1f} s ({self.wall_seconds / 60:.1f} min), "
                     f"{self.environment.get('numba_threads', '?')} threads, {self.environment.get('machine', '')}.")
        lines.append("")
        lines.append("Hyperparameters (chosen on validation where a grid was searched):")
        lines.append("")
        for m in ok:
            chosen = ", ".join(f"{k}={v}" for k, v in sorted(m["params"].items()) if k not in ("random_state", "verbose"))
            grid_note = ""
            if len(m["grid"]) > 1:
                grid_note = f" — best of {len(m['grid'])} configurations (valid Recall@20 {m['grid_best']:.4f})"
            lines.append(f"- {m['name']}: {chosen or 'no hyperparameters'}{grid_note}")
        notes = [m for m in self.models if m.get("note")]
        if notes:
            lines.append("")
            lines.append("Notes:")
            lines.append("")
            for m in notes:
                lines.append(f"- {m['name']}: {m['note']}")
        return "\n".join(lines) + "\n"

    def save(self, out_dir, plots: bool = False) -> list[Path]:
        """Write ``results.json`` and ``results.md`` (and the PNG plots) into ``out_dir``.

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "results.json", out / "results.md"]
        written[0].write_text(json.dumps(self.to_dict(), indent=2, default=_json_default, allow_nan=True))
        written[1].write_text(self.to_markdown())
        if plots:
            from .plots import save_comparison_plots

            written += save_comparison_plots(self, out)
        return written


def _pretty(key: str) -> str:
    name, k = key.split("@")
    return {"recall": "Recall", "ndcg": "NDCG", "precision": "Precision", "map": "MAP"}[name] + "@" + k


def _relative(value: float, best: float) -> str:
    return f"{100.0 * (value - best) / best:+.0f}%" if best > 0 else "n/a"


def _mean_std(mean: float, std: float, digits: int = 4) -> str:
    if digits == 0:
        return f"{mean:.0f} ± {std:.0f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.random.Generator):
        return None
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _seed_list(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive int or a list of ints; got {seeds!r}.")
        return list(range(int(seeds)))
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds must be a positive int or a list of ints; got {seeds!r}.")
    out = list(seeds)
    if any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0 for s in out):
        raise ValueError(f"seeds must be a positive int or a list of non-negative ints; got {seeds!r}.")
    if not out:
        raise ValueError("seeds must not be empty.")
    return [int(s) for s in out]


def _check_compare_args(dataset, models, params, blas_threads) -> None:
    """Types of the arguments of :func:`compare` (the rest is checked where it is used)."""
    from .data import Dataset

    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an lgrec.Dataset (lgrec.load_mmrec, Dataset.from_frame); got "
                        f"{type(dataset).__name__}.")
    if isinstance(models, (str, bytes)):
        raise TypeError(f"models must be a list of model names, e.g. [{models!r}]; got the string {models!r}.")
    if params is not None and (not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values())):
        raise TypeError(f"params must be a dict {{model or '*': {{parameter: value}}}}; got {params!r:.80}.")
    if blas_threads is not None:
        check_int(blas_threads, "blas_threads", "compare", low=1)


def _overrides(params: dict | None, name: str, valid_params: set) -> dict:
    """Fixed settings for one model: ``params["*"]`` (those the model has) then ``params[name]``."""
    params = params or {}
    out = {k: v for k, v in params.get("*", {}).items() if k in valid_params}
    out.update(params.get(name, {}))
    return out


def _valid_score(model, dataset) -> float:
    history = getattr(model, "history_", None) or []
    scores = [r[f"valid_{VALID_KEY}"] for r in history if f"valid_{VALID_KEY}" in r]
    if scores:
        return float(max(scores))
    return float(evaluate(model, dataset.valid, dataset.train, k=(20,))[VALID_KEY])


def _log(verbose: bool, text: str) -> None:
    if verbose:
        print(text, file=sys.stderr, flush=True)


def compare(
    dataset,
    models=None,
    *,
    seeds=3,
    grid=False,
    params: dict | None = None,
    exclude_valid: bool = False,
    group_column: str | None = "auto",
    blas_threads: int | None = 1,
    verbose: bool = False,
) -> Comparison:
    """Train, select and evaluate several models on one dataset.

    Parameters
    ----------
    dataset : lgrec.Dataset
        Train, valid and test splits (and optional features).
    models : sequence of str, optional
        Names in :data:`lgrec.models.MODELS`; default: all of them.
    seeds : int or sequence of int, default=3
        ``n`` means seeds ``0 .. n-1``; each seed is the ``random_state`` of one fit.
    grid : bool or dict, default=False
        ``False``: one configuration per model (its defaults plus ``params``).
        ``True``: :data:`DEFAULT_GRIDS`. A dict ``{model: {param: [values]}}``:
        those grids (models not in it use one configuration).
    params : dict, optional
        Fixed settings ``{model: {param: value}}``; the key ``"*"`` applies to
        every model that has the parameter (e.g. ``{"*": {"max_epochs": 50}}``).
        Grid values override them.
    exclude_valid : bool, default=False
        Also exclude validation items when ranking for the test split.
    group_column : str or None, default="auto"
        Column of ``dataset.item_info`` that groups items in the image-share
        plot; ``"auto"``: the first of :data:`lgrec.data.ITEM_GROUP_COLUMNS` present.
    blas_threads : int or None, default=1
        Threads of the BLAS library (OpenBLAS, MKL) while models are fitted and
        evaluated, set with threadpoolctl; None leaves them alone. One thread
        is faster on small machines: BLAS threads that spin after a matrix
        product compete with Numba's kernel threads (measured on 2 cores: VBPR
        epochs on H&M 0.86 s with 2 BLAS threads, 0.42 s with 1; BPR-MF 0.39 s
        and 0.23 s).
    verbose : bool, default=False
        One line per fit on stderr.

    Returns
    -------
    Comparison
    """
    _check_compare_args(dataset, models, params, blas_threads)
    if blas_threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=blas_threads, user_api="blas"):
            return compare(dataset, models, seeds=seeds, grid=grid, params=params, exclude_valid=exclude_valid,
                           group_column=group_column, blas_threads=None, verbose=verbose)
    started = time.perf_counter()
    names = list(MODELS) if models is None else list(models)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"models lists a name twice: {names}.")
    seed_list = _seed_list(seeds)
    grids = DEFAULT_GRIDS if grid is True else (grid or {})
    if not isinstance(grids, dict):
        raise TypeError(f"grid must be a bool or a dict of per-model grids; got {type(grid).__name__}.")
    has_features = dataset.image is not None or dataset.text is not None
    cold = dataset.cold_items("test")
    cold_truth = restrict_items(dataset.test, cold) if has_features and cold.size else None
    exclude = dataset.train + dataset.valid if exclude_valid else dataset.train
    results, shares = [], {}
    for name in names:
        cls = MODELS[name]
        entry = {"name": name, "model": cls.__name__, "status": "ok", "note": "", "params": {}, "grid": [],
                 "grid_best": None, "runs": [], "mean": {}, "std": {}}
        results.append(entry)
        if cls.requires_features and not has_features:
            entry["status"] = "skipped"
            entry["note"] = f"skipped: {cls.__name__} needs item features and this dataset has none."
            _log(verbose, f"[{name}] {entry['note']}")
            continue
        if not has_features and cls.uses_features:
            entry["note"] = "no item features in this dataset: trained as its collaborative core."
        model_started = time.perf_counter()
        valid_params = set(cls._get_param_names())
        fixed = _overrides(params, name, valid_params)
        model_grid = grids.get(name, {})
        unknown_params = sorted((set(fixed) | set(model_grid)) - valid_params)
        if unknown_params:
            raise ValueError(f"{cls.__name__} has no parameter(s) {unknown_params}; it has {sorted(valid_params)}.")
        configs = [{**fixed, **c} for c in expand_grid(model_grid)]
        seeded = "random_state" in valid_params
        first_fit = None
        if len(configs) > 1:
            best = None
            for i, config in enumerate(configs, 1):
                model, seconds = _fit(cls, config, seed_list[0] if seeded else None, dataset, name)
                score = _valid_score(model, dataset)
                entry["grid"].append({"params": config, f"valid_{VALID_KEY}": score, "fit_seconds": seconds,
                                      "epochs": len(getattr(model, "history_", []))})
                _log(verbose, f"[{name}] grid {i}/{len(configs)} {config}: valid {VALID_KEY} {score:.4f} ({seconds:.1f} s)")
                if best is None or score > best[0]:
                    best = (score, config, model, seconds)
            entry["grid_best"] = best[0]
            chosen, first_fit = best[1], (best[2], best[3])
        else:
            chosen = configs[0]
            entry["grid"].append({"params": chosen})
        entry["params"] = {k: v for k, v in cls(**chosen).get_params().items() if k not in ("random_state", "verbose")}
        run_seeds = seed_list if seeded else seed_list[:1]
        if not seeded and len(seed_list) > 1:
            entry["note"] = (entry["note"] + " " if entry["note"] else "") + "deterministic: fitted once, std is 0."
        for s_index, seed in enumerate(run_seeds):
            if s_index == 0 and first_fit is not None:
                model, seconds = first_fit
            else:
                model, seconds = _fit(cls, chosen, seed if seeded else None, dataset, name)
            entry["runs"].append(_run_record(model, seconds, seed if seeded else None, dataset, exclude, cold_truth))
            if s_index == 0 and getattr(model, "image_share_", None) is not None:
                shares[name] = np.asarray(model.image_share_, dtype=np.float32)
            run = entry["runs"][-1]
            _log(verbose, f"[{name}] seed {seed}: test recall@20 {run['test']['recall@20']:.4f} "
                          f"ndcg@20 {run['test']['ndcg@20']:.4f} (fit {seconds:.1f} s, {run['epochs']} epochs)")
            del model
        entry["total_seconds"] = time.perf_counter() - model_started
        entry["mean"], entry["std"] = _aggregate(entry["runs"])
        if entry["grid_best"] is None:
            entry["grid_best"] = float(np.mean([r[f"valid_{VALID_KEY}"] for r in entry["runs"]]))
    groups, column = dataset.item_groups(group_column)
    settings = {"models": names, "seeds": seed_list, "grid": grids, "params": params or {},
                "exclude_valid": exclude_valid, "valid_metric": VALID_KEY}
    return Comparison(dataset=dataset.summary(), models=results, settings=settings,
                      wall_seconds=time.perf_counter() - started, environment=environment(),
                      image_share=shares, item_groups=groups, group_column=column)


def _fit(cls, config: dict, seed, dataset, name):
    settings = dict(config)
    params = cls._get_param_names()
    if "random_state" in params:
        settings["random_state"] = seed
    model = cls(**settings)
    started = time.perf_counter()
    model.fit(dataset.train, dataset.image, dataset.text, valid=dataset.valid)
    return model, time.perf_counter() - started


def _run_record(model, seconds: float, seed, dataset, exclude, cold_truth) -> dict:
    history = getattr(model, "history_", None) or []
    curve = [r[f"valid_{VALID_KEY}"] for r in history if f"valid_{VALID_KEY}" in r]
    test = evaluate(model, dataset.test, exclude, k=(10, 20))
    record = {
        "seed": seed,
        "fit_seconds": seconds,
        "epochs": len(history),
        "best_epoch": getattr(model, "best_epoch_", None),
        f"valid_{VALID_KEY}": _valid_score(model, dataset),
        "valid_curve": curve,
        "test": {key: test[key] for key in METRIC_KEYS},
        "test_seconds": test["seconds"],
    }
    if cold_truth is not None:
        record[COLD_KEY] = evaluate(model, cold_truth, exclude, k=(20,))["recall@20"]
    return record


def _aggregate(runs: list[dict]) -> tuple[dict, dict]:
    columns = {key: [r["test"][key] for r in runs] for key in METRIC_KEYS}
    if all(COLD_KEY in r for r in runs):
        columns[COLD_KEY] = [r[COLD_KEY] for r in runs]
    columns["fit_seconds"] = [r["fit_seconds"] for r in runs]
    columns["epochs"] = [r["epochs"] for r in runs]
    columns[f"valid_{VALID_KEY}"] = [r[f"valid_{VALID_KEY}"] for r in runs]
    mean = {key: float(np.mean(v)) for key, v in columns.items()}
    std = {key: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for key, v in columns.items()}
    return mean, std
