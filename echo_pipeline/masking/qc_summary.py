"""What the sector_masks table says about its own masks: quantiles of its QC columns (any archive, no truth needed)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def qc_distributions(masks: pa.Table) -> dict[str, dict[str, float]]:
    """Quantiles (min, p01, p50, p99, max) of the QC columns of a sector_masks table."""
    result = {}
    for column in ("area_fraction", "fit_iou", "outside_fraction", "angular_coverage", "regions_pixels_iou"):
        values = np.asarray([v for v in masks.column(column).to_pylist() if v is not None], dtype=np.float64)
        if values.size:
            q = np.percentile(values, [0, 1, 50, 99, 100])
            result[column] = {"n": int(values.size), **{k: round(float(x), 4) for k, x in zip(("min", "p01", "p50", "p99", "max"), q)}}
    return result
