"""One kept copy per SOP instance: the file with the lexicographically smallest relative path.

Byte-identical files necessarily share their SOP instance UID, so grouping instance rows by UID catches both
kinds of duplicate; the message says which kind it is. The rule only depends on the set of paths, so it
gives the same result applied per shard, across shards, or in any order.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from echo_pipeline.ingest import reasons

Row = dict[str, Any]


def duplicate_row(row: Row, kept: Row, run_id: str, code_version: str) -> Row:
    """The quarantine row for ``row`` (an instance row or a previous duplicate row) whose kept copy is ``kept``."""
    if row.get("file_sha256") == kept["file_sha256"]:
        message = f"expected one copy per file; found the same bytes (sha256) as the kept copy {kept['relative_path']}"
    else:
        message = (
            f"expected a unique SOP instance UID per file; found the UID of the kept copy {kept['relative_path']} "
            "with different bytes"
        )
    return {
        "file_sha256": row["file_sha256"],
        "relative_path": row["relative_path"],
        "file_size": row["file_size"],
        "file_mtime_ns": row.get("file_mtime_ns"),
        "shard": row["shard"],
        "reason": reasons.DUPLICATE,
        "exception_type": None,
        "message": message,
        "sop_instance_uid": row["sop_instance_uid"],
        "duplicate_of": kept["relative_path"],
        "run_id": run_id,
        "code_version": code_version,
    }


def deduplicate(
    instances: list[Row], duplicates: list[Row], run_id: str, code_version: str
) -> tuple[list[Row], list[Row]]:
    """Split instance rows into kept rows and duplicate quarantine rows.

    ``duplicates`` are earlier duplicate rows whose files are unchanged; each must have an instance row with a
    smaller path in its group (the caller re-classifies those that do not). Rows whose content is unchanged
    keep their run_id; rows that change (a new duplicate, a moved duplicate_of) get ``run_id``.
    """
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in instances:
        groups[row["sop_instance_uid"]].append(row)
    kept_by_uid = {uid: min(rows, key=lambda r: r["relative_path"]) for uid, rows in groups.items()}

    kept = [row for row in instances if kept_by_uid[row["sop_instance_uid"]] is row]
    quarantined = [
        duplicate_row(row, kept_by_uid[row["sop_instance_uid"]], run_id, code_version)
        for row in instances
        if kept_by_uid[row["sop_instance_uid"]] is not row
    ]
    for row in duplicates:
        kept_copy = kept_by_uid.get(row["sop_instance_uid"])
        if kept_copy is None:  # its kept copy is not among ``instances`` (a partial merge): leave it as it was
            quarantined.append(row)
            continue
        refreshed = duplicate_row(row, kept_copy, row["run_id"], row["code_version"])
        if refreshed != row:
            refreshed = {**refreshed, "run_id": run_id, "code_version": code_version}
        quarantined.append(refreshed)
    return kept, quarantined
