"""Static HTML reports: what a model recommends, with the items' photos, in one self-contained file.

:func:`write_report` (``lgrec report``) shows, for a seeded sample of users, their training
history and their top-k as photo tiles with titles (and the model's ``explain(user, item)``
when it has one), the validation curve of the fit (``history_``) and the histogram of the
gate's image share (``image_share_``, RLMultimodalRec). :func:`write_comparison_html`
(``lgrec compare --html``) writes a comparison's table and curves the same way.

The file needs no server and runs no script: photos are embedded as base64 JPEG thumbnails
(made with Pillow when it is installed, else the photo file's own bytes), plots are inline
SVG. Photos come from the dataset folder's ``item_info.csv`` column ``image_path`` (written
by :func:`lgrec.prepare`); items without one get a grey tile with their id.
"""

from __future__ import annotations

import base64
import html
import inspect
import io
import os
from pathlib import Path

import numpy as np

__all__ = ["histogram_svg", "line_svg", "write_comparison_html", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:16px 0 6px}
.row{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
figure{margin:0;width:128px;font-size:11px;line-height:1.25}
figure img,.nophoto{width:128px;height:128px;object-fit:cover;border-radius:4px;background:#eee;display:block}
.nophoto{display:flex;align-items:center;justify-content:center;color:#888;text-align:center;font-size:10px}
figcaption{margin-top:3px;overflow-wrap:anywhere}
.score{color:#666}.explain{font-size:10px;color:#345;background:#f4f7fb;border-radius:3px;padding:3px;margin:0 0 4px;min-height:6em;overflow-wrap:anywhere}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}.muted{color:#777;font-size:12px}
.plots{display:flex;gap:24px;flex-wrap:wrap}
"""


def _thumbnail(path: str, size: int = 192) -> tuple[str, bytes] | None:
    """(mime, bytes) of a small JPEG of the photo at ``path``; None when it cannot be read."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is None:
        suffix = Path(path).suffix.lower()
        mime = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                ".gif": "image/gif"}.get(suffix)
        if mime is None or not os.path.isfile(path):
            return None
        return mime, Path(path).read_bytes()
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))
            img = img.convert("RGB")
            img.thumbnail((size, size))
            buffer = io.BytesIO()
            img.save(buffer, format="JPEG", quality=82)
    except (OSError, ValueError, SyntaxError):
        return None
    return "image/jpeg", buffer.getvalue()


class _Items:
    """Per-item captions and embedded photos of a dataset (thumbnails made once per item)."""

    def __init__(self, dataset):
        self.dataset = dataset
        info = dataset.item_info
        n = dataset.n_items
        self.titles = np.full(n, "", dtype=object)
        self.paths = np.full(n, "", dtype=object)
        if info is not None:
            ids = info["itemID"].to_numpy() if "itemID" in info.columns else info.index.to_numpy()
            if "title" in info.columns:
                self.titles[ids] = info["title"].fillna("").astype(str).to_numpy()
            if "image_path" in info.columns:
                self.paths[ids] = info["image_path"].fillna("").astype(str).to_numpy()
        self._cache: dict[int, str | None] = {}
        self.n_photos = 0
        self.n_unreadable = 0

    def label(self, item: int) -> str:
        original = self.dataset.original_item_ids([item])[0]
        return str(item if original is None else original)

    def photo(self, item: int) -> str | None:
        if item not in self._cache:
            path = self.paths[item]
            data = _thumbnail(path) if path else None
            if path and data is None:
                self.n_unreadable += 1
            self._cache[item] = None if data is None else (
                f"data:{data[0]};base64," + base64.b64encode(data[1]).decode("ascii"))
            self.n_photos += data is not None
        return self._cache[item]

    def tile(self, item: int, note: str = "", explanation: str = "") -> str:
        label, title = self.label(item), self.titles[item]
        src = self.photo(item)
        alt = html.escape(title or label, quote=True)
        picture = (f'<img src="{src}" alt="{alt}" width="128" height="128">' if src is not None
                   else f'<div class="nophoto">no photo<br>{html.escape(label)}</div>')
        caption = f"<b>{html.escape(title)}</b><br>" if title else ""
        caption += f'<span class="muted">{html.escape(label)}</span>'
        if note:
            caption += f' <span class="score">{html.escape(note)}</span>'
        above = f'<div class="explain">{html.escape(explanation)}</div>' if explanation else ""
        return f"<figure>{above}{picture}<figcaption>{caption}</figcaption></figure>"


def line_svg(series: dict, title: str, x_label: str = "epoch", width: int = 460, height: int = 240,
             mark: float | None = None) -> str:
    """An inline SVG line chart of ``{name: (x, y)}`` series (y finite), with axis ranges and a legend."""
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    clean = {k: (np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in series.items() if len(x)}
    if not clean:
        return f'<p class="muted">{html.escape(title)}: nothing to plot.</p>'
    xs = np.concatenate([x for x, _ in clean.values()])
    ys = np.concatenate([y for _, y in clean.values()])
    ys = ys[np.isfinite(ys)]
    x0, x1 = float(xs.min()), float(xs.max()) if xs.max() > xs.min() else float(xs.min()) + 1
    y0, y1 = (float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0)
    if y1 <= y0:
        y1 = y0 + 1e-9 + abs(y0) * 0.1
    left, right, top, bottom = 52, 12, 12 + 11 * max(len(series), 1), 34
    w, h = width - left - right, height - top - bottom

    def px(x, y):
        return left + (x - x0) / (x1 - x0) * w, top + (1 - (y - y0) / (y1 - y0)) * h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="16" font-size="13">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#bbb"/>',
             f'<text x="{left - 4}" y="{top + 10}" font-size="10" text-anchor="end">{y1:.4g}</text>',
             f'<text x="{left - 4}" y="{top + h}" font-size="10" text-anchor="end">{y0:.4g}</text>',
             f'<text x="{left}" y="{top + h + 14}" font-size="10">{x0:g}</text>',
             f'<text x="{left + w}" y="{top + h + 14}" font-size="10" text-anchor="end">{x1:g}</text>',
             f'<text x="{left + w / 2}" y="{height - 4}" font-size="11" text-anchor="middle">{x_label}</text>']
    if mark is not None:
        mx, _ = px(mark, y0)
        parts.append(f'<line x1="{mx:.1f}" y1="{top}" x2="{mx:.1f}" y2="{top + h}" stroke="#999" '
                     f'stroke-dasharray="4 3"/>')
    for n, (name, (x, y)) in enumerate(clean.items()):
        keep = np.isfinite(y)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(xv, yv) for xv, yv in zip(x[keep], y[keep])))
        color = colors[n % len(colors)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{points}"/>')
        parts.append(f'<text x="{width - right}" y="{12 + 11 * n}" font-size="10" fill="{color}" '
                     f'text-anchor="end">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(values, title: str, bins: int = 20, value_range=(0.0, 1.0), width: int = 460,
                  height: int = 240) -> str:
    """An inline SVG histogram of the finite ``values``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return f'<p class="muted">{html.escape(title)}: no values.</p>'
    counts, edges = np.histogram(values, bins=bins, range=value_range)
    left, right, top, bottom = 52, 12, 26, 34
    w, h = width - left - right, height - top - bottom
    peak = max(int(counts.max()), 1)
    bar = w / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="16" font-size="13">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#bbb"/>',
             f'<text x="{left - 4}" y="{top + 10}" font-size="10" text-anchor="end">{peak}</text>',
             f'<text x="{left - 4}" y="{top + h}" font-size="10" text-anchor="end">0</text>',
             f'<text x="{left}" y="{top + h + 14}" font-size="10">{edges[0]:g}</text>',
             f'<text x="{left + w}" y="{top + h + 14}" font-size="10" text-anchor="end">{edges[-1]:g}</text>',
             f'<text x="{left + w / 2}" y="{height - 4}" font-size="11" text-anchor="middle">'
             f'image share of the gate (1 = photo only, 0 = text only); {values.size} items</text>']
    for n, count in enumerate(counts):
        bh = count / peak * h
        parts.append(f'<rect x="{left + n * bar + 1:.1f}" y="{top + h - bh:.1f}" width="{bar - 2:.1f}" '
                     f'height="{bh:.1f}" fill="#4a7fb5"><title>{edges[n]:.2f}-{edges[n + 1]:.2f}: {count}'
                     "</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def _curve_series(history: list) -> dict:
    epochs = [h["epoch"] for h in history if "epoch" in h]
    series = {}
    for key in ("valid_recall@20", "valid_ndcg@20"):
        values = [h.get(key, np.nan) for h in history if "epoch" in h]
        if any(np.isfinite(v) for v in values):
            series[key] = (epochs, values)
    return series


def _format_explanation(value) -> str:
    """A compact text of whatever ``model.explain`` returns (dicts flattened one level)."""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if isinstance(item, (float, np.floating)):
                parts.append(f"{key} {float(item):+.3f}")
            elif isinstance(item, (list, tuple, np.ndarray)):
                shown = [f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v) for v in list(item)[:3]]
                parts.append(f"{key} [{', '.join(shown)}{', …' if len(item) > 3 else ''}]")
            elif isinstance(item, dict):
                parts.append(f"{key} {{{_format_explanation(item)}}}")
            else:
                parts.append(f"{key} {item}")
        return " · ".join(parts)
    return str(value)


def _explainer(model, dataset, items):
    """``(user, item) -> text`` from ``model.explain`` (None when the model has none).

    The training matrix is passed as ``interactions`` when ``explain`` takes it (RLMultimodalRec
    then lists the history items behind the score); item ids in ``contributors`` are shown as
    original ids.
    """
    explain = getattr(model, "explain", None)
    if explain is None:
        return None
    takes_interactions = "interactions" in inspect.signature(explain).parameters

    def text(user: int, item: int) -> str:
        result = explain(user, item, interactions=dataset.train) if takes_interactions else explain(user, item)
        if isinstance(result, dict) and "contributors" in result:
            result = dict(result)
            result["contributors"] = [f"{items.label(int(j))} {float(c):+.3f}" for j, c in result["contributors"]]
        return _format_explanation(result)

    return text


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(model, dataset, out, *, n_users: int = 5, seed: int = 0, k: int = 10,
                 history_size: int = 12, model_name: str | None = None) -> dict:
    """Write the HTML report of a fitted model on its dataset.

    Parameters
    ----------
    model : fitted lgrec estimator
        Fitted on ``dataset.train`` (same users and items).
    dataset : lgrec.Dataset
        Usually from :func:`lgrec.load_mmrec` on a folder written by :func:`lgrec.prepare`.
    out : str or path-like
        The ``.html`` file to write.
    n_users : int, default=5
        Users shown, drawn with ``seed`` among users with training interactions.
    seed : int, default=0
    k : int, default=10
        Recommendations per user (training items excluded).
    history_size : int, default=12
        Training items shown per user (the first ones by item id).
    model_name : str, optional
        Shown in the title (default: the class name).

    Returns
    -------
    dict
        ``users`` (original ids shown), ``photos`` (embedded), ``unreadable_photos``, ``path``.
    """
    if model.n_users_ != dataset.n_users or model.n_items_ != dataset.n_items:
        raise ValueError(f"the model has {model.n_users_} users and {model.n_items_} items but the dataset has "
                         f"{dataset.n_users} and {dataset.n_items}: pass the folder the model was fitted on.")
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(np.diff(dataset.train.indptr) > 0)
    users = np.sort(rng.choice(active, size=min(n_users, active.size), replace=False))
    ids, scores = model.recommend(users, dataset.train[users], k=k)
    items = _Items(dataset)
    explain = _explainer(model, dataset, items)
    name = model_name or type(model).__name__
    body = [f"<h1>{html.escape(name)} on {html.escape(dataset.name)}</h1>",
            f'<p class="muted">{dataset.n_users} users, {dataset.n_items} items, {dataset.train.nnz} training '
            f"interactions; {len(users)} users drawn with seed {seed}; top {k} with training items excluded."
            + ("" if explain else " This model has no <code>explain</code>; no explanations shown.") + "</p>"]
    plots = []
    history = getattr(model, "history_", None) or []
    series = _curve_series(history)
    if series:
        plots.append(line_svg(series, "validation curve", mark=getattr(model, "best_epoch_", None)))
    share = getattr(model, "image_share_", None)
    if share is not None:
        plots.append(histogram_svg(share, "gate: image share per item"))
    if plots:
        body.append("<h2>Training</h2><div class=\"plots\">" + "".join(plots) + "</div>")
    shown = []
    for user, row_ids, row_scores in zip(users, ids, scores):
        original = dataset.original_user_ids([user])[0]
        label = str(user if original is None else original)
        shown.append(label)
        seen = dataset.train[user].indices
        body.append(f"<h2>User {html.escape(label)}</h2>")
        cut = f", first {history_size}" if seen.size > history_size else ""
        body.append(f"<h3>History ({seen.size} training items{cut})</h3>")
        body.append('<div class="row">' + "".join(items.tile(int(i)) for i in seen[:history_size]) + "</div>")
        body.append(f"<h3>Top {k}</h3>")
        tiles = []
        for rank, (item, score) in enumerate(zip(row_ids, row_scores), start=1):
            if item < 0:
                continue
            explanation = explain(int(user), int(item)) if explain else ""
            tiles.append(items.tile(int(item), f"#{rank} · {score:.3f}", explanation))
        body.append('<div class="row">' + "".join(tiles) + "</div>")
    Path(out).write_text(_page(f"lgrec report: {name} on {dataset.name}", body), encoding="utf-8")
    return {"users": shown, "photos": items.n_photos, "unreadable_photos": items.n_unreadable, "path": str(out)}


def write_comparison_html(comparison, out) -> Path:
    """Write a :class:`lgrec.compare.Comparison` as one static HTML file (table, validation curves, gate shares)."""
    from .compare import METRIC_KEYS, _pretty

    d = comparison.dataset
    ok = comparison.ok_models()
    body = [f"<h1>lgrec comparison on {html.escape(str(d.get('name', 'dataset')))}</h1>",
            f'<p class="muted">{d["n_users"]} users, {d["n_items"]} items, train/valid/test '
            f'{d["train"]}/{d["valid"]}/{d["test"]}; seeds {comparison.settings["seeds"]}; early stopping on '
            f"validation Recall@20; test evaluated once per fitted model.</p>"]
    head = "".join(f"<th>{html.escape(_pretty(key))}</th>" for key in METRIC_KEYS)
    rows = []
    for m in ok:
        cells = "".join(f"<td>{m['mean'][key]:.4f}" + (f" ± {m['std'][key]:.4f}" if len(m["runs"]) > 1 else "")
                        + "</td>" for key in METRIC_KEYS)
        rows.append(f"<tr><td>{html.escape(m['name'])}</td>{cells}<td>{m['mean']['fit_seconds']:.1f}</td></tr>")
    body.append(f"<table><tr><th>model</th>{head}<th>fit s</th></tr>{''.join(rows)}</table>")
    skipped = [m for m in comparison.models if m["status"] != "ok"]
    if skipped:
        body.append("<ul>" + "".join(f"<li>{html.escape(m['name'])}: {html.escape(m['note'] or '')}</li>"
                                     for m in skipped) + "</ul>")
    series = {}
    for m in ok:
        curve = m["runs"][0].get("valid_curve") if m["runs"] else None
        if curve:
            series[m["name"]] = (np.arange(1, len(curve) + 1), curve)
    plots = [line_svg(series, "validation Recall@20 (first seed)")] if series else []
    for name, share in comparison.image_share.items():
        plots.append(histogram_svg(share, f"{name}: image share per item"))
    if plots:
        body.append("<h2>Curves</h2><div class=\"plots\">" + "".join(plots) + "</div>")
    path = Path(out)
    path.write_text(_page("lgrec comparison", body), encoding="utf-8")
    return path
