"""Evaluation metrics: pure functions over NumPy arrays (no model code, no orchestration).

- `ranks`: cross-modal retrieval ranks, recall@k, MCMRR.
- `classification`: zero-shot prompt scores, ROC AUC, Youden operating point.
- `regression`: the paper's top-20 % median rule for LVEF/PASP, MAE, threshold AUCs, mean baseline.
- `patient_identification`: same-patient AUC and similarity by pair type.
- `bootstrap`: seeded percentile confidence intervals (generic and vectorised AUC).
- `prompts`: the versioned prompts file and the truth vectors of its tasks.
"""

from echo_pipeline.evaluation.bootstrap import BootstrapResult, bootstrap_auc, bootstrap_ci, weighted_auc
from echo_pipeline.evaluation.classification import (
    PAPER_FRAME_INDICES,
    OperatingPoint,
    binary_metrics,
    roc_auc,
    youden_operating_point,
    zero_shot_scores,
)
from echo_pipeline.evaluation.patient_identification import (
    PairSample,
    metrics_from_pairs,
    pair_similarities,
    patient_identification_metrics,
    sample_pairs,
)
from echo_pipeline.evaluation.prompts import (
    DEFAULT_PROMPTS_PATH,
    PromptsFile,
    TaskTruth,
    binary_truths,
    load_prompts,
    regression_truths,
    sample_prompt_rows,
)
from echo_pipeline.evaluation.ranks import (
    mcmrr,
    recall_at_k,
    retrieval_metrics,
    retrieval_metrics_from_ranks,
    retrieval_ranks,
)
from echo_pipeline.evaluation.regression import (
    LVEF_THRESHOLDS,
    mean_absolute_error,
    predict_from_embeddings,
    predict_from_similarities,
    regression_metrics,
    top_fraction_count,
    training_mean_baseline,
)

__all__ = [
    "DEFAULT_PROMPTS_PATH",
    "LVEF_THRESHOLDS",
    "PAPER_FRAME_INDICES",
    "BootstrapResult",
    "OperatingPoint",
    "PairSample",
    "PromptsFile",
    "TaskTruth",
    "binary_metrics",
    "binary_truths",
    "bootstrap_auc",
    "bootstrap_ci",
    "load_prompts",
    "mcmrr",
    "mean_absolute_error",
    "metrics_from_pairs",
    "pair_similarities",
    "patient_identification_metrics",
    "predict_from_embeddings",
    "predict_from_similarities",
    "recall_at_k",
    "regression_metrics",
    "regression_truths",
    "retrieval_metrics",
    "retrieval_metrics_from_ranks",
    "retrieval_ranks",
    "roc_auc",
    "sample_pairs",
    "sample_prompt_rows",
    "top_fraction_count",
    "training_mean_baseline",
    "weighted_auc",
    "youden_operating_point",
    "zero_shot_scores",
]
