"""The decoders behind `decode_frames`, as plugins in priority order (after pydicom's `pixels/decoders`).

Each plugin has a name, the transfer syntaxes it handles, `is_available(syntax)` (what this environment has
installed) and `decode`, which writes the requested frames of a file into an RGB uint8 output array.
`plugin_for(syntax)` is the first plugin that handles the syntax and is available:

1. native (implicit/explicit VR little endian, deflated, big endian): numpy views of only the requested frames;
2. cv2-jpeg (JPEG baseline, and 8-bit extended): the frame's bytes from pydicom's encapsulation helpers,
   decoded by libjpeg-turbo through cv2.imdecode straight to RGB, at 1/2, 1/4 or 1/8 scale inside the IDCT.
   Available only with a pydicom JPEG plugin too: files whose colour markers or precision need it fall back
   to pydicom per file (decode.py);
3. pylibjpeg-rle (RLE lossless): the rle package's decoder on each requested frame;
4. pydicom (any syntax pydicom can decode: JPEG lossless, JPEG-LS, JPEG 2000, 12-bit JPEG, ...): pydicom's
   decoder with its best available plugin, one requested frame at a time.
Every plugin ends in RgbConverter (colour.py), so all give the same RGB for the same pixels. A new decoder is
one more `DecoderPlugin` in `DECODERS`, at its place in the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Protocol

import cv2
import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import reasons
from echo_pipeline.ingest.colour import RgbConverter, expand_ybr422
from echo_pipeline.ingest.jpeg import decode_jpeg_frame
from echo_pipeline.ingest.layout import PixelLayout
from echo_pipeline.ingest.syntaxes import (
    BIG_ENDIAN,
    CV2_JPEG,
    CV2_JPEG_SYNTAXES,
    NATIVE,
    NATIVE_SYNTAXES,
    PYDICOM,
    RLE,
    pydicom_can_decode,
    rle_package_available,
)


class Decode(Protocol):
    def __call__(self, ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, *, scale: int,
                 name: str, streams: dict[int, bytes]) -> None: ...


@dataclass(frozen=True)
class DecoderPlugin:
    """One decoder: which transfer syntaxes it handles (None = any), when it is available, how it decodes."""

    name: str
    syntaxes: frozenset[str] | None
    available: Callable[[str], bool]
    decode: Decode
    #: decode wants each requested frame's encapsulated bytes in ``streams`` (the native decoder is always given
    #: its frames' raw bytes there, read by decode.py without loading the whole Pixel Data)
    frame_streams: bool = False

    def handles(self, transfer_syntax: str) -> bool:
        return self.syntaxes is None or transfer_syntax in self.syntaxes

    def is_available(self, transfer_syntax: str) -> bool:
        return self.available(transfer_syntax)


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
    ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, *, scale: int, name: str,
    streams: dict[int, bytes],
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
    ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, *, scale: int, name: str,
    streams: dict[int, bytes],
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
    ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, *, scale: int, name: str,
    streams: dict[int, bytes],
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


def _decode_pydicom(
    ds: Dataset, layout: PixelLayout, indices: list[int], out: np.ndarray, *, scale: int, name: str,
    streams: dict[int, bytes],
) -> None:
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


DECODERS: tuple[DecoderPlugin, ...] = (
    DecoderPlugin(NATIVE, NATIVE_SYNTAXES, lambda _syntax: True, _decode_native),
    DecoderPlugin(CV2_JPEG, CV2_JPEG_SYNTAXES, pydicom_can_decode, _decode_cv2_jpeg, frame_streams=True),
    DecoderPlugin(RLE, frozenset({uid.RLELossless}), lambda _syntax: rle_package_available(), _decode_rle,
                  frame_streams=True),
    DecoderPlugin(PYDICOM, None, pydicom_can_decode, _decode_pydicom),
)


def plugin_for(transfer_syntax: str, plugins: tuple[DecoderPlugin, ...] = DECODERS) -> DecoderPlugin | None:
    """The first plugin, in priority order, that handles ``transfer_syntax`` and is available; None if none."""
    for plugin in plugins:
        if plugin.handles(transfer_syntax) and plugin.is_available(transfer_syntax):
            return plugin
    return None


def plugin_named(name: str) -> DecoderPlugin:
    return next(plugin for plugin in DECODERS if plugin.name == name)


@lru_cache(maxsize=None)
def decoder_for(transfer_syntax: str) -> str | None:
    """The name of the decoder used for ``transfer_syntax``, or None when nothing installed can decode it."""
    plugin = plugin_for(transfer_syntax)
    return plugin.name if plugin is not None else None


def supported_transfer_syntaxes() -> dict[str, str]:
    """Transfer syntax UID → decoder name, for every syntax pydicom knows that this environment decodes."""
    table = {str(ts): decoder_for(str(ts)) for ts in uid.AllTransferSyntaxes}
    return {ts: name for ts, name in table.items() if name is not None}
