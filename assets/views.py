"""Stage 2: A4C view filtering. A small CNN names each clip's view, a pixel test flags colour Doppler, and
`a4c_clips` keeps the confident grey-scale A4C clips the rest of the pipeline uses (docs/views.md)."""

import time
from collections import Counter

import dagster as dg

from assets.common import counts_table, preview, publish_catalog
from assets.partitions import SHARDS
from echo_pipeline import catalog, views
from echo_pipeline.errors import InputContractError
from echo_pipeline.views import quality
from echo_pipeline.views.model import torch_threads
from resources import PipelineResource

GROUP = "views"
CLASSIFIER_DIR = "view_classifier"  # under DATA_ROOT/arrays/


class ViewClassifierConfig(dg.Config):
    seed: int = views.TrainConfig.seed
    epochs: int = views.TrainConfig.epochs
    validation_fraction: float = views.TrainConfig.validation_fraction
    architecture: str = views.ModelSpec.architecture
    input_size: int = views.ModelSpec.input_size
    frames_per_clip: int = views.ModelSpec.frames_per_clip
    threads: int = 0  # torch threads; 0 = one per core


class ViewPredictionConfig(dg.Config):
    batch_clips: int = 64  # clips per forward pass
    threads: int = 0  # torch threads; 0 = one per core


class A4cClipsConfig(dg.Config):
    min_probability: float = views.A4cFilter.min_probability
    min_frames: int = views.A4cFilter.min_frames


def _instances(pipeline: PipelineResource, shard: str | None = None):
    if "dicom_instances" not in catalog.available_views(pipeline.store):
        raise dg.Failure("dicom_instances has not been materialised yet; materialise the ingestion assets first")
    sql = "SELECT * FROM dicom_instances" + (" WHERE shard = ? ORDER BY sop_instance_uid" if shard else "")
    return catalog.open_reader(pipeline.store).sql(sql, params=[shard] if shard else None).to_arrow_table()


def _validation_metadata(card: dict) -> dict:
    validation = card.get("validation") or {}
    a4c = (validation.get("per_class") or {}).get("A4C", {})
    matrix = validation.get("confusion_matrix")
    return {
        "validation_clips": validation.get("clips", 0),
        "validation_accuracy": validation.get("accuracy"),
        "validation_a4c_precision": a4c.get("precision"),
        "validation_a4c_recall": a4c.get("recall"),
        "validation_confusion_matrix": dg.MetadataValue.md(
            views.confusion_markdown(matrix["rows_true_columns_predicted"], matrix["classes"])
            if matrix else "_(no validation clips)_"),
    }


def _per_view(predictions) -> dg.MetadataValue:
    return counts_table(Counter(v or "(not decoded)" for v in predictions.column("view").to_pylist()), "view")


def _training_patients(pipeline: PipelineResource, card: dict | None) -> set:
    """patient_key of every clip that trained the classifier (empty when unknown, e.g. a classifier from elsewhere)."""
    table = pipeline.store.read_table("view_training_clips")
    if table is None or card is None:
        return set()
    return {row["patient_key"] for row in table.to_pylist()
            if row["split"] == "train" and row["classifier_id"] == card["classifier_id"]}


@dg.multi_asset(
    specs=[
        dg.AssetSpec("view_classifier", deps=["dicom_instances", "view_labels_file"], group_name=GROUP,
                     kinds={"pytorch", "safetensors"}, code_version=views.CODE_VERSION,
                     description="CNN naming each clip's view (A4C, A2C, PLAX, PSAX, SUBCOSTAL, OTHER), trained on "
                                 "the view labels split by patient, or a saved classifier named by "
                                 "ECHO_PIPELINE_VIEW_CLASSIFIER."),
        dg.AssetSpec("view_training_clips", deps=["dicom_instances", "view_labels_file"], group_name=GROUP,
                     kinds={"parquet", "duckdb"}, code_version=views.CODE_VERSION, skippable=True,
                     description="The labelled clips that trained or validated the classifier, with validation "
                                 "predictions."),
    ],
)
def view_classifier(context: dg.AssetExecutionContext, config: ViewClassifierConfig, pipeline: PipelineResource):
    settings, store = pipeline.settings, pipeline.store
    directory = store.array_dir(CLASSIFIER_DIR)
    if settings.view_labels_path is None:
        if settings.view_classifier_path is None:
            raise InputContractError(
                "view_classifier: no view labels and no saved classifier are configured; provide either labels to train "
                "one (--view-labels / ECHO_PIPELINE_VIEW_LABELS: CSV or Parquet with sop_instance_uid, view) or a saved "
                "classifier (ECHO_PIPELINE_VIEW_CLASSIFIER: the card.json of a classifier from an earlier run, "
                "DATA_ROOT/arrays/view_classifier/<classifier_id>/card.json)"
            )
        card_path = views.install_classifier(settings.view_classifier_path, directory)
        views.set_current(directory, card_path)
        card = views.load_classifier(card_path).card
        yield dg.MaterializeResult(asset_key="view_classifier", metadata={
            "source": f"saved classifier {settings.view_classifier_path}", "classifier_id": card["classifier_id"],
            "card": str(card_path), **_validation_metadata(card)})
        return

    spec = views.ModelSpec(architecture=config.architecture, input_size=config.input_size,
                           frames_per_clip=config.frames_per_clip)
    train_config = views.TrainConfig(seed=config.seed, epochs=config.epochs,
                                     validation_fraction=config.validation_fraction)
    labels = views.read_view_labels(settings.view_labels_path)
    clips, counts = views.load_labelled_clips(_instances(pipeline), labels, pipeline.source_paths(), spec,
                                              progress=context.log.info)
    started = time.perf_counter()
    with torch_threads(config.threads or None):
        result = views.train_classifier(clips, spec, train_config, progress=context.log.info)
    seconds = time.perf_counter() - started
    card_path = views.save_classifier(directory, result.model, spec, {
        **result.card, "labels_file": settings.view_labels_path.name, "code_version": views.CODE_VERSION})
    views.set_current(directory, card_path)
    card = views.load_classifier(card_path).card
    table = views.training_clips_table(clips, result, card["classifier_id"], run_id=context.run.run_id,
                                       code_version=views.CODE_VERSION)
    store.write_table("view_training_clips", table)
    publish_catalog(pipeline)
    training = card["training"]
    yield dg.MaterializeResult(asset_key="view_classifier", metadata={
        "classifier_id": card["classifier_id"], "card": str(card_path),
        "architecture": f"{spec.architecture} {spec.timm_args}",
        "input": f"{spec.frames_per_clip} frames x {spec.input_size} px",
        "training_data_hash": training["data_hash"], "training_seconds": round(seconds, 1),
        "train_clips": training["train_clips"], "train_patients": training["train_patients"],
        "validation_patients": training["validation_patients"], **counts, **_validation_metadata(card)})
    yield dg.MaterializeResult(asset_key="view_training_clips", metadata={
        "dagster/row_count": table.num_rows,
        "per_label": counts_table(Counter(table.column("label").to_pylist()), "label")})


@dg.asset(deps=["view_classifier", "dicom_instances"], partitions_def=SHARDS, group_name=GROUP,
          kinds={"parquet", "duckdb"}, code_version=views.CODE_VERSION)
def view_predictions(context: dg.AssetExecutionContext, config: ViewPredictionConfig,
                     pipeline: PipelineResource) -> dg.MaterializeResult:
    """Per ingested clip of the shard: predicted view, probability per view, colour-Doppler flag, classifier id."""
    shard, store = context.partition_key, pipeline.store
    card_path = views.current_card_path(store.array_dir(CLASSIFIER_DIR))
    if card_path is None:
        raise dg.Failure("no view classifier in this data root yet; materialise view_classifier first")
    classifier = views.load_classifier(card_path)
    instances = _instances(pipeline, shard)
    started = time.perf_counter()
    table, newly = views.predict_views(
        classifier, instances, pipeline.source_paths(), run_id=context.run.run_id, code_version=views.CODE_VERSION,
        previous=store.read_table("view_predictions", shard), batch_clips=config.batch_clips, threads=config.threads or None,
        progress=lambda done, total: context.log.info(f"shard {shard}: {done}/{total} clips scored"))
    seconds = time.perf_counter() - started
    store.write_table("view_predictions", table, shard)
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={
        "shard": shard, "classifier_id": classifier.classifier_id, "dagster/row_count": table.num_rows,
        "newly_predicted": newly, "clips_per_second": round(newly / seconds, 1) if newly and seconds > 0 else None,
        "colour_doppler": sum(bool(v) for v in table.column("is_colour").to_pylist()),
        "not_decoded": table.num_rows - table.column("error").null_count,
        "per_view": _per_view(table),
        "preview": preview(table.select(["sop_instance_uid", "view", "p_a4c", "is_colour", "colour_fraction"])),
    })


@dg.asset(deps=["view_predictions"], partitions_def=SHARDS, group_name=GROUP, kinds={"parquet", "duckdb"},
          code_version=views.CODE_VERSION)
def a4c_clips(context: dg.AssetExecutionContext, config: A4cClipsConfig, pipeline: PipelineResource) -> dg.MaterializeResult:
    """The shard's clips predicted A4C with p_a4c ≥ min_probability, not colour Doppler, with ≥ min_frames frames."""
    shard, store = context.partition_key, pipeline.store
    predictions = store.read_table("view_predictions", shard)
    if predictions is None:
        raise dg.Failure(f"view_predictions has no partition {shard} yet; materialise it first")
    instances = _instances(pipeline, shard)
    rule = views.A4cFilter(min_probability=config.min_probability, min_frames=config.min_frames)
    table, decisions = views.select_a4c(predictions, instances, rule, run_id=context.run.run_id,
                                        code_version=views.CODE_VERSION)
    store.write_table("a4c_clips", table, shard)
    publish_catalog(pipeline)

    metadata = {
        "shard": shard, "dagster/row_count": table.num_rows, "min_probability": rule.min_probability,
        "min_frames": rule.min_frames,
        "decisions": dg.MetadataValue.md("| decision | clips | meaning |\n|---|---:|---|\n" + "\n".join(
            f"| {code} | {decisions.get(code, 0)} | {meaning} |" for code, meaning in views.DECISIONS.items())),
        "predicted_views": _per_view(predictions),
    }
    ids = set(predictions.column("classifier_id").to_pylist())
    card = views.read_card(store.array_dir(CLASSIFIER_DIR), ids.pop()) if len(ids) == 1 else None
    if card is not None:
        metadata["classifier_id"] = card["classifier_id"]
        metadata.update(_validation_metadata(card))
    truth_file = quality.find_truth(pipeline.settings.dicom_root)
    if truth_file is not None:  # a synthetic cohort: report agreement with its ground truth
        kept, truth = set(table.column("sop_instance_uid").to_pylist()), quality.load_truth(truth_file)
        trained_on = _training_patients(pipeline, card)
        patient = dict(zip(instances.column("sop_instance_uid").to_pylist(), instances.column("patient_key").to_pylist()))
        scored = [(uid, uid in kept, bool(colour)) for uid, colour in
                  zip(predictions.column("sop_instance_uid").to_pylist(), predictions.column("is_colour").to_pylist())]
        held_out = quality.a4c_agreement([s for s in scored if patient.get(s[0]) not in trained_on], truth)
        metadata["truth_agreement_all_clips"] = dg.MetadataValue.json(quality.a4c_agreement(scored, truth))
        metadata["truth_agreement_held_out_patients"] = dg.MetadataValue.json(held_out)
        metadata["truth_a4c_precision_held_out"] = held_out["precision"]
        metadata["truth_a4c_recall_held_out"] = held_out["recall"]
    return dg.MaterializeResult(metadata=metadata)
