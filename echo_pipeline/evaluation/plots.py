"""The figures a cardiologist looks at, as PNG bytes (matplotlib, Agg backend, no display needed).

- `roc_figure`: ROC curve per binary task, trained model against the random-init reference, AUC in the legend.
- `regression_scatter`: predicted vs reported LVEF (or PASP) per clip, with the identity line and MAE
  (the paper's Fig. 1b), one panel per model/dataset.
- `rank_histogram`: distribution of the true report's / clip's retrieval rank, trained vs untrained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402

from echo_pipeline.figures import figure_png  # noqa: E402
from echo_pipeline.metrics.classification import roc_auc  # noqa: E402

DPI = 80


def roc_points(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    t = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last index of each tie run
    tp, fp = np.cumsum(t)[last], np.cumsum(~t)[last]
    n_pos, n_neg = max(int(t.sum()), 1), max(int((~t).sum()), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def _grid(n: int, size: float = 3.0):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def roc_figure(curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], title: str = "") -> bytes:
    """``curves[task][model_label] = (truth, scores)``; one panel per task, one line per model."""
    tasks = [task for task, by_model in curves.items() if by_model]
    fig, axes = _grid(max(len(tasks), 1))
    for ax, task in zip(axes, tasks):
        for label, (truth, scores) in curves[task].items():
            t = np.asarray(truth, dtype=bool)
            if t.all() or not t.any():
                continue
            fpr, tpr = roc_points(t, scores)
            ax.plot(fpr, tpr, label=f"{label} AUC {roc_auc(t, scores):.2f}")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(title=f"{task} (n={len(next(iter(curves[task].values()))[0])})", xlabel="1 - specificity",
               ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="lower right", fontsize=7)
    if title:
        fig.suptitle(title)
    return figure_png(fig, DPI)


def regression_scatter(panels: Mapping[str, tuple[np.ndarray, np.ndarray]], quantity: str = "LVEF (%)") -> bytes:
    """``panels[label] = (truth, predictions)``; predicted vs reported value with the identity line."""
    fig, axes = _grid(max(len(panels), 1), size=3.5)
    for ax, (label, (truth, pred)) in zip(axes, panels.items()):
        t, p = np.asarray(truth, dtype=np.float64), np.asarray(pred, dtype=np.float64)
        ax.scatter(t, p, s=6, alpha=0.4)
        low = float(min(t.min(initial=0), p.min(initial=0)))
        high = float(max(t.max(initial=100), p.max(initial=100)))
        ax.plot([low, high], [low, high], color="grey", linestyle=":", linewidth=1)
        mae = float(np.mean(np.abs(t - p))) if t.size else float("nan")
        ax.set(title=f"{label}\nMAE {mae:.1f}, n={t.size}", xlabel=f"reported {quantity}",
               ylabel=f"predicted {quantity}", xlim=(low, high), ylim=(low, high))
    return figure_png(fig, DPI)


def rank_histogram(ranks: Mapping[str, tuple[np.ndarray, np.ndarray]], n_candidates: int) -> bytes:
    """``ranks[model_label] = (image→report ranks, report→image ranks)``; log-spaced rank bins."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), squeeze=False)
    bins = np.unique(np.geomspace(1, max(n_candidates, 2) + 1, 30).astype(int))
    for col, direction in enumerate(("image → report", "report → image")):
        ax = axes[0, col]
        for label, pair in ranks.items():
            ax.hist(pair[col], bins=bins, alpha=0.5, label=f"{label} (mean {np.mean(pair[col]):.1f})")
        ax.axvline((n_candidates + 1) / 2, color="grey", linestyle=":", linewidth=1, label="chance (mean)")
        ax.set(xscale="log", title=f"{direction}, {n_candidates} candidates", xlabel="rank of the true match",
               ylabel="studies")
        ax.legend(fontsize=7)
    return figure_png(fig, DPI)
