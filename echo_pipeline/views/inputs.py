"""What the view steps read from upstream tables: ingested instances, and the patients that trained a classifier."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.storage import DataRoot
from echo_pipeline.upstream import read_upstream


def read_instances(data_root: DataRoot, shard: str | None = None) -> pa.Table:
    """`dicom_instances` rows: every one, or one shard's ordered by SOP Instance UID."""
    if shard is None:
        return read_upstream(data_root, "SELECT * FROM dicom_instances", ["dicom_instances"])
    return read_upstream(data_root, "SELECT * FROM dicom_instances WHERE shard = ? ORDER BY sop_instance_uid",
                         ["dicom_instances"], [shard])


def training_patients(data_root: DataRoot, card: dict | None) -> set:
    """patient_key of every clip that trained the classifier (empty when unknown, e.g. a classifier from elsewhere)."""
    table = data_root.read_table("view_training_clips")
    if table is None or card is None:
        return set()
    return {row["patient_key"] for row in table.to_pylist()
            if row["split"] == "train" and row["classifier_id"] == card["classifier_id"]}
