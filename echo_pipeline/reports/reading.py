"""Read the configured reports file (CSV or Parquet) into the `reports` table; bad rows go to quarantine.

Contract (docs/reports.md): a `report_text` column plus at least one linking key column among
`accession_number`, `study_instance_uid`, or both `patient_id` and `study_date`; `report_id` is optional.
Column names are matched after stripping spaces and lower-casing; two names that match the same one are a
broken contract, as are a missing or unreadable file and a missing column (InputContractError). A bad *row*
never stops the stage: it is quarantined with a reason code and the other rows continue. CSV files are read
record by record (csv_records.py), so a malformed row, an unclosed quote or a repeated header row costs that
row only.

Raw patient ids and accession numbers are replaced here by keyed hashes (`echo_pipeline.privacy`), so no table
downstream of this module ever holds them. Report text is kept as written (the model trains on it), except
that the row's own patient id and accession number, and any "MRN: ..." field, are replaced by placeholders.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa

from echo_pipeline.errors import InputContractError
from echo_pipeline.privacy import pseudonymise
from echo_pipeline.reports.csv_records import REASONS as CSV_REASONS
from echo_pipeline.reports.input_file import is_missing as _is_missing
from echo_pipeline.reports.input_file import load_rows
from echo_pipeline.reports.input_file import parse_date as _parse_date
from echo_pipeline.reports.input_file import text_value as _text
from echo_pipeline.schemas import REPORT_QUARANTINE, REPORTS

TEXT_COLUMN = "report_text"
KEY_COLUMNS = ("accession_number", "study_instance_uid", "patient_id", "study_date")
#: Reason codes of `report_quarantine.reason`.
QUARANTINE_REASONS = {
    "empty_text": "report_text is empty or blank",
    "bad_type": "a value has a type the contract does not allow (report_text must be text)",
    "bad_study_date": "study_date is neither YYYY-MM-DD, YYYYMMDD nor a date",
    "no_link_key": "no accession number, no study instance UID and not both patient id and study date",
    "duplicate_report": "byte-identical copy of an earlier row (the first copy is kept)",
    "conflicting_report_id": "report_id shared by rows with different content (all such rows are quarantined)",
    **CSV_REASONS,
}
_MRN_FIELD = re.compile(r"\b(MRN|medical record (?:number|no\.?))(\s*[:#]?\s*)[A-Z0-9-]+", re.IGNORECASE)
_HOW_TO_FIX = "fix the reports file or point --reports / ECHO_PIPELINE_REPORTS at the right one"


def read_reports(path: Path, key: bytes, *, run_id: str, code_version: str) -> tuple[pa.Table, pa.Table]:
    """Return (`reports`, `report_quarantine`) tables for the file at ``path``.

    Every input row ends up in exactly one of the two tables, identified by `source_row` (0-based data row in
    the file, header excluded). Raises InputContractError when the file is missing, unreadable or lacks the
    required columns.
    """
    path = Path(path)
    columns, rows, rejected = _load(path)
    _check_columns(columns, path)
    kept = []
    quarantined = [{"source_file": path.name, "source_row": r["source_row"], "report_id": None, "reason": r["reason"],
                    "message": f"{path.name} {r['message']}"} for r in rejected]
    for source_row, row in rows:
        parsed = _parse_row(row, source_row, path.name, key)
        (quarantined if "reason" in parsed else kept).append(parsed)
    kept, duplicates = _resolve_duplicate_ids(kept)
    quarantined = sorted(quarantined + duplicates, key=lambda r: r["source_row"])
    lineage = {"run_id": run_id, "code_version": code_version}
    reports = pa.Table.from_pylist([{**r, **lineage} for r in kept], schema=REPORTS)
    quarantine = pa.Table.from_pylist(
        [{name: r.get(name) for name in REPORT_QUARANTINE.names if name not in lineage} | lineage for r in quarantined],
        schema=REPORT_QUARANTINE,
    )
    return reports, quarantine


def derived_report_id(report_text: str, source_row: int) -> str:
    """Stable id for a report without one: same text at the same row gives the same id on every run."""
    return "rpt_" + hashlib.sha256(f"{source_row}\x1f{report_text}".encode()).hexdigest()[:20]


def _load(path: Path) -> tuple[list[str], list[tuple[int, dict]], list[dict]]:
    """(normalised column names, (source_row, row by normalised name) per row, rows rejected while reading)."""
    rows = load_rows(path, "reports", _HOW_TO_FIX)
    return rows.columns, rows.rows, rows.rejected


def _check_columns(columns: list[str], path: Path) -> None:
    columns = set(columns)
    if TEXT_COLUMN not in columns:
        raise InputContractError(
            f"reports {path}: no '{TEXT_COLUMN}' column (found {sorted(columns)}); add the report text column "
            f"or rename it to '{TEXT_COLUMN}'"
        )
    has_key = {"accession_number", "study_instance_uid"} & columns or {"patient_id", "study_date"} <= columns
    if not has_key:
        raise InputContractError(
            f"reports {path}: no linking key column (found {sorted(columns)}); provide accession_number, "
            "study_instance_uid, or both patient_id and study_date so reports can be joined to studies"
        )


def _parse_row(row: dict, source_row: int, source_file: str, key: bytes) -> dict:
    """One input row → a `reports` row dict, or a quarantine dict carrying `reason` and `message`."""
    given_id = _text(row.get("report_id"))
    base = {"source_file": source_file, "source_row": source_row, "report_id": given_id}

    def quarantine(reason: str, detail: str) -> dict:
        return {**base, "reason": reason, "message": f"{source_file} row {source_row}: {detail}"}

    text = row.get(TEXT_COLUMN)
    if text is not None and not isinstance(text, str) and not _is_missing(text):
        return quarantine("bad_type", f"report_text is a {type(text).__name__}, expected text")
    text = "" if _is_missing(text) else text
    if not text.strip():
        return quarantine("empty_text", "report_text is empty")
    try:
        study_date = _parse_date(row.get("study_date"))
    except ValueError:
        # The raw value is not echoed: a malformed date field may hold anything, including an identifier.
        return quarantine("bad_study_date", "study_date is not a date (expected YYYY-MM-DD or YYYYMMDD)")
    parsed = {
        **base,
        "report_id": given_id or derived_report_id(text, source_row),
        "accession_key": pseudonymise(_text(row.get("accession_number")), key, "accession"),
        "study_instance_uid": _text(row.get("study_instance_uid")),
        "patient_key": pseudonymise(_text(row.get("patient_id")), key, "patient"),
        "study_date": study_date,
        "report_text": redact_identifiers(text, _text(row.get("patient_id")), _text(row.get("accession_number"))),
    }
    if not (parsed["accession_key"] or parsed["study_instance_uid"] or (parsed["patient_key"] and study_date)):
        return quarantine("no_link_key", QUARANTINE_REASONS["no_link_key"])
    return parsed


def redact_identifiers(text: str, patient_id: str | None, accession_number: str | None) -> str:
    """Replace the row's raw patient id and accession number, and any MRN field, inside the report text."""
    for raw, placeholder in ((patient_id, "[PATIENT_ID]"), (accession_number, "[ACCESSION]")):
        if raw and len(raw) >= 4:  # shorter values would also hit ordinary numbers in the text
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(raw)}(?![A-Za-z0-9])", placeholder, text)
    return _MRN_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED]", text)


def _resolve_duplicate_ids(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Keep the first of byte-identical copies; quarantine every row of an id shared by different content."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["report_id"], []).append(row)
    kept, dropped = [], []
    for row in rows:
        group = groups[row["report_id"]]
        where = f"{row['source_file']} row {row['source_row']}"
        if len(group) == 1 or row is group[0] and len({_content(r) for r in group}) == 1:
            kept.append(row)
        elif len({_content(r) for r in group}) > 1:
            others = sorted(r["source_row"] for r in group if r is not row)
            dropped.append({**row, "reason": "conflicting_report_id",
                            "message": f"{where}: report_id shared with rows {others} whose content differs; "
                                       "give each report its own id"})
        else:
            dropped.append({**row, "reason": "duplicate_report",
                            "message": f"{where}: identical copy of row {group[0]['source_row']}, which is kept"})
    return kept, dropped


def _content(row: dict) -> tuple:
    return row["report_text"], row["accession_key"], row["study_instance_uid"], row["patient_key"], row["study_date"]
