"""Quarantine reason codes: why a file under `dicom_root` is not a row of `dicom_instances`.

Every file ends in exactly one of the two ingestion outputs; a quarantine row carries one of these codes,
the exception type when one was raised, and a message saying what was expected and what was found.
docs/ingestion.md lists the same codes for users; change both together.
"""

from __future__ import annotations

UNREADABLE_PATH = "unreadable_path"
READ_ERROR = "read_error"
EMPTY = "empty"
TOO_LARGE = "too_large"
NOT_DICOM = "not_dicom"
MISSING_FILE_META = "missing_file_meta"
UNREADABLE_HEADER = "unreadable_header"
TRUNCATED = "truncated"
MISSING_ATTRIBUTE = "missing_attribute"
INVALID_UID = "invalid_uid"
NON_IMAGE_OBJECT = "non_image_object"
NO_PIXEL_DATA = "no_pixel_data"
UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
UNSUPPORTED_PIXEL_FORMAT = "unsupported_pixel_format"
INCONSISTENT_PIXEL_DATA = "inconsistent_pixel_data"
DECODE_FAILED = "decode_failed"
DUPLICATE = "duplicate"
UNEXPECTED_ERROR = "unexpected_error"

#: Code → what it means, in the order the checks run (the first failing check names the file's reason).
REASONS: dict[str, str] = {
    UNREADABLE_PATH: "the file's name (or a folder's) is not valid UTF-8; relative_path holds it with the bytes escaped",
    READ_ERROR: "the file could not be read (permissions, I/O error); file_sha256 is null",
    EMPTY: "the file has zero bytes",
    TOO_LARGE: "the file, one decoded frame, or the decoded (or inflated) data set exceeds its size budget",
    NOT_DICOM: "no DICOM Part-10 signature ('DICM' at byte 128) and no recognisable DICOM data set",
    MISSING_FILE_META: "a raw DICOM data set without the Part-10 preamble and file meta header; not read",
    UNREADABLE_HEADER: "the Part-10 signature is present but pydicom cannot parse the header",
    TRUNCATED: "the file ends before an element's declared length or before the pixel data delimiter",
    MISSING_ATTRIBUTE: "a required attribute is absent (SOP class/instance UID, transfer syntax, image geometry)",
    NON_IMAGE_OBJECT: "the SOP class is not an image storage class (SR, presentation state, waveform, RT, ...)",
    INVALID_UID: "a SOP instance, series or study UID is not digits and dots, <= 64 characters (PS3.5 9.1)",
    NO_PIXEL_DATA: "an image SOP class without (7FE0,0010) Pixel Data",
    UNSUPPORTED_TRANSFER_SYNTAX: "no installed decoder handles the transfer syntax",
    UNSUPPORTED_PIXEL_FORMAT: "geometry or sample format the decoder does not handle (bit depth, samples, colour)",
    INCONSISTENT_PIXEL_DATA: "Pixel Data length or frame count disagrees with Rows x Columns x frames",
    DECODE_FAILED: "the header is valid but decoding the last frame failed",
    DUPLICATE: "same SOP instance UID or same bytes as another file; duplicate_of names the kept copy",
    UNEXPECTED_ERROR: "any other exception while classifying the file (a bug to report)",
}
