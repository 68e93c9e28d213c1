"""Patient identification: is the cosine similarity of two clips' embeddings a score for "same patient"?

Pairs: when the data hold at most ``n_pairs`` unordered pairs, all of them are used. Otherwise every
same-patient pair is enumerated (randomly thinned to ``n_pairs`` if there are more) and ``n_pairs``
different-patient pairs are drawn uniformly at random (with replacement). Pure random pairs would almost
never hit the same patient on a large test set (≈ 1 in the number of patients), leaving the positive class
nearly empty; enriching it does not bias the AUC, which does not depend on the class ratio, nor the
per-type means. Everything is seeded.

Pair types: different patients; same patient, other study date; same patient, same day; same patient with
a missing study date (counted as "same patient" in the AUC, left out of the date-split means).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from echo_pipeline.errors import EvaluationError
from echo_pipeline.metrics.classification import roc_auc

PAIR_DIFFERENT_PATIENT = 0
PAIR_SAME_PATIENT_OTHER_DATE = 1
PAIR_SAME_PATIENT_SAME_DAY = 2
PAIR_SAME_PATIENT_UNKNOWN_DATE = 3
PAIR_TYPE_NAMES = {
    PAIR_DIFFERENT_PATIENT: "different_patient",
    PAIR_SAME_PATIENT_OTHER_DATE: "same_patient_other_date",
    PAIR_SAME_PATIENT_SAME_DAY: "same_patient_same_day",
    PAIR_SAME_PATIENT_UNKNOWN_DATE: "same_patient_unknown_date",
}
DEFAULT_N_PAIRS = 100_000
# Rejection sampling of different-patient pairs gives up after this many batches (only reachable when one
# patient owns nearly every clip).
_MAX_DRAW_ROUNDS = 100


@dataclass(frozen=True)
class PairSample:
    """Row-index pairs (``first < second``) and their pair type codes (``PAIR_*``)."""

    first: np.ndarray
    second: np.ndarray
    pair_type: np.ndarray


def sample_pairs(
    patient_ids: np.ndarray, study_dates: np.ndarray, *, n_pairs: int = DEFAULT_N_PAIRS, seed: int = 0
) -> PairSample:
    """Choose clip pairs as described in the module docstring. Dates are compared at day resolution."""
    ids = pd.Series(np.asarray(patient_ids, dtype=object))
    if ids.isna().any():
        raise EvaluationError("patient_ids contain missing values; drop clips without a patient key first.")
    codes = pd.factorize(ids)[0].astype(np.int64)
    days = pd.to_datetime(pd.Series(np.asarray(study_dates, dtype=object))).to_numpy().astype("datetime64[D]")
    n = codes.size
    if n_pairs < 1:
        raise EvaluationError(f"n_pairs must be >= 1, got {n_pairs}.")
    if days.size != n:
        raise EvaluationError(f"study_dates ({days.size}) and patient_ids ({n}) must have the same length.")
    rng = np.random.default_rng(seed)
    if n * (n - 1) // 2 <= n_pairs:
        first, second = np.triu_indices(n, 1)
    else:
        s_first, s_second = _same_patient_pairs(codes, n_pairs, rng)
        d_first, d_second = _different_patient_pairs(codes, n_pairs, rng)
        first, second = np.r_[s_first, d_first], np.r_[s_second, d_second]
    first, second = first.astype(np.int64), second.astype(np.int64)
    return PairSample(first, second, _pair_types(codes, days, first, second))


def _same_patient_pairs(
    codes: np.ndarray, limit: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    firsts, seconds = [], []
    for code in np.flatnonzero(sizes >= 2):
        rows = order[starts[code] : starts[code] + sizes[code]]
        a, b = np.triu_indices(rows.size, 1)
        firsts.append(np.minimum(rows[a], rows[b]))
        seconds.append(np.maximum(rows[a], rows[b]))
    if not firsts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    if first.size > limit:
        keep = np.sort(rng.choice(first.size, size=limit, replace=False))
        first, second = first[keep], second[keep]
    return first, second


def _different_patient_pairs(
    codes: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n = codes.size
    firsts, seconds, have = [], [], 0
    for _ in range(_MAX_DRAW_ROUNDS):
        if have >= count:
            break
        i = rng.integers(0, n, count)
        j = rng.integers(0, n - 1, count)
        j = j + (j >= i)  # uniform over the other n - 1 rows
        keep = codes[i] != codes[j]
        firsts.append(np.minimum(i, j)[keep])
        seconds.append(np.maximum(i, j)[keep])
        have += int(keep.sum())
    return np.concatenate(firsts)[:count], np.concatenate(seconds)[:count]


def _pair_types(codes: np.ndarray, days: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    same_patient = codes[first] == codes[second]
    known = ~(np.isnat(days[first]) | np.isnat(days[second]))
    same_day = known & (days[first] == days[second])
    types = np.full(first.size, PAIR_DIFFERENT_PATIENT, dtype=np.int8)
    types[same_patient & ~known] = PAIR_SAME_PATIENT_UNKNOWN_DATE
    types[same_patient & known & ~same_day] = PAIR_SAME_PATIENT_OTHER_DATE
    types[same_patient & same_day] = PAIR_SAME_PATIENT_SAME_DAY
    return types


def pair_similarities(embeddings: np.ndarray, pairs: PairSample) -> np.ndarray:
    """Cosine similarity (dot product of L2-normalised rows) of each pair, float64."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise EvaluationError(f"embeddings must be (N, D), got shape {x.shape}.")
    return np.einsum("ij,ij->i", x[pairs.first], x[pairs.second])


def metrics_from_pairs(similarities: np.ndarray, pair_type: np.ndarray) -> dict[str, float]:
    """``auc_same_patient`` (same vs different patient), and per pair type its mean similarity and count."""
    sims = np.asarray(similarities, dtype=np.float64)
    types = np.asarray(pair_type)
    out = {"auc_same_patient": roc_auc(types != PAIR_DIFFERENT_PATIENT, sims)}
    for code, name in PAIR_TYPE_NAMES.items():
        selected = sims[types == code]
        out[f"mean_similarity_{name}"] = float(selected.mean()) if selected.size else float("nan")
        out[f"n_pairs_{name}"] = float(selected.size)
    return out


def patient_identification_metrics(
    embeddings: np.ndarray,
    patient_ids: np.ndarray,
    study_dates: np.ndarray,
    *,
    n_pairs: int = DEFAULT_N_PAIRS,
    seed: int = 0,
) -> dict[str, float]:
    """Sample pairs with `sample_pairs` and summarise them with `metrics_from_pairs`."""
    x = np.asarray(embeddings)
    if len(x) != len(patient_ids):
        raise EvaluationError(f"embeddings ({len(x)}) and patient_ids ({len(patient_ids)}) differ in length.")
    pairs = sample_pairs(patient_ids, study_dates, n_pairs=n_pairs, seed=seed)
    return metrics_from_pairs(pair_similarities(x, pairs), pairs.pair_type)
