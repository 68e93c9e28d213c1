"""Stage 7 id tables (echo_pipeline/embeddings; docs/search.md): clip and report embeddings."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID

# Id tables only: the vectors live in .npy files under arrays/<table>/ (see echo_pipeline.embeddings.store).
CLIP_EMBEDDINGS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),  # the clip's id
        pa.field("model_id", pa.string(), nullable=False),  # the model that made the vectors
        pa.field("array_file", pa.string(), nullable=False),  # chunk stem under arrays/clip_embeddings/
        pa.field("row", pa.int64(), nullable=False),  # row of this clip in the chunk's arrays
        pa.field("n_frames", pa.int32(), nullable=False),  # frames embedded (0, 2, …; at most 20)
        pa.field("embedding_dim", pa.int32(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

REPORT_EMBEDDINGS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("array_file", pa.string(), nullable=False),  # chunk stem under arrays/report_embeddings/
        pa.field("row", pa.int64(), nullable=False),
        pa.field("n_texts", pa.int32(), nullable=False),  # snippets averaged into the embedding
        pa.field("embedding_dim", pa.int32(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)
