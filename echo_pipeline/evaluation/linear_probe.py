"""The supervised reference: a linear model on frozen image embeddings, fitted on the training split.

What a label costs to learn from the embedding when labels are available: scikit-learn's
`LogisticRegression` (binary, L2, C = 1, balanced class weights, so a rare device is not ignored) and
`Ridge` (regression, alpha = 1) on the clip embeddings of the training split's clips, each clip carrying its
study report's labels. Clips whose report does not state a label are left out of that label's fit. A task
whose training clips hold one class only (or fewer than ``MIN_TRAIN`` clips) is not fitted: no row, rather
than a constant predictor dressed up as a model.
"""

from __future__ import annotations

import numpy as np

#: Fewest labelled training clips a probe is fitted on.
MIN_TRAIN = 4
C = 1.0
ALPHA = 1.0


def probe_binary(train_x: np.ndarray, train_truth: np.ndarray, test_x: np.ndarray) -> np.ndarray | None:
    """P(positive) of every test row, or None when the training rows hold one class or too few rows."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(train_truth, dtype=bool)
    if y.size < MIN_TRAIN or y.all() or not y.any():
        return None
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    model.fit(np.asarray(train_x, np.float64), y)
    return model.predict_proba(np.asarray(test_x, np.float64))[:, 1]


def probe_regression(train_x: np.ndarray, train_values: np.ndarray, test_x: np.ndarray) -> np.ndarray | None:
    """Predicted value of every test row, or None when there are too few training rows."""
    from sklearn.linear_model import Ridge

    y = np.asarray(train_values, np.float64)
    if y.size < MIN_TRAIN:
        return None
    return Ridge(alpha=ALPHA).fit(np.asarray(train_x, np.float64), y).predict(np.asarray(test_x, np.float64))
