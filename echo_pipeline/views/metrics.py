"""Confusion matrices and per-class precision / recall for the view classifier, and their markdown form."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], classes: int) -> np.ndarray:
    """(classes, classes) int64 counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def precision_recall(matrix: np.ndarray, index: int) -> tuple[float | None, float | None]:
    """(precision, recall) of class ``index``; None where the denominator is zero (no predictions / no truth)."""
    predicted, actual, hit = matrix[:, index].sum(), matrix[index, :].sum(), matrix[index, index]
    return (float(hit / predicted) if predicted else None, float(hit / actual) if actual else None)


def summary(matrix: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall and the matrix itself, JSON-ready."""
    total = int(matrix.sum())
    per_class = {}
    for i, name in enumerate(classes):
        precision, recall = precision_recall(matrix, i)
        per_class[name] = {"precision": precision, "recall": recall, "support": int(matrix[i].sum())}
    return {
        "clips": total,
        "accuracy": float(np.trace(matrix) / total) if total else None,
        "per_class": per_class,
        "confusion_matrix": {"classes": list(classes), "rows_true_columns_predicted": matrix.tolist()},
    }


def confusion_markdown(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """A markdown table: one row per true class, one column per predicted class."""
    header = "| true \\ predicted | " + " | ".join(classes) + " |"
    rule = "|---|" + "---:|" * len(classes)
    rows = [f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |" for name, row in zip(classes, matrix)]
    return "\n".join([header, rule, *rows])
