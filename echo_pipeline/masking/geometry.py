"""The scanning sector as a fan: apex, radius and the angles of its two straight sides.

Angles are measured from straight down (the beam's axis for a transducer at the top of the image), positive
towards +x (the image's right), as ``atan2(dx, dy)`` of a pixel centre relative to the apex. A pixel belongs
to the fan when its centre lies within ``r <= radius`` and ``angle_left_deg <= theta <= angle_right_deg``.
The fan always reaches its apex: where a probe's image starts below it (a curved top), the small blank
region above is included; it holds no image and nothing is burned in between the fan's sides.
"""

from __future__ import annotations

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

    @property
    def opening_deg(self) -> float:
        return self.angle_right_deg - self.angle_left_deg

    @property
    def tilt_deg(self) -> float:
        """Angle of the fan's axis from straight down; 0 for a symmetric fan."""
        return (self.angle_left_deg + self.angle_right_deg) / 2

    def mask(self, rows: int, cols: int) -> np.ndarray:
        """bool (rows, cols): pixels whose centre lies inside the fan (clipped to the image)."""
        y, x = np.ogrid[0:rows, 0:cols]
        dx = x.astype(np.float64) - self.apex_x
        dy = y.astype(np.float64) - self.apex_y
        r2 = dx * dx + dy * dy
        theta = np.degrees(np.arctan2(dx, dy))
        return (r2 <= self.radius**2) & (theta >= self.angle_left_deg) & (theta <= self.angle_right_deg)

    def scaled(self, scale: int) -> Fan:
        """This fan, found in a frame reduced by ``scale``, in the coordinates of the full-size frame (a
        reduced pixel j covers full-size pixels j*scale … j*scale + scale - 1)."""
        if scale == 1:
            return self
        offset = (scale - 1) / 2
        return Fan(self.apex_x * scale + offset, self.apex_y * scale + offset, self.radius * scale,
                   self.angle_left_deg, self.angle_right_deg)

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
