"""A clip's few frames for view classification: decoded at reduced scale, squared, plus its colour evidence.

View and colour mode are properties of the whole clip, visible in any frame, so a handful of evenly spaced
frames decoded at 1/2-1/8 scale (inside libjpeg's IDCT for JPEG files) carries the information at a small
fraction of the cost of decoding every frame at full resolution.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import pydicom

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import decode_frames, reasons
from echo_pipeline.ingest.decode import SCALES
from echo_pipeline.views.colour import DEFAULT_THRESHOLDS, ColourThresholds, doppler_fraction


@dataclass(frozen=True)
class SamplingSpec:
    """How a clip is sampled: ``frames`` evenly spaced frames, each squashed to ``size`` x ``size`` RGB."""

    frames: int = 6
    size: int = 64

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 8:
            raise ValueError(f"SamplingSpec needs frames >= 1 and size >= 8; got {self}")


@dataclass(frozen=True)
class ClipSample:
    """What the classifier and the colour test see of one clip."""

    pixels: np.ndarray  # (spec.frames, size, size, 3) uint8 RGB; frames repeat when the clip has fewer
    frame_indices: tuple[int, ...]  # the distinct frames decoded
    total_frames: int  # NumberOfFrames of the file
    colour_fraction: float  # share of the image covered by Doppler paint (colour.py)
    is_colour: bool


def sample_indices(total_frames: int, count: int) -> list[int]:
    """``count`` evenly spaced frame indices in 0..total_frames-1 (centres of equal segments), distinct,
    ascending; all frames when the clip has fewer than ``count``."""
    if total_frames < 1:
        raise ValueError(f"a clip needs at least one frame; got total_frames={total_frames}")
    if total_frames <= count:
        return list(range(total_frames))
    return sorted({min(total_frames - 1, int((i + 0.5) * total_frames / count)) for i in range(count)})


def decode_scale(rows: int, columns: int, size: int) -> int:
    """The largest decoder scale (1, 2, 4, 8) whose reduced frame still has ≥ ``size`` pixels on its short side,
    so the final resize only ever shrinks."""
    short = min(rows, columns)
    return max(s for s in SCALES if s == 1 or -(-short // s) >= size)


def squash(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) → (N, size, size, 3) by area averaging (aspect ratio not kept: the network learns it)."""
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def load_clip(
    path: str | os.PathLike, spec: SamplingSpec = SamplingSpec(), thresholds: ColourThresholds = DEFAULT_THRESHOLDS
) -> ClipSample:
    """Decode ``spec.frames`` evenly spaced frames of the DICOM file at ``path`` at reduced scale.

    Raises DicomDecodeError (with a reason code) when the file cannot be read or decoded.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)  # decode_frames reads only the sampled frames
    except Exception as exc:  # pydicom raises many types for unreadable files; callers need one
        raise DicomDecodeError(f"{path}: cannot read the DICOM header: {type(exc).__name__}: {exc}",
                               reasons.UNREADABLE_HEADER) from exc
    try:
        total = int(ds.get("NumberOfFrames") or 1)
        rows, columns = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DicomDecodeError(f"{path}: expected integer Rows, Columns and NumberOfFrames; {exc}",
                               reasons.UNREADABLE_HEADER) from exc
    indices = sample_indices(total, spec.frames)
    decoded = decode_frames(path, indices, scale=decode_scale(rows, columns, spec.size))
    fraction = doppler_fraction(decoded, thresholds)
    pixels = squash(decoded, spec.size)
    if len(pixels) < spec.frames:  # short clips: repeat frames so every clip has the same tensor shape
        pixels = pixels[np.resize(np.arange(len(pixels)), spec.frames)]
    return ClipSample(pixels, tuple(indices), total, fraction, fraction >= thresholds.min_fraction)
