"""Archive paths are identifiers: tables carry a pseudonymised path, the raw path lives in a restricted mapping.

Archives name folders after patients (``DOE^JOHN_MRN12345678/``, ``ABBOTT_JOHN_12345678/``), so a path is
as identifying as a patient id. Every table, message and log line carries the *pseudonymised* path instead:
each component is a keyed hash (the pseudonymisation key of echo_pipeline.privacy) and only a short
alphabetic file extension is kept, so ``DOE^JOHN_MRN12345678/study1/IM_0001.dcm`` becomes
``3f1c…/9ab0…/71d2….dcm`` — the folder structure stays visible, no name leaks.

The raw paths are kept only in a mapping beside the key, readable by its owner alone (docs/input-contract.md):

    DATA_ROOT/secrets/source_paths/part-<shard>.parquet   (relative_path, source_path, shard), mode 0600

Stages that must open an archive file (masking, view classification) resolve a pseudonymised path through
`SourcePaths`, never by joining the table column to dicom_root.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from echo_pipeline.errors import InputContractError

MAP_DIR = Path("secrets") / "source_paths"
_COMPONENT_HEX_CHARS = 16  # 64 bits per folder or file name: unique among the names of any real archive
#: Kept extensions: a dot, a letter, up to 4 more letters or digits (".dcm", ".DCM", ".dicom"); anything
#: longer, or digit-led (".12345678"), may itself be an identifier and is hashed with the rest of the name.
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")
#: What a pseudonymised path looks like (the `no_raw_identifiers` check tests relative_path columns with it).
PSEUDONYM_PATH = rf"^[0-9a-f]{{{_COMPONENT_HEX_CHARS}}}(?:\.[A-Za-z][A-Za-z0-9]{{0,4}})?" \
                 rf"(?:/[0-9a-f]{{{_COMPONENT_HEX_CHARS}}}(?:\.[A-Za-z][A-Za-z0-9]{{0,4}})?)*$"
_SCHEMA = pa.schema([
    pa.field("relative_path", pa.string(), nullable=False),  # pseudonymised, as in dicom_instances
    pa.field("source_path", pa.string(), nullable=False),  # raw, relative to dicom_root
    pa.field("shard", pa.string(), nullable=False),
])


class SourcePathError(InputContractError):
    """A pseudonymised path that the restricted mapping does not resolve."""


def pseudonymise_component(name: str, key: bytes) -> str:
    """One folder or file name as a keyed hash; a short alphabetic extension is kept."""
    match = _EXTENSION.search(name)
    extension = match.group(0) if match and match.start() > 0 else ""
    stem = name[: len(name) - len(extension)]
    digest = hmac.new(key, f"path:{stem}".encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
    return digest[:_COMPONENT_HEX_CHARS] + extension


def pseudonymise_path(relative_path: str, key: bytes) -> str:
    """A POSIX path relative to dicom_root, pseudonymised component by component."""
    return "/".join(pseudonymise_component(part, key) for part in PurePosixPath(relative_path).parts)


def scrub_path(text: str, raw: str, pseudonym: str, dicom_root: str | os.PathLike | None = None) -> str:
    """``text`` (an error message) with the file's absolute path, raw path and each of its names replaced."""
    if dicom_root is not None:
        text = text.replace(str(Path(dicom_root) / raw), pseudonym)
    text = text.replace(raw, pseudonym)
    for part, hashed in zip(PurePosixPath(raw).parts, pseudonym.split("/")):
        text = _replace_name(text, part, hashed)
    return text


def _replace_name(text: str, name: str, replacement: str) -> str:
    """Whole-token occurrences of a folder or file name; names under 3 characters ("a", "01") identify no one
    and would mangle ordinary words."""
    if len(name) < 3:
        return text
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", lambda _: replacement, text)


def map_file(data_root: str | os.PathLike, shard: str) -> Path:
    return Path(data_root) / MAP_DIR / f"part-{shard}.parquet"


def record_shard(data_root: str | os.PathLike, shard: str, raw_paths: Iterable[str], key: bytes) -> Path:
    """Write the shard's mapping (pseudonymised → raw) atomically, owner-only (0600 file, 0700 folders)."""
    from echo_pipeline.storage import atomic_path  # storage imports this module (through identifiers)

    target = map_file(data_root, shard)
    for folder in (target.parent.parent, target.parent):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    raws = sorted(set(raw_paths))
    table = pa.table({"relative_path": [pseudonymise_path(p, key) for p in raws], "source_path": raws,
                      "shard": [shard] * len(raws)}, schema=_SCHEMA)
    with atomic_path(target) as tmp:  # mkstemp creates the temporary file 0600; os.replace keeps the mode
        os.chmod(tmp, 0o600)
        pq.write_table(table, tmp)
    return target


class SourcePaths:
    """Resolves pseudonymised relative paths to archive files, through the mapping of every shard."""

    def __init__(self, data_root: str | os.PathLike, dicom_root: str | os.PathLike | None = None):
        self.map_dir = Path(data_root) / MAP_DIR
        self.dicom_root = None if dicom_root is None else Path(dicom_root)
        self._raw: dict[str, str] | None = None
        self.mapped = True

    @classmethod
    def unmapped(cls, dicom_root: str | os.PathLike) -> "SourcePaths":
        """For tables that hold raw paths (a synthetic cohort's truth, benchmarks): each path is its own source."""
        paths = cls(Path(dicom_root), dicom_root)
        paths.mapped = False
        return paths

    def _mapping(self) -> dict[str, str]:
        if self._raw is None:
            self._raw = {}
            for part in sorted(self.map_dir.glob("part-*.parquet")):
                table = pq.read_table(part, columns=["relative_path", "source_path"])
                self._raw.update(zip(*(table.column(c).to_pylist() for c in ("relative_path", "source_path"))))
        return self._raw

    def source_path(self, relative_path: str) -> str:
        """The raw path (relative to dicom_root) behind a pseudonymised one."""
        if not self.mapped:
            return relative_path
        raw = self._mapping().get(relative_path)
        if raw is None:
            raise SourcePathError(
                f"{self.map_dir}: no source path for {relative_path}; the mapping is written by ingestion — "
                "re-materialise dicom_instances for this data root (and keep secrets/ with it)")
        return raw

    def locate(self, relative_path: str) -> Path:
        """The archive file behind a pseudonymised relative path (needs ``dicom_root``)."""
        if self.dicom_root is None:
            raise ValueError("SourcePaths without a dicom_root can name source paths but not locate files")
        return self.dicom_root / self.source_path(relative_path)

    def lookup(self, relative_paths_by_uid: dict[str, list[str]], wanted: list[str]) -> list[tuple[str, str, str]]:
        """(what was asked, pseudonymised path, raw path) for each of ``wanted``: a pseudonymised path, or a SOP
        instance UID found in ``relative_paths_by_uid`` (every copy of it); raises SourcePathError otherwise."""
        found = []
        for item in wanted:
            candidates = [item] if not self.mapped or item in self._mapping() else relative_paths_by_uid.get(item, [])
            if not candidates:
                raise SourcePathError(f"{item}: neither a relative_path of {self.map_dir} nor the SOP instance UID "
                                      "of an ingested file; pass a value of dicom_instances.relative_path or "
                                      "sop_instance_uid (or ingest_quarantine's)")
            found += [(item, path, self.source_path(path)) for path in sorted(candidates)]
        return found


def redact(text: str, absolute_path: str | os.PathLike, label: str) -> str:
    """``text`` with an archive file's absolute path (and its file name) replaced by ``label``, its pseudonym."""
    absolute = str(absolute_path)
    return _replace_name(text.replace(absolute, label), Path(absolute).name, label.rsplit("/", 1)[-1])
