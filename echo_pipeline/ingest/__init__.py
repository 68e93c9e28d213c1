"""DICOM ingestion: scan the archive, classify every file, decode frames. No Dagster here.

- `scan_dicom_root(dicom_root, n_shards)` lists every regular file by shard; `scan_archive` also returns the
  entries it skipped (symlinks, special files, unlistable folders: the `scan_skipped` table).
- `ingest_shard(...)` classifies a shard's new or changed files into `dicom_instances` rows or
  `ingest_quarantine` rows (reason codes in `reasons.REASONS`) and de-duplicates within the shard;
  `merge_shards` applies the same de-duplication across shards.
- `decode_frames(path_or_dataset, frame_indices, scale=...)` returns RGB uint8 frames of any supported file.
"""

from echo_pipeline.ingest.classify import Classified, classify_file
from echo_pipeline.ingest.decode import decode_frames, decode_path
from echo_pipeline.ingest.reasons import REASONS
from echo_pipeline.ingest.scan import SKIP_REASONS, ArchiveScan, ScannedFile, SkippedEntry, scan_archive, scan_dicom_root, skipped_table
from echo_pipeline.storage import file_sha256
from echo_pipeline.ingest.shard import ShardTables, ingest_shard, merge_shards
from echo_pipeline.ingest.decoders import decoder_for, supported_transfer_syntaxes

#: Stage code version, recorded on every row; bump it when the rows ingestion writes change.
CODE_VERSION = "ingest-3"  # 2: invalid_uid, decoded-size budget, unreadable_path; pseudonymised paths and messages; 3: age_band, patient_sex

__all__ = [
    "CODE_VERSION",
    "REASONS",
    "SKIP_REASONS",
    "ArchiveScan",
    "SkippedEntry",
    "scan_archive",
    "Classified",
    "ScannedFile",
    "ShardTables",
    "classify_file",
    "decode_frames",
    "decode_path",
    "decoder_for",
    "file_sha256",
    "ingest_shard",
    "merge_shards",
    "scan_dicom_root",
    "skipped_table",
    "supported_transfer_syntaxes",
]
