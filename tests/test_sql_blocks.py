"""Every SQL block in README.md and docs/*.md runs: against empty tables of the declared schemas (fast: a renamed
column or table fails here), and against the catalog of a demo-like run of the whole pipeline (slow: trains a
model for one epoch). A statement about a table the run does not produce, or about object storage, is skipped
with the reason, never silently."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from echo_pipeline import catalog
from echo_pipeline.privacy import KEY_ENV_VAR
from echo_pipeline.schemas import TABLES
from echo_pipeline.sql_console import run_read_only
from echo_pipeline.storage import DataRoot
from ui_helpers import clean_environ, pick_pseudonym_key, trainable_cohort

REPO = Path(__file__).resolve().parents[1]
FRACTIONS = (0.6, 0.1, 0.3)
#: Datasets stored under another name than the view users query, and whose schema they hold.
STORED_AS = {"dicom_instances_by_shard": "dicom_instances", "ingest_quarantine_by_shard": "ingest_quarantine"}
_TABLE_REFERENCE = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()", re.IGNORECASE)


def sql_statements() -> list[tuple[str, str]]:
    """(where, statement) for every statement of every ```sql block, comments removed."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for number, block in enumerate(re.findall(r"```sql\n(.*?)```", path.read_text(), re.DOTALL), start=1):
            for statement in block.split(";"):
                text = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--")).strip()
                if text:
                    found.append((f"{path.relative_to(REPO)} block {number}", text))
    return found


STATEMENTS = sql_statements()


def _skip_reason(statement: str, known: set[str]) -> str | None:
    if "s3://" in statement or statement.split(None, 1)[0].upper() in {"INSTALL", "LOAD", "CREATE"}:
        return "sets up object storage (s3://, httpfs), not a query of the local catalog"
    missing = sorted({name for name in _TABLE_REFERENCE.findall(statement)} - known)
    return f"documents {', '.join(missing)}, not produced here" if missing else None


def test_the_docs_hold_sql_blocks():
    assert len(STATEMENTS) >= 6 and any("eval_summary" in s for _, s in STATEMENTS)


@pytest.fixture(scope="module")
def schema_only() -> duckdb.DuckDBPyConnection:
    """An in-memory database with an empty table per declared schema and the catalog's own view SQL over them."""
    con = duckdb.connect()
    datasets = {**{name: name for name in TABLES if name not in catalog.VIEW_SQL}, **STORED_AS}
    for dataset, schema_name in datasets.items():
        con.register(f"_{dataset}", TABLES[schema_name].empty_table())
        con.execute(f"CREATE TABLE {dataset} AS SELECT * FROM _{dataset}")
    for view, template in catalog.VIEW_SQL.items():
        if all(d in datasets for d in re.findall(r"\{dataset:([a-z0-9_]+)\}", template)):
            con.execute(f"CREATE VIEW {view} AS " + re.sub(r"\{dataset:([a-z0-9_]+)\}", r"\1", template))
    yield con
    con.close()


def with_data_root(statement: str, data_root: Path) -> str:
    """The statement with the docs' `DATA_ROOT` placeholder (the owner-only path mapping) pointing at ``data_root``."""
    return statement.replace("DATA_ROOT/", f"{data_root.as_posix()}/")


@pytest.mark.parametrize("where, statement", STATEMENTS, ids=[w for w, _ in STATEMENTS])
def test_statement_binds_against_the_declared_schemas(schema_only, where, statement, tmp_path):
    known = {row[0] for row in schema_only.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    reason = _skip_reason(statement, known)
    if reason:
        pytest.skip(f"{where}: {reason}")
    if "DATA_ROOT/" in statement:  # an empty path mapping of its declared columns
        mapping = tmp_path / "secrets" / "source_paths"
        mapping.mkdir(parents=True)
        schema_only.execute(f"COPY (SELECT ''::VARCHAR AS relative_path, ''::VARCHAR AS source_path, "
                            f"''::VARCHAR AS shard LIMIT 0) TO '{mapping.as_posix()}/part-00.parquet'")
    schema_only.execute(with_data_root(statement, tmp_path)).fetchall()


@pytest.fixture(scope="module")
def demo_like_catalog(tmp_path_factory) -> Path:
    """The whole graph on the smallest cohort that trains (one epoch), as the demo runs it: the CLI, the demo's
    split, an ephemeral Dagster instance."""
    cohort = trainable_cohort(tmp_path_factory)
    data_root = tmp_path_factory.mktemp("sql_blocks") / "out"
    env = {**clean_environ(), KEY_ENV_VAR: pick_pseudonym_key(cohort, FRACTIONS), "ECHO_PIPELINE_SHARDS": "2",
           "DAGSTER_DISABLE_TELEMETRY": "1"}
    command = [sys.executable, "-m", "echo_pipeline_cli", "run", "--dicom-root", str(cohort / "dicom"),
               "--reports", str(cohort / "reports.csv"), "--view-labels", str(cohort / "view_labels.csv"),
               "--data-root", str(data_root), "--split-fractions", ",".join(map(str, FRACTIONS)), "--epochs", "1"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return data_root


@pytest.mark.slow
@pytest.mark.parametrize("where, statement", STATEMENTS, ids=[w for w, _ in STATEMENTS])
def test_statement_runs_on_a_demo_like_catalog(demo_like_catalog, where, statement):
    reason = _skip_reason(statement, set(catalog.available_views(DataRoot(demo_like_catalog))))
    if reason:
        pytest.skip(f"{where}: {reason}")
    result = run_read_only(demo_like_catalog, with_data_root(statement, demo_like_catalog))  # `echo-pipeline sql`
    assert list(result.columns)  # a result with its named columns (a filter may select no row of a tiny cohort)
