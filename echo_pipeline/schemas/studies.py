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
