"""How good the masks are against a synthetic cohort's ground truth (truth/clips.parquet + mask PNGs beside
its dicom/ folder): IoU per method (the pixel method on every clip, the region method on clips with region
tags) and of the masks actually kept. Real archives have no truth; qc_summary.py summarises what the
sector_masks table itself says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from echo_pipeline.masking.geometry import iou
from echo_pipeline.masking.sectors import PIXELS, SectorOutcome, load_mask

#: IoU the quality bar counts as a good mask (docs/masking.md).
GOOD_IOU = 0.90


def find_truth(dicom_root: Path) -> Path | None:
    """truth/clips.parquet beside a synthetic cohort's dicom/ folder, when there is one."""
    path = Path(dicom_root).parent / "truth" / "clips.parquet"
    return path if path.exists() else None


def load_truth(clips_parquet: Path) -> dict[str, Path]:
    """sop_instance_uid -> absolute path of its ground-truth mask PNG."""
    table = pq.read_table(clips_parquet, columns=["sop_instance_uid", "sector_mask_path"])
    root = Path(clips_parquet).parent.parent  # mask paths are relative to the cohort's folder
    return {sop: root / rel for sop, rel in zip(*(table.column(c).to_pylist() for c in table.column_names))}


def summary(values: list[float]) -> dict[str, float]:
    """n, median, min, 1st percentile and the fraction >= GOOD_IOU of a list of IoUs."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "median": float(np.median(v)), "min": float(v.min()),
            "p01": float(np.percentile(v, 1)), "fraction_ge_0_90": float((v >= GOOD_IOU).mean())}


def method_ious(outcomes: list[SectorOutcome], truth: dict[str, Path]) -> dict[str, list[float]]:
    """IoU with the truth of each method's mask, per method family ("pixels", "regions"), over the clips
    that have a truth mask. A clip where a method found no fan counts as IoU 0 for it."""
    result: dict[str, list[float]] = {"pixels": [], "regions": []}
    for outcome in outcomes:
        row = outcome.mask_row or outcome.quarantine_row
        path = truth.get(row["sop_instance_uid"])
        if path is None:
            continue
        expected = load_mask(path)
        for family, methods in (("pixels", [PIXELS]), ("regions", [m for m in outcome.fans if m != PIXELS])):
            if family == "regions" and outcome.region is None:
                continue
            got = [iou(outcome.method_mask(m, *expected.shape), expected) for m in methods]
            result[family].append(got[0] if got else 0.0)
    return result


def kept_mask_ious(masks: pa.Table, data_root: Path, truth: dict[str, Path]) -> list[float]:
    """IoU with the truth of every kept mask PNG in a sector_masks table (clips with a truth mask)."""
    values = []
    for sop, rel in zip(masks.column("sop_instance_uid").to_pylist(), masks.column("mask_path").to_pylist()):
        if sop in truth:
            values.append(iou(load_mask(Path(data_root) / rel), load_mask(truth[sop])))
    return values


def iou_figures(dicom_root: Path, outcomes: list[SectorOutcome], masks: pa.Table,
                data_root: Path) -> dict[str, dict[str, float]] | None:
    """IoU summaries against a synthetic cohort's truth: per method over the newly processed clips, and of
    every kept mask; None for an archive without truth (every real one)."""
    truth_file = find_truth(dicom_root)
    if truth_file is None:
        return None
    truth = load_truth(truth_file)
    figures = {f"{k} (new clips)": summary(v) for k, v in method_ious(outcomes, truth).items()}
    figures["kept masks"] = summary(kept_mask_ious(masks, data_root, truth))
    return figures
