"""Serial change: do two studies of one patient look less alike when the heart changed more between them?

Every unordered pair of a patient's studies is a pair; its change is the absolute difference of the reported
LVEF and its score the cosine similarity of the two study embeddings. Spearman's ρ of (change, similarity)
should be negative for a model that sees function. NumPy only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def same_patient_pairs(patient_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) row indices of every unordered pair of rows with the same (non-missing) patient key."""
    rows_of: dict = {}
    for row, key in enumerate(np.asarray(patient_keys, dtype=object)):
        if key is not None and not pd.isna(key):
            rows_of.setdefault(key, []).append(row)
    first, second = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for rows in rows_of.values():
        a, b = np.triu_indices(len(rows), 1)
        first.append(np.asarray(rows, np.int64)[a])
        second.append(np.asarray(rows, np.int64)[b])
    return np.concatenate(first), np.concatenate(second)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 pairs or a constant side."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 3:
        return float("nan")
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
