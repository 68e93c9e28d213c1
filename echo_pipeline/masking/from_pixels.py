"""Find the sector from the pixels: it is where the image changes over time.

Inside the fan, speckle and the beating heart change every frame; burned-in text, the colour bar and the ECG
trace do not (only a small ECG cursor moves, and it is thin). So:

1. activity = per pixel, the largest change over a few frames (max minus min, over the colour channels);
2. threshold it, then a majority filter (a pixel is active when most of its window changed) removes thin
   structures, as a morphological opening would, but without moving straight boundaries: the ECG cursor's
   track, JPEG ringing around text, single noisy pixels;
3. take connected active pieces (the largest, or more: a dark band can cut the fan in pieces; see
   sector_from_activity) and fill them by their convex hull (dark blood pools inside the fan change little
   and leave holes);
4. fit a fan to that blob: straight left and right sides (lines through the apex, which may lie above the
   image), a far arc and, where the image starts below the apex, a near arc; then place those edges on the
   activity itself (edges.refine_fan). The fitted fan, not the blob, is the mask:
   it is exact at the edges where the blob is ragged, and its parameters are what plausibility judges.
"""

from __future__ import annotations

import math

import numpy as np

from echo_pipeline.masking.edges import refine_fan
from echo_pipeline.masking.evidence import (
    INSIDE_SHARE,
    MIN_PIECE,
    Sector,
    active_regions,
    convex_blob,
    judge_pieces,
)
from echo_pipeline.masking.geometry import Fan, iou

#: Frames sampled evenly over the clip to measure activity; more frames fill dark pixels of the fan better.
SAMPLE_FRAMES = 16


def sample_indices(frame_count: int, samples: int = SAMPLE_FRAMES) -> list[int]:
    """Up to ``samples`` frame indices spread evenly over the clip (all frames of a short clip)."""
    if frame_count <= samples:
        return list(range(frame_count))
    return sorted({round(float(i)) for i in np.linspace(0, frame_count - 1, samples)})


def activity(frames: np.ndarray) -> np.ndarray:
    """uint8 (rows, cols): the largest per-channel change over ``frames`` (N, rows, cols, 3 or 1)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise ValueError(f"need at least 2 frames shaped (N, rows, cols[, channels]); got {frames.shape}")
    change = frames.max(axis=0) - frames.min(axis=0)  # uint8 arithmetic is safe: max >= min
    return change.max(axis=2)


def _edges(blob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the blob and, per row, its first and last column (the blob is convex: one run per row)."""
    ys = np.flatnonzero(blob.any(axis=1))
    sub = blob[ys]
    left = sub.argmax(axis=1)
    right = blob.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    return ys, left, right


def _fit_line(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float] | None:
    """x = a + b*y by least squares, refitted once without points more than 1.5 px off (hull corners)."""
    if ys.size < 4:
        return None
    b, a = np.polyfit(ys, xs, 1)
    keep = np.abs(xs - (a + b * ys)) <= 1.5
    if keep.sum() >= 4 and not keep.all():
        b, a = np.polyfit(ys[keep], xs[keep], 1)
    return float(a), float(b)


def _sides(blob, ys, left, right, y_from, y_to_left, y_to_right):
    """Left and right side lines fitted on the given row ranges, skipping rows clipped by the image."""
    cols = blob.shape[1]
    lsel = (ys >= y_from) & (ys <= y_to_left) & (left > 0)
    rsel = (ys >= y_from) & (ys <= y_to_right) & (right < cols - 1)
    # A pixel is inside when its centre is right of the side line: the line lies half a pixel outside.
    return _fit_line(ys[lsel], left[lsel] - 0.5), _fit_line(ys[rsel], right[rsel] + 0.5)


def _far_radius(blob: np.ndarray, apex_x: float, apex_y: float, lo: float, hi: float) -> float:
    """Median distance from the apex to the bottom edge of the blob over columns well inside the fan."""
    rows, cols = blob.shape
    xs = np.arange(cols)
    has = blob.any(axis=0)
    bottom = rows - 1 - blob[::-1].argmax(axis=0)
    angle = np.degrees(np.arctan2(xs - apex_x, bottom + 0.5 - apex_y))
    central = has & (angle >= 0.7 * lo) & (angle <= 0.7 * hi) & (bottom < rows - 1)
    if not central.any():  # the far arc is cut off by the image: any radius reaching the blob's bottom will do
        yy, xx = np.nonzero(blob)
        return float(np.hypot(xx - apex_x, yy - apex_y).max()) + 0.5
    return float(np.median(np.hypot(xs[central] - apex_x, bottom[central] + 0.5 - apex_y)))


def fit_fan(blob: np.ndarray) -> Fan | None:
    """The fan that best explains a convex blob (coarse: edges within a pixel or two); None when no fan fits
    (fewer than a handful of rows, sides that do not converge above the blob)."""
    if not blob.any():
        return None
    ys, left, right = _edges(blob)
    top, height = int(ys[0]), int(ys[-1] - ys[0] + 1)
    if height < 10:
        return None
    # First pass: the upper part of the blob, where both sides are straight for any opening up to ~120 deg.
    lines = _sides(blob, ys, left, right, top + 0.08 * height, top + 0.45 * height, top + 0.45 * height)
    fan = _fan_from_lines(blob, *lines)
    if fan is None:
        return None
    # Second pass: each side down to just above where the far arc begins on that side.
    ends = [fan.apex_y + 0.95 * fan.radius * math.cos(math.radians(a)) for a in (fan.angle_left_deg, fan.angle_right_deg)]
    start = max(top, fan.apex_y) + 0.05 * (ends[0] + ends[1] - 2 * fan.apex_y) / 2
    refined = _fan_from_lines(blob, *_sides(blob, ys, left, right, start, ends[0], ends[1]))
    return refined or fan


def _fan_from_lines(blob, left_line, right_line) -> Fan | None:
    if left_line is None or right_line is None:
        return None
    (al, bl), (ar, br) = left_line, right_line
    if br - bl <= 1e-3:  # the sides do not open downward
        return None
    apex_y = (al - ar) / (br - bl)
    apex_x = al + bl * apex_y
    lo, hi = math.degrees(math.atan(bl)), math.degrees(math.atan(br))
    radius = _far_radius(blob, apex_x, apex_y, lo, hi)
    if not np.isfinite(radius) or radius <= 0:
        return None
    return Fan(apex_x, apex_y, radius, lo, hi)


def sector_from_activity(change: np.ndarray, *, within: np.ndarray | None = None) -> Sector:
    """Fit the sector to an activity image (``activity``), optionally only inside ``within``.

    A dark band across the fan (a pericardial effusion, a blood pool) can cut the active area in pieces,
    and changing text makes pieces outside it. So fans are fitted to a few candidate sets of pieces (the
    largest; the largest plus every piece inside the fan fitted to it; every piece of at least
    MIN_PIECE of the image) and the fan that best matches all active pixels (IoU) wins.
    """
    if within is not None:
        change = np.where(within, change, 0).astype(change.dtype)
    labels, areas = active_regions(change)
    if len(areas) < 2:
        return Sector(None, np.zeros(change.shape, bool), 0.0, 0.0, 0.0)
    active = labels > 0
    largest = 1 + int(np.argmax(areas[1:]))
    candidates = [[largest]]
    first = _fit_and_refine(change, convex_blob(labels, [largest]))
    if first is not None:
        inside = np.bincount(labels[first.mask(*change.shape)], minlength=len(areas))
        candidates.append([i for i in range(1, len(areas)) if i == largest or inside[i] >= INSIDE_SHARE * areas[i]])
    candidates.append([i for i in range(1, len(areas)) if i == largest or areas[i] >= MIN_PIECE * labels.size])
    best, best_score = None, -1.0
    for regions in {tuple(c) for c in candidates}:
        fan = first if list(regions) == [largest] else _fit_and_refine(change, convex_blob(labels, list(regions)))
        score = -1.0 if fan is None else iou(fan.mask(*change.shape), active)
        if score > best_score:
            best, best_score = fan, score
    if best is None:
        return Sector(None, convex_blob(labels, [largest]), 0.0, 1.0, 0.0)
    return judge_pieces(best, best.mask(*change.shape), labels, areas)


def _fit_and_refine(change: np.ndarray, blob: np.ndarray) -> Fan | None:
    coarse = fit_fan(blob)
    return None if coarse is None else refine_fan(change, coarse)


def sector_from_pixels(frames: np.ndarray, *, within: np.ndarray | None = None) -> Sector:
    """Fit the sector to the activity of ``frames`` (N, rows, cols, 3), optionally only inside ``within``."""
    return sector_from_activity(activity(frames), within=within)
