"""Sub-pixel refinement of a fan's edges from the activity image.

A first fit from a thresholded blob carries the threshold's bias: JPEG ringing just outside the fan counts
as change at a low threshold, dim speckle just inside does not at a high one. Here each edge is located
without a threshold: the activity is averaged along the edge (a side line, or the far arc) at offsets across
it, and the edge is where that profile falls halfway between its level inside and its level outside.
Averaging along the whole edge makes the profile smooth, and the half level sits between the last pixel
that speckle lights up and the first pixel that only ringing reaches.

The near arc (a truncated apex: the image starts at a minimum radius below a virtual apex) is found the same
way: a radial profile averaged over the central rays gives it to a pixel, the profile across it to a
fraction; where the image's top edge cuts the fan above any near arc, the minimum radius is 0.
"""

from __future__ import annotations

import math
from dataclasses import replace

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
    start = max(0.12 * fan.radius, fan.min_radius + 2 * REACH,
                REACH / max(math.tan(math.radians(fan.opening_deg / 2)), 0.05))
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


def _central_rays(fan: Fan, count: int) -> np.ndarray:
    """Unit directions of ``count`` rays over the middle 60 % of the fan's opening, shape (count, 2)."""
    margin = 0.2 * fan.opening_deg
    phi = np.radians(np.linspace(fan.angle_left_deg + margin, fan.angle_right_deg - margin, count))
    return np.stack([np.sin(phi), np.cos(phi)], axis=1)


def _near_arc_coarse(change: np.ndarray, fan: Fan) -> float:
    """Minimum radius to a pixel or so: where the activity averaged over central rays first reaches half its
    level inside the fan. 0 when the fan is pointed or the image's top edge cuts it above any near arc."""
    rows, cols = change.shape
    rays = _central_rays(fan, 32)
    radii = np.arange(0.0, 0.85 * fan.radius, 0.5, dtype=np.float32)
    map_x = (fan.apex_x + radii[:, None] * rays[None, :, 0]).astype(np.float32)
    map_y = (fan.apex_y + radii[:, None] * rays[None, :, 1]).astype(np.float32)
    valid = (map_x >= 0) & (map_x <= cols - 1) & (map_y >= 0) & (map_y <= rows - 1)
    sampled = cv2.remap(change, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    counted = valid.sum(axis=1)
    usable = counted >= rays.shape[0] // 2
    if usable.sum() < 8:
        return 0.0
    profile = np.where(usable, (sampled * valid).sum(axis=1) / np.maximum(counted, 1), np.nan)
    first = int(np.argmax(usable))
    level = float(np.nanpercentile(profile, 75))
    if level < 2.0:
        return 0.0
    reached = np.flatnonzero(usable & (profile >= level / 2))
    if reached.size == 0:
        return 0.0
    edge = int(reached[0])
    if edge - first <= 2:  # active from the first usable radius: pointed, or cut by the image's top
        return 0.0
    a, b = profile[edge - 1], profile[edge]
    return float(radii[edge - 1] + (level / 2 - a) / max(b - a, 1e-6) * (radii[1] - radii[0]))


def _near_arc(change: np.ndarray, fan: Fan) -> float:
    """Refined minimum radius (0 for a pointed fan or one whose top the image cuts)."""
    coarse = _near_arc_coarse(change, fan)
    if coarse < REACH + 2:  # too close to the apex for a profile across it; a few pixels at the tip at most
        return 0.0 if coarse < 0.03 * fan.radius else coarse
    normals = -_central_rays(fan, max(_MIN_POINTS, int(math.radians(0.6 * fan.opening_deg) * coarse)))
    points = np.array([fan.apex_x, fan.apex_y]) - coarse * normals
    profile = _profile(change, points, normals)
    shift = None if profile is None else _crossing(profile)
    return coarse if shift is None else max(0.0, coarse - shift)


def refine_fan(change: np.ndarray, fan: Fan, *, fixed_apex: bool = False) -> Fan:
    """``fan`` with sides, near arc and far arc moved to where the activity ``change`` (uint8 or float) has
    its edges. With ``fixed_apex`` (the apex is known, from the region tags) only the angles and radii move.

    Each part that cannot be measured (cut off by the image, no contrast within REACH pixels) keeps its
    coarse value, so the result is never worse-founded than the input.
    """
    change = np.asarray(change, dtype=np.float32)
    inside = change[fan.mask(*change.shape)]
    if inside.size:
        # Cap activity at the fan's typical level: a bright moving wall that runs along an edge a few pixels
        # inside would otherwise make its own step in the profile and pull the edge inward.
        change = np.minimum(change, max(float(np.median(inside)), 1.0))
    fan = _with_near_arc(change, fan)  # the sides are measured below it
    left = _side(change, fan, fan.angle_left_deg, -1.0)
    right = _side(change, fan, fan.angle_right_deg, +1.0)
    if fixed_apex:
        apex = np.array([fan.apex_x, fan.apex_y])
        angles = [default if side is None else _mean_angle(apex, side)
                  for side, default in ((left, fan.angle_left_deg), (right, fan.angle_right_deg))]
        if angles[1] > angles[0]:
            fan = replace(fan, angle_left_deg=angles[0], angle_right_deg=angles[1])
    elif left is not None and right is not None:
        apex = _intersect(*left, *right)
        if apex is not None:
            angles = [math.degrees(math.atan2(*(p2 - p1))) for p1, p2 in (left, right)]
            if angles[1] > angles[0]:
                fan = Fan(float(apex[0]), float(apex[1]), fan.radius, angles[0], angles[1], fan.min_radius)
    fan = _with_near_arc(change, fan)
    radius = _far_arc(change, fan)
    if radius is not None and radius > fan.min_radius:
        fan = replace(fan, radius=radius)
    return fan


def _mean_angle(apex: np.ndarray, anchors: tuple[np.ndarray, np.ndarray]) -> float:
    """The side's angle through a known apex: the line through it closest to the two anchor points (least
    squares on their perpendicular distances, r * sin(angle difference), so the farther anchor counts more)."""
    offsets = [p - apex for p in anchors]
    weights = np.array([float(o @ o) for o in offsets])
    angles = np.array([math.degrees(math.atan2(*o)) for o in offsets])
    return float((weights * angles).sum() / weights.sum())


def _with_near_arc(change: np.ndarray, fan: Fan) -> Fan:
    near = _near_arc(change, fan)
    return replace(fan, min_radius=near if near < 0.7 * fan.radius else 0.0)
