"""The view classifier network: a small timm CNN on a few low-resolution frames, probabilities averaged per clip.

The architecture is a named timm model with its keyword arguments (``ModelSpec``, stored as data in the
classifier's card), built from random initialisation: nothing is downloaded. Any timm name works for an
experiment; the default is ``DEFAULT_ARCHITECTURE`` with ``DEFAULT_TIMM_ARGS``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import timm
import torch
from torch import nn

from echo_pipeline.schemas import VIEW_CLASSES

#: The classes, in the order of the network's outputs and of the p_<class> columns of view_predictions.
VIEWS = tuple(name.upper() for name in VIEW_CLASSES)

#: The default: timm's resnet10t (tiered deep stem, 4 stages of one basic block) at half width, which trains
#: from scratch in a few epochs at 48 px. Mobile architectures (lcnet, mobilenetv3, regnetx_002) were tried and
#: need many more epochs from random initialisation on a few hundred clips.
DEFAULT_ARCHITECTURE = "resnet10t"
DEFAULT_TIMM_ARGS = {"stem_width": 16, "channels": [32, 64, 128, 256]}

# Inputs are scaled to roughly zero mean, unit spread; echo frames are dark (mean ≈ 0.15) with bright walls.
PIXEL_MEAN, PIXEL_STD = 0.15, 0.2


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the network and feed it: stored in the classifier's card."""

    architecture: str = DEFAULT_ARCHITECTURE
    timm_args: dict = field(default_factory=lambda: dict(DEFAULT_TIMM_ARGS))  # keyword arguments of timm.create_model
    input_size: int = 48
    frames_per_clip: int = 6
    coordinates: bool = True  # append x, y position channels (CoordinateChannels) to the RGB input
    classes: tuple[str, ...] = field(default=VIEWS)

    def to_dict(self) -> dict:
        return {**asdict(self), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        return cls(architecture=str(data["architecture"]), timm_args=dict(data.get("timm_args") or {}),
                   input_size=int(data["input_size"]), frames_per_clip=int(data["frames_per_clip"]),
                   coordinates=bool(data.get("coordinates", False)), classes=tuple(data["classes"]))


class CoordinateChannels(nn.Module):
    """Append two channels holding each pixel's horizontal and vertical position in [-1, 1] (CoordConv).

    A CNN ending in global average pooling barely knows where a feature is; views differ in where things are
    (A4C: a septum on the midline between two ventricles; A2C: one ventricle on the midline), so the network
    gets the position as input. The channels are added after augmentation: they mark the frame, not the heart.
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        n, _, height, width = inputs.shape
        y = torch.linspace(-1, 1, height, dtype=inputs.dtype).view(1, 1, height, 1).expand(n, 1, height, width)
        x = torch.linspace(-1, 1, width, dtype=inputs.dtype).view(1, 1, 1, width).expand(n, 1, height, width)
        return torch.cat([inputs, x, y], dim=1)


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised network for ``spec`` (call torch.manual_seed first for reproducible weights).
    The network has a ``num_classes`` attribute and takes (N, 3, S, S) input from ``to_input``."""
    net = timm.create_model(spec.architecture, pretrained=False, num_classes=len(spec.classes),
                            in_chans=5 if spec.coordinates else 3, **spec.timm_args)
    if not spec.coordinates:
        return net
    model = nn.Sequential(CoordinateChannels(), net)
    model.num_classes = net.num_classes
    return model


def to_input(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, S, S, 3) uint8 RGB → (N, 3, S, S) float32 network input."""
    tensor = torch.as_tensor(pixels)
    return (tensor.permute(0, 3, 1, 2).float().div_(255.0) - PIXEL_MEAN) / PIXEL_STD


def clip_probabilities(model: nn.Module, pixels: np.ndarray, batch_frames: int = 512) -> np.ndarray:
    """(C, F, S, S, 3) uint8 frames of C clips → (C, classes) float64 class probabilities, the mean over each
    clip's F frames of the per-frame softmax. Runs in eval mode without gradients, ``batch_frames`` at a time."""
    clips, frames = pixels.shape[:2]
    if clips == 0:
        return np.zeros((0, model.num_classes))
    flat = pixels.reshape(clips * frames, *pixels.shape[2:])
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(flat), batch_frames):
            out.append(torch.softmax(model(to_input(flat[start : start + batch_frames])), dim=1))
    probs = torch.cat(out).double().numpy()
    return probs.reshape(clips, frames, -1).mean(axis=1)


@contextmanager
def torch_threads(count: int | None = None) -> Iterator[int]:
    """Run a block with ``count`` intra-op threads (default: every core), restoring the previous count after."""
    previous = torch.get_num_threads()
    count = count or os.cpu_count() or 1
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)
