"""What the analyses of studies over time read from the catalog (input SQL lives here, not in the assets)."""

from __future__ import annotations

import pandas as pd

from echo_pipeline.storage import DataRoot
from echo_pipeline.upstream import read_upstream

#: Every masked A4C clip with its study, patient, date and split (null split: a study the split left out).
CLIPS_SQL = """
    SELECT m.sop_instance_uid, m.clip_path, d.study_instance_uid, d.patient_key, d.study_date, s.split
    FROM masked_clips AS m JOIN dicom_instances AS d USING (sop_instance_uid)
    LEFT JOIN splits AS s ON s.study_instance_uid = d.study_instance_uid
    WHERE d.study_instance_uid IS NOT NULL
    ORDER BY m.sop_instance_uid"""
CLIPS_NEEDS = ("masked_clips", "dicom_instances", "splits")
EVENTS_SQL = "SELECT event_id, patient_key, procedure, event_date FROM procedure_events ORDER BY event_id"
#: `split` value that keeps every patient.
ALL_SPLITS = "all"


def read_clips(store: DataRoot, split: str) -> pd.DataFrame:
    """`CLIPS_SQL` rows of the patients in ``split`` (every patient for ALL_SPLITS)."""
    clips = read_upstream(store, CLIPS_SQL, CLIPS_NEEDS).to_pandas()
    return clips if split == ALL_SPLITS else clips[clips["split"] == split].reset_index(drop=True)


def read_events(store: DataRoot) -> pd.DataFrame:
    """The validated procedure events (event_id, patient_key, procedure, event_date)."""
    return read_upstream(store, EVENTS_SQL, ["procedure_events"]).to_pandas()


def studies_of(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per study of ``clips``: study_instance_uid, patient_key, study_date."""
    return (clips[["study_instance_uid", "patient_key", "study_date"]]
            .drop_duplicates("study_instance_uid").reset_index(drop=True))
