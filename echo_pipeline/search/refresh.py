"""Bringing a model variant's embedding store and indexes up to date (names and paths: `echo_pipeline.model_variants`).

`update_clip_embeddings` embeds the clips a variant's model has not stored yet, one store partition per shard;
`refresh_index` extends or rebuilds an index so it holds exactly the stored vectors. Whether either is needed
is `echo_pipeline.model_variants.staleness`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from echo_pipeline.embeddings import ClipEmbedder, ClipItem, EmbeddingStore, UpdateSummary, embed_new
from echo_pipeline.errors import IndexIntegrityError
from echo_pipeline.model_variants import CLIP_TABLE, clip_partition, variant_partitions
from echo_pipeline.search.index import IndexConfig, add_to_index, build_index, verify_index
from echo_pipeline.storage import DataRoot


def load_variant_vectors(store: DataRoot, table: str, variant: str, model_id: str) -> tuple[list[str], np.ndarray]:
    """(ids, (N, D) float32 vectors) that ``model_id`` stored in ``variant``'s partitions of ``table``."""
    return EmbeddingStore(store, table, model_id).load_vectors(variant_partitions(store, table, variant) or None)


def update_clip_embeddings(store: DataRoot, variant: str, model_id: str, clips: pa.Table, embedder: ClipEmbedder, *,
                           run_id: str, code_version: str, chunk_size: int = 512,
                           progress: Callable[[str, int, int], None] | None = None) -> UpdateSummary:
    """Embed the clips of ``clips`` (sop_instance_uid, shard, clip_path) that ``model_id`` has not stored yet.

    One store partition per shard; a partition of this variant whose shard has no clips left is emptied.
    ``progress(partition, done, total)`` follows each committed chunk. Returns the summed UpdateSummary.
    """
    by_partition: dict[str, list[ClipItem]] = defaultdict(list)
    for uid, shard, path in zip(*(clips.column(c).to_pylist() for c in ("sop_instance_uid", "shard", "clip_path"))):
        by_partition[clip_partition(variant, shard)].append(ClipItem(uid, store.path / path))
    for partition in variant_partitions(store, CLIP_TABLE, variant):
        by_partition.setdefault(partition, [])
    target, total = EmbeddingStore(store, CLIP_TABLE, model_id), UpdateSummary()
    for partition, items in sorted(by_partition.items()):
        summary = embed_new(target, partition, items, embedder.embed_clips, id_of=lambda item: item.clip_id,
                            run_id=run_id, code_version=code_version, chunk_size=chunk_size,
                            progress=None if progress is None else lambda done, n, p=partition: progress(p, done, n))
        total.embedded += summary.embedded
        total.skipped += summary.skipped
        total.removed += summary.removed
        total.failed += summary.failed
    return total


def index_ids(index_directory: Path) -> tuple[dict, list[str]]:
    """(verified manifest, row → id list) of an index; IndexIntegrityError when missing or corrupt."""
    manifest = verify_index(index_directory)
    return manifest, json.loads((Path(index_directory) / manifest["ids_file"]).read_text(encoding="utf-8"))


def refresh_index(index_directory: Path, ids: Sequence[str], vectors: np.ndarray, *, content: str, model_id: str,
                  config: IndexConfig) -> tuple[dict, str]:
    """Bring the index up to date with (ids, vectors) and return (manifest, what was done).

    "unchanged" when it already holds exactly these ids from this model with this kind and IVF parameters;
    "extended" when a flat index of this model only lacks some ids (they are appended); "built" otherwise —
    a new model, another kind, removed ids, an IVF index with new ids, or a missing or corrupt index.
    """
    try:
        current, current_ids = index_ids(index_directory)
    except IndexIntegrityError:
        current, current_ids = None, []
    if current is not None and current["model_id"] == model_id and current["kind"] == config.kind:
        same_params = config.kind == "flat" or (
            current["build_params"]["nprobe"] == min(config.nprobe, current["build_params"]["nlist"])
            and config.nlist in (None, current["build_params"]["nlist"]))
        wanted, held = set(ids), set(current_ids)
        if wanted == held and same_params:
            return current, "unchanged"
        if config.kind == "flat" and held <= wanted:
            new_rows = [i for i, key in enumerate(ids) if key not in held]
            return add_to_index(index_directory, vectors[new_rows], [ids[i] for i in new_rows],
                                model_id=model_id), "extended"
    return build_index(index_directory, vectors, list(ids), content=content, model_id=model_id,
                       config=config), "built"
