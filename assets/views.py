"""Stage 2: A4C view filtering. A small CNN names each clip's view, a pixel test flags colour Doppler, and
`a4c_clips` keeps the confident grey-scale A4C clips the rest of the pipeline uses (docs/views.md)."""

import time
from collections import Counter

import dagster as dg

from assets.partitions import SHARDS
from assets.publishing import counts_table, preview, publish_catalog, table_metadata
from echo_pipeline import views
from echo_pipeline.views import inputs, truth_agreement
from echo_pipeline.upstream import read_partition
from echo_pipeline.views.provide import provide_classifier
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


def _trained_metadata(provided, spec: views.ModelSpec) -> dict:
    card, training = provided.card, provided.card["training"]
    return {
        "classifier_id": card["classifier_id"], "card": str(provided.card_path),
        "architecture": f"{spec.architecture} {spec.timm_args}",
        "input": f"{spec.frames_per_clip} frames x {spec.input_size} px",
        "training_data_hash": training["data_hash"], "training_seconds": round(provided.seconds, 1),
        "train_clips": training["train_clips"], "train_patients": training["train_patients"],
        "validation_patients": training["validation_patients"], **provided.counts, **_validation_metadata(card)}


def _agreement_metadata(agreement: dict) -> dict:
    held_out = agreement["held_out_patients"]
    return {"truth_agreement_all_clips": dg.MetadataValue.json(agreement["all_clips"]),
            "truth_agreement_held_out_patients": dg.MetadataValue.json(held_out),
            "truth_a4c_precision_held_out": held_out["precision"],
            "truth_a4c_recall_held_out": held_out["recall"]}


def _selection_metadata(shard: str, table, rule: views.A4cFilter, decisions: dict, predictions) -> dict:
    return {
        "shard": shard, **table_metadata("a4c_clips", table, partitioned=True), "min_probability": rule.min_probability,
        "min_frames": rule.min_frames,
        "decisions": dg.MetadataValue.md("| decision | clips | meaning |\n|---|---:|---|\n" + "\n".join(
            f"| {code} | {decisions.get(code, 0)} | {meaning} |" for code, meaning in views.DECISIONS.items())),
        "predicted_views": _per_view(predictions),
    }


def _per_view(predictions) -> dg.MetadataValue:
    return counts_table(Counter(v or "(not decoded)" for v in predictions.column("view").to_pylist()), "view")


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
    spec = views.ModelSpec(architecture=config.architecture, input_size=config.input_size,
                           frames_per_clip=config.frames_per_clip)
    provided = provide_classifier(
        store.array_dir(CLASSIFIER_DIR), labels_path=settings.view_labels_path,
        saved_card=settings.view_classifier_path, read_instances=lambda: inputs.read_instances(store),
        paths=pipeline.source_paths(), spec=spec, threads=config.threads or None,
        train_config=views.TrainConfig(seed=config.seed, epochs=config.epochs,
                                       validation_fraction=config.validation_fraction),
        run_id=context.run.run_id, code_version=views.CODE_VERSION, progress=context.log.info)
    card = provided.card
    if provided.training_clips is None:
        yield dg.MaterializeResult(asset_key="view_classifier", metadata={
            "source": provided.source, "classifier_id": card["classifier_id"], "card": str(provided.card_path),
            **_validation_metadata(card)})
        return
    table = provided.training_clips
    store.write_table("view_training_clips", table)
    publish_catalog(pipeline)
    yield dg.MaterializeResult(asset_key="view_classifier", metadata=_trained_metadata(provided, spec))
    yield dg.MaterializeResult(asset_key="view_training_clips", metadata={
        **table_metadata("view_training_clips", table, partitioned=False),
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
    instances = inputs.read_instances(store, shard)
    started = time.perf_counter()
    table, newly = views.predict_views(
        classifier, instances, pipeline.source_paths(), run_id=context.run.run_id, code_version=views.CODE_VERSION,
        previous=store.read_table("view_predictions", shard), batch_clips=config.batch_clips, threads=config.threads or None,
        progress=lambda done, total: context.log.info(f"shard {shard}: {done}/{total} clips scored"))
    seconds = time.perf_counter() - started
    store.write_table("view_predictions", table, shard)
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={
        "shard": shard, "classifier_id": classifier.classifier_id,
        **table_metadata("view_predictions", table, partitioned=True),
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
    predictions = read_partition(store, "view_predictions", shard)
    instances = inputs.read_instances(store, shard)
    rule = views.A4cFilter(min_probability=config.min_probability, min_frames=config.min_frames)
    table, decisions = views.select_a4c(predictions, instances, rule, run_id=context.run.run_id,
                                        code_version=views.CODE_VERSION)
    store.write_table("a4c_clips", table, shard)
    publish_catalog(pipeline)
    metadata = _selection_metadata(shard, table, rule, decisions, predictions)
    ids = set(predictions.column("classifier_id").to_pylist())
    card = views.read_card(store.array_dir(CLASSIFIER_DIR), ids.pop()) if len(ids) == 1 else None
    if card is not None:
        metadata["classifier_id"] = card["classifier_id"]
        metadata.update(_validation_metadata(card))
    agreement = truth_agreement.a4c_truth_agreement(pipeline.settings.dicom_root, table, predictions, instances,
                                                    inputs.training_patients(store, card))
    if agreement is not None:  # a synthetic cohort: report agreement with its ground truth
        metadata.update(_agreement_metadata(agreement))
    return dg.MaterializeResult(metadata=metadata)
