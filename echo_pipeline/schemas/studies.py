"""Studies over time (echo_pipeline/studies; docs/evaluation.md): study embeddings, procedure events and the
tables that follow studies of one patient across time."""

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
