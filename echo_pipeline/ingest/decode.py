"""One function decodes any requested frames of any supported DICOM file to RGB uint8: `decode_frames`.

The fastest correct path per transfer syntax (echo_pipeline.ingest.syntaxes.decoder_for):
- native (implicit/explicit VR little endian, deflated, big endian): numpy views of only the requested frames;
- JPEG baseline (and 8-bit extended): the frame's bytes from pydicom's encapsulation helpers, decoded by
  libjpeg-turbo through cv2.imdecode straight to RGB, at 1/2, 1/4 or 1/8 scale inside the IDCT when asked;
- RLE lossless: the rle package's decoder on each requested frame;
- anything else pydicom can decode (JPEG lossless, JPEG-LS, JPEG 2000, 12-bit JPEG, and JPEG streams whose
  colour markers libjpeg would misread): pydicom's decoder, one requested frame at a time.
Every path ends in RgbConverter (colour.py), so all give the same RGB for the same pixels.
"""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import reasons
from echo_pipeline.ingest.colour import RgbConverter, expand_ybr422
from echo_pipeline.ingest.frame_reader import read_encapsulated_frames, read_header, read_native_frames
from echo_pipeline.ingest.jpeg import cv2_matches_dicom, decode_jpeg_frame, parse_jpeg_header
from echo_pipeline.ingest.layout import PixelLayout, encapsulated_frames, pixel_layout
from echo_pipeline.ingest.syntaxes import CV2_JPEG, NATIVE, PYDICOM, RLE, decoder_for

SCALES = (1, 2, 4, 8)
#: A single call may not return more than this many bytes; ask for fewer frames or a larger scale.
MAX_OUTPUT_BYTES = 8 * 1024**3
BIG_ENDIAN = "1.2.840.10008.1.2.2"


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
    if path == NATIVE:
        _decode_native(streams, ds, layout, indices, out, name)
    elif path == CV2_JPEG:
        _decode_cv2_jpeg(streams, ds, layout, indices, out, scale, name)
    elif path == RLE:
        _decode_rle(streams, ds, layout, indices, out, name)
    else:
        _decode_pydicom(ds, layout, indices, out, name)
    return out


def _frames_of(source: str | os.PathLike | Dataset, frame_indices: Sequence[int] | None):
    """(dataset, name, layout, indices, decode path, frame bytes by index) for decode_frames. From a path,
    only the requested frames are read (frame_reader.py) whenever the file's layout allows; the bytes dict
    is empty when the decoder takes the frames from the dataset's Pixel Data itself."""
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
            if path in (CV2_JPEG, RLE):
                streams = read_encapsulated_frames(source, header, where, layout.frames, indices)
                if streams is not None:
                    return header, name, layout, indices, path, streams
    ds, name = _open(source)
    layout = pixel_layout(ds, name)
    if "PixelData" not in ds:
        raise DicomDecodeError(f"{name}: expected (7FE0,0010) Pixel Data; found none", reasons.NO_PIXEL_DATA)
    indices = _check_indices(frame_indices, layout.frames, name)
    path = _own_path(layout, name)
    streams = encapsulated_frames(ds, layout, indices, name) if path in (CV2_JPEG, RLE) else {}
    if path == NATIVE:
        data, size = memoryview(ds.PixelData), layout.native_frame_bytes
        if len(data) < size * layout.frames:
            raise DicomDecodeError(f"{name}: expected {size * layout.frames} bytes of native Pixel Data; found "
                                   f"{len(data)}", reasons.INCONSISTENT_PIXEL_DATA)
        streams = {i: data[i * size : (i + 1) * size] for i in set(indices)}
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
            "(see echo_pipeline.ingest.syntaxes.supported_transfer_syntaxes())",
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


def _store(out: np.ndarray, k: int, rgb: np.ndarray) -> None:
    """Write one full-size RGB frame into ``out[k]``, area-averaging it down when ``out`` is smaller."""
    if rgb.shape[:2] != out.shape[1:3]:
        rgb = cv2.resize(rgb, (out.shape[2], out.shape[1]), interpolation=cv2.INTER_AREA)
    out[k] = rgb


def _native_dtype(layout: PixelLayout) -> np.dtype:
    kind = "i" if layout.pixel_representation else "u"
    order = ">" if layout.transfer_syntax == BIG_ENDIAN else "<"
    return np.dtype(f"{order}{kind}{layout.bits_allocated // 8}")


def _fix_unused_bits(frame: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """Clear (or sign-extend) the bits above Bits Stored, which PS3.5 8.1.1 says carry no meaning."""
    shift = layout.bits_allocated - layout.bits_stored
    if shift == 0:
        return frame
    return (frame << shift) >> shift


def _decode_native(
    streams: dict[int, bytes], ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, name: str
) -> None:
    dtype = _native_dtype(layout)
    to_rgb = RgbConverter.for_dataset(ds, layout.photometric, layout.bits_stored)
    for k, index in enumerate(indices):
        flat = np.frombuffer(streams[index], dtype=dtype)
        if layout.photometric == "YBR_FULL_422" and layout.bits_allocated == 8:
            frame = expand_ybr422(flat, layout.rows, layout.columns)
        elif layout.samples_per_pixel == 1:
            frame = flat.reshape(layout.rows, layout.columns)
        elif layout.planar_configuration == 1:
            frame = flat.reshape(3, layout.rows, layout.columns).transpose(1, 2, 0)
        else:
            frame = flat.reshape(layout.rows, layout.columns, 3)
        if dtype.byteorder == ">":
            frame = frame.astype(dtype.newbyteorder("="))
        _store(out, k, to_rgb(_fix_unused_bits(frame, layout)))


def _decode_rle(
    streams: dict[int, bytes], ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, name: str
) -> None:
    from rle.utils import decode_pixel_data

    to_rgb = RgbConverter.for_dataset(ds, layout.photometric, layout.bits_stored)
    dtype = np.dtype(f"<{'i' if layout.pixel_representation else 'u'}{layout.bits_allocated // 8}")
    for k, index in enumerate(indices):
        try:
            decoded = decode_pixel_data(
                streams[index], version=2, rows=layout.rows, columns=layout.columns, bits_allocated=layout.bits_allocated
            )
            # One plane per sample (R, then G, then B), each little endian.
            planes = np.frombuffer(decoded, dtype=dtype).reshape(layout.samples_per_pixel, layout.rows, layout.columns)
        except ValueError as exc:  # corrupt segments, or a segment count that disagrees with the header
            message = f"{name}: RLE frame {index} does not decode to the declared layout: {exc}"
            raise DicomDecodeError(message, reasons.DECODE_FAILED) from exc
        if layout.samples_per_pixel == 1:
            frame = planes[0]
        elif dtype == np.uint8:
            if layout.photometric == "RGB" and out.shape[1:3] == planes.shape[1:]:
                cv2.merge(list(planes), dst=out[k])  # interleave straight into the output
                continue
            frame = cv2.merge(list(planes))  # ~5x faster than a numpy transpose copy
        else:
            frame = planes.transpose(1, 2, 0)
        _store(out, k, to_rgb(_fix_unused_bits(frame, layout)))


def _decode_cv2_jpeg(
    streams: dict[int, bytes], ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, scale: int, name: str
) -> None:
    # libjpeg has already turned YCbCr into RGB, so only grey inversion / copying is left to the converter.
    to_rgb = RgbConverter.for_dataset(ds, "RGB" if layout.samples_per_pixel == 3 else layout.photometric, 8)
    for k, index in enumerate(indices):
        # libjpeg only warns (on stderr) about a cut stream and fills the rest with grey: refuse it here instead.
        if not streams[index].rstrip(b"\x00").endswith(b"\xff\xd9"):
            raise DicomDecodeError(
                f"{name}: expected JPEG frame {index} to end with the EOI marker (FFD9); the stream is cut short", reasons.TRUNCATED
            )
        frame = decode_jpeg_frame(streams[index], layout.samples_per_pixel, scale)
        if frame is None:
            raise DicomDecodeError(f"{name}: libjpeg rejected JPEG frame {index}", reasons.DECODE_FAILED)
        if frame.shape[:2] != out.shape[1:3]:
            raise DicomDecodeError(
                f"{name}: expected frame {index} of {out.shape[1]} x {out.shape[2]} at scale {scale} (Rows x Columns "
                f"{layout.rows} x {layout.columns}); the JPEG stream decodes to {frame.shape[0]} x {frame.shape[1]}",
                reasons.INCONSISTENT_PIXEL_DATA,
            )
        out[k] = frame if frame.ndim == 3 else to_rgb(frame)


def _decode_pydicom(ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, name: str) -> None:
    decoder = get_decoder(layout.transfer_syntax)
    for k, index in enumerate(indices):
        try:
            frame, changes = decoder.as_array(ds, index=index, as_rgb=True)
        except Exception as exc:  # plugins raise anything from RuntimeError to their own types
            raise DicomDecodeError(
                f"{name}: pydicom could not decode frame {index} ({layout.transfer_syntax}): {type(exc).__name__}: {exc}",
                reasons.DECODE_FAILED,
            ) from exc
        photometric = str(changes.get("photometric_interpretation", layout.photometric))
        bits_stored = int(changes.get("bits_stored", layout.bits_stored))
        _store(out, k, RgbConverter.for_dataset(ds, photometric, bits_stored)(frame))

