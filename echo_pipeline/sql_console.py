"""Read-only SQL over the catalog's tables, for `echo-pipeline sql` (no DuckDB CLI needed).

The query runs on an in-memory DuckDB connection holding the same views as the catalog file
(`catalog.open_reader`), so it never locks the file the pipeline publishes, and nothing it does
(a stray CREATE or INSERT) can reach the catalog or the Parquet tables: only SELECT-like statements run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from echo_pipeline import catalog
from echo_pipeline.errors import CatalogError
from echo_pipeline.storage import DataRoot

#: Statement kinds that only read; anything else is refused before it runs.
READ_ONLY_STATEMENTS = ("SELECT", "WITH", "FROM", "VALUES", "DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN", "PRAGMA")


def run_read_only(data_root: Path, query: str) -> pd.DataFrame:
    """The query's result; CatalogError naming the fix for a missing catalog, a write or a SQL error."""
    store = DataRoot(data_root)
    if not store.path.is_dir() or not (store.path / "tables").is_dir():
        raise CatalogError(
            f"data root {store.path}: no tables yet; run `echo-pipeline run --data-root {data_root}` first "
            "or pass --data-root of an earlier run"
        )
    first_word = query.strip().split(None, 1)[0].upper() if query.strip() else ""
    if first_word not in READ_ONLY_STATEMENTS:
        raise CatalogError(
            f"only read-only queries run here (statements starting with {', '.join(READ_ONLY_STATEMENTS)}); "
            f"got {first_word or 'an empty query'!r}"
        )
    con = catalog.open_reader(store)
    try:
        return con.execute(query).fetchdf()
    except Exception as error:  # duckdb's errors carry the position and the hint; keep them, add the tables
        views = sorted(row[0] for row in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall())
        raise CatalogError(f"{' '.join(str(error).split())} (tables: {', '.join(views)})") from error
    finally:
        con.close()


def format_result(frame: pd.DataFrame, output_format: str, *, max_rows: int = 1000) -> str:
    """`table` (aligned text, at most max_rows rows), `csv` or `json` (records, one object per row)."""
    if output_format == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if output_format == "json":
        return json.dumps(json.loads(frame.to_json(orient="records", date_format="iso")), indent=1)
    shown = frame.head(max_rows)
    text = shown.to_string(index=False) if len(shown.columns) else "(no columns)"
    footer = f"({len(frame)} rows" + (f", first {max_rows} shown)" if len(frame) > max_rows else ")")
    return f"{text}\n{footer}"
