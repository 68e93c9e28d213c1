"""Percentile bootstrap confidence intervals (paper: 95 %, 1,000 resamples), seeded and deterministic.

The unit of analysis is resampled with replacement: rows by default, or whole groups (e.g. all clips of a
study) when ``groups`` is given. Resample b draws ``rng.integers(0, n_units, n_units)`` from
``numpy.random.default_rng(seed)``, in order b = 0, 1, …; `bootstrap_ci` (any metric, a Python loop) and
`bootstrap_auc` (vectorised AUC) therefore see identical resamples for the same seed and give identical
intervals. Resamples where the metric is undefined (NaN, e.g. only one class drawn) are left out of the
percentiles and counted in ``n_valid``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from echo_pipeline.errors import EvaluationError
from echo_pipeline.metrics.classification import as_score_vector, as_truth_vector, roc_auc

N_RESAMPLES = 1000
CONFIDENCE = 0.95
#: Upper bound on weight-matrix cells held at once by `bootstrap_auc` (~160 MB of float64).
_MAX_WEIGHT_CELLS = 20_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate on the full data and the percentile interval of the resampled estimates."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    n_valid: int


class _Units:
    """Maps resampled units (rows or groups) back to row indices."""

    def __init__(self, n_rows: int, groups: np.ndarray | None):
        if groups is None:
            self.n_units = n_rows
            self.row_unit = None
            return
        g = np.asarray(groups)
        if g.shape != (n_rows,):
            raise EvaluationError(f"groups must have one entry per row ({n_rows}), got shape {g.shape}.")
        _, self.row_unit = np.unique(g, return_inverse=True)
        self.n_units = int(self.row_unit.max()) + 1 if n_rows else 0
        self.rows_by_unit = np.argsort(self.row_unit, kind="stable")
        self.unit_size = np.bincount(self.row_unit, minlength=self.n_units)
        self.unit_start = np.r_[0, np.cumsum(self.unit_size)[:-1]]

    def rows(self, drawn: np.ndarray) -> np.ndarray:
        """Row indices of the drawn units, each unit contributing all of its rows."""
        if self.row_unit is None:
            return drawn
        sizes = self.unit_size[drawn]
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return self.rows_by_unit[np.repeat(self.unit_start[drawn], sizes) + offsets]

    def row_weights(self, drawn_block: np.ndarray) -> np.ndarray:
        """(B, n_rows) multiplicity of every row in each of B resamples."""
        b = drawn_block.shape[0]
        flat = (drawn_block + self.n_units * np.arange(b)[:, None]).ravel()
        counts = np.bincount(flat, minlength=b * self.n_units).reshape(b, self.n_units)
        return counts if self.row_unit is None else counts[:, self.row_unit]


def _draws(n_units: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    if n_resamples < 1:
        raise EvaluationError(f"n_resamples must be >= 1, got {n_resamples}.")
    return _draw_stream(n_units, n_resamples, seed)


def _draw_stream(n_units: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield rng.integers(0, n_units, n_units)


def _result(estimate: float, samples: np.ndarray, confidence: float) -> BootstrapResult:
    if not 0.0 < confidence < 1.0:
        raise EvaluationError(f"confidence must be between 0 and 1, got {confidence}.")
    valid = samples[np.isfinite(samples)]
    alpha = (1.0 - confidence) / 2.0
    if valid.size:
        low, high = np.percentile(valid, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    else:
        low = high = float("nan")
    return BootstrapResult(float(estimate), float(low), float(high), confidence, samples.size, valid.size)


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: np.ndarray,
    groups: np.ndarray | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> BootstrapResult:
    """Percentile CI of ``metric(*arrays)`` by resampling rows (or ``groups``) with replacement.

    Every array is indexed along its first axis, which must have the same length for all of them.
    ``metric`` must return a float; NaN marks an undefined resample.
    """
    if not arrays:
        raise EvaluationError("bootstrap_ci needs at least one array to resample.")
    arrs = [np.asarray(a) for a in arrays]
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise EvaluationError(f"all arrays must have the same length, got {[len(a) for a in arrs]}.")
    if n == 0:
        raise EvaluationError("bootstrap_ci: nothing to resample (zero rows).")
    units = _Units(n, groups)
    estimate = float(metric(*arrs))
    samples = np.empty(n_resamples, dtype=np.float64)
    for b, drawn in enumerate(_draws(units.n_units, n_resamples, seed)):
        rows = units.rows(drawn)
        samples[b] = metric(*(a[rows] for a in arrs))
    return _result(estimate, samples, confidence)


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Index of each score's tie group in ascending score order, and the number of groups."""
    order = np.argsort(scores, kind="stable")
    sorted_s = scores[order]
    group = np.empty(scores.size, dtype=np.int64)
    group[order] = np.cumsum(np.r_[True, sorted_s[1:] != sorted_s[:-1]]) - 1
    return group, int(group.max()) + 1 if scores.size else 0


def _binned(keys: np.ndarray, n_bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    """(B, n_bins) sums of ``weights`` (or counts) of a (B, m) key matrix, one bincount for all rows."""
    b = keys.shape[0]
    flat = (keys + n_bins * np.arange(b)[:, None]).ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    return np.bincount(flat, weights=w, minlength=b * n_bins).reshape(b, n_bins)


def _auc_from_bins(bins: np.ndarray, n_groups: int) -> np.ndarray:
    """AUC per row of (B, 2·G) bins: negatives' tie groups in [:G], positives' in [G:], ascending score."""
    neg = bins[:, :n_groups].astype(np.float64)
    pos = bins[:, n_groups:].astype(np.float64)
    neg_below = np.cumsum(neg, axis=1) - neg  # negatives scoring strictly lower than each tie group
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    denom = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, wins / denom, np.nan)


def weighted_auc(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann–Whitney AUC (ties = 0.5) for each row of a (B, n) matrix of row multiplicities.

    Equals `roc_auc` on the data with row i repeated ``weights[b, i]`` times. Cost O(B·n) after one sort.
    """
    t = as_truth_vector(truth)
    s = as_score_vector(scores, t.size)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != t.size:
        raise EvaluationError(f"weights must be (B, {t.size}), got {w.shape}.")
    group, n_groups = _tie_groups(s)
    keys = np.broadcast_to(group + n_groups * t, w.shape)
    return _auc_from_bins(_binned(keys, 2 * n_groups, w), n_groups)


def bootstrap_auc(
    truth: np.ndarray,
    scores: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> BootstrapResult:
    """Percentile CI of the ROC AUC, vectorised over resamples; same resamples as `bootstrap_ci`.

    One sort of the scores up front; each resample is then a histogram of (tie group, class) counts, so
    the cost is O(n_resamples · n) with no per-resample sort.
    """
    t = as_truth_vector(truth)
    s = as_score_vector(scores, t.size)
    if t.size == 0:
        raise EvaluationError("bootstrap_auc: nothing to resample (zero rows).")
    units = _Units(t.size, groups)
    group, n_groups = _tie_groups(s)
    row_key = group + n_groups * t
    block = max(1, _MAX_WEIGHT_CELLS // t.size)
    draws = _draws(units.n_units, n_resamples, seed)
    samples = []
    for start in range(0, n_resamples, block):
        drawn = np.stack([next(draws) for _ in range(min(block, n_resamples - start))])
        if groups is None:
            bins = _binned(row_key[drawn], 2 * n_groups)
        else:
            weights = units.row_weights(drawn)
            bins = _binned(np.broadcast_to(row_key, weights.shape), 2 * n_groups, weights)
        samples.append(_auc_from_bins(bins, n_groups))
    return _result(roc_auc(t, s), np.concatenate(samples), confidence)
