"""Stage 3: the scanning sector of every A4C clip, and the clip masked, cropped and resized; per shard.

`sector_masks` finds each clip's sector (region tags, else pixels) and quarantines implausible ones in
`mask_quarantine`; `masked_clips` writes every frame of each masked clip as model-ready uint8 RGB. Both skip
clips already done by the same code version from the same file bytes.
"""

from collections import Counter

import dagster as dg

from assets.partitions import SHARDS
from assets.publishing import counts_table, preview, publish_catalog, table_metadata
from echo_pipeline import masking
from echo_pipeline.masking import clips, inputs, qc_summary, sectors, truth_agreement
from resources import PipelineResource

GROUP = "masking"
CLIP_FAILURES_PARTITION = "masked_clips"  # mask_quarantine/part-<shard>-masked_clips.parquet


class SectorMaskConfig(dg.Config):
    workers: int = 0  # processes; 0 = one per core
    sample_frames: int = 16  # frames, spread over the clip, in which the sector is seen moving


class MaskedClipConfig(dg.Config):
    size: int = masking.OUTPUT_SIZE  # output frames are size x size
    workers: int = 0  # processes; 0 = one per core


def _md(figures: dict[str, dict]) -> dg.MetadataValue:
    keys = sorted({k for v in figures.values() for k in v})
    lines = ["| | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    lines += [f"| {name} | " + " | ".join(f"{v.get(k, ''):.4g}" if isinstance(v.get(k), float) else str(v.get(k, ""))
                                        for k in keys) + " |" for name, v in figures.items()]
    return dg.MetadataValue.md("\n".join(lines))


@dg.multi_asset(
    specs=[
        dg.AssetSpec("sector_masks", deps=["a4c_clips"], group_name=GROUP, kinds={"parquet", "png", "duckdb"},
                     code_version=masking.CODE_VERSION,
                     description="Per A4C clip: the scanning sector's mask (PNG) and how it was found, with QC."),
        dg.AssetSpec("mask_quarantine", deps=["a4c_clips"], group_name=GROUP, kinds={"parquet", "duckdb"},
                     code_version=masking.CODE_VERSION,
                     description="A4C clips whose sector is implausible or unreadable, with the reason; never masked."),
    ],
    partitions_def=SHARDS,
)
def sector_mask_shard(context: dg.AssetExecutionContext, config: SectorMaskConfig, pipeline: PipelineResource):
    """Find each new A4C clip's sector (region tags, else pixels), judge it, save the mask or quarantine it."""
    shard, store = context.partition_key, pipeline.store
    table = inputs.read_a4c_clips(store, shard)
    masks, quarantine, outcomes = sectors.sector_tables(
        sectors.clip_sources(table, pipeline.source_paths(), shard),
        store.read_table("sector_masks", shard), store.read_table("mask_quarantine", shard),
        mask_dir=store.array_dir("sector_masks") / shard, data_root=store.path, run_id=context.run.run_id,
        code_version=masking.CODE_VERSION, samples=config.sample_frames, workers=config.workers,
        progress=lambda done, total: context.log.info(f"shard {shard}: {done}/{total} clips masked"),
    )
    store.write_table("sector_masks", masks, shard)
    store.write_table("mask_quarantine", quarantine, shard)
    publish_catalog(pipeline)
    metadata = {"shard": shard, "a4c_clips": table.num_rows, "newly_processed": len(outcomes),
                **table_metadata("sector_masks", masks, partitioned=True), "qc_distributions": _md(qc_summary.qc_distributions(masks)),
                "methods": counts_table(Counter(masks.column("method").to_pylist()), "method"),
                "preview": preview(masks.drop_columns(["file_sha256", "run_id"]))}
    figures = truth_agreement.iou_figures(pipeline.settings.dicom_root, outcomes, masks, store.path)
    if figures is not None:  # a synthetic cohort: report agreement with its ground truth
        metadata["iou_vs_truth"] = _md(figures)
        metadata["kept_mask_iou_median"] = figures["kept masks"].get("median", float("nan"))
    yield dg.MaterializeResult(asset_key="sector_masks", metadata=metadata)
    yield dg.MaterializeResult(asset_key="mask_quarantine", metadata={
        "shard": shard, **table_metadata("mask_quarantine", quarantine, partitioned=True),
        "reasons": counts_table(Counter(quarantine.column("reason").to_pylist()), "reason"),
    })


@dg.asset(deps=["sector_masks"], partitions_def=SHARDS, group_name=GROUP, kinds={"parquet", "numpy", "duckdb"},
          code_version=masking.CODE_VERSION)
def masked_clips(context: dg.AssetExecutionContext, config: MaskedClipConfig, pipeline: PipelineResource) -> dg.MaterializeResult:
    """Every frame of each masked A4C clip: sector only (exact zeros outside), cropped to its bounding square,
    resized to size x size, uint8 RGB, one .npy (T, H, W, 3) per clip. A clip that cannot be written becomes
    a `mask_quarantine` row (reason clip_not_written), so every clip masked ends in one of the two tables."""
    shard, store = context.partition_key, pipeline.store
    jobs = inputs.read_clip_jobs(store, pipeline.source_paths(), shard)
    result, failures = clips.masked_clip_table(
        jobs, store.read_table("masked_clips", shard), clip_dir=store.array_dir("masked_clips") / shard,
        data_root=store.path, run_id=context.run.run_id, code_version=masking.CODE_VERSION, size=config.size,
        workers=config.workers, progress=lambda done, total: context.log.info(f"shard {shard}: {done}/{total} clips written"),
    )
    for failure in failures:
        context.log.warning(f"masked clip not written (a mask_quarantine row): {failure.message}")
    store.write_table("masked_clips", result, shard)
    # Its own partition file of mask_quarantine, so sector_mask_shard's rewrite of part-<shard> keeps it.
    store.write_table("mask_quarantine", clips.failure_table(failures, context.run.run_id, masking.CODE_VERSION),
                      f"{shard}-{CLIP_FAILURES_PARTITION}")
    publish_catalog(pipeline)
    frames = sum(result.column("frames").to_pylist())
    return dg.MaterializeResult(metadata={
        "shard": shard, **table_metadata("masked_clips", result, partitioned=True), "frames": frames, "output_size": config.size,
        "clip_format": "npy uint8 (T, H, W, 3) RGB", "bytes": frames * config.size * config.size * 3,
        "failed": len(failures), "failures": dg.MetadataValue.json([f.message for f in failures[:10]]),
        "preview": preview(result.drop_columns(["file_sha256", "run_id"])),
    })
