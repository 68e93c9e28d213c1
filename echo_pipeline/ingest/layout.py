"""The pixel layout a DICOM header declares, checked before anything is decoded, and frame extraction.

`pixel_layout` refuses a header whose geometry cannot be trusted (missing or absurd values, frames too large
to allocate) with a DicomDecodeError carrying a reason code; `check_pixel_data` compares the declared layout
with the Pixel Data actually present. Both run in ingestion (to quarantine) and before every decode.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.uid import UID

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import reasons

#: One decoded frame may not exceed this (raw samples or RGB output): guards against absurd Rows x Columns.
MAX_FRAME_BYTES = 256 * 1024 * 1024
SUPPORTED_PHOTOMETRIC = {
    1: {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"},
    3: {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"},
}


@dataclass(frozen=True)
class PixelLayout:
    """Image pixel module values of one file, as the decoders need them."""

    transfer_syntax: str
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    planar_configuration: int
    frames: int

    @property
    def is_encapsulated(self) -> bool:
        return UID(self.transfer_syntax).is_encapsulated

    @property
    def native_frame_bytes(self) -> int:
        """Bytes of one native frame (YBR_FULL_422 stores two samples per pixel instead of three)."""
        samples = self.rows * self.columns * self.samples_per_pixel
        if self.photometric == "YBR_FULL_422":
            samples = samples // 3 * 2
        return samples * self.bits_allocated // 8

    @property
    def native_total_bytes(self) -> int:
        if self.bits_allocated == 1:  # bits are packed across frame boundaries
            return (self.rows * self.columns * self.samples_per_pixel * self.frames + 7) // 8
        return self.native_frame_bytes * self.frames


def _int_attr(ds: Dataset, keyword: str, name: str, default: int | None = None) -> int:
    value = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise DicomDecodeError(f"{name}: expected {keyword} in the image pixel module; found none", reasons.MISSING_ATTRIBUTE)
        value = default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DicomDecodeError(f"{name}: expected an integer {keyword}; found {value!r}", reasons.UNSUPPORTED_PIXEL_FORMAT) from exc


def pixel_layout(ds: Dataset, name: str) -> PixelLayout:
    """Read and sanity-check the image pixel module of ``ds`` (``name`` labels messages); raise DicomDecodeError."""
    transfer_syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if not transfer_syntax:
        message = f"{name}: expected (0002,0010) TransferSyntaxUID in the file meta; found none"
        raise DicomDecodeError(message, reasons.MISSING_ATTRIBUTE)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if not photometric:
        raise DicomDecodeError(f"{name}: expected (0028,0004) PhotometricInterpretation; found none", reasons.MISSING_ATTRIBUTE)
    layout = PixelLayout(
        transfer_syntax=str(transfer_syntax),
        rows=_int_attr(ds, "Rows", name),
        columns=_int_attr(ds, "Columns", name),
        samples_per_pixel=_int_attr(ds, "SamplesPerPixel", name),
        bits_allocated=_int_attr(ds, "BitsAllocated", name),
        bits_stored=_int_attr(ds, "BitsStored", name, default=ds.get("BitsAllocated")),
        pixel_representation=_int_attr(ds, "PixelRepresentation", name, default=0),
        photometric=photometric,
        planar_configuration=_int_attr(ds, "PlanarConfiguration", name, default=0),
        frames=_int_attr(ds, "NumberOfFrames", name, default=1),
    )
    _check_format(layout, name)
    return layout


def _check_format(layout: PixelLayout, name: str) -> None:
    bad = reasons.UNSUPPORTED_PIXEL_FORMAT
    if layout.rows < 1 or layout.columns < 1 or layout.frames < 1:
        raise DicomDecodeError(
            f"{name}: expected Rows, Columns and NumberOfFrames >= 1; found {layout.rows} x {layout.columns} x {layout.frames}", bad
        )
    if layout.samples_per_pixel not in SUPPORTED_PHOTOMETRIC:
        raise DicomDecodeError(f"{name}: expected SamplesPerPixel 1 or 3; found {layout.samples_per_pixel}", bad)
    if layout.photometric not in SUPPORTED_PHOTOMETRIC[layout.samples_per_pixel]:
        raise DicomDecodeError(
            f"{name}: expected PhotometricInterpretation in {sorted(SUPPORTED_PHOTOMETRIC[layout.samples_per_pixel])} "
            f"for SamplesPerPixel {layout.samples_per_pixel}; found {layout.photometric!r}",
            bad,
        )
    if layout.bits_allocated not in (1, 8, 16, 32) or not 1 <= layout.bits_stored <= layout.bits_allocated:
        raise DicomDecodeError(
            f"{name}: expected BitsAllocated 1/8/16/32 and 1 <= BitsStored <= BitsAllocated; "
            f"found {layout.bits_allocated}/{layout.bits_stored}",
            bad,
        )
    frame_bytes = layout.rows * layout.columns * max(3, layout.samples_per_pixel * layout.bits_allocated // 8)
    if frame_bytes > MAX_FRAME_BYTES:
        raise DicomDecodeError(
            f"{name}: expected one frame to need at most {MAX_FRAME_BYTES} bytes; {layout.rows} x {layout.columns} "
            f"x {layout.samples_per_pixel} samples of {layout.bits_allocated} bits need {frame_bytes}",
            reasons.TOO_LARGE,
        )


def _extended_offsets(ds: Dataset) -> tuple[bytes, bytes] | None:
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        return ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths
    return None


def encapsulated_frames(ds: Dataset, layout: PixelLayout, indices: list[int] | None, name: str) -> dict[int, bytes]:
    """The compressed bytes of frames ``indices`` (None: count only and return {}), parsing items once.

    Raises DicomDecodeError (inconsistent_pixel_data) when the fragments do not make NumberOfFrames frames.
    """
    wanted = set(indices or ())
    found: dict[int, bytes] = {}
    count = 0
    try:
        for index, fragments in enumerate(
            generate_fragmented_frames(ds.PixelData, number_of_frames=layout.frames, extended_offsets=_extended_offsets(ds))
        ):
            if index in wanted:
                found[index] = fragments[0] if len(fragments) == 1 else b"".join(fragments)
            count = index + 1
    except (ValueError, KeyError, IndexError, EOFError, TypeError) as exc:
        raise DicomDecodeError(
            f"{name}: expected encapsulated Pixel Data items (FFFE,E000); parsing them failed: {exc}", reasons.INCONSISTENT_PIXEL_DATA
        ) from exc
    if count != layout.frames:
        raise DicomDecodeError(
            f"{name}: expected {layout.frames} encapsulated frame(s) (NumberOfFrames); found {count} in the Pixel Data items",
            reasons.INCONSISTENT_PIXEL_DATA,
        )
    return found


def check_pixel_data(ds: Dataset, layout: PixelLayout, name: str) -> None:
    """Raise DicomDecodeError when the Pixel Data present cannot hold the frames the header declares."""
    if layout.is_encapsulated:
        encapsulated_frames(ds, layout, None, name)
        return
    expected, found = layout.native_total_bytes, len(ds.PixelData)
    # Trailing padding shorter than a frame is ignored (as pydicom does); a whole extra frame or more means
    # NumberOfFrames and the data disagree.
    if not expected <= found < expected + max(layout.native_frame_bytes, 2):
        raise DicomDecodeError(
            f"{name}: expected {expected} bytes of native Pixel Data ({layout.frames} frame(s) of {layout.rows} x "
            f"{layout.columns} x {layout.samples_per_pixel} samples, {layout.bits_allocated} bits, {layout.photometric}); "
            f"found {found}",
            reasons.INCONSISTENT_PIXEL_DATA,
        )
