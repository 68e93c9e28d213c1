"""Per clip: decode every frame, crop, resize and mask it into a `.npy` clip; make the masked_clips row.

`preprocess_clip` is the unit of work a worker process runs; `masked_clip_table` runs it over a shard's
masked clips and returns the `masked_clips` table, reusing rows of clips already done. A clip that cannot be
written is a `ClipFailure`, and `failure_table` turns failures into `mask_quarantine` rows (reason
`clip_not_written`): every clip that enters masking ends in `masked_clips` or `mask_quarantine`.

Clip files are named by a hash of the SOP Instance UID (`safe_paths.uid_file_stem`), never the UID itself;
the row's `clip_path` is how a table finds the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow as pa
import pydicom

from echo_pipeline.errors import MaskingError
from echo_pipeline.ingest.decode import decode_frames
from echo_pipeline.masking import clip_store
from echo_pipeline.masking.parallel import map_clips
from echo_pipeline.masking.preprocess import (
    OUTPUT_SIZE,
    apply_plan,
    choose_scale,
    plan_crop,
)
from echo_pipeline.masking.sectors import load_mask
from echo_pipeline.safe_paths import contained, uid_file_stem
from echo_pipeline.schemas import MASK_QUARANTINE, MASKED_CLIPS
from echo_pipeline.source_paths import redact
from echo_pipeline.storage import rows_to_table

CLIP_NOT_WRITTEN = "clip_not_written"  # the mask_quarantine reason of a ClipFailure
#: Frames decoded at once: bounds memory for long, large clips (64 x 1024 x 768 x 3 ≈ 150 MB).
CHUNK_FRAMES = 64


@dataclass(frozen=True)
class ClipJob:
    """One masked clip to make. Picklable for worker processes."""

    sop_instance_uid: str
    file_sha256: str
    shard: str
    path: str  # absolute path of the DICOM file (from the restricted mapping; never in a message)
    mask_path: str  # absolute path of the sector mask PNG
    mask_method: str
    frame_rate: float | None = None
    label: str = ""  # the pseudonymised relative_path: what messages name ("" = the path itself, a user's file)


@dataclass(frozen=True)
class ClipFailure:
    """A clip that could not be made (its frames stopped decoding, its mask does not fit): nothing is written."""

    sop_instance_uid: str
    message: str
    file_sha256: str
    shard: str

    def quarantine_row(self, run_id: str, code_version: str) -> dict:
        return {"sop_instance_uid": self.sop_instance_uid, "file_sha256": self.file_sha256, "shard": self.shard,
                "reason": CLIP_NOT_WRITTEN, "message": self.message, "method": None, "area_fraction": None,
                "run_id": run_id, "code_version": code_version}


def preprocess_clip(job: ClipJob, *, clip_dir: Path, data_root: Path, size: int, run_id: str, code_version: str) -> dict | ClipFailure:
    """Write the masked clip of ``job`` and return its masked_clips row, or a ClipFailure (no file left)."""
    try:
        target = contained(clip_dir / f"{uid_file_stem(job.sop_instance_uid)}{clip_store.SUFFIX}", data_root)
        ds = pydicom.dcmread(job.path)
        mask = load_mask(job.mask_path)
        rows, cols, frames = int(ds.Rows), int(ds.Columns), int(getattr(ds, "NumberOfFrames", 1) or 1)
        if mask.shape != (rows, cols):
            raise MaskingError(f"{job.mask_path}: mask is {mask.shape}, the frames are {(rows, cols)}; re-run sector_masks")
        # First exact step: a power-of-two reduction while decoding (inside libjpeg's IDCT for JPEG, an
        # integer-ratio area average otherwise), leaving one bilinear step of ratio < 2 (preprocess.py).
        scale = choose_scale(mask, size)
        plan = plan_crop(mask, size, scale)
        with clip_store.create_clip(target, frames, size, size) as out:
            for start in range(0, frames, CHUNK_FRAMES):
                stop = min(start + CHUNK_FRAMES, frames)
                apply_plan(decode_frames(ds, range(start, stop), scale=scale), plan, out[start:stop])
    except Exception as error:  # one bad clip never stops the shard: it becomes a mask_quarantine row
        label = job.label or job.path
        return ClipFailure(job.sop_instance_uid, redact(f"{label}: {type(error).__name__}: {error}", job.path, label),
                           job.file_sha256, job.shard)
    qx, qy, side = plan.square
    return {
        "sop_instance_uid": job.sop_instance_uid, "file_sha256": job.file_sha256, "shard": job.shard,
        "clip_path": target.relative_to(data_root).as_posix(), "clip_format": clip_store.FORMAT, "frames": frames,
        "frame_rate": job.frame_rate, "height": size, "width": size, "mask_method": job.mask_method,
        "decode_scale": scale, "crop_x0": qx * scale, "crop_y0": qy * scale, "crop_side": side * scale,
        "kept_fraction": plan.kept_fraction, "run_id": run_id, "code_version": code_version,
    }


def masked_clip_table(
    jobs: list[ClipJob], previous: pa.Table | None, *, clip_dir: Path, data_root: Path, run_id: str,
    code_version: str, size: int = OUTPUT_SIZE, workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, list[ClipFailure]]:
    """(masked_clips table, failures) for ``jobs``. A clip whose previous row has the same file_sha256, code
    version and size, and whose file exists, is kept as it is; rows of clips not in ``jobs`` are dropped."""
    data_root = Path(data_root)
    wanted = {j.sop_instance_uid: j.file_sha256 for j in jobs}
    kept = [r for r in (previous.to_pylist() if previous is not None else [])
            if wanted.get(r["sop_instance_uid"]) == r["file_sha256"] and r["code_version"] == code_version
            and r["height"] == size and (data_root / r["clip_path"]).exists()]
    skip = {r["sop_instance_uid"] for r in kept}
    todo = [j for j in jobs if j.sop_instance_uid not in skip]
    clip_dir.mkdir(parents=True, exist_ok=True)
    work = partial(preprocess_clip, clip_dir=clip_dir, data_root=data_root, size=size, run_id=run_id,
                   code_version=code_version)
    rows, failures = list(kept), []
    for done, result in enumerate(map_clips(work, todo, workers), start=1):
        (failures if isinstance(result, ClipFailure) else rows).append(result)
        if progress is not None and (done % 25 == 0 or done == len(todo)):
            progress(done, len(todo))
    return rows_to_table(sorted(rows, key=lambda r: r["sop_instance_uid"]), MASKED_CLIPS), failures


def failure_table(failures: list[ClipFailure], run_id: str, code_version: str) -> pa.Table:
    """`mask_quarantine` rows (reason `clip_not_written`) for clips whose masked clip could not be written."""
    rows = sorted((f.quarantine_row(run_id, code_version) for f in failures), key=lambda r: r["sop_instance_uid"])
    return rows_to_table(rows, MASK_QUARANTINE)
