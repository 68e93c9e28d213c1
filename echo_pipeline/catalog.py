"""The DuckDB catalog: views over the Parquet datasets, under the names users query.

Stages never write rows into DuckDB. They write Parquet under the data root (many processes may do that at
once), then `publish` (re)creates the views in the catalog file. Views read Parquet through globs, so data that
a later partition writes is visible without publishing again. DuckDB allows one writing process per file:
`publish` serialises writers with an exclusive file lock and retries while another process (for instance a
user's `duckdb` shell) holds the database open.

The same view definitions back `open_reader`, an in-memory connection that stages use to read upstream
tables without touching the catalog file at all.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from echo_pipeline.errors import CatalogError
from echo_pipeline.locks import exclusive_lock
from echo_pipeline.storage import DataRoot

_PLACEHOLDER = re.compile(r"\{dataset:([a-z0-9_]+)\}")

#: Views whose SQL is more than "all partitions of the dataset of the same name".
#: ``{dataset:NAME}`` stands for every Parquet partition of dataset NAME.
VIEW_SQL: dict[str, str] = {
    # Ingestion writes candidates per shard and de-duplicates within a shard; a duplicate can also sit in
    # another shard, so the catalog keeps the copy with the smallest relative path across all shards.
    "dicom_instances": """
        SELECT * EXCLUDE (sop_rank, byte_rank) FROM (
            SELECT *,
                row_number() OVER (PARTITION BY sop_instance_uid ORDER BY relative_path) AS sop_rank,
                row_number() OVER (PARTITION BY file_sha256 ORDER BY relative_path) AS byte_rank
            FROM {dataset:dicom_instances_by_shard})
        WHERE sop_rank = 1 AND byte_rank = 1
    """,
    "ingest_quarantine": """
        SELECT * FROM {dataset:ingest_quarantine_by_shard}
        UNION ALL BY NAME
        SELECT c.file_sha256, c.relative_path, c.file_size, c.shard, 'duplicate' AS reason,
               NULL AS exception_type,
               'duplicate of ' || k.relative_path || ' (same SOP instance UID or same bytes) in another shard' AS message,
               c.sop_instance_uid, k.relative_path AS duplicate_of, c.run_id, c.code_version
        FROM {dataset:dicom_instances_by_shard} AS c
        JOIN dicom_instances AS k
          ON (k.sop_instance_uid = c.sop_instance_uid OR k.file_sha256 = c.file_sha256)
         AND k.relative_path <> c.relative_path
    """,
    # Row-level lineage: every embedded clip back to its DICOM file, mask, masked frames, study, split and report.
    # Evaluation rows join it on (model_id, split): README, "Which files does this number come from?".
    "lineage": """
        SELECT e.model_id, s.split, d.study_instance_uid, d.sop_instance_uid, d.file_sha256, d.relative_path,
               d.run_id AS ingest_run_id, d.code_version AS ingest_code_version,
               k.method AS mask_method, k.mask_path, m.clip_path, m.run_id AS masking_run_id,
               l.report_id, r.source_file AS report_file, r.source_row AS report_row, l.link_method,
               e.run_id AS embedding_run_id, e.code_version AS embedding_code_version
        FROM {dataset:clip_embeddings} AS e
        JOIN dicom_instances AS d ON d.sop_instance_uid = e.sop_instance_uid
        JOIN {dataset:masked_clips} AS m ON m.sop_instance_uid = e.sop_instance_uid
        JOIN {dataset:sector_masks} AS k ON k.sop_instance_uid = e.sop_instance_uid
        LEFT JOIN {dataset:splits} AS s ON s.study_instance_uid = d.study_instance_uid
        LEFT JOIN {dataset:report_links} AS l ON l.study_instance_uid = d.study_instance_uid
        LEFT JOIN {dataset:reports} AS r ON r.report_id = l.report_id
    """,
    # Every eval_clinical_change row back to its events row and the DICOM files of the two studies compared
    # (the scored study and the reference; their masked A4C clips). An AUC row reaches them through the
    # similarity rows of its procedure ("all": every procedure) of the same run, model and level.
    "clinical_change_lineage": """
        SELECT c.model_id, c.model_kind, c.level, c.metric, c.procedure, c.study_instance_uid AS row_study_uid,
               c.run_id, s.event_id, e.source_file AS events_file, e.source_row AS events_row,
               s.study_instance_uid AS scored_study_uid, s.reference_study_uid,
               d.study_instance_uid, d.sop_instance_uid, d.file_sha256, d.relative_path
        FROM {dataset:eval_clinical_change} AS c
        JOIN {dataset:eval_clinical_change} AS s
          ON s.metric = 'similarity_to_earliest' AND s.run_id = c.run_id AND s.model_id = c.model_id
         AND s.level = c.level
         AND ((c.metric = 'similarity_to_earliest' AND s.event_id = c.event_id
               AND s.study_instance_uid = c.study_instance_uid)
              OR (c.metric <> 'similarity_to_earliest' AND (c.procedure = 'all' OR s.procedure = c.procedure)))
        JOIN {dataset:procedure_events} AS e ON e.event_id = s.event_id
        JOIN dicom_instances AS d ON d.study_instance_uid IN (s.study_instance_uid, s.reference_study_uid)
        JOIN {dataset:masked_clips} AS m ON m.sop_instance_uid = d.sop_instance_uid
    """,
}

#: Datasets stored on disk under another name than the view users query.
HIDDEN_DATASETS = {"dicom_instances_by_shard", "ingest_quarantine_by_shard"}

_LOCK_TIMEOUT_S = 300.0


def parquet_source(data_root: DataRoot, dataset: str) -> str:
    glob = data_root.partition_glob(dataset).as_posix().replace("'", "''")
    return f"read_parquet('{glob}', union_by_name = true)"


def view_sql(data_root: DataRoot, view: str) -> str:
    """The SELECT behind a view, with dataset placeholders resolved to absolute Parquet globs."""
    template = VIEW_SQL.get(view, f"SELECT * FROM {{dataset:{view}}}")
    return _PLACEHOLDER.sub(lambda m: parquet_source(data_root, m.group(1)), template)


def available_views(data_root: DataRoot) -> list[str]:
    """Views whose datasets all exist on disk, in an order where a view follows the views it reads."""
    tables_dir = data_root.tables_dir
    datasets = sorted(p.name for p in tables_dir.iterdir() if p.is_dir()) if tables_dir.exists() else []
    present = {d for d in datasets if data_root.has_dataset(d)}
    views = [d for d in datasets if d in present and d not in HIDDEN_DATASETS and d not in VIEW_SQL]
    for name, template in VIEW_SQL.items():
        if all(d in present for d in _PLACEHOLDER.findall(template)):
            views.append(name)
    return views


def create_views(con: duckdb.DuckDBPyConnection, data_root: DataRoot, *, temporary: bool) -> list[str]:
    kind = "TEMP VIEW" if temporary else "VIEW"
    views = available_views(data_root)
    for view in views:
        con.execute(f"CREATE OR REPLACE {kind} {view} AS {view_sql(data_root, view)}")
    return views


def open_reader(data_root: DataRoot) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with every available view; never locks the catalog file."""
    con = duckdb.connect()
    create_views(con, data_root, temporary=True)
    return con


def publish(data_root: DataRoot) -> list[str]:
    """(Re)create every available view in the catalog file; returns the view names."""
    lock = exclusive_lock(data_root.catalog_path.with_suffix(".lock"))
    with lock, _connect_writable(data_root.catalog_path) as con:
        return create_views(con, data_root, temporary=False)


@contextmanager
def _connect_writable(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    deadline = time.monotonic() + _LOCK_TIMEOUT_S
    while True:
        try:
            con = duckdb.connect(str(db_path))
            break
        except duckdb.IOException as error:  # another process (a user's shell, say) has the file open
            if time.monotonic() > deadline:
                raise CatalogError(
                    f"{db_path}: could not open the catalog for writing for {_LOCK_TIMEOUT_S:.0f} s ({error}); "
                    "close other duckdb sessions on this file, or query it with read_only=True"
                ) from error
            time.sleep(0.5)
    try:
        yield con
    finally:
        con.close()
