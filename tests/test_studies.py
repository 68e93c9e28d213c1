"""Study embeddings: the pure mean, and the `study_embeddings` asset in a real in-process Dagster run over a
tiny real model's stored clip embeddings."""

import datetime as dt
import hashlib

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from assets.embeddings import clip_embeddings
from assets.studies import study_embeddings
from echo_pipeline.embeddings import EmbeddingStore
from echo_pipeline.errors import EmbeddingError, UpstreamNotMaterialisedError
from echo_pipeline.schemas import DICOM_INSTANCES
from echo_pipeline.storage import DataRoot
from echo_pipeline.studies import load_study_embeddings, mean_by_study
from echo_pipeline.studies.change import clip_pair_similarity, event_windows, study_similarity
from resources import PipelineResource
from test_embedding_assets import save_tiny_model, write_masked_clips


def test_mean_by_study_is_the_normalised_mean_of_normalised_clips():
    clips = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 5.0], [1.0, 1.0]])
    out = mean_by_study(clips, ["b", "a", "b", "c"])
    assert out.study_uids == ["a", "b", "c"]
    assert out.n_clips.tolist() == [1, 2, 1]
    np.testing.assert_allclose(out.vectors[0], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(out.vectors[1], [2 ** -0.5, 2 ** -0.5], atol=1e-6)  # norms 3 and 5 count equally
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-6)


def test_mean_by_study_refuses_misaligned_inputs_and_zero_vectors():
    with pytest.raises(EmbeddingError):
        mean_by_study(np.ones((2, 3)), ["a"])
    with pytest.raises(EmbeddingError):
        mean_by_study(np.zeros((1, 3)), ["a"])


def stored_path(uid: str) -> str:
    """A relative path as ingestion stores it: pseudonymised (16 hex digits, extension kept)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:16] + ".dcm"


def write_instances(store: DataRoot, study_of: dict[str, str], patient_of: dict[str, str] | None = None,
                    dates: dict[str, dt.date] | None = None) -> None:
    """Minimal `dicom_instances` rows (one shard) for the clips in ``study_of``."""
    uids = list(study_of)
    n = len(uids)
    columns = {field.name: pa.nulls(n, field.type) for field in DICOM_INSTANCES}
    columns.update({
        "file_sha256": [f"sha-{u}" for u in uids], "relative_path": [stored_path(u) for u in uids],
        "file_size": [1] * n, "shard": ["00"] * n, "sop_instance_uid": uids,
        "study_instance_uid": [study_of[u] for u in uids], "run_id": ["test"] * n, "code_version": ["test"] * n,
    })
    if patient_of:
        columns["patient_key"] = [patient_of[study_of[u]] for u in uids]
    if dates:
        columns["study_date"] = [dates[study_of[u]] for u in uids]
    store.write_table("dicom_instances_by_shard", pa.table(columns, schema=DICOM_INSTANCES), "00",
                      schema_name="dicom_instances")


def test_study_embeddings_asset_averages_each_studys_stored_clips(tmp_path):
    store = DataRoot(tmp_path / "data")
    record = save_tiny_model(store, seed=0, name="first")
    write_masked_clips(store, {"00": ["1.1", "1.2", "1.3"], "01": ["2.1"]})
    study_of = {"1.1": "S1", "1.2": "S1", "1.3": "S2", "2.1": "S2"}
    write_instances(store, study_of)
    resource = PipelineResource(dicom_root=str(tmp_path / "dicom"), reports_path=str(tmp_path / "r.csv"),
                                data_root=str(store.path))
    with pytest.raises(UpstreamNotMaterialisedError):
        load_study_embeddings(store, "bpe")
    result = dg.materialize([clip_embeddings, study_embeddings], partition_key="bpe",
                            resources={"pipeline": resource})
    assert result.success
    rows, vectors = load_study_embeddings(store, "bpe")
    assert rows["study_instance_uid"].tolist() == ["S1", "S2"]
    assert rows["n_clips"].tolist() == [2, 2]
    assert (rows["model_id"] == record.model_id).all()
    ids, clips = EmbeddingStore(store, "clip_embeddings", record.model_id).load_vectors()
    by_id = dict(zip(ids, clips))
    expected = by_id["1.3"] + by_id["2.1"]
    np.testing.assert_allclose(vectors[1], expected / np.linalg.norm(expected), atol=1e-5)
    [event] = result.asset_materializations_for_node("study_embeddings")
    assert event.metadata["clips_averaged"].value == 4


def _events_and_studies():
    d = dt.date
    events = pd.DataFrame({"event_id": ["e1", "e2", "e3", "e4"], "patient_key": ["p1", "p2", "p3", "p4"],
                           "procedure": ["heart_transplant", "tavr", "tavr", "pacemaker"],
                           "event_date": [d(2020, 6, 1), d(2020, 6, 1), d(2020, 6, 1), d(2020, 6, 1)]})
    studies = pd.DataFrame({
        "study_instance_uid": ["a0", "a1", "a2", "a3", "aX", "b0", "b1", "c0", "c1"],
        "patient_key": ["p1", "p1", "p1", "p1", "p1", "p2", "p2", "p3", "p3"],
        "study_date": [d(2020, 1, 1), d(2020, 3, 1), d(2020, 6, 1), d(2020, 8, 1), d(2021, 6, 1),  # a2: that day
                       d(2020, 7, 1), d(2020, 9, 1), d(2020, 5, 1), d(2021, 5, 1)]})
    return events, studies


def test_event_windows_score_studies_against_the_earliest_one_before_the_event():
    events, studies = _events_and_studies()
    windows, notes = event_windows(events, studies)
    p1 = windows[windows["event_id"] == "e1"]
    assert p1["study_instance_uid"].tolist() == ["a1", "a3"]  # a0 is the reference; a2 same day, aX too late
    assert set(p1["reference_study_uid"]) == {"a0"} and p1["after_event"].tolist() == [False, True]
    assert p1["days_from_event"].tolist() == [-92, 61]
    assert set(windows["event_id"]) == {"e1"}  # e2: no study before; e3: only the reference; e4: no study
    assert len(notes) == 3 and any("comes after it" in n for n in notes)


def test_similarities_and_auc_rows_find_a_change_and_no_change():
    from echo_pipeline.evaluation.clinical_change import ChangeSettings, auc_rows

    rng = np.random.default_rng(0)
    rows = []
    for p in range(30):  # before: near the reference; after: turned away from it, a bit less each time
        for after in (False, True):
            rows.append({"patient_key": f"p{p}", "procedure": "tavr" if p % 2 else "cardiac_surgery",
                         "after_event": after, "value": 0.9 - (0.3 if after else 0) + rng.normal(0, 0.05)})
    scored = pd.DataFrame(rows)
    boot = ChangeSettings(n_resamples=200)
    [surgery, tavr, pooled] = auc_rows(scored, {}, boot)
    assert pooled["procedure"] == "all" and pooled["n_patients"] == 30 and pooled["n_after"] == 30
    assert pooled["value"] > 0.95 and pooled["ci_low"] > 0.9
    null = scored.assign(value=rng.normal(0.8, 0.05, len(scored)))
    pooled_null = auc_rows(null, {}, boot)[-1]
    assert pooled_null["ci_low"] < 0.5 < pooled_null["ci_high"]
    windows = pd.DataFrame({"study_instance_uid": ["s1", "s2"], "reference_study_uid": ["s0", "s9"]})
    vectors = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    sims = study_similarity(windows, ["s0", "s1", "s2"], vectors)
    assert sims[0] == pytest.approx(0.6) and np.isnan(sims[1])  # s9 has no vector
    clips = {"s0": np.array([[1.0, 0.0], [0.0, 1.0]]), "s1": np.array([[1.0, 0.0]])}
    pair = clip_pair_similarity(windows, clips)
    assert pair[0] == pytest.approx(0.5) and np.isnan(pair[1])


def test_clinical_change_asset_writes_rows_that_reach_their_files_and_events(tmp_path, monkeypatch):
    import duckdb

    from assets.studies import eval_clinical_change, validated_events
    from echo_pipeline.privacy import KEY_ENV_VAR, pseudonymise

    monkeypatch.setenv(KEY_ENV_VAR, "test-key")
    store = DataRoot(tmp_path / "data")
    save_tiny_model(store, seed=0, name="first")
    d0 = dt.date(2020, 1, 1)
    offsets = {"A": (0, 60, 150), "B": (0, 40, 120)}  # events on day 90 and 70
    study_of, patient_of, dates, clips = {}, {}, {}, []
    for patient, days in offsets.items():
        for j, day in enumerate(days):
            study = f"{patient}{j}"
            patient_of[study], dates[study] = pseudonymise(f"MRN-{patient}", b"test-key", "patient"), d0 + dt.timedelta(day)
            for c in range(2):
                study_of[f"9.{patient}{j}{c}"] = study
                clips.append(f"9.{patient}{j}{c}")
    write_masked_clips(store, {"00": clips})
    write_instances(store, study_of, patient_of, dates)
    studies = sorted(set(study_of.values()))
    store.write_table("splits", pa.table({"study_instance_uid": studies, "patient_key": [patient_of[s] for s in studies],
                                          "split": ["test"] * len(studies), "run_id": ["t"] * len(studies),
                                          "code_version": ["t"] * len(studies)}))
    events = tmp_path / "events.csv"
    events.write_text("patient_id,procedure,event_date\nMRN-A,heart_transplant,2020-03-31\nMRN-B,tavr,2020-03-11\n")
    resource = PipelineResource(dicom_root=str(tmp_path), reports_path=str(tmp_path / "r.csv"),
                                data_root=str(store.path), events_path=str(events))
    result = dg.materialize([clip_embeddings, study_embeddings, validated_events, eval_clinical_change],
                            partition_key="bpe", resources={"pipeline": resource},
                            run_config={"ops": {"eval_clinical_change": {"config": {"n_resamples": 50}}}})
    assert result.success
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    rows = con.execute("SELECT * FROM eval_clinical_change").df()
    similarity = rows[rows["metric"] == "similarity_to_earliest"]
    # Per patient: the earliest study is the reference; one study before and one after the event are scored.
    assert len(similarity) == 2 * 2 * 2 * 2  # patients × scored studies × levels × model kinds
    assert set(similarity["study_instance_uid"]) == {"A1", "A2", "B1", "B2"}
    assert set(similarity["reference_study_uid"]) == {"A0", "B0"}
    assert similarity["value"].between(-1, 1).all() and set(rows["model_kind"]) == {"trained", "untrained"}
    auc = rows[rows["metric"] == "auc_before_after"]
    assert set(auc["procedure"]) == {"heart_transplant", "tavr", "all"} and (auc["n_patients"] > 0).all()
    reached = con.execute("""SELECT count(*) FROM eval_clinical_change AS c WHERE NOT EXISTS (
        SELECT 1 FROM clinical_change_lineage AS l WHERE l.model_id = c.model_id AND l.level = c.level
        AND l.metric = c.metric AND l.procedure = c.procedure
        AND coalesce(l.row_study_uid, '') = coalesce(c.study_instance_uid, '') AND l.events_row IS NOT NULL
        AND l.relative_path IS NOT NULL)""").fetchone()[0]
    assert reached == 0
    files = con.execute("SELECT DISTINCT relative_path FROM clinical_change_lineage WHERE row_study_uid = 'A2'").df()
    assert sorted(files["relative_path"]) == sorted(stored_path(u) for u in ("9.A00", "9.A01", "9.A20", "9.A21"))
    [event] = result.asset_materializations_for_node("eval_clinical_change")
    assert "data:image/png;base64," in event.metadata["clinical_change_trained"].value


def test_without_an_events_file_the_change_table_is_empty_and_says_why(tmp_path):
    from assets.studies import eval_clinical_change, validated_events
    from echo_pipeline.studies import NO_EVENTS_NOTE

    store = DataRoot(tmp_path / "data")
    save_tiny_model(store, seed=0, name="first")
    write_masked_clips(store, {"00": ["1.1"]})
    patient = "pat_" + "0" * 20
    write_instances(store, {"1.1": "S1"}, {"S1": patient}, {"S1": dt.date(2020, 1, 1)})
    store.write_table("splits", pa.table({"study_instance_uid": ["S1"], "patient_key": [patient], "split": ["test"],
                                          "run_id": ["t"], "code_version": ["t"]}))
    resource = PipelineResource(dicom_root=str(tmp_path), reports_path=str(tmp_path / "r.csv"),
                                data_root=str(store.path))
    result = dg.materialize([clip_embeddings, study_embeddings, validated_events, eval_clinical_change],
                            partition_key="bpe", resources={"pipeline": resource})
    assert result.success and store.read_table("eval_clinical_change", "bpe").num_rows == 0
    [event] = result.asset_materializations_for_node("eval_clinical_change")
    assert event.metadata["notes"].value[0] == NO_EVENTS_NOTE


def test_partitions_written_before_a_column_existed_still_read_together(tmp_path):
    import pyarrow.parquet as pq

    store = DataRoot(tmp_path)
    write_instances(store, {"1.1": "S1"})
    old = store.partition_file("dicom_instances_by_shard", "01")
    pq.write_table(pq.read_table(store.partition_file("dicom_instances_by_shard", "00")).drop_columns(["age_band"]), old)
    both = store.read_table("dicom_instances_by_shard")
    assert both.num_rows == 2 and both.column("age_band").null_count == 2
