"""FAISS indexes over clip and report embeddings (`index`) and the searches users run on them (`query`).

`refresh` brings a model variant's embeddings and indexes up to date (where they live:
`echo_pipeline.model_variants`); `searcher` is the `Searcher` behind `echo-pipeline search`. Neither is
imported here: both load models, which the index and query functions do not need.
"""

from echo_pipeline.search.index import (
    CODE_VERSION, KINDS, IndexConfig, LoadedIndex, add_to_index, build_index, load_index, read_manifest,
    recall_at_k, verify_index,
)
from echo_pipeline.search.query import (
    CLIPS, REPORTS, embed_query_clip, embed_query_text, open_index, search, search_clips_for_text,
    search_reports_for_clip,
)

__all__ = [
    "CLIPS", "CODE_VERSION", "KINDS", "REPORTS", "IndexConfig", "LoadedIndex", "add_to_index", "build_index",
    "embed_query_clip", "embed_query_text", "load_index", "open_index", "read_manifest", "recall_at_k", "search",
    "search_clips_for_text", "search_reports_for_clip", "verify_index",
]
