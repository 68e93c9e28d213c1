"""Studies over time (echo_pipeline/studies; docs/evaluation.md): study embeddings, procedure events, the
tables that follow studies of one patient across time, and the subgroup table of the evaluation."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID

#: One row per study and model: the normalised mean of the study's embedded A4C clips. Partitioned by model
#: variant (bpe | template). Studies are few next to clips, so the vector sits in the row (no .npy chunks).
STUDY_EMBEDDINGS = pa.schema(
    [
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),  # the model whose clip embeddings were averaged
        pa.field("variant", pa.string(), nullable=False),  # bpe | template
        pa.field("n_clips", pa.int32(), nullable=False),  # A4C clips averaged (every embedded one of the study)
        pa.field("embedding_dim", pa.int32(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),  # L2-normalised
        RUN_ID,
        CODE_VERSION,
    ]
)

#: The procedure-events file, validated (echo_pipeline/studies/events.py): one row per kept event.
PROCEDURE_EVENTS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),  # evt_ + hash of (patient_key, procedure, event_date)
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),  # 0-based data row, header excluded
        pa.field("patient_key", pa.string(), nullable=False),  # keyed hash of the patient id, never the raw id
        pa.field("procedure", pa.string(), nullable=False),  # heart_transplant | cardiac_surgery | tavr | …
        pa.field("event_date", pa.date32(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

#: Event rows that cannot be used, with the reason (one row per rejected input row).
EVENT_QUARANTINE = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("line", pa.int64()),  # first line of the row in a CSV file (1-based); null for Parquet
        pa.field("reason", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

#: Clinical change (docs/evaluation.md): per scored study its similarity to the patient's earliest study around
#: a procedure, and per procedure the before/after AUC. Long table; partitioned by model variant.
EVAL_CLINICAL_CHANGE = pa.schema(
    [
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("checkpoint_sha256", pa.string(), nullable=False),
        pa.field("model_kind", pa.string(), nullable=False),  # trained | untrained
        pa.field("variant", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # patients analysed: test (default) | all
        pa.field("metric", pa.string(), nullable=False),  # similarity_to_earliest | auc_before_after
        pa.field("level", pa.string(), nullable=False),  # study (study embeddings) | clip (mean over clip pairs)
        pa.field("procedure", pa.string(), nullable=False),  # the event's procedure; "all" for the pooled AUC
        pa.field("event_id", pa.string()),  # procedure_events.event_id (similarity rows)
        pa.field("patient_key", pa.string()),
        pa.field("study_instance_uid", pa.string()),  # the scored study (similarity rows)
        pa.field("reference_study_uid", pa.string()),  # the patient's earliest study in the window
        pa.field("days_from_event", pa.int32()),  # study date − event date (similarity rows)
        pa.field("after_event", pa.bool_()),
        pa.field("value", pa.float64()),  # cosine similarity, or the AUC (after = less similar)
        pa.field("ci_low", pa.float64()),  # 95 % bootstrap by patient (AUC rows)
        pa.field("ci_high", pa.float64()),
        pa.field("n_before", pa.int64(), nullable=False),  # scored studies before / after the event behind the row
        pa.field("n_after", pa.int64(), nullable=False),
        pa.field("n_patients", pa.int64(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("n_resamples", pa.int64(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

#: Table 2's metrics per subgroup of the test split (echo_pipeline/evaluation/subgroups.py); one row per
#: (model, dimension, group, metric); partitioned by model variant.
EVAL_SUBGROUPS = pa.schema(
    [
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("checkpoint_sha256", pa.string(), nullable=False),
        pa.field("model_kind", pa.string(), nullable=False),  # trained | untrained
        pa.field("variant", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),  # internal
        pa.field("split", pa.string(), nullable=False),  # test
        pa.field("dimension", pa.string(), nullable=False),  # age_band | sex | manufacturer | image_quality
        pa.field("subgroup", pa.string(), nullable=False),  # e.g. "60-69", "F", "Echolux", "low"; "unknown"
        pa.field("metric", pa.string(), nullable=False),  # mcmrr | lvef_mae | pasp_mae | tavr_auc | …
        pa.field("value", pa.float64()),  # null when too small or undefined in the group
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("n", pa.int64(), nullable=False),  # clips in the group
        pa.field("n_studies", pa.int64(), nullable=False),
        pa.field("n_patients", pa.int64(), nullable=False),
        pa.field("too_small", pa.bool_(), nullable=False),  # fewer studies than min_studies: not scored
        pa.field("min_studies", pa.int64(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("n_resamples", pa.int64(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)
