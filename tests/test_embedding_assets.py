"""The embedding and index assets in real in-process Dagster runs, and the staleness of what they wrote
(their nightly automation: tests/test_automation.py).

A tiny real model (the `echo-tiny` preset, random weights, saved as a hub-layout checkpoint) is recorded as the
"bpe" variant's model; the upstream tables (`masked_clips`, `reports`, `report_links`) are written directly as
Parquet, with real .npy clips. Everything else runs through the assets as in production.
"""

import json

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import torch

from assets.embeddings import (clip_embeddings, report_embeddings, report_index, report_index_matches_manifest,
                               video_index, video_index_matches_manifest)
from echo_pipeline.embeddings import EmbeddingStore, model_key
from echo_pipeline.model_variants import CLIP_TABLE, REPORT_INDEX, REPORT_TABLE, VIDEO_INDEX, index_dir
from echo_pipeline.model_variants.staleness import staleness
from echo_pipeline.search import load_index
from echo_pipeline.storage import DataRoot
from echo_pipeline.tokenizers import make_tokenizer
from echo_pipeline import model_variants
from echo_pipeline.training.model_factory import build_model, save_hub_layout
from resources import PipelineResource

ASSETS = [clip_embeddings, report_embeddings, video_index, report_index, video_index_matches_manifest,
          report_index_matches_manifest]
INDEX_ASSETS = [video_index, report_index, video_index_matches_manifest, report_index_matches_manifest]
SIZE = 112  # the echo-tiny input size: clips need no resize, which keeps the test fast
TEXT = ("The left ventricle is normal in size. Ejection fraction is {ef}%. "
        "There is {grade} mitral regurgitation. No pericardial effusion.")


def save_tiny_model(store: DataRoot, seed: int, name: str) -> model_variants.ModelRecord:
    """A random echo-tiny CLIP saved as a checkpoint and recorded as the bpe variant's model."""
    torch.manual_seed(seed)
    model, cfg = build_model("echo-tiny", text_cfg=make_tokenizer("bpe").text_cfg)
    directory = save_hub_layout(model, cfg, store.path / "models" / name)
    record = model_variants.ModelRecord(
        variant="bpe", model_id=f"test-{name}", preset="echo-tiny", tokenizer="bpe", checkpoint_dir=str(directory),
        checkpoint_sha256=f"sha-{name}", vocabulary_path=None, best_epoch=0, best_val_mcmrr=0.0,
        epochs_completed=0, train_pairs=0, run_id="test", code_version="test")
    model_variants.write_record(store, record)
    return record


def lineage(n: int) -> dict:
    return {"run_id": ["test"] * n, "code_version": ["test"] * n}


def write_masked_clips(store: DataRoot, clips: dict[str, list[str]], seed: int = 0) -> None:
    """Real uint8 (T, 112, 112, 3) .npy clips and their `masked_clips` rows, per shard."""
    rng = np.random.default_rng(seed)
    for shard, uids in clips.items():
        paths = []
        for uid in uids:
            path = store.array_dir("masked_clips") / shard / f"{uid}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, rng.integers(0, 256, (int(rng.integers(3, 8)), SIZE, SIZE, 3), dtype=np.uint8))
            paths.append(path.relative_to(store.path).as_posix())
        n = len(uids)
        store.write_table("masked_clips", pa.table({
            "sop_instance_uid": uids, "file_sha256": [f"sha-{u}" for u in uids], "shard": [shard] * n,
            "clip_path": paths, "clip_format": ["npy"] * n, "frames": [7] * n, "frame_rate": [30.0] * n,
            "height": [SIZE] * n, "width": [SIZE] * n, "mask_method": ["pixels"] * n, "decode_scale": [1] * n,
            "crop_x0": [0] * n, "crop_y0": [0] * n, "crop_side": [SIZE] * n, "kept_fraction": [0.6] * n,
            **lineage(n)}), shard)


def write_reports(store: DataRoot, linked: int, orphans: int) -> list[str]:
    """`reports` and `report_links` with ``linked`` linked reports and ``orphans`` unlinked ones; linked ids."""
    ids = [f"R{i:03d}" for i in range(linked + orphans)]
    n = len(ids)
    store.write_table("reports", pa.table({
        "report_id": ids, "source_file": ["reports.csv"] * n, "source_row": list(range(n)),
        "accession_key": [None] * n, "study_instance_uid": [None] * n, "patient_key": [None] * n,
        "study_date": pa.nulls(n, pa.date32()),
        "report_text": [TEXT.format(ef=30 + 5 * i, grade=("mild", "moderate", "severe")[i % 3]) for i in range(n)],
        **lineage(n)}))
    store.write_table("report_links", pa.table({
        "report_id": ids, "study_instance_uid": [f"1.2.3.{i}" if i < linked else None for i in range(n)],
        "patient_key": [None] * n, "link_method": ["accession" if i < linked else None for i in range(n)],
        "reason": [None if i < linked else "orphan" for i in range(n)], "candidate_count": [1] * n,
        "date_offset_days": pa.nulls(n, pa.int32()), "detail": [""] * n, **lineage(n)}))
    return ids[:linked]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedding_assets")
    store = DataRoot(root / "data")
    record = save_tiny_model(store, seed=0, name="first")
    clips = {"00": ["1.1", "1.2", "1.3"], "01": ["2.1", "2.2"]}
    write_masked_clips(store, clips)
    reports = write_reports(store, linked=4, orphans=1)
    resource = PipelineResource(dicom_root=str(root / "dicom"), reports_path=str(root / "reports.csv"),
                                data_root=str(store.path))
    stale_before = staleness(store, "bpe")
    first = materialize(resource)
    return store, resource, record, clips, reports, stale_before, first


def materialize(resource, selection=None, partition_key="bpe") -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS, partition_key=partition_key, resources={"pipeline": resource},
                          selection=selection, raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def stored_ids(store: DataRoot, table: str, model_id: str) -> list[str]:
    rows = EmbeddingStore(store, table, model_id).rows()
    return sorted(rows.column("sop_instance_uid" if table == CLIP_TABLE else "report_id").to_pylist())


def test_embeddings_indexes_and_checks_cover_every_clip_and_linked_report(setup):
    store, resource, record, clips, reports, stale_before, result = setup
    assert stale_before == ["clip_embeddings: 5 new ids", "report_embeddings: 4 new ids"]
    assert result.success
    every_clip = sorted(uid for uids in clips.values() for uid in uids)
    assert stored_ids(store, CLIP_TABLE, record.model_id) == every_clip
    assert stored_ids(store, REPORT_TABLE, record.model_id) == reports  # the orphan report is not embedded
    # one store partition per shard, named after the variant so "template" can never evict "bpe"
    assert sorted(p.name for p in store.dataset_dir(CLIP_TABLE).glob("*.parquet")) == ["part-bpe-00.parquet",
                                                                                       "part-bpe-01.parquet"]
    clip_meta, video_meta = metadata(result, "clip_embeddings"), metadata(result, "video_index")
    assert (clip_meta["embedded"], clip_meta["skipped"], clip_meta["model_id"]) == (5, 0, record.model_id)
    assert clip_meta["clips_per_second"] > 0
    assert (video_meta["n_vectors"], video_meta["kind"], video_meta["action"]) == (5, "flat", "built")
    assert metadata(result, "report_index")["n_vectors"] == 4
    assert check_results(result) == {"video_index_matches_manifest": True, "report_index_matches_manifest": True}
    loaded = load_index(index_dir(store, VIDEO_INDEX, "bpe"))
    assert sorted(loaded.ids) == every_clip and loaded.manifest["model_id"] == record.model_id
    # the index returns each stored clip vector as its own nearest neighbour
    ids, vectors = EmbeddingStore(store, CLIP_TABLE, record.model_id).load_vectors()
    assert [hits[0][0] for hits in loaded.search(vectors, 1)] == ids
    assert staleness(store, "bpe") == [] and staleness(store, "template") == []

    again = materialize(resource)
    assert again.success
    assert (metadata(again, "clip_embeddings")["embedded"], metadata(again, "clip_embeddings")["skipped"]) == (0, 5)
    assert metadata(again, "report_embeddings")["embedded"] == 0
    assert metadata(again, "video_index")["action"] == "unchanged"


def test_new_clip_extends_and_new_model_rebuilds(setup):
    store, resource, first, clips = setup[:4]
    write_masked_clips(store, {"01": clips["01"] + ["2.3"]}, seed=1)  # one new clip in shard 01
    assert staleness(store, "bpe") == ["clip_embeddings: 1 new id"]
    grown = materialize(resource)
    assert grown.success
    assert metadata(grown, "clip_embeddings")["embedded"] == 1
    assert metadata(grown, "video_index")["action"] == "extended"
    assert metadata(grown, "video_index")["n_vectors"] == 6

    old_vectors = dict(zip(*EmbeddingStore(store, CLIP_TABLE, first.model_id).load_vectors()))
    second = save_tiny_model(store, seed=1, name="second")
    assert any("another model" in reason for reason in staleness(store, "bpe"))
    rebuilt = materialize(resource)
    assert rebuilt.success
    assert metadata(rebuilt, "clip_embeddings")["embedded"] == 6
    assert metadata(rebuilt, "clip_embeddings")["removed"] == 6  # the first model's rows
    assert metadata(rebuilt, "report_embeddings")["embedded"] == 4
    table = store.read_table(CLIP_TABLE)
    assert set(table.column("model_id").to_pylist()) == {second.model_id}
    assert not (store.array_dir(CLIP_TABLE) / model_key(first.model_id) / "bpe-00").exists()
    new_vectors = dict(zip(*EmbeddingStore(store, CLIP_TABLE, second.model_id).load_vectors()))
    assert not np.allclose(new_vectors["1.1"], old_vectors["1.1"])  # really re-embedded by the new weights
    for index in (VIDEO_INDEX, REPORT_INDEX):
        assert json.loads((index_dir(store, index, "bpe") / "manifest.json").read_text())["model_id"] == second.model_id
    assert metadata(rebuilt, "video_index")["action"] == "built"


def test_ivf_index_records_recall_and_flipped_byte_fails_the_check(setup, monkeypatch):
    store, resource = setup[:2]
    monkeypatch.setenv("ECHO_PIPELINE_INDEX_KIND", "ivf")
    result = materialize(resource, selection=INDEX_ASSETS)
    assert result.success
    meta = metadata(result, "video_index")
    assert meta["kind"] == "ivf" and meta["action"] == "built" and 0.0 <= meta["recall_at_10"] <= 1.0

    directory = index_dir(store, VIDEO_INDEX, "bpe")
    index_file = directory / json.loads((directory / "manifest.json").read_text())["index_file"]
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    index_file.write_bytes(bytes(data))
    # the check alone, outside a partitioned run: it verifies every variant's index that exists
    check = materialize(resource, selection=dg.AssetSelection.checks(video_index_matches_manifest), partition_key=None)
    assert check_results(check) == {"video_index_matches_manifest": False}
    [evaluation] = check.get_asset_check_evaluations()
    assert "sha256" in evaluation.metadata["problems"].value[0]
    assert "video_index: missing or corrupt" in staleness(store, "bpe")
    rebuilt = materialize(resource, selection=INDEX_ASSETS)  # a corrupt index is rebuilt; the check passes again
    assert metadata(rebuilt, "video_index")["action"] == "built" and all(check_results(rebuilt).values())
