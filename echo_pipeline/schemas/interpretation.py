"""Interpretation tables (echo_pipeline/interpretation; docs/evaluation.md, "Looking inside"), per model variant."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID
from echo_pipeline.schemas.reports import REPORT_LABEL_NAMES, REPORT_LABELS

_MODEL = [
    pa.field("variant", pa.string(), nullable=False),  # bpe | template
    pa.field("model_id", pa.string(), nullable=False),  # the model whose embeddings are shown (joins `lineage`)
]
#: The report labels, typed as in report_labels (null = not stated or no linked report).
_LABELS = [REPORT_LABELS.field(name) for name in REPORT_LABEL_NAMES]

EMBEDDING_UMAP = pa.schema(
    _MODEL
    + [
        pa.field("split", pa.string(), nullable=False),  # test
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("report_id", pa.string()),  # the study's report the labels come from
        pa.field("umap_x", pa.float64(), nullable=False),
        pa.field("umap_y", pa.float64(), nullable=False),
        pa.field("n_neighbors", pa.int64(), nullable=False),  # min(200, n - 1)
        pa.field("min_dist", pa.float64(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
    ]
    + _LABELS
    + [RUN_ID, CODE_VERSION]
)

PROMPT_SALIENCY = pa.schema(
    _MODEL
    + [
        pa.field("task", pa.string(), nullable=False),  # binary task of prompts.yaml (device or chamber)
        pa.field("prompt", pa.string(), nullable=False),  # the prompt text explained
        pa.field("rank_kind", pa.string(), nullable=False),  # highest | lowest (clip score among the test clips)
        pa.field("rank", pa.int64(), nullable=False),  # 1 = the highest (or lowest) score
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),  # cosine(clip embedding, prompt embedding)
        pa.field("frame", pa.int64(), nullable=False),  # the frame explained (index in the masked clip)
        pa.field("frame_similarity", pa.float64(), nullable=False),  # cosine(frame embedding, prompt embedding)
        pa.field("saliency_layer", pa.string(), nullable=False),  # image-tower module the CAM is taken at
        pa.field("image_file", pa.string(), nullable=False),  # the task's PNG, relative to the data root
    ]
    + [RUN_ID, CODE_VERSION]
)

STUDY_REPORTS = pa.schema(
    _MODEL
    + [
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("split", pa.string()),  # train | validation | test (calibration is fitted on validation)
        pa.field("n_clips", pa.int64(), nullable=False),  # A4C clips averaged into the study vector
        pa.field("report_id", pa.string()),  # the study's own report (smallest id), whose labels are `reported`
        pa.field("task", pa.string(), nullable=False),  # task of prompts.yaml
        pa.field("label", pa.string(), nullable=False),  # report_labels column
        pa.field("kind", pa.string(), nullable=False),  # binary | regression
        pa.field("reported", pa.float64()),  # the study report's value (binary: 1 / 0); null = not stated
        pa.field("zero_shot_score", pa.float64()),  # binary: mean cosine to the prompts; regression: the value
        pa.field("zero_shot_probability", pa.float64()),  # Platt-calibrated on the validation split (binary)
        pa.field("knn_score", pa.float64()),  # binary: weighted positive-vote share; regression: weighted mean
        pa.field("knn_probability", pa.float64()),  # Platt-calibrated on the validation split (binary)
        pa.field("evidence_report_ids", pa.list_(pa.string()), nullable=False),  # 3 nearest training reports
        pa.field("evidence_similarities", pa.list_(pa.float64()), nullable=False),  # their cosine similarities
    ]
    + [RUN_ID, CODE_VERSION]
)
