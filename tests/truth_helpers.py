"""Test helpers over a synthetic cohort's ground truth (the truth tables are never pipeline inputs)."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from echo_pipeline import catalog
from echo_pipeline.storage import DataRoot


def a4c_clips_from_truth(cohort: Path, store: DataRoot) -> pa.Table:
    """`a4c_clips` rows for the cohort's true non-colour A4C clips, as if a perfect classifier had chosen them."""
    con = catalog.open_reader(store)
    try:
        truth = pq.read_table(cohort / "truth" / "clips.parquet", columns=["sop_instance_uid", "view", "is_colour"])
        con.register("truth", truth)
        return con.sql("""
            SELECT d.sop_instance_uid, d.file_sha256, d.shard, d.relative_path, d.study_instance_uid,
                   d.series_instance_uid, d.patient_key, d.study_date, d.frames, d.frame_rate, 1.0 AS p_a4c,
                   'ground-truth' AS classifier_id, 0.5 AS min_probability, 2 AS min_frames, 'test' AS run_id,
                   'test' AS code_version
            FROM dicom_instances d JOIN truth t USING (sop_instance_uid)
            WHERE t.view = 'A4C' AND NOT t.is_colour""").to_arrow_table()
    finally:
        con.close()
