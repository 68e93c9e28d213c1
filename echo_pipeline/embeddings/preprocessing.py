"""Named frame preprocessing before a model's normalisation, recorded with every evaluation row.

- ``model``: the frames as masked, resized to the model's input size (INTER_AREA down, INTER_CUBIC up).
- ``published_crop``: the published EchoCLIP inference crop: a square centre crop, then 10 % cut from each
  side, then a bicubic resize to the model's input size (224 for the published weights).

A pretrained variant names one (`--pretrained NAME=DIR,preprocessing=published_crop`); trained variants use
``model``, the preprocessing they were trained with.
"""

from __future__ import annotations

import cv2
import numpy as np

PREPROCESSING = ("model", "published_crop")
#: Share of the square cut from each side by the published crop.
CROP_FRACTION = 0.10


def published_crop(frames: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (F, H, W, 3) → (F, image_size, image_size, 3): centre square, 10 % off each side, bicubic."""
    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    cut = int(round(side * CROP_FRACTION))
    square = frames[:, top + cut:top + side - cut, left + cut:left + side - cut]
    out = np.empty((len(frames), image_size, image_size, 3), dtype=np.uint8)
    for i, frame in enumerate(square):
        out[i] = cv2.resize(np.ascontiguousarray(frame), (image_size, image_size), interpolation=cv2.INTER_CUBIC)
    return out


def check_preprocessing(name: str) -> str:
    if name not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing {name!r}; use one of {PREPROCESSING}")
    return name
