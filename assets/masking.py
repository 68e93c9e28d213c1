"""Stage 3: the scanning sector of every A4C clip, and the clip masked, cropped and resized; per shard.

`sector_masks` finds each clip's sector (region tags, else pixels) and quarantines implausible ones in
`mask_quarantine`; `masked_clips` writes every frame of each masked clip as model-ready uint8 RGB. Both skip
clips already done by the same code version from the same file bytes.
"""

from collections import Counter

import dagster as dg

from assets.common import counts_table, preview, publish_catalog
from assets.partitions import SHARDS
from echo_pipeline import catalog, masking
from echo_pipeline.masking import clips, quality, sectors
from resources import PipelineResource

GROUP = "masking"


class SectorMaskConfig(dg.Config):
    workers: int = 0  # processes; 0 = one per core
    sample_frames: int = 16  # frames, spread over the clip, in which the sector is seen moving


class MaskedClipConfig(dg.Config):
    size: int = masking.OUTPUT_SIZE  # output frames are size x size
    workers: int = 0  # processes; 0 = one per core


def _read(pipeline: PipelineResource, sql: str, shard: str, needs: list[str]):
    missing = [v for v in needs if v not in catalog.available_views(pipeline.store)]
    if missing:
        raise dg.Failure(f"upstream tables {missing} have not been materialised yet; materialise them first")
    return catalog.open_reader(pipeline.store).sql(sql, params=[shard]).to_arrow_table()


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
    table = _read(pipeline, """
        SELECT a.sop_instance_uid, d.file_sha256, d.relative_path, d.region_x0, d.region_y0, d.region_x1, d.region_y1
        FROM a4c_clips AS a JOIN dicom_instances AS d USING (sop_instance_uid)
        WHERE a.shard = ? ORDER BY a.sop_instance_uid""", shard, ["a4c_clips", "dicom_instances"])
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
                "dagster/row_count": masks.num_rows, "qc_distributions": _md(quality.qc_distributions(masks)),
                "methods": counts_table(Counter(masks.column("method").to_pylist()), "method"),
                "preview": preview(masks.drop_columns(["file_sha256", "run_id"]))}
    truth_file = quality.find_truth(pipeline.settings.dicom_root)
    if truth_file is not None:  # a synthetic cohort: report agreement with its ground truth
        truth = quality.load_truth(truth_file)
        figures = {f"{k} (new clips)": quality.summary(v) for k, v in quality.method_ious(outcomes, truth).items()}
        figures["kept masks"] = quality.summary(quality.kept_mask_ious(masks, store.path, truth))
        metadata["iou_vs_truth"] = _md(figures)
        metadata["kept_mask_iou_median"] = figures["kept masks"].get("median", float("nan"))
    yield dg.MaterializeResult(asset_key="sector_masks", metadata=metadata)
    yield dg.MaterializeResult(asset_key="mask_quarantine", metadata={
        "shard": shard, "dagster/row_count": quarantine.num_rows,
        "reasons": counts_table(Counter(quarantine.column("reason").to_pylist()), "reason"),
    })


@dg.asset(deps=["sector_masks"], partitions_def=SHARDS, group_name=GROUP, kinds={"parquet", "numpy", "duckdb"},
          code_version=masking.CODE_VERSION)
def masked_clips(context: dg.AssetExecutionContext, config: MaskedClipConfig, pipeline: PipelineResource) -> dg.MaterializeResult:
    """Every frame of each masked A4C clip: sector only (exact zeros outside), cropped to its bounding square,
    resized to size x size, uint8 RGB, one .npy (T, H, W, 3) per clip."""
    shard, store = context.partition_key, pipeline.store
    table = _read(pipeline, """
        SELECT m.sop_instance_uid, m.file_sha256, m.mask_path, m.method, d.relative_path, d.frame_rate
        FROM sector_masks AS m JOIN dicom_instances AS d
          ON d.sop_instance_uid = m.sop_instance_uid AND d.file_sha256 = m.file_sha256
        WHERE m.shard = ? ORDER BY m.sop_instance_uid""", shard, ["sector_masks", "dicom_instances"])
    paths = pipeline.source_paths()
    jobs = [clips.ClipJob(r["sop_instance_uid"], r["file_sha256"], shard, str(paths.locate(r["relative_path"])),
                          str(store.path / r["mask_path"]), r["method"], r["frame_rate"], r["relative_path"])
            for r in table.to_pylist()]
    result, failures = clips.masked_clip_table(
        jobs, store.read_table("masked_clips", shard), clip_dir=store.array_dir("masked_clips") / shard,
        data_root=store.path, run_id=context.run.run_id, code_version=masking.CODE_VERSION, size=config.size,
        workers=config.workers, progress=lambda done, total: context.log.info(f"shard {shard}: {done}/{total} clips written"),
    )
    for failure in failures:
        context.log.warning(f"masked clip not written: {failure.message}")
    store.write_table("masked_clips", result, shard)
    publish_catalog(pipeline)
    frames = sum(result.column("frames").to_pylist())
    return dg.MaterializeResult(metadata={
        "shard": shard, "dagster/row_count": result.num_rows, "frames": frames, "output_size": config.size,
        "clip_format": "npy uint8 (T, H, W, 3) RGB", "bytes": frames * config.size * config.size * 3,
        "failed": len(failures), "failures": dg.MetadataValue.json([f.message for f in failures[:10]]),
        "preview": preview(result.drop_columns(["file_sha256", "run_id"])),
    })
