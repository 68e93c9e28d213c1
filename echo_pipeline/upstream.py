"""Read an upstream table through the DuckDB catalog, or fail naming the assets to materialise first.

Every step that reads another stage's table goes through `read_upstream`, so a step run before its inputs
exist fails the same way everywhere: an UpstreamNotMaterialisedError that lists the missing tables (each
table is written by the asset of the same name).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pyarrow as pa

from echo_pipeline import catalog
from echo_pipeline.errors import UpstreamNotMaterialisedError
from echo_pipeline.storage import DataRoot


def require_tables(data_root: DataRoot, needs: Iterable[str]) -> None:
    """Raise UpstreamNotMaterialisedError unless every table in ``needs`` is a view of the catalog."""
    missing = sorted(set(needs) - set(catalog.available_views(data_root)))
    if missing:
        raise UpstreamNotMaterialisedError(
            f"{data_root.path}: upstream tables {missing} have not been materialised yet; "
            f"materialise {', '.join(missing)} first")


def read_upstream(data_root: DataRoot, sql: str, needs: Iterable[str], params: Sequence | None = None) -> pa.Table:
    """The result of ``sql`` over the catalog's views, after checking that the tables in ``needs`` exist."""
    require_tables(data_root, needs)
    return catalog.open_reader(data_root).sql(sql, params=list(params) if params else None).to_arrow_table()


def read_partition(data_root: DataRoot, table: str, partition: str) -> pa.Table:
    """One partition of an upstream table, or UpstreamNotMaterialisedError naming ``table[partition]``."""
    result = data_root.read_table(table, partition)
    if result is None:
        raise UpstreamNotMaterialisedError(
            f"{data_root.path}: {table} has no partition {partition} yet; materialise {table}[{partition}] first")
    return result
