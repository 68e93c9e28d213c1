"""Zero-shot binary classification: prompt-similarity scores, ROC AUC and Youden operating point.

Scores: cosine similarity between each frame embedding and each prompt embedding, averaged over prompts and
frames (the paper uses frames 0, 2, …, 38; the caller selects them, see `PAPER_FRAME_INDICES`).

AUC is the Mann–Whitney statistic: the probability that a random positive scores higher than a random
negative, with ties counted as one half (mid-ranks). It is NaN when either class is absent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from echo_pipeline.errors import EvaluationError

#: Frames the paper averages over: the first 20 frames at stride 2.
PAPER_FRAME_INDICES: tuple[int, ...] = tuple(range(0, 40, 2))


def as_truth_vector(truth: np.ndarray, name: str = "truth") -> np.ndarray:
    """``truth`` as a 1-D bool array; refuses NaN/None and values other than 0/1/True/False."""
    t = np.asarray(truth)
    if t.ndim != 1:
        raise EvaluationError(f"{name}: expected a 1-D vector, got shape {t.shape}.")
    if t.dtype == bool:
        return t
    if t.dtype == object or np.issubdtype(t.dtype, np.floating):
        if np.any(pd.isna(t)):
            raise EvaluationError(f"{name}: contains missing values; exclude unknown labels before scoring.")
    values = set(np.unique(t).tolist())
    if not values <= {0, 1}:
        raise EvaluationError(f"{name}: binary truth must be 0/1 or bool, found {sorted(values)[:5]}.")
    return t.astype(bool)


def as_score_vector(scores: np.ndarray, n: int, name: str = "scores") -> np.ndarray:
    """``scores`` as a finite 1-D float64 array of length ``n``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise EvaluationError(f"{name}: expected shape ({n},) to match the truth vector, got {s.shape}.")
    if not np.all(np.isfinite(s)):
        raise EvaluationError(f"{name}: contains NaN or infinite values; every scored item needs a score.")
    return s


def zero_shot_scores(frame_embeddings: np.ndarray, prompt_embeddings: np.ndarray) -> np.ndarray:
    """Mean cosine similarity of each clip's frames to the prompts.

    ``frame_embeddings``: (N, F, D) L2-normalised frame embeddings, or (N, D) for one frame per clip.
    ``prompt_embeddings``: (P, D) L2-normalised prompt embeddings, or (D,) for a single prompt.
    Returns (N,) float64 scores = mean over frames and prompts of ``frame · prompt``.
    """
    x = np.asarray(frame_embeddings, dtype=np.float64)
    p = np.atleast_2d(np.asarray(prompt_embeddings, dtype=np.float64))
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or p.ndim != 2 or x.shape[-1] != p.shape[-1]:
        raise EvaluationError(
            f"frame embeddings {np.shape(frame_embeddings)} and prompt embeddings "
            f"{np.shape(prompt_embeddings)} must be (N, F, D) and (P, D) with the same D."
        )
    # The mean of dot products equals the dot product with the mean prompt (linearity); this avoids
    # materialising the (N, F, P) similarity tensor.
    return (x @ p.mean(axis=0)).mean(axis=1)


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` (ascending), tied values sharing the mean of their ranks."""
    v = np.asarray(values)
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], v.size]
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Mann–Whitney ROC AUC (ties = 0.5); higher scores mean "positive". NaN if a class is absent."""
    t = as_truth_vector(truth)
    s = as_score_vector(scores, t.size)
    n_pos = int(t.sum())
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = midranks(s)[t].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class OperatingPoint:
    """A decision threshold (predict positive when ``score >= threshold``) and its rates."""

    threshold: float
    sensitivity: float
    specificity: float
    youden_j: float


def youden_operating_point(truth: np.ndarray, scores: np.ndarray) -> OperatingPoint:
    """Threshold maximising Youden's J = sensitivity + specificity − 1.

    Candidate thresholds are the observed scores; a case is called positive when ``score >= threshold``.
    J is compared exactly (as the integer ``TP·n_neg − FP·n_pos``), and among equal maxima the
    **highest** threshold wins (fewest positive calls), so the choice is deterministic.
    All fields are NaN when either class is absent.
    """
    t = as_truth_vector(truth)
    s = as_score_vector(scores, t.size)
    n_pos = int(t.sum())
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        nan = float("nan")
        return OperatingPoint(nan, nan, nan, nan)
    order = np.argsort(-s, kind="stable")
    s_desc, t_desc = s[order], t[order]
    tp = np.cumsum(t_desc)
    fp = np.cumsum(~t_desc)
    # A threshold equal to a score admits every tied case, so evaluate at the last index of each tie run.
    last_of_run = np.flatnonzero(np.r_[s_desc[1:] != s_desc[:-1], True])
    j_scaled = tp[last_of_run].astype(np.int64) * n_neg - fp[last_of_run].astype(np.int64) * n_pos
    best = last_of_run[int(np.argmax(j_scaled))]  # argmax takes the first maximum = highest threshold
    sens = tp[best] / n_pos
    spec = 1.0 - fp[best] / n_neg
    return OperatingPoint(float(s_desc[best]), float(sens), float(spec), float(sens + spec - 1.0))


def binary_metrics(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC, Youden threshold/sensitivity/specificity/J, prevalence, n and n_positive for one task."""
    t = as_truth_vector(truth)
    s = as_score_vector(scores, t.size)
    op = youden_operating_point(t, s)
    out = {"auc": roc_auc(t, s)}
    out.update(asdict(op))
    out.update(
        {
            "prevalence": float(t.mean()) if t.size else float("nan"),
            "n": float(t.size),
            "n_positive": float(t.sum()),
        }
    )
    return out
