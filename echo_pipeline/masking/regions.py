"""The sector from DICOM SequenceOfUltrasoundRegions (0018,6011), checked and completed by the pixels.

The tissue region's bounds (RegionLocationMinX0 … MaxY1, inclusive) give a box, not a fan: the fan inside
it still has to be found. When the box is the fan's bounding box (the usual case), the symmetric fan with
its apex at the box's top centre, its radius reaching the box's bottom and its sides touching the box's
sides is fully determined; its edges are then placed on the pixels (edges.refine_fan). When the pixels do not
support that fan (the box also covers margins, or the fan is cut by it), the fan is fitted to the
activity inside the box instead. Nothing outside the box is ever part of the mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from echo_pipeline.masking.edges import refine_fan
from echo_pipeline.masking.evidence import Sector, judge
from echo_pipeline.masking.from_pixels import sector_from_activity
from echo_pipeline.masking.geometry import Fan, iou

#: IoU between the box's fan and the fan fitted to the pixels inside the box above which the box's fan is
#: taken as it stands.
BOX_FAN_AGREEMENT = 0.90

BOX_FAN = "regions"  # the fan inscribed in the region box, edges refined on the pixels
BOX_PIXELS = "regions_pixels"  # the fan fitted to the activity inside the region box


@dataclass(frozen=True)
class RegionBox:
    """Inclusive pixel bounds of the 2D tissue region."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def from_row(cls, row: dict) -> RegionBox | None:
        """From dicom_instances' region_x0 … region_y1 columns; None when any is missing."""
        values = [row.get(f"region_{k}") for k in ("x0", "y0", "x1", "y1")]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            return None
        return cls(*(int(v) for v in values))

    def valid_for(self, rows: int, cols: int) -> bool:
        """Ordered, at least 10 px each way, and within the image."""
        return 0 <= self.x0 and self.x0 + 10 <= self.x1 < cols and 0 <= self.y0 and self.y0 + 10 <= self.y1 < rows

    def scaled(self, scale: int) -> RegionBox:
        """The box in a frame reduced by ``scale`` (the reduced pixels that hold any of its pixels)."""
        return RegionBox(self.x0 // scale, self.y0 // scale, self.x1 // scale, self.y1 // scale)

    def mask(self, rows: int, cols: int) -> np.ndarray:
        inside = np.zeros((rows, cols), bool)
        inside[max(self.y0, 0) : self.y1 + 1, max(self.x0, 0) : self.x1 + 1] = True
        return inside


@dataclass(frozen=True)
class RegionSector:
    """How the fan inside a region box was found (BOX_FAN or BOX_PIXELS), the mask (the fan clipped to the
    box) and how well it explains the clip's activity (``judged.fan`` is the fan)."""

    how: str
    mask: np.ndarray
    judged: Sector

    @property
    def fan(self) -> Fan:
        return self.judged.fan


def fan_in_box(box: RegionBox) -> Fan:
    """The symmetric, pointed fan whose bounding box is ``box`` (apex at the top centre)."""
    apex_x = (box.x0 + box.x1) / 2
    apex_y = box.y0 - 0.5  # the apex lies within the top row's pixel, on average half a pixel above its centre
    radius = box.y1 + 0.5 - apex_y
    half_width = (box.x1 - box.x0 + 1) / 2
    half_angle = math.degrees(math.asin(min(1.0, half_width / radius)))
    return Fan(apex_x, apex_y, radius, -half_angle, half_angle)


def sector_from_regions(box: RegionBox, change: np.ndarray) -> RegionSector:
    """The sector inside ``box`` given the clip's activity (from_pixels.activity)."""
    rows, cols = change.shape
    inside = box.mask(rows, cols)
    boxed = np.where(inside, change, 0).astype(change.dtype)
    fan = refine_fan(boxed, fan_in_box(box))
    mask = fan.mask(rows, cols) & inside
    found = sector_from_activity(boxed)
    if found.fan is not None:
        pixel_mask = found.fan.mask(rows, cols) & inside
        if iou(mask, pixel_mask) < BOX_FAN_AGREEMENT:
            return RegionSector(BOX_PIXELS, pixel_mask, judge(found.fan, pixel_mask, change))
    # The box's fan as it stands; plausibility judges how it explains the activity (inside the box or not).
    return RegionSector(BOX_FAN, mask, judge(fan, mask, change))
