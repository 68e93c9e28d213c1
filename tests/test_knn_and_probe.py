"""kNN over training reports and the linear probe: neighbours from a real report index (flat and IVF, built by
the project's own `build_index`) restricted to the training reports, the weighting rule, and their eval rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from echo_pipeline import model_variants
from echo_pipeline.errors import EvaluationError
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.knn_and_probe import (KNN, PROBE, LabelledVectors, TrainingReports, knn_predictions,
                                                    method_rows, probe_predictions, training_reports)
from echo_pipeline.evaluation.knn_reports import Neighbours, nearest_reports, open_report_index, weighted_label
from echo_pipeline.schemas import REPORT_LABEL_NAMES, TABLES
from echo_pipeline.search import IndexConfig, build_index, load_index, recall_at_k
from echo_pipeline.storage import DataRoot
from test_eval_tables import BOOT, LINEAGE, PROMPTS, make_cohort


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _report_index(directory, vectors, ids, kind="flat", **config):
    build_index(directory, vectors, ids, content="reports", model_id="m", config=IndexConfig(kind=kind, **config))
    return load_index(directory)


def _exact(clips, reports, allowed_rows, k):
    """Exact top-k over the allowed rows by NumPy: positions in ``allowed_rows``, best first."""
    sims = _unit(clips) @ _unit(reports[allowed_rows]).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def test_flat_index_gives_the_exact_top_k_of_the_allowed_reports_only(tmp_path):
    rng = np.random.default_rng(0)
    reports, clips = _unit(rng.normal(size=(90, 8))), _unit(rng.normal(size=(37, 8)))
    ids = [f"r{i:03d}" for i in range(90)]
    loaded = _report_index(tmp_path / "flat", reports, ids)
    allowed_rows = rng.permutation(90)[:55]  # "training" reports, in an order unlike the index's rows
    allowed = [ids[r] for r in allowed_rows]
    found = nearest_reports(loaded, allowed, clips, k=5)
    order, sims = _exact(clips, reports, allowed_rows, 5)
    np.testing.assert_array_equal(found.index, order)  # positions in `allowed`, mapped by report id
    np.testing.assert_allclose(found.similarity, sims, atol=1e-5)
    assert {allowed[j] for j in found.index.ravel()} <= set(allowed)
    # a clip equal to a held-out report does not get that report back
    held_out = sorted(set(range(90)) - set(allowed_rows.tolist()))
    own = nearest_reports(loaded, allowed, reports[held_out], k=3)
    assert not {allowed[j] for j in own.index.ravel()} & {ids[r] for r in held_out}
    assert (own.similarity[:, 0] < 0.999).all()
    assert nearest_reports(loaded, allowed[:3], clips, k=50).index.shape == (37, 3)  # k capped at the allowed
    with pytest.raises(EvaluationError, match="at least one"):
        nearest_reports(loaded, allowed, clips, k=0)
    with pytest.raises(EvaluationError, match="report_index"):
        nearest_reports(loaded, [], clips, k=5)
    with pytest.raises(EvaluationError, match="not in the report index"):
        nearest_reports(loaded, ["unknown"], clips, k=5)
    with pytest.raises(EvaluationError, match="dimension"):
        nearest_reports(loaded, allowed, clips[:, :4], k=5)


def test_ivf_index_agrees_with_the_exact_search_and_never_leaves_the_allowed_reports(tmp_path):
    rng = np.random.default_rng(1)
    centres = _unit(rng.normal(size=(20, 16)))  # clustered, as embeddings are: IVF lists mean something
    reports = _unit(centres[rng.integers(0, 20, 2000)] + 0.4 * rng.normal(size=(2000, 16)))
    clips = _unit(centres[rng.integers(0, 20, 200)] + 0.4 * rng.normal(size=(200, 16)))
    ids = [f"r{i:04d}" for i in range(2000)]
    loaded = _report_index(tmp_path / "ivf", reports, ids, kind="ivf")  # the default nprobe, 16 of 45 lists
    assert loaded.manifest["build_params"] == {"nlist": 45, "nprobe": 16, "train_points": 2000, "seed": 0}
    allowed_rows = np.sort(rng.permutation(2000)[:1400])
    allowed = [ids[r] for r in allowed_rows]
    order, _ = _exact(clips, reports, allowed_rows, 10)

    def recall(found):
        return np.mean([len(set(f) & set(o)) / 10 for f, o in zip(found.index.tolist(), order.tolist())])

    found = nearest_reports(loaded, allowed, clips, k=10)
    unrestricted = recall_at_k(loaded.index, reports.astype(np.float32), clips.astype(np.float32), 10)
    assert recall(found) > 0.9 and recall(found) >= unrestricted - 0.05, (recall(found), unrestricted)
    assert (np.diff(found.similarity, axis=1) <= 1e-6).all()
    every_list = load_index(tmp_path / "ivf", nprobe=45)  # exhaustive: exactly the exact search
    assert recall(nearest_reports(every_list, allowed, clips, k=10)) == 1.0
    # few allowed reports, one list probed: most lists hold none, so the search widens until it finds k
    narrow = _report_index(tmp_path / "narrow", reports, ids, kind="ivf", nprobe=1)
    few_rows = rng.permutation(2000)[:12]
    few = nearest_reports(narrow, [ids[r] for r in few_rows], clips, k=5)
    assert few.index.shape == (200, 5) and (few.index >= 0).all() and (few.index < 12).all()
    assert all(len(set(row)) == 5 for row in few.index.tolist())
    sims = clips @ reports[few_rows].T
    np.testing.assert_allclose(few.similarity, np.take_along_axis(sims, few.index, axis=1), atol=1e-5)


def test_training_reports_come_from_the_variants_report_index_or_fail_naming_it(tmp_path):
    store = DataRoot(tmp_path / "out")
    record = model_variants.ModelRecord("bpe", "sha256:x", "echo-tiny", "bpe", "ckpt", "run", None, 1, 1.0, 1, 8,
                                        "train-run", "t")
    train = pd.DataFrame({"report_id": ["a", "b", "c"], "lvef": [50.0, 60.0, 70.0]})
    with pytest.raises(EvaluationError, match=r"materialise report_index\[bpe\] first"):
        training_reports(store, record, train)
    directory = model_variants.index_dir(store, model_variants.REPORT_INDEX, "bpe")
    rng = np.random.default_rng(2)
    build_index(directory, rng.normal(size=(4, 8)), ["c", "a", "test-1", "x"], content="reports",
                model_id="another model")
    with pytest.raises(EvaluationError, match=r"materialise report_index\[bpe\] again"):
        open_report_index(store, record)
    build_index(directory, rng.normal(size=(4, 8)), ["c", "a", "test-1", "x"], content="reports",
                model_id=record.model_id)
    reports = training_reports(store, record, train)
    assert reports.ids == ["a", "c"]  # "b" has no vector in the index; "test-1" is not a training report
    assert reports.labels["lvef"].tolist() == [50.0, 70.0]  # labels row-aligned with ids, by report id


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


def _report_space(cohort, directory, n_reports: int = 40, seed: int = 0):
    """Training reports whose embeddings encode their LVEF and pacemaker labels, in a report index that also
    holds each clip's own (test) report with the clip's very vector; clips encode their own labels."""
    rng = np.random.default_rng(seed)

    def embed(lvef, pacemaker):
        angle = np.pi / 2 * np.asarray(lvef) / 100
        return _unit(np.stack([np.cos(angle), np.sin(angle), 0.6 * np.asarray(pacemaker, float)], axis=1))

    lvef = rng.integers(15, 76, n_reports).astype(float)
    pacemaker = rng.random(n_reports) < 0.5
    labels = pd.DataFrame([{name: None for name in REPORT_LABEL_NAMES} for _ in range(n_reports)])
    labels["lvef"], labels["pacemaker"] = lvef, pacemaker
    vectors = embed(lvef, pacemaker).astype(np.float32)
    clips = embed(cohort.labels["lvef"].to_numpy(float), cohort.labels["pacemaker"].to_numpy(bool))
    ids = [f"t{i}" for i in range(n_reports)]
    test_ids = [f"test-{i}" for i in range(len(clips))]
    loaded = _report_index(directory, np.concatenate([clips, vectors]), test_ids + ids)
    return TrainingReports(ids, labels, loaded), vectors, clips.astype(np.float32)


def test_knn_and_probe_rows_beat_the_training_mean_where_the_embedding_carries_the_label(tmp_path):
    cohort = make_cohort()
    reports, vectors, clips = _report_space(cohort, tmp_path / "index")
    knn, neighbours = knn_predictions(clips, reports, PROMPTS, k=3)
    assert neighbours.index.shape == (len(clips), 3)
    nearest_unrestricted = [hits[0][0] for hits in reports.index.search(clips, 1)]
    assert any(i.startswith("test-") for i in nearest_unrestricted)  # the test reports are there, and near
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

    probe = probe_predictions(LabelledVectors(reports.ids, vectors, reports.labels), clips, PROMPTS)
    assert set(probe) == {"lvef", "pacemaker"}  # the tasks the training rows state, with both classes
    rows = pd.DataFrame(method_rows(PROBE, probe, cohort, PROMPTS, LINEAGE, BOOT, "probe").rows["eval_classification"])
    assert rows[(rows["task"] == "pacemaker") & (rows["metric"] == "auc")]["value"].iloc[0] == 1.0
    one_class = LabelledVectors(reports.ids, vectors, reports.labels.assign(pacemaker=True))
    assert "pacemaker" not in probe_predictions(one_class, clips, PROMPTS)  # nothing to learn: no row


def test_summary_keeps_methods_apart(tmp_path):
    cohort = make_cohort()
    reports, _, clips = _report_space(cohort, tmp_path / "index")
    knn, _ = knn_predictions(clips, reports, PROMPTS, k=3)
    rows = method_rows(KNN, knn, cohort, PROMPTS, LINEAGE, BOOT, "3 nearest").rows
    frames = {name: pd.DataFrame(rows[name]) for name in ("eval_classification", "eval_regression")}
    summary = T.summary_rows(frames, "base_prompts")
    assert len(summary) == 1 and summary[0]["method"] == KNN and summary[0]["prompt_strategy"] == KNN
    assert summary[0]["mcmrr"] is None and summary[0]["lvef_mae"] < 4.0
