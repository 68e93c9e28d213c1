"""Masked, cropped, resized frames: the sector's bounding square, at ``size`` x ``size``, zero outside.

The path per frame is decode (at 1/scale inside libjpeg for JPEG, by integer area averaging otherwise) →
crop → one bilinear resize of ratio < 2 → multiply by the output mask. The mask is computed once per clip,
at the output size, and it fails closed:

    an output pixel is kept only when every source pixel that can contribute to it lies inside the sector.

"Can contribute" is computed, not assumed: an output pixel's footprint in the decoded frame (down-scaling
reads at most the pixels its area overlaps, bilinear or area alike; up-scaling reads 2 neighbours, taken as
3) is mapped to its footprint in the source frame (a reduced JPEG decode reads the s x s block; an area
reduction reads the pixels its area overlaps; the union of both is used), and the kept pixels are those whose
source footprint holds no pixel outside the sector mask. Every other output pixel is exactly zero, in every
frame.

Within one 8 x 8 JPEG block the codec itself mixes pixels (ringing at full scale, a low-pass at reduced
scale); that mixing is in the stored image whatever the decode scale (docs/masking.md measures it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

OUTPUT_SIZE = 224
SCALES = (1, 2, 4, 8)
#: The last resize step. After the power-of-two reduction its ratio is in [1, 2), where bilinear reads every
#: source pixel and matches an area average (docs/masking.md: mean difference to a full-size decode + INTER_AREA
#: 3.98 vs 3.94 grey levels for INTER_AREA itself) at a seventh of the cost.
INTERPOLATION = cv2.INTER_LINEAR


@dataclass(frozen=True)
class CropPlan:
    """How a clip's frames become output frames. Boxes are (x0, y0, x1, y1), end-exclusive.

    ``crop`` is in decoded pixels (the source reduced by ``scale``), ``place`` in output pixels: the crop
    is resized into ``place`` (the whole output unless the square runs off the image). ``mask`` is uint8
    (size, size), 1 where output pixels are kept.
    """

    source_shape: tuple[int, int]
    scale: int
    square: tuple[int, int, int]  # (x0, y0, side) of the bounding square, decoded pixels; may leave the image
    crop: tuple[int, int, int, int]
    place: tuple[int, int, int, int]
    size: int
    mask: np.ndarray

    @property
    def decoded_shape(self) -> tuple[int, int]:
        rows, cols = self.source_shape
        return -(-rows // self.scale), -(-cols // self.scale)

    @property
    def kept_fraction(self) -> float:
        return float(self.mask.mean())


def choose_scale(sector_mask: np.ndarray, size: int = OUTPUT_SIZE) -> int:
    """The largest reduced-decode scale at which the sector's bounding square is still >= ``size`` pixels,
    so that the only resize left is a down-scale (1 when the square is smaller than 2 * size)."""
    ys, xs = np.nonzero(sector_mask)
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    return max([s for s in SCALES if -(-side // s) >= size] or [1])


def plan_crop(sector_mask: np.ndarray, size: int = OUTPUT_SIZE, scale: int = 1) -> CropPlan:
    """The crop, placement and output mask for a clip whose sector is ``sector_mask`` (bool, source size),
    decoded at 1/``scale``. Raises ValueError for an empty mask (callers quarantine those before)."""
    sector_mask = np.asarray(sector_mask, bool)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}; got {scale}")
    if not sector_mask.any():
        raise ValueError("the sector mask is empty; there is nothing to crop")
    rows, cols = sector_mask.shape
    dh, dw = -(-rows // scale), -(-cols // scale)
    ys, xs = np.nonzero(sector_mask)
    x0, x1, y0, y1 = xs.min() // scale, xs.max() // scale, ys.min() // scale, ys.max() // scale
    w, h = x1 - x0 + 1, y1 - y0 + 1
    side = int(max(w, h))
    qx, qy = int(x0 - (side - w) // 2), int(y0 - (side - h) // 2)
    crop = (max(qx, 0), max(qy, 0), min(qx + side, dw), min(qy + side, dh))
    place = tuple(round((c - q) * size / side) for c, q in zip(crop, (qx, qy, qx, qy)))
    geometry = CropPlan((rows, cols), scale, (qx, qy, side), crop, place, size, np.zeros((size, size), np.uint8))
    return replace(geometry, mask=output_mask(geometry, sector_mask))


def _resize_footprint(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive source index range read by each of ``n_dst`` outputs of a cv2 resize, INTER_AREA or
    INTER_LINEAR (a bilinear down-scale's two taps lie within the area's range, or its first pixel and the next)."""
    k = np.arange(n_dst, dtype=np.int64)
    if n_src >= n_dst:  # area averaging; also covers the 2-tap path cv2 takes when only one axis shrinks
        lo = (k * n_src) // n_dst
        hi = np.maximum(-((-(k + 1) * n_src) // n_dst) - 1, lo + 1)
    else:  # up-scaling interpolates between neighbours
        base = (k * n_src) // n_dst
        lo, hi = base - 1, base + 1
    return np.clip(lo, 0, n_src - 1), np.clip(hi, 0, n_src - 1)


def _decode_footprint(n_source: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive source range behind each decoded pixel at ``scale``: the s-block of a reduced JPEG decode
    united with the area of an INTER_AREA reduction to ceil(n / s)."""
    n_decoded = -(-n_source // scale)
    j = np.arange(n_decoded, dtype=np.int64)
    area_lo, area_hi = _resize_footprint(n_source, n_decoded)
    return np.minimum(j * scale, area_lo), np.minimum(np.maximum((j + 1) * scale - 1, area_hi), n_source - 1)


def _axis_footprint(plan: CropPlan, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid, lo, hi): for each output index along ``axis`` (0 = x, 1 = y), whether it lies in ``place``
    and the inclusive source range it reads."""
    c0, c1 = plan.crop[axis], plan.crop[axis + 2]
    p0, p1 = plan.place[axis], plan.place[axis + 2]
    n_source = plan.source_shape[1 - axis]
    lo_r, hi_r = _resize_footprint(c1 - c0, p1 - p0)
    dec_lo, dec_hi = _decode_footprint(n_source, plan.scale)
    lo, hi = np.zeros(plan.size, np.int64), np.zeros(plan.size, np.int64)
    lo[p0:p1], hi[p0:p1] = dec_lo[c0 + lo_r], dec_hi[c0 + hi_r]
    valid = np.zeros(plan.size, bool)
    valid[p0:p1] = True
    return valid, lo, hi


def output_mask(plan: CropPlan, source_mask: np.ndarray) -> np.ndarray:
    """uint8 (size, size): 1 where the output pixel's whole source footprint lies inside ``source_mask``.

    Used for the clip's own sector (the plan's mask) and to carry any other source-size mask (a ground
    truth, say) through the same crop and resize.
    """
    outside = (~np.asarray(source_mask, bool)).astype(np.uint8)
    integral = cv2.integral(outside)  # (rows + 1, cols + 1): count of outside pixels above-left
    vx, lx, hx = _axis_footprint(plan, 0)
    vy, ly, hy = _axis_footprint(plan, 1)
    ly, hy = ly[:, None], hy[:, None] + 1
    lx, hx = lx[None, :], hx[None, :] + 1
    count = integral[hy, hx] - integral[ly, hx] - integral[hy, lx] + integral[ly, lx]
    return ((count == 0) & vy[:, None] & vx[None, :]).astype(np.uint8)


def apply_plan(frames: np.ndarray, plan: CropPlan, out: np.ndarray | None = None) -> np.ndarray:
    """Decoded frames (N, H, W, 3) uint8 at the plan's scale → (N, size, size, 3) uint8, zero outside the
    plan's mask. Writes into ``out`` (e.g. a memory-mapped file) when given."""
    if frames.shape[1:3] != plan.decoded_shape:
        raise ValueError(f"frames are {frames.shape[1:3]}; the plan expects {plan.decoded_shape} (scale {plan.scale})")
    n = frames.shape[0]
    if out is None:
        out = np.empty((n, plan.size, plan.size, 3), np.uint8)
    x0, y0, x1, y1 = plan.crop
    px0, py0, px1, py1 = plan.place
    full = (px0, py0, px1, py1) == (0, 0, plan.size, plan.size)
    keep = np.repeat(plan.mask[:, :, None], 3, axis=2)  # per-channel mask: one contiguous multiply per frame
    for i in range(n):
        region = frames[i, y0:y1, x0:x1]
        if full:
            cv2.resize(region, (plan.size, plan.size), dst=out[i], interpolation=INTERPOLATION)
        else:
            out[i] = 0
            out[i, py0:py1, px0:px1] = cv2.resize(region, (px1 - px0, py1 - py0), interpolation=INTERPOLATION)
        cv2.multiply(out[i], keep, dst=out[i])  # while the frame is in cache
    return out
