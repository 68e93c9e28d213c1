"""Retrieval-based predictions: a clip's labels read off its k nearest training reports (EchoPrime's rule).

For each clip embedding, the ``k`` training-split reports with the highest cosine similarity (exact inner
product over the same unit vectors the `report_index` holds, restricted to the training split: a test
report must never answer for its own clip). A regression label is predicted as the similarity-weighted mean
of the neighbours that state it; a binary label as the similarity-weighted share of positive votes among the
neighbours that state it (a score in [0, 1], so AUCs are defined; 0.5 is the majority call). Weights are the
cosine similarities clipped at zero: a report pointing away from the clip does not vote. Neighbours that do
not state a label are skipped, not counted as negative. NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echo_pipeline.errors import EvaluationError

DEFAULT_K = 50
#: Clips per matrix product (bounds the (chunk, R) similarity block: 4,096 × 100,000 × 4 B ≈ 1.6 GB at most).
CHUNK_CLIPS = 4096


@dataclass(frozen=True)
class Neighbours:
    """``index[i]`` the rows of the report matrix nearest clip i, best first; ``similarity[i]`` their cosines."""

    index: np.ndarray  # (N, k) int64
    similarity: np.ndarray  # (N, k) float32


def nearest_reports(clips: np.ndarray, reports: np.ndarray, k: int = DEFAULT_K,
                    chunk: int = CHUNK_CLIPS) -> Neighbours:
    """The ``min(k, R)`` nearest reports of every clip by inner product (ties: lower report row first)."""
    clips, reports = np.asarray(clips, np.float32), np.asarray(reports, np.float32)
    if k < 1:
        raise EvaluationError(f"k = {k}: ask for at least one neighbour report")
    if len(reports) == 0:
        raise EvaluationError("no training report has a stored embedding; materialise report_embeddings first")
    k = min(k, len(reports))
    index = np.empty((len(clips), k), np.int64)
    similarity = np.empty((len(clips), k), np.float32)
    for start in range(0, len(clips), chunk):
        sims = clips[start:start + chunk] @ reports.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(
            np.arange(sims.shape[1]), (len(sims), 1))
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((top, -top_sims), axis=1)  # by similarity, then by row
        index[start:start + chunk] = np.take_along_axis(top, order, axis=1)
        similarity[start:start + chunk] = np.take_along_axis(top_sims, order, axis=1)
    return Neighbours(index, similarity)


def weighted_label(neighbours: Neighbours, values: np.ndarray) -> np.ndarray:
    """Per clip, the similarity-weighted mean of ``values`` (one per report row, NaN = not stated) over its
    neighbours that state it; NaN when none does. With every weight zero, the plain mean of those values.

    A binary label given as 1.0 / 0.0 gives the weighted share of positive votes.
    """
    v = np.asarray(values, np.float64)[neighbours.index]
    known = np.isfinite(v)
    w = np.where(known, np.clip(neighbours.similarity.astype(np.float64), 0.0, None), 0.0)
    total = w.sum(axis=1)
    weighted = np.where(known, v * w, 0.0).sum(axis=1)
    count = known.sum(axis=1)
    plain = np.where(known, v, 0.0).sum(axis=1) / np.maximum(count, 1)
    out = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), plain)
    return np.where(count > 0, out, np.nan)
