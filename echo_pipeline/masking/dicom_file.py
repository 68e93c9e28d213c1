"""One DICOM file masked and preprocessed on the fly, exactly as `sector_masks` and `masked_clips` do it.

Search uses it to embed a clip given as a file (`echo-pipeline search --dicom`); nothing is written to a
table, and the intermediate mask and clip live in a temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pydicom

from echo_pipeline import masking
from echo_pipeline.errors import InputContractError
from echo_pipeline.masking.clips import ClipFailure, ClipJob, preprocess_clip
from echo_pipeline.masking.preprocess import OUTPUT_SIZE
from echo_pipeline.masking.sectors import ClipSource, find_sector

_QUERY_ID = "search-query"  # stands in for ids of an on-the-fly clip; its files live in a temporary folder


def masked_frames_from_dicom(path: Path, size: int = OUTPUT_SIZE) -> np.ndarray:
    """uint8 (T, size, size, 3) frames of a DICOM clip, masked to its sector exactly as `masked_clips` does.

    Raises InputContractError naming the file when it cannot be read or has no plausible sector.
    """
    path = Path(path)
    try:
        pydicom.dcmread(path, stop_before_pixels=True)  # find_sector quarantines unreadable files; say it plainly here
    except (OSError, pydicom.errors.InvalidDicomError, AttributeError, ValueError) as error:
        raise InputContractError(f"{path}: not a readable DICOM file ({error}); pass a DICOM echo clip") from error
    with tempfile.TemporaryDirectory(prefix="echo-search-") as tmp:
        work = Path(tmp)
        outcome = find_sector(ClipSource(_QUERY_ID, _QUERY_ID, _QUERY_ID, str(path)), mask_dir=work,
                              data_root=work, run_id=_QUERY_ID, code_version=masking.CODE_VERSION)
        if outcome.mask_row is None:
            row = outcome.quarantine_row
            raise InputContractError(f"{path}: no usable scanning sector ({row['reason']}: {row['message']}); "
                                     "pass a 2D A4C clip with several frames")
        job = ClipJob(_QUERY_ID, _QUERY_ID, _QUERY_ID, str(path), str(work / outcome.mask_row["mask_path"]),
                      outcome.mask_row["method"])
        made = preprocess_clip(job, clip_dir=work, data_root=work, size=size, run_id=_QUERY_ID,
                               code_version=masking.CODE_VERSION)
        if isinstance(made, ClipFailure):
            raise InputContractError(f"{made.message}; pass a DICOM clip whose frames decode")
        return np.load(work / made["clip_path"])
