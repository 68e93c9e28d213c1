"""One function decodes any requested frames of any supported DICOM file to RGB uint8: `decode_frames`.

The fastest correct decoder per transfer syntax is the first available plugin of decoders.py (native, cv2-jpeg,
pylibjpeg-rle, pydicom). Here the choice is refined per file: sample formats the own decoders do not cover, and
JPEG streams whose colour markers libjpeg would misread, go to pydicom. Every decoder ends in RgbConverter
(colour.py), so all give the same RGB for the same pixels.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import reasons
from echo_pipeline.ingest.decoders import decoder_for, plugin_named
from echo_pipeline.ingest.frame_reader import read_encapsulated_frames, read_header, read_native_frames
from echo_pipeline.ingest.jpeg import cv2_matches_dicom, parse_jpeg_header
from echo_pipeline.ingest.layout import PixelLayout, encapsulated_frames, pixel_layout
from echo_pipeline.ingest.syntaxes import BIG_ENDIAN, CV2_JPEG, NATIVE, PYDICOM

SCALES = (1, 2, 4, 8)
#: A single call may not return more than this many bytes; ask for fewer frames or a larger scale.
MAX_OUTPUT_BYTES = 8 * 1024**3


def decode_frames(
    source: str | os.PathLike | Dataset,
    frame_indices: Sequence[int] | None = None,
    *,
    scale: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Frames ``frame_indices`` (all when None, in the order given) as a (N, H, W, 3) uint8 RGB array.

    With ``scale`` 2, 4 or 8 each frame is reduced to ceil(H/scale) x ceil(W/scale): inside libjpeg for JPEG,
    by area averaging otherwise. ``out``, when given, is a C-contiguous uint8 array of exactly that shape that
    receives the frames and is returned: a loop that reuses it skips faulting in fresh memory on every call.
    Raises DicomDecodeError (with a reason code) when the file cannot be decoded, IndexError for frame
    indices outside the clip, ValueError for a bad ``scale`` or ``out``.
    """
    ds, name, layout, indices, path, streams = _frames_of(source, frame_indices)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}; got {scale}")
    if path == CV2_JPEG and not _cv2_fits(streams[indices[0]], layout):
        path = PYDICOM
        if "PixelData" not in ds:  # only the frames were read; pydicom's decoder wants the dataset's Pixel Data
            ds, name = _open(source)
    height, width = -(-layout.rows // scale), -(-layout.columns // scale)
    if len(indices) * height * width * 3 > MAX_OUTPUT_BYTES:
        raise DicomDecodeError(
            f"{name}: {len(indices)} frames of {height} x {width} exceed {MAX_OUTPUT_BYTES} bytes; request fewer frames",
            reasons.TOO_LARGE,
        )
    shape = (len(indices), height, width, 3)
    if out is None:
        out = np.empty(shape, dtype=np.uint8)
    elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"{name}: out must be a C-contiguous uint8 array of shape {shape}; got {out.dtype} {out.shape}")
    plugin_named(path).decode(ds, layout, indices, out, scale=scale, name=name, streams=streams)
    return out


def _frames_of(source: str | os.PathLike | Dataset, frame_indices: Sequence[int] | None):
    """(dataset, name, layout, indices, decode path, frame bytes by index) for decode_frames. From a path,
    only the requested frames are read (frame_reader.py) whenever the file's layout allows; the bytes dict
    is empty when the decoder takes the frames from the dataset's Pixel Data itself (pydicom)."""
    if not isinstance(source, Dataset):
        try:
            header, where = read_header(source)
        except Exception:  # unreadable: the full read below raises the precise error
            where = None
        if where is not None:
            name = str(source)
            layout = pixel_layout(header, name)
            indices = _check_indices(frame_indices, layout.frames, name)
            path = _own_path(layout, name)
            if path == NATIVE:
                return header, name, layout, indices, path, read_native_frames(
                    source, where, layout.native_frame_bytes, layout.frames, indices)
            if plugin_named(path).frame_streams:
                streams = read_encapsulated_frames(source, header, where, layout.frames, indices)
                if streams is not None:
                    return header, name, layout, indices, path, streams
    ds, name = _open(source)
    layout = pixel_layout(ds, name)
    if "PixelData" not in ds:
        raise DicomDecodeError(f"{name}: expected (7FE0,0010) Pixel Data; found none", reasons.NO_PIXEL_DATA)
    indices = _check_indices(frame_indices, layout.frames, name)
    path = _own_path(layout, name)
    if path == NATIVE:
        data, size = memoryview(ds.PixelData), layout.native_frame_bytes
        if len(data) < size * layout.frames:
            raise DicomDecodeError(f"{name}: expected {size * layout.frames} bytes of native Pixel Data; found "
                                   f"{len(data)}", reasons.INCONSISTENT_PIXEL_DATA)
        return ds, name, layout, indices, path, {i: data[i * size:(i + 1) * size] for i in set(indices)}
    streams = encapsulated_frames(ds, layout, indices, name) if plugin_named(path).frame_streams else {}
    return ds, name, layout, indices, path, streams


def decode_path(source: str | os.PathLike | Dataset) -> str:
    """The path decode_frames takes for this file: "native", "cv2-jpeg", "pylibjpeg-rle" or "pydicom"."""
    ds, name = _open(source)
    layout = pixel_layout(ds, name)
    path = _own_path(layout, name)
    if path == CV2_JPEG and not _cv2_fits(encapsulated_frames(ds, layout, [0], name)[0], layout):
        return PYDICOM
    return path


def _own_path(layout: PixelLayout, name: str) -> str:
    """The decode path by transfer syntax and sample format (before looking at JPEG markers)."""
    path = decoder_for(layout.transfer_syntax)
    if path is None:
        raise DicomDecodeError(
            f"{name}: expected a transfer syntax with an installed decoder; found {layout.transfer_syntax} "
            "(see echo_pipeline.ingest.decoders.supported_transfer_syntaxes())",
            reasons.UNSUPPORTED_TRANSFER_SYNTAX,
        )
    return path if _fast_path_fits(layout) else PYDICOM


def _cv2_fits(first_frame: bytes, layout: PixelLayout) -> bool:
    # One frame's markers stand for the file: encoders write every frame of a clip the same way.
    return cv2_matches_dicom(parse_jpeg_header(first_frame), layout.samples_per_pixel, layout.photometric)


def _fast_path_fits(layout: PixelLayout) -> bool:
    """The own paths cover 8- and 16-bit samples. 1- and 32-bit data, 16-bit YBR_FULL_422, and 8-bit big
    endian data (whose OW words pydicom un-swaps from the element's VR) go to pydicom."""
    if layout.transfer_syntax == BIG_ENDIAN and layout.bits_allocated == 8:
        return False
    return layout.bits_allocated == 8 or (layout.bits_allocated == 16 and layout.photometric != "YBR_FULL_422")


def _open(source: str | os.PathLike | Dataset) -> tuple[Dataset, str]:
    if isinstance(source, Dataset):
        return source, str(getattr(source, "filename", None) or "<dataset>")
    try:
        return pydicom.dcmread(source), str(source)
    except Exception as exc:  # pydicom raises many types for unreadable files; callers need one
        message = f"{source}: cannot read the DICOM header: {type(exc).__name__}: {exc}"
        raise DicomDecodeError(message, reasons.UNREADABLE_HEADER) from exc


def _check_indices(frame_indices: Sequence[int] | None, frames: int, name: str) -> list[int]:
    if frame_indices is None:
        return list(range(frames))
    indices = [int(i) for i in frame_indices]
    if not indices:
        raise ValueError(f"{name}: frame_indices is empty; pass None for all frames")
    bad = [i for i in indices if not 0 <= i < frames]
    if bad:
        raise IndexError(f"{name}: frame indices {bad[:5]} outside 0..{frames - 1} (NumberOfFrames {frames})")
    return indices
