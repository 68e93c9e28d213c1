"""The DuckDB catalog: views over the Parquet datasets, under the names users query.

Stages never write rows into DuckDB. They write Parquet under the data root (many processes may do that at
once), then `publish` writes the views into a new catalog file and swaps it in with one rename. Views read
Parquet through globs, so data that a later partition writes is visible without publishing again. Publishing
never waits on readers: a session that has `echo.duckdb` open (a user's `duckdb` shell, a notebook) keeps
reading the file it opened, and the next connection sees the new one. Concurrent publishers are serialised by
an exclusive file lock (`echo.lock`), so the last one to finish leaves every view.

The same view definitions back `open_reader`, an in-memory connection that stages use to read upstream
tables without touching the catalog file at all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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
    # Row-level lineage: every embedded clip back to its DICOM file, mask, masked frames, study, split, report and
    # the label rules that labelled it.
    # Evaluation rows join it on (model_id, split): README, "Which files does this number come from?".
    "lineage": """
        SELECT e.model_id, s.split, d.study_instance_uid, d.sop_instance_uid, d.file_sha256, d.relative_path,
               d.run_id AS ingest_run_id, d.code_version AS ingest_code_version,
               k.method AS mask_method, k.mask_path, m.clip_path, m.run_id AS masking_run_id,
               l.report_id, r.source_file AS report_file, r.source_row AS report_row, l.link_method,
               lb.label_rules_sha256, lb.code_version AS labels_code_version,
               e.run_id AS embedding_run_id, e.code_version AS embedding_code_version
        FROM {dataset:clip_embeddings} AS e
        JOIN dicom_instances AS d ON d.sop_instance_uid = e.sop_instance_uid
        JOIN {dataset:masked_clips} AS m ON m.sop_instance_uid = e.sop_instance_uid
        JOIN {dataset:sector_masks} AS k ON k.sop_instance_uid = e.sop_instance_uid
        LEFT JOIN {dataset:splits} AS s ON s.study_instance_uid = d.study_instance_uid
        LEFT JOIN {dataset:report_links} AS l ON l.study_instance_uid = d.study_instance_uid
        LEFT JOIN {dataset:reports} AS r ON r.report_id = l.report_id
        LEFT JOIN {dataset:report_labels} AS lb ON lb.report_id = l.report_id
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
    """Write every available view into a new catalog file and rename it over the old one; returns the views.

    Readers of the old file are never waited for (a rename does not touch an open file), so a user's open
    session cannot stall the pipeline; it sees the new views when it reconnects. The catalog holds only
    views that publish makes: objects a user created in it are not carried over (keep them in your own
    DuckDB file and ATTACH the catalog read-only)."""
    target = data_root.catalog_path
    building = target.with_name(f".{target.name}.publishing")
    with exclusive_lock(target.with_suffix(".lock")):
        for leftover in (building, _wal(building)):  # from a publisher killed half-way
            leftover.unlink(missing_ok=True)
        try:
            with duckdb.connect(str(building)) as con:
                views = create_views(con, data_root, temporary=False)
            _wal(target).unlink(missing_ok=True)  # a stale log of the old file must not be replayed onto the new one
            os.replace(building, target)
        except (duckdb.Error, OSError) as error:
            raise CatalogError(f"{target}: could not publish the catalog ({type(error).__name__}: {error}); "
                               f"check that {target.parent} is writable and has free space, then re-run") from error
        finally:
            building.unlink(missing_ok=True)
    return views


def _wal(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".wal")
