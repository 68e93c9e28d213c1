"""What the clip's activity says about a sector: its moving pieces, and how well a fan explains them.

Shared by both methods (from_pixels.py, regions.py) and judged by plausibility.py: a fan is well founded when
the moving pieces inside it fill it (``fit_iou``), when little motion lies outside it
(``outside_fraction``) and when every angular slice of it moves somewhere (``angular_coverage``: a black wedge
inside the fitted fan means it spans two images, or an image and a gap).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from echo_pipeline.masking.geometry import Fan, iou

#: Change (grey levels, 0-255) that counts as activity. The blob only has to find the fan roughly:
#: refine_fan (edges.py) then places its edges without any threshold.
MIN_CHANGE = 12
#: Fraction of changed pixels in the window around a pixel for it to count as inside the sector.
DENSITY = 0.5
#: Share of an active piece's pixels inside the first fitted fan for it to count as part of the sector.
INSIDE_SHARE = 0.9
#: Pieces of at least this share of the image are candidates for the sector whatever their position.
MIN_PIECE = 0.002
#: Angular slices a fan is cut into to measure angular_coverage.
ANGULAR_SLICES = 12


@dataclass(frozen=True)
class Sector:
    """A fitted fan (None when no fan fits) and its evidence: the blob of active pieces inside it
    (convex-filled; all False when nothing moved), IoU(fan, blob) (``fit_iou``, 0 without a fan), the share
    of active pixels (pieces of at least MIN_PIECE of the image) outside the fan, and the smallest share of
    active pixels over ANGULAR_SLICES equal slices of the fan."""

    fan: Fan | None
    blob: np.ndarray
    fit_iou: float
    outside_fraction: float
    angular_coverage: float


def window_size(rows: int, cols: int) -> int:
    """Odd side of the density window: ~3 % of the image's short side, so lines and dots narrower than
    about half of it (ECG traces and cursors, text strokes) cannot reach half density."""
    return max(7, round(0.03 * min(rows, cols))) | 1


def active_regions(change: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, areas): connected regions where most pixels changed; ``areas[i]`` is region i's pixel count
    (region 0 is the background).

    A pixel "changed" when its activity reaches MIN_CHANGE; it is active when at least half of the pixels in
    the window around it changed, which drops lines and dots narrower than about half the window (ECG
    traces and cursors, text strokes) and keeps a straight boundary where it is.
    """
    changed = (change >= MIN_CHANGE).astype(np.float32)
    k = window_size(*change.shape)
    density = cv2.boxFilter(changed, -1, (k, k), borderType=cv2.BORDER_CONSTANT)
    _, labels, stats, _ = cv2.connectedComponentsWithStats((density >= DENSITY).astype(np.uint8), connectivity=8)
    return labels, stats[:, cv2.CC_STAT_AREA]


def convex_blob(labels: np.ndarray, regions: list[int]) -> np.ndarray:
    """bool: the convex hull of the union of ``regions``, filled."""
    blob = np.zeros(labels.shape, np.uint8)
    points = cv2.findNonZero(np.isin(labels, regions).astype(np.uint8))
    if points is not None:
        cv2.fillConvexPoly(blob, cv2.convexHull(points), 1)
    return blob.astype(bool)


def judge(fan: Fan, mask: np.ndarray, change: np.ndarray) -> Sector:
    """The evidence in the activity ``change`` for a sector ``mask`` (``fan``, possibly clipped)."""
    labels, areas = active_regions(change)
    if len(areas) < 2:
        return Sector(fan, np.zeros(change.shape, bool), 0.0, 0.0, 0.0)
    return judge_pieces(fan, mask, labels, areas)


def judge_pieces(fan: Fan, mask: np.ndarray, labels: np.ndarray, areas: np.ndarray) -> Sector:
    """``judge`` given the active pieces (``active_regions``)."""
    inside = np.bincount(labels[mask], minlength=len(areas))
    members = [i for i in range(1, len(areas)) if inside[i] >= INSIDE_SHARE * areas[i]]
    blob = convex_blob(labels, members) if members else np.zeros(labels.shape, bool)
    substantial = areas[1:] >= MIN_PIECE * labels.size
    total = float(areas[1:][substantial].sum())
    outside = float((areas[1:] - inside[1:])[substantial].sum()) / total if total else 0.0
    return Sector(fan, blob, iou(mask, blob) if members else 0.0, outside, angular_coverage(fan, mask, labels > 0))


def angular_coverage(fan: Fan, mask: np.ndarray, active: np.ndarray) -> float:
    """The smallest share of active pixels over ANGULAR_SLICES equal angular slices of the fan's mask."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0.0
    theta = np.degrees(np.arctan2(xs - fan.apex_x, ys - fan.apex_y))
    width = max(fan.opening_deg, 1e-6) / ANGULAR_SLICES
    slices = np.clip(((theta - fan.angle_left_deg) / width).astype(np.int64), 0, ANGULAR_SLICES - 1)
    pixels = np.bincount(slices, minlength=ANGULAR_SLICES)
    moving = np.bincount(slices, weights=active[ys, xs], minlength=ANGULAR_SLICES)
    filled = pixels > 0
    return float((moving[filled] / pixels[filled]).min()) if filled.any() else 0.0
