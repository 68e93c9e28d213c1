"""Stage 8 tables (echo_pipeline/evaluation; docs/evaluation.md): the eval_* long tables."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID

# Long tables: one row per metric, with its 95 % bootstrap CI. Partitioned by model variant (bpe | template).
_EVAL_LINEAGE = [
    pa.field("model_id", pa.string(), nullable=False),  # trained: the record's model id; untrained: weights hash
    pa.field("checkpoint_sha256", pa.string(), nullable=False),  # the evaluated trained checkpoint (references too)
    pa.field("model_kind", pa.string(), nullable=False),  # trained | pretrained | untrained | training_mean
    pa.field("variant", pa.string(), nullable=False),  # bpe | template | a pretrained model's name
    pa.field("dataset", pa.string(), nullable=False),  # internal | echonet_dynamic
    pa.field("split", pa.string(), nullable=False),  # test
    pa.field("model_source", pa.string(), nullable=False),  # trained | pretrained:<name> | untrained | training_mean
    pa.field("preprocessing", pa.string(), nullable=False),  # model | published_crop (frame preprocessing)
]
#: clip: scored per clip (retrieval: one random clip per study, the paper's primary row); study: per study
#: embedding (the normalised mean of its A4C clips, as in `study_embeddings`).
_EVAL_LEVEL = [pa.field("level", pa.string(), nullable=False)]
_EVAL_METRIC = [
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64()),  # NaN when undefined (e.g. an AUC with one class)
    pa.field("ci_low", pa.float64()),  # 95 % percentile bootstrap; null for descriptive rows
    pa.field("ci_high", pa.float64()),
]
_EVAL_BOOTSTRAP = [pa.field("seed", pa.int64(), nullable=False), pa.field("n_resamples", pa.int64(), nullable=False)]
_EVAL_PROMPTS = [
    pa.field("task", pa.string(), nullable=False),  # task name in prompts.yaml
    pa.field("label", pa.string(), nullable=False),  # report_labels column the truth comes from
    pa.field("prompt_strategy", pa.string(), nullable=False),  # base_prompts | sampled_reports | base_prompts_fallback | training_mean
    pa.field("is_primary", pa.bool_(), nullable=False),  # the variant's headline strategy (used by eval_summary)
    pa.field("n_prompts", pa.int64(), nullable=False),  # texts embedded as prompts (0 for training_mean)
]
#: How a row's predictions were made: zero_shot (prompts) | knn_reports (nearest training reports) |
#: linear_probe (fitted on training embeddings) | training_mean (the constant baseline).
_EVAL_METHOD = pa.field("method", pa.string(), nullable=False)
_EVAL_PROMPTS_FILE = [pa.field("prompts_version", pa.string(), nullable=False),
                      pa.field("prompts_sha256", pa.string(), nullable=False)]

EVAL_RETRIEVAL = pa.schema(
    _EVAL_LINEAGE
    + _EVAL_LEVEL
    + [pa.field("direction", pa.string(), nullable=False)]  # image_to_report | report_to_image | both
    + _EVAL_METRIC
    + [
        pa.field("chance", pa.float64(), nullable=False),  # expected value for a random ranking
        pa.field("n", pa.int64(), nullable=False),  # studies = queries = candidates
    ]
    + _EVAL_BOOTSTRAP
    + [RUN_ID, CODE_VERSION]
)

EVAL_CLASSIFICATION = pa.schema(
    _EVAL_LINEAGE
    + _EVAL_LEVEL
    + _EVAL_PROMPTS
    + [_EVAL_METHOD, pa.field("score_definition", pa.string(), nullable=False)]
    + _EVAL_METRIC
    + [
        pa.field("n", pa.int64(), nullable=False),  # clips with a known label
        pa.field("n_studies", pa.int64(), nullable=False),
        pa.field("n_positive", pa.int64(), nullable=False),
    ]
    + _EVAL_PROMPTS_FILE
    + _EVAL_BOOTSTRAP
    + [RUN_ID, CODE_VERSION]
)

EVAL_REGRESSION = pa.schema(
    _EVAL_LINEAGE
    + _EVAL_LEVEL
    + _EVAL_PROMPTS
    + [_EVAL_METHOD, pa.field("method_definition", pa.string(), nullable=False)]  # how, in words
    + _EVAL_METRIC
    + [
        pa.field("n", pa.int64(), nullable=False),  # clips (internal) or videos (EchoNet) with a known value
        pa.field("n_studies", pa.int64(), nullable=False),
    ]
    + _EVAL_PROMPTS_FILE
    + _EVAL_BOOTSTRAP
    + [RUN_ID, CODE_VERSION]
)

EVAL_PATIENT_IDENTIFICATION = pa.schema(
    _EVAL_LINEAGE
    + _EVAL_LEVEL
    + _EVAL_METRIC
    + [
        pa.field("n", pa.int64(), nullable=False),  # pairs behind the row
        pa.field("n_clips", pa.int64(), nullable=False),
        pa.field("n_patients", pa.int64(), nullable=False),
    ]
    + _EVAL_BOOTSTRAP
    + [RUN_ID, CODE_VERSION]
)

_SUMMARY_METRICS = ("mcmrr", "lvef_mae", "pasp_mae", "tavr_auc", "mitraclip_auc", "pacemaker_auc")
EVAL_SUMMARY = pa.schema(
    _EVAL_LINEAGE
    + [
        pa.field("prompt_strategy", pa.string(), nullable=False),  # the variant's primary strategy
        _EVAL_METHOD,
        pa.field("n", pa.int64(), nullable=False),  # studies in retrieval (internal) or videos (EchoNet)
    ]
    + [pa.field(f"{name}{suffix}", pa.float64()) for name in _SUMMARY_METRICS for suffix in ("", "_ci_low", "_ci_high")]
    + [RUN_ID, CODE_VERSION]
)
