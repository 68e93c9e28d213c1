"""Every table asset shows its columns (from `echo_pipeline.schemas`, the one source) and catalog name in the
UI before any run, carries them in each materialisation, and counts a partitioned table's rows per partition."""

import dagster as dg

from assets.publishing import CATALOG_DATABASE
from definitions import build_definitions
from echo_pipeline.schemas import TABLES
from echo_pipeline.settings import PipelineSettings
from echo_pipeline.sharding import configured_shard_count, shard_of


def arrow_columns(name: str) -> list[tuple[str, str]]:
    return [(field.name, str(field.type)) for field in TABLES[name]]


def dagster_columns(schema: dg.TableSchema) -> list[tuple[str, str]]:
    return [(column.name, column.type) for column in schema.columns]


def test_every_table_asset_declares_its_pyarrow_columns_and_catalog_name():
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    tables = [key for key in graph.get_all_asset_keys() if key.to_user_string() in TABLES]
    assert len(tables) >= 20  # the lookup sees the stage tables
    for key in tables:
        name, metadata = key.to_user_string(), graph.get(key).metadata
        assert dagster_columns(metadata["dagster/column_schema"]) == arrow_columns(name), name
        assert metadata["dagster/table_name"] == f"{CATALOG_DATABASE}.main.{name}"
    checked = {key.asset_key for checks in defs.asset_checks for key in checks.check_keys
               if key.name == "column_schema_change"}
    assert checked == set(tables)


def test_partitioned_materialisation_counts_its_partition_and_carries_the_schema(tmp_path):
    dicom_root = tmp_path / "dicom"
    dicom_root.mkdir()
    (dicom_root / "not-dicom.dcm").write_bytes(b"plain text, no DICOM preamble")  # a quarantine row
    settings = PipelineSettings(dicom_root=dicom_root, reports_path=tmp_path / "reports.csv", view_labels_path=None,
                                data_root=tmp_path / "out")
    defs = build_definitions(settings)
    shard = shard_of("not-dicom.dcm", configured_shard_count())
    instance = dg.DagsterInstance.ephemeral()
    selection = dg.AssetSelection.assets("dicom_instances", "ingest_quarantine", "scan_skipped")
    for _ in range(2):  # twice: the schema-change check compares two materialisations
        result = dg.materialize([*defs.assets, *defs.asset_checks], selection=selection, partition_key=shard,
                                resources=defs.resources, instance=instance)
    events = {m.asset_key.to_user_string(): m.metadata
              for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())}
    quarantine = events["ingest_quarantine"]
    assert quarantine["dagster/partition_row_count"].value == 1 and "dagster/row_count" not in quarantine
    assert dagster_columns(quarantine["dagster/column_schema"].schema) == arrow_columns("ingest_quarantine")
    assert quarantine["dagster/table_name"].value == f"{CATALOG_DATABASE}.main.ingest_quarantine"
    schema_checks = [e for e in result.get_asset_check_evaluations() if e.check_name == "column_schema_change"]
    assert len(schema_checks) == 3 and all(e.passed for e in schema_checks)
