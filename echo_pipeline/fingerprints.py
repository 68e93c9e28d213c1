"""Content-derived fingerprints of the pipeline's inputs: the data versions Dagster records for them.

A fingerprint changes exactly when the input changes, so the UI marks stale exactly the assets that read
changed inputs. The DICOM archive is fingerprinted from directory entries only — sha256 over the sorted
(relative path, size, mtime_ns) of every file, per shard and for the whole root — so an observation of a
million-file archive lists folders and opens no file. The reports and view-label files are small: their
fingerprint is the sha256 of their bytes, so touching a file without changing it changes nothing.
The observations (assets/observations.py) record them; the automation (assets/automation.py) reads nothing else.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from echo_pipeline.errors import InputContractError
from echo_pipeline.ingest.scan import ScannedFile, scan_dicom_root
from echo_pipeline.storage import file_sha256

NOT_CONFIGURED = "not-configured"  # the data version of an optional input that is not set


def files_fingerprint(files: Iterable[ScannedFile]) -> str:
    """sha256 over (relative path, size, mtime_ns) of ``files``, in relative-path order (any input order)."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.relative_path):
        digest.update(f"{f.relative_path}\0{f.size}\0{f.mtime_ns}\n".encode())
    return digest.hexdigest()


def dicom_root_fingerprints(dicom_root: str | os.PathLike, n_shards: int) -> tuple[str, dict[str, str], dict[str, int]]:
    """(fingerprint of the whole root, fingerprint per shard, files per shard); every shard present.

    An empty shard has the fingerprint of no files, the same for every empty shard and every run.
    Raises InputContractError when the root is missing.
    """
    shards = scan_dicom_root(dicom_root, n_shards)
    per_shard = {shard: files_fingerprint(files) for shard, files in shards.items()}
    whole = files_fingerprint(f for files in shards.values() for f in files)
    return whole, per_shard, {shard: len(files) for shard, files in shards.items()}


def file_fingerprint(path: str | os.PathLike, what: str) -> str:
    """sha256 of the file's bytes. ``what`` names the input in the error (e.g. "reports")."""
    path = Path(path)
    try:
        return file_sha256(path)
    except OSError as error:
        raise InputContractError(f"{what} {path}: cannot be read ({error.strerror or error}); check the path and "
                                 "its permissions (docs/input-contract.md)") from error
