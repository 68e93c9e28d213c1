"""DICOM unique identifiers (UI value representation) checked before any is trusted as a key.

PS3.5 §9.1: a UID is at most 64 characters of digits and dots, and no dot-separated component is empty.
UIDs key every table downstream, so a file whose instance, series or study UID breaks the rule is
quarantined (`invalid_uid`) at ingestion: a value such as `../../x`, an absolute path, a NUL byte or a
5,000-character string never goes further. The standard also forbids leading zeros in a component
("1.02"), but real vendors write them (e.g. `1.2.840.0113654...`) and they are harmless here — digits and
dots cannot name another folder, and derived file names are hashes — so they are accepted rather than
losing those clips.
"""

from __future__ import annotations

import re

MAX_UID_CHARS = 64
CHECKED_UIDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_SHOWN_CHARS = 80


def uid_problem(value: str) -> str | None:
    """Why ``value`` is not a valid DICOM UID, or None when it is one."""
    if len(value) > MAX_UID_CHARS:
        return f"{len(value)} characters, more than the {MAX_UID_CHARS} allowed"
    if _UID.fullmatch(value) is None:
        return "not dot-separated numbers (DICOM PS3.5 §9.1)"
    return None


def shown(value: str) -> str:
    """A bounded, printable rendering of an untrusted value for a message (repr, cut to 80 characters)."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + f"...' ({len(value)} characters)"
