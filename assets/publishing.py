"""Publishing a stage's output: making its tables queryable in the catalog, and the previews and counts its
asset page shows in the UI. Every asset module that writes a table uses it."""

import dagster as dg
import pyarrow as pa

from echo_pipeline import catalog
from resources import PipelineResource


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
