"""A model variant's embeddings and indexes under a data root: where they live and whether they are current.

Both variants ("bpe", "template") write the same `clip_embeddings` / `report_embeddings` tables, so each
variant owns its own store partitions — `<variant>-<shard>` for clips (one per shard of `masked_clips`, so a
commit rewrites one shard's id table, not the whole archive's) and `<variant>` for reports — and its own index
directories `arrays/video_index/<variant>/`, `arrays/report_index/<variant>/`. A store partition holds one
model's rows, so the two variants never evict each other's vectors.

`staleness` says what a run of the embedding assets would change; the nightly schedule runs them only then.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from echo_pipeline import catalog
from echo_pipeline.embeddings import ClipEmbedder, ClipItem, EmbeddingStore, UpdateSummary, embed_new
from echo_pipeline.errors import CheckpointError, IndexIntegrityError
from echo_pipeline.search.index import IndexConfig, add_to_index, build_index, verify_index
from echo_pipeline.storage import DataRoot
from echo_pipeline.training import registry

VIDEO_INDEX = "video_index"
REPORT_INDEX = "report_index"
CLIP_TABLE = "clip_embeddings"
REPORT_TABLE = "report_embeddings"

#: masked A4C clips to embed: id, shard, .npy path relative to the data root.
MASKED_CLIPS_SQL = "SELECT sop_instance_uid, shard, clip_path FROM masked_clips ORDER BY shard, sop_instance_uid"
#: reports linked to a study, with their text.
LINKED_REPORTS_SQL = """
    SELECT r.report_id, r.report_text FROM reports AS r JOIN report_links AS l USING (report_id)
    WHERE l.study_instance_uid IS NOT NULL ORDER BY r.report_id"""


def index_dir(store: DataRoot, index: str, variant: str) -> Path:
    """Directory of ``index`` (VIDEO_INDEX or REPORT_INDEX) for ``variant``."""
    registry.variant_dir(store, variant)  # validates the variant name
    return store.array_dir(index) / variant


def clip_partition(variant: str, shard: str) -> str:
    """Store partition of ``variant``'s embeddings of the clips of ``shard``."""
    return f"{variant}-{shard}"


def report_partition(variant: str) -> str:
    """Store partition of ``variant``'s report embeddings."""
    return variant


def variant_partitions(store: DataRoot, table: str, variant: str) -> list[str]:
    """Partitions of ``table`` written for ``variant`` (read from the files, so removed shards are found too)."""
    pattern = re.compile(rf"part-({re.escape(variant)}(?:-[^.]+)?)\.parquet")
    files = store.dataset_dir(table).glob("part-*.parquet") if store.dataset_dir(table).is_dir() else []
    return sorted(m.group(1) for m in map(pattern.fullmatch, (f.name for f in files)) if m)


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


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n != 1 else f"1 {what.rstrip('s')}"


def _store_drift(store: DataRoot, table: str, variant: str, model_id: str, wanted: set[str]) -> list[str]:
    """Why ``table``'s rows for ``variant`` differ from the ids ``wanted`` under ``model_id`` (empty: they don't)."""
    partitions = variant_partitions(store, table, variant)
    rows = [store.read_table(table, p) for p in partitions]
    models = {m for t in rows if t is not None for m in t.column("model_id").to_pylist()}
    if models - {model_id}:
        return [f"{table}: made by another model ({', '.join(sorted(models - {model_id}))})"]
    column = "sop_instance_uid" if table == CLIP_TABLE else "report_id"
    held = {i for t in rows if t is not None for i in t.column(column).to_pylist()}
    reasons = []
    if wanted - held:
        reasons.append(f"{table}: {_count(len(wanted - held), 'new ids')}")
    if held - wanted:
        reasons.append(f"{table}: {_count(len(held - wanted), 'ids no longer present')}")
    return reasons


def _index_drift(store: DataRoot, index: str, variant: str, model_id: str, n_vectors: int) -> list[str]:
    try:
        manifest = verify_index(index_dir(store, index, variant))
    except IndexIntegrityError:
        return [f"{index}: missing or corrupt"]
    if manifest["model_id"] != model_id:
        return [f"{index}: built with another model"]
    if manifest["n_vectors"] != n_vectors:
        return [f"{index}: holds {manifest['n_vectors']} vectors, the embeddings {n_vectors}"]
    return []


def staleness(store: DataRoot, variant: str) -> list[str]:
    """Reasons why ``variant``'s embeddings or indexes are out of date; empty when current or when the
    variant has no model yet (nothing to embed with) or no upstream tables (nothing to embed)."""
    try:
        model_id = registry.read_record(store, variant).model_id
    except CheckpointError:
        return []
    views = set(catalog.available_views(store))
    con = catalog.open_reader(store)
    reasons = []
    for table, index, sql, needs in ((CLIP_TABLE, VIDEO_INDEX, MASKED_CLIPS_SQL, {"masked_clips"}),
                                     (REPORT_TABLE, REPORT_INDEX, LINKED_REPORTS_SQL, {"reports", "report_links"})):
        if not needs <= views:
            continue
        wanted = set(con.sql(sql).to_arrow_table().column(0).to_pylist())
        drift = _store_drift(store, table, variant, model_id, wanted)
        reasons += drift or _index_drift(store, index, variant, model_id, len(wanted))
    return reasons
