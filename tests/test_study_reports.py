"""study_reports: own reports never answer for their study, Platt calibration, the asset, lineage and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from echo_pipeline.errors import EvaluationError
from echo_pipeline.evaluation.knn_reports import Neighbours
from echo_pipeline.evaluation.prompts import load_prompts
from echo_pipeline.interpretation.study_reports import platt, without_own_reports
from test_eval_tables import _table, build_data_root


def test_a_studys_own_reports_are_dropped_from_its_neighbours():
    wide = Neighbours(np.array([[0, 1, 2, 3], [2, 0, 1, 3]]), np.array([[0.9, 0.8, 0.7, 0.6]] * 2, np.float32))
    ids = ["r0", "r1", "r2", "r3"]
    kept = without_own_reports(wide, ids, [["r0"], None], k=3)
    assert kept.index.tolist() == [[1, 2, 3], [2, 0, 1]]
    assert kept.similarity[0].tolist() == pytest.approx([0.8, 0.7, 0.6])
    with pytest.raises(EvaluationError, match="too few"):
        without_own_reports(wide, ids, [["r0", "r1"], None], k=3)


def test_platt_scaling_is_monotone_and_needs_both_classes():
    rng = np.random.default_rng(0)
    truth = (rng.random(200) < 0.3).astype(float)
    scores = truth * 0.2 + rng.normal(0, 0.1, 200)
    calibrate = platt(scores, truth)
    probs = calibrate(np.array([-0.2, 0.1, 0.4, np.nan]))
    assert 0 < probs[0] < probs[1] < probs[2] < 1 and np.isnan(probs[3])
    # calibrated: the mean probability on the fitting data matches the prevalence
    assert calibrate(scores).mean() == pytest.approx(truth.mean(), abs=0.02)
    assert platt(scores, np.ones(200)) is None


def _with_lineage_tables(store):
    """The report_links and sector_masks rows the lineage view needs for the test clips."""
    labels = store.read_table("report_labels").to_pylist()
    links = [{"report_id": r["report_id"], "study_instance_uid": r["study_instance_uid"], "patient_key": r["patient_key"],
              "link_method": "study_instance_uid", "candidate_count": 1, "run_id": "up", "code_version": "t"}
             for r in labels]
    store.write_table("report_links", _table("report_links", [_required_filled("report_links", r) for r in links]))
    masks = [{"sop_instance_uid": m["sop_instance_uid"], "file_sha256": m["file_sha256"], "shard": "00",
              "method": "regions", "mask_path": "m.png", "run_id": "up", "code_version": "t"}
             for m in store.read_table("masked_clips").to_pylist()]
    store.write_table("sector_masks", _table("sector_masks", [_required_filled("sector_masks", m) for m in masks]), "00")


def _required_filled(name: str, row: dict) -> dict:
    """``row`` with every non-nullable column it lacks set to its type's zero (columns lineage does not read)."""
    import pyarrow as pa

    from echo_pipeline.schemas import TABLES

    zero = {pa.types.is_string: "", pa.types.is_boolean: False, pa.types.is_integer: 0, pa.types.is_floating: 0.0}
    filled = dict(row)
    for field in TABLES[name]:
        if not field.nullable and field.name not in filled:
            filled[field.name] = next(v for test, v in zero.items() if test(field.type))
    return filled


def test_asset_writes_a_report_per_study_that_joins_lineage_and_prints(tmp_path, capsys):
    import dagster as dg
    import duckdb

    from assets.interpretation import study_reports
    from assets.studies import study_embeddings
    from echo_pipeline_cli import main
    from resources import PipelineResource

    store, record = build_data_root(tmp_path / "out", np.random.default_rng(0))
    _with_lineage_tables(store)
    resource = PipelineResource(dicom_root=str(tmp_path), reports_path=str(tmp_path / "reports.csv"),
                                data_root=str(store.path))
    result = dg.materialize([study_embeddings, study_reports], partition_key="bpe", resources={"pipeline": resource},
                            run_config={"ops": {"study_reports": {"config": {"knn_k": 3, "device": "cpu"}}}})
    assert result.success
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    rows = con.execute("SELECT * FROM study_reports").df()
    assert rows["study_instance_uid"].nunique() == 8 and set(rows["split"]) == {"test"}  # studies with A4C clips
    assert {"lvef", "pacemaker", "tavr"} <= set(rows["task"])
    lvef = rows[rows["task"] == "lvef"].set_index("study_instance_uid")
    candidates = load_prompts().regression_tasks["lvef"].values  # zero-shot picks among the prompts' values
    assert lvef["zero_shot_score"].between(min(candidates), max(candidates)).all()
    assert lvef["knn_score"].between(68, 86).all()  # a weighted mean of the training reports' LVEFs
    assert (lvef["evidence_report_ids"].map(len) == 3).all()
    assert all(set(ids) <= {"r08", "r09", "r10", "r11"} for ids in lvef["evidence_report_ids"])  # training reports
    assert all(np.all(np.diff(s) <= 0) for s in lvef["evidence_similarities"])
    assert rows["zero_shot_probability"].isna().all()  # the validation studies have no clips: nothing to calibrate on
    joined = con.execute("""SELECT count(DISTINCT r.study_instance_uid) FROM study_reports AS r
                            JOIN lineage AS l ON l.model_id = r.model_id AND l.study_instance_uid = r.study_instance_uid
                            JOIN reports AS p ON p.report_id = r.evidence_report_ids[1]""").fetchone()[0]
    assert joined == 8

    assert main(["report", "--study", "s00", "--data-root", str(store.path)]) == 0
    text = capsys.readouterr().out
    assert "Preliminary read of study s00" in text and "lvef" in text and "Evidence" in text
    assert main(["report", "--study", "nope", "--data-root", str(store.path)]) == 2
    assert "study_reports" in capsys.readouterr().err


def test_report_text_shows_both_methods_the_report_and_the_evidence():
    import pandas as pd

    from echo_pipeline.interpretation.study_reports import format_study_report

    common = {"study_instance_uid": "1.2.3", "split": float("nan"), "n_clips": 2, "variant": "bpe", "model_id": "m",
              "evidence_report_ids": ["r7", "r2", "r9"], "evidence_similarities": [0.91, 0.85, 0.8]}
    rows = pd.DataFrame([
        {**common, "task": "pacemaker", "kind": "binary", "zero_shot_score": 0.31, "zero_shot_probability": 0.8,
         "knn_score": 1.0, "knn_probability": 0.93, "reported": 1.0},
        {**common, "task": "lvef", "kind": "regression", "zero_shot_score": 42.0, "zero_shot_probability": None,
         "knn_score": 47.26, "knn_probability": None, "reported": None}])
    text = format_study_report(rows)
    assert "study 1.2.3 (no split; 2 A4C clips)" in text
    pacemaker = next(line for line in text.splitlines() if line.startswith("pacemaker"))
    assert pacemaker.split() == ["pacemaker", "0.310", "0.800", "1.000", "0.930", "1.000"]
    lvef = next(line for line in text.splitlines() if line.startswith("lvef"))
    assert lvef.split() == ["lvef", "42.0", "47.3", "-"]
    assert "r7  cosine 0.9100" in text and text.index("r7") < text.index("r2")
