"""Zero-shot regression (LVEF, PASP) with the paper's top-20 % median rule, and its metrics.

Rule, per clip:
1. For every frame, score each candidate value (e.g. 0..100) by the similarity of its prompt(s) to the frame;
   with several prompt variants per value the similarities are averaged over the variants.
2. Rank the candidate values per frame by score, best first. Ties are broken deterministically by the
   smaller value first, i.e. a stable sort on ``(-score, value)``.
3. Keep the top ``k`` rank positions, ``k = floor(top_fraction · V + 0.5)`` (round half up, at least 1):
   20 % of 101 candidates → 20, the same count as the public EchoCLIP code's ``int(0.2 · V)`` there.
4. Average the kept values across frames at each rank position → ``k`` numbers.
5. The prediction is their median (NumPy's: the mean of the two middle values when ``k`` is even; the
   public code's ``torch.median`` takes the lower middle value instead).

LVEF discrimination: "LVEF below threshold" (``truth < threshold``, strict) is the positive class and the
score is ``-prediction`` (a lower predicted EF means more likely reduced), giving AUCs at 50/40/30 %.
"""

from __future__ import annotations

import math

import numpy as np

from echo_pipeline.errors import EvaluationError
from echo_pipeline.metrics.classification import roc_auc

#: Clips processed per similarity block: 256 clips × 20 frames × 101 values × 8 bytes ≈ 4 MB.
DEFAULT_CHUNK_CLIPS = 256
#: Thresholds (in %) for the LVEF "reduced ejection fraction" AUCs reported in the paper.
LVEF_THRESHOLDS: tuple[float, ...] = (50.0, 40.0, 30.0)


def top_fraction_count(n_candidates: int, top_fraction: float = 0.2) -> int:
    """Number of rank positions kept: ``floor(top_fraction · n_candidates + 0.5)``, at least 1."""
    if n_candidates < 1 or not 0.0 < top_fraction <= 1.0:
        raise EvaluationError(
            f"need n_candidates >= 1 and 0 < top_fraction <= 1, got {n_candidates} and {top_fraction}."
        )
    return max(1, math.floor(top_fraction * n_candidates + 0.5))


def predict_from_similarities(
    similarities: np.ndarray, values: np.ndarray, *, top_fraction: float = 0.2
) -> np.ndarray:
    """Apply the top-fraction median rule to (N, F, V) similarities of N clips × F frames × V values.

    ``values`` are the V distinct candidate values in the similarity columns' order. Returns (N,) float64.
    """
    sims = np.asarray(similarities, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    if sims.ndim == 2:
        sims = sims[:, None, :]
    if sims.ndim != 3 or vals.ndim != 1 or sims.shape[-1] != vals.size:
        raise EvaluationError(
            f"similarities {np.shape(similarities)} must be (N, F, V) with V = len(values) = {vals.size}."
        )
    if np.unique(vals).size != vals.size:
        raise EvaluationError("candidate values must be distinct; average prompt variants per value first.")
    k = top_fraction_count(vals.size, top_fraction)
    # Put the columns in ascending value order so that a stable sort on -score breaks ties by value.
    by_value = np.argsort(vals, kind="stable")
    sims, vals = sims[..., by_value], vals[by_value]
    ranked = np.argsort(-sims, axis=-1, kind="stable")[..., :k]
    per_position = vals[ranked].mean(axis=1)  # (N, k): mean over frames at each rank position
    return np.median(per_position, axis=1)


def predict_from_embeddings(
    frame_embeddings: np.ndarray,
    prompt_embeddings: np.ndarray,
    values: np.ndarray,
    *,
    top_fraction: float = 0.2,
    chunk_clips: int = DEFAULT_CHUNK_CLIPS,
) -> np.ndarray:
    """Zero-shot predictions from L2-normalised embeddings.

    ``frame_embeddings``: (N, F, D), or (N, D) for one frame per clip.
    ``prompt_embeddings``: (V, D) one prompt per value, or (V, K, D) with K variants per value (their
    similarities are averaged; by linearity that is the similarity to the variants' mean embedding).
    ``values``: (V,) candidate values. Returns (N,) float64 predictions.
    """
    x = np.asarray(frame_embeddings)
    if x.ndim == 2:
        x = x[:, None, :]
    p = np.asarray(prompt_embeddings, dtype=np.float64)
    if p.ndim == 3:
        p = p.mean(axis=1)
    if x.ndim != 3 or p.ndim != 2 or x.shape[-1] != p.shape[-1]:
        raise EvaluationError(
            f"frame embeddings {np.shape(frame_embeddings)} and prompt embeddings "
            f"{np.shape(prompt_embeddings)} must be (N, F, D) and (V, D) or (V, K, D) with the same D."
        )
    out = np.empty(x.shape[0], dtype=np.float64)
    p_t = p.T
    for start in range(0, x.shape[0], chunk_clips):
        block = np.asarray(x[start : start + chunk_clips], dtype=np.float64) @ p_t
        out[start : start + chunk_clips] = predict_from_similarities(block, values, top_fraction=top_fraction)
    return out


def mean_absolute_error(truth: np.ndarray, predictions: np.ndarray) -> float:
    """Mean absolute error; NaN for empty input. Both arrays must be finite and the same length."""
    t, p = _paired(truth, predictions)
    return float(np.mean(np.abs(t - p))) if t.size else float("nan")


def regression_metrics(
    truth: np.ndarray, predictions: np.ndarray, below_thresholds: tuple[float, ...] = ()
) -> dict[str, float]:
    """``mae``, ``n`` and, per threshold T, ``auc_below_{T:g}``: AUC of ``-prediction`` for ``truth < T``."""
    t, p = _paired(truth, predictions)
    out = {"mae": mean_absolute_error(t, p), "n": float(t.size)}
    for threshold in below_thresholds:
        out[f"auc_below_{threshold:g}"] = roc_auc(t < threshold, -p)
    return out


def training_mean_baseline(train_values: np.ndarray, n: int) -> np.ndarray:
    """Predictions for ``n`` test items that all equal the mean of the known training values."""
    train = np.asarray(train_values, dtype=np.float64)
    train = train[np.isfinite(train)]
    if train.size == 0:
        raise EvaluationError("training_mean_baseline: no finite training values to average.")
    return np.full(n, float(train.mean()))


def _paired(truth: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if t.ndim != 1 or t.shape != p.shape:
        raise EvaluationError(f"truth {t.shape} and predictions {p.shape} must be 1-D and the same length.")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise EvaluationError("truth and predictions must be finite; exclude unknown labels before scoring.")
    return t, p
