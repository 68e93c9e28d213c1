"""docs/tables.md documents every table and column that echo_pipeline/schemas/ declares."""

import re
from pathlib import Path

from echo_pipeline.schemas import TABLES

DOC = (Path(__file__).resolve().parents[1] / "docs" / "tables.md").read_text()


def sections() -> dict[str, str]:
    parts = re.split(r"^## ", DOC, flags=re.MULTILINE)
    return {part.splitlines()[0].strip(): part for part in parts[1:]}


def test_every_table_and_column_is_documented():
    documented = sections()
    missing_tables = [name for name in TABLES if name not in documented]
    assert missing_tables == []
    missing_columns = {
        name: [column for column in schema.names if not re.search(rf"\b{re.escape(column)}\b", documented[name])]
        for name, schema in TABLES.items()
    }
    assert {name: cols for name, cols in missing_columns.items() if cols} == {}
