"""JPEG frames through libjpeg-turbo (cv2.imdecode), and when that gives the same colours as pydicom.

libjpeg decides by itself whether a 3-component stream is YCbCr (and converts it to RGB) from the JFIF and
Adobe APP14 markers and the component ids. DICOM decides from Photometric Interpretation. They disagree on a
few real files (an RGB stream with no marker, written by encoders that skip the colour transform), and on
those the decode falls back to pydicom; `cv2_matches_dicom` says which files are safe for the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SOF_MARKERS = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive Huffman: what libjpeg-turbo decodes
_RGB_IDS = {(82, 71, 66), (114, 103, 98)}  # ASCII "RGB" / "rgb"
# IMREAD_REDUCED_COLOR_N includes the BGR bit, which OpenCV refuses next to IMREAD_COLOR_RGB: use the scale bits alone.
_COLOUR_FLAGS = {scale: bits | cv2.IMREAD_COLOR_RGB for scale, bits in ((1, 0), (2, 16), (4, 32), (8, 64))}
_GREY_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


@dataclass(frozen=True)
class JpegHeader:
    """What a JPEG stream says about itself before the scan data."""

    sof_marker: int
    precision: int
    rows: int
    columns: int
    component_ids: tuple[int, ...]
    jfif: bool
    adobe_transform: int | None  # APP14 "Adobe" transform flag, None without the marker


def parse_jpeg_header(stream: bytes) -> JpegHeader | None:
    """Walk the marker segments up to the first SOF; None when ``stream`` is not a parseable JPEG."""
    if stream[:2] != b"\xff\xd8":
        return None
    offset, jfif, adobe = 2, False, None
    try:
        while offset + 4 <= len(stream):
            if stream[offset] != 0xFF:
                return None
            marker = stream[offset + 1]
            length = int.from_bytes(stream[offset + 2 : offset + 4], "big")
            body = stream[offset + 4 : offset + 2 + length]
            if marker == 0xE0 and body.startswith(b"JFIF"):
                jfif = True
            elif marker == 0xEE and body.startswith(b"Adobe") and len(body) >= 12:
                adobe = body[11]
            elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                count = body[5]
                ids = tuple(body[6 + 3 * i] for i in range(count))
                rows, columns = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
                return JpegHeader(marker, body[0], rows, columns, ids, jfif, adobe)
            offset += 2 + length
    except IndexError:
        return None
    return None


def _libjpeg_converts(header: JpegHeader) -> bool:
    """Whether libjpeg(-turbo) treats a 3-component stream as YCbCr (jdapimin.c default_decompress_parms)."""
    if header.jfif:
        return True
    if header.adobe_transform is not None:
        return header.adobe_transform != 0
    return header.component_ids != (82, 71, 66)


def _stream_is_ycbcr(header: JpegHeader, photometric: str) -> bool:
    """Whether the samples are YCbCr, by pydicom's reading: RGB component ids, then markers, then the header."""
    if header.component_ids in _RGB_IDS:
        return False
    if header.jfif:
        return True
    if header.adobe_transform is not None:
        return header.adobe_transform != 0
    return photometric.startswith("YBR")


def cv2_matches_dicom(header: JpegHeader | None, samples_per_pixel: int, photometric: str) -> bool:
    """True when cv2.imdecode of this stream gives the pixels DICOM means (8-bit, same colour handling)."""
    if header is None or header.precision != 8 or header.sof_marker not in _SOF_MARKERS:
        return False
    if len(header.component_ids) != samples_per_pixel or samples_per_pixel not in (1, 3):
        return False
    return samples_per_pixel == 1 or _libjpeg_converts(header) == _stream_is_ycbcr(header, photometric)


def decode_jpeg_frame(stream: bytes, samples_per_pixel: int, scale: int) -> np.ndarray | None:
    """One frame as (H/scale, W/scale, 3) RGB or (H/scale, W/scale) grey uint8, reduced inside libjpeg's IDCT.

    Returns None when libjpeg rejects the stream.
    """
    flags = (_COLOUR_FLAGS if samples_per_pixel == 3 else _GREY_FLAGS)[scale] | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.imdecode(np.frombuffer(stream, dtype=np.uint8), flags)
