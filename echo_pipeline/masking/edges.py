"""Sub-pixel refinement of a fan's edges from the activity image.

A first fit from a thresholded blob carries the threshold's bias: JPEG ringing just outside the fan counts
as change at a low threshold, dim speckle just inside does not at a high one. Here each edge is located
without a threshold: the activity is averaged along the edge (a side line, or the far arc) at offsets across
it, and the edge is where that profile falls halfway between its level inside and its level outside.
Averaging along the whole edge makes the profile smooth, and the half level sits between the last pixel
that speckle lights up and the first pixel that only ringing reaches.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from echo_pipeline.masking.geometry import Fan

#: Offsets (pixels) across an edge at which the profile is sampled; the coarse fit must be within this.
REACH = 8.0
_OFFSETS = np.arange(-REACH, REACH + 1e-9, 0.25, dtype=np.float32)
_MIN_POINTS = 12


def _profile(change: np.ndarray, points: np.ndarray, normals: np.ndarray) -> np.ndarray | None:
    """Mean activity at ``points + offset * normals`` for each offset (bilinear), over points whose whole
    span lies in the image; None when too few points do."""
    rows, cols = change.shape
    ends = [points + REACH * normals, points - REACH * normals]
    ok = np.all([(e[:, 0] >= 0) & (e[:, 0] <= cols - 1) & (e[:, 1] >= 0) & (e[:, 1] <= rows - 1) for e in ends], axis=0)
    if ok.sum() < _MIN_POINTS:
        return None
    p, n = points[ok], normals[ok]
    map_x = (p[None, :, 0] + _OFFSETS[:, None] * n[None, :, 0]).astype(np.float32)
    map_y = (p[None, :, 1] + _OFFSETS[:, None] * n[None, :, 1]).astype(np.float32)
    sampled = cv2.remap(change, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.mean(axis=1)


def _crossing(profile: np.ndarray) -> float | None:
    """Offset (pixels, positive outward) where the profile falls to half-way between inside and outside."""
    quarter = len(profile) // 4
    inside, outside = float(np.median(profile[:quarter])), float(np.median(profile[-quarter:]))
    if inside - outside < 2.0:  # no edge in reach
        return None
    half = (inside + outside) / 2
    above = np.flatnonzero(profile >= half)
    last = int(above[-1])  # scan from the outside in: the outermost sample still at the inside level
    if last == len(profile) - 1:
        return None
    a, b = profile[last], profile[last + 1]
    return float(_OFFSETS[last] + (a - half) / (a - b) * (_OFFSETS[1] - _OFFSETS[0]))


def _side(change: np.ndarray, fan: Fan, angle_deg: float, outward: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Two points on the refined side line at ``angle_deg`` (outward = -1 for the left side, +1 right)."""
    t = math.radians(angle_deg)
    direction = np.array([math.sin(t), math.cos(t)])
    normal = outward * np.array([math.cos(t), -math.sin(t)])
    start = max(0.12 * fan.radius, REACH / max(math.tan(math.radians(fan.opening_deg / 2)), 0.05))
    stop = fan.radius - 2 * REACH
    if stop - start < 20:
        return None
    apex = np.array([fan.apex_x, fan.apex_y])
    anchors = []
    for lo, hi in ((start, (start + stop) / 2), ((start + stop) / 2, stop)):
        s = np.linspace(lo, hi, max(_MIN_POINTS, int(hi - lo)))
        points = apex + s[:, None] * direction
        profile = _profile(change, points, np.broadcast_to(normal, points.shape))
        shift = None if profile is None else _crossing(profile)
        if shift is None:
            return None
        anchors.append(apex + (lo + hi) / 2 * direction + shift * normal)
    return anchors[0], anchors[1]


def _intersect(p1, p2, q1, q2) -> np.ndarray | None:
    d1, d2 = p2 - p1, q2 - q1
    det = d1[0] * -d2[1] - d1[1] * -d2[0]
    if abs(det) < 1e-9:
        return None
    t = ((q1 - p1)[0] * -d2[1] - (q1 - p1)[1] * -d2[0]) / det
    return p1 + t * d1


def _far_arc(change: np.ndarray, fan: Fan) -> float | None:
    """Refined radius from the profile across the far arc, away from the corners."""
    margin = math.degrees(2 * REACH / fan.radius)
    lo, hi = fan.angle_left_deg + margin, fan.angle_right_deg - margin
    if hi - lo < 5:
        return None
    phi = np.radians(np.linspace(lo, hi, max(_MIN_POINTS, int(math.radians(hi - lo) * fan.radius))))
    normals = np.stack([np.sin(phi), np.cos(phi)], axis=1)
    points = np.array([fan.apex_x, fan.apex_y]) + fan.radius * normals
    profile = _profile(change, points, normals)
    shift = None if profile is None else _crossing(profile)
    return None if shift is None else fan.radius + shift


def refine_fan(change: np.ndarray, fan: Fan) -> Fan:
    """``fan`` with sides and far arc moved to where the activity ``change`` (uint8 or float) has its edges.

    Each part that cannot be measured (cut off by the image, no contrast within REACH pixels) keeps its
    coarse value, so the result is never worse-founded than the input.
    """
    change = np.asarray(change, dtype=np.float32)
    inside = change[fan.mask(*change.shape)]
    if inside.size:
        # Cap activity at the fan's typical level: a bright moving wall that runs along an edge a few pixels
        # inside would otherwise make its own step in the profile and pull the edge inward.
        change = np.minimum(change, max(float(np.median(inside)), 1.0))
    left = _side(change, fan, fan.angle_left_deg, -1.0)
    right = _side(change, fan, fan.angle_right_deg, +1.0)
    if left is not None and right is not None:
        apex = _intersect(*left, *right)
        if apex is not None:
            angles = [math.degrees(math.atan2(*(p2 - p1))) for p1, p2 in (left, right)]
            if angles[1] > angles[0]:
                fan = Fan(float(apex[0]), float(apex[1]), fan.radius, angles[0], angles[1])
    radius = _far_arc(change, fan)
    if radius is not None and radius > 0:
        fan = Fan(fan.apex_x, fan.apex_y, radius, fan.angle_left_deg, fan.angle_right_deg)
    return fan
