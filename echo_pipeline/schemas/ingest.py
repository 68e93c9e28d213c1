"""Stage 1 tables (echo_pipeline/ingest; docs/ingest.md): dicom_instances and ingest_quarantine."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID

DICOM_INSTANCES = pa.schema(
    [
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("file_size", pa.int64(), nullable=False),
        pa.field("file_mtime_ns", pa.int64()),  # with file_size: how incremental ingestion spots changed files
        pa.field("shard", pa.string(), nullable=False),
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("series_instance_uid", pa.string()),
        pa.field("study_instance_uid", pa.string()),
        pa.field("patient_key", pa.string()),  # keyed hash of PatientID, never the raw id
        pa.field("accession_key", pa.string()),  # keyed hash of AccessionNumber
        pa.field("study_date", pa.date32()),
        pa.field("age_band", pa.string()),  # 10-year band at the study ("60-69", "90+"); never the birth date
        pa.field("patient_sex", pa.string()),  # PatientSex: M | F | O, else null
        pa.field("modality", pa.string()),
        pa.field("sop_class_uid", pa.string()),
        pa.field("manufacturer", pa.string()),
        pa.field("manufacturer_model", pa.string()),
        pa.field("transfer_syntax_uid", pa.string()),
        pa.field("photometric_interpretation", pa.string()),
        pa.field("rows", pa.int32()),
        pa.field("columns", pa.int32()),
        pa.field("frames", pa.int32()),
        pa.field("samples_per_pixel", pa.int32()),
        pa.field("bits_allocated", pa.int32()),
        pa.field("frame_rate", pa.float64()),
        pa.field("frame_rate_source", pa.string()),  # FrameTime | CineRate | RecommendedDisplayFrameRate | None
        pa.field("region_x0", pa.int32()),  # SequenceOfUltrasoundRegions bounds of the 2D region, when present
        pa.field("region_y0", pa.int32()),
        pa.field("region_x1", pa.int32()),
        pa.field("region_y1", pa.int32()),
        pa.field("burned_in_annotation", pa.string()),
        RUN_ID,
        CODE_VERSION,
    ]
)

INGEST_QUARANTINE = pa.schema(
    [
        pa.field("file_sha256", pa.string()),  # null only when the file could not be read at all
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("file_size", pa.int64()),
        pa.field("file_mtime_ns", pa.int64()),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # one of echo_pipeline.ingest.reasons.REASONS
        pa.field("exception_type", pa.string()),
        pa.field("message", pa.string(), nullable=False),
        pa.field("sop_instance_uid", pa.string()),
        pa.field("duplicate_of", pa.string()),  # relative path of the kept copy, for reason = duplicate
        RUN_ID,
        CODE_VERSION,
    ]
)

#: Entries under dicom_root the scan did not ingest (echo_pipeline.ingest.scan.SKIP_REASONS), one row each.
SCAN_SKIPPED = pa.schema(
    [
        pa.field("relative_path", pa.string(), nullable=False),  # as in ingest_quarantine
        pa.field("shard", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # symlink | special_file | unlistable_folder | unreadable_entry
        pa.field("detail", pa.string()),  # e.g. FIFO, or the operating system's error
        RUN_ID,
        CODE_VERSION,
    ]
)
