"""The masking assets in real in-process Dagster runs over the small synthetic cohort.

Ingestion runs through the real command. `a4c_clips` is written from the cohort's ground-truth views (so
this test does not depend on the view classifier); `sector_masks`, `mask_quarantine` and `masked_clips` are
then materialised per shard, checked in the DuckDB catalog, and re-run to show nothing is redone.
"""

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pytest

import echo_pipeline_cli
from assets.masking import masked_clips, sector_mask_shard
from echo_pipeline import masking
from echo_pipeline.privacy import KEY_ENV_VAR
from echo_pipeline.schemas import TABLES
from echo_pipeline.storage import DataRoot
from resources import PipelineResource
from truth_helpers import a4c_clips_from_truth


@pytest.fixture(scope="module")
def pipeline(small_cohort, tmp_path_factory):
    """A data root with ingestion done and `a4c_clips` taken from the truth; the resource pointing at it."""
    data_root = tmp_path_factory.mktemp("masking_pipeline")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV_VAR, "test-key-not-a-secret")
        assert echo_pipeline_cli.main([
            "run", "--dicom-root", str(small_cohort / "dicom"), "--reports", str(small_cohort / "reports.csv"),
            "--data-root", str(data_root), "--select", "dicom_instances",
        ]) == 0
    store = DataRoot(data_root)
    a4c = a4c_clips_from_truth(small_cohort, store)
    for shard in sorted(set(a4c.column("shard").to_pylist())):
        store.write_table("a4c_clips", a4c.filter(pa.compute.equal(a4c.column("shard"), shard)), shard)
    resource = PipelineResource(dicom_root=str(small_cohort / "dicom"), reports_path=str(small_cohort / "reports.csv"),
                                data_root=str(data_root))
    return resource, sorted(set(a4c.column("shard").to_pylist())), a4c.num_rows


def materialize_shards(resource, shards):
    results = {}
    for shard in shards:
        result = dg.materialize([sector_mask_shard, masked_clips], partition_key=shard, resources={"pipeline": resource},
                                run_config={"ops": {"sector_mask_shard": {"config": {"workers": 1}},
                                                    "masked_clips": {"config": {"workers": 1, "size": 112}}}})
        assert result.success
        results[shard] = result
    return results


def metadata(result, asset: str) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset)
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_masking_assets_mask_every_a4c_clip_and_rerun_does_nothing(pipeline):
    resource, shards, a4c_count = pipeline
    first = materialize_shards(resource, shards)
    with duckdb.connect(str(DataRoot(resource.data_root).catalog_path), read_only=True) as con:
        masks = con.sql("SELECT * FROM sector_masks").to_arrow_table()
        quarantine = con.sql("SELECT * FROM mask_quarantine").to_arrow_table()
        clips = con.sql("SELECT * FROM masked_clips").to_arrow_table()
    assert masks.num_rows + quarantine.num_rows == a4c_count and masks.num_rows > 0
    assert set(masks.column("sop_instance_uid").to_pylist()) == set(clips.column("sop_instance_uid").to_pylist())
    for name, table in (("sector_masks", masks), ("mask_quarantine", quarantine), ("masked_clips", clips)):
        assert table.schema.names == TABLES[name].names
    for row in clips.to_pylist():
        clip = np.load(DataRoot(resource.data_root).path / row["clip_path"], mmap_mode="r")
        assert clip.shape == (row["frames"], 112, 112, 3) and clip.dtype == np.uint8
    assert set(clips.column("code_version").to_pylist()) == {masking.CODE_VERSION}
    meta = metadata(first[shards[0]], "sector_masks")
    assert "iou_vs_truth" in meta and meta["kept_mask_iou_median"] >= 0.95  # the cohort's truth was found

    again = materialize_shards(resource, shards)
    assert all(metadata(r, "sector_masks")["newly_processed"] == 0 for r in again.values())
    with duckdb.connect(str(DataRoot(resource.data_root).catalog_path), read_only=True) as con:
        assert con.sql("SELECT * FROM masked_clips").to_arrow_table().sort_by("sop_instance_uid").equals(clips.sort_by("sop_instance_uid"))


def test_a_clip_that_cannot_be_written_becomes_a_mask_quarantine_row(pipeline):
    """Every clip that enters masking ends in masked_clips or mask_quarantine, also when writing it fails."""
    resource, shards, a4c_count = pipeline
    materialize_shards(resource, shards)  # no work when the test above ran first
    store = DataRoot(resource.data_root)
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:
        uid, shard, clip_path, mask_path = con.sql("""
            SELECT m.sop_instance_uid, m.shard, m.clip_path, k.mask_path
            FROM masked_clips m JOIN sector_masks k USING (sop_instance_uid) ORDER BY 1 LIMIT 1""").fetchall()[0]
    mask_file, original = store.path / mask_path, (store.path / mask_path).read_bytes()
    (store.path / clip_path).unlink()  # the clip is made again ...
    mask_file.write_bytes(b"not a png")  # ... and its mask no longer reads
    try:
        assert dg.materialize([masked_clips], partition_key=shard, resources={"pipeline": resource},
                              run_config={"ops": {"masked_clips": {"config": {"workers": 1, "size": 112}}}}).success
        with duckdb.connect(str(store.catalog_path), read_only=True) as con:
            failed = con.sql("SELECT sop_instance_uid, reason, message FROM mask_quarantine "
                             "WHERE reason = 'clip_not_written'").fetchall()
            total = con.sql("SELECT (SELECT count(*) FROM masked_clips) + (SELECT count(*) FROM mask_quarantine)").fetchall()[0][0]
        assert [(u, r) for u, r, _ in failed] == [(uid, "clip_not_written")] and "MaskingError" in failed[0][2]
        assert total == a4c_count
    finally:
        mask_file.write_bytes(original)
    assert materialize_shards(resource, [shard])[shard].success
    with duckdb.connect(str(store.catalog_path), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM mask_quarantine WHERE reason = 'clip_not_written'").fetchall() == [(0,)]
