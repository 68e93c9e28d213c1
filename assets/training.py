"""Stage 6: the CLIP model, trained outside the Dagster process through Dagster Pipes.

Here Pipes launches a local subprocess; on a cluster the same asset launches torchrun on a GPU node or a
Kubernetes pod by swapping the `pipes_client` resource (docs/scaling.md). The `training` pool keeps one
training run at a time.
"""

import hashlib
import json
import sys

import dagster as dg
import pyarrow.parquet as pq

from assets.partitions import MODEL_VARIANTS
from assets.plots import line_plot_markdown
from assets.tokenization import vocabulary_path
from echo_pipeline import CODE_VERSION, catalog, model_variants
from echo_pipeline.storage import atomic_path
from echo_pipeline.training import registry
from echo_pipeline.training.trainer import TRAINING_VERSION
from resources import PipelineResource

# One row per training pair: every masked A4C clip of the training and validation splits with its study's
# linked report. Test-split clips never reach the trainer.
PAIRS_SQL = """
    SELECT m.sop_instance_uid AS clip_id, m.clip_path AS npy_path, r.report_text AS text,
           coalesce(s.patient_key, s.study_instance_uid) AS group_id,
           CASE s.split WHEN 'validation' THEN 'val' ELSE s.split END AS split
    FROM masked_clips m
    JOIN dicom_instances d ON d.sop_instance_uid = m.sop_instance_uid
    JOIN report_links l ON l.study_instance_uid = d.study_instance_uid
    JOIN reports r ON r.report_id = l.report_id
    JOIN splits s ON s.study_instance_uid = d.study_instance_uid
    WHERE s.split IN ('train', 'validation')
    ORDER BY m.sop_instance_uid
"""


def _tokenizer_spec(pipeline: PipelineResource, variant: str):
    if variant == "bpe":
        return "bpe"
    return {"factory": "echo_pipeline.tokenizers:make_tokenizer",
            "kwargs": {"kind": "template", "vocabulary_path": str(vocabulary_path(pipeline))}}


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
    """open_clip CLIP (ConvNeXt image tower) trained on A4C clip–report pairs; best epoch by validation MCMRR."""
    variant = context.partition_key
    store = pipeline.store
    pairs = catalog.open_reader(store).sql(PAIRS_SQL).to_arrow_table()
    if pairs.num_rows == 0:
        raise dg.Failure("no training pairs: masked_clips, report_links and splits yield no train/validation clip "
                         "with a linked report; check those assets' metadata")
    preset = registry.preset_for(variant, pipeline.settings.model_preset)
    # Newest two epochs (resume falls back to the previous one when the latest is corrupt) plus the best:
    # an echo-tiny epoch is 230 MB, an echoclip one 2.6 GB, so keeping every epoch would fill the disk.
    train = {"preset": preset, "seed": 0, "keep_last": 2}
    if pipeline.settings.train_epochs is not None:
        train["epochs"] = pipeline.settings.train_epochs
    config = {"train": train, "pairs": "pairs.parquet", "tokenizer": _tokenizer_spec(pipeline, variant),
              "events": "events.jsonl"}
    # Same pairs, settings and training version → same run folder, so a re-run resumes (or finds the run
    # finished); anything else trains afresh beside it instead of reusing a run that older code trained.
    run_key = hashlib.sha256(json.dumps([TRAINING_VERSION, config, pairs.to_pylist()],
                                        sort_keys=True).encode()).hexdigest()[:12]
    run_dir = model_variants.run_dir(store, variant, run_key)
    run_dir.mkdir(parents=True, exist_ok=True)
    config["train"]["out_dir"] = str(run_dir)
    absolute = [str(store.path / path) for path in pairs.column("npy_path").to_pylist()]
    with atomic_path(run_dir / "pairs.parquet") as tmp:
        pq.write_table(pairs.set_column(pairs.schema.get_field_index("npy_path"), "npy_path", [absolute]), tmp)
    config_path = run_dir / "config.json"
    with atomic_path(config_path) as tmp:
        tmp.write_text(json.dumps(config, indent=2))

    invocation = pipes_client.run(
        context=context,
        command=[sys.executable, "-m", "echo_pipeline.training.pipes_entry"],
        extras={"config_path": str(config_path)},
        env={"ECHO_PIPELINE_TRAIN_CONFIG": str(config_path)},
    )
    reported = invocation.get_materialize_result()
    metadata = {key: value.value for key, value in (reported.metadata or {}).items()}
    history = metadata["history"]
    checkpoint_sha256 = metadata["checkpoint_sha256"]
    record = model_variants.ModelRecord(
        variant=variant, model_id=f"{preset}-{variant}-{checkpoint_sha256[:12]}", preset=preset, tokenizer=variant,
        checkpoint_dir=str(metadata["best_checkpoint"]), checkpoint_sha256=checkpoint_sha256,
        vocabulary_path=str(vocabulary_path(pipeline)) if variant == "template" else None,
        best_epoch=int(metadata["best_epoch"]), best_val_mcmrr=float(metadata["best_val_mcmrr"]),
        epochs_completed=int(metadata["epochs_completed"]), train_pairs=sum(s == "train" for s in pairs.column("split").to_pylist()),
        run_id=context.run.run_id, code_version=CODE_VERSION,
    )
    model_variants.write_record(store, record)
    return dg.MaterializeResult(metadata={
        "model_id": record.model_id,
        "checkpoint_sha256": checkpoint_sha256,
        "best_checkpoint": dg.MetadataValue.path(record.checkpoint_dir),
        "best_epoch": record.best_epoch,
        "best_val_mcmrr": record.best_val_mcmrr,
        "train_pairs": record.train_pairs,
        "validation_pairs": pairs.num_rows - record.train_pairs,
        "preset": preset,
        "run_dir": dg.MetadataValue.path(str(run_dir)),
        "history": dg.MetadataValue.json(history),
        "curves": line_plot_markdown(
            [h["epoch"] for h in history],
            {"train loss": [h["train_loss"] for h in history], "validation MCMRR": [h["mcmrr"] for h in history],
             "selection score (docs/training.md)": [h["selection_mcmrr"] for h in history]},
            title=f"clip_model[{variant}]", xlabel="epoch",
        ),
    })
