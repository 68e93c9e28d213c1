"""Paths derived from untrusted values stay inside the data root.

Archive values (a SOP Instance UID, a shard name) are never used as file names as they are: `uid_file_stem`
turns a UID into a fixed-length hex name, and `contained` normalises a path (`..`, `.`, repeated
separators; lexically, so a data root whose `arrays/` is a link to another disk keeps working) and refuses
it unless it lies under the root. Every writer under the data root goes through `contained`
(`storage.DataRoot`, `storage.atomic_path(..., root=...)`), so a hostile value can at worst fail one write.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from echo_pipeline.errors import UnsafePathError

#: Hex characters of the sha256 of a UID used as its file name (128 bits: collisions are not a concern).
UID_STEM_CHARS = 32


def uid_file_stem(uid: str) -> str:
    """The file name stem for anything keyed by ``uid``: hex of its sha256, the same on every run.

    Rows keep the UID and the path (`sector_masks.mask_path`, `masked_clips.clip_path`), so tables still join
    by `sop_instance_uid` while no character of the UID reaches the file system.
    """
    return hashlib.sha256(uid.encode("utf-8", "surrogatepass")).hexdigest()[:UID_STEM_CHARS]


def contained(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``path`` made absolute and normalised; raises UnsafePathError unless it is ``root`` or lies under it."""
    if "\0" in os.fspath(path):
        raise UnsafePathError(f"{str(path)!r:.200}: contains a NUL byte; refusing to write it")
    root_resolved = Path(os.path.abspath(root))
    resolved = Path(os.path.abspath(path))
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise UnsafePathError(
            f"{str(path)!r:.200} resolves to {str(resolved)!r:.200}, outside the data root {root_resolved}; "
            "refusing to write it (a file name derived from archive data must not leave the data root)"
        )
    return resolved


def safe_join(root: str | os.PathLike, *parts: str) -> Path:
    """``root / parts...`` resolved, or UnsafePathError when the result would leave ``root``."""
    return contained(Path(root).joinpath(*parts), root)
