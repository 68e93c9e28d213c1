"""Whether a model variant's embeddings and indexes are out of date: what a run of the embedding assets would
change, judged from the files alone (no Dagster instance), with the reasons. The nightly automation
(`assets/automation.py`) decides from Dagster's record of what changed instead; this answers the same question
for a data root on its own, and names what is behind (an index corrupted after its run, for one).

This module verifies index manifests (`echo_pipeline.search.index`), so the package does not import it.
"""

from __future__ import annotations

from echo_pipeline import catalog
from echo_pipeline.errors import CheckpointError, IndexIntegrityError
from echo_pipeline.model_variants.layout import (CLIP_TABLE, LINKED_REPORTS_SQL, MASKED_CLIPS_SQL, REPORT_INDEX,
                                                 REPORT_TABLE, VIDEO_INDEX, index_dir, variant_partitions)
from echo_pipeline.model_variants.record import read_record
from echo_pipeline.model_variants.index_manifest import verify_index
from echo_pipeline.storage import DataRoot


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
        model_id = read_record(store, variant).model_id
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
