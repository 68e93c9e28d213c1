"""Evaluation tables: constructed embeddings with known answers, CIs, reference rows, EchoNet, and the asset."""

from __future__ import annotations

import datetime as dt

import cv2
import numpy as np
import pandas as pd
import pytest

from echo_pipeline import metrics
from echo_pipeline.errors import InputContractError
from echo_pipeline.evaluation import echonet, suite
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.cohort import EvalCohort, retrieval_sample
from echo_pipeline.evaluation.prompt_sets import (BASE, FALLBACK, SAMPLED, EmbeddedPromptSet, embed_prompt_sets,
                                                  prompt_sets)
from echo_pipeline.evaluation.prompts import binary_truths, load_prompts
from echo_pipeline.schemas import REPORT_LABEL_NAMES, TABLES

PROMPTS = load_prompts()
BINARY = list(PROMPTS.binary_tasks)
N_STUDIES = 12
CLIPS_PER_STUDY = 2
LINEAGE = T.Lineage("model-a", "sha-a", "trained", "bpe", "internal", "test", "run-1")
BOOT = T.Bootstrap(n_resamples=200, seed=3)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_cohort(seed: int = 0) -> EvalCohort:
    """12 test studies of 6 patients (2 studies each: same day or another date), 2 clips per study."""
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for s in range(N_STUDIES):
        patient = s // 2
        date = dt.date(2020, 1, 1) + dt.timedelta(days=0 if s % 4 < 2 else 30 * (s % 2))
        study_labels = {name: None for name in REPORT_LABEL_NAMES}
        study_labels.update(lvef=float(rng.integers(15, 75)), pasp=float(rng.integers(20, 70)),
                            pacemaker=bool(s % 2), tavr=bool(s % 3 == 0), mitraclip=bool(s % 4 == 1),
                            lv_dilation="severe" if s % 5 == 0 else "none")
        for c in range(CLIPS_PER_STUDY):
            clips.append({"sop_instance_uid": f"clip-{s:02d}-{c}", "clip_path": f"x/{s}-{c}.npy",
                          "study_instance_uid": f"study-{s:02d}", "patient_key": f"patient-{patient}",
                          "study_date": pd.Timestamp(date), "report_id": f"report-{s:02d}"})
            labels.append(study_labels)
    reports = pd.DataFrame({"report_id": [f"report-{s:02d}" for s in range(N_STUDIES)],
                            "report_text": [f"REPORT {s}." for s in range(N_STUDIES)]})
    train = pd.DataFrame([{name: None for name in REPORT_LABEL_NAMES} | {"lvef": v, "pasp": 40.0}
                          for v in (50.0, 60.0, 70.0)])
    return EvalCohort("test", pd.DataFrame(clips), pd.DataFrame(labels, columns=list(REPORT_LABEL_NAMES)),
                      reports, pd.DataFrame(columns=["report_id", "report_text", *REPORT_LABEL_NAMES]), train)


# Embedding space: one axis per binary task, two axes per regression task (values on a quarter circle), and
# one axis per study (for retrieval): a clip's frames point at its positive tasks and its values.
N_DIM = len(BINARY) + 4 + N_STUDIES


def _value_direction(task_index: int, value: float) -> np.ndarray:
    v = np.zeros(N_DIM)
    angle = np.pi / 2 * value / 100.0
    v[len(BINARY) + 2 * task_index: len(BINARY) + 2 * task_index + 2] = np.cos(angle), np.sin(angle)
    return v


def constructed_encoder(texts):
    """Prompt sentences of task j → axis j; a regression prompt for value v → its quarter-circle direction."""
    out = []
    for text in texts:
        task = next(name for name, t in PROMPTS.binary_tasks.items() if text in t.prompts) if any(
            text in t.prompts for t in PROMPTS.binary_tasks.values()) else None
        if task is not None:
            out.append(np.eye(N_DIM)[BINARY.index(task)])
            continue
        for r, reg in enumerate(PROMPTS.regression_tasks.values()):
            for v, filled in zip(reg.values, reg.prompt_texts()):
                if text in filled:
                    out.append(_value_direction(r, v))
    return np.stack(out)


def perfect_embeddings(cohort: EvalCohort, short_clips: bool = True) -> suite.ModelEmbeddings:
    """Frames that score every positive above every negative and point exactly at the true values."""
    truths = binary_truths(cohort.labels, PROMPTS)
    n = len(cohort.clips)
    frame = np.zeros((n, N_DIM))
    for j, name in enumerate(BINARY):
        frame[truths[name].rows[truths[name].truth], j] = 1.0
    for r, (name, reg) in enumerate(PROMPTS.regression_tasks.items()):
        values = cohort.labels[reg.label].to_numpy(dtype=float)
        frame += np.stack([_value_direction(r, v) for v in values])
    frames = np.repeat(_unit(frame)[:, None, :], 20, axis=1).astype(np.float32)
    n_frames = np.full(n, 20, np.int32)
    if short_clips:  # every other clip has 5 frames, zero beyond (as stored)
        n_frames[::2] = 5
        frames[::2, 5:] = 0
    study = cohort.clips["study_instance_uid"].str[-2:].astype(int).to_numpy()
    clips = np.eye(N_DIM, dtype=np.float32)[len(BINARY) + 4 + study]
    reports = np.eye(N_DIM, dtype=np.float32)[len(BINARY) + 4 + np.arange(N_STUDIES)]
    sets = prompt_sets(PROMPTS, "bpe", cohort.prompt_reports)
    return suite.ModelEmbeddings(frames, n_frames, clips, reports,
                                 embed_prompt_sets(sets, constructed_encoder, constructed_encoder))


def random_embeddings(cohort: EvalCohort, seed: int = 1) -> suite.ModelEmbeddings:
    rng = np.random.default_rng(seed)
    n = len(cohort.clips)
    frames = _unit(rng.normal(size=(n, 20, N_DIM))).astype(np.float32)
    sets = prompt_sets(PROMPTS, "bpe", cohort.prompt_reports)
    encoder = lambda texts: _unit(rng.normal(size=(len(texts), N_DIM)))  # noqa: E731
    return suite.ModelEmbeddings(frames, np.full(n, 20, np.int32), _unit(rng.normal(size=(n, N_DIM))),
                                 _unit(rng.normal(size=(N_STUDIES, N_DIM))), embed_prompt_sets(sets, encoder, encoder))


def _rows(result: suite.ModelResult, table: str, **where) -> pd.DataFrame:
    df = pd.DataFrame(result.rows[table])
    for column, value in where.items():
        df = df[df[column] == value]
    return df


@pytest.fixture(scope="module")
def evaluated():
    cohort = make_cohort()
    trained = suite.evaluate_model(cohort, perfect_embeddings(cohort), PROMPTS, LINEAGE, BOOT)
    untrained = suite.evaluate_model(cohort, random_embeddings(cohort), PROMPTS,
                                     LINEAGE.but(model_id="untrained:x", model_kind="untrained"), BOOT)
    mean = suite.training_mean_rows(suite.cohort_training_means(cohort, PROMPTS),
                                    suite.cohort_regression_truths(cohort, PROMPTS),
                                    cohort.clips["study_instance_uid"].to_numpy(object), PROMPTS,
                                    LINEAGE.but(model_id="training_mean", model_kind="training_mean"), BOOT)
    return cohort, trained, untrained, mean


def test_true_pair_always_nearest_gives_mcmrr_one_and_recall_one(evaluated):
    _, trained, untrained, _ = evaluated
    rows = _rows(trained, "eval_retrieval")
    assert len(rows) == 2 * 5 + 1 and set(rows["n"]) == {N_STUDIES}
    mcmrr = rows[rows["metric"] == "mcmrr"].iloc[0]
    assert (mcmrr["value"], mcmrr["ci_low"], mcmrr["ci_high"]) == (1.0, 1.0, 1.0)
    assert mcmrr["chance"] == pytest.approx((N_STUDIES + 1) / 2)
    assert set(rows[rows["metric"] == "recall_at_1"]["value"]) == {1.0}
    assert _rows(untrained, "eval_retrieval", metric="mcmrr").iloc[0]["value"] > 1.0
    # The sample is one clip per study, seeded, and identical for every model evaluated on the cohort.
    cohort = make_cohort()
    first, again = retrieval_sample(cohort, seed=0), retrieval_sample(cohort, seed=0)
    assert first.equals(again) and first["study"].is_unique and len(first) == N_STUDIES


def test_perfect_scores_give_auc_one_and_youden_rates_one(evaluated):
    _, trained, _, _ = evaluated
    auc = _rows(trained, "eval_classification", metric="auc").set_index("task")
    # Only tasks whose label is known somewhere get rows; a task with no positive has an undefined AUC.
    assert set(auc.index) == {"pacemaker", "tavr", "mitraclip", "severe_lv_dilation", "moderate_lv_dilation"}
    assert np.isnan(auc.loc["moderate_lv_dilation", "value"])
    for task in ("pacemaker", "tavr", "mitraclip", "severe_lv_dilation"):
        assert auc.loc[task, "value"] == 1.0 and auc.loc[task, "ci_low"] == 1.0
        assert auc.loc[task, "prompt_strategy"] == BASE and auc.loc[task, "is_primary"]
        assert auc.loc[task, "n_prompts"] == len(PROMPTS.binary_tasks[task].prompts)
    pacemaker = _rows(trained, "eval_classification", task="pacemaker").set_index("metric")
    assert pacemaker.loc["sensitivity", "value"] == 1.0 and pacemaker.loc["specificity", "value"] == 1.0
    assert pacemaker.loc["prevalence", "value"] == pytest.approx(0.5) and pacemaker.loc["auc", "n_studies"] == N_STUDIES
    assert "frames 0, 2, ..., 38" in pacemaker.loc["auc", "score_definition"]


def test_regression_on_exact_directions_beats_training_mean_even_for_short_clips(evaluated):
    cohort, trained, untrained, mean = evaluated
    lvef = _rows(trained, "eval_regression", task="lvef").set_index("metric")
    baseline = _rows(mean, "eval_regression", task="lvef").set_index("metric")
    assert lvef.loc["mae", "value"] <= 1.0  # ties and the 20-value window cost at most half a unit each side
    assert baseline.loc["mae", "value"] > 5 * lvef.loc["mae", "value"]
    assert {"auc_below_50", "auc_below_40", "auc_below_30", "bias"} <= set(lvef.index)
    assert baseline.loc["mae", "prompt_strategy"] == "training_mean" and "60.00" in baseline.loc["mae", "method_definition"]
    # Zero frames past n_frames would drag short clips towards 0 %: they are scored on their own frames only.
    truth, pred = trained.predictions["lvef"]
    assert np.abs(truth - pred).max() <= 1.0
    assert set(_rows(trained, "eval_regression", task="pasp")["n"]) == {len(cohort.clips)}


def test_cis_bracket_the_estimate_and_are_deterministic_per_seed(evaluated):
    cohort, _, untrained, _ = evaluated
    for table in ("eval_retrieval", "eval_classification", "eval_regression", "eval_patient_identification"):
        df = _rows(untrained, table).dropna(subset=["ci_low", "ci_high"])
        df = df[np.isfinite(df["value"])]
        assert len(df) and (df["ci_low"] <= df["value"] + 1e-12).all() and (df["value"] <= df["ci_high"] + 1e-12).all()
    emb = random_embeddings(cohort)
    lineage = LINEAGE.but(model_kind="untrained")
    again = suite.evaluate_model(cohort, emb, PROMPTS, lineage, BOOT)
    once_more = suite.evaluate_model(cohort, emb, PROMPTS, lineage, BOOT)
    other_seed = suite.evaluate_model(cohort, emb, PROMPTS, lineage, T.Bootstrap(200, seed=4))
    a, b, c = (pd.DataFrame(r.rows["eval_regression"]) for r in (again, once_more, other_seed))
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"], equal_nan=True)


def test_patient_identification_rows_follow_pair_types(evaluated):
    _, trained, _, _ = evaluated
    rows = _rows(trained, "eval_patient_identification").set_index("metric")
    # Clip vectors are one axis per study: same-study pairs have similarity 1, others 0. Same-day pairs are
    # 12 within-study pairs and 12 pairs of two same-day studies; other-date pairs always span two studies.
    assert rows.loc["mean_similarity_same_patient_same_day", "value"] == 0.5
    assert rows.loc["mean_similarity_same_patient_same_day", "n"] == 24
    assert rows.loc["mean_similarity_same_patient_other_date", "value"] == 0.0
    assert rows.loc["mean_similarity_different_patient", "value"] == 0.0
    assert rows.loc["auc_same_patient", "value"] == pytest.approx(12 / 36 + 0.5 * 24 / 36)
    assert rows.loc["auc_same_patient", "n_patients"] == N_STUDIES // 2
    assert rows.loc["auc_same_patient", "value"] > 0.5


def test_summary_has_one_row_per_variant_kind_and_dataset(evaluated):
    _, trained, untrained, mean = evaluated
    template = LINEAGE.but(variant="template", model_id="model-b", checkpoint_sha256="sha-b")
    results = [trained, untrained, mean]
    frames = {name: pd.DataFrame([row for r in results for row in r.rows[name]]) for name in T.EVAL_TABLES[:4]}
    other = {name: df.assign(variant="template", model_id=df["model_id"].replace("model-a", template.model_id))
             for name, df in frames.items()}
    both = {name: pd.concat([frames[name], other[name]], ignore_index=True) for name in frames}
    summary = pd.DataFrame(T.summary_rows(both, BASE))
    keys = summary[["variant", "model_kind", "dataset"]].apply(tuple, axis=1)
    assert keys.is_unique and len(summary) == 6
    assert set(keys) == {(v, k, "internal") for v in ("bpe", "template") for k in T.MODEL_KINDS}
    trained_row = summary[(summary["model_kind"] == "trained") & (summary["variant"] == "bpe")].iloc[0]
    assert trained_row["mcmrr"] == 1.0 and trained_row["pacemaker_auc"] == 1.0 and trained_row["n"] == N_STUDIES
    mean_row = summary[(summary["model_kind"] == "training_mean") & (summary["variant"] == "bpe")].iloc[0]
    assert pd.isna(mean_row["mcmrr"]) and mean_row["lvef_mae"] > trained_row["lvef_mae"]
    table = T.to_table("eval_summary", T.summary_rows(both, BASE))
    assert table.schema == TABLES["eval_summary"] and table.num_rows == 6
    assert table.column("mcmrr").null_count == 2  # the training-mean rows have no retrieval


def test_template_prompts_sample_validation_reports_and_fall_back_per_task():
    reports = pd.DataFrame([{name: None for name in REPORT_LABEL_NAMES} | {
        "report_id": f"v{i}", "report_text": f"VALIDATION REPORT {i}.", "lvef": float(40 + i % 3),
        "pacemaker": bool(i % 2), "tavr": False} for i in range(30)])
    sets = prompt_sets(PROMPTS, "template", reports)
    primary = {(s.task): s for s in sets if s.primary}
    assert primary["pacemaker"].strategy == SAMPLED and primary["pacemaker"].n_texts == 15
    assert all("VALIDATION REPORT" in t for t in primary["pacemaker"].groups[0])
    assert primary["tavr"].strategy == FALLBACK  # no validation report carries a TAVR
    assert primary["lvef"].strategy == SAMPLED and primary["lvef"].values == (40.0, 41.0, 42.0)
    assert primary["lvef"].n_texts == 30 and primary["pasp"].strategy == FALLBACK
    assert {s.strategy for s in sets if not s.primary} == {BASE} and len([s for s in sets if not s.primary]) == len(
        PROMPTS.binary_tasks) + len(PROMPTS.regression_tasks)
    assert prompt_sets(PROMPTS, "template", reports) == sets  # seeded
    embedded = embed_prompt_sets([primary["lvef"]], None, lambda texts: np.eye(40)[: len(texts)])
    assert isinstance(embedded[0], EmbeddedPromptSet) and embedded[0].embeddings.shape == (3, 40)


def write_fake_echonet(root, efs=(65.0, 30.0, 55.0, 20.0), splits=("TEST", "TEST", "TEST", "TRAIN"), frames=30):
    (root / "Videos").mkdir(parents=True)
    for i, ef in enumerate(efs):
        writer = cv2.VideoWriter(str(root / "Videos" / f"0X{i:04d}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 50, (112, 112))
        for t in range(frames):
            frame = np.zeros((112, 112, 3), np.uint8)
            frame[..., 2] = 200  # BGR: a red video
            cv2.circle(frame, (56, 56), 10 + int(ef / 5) + t % 5, (255, 255, 255), -1)
            writer.write(frame)
        writer.release()
    pd.DataFrame({"FileName": [f"0X{i:04d}" for i in range(len(efs))], "EF": efs, "ESV": 1.0, "EDV": 2.0,
                  "FrameHeight": 112, "FrameWidth": 112, "FPS": 50, "NumberOfFrames": frames,
                  "Split": list(splits)}).to_csv(root / "FileList.csv", index=False)
    return root


def test_echonet_file_list_videos_rgb_and_embedding(tmp_path):
    root = write_fake_echonet(tmp_path / "echonet")
    files = echonet.read_file_list(root)
    assert files["FileName"].tolist() == ["0X0000", "0X0001", "0X0002"] and files["EF"].tolist() == [65.0, 30.0, 55.0]
    assert len(echonet.read_file_list(root, None)) == 4
    video = echonet.read_video(files["path"][0])
    assert video.shape == (30, 112, 112, 3)
    assert video[:, 0, 0, 0].mean() > 150 and video[:, 0, 0, 2].mean() < 50  # RGB, not BGR
    (root / "Videos" / "0X0002.avi").write_bytes(b"not a video")
    emb = echonet.embed_videos(files, lambda v: _unit(v[::2][:20, :2, 0, 0].astype(np.float32) + 1))
    assert emb.names == ["0X0000", "0X0001"] and [f for f, _ in emb.failed] == ["0X0002"]
    assert emb.frames.shape == (2, 20, 2) and emb.n_frames.tolist() == [15, 15]
    (root / "FileList.csv").write_text("Name,Value\na,1\n")
    with pytest.raises(InputContractError, match="FileList.csv"):
        echonet.read_file_list(root)


# --- the asset, in process, on a hand-built data root ------------------------------------------------------------

def _table(name: str, rows: list[dict]):
    import pyarrow as pa

    schema = TABLES[name]
    return pa.Table.from_pylist([{c: row.get(c) for c in schema.names} for row in rows], schema=schema)


def build_data_root(root, rng) -> tuple:
    """Test/validation/train studies, masked clips of the test studies, a tiny 'trained' echo-tiny model, its
    stored clip and report embeddings, and the model record: what the upstream assets would have written."""
    from echo_pipeline.embeddings import ClipEmbedder, ClipItem, EmbeddingStore, embed_reports
    from echo_pipeline.privacy import pseudonymise
    from echo_pipeline.privacy import pseudonymise_path
    from echo_pipeline.search import build_index
    from echo_pipeline.storage import DataRoot
    from echo_pipeline.tokenizers import BpeTokenizer
    from echo_pipeline import model_variants
    from echo_pipeline.training import build_model, save_hub_layout

    store = DataRoot(root)
    lineage = {"run_id": "up", "code_version": "t"}
    studies = [(f"s{i:02d}", pseudonymise(f"p{i // 2}", b"k", "patient"), split)  # stored keys are keyed hashes
               for i, split in enumerate(["test"] * 8 + ["train"] * 4 + ["validation"] * 2)]
    reports, labels, instances, masked = [], [], [], []
    for i, (study, patient, split) in enumerate(studies):
        lvef, pacemaker = float(20 + 6 * i), bool(i % 2)
        text = f"The left ventricular ejection fraction is {lvef:.0f}%. " + (
            "A pacemaker lead is seen in the right heart." if pacemaker else "No device leads are seen.")
        reports.append({"report_id": f"r{i:02d}", "source_file": "reports.csv", "source_row": i, "report_text": text,
                        "study_instance_uid": study, **lineage})
        labels.append({"report_id": f"r{i:02d}", "study_instance_uid": study, "patient_key": patient, "lvef": lvef,
                       "pasp": 30.0 + i, "pacemaker": pacemaker, "tavr": i % 3 == 0, "mitraclip": False, **lineage})
        for c in range(1 if split == "test" else 0):  # 10-frame clips: frames 0, 2, ..., 8 are embedded
            uid = f"{study}.{c}"
            path = store.array_dir("masked_clips") / "00" / f"{uid}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, rng.integers(0, 255, (10, 48, 48, 3), dtype=np.uint8))
            instances.append({"file_sha256": uid, "relative_path": pseudonymise_path(uid, b"k"), "file_size": 1, "shard": "00",
                              "sop_instance_uid": uid, "study_instance_uid": study, "patient_key": patient,
                              "study_date": dt.date(2021, 1, 1 + c), **lineage})
            masked.append({"sop_instance_uid": uid, "file_sha256": uid, "shard": "00",
                           "clip_path": str(path.relative_to(store.path)), "clip_format": "npy", "frames": 10,
                           "height": 48, "width": 48, "mask_method": "regions", "decode_scale": 1, "crop_x0": 0,
                           "crop_y0": 0, "crop_side": 48, "kept_fraction": 0.5, **lineage})
    store.write_table("reports", _table("reports", reports))
    store.write_table("report_labels", _table("report_labels", labels))
    store.write_table("splits", _table("splits", [{"study_instance_uid": s, "patient_key": p, "split": sp, **lineage}
                                                  for s, p, sp in studies]))
    store.write_table("dicom_instances_by_shard", _table("dicom_instances", instances), "00", schema_name="dicom_instances")
    store.write_table("masked_clips", _table("masked_clips", masked), "00")

    tokenizer = BpeTokenizer(77)
    model, cfg = build_model("echo-tiny", text_cfg=tokenizer.text_cfg, image_size=32)
    checkpoint = save_hub_layout(model.eval(), cfg, root / "checkpoint")
    record = model_variants.ModelRecord("bpe", "sha256:tiny", "echo-tiny", "bpe", str(checkpoint), "tiny", None, 1, 1.0, 1,
                                  8, "train-run", "t")
    model_variants.write_record(store, record)
    clips = ClipEmbedder(model, batch_frames=64, num_workers=0).embed_clips(
        [ClipItem(m["sop_instance_uid"], store.path / m["clip_path"]) for m in masked])
    EmbeddingStore(store, "clip_embeddings", record.model_id).append("bpe-00", clips, run_id="e", code_version="t")
    texts = embed_reports(model, tokenizer, [(r["report_id"], r["report_text"]) for r in reports],
                          tokenizer.evaluation_texts)
    EmbeddingStore(store, "report_embeddings", record.model_id).append("bpe", texts, run_id="e", code_version="t")
    build_index(model_variants.index_dir(store, model_variants.REPORT_INDEX, "bpe"), texts.embeddings, texts.ids,
                content="reports", model_id=record.model_id)  # what report_index writes; kNN reports search it
    return store, record


SMALL_PROMPTS = """
version: test-1
label_levels: {pacemaker: [false, true], tavr: [false, true], mitraclip: [false, true]}
binary_tasks:
  pacemaker: {label: pacemaker, positive: [true], prompts: ["A PACEMAKER LEAD IS SEEN IN THE RIGHT HEART."]}
  tavr: {label: tavr, positive: [true], prompts: ["STATUS POST TRANSCATHETER AORTIC VALVE REPLACEMENT."]}
  mitraclip: {label: mitraclip, positive: [true], prompts: ["STATUS POST MITRACLIP REPAIR OF THE MITRAL VALVE."]}
regression_tasks:
  lvef: {label: lvef, values: {min: 15, max: 75}, below_thresholds: [50, 40, 30],
         templates: ["THE LEFT VENTRICULAR EJECTION FRACTION IS ESTIMATED TO BE {value}%."]}
  pasp: {label: pasp, values: {min: 25, max: 55}, below_thresholds: [],
         templates: ["ESTIMATED PA SYSTOLIC PRESSURE IS {value}MMHG."]}
sampled_prompts: {source_split: validation, per_regression_value: 10, per_binary_task: 200, seed: 0}
"""


def test_asset_writes_every_table_with_references_echonet_and_figures(tmp_path):
    import dagster as dg
    import duckdb

    from assets.evaluation import evaluation_tables
    from resources import PipelineResource

    store, record = build_data_root(tmp_path / "out", np.random.default_rng(0))
    echonet_root = write_fake_echonet(tmp_path / "echonet", frames=8)
    (echonet_root / "Videos" / "0X0002.avi").write_bytes(b"truncated")  # unreadable: left out of every row
    resource = PipelineResource(dicom_root=str(tmp_path), reports_path=str(tmp_path / "reports.csv"),
                                data_root=str(store.path), echonet_dynamic_root=str(echonet_root))
    prompts = tmp_path / "prompts.yaml"  # fewer texts than the shipped file: the tiny text tower is slow on CPU
    prompts.write_text(SMALL_PROMPTS)
    config = {"n_resamples": 50, "n_pairs": 500, "prompts_path": str(prompts)}
    result = dg.materialize([evaluation_tables], partition_key="bpe", resources={"pipeline": resource},
                            run_config={"ops": {"evaluation_tables": {"config": config}}})
    assert result.success

    con = duckdb.connect(str(store.catalog_path), read_only=True)
    summary = con.execute("SELECT * FROM eval_summary WHERE method IN ('zero_shot', 'training_mean') "
                          "ORDER BY dataset, model_kind").df()
    assert summary[["model_kind", "dataset"]].apply(tuple, axis=1).tolist() == [
        ("trained", "echonet_dynamic"), ("training_mean", "echonet_dynamic"), ("untrained", "echonet_dynamic"),
        ("trained", "internal"), ("training_mean", "internal"), ("untrained", "internal")]
    assert set(summary["variant"]) == {"bpe"} and set(summary["checkpoint_sha256"]) == {"tiny"}
    internal = summary[summary["dataset"] == "internal"].set_index("model_kind")
    assert internal.loc["trained", "n"] == 8 and np.isfinite(internal.loc["untrained", "mcmrr"])
    assert internal.loc["training_mean", "lvef_mae"] > 0 and pd.isna(internal.loc["training_mean", "mcmrr"])
    echo = summary[summary["dataset"] == "echonet_dynamic"].set_index("model_kind")
    assert (echo["n"] == 2).all() and echo["lvef_mae"].notna().all() and echo["mcmrr"].isna().all()
    # The EchoNet baseline predicts the internal training mean (studies 8-11: LVEF 68, 74, 80, 86).
    baseline = con.execute("SELECT method_definition FROM eval_regression WHERE dataset = 'echonet_dynamic' AND "
                           "model_kind = 'training_mean' AND metric = 'mae'").fetchone()[0]
    assert "77.00" in baseline
    for name in T.EVAL_TABLES:
        kinds = {k for (k,) in con.execute(f"SELECT DISTINCT model_kind FROM {name}").fetchall()}
        assert {"trained", "untrained"} <= kinds
        lineage = con.execute(f"SELECT count(*) FROM {name} WHERE run_id <> '{result.run_id}' "
                              f"OR code_version <> '{T.CODE_VERSION}'").fetchone()[0]
        assert lineage == 0
    untrained_ids = {i for (i,) in con.execute("SELECT DISTINCT model_id FROM eval_retrieval "
                                               "WHERE model_kind = 'untrained'").fetchall()}
    assert len(untrained_ids) == 1 and untrained_ids.pop().startswith("untrained:echo-tiny:sha256:")
    # kNN reports: the 4 training reports (LVEF 68-86) of the 14 the report index holds, found in that index
    assert dg.AssetKey("report_index") in evaluation_tables.asset_deps[dg.AssetKey("eval_regression")]
    knn = con.execute("SELECT method_definition, value FROM eval_regression WHERE method = 'knn_reports' AND "
                      "task = 'lvef' AND metric = 'mae' AND dataset = 'internal'").fetchall()
    assert len(knn) == 1 and "4 training reports nearest the clip embedding in the report index (flat)" in knn[0][0]

    plots_dir = store.path / "arrays" / "eval_plots" / "bpe"
    assert {p.name for p in plots_dir.glob("*.png")} >= {"roc_internal.png", "lvef_scatter.png", "retrieval_ranks.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots_dir.glob("*.png"))
    materializations = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
                        for e in result.get_asset_materialization_events()}
    assert "internal_mcmrr" in materializations["eval_summary"] and "vs untrained" in \
        materializations["eval_summary"]["internal_mcmrr"].value
    assert "data:image/png;base64," in materializations["eval_classification"]["roc_internal"].value
    assert any("0X0002" in note for note in materializations["eval_summary"]["notes"].value)


def test_blockwise_scoring_equals_the_metric_core_clip_by_clip():
    rng = np.random.default_rng(5)
    frames = _unit(rng.normal(size=(300, 20, 16)))
    n_frames = rng.integers(1, 21, 300)
    for i, k in enumerate(n_frames):
        frames[i, k:] = 0
    values = np.arange(0.0, 101.0)
    prompt = EmbeddedPromptSet(None, _unit(rng.normal(size=(101, 16))), values)
    expected = [metrics.predict_from_embeddings(frames[i:i + 1, :k], prompt.embeddings, values)[0]
                for i, k in enumerate(n_frames)]
    np.testing.assert_array_equal(suite.predict_values(frames, n_frames, prompt), expected)
    binary = EmbeddedPromptSet(None, _unit(rng.normal(size=(3, 16))), np.empty(0))
    scores = [metrics.zero_shot_scores(frames[i:i + 1, :k], binary.embeddings)[0] for i, k in enumerate(n_frames)]
    np.testing.assert_allclose(suite.score_binary(frames, n_frames, binary), scores, rtol=1e-12)
