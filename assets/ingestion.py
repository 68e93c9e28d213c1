"""Stage 1: DICOM ingestion, one run per shard of `dicom_root`.

Every file of the shard ends as a row of `dicom_instances` or of `ingest_quarantine`; every entry the scan
does not ingest (symlink, FIFO, unlistable folder) is a row of `scan_skipped`. Re-running a shard reuses the
previous rows of unchanged files, so a run with no new files finishes in seconds.
"""

from collections import Counter

import dagster as dg

from assets.partitions import SHARDS
from assets.publishing import counts_table, preview, publish_catalog, table_metadata
from echo_pipeline import ingest, source_paths
from echo_pipeline.sharding import configured_shard_count
from resources import PipelineResource

INSTANCES_DATASET = "dicom_instances_by_shard"
QUARANTINE_DATASET = "ingest_quarantine_by_shard"
SKIPPED_DATASET = "scan_skipped"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "dicom_instances",
            deps=["dicom_root"],  # the observed input (assets/observations.py): a changed shard makes its partition stale
            description="One row per distinct readable image instance: ids, tags, geometry, frame rate.",
            kinds={"parquet", "duckdb"},
            group_name="ingestion",
            code_version=ingest.CODE_VERSION,
        ),
        dg.AssetSpec(
            "ingest_quarantine",
            deps=["dicom_root"],
            description="One row per file that is not a usable image, with a documented reason code.",
            kinds={"parquet", "duckdb"},
            group_name="ingestion",
            code_version=ingest.CODE_VERSION,
        ),
        dg.AssetSpec(
            "scan_skipped",
            deps=["dicom_root"],
            description="One row per entry under dicom_root not ingested (symlink, special file, unlistable folder).",
            kinds={"parquet", "duckdb"},
            group_name="ingestion",
            code_version=ingest.CODE_VERSION,
        ),
    ],
    partitions_def=SHARDS,
)
def ingested_dicom_shard(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """Scan the shard's files, ingest the new or changed ones, rewrite the shard's two Parquet files."""
    shard = context.partition_key
    store = pipeline.store
    scan = ingest.scan_archive(pipeline.settings.dicom_root, configured_shard_count())
    files = scan.files.get(shard, [])
    previous = ingest.ShardTables.load(store, shard, INSTANCES_DATASET, QUARANTINE_DATASET)
    key = pipeline.pseudonym_key()
    # The restricted raw-path mapping first: a row of the tables never names a file the mapping cannot find.
    source_paths.record_shard(store.path, shard, [f.relative_path for f in files], key)
    result = ingest.ingest_shard(
        pipeline.settings.dicom_root, files, previous,
        key=key, run_id=context.run.run_id, code_version=ingest.CODE_VERSION,
        progress=lambda done, total: context.log.info(f"shard {shard}: {done}/{total} new files ingested"),
    )
    store.write_table(INSTANCES_DATASET, result.instances, shard, schema_name="dicom_instances")
    store.write_table(QUARANTINE_DATASET, result.quarantine, shard, schema_name="ingest_quarantine")
    skipped = ingest.skipped_table(scan.skipped.get(shard, []), key, context.run.run_id, ingest.CODE_VERSION)
    store.write_table(SKIPPED_DATASET, skipped, shard)
    publish_catalog(pipeline)
    yield from _shard_results(shard, len(files), result, skipped, pipeline)


def _shard_results(shard: str, n_files: int, result, skipped, pipeline: PipelineResource):
    """One MaterializeResult per table of the shard: row counts, reasons, a preview."""
    yield dg.MaterializeResult(asset_key="dicom_instances", metadata={
        "shard": shard, "files_in_shard": n_files, "newly_processed": result.processed_count,
        "dicom_root": str(pipeline.settings.dicom_root), **table_metadata("dicom_instances", result.instances, partitioned=True),
        "preview": preview(result.instances.drop_columns(["relative_path"]))})  # paths are identifiers
    reasons = Counter(result.quarantine.column("reason").to_pylist())
    yield dg.MaterializeResult(asset_key="ingest_quarantine", metadata={
        "shard": shard, **table_metadata("ingest_quarantine", result.quarantine, partitioned=True), "reasons": counts_table(reasons, "reason")})
    yield dg.MaterializeResult(asset_key="scan_skipped", metadata={
        "shard": shard, **table_metadata("scan_skipped", skipped, partitioned=True),
        "reasons": counts_table(Counter(skipped.column("reason").to_pylist()), "reason")})
