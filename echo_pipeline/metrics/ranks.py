"""Cross-modal retrieval ranks (image→report, report→image), recall@k and MCMRR.

Row i of the query matrix matches row i of the candidate matrix. The rank of the true candidate is
``1 + (number of candidates whose cosine similarity to the query is strictly higher than the true one's)``.

Tie rule: candidates that score *exactly equal* to the true candidate are not counted, so ties count in
the true item's favour (rank 1 if nothing scores strictly higher). The result is a deterministic function of
the similarity values: no sort, no tie-breaking by position. The true similarity is read from the same
matrix product as the competitors, so the true pair never outranks itself through rounding. (BLAS libraries
may round the same dot product differently on different hardware; candidates within one ulp of the true
score can then flip between "tie" and "higher" across machines.)

Ranks come from chunked matrix products: each chunk of queries is scored against all candidates and the
strictly-higher scores are counted; nothing is sorted and memory stays at ``chunk_rows × N`` floats.
"""

from __future__ import annotations

import numpy as np

from echo_pipeline.errors import EvaluationError

#: Queries scored per matrix product; 1,024 × 21,484 float32 ≈ 88 MB for the paper's test set.
DEFAULT_CHUNK_ROWS = 1024
#: Allowed deviation of a row's L2 norm from 1 before the embeddings are refused as unnormalised.
NORM_TOLERANCE = 1e-3


def check_unit_norm(embeddings: np.ndarray, name: str, *, atol: float = NORM_TOLERANCE) -> np.ndarray:
    """Return ``embeddings`` as a floating 2-D array after checking every row has unit L2 norm.

    Raises EvaluationError naming ``name`` when the array is not 2-D, holds non-finite values or has a row
    whose norm differs from 1 by more than ``atol`` (cosine similarity is a plain dot product only then).
    """
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise EvaluationError(f"{name}: expected a 2-D (N, D) embedding array, got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise EvaluationError(f"{name}: embeddings contain NaN or infinite values; re-embed those rows.")
    norms = np.linalg.norm(x, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > atol)
    if bad.size:
        raise EvaluationError(
            f"{name}: {bad.size} of {len(x)} rows are not L2-normalised (row {bad[0]} has norm "
            f"{norms[bad[0]]:.4f}); divide each row by its norm before evaluating."
        )
    return x


def retrieval_ranks(
    queries: np.ndarray, candidates: np.ndarray, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> np.ndarray:
    """Rank (1 = best) of candidate i among all candidates for query i, for every i.

    ``queries`` and ``candidates`` are L2-normalised (N, D) arrays; row i of each belongs to the same study.
    Returns an int64 array of length N. Ties with the true candidate count in its favour (module docstring).
    """
    q = check_unit_norm(queries, "queries")
    c = check_unit_norm(candidates, "candidates")
    if q.shape != c.shape:
        raise EvaluationError(
            f"queries {q.shape} and candidates {c.shape} must have the same shape: row i of each is one pair."
        )
    if chunk_rows < 1:
        raise EvaluationError(f"chunk_rows must be >= 1, got {chunk_rows}.")
    dtype = np.result_type(q.dtype, c.dtype)
    q = q.astype(dtype, copy=False)
    c_t = np.ascontiguousarray(c.T, dtype=dtype)
    n = q.shape[0]
    ranks = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        sims = q[start:stop] @ c_t
        local = np.arange(stop - start)
        true_scores = sims[local, start + local]
        ranks[start:stop] = 1 + np.count_nonzero(sims > true_scores[:, None], axis=1)
    return ranks


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of queries whose true candidate has rank <= k."""
    r = np.asarray(ranks)
    if r.size == 0:
        return float("nan")
    return float(np.mean(r <= k))


def mcmrr(image_to_report_ranks: np.ndarray, report_to_image_ranks: np.ndarray) -> float:
    """Mean cross-modal retrieval rank: the mean of the image→report and report→image mean ranks."""
    return float((np.mean(image_to_report_ranks) + np.mean(report_to_image_ranks)) / 2.0)


def rank_summary(
    ranks: np.ndarray, ks: tuple[int, ...] = (1, 5, 10), *, prefix: str = ""
) -> dict[str, float]:
    """``{prefix}mean_rank``, ``{prefix}median_rank`` and ``{prefix}recall_at_{k}`` for each k."""
    r = np.asarray(ranks)
    out = {f"{prefix}mean_rank": float(np.mean(r)), f"{prefix}median_rank": float(np.median(r))}
    for k in ks:
        out[f"{prefix}recall_at_{k}"] = recall_at_k(r, k)
    return out


def retrieval_metrics_from_ranks(
    image_to_report_ranks: np.ndarray, report_to_image_ranks: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """Both directions' rank summaries plus ``mcmrr`` and ``n`` (the candidate pool size)."""
    out: dict[str, float] = {"n": float(len(image_to_report_ranks))}
    out.update(rank_summary(image_to_report_ranks, ks, prefix="image_to_report_"))
    out.update(rank_summary(report_to_image_ranks, ks, prefix="report_to_image_"))
    out["mcmrr"] = mcmrr(image_to_report_ranks, report_to_image_ranks)
    return out


def retrieval_metrics(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    ks: tuple[int, ...] = (1, 5, 10),
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, float]:
    """Retrieval metrics for paired (N, D) image and report embeddings (one pair per study).

    Keys: ``n``, ``image_to_report_{mean_rank,median_rank,recall_at_k}``, the same for ``report_to_image_``,
    and ``mcmrr``. For confidence intervals, compute the two rank vectors with `retrieval_ranks` and
    bootstrap `mcmrr` over them (the candidate pool stays the full test set).
    """
    i2t = retrieval_ranks(image_embeddings, text_embeddings, chunk_rows=chunk_rows)
    t2i = retrieval_ranks(text_embeddings, image_embeddings, chunk_rows=chunk_rows)
    return retrieval_metrics_from_ranks(i2t, t2i, ks)
