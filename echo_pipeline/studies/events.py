"""Read the procedure-events file (CSV or Parquet) into `procedure_events`; bad rows go to `event_quarantine`.

Contract (docs/input-contract.md): columns `patient_id`, `procedure` and `event_date` (`date` is accepted for
the last), matched stripped and lower-cased like the reports file. A bad *row* never stops the stage: it is
quarantined with a reason code and its line, and the other rows continue. The raw patient id is replaced here by
the same keyed hash the reports and DICOM headers get (`echo_pipeline.privacy`), so events join studies on
`patient_key` and no table holds the raw id; a message never echoes a field's value.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa

from echo_pipeline.errors import InputContractError
from echo_pipeline.privacy import pseudonymise
from echo_pipeline.reports.csv_records import REASONS as CSV_REASONS
from echo_pipeline.reports.input_file import load_rows, parse_date, text_value
from echo_pipeline.schemas import EVENT_QUARANTINE, PROCEDURE_EVENTS

#: Procedures the analyses know (docs/input-contract.md). Spelling is forgiving: case, spaces and hyphens.
PROCEDURES = ("heart_transplant", "cardiac_surgery", "tavr", "mitraclip", "pacemaker")
DATE_COLUMNS = ("event_date", "date")
QUARANTINE_REASONS = {
    "missing_patient_id": "patient_id is blank",
    "unknown_procedure": f"procedure is not one of {', '.join(PROCEDURES)}",
    "bad_event_date": "event_date is neither YYYY-MM-DD, YYYYMMDD nor a date",
    "missing_event_date": "event_date is blank",
    "duplicate_event": "the same patient, procedure and date as an earlier row (the first is kept)",
    **CSV_REASONS,
}
_HOW_TO_FIX = "fix the events file or point --events / ECHO_PIPELINE_EVENTS at the right one"


def normal_procedure(value) -> str | None:
    """``value`` as a procedure name (lower case, runs of spaces and hyphens as one underscore), or None."""
    text = text_value(value)
    return re.sub(r"[\s\-]+", "_", text.lower()) if text else None


def event_id(patient_key: str, procedure: str, event_date) -> str:
    """Stable id of an event: the same patient, procedure and date give the same id in every file and run."""
    return "evt_" + hashlib.sha256(f"{patient_key}\x1f{procedure}\x1f{event_date}".encode()).hexdigest()[:20]


def read_events(path: Path, key: bytes, *, run_id: str, code_version: str) -> tuple[pa.Table, pa.Table]:
    """(`procedure_events`, `event_quarantine`) for the file at ``path``: every input row in exactly one.

    Raises InputContractError when the file is missing or unreadable or lacks a required column.
    """
    path = Path(path)
    loaded = load_rows(path, "events", _HOW_TO_FIX)
    date_column = _check_columns(loaded.columns, path)
    lineage = {"run_id": run_id, "code_version": code_version}
    kept, seen = [], {}
    quarantined = [{"source_row": r["source_row"], "reason": r["reason"], "message": r["message"]}
                   for r in loaded.rejected]
    for source_row, row in loaded.rows:
        parsed = _parse_row(row, date_column, key)
        if "reason" not in parsed and parsed["event_id"] in seen:
            parsed = {"reason": "duplicate_event",
                      "message": f"same patient, procedure and date as row {seen[parsed['event_id']]}, which is kept"}
        if "reason" in parsed:
            quarantined.append({"source_row": source_row, **parsed})
            continue
        seen[parsed["event_id"]] = source_row
        kept.append({**parsed, "source_file": path.name, "source_row": source_row, **lineage})
    rows = [{"source_file": path.name, "line": loaded.line_of.get(q["source_row"]), **q, **lineage,
             "message": f"{path.name} row {q['source_row']}: {q['message']}"}
            for q in sorted(quarantined, key=lambda q: q["source_row"])]
    return (pa.Table.from_pylist(kept, schema=PROCEDURE_EVENTS),
            pa.Table.from_pylist(rows, schema=EVENT_QUARANTINE))


def _check_columns(columns: list[str], path: Path) -> str:
    """The date column's name; InputContractError naming what is missing."""
    missing = [c for c in ("patient_id", "procedure") if c not in columns]
    dates = [c for c in DATE_COLUMNS if c in columns]
    if missing or not dates:
        need = missing + ([] if dates else ["event_date"])
        raise InputContractError(f"events {path}: no {', '.join(repr(c) for c in need)} column (found "
                                 f"{sorted(columns)}); the file needs patient_id, procedure and event_date")
    return dates[0]


def _parse_row(row: dict, date_column: str, key: bytes) -> dict:
    """One input row → a `procedure_events` row dict, or a dict carrying `reason` and `message`."""
    patient_key = pseudonymise(text_value(row.get("patient_id")), key, "patient")
    if patient_key is None:
        return {"reason": "missing_patient_id", "message": QUARANTINE_REASONS["missing_patient_id"]}
    procedure = normal_procedure(row.get("procedure"))
    if procedure not in PROCEDURES:
        return {"reason": "unknown_procedure", "message": QUARANTINE_REASONS["unknown_procedure"]}
    try:
        event_date = parse_date(row.get(date_column))
    except ValueError:
        # The raw value is not echoed: a malformed field may hold anything, including an identifier.
        return {"reason": "bad_event_date", "message": f"{date_column} is not a date (expected YYYY-MM-DD or YYYYMMDD)"}
    if event_date is None:
        return {"reason": "missing_event_date", "message": QUARANTINE_REASONS["missing_event_date"]}
    return {"event_id": event_id(patient_key, procedure, event_date), "patient_key": patient_key,
            "procedure": procedure, "event_date": event_date}


#: Why the change tables are empty when no events file is configured (shown in their metadata).
NO_EVENTS_NOTE = ("no procedure events file configured (echo-pipeline run --events FILE or ECHO_PIPELINE_EVENTS; "
                  "docs/input-contract.md), so there are no events and the clinical-change tables are empty")


def read_events_if_configured(path: Path | None, key: bytes, *, run_id: str,
                              code_version: str) -> tuple[pa.Table, pa.Table, str | None]:
    """`read_events` of ``path``, or two empty tables and NO_EVENTS_NOTE when no events file is configured."""
    if path is None:
        return PROCEDURE_EVENTS.empty_table(), EVENT_QUARANTINE.empty_table(), NO_EVENTS_NOTE
    return (*read_events(path, key, run_id=run_id, code_version=code_version), None)
