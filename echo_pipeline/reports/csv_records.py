"""Read a reports CSV record by record, so that one malformed row costs that row only.

A whole-file parser (pandas' C reader) refuses a file for one row with an extra field, and an unclosed quote
makes it swallow every following report into one field. Here the file is split into physical lines, lines are
joined into a record only while a quote is open (RFC 4180: an odd number of `"` so far), and each record is
parsed by the csv module on its own. A record that cannot be trusted is rejected with its line number and the
reader goes on:

- `unclosed_quote`: the quote opened on that line never closes (within MAX_RECORD_CHARS); the next line is read
  as the start of the next record, so the reports after it are kept;
- `malformed_row`: the record does not have as many fields as the header (a multi-line one is re-read from the
  line after its first, for the same reason);
- `field_too_large`: a field longer than MAX_FIELD_CHARS;
- `bad_encoding`: a line that is not UTF-8;
- `repeated_header`: a copy of the header row (files concatenated with their headers); dropped and counted.

Records are numbered like the data rows of a well-formed file (`source_row`, 0-based, header excluded; blank
lines skipped), so every record ends in `reports` or `report_quarantine` exactly once.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

#: A report is a few KB; anything past this in one field is not a report (reason field_too_large).
MAX_FIELD_CHARS = 100_000
#: A quote still open after this many characters is taken as unclosed (reason unclosed_quote).
MAX_RECORD_CHARS = 1_000_000

REASONS = {
    "unclosed_quote": "a quote opened on that line never closes; the line is dropped and reading resumes at the next",
    "malformed_row": "the row has more or fewer fields than the header",
    "field_too_large": f"a field is longer than {MAX_FIELD_CHARS} characters",
    "bad_encoding": "the line is not valid UTF-8",
    "repeated_header": "a copy of the header row inside the data (dropped, counted here)",
}


@dataclass
class CsvRecords:
    """The raw header, the good records as (source_row, values in header order), and the rejected ones."""

    header: list[str]
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"source_row", "reason", "message"}
    line_of: dict[int, int] = field(default_factory=dict)  # source_row → its first (1-based) line in the file


class CsvHeaderError(ValueError):
    """The file has no parseable header row (empty, or the header itself is broken)."""


def read_csv_records(path: Path) -> CsvRecords:
    """Every record of the CSV file at ``path``; raises CsvHeaderError without a usable header, OSError when
    the file cannot be read."""
    data = path.read_bytes()
    lines = data.split(b"\n" if b"\n" in data or b"\r" not in data else b"\r")  # \r alone: old Mac line ends
    header_record = next(_records(lines, 0, None), None)
    if header_record is None:
        raise CsvHeaderError("the file is empty")
    line, end, fields, problem = header_record
    if problem is not None:
        raise CsvHeaderError(f"the header row (line {line}) cannot be parsed: {problem[1]}")
    header = [name.removeprefix("\ufeff") if i == 0 else name for i, name in enumerate(fields)]
    normalised_header = [_normal(name) for name in header]
    result = CsvRecords(header)
    for source_row, (line, _, fields, problem) in enumerate(_records(lines, end, len(header))):
        result.line_of[source_row] = line
        if problem is None and [_normal(value) for value in fields] == normalised_header:
            problem = ("repeated_header", "a copy of the header row")
        if problem is not None:
            result.rejected.append({"source_row": source_row, "reason": problem[0], "message": f"line {line}: {problem[1]}"})
        else:
            result.rows.append((source_row, fields))
    return result


def _normal(name: str) -> str:
    return name.strip().lower()


def _records(lines: list[bytes], start: int, width: int | None):
    """(1-based first line, index after the record, fields, None) per record from line index ``start``, or
    (line, end, None, (reason, detail)) for a rejected one; ``width`` is the header's field count (None while
    reading the header). Blank lines are skipped. After a rejected multi-line record, reading resumes at its
    second line: a quote left open swallows the lines after it, and those are the next reports.
    """
    count = len(lines)
    if count and lines[-1] == b"":  # the newline ending the last line
        count -= 1
    while start < count:
        end, text, problem = _assemble(lines, start, count)
        fields: list[str] = []
        if problem is None:
            fields, problem = _parse(text)
        if problem is None and len(fields) <= 1 and not "".join(fields).strip():  # a blank line
            start = end
            continue
        if problem is None and width is not None and len(fields) != width:
            problem = ("malformed_row", f"{len(fields)} fields, expected {width} as in the header")
        if problem is not None and problem[0] == "malformed_row" and end - start > 1:
            # The record ran over several lines and does not parse as one row: most likely a quote never closed.
            problem = ("unclosed_quote", f"a quote opened here seems never closed ({problem[1]} over lines "
                                         f"{start + 1}-{end}); read again from line {start + 2}")
        if problem is None:
            yield start + 1, end, fields, None
            start = end
        else:
            yield start + 1, end, None, problem
            start = start + 1 if problem[0] != "bad_encoding" else end


def _assemble(lines: list[bytes], start: int, count: int) -> tuple[int, str, tuple[str, str] | None]:
    """(index after the record, its text, None), or a problem: lines joined while a quote is open."""
    parts, quotes, chars, index = [], 0, 0, start
    while index < count:
        try:
            text = lines[index].removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as error:
            return index + 1, "", ("bad_encoding", f"byte {error.start} is not UTF-8 ({error.reason})")
        parts.append(text)
        quotes, chars, index = quotes + text.count('"'), chars + len(text), index + 1
        if quotes % 2 == 0:
            return index, "\n".join(parts), None
        if chars > MAX_RECORD_CHARS:
            break
    return index, "", ("unclosed_quote", "a quote opened on this line is never closed")


def _parse(text: str) -> tuple[list[str], tuple[str, str] | None]:
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as error:  # "field larger than field limit" when a field runs past csv's own limit
        reason = "field_too_large" if "larger than field limit" in str(error) else "malformed_row"
        return [], (reason, f"csv: {error}")
    longest = max((len(value) for value in fields), default=0)
    if longest > MAX_FIELD_CHARS:
        return [], ("field_too_large", f"a field of {longest} characters (at most {MAX_FIELD_CHARS})")
    return fields, None
