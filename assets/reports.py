"""Stage 4: reports read and validated, linked to studies, labelled, and studies split by patient."""


from collections import Counter

import dagster as dg

from assets.publishing import counts_table, preview, publish_catalog, table_metadata
from echo_pipeline import reports
from echo_pipeline.reports.inputs import read_studies
from echo_pipeline.settings import PipelineSettings
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


# The rules a run labels with come from ECHO_PIPELINE_LABEL_RULES (`echo-pipeline run --label-rules` sets it)
# when the definitions load; their hash is part of the code version, so new rules re-label.
LABELS_CODE_VERSION = reports.labelling_code_version(
    reports.load_label_rules(PipelineSettings.from_env().label_rules_path))


@dg.multi_asset(
    specs=[
        dg.AssetSpec("report_labels", deps=["report_links"], group_name=GROUP, kinds={"parquet", "duckdb"},
                     code_version=LABELS_CODE_VERSION,
                     description="Per linked report: the labels of label_rules.yaml (LVEF, PASP, devices, chamber "
                                 "sizes, LVH, effusion, tamponade, AF, RA pressure, ...), each with its sentence."),
        dg.AssetSpec("report_label_gaps", deps=["report_links"], group_name=GROUP, kinds={"parquet", "duckdb"},
                     code_version=LABELS_CODE_VERSION,
                     description="Sentence shapes that name a label's target but yielded no value: the rules to add."),
    ],
    can_subset=True,  # one pass makes both; either can be asked for alone
)
def labelled_reports(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    rules = reports.load_label_rules(pipeline.settings.label_rules_path)
    result = reports.label_reports(pipeline.store.read_table("reports"), pipeline.store.read_table("report_links"),
                                   run_id=context.run.run_id, code_version=LABELS_CODE_VERSION, rules=rules)
    wanted = {key.to_user_string() for key in context.selected_asset_keys}
    for name, table in (("report_labels", result.labels), ("report_label_gaps", result.gaps)):
        if name in wanted:
            pipeline.store.write_table(name, table)
    publish_catalog(pipeline)
    rules_meta = {"label_rules_sha256": rules.sha256, "label_rules_files": dg.MetadataValue.json(list(rules.sources))}
    if "report_labels" in wanted:
        yield dg.MaterializeResult(asset_key="report_labels", metadata={
            **table_metadata("report_labels", result.labels, partitioned=False), **rules_meta,
            "values_per_label": dg.MetadataValue.md(reports.label_counts(result.labels).to_markdown()),
            "mentions_by_assertion_status": dg.MetadataValue.md(
                reports.status_counts(result.statuses).to_markdown(index=False)),
        })
    if "report_label_gaps" in wanted:
        top = result.gaps.sort_by([("sentence_count", "descending")]).slice(0, 20)
        yield dg.MaterializeResult(asset_key="report_label_gaps", metadata={
            **table_metadata("report_label_gaps", result.gaps, partitioned=False), **rules_meta,
            "top_20_gaps": dg.MetadataValue.md(top.select(["label", "sentence_count", "report_count", "sentence_shape",
                                                           "example_report_id"]).to_pandas().to_markdown(index=False)),
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
