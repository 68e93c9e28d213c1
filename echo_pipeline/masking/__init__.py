"""Sector masking and clip preprocessing: find the scanning sector, fail closed, write model-ready clips.

- `sectors`: per clip, the sector from SequenceOfUltrasoundRegions (regions.py: the 2D tissue region, the
  transducer origin) and/or the pixels (from_pixels.py, edges.py), its evidence (evidence.py) judged by
  plausibility.py; a PNG mask per clip or a quarantine row. The fan itself (apex, possibly virtual; near and
  far radius; independent side angles): geometry.py.
- `clips`: per clip, every frame masked, cropped to the sector's bounding square and resized
  (preprocess.py), stored as one `.npy` per clip (clip_store.py), one process per core (parallel.py).
- `dicom_file`: one DICOM file masked and preprocessed on the fly the same way (for search queries).
- `truth_agreement`: agreement with a synthetic cohort's ground-truth masks; `qc_summary`: QC quantiles otherwise.
- `inputs`: the upstream rows the two steps read (a shard's A4C clips; its kept masks as ClipJobs).
See docs/masking.md.
"""

from echo_pipeline.masking.clip_store import open_clip, read_frames
from echo_pipeline.masking.clips import (
    ClipFailure,
    ClipJob,
    masked_clip_table,
    preprocess_clip,
)
from echo_pipeline.masking.geometry import Fan, iou
from echo_pipeline.masking.plausibility import REASONS
from echo_pipeline.masking.preprocess import (
    OUTPUT_SIZE,
    CropPlan,
    apply_plan,
    output_mask,
    plan_crop,
)
from echo_pipeline.masking.sectors import (
    ClipSource,
    SectorOutcome,
    find_sector,
    load_mask,
    sector_tables,
)

CODE_VERSION = "masking-2"

__all__ = [
    "CODE_VERSION", "OUTPUT_SIZE", "REASONS", "ClipFailure", "ClipJob", "ClipSource", "CropPlan", "Fan",
    "SectorOutcome", "apply_plan", "find_sector", "iou", "load_mask", "masked_clip_table", "open_clip",
    "output_mask", "plan_crop", "preprocess_clip", "read_frames", "sector_tables",
]
