"""A4C view filtering: the colour test, frame sampling, training determinism, checkpoint safety, and the
quality of `a4c_clips` on a 60-patient synthetic cohort run through the Dagster assets in-process."""

import json
import pickle
import shutil

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from assets import ingestion
from assets import views as view_assets
from assets.partitions import SHARDS
from echo_pipeline import catalog, views
from echo_pipeline.errors import CheckpointError, InputContractError
from echo_pipeline.source_paths import SourcePaths
from echo_pipeline.storage import DataRoot
from echo_pipeline.views import colour, frames, inputs, truth_agreement
from echo_pipeline.views.model import clip_probabilities, torch_threads
from echo_pipeline.views.provide import provide_classifier
from resources import PipelineResource

PATIENTS, SEED = 60, 0
QUALITY_BAR = 0.98


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from echo_pipeline.synth.cohort import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("views_cohort"), patients=PATIENTS, seed=SEED, workers=2, progress=False)


def _resource(cohort, data_root, labels=True, classifier=None) -> PipelineResource:
    return PipelineResource(dicom_root=str(cohort.dicom_root), reports_path=str(cohort.reports_csv),
                            view_labels_path=str(cohort.view_labels_csv) if labels else None,
                            view_classifier_path=None if classifier is None else str(classifier), data_root=str(data_root))


@pytest.fixture(scope="module")
def run(cohort, tmp_path_factory):
    """Ingestion (every shard), view_classifier, then view_predictions + a4c_clips (every shard), as a user would."""
    data_root = tmp_path_factory.mktemp("views_out")
    resources = {"pipeline": _resource(cohort, data_root)}
    # A fixed pseudonymisation key: patient keys, hence the patient split, are the same in every run.
    key_file = resources["pipeline"].settings.pseudonym_key_file
    key_file.parent.mkdir(parents=True)
    key_file.write_text("views-test-key")
    instance = dg.DagsterInstance.ephemeral()
    for shard in SHARDS.get_partition_keys():
        assert dg.materialize([ingestion.ingested_dicom_shard], partition_key=shard, resources=resources,
                              instance=instance).success
    # One torch thread: on a busy 2-core machine two spinning threads per process run many times slower.
    trained = dg.materialize([view_assets.view_classifier], resources=resources, instance=instance,
                             run_config={"ops": {"view_classifier": {"config": {"threads": 1}}}})
    a4c_metadata = {}
    for shard in SHARDS.get_partition_keys():
        result = dg.materialize([view_assets.view_predictions, view_assets.a4c_clips], partition_key=shard,
                                resources=resources, instance=instance,
                                run_config={"ops": {"view_predictions": {"config": {"threads": 1}}}})
        a4c_metadata[shard] = result.asset_materializations_for_node("a4c_clips")[0].metadata
    classifier_metadata = trained.asset_materializations_for_node("view_classifier")[0].metadata
    return {"store": DataRoot(data_root), "resources": resources, "instance": instance,
            "classifier": classifier_metadata, "a4c": a4c_metadata}


def _query(store: DataRoot, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    try:
        return con.sql(sql).df()
    finally:
        con.close()


def test_a4c_clips_hold_the_true_grey_scale_a4c_clips(cohort, run):
    store = run["store"]
    truth = pd.read_parquet(cohort.truth("clips"))
    kept = set(_query(store, "SELECT sop_instance_uid FROM a4c_clips").sop_instance_uid)
    predictions = _query(store, "SELECT p.*, d.patient_key FROM view_predictions p "
                                "JOIN dicom_instances d USING (sop_instance_uid)")
    trained_on = set(_query(store, "SELECT patient_key FROM view_training_clips WHERE split = 'train'").patient_key)
    scored = predictions.merge(truth[["sop_instance_uid", "view", "is_colour"]], on="sop_instance_uid",
                               suffixes=("", "_true"))
    assert len(scored) == len(truth)  # every ingested clip has a prediction
    scored["kept"] = scored.sop_instance_uid.isin(kept)
    scored["wanted"] = (scored.view_true == "A4C") & ~scored.is_colour_true

    held_out = scored[~scored.patient_key.isin(trained_on)]
    assert len(held_out) >= 100 and held_out.wanted.sum() >= 30  # a real held-out set, not a handful
    tp = (held_out.kept & held_out.wanted).sum()
    precision, recall = tp / held_out.kept.sum(), tp / held_out.wanted.sum()
    print(f"held-out patients: {len(held_out)} clips, A4C precision {precision:.4f} recall {recall:.4f}")
    assert precision >= QUALITY_BAR and recall >= QUALITY_BAR
    assert not (scored.kept & scored.is_colour_true).any()  # colour Doppler never passes
    assert (scored.is_colour == scored.is_colour_true).all()  # and is flagged as such, every clip
    assert (scored[scored.kept].view_true == "A4C").mean() >= QUALITY_BAR

    shown = [m["truth_agreement_held_out_patients"].value for m in run["a4c"].values()]
    assert sum(a["true_positives"] for a in shown) == tp  # the UI reports the same figures


def test_materialization_metadata_explains_the_selection(run):
    classifier = run["classifier"]
    assert classifier["validation_accuracy"].value >= 0.95
    assert "| A4C |" in classifier["validation_confusion_matrix"].value
    for shard, metadata in run["a4c"].items():
        decisions = metadata["decisions"].value
        assert "colour_doppler" in decisions and "kept" in decisions
        assert metadata["validation_confusion_matrix"].value == classifier["validation_confusion_matrix"].value
    kept = sum(m["dagster/partition_row_count"].value for m in run["a4c"].values())
    assert kept == len(_query(run["store"], "SELECT * FROM a4c_clips"))


def test_rerun_reuses_predictions_of_unchanged_files(run):
    shard = SHARDS.get_partition_keys()[0]
    before = run["store"].read_table("view_predictions", shard)
    result = dg.materialize([view_assets.view_predictions], partition_key=shard, resources=run["resources"],
                            instance=run["instance"])
    assert result.asset_materializations_for_node("view_predictions")[0].metadata["newly_predicted"].value == 0
    assert run["store"].read_table("view_predictions", shard).equals(before)


def test_saved_classifier_is_named_when_there_are_no_labels(cohort, run, tmp_path):
    card = views.current_card_path(run["store"].array_dir("view_classifier"))
    resources = {"pipeline": _resource(cohort, tmp_path / "out", labels=False, classifier=card)}
    assert dg.materialize([view_assets.view_classifier], resources=resources).success
    installed = views.load_classifier(views.current_card_path(DataRoot(tmp_path / "out").array_dir("view_classifier")))
    assert installed.classifier_id == views.load_classifier(card).classifier_id


def test_no_labels_and_no_classifier_says_what_to_provide(cohort, tmp_path):
    resources = {"pipeline": _resource(cohort, tmp_path / "out", labels=False)}
    with pytest.raises(Exception) as raised:
        dg.materialize([view_assets.view_classifier], resources=resources)
    message = str(raised.value) + "".join(str(a) for a in getattr(raised.value, "args", ()))
    if isinstance(raised.value, dg.DagsterExecutionStepExecutionError):
        message += str(raised.value.__cause__)
    assert "ECHO_PIPELINE_VIEW_LABELS" in message and "ECHO_PIPELINE_VIEW_CLASSIFIER" in message


def test_core_steps_run_without_dagster(cohort, run, tmp_path):
    """provide_classifier installs a saved classifier or names both inputs; a4c_truth_agreement gives the
    figures a4c_clips reported, is None without truth, and counts every clip as held out when nothing trained."""
    store, shard = run["store"], SHARDS.get_partition_keys()[0]
    card = views.current_card_path(store.array_dir("view_classifier"))
    common = dict(read_instances=lambda: pytest.fail("a saved classifier needs no instances"),
                  paths=SourcePaths.unmapped(cohort.dicom_root), spec=views.ModelSpec(), train_config=views.TrainConfig(),
                  threads=1, run_id="r", code_version=views.CODE_VERSION)
    provided = provide_classifier(tmp_path / "cls", labels_path=None, saved_card=card, **common)
    assert provided.training_clips is None and str(card) in provided.source
    assert views.current_card_path(tmp_path / "cls") == provided.card_path
    with pytest.raises(InputContractError, match="ECHO_PIPELINE_VIEW_CLASSIFIER"):
        provide_classifier(tmp_path / "none", labels_path=None, saved_card=None, **common)

    predictions, kept = store.read_table("view_predictions", shard), store.read_table("a4c_clips", shard)
    instances = inputs.read_instances(store, shard)
    agreement = truth_agreement.a4c_truth_agreement(cohort.dicom_root, kept, predictions, instances,
                                                    inputs.training_patients(store, provided.card))
    reported = run["a4c"][shard]
    assert agreement["all_clips"] == reported["truth_agreement_all_clips"].value
    assert agreement["held_out_patients"] == reported["truth_agreement_held_out_patients"].value
    nobody = truth_agreement.a4c_truth_agreement(cohort.dicom_root, kept, predictions, instances, set())
    assert nobody["held_out_patients"] == nobody["all_clips"]
    assert truth_agreement.a4c_truth_agreement(tmp_path, kept, predictions, instances, set()) is None


@pytest.fixture(scope="module")
def small_training_set(cohort, run):
    """About 80 labelled clips of the cohort (every view), decoded once."""
    sql = "SELECT * FROM dicom_instances ORDER BY sop_instance_uid LIMIT 160"
    instances = catalog.open_reader(run["store"]).sql(sql).to_arrow_table()
    spec = views.ModelSpec(frames_per_clip=3, input_size=32)
    paths = SourcePaths(run["store"].path, cohort.dicom_root)
    clips, _ = views.load_labelled_clips(instances, views.read_view_labels(cohort.view_labels_csv), paths, spec)
    return clips, spec


def test_training_is_deterministic_per_seed(small_training_set):
    clips, spec = small_training_set
    config = views.TrainConfig(seed=3, epochs=2)
    with torch_threads(1):  # results are identical for a given thread count; one is fastest on a busy machine
        first, again = views.train_classifier(clips, spec, config), views.train_classifier(clips, spec, config)
        other = views.train_classifier(clips, spec, views.TrainConfig(seed=4, epochs=2))
    a, b, c = (r.model.state_dict() for r in (first, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first.card == again.card and first.card["training"]["data_hash"] == again.card["training"]["data_hash"]


def test_saved_classifier_reloads_with_identical_predictions(small_training_set, tmp_path):
    clips, spec = small_training_set
    with torch_threads(1):
        result = views.train_classifier(clips, spec, views.TrainConfig(epochs=1))
    card_path = views.save_classifier(tmp_path, result.model, spec, result.card)
    loaded = views.load_classifier(card_path.parent)  # a folder works as well as the card
    card = json.loads(card_path.read_text())
    assert card["classifier_id"] == card["weights_sha256"][:16] == card_path.parent.name
    assert card["model"]["classes"] == list(views.VIEWS) and card["model"]["input_size"] == 32
    before = clip_probabilities(result.model, clips.pixels)
    assert np.array_equal(clip_probabilities(loaded.model, clips.pixels), before)


@pytest.fixture()
def saved(run, tmp_path):
    """A copy of the pipeline's classifier folder, free to damage."""
    source = views.current_card_path(run["store"].array_dir("view_classifier")).parent
    return shutil.copytree(source, tmp_path / source.name)


def test_modified_weights_are_refused(saved):
    weights = saved / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        views.load_classifier(saved)
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="corrupt or was modified"):
        views.load_classifier(saved / "card.json")


def test_pickles_and_broken_cards_are_refused_without_unpickling(saved):
    card = json.loads((saved / "card.json").read_text())
    weights = saved / "weights.safetensors"
    weights.write_bytes(pickle.dumps({"conv": torch.zeros(1)}))  # a torch.save-style payload
    digest = views.checkpoint.file_sha256(weights)
    (saved / "card.json").write_text(json.dumps({**card, "weights_sha256": digest, "classifier_id": digest[:16]}))
    with pytest.raises(CheckpointError, match="unreadable classifier"):
        views.load_classifier(saved)
    (saved / "card.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable JSON"):
        views.load_classifier(saved)
    with pytest.raises(CheckpointError, match="no view-classifier card"):
        views.load_classifier(saved / "elsewhere")


def _grey_clip(n=6, h=64, w=80, tint=(1.0, 0.94, 0.82), seed=0):
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 220, size=(n, h, w, 1)).astype(np.float64)
    return np.clip(grey * np.array(tint), 0, 255).astype(np.uint8)


def test_colour_test_ignores_tints_overlays_and_colour_bars():
    clip = _grey_clip()
    clip[:, 10:40, 74:78] = (255, 0, 0)  # static velocity bar, wide enough to survive the opening
    clip[:, 2:4, 2:30] = (255, 220, 0)  # static coloured text
    for i in range(len(clip)):  # a scrolling green ECG trace: changes every frame but is one pixel thin
        clip[i, 58, : 10 * (i + 1)] = (40, 210, 90)
    assert colour.doppler_fraction(clip) == 0.0 and not colour.is_colour_doppler(clip)


def test_colour_test_finds_flow_that_changes_between_frames():
    clip = _grey_clip()
    for i in range(0, len(clip), 2):  # flow painted in every other frame, as it comes and goes with the cycle
        clip[i, 20:32, 30:46] = (200 + 5 * i, 40, 0) if i % 4 == 0 else (0, 60, 230)
    assert colour.is_colour_doppler(clip)
    assert 0.03 < colour.doppler_fraction(clip) <= 12 * 16 / (64 * 80)


def test_frame_sampling_is_even_and_decodes_reduced(cohort):
    assert frames.sample_indices(40, 6) == [3, 10, 16, 23, 30, 36]
    assert frames.sample_indices(3, 6) == [0, 1, 2]
    assert frames.decode_scale(272, 352, 48) == 4 and frames.decode_scale(256, 320, 64) == 4
    assert frames.decode_scale(40, 40, 48) == 1
    path = next(p for p in sorted(cohort.dicom_root.rglob("*")) if p.is_file() and p.stat().st_size > 100_000)
    sample = frames.load_clip(path, frames.SamplingSpec(frames=4, size=48))
    assert sample.pixels.shape == (4, 48, 48, 3) and sample.pixels.dtype == np.uint8
    assert len(sample.frame_indices) == 4 and sample.total_frames >= 40


def test_labels_with_unknown_views_are_rejected(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("SOP_Instance_UID,View\n1.2.3,a4c \n1.2.4,apical five\n")
    with pytest.raises(InputContractError, match="APICAL FIVE"):
        views.read_view_labels(path)
    path.write_text("sop_instance_uid,view\n1.2.3,A4C\n1.2.3,A4C\n1.2.4,plax\n")
    assert views.read_view_labels(path).to_pylist() == [{"sop_instance_uid": "1.2.3", "view": "A4C"},
                                                        {"sop_instance_uid": "1.2.4", "view": "PLAX"}]
    path.write_text("sop_instance_uid,view\n1.2.3,A4C\n1.2.3,A2C\n")
    with pytest.raises(InputContractError, match="two different views"):
        views.read_view_labels(path)


def test_a4c_filter_applies_rules_in_order():
    base = {"error": None, "view": "A4C", "is_colour": False, "p_a4c": 0.9}
    rule = views.A4cFilter(min_probability=0.8, min_frames=10)
    assert views.select.decide(base, 40, rule) == "kept"
    assert views.select.decide({**base, "is_colour": True}, 40, rule) == "colour_doppler"
    assert views.select.decide({**base, "p_a4c": 0.7}, 40, rule) == "low_probability"
    assert views.select.decide({**base, "view": "A2C"}, 40, rule) == "not_a4c"
    assert views.select.decide(base, 1, rule) == "too_few_frames"
    assert views.select.decide({**base, "error": "DicomDecodeError: x", "view": None}, 40, rule) == "not_decoded"
    empty = views.select_a4c(pa.table({"sop_instance_uid": pa.array([], pa.string())}),
                             pa.table({"sop_instance_uid": pa.array([], pa.string())}), rule, run_id="r", code_version="c")
    assert empty[0].num_rows == 0
