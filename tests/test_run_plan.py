"""The clip_model run plan without Dagster: which pairs train, the run folder's key, config and record; and the
"upstream not materialised" error every step raises."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from echo_pipeline.errors import TrainingDataError, UpstreamNotMaterialisedError
from echo_pipeline.storage import DataRoot
from echo_pipeline.training import run_plan
from echo_pipeline.upstream import read_partition, read_upstream

STUDIES = {"s1": ("p1", "train"), "s2": ("p2", "validation"), "s3": ("p3", "test")}


def _write(store: DataRoot, dataset: str, rows: list[dict]) -> None:
    path = store.partition_file(dataset, "all")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture
def store(tmp_path):
    store = DataRoot(tmp_path / "root")
    clips = [(f"c{i}-{s}", s) for s in STUDIES for i in range(2)]
    _write(store, "masked_clips", [{"sop_instance_uid": c, "clip_path": f"arrays/masked_clips/{c}.npy"} for c, _ in clips])
    _write(store, "dicom_instances_by_shard", [
        {"sop_instance_uid": c, "study_instance_uid": s, "relative_path": f"{c}.dcm", "file_sha256": c} for c, s in clips])
    _write(store, "reports", [{"report_id": f"r-{s}", "report_text": f"report of {s}."} for s in STUDIES])
    _write(store, "report_links", [{"report_id": f"r-{s}", "study_instance_uid": s} for s in STUDIES])
    _write(store, "splits", [{"study_instance_uid": s, "patient_key": p, "split": split}
                             for s, (p, split) in STUDIES.items()])
    return store


def _plan(store, variant="bpe", epochs=None):
    return run_plan.plan_run(store, variant, model_preset="echo-tiny", train_epochs=epochs,
                             vocabulary_path=store.path / "vocab.json")


def test_pairs_hold_train_and_validation_clips_only(store):
    pairs = run_plan.read_training_pairs(store)
    assert sorted(set(pairs.column("split").to_pylist())) == ["train", "val"]
    assert not any(clip.endswith("s3") for clip in pairs.column("clip_id").to_pylist())
    assert pairs.column("group_id").to_pylist() == ["p1", "p2", "p1", "p2"]


def test_plan_writes_config_and_absolute_pairs_and_reuses_its_folder(store):
    plan = _plan(store)
    config = json.loads(plan.config_path.read_text())
    assert config["train"] == {"preset": "echo-tiny", "seed": 0, "keep_last": 2, "out_dir": str(plan.run_dir)}
    assert config["tokenizer"] == "bpe" and plan.vocabulary_path is None
    written = pq.read_table(plan.run_dir / "pairs.parquet").column("npy_path").to_pylist()
    assert all(path.startswith(str(store.path)) for path in written)
    assert (plan.train_pairs, plan.validation_pairs) == (2, 2)
    assert _plan(store).run_dir == plan.run_dir  # same inputs: same folder, so a re-run resumes
    assert _plan(store, epochs=3).run_dir != plan.run_dir
    template = _plan(store, "template")
    assert json.loads(template.config_path.read_text())["tokenizer"]["kwargs"]["kind"] == "template"
    assert template.vocabulary_path == store.path / "vocab.json"


def test_model_record_comes_from_what_the_trainer_reported(store):
    plan = _plan(store)
    record = run_plan.model_record(plan, {"checkpoint_sha256": "ab" * 32, "best_checkpoint": "/x/epoch-2",
                                          "best_epoch": 2, "best_val_mcmrr": 0.5, "epochs_completed": 3},
                                   run_id="run-1", code_version="v")
    assert record.model_id == "echo-tiny-bpe-" + "ab" * 6
    assert (record.train_pairs, record.best_epoch, record.checkpoint_dir) == (2, 2, "/x/epoch-2")


def test_missing_or_empty_inputs_name_what_to_materialise(store, tmp_path):
    for path in store.dataset_dir("splits").glob("part-*.parquet"):
        path.unlink()
    with pytest.raises(UpstreamNotMaterialisedError, match=r"\['splits'\].*materialise splits first"):
        run_plan.read_training_pairs(store)
    _write(store, "splits", [{"study_instance_uid": "s3", "patient_key": "p3", "split": "test"}])
    with pytest.raises(TrainingDataError, match="no training pairs"):
        run_plan.read_training_pairs(store)
    with pytest.raises(UpstreamNotMaterialisedError, match=r"materialise view_predictions\[s7\] first"):
        read_partition(store, "view_predictions", "s7")
    with pytest.raises(UpstreamNotMaterialisedError, match="a4c_clips"):
        read_upstream(DataRoot(tmp_path / "empty"), "SELECT * FROM a4c_clips", ["a4c_clips"])
