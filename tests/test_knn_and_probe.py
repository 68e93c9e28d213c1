"""kNN over training reports and the linear probe: exact neighbours, the weighting rule, and their eval rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from echo_pipeline.errors import EvaluationError
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.knn_and_probe import (KNN, PROBE, LabelledVectors, knn_predictions, method_rows,
                                                    probe_predictions)
from echo_pipeline.evaluation.knn_reports import Neighbours, nearest_reports, weighted_label
from echo_pipeline.schemas import REPORT_LABEL_NAMES, TABLES
from test_eval_tables import BOOT, LINEAGE, PROMPTS, make_cohort


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_nearest_reports_are_the_exact_top_k_best_first_ties_by_row():
    rng = np.random.default_rng(0)
    clips, reports = _unit(rng.normal(size=(37, 8))), _unit(rng.normal(size=(90, 8)))
    found = nearest_reports(clips, reports, k=5, chunk=10)  # several chunks
    expected = np.argsort(-(clips @ reports.T), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(found.index, expected)
    assert (np.diff(found.similarity, axis=1) <= 0).all()
    tied = nearest_reports(np.ones((1, 2)) / np.sqrt(2), np.tile([[1.0, 0.0]], (4, 1)), k=3)
    assert tied.index.tolist() == [[0, 1, 2]]
    assert nearest_reports(clips, reports[:3], k=50).index.shape == (37, 3)  # k capped at the reports there are
    with pytest.raises(EvaluationError, match="report_embeddings"):
        nearest_reports(clips, reports[:0], k=5)


def test_weighted_label_weights_by_similarity_skips_unstated_and_ignores_negative_cosines():
    neighbours = Neighbours(np.array([[0, 1, 2], [2, 3, 1], [3, 3, 3]]),
                            np.array([[0.9, 0.3, 0.5], [0.5, -0.4, 0.3], [0.2, 0.2, 0.2]], np.float32))
    values = np.array([60.0, 30.0, np.nan, np.nan])  # reports 2 and 3 do not state the label
    out = weighted_label(neighbours, values)
    assert out[0] == pytest.approx((0.9 * 60 + 0.3 * 30) / 1.2, rel=1e-6)
    assert out[1] == pytest.approx(30.0)  # report 3 has a negative cosine and no value; report 1 alone counts
    assert np.isnan(out[2])  # no neighbour states it
    votes = weighted_label(Neighbours(np.array([[0, 1, 2]]), np.array([[0.6, 0.2, 0.2]], np.float32)),
                           np.array([1.0, 0.0, 0.0]))
    assert votes[0] == pytest.approx(0.6)


def _report_space(cohort, n_reports: int = 40, seed: int = 0):
    """Training reports whose embeddings encode their LVEF and pacemaker labels; clips encode their own."""
    rng = np.random.default_rng(seed)

    def embed(lvef, pacemaker):
        angle = np.pi / 2 * np.asarray(lvef) / 100
        return _unit(np.stack([np.cos(angle), np.sin(angle), 0.6 * np.asarray(pacemaker, float)], axis=1))

    lvef = rng.integers(15, 76, n_reports).astype(float)
    pacemaker = rng.random(n_reports) < 0.5
    labels = pd.DataFrame([{name: None for name in REPORT_LABEL_NAMES} for _ in range(n_reports)])
    labels["lvef"], labels["pacemaker"] = lvef, pacemaker
    reports = LabelledVectors([f"t{i}" for i in range(n_reports)], embed(lvef, pacemaker).astype(np.float32), labels)
    clips = embed(cohort.labels["lvef"].to_numpy(float), cohort.labels["pacemaker"].to_numpy(bool))
    return reports, clips.astype(np.float32)


def test_knn_and_probe_rows_beat_the_training_mean_where_the_embedding_carries_the_label():
    cohort = make_cohort()
    reports, clips = _report_space(cohort)
    knn, neighbours = knn_predictions(clips, reports, PROMPTS, k=3)
    assert neighbours.index.shape == (len(clips), 3)
    truth = cohort.labels["lvef"].to_numpy(float)
    assert np.mean(np.abs(knn["lvef"] - truth)) < 4.0  # the training mean (≈45) would be off by ~15
    result = method_rows(KNN, knn, cohort, PROMPTS, LINEAGE, BOOT, "3 nearest")
    regression = pd.DataFrame(result.rows["eval_regression"])
    mae = regression[(regression["task"] == "lvef") & (regression["metric"] == "mae")].iloc[0]
    assert mae["method"] == KNN and mae["prompt_strategy"] == KNN and mae["method_definition"] == "3 nearest"
    assert mae["ci_low"] <= mae["value"] <= mae["ci_high"] and mae["n_studies"] == len(cohort.clips) // 2
    auc = pd.DataFrame(result.rows["eval_classification"]).set_index(["task", "metric"])
    assert auc.loc[("pacemaker", "auc"), "value"] == 1.0 and auc.loc[("pacemaker", "auc"), "method"] == KNN
    assert "tavr" not in {t for t, _ in auc.index}  # no training report states a TAVR: no kNN prediction, no row
    assert T.to_table("eval_regression", result.rows["eval_regression"]).schema == TABLES["eval_regression"]

    probe = probe_predictions(LabelledVectors(reports.ids, reports.vectors, reports.labels), clips, PROMPTS)
    assert set(probe) == {"lvef", "pacemaker"}  # the tasks the training rows state, with both classes
    rows = pd.DataFrame(method_rows(PROBE, probe, cohort, PROMPTS, LINEAGE, BOOT, "probe").rows["eval_classification"])
    assert rows[(rows["task"] == "pacemaker") & (rows["metric"] == "auc")]["value"].iloc[0] == 1.0
    one_class = LabelledVectors(reports.ids, reports.vectors, reports.labels.assign(pacemaker=True))
    assert "pacemaker" not in probe_predictions(one_class, clips, PROMPTS)  # nothing to learn: no row


def test_summary_keeps_methods_apart():
    cohort = make_cohort()
    reports, clips = _report_space(cohort)
    knn, _ = knn_predictions(clips, reports, PROMPTS, k=3)
    rows = method_rows(KNN, knn, cohort, PROMPTS, LINEAGE, BOOT, "3 nearest").rows
    frames = {name: pd.DataFrame(rows[name]) for name in ("eval_classification", "eval_regression")}
    summary = T.summary_rows(frames, "base_prompts")
    assert len(summary) == 1 and summary[0]["method"] == KNN and summary[0]["prompt_strategy"] == KNN
    assert summary[0]["mcmrr"] is None and summary[0]["lvef_mae"] < 4.0
