"""Studies over time: study embeddings per model variant (and, below them, the procedure events and the
analyses that follow a patient's studies across time). What is measured and how: docs/evaluation.md."""

from collections import Counter

import dagster as dg

from assets.partitions import MODEL_VARIANTS
from assets.publishing import counts_table, preview, publish_catalog
from echo_pipeline import model_variants, studies
from echo_pipeline.evaluation.clinical_change import ChangeSettings, evaluate_clinical_change
from echo_pipeline.evaluation.figure_files import save_figures
from echo_pipeline.figures import markdown_image
from resources import PipelineResource

GROUP = "studies"


@dg.asset(
    partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"numpy", "parquet"}, code_version=studies.CODE_VERSION,
    deps=["clip_embeddings", *(dg.AssetDep(name, partition_mapping=dg.AllPartitionMapping())
                               for name in ("dicom_instances", "masked_clips"))],
)
def study_embeddings(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> dg.MaterializeResult:
    """One vector per study: the L2-normalised mean of its embedded A4C clips (clip count recorded)."""
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    table = studies.build_study_embeddings(store, record, run_id=context.run.run_id,
                                           code_version=studies.CODE_VERSION)
    store.write_table(studies.TABLE, table, partition=variant)
    publish_catalog(pipeline)
    n_clips = table.column("n_clips").to_numpy()
    return dg.MaterializeResult(metadata={
        "model_id": record.model_id, "dagster/row_count": table.num_rows,
        "clips_averaged": int(n_clips.sum()), "clips_per_study_max": int(n_clips.max()) if len(n_clips) else 0,
        "preview": preview(table.drop_columns(["embedding"])),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec("procedure_events", deps=["events_file"], group_name=GROUP, kinds={"parquet", "duckdb"},
                     description="The procedure events file, validated; patient ids hashed like the reports'.",
                     code_version=studies.CODE_VERSION),
        dg.AssetSpec("event_quarantine", deps=["events_file"], group_name=GROUP, kinds={"parquet", "duckdb"},
                     description="Event rows that cannot be used, with the reason and line.",
                     code_version=studies.CODE_VERSION),
    ],
)
def validated_events(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    path = pipeline.settings.events_path
    kept, quarantined, note = studies.read_events_if_configured(
        path, pipeline.pseudonym_key(), run_id=context.run.run_id, code_version=studies.CODE_VERSION)
    pipeline.store.write_table("procedure_events", kept)
    pipeline.store.write_table("event_quarantine", quarantined)
    publish_catalog(pipeline)
    procedures = Counter(kept.column("procedure").to_pylist())
    yield dg.MaterializeResult(asset_key="procedure_events", metadata={
        "source": str(path) if path else "(not configured)", "dagster/row_count": kept.num_rows,
        "procedures": counts_table(procedures, "procedure"), **({"note": note} if note else {}),
    })
    yield dg.MaterializeResult(asset_key="event_quarantine", metadata={
        "dagster/row_count": quarantined.num_rows,
        "reasons": counts_table(Counter(quarantined.column("reason").to_pylist()), "reason"),
    })


class ChangeConfig(dg.Config):
    n_resamples: int = 1000  # bootstrap resamples per CI (by patient)
    seed: int = 0
    split: str = "test"  # patients analysed: a split name, or "all" (the trained model has seen train patients)
    window_days: int = 200  # studies this close to the event, before and after
    device: str = "auto"  # for the untrained reference's clip embeddings
    batch_frames: int = 64


def _figures(store, variant: str, figures: dict) -> dict:
    """The figures saved as PNG files (arrays/eval_plots/<variant>/) and shown inline."""
    paths = save_figures(store, variant, figures)
    return {name: dg.MetadataValue.md(markdown_image(png, name)) for name, png in figures.items()} | {
        f"{name}_png": dg.MetadataValue.path(str(paths[name])) for name in figures}


@dg.asset(
    partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"parquet", "duckdb"}, code_version=studies.CODE_VERSION,
    deps=["study_embeddings", "clip_embeddings", "procedure_events", "clip_model", "splits",
          *(dg.AssetDep(name, partition_mapping=dg.AllPartitionMapping()) for name in ("dicom_instances", "masked_clips"))],
)
def eval_clinical_change(context: dg.AssetExecutionContext, config: ChangeConfig,
                         pipeline: PipelineResource) -> dg.MaterializeResult:
    """Similarity of each study to the patient's earliest one around a procedure (study level and over clip
    pairs), and the before/after AUC per procedure with 95 % CIs by patient; trained vs untrained model."""
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    settings = ChangeSettings(n_resamples=config.n_resamples, seed=config.seed, split=config.split,
                              window_days=config.window_days, device=config.device, batch_frames=config.batch_frames)
    out = evaluate_clinical_change(store, record, run_id=context.run.run_id, settings=settings,
                                   progress=context.log.info)
    store.write_table("eval_clinical_change", out.table, partition=variant)
    publish_catalog(pipeline)
    notes = ([studies.NO_EVENTS_NOTE] if pipeline.settings.events_path is None else []) + out.notes
    auc = out.auc[["model_kind", "level", "procedure", "value", "ci_low", "ci_high", "n_before", "n_after",
                   "n_patients"]] if len(out.auc) else out.auc
    return dg.MaterializeResult(metadata={
        "model_id": record.model_id, "dagster/row_count": out.table.num_rows, "notes": dg.MetadataValue.json(notes),
        "auc_before_after": dg.MetadataValue.md(auc.to_markdown(index=False, floatfmt=".3f") if len(auc) else "_(empty)_"),
        **_figures(store, variant, out.figures),
    })
