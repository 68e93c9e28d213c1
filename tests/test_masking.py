"""Sector masking and clip preprocessing: quality against synthetic ground truth, fail-closed masking,
plausibility rules, storage, incremental runs; the Dagster assets when the view stage is present."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from echo_pipeline import masking
from echo_pipeline.errors import MaskingError
from echo_pipeline.ingest.decode import decode_frames
from echo_pipeline.ingest.header import region_bounds
from echo_pipeline.masking import clip_store, truth_agreement
from echo_pipeline.masking.from_pixels import sample_indices, sector_from_pixels
from echo_pipeline.masking.geometry import Fan, iou
from echo_pipeline.masking.preprocess import apply_plan, output_mask, plan_crop
from echo_pipeline.masking.sectors import ClipSource, find_sector, sector_tables

COHORT_PATIENTS, COHORT_SEED = 12, 23
VERSION = masking.CODE_VERSION


# --- helpers ---------------------------------------------------------------------------------------------------
def moving_fan(fan: Fan, rows: int, cols: int, frames: int = 12, seed: int = 0) -> np.ndarray:
    """(frames, rows, cols, 3) uint8: speckle inside ``fan`` that changes every frame, black outside."""
    rng = np.random.default_rng(seed)
    inside = fan.mask(rows, cols)
    out = np.zeros((frames, rows, cols, 3), np.uint8)
    for t in range(frames):
        speckle = cv2.GaussianBlur(rng.rayleigh(40.0, (rows, cols)).astype(np.float32), (3, 3), 0.8)
        out[t][inside] = np.clip(speckle[inside] + 30, 0, 255).astype(np.uint8)[:, None]
    return out


def burn_in(frames: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The frames with text, a running clock and an ECG trace drawn outside the sector, up to its edge."""
    out = frames.copy()
    for t, frame in enumerate(out):  # text that changes every frame, as scanners' clocks and counters do
        cv2.putText(frame, f"12:00:{t:02d} F{t}", (4, inside.shape[0] - 24), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (220, 220, 220), 1)
    rows, cols = inside.shape
    overlay = np.zeros((rows, cols, 3), np.uint8)
    cv2.putText(overlay, "DOE^JANE 1961-02-03", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    cv2.putText(overlay, "HR 72 bpm", (cols - 90, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 200), 1)
    xs = np.arange(cols)
    ecg = (rows - 10 - 8 * np.exp(-0.5 * ((xs % 90 - 45) / 3.0) ** 2)).astype(np.int32)
    cv2.polylines(overlay, [np.stack([xs, ecg], 1)], False, (40, 210, 90), 1)
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 3)
    overlay[(distance > 0) & (distance <= 2)] = (255, 255, 255)  # a bright outline hugging the fan
    overlay[inside] = 0
    lit = overlay.any(axis=2)
    out[:, lit] = overlay[lit]
    return out


def write_rgb_dicom(path: Path, frames: np.ndarray, region: tuple[int, int, int, int] | None = None,
                    origin: tuple[float, float] | None = None, items: list[Dataset] | None = None) -> Path:
    """A native (explicit VR little endian) RGB US multi-frame file holding ``frames``; ``region``: a 2D
    tissue region, with the transducer origin (pixel of physical (0, 0)) as its reference pixel when given;
    ``items``: SequenceOfUltrasoundRegions items written as they are instead."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = UltrasoundMultiFrameImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "US", frames.shape[1], frames.shape[2], frames.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime = 33.3
    if region is not None:
        item = Dataset()
        item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = 1, 1, 0
        item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1, item.RegionLocationMaxY1 = map(int, region)
        if origin is not None:  # PS3.3 C.8.5.5.1: the reference pixel is relative to the region's top-left corner
            item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3  # cm
            item.PhysicalDeltaX = item.PhysicalDeltaY = 0.05
            item.ReferencePixelX0, item.ReferencePixelY0 = round(origin[0]) - int(region[0]), round(origin[1]) - int(region[1])
            item.ReferencePixelPhysicalValueX = (origin[0] - round(origin[0])) * -0.05  # so (0, 0) falls on origin
            item.ReferencePixelPhysicalValueY = (origin[1] - round(origin[1])) * -0.05
        ds.SequenceOfUltrasoundRegions = [item]
    if items:
        ds.SequenceOfUltrasoundRegions = items
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def source_for(path: Path) -> ClipSource:
    return ClipSource(path.stem, hashlib.sha256(path.read_bytes()).hexdigest(), "00", str(path))


# --- the synthetic cohort: quality bar -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    from echo_pipeline.synth.cohort import generate_cohort

    out = tmp_path_factory.mktemp("masking_cohort")
    generate_cohort(out, patients=COHORT_PATIENTS, seed=COHORT_SEED, workers=2)
    return out


@pytest.fixture(scope="module")
def cohort_masks(cohort, tmp_path_factory):
    """sector_tables over every clip of the cohort (all views), with region boxes read from the headers."""
    truth = pq.read_table(cohort / "truth" / "clips.parquet").to_pylist()
    sources = []
    for row in truth:
        path = cohort / "dicom" / row["relative_path"]
        sources.append(ClipSource(row["sop_instance_uid"], hashlib.sha256(path.read_bytes()).hexdigest(), "00", str(path)))
    root = tmp_path_factory.mktemp("masking_data_root")
    masks, quarantine, outcomes = sector_tables(sources, None, None, mask_dir=root / "masks", data_root=root,
                                                run_id="test", code_version=VERSION, workers=2)
    return truth, sources, root, masks, quarantine, outcomes


def test_masks_match_ground_truth_with_and_without_region_tags(cohort, cohort_masks):
    truth_rows, sources, root, masks, quarantine, outcomes = cohort_masks
    truth = truth_agreement.load_truth(cohort / "truth" / "clips.parquet")
    per_method = truth_agreement.method_ious(outcomes, truth)
    tagged = sum(region_bounds(pydicom.dcmread(s.path, stop_before_pixels=True)) is not None for s in sources)
    assert len(per_method["pixels"]) == len(sources) and len(per_method["regions"]) == tagged > 0
    for method, values in per_method.items():
        summary = truth_agreement.summary(values)
        assert summary["median"] >= 0.95, (method, summary)
        assert summary["fraction_ge_0_90"] >= 0.99, (method, summary)
    a4c = {r["sop_instance_uid"] for r in truth_rows if r["view"] == "A4C"}
    assert a4c <= set(masks.column("sop_instance_uid").to_pylist()), quarantine.to_pylist()
    kept = truth_agreement.summary(truth_agreement.kept_mask_ious(masks, root, truth))
    assert kept["n"] == masks.num_rows and kept["median"] >= 0.95 and kept["fraction_ge_0_90"] >= 0.99
    methods = set(masks.column("method").to_pylist())
    assert "pixels" in methods and methods & {"regions", "regions_pixels"}
    png = cv2.imread(str(root / masks.column("mask_path")[0].as_py()), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
    assert png.shape == (masks.column("rows")[0].as_py(), masks.column("columns")[0].as_py())
    figures = truth_agreement.iou_figures(cohort / "dicom", outcomes, masks, root)  # what sector_masks reports
    assert figures["kept masks"] == kept and figures["pixels (new clips)"] == truth_agreement.summary(per_method["pixels"])
    assert truth_agreement.iou_figures(root, outcomes, masks, root) is None  # no truth beside: a real archive


@pytest.mark.parametrize("kind", ["rgb", "rle_rgb", "mono", "jpeg"])
def test_real_synthetic_clip_output_is_zero_outside_and_matches_truth(cohort, cohort_masks, tmp_path, kind):
    truth_rows, sources, root, masks, _, _ = cohort_masks
    by_sop = {r["sop_instance_uid"]: r for r in masks.to_pylist()}
    row = next(r for r in truth_rows if r["storage_kind"] == kind and r["view"] == "A4C" and r["sop_instance_uid"] in by_sop)
    mask_row = by_sop[row["sop_instance_uid"]]
    path = next(s.path for s in sources if s.sop_instance_uid == row["sop_instance_uid"])
    job = masking.ClipJob(row["sop_instance_uid"], mask_row["file_sha256"], "00", path, str(root / mask_row["mask_path"]),
                          mask_row["method"], 30.0)
    result = masking.preprocess_clip(job, clip_dir=tmp_path, data_root=tmp_path, size=112, run_id="t", code_version=VERSION)
    clip = masking.read_frames(tmp_path / result["clip_path"])
    assert clip.shape == (row["frames"], 112, 112, 3) and clip.dtype == np.uint8
    sector = masking.load_mask(root / mask_row["mask_path"])
    plan = plan_crop(sector, 112, result["decode_scale"])
    assert not clip[:, plan.mask == 0].any()  # fail closed: exact zeros outside the output mask, every frame
    truth_mask = masking.load_mask(cohort / row["sector_mask_path"])
    assert iou(plan.mask > 0, output_mask(plan, truth_mask) > 0) >= 0.95  # the truth resized the same way
    frames = decode_frames(path, scale=plan.scale)
    assert np.array_equal(apply_plan(frames, plan), clip)
    if kind != "jpeg":  # lossless: blanking everything outside the true sector (text, ECG) changes nothing
        clean = decode_frames(path) * truth_mask[None, :, :, None]
        reduced = np.stack([cv2.resize(f, frames.shape[2:0:-1], interpolation=cv2.INTER_AREA) for f in clean]) if plan.scale > 1 else clean
        assert np.array_equal(apply_plan(reduced, plan), clip)


# --- fail closed on drawn text and ECG -------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1, 2])
def test_text_and_ecg_outside_the_sector_never_survive(scale):
    rows, cols = 240, 320
    fan = Fan(160.4, 8.3, 200.0, -40.0, 40.0)
    clean = moving_fan(fan, rows, cols)
    dirty = burn_in(clean, fan.mask(rows, cols))
    found = sector_from_pixels(dirty[sample_indices(len(dirty))])
    assert found.fan is not None and iou(found.fan.mask(rows, cols), fan.mask(rows, cols)) >= 0.97
    plan = plan_crop(found.fan.mask(rows, cols), 96, scale)

    def reduce(frames):
        if scale == 1:
            return frames
        return np.stack([cv2.resize(f, plan.decoded_shape[::-1], interpolation=cv2.INTER_AREA) for f in frames])

    out_dirty = apply_plan(reduce(dirty), plan)
    assert not out_dirty[:, plan.mask == 0].any()
    # The same frames without text and ECG give the very same output: nothing of them survives, anywhere.
    assert np.array_equal(out_dirty, apply_plan(reduce(clean), plan))
    assert plan.kept_fraction > 0.3


@pytest.mark.parametrize("rows,cols,scale,size", [(300, 400, 1, 224), (601, 799, 2, 224), (200, 260, 1, 224), (480, 640, 4, 64)])
def test_output_mask_footprint_holds_on_worst_case_frames(rows, cols, scale, size):
    """Frames saturated outside the sector and black inside: after the plan, every output pixel is 0."""
    inside = Fan(cols / 2 + 0.3, 5.2, rows * 0.8, -44.0, 44.0).mask(rows, cols)
    frames = np.repeat(np.where(inside, 0, 255).astype(np.uint8)[None, :, :, None], 3, axis=3)
    plan = plan_crop(inside, size, scale)
    dh, dw = plan.decoded_shape
    decoded = frames if scale == 1 else cv2.resize(frames[0], (dw, dh), interpolation=cv2.INTER_AREA)[None]
    assert apply_plan(decoded, plan).max() == 0
    assert plan.kept_fraction > 0.25


# --- plausibility and quarantine -------------------------------------------------------------------------------
def test_implausible_sectors_are_quarantined_and_never_written(tmp_path):
    rows, cols = 200, 260
    still = np.repeat(moving_fan(Fan(130, 5, 170, -40, 40), rows, cols, frames=1), 6, axis=0)
    rectangle = np.zeros((6, rows, cols, 3), np.uint8)
    rng = np.random.default_rng(1)
    for frame in rectangle:
        frame[20:180, 60:200] = rng.integers(30, 200, (160, 140, 1))
    cases = {
        "still": (still, "empty"),
        "rectangle": (rectangle, "no_fan"),
        "tiny": (moving_fan(Fan(130, 5, 40, -30, 30), rows, cols, 6), "area_too_small"),
        "tilted": (moving_fan(Fan(130, 5, 170, -10, 70), rows, cols, 6), "asymmetric"),
        "single": (moving_fan(Fan(130, 5, 170, -40, 40), rows, cols, 1), "too_few_frames"),
        "two_images": (np.concatenate([moving_fan(Fan(65, 5, 120, -35, 35), rows, cols // 2, 6, 1),
                                       moving_fan(Fan(65, 5, 115, -35, 35), rows, cols // 2, 6, 2)], axis=2),
                       {"apex_not_at_top", "activity_outside_sector", "not_fan_shaped"}),
    }
    for name, (frames, reason) in cases.items():
        outcome = find_sector(source_for(write_rgb_dicom(tmp_path / f"{name}.dcm", frames)), mask_dir=tmp_path / "m",
                              data_root=tmp_path, run_id="t", code_version=VERSION)
        reasons = reason if isinstance(reason, set) else {reason}
        assert outcome.mask_row is None and outcome.quarantine_row["reason"] in reasons, (name, outcome.quarantine_row)
        assert outcome.quarantine_row["reason"] in masking.REASONS
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom file")
    outcome = find_sector(source_for(broken), mask_dir=tmp_path / "m", data_root=tmp_path, run_id="t", code_version=VERSION)
    assert outcome.quarantine_row["reason"] == "decode_failed"


def test_region_box_larger_than_the_fan_falls_back_to_pixels_inside_it(tmp_path):
    rows, cols = 220, 300
    fan = Fan(150.2, 10.4, 190.0, -42.0, 42.0)
    frames = burn_in(moving_fan(fan, rows, cols), fan.mask(rows, cols))
    whole = find_sector(source_for(write_rgb_dicom(tmp_path / "a.dcm", frames, (0, 0, cols - 1, rows - 1))),
                        mask_dir=tmp_path, data_root=tmp_path, run_id="t", code_version=VERSION)
    assert whole.mask_row["method"] == "regions_pixels" and whole.mask_row["regions_pixels_iou"] > 0.95
    ys, xs = np.nonzero(fan.mask(rows, cols))
    box = (xs.min(), ys.min(), xs.max(), ys.max())
    exact = find_sector(source_for(write_rgb_dicom(tmp_path / "b.dcm", frames, box, (fan.apex_x, fan.apex_y))),
                        mask_dir=tmp_path, data_root=tmp_path, run_id="t", code_version=VERSION)
    assert exact.mask_row["method"] == "regions"
    outside = find_sector(source_for(write_rgb_dicom(tmp_path / "c.dcm", frames, (0, 0, cols + 50, rows))),
                          mask_dir=tmp_path, data_root=tmp_path, run_id="t", code_version=VERSION)
    assert outside.mask_row["method"] == "pixels" and outside.mask_row["has_regions"]
    for outcome in (whole, exact, outside):
        assert iou(masking.load_mask(tmp_path / outcome.mask_row["mask_path"]), fan.mask(rows, cols)) >= 0.97


def test_large_frames_are_analysed_reduced_and_masked_at_full_size(tmp_path):
    rows, cols = 520, 700
    fan = Fan(350.3, 12.6, 470.0, -41.0, 41.0)
    frames = burn_in(moving_fan(fan, rows, cols, frames=8), fan.mask(rows, cols))
    ys, xs = np.nonzero(fan.mask(rows, cols))
    for region in (None, (xs.min(), ys.min(), xs.max(), ys.max())):
        path = write_rgb_dicom(tmp_path / f"big{region is None}.dcm", frames, region, (fan.apex_x, fan.apex_y))
        outcome = find_sector(source_for(path), mask_dir=tmp_path, data_root=tmp_path, run_id="t", code_version=VERSION)
        row = outcome.mask_row
        assert row["analysis_scale"] == 2 and (row["rows"], row["columns"]) == (rows, cols)
        assert row["method"] == ("pixels" if region is None else "regions")
        assert iou(masking.load_mask(tmp_path / row["mask_path"]), fan.mask(rows, cols)) >= 0.98


# --- incremental runs and storage ------------------------------------------------------------------------------
def test_clips_are_processed_once_per_code_version_and_file(tmp_path):
    rows, cols = 200, 260
    paths = [write_rgb_dicom(tmp_path / f"c{i}.dcm", moving_fan(Fan(130 + i, 6, 170, -40, 40), rows, cols, 8, i)) for i in range(3)]
    sources = [source_for(p) for p in paths]
    common = {"mask_dir": tmp_path / "masks", "data_root": tmp_path, "run_id": "r", "workers": 1}
    masks, quarantine, outcomes = sector_tables(sources, None, None, code_version=VERSION, **common)
    assert masks.num_rows == 3 and len(outcomes) == 3
    again = sector_tables(sources, masks, quarantine, code_version=VERSION, **common)
    assert again[0].equals(masks) and again[2] == []
    changed = sources[:2] + [ClipSource(sources[2].sop_instance_uid, "0" * 64, "00", sources[2].path)]
    assert len(sector_tables(changed, masks, quarantine, code_version=VERSION, **common)[2]) == 1
    assert len(sector_tables(sources, masks, quarantine, code_version="masking-next", **common)[2]) == 3
    assert sector_tables(sources[:1], masks, quarantine, code_version=VERSION, **common)[0].num_rows == 1

    jobs = [masking.ClipJob(r["sop_instance_uid"], r["file_sha256"], "00", str(tmp_path / f"{r['sop_instance_uid']}.dcm"),
                            str(tmp_path / r["mask_path"]), r["method"], 30.0) for r in masks.to_pylist()]
    clip_args = {"clip_dir": tmp_path / "clips", "data_root": tmp_path, "run_id": "r", "code_version": VERSION, "size": 64}
    table, failures = masking.masked_clip_table(jobs, None, workers=2, **clip_args)
    assert failures == [] and table.num_rows == 3 and set(table.column("frames").to_pylist()) == {8}
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "clips").iterdir()}
    table2, _ = masking.masked_clip_table(jobs, table, workers=1, **clip_args)
    assert table2.equals(table) and before == {p: p.stat().st_mtime_ns for p in (tmp_path / "clips").iterdir()}
    bigger, _ = masking.masked_clip_table(jobs, table, workers=1, **{**clip_args, "size": 96})
    assert set(bigger.column("height").to_pylist()) == {96}


def test_clip_store_reads_frames_and_refuses_bad_files(tmp_path):
    clip = np.random.default_rng(0).integers(0, 255, (7, 16, 16, 3), dtype=np.uint8)
    clip_store.write_clip(tmp_path / "a.npy", clip)
    assert np.array_equal(clip_store.read_frames(tmp_path / "a.npy", [5, 1]), clip[[5, 1]])
    assert np.array_equal(clip_store.read_frames(tmp_path / "a.npy", slice(2, 6)), clip[2:6])
    assert isinstance(np.load(tmp_path / "a.npy", mmap_mode="r"), np.memmap)  # the training loader's contract
    with pytest.raises(IndexError):
        clip_store.read_frames(tmp_path / "a.npy", [7])
    np.save(tmp_path / "b.npy", clip.astype(np.float32))
    (tmp_path / "c.npy").write_bytes(b"garbage")
    for name in ("b.npy", "c.npy"):
        with pytest.raises(MaskingError, match="masked_clips"):
            clip_store.open_clip(tmp_path / name)
    with pytest.raises(MaskingError):
        clip_store.write_clip(tmp_path / "d.npy", clip[..., :1])
    with pytest.raises(RuntimeError), clip_store.create_clip(tmp_path / "e.npy", 2, 8, 8):
        raise RuntimeError("interrupted")
    assert not (tmp_path / "e.npy").exists()
