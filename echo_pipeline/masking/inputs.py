"""What the masking steps read from upstream tables: a shard's A4C clips and its kept sector masks.

Both read through the catalog and fail naming the asset to materialise when an input table is missing.
"""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.masking.clips import ClipJob
from echo_pipeline.source_paths import SourcePaths
from echo_pipeline.storage import DataRoot
from echo_pipeline.upstream import read_upstream

_A4C_CLIPS_SQL = """
    SELECT a.sop_instance_uid, d.file_sha256, d.relative_path
    FROM a4c_clips AS a JOIN dicom_instances AS d USING (sop_instance_uid)
    WHERE a.shard = ? ORDER BY a.sop_instance_uid"""

_KEPT_MASKS_SQL = """
    SELECT m.sop_instance_uid, m.file_sha256, m.mask_path, m.method, d.relative_path, d.frame_rate
    FROM sector_masks AS m JOIN dicom_instances AS d
      ON d.sop_instance_uid = m.sop_instance_uid AND d.file_sha256 = m.file_sha256
    WHERE m.shard = ? ORDER BY m.sop_instance_uid"""


def read_a4c_clips(data_root: DataRoot, shard: str) -> pa.Table:
    """The shard's A4C clips with the file hash and path of each (input of sector_masks; the region tags are read
    from each file's header by find_sector)."""
    return read_upstream(data_root, _A4C_CLIPS_SQL, ["a4c_clips", "dicom_instances"], [shard])


def read_clip_jobs(data_root: DataRoot, paths: SourcePaths, shard: str) -> list[ClipJob]:
    """One ClipJob per kept sector mask of the shard, with its DICOM file (its real path from the restricted
    mapping, its pseudonymised relative_path as the label messages name) and mask PNG (input of masked_clips)."""
    table = read_upstream(data_root, _KEPT_MASKS_SQL, ["sector_masks", "dicom_instances"], [shard])
    return [ClipJob(r["sop_instance_uid"], r["file_sha256"], shard, str(paths.locate(r["relative_path"])),
                    str(data_root.path / r["mask_path"]), r["method"], r["frame_rate"], r["relative_path"])
            for r in table.to_pylist()]
