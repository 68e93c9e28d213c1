"""Every table's columns and types, in one place.

Stage outputs are Parquet files written with these schemas; the DuckDB catalog exposes them under the same
names. `docs/tables.md` documents the same columns for users: change both together.
"""

from __future__ import annotations

import pyarrow as pa

# Lineage columns carried by every derived row.
RUN_ID = pa.field("run_id", pa.string(), nullable=False)
CODE_VERSION = pa.field("code_version", pa.string(), nullable=False)

DICOM_INSTANCES = pa.schema(
    [
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("file_size", pa.int64(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("series_instance_uid", pa.string()),
        pa.field("study_instance_uid", pa.string()),
        pa.field("patient_key", pa.string()),  # keyed hash of PatientID, never the raw id
        pa.field("accession_key", pa.string()),  # keyed hash of AccessionNumber
        pa.field("study_date", pa.date32()),
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

# --- reports (echo_pipeline/reports; docs/reports.md) ---------------------------------------------------------
REPORTS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),  # from the file, else derived from text + source_row
        pa.field("source_file", pa.string(), nullable=False),  # file name of the reports input
        pa.field("source_row", pa.int64(), nullable=False),  # 0-based data row in that file
        pa.field("accession_key", pa.string()),  # keyed hash of the accession number, never the raw value
        pa.field("study_instance_uid", pa.string()),
        pa.field("patient_key", pa.string()),  # keyed hash of the patient id
        pa.field("study_date", pa.date32()),
        pa.field("report_text", pa.string(), nullable=False),  # kept as written: the model trains on it
        RUN_ID,
        CODE_VERSION,
    ]
)

REPORT_QUARANTINE = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("report_id", pa.string()),  # as given in the file, when it was
        pa.field("reason", pa.string(), nullable=False),  # one of echo_pipeline.reports.reading.QUARANTINE_REASONS
        pa.field("message", pa.string(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

REPORT_LINKS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string()),  # null when not linked
        pa.field("patient_key", pa.string()),  # the linked study's patient, else the report's
        pa.field("link_method", pa.string()),  # accession | study_instance_uid | patient_date | patient_date_window
        pa.field("reason", pa.string()),  # null when linked, else orphan | ambiguous
        pa.field("candidate_count", pa.int32(), nullable=False),  # studies that fitted the deciding rule
        pa.field("date_offset_days", pa.int32()),  # study date minus report date, when linked and both known
        pa.field("detail", pa.string()),  # human-readable account of the decision
        RUN_ID,
        CODE_VERSION,
    ]
)

STUDIES_WITHOUT_REPORT = pa.schema(
    [
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
        pa.field("study_date", pa.date32()),
        RUN_ID,
        CODE_VERSION,
    ]
)

REPORT_LABEL_NAMES = ("lvef", "pasp", "pacemaker", "tavr", "mitraclip", "lv_dilation", "la_dilation",
                      "rv_dilation", "ra_dilation", "lvh", "effusion", "tamponade")
_LABEL_TYPES = {"lvef": pa.float64(), "pasp": pa.float64(), "pacemaker": pa.bool_(), "tavr": pa.bool_(),
                "mitraclip": pa.bool_(), "tamponade": pa.bool_()}  # the rest are severity words (strings)
REPORT_LABELS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
    ]
    + [pa.field(name, _LABEL_TYPES.get(name, pa.string())) for name in REPORT_LABEL_NAMES]  # null = not stated
    + [pa.field(f"{name}_source", pa.string()) for name in REPORT_LABEL_NAMES]  # sentence the value came from
    + [RUN_ID, CODE_VERSION]
)

SPLITS = pa.schema(
    [
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
        pa.field("split", pa.string(), nullable=False),  # train | validation | test
        RUN_ID,
        CODE_VERSION,
    ]
)

#: Name → schema for every table the catalog exposes; each stage adds its tables here.
TABLES: dict[str, pa.Schema] = {
    "dicom_instances": DICOM_INSTANCES,
    "ingest_quarantine": INGEST_QUARANTINE,
    "reports": REPORTS,
    "report_quarantine": REPORT_QUARANTINE,
    "report_links": REPORT_LINKS,
    "studies_without_report": STUDIES_WITHOUT_REPORT,
    "report_labels": REPORT_LABELS,
    "splits": SPLITS,
}
