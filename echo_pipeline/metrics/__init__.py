"""Metrics: pure functions over NumPy arrays (no model, no files, no orchestration).

The bottom of the model-side ladder: `training/` (validation MCMRR) and `evaluation/` (the eval_* tables)
both score with these functions, so validation and the test tables count ranks and ties the same way. This
package imports NumPy, pandas and `echo_pipeline.errors` only; tests/test_layering.py holds it to that.

- `ranks`: cross-modal retrieval ranks, recall@k, MCMRR.
- `classification`: zero-shot prompt scores, ROC AUC, Youden operating point.
- `regression`: the paper's top-20 % median rule for LVEF/PASP, MAE, threshold AUCs, mean baseline.
- `patient_identification`: same-patient AUC and similarity by pair type.
- `bootstrap`: seeded percentile confidence intervals (generic and vectorised AUC).
"""

from echo_pipeline.metrics.bootstrap import BootstrapResult, bootstrap_auc, bootstrap_ci, weighted_auc
from echo_pipeline.metrics.classification import (
    PAPER_FRAME_INDICES,
    OperatingPoint,
    binary_metrics,
    roc_auc,
    youden_operating_point,
    zero_shot_scores,
)
from echo_pipeline.metrics.patient_identification import (
    PairSample,
    metrics_from_pairs,
    pair_similarities,
    patient_identification_metrics,
    sample_pairs,
)
from echo_pipeline.metrics.ranks import (
    mcmrr,
    recall_at_k,
    retrieval_metrics,
    retrieval_metrics_from_ranks,
    retrieval_ranks,
)
from echo_pipeline.metrics.regression import (
    LVEF_THRESHOLDS,
    mean_absolute_error,
    predict_from_embeddings,
    predict_from_similarities,
    regression_metrics,
    top_fraction_count,
    training_mean_baseline,
)

__all__ = [
    "LVEF_THRESHOLDS",
    "PAPER_FRAME_INDICES",
    "BootstrapResult",
    "OperatingPoint",
    "PairSample",
    "binary_metrics",
    "bootstrap_auc",
    "bootstrap_ci",
    "mcmrr",
    "mean_absolute_error",
    "metrics_from_pairs",
    "pair_similarities",
    "patient_identification_metrics",
    "predict_from_embeddings",
    "predict_from_similarities",
    "recall_at_k",
    "regression_metrics",
    "retrieval_metrics",
    "retrieval_metrics_from_ranks",
    "retrieval_ranks",
    "roc_auc",
    "sample_pairs",
    "top_fraction_count",
    "training_mean_baseline",
    "weighted_auc",
    "youden_operating_point",
    "zero_shot_scores",
]
