"""Stage 4 tables (echo_pipeline/reports; docs/reports.md): reports, links, labels, splits."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID

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
                      "rv_dilation", "ra_dilation", "lvh", "effusion", "tamponade", "impella", "atrial_fibrillation",
                      "right_atrial_pressure", "normal_lv_wall_thickness", "no_significant_valvular_disease")
_LABEL_TYPES = {"lvef": pa.float64(), "pasp": pa.float64(), "pacemaker": pa.bool_(), "tavr": pa.bool_(),
                "mitraclip": pa.bool_(), "tamponade": pa.bool_(), "impella": pa.bool_(),
                "atrial_fibrillation": pa.bool_(), "normal_lv_wall_thickness": pa.bool_(),
                "no_significant_valvular_disease": pa.bool_()}  # the rest are words (severity; RA pressure level)
REPORT_LABELS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
    ]
    + [pa.field(name, _LABEL_TYPES.get(name, pa.string())) for name in REPORT_LABEL_NAMES]  # null = not stated
    + [pa.field(f"{name}_source", pa.string()) for name in REPORT_LABEL_NAMES]  # sentence the value came from
    + [pa.field("label_rules_sha256", pa.string()),  # the effective label rules that made the row
       RUN_ID, CODE_VERSION]
)

# Sentences that name a label's target but yield no value, by shape (numbers and ids masked): what a site's
# label rules do not cover yet (docs/reports.md, "Gap report").
REPORT_LABEL_GAPS = pa.schema(
    [
        pa.field("label", pa.string(), nullable=False),
        pa.field("sentence_shape", pa.string(), nullable=False),  # lower case, every token with a digit -> "#"
        pa.field("sentence_count", pa.int64(), nullable=False),  # sentences of this shape, all reports
        pa.field("report_count", pa.int64(), nullable=False),  # reports holding at least one of them
        pa.field("example_report_id", pa.string(), nullable=False),
        pa.field("label_rules_sha256", pa.string(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
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
