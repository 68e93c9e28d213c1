"""Classify one file: a `dicom_instances` row, or an `ingest_quarantine` row with a reason code. Never raises.

Checks run in a fixed order and the first failure names the reason (reasons.REASONS lists them): read the
bytes, look for the Part-10 signature (never `force=True`), parse the header with pydicom's warnings
recorded, detect truncation (an element shorter than its declared length, a cut element header, or pydicom's
end-of-file warning for encapsulated Pixel Data), SOP class and UIDs, transfer syntax allow-list, pixel
geometry, Pixel Data length or frame count, and finally a decode of the last frame (the one truncation would
damage). The bytes are read once: hashing and parsing share them.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import reasons
from echo_pipeline.ingest.budget import check_declared, check_inflated, configured_budget
from echo_pipeline.ingest.decode import decode_frames
from echo_pipeline.ingest.header import identifying_values, instance_fields, quiet_values, scrub, text
from echo_pipeline.ingest.layout import check_pixel_data, pixel_layout
from echo_pipeline.ingest.scan import ScannedFile
from echo_pipeline.ingest.decoders import decoder_for
from echo_pipeline.ingest.syntaxes import is_image_sop_class
from echo_pipeline.ingest.uids import CHECKED_UIDS, shown, uid_problem

#: Files above this size are quarantined unread (read whole into memory otherwise).
MAX_FILE_BYTES = 4 * 1024**3
_MESSAGE_CHARS = 500
_UNDEFINED_LENGTH = 0xFFFFFFFF
_LONGEST_ELEMENT_HEADER = 12  # explicit VR with a 4-byte length (OB, OW, SQ, UN, UT, ...)
_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
)


@dataclass(frozen=True)
class Classified:
    """The outcome for one file: exactly one of ``instance`` / ``quarantine`` is a row dict."""

    instance: dict[str, Any] | None = None
    quarantine: dict[str, Any] | None = None


class _Rejected(Exception):
    """Internal: stop checking this file and quarantine it."""

    def __init__(self, reason: str, message: str, exception_type: str | None = None, sop_instance_uid: str | None = None):
        super().__init__(message)
        self.reason, self.message, self.exception_type, self.sop_instance_uid = reason, message, exception_type, sop_instance_uid


def classify_file(
    dicom_root: str | os.PathLike,
    scanned: ScannedFile,
    key: bytes,
    run_id: str,
    code_version: str,
    *,
    verify_decode: bool = True,
    max_decoded_bytes: int | None = None,
) -> Classified:
    """Read and validate ``dicom_root / scanned.relative_path``; every exception becomes a quarantine row.

    ``max_decoded_bytes`` is the decompressed-size budget (budget.py; None reads ECHO_PIPELINE_MAX_DECODED_MB).
    """
    base = {
        "relative_path": scanned.relative_path,
        "file_size": scanned.size,
        "file_mtime_ns": scanned.mtime_ns,
        "shard": scanned.shard,
        "file_sha256": None,
        "run_id": run_id,
        "code_version": code_version,
    }
    identifiers: list[str] = []
    budget = configured_budget() if max_decoded_bytes is None else max_decoded_bytes
    try:
        if scanned.unreadable_name:
            message = "expected a UTF-8 path; found undecodable bytes (shown escaped in relative_path); rename it"
            raise _Rejected(reasons.UNREADABLE_PATH, message)
        data = _read(Path(dicom_root) / scanned.relative_path, scanned.size)
        base["file_size"], base["file_sha256"] = len(data), hashlib.sha256(data).hexdigest()
        if not data:
            raise _Rejected(reasons.EMPTY, "expected a DICOM Part-10 file; found 0 bytes")
        # pydicom's remarks (charset fallbacks, odd values) say nothing the row does not; keep them off stderr.
        with quiet_values(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = _parse(data, budget)
            identifiers = identifying_values(ds)
            return Classified(instance={**base, **_validate(ds, scanned.relative_path, key, verify_decode, budget)})
    except _Rejected as rejected:
        return _quarantine(
            base, rejected.reason, rejected.exception_type, rejected.message, rejected.sop_instance_uid, identifiers
        )
    except NotImplementedError as exc:  # pydicom meets an element it cannot interpret (e.g. an unknown VR) lazily
        message = f"expected every header element to be interpretable; pydicom: {exc}"
        return _quarantine(base, reasons.UNREADABLE_HEADER, type(exc).__name__, message, None, identifiers)
    except Exception as exc:  # the batch must go on: an unforeseen failure is a quarantine row, not a crash
        message = f"expected classification to finish; {type(exc).__name__} was raised: {exc}"
        return _quarantine(base, reasons.UNEXPECTED_ERROR, type(exc).__name__, message, None, identifiers)


def _quarantine(
    base: dict, reason: str, exception_type: str | None, message: str, sop: str | None, identifiers: list[str]
) -> Classified:
    sop = None if sop is None or uid_problem(sop) else sop  # a hostile UID is reported in the message only
    row = {**base, "reason": reason, "exception_type": exception_type, "sop_instance_uid": sop, "duplicate_of": None}
    row["message"] = scrub(message, identifiers)[:_MESSAGE_CHARS]
    return Classified(quarantine=row)


def _read(path: Path, size: int) -> bytes:
    if size > MAX_FILE_BYTES:
        raise _Rejected(reasons.TOO_LARGE, f"expected a file of at most {MAX_FILE_BYTES} bytes; found {size}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        message = f"expected a readable file; reading failed: {exc.strerror}"
        raise _Rejected(reasons.READ_ERROR, message, type(exc).__name__) from exc
    return data


def _parse(data: bytes, budget: int) -> Dataset:
    """The parsed data set, or _Rejected: not DICOM, no file meta, too large once inflated, unreadable, or
    truncated."""
    if data[128:132] != b"DICM":
        if _looks_like_raw_dataset(data):
            raise _Rejected(
                reasons.MISSING_FILE_META,
                "expected a 128-byte preamble and 'DICM' (DICOM Part 10); found a data set starting with a group "
                "0002/0008 element but no file meta header; re-export it as Part 10 (e.g. dcmconv +F)",
            )
        found = f"{_describe(data)} of {len(data)} bytes"
        raise _Rejected(reasons.NOT_DICOM, f"expected 'DICM' at byte 128 (DICOM Part 10); found {found}")
    try:
        check_inflated(data, budget)  # before pydicom inflates a deflated data set whole
    except DicomDecodeError as exc:
        raise _Rejected(exc.reason, str(exc)) from exc
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except (EOFError, struct.error) as exc:  # struct.error: a length field cut short ("unpack requires ...")
            message = f"expected a complete header; the file ends inside it: {exc}"
            raise _Rejected(reasons.TRUNCATED, message, type(exc).__name__) from exc
        except Exception as exc:  # zlib says "incomplete or truncated stream" for a cut deflated file
            reason = reasons.TRUNCATED if "truncated" in str(exc) else reasons.UNREADABLE_HEADER
            raise _Rejected(reason, f"expected a parseable DICOM header; pydicom: {exc}", type(exc).__name__) from exc
    # Recorded, not shown: they are the evidence of truncation, and noise otherwise.
    _check_complete(ds, [str(w.message) for w in caught], len(data))
    return ds


def _check_complete(ds: Dataset, warning_messages: list[str], size: int) -> None:
    """Truncation shows as a value shorter than its declared length, or as pydicom's end-of-file warning."""
    for message in warning_messages:
        if "end of file" in message.lower():
            raise _Rejected(
                reasons.TRUNCATED,
                f"expected the data set (or its encapsulated Pixel Data) to end with its delimiter; the file ends first "
                f"after {size} bytes (pydicom: {message.split(' in file ')[0]})",
                sop_instance_uid=text(ds, "SOPInstanceUID"),
            )
    sized = [
        e for e in ds.elements() if isinstance(e, RawDataElement) and e.length != _UNDEFINED_LENGTH and e.value is not None
    ]
    for element in sized:
        if len(element.value) < element.length:
            raise _Rejected(
                reasons.TRUNCATED,
                f"expected {element.length} bytes for element {element.tag}; the file ends after {len(element.value)} "
                f"of them ({size} bytes in all)",
                sop_instance_uid=text(ds, "SOPInstanceUID"),
            )
    # pydicom stops silently when fewer bytes than an element header remain: a cut inside the next header.
    last = max(sized, key=lambda e: e.value_tell or 0, default=None)
    leftover = size - (last.value_tell + last.length) if last is not None and last.value_tell is not None else 0
    if 0 < leftover < _LONGEST_ELEMENT_HEADER:
        raise _Rejected(
            reasons.TRUNCATED,
            f"expected a complete element after {last.tag}; the file ends {leftover} bytes into the next element header",
            sop_instance_uid=text(ds, "SOPInstanceUID"),
        )


def _validate(ds: Dataset, name: str, key: bytes, verify_decode: bool, budget: int) -> dict[str, Any]:
    """The header-derived instance columns, after every check has passed."""
    # A DICOMDIR or a stripped object may only name its class in the file meta.
    sop_class = text(ds, "SOPClassUID") or text(getattr(ds, "file_meta", Dataset()), "MediaStorageSOPClassUID")
    sop = text(ds, "SOPInstanceUID")
    if sop_class is None:
        raise _Rejected(reasons.MISSING_ATTRIBUTE, "expected (0008,0016) SOPClassUID; found none", sop_instance_uid=sop)
    if not is_image_sop_class(sop_class):
        raise _Rejected(
            reasons.NON_IMAGE_OBJECT,
            f"expected an image storage SOP class; found {sop_class} ({pydicom.uid.UID(sop_class).name})",
            sop_instance_uid=sop,
        )
    if sop is None:
        raise _Rejected(reasons.MISSING_ATTRIBUTE, "expected (0008,0018) SOPInstanceUID; found none")
    for keyword in CHECKED_UIDS:  # UIDs key every table and (hashed) every file name downstream
        value = text(ds, keyword)
        problem = uid_problem(value) if value is not None else None
        if problem:
            raise _Rejected(reasons.INVALID_UID, f"expected {keyword} to be a DICOM UID; found {shown(value)}: {problem}")
    if "PixelData" not in ds:
        message = f"expected (7FE0,0010) Pixel Data in a {pydicom.uid.UID(sop_class).name}; found none"
        raise _Rejected(reasons.NO_PIXEL_DATA, message, sop_instance_uid=sop)
    try:
        layout = pixel_layout(ds, name)
        check_declared(layout.rows, layout.columns, layout.frames, layout.samples_per_pixel, layout.bits_allocated, budget)
        if decoder_for(layout.transfer_syntax) is None:
            raise DicomDecodeError(
                f"expected a transfer syntax with an installed decoder; found {layout.transfer_syntax} "
                f"({pydicom.uid.UID(layout.transfer_syntax).name})",
                reasons.UNSUPPORTED_TRANSFER_SYNTAX,
            )
        check_pixel_data(ds, layout, name)
        if verify_decode:
            decode_frames(ds, [layout.frames - 1])
    except DicomDecodeError as exc:
        cause = exc.__cause__
        message = str(exc).removeprefix(f"{name}: ").removeprefix("<dataset>: ")  # the row already names the file
        raise _Rejected(exc.reason, message, type(cause).__name__ if cause else None, sop) from exc
    return {
        **instance_fields(ds, key),
        "transfer_syntax_uid": layout.transfer_syntax,
        "photometric_interpretation": layout.photometric,
        "rows": layout.rows,
        "columns": layout.columns,
        "frames": layout.frames,
        "samples_per_pixel": layout.samples_per_pixel,
        "bits_allocated": layout.bits_allocated,
    }


def _looks_like_raw_dataset(data: bytes) -> bool:
    """A data set written without preamble or meta: starts with a (0002/0008,xxxx) tag then a VR or a length."""
    if len(data) < 8:
        return False
    for order in ("little", "big"):
        group, element = int.from_bytes(data[0:2], order), int.from_bytes(data[2:4], order)
        if group not in (0x0002, 0x0008) or element > 0x1FFF:
            continue
        explicit_vr = data[4:6].isalpha() and data[4:6].isupper()
        implicit_length = int.from_bytes(data[4:8], order)
        if explicit_vr or implicit_length <= len(data) - 8:
            return True
    return False


def _describe(data: bytes) -> str:
    """What a non-DICOM file appears to be, without quoting its content."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    decoded = data[:512].decode("utf-8", errors="ignore")
    return "text" if all(c.isprintable() or c in "\r\n\t" for c in decoded) else "binary data"
