"""The evaluation run: loads a model variant, embeds (or reads the stored embeddings of) the test cohort,
scores it with `echo_pipeline.metrics`, and returns every eval_* table and figure (no Dagster).

- `run`: `evaluate_variant`, one variant end to end (trained, random-init reference, training-mean baseline).
- `cohort`: what an evaluation runs on: the test split's masked clips, their reports and labels.
- `model_embeddings`: stored embeddings of the trained model, on-the-fly ones of the reference model.
- `prompts`, `prompt_sets`: the versioned prompts file, the truth vectors of its tasks, embedded prompt sets.
- `suite`: one model scored on one cohort, from arrays, into the eval_* rows.
- `tables`: results as eval_* rows; `plots`: the figures as PNG bytes; `echonet`: external LVEF validation.
- `knn_reports`, `linear_probe`, `knn_and_probe`: the methods beside zero-shot (`method = knn_reports`: labels
  of the nearest training reports, searched in the variant's `report_index`; `method = linear_probe`: the
  supervised reference on frozen embeddings).

The metrics themselves (ranks, AUC, the regression rule, bootstrap) live one floor down in
`echo_pipeline.metrics`, shared with training's validation.
"""

from echo_pipeline.evaluation.prompts import (
    DEFAULT_PROMPTS_PATH,
    PromptsFile,
    TaskTruth,
    binary_truths,
    load_prompts,
    regression_truths,
    sample_prompt_rows,
)

__all__ = [
    "DEFAULT_PROMPTS_PATH",
    "PromptsFile",
    "TaskTruth",
    "binary_truths",
    "load_prompts",
    "regression_truths",
    "sample_prompt_rows",
]
