"""Looking inside each variant's model: the UMAP of its test-clip embeddings and PromptCAM saliency maps.

Thin assets over `echo_pipeline.interpretation` (docs/evaluation.md, "Looking inside"): each writes one
Parquet partition per variant and shows its figures inline in the UI metadata.
"""

import dagster as dg

from assets.partitions import MODEL_VARIANTS
from assets.publishing import preview, publish_catalog, table_metadata
from echo_pipeline import model_variants
from echo_pipeline.evaluation import DEFAULT_PROMPTS_PATH
from echo_pipeline.evaluation.figure_files import save_figures
from echo_pipeline.figures import markdown_image
from echo_pipeline.interpretation.saliency_panels import prompt_saliency as saliency_panels
from echo_pipeline.interpretation.study_reports import study_reports as study_report_rows
from echo_pipeline.interpretation.umap_projection import UmapSettings, embedding_umap as umap_rows
from resources import PipelineResource

GROUP = "interpretation"
CODE_VERSION = "1"
_DEPS = ["clip_model", "clip_embeddings", "report_labels", "splits", "masked_clips"]


def _build_and_write(context, pipeline: PipelineResource, table: str, build, **settings):
    """(record, output) of ``build`` for the partition's variant; ``output.table`` written and published."""
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    out = build(store, record, run_id=context.run.run_id, code_version=CODE_VERSION, **settings)
    store.write_table(table, out.table, partition=variant)
    publish_catalog(pipeline)
    return record, out


class UmapConfig(dg.Config):
    n_neighbors: int = 200  # capped at the number of clips − 1
    min_dist: float = 1.0
    seed: int = 0


class SaliencyConfig(dg.Config):
    device: str = "auto"  # "auto" = cuda when available, else cpu
    prompts_path: str = ""  # "" = the versioned echo_pipeline/evaluation/prompts.yaml


@dg.asset(deps=_DEPS, partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"parquet", "duckdb"},
          code_version=CODE_VERSION,
          description="2-D UMAP of the test clips' image embeddings (n_neighbors 200, min_dist 1.0), with labels.")
def embedding_umap(context: dg.AssetExecutionContext, config: UmapConfig, pipeline: PipelineResource):
    record, out = _build_and_write(context, pipeline, "embedding_umap", umap_rows,
                                   settings=UmapSettings(config.n_neighbors, config.min_dist, config.seed))
    shown = {} if out.figure is None else {
        "umap_png": dg.MetadataValue.path(str(save_figures(pipeline.store, record.variant,
                                                           {"embedding_umap": out.figure})["embedding_umap"])),
        "umap": dg.MetadataValue.md(markdown_image(out.figure, "embedding_umap"))}
    return dg.MaterializeResult(metadata={
        **table_metadata("embedding_umap", out.table, partitioned=True), "model_id": record.model_id,
        "note": out.note or "-", **shown})


@dg.asset(deps=_DEPS, partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"parquet", "duckdb"},
          code_version=CODE_VERSION,
          description="PromptCAM: saliency maps of the highest- and lowest-scoring test clips per device and "
                      "chamber task.")
def prompt_saliency(context: dg.AssetExecutionContext, config: SaliencyConfig, pipeline: PipelineResource):
    record, out = _build_and_write(context, pipeline, "prompt_saliency", saliency_panels, device=config.device,
                                   prompts_path=config.prompts_path or DEFAULT_PROMPTS_PATH)
    figures = {stem: dg.MetadataValue.md(markdown_image(png, stem)) for stem, png in out.figures.items()}
    return dg.MaterializeResult(metadata={
        **table_metadata("prompt_saliency", out.table, partitioned=True), "model_id": record.model_id, **figures,
        "layer": str(out.table.column("saliency_layer")[0]) if out.table.num_rows else "n/a",
    })


class StudyReportsConfig(dg.Config):
    knn_k: int = 50  # nearest training reports behind a kNN prediction
    device: str = "auto"
    prompts_path: str = ""  # "" = the versioned echo_pipeline/evaluation/prompts.yaml


@dg.asset(deps=["study_embeddings", "report_embeddings", "report_index", *_DEPS], partitions_def=MODEL_VARIANTS,
          group_name=GROUP, kinds={"parquet", "duckdb"}, code_version=CODE_VERSION,
          description="A preliminary read per study: zero-shot and kNN-report labels with probabilities calibrated "
                      "on the validation split, and the 3 nearest training reports as evidence.")
def study_reports(context: dg.AssetExecutionContext, config: StudyReportsConfig, pipeline: PipelineResource):
    record, out = _build_and_write(context, pipeline, "study_reports", study_report_rows, k=config.knn_k,
                                   prompts_path=config.prompts_path or DEFAULT_PROMPTS_PATH, device=config.device)
    table = out.table
    return dg.MaterializeResult(metadata={
        **table_metadata("study_reports", table, partitioned=True), "model_id": record.model_id,
        "studies": len(set(table.column("study_instance_uid").to_pylist())),
        "preview": preview(table.drop_columns(["evidence_report_ids", "evidence_similarities"])),
    })
