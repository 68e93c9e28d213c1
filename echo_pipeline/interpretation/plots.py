"""Figures of the interpretation assets as PNG bytes (matplotlib, Agg): UMAP panels and saliency overlays.

Saliency colour scale (every PromptCAM figure): matplotlib's ``inferno`` from 0 (black: the region does not
raise the frame's similarity to the prompt) to 1 (pale yellow: the region that raises it most in this frame),
drawn over the grey-scale frame with opacity proportional to the saliency, with a colour bar beside it.
Values are normalised per frame, so colours compare regions within a frame, not frames with each other.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from echo_pipeline.figures import figure_png  # noqa: E402

DPI = 80
SALIENCY_CMAP = "inferno"
#: Devices in one categorical panel; chamber-size labels one panel each.
DEVICE_LABELS = ("pacemaker", "tavr", "mitraclip")
CHAMBER_LABELS = ("lv_dilation", "la_dilation", "rv_dilation", "ra_dilation")
_LEVEL_ORDER = ("none", "mild", "moderate", "severe")


def device_category(frame: pd.DataFrame) -> pd.Series:
    """Per row: the first device stated present, "none" when all stated absent, "unknown" otherwise."""
    out = pd.Series("unknown", index=frame.index, dtype=object)
    stated = pd.Series(False, index=frame.index)
    for name in DEVICE_LABELS:
        if name not in frame:
            continue
        values = frame[name]
        stated |= values.notna()
        out[(values == True) & (out == "unknown")] = name  # noqa: E712  (nullable booleans)
    out[(out == "unknown") & stated] = "none"
    return out


def _categorical(axis, x, y, values: pd.Series, order) -> None:
    cmap = plt.get_cmap("tab10")
    for i, level in enumerate(order):
        picked = (values == level).to_numpy()
        if picked.any():
            axis.scatter(x[picked], y[picked], s=8, color=cmap(i), label=f"{level} ({int(picked.sum())})")
    unknown = values.isna().to_numpy() | (values == "unknown").to_numpy()
    if unknown.any():
        axis.scatter(x[unknown], y[unknown], s=6, color="lightgrey", label=f"not stated ({int(unknown.sum())})")
    axis.legend(fontsize=6, markerscale=1.5, loc="best")


def umap_panels(frame: pd.DataFrame, title: str) -> bytes:
    """One panel per label: LVEF (continuous), device (categorical), each chamber's dilation grade."""
    x, y = frame["umap_x"].to_numpy(float), frame["umap_y"].to_numpy(float)
    panels = ["lvef", "device"] + [c for c in CHAMBER_LABELS if c in frame]
    figure, axes = plt.subplots(2, 3, figsize=(12, 7.5), squeeze=False)
    for axis, name in zip(axes.flat, panels):
        axis.set_title(name)
        axis.set_xticks([])
        axis.set_yticks([])
        if name == "lvef":
            values = pd.to_numeric(frame["lvef"], errors="coerce").to_numpy(float)
            known = np.isfinite(values)
            axis.scatter(x[~known], y[~known], s=6, color="lightgrey")
            points = axis.scatter(x[known], y[known], c=values[known], s=8, cmap="viridis")
            figure.colorbar(points, ax=axis, label="LVEF (%)")
        elif name == "device":
            _categorical(axis, x, y, device_category(frame), ("none",) + DEVICE_LABELS)
        else:
            _categorical(axis, x, y, frame[name], _LEVEL_ORDER)
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    figure.suptitle(title)
    return figure_png(figure, DPI)


def saliency_overlay(axis, frame_rgb: np.ndarray, saliency: np.ndarray, title: str):
    """Draw a frame (grey) with its saliency map over it on ``axis``; returns the image for a colour bar."""
    grey = np.asarray(frame_rgb, np.float32).mean(axis=-1)
    axis.imshow(grey, cmap="gray", vmin=0, vmax=255)
    alpha = np.clip(0.15 + 0.7 * saliency, 0, 1)
    image = axis.imshow(saliency, cmap=SALIENCY_CMAP, vmin=0.0, vmax=1.0, alpha=alpha)
    axis.set_title(title, fontsize=7)
    axis.axis("off")
    return image


def saliency_figure(panels: list[tuple[np.ndarray, np.ndarray, str]], title: str) -> bytes:
    """Frames with their saliency maps side by side, one shared colour bar (0–1, per-frame normalised)."""
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 0.8, 3.0), squeeze=False)
    image = None
    for axis, (frame_rgb, saliency, caption) in zip(axes[0], panels):
        image = saliency_overlay(axis, frame_rgb, saliency, caption)
    if image is not None:
        figure.colorbar(image, ax=list(axes[0]), fraction=0.03, label="PromptCAM saliency (0 = none, 1 = frame max)")
    figure.suptitle(title, fontsize=9)
    return figure_png(figure, DPI)
