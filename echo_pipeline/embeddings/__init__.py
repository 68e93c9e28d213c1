"""Image and text embeddings of clips and reports, and the store that keeps them by model id.

`compute` turns masked clips and report texts into L2-normalised vectors; `store` keeps them as .npy chunk
files located by the `clip_embeddings` / `report_embeddings` id tables and embeds only what is new.
"""

from echo_pipeline import CODE_VERSION as _PACKAGE_VERSION
from echo_pipeline.embeddings.compute import (
    FRAME_COUNT, FRAME_STRIDE, ClipEmbedder, ClipEmbeddings, ClipItem, ReportEmbeddings, embed_reports,
    embed_texts, load_clip_frames, model_fingerprint, model_image_size, select_frame_indices,
)
from echo_pipeline.embeddings.store import EmbeddingStore, UpdateSummary, embed_new, model_key, pending_items

#: Bump EMBEDDINGS_VERSION when stored embeddings of the same model would change (frame choice, preprocessing).
EMBEDDINGS_VERSION = "1"
CODE_VERSION = f"{_PACKAGE_VERSION}+embeddings.{EMBEDDINGS_VERSION}"

__all__ = [
    "CODE_VERSION", "FRAME_COUNT", "FRAME_STRIDE", "ClipEmbedder", "ClipEmbeddings", "ClipItem", "EmbeddingStore",
    "ReportEmbeddings", "UpdateSummary", "embed_new", "embed_reports", "embed_texts",
    "load_clip_frames", "model_fingerprint", "model_image_size", "model_key", "pending_items",
    "select_frame_indices",
]
