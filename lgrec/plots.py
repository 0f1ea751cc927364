"""PNG figures of a comparison: validation curves and RLMultimodalRec's image share.

matplotlib is an optional dependency (``pip install "lgrec[plots]"``); it is
imported inside the functions that draw, so importing :mod:`lgrec` never
needs it. Figures are built with :class:`matplotlib.figure.Figure` directly
(no ``pyplot``), so drawing neither needs a display nor changes the backend
of a running session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_image_share", "plot_validation_curves", "save_comparison_plots"]

_MAX_GROUPS = 11


def _figure_class():
    """matplotlib's ``Figure``, or an ImportError that says how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            'lgrec\'s plots need matplotlib, an optional dependency: pip install "lgrec[plots]"'
        ) from exc
    return Figure


def plot_validation_curves(comparison, path) -> Path:
    """Validation Recall@20 per epoch of every model, one line per seed (first seed solid).

    Models without epochs (popularity, content profile) are drawn as
    horizontal dashed lines at their validation Recall@20.

    Parameters
    ----------
    comparison : lgrec.compare.Comparison
    path : str or path-like
        PNG file to write.

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    fig = _figure_class()(figsize=(8, 5), dpi=120)
    ax = fig.subplots()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    max_epoch = max([len(r["valid_curve"]) for m in comparison.ok_models() for r in m["runs"]] + [1])
    for index, model in enumerate(comparison.ok_models()):
        color = colors[index % len(colors)]
        curves = [r["valid_curve"] for r in model["runs"] if r["valid_curve"]]
        if curves:
            for seed_index, curve in enumerate(curves):
                ax.plot(np.arange(1, len(curve) + 1), curve, color=color, lw=1.6 if seed_index == 0 else 0.8,
                        alpha=1.0 if seed_index == 0 else 0.45, label=model["name"] if seed_index == 0 else None)
        else:
            score = model["runs"][0]["valid_recall@20"]
            ax.hlines(score, 1, max_epoch, colors=color, linestyles="dashed", label=f"{model['name']} (no epochs)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Recall@20")
    ax.set_title(f"Validation Recall@20 per epoch — {comparison.dataset.get('name', '')}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def plot_image_share(image_share: np.ndarray, path, groups: np.ndarray | None = None, *,
                     title: str = "Image share of the gate per item", bins: int = 50) -> Path:
    """Histogram of the per-item image share of a gated model, overall and per item group.

    Parameters
    ----------
    image_share : ndarray of shape (n_items,)
        Mean gate per item (1 = image only, 0 = text only); NaN items (without
        both modalities) are left out.
    path : str or path-like
        PNG file to write.
    groups : ndarray of shape (n_items,), optional
        A label per item (e.g. the product group); the largest groups get a panel each.
    title : str
    bins : int, default=50
        Equal-width bins over [0, 1].

    Returns
    -------
    pathlib.Path
    """
    figure_class = _figure_class()
    share = np.asarray(image_share, dtype=np.float64)
    known = np.isfinite(share)
    panels = [("all items", known)]
    if groups is not None:
        labels, counts = np.unique(np.asarray(groups)[known], return_counts=True)
        for label in labels[np.argsort(-counts, kind="stable")][:_MAX_GROUPS]:
            panels.append((str(label), known & (np.asarray(groups) == label)))
    n_cols = min(4, len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig = figure_class(figsize=(3.2 * n_cols, 2.4 * n_rows), dpi=110)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for ax, (label, mask) in zip(axes.ravel(), panels):
        values = share[mask]
        ax.hist(values, bins=edges, color="#4c72b0")
        median = f", median {np.median(values):.2f}" if values.size else ""
        ax.set_title(f"{label} (n={values.size}{median})", fontsize=8)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{title} (0 = text only, 1 = image only)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def save_comparison_plots(comparison, out_dir) -> list[Path]:
    """``valid_recall_curves.png`` and, per gated model, ``<name>_image_share.png`` in ``out_dir``."""
    out = Path(out_dir)
    written = [plot_validation_curves(comparison, out / "valid_recall_curves.png")]
    for name, share in comparison.image_share.items():
        title = f"{name}: image share of the gate per item"
        if comparison.group_column:
            title += f", by {comparison.group_column}"
        written.append(plot_image_share(share, out / f"{name}_image_share.png", comparison.item_groups, title=title))
    return written
