"""Looking inside each variant's model: the UMAP of its test-clip embeddings and PromptCAM saliency maps.

Thin assets over `echo_pipeline.interpretation` (docs/evaluation.md, "Looking inside"): each writes one
Parquet partition per variant and shows its figures inline in the UI metadata.
"""

import dagster as dg

from assets.partitions import MODEL_VARIANTS
from assets.publishing import publish_catalog
from echo_pipeline import model_variants
from echo_pipeline.evaluation import DEFAULT_PROMPTS_PATH
from echo_pipeline.evaluation.figure_files import save_figures
from echo_pipeline.figures import markdown_image
from echo_pipeline.interpretation.saliency_panels import prompt_saliency as saliency_panels
from echo_pipeline.interpretation.umap_projection import UmapSettings, embedding_umap as umap_rows
from resources import PipelineResource

GROUP = "interpretation"
CODE_VERSION = "1"
_DEPS = ["clip_model", "clip_embeddings", "report_labels", "splits", "masked_clips"]


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
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    out = umap_rows(store, record, run_id=context.run.run_id, code_version=CODE_VERSION,
                    settings=UmapSettings(config.n_neighbors, config.min_dist, config.seed))
    store.write_table("embedding_umap", out.table, partition=variant)
    path = save_figures(store, variant, {"embedding_umap": out.figure})["embedding_umap"]
    publish_catalog(pipeline)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": out.table.num_rows, "model_id": record.model_id,
        "umap_png": dg.MetadataValue.path(str(path)),
        "umap": dg.MetadataValue.md(markdown_image(out.figure, "embedding_umap")),
    })


@dg.asset(deps=_DEPS, partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"parquet", "duckdb"},
          code_version=CODE_VERSION,
          description="PromptCAM: saliency maps of the highest- and lowest-scoring test clips per device and "
                      "chamber task.")
def prompt_saliency(context: dg.AssetExecutionContext, config: SaliencyConfig, pipeline: PipelineResource):
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    out = saliency_panels(store, record, run_id=context.run.run_id, code_version=CODE_VERSION,
                          prompts_path=config.prompts_path or DEFAULT_PROMPTS_PATH, device=config.device)
    store.write_table("prompt_saliency", out.table, partition=variant)
    publish_catalog(pipeline)
    figures = {stem: dg.MetadataValue.md(markdown_image(png, stem)) for stem, png in out.figures.items()}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": out.table.num_rows, "model_id": record.model_id, **figures,
        "layer": str(out.table.column("saliency_layer")[0]) if out.table.num_rows else "n/a",
    })
