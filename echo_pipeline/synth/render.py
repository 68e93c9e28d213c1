"""Draw a clip's frames: a speckled fan-shaped sector with a beating heart, burned-in text and an ECG trace.

Per clip, everything that does not move is computed once (sector mask, depth gain, a speckle bank, the
text/ECG overlay); per frame only the heart's primitives are drawn (cv2), blurred, multiplied by a shifted
window of the speckle bank and composed with the overlay. The text and the ECG trace are identical in every
frame (only the small ECG cursor moves), the sector content changes every frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from echo_pipeline.synth.anatomy import (
    BACKGROUND,
    COLOUR_TARGET,
    LAYOUTS,
    HeartParams,
    Prim,
    cardiac_state,
    point_transform,
)

_SHIFT = 4  # cv2 sub-pixel bits: coordinates are passed as integers * 16
_SPECKLE_PAD = 48
_PIVOT = (0.0, 0.5)


@dataclass(frozen=True)
class SectorGeometry:
    """The fan in pixels: apex (may lie above the image: a virtual apex), far radius, the angles of its two
    sides from straight down (independent: a steered sector leans), and the near arc's radius (0: pointed)."""

    rows: int
    cols: int
    apex_x: float
    apex_y: float
    radius: float
    angle_left_deg: float
    angle_right_deg: float
    min_radius: float = 0.0

    @property
    def half_angle_deg(self) -> float:
        return (self.angle_right_deg - self.angle_left_deg) / 2

    @property
    def axis_deg(self) -> float:
        """The sector's axis from straight down (the steering angle)."""
        return (self.angle_right_deg + self.angle_left_deg) / 2

    def polar(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel (radius in R units, angle from straight down in degrees) of the pixel centres (read-only)."""
        return _polar(self)

    def inside(self, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """bool: which (r, theta) of ``polar`` lie in the sector."""
        return ((r <= 1.0) & (r >= self.min_radius / self.radius) & (theta >= self.angle_left_deg)
                & (theta <= self.angle_right_deg))

    def mask(self) -> np.ndarray:
        """uint8 0/255 mask of the sector (the ground truth the masking stage should recover)."""
        return np.where(self.inside(*self.polar()), 255, 0).astype(np.uint8)

    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) inclusive pixel bounds of the sector."""
        ys, xs = np.nonzero(self.mask())
        return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@functools.lru_cache(maxsize=4)
def _polar(g: SectorGeometry) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0 : g.rows, 0 : g.cols].astype(np.float32)
    dx, dy = x - g.apex_x, y - g.apex_y
    r, theta = np.hypot(dx, dy) / g.radius, np.degrees(np.arctan2(dx, dy))
    r.flags.writeable = theta.flags.writeable = False
    return r, theta


@dataclass(frozen=True)
class ClipDrawing:
    """Everything needed to draw one clip; built by the cohort planner, picklable for worker processes."""

    geometry: SectorGeometry
    view: str
    is_colour: bool
    monochrome: bool
    heart: HeartParams
    frames: int
    fps: int
    heart_rate: float
    phase0: float  # seconds between the last R wave and frame 0
    placement: tuple[float, float, float, float]  # (du, dv, rotate_deg, scale) jitter of the heart
    tint: tuple[float, float, float]
    text_left: tuple[str, ...]
    text_right: tuple[str, ...]
    noise_seed: int


def frame_primitives(d: ClipDrawing, index: int) -> list[Prim]:
    """The heart's primitives for frame ``index`` in sector units, before the clip's placement jitter."""
    c, mitral_open, _ = cardiac_state(d.phase0 + index / d.fps, d.heart_rate)
    return LAYOUTS[d.view](d.heart, c, mitral_open)


def _face(g: SectorGeometry) -> tuple[float, float, float]:
    """(x, y, depth): where sector units start (v = 0: the near arc on the axis, the apex of a pointed fan)
    and the pixels one unit spans (the imaged depth, near arc to far arc)."""
    axis = math.radians(g.axis_deg)
    return g.apex_x + g.min_radius * math.sin(axis), g.apex_y + g.min_radius * math.cos(axis), g.radius - g.min_radius


def aimed_placement(d: ClipDrawing) -> tuple[float, float, float, float]:
    """The clip's placement jitter with the heart turned onto the sector's axis: a sonographer steers the beam
    at the heart, so a steered sector still has the heart down its middle (the heart turns about the near-arc
    point, by the steering angle). (du, dv, rotate_deg, scale) about `_PIVOT`, as `anatomy.transform` takes them."""
    du, dv, rot, scale = d.placement
    axis = math.radians(d.geometry.axis_deg)
    # Turning about the face instead of the pivot (0, 0.5) moves the pivot to (0.5 sin, 0.5 cos).
    return du + _PIVOT[1] * math.sin(axis), dv + _PIVOT[1] * (math.cos(axis) - 1), rot - d.geometry.axis_deg, scale


def _pixel_map(d: ClipDrawing) -> tuple[float, float, float, float, float, float]:
    """The placement (`aimed_placement`) and the sector-units-to-pixels map as one similarity transform, in cv2
    shift units: (cos*k, sin*k, x0, y0, k, rotate_deg) with pixel*16 = (x0, y0) + R(rotate) @ (u, v) * k."""
    g = d.geometry
    du, dv, rot, scale = aimed_placement(d)
    face_x, face_y, depth = _face(g)
    k = float(1 << _SHIFT) * depth * scale
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    # The pivot stays in place under rotation and scaling; then the heart is shifted by (du, dv).
    px, py = _PIVOT
    x0 = (face_x + depth * (px + du)) * (1 << _SHIFT) - (c * px - s * py) * k
    y0 = (face_y + depth * (py + dv)) * (1 << _SHIFT) - (s * px + c * py) * k
    return c * k, s * k, x0, y0, k, rot


def _draw(canvas: np.ndarray, prims: list[Prim], pmap: tuple, value=None, tags=()) -> None:
    """Draw primitives onto ``canvas`` (levels, or ``value`` for prims whose tag is in ``tags``, else 0)."""
    ck, sk, x0, y0, k, rot = pmap
    px = k / (1 << _SHIFT)  # pixels per sector unit
    for p in prims:
        level = p.level if value is None else (value if p.tag in tags else 0)
        if p.kind == "line":
            pts = np.array([[x0 + ck * u - sk * v, y0 + sk * u + ck * v] for u, v in p.geom], dtype=np.int32)
            cv2.polylines(canvas, [pts], False, level, max(1, round(p.width * px)), cv2.LINE_8, _SHIFT)
            continue
        u, v, a, b, ang = p.geom
        centre = (round(x0 + ck * u - sk * v), round(y0 + sk * u + ck * v))
        thickness = -1 if p.kind == "ellipse" else max(1, round(p.width * px))
        cv2.ellipse(canvas, centre, (max(1, round(a * k)), max(1, round(b * k))), ang + rot, 0, 360, level,
                    thickness, cv2.LINE_8, _SHIFT)


def lv_cavity_mask(d: ClipDrawing, index: int) -> np.ndarray:
    """Boolean mask of the LV cavity as drawn in frame ``index`` (for checks: LVEF = its area change)."""
    canvas = np.zeros((d.geometry.rows, d.geometry.cols), np.uint8)
    _draw(canvas, [p for p in frame_primitives(d, index) if p.tag == "lv"], _pixel_map(d), value=1, tags=("lv",))
    return canvas > 0


def _overlay(d: ClipDrawing, sector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static burned-in overlay (text, ECG trace, colour bar): RGB image, its mask, and the ECG's y per column."""
    g = d.geometry
    img = np.zeros((g.rows, g.cols, 3), np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, line in enumerate(d.text_left):
        cv2.putText(img, line, (4, 11 + 11 * i), font, 0.32, (230, 230, 230), 1, cv2.LINE_AA)
    for i, line in enumerate(d.text_right):
        (w, _), _ = cv2.getTextSize(line, font, 0.32, 1)
        cv2.putText(img, line, (g.cols - 4 - w, 11 + 11 * i), font, 0.32, (230, 230, 200), 1, cv2.LINE_AA)
    if d.is_colour:  # velocity scale bar, red (towards) over blue (away)
        ramp = np.linspace(1, -1, 60)
        for j, v in enumerate(ramp):
            colour = (int(255 * v), int(40 * v * v), 0) if v > 0 else (0, int(40 * v * v), int(-255 * v))
            img[70 + j, g.cols - 14 : g.cols - 7] = colour
    # ECG: P-QRS-T complexes over the clip's duration, drawn across the full width below the sector.
    duration = d.frames / d.fps * 1.05
    t = np.linspace(0, duration, g.cols)
    tau = (t + d.phase0) % (60.0 / d.heart_rate)
    cycle = 60.0 / d.heart_rate
    wave = np.zeros_like(t)
    for centre, amp, width in ((cycle - 0.16, 0.12, 0.025), (-0.03, -0.12, 0.01), (0.0, 1.0, 0.012),
                               (0.03, -0.25, 0.012), (0.26, 0.28, 0.05), (cycle - 0.03, -0.12, 0.01),
                               (cycle, 1.0, 0.012)):
        wave += amp * np.exp(-0.5 * ((tau - centre) / width) ** 2)
    base = g.rows - 8
    ecg_y = np.round(base - 12 * wave).astype(np.int32)
    pts = np.stack([np.arange(g.cols), ecg_y], axis=1).astype(np.int32)
    cv2.polylines(img, [pts], False, (40, 210, 90), 1, cv2.LINE_8)
    img[sector > 0] = 0  # nothing burned in may fall inside the fan
    return img, img.any(axis=2), ecg_y


def _static_maps(d: ClipDrawing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gain map in 0-255 units, zero outside the fan; background tissue map; speckle bank) for a clip."""
    g = d.geometry
    rng = np.random.default_rng(d.noise_seed)
    r, theta = g.polar()
    inside = g.inside(r, theta)
    lateral = 1 - 0.25 * np.clip(np.abs(theta - g.axis_deg) / g.half_angle_deg, 0, 1) ** 4
    gain = np.where(inside, 255 * (1.12 - 0.45 * np.clip(r, 0, 1)) * lateral, 0).astype(np.float32)
    coarse = rng.uniform(0.7, 1.3, (6, 8)).astype(np.float32)
    lowfreq = cv2.resize(coarse, (g.cols, g.rows), interpolation=cv2.INTER_CUBIC)
    background = (BACKGROUND * lowfreq).astype(np.float32)
    shape = (g.rows + _SPECKLE_PAD, g.cols + _SPECKLE_PAD)
    bank = rng.rayleigh(1.0, shape).astype(np.float32)
    bank = cv2.GaussianBlur(bank, (5, 3), sigmaX=1.3, sigmaY=0.6)  # laterally elongated speckle grains
    bank /= bank.mean()
    return gain, background, bank


def colour_box(d: ClipDrawing, r: np.ndarray | None = None, theta: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the colour-Doppler region of interest: an annular sector piece over the mitral inflow."""
    if r is None or theta is None:
        r, theta = d.geometry.polar()
    du, dv, rot, scale = aimed_placement(d)
    u, v = point_transform(COLOUR_TARGET[d.view], _PIVOT, rot, scale, (du, dv))
    g = d.geometry
    face_x, face_y, depth = _face(g)
    # The target in pixels (sector units run from the near arc), then in the fan's polar coordinates.
    dx, dy = face_x + depth * u - g.apex_x, face_y + depth * v - g.apex_y
    rc, tc = math.hypot(dx, dy) / g.radius, math.degrees(math.atan2(dx, dy))
    half = min(13.0, g.half_angle_deg)
    return (r > rc - 0.17) & (r < min(rc + 0.13, 1.0)) & (np.abs(theta - tc) < half) & g.inside(r, theta)


def render_clip(d: ClipDrawing) -> np.ndarray:
    """All frames: uint8 (frames, rows, cols, 3) RGB, or (frames, rows, cols) when ``d.monochrome``."""
    g = d.geometry
    rng = np.random.default_rng([d.noise_seed, 1])
    gain, background, bank = _static_maps(d)
    overlay, over_mask, ecg_y = _overlay(d, g.mask())
    tinted = any(t != 1.0 for t in d.tint)
    if d.monochrome:
        overlay = cv2.cvtColor(overlay, cv2.COLOR_RGB2GRAY)
        overlay[over_mask] = np.maximum(overlay[over_mask], 120)
    flow = _FlowPainter(d, rng) if d.is_colour else None
    pmap = _pixel_map(d)
    out = np.empty((d.frames, g.rows, g.cols) if d.monochrome else (d.frames, g.rows, g.cols, 3), np.uint8)
    offsets = rng.integers(0, _SPECKLE_PAD, size=(d.frames, 2))
    sweep = g.cols / (d.frames * 1.05)  # ECG cursor speed, columns per frame
    for i in range(d.frames):
        prims = frame_primitives(d, i)
        tissue = background.copy()
        _draw(tissue, prims, pmap)
        tissue = cv2.GaussianBlur(tissue, (5, 5), 1.0)
        oy, ox = offsets[i]
        speckle = bank[oy : oy + g.rows, ox : ox + g.cols]
        cv2.multiply(tissue, speckle, dst=tissue)
        cv2.multiply(tissue, gain, dst=tissue)
        if d.monochrome:
            frame = cv2.convertScaleAbs(tissue)
        elif tinted:
            frame = cv2.merge([cv2.convertScaleAbs(tissue, alpha=t) for t in d.tint])
        else:
            frame = cv2.cvtColor(cv2.convertScaleAbs(tissue), cv2.COLOR_GRAY2RGB)
        if flow is not None:
            flow.paint(frame, prims, pmap, speckle, i)
        frame = cv2.max(frame, overlay)  # the overlay is black inside the fan, the frame black outside it
        x = min(g.cols - 3, int(i * sweep) + 2)
        cv2.circle(frame, (x, int(ecg_y[x])), 2, (255, 255, 255) if frame.ndim == 3 else 255, -1)
        out[i] = frame
    return out


class _FlowPainter:
    """Colours the blood inside the colour box: red towards the transducer (diastolic inflow), blue away.
    Works on the box's bounding rectangle only, which is a small part of the frame."""

    def __init__(self, d: ClipDrawing, rng: np.random.Generator):
        self.d = d
        box = colour_box(d)
        ys, xs = np.nonzero(box)
        self.window = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        self.box = box[self.window]
        field = rng.uniform(0.45, 1.0, (d.geometry.rows, d.geometry.cols)).astype(np.float32)
        self.field = cv2.GaussianBlur(field, (0, 0), 6)[self.window]

    def paint(self, frame: np.ndarray, prims: list[Prim], pmap: tuple, speckle: np.ndarray, index: int) -> None:
        d, win = self.d, self.window
        blood = np.zeros((d.geometry.rows, d.geometry.cols), np.uint8)
        _draw(blood, prims, pmap, value=1, tags=("lv", "blood"))
        _, _, flow = cardiac_state(d.phase0 + index / d.fps, d.heart_rate)
        velocity = flow * self.field * (0.75 + 0.25 * speckle[win])
        paint = self.box & (blood[win] > 0) & (np.abs(velocity) > 0.15)
        speed = np.clip(np.abs(velocity[paint]), 0, 1)
        strong = (140 + 115 * speed).astype(np.uint8)
        aliasing = (70 * speed**2).astype(np.uint8)  # fast flow shades towards yellow / cyan
        zeros = np.zeros_like(strong)
        towards = (velocity[paint] > 0)[:, None]
        red, blue = np.stack([strong, aliasing, zeros], 1), np.stack([zeros, aliasing, strong], 1)
        frame[win][paint] = np.where(towards, red, blue)
