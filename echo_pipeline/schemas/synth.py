"""Synthetic cohort truth tables (echo_pipeline/synth; docs/synthetic-cohort.md)."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.reports import _LABEL_TYPES, REPORT_LABEL_NAMES

# Written by the generator under <cohort>/truth/; ground truth for tests and evaluation, not pipeline outputs.
SYNTH_PATIENTS = pa.schema(
    [
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("patient_name", pa.string(), nullable=False),
        pa.field("birth_date", pa.date32(), nullable=False),
        pa.field("sex", pa.string(), nullable=False),
    ]
)

SYNTH_STUDIES = pa.schema(
    [
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("accession_number", pa.string(), nullable=False),
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("study_date", pa.date32(), nullable=False),
        pa.field("has_report", pa.bool_(), nullable=False),
    ]
    + [pa.field(name, _LABEL_TYPES.get(name, pa.string()), nullable=False) for name in REPORT_LABEL_NAMES]
    + [
        pa.field("heart_rate", pa.float64(), nullable=False),  # bpm, drives the drawn cycle and the ECG
        pa.field("manufacturer", pa.string(), nullable=False),
        pa.field("institution_name", pa.string(), nullable=False),  # the site (DICOM InstitutionName)
        pa.field("house_style", pa.string(), nullable=False),  # the site's report style (synth/house_styles)
    ]
)

SYNTH_CLIPS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("series_instance_uid", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),  # under dicom/
        pa.field("view", pa.string(), nullable=False),  # anatomy drawn: A4C | A2C | PLAX | PSAX | SUBCOSTAL
        pa.field("is_colour", pa.bool_(), nullable=False),  # colour-Doppler box over that anatomy
        pa.field("storage_kind", pa.string(), nullable=False),  # jpeg | rgb | rle_rgb | mono | mono_rle
        pa.field("transfer_syntax_uid", pa.string(), nullable=False),
        pa.field("photometric_interpretation", pa.string(), nullable=False),
        pa.field("rows", pa.int32(), nullable=False),
        pa.field("columns", pa.int32(), nullable=False),
        pa.field("frames", pa.int32(), nullable=False),
        pa.field("frame_rate", pa.float64(), nullable=False),
        pa.field("frame_rate_tag", pa.string(), nullable=False),  # which header tags carry the frame rate
        pa.field("has_regions", pa.bool_(), nullable=False),  # SequenceOfUltrasoundRegions present
        pa.field("sector_apex_x", pa.float64(), nullable=False),  # pixel coordinates of the fan's apex
        pa.field("sector_apex_y", pa.float64(), nullable=False),
        pa.field("sector_radius", pa.float64(), nullable=False),  # pixels
        pa.field("sector_half_angle_deg", pa.float64(), nullable=False),  # half the opening
        pa.field("sector_angle_left_deg", pa.float64(), nullable=False),  # sides, degrees from straight down
        pa.field("sector_angle_right_deg", pa.float64(), nullable=False),
        pa.field("sector_min_radius", pa.float64(), nullable=False),  # pixels; 0 = pointed apex
        pa.field("region_origin_tags", pa.bool_(), nullable=False),  # regions carry the reference-pixel origin
        pa.field("sector_mask_path", pa.string(), nullable=False),  # relative to the cohort folder
        pa.field("heart_rate", pa.float64(), nullable=False),
        pa.field("manufacturer", pa.string(), nullable=False),
    ]
)

SYNTH_REPORTS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string()),  # the true study; null for orphan reports
        pa.field("is_orphan", pa.bool_(), nullable=False),
        pa.field("link_defect", pa.string(), nullable=False),  # none | no_accession | patient_date_only | date_off | orphan
        pa.field("house_style", pa.string(), nullable=False),  # the phrasing the text was written in
    ]
    + [pa.field(name, _LABEL_TYPES.get(name, pa.string())) for name in REPORT_LABEL_NAMES]  # null = not stated
)

SYNTH_FILES = pa.schema(
    [
        pa.field("relative_path", pa.string(), nullable=False),  # under dicom/
        pa.field("expected", pa.string(), nullable=False),  # "ingested" or an ingest quarantine reason code
        pa.field("duplicate_of", pa.string()),  # the kept copy, for expected = duplicate
        pa.field("sop_instance_uid", pa.string()),  # null for files that are not DICOM
    ]
)

#: Truth tables of a synthetic cohort: file stem under truth/ → schema.
SYNTH_TRUTH_TABLES: dict[str, pa.Schema] = {
    "patients": SYNTH_PATIENTS,
    "studies": SYNTH_STUDIES,
    "clips": SYNTH_CLIPS,
    "reports": SYNTH_REPORTS,
    "files": SYNTH_FILES,
}
