"""Stage 4: reports read and validated, linked to studies, labelled, and studies split by patient."""


from collections import Counter

import dagster as dg

from assets.publishing import counts_table, preview, publish_catalog, table_metadata
from echo_pipeline import reports
from echo_pipeline.reports.inputs import read_studies
from resources import PipelineResource

GROUP = "reports"


@dg.multi_asset(
    specs=[
        dg.AssetSpec("reports", description="The reports file, validated; patient ids and accessions hashed.",
                     deps=["reports_file"], kinds={"parquet", "duckdb"}, group_name=GROUP, code_version=reports.CODE_VERSION),
        dg.AssetSpec("report_quarantine", description="Report rows that cannot be used, with the reason.",
                     deps=["reports_file"], kinds={"parquet", "duckdb"}, group_name=GROUP, code_version=reports.CODE_VERSION),
    ],
)
def validated_reports(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    kept, quarantined = reports.read_reports(
        pipeline.settings.reports_path, pipeline.pseudonym_key(), run_id=context.run.run_id, code_version=reports.CODE_VERSION
    )
    pipeline.store.write_table("reports", kept)
    pipeline.store.write_table("report_quarantine", quarantined)
    publish_catalog(pipeline)
    reasons = Counter(quarantined.column("reason").to_pylist())
    yield dg.MaterializeResult(asset_key="reports", metadata={
        "source": str(pipeline.settings.reports_path), **table_metadata("reports", kept, partitioned=False),
        "preview": preview(kept.drop_columns(["report_text"])),
    })
    yield dg.MaterializeResult(asset_key="report_quarantine", metadata={
        **table_metadata("report_quarantine", quarantined, partitioned=False), "reasons": counts_table(reasons, "reason"),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec("report_links", deps=["reports", "dicom_instances"], group_name=GROUP,
                     description="Each report joined to at most one study (accession → study UID → patient + date).",
                     kinds={"parquet", "duckdb"}, code_version=reports.CODE_VERSION),
        dg.AssetSpec("studies_without_report", deps=["reports", "dicom_instances"], group_name=GROUP,
                     description="Ingested studies that no report links to.",
                     kinds={"parquet", "duckdb"}, code_version=reports.CODE_VERSION),
    ],
)
def linked_reports(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    studies = read_studies(pipeline.store)
    links = reports.link_reports(pipeline.store.read_table("reports"), studies,
                                 run_id=context.run.run_id, code_version=reports.CODE_VERSION)
    unreported = reports.studies_without_report(links, studies, run_id=context.run.run_id, code_version=reports.CODE_VERSION)
    pipeline.store.write_table("report_links", links)
    pipeline.store.write_table("studies_without_report", unreported)
    publish_catalog(pipeline)
    coverage = reports.link_coverage(links, studies_total=len(studies))
    yield dg.MaterializeResult(asset_key="report_links", metadata={
        **table_metadata("report_links", links, partitioned=False), **coverage,
        "coverage_by_method": counts_table({k: v for k, v in coverage.items() if k.startswith(("linked_by", "orphan", "ambiguous"))}, "method"),
    })
    yield dg.MaterializeResult(asset_key="studies_without_report", metadata=table_metadata(
        "studies_without_report", unreported, partitioned=False))


@dg.asset(deps=["report_links"], kinds={"parquet", "duckdb"}, group_name=GROUP, code_version=reports.CODE_VERSION)
def report_labels(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    """Per linked report: LVEF, PASP, devices, chamber sizes, LVH, effusion, tamponade, each with its sentence."""
    labels = reports.label_reports(pipeline.store.read_table("reports"), pipeline.store.read_table("report_links"),
                                   run_id=context.run.run_id, code_version=reports.CODE_VERSION)
    pipeline.store.write_table("report_labels", labels)
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={
        **table_metadata("report_labels", labels, partitioned=False),
        "values_per_label": dg.MetadataValue.md(reports.label_counts(labels).to_markdown()),
    })


@dg.asset(deps=["dicom_instances"], kinds={"parquet", "duckdb"}, group_name=GROUP, code_version=reports.CODE_VERSION)
def splits(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    """Train / validation / test per study, assigned by patient (stable: adding patients moves nobody)."""
    train, validation, test = pipeline.settings.split_fractions
    table = reports.split_studies(read_studies(pipeline.store), fractions={"train": train, "validation": validation, "test": test},
                                  run_id=context.run.run_id, code_version=reports.CODE_VERSION)
    pipeline.store.write_table("splits", table)
    publish_catalog(pipeline)
    summary = reports.split_summary(table)
    return dg.MaterializeResult(metadata={
        **table_metadata("splits", table, partitioned=False),
        "fractions": dg.MetadataValue.json({"train": train, "validation": validation, "test": test}),
        "per_split": dg.MetadataValue.md(
            "| split | studies | patients |\n|---|---:|---:|\n"
            + "\n".join(f"| {name} | {v['studies']} | {v['patients']} |" for name, v in summary.items())
        ),
    })


@dg.asset_check(asset=splits, blocking=True, description="No patient appears in two splits.")
def no_patient_in_two_splits(pipeline: PipelineResource) -> dg.AssetCheckResult:
    leaks = reports.find_split_leaks(pipeline.store.read_table("splits"))
    return dg.AssetCheckResult(passed=not leaks, metadata={"leaking_patients": len(leaks),
                                                           "examples": dg.MetadataValue.json(leaks[:5])})
