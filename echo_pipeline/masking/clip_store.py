"""How masked clips are stored: one ``.npy`` file per clip, uint8 (T, H, W, 3) RGB, C order.

Chosen by measurement (bench/bench_masking.py, figures in docs/masking.md) against compressed npz, MJPEG AVI
and per-frame PNG/JPEG: a memory-mapped .npy reads one random frame by touching only that frame's bytes
(training reads one random frame per clip per epoch) and 20 consecutive frames as one contiguous slice
(evaluation), with no decoder in the loop and no loss. It is the largest on disk; docs/masking.md gives
the numbers to weigh that.

Files are written in place through a memory map under a temporary name and renamed when complete, so a
reader never sees half a clip, even if the writer is killed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from echo_pipeline.errors import MaskingError
from echo_pipeline.storage import atomic_path

SUFFIX = ".npy"
FORMAT = "npy"  # recorded per row of masked_clips


@contextmanager
def create_clip(path: str | os.PathLike, frames: int, height: int, width: int) -> Iterator[np.ndarray]:
    """Yield a writable uint8 (frames, height, width, 3) memory map; it becomes ``path`` only if the block
    completes (an exception leaves no file behind)."""
    with atomic_path(Path(path)) as tmp:
        # No msync: like every other write here, the rename makes the file safe against a killed process;
        # the kernel writes the pages back on its own schedule.
        yield np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(frames, height, width, 3))


def write_clip(path: str | os.PathLike, frames: np.ndarray) -> None:
    """Store a whole uint8 (T, H, W, 3) clip atomically."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise MaskingError(f"{path}: a masked clip must be uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}")
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
        np.save(handle, frames, allow_pickle=False)


def open_clip(path: str | os.PathLike) -> np.ndarray:
    """The clip as a read-only memory map (nothing is read until frames are indexed)."""
    try:
        clip = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise MaskingError(f"{path}: masked clip unreadable ({error}); re-run the masked_clips asset for it") from error
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[3] != 3:
        raise MaskingError(f"{path}: expected a uint8 (T, H, W, 3) clip, found {clip.dtype} {clip.shape}; "
                           "re-run the masked_clips asset for it")
    return clip


def read_frames(path: str | os.PathLike, indices: Sequence[int] | slice | None = None) -> np.ndarray:
    """Frames ``indices`` (all when None) as an in-memory uint8 (N, H, W, 3) array."""
    clip = open_clip(path)
    if indices is None:
        return np.array(clip)
    if isinstance(indices, slice):
        return np.array(clip[indices])
    index = np.asarray(indices, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= clip.shape[0]):
        raise IndexError(f"{path}: frame indices outside 0..{clip.shape[0] - 1}")
    return clip[index]
