"""Stage 6: the CLIP model, trained outside the Dagster process through Dagster Pipes.

Here Pipes launches a local subprocess; on a cluster the same asset launches torchrun on a GPU node or a
Kubernetes pod by swapping the `pipes_client` resource (docs/scaling.md). The `training` pool keeps one
training run at a time. What a run trains on, where it lives and what it records: echo_pipeline.training.run_plan.
"""

import sys

import dagster as dg

from assets.partitions import MODEL_VARIANTS
from assets.plots import line_plot_markdown
from assets.tokenization import vocabulary_path
from echo_pipeline import CODE_VERSION, model_variants
from echo_pipeline.training import run_plan
from echo_pipeline.training.pretrained import register_pretrained
from echo_pipeline.training.trainer import TRAINING_VERSION
from resources import PipelineResource


def _metadata(plan: run_plan.RunPlan, record: model_variants.ModelRecord, history: list[dict]) -> dict:
    return {
        "model_id": record.model_id,
        "checkpoint_sha256": record.checkpoint_sha256,
        "best_checkpoint": dg.MetadataValue.path(record.checkpoint_dir),
        "best_epoch": record.best_epoch,
        "best_val_mcmrr": record.best_val_mcmrr,
        "train_pairs": record.train_pairs,
        "validation_pairs": plan.validation_pairs,
        "preset": plan.preset,
        "run_dir": dg.MetadataValue.path(str(plan.run_dir)),
        "history": dg.MetadataValue.json(history),
        "curves": line_plot_markdown(
            [h["epoch"] for h in history],
            {"train loss": [h["train_loss"] for h in history], "validation MCMRR": [h["mcmrr"] for h in history],
             "selection score (docs/training.md)": [h["selection_mcmrr"] for h in history]},
            title=f"clip_model[{plan.variant}]", xlabel="epoch",
        ),
    }


def pretrained_metadata(record: model_variants.ModelRecord) -> dict:
    return {"model_id": record.model_id, "checkpoint_sha256": record.checkpoint_sha256, "source": record.source,
            "directory": dg.MetadataValue.path(record.checkpoint_dir), "tokenizer": record.tokenizer,
            "preprocessing": record.preprocessing, "manifest": dg.MetadataValue.json(record.manifest)}


@dg.asset(
    partitions_def=MODEL_VARIANTS,
    deps=[dg.AssetDep("masked_clips", partition_mapping=dg.AllPartitionMapping()),
          "report_links", "splits", "template_vocabulary"],
    pool="training",
    kinds={"pytorch", "safetensors"},
    group_name="training",
    code_version=f"training-{TRAINING_VERSION}",  # bump TRAINING_VERSION when training changes its result
)
def clip_model(context: dg.AssetExecutionContext, pipeline: PipelineResource,
               pipes_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    """open_clip CLIP (ConvNeXt image tower) trained on A4C clip–report pairs; best epoch by validation MCMRR.
    For a pretrained variant (`--pretrained NAME=DIR`), the published directory recorded without training."""
    variant, settings = context.partition_key, pipeline.settings
    source = settings.pretrained_sources.get(variant)
    if source is not None:  # a published model: checked, hashed and recorded as it is, not trained
        record = register_pretrained(pipeline.store, source, run_id=context.run.run_id, code_version=CODE_VERSION)
        return dg.MaterializeResult(metadata=pretrained_metadata(record))
    plan = run_plan.plan_run(pipeline.store, variant, model_preset=settings.model_preset,
                             train_epochs=settings.train_epochs, vocabulary_path=vocabulary_path(pipeline),
                             init_from=settings.init_from_for(variant))
    invocation = pipes_client.run(
        context=context,
        command=[sys.executable, "-m", "echo_pipeline.training.pipes_entry"],
        extras={"config_path": str(plan.config_path)},
        env={"ECHO_PIPELINE_TRAIN_CONFIG": str(plan.config_path)},
    )
    reported = {key: value.value for key, value in (invocation.get_materialize_result().metadata or {}).items()}
    record = run_plan.model_record(plan, reported, run_id=context.run.run_id, code_version=CODE_VERSION)
    model_variants.write_record(pipeline.store, record)
    return dg.MaterializeResult(metadata=_metadata(plan, record, reported["history"]))
