"""Ingest one shard incrementally: classify only new or changed files, reuse every other previous row.

A file is unchanged when its size and modification time (ns) equal those of its previous row and that row
was written by the same code version; its row is kept as it was, run_id included. Removed files drop out.
After classification, `dedup.deduplicate` keeps one copy per SOP instance UID within the shard; a previous
duplicate whose kept copy has gone (removed, changed, or now quarantined) is re-classified, so the result
is the same as a fresh ingest of the shard's current files. Changing the pseudonymisation key requires a
fresh ingest (previous=None): rows do not record which key hashed them.

Rows carry the pseudonymised path (echo_pipeline.source_paths), never the archive's own: each file's row
and message are rewritten as soon as it is classified, so everything after (dedup, the tables) sees only
pseudonyms; the raw path is only in the ``ScannedFile`` used to read the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pyarrow as pa

from echo_pipeline.ingest import reasons
from echo_pipeline.ingest.classify import classify_file
from echo_pipeline.ingest.dedup import deduplicate
from echo_pipeline.ingest.scan import ScannedFile
from echo_pipeline.schemas import DICOM_INSTANCES, INGEST_QUARANTINE
from echo_pipeline.source_paths import pseudonymise_path, scrub_path
from echo_pipeline.storage import DataRoot

Row = dict[str, Any]
Progress = Callable[[int, int], None]
_PROGRESS_REPORTS = 20


@dataclass(frozen=True)
class ShardTables:
    """The two ingestion outputs of one shard (or of all shards), plus the paths classified by this call."""

    instances: pa.Table
    quarantine: pa.Table
    processed: tuple[str, ...] = ()

    @property
    def processed_count(self) -> int:
        return len(self.processed)

    @classmethod
    def load(cls, store: DataRoot, shard: str, instances_dataset: str, quarantine_dataset: str) -> "ShardTables | None":
        """The shard's tables as last written, or None when neither was written yet."""
        instances, quarantine = store.read_table(instances_dataset, shard), store.read_table(quarantine_dataset, shard)
        if instances is None and quarantine is None:
            return None
        return cls(_or_empty(instances, DICOM_INSTANCES), _or_empty(quarantine, INGEST_QUARANTINE))


def _or_empty(table: pa.Table | None, schema: pa.Schema) -> pa.Table:
    return schema.empty_table() if table is None else table


def ingest_shard(
    dicom_root: str | os.PathLike,
    files: Sequence[ScannedFile],
    previous: ShardTables | None,
    key: bytes,
    run_id: str,
    code_version: str,
    progress: Progress | None = None,
    *,
    verify_decode: bool = True,
) -> ShardTables:
    """Rows for exactly the files in ``files``: each lands in ``instances`` or ``quarantine``, sorted by path.

    ``progress(done, total)`` reports the files classified so far out of those needing work, about 20 times
    per call and always at the end (never when nothing needs work).
    """
    pseudonym = {f.relative_path: pseudonymise_path(f.relative_path, key) for f in files}
    by_path = {pseudonym[f.relative_path]: f for f in files}
    old = _previous_rows(previous)
    outcome: dict[str, tuple[str, Row]] = {}  # pseudonymised path → ("instance" | "quarantine", row)
    todo = []
    for scanned in files:
        prior = old.get(pseudonym[scanned.relative_path])
        if prior is not None and _unchanged(prior[1], scanned, code_version):
            outcome[pseudonym[scanned.relative_path]] = prior
        else:
            todo.append(scanned)

    processed: list[str] = []
    while True:
        total = len(processed) + len(todo)
        step = max(1, total // _PROGRESS_REPORTS)
        for scanned in todo:
            result = classify_file(dicom_root, scanned, key, run_id, code_version, verify_decode=verify_decode)
            path = pseudonym[scanned.relative_path]
            if result.instance:
                outcome[path] = ("instance", {**result.instance, "relative_path": path})
            else:
                row = result.quarantine
                message = row["message"] and scrub_path(row["message"], scanned.relative_path, path, dicom_root)
                outcome[path] = ("quarantine", {**row, "relative_path": path, "message": message})
            processed.append(path)
            if progress is not None and (len(processed) % step == 0 or len(processed) == total):
                progress(len(processed), total)
        # A previous duplicate whose kept copy vanished (removed, changed) is next in line: classify it again.
        todo = [by_path[path] for path in _orphaned_duplicates(outcome)]
        if not todo:
            break

    instances = [row for kind, row in outcome.values() if kind == "instance"]
    others = [row for kind, row in outcome.values() if kind == "quarantine"]
    duplicates = [row for row in others if row["reason"] == reasons.DUPLICATE]
    kept, duplicate_rows = deduplicate(instances, duplicates, run_id, code_version)
    quarantine = [row for row in others if row["reason"] != reasons.DUPLICATE] + duplicate_rows
    return ShardTables(_table(kept, DICOM_INSTANCES), _table(quarantine, INGEST_QUARANTINE), tuple(sorted(processed)))


def merge_shards(parts: Sequence[ShardTables], run_id: str, code_version: str) -> ShardTables:
    """All shards as one pair of tables, de-duplicated across shards by the same smallest-path rule."""
    instances = [row for part in parts for row in part.instances.to_pylist()]
    quarantine = [row for part in parts for row in part.quarantine.to_pylist()]
    duplicates = [row for row in quarantine if row["reason"] == reasons.DUPLICATE]
    kept, duplicate_rows = deduplicate(instances, duplicates, run_id, code_version)
    others = [row for row in quarantine if row["reason"] != reasons.DUPLICATE]
    return ShardTables(_table(kept, DICOM_INSTANCES), _table(others + duplicate_rows, INGEST_QUARANTINE))


def _previous_rows(previous: ShardTables | None) -> dict[str, tuple[str, Row]]:
    if previous is None:
        return {}
    rows = {row["relative_path"]: ("instance", row) for row in previous.instances.to_pylist()}
    rows.update({row["relative_path"]: ("quarantine", row) for row in previous.quarantine.to_pylist()})
    return rows


def _unchanged(row: Row, scanned: ScannedFile, code_version: str) -> bool:
    return (
        row.get("file_size") == scanned.size
        and row.get("file_mtime_ns") == scanned.mtime_ns
        and row.get("shard") == scanned.shard
        and row.get("code_version") == code_version
    )


def _orphaned_duplicates(outcome: dict[str, tuple[str, Row]]) -> list[str]:
    """Per SOP instance UID, the smallest-path previous duplicate that no instance row at a smaller path
    covers any more: it is the next candidate to keep, so it must be classified again."""
    smallest: dict[str, str] = {}
    for kind, row in outcome.values():
        if kind == "instance":
            uid, path = row["sop_instance_uid"], row["relative_path"]
            smallest[uid] = min(path, smallest.get(uid, path))
    orphans: dict[str, str] = {}
    for path, (kind, row) in outcome.items():
        uid = row["sop_instance_uid"]
        if kind == "quarantine" and row["reason"] == reasons.DUPLICATE and (uid not in smallest or path < smallest[uid]):
            orphans[uid] = min(path, orphans.get(uid, path))
    return sorted(orphans.values())


def _table(rows: list[Row], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(sorted(rows, key=lambda r: r["relative_path"]), schema=schema)
