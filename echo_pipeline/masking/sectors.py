"""Per clip: find the sector (region tags and pixels), judge it, save the mask PNG, make the table row.

`find_sector` is the unit of work a worker process runs; `sector_tables` runs it over a shard's clips and
returns the `sector_masks` and `mask_quarantine` tables, reusing rows of clips already done. Mask files are
named by a hash of the SOP Instance UID (`safe_paths.uid_file_stem`), never the UID; `mask_path` finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pydicom

from echo_pipeline.errors import DicomDecodeError, MaskingError
from echo_pipeline.ingest.decode import decode_frames
from echo_pipeline.masking import plausibility
from echo_pipeline.masking.evidence import Sector
from echo_pipeline.masking.from_pixels import (
    SAMPLE_FRAMES,
    activity,
    sample_indices,
    sector_from_activity,
)
from echo_pipeline.masking.geometry import Fan, bbox, iou
from echo_pipeline.masking.parallel import map_clips
from echo_pipeline.masking.regions import (
    RegionBox,
    UltrasoundRegion,
    scaled_origin,
    sector_from_regions,
    tissue_region,
    ultrasound_regions,
)
from echo_pipeline.safe_paths import contained, uid_file_stem
from echo_pipeline.schemas import MASK_QUARANTINE, SECTOR_MASKS
from echo_pipeline.source_paths import SourcePaths, redact
from echo_pipeline.storage import atomic_path, rows_to_table

PIXELS = "pixels"
#: Frames are analysed at a reduced scale whose short side is still at least this many pixels.
ANALYSIS_SIDE = 240


@dataclass(frozen=True)
class ClipSource:
    """One clip to mask: ids and its DICOM file (whose header gives the region tags). Picklable."""

    sop_instance_uid: str
    file_sha256: str
    shard: str
    path: str  # absolute path of the DICOM file (from the restricted mapping; never in a message)
    label: str = ""  # the pseudonymised relative_path: what messages name ("" = the path itself, a user's file)


@dataclass
class SectorOutcome:
    """What one clip gave: a sector_masks row or a mask_quarantine row, and each method's fan with the
    region box that clips it (for evaluation against ground truth; not stored)."""

    mask_row: dict | None = None
    quarantine_row: dict | None = None
    fans: dict[str, Fan] = field(default_factory=dict)
    region: RegionBox | None = None

    def method_mask(self, method: str, rows: int, cols: int) -> np.ndarray:
        """The mask ``method`` gave (its fan, clipped to the region box unless it is the pixel method)."""
        mask = self.fans[method].mask(rows, cols)
        return mask if method == PIXELS or self.region is None else mask & self.region.mask(rows, cols)


def save_mask(path: Path, mask: np.ndarray) -> None:
    """Write a bool mask as an 8-bit PNG, 0 outside and 255 inside, atomically."""
    ok, encoded = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:
        raise MaskingError(f"{path}: could not encode the mask as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def load_mask(path: str | Path) -> np.ndarray:
    """A mask PNG as a bool array (True inside)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise MaskingError(f"{path}: sector mask PNG missing or unreadable; re-run the sector_masks asset")
    return image > 127


def _quarantine(source: ClipSource, reason: str, message: str, method: str | None, area: float | None, lineage: dict) -> dict:
    return {"sop_instance_uid": source.sop_instance_uid, "file_sha256": source.file_sha256, "shard": source.shard,
            "reason": reason, "message": message, "method": method, "area_fraction": area, **lineage}


def analysis_scale(rows: int, cols: int) -> int:
    """Decode scale for finding the sector: the largest that keeps the short side >= ANALYSIS_SIDE pixels.
    Edges are placed to a fraction of a pixel at that scale, so large frames lose nothing measurable."""
    return max(s for s in (1, 2, 4) if min(rows, cols) // s >= ANALYSIS_SIDE or s == 1)


@dataclass(frozen=True)
class _Measured:
    """What the sampled frames of a clip say: activity at the analysis scale, and the header's geometry."""

    change: np.ndarray
    scale: int
    rows: int
    cols: int
    sampled: int
    regions: list[UltrasoundRegion]


def _measure(source: ClipSource, samples: int) -> _Measured | tuple[str, str]:
    """The clip's activity and region tags, or (reason, message) when it cannot be measured. Only the
    sampled frames are read from the file (ingest.decode.decode_frames on the path)."""
    try:
        ds = pydicom.dcmread(source.path, stop_before_pixels=True)
        count = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if count < 2:
            return "too_few_frames", f"{count} frame(s)"
        rows, cols = int(ds.Rows), int(ds.Columns)
        scale = analysis_scale(rows, cols)
        indices = sample_indices(count, samples)
        change = activity(decode_frames(source.path, indices, scale=scale))
        return _Measured(change, scale, rows, cols, len(indices), ultrasound_regions(ds))
    except (DicomDecodeError, OSError, AttributeError, pydicom.errors.InvalidDicomError) as error:
        label = source.label or source.path
        return "decode_failed", redact(f"{label}: {type(error).__name__}: {error}", source.path, label)


def _refuse_regions(regions: list[UltrasoundRegion]) -> tuple[str, str] | None:
    """(reason, message) when the region tags say the image is not a sector the fan model covers."""
    if not regions:
        return None
    tissue = tissue_region(regions)
    if tissue is None:
        kinds = sorted({(r.spatial_format, r.data_type) for r in regions}, key=str)
        return "no_tissue_region", (f"SequenceOfUltrasoundRegions has no 2D tissue region (RegionSpatialFormat 1, "
                                    f"RegionDataType 1); found (format, data type) {kinds}")
    if tissue.is_linear:
        return "unsupported_region_geometry", (f"TransducerType {tissue.transducer}: a linear probe's rectangular "
                                               "image is not a fan; mask it with a rectangle model first")
    return None


def _other_regions(regions: list[UltrasoundRegion], tissue: UltrasoundRegion, scale: int, shape) -> np.ndarray | None:
    """Pixels (at the analysis scale) of declared regions beside the tissue image (Doppler, M-mode, traces)."""
    others = [r.box for r in regions if r is not tissue and not r.box.overlaps(tissue.box)]
    if not others:
        return None
    ignore = np.zeros(shape, bool)
    for box in others:
        ignore |= box.scaled(scale).mask(*shape)
    return ignore


def find_sector(source: ClipSource, *, mask_dir: Path, data_root: Path, run_id: str, code_version: str,
                samples: int = SAMPLE_FRAMES) -> SectorOutcome:
    """Find, judge and (when plausible) save the sector mask of one clip. Never raises for a bad clip:
    anything that stops the mask from being trusted becomes a quarantine row."""
    lineage = {"run_id": run_id, "code_version": code_version}
    measured = _measure(source, samples)
    if isinstance(measured, tuple):
        return SectorOutcome(quarantine_row=_quarantine(source, *measured, None, None, lineage))
    change, scale, rows, cols, sampled = measured.change, measured.scale, measured.rows, measured.cols, measured.sampled
    refused = _refuse_regions(measured.regions)
    if refused is not None:
        return SectorOutcome(quarantine_row=_quarantine(source, *refused, "regions", None, lineage))
    shape = change.shape
    tissue = tissue_region(measured.regions)
    if tissue is not None:  # motion in declared Doppler / M-mode displays beside the image is not the sector's
        ignore = _other_regions(measured.regions, tissue, scale, shape)
        change = change if ignore is None else np.where(ignore, 0, change).astype(change.dtype)
    # Both methods work at the analysis scale; the chosen fan is drawn at the source size at the end.
    candidates: dict[str, tuple[Sector, np.ndarray, list]] = {}
    pixel = sector_from_activity(change)
    pixel_mask = pixel.fan.mask(*shape) if pixel.fan is not None else np.zeros(shape, bool)
    moved = bool(pixel.blob.any() or pixel.fan is not None)
    candidates[PIXELS] = (pixel, pixel_mask, plausibility.check_sector(pixel, pixel_mask, moved))
    box = tissue.box if tissue is not None else None
    region = None
    if box is not None and box.valid_for(rows, cols):
        region = sector_from_regions(box.scaled(scale), change, origin=scaled_origin(tissue.origin, scale))
        if region is not None:
            candidates[region.how] = (region.judged, region.mask,
                                      plausibility.check_sector(region.judged, region.mask, moved))
    fans = {name: found.fan.scaled(scale) for name, (found, _, _) in candidates.items() if found.fan is not None}
    outcome = partial(SectorOutcome, fans=fans, region=box if region is not None else None)
    agreement = iou(region.mask, pixel_mask) if region is not None and pixel.fan is not None else None
    plausible = [name for name, (_, _, findings) in candidates.items() if not findings]
    if region is not None and region.how in plausible and PIXELS in plausible:
        disagreement = plausibility.check_agreement(agreement)
        if disagreement:
            return outcome(quarantine_row=_quarantine(source, disagreement[0].reason, disagreement[0].message,
                                                      region.how, None, lineage))
    if not plausible:
        name = region.how if region is not None else PIXELS  # report the preferred method's failures
        found, mask, findings = candidates[name]
        message = "; ".join(f.message for f in findings)
        if box is not None and region is None and not box.valid_for(rows, cols):
            message += f"; region box {box.as_tuple()} is not inside the {cols}x{rows} image"
        area = float(mask.mean()) if found.fan is not None else None
        return outcome(quarantine_row=_quarantine(source, findings[0].reason, message, name, area, lineage))
    method = region.how if region is not None and region.how in plausible else PIXELS  # tags first
    found, result = candidates[method][0], outcome()
    mask = result.method_mask(method, rows, cols)
    mask_file = contained(mask_dir / f"{uid_file_stem(source.sop_instance_uid)}.png", data_root)
    save_mask(mask_file, mask)
    x0, y0, x1, y1 = bbox(mask)
    fan = fans[method]
    row = {
        "sop_instance_uid": source.sop_instance_uid, "file_sha256": source.file_sha256, "shard": source.shard,
        "method": method, "mask_path": mask_file.relative_to(data_root).as_posix(), "rows": rows, "columns": cols,
        "area_fraction": float(mask.mean()), "bbox_x0": x0, "bbox_y0": y0, "bbox_x1": x1, "bbox_y1": y1,
        "apex_x": fan.apex_x, "apex_y": fan.apex_y, "radius": fan.radius, "min_radius": fan.min_radius,
        "angle_left_deg": fan.angle_left_deg,
        "angle_right_deg": fan.angle_right_deg, "fit_iou": found.fit_iou, "outside_fraction": found.outside_fraction,
        "angular_coverage": found.angular_coverage, "has_regions": box is not None,
        "regions_pixels_iou": agreement, "frames_sampled": sampled, "analysis_scale": scale, **lineage,
    }
    result.mask_row = row
    return result


def clip_sources(table: pa.Table, paths: SourcePaths, shard: str) -> list[ClipSource]:
    """ClipSources from rows with sop_instance_uid, file_sha256 and relative_path (pseudonymised, resolved through
    ``paths``; other columns are ignored: the region tags are read from each file's header)."""
    return [ClipSource(row["sop_instance_uid"], row["file_sha256"], shard, str(paths.locate(row["relative_path"])),
                       row["relative_path"]) for row in table.to_pylist()]


def _done(previous: pa.Table | None, code_version: str) -> dict[str, str]:
    """sop_instance_uid -> file_sha256 of rows already made by this code version."""
    if previous is None or previous.num_rows == 0:
        return {}
    rows = previous.select(["sop_instance_uid", "file_sha256", "code_version"]).to_pylist()
    return {r["sop_instance_uid"]: r["file_sha256"] for r in rows if r["code_version"] == code_version}


def sector_tables(
    sources: list[ClipSource], previous_masks: pa.Table | None, previous_quarantine: pa.Table | None, *,
    mask_dir: Path, data_root: Path, run_id: str, code_version: str, samples: int = SAMPLE_FRAMES,
    workers: int | None = None, progress: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, pa.Table, list[SectorOutcome]]:
    """(sector_masks, mask_quarantine, outcomes of the clips processed now) for ``sources``.

    A clip whose row (in either table) has the same file_sha256 and code version is not processed again
    (and a masked row also needs its PNG on disk); rows of clips no longer in ``sources`` are dropped.
    """
    data_root = Path(data_root)
    done_masks, done_quarantine = _done(previous_masks, code_version), _done(previous_quarantine, code_version)
    kept_masks = [r for r in (previous_masks.to_pylist() if previous_masks is not None else [])
                  if done_masks.get(r["sop_instance_uid"]) == r["file_sha256"] and (data_root / r["mask_path"]).exists()]
    kept_quarantine = [r for r in (previous_quarantine.to_pylist() if previous_quarantine is not None else [])
                       if done_quarantine.get(r["sop_instance_uid"]) == r["file_sha256"]]
    wanted = {s.sop_instance_uid: s.file_sha256 for s in sources}
    kept_masks = [r for r in kept_masks if wanted.get(r["sop_instance_uid"]) == r["file_sha256"]]
    kept_quarantine = [r for r in kept_quarantine if wanted.get(r["sop_instance_uid"]) == r["file_sha256"]]
    skip = {r["sop_instance_uid"] for r in kept_masks + kept_quarantine}
    todo = [s for s in sources if s.sop_instance_uid not in skip]
    mask_dir.mkdir(parents=True, exist_ok=True)
    work = partial(find_sector, mask_dir=mask_dir, data_root=data_root, run_id=run_id, code_version=code_version,
                   samples=samples)
    outcomes = []
    for outcome in map_clips(work, todo, workers):
        outcomes.append(outcome)
        if progress is not None and (len(outcomes) % 25 == 0 or len(outcomes) == len(todo)):
            progress(len(outcomes), len(todo))
    masks = kept_masks + [o.mask_row for o in outcomes if o.mask_row is not None]
    quarantine = kept_quarantine + [o.quarantine_row for o in outcomes if o.quarantine_row is not None]
    order = lambda r: r["sop_instance_uid"]
    return (rows_to_table(sorted(masks, key=order), SECTOR_MASKS),
            rows_to_table(sorted(quarantine, key=order), MASK_QUARANTINE), outcomes)
