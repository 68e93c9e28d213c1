"""List the archive: every regular file under `dicom_root`, whatever its name, grouped into stable shards.

Scanning reads directory entries only (no file contents), so it is cheap enough to run before every shard
ingest. Symbolic links and special files (FIFOs, sockets, devices) are not followed or listed: reading a FIFO
would block, and a link to a file inside the archive would only duplicate it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from echo_pipeline.errors import InputContractError
from echo_pipeline.sharding import shard_names, shard_of



@dataclass(frozen=True)
class ScannedFile:
    """One candidate file: its POSIX path relative to dicom_root, size, modification time and shard."""

    relative_path: str
    size: int
    mtime_ns: int
    shard: str


def scan_dicom_root(dicom_root: str | os.PathLike, n_shards: int) -> dict[str, list[ScannedFile]]:
    """Every regular file under ``dicom_root``, by shard ("00".."NN"; every shard present, maybe empty).

    A file's shard depends only on its relative path (echo_pipeline.sharding.shard_of), so adding files never
    moves existing ones. Lists are sorted by relative path. Raises InputContractError for a missing root.
    """
    root = Path(dicom_root)
    if not root.is_dir():
        raise InputContractError(
            f"dicom_root {root}: not an existing directory; set ECHO_PIPELINE_DICOM_ROOT to the DICOM archive folder"
        )
    shards: dict[str, list[ScannedFile]] = {name: [] for name in shard_names(n_shards)}
    for scanned in _walk(root, root, n_shards):
        shards[scanned.shard].append(scanned)
    for files in shards.values():
        files.sort(key=lambda f: f.relative_path)
    return shards


def _walk(directory: Path, root: Path, n_shards: int):
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise InputContractError(f"{directory}: cannot list the folder ({exc}); fix its permissions and re-run") from exc
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), root, n_shards)
        elif entry.is_file(follow_symlinks=False):
            stat = entry.stat(follow_symlinks=False)
            relative = Path(entry.path).relative_to(root).as_posix()
            yield ScannedFile(relative, stat.st_size, stat.st_mtime_ns, shard_of(relative, n_shards))


