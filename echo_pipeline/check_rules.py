"""Data-quality rules behind the asset checks (assets/checks.py), as pure functions over tables.

Blocking rules (a failure stops what is downstream in the run; docs/checks.md):
- `masked_clip_problems`: every masked clip has a plausible sector mask;
- `link_coverage`: enough reports are linked to a study (ECHO_PIPELINE_MIN_LINK_COVERAGE, default 0.8);
- `identifier_findings`: no column of a catalog table holds a raw identifier (the rules are in RULES).
Drift rules (warnings): `drift_findings` compares a drop share (files quarantined, clips not kept by the view
filter, clips lost in masking) with an expected maximum and with the share the previous check recorded.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from echo_pipeline.errors import InputContractError
from echo_pipeline.masking.plausibility import AREA_FRACTION
from echo_pipeline.masking.regions import BOX_FAN, BOX_PIXELS
from echo_pipeline.masking.sectors import PIXELS
from echo_pipeline.privacy import pseudonymise

MASK_METHODS = frozenset({BOX_FAN, BOX_PIXELS, PIXELS})
MIN_LINK_COVERAGE_ENV_VAR = "ECHO_PIPELINE_MIN_LINK_COVERAGE"
DEFAULT_MIN_LINK_COVERAGE = 0.8

# --- sector masks ------------------------------------------------------------------------------------------


def masked_clip_problems(masked: pa.Table, masks: pa.Table, quarantine: pa.Table | None = None) -> list[dict]:
    """Masked clips without a plausible mask: [{"sop_instance_uid", "problem", "detail"}], empty when all are fine.

    A clip is fine when `sector_masks` has a row for the same clip and file bytes (sop_instance_uid,
    file_sha256) whose method is one of MASK_METHODS and whose area_fraction lies in
    masking.plausibility.AREA_FRACTION, and `mask_quarantine` (when given) holds no row for those bytes.
    """
    by_clip = {(r["sop_instance_uid"], r["file_sha256"]): r
               for r in masks.select(["sop_instance_uid", "file_sha256", "method", "area_fraction"]).to_pylist()}
    quarantined = set() if quarantine is None else set(
        zip(quarantine.column("sop_instance_uid").to_pylist(), quarantine.column("file_sha256").to_pylist()))
    low, high = AREA_FRACTION
    problems = []
    for uid, sha in zip(masked.column("sop_instance_uid").to_pylist(), masked.column("file_sha256").to_pylist()):
        mask = by_clip.get((uid, sha))
        if mask is None:
            problems.append({"sop_instance_uid": uid, "problem": "no_sector_mask",
                             "detail": "no sector_masks row for this clip and file"})
        elif mask["method"] not in MASK_METHODS:
            problems.append({"sop_instance_uid": uid, "problem": "unknown_method",
                             "detail": f"method {mask['method']!r} is not one of {sorted(MASK_METHODS)}"})
        elif not (mask["area_fraction"] is not None and low <= mask["area_fraction"] <= high):
            problems.append({"sop_instance_uid": uid, "problem": "area_out_of_range",
                             "detail": f"area fraction {mask['area_fraction']} outside [{low}, {high}]"})
        elif (uid, sha) in quarantined:
            problems.append({"sop_instance_uid": uid, "problem": "quarantined",
                             "detail": "the clip is also in mask_quarantine"})
    return problems


# --- report linking ----------------------------------------------------------------------------------------


def link_coverage(links: pa.Table) -> tuple[int, int, float]:
    """(reports linked to a study, reports, linked share); the share of no reports is 0."""
    total = links.num_rows
    linked = total - links.column("study_instance_uid").null_count
    return linked, total, linked / total if total else 0.0


# --- thresholds --------------------------------------------------------------------------------------------


def threshold(variable: str, default: float) -> float:
    """A share in [0, 1] from the environment variable ``variable``, else ``default``."""
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise InputContractError(f"{variable}={text!r}: expected a share between 0 and 1 (e.g. {default}); "
                                 "fix or unset the variable")
    return value


# --- drift -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftLimits:
    """When a drop share is suspicious: above ``max_share``, or up by more than ``max_jump`` since last time."""

    max_share: float
    max_jump: float


#: Drift check → its default limits. Files quarantined by ingestion and A4C clips lost in masking should be
#: rare; most clips are not A4C, so view filtering drops most of them and only a near-total drop is suspicious.
DRIFT_DEFAULTS = {
    "quarantine": DriftLimits(max_share=0.10, max_jump=0.05),
    "view_filter": DriftLimits(max_share=0.95, max_jump=0.10),
    "masking": DriftLimits(max_share=0.10, max_jump=0.05),
}


def drift_limits(name: str) -> DriftLimits:
    """DRIFT_DEFAULTS[name], each limit overridable by ECHO_PIPELINE_MAX_<NAME>_SHARE / _JUMP."""
    default = DRIFT_DEFAULTS[name]
    prefix = f"ECHO_PIPELINE_MAX_{name.upper()}"
    return DriftLimits(threshold(f"{prefix}_SHARE", default.max_share), threshold(f"{prefix}_JUMP", default.max_jump))


def share(dropped: int, total: int) -> float:
    return dropped / total if total else 0.0


def above_max(current: float, limits: DriftLimits, what: str) -> list[str]:
    """A finding when ``current`` (a share of ``what``) exceeds the expected maximum."""
    if current > limits.max_share:
        return [f"{what}: {current:.1%} is above the expected maximum {limits.max_share:.1%}"]
    return []


def jumped(current: float, previous: float | None, limits: DriftLimits, what: str) -> list[str]:
    """A finding when ``current`` rose more than ``max_jump`` above ``previous`` (None: no earlier value)."""
    if previous is not None and current - previous > limits.max_jump:
        return [f"{what}: {current:.1%}, up from {previous:.1%} at the previous check "
                f"(more than {limits.max_jump:.1%} points)"]
    return []


def drift_findings(current: float, previous: float | None, limits: DriftLimits, what: str) -> list[str]:
    """Why ``current`` looks like drift (above the maximum, or jumped since ``previous``); empty when it does not."""
    return above_max(current, limits, what) + jumped(current, previous, limits, what)


# --- identifiers -------------------------------------------------------------------------------------------

#: Column → pseudonym kind (echo_pipeline.privacy): these columns hold only keyed hashes, or null.
PSEUDONYM_COLUMNS = {"patient_key": "patient", "accession_key": "accession"}
#: Column names that would hold a raw identifier; no catalog table may have one (compared case-insensitively).
FORBIDDEN_COLUMNS = frozenset({
    "patient_id", "patientid", "patient_name", "patientname", "patients_name", "patient_birth_date", "birth_date",
    "birthdate", "accession_number", "accessionnumber", "mrn", "medical_record_number", "other_patient_ids",
})
# RE2 patterns (pyarrow.compute), applied to every string column.
PERSON_NAME = r"\b[A-Za-z][A-Za-z'-]*\^[A-Za-z]"  # DICOM PN "FAMILY^GIVEN": a caret between letters
RAW_ID_VALUE = r"(?i)^\s*(?:MRN|PID|PAT|PATIENT|ACC|ACCESSION)?[\s:#_-]*\d{6,12}\s*$"  # a whole value
MRN_TOKEN = r"(?i)\b(?:MRN|medical record (?:number|no\.?))[\s:#_-]*[A-Z]{0,3}\d{3,}"  # anywhere, not redacted

#: Rule → what it forbids (the checks' metadata and docs/checks.md use these words).
RULES: dict[str, str] = {
    "forbidden_column": "a column named like a raw identifier (patient_id, patient_name, birth_date, "
                        "accession_number, mrn, ...)",
    "pseudonym_format": "a patient_key / accession_key value that is not a keyed hash (pat_ / acc_ + 20 hex)",
    "person_name": "a DICOM person name (letters^letters, e.g. DOE^JANE) anywhere in a string value",
    "raw_id_value": "a whole string value that is an id-like number of 6-12 digits, optionally prefixed "
                    "MRN / PID / PAT / ACC (what patient ids and accession numbers look like)",
    "mrn_token": "an MRN / medical record number followed by digits anywhere in a value (redaction missed it)",
}


@dataclass(frozen=True)
class IdentifierFinding:
    """Rows of one column that break one rule. Carries no value, so reporting it leaks nothing."""

    table: str
    column: str
    rule: str
    rows: int
    first_row: int | None  # 0-based row of the first offending value in the table scanned; None for a column rule

    def message(self) -> str:
        where = "" if self.first_row is None else f" ({self.rows} rows, first at row {self.first_row}; values not shown)"
        return f"{self.table}.{self.column}: {RULES[self.rule]}{where}"


def pseudonym_pattern(kind: str) -> str:
    """An RE2 pattern matching exactly the pseudonyms `privacy.pseudonymise` makes for ``kind``."""
    prefix, digest = pseudonymise("probe", b"probe", kind).split("_", 1)
    return rf"^{re.escape(prefix)}_[0-9a-f]{{{len(digest)}}}$"


def identifier_findings(table: pa.Table, name: str) -> list[IdentifierFinding]:
    """Every (column, rule) of ``table`` (called ``name`` in messages) that a raw identifier breaks."""
    findings = [IdentifierFinding(name, column, "forbidden_column", 0, None)
                for column in table.column_names if column.lower() in FORBIDDEN_COLUMNS]
    for column in table.column_names:
        values = table.column(column)
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            continue
        rules = [("person_name", PERSON_NAME, True), ("mrn_token", MRN_TOKEN, True)]
        if column in PSEUDONYM_COLUMNS:
            rules.append(("pseudonym_format", pseudonym_pattern(PSEUDONYM_COLUMNS[column]), False))
        else:
            rules.append(("raw_id_value", RAW_ID_VALUE, True))
        for rule, pattern, match_is_bad in rules:
            matched = pc.fill_null(pc.match_substring_regex(values, pattern), not match_is_bad)  # null is fine
            bad = matched if match_is_bad else pc.invert(matched)
            rows = pc.sum(bad).as_py() or 0
            if rows:
                first = pc.index(bad, True).as_py()
                findings.append(IdentifierFinding(name, column, rule, rows, first))
    return findings
