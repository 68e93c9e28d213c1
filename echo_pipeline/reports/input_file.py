"""Reading a user's table file (CSV or Parquet) row by row: what the reports file and the procedure-events file
share. Column names are matched stripped and lower-cased; CSV files are read record by record
(`csv_records`), so a malformed row costs that row only; values arrive as text (CSV) or as Parquet typed them,
and `text_value` / `parse_date` turn them into keys and dates the same way for every input.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from echo_pipeline.errors import InputContractError
from echo_pipeline.reports.csv_records import CsvHeaderError, read_csv_records


@dataclass
class InputRows:
    """Normalised column names, (source_row, row by column) per good row, rows rejected while reading (dicts
    with source_row, reason, message), and each source row's first line in the file (CSV only)."""

    columns: list[str]
    rows: list[tuple[int, dict]]
    rejected: list[dict]
    line_of: dict[int, int] = field(default_factory=dict)


def load_rows(path: Path, what: str, how_to_fix: str) -> InputRows:
    """Every row of the CSV or Parquet file at ``path``; InputContractError (naming ``what`` and ending with
    ``how_to_fix``) when the file is missing, unreadable, of another kind or has clashing column names."""
    path = Path(path)
    if not path.exists():
        raise InputContractError(f"{what} {path}: does not exist; {how_to_fix}")
    if not path.is_file():
        raise InputContractError(f"{what} {path}: is a directory, expected a CSV or Parquet file; {how_to_fix}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Everything as text: ids such as "000123" must not lose their leading zeros to type inference.
            records = read_csv_records(path)
            columns = normalised_columns(records.header, path, what)
            rows = [(source_row, dict(zip(columns, values))) for source_row, values in records.rows]
            return InputRows(columns, rows, records.rejected, records.line_of)
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise InputContractError(f"{what} {path}: unsupported extension {path.suffix!r}; provide .csv or .parquet")
    except InputContractError:
        raise
    except (CsvHeaderError, OSError, ValueError, pa.ArrowException) as exc:
        raise InputContractError(
            f"{what} {path}: cannot be read as {suffix.lstrip('.')} ({type(exc).__name__}: {exc}); "
            f"check that it is a UTF-8 CSV with a header row or a valid Parquet file; {how_to_fix}"
        ) from exc
    columns = normalised_columns([str(c) for c in frame.columns], path, what)
    return InputRows(columns, list(enumerate(dict(zip(columns, row.values())) for row in frame.to_dict("records"))), [])


def normalised_columns(names: list[str], path: Path, what: str) -> list[str]:
    """Column names stripped and lower-cased; InputContractError when two of them become one."""
    seen: dict[str, str] = {}
    for name in names:
        normal = name.strip().lower()
        if normal in seen:
            raise InputContractError(
                f"{what} {path}: columns {seen[normal]!r} and {name!r} both read as {normal!r} (names are matched "
                "without case and surrounding spaces); rename or drop one of them"
            )
        seen[normal] = name
    return list(seen)


def is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def text_value(value) -> str | None:
    """A key as stripped text; numbers read from Parquet lose a spurious '.0'; blanks become None."""
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def parse_date(value) -> dt.date | None:
    """A date from a date, a timestamp, or text as YYYY-MM-DD or YYYYMMDD; None when blank; ValueError else."""
    if is_missing(value):
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(text)
