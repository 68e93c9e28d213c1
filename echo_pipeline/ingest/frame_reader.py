"""Read only the requested frames' bytes of a DICOM file, not the whole Pixel Data.

Finding a sector or a view looks at 16 frames of a clip; reading the whole file for them costs a read of
every frame. Here the header is parsed up to (7FE0,0010) Pixel Data (pydicom, ``stop_before_pixels``), and
then each wanted frame is one seek and one read:
- native data: frame i lies at ``i * frame_bytes`` in the value;
- encapsulated data (PS3.5 A.4): the item headers are walked (8 bytes each, the values skipped) to find the
  fragments; with one fragment per frame (what scanners write) frame i is fragment i; otherwise the Basic or
  Extended Offset Table says where each frame starts (pydicom.encaps.get_frame on the open file).
Files this does not cover (deflated or big endian transfer syntaxes, several fragments per frame without
an offset table, Pixel Data that is not the last large element) give None: the caller reads the whole file.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import UID

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import reasons

_PIXEL_DATA = (0x7FE0, 0x0010)
_ITEM, _SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
_UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True)
class PixelDataLocation:
    """Where the Pixel Data value starts in the file and how long it is (_UNDEFINED when encapsulated)."""

    offset: int
    length: int


def read_header(path: str | os.PathLike) -> tuple[Dataset, PixelDataLocation | None]:
    """The dataset without Pixel Data and where its value lies; the location is None when frames cannot be
    read from it directly (no Pixel Data element, deflated or big endian transfer syntax)."""
    with open(path, "rb", buffering=0) as f:  # unbuffered: a buffer would read ahead into frames we skip
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        syntax = UID(str(getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID", "")))
        if not syntax or syntax.is_deflated or not syntax.is_little_endian:
            return ds, None
        start = f.tell()
        head = f.read(8)
        if len(head) < 8 or struct.unpack("<HH", head[:4]) != _PIXEL_DATA:
            return ds, None
        if syntax.is_implicit_VR:
            length = struct.unpack("<L", head[4:])[0]
            return ds, PixelDataLocation(start + 8, length)
        rest = f.read(4)
        if len(rest) < 4 or head[4:6] not in (b"OB", b"OW", b"UN"):
            return ds, None
        return ds, PixelDataLocation(start + 12, struct.unpack("<L", rest)[0])


def read_native_frames(path: str | os.PathLike, where: PixelDataLocation, frame_bytes: int, frames: int,
                       indices: list[int]) -> dict[int, bytes]:
    """The bytes of native frames ``indices``; DicomDecodeError when the value cannot hold ``frames`` frames."""
    if where.length == _UNDEFINED or where.length < frame_bytes * frames:
        raise DicomDecodeError(
            f"{path}: expected {frame_bytes * frames} bytes of native Pixel Data; found {where.length}",
            reasons.INCONSISTENT_PIXEL_DATA,
        )
    found = {}
    with open(path, "rb", buffering=0) as f:  # unbuffered: a buffer would read ahead into frames we skip
        for index in sorted(set(indices)):
            f.seek(where.offset + index * frame_bytes)
            found[index] = f.read(frame_bytes)
            if len(found[index]) != frame_bytes:
                raise DicomDecodeError(f"{path}: native frame {index} is cut short by the end of the file",
                                       reasons.INCONSISTENT_PIXEL_DATA)
    return found


def _fragments(f: BinaryIO, where: PixelDataLocation) -> list[tuple[int, int]] | None:
    """(offset, length) of every fragment after the Basic Offset Table, reading item headers only; None when
    the items are malformed."""
    f.seek(where.offset)
    items = []
    while True:
        head = f.read(8)
        if len(head) < 8:
            return items[1:] if items else None  # no sequence delimiter before the end of the file
        group, element, length = struct.unpack("<HHL", head)
        if (group, element) == _SEQUENCE_END:
            return items[1:] if items else None
        if (group, element) != _ITEM or length == _UNDEFINED:
            return None
        items.append((f.tell(), length))
        f.seek(length, os.SEEK_CUR)


def read_encapsulated_frames(path: str | os.PathLike, ds: Dataset, where: PixelDataLocation, frames: int,
                             indices: list[int]) -> dict[int, bytes] | None:
    """The compressed bytes of frames ``indices``, or None when the layout needs the whole Pixel Data to
    be parsed (the caller then does that, and reports what is wrong with it)."""
    if where.length != _UNDEFINED:
        return None
    with open(path, "rb", buffering=0) as f:  # unbuffered: a buffer would read ahead into frames we skip
        fragments = _fragments(f, where)
        if fragments is None:
            return None
        if len(fragments) == frames:
            found = {}
            for index in sorted(set(indices)):
                offset, length = fragments[index]
                f.seek(offset)
                found[index] = f.read(length)
            return found
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths) if "ExtendedOffsetTable" in ds else None
        f.seek(where.offset)
        has_offsets = extended is not None or struct.unpack("<L", f.read(8)[4:])[0] > 0
        if not has_offsets or len(fragments) < frames:
            return None
        found = {}
        for index in sorted(set(indices)):
            f.seek(where.offset)
            found[index] = get_frame(f, index, number_of_frames=frames, extended_offsets=extended)
        return found
