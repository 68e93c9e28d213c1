"""List the archive: every regular file under `dicom_root`, whatever its name, grouped into stable shards.

Scanning reads directory entries only (no file contents), so it is cheap enough to run before every shard
ingest. Symbolic links and special files (FIFOs, sockets, devices) are not followed or read: reading a FIFO
would block, and a link to a file inside the archive would only duplicate it. They are not silent either:
each is a `SkippedEntry` (the `scan_skipped` table), as is a sub-folder that cannot be listed. A name that
is not valid UTF-8 (Latin-1 bytes, say) is kept with its bytes escaped (`caf\\xe9/a.dcm`) and marked, so
ingestion quarantines that one file (`unreadable_path`) instead of the run failing on it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from echo_pipeline.errors import InputContractError
from echo_pipeline.schemas import SCAN_SKIPPED
from echo_pipeline.sharding import shard_names, shard_of
from echo_pipeline.source_paths import pseudonymise_path

#: `scan_skipped.reason` codes: entries under dicom_root that are not ingested, and why.
SKIP_REASONS = {
    "symlink": "a symbolic link; links are never followed (the target, if inside the archive, is ingested itself)",
    "special_file": "a FIFO, socket or device node; reading it could block or never end",
    "unlistable_folder": "a sub-folder whose entries cannot be listed (permissions, I/O error)",
    "unreadable_entry": "an entry whose type or size cannot be read (it vanished, or an I/O error)",
}


@dataclass(frozen=True)
class ScannedFile:
    """One candidate file: its POSIX path relative to dicom_root, size, modification time and shard.

    ``unreadable_name``: the path is not valid UTF-8; ``relative_path`` shows its bytes escaped and is not
    opened (ingestion quarantines it as `unreadable_path`).
    """

    relative_path: str
    size: int
    mtime_ns: int
    shard: str
    unreadable_name: bool = False


@dataclass(frozen=True)
class SkippedEntry:
    """An entry the scan did not list as a file: its path relative to dicom_root, reason, shard and detail."""

    relative_path: str
    reason: str  # a key of SKIP_REASONS
    shard: str
    detail: str


@dataclass(frozen=True)
class ArchiveScan:
    """Files and skipped entries by shard; every shard is a key of both, maybe with an empty list."""

    files: dict[str, list[ScannedFile]]
    skipped: dict[str, list[SkippedEntry]] = field(default_factory=dict)


def scan_archive(dicom_root: str | os.PathLike, n_shards: int) -> ArchiveScan:
    """Every regular file and every skipped entry under ``dicom_root``, by shard ("00".."NN").

    A file's shard depends only on its relative path (echo_pipeline.sharding.shard_of), so adding files never
    moves existing ones. Lists are sorted by relative path. Raises InputContractError for a missing or
    unlistable root; anything below the root only ever becomes a row.
    """
    root = Path(dicom_root)
    if not root.is_dir():
        raise InputContractError(
            f"dicom_root {root}: not an existing directory; set ECHO_PIPELINE_DICOM_ROOT to the DICOM archive folder"
        )
    names = shard_names(n_shards)
    files: dict[str, list[ScannedFile]] = {name: [] for name in names}
    skipped: dict[str, list[SkippedEntry]] = {name: [] for name in names}
    try:
        top = list(os.scandir(root))
    except OSError as exc:
        raise InputContractError(f"{root}: cannot list the folder ({exc.strerror}); fix its permissions and re-run") from exc
    for item in _walk(top, root, n_shards):
        (files if isinstance(item, ScannedFile) else skipped)[item.shard].append(item)
    for group in (files, skipped):
        for entries in group.values():
            entries.sort(key=lambda e: e.relative_path)
    return ArchiveScan(files, skipped)


def scan_dicom_root(dicom_root: str | os.PathLike, n_shards: int) -> dict[str, list[ScannedFile]]:
    """Every regular file under ``dicom_root``, by shard (`scan_archive` without the skipped entries)."""
    return scan_archive(dicom_root, n_shards).files


def skipped_table(entries: list[SkippedEntry], key: bytes, run_id: str, code_version: str) -> pa.Table:
    """The `scan_skipped` rows of ``entries``, each path pseudonymised with ``key`` like ingest_quarantine's."""
    rows = [{**asdict(e), "relative_path": pseudonymise_path(e.relative_path, key), "run_id": run_id,
             "code_version": code_version} for e in entries]
    return pa.Table.from_pylist(rows, schema=SCAN_SKIPPED)


def _walk(entries: list[os.DirEntry], root: Path, n_shards: int):
    for entry in entries:
        relative, readable = _relative(entry.path, root)
        shard = shard_of(relative, n_shards)
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                try:
                    children = list(os.scandir(entry.path))
                except OSError as exc:
                    yield SkippedEntry(relative, "unlistable_folder", shard, exc.strerror or type(exc).__name__)
                    continue
                yield from _walk(children, root, n_shards)
            elif stat.S_ISREG(mode):
                info = entry.stat(follow_symlinks=False)
                yield ScannedFile(relative, info.st_size, info.st_mtime_ns, shard, unreadable_name=not readable)
            elif stat.S_ISLNK(mode):
                yield SkippedEntry(relative, "symlink", shard, "not followed")
            else:
                yield SkippedEntry(relative, "special_file", shard, _kind(mode))
        except OSError as exc:  # vanished between listing and stat, or an I/O error
            yield SkippedEntry(relative, "unreadable_entry", shard, exc.strerror or type(exc).__name__)


def _relative(path: str, root: Path) -> tuple[str, bool]:
    """(POSIX path relative to root, whether it is valid UTF-8); invalid bytes come back escaped (\\xe9)."""
    relative = Path(path).relative_to(root).as_posix()
    try:
        relative.encode("utf-8")
        return relative, True
    except UnicodeEncodeError:  # os.scandir decoded undecodable bytes as lone surrogates
        return os.fsencode(relative).decode("utf-8", "backslashreplace"), False


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "unknown file type"
