"""Turn one decoded frame, whatever its photometric interpretation and bit depth, into RGB uint8.

Rules (docs/ingestion.md):
- YBR_FULL / YBR_FULL_422 → RGB with the JPEG (ITU-R BT.601 full range) matrix, in one cv2.transform pass
  (pydicom's float conversion gives the same values within rounding and is ~3x slower).
- MONOCHROME2 → grey copied to R, G, B; MONOCHROME1 is inverted first, so bright always means signal.
- Grey deeper than 8 bits (or signed) → Rescale Slope/Intercept, then the first VOI window (Window Center /
  Width, DICOM's linear function) when the header has one, else the frame's own min-max; then 0..255.
- Colour deeper than 8 bits → the top 8 of Bits Stored (a shift, so hues are kept).
- PALETTE COLOR → pydicom's apply_color_lut, 16-bit entries reduced to their high byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut, convert_color_space

# RGB = M @ (Y, Cb, Cr, 1): BT.601 full-range coefficients as in pydicom's convert_color_space.
_KG_CB = 0.114 * 1.772 / 0.587
_KG_CR = 0.299 * 1.402 / 0.587
_YBR_TO_RGB = np.array(
    [
        [1.0, 0.0, 1.402, -1.402 * 128],
        [1.0, -_KG_CB, -_KG_CR, (_KG_CB + _KG_CR) * 128],
        [1.0, 1.772, 0.0, -1.772 * 128],
    ],
    dtype=np.float32,
)


def ybr_full_to_rgb(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 Y/Cb/Cr → (H, W, 3) uint8 R/G/B, rounded and saturated."""
    return cv2.transform(np.ascontiguousarray(frame), _YBR_TO_RGB)


def expand_ybr422(raw: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Native YBR_FULL_422 bytes (Y0 Y1 Cb Cr per pixel pair) → (H, W, 3) YBR_FULL, chroma repeated."""
    pairs = raw.reshape(rows, columns // 2, 4)
    out = np.empty((rows, columns, 3), dtype=np.uint8)
    out[..., 0] = pairs[..., :2].reshape(rows, columns)
    out[:, 0::2, 1] = out[:, 1::2, 1] = pairs[..., 2]
    out[:, 0::2, 2] = out[:, 1::2, 2] = pairs[..., 3]
    return out


def _float_attr(ds: Dataset, keyword: str) -> float | None:
    """First value of a DS attribute, or None when absent or unparseable."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        if isinstance(value, (MultiValue, list, tuple)):
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class RgbConverter:
    """Per-file settings for turning decoded frames into RGB uint8; build it with ``for_dataset``."""

    photometric: str
    bits_stored: int
    slope: float = 1.0
    intercept: float = 0.0
    window: tuple[float, float] | None = None  # (center, width) in rescaled units
    palette_source: Dataset | None = None

    @classmethod
    def for_dataset(cls, ds: Dataset, photometric: str, bits_stored: int) -> "RgbConverter":
        center, width = _float_attr(ds, "WindowCenter"), _float_attr(ds, "WindowWidth")
        return cls(
            photometric=photometric,
            bits_stored=bits_stored,
            slope=_float_attr(ds, "RescaleSlope") or 1.0,
            intercept=_float_attr(ds, "RescaleIntercept") or 0.0,
            window=(center, width) if center is not None and width is not None and width > 1 else None,
            palette_source=ds if photometric == "PALETTE COLOR" else None,
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One decoded frame, (H, W) or (H, W, 3), in this file's interpretation → (H, W, 3) uint8 RGB."""
        if self.photometric == "PALETTE COLOR":
            rgb = apply_color_lut(frame, self.palette_source)
            return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
        if frame.ndim == 3:
            return self._colour(frame)
        grey = frame if frame.dtype == np.uint8 else self._grey_to_uint8(frame)
        if self.photometric == "MONOCHROME1":
            grey = 255 - grey
        return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)

    def _colour(self, frame: np.ndarray) -> np.ndarray:
        is_ybr = self.photometric in ("YBR_FULL", "YBR_FULL_422")
        if frame.dtype == np.uint8:
            return ybr_full_to_rgb(frame) if is_ybr else frame
        if is_ybr:
            frame = convert_color_space(frame, "YBR_FULL", "RGB")
        shift = max(self.bits_stored - 8, 0)
        return np.clip(frame.astype(np.int64) >> shift, 0, 255).astype(np.uint8)

    def _grey_to_uint8(self, frame: np.ndarray) -> np.ndarray:
        values = frame.astype(np.float32) * self.slope + self.intercept
        if self.window is not None:
            center, width = self.window
            scaled = (values - (center - 0.5)) / (width - 1) + 0.5
        else:
            low, high = float(values.min()), float(values.max())
            scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return (np.clip(scaled, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
