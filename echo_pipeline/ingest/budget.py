"""The decompressed-size budget of one file: checked before anything is inflated or decoded.

A small file can declare, or inflate to, far more memory than the machine has: a few hundred KB of Deflated
Explicit VR Little Endian (1.2.840.10008.1.2.1.99) inflates to a GB of zero frames. Two guards, both giving
the quarantine reason `too_large`:

- `check_declared`: Rows x Columns x NumberOfFrames x SamplesPerPixel x BitsAllocated / 8 from the header,
  before any frame is decoded;
- `check_inflated`: a deflated data set is inflated with a cap (zlib's ``max_length``) before pydicom inflates
  it whole, so no more than the budget is ever allocated.

The budget is `ECHO_PIPELINE_MAX_DECODED_MB` (MiB, default 2048, documented in docs/ingestion.md). It bounds
ingestion's memory per worker; raise it for archives of very long, large clips.
"""

from __future__ import annotations

import io
import os
import zlib

from pydicom.filereader import _read_file_meta_info  # pydicom's own meta parser; public wrapper wants a path
from pydicom.uid import DeflatedExplicitVRLittleEndian

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import reasons

BUDGET_ENV_VAR = "ECHO_PIPELINE_MAX_DECODED_MB"
DEFAULT_BUDGET_MB = 2048
_PREAMBLE_AND_MAGIC = 132
_FIX = f"raise {BUDGET_ENV_VAR} if such files are genuine and the machine has the memory"


def configured_budget() -> int:
    """The per-file decoded-size budget in bytes, from the environment (default 2048 MiB)."""
    value = os.environ.get(BUDGET_ENV_VAR, str(DEFAULT_BUDGET_MB))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{BUDGET_ENV_VAR}={value!r}: expected a positive whole number of MiB")
    return int(value) * 1024 * 1024


def check_declared(rows: int, columns: int, frames: int, samples: int, bits_allocated: int, budget: int) -> None:
    """Raise DicomDecodeError(too_large) when the declared pixel data would decode to more than ``budget``."""
    declared = rows * columns * frames * samples * max(bits_allocated, 8) // 8
    if declared > budget:
        raise DicomDecodeError(
            f"expected decoded pixel data of at most {budget} bytes; the header declares {rows} x {columns} x "
            f"{frames} frames x {samples} samples x {bits_allocated} bits = {declared} bytes; {_FIX}",
            reasons.TOO_LARGE,
        )


def check_inflated(data: bytes, budget: int) -> None:
    """For a Part-10 file in the deflated transfer syntax, inflate at most ``budget`` + 1 bytes of its data set
    and raise DicomDecodeError(too_large) when that is not all of it. Other files pass untouched."""
    stream = io.BytesIO(data)
    stream.seek(_PREAMBLE_AND_MAGIC)
    try:
        meta = _read_file_meta_info(stream)
    except Exception:  # an unreadable meta header is for the parser to report, with its own reason
        return
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = len(inflater.decompress(memoryview(data)[stream.tell():], budget + 1))
    except zlib.error:  # corrupt or cut: the parser reports it as truncated or unreadable
        return
    if inflated > budget:
        raise DicomDecodeError(
            f"expected a deflated data set inflating to at most {budget} bytes; {len(data)} bytes on disk inflate "
            f"to more (inflation stopped at the budget); {_FIX}",
            reasons.TOO_LARGE,
        )
