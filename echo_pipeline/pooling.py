"""How several embeddings become one: the rule for a report embedded as several texts.

A report longer than the text tower's context is embedded as several texts (the BPE windows of
`tokenizers.bpe.evaluation_texts`; the template tokenizer's single whole report is the one-text case). Its
embedding is the mean of the texts' L2-normalised embeddings, L2-normalised again, so every window counts
equally whatever its length. Stored report embeddings (`embeddings.compute.embed_reports`), training's
validation (`training.trainer.embed_reports`) and search queries (`search.query.embed_query_text`) all pool
with `pool_texts`, so a report means the same vector in all three. NumPy only: it sits below all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echo_pipeline.errors import EmbeddingError


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x / ‖x‖`` along ``axis`` in float32; refuses zero or non-finite vectors instead of returning NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=axis, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise EmbeddingError("cannot normalise a zero or non-finite embedding; the model or its input is broken")
    return x / norms


def pool_texts(text_embeddings: np.ndarray, n_texts: Sequence[int]) -> np.ndarray:
    """One unit float32 vector per report from its texts' (T, D) embeddings, reports' texts consecutive.

    Report i owns the next ``n_texts[i]`` rows (each at least 1, summing to T); its vector is the mean of
    those rows after L2-normalising each, L2-normalised again (`l2_normalise` refuses zero rows).
    """
    counts = np.asarray(n_texts, dtype=np.int64)
    rows = np.asarray(text_embeddings, dtype=np.float64)
    if rows.ndim != 2 or counts.ndim != 1 or np.any(counts < 1) or counts.sum() != len(rows):
        raise EmbeddingError(f"pool_texts: {rows.shape} text embeddings do not split into reports of "
                             f"{counts.tolist()[:8]}… texts (each report needs at least one text)")
    if not len(counts):
        return np.zeros((0, rows.shape[1]), np.float32)
    unit = l2_normalise(rows).astype(np.float64)
    # Each report's texts are consecutive rows, so one reduceat sums them all.
    sums = np.add.reduceat(unit, np.concatenate([[0], np.cumsum(counts)[:-1]]), axis=0)
    return l2_normalise(sums / counts[:, None])
