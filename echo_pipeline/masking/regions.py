"""The sector from DICOM SequenceOfUltrasoundRegions (0018,6011), checked and completed by the pixels.

PS3.3 C.8.5.5.1: each item describes a rectangular region of the image (RegionLocationMinX0 … MaxY1,
inclusive), what it shows (RegionSpatialFormat: 1 = 2D, 2 = M-mode, 3 = spectral Doppler, 4 = waveform,
5 = graphics; RegionDataType: 1 = tissue, 2 = colour flow, 3/4 = PW/CW Doppler, …) and its calibration: the
ReferencePixelX0/Y0 (relative to the region's top-left corner) has the physical coordinates
ReferencePixelPhysicalValueX/Y, and PhysicalDeltaX/Y give the physical size of a pixel (units: cm = 3).
The pixel whose physical coordinates are (0, 0) is the transducer origin: a sector's (possibly virtual)
apex.

Only a 2D tissue region is ever used as the sector. The box bounds the sector but need not hug it (margins,
a flat top), so the fan inside it is fitted to the pixels inside the box; when the tags define the origin,
the fan's apex is fixed there and only its angles and radii are fitted (method ``regions``); without an
origin, or when the fan through the origin does not match the pixels (wrong tags), the freely fitted fan is
used (``regions_pixels``). Nothing outside the box is ever part of the mask. A linear probe's rectangle is
not a fan: it is refused (``unsupported_region_geometry``) rather than masked with a wrong shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from echo_pipeline.masking.edges import refine_fan
from echo_pipeline.masking.evidence import Sector, judge
from echo_pipeline.masking.from_pixels import sector_from_activity
from echo_pipeline.masking.geometry import Fan, iou

#: IoU between the fan through the tags' origin and the fan fitted freely inside the box above which the
#: origin is trusted; below it the tags contradict the pixels and the free fit is used.
ORIGIN_AGREEMENT = 0.985

BOX_FAN = "regions"  # apex at the tags' transducer origin, angles and radii fitted inside the region box
BOX_PIXELS = "regions_pixels"  # the fan fitted freely to the activity inside the region box

SPATIAL_2D = 1
TISSUE = 1
CENTIMETRES = 3
#: TransducerType values (PS3.3 C.8.5.5.1) whose image is a rectangle, which the fan model does not cover.
LINEAR_TRANSDUCERS = frozenset({"LINEAR", "ENDOCAV_LINEAR"})


@dataclass(frozen=True)
class RegionBox:
    """Inclusive pixel bounds of a region."""

    x0: int
    y0: int
    x1: int
    y1: int

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

    def overlaps(self, other: RegionBox) -> bool:
        return self.x0 <= other.x1 and other.x0 <= self.x1 and self.y0 <= other.y1 and other.y0 <= self.y1

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of SequenceOfUltrasoundRegions, as far as masking needs it. Picklable."""

    box: RegionBox
    spatial_format: int | None
    data_type: int | None
    origin: tuple[float, float] | None  # pixel (x, y) of the transducer origin, when the tags define it
    transducer: str | None  # TransducerType of the item, else of the dataset

    @property
    def is_2d_tissue(self) -> bool:
        """2D, and tissue or of no declared data type (RegionDataType is Type 1; the fan fit and the
        plausibility rules still judge what such a region holds)."""
        return self.spatial_format == SPATIAL_2D and self.data_type in (TISSUE, None)

    @property
    def is_linear(self) -> bool:
        return (self.transducer or "").upper() in LINEAR_TRANSDUCERS


def _number(item: Dataset, keyword: str) -> float | None:
    try:
        value = item.get(keyword)
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _origin(item: Dataset, box: RegionBox) -> tuple[float, float] | None:
    """Pixel of physical (0, 0): ReferencePixelX0/Y0 (relative to the box) minus the reference pixel's
    physical value over the pixel size, in both directions; None unless every tag is there, in cm."""
    values = [_number(item, k) for k in ("ReferencePixelX0", "ReferencePixelY0", "ReferencePixelPhysicalValueX",
                                         "ReferencePixelPhysicalValueY", "PhysicalDeltaX", "PhysicalDeltaY",
                                         "PhysicalUnitsXDirection", "PhysicalUnitsYDirection")]
    if any(v is None for v in values):
        return None
    ref_x, ref_y, value_x, value_y, delta_x, delta_y, units_x, units_y = values
    if units_x != CENTIMETRES or units_y != CENTIMETRES or delta_x <= 0 or delta_y <= 0:
        return None
    x, y = box.x0 + ref_x - value_x / delta_x, box.y0 + ref_y - value_y / delta_y
    return (x, y) if math.isfinite(x) and math.isfinite(y) else None


def ultrasound_regions(ds: Dataset) -> list[UltrasoundRegion]:
    """The readable items of SequenceOfUltrasoundRegions (items without integer bounds are skipped)."""
    regions = []
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        bounds = [_number(item, k) for k in ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1",
                                             "RegionLocationMaxY1")]
        if any(v is None for v in bounds):
            continue
        box = RegionBox(*(int(v) for v in bounds))
        spatial, data_type = _number(item, "RegionSpatialFormat"), _number(item, "RegionDataType")
        transducer = item.get("TransducerType") or ds.get("TransducerType")
        regions.append(UltrasoundRegion(box, None if spatial is None else int(spatial),
                                        None if data_type is None else int(data_type), _origin(item, box),
                                        None if transducer is None else str(transducer).strip()))
    return regions


def tissue_region(regions: list[UltrasoundRegion]) -> UltrasoundRegion | None:
    """The largest 2D tissue region (the first of equal ones), or None."""
    tissue = [r for r in regions if r.is_2d_tissue]
    area = lambda r: (r.box.x1 - r.box.x0 + 1) * (r.box.y1 - r.box.y0 + 1)
    return max(tissue, key=area, default=None)


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


def _through(apex: tuple[float, float], fan: Fan) -> Fan:
    """A first guess of the fan with its apex at ``apex`` covering ``fan``: angles to the middle of fan's
    sides, radii to the middle of its arcs."""
    ax, ay = apex
    mid = (fan.min_radius + fan.radius) / 2

    def point(angle: float, r: float) -> tuple[float, float]:
        t = math.radians(angle)
        return fan.apex_x + r * math.sin(t) - ax, fan.apex_y + r * math.cos(t) - ay

    left, right = (math.degrees(math.atan2(*point(a, mid))) for a in (fan.angle_left_deg, fan.angle_right_deg))
    radius = math.hypot(*point(fan.tilt_deg, fan.radius))
    near = math.hypot(*point(fan.tilt_deg, fan.min_radius)) if fan.min_radius > 0 else 0.0
    return Fan(ax, ay, radius, left, right, near)


def sector_from_regions(box: RegionBox, change: np.ndarray, *, origin: tuple[float, float] | None = None
                        ) -> RegionSector | None:
    """The sector inside ``box`` given the clip's activity (from_pixels.activity), both at the analysis scale;
    ``origin``: the tags' transducer origin there. None when nothing inside the box fits a fan."""
    rows, cols = change.shape
    inside = box.mask(rows, cols)
    boxed = np.where(inside, change, 0).astype(change.dtype)
    found = sector_from_activity(boxed)
    if found.fan is None:
        return None
    free_mask = found.fan.mask(rows, cols) & inside
    if origin is not None:
        fan = refine_fan(boxed, _through(origin, found.fan), fixed_apex=True)
        mask = fan.mask(rows, cols) & inside
        if iou(mask, free_mask) >= ORIGIN_AGREEMENT:
            return RegionSector(BOX_FAN, mask, judge(fan, mask, change))
    return RegionSector(BOX_PIXELS, free_mask, judge(found.fan, free_mask, change))


def scaled_origin(origin: tuple[float, float] | None, scale: int) -> tuple[float, float] | None:
    """A full-size pixel position in a frame reduced by ``scale``."""
    if origin is None:
        return None
    offset = (scale - 1) / 2
    return (origin[0] - offset) / scale, (origin[1] - offset) / scale

