"""Colour-Doppler detection from a few decoded frames of a clip.

Grey-scale ultrasound has R ≈ G ≈ B (a vendor's grey map may tint it, but only weakly). A colour-Doppler clip
paints blood flow in saturated red/blue/yellow/cyan over part of the sector, and the paint changes from frame
to frame with the flow. Burned-in overlays are also coloured but differ: the ECG trace is thin, text is thin
and usually pale, the velocity colour bar and coloured labels do not change between frames. So a pixel
counts as Doppler paint only when it is

1. saturated: chroma (max - min of R, G, B) ≥ ``min_chroma`` and chroma / max ≥ ``min_saturation`` in at
   least one sampled frame (tints and JPEG chroma noise stay far below);
2. changing: its RGB value differs by ≥ ``min_change`` between two sampled frames (static overlays do not);
3. part of a compact area: it survives a morphological opening with a ``kernel`` x ``kernel`` square (thin
   lines and isolated pixels, e.g. a scrolling ECG trace or a JPEG ringing fringe, do not).

The clip is colour Doppler when such pixels cover ≥ ``min_fraction`` of the image. The thresholds assume the
frames were decoded at reduced scale (about 64-128 pixels high, as frames.py does), where the kernel spans
roughly a tenth of the sector. With a single frame there is no change to observe; criterion 2 is then
skipped, so single-frame images are judged on saturation and compactness alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ColourThresholds:
    """Thresholds of the Doppler paint test (module docstring); the defaults separate the synthetic cohort's
    colour clips (paint ≥ 1.4 % of the image) from grey clips with tints, overlays and colour bars (0 %)."""

    min_chroma: int = 60
    min_saturation: float = 0.5
    min_change: int = 24
    kernel: int = 3
    min_fraction: float = 0.002


DEFAULT_THRESHOLDS = ColourThresholds()


def saturated_pixels(frames: np.ndarray, thresholds: ColourThresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """(N, H, W) bool: pixels of (N, H, W, 3) uint8 RGB frames whose colour is strongly saturated."""
    r, g, b = frames[..., 0], frames[..., 1], frames[..., 2]  # element-wise max/min: far faster than max(axis=-1)
    high = np.maximum(np.maximum(r, g), b)
    chroma = high - np.minimum(np.minimum(r, g), b)  # uint8, never negative
    return (chroma >= thresholds.min_chroma) & (chroma >= thresholds.min_saturation * high)


def doppler_mask(frames: np.ndarray, thresholds: ColourThresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """(H, W) bool: pixels that look like Doppler paint in the sampled frames (rules 1-3 of the module doc)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB frames; got {frames.dtype} array of shape {frames.shape}")
    candidate = saturated_pixels(frames, thresholds).any(axis=0)
    if len(frames) > 1:
        spread = frames.max(axis=0) - frames.min(axis=0)  # uint8 per channel, never negative
        change = np.maximum(np.maximum(spread[..., 0], spread[..., 1]), spread[..., 2])
        candidate &= change >= thresholds.min_change
    kernel = np.ones((thresholds.kernel, thresholds.kernel), np.uint8)
    return cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)


def doppler_fraction(frames: np.ndarray, thresholds: ColourThresholds = DEFAULT_THRESHOLDS) -> float:
    """Share of the image covered by Doppler paint, in [0, 1]."""
    mask = doppler_mask(frames, thresholds)
    return float(mask.mean())


def is_colour_doppler(frames: np.ndarray, thresholds: ColourThresholds = DEFAULT_THRESHOLDS) -> bool:
    """True when Doppler paint covers at least ``thresholds.min_fraction`` of the image."""
    return doppler_fraction(frames, thresholds) >= thresholds.min_fraction
