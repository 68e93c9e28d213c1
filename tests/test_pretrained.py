"""Published (pretrained) models in the pipeline: a tiny open_clip model saved by the test in hub layout is
registered with `--pretrained`, embedded, indexed, searched and evaluated through the real assets beside a
trained variant; broken directories are refused before any stage; `--init-from` starts training from its
weights; the published prompt JSON is an evaluation prompt source."""

import json

import dagster as dg
import duckdb
import numpy as np
import open_clip
import pytest
import torch
from open_clip.loss import ClipLoss

from definitions import build_definitions
from echo_pipeline.errors import InputContractError
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.model_embeddings import stored_clip_embeddings
from echo_pipeline.evaluation.prompts import load_prompts
from echo_pipeline.embeddings import ClipEmbedder, ClipItem
from echo_pipeline.model_variants import read_record, variant_partitions
from echo_pipeline.model_variants.pretrained import directory_manifest, manifest_sha256
from echo_pipeline.search.searcher import run_search
from echo_pipeline.settings import PipelineSettings
from echo_pipeline.settings_models import validate_model_sources
from echo_pipeline.tokenizers import BpeTokenizer, make_tokenizer
from echo_pipeline.training import run_plan
from echo_pipeline.training.data import ClipFrameDataset, TrainPair, default_text_sampler, normalize_images
from echo_pipeline.training.model_factory import build_model, load_trained_model, model_config, save_hub_layout
from echo_pipeline.training.presets import TrainConfig
from echo_pipeline.training.trainer import train_clip
from echo_pipeline_cli import main
from test_eval_tables import _table, build_data_root
from test_published_template import TEMPLATES
from test_run_plan import store as run_plan_store  # noqa: F401  (the fixture, for the run-key test)

MEAN, STD = (0.1, 0.2, 0.3), (0.25, 0.3, 0.35)  # not CLIP's: shows the directory's preprocess_cfg is used
PUBLISHED_PROMPTS = {
    "pacemaker": {"mode": "binary", "label_sources": ["A PACEMAKER LEAD IS SEEN IN THE RIGHT HEART."]},
    "ejection_fraction": {"mode": "regression", "range": [15, 75],
                          "label_sources": ["THE LEFT VENTRICULAR EJECTION FRACTION IS ESTIMATED TO BE <#>%."]},
    "impella": {"mode": "binary", "label_sources": ["AN IMPELLA DEVICE IS SEEN."], "testers": ["IMPELLA"]},
}


def save_hub(directory, *, seed=1, image_size=32, text_cfg=None):
    """A random echo-tiny CLIP in open_clip hub layout with its own normalisation."""
    torch.manual_seed(seed)
    model, cfg = build_model("echo-tiny", text_cfg=text_cfg or BpeTokenizer(77).text_cfg, image_size=image_size)
    open_clip.set_model_preprocess_cfg(model, {**open_clip.get_model_preprocess_cfg(model), "mean": MEAN, "std": STD})
    return save_hub_layout(model.eval(), cfg, directory)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    store, trained = build_data_root(root / "out", np.random.default_rng(0))
    reports = store.read_table("reports").to_pylist()
    store.write_table("report_links", _table("report_links", [
        {"report_id": r["report_id"], "study_instance_uid": r["study_instance_uid"], "candidate_count": 1,
         "run_id": "up", "code_version": "t"} for r in reports]))
    hub = save_hub(root / "published" / "tiny")
    prompts = root / "prompts.json"
    prompts.write_text(json.dumps(PUBLISHED_PROMPTS))
    settings = PipelineSettings(dicom_root=root, reports_path=root / "reports.csv", view_labels_path=None,
                                data_root=store.path, prompts_path=prompts,
                                pretrained=(f"tiny={hub},preprocessing=published_crop",))
    defs = build_definitions(settings)
    config = {"ops": {"evaluation_tables": {"config": {"n_resamples": 50, "n_pairs": 500, "num_workers": 0}}}}
    results = {}
    for variant, names in (("tiny", ["clip_model", "clip_embeddings", "report_embeddings", "video_index",
                                     "report_index", *T.EVAL_TABLES]), ("bpe", list(T.EVAL_TABLES))):
        selection = dg.AssetSelection.assets(*names).required_multi_asset_neighbors()  # with eval_subgroups
        results[variant] = dg.materialize(list(defs.assets), selection=selection, partition_key=variant,
                                          resources=defs.resources, run_config=config, raise_on_error=False)
    return store, trained, hub, results


def test_pretrained_variant_is_recorded_with_its_manifest_not_trained(evaluated):
    store, _, hub, results = evaluated
    assert results["tiny"].success and results["bpe"].success
    record = read_record(store, "tiny")
    assert record.source == "pretrained" and record.preprocessing == "published_crop"
    assert record.checkpoint_sha256 == manifest_sha256(directory_manifest(hub))
    assert set(record.manifest) == {"open_clip_config.json", "open_clip_model.safetensors"}
    assert record.model_id == f"pretrained-tiny-{record.checkpoint_sha256[:12]}"
    assert not list((store.path / "arrays" / "clip_model" / "tiny").glob("run-*"))  # nothing trained


def test_clips_are_embedded_with_the_published_crop_and_the_directory_normalisation(evaluated):
    store, _, hub, _ = evaluated
    record = read_record(store, "tiny")
    masked = store.read_table("masked_clips", "00").to_pylist()[:2]
    ids = [m["sop_instance_uid"] for m in masked]
    _, _, _, stored = stored_clip_embeddings(store, record.model_id, variant_partitions(store, "clip_embeddings", "tiny"),
                                             ids)
    model = load_trained_model(hub)
    assert open_clip.get_model_preprocess_cfg(model)["mean"] == list(MEAN) or \
        tuple(open_clip.get_model_preprocess_cfg(model)["mean"]) == MEAN
    items = [ClipItem(m["sop_instance_uid"], store.path / m["clip_path"]) for m in masked]
    cropped = ClipEmbedder(model, num_workers=0, preprocessing="published_crop").embed_clips(items).clips
    resized = ClipEmbedder(model, num_workers=0).embed_clips(items).clips
    np.testing.assert_allclose(stored, cropped, atol=1e-5)
    assert not np.allclose(stored, resized, atol=1e-3)


def test_eval_summary_shows_trained_pretrained_and_references_on_the_same_clips(evaluated):
    store, _, _, results = evaluated
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    rows = con.execute("SELECT variant, model_kind, model_source, preprocessing, n FROM eval_summary "
                       "WHERE dataset = 'internal' AND method IN ('zero_shot', 'training_mean') "
                       "ORDER BY variant, model_source").fetchall()
    assert [r[:4] for r in rows] == [
        ("bpe", "trained", "trained", "model"), ("bpe", "training_mean", "training_mean", "model"),
        ("bpe", "untrained", "untrained", "model"),
        ("tiny", "pretrained", "pretrained:tiny", "published_crop"),
        ("tiny", "training_mean", "training_mean", "published_crop"),
        ("tiny", "untrained", "untrained", "published_crop")]
    assert {r[4] for r in rows if r[1] != "training_mean"} == {8}  # the same 8 test studies everywhere
    # Published prompt file: tasks mapped to labels, the unmapped one reported as skipped.
    assert {t for (t,) in con.execute("SELECT DISTINCT task FROM eval_classification").fetchall()} == {"pacemaker"}
    assert con.execute("SELECT DISTINCT task, label FROM eval_regression").fetchall() == [("lvef", "lvef")]
    [summary] = [e for e in results["tiny"].get_asset_materialization_events()
                 if e.asset_key.to_user_string() == "eval_summary"]
    skipped = summary.event_specific_data.materialization.metadata["skipped_prompt_tasks"].value
    assert len(skipped) == 1 and skipped[0].startswith("impella: ")


def test_search_uses_the_pretrained_variant(evaluated):
    store, *_ = evaluated
    text = run_search(store.path, variant="tiny", text="a pacemaker lead", k=3, device="cpu")
    assert f"model {read_record(store, 'tiny').model_id}" in text
    clip = run_search(store.path, variant="tiny", clip="s00.0", k=2, device="cpu")
    assert "r0" in clip


def _cli_inputs(tmp_path):
    (tmp_path / "dicom").mkdir()
    (tmp_path / "reports.csv").write_text("report_id,report_text\n")
    return ["run", "--dicom-root", str(tmp_path / "dicom"), "--reports", str(tmp_path / "reports.csv"),
            "--data-root", str(tmp_path / "out")]


def test_corrupted_weights_are_refused_naming_the_file_before_any_stage(tmp_path, capsys):
    hub = save_hub(tmp_path / "hub")
    weights = hub / "open_clip_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])
    assert main([*_cli_inputs(tmp_path), "--pretrained", f"pub={hub}"]) == 2
    error = capsys.readouterr().err
    assert "open_clip_model.safetensors" in error and "--pretrained pub" in error
    assert not (tmp_path / "out").exists()


def test_echoclip_architecture_config_with_other_weights_is_refused(tmp_path):
    hub = save_hub(tmp_path / "hub")
    config = json.loads((hub / "open_clip_config.json").read_text())
    config["model_cfg"] = model_config("echoclip")  # the published architecture, by config only
    (hub / "open_clip_config.json").write_text(json.dumps(config))
    settings = PipelineSettings(pretrained=(f"echoclip={hub}",))
    with pytest.raises(InputContractError, match="open_clip_model.safetensors"):
        validate_model_sources(settings)


def test_template_vocabulary_must_fit_the_text_tower(tmp_path):
    vocabulary = tmp_path / "templates.txt"
    vocabulary.write_text(TEMPLATES)
    tokenizer = make_tokenizer("published_template", vocabulary)
    fitting = save_hub(tmp_path / "r", text_cfg=tokenizer.text_cfg)
    validate_model_sources(PipelineSettings(pretrained=(f"r={fitting},vocabulary={vocabulary}",)))
    with pytest.raises(InputContractError, match="vocabulary=FILE"):
        validate_model_sources(PipelineSettings(pretrained=(f"r={fitting}",)))
    with pytest.raises(InputContractError, match="name 'bpe'"):
        validate_model_sources(PipelineSettings(pretrained=(f"bpe={fitting}",)))


def _pairs(tmp_path, texts):
    rng = np.random.default_rng(0)
    out = []
    for i, text in enumerate(texts):
        path = tmp_path / "clips" / f"c{i}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
        out.append(TrainPair(f"c{i}", str(path), text, f"p{i}"))
    return out[:4], out[4:]


REPORTS = ["The left ventricle is normal in size. Left ventricular ejection fraction is 55%.",
           "Moderate mitral regurgitation. PA systolic pressure is 40 to 45 mmHg.",
           "Left ventricular ejection fraction is 30%.", "Severe mitral regurgitation.",
           "Mild mitral regurgitation.", "The left ventricle is normal in size."]


def test_init_from_starts_training_from_the_directory_weights(tmp_path):
    hub = save_hub(tmp_path / "hub")
    train, val = _pairs(tmp_path, REPORTS)
    tokenizer = BpeTokenizer(77)
    config = TrainConfig(preset="echo-tiny", out_dir=str(tmp_path / "run"), epochs=1, batch_size=4, image_size=32,
                         init_from=str(hub), device="cpu", num_workers=0)
    result = train_clip(config, train, val, tokenizer)
    model = load_trained_model(hub).train()
    dataset = ClipFrameDataset(train, tokenizer, default_text_sampler(tokenizer, "bpe", 77), image_size=32,
                               context_length=77, seed=0, train=True)
    images, tokens = (torch.stack(x) for x in zip(*[dataset[(i, 1)] for i in range(4)]))
    with torch.no_grad():
        loss = ClipLoss()(*model(normalize_images(images, torch.device("cpu"), mean=MEAN, std=STD), tokens))
    assert result.history[0]["train_loss"] == pytest.approx(loss.item(), rel=1e-4)
    card = json.loads((result.best_checkpoint / "card.json").read_text())
    assert card["init_from"] == {"path": str(hub), "reinitialised": []}
    saved = json.loads((result.best_checkpoint / "open_clip_config.json").read_text())
    assert tuple(saved["preprocess_cfg"]["mean"]) == MEAN  # embedding will normalise as training did


def test_init_from_reinitialises_a_different_vocabulary_and_lists_it(tmp_path):
    hub = save_hub(tmp_path / "hub")  # a BPE text tower (49,408 ids)
    vocabulary = tmp_path / "templates.txt"
    vocabulary.write_text(TEMPLATES)
    tokenizer = make_tokenizer("published_template", vocabulary)  # 115 ids
    train, val = _pairs(tmp_path, REPORTS)
    config = TrainConfig(preset="echo-tiny", out_dir=str(tmp_path / "run"), epochs=1, batch_size=4, image_size=32,
                         init_from=str(hub), device="cpu", num_workers=0)
    result = train_clip(config, train, val, tokenizer)
    card = json.loads((result.best_checkpoint / "card.json").read_text())
    assert card["init_from"]["reinitialised"] == ["token_embedding.weight"]


def test_run_key_includes_the_init_from_directory_sha256(run_plan_store, tmp_path):  # noqa: F811
    hub = save_hub(tmp_path / "hub")
    plain = run_plan.plan_run(run_plan_store, "bpe", model_preset="echo-tiny", train_epochs=None,
                              vocabulary_path=tmp_path / "v.json")
    started = run_plan.plan_run(run_plan_store, "bpe", model_preset="echo-tiny", train_epochs=None,
                                vocabulary_path=tmp_path / "v.json", init_from=hub)
    config = json.loads(started.config_path.read_text())
    assert config["init_from_sha256"] == manifest_sha256(directory_manifest(hub))
    assert config["train"]["init_from"] == str(hub.resolve()) and started.run_dir != plain.run_dir
    (hub / "open_clip_config.json").write_text((hub / "open_clip_config.json").read_text() + " ")
    changed = run_plan.plan_run(run_plan_store, "bpe", model_preset="echo-tiny", train_epochs=None,
                                vocabulary_path=tmp_path / "v.json", init_from=hub)
    assert changed.run_dir != started.run_dir


def test_published_prompt_file_maps_tasks_and_reports_skipped(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({**PUBLISHED_PROMPTS, "pericardial_effusion": {
        "mode": "categorical", "label_sources": ["THERE IS A <#> PERICARDIAL EFFUSION."]}}))
    prompts = load_prompts(path)
    assert set(prompts.binary_tasks) == {"pacemaker", "pericardial_effusion_small", "pericardial_effusion_moderate",
                                         "pericardial_effusion_large"}
    assert prompts.binary_tasks["pericardial_effusion_large"].prompts == ("THERE IS A LARGE PERICARDIAL EFFUSION.",)
    lvef = prompts.regression_tasks["lvef"]  # named after prompts.yaml's task of the same label
    assert (lvef.label, lvef.values[0], lvef.values[-1], lvef.below_thresholds) == ("lvef", 15, 75, (50.0, 40.0, 30.0))
    assert [task for task, _ in prompts.skipped] == ["impella"]
    path.write_text(json.dumps({"pacemaker": {"mode": "ordinal", "label_sources": ["X."]}}))
    with pytest.raises(InputContractError, match="pacemaker.*mode"):
        load_prompts(path)


def test_environment_and_flags_name_the_variants_and_start_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("ECHO_PIPELINE_PRETRAINED", f"echoclip={tmp_path}/a; echoclip-r={tmp_path}/b,vocabulary=v.txt")
    monkeypatch.setenv("ECHO_PIPELINE_INIT_FROM", f"{tmp_path}/all;template={tmp_path}/t")
    settings = PipelineSettings.from_env()
    assert settings.variant_names == ("bpe", "template", "echoclip", "echoclip-r")
    assert settings.pretrained_sources["echoclip-r"].tokenizer == "published_template"
    assert settings.init_from_for("template") == tmp_path / "t" and settings.init_from_for("bpe") == tmp_path / "all"
    with pytest.raises(InputContractError, match="given twice"):
        PipelineSettings(pretrained=("x=/a", "x=/b")).pretrained_sources
    with pytest.raises(InputContractError, match="preprocessing"):
        PipelineSettings(pretrained=("x=/a,preprocessing=zoom",)).pretrained_sources
