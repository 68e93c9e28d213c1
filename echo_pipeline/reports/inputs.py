"""What the report steps read from upstream tables: one row per ingested study."""

from __future__ import annotations

import pandas as pd

from echo_pipeline.reports.linking import study_index
from echo_pipeline.storage import DataRoot
from echo_pipeline.upstream import read_upstream


def read_studies(data_root: DataRoot) -> pd.DataFrame:
    """One row per ingested study (keyed ids only), from the de-duplicated `dicom_instances` view."""
    return study_index(read_upstream(data_root, "SELECT * FROM dicom_instances", ["dicom_instances"]))
