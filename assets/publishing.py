"""Publishing a stage's output: making its tables queryable in the catalog, and what its asset page shows in
the UI (previews, counts, and the table metadata Dagster knows by name). Every asset module that writes a
table uses it.

Table metadata comes from one source, `echo_pipeline.schemas.TABLES`: every asset named after a table carries
its columns (`dagster/column_schema`) and catalog name (`dagster/table_name`) in its definition, so the UI
shows them before the first run (`with_table_metadata`, applied in definitions.py), and again in each
materialisation (`table_metadata`), which is what Dagster's column-schema-change checks compare
(`column_schema_checks`). A partitioned asset's materialisation counts one partition's rows, so it reports
`dagster/partition_row_count`; `dagster/row_count` is kept for unpartitioned tables, where it is the total.
"""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pyarrow as pa

from echo_pipeline import catalog
from echo_pipeline.schemas import TABLES
from echo_pipeline.storage import DataRoot
from resources import PipelineResource

#: The database name DuckDB gives the catalog file (echo.duckdb); its views live in schema `main`.
CATALOG_DATABASE = DataRoot(Path(".")).catalog_path.stem


def publish_catalog(pipeline: PipelineResource) -> None:
    """Make the data root's datasets queryable in the DuckDB catalog (serialised across processes)."""
    catalog.publish(pipeline.store)


def preview(table: pa.Table, rows: int = 5) -> dg.MetadataValue:
    """A markdown preview of the first rows, for the asset's page in the UI."""
    return dg.MetadataValue.md(table.slice(0, rows).to_pandas().to_markdown(index=False) if table.num_rows else "_(empty)_")


def counts_table(counts: dict[str, int], key_name: str) -> dg.MetadataValue:
    """A small two-column markdown table (e.g. rows per reason)."""
    lines = [f"| {key_name} | count |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    return dg.MetadataValue.md("\n".join(lines))


def column_schema(name: str) -> dg.TableSchema:
    """Table ``name``'s columns and Arrow types as Dagster shows them (Columns tab), from its pyarrow schema."""
    return dg.TableSchema(columns=[
        dg.TableColumn(field.name, str(field.type), constraints=dg.TableColumnConstraints(nullable=field.nullable))
        for field in TABLES[name]
    ])


def table_name(name: str) -> str:
    """The fully qualified name users query table ``name`` under in the catalog (`echo.main.<name>`)."""
    return f"{CATALOG_DATABASE}.main.{name}"


def table_metadata(name: str, rows: pa.Table | int, *, partitioned: bool) -> dict:
    """A materialisation's table metadata: columns, catalog name, and the rows written (a table or its row
    count; of one partition when ``partitioned``: then `dagster/partition_row_count`, since the table holds
    every partition)."""
    rows_key = "dagster/partition_row_count" if partitioned else "dagster/row_count"
    return {"dagster/column_schema": column_schema(name), "dagster/table_name": table_name(name),
            rows_key: rows if isinstance(rows, int) else rows.num_rows}


def _with_schema(spec: dg.AssetSpec) -> dg.AssetSpec:
    name = spec.key.to_user_string()
    if name not in TABLES:
        return spec
    return spec.merge_attributes(metadata={"dagster/column_schema": column_schema(name),
                                           "dagster/table_name": table_name(name)})


def with_table_metadata(definitions: Sequence) -> list:
    """The asset definitions with every table asset's column schema and table name in its definition metadata
    (source assets pass through)."""
    return [d.map_asset_specs(_with_schema) if isinstance(d, dg.AssetsDefinition) else d for d in definitions]


def column_schema_checks(definitions: Sequence) -> Sequence[dg.AssetChecksDefinition]:
    """Dagster's `column_schema_change` check (warns) on every table asset: a materialisation whose columns or
    types differ from the previous one's, i.e. a schema change users' SQL may trip over."""
    keys = [key for d in definitions if isinstance(d, dg.AssetsDefinition) for key in d.keys
            if key.to_user_string() in TABLES]
    return dg.build_column_schema_change_checks(assets=keys)
