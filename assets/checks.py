"""Asset checks: blocking ones that stop a run before bad data flows on, drift warnings that do not.

The rules live in `echo_pipeline.check_rules`; docs/checks.md lists every check, its threshold and its variable.
Blocking (severity ERROR): `masked_clips_have_plausible_masks`, `report_links_cover_enough_reports`, and
`no_raw_identifiers` on every asset that writes a catalog table. Warnings: `quarantine_share_drift`,
`view_filter_drop_drift`, `masking_drop_drift`, each comparing a drop share with its expected maximum and with
the share the same check recorded for the same partition last time. A check of a partitioned asset runs in
the run that materialises a partition and looks at that partition only (it records which in its metadata);
the checks themselves are not partitioned, since partitioned asset checks are a preview feature in Dagster
1.13. (Two more blocking checks sit beside their assets: `no_patient_in_two_splits` in reports.py,
`*_index_matches_manifest` in embeddings.py.)
"""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets import embeddings, evaluation, ingestion, masking, reports, tokenization, training, views
from echo_pipeline import check_rules
from echo_pipeline.schemas import TABLES
from echo_pipeline.storage import DataRoot
from resources import PipelineResource

#: Assets whose table lives in a dataset of another name (ingestion writes candidates per shard).
DATASET_OF = {"dicom_instances": ingestion.INSTANCES_DATASET, "ingest_quarantine": ingestion.QUARANTINE_DATASET}
_HISTORY = 50  # earlier evaluations searched for the previous share of the same partition


def _partition_key(context: dg.AssetCheckExecutionContext) -> str | None:
    """The partition the run materialises (None for an unpartitioned run, or a check run over everything)."""
    return context.partition_key if context.has_partition_key else None


def _read(store: DataRoot, dataset: str, partition: str | None) -> pa.Table | None:
    """The rows an asset partition wrote: part-<key>.parquet and part-<key>-*.parquet (per-variant shards);
    every partition when ``partition`` is None. None when nothing was written."""
    if partition is None:
        return store.read_table(dataset)
    files = store.partition_files(dataset, partition)
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default") if files else None


def _rows(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def _previous(context: dg.AssetCheckExecutionContext, key: str) -> float | None:
    """``key`` from the metadata of this check's latest earlier evaluation of the same partition."""
    (check_key,) = context.selected_asset_check_keys
    partition = _partition_key(context) or "all"
    history = context.instance.event_log_storage.get_asset_check_execution_history(check_key, limit=_HISTORY)
    for record in history:  # newest first
        if record.run_id == context.run.run_id or record.event is None or record.event.dagster_event is None:
            continue
        metadata = getattr(record.event.dagster_event.event_specific_data, "metadata", None) or {}
        recorded_partition, value = metadata.get("partition"), metadata.get(key)
        if recorded_partition is not None and recorded_partition.value == partition and value is not None \
                and value.value is not None:
            return float(value.value)
    return None


def _drift(context: dg.AssetCheckExecutionContext, name: str, findings: list[str], current: float,
           metadata: dict) -> dg.AssetCheckResult:
    limits = check_rules.drift_limits(name)
    return dg.AssetCheckResult(
        passed=not findings, severity=dg.AssetCheckSeverity.WARN, description="; ".join(findings) or None,
        metadata={"partition": _partition_key(context) or "all", "share": current, "max_share": limits.max_share,
                  "max_jump": limits.max_jump, **metadata},
    )


def _drop_share(context: dg.AssetCheckExecutionContext, name: str, what: str, dropped: int,
                total: int) -> dg.AssetCheckResult:
    """The drift result for ``dropped`` of ``total`` items of this partition."""
    current, previous = check_rules.share(dropped, total), _previous(context, "share")
    findings = check_rules.drift_findings(current, previous, check_rules.drift_limits(name), what)
    return _drift(context, name, findings, current, {"previous_share": previous, "dropped": dropped, "total": total})


# --- blocking ----------------------------------------------------------------------------------------------


@dg.asset_check(asset="masked_clips", blocking=True,
                description="Every masked clip has a sector_masks row (same file bytes) with a known method and an "
                            "area fraction in the plausible range, and is not in mask_quarantine.")
def masked_clips_have_plausible_masks(context: dg.AssetCheckExecutionContext,
                                      pipeline: PipelineResource) -> dg.AssetCheckResult:
    shard, store = _partition_key(context), pipeline.store
    clips = _read(store, "masked_clips", shard)
    if clips is None:
        return dg.AssetCheckResult(passed=True, metadata={"partition": shard or "all", "masked_clips": 0})
    masks = _read(store, "sector_masks", shard)
    problems = check_rules.masked_clip_problems(clips, masks if masks is not None else TABLES["sector_masks"].empty_table(),
                                            _read(store, "mask_quarantine", shard))
    return dg.AssetCheckResult(passed=not problems, metadata={
        "partition": shard or "all", "masked_clips": clips.num_rows, "without_plausible_mask": len(problems),
        "examples": dg.MetadataValue.json(problems[:10])})


@dg.asset_check(asset="report_links", blocking=True,
                description=f"At least the floor ({check_rules.MIN_LINK_COVERAGE_ENV_VAR}, default "
                            f"{check_rules.DEFAULT_MIN_LINK_COVERAGE:.0%}) of the reports are linked to a study.")
def report_links_cover_enough_reports(pipeline: PipelineResource) -> dg.AssetCheckResult:
    floor = check_rules.threshold(check_rules.MIN_LINK_COVERAGE_ENV_VAR, check_rules.DEFAULT_MIN_LINK_COVERAGE)
    links = pipeline.store.read_table("report_links")
    linked, total, coverage = check_rules.link_coverage(links if links is not None else TABLES["report_links"].empty_table())
    return dg.AssetCheckResult(
        passed=total > 0 and coverage >= floor,
        description=None if total else "no reports at all: check the reports file",
        metadata={"linked": linked, "reports": total, "coverage": coverage, "floor": floor},
    )


def _identifier_check(asset: str, partitioned: bool) -> dg.AssetChecksDefinition:
    dataset = DATASET_OF.get(asset, asset)

    @dg.asset_check(asset=asset, name="no_raw_identifiers", blocking=True,
                    description="No column holds a raw patient id, accession number or patient name: id columns "
                                "are keyed hashes, no value looks like a DICOM person name or a raw id "
                                "(docs/checks.md). Findings name the column and row, never the value.")
    def no_raw_identifiers(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource) -> dg.AssetCheckResult:
        partition = _partition_key(context) if partitioned else None
        table = _read(pipeline.store, dataset, partition)
        findings = [] if table is None else check_rules.identifier_findings(table, asset)
        return dg.AssetCheckResult(passed=not findings, metadata={
            "dataset": dataset, "partition": partition or "all", "rows_scanned": _rows(table),
            "string_columns": 0 if table is None else sum(pa.types.is_string(f.type) for f in table.schema),
            "findings": dg.MetadataValue.json([f.message() for f in findings]),
        })

    return no_raw_identifiers


def _table_assets() -> dict[str, bool]:
    """Every asset that writes a catalog table → whether it is partitioned."""
    modules = [ingestion, views, reports, tokenization, masking, training, embeddings, evaluation]
    return {key.to_user_string(): assets_def.partitions_def is not None
            for assets_def in dg.load_assets_from_modules(modules) for key in assets_def.keys
            if key.to_user_string() in TABLES}


IDENTIFIER_CHECKS = [_identifier_check(asset, partitioned) for asset, partitioned in sorted(_table_assets().items())]

# --- drift (warnings) --------------------------------------------------------------------------------------


@dg.asset_check(asset="ingest_quarantine",
                description="Warns when the share of the shard's files that ingestion quarantined jumps, or the "
                            "archive's share exceeds its expected maximum (docs/checks.md).")
def quarantine_share_drift(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource) -> dg.AssetCheckResult:
    shard, store = _partition_key(context), pipeline.store
    quarantined = _rows(_read(store, ingestion.QUARANTINE_DATASET, shard))
    total = quarantined + _rows(_read(store, ingestion.INSTANCES_DATASET, shard))
    archive_quarantined = _rows(store.read_table(ingestion.QUARANTINE_DATASET))
    archive_total = archive_quarantined + _rows(store.read_table(ingestion.INSTANCES_DATASET))
    # The maximum applies to the whole archive (a small shard's share is noisy); the jump to this shard's files.
    current, archive = check_rules.share(quarantined, total), check_rules.share(archive_quarantined, archive_total)
    previous, limits = _previous(context, "share"), check_rules.drift_limits("quarantine")
    findings = (check_rules.above_max(archive, limits, "share of the archive's files quarantined")
                + check_rules.jumped(current, previous, limits, "share of the shard's files quarantined"))
    return _drift(context, "quarantine", findings, current, {
        "previous_share": previous, "dropped": quarantined, "total": total,
        "archive_share": archive, "archive_files": archive_total})


@dg.asset_check(asset="a4c_clips",
                description="Warns when the share of the shard's clips that view filtering drops jumps or exceeds "
                            "its expected maximum (a classifier or archive change; docs/checks.md).")
def view_filter_drop_drift(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource) -> dg.AssetCheckResult:
    shard, store = _partition_key(context), pipeline.store
    predicted = _rows(_read(store, "view_predictions", shard))
    kept = _rows(_read(store, "a4c_clips", shard))
    return _drop_share(context, "view_filter", "share of the shard's clips not kept as A4C", predicted - kept, predicted)


@dg.asset_check(asset="masked_clips",
                description="Warns when the share of the shard's A4C clips lost in masking (quarantined or not "
                            "written) jumps or exceeds its expected maximum (docs/checks.md).")
def masking_drop_drift(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource) -> dg.AssetCheckResult:
    shard, store = _partition_key(context), pipeline.store
    a4c = _read(store, "a4c_clips", shard)
    clips = _read(store, "masked_clips", shard)
    wanted = set() if a4c is None else set(a4c.column("sop_instance_uid").to_pylist())
    written = set() if clips is None else set(clips.column("sop_instance_uid").to_pylist())
    return _drop_share(context, "masking", "share of the shard's A4C clips not masked", len(wanted - written), len(wanted))
