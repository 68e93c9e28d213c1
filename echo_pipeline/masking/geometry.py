"""The scanning sector as a fan: apex, far radius, near (minimum) radius and the angles of its two sides.

Angles are measured from straight down (the beam's axis for a transducer at the top of the image), positive
towards +x (the image's right), as ``atan2(dx, dy)`` of a pixel centre relative to the apex. A pixel belongs
to the fan when its centre lies within ``min_radius <= r <= radius`` and
``angle_left_deg <= theta <= angle_right_deg``.

One model covers the sectors echo scanners draw:
- a pointed fan (``min_radius`` 0, apex in the image's top rows);
- a phased-array sector with a *virtual apex*: the sides meet above the image (negative ``apex_y``) and the
  image starts at an arc of radius ``min_radius`` (a truncated apex);
- a steered sector: left and right angles are independent, so the axis may lean;
- a curved (convex) array's image: the same shape, with the centre of curvature as the apex and the probe's
  face as the near arc.
A linear probe's rectangle is not a fan; it is quarantined (regions.py, plausibility.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Fan:
    """A fan-shaped sector in pixel coordinates of the source image (x = column, y = row, pixel centres)."""

    apex_x: float
    apex_y: float
    radius: float
    angle_left_deg: float
    angle_right_deg: float
    min_radius: float = 0.0

    @property
    def opening_deg(self) -> float:
        return self.angle_right_deg - self.angle_left_deg

    @property
    def tilt_deg(self) -> float:
        """Angle of the fan's axis from straight down; 0 for a symmetric fan."""
        return (self.angle_left_deg + self.angle_right_deg) / 2

    @property
    def top_y(self) -> float:
        """Row of the fan's highest point: the apex of a pointed fan; otherwise the ends of the near arc (the
        arc is highest where it meets the sides, lowest on the axis)."""
        ends = min(math.cos(math.radians(a)) for a in (self.angle_left_deg, self.angle_right_deg))
        return self.apex_y + self.min_radius * ends

    def mask(self, rows: int, cols: int) -> np.ndarray:
        """bool (rows, cols): pixels whose centre lies inside the fan (clipped to the image)."""
        y, x = np.ogrid[0:rows, 0:cols]
        dx = x.astype(np.float64) - self.apex_x
        dy = y.astype(np.float64) - self.apex_y
        r2 = dx * dx + dy * dy
        theta = np.degrees(np.arctan2(dx, dy))
        inside = (r2 <= self.radius**2) & (theta >= self.angle_left_deg) & (theta <= self.angle_right_deg)
        return inside & (r2 >= self.min_radius**2) if self.min_radius > 0 else inside

    def scaled(self, scale: int) -> Fan:
        """This fan, found in a frame reduced by ``scale``, in the coordinates of the full-size frame (a
        reduced pixel j covers full-size pixels j*scale … j*scale + scale - 1)."""
        if scale == 1:
            return self
        offset = (scale - 1) / 2
        return Fan(self.apex_x * scale + offset, self.apex_y * scale + offset, self.radius * scale,
                   self.angle_left_deg, self.angle_right_deg, self.min_radius * scale)

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) inclusive bounds of the True pixels, or None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
