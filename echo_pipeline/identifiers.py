"""The raw-identifier rules: what no stored table may hold, checked before it is written and by the checks.

`guard(table, name)` runs inside `DataRoot.write_table`, so a table with a raw identifier is refused before
its Parquet file (and so the DuckDB views over it) exists; the `no_raw_identifiers` asset checks run the same
`identifier_findings` on what was written. The rules check the shape of values, not a list of known
identifiers (docs/checks.md): DICOM person names, MRN tokens, id-like numbers, names and numbers as archives
write them into folder names (``ABBOTT_JOHN_12345678``), and paths that are not pseudonymised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from echo_pipeline.errors import EchoPipelineError
from echo_pipeline.privacy import PSEUDONYM_PATH, pseudonymise

#: Column → pseudonym kind (echo_pipeline.privacy): these columns hold only keyed hashes, or null.
PSEUDONYM_COLUMNS = {"patient_key": "patient", "accession_key": "accession"}
#: Columns holding a path under dicom_root: only pseudonymised paths (echo_pipeline.source_paths), or null.
ARCHIVE_PATH_COLUMNS = frozenset({"relative_path", "duplicate_of"})
#: Column names that would hold a raw identifier; no catalog table may have one (compared case-insensitively).
FORBIDDEN_COLUMNS = frozenset({
    "patient_id", "patientid", "patient_name", "patientname", "patients_name", "patient_birth_date", "birth_date",
    "birthdate", "accession_number", "accessionnumber", "mrn", "medical_record_number", "other_patient_ids",
    "source_path",
})
# RE2 patterns (pyarrow.compute), applied to every string column.
PERSON_NAME = r"\b[A-Za-z][A-Za-z'-]*\^[A-Za-z]"  # DICOM PN "FAMILY^GIVEN": a caret between letters
RAW_ID_VALUE = r"(?i)^\s*(?:MRN|PID|PAT|PATIENT|ACC|ACCESSION)?[\s:#_-]*\d{6,12}\s*$"  # a whole value
MRN_TOKEN = r"(?i)(?:^|[^A-Za-z])(?:MRN|medical record (?:number|no\.?))[\s:#_-]*[A-Z]{0,3}\d{3,}"  # not redacted
#: Two words and a long number as one token, the way archives name patient folders: ABBOTT_JOHN_12345678,
#: Doe,Jane 1234567. Words of letters only, so coded values (YBR_FULL_422) and UIDs never match.
NAME_WITH_NUMBER = r"[A-Za-z][A-Za-z'-]+[_^,][A-Za-z][A-Za-z'-]+[_^,\s-]*(?:MRN|ID)?[_^,:#\s-]*\d{6,}"
#: A run of 6+ digits set off by the separators of names and paths (_ ^ / \), as in JOHN_12345678/ or
#: /12345678.dcm. Digits inside UIDs (dots), hashes and UUIDs (letters, hyphens) and prose (spaces) pass.
DIGIT_RUN = r"(?:^|[_^/\\])\d{6,}(?:[_^/\\.]|$)"
#: Two capitalised words joined by _ or ^ in a path-like column (a file or folder named after a person, as
#: archives write names: ABBOTT_JOHN, Doe_Jane); the pipeline's own folder names are lower case (sector_masks).
NAME_PAIR = r"(?:^|[/\\])[A-Z][A-Za-z'-]+[_^][A-Z][A-Za-z'-]+(?:[_^/\\.]|$)"
#: The ids the pipeline mints itself: a prefix and a hex digest, the whole value (`studies.events.event_id`:
#: evt_…, the reports reader's ids for rows without one: rpt_…). A digest can read as WORD_WORD<digits>
#: (evt_fedcba123456…) or be all digits, which the two rules below would take for a name or an MRN; these
#: prefixes are not identifier markers, so the exemption cannot hide one (an "mrn_123…" is still caught).
PIPELINE_HASH_ID = r"^(?:evt|rpt)_[0-9a-f]{16,64}$"
_HASH_EXEMPT_RULES = frozenset({"name_with_number", "digit_run"})

#: Rule → what it forbids (the checks' metadata and docs/checks.md use these words).
RULES: dict[str, str] = {
    "forbidden_column": "a column named like a raw identifier (patient_id, patient_name, birth_date, "
                        "accession_number, mrn, source_path, ...)",
    "pseudonym_format": "a patient_key / accession_key value that is not a keyed hash (pat_ / acc_ + 20 hex)",
    "path_format": "a relative_path / duplicate_of value that is not a pseudonymised path (16 hex digits per "
                   "folder or file name, extension kept)",
    "person_name": "a DICOM person name (letters^letters, e.g. DOE^JANE) anywhere in a string value",
    "raw_id_value": "a whole string value that is an id-like number of 6-12 digits, optionally prefixed "
                    "MRN / PID / PAT / ACC (what patient ids and accession numbers look like)",
    "mrn_token": "an MRN / medical record number followed by digits anywhere in a value (redaction missed it)",
    "name_with_number": "two words and a number of 6+ digits as one token (FAMILY_GIVEN_<digits>): a name and "
                        "an MRN as archives write them into folder names",
    "digit_run": "a number of 6+ digits between _ ^ / \\ separators (GIVEN_<digits>/, /<digits>.dcm)",
    "name_pair": "in a path-like column (*_path, *_file), a file or folder named Word_Word or Word^Word",
}


class RawIdentifierError(EchoPipelineError):
    """A table about to be written holds what looks like a raw identifier; nothing was written."""


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


def _rules_for(column: str) -> list[tuple[str, str, bool]]:
    """(rule, RE2 pattern, whether a match is bad) for one string column."""
    if column in PSEUDONYM_COLUMNS:
        return [("pseudonym_format", pseudonym_pattern(PSEUDONYM_COLUMNS[column]), False)]
    if column in ARCHIVE_PATH_COLUMNS:
        return [("path_format", PSEUDONYM_PATH, False)]
    rules = [("person_name", PERSON_NAME, True), ("mrn_token", MRN_TOKEN, True), ("raw_id_value", RAW_ID_VALUE, True),
             ("name_with_number", NAME_WITH_NUMBER, True), ("digit_run", DIGIT_RUN, True)]
    if column.endswith(("_path", "_file")):
        rules.append(("name_pair", NAME_PAIR, True))
    return rules


def identifier_findings(table: pa.Table, name: str) -> list[IdentifierFinding]:
    """Every (column, rule) of ``table`` (called ``name`` in messages) that a raw identifier breaks."""
    findings = [IdentifierFinding(name, column, "forbidden_column", 0, None)
                for column in table.column_names if column.lower() in FORBIDDEN_COLUMNS]
    for column in table.column_names:
        values = table.column(column)
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            continue
        hash_id = pc.fill_null(pc.match_substring_regex(values, PIPELINE_HASH_ID), False)
        for rule, pattern, match_is_bad in _rules_for(column):
            matched = pc.fill_null(pc.match_substring_regex(values, pattern), not match_is_bad)  # null is fine
            bad = matched if match_is_bad else pc.invert(matched)
            if rule in _HASH_EXEMPT_RULES:
                bad = pc.and_(bad, pc.invert(hash_id))
            rows = pc.sum(bad).as_py() or 0
            if rows:
                first = pc.index(bad, True).as_py()
                findings.append(IdentifierFinding(name, column, rule, rows, first))
    return findings


def guard(table: pa.Table, name: str) -> None:
    """Raise RawIdentifierError (naming columns and rules, never values) when ``table`` breaks a rule."""
    findings = identifier_findings(table, name)
    if findings:
        raise RawIdentifierError(
            f"refusing to write {name}: " + "; ".join(f.message() for f in findings)
            + ". A stage leaked an identifier (or the archive holds one where none was expected); nothing was "
              "written or published. See docs/checks.md, fix the stage or the input, and re-run.")
