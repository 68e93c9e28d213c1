"""Stage 7: clip and report embeddings of each model variant, and the FAISS indexes users search.

Embedding is incremental (only clips and reports the variant's current model has not embedded yet) and a new
model rebuilds everything; indexes are extended, rebuilt, or left alone as the embeddings require. Layout and
index kinds: docs/search.md.
"""

import os
import time

import dagster as dg

from assets.partitions import MODEL_VARIANTS
from assets.publishing import publish_catalog, table_metadata
from echo_pipeline import embeddings, model_variants
from echo_pipeline.devices import resolve_device
from echo_pipeline.embeddings import ClipEmbedder, EmbeddingStore, embed_new, embed_reports
from echo_pipeline.errors import IndexIntegrityError
from echo_pipeline.search import CLIPS, KINDS, REPORTS, IndexConfig, verify_index
from echo_pipeline.search import CODE_VERSION as INDEX_CODE_VERSION
from echo_pipeline.search import refresh
from echo_pipeline.training import registry
from echo_pipeline.upstream import read_upstream
from resources import PipelineResource

GROUP = "embeddings"
#: flat (exact, the default) or ivf (approximate; recall@10 measured at build and recorded).
INDEX_KIND_ENV_VAR = "ECHO_PIPELINE_INDEX_KIND"


class EmbeddingConfig(dg.Config):
    device: str = "auto"  # "auto" = cuda when available, else cpu
    batch_frames: int = 64  # frames per forward pass (clips); texts per batch are 4x this
    num_workers: int = 2  # threads reading clips ahead of the model
    chunk_size: int = 512  # items embedded and committed together (an interrupted run resumes per chunk)


class IndexBuildConfig(dg.Config):
    kind: str = ""  # "" = ECHO_PIPELINE_INDEX_KIND, default "flat"
    nlist: int = 0  # IVF lists; 0 = round(sqrt(N))
    nprobe: int = 16  # IVF lists searched per query


def index_config(config: IndexBuildConfig) -> IndexConfig:
    kind = config.kind or os.environ.get(INDEX_KIND_ENV_VAR, "") or "flat"
    if kind not in KINDS:
        raise dg.Failure(f"index kind {kind!r} (run config or {INDEX_KIND_ENV_VAR}) is not one of {KINDS}")
    return IndexConfig(kind=kind, nlist=config.nlist or None, nprobe=config.nprobe)


def _summary_metadata(summary: embeddings.UpdateSummary, record: model_variants.ModelRecord, seconds: float,
                      table: str, total_rows: int, unit: str, device: str) -> dict:
    return {
        "model_id": record.model_id, "checkpoint_sha256": record.checkpoint_sha256, "device": device,
        "embedded": summary.embedded, "skipped": summary.skipped, "removed": summary.removed,
        "failed": len(summary.failed), "failures": dg.MetadataValue.json([f"{i}: {r}" for i, r in summary.failed[:10]]),
        f"{unit}_per_second": round(summary.embedded / seconds, 2) if summary.embedded else 0.0,
        "seconds": round(seconds, 2), **table_metadata(table, total_rows, partitioned=True),
    }


@dg.asset(
    partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"pytorch", "numpy", "parquet"},
    code_version=embeddings.CODE_VERSION,
    deps=["clip_model", dg.AssetDep("masked_clips", partition_mapping=dg.AllPartitionMapping())],
)
def clip_embeddings(context: dg.AssetExecutionContext, config: EmbeddingConfig,
                    pipeline: PipelineResource) -> dg.MaterializeResult:
    """Every masked A4C clip embedded by the variant's model: frames 0, 2, …, 38 and their normalised mean.
    Vectors in .npy chunks under arrays/clip_embeddings/, located by this id table (one partition per shard)."""
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    clips = read_upstream(store, model_variants.MASKED_CLIPS_SQL, ["masked_clips"])
    device = resolve_device(config.device)
    embedder = ClipEmbedder(registry.load_model(record), device=device, batch_frames=config.batch_frames,
                            num_workers=config.num_workers, preprocessing=record.preprocessing)
    started = time.perf_counter()
    summary = refresh.update_clip_embeddings(
        store, variant, record.model_id, clips, embedder, run_id=context.run.run_id,
        code_version=embeddings.CODE_VERSION, chunk_size=config.chunk_size,
        progress=lambda partition, done, total: context.log.info(f"{partition}: {done}/{total} new clips embedded"),
    )
    seconds = time.perf_counter() - started
    for clip_id, reason in summary.failed:
        context.log.warning(f"clip {clip_id} not embedded: {reason}")
    publish_catalog(pipeline)
    stored = EmbeddingStore(store, model_variants.CLIP_TABLE, record.model_id)
    total = sum(stored.rows(p).num_rows for p in model_variants.variant_partitions(store, model_variants.CLIP_TABLE, variant))
    return dg.MaterializeResult(metadata={
        **_summary_metadata(summary, record, seconds, "clip_embeddings", total, "clips", device), "masked_clips": clips.num_rows,
    })


@dg.asset(
    partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"pytorch", "numpy", "parquet"},
    code_version=embeddings.CODE_VERSION, deps=["clip_model", "reports", "report_links"],
)
def report_embeddings(context: dg.AssetExecutionContext, config: EmbeddingConfig,
                      pipeline: PipelineResource) -> dg.MaterializeResult:
    """Every report linked to a study, embedded by the variant's model as the normalised mean of the
    tokenizer's evaluation texts (77-token windows for BPE, the whole report for the template tokenizer)."""
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    table = read_upstream(store, model_variants.LINKED_REPORTS_SQL, ["reports", "report_links"])
    reports = list(zip(table.column("report_id").to_pylist(), table.column("report_text").to_pylist()))
    model, tokenizer = registry.load_model(record), registry.load_tokenizer(record)
    device = resolve_device(config.device)
    started = time.perf_counter()
    summary = embed_new(
        EmbeddingStore(store, model_variants.REPORT_TABLE, record.model_id), model_variants.report_partition(variant), reports,
        lambda chunk: embed_reports(model, tokenizer, chunk, tokenizer.evaluation_texts, device=device,
                                    batch_size=4 * config.batch_frames),
        id_of=lambda report: report[0], run_id=context.run.run_id, code_version=embeddings.CODE_VERSION,
        chunk_size=config.chunk_size,
        progress=lambda done, total: context.log.info(f"{done}/{total} new reports embedded"),
    )
    seconds = time.perf_counter() - started
    for report_id, reason in summary.failed:
        context.log.warning(f"report {report_id} not embedded: {reason}")
    publish_catalog(pipeline)
    stored = EmbeddingStore(store, model_variants.REPORT_TABLE, record.model_id)
    total = stored.rows(model_variants.report_partition(variant)).num_rows
    return dg.MaterializeResult(metadata={
        **_summary_metadata(summary, record, seconds, "report_embeddings", total, "reports", device), "linked_reports": len(reports),
        "tokenizer": record.tokenizer,
    })


def _index(context: dg.AssetExecutionContext, config: IndexBuildConfig, pipeline: PipelineResource,
           index: str, table: str, content: str) -> dg.MaterializeResult:
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    ids, vectors = refresh.load_variant_vectors(store, table, variant, record.model_id)
    if not ids:
        raise dg.Failure(f"no {table} of model {record.model_id} for variant {variant!r}; "
                         f"materialise {table}[{variant}] first")
    directory = model_variants.index_dir(store, index, variant)
    started = time.perf_counter()
    manifest, action = refresh.refresh_index(directory, ids, vectors, content=content, model_id=record.model_id,
                                              config=index_config(config))
    context.log.info(f"{index}[{variant}]: {action}, {manifest['n_vectors']} vectors ({manifest['kind']})")
    metadata = {
        "action": action, "n_vectors": manifest["n_vectors"], "dim": manifest["dim"], "kind": manifest["kind"],
        "model_id": manifest["model_id"], "index_sha256": manifest["index_sha256"],
        "ids_sha256": manifest["ids_sha256"], "path": dg.MetadataValue.path(str(directory)),
        "build_params": dg.MetadataValue.json(manifest["build_params"]),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if manifest["recall_at_10"] is not None:
        metadata["recall_at_10"] = manifest["recall_at_10"]
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"faiss"}, deps=["clip_embeddings"],
          code_version=INDEX_CODE_VERSION)
def video_index(context: dg.AssetExecutionContext, config: IndexBuildConfig,
                pipeline: PipelineResource) -> dg.MaterializeResult:
    """FAISS index of the variant's clip embeddings (row → SOP Instance UID), with a sha256 manifest."""
    return _index(context, config, pipeline, model_variants.VIDEO_INDEX, model_variants.CLIP_TABLE, CLIPS)


@dg.asset(partitions_def=MODEL_VARIANTS, group_name=GROUP, kinds={"faiss"}, deps=["report_embeddings"],
          code_version=INDEX_CODE_VERSION)
def report_index(context: dg.AssetExecutionContext, config: IndexBuildConfig,
                 pipeline: PipelineResource) -> dg.MaterializeResult:
    """FAISS index of the variant's report embeddings (row → report id), with a sha256 manifest."""
    return _index(context, config, pipeline, model_variants.REPORT_INDEX, model_variants.REPORT_TABLE, REPORTS)


def _verify(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource, index: str) -> dg.AssetCheckResult:
    """Hash the index files of the run's variant (of every variant built, outside a partitioned run)."""
    wanted = [context.partition_key] if context.has_partition_key else list(model_variants.MODEL_VARIANTS)
    checked, problems = {}, []
    for variant in wanted:
        directory = model_variants.index_dir(pipeline.store, index, variant)
        if not context.has_partition_key and not directory.is_dir():
            continue
        try:
            checked[variant] = verify_index(directory)["n_vectors"]
        except IndexIntegrityError as error:
            problems.append(str(error))
    return dg.AssetCheckResult(passed=not problems and bool(checked), metadata={
        "vectors_per_variant": dg.MetadataValue.json(checked), "problems": dg.MetadataValue.json(problems),
    })


@dg.asset_check(asset=video_index, blocking=True,
                description="The FAISS index and id files match the sha256 their manifest records.")
def video_index_matches_manifest(context: dg.AssetCheckExecutionContext,
                                 pipeline: PipelineResource) -> dg.AssetCheckResult:
    return _verify(context, pipeline, model_variants.VIDEO_INDEX)


@dg.asset_check(asset=report_index, blocking=True,
                description="The FAISS index and id files match the sha256 their manifest records.")
def report_index_matches_manifest(context: dg.AssetCheckExecutionContext,
                                  pipeline: PipelineResource) -> dg.AssetCheckResult:
    return _verify(context, pipeline, model_variants.REPORT_INDEX)
