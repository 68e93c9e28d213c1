"""Sector masking on the probe geometries real archives hold, from an archive written here after the DICOM
standard (PS3.3 C.8.5.5.1, SequenceOfUltrasoundRegions), not by the synthetic cohort's generator.

Each geometry gets a few clips whose true sector is known exactly: a pointed phased-array fan, a truncated
sector under a virtual apex above the image (with and without the transducer origin in the tags), a steered
sector, a curved (convex) array's image, a sector whose top the image cuts, and a reference pixel that is not
the origin itself. Both paths are measured against the truth: the region-tag path (the fan the tags lead to,
clipped to the tissue box) and the pixel path (the fan found from the pixels alone). Then the fail-closed
cases: a linear probe, a file with only M-mode/Doppler regions, a Doppler strip beside the image, and tags
that contradict the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit
from test_masking import write_rgb_dicom  # the plain native-RGB file writer; the region items are built here

from echo_pipeline import masking
from echo_pipeline.masking.geometry import Fan, iou
from echo_pipeline.masking.sectors import PIXELS, ClipSource, find_sector

CM_PER_PIXEL = 0.04
FRAMES = 10


@dataclass(frozen=True)
class Region:
    """One SequenceOfUltrasoundRegions item as PS3.3 C.8.5.5.1 describes it."""

    box: tuple[int, int, int, int]  # RegionLocationMinX0, MinY0, MaxX1, MaxY1 (inclusive)
    spatial_format: int = 1  # 1 2D, 2 M-mode, 3 spectral, 4 waveform
    data_type: int = 1  # 1 tissue, 2 colour flow, 3 PW Doppler, 4 CW Doppler
    reference: tuple[int, int] | None = None  # ReferencePixelX0/Y0, relative to the box's top-left corner
    reference_value_cm: tuple[float, float] = (0.0, 0.0)  # ReferencePixelPhysicalValueX/Y
    transducer: str | None = None  # TransducerType


@dataclass(frozen=True)
class Clip:
    name: str
    fan: Fan
    rows: int
    cols: int
    regions: tuple[Region, ...] = ()
    strip: tuple[int, int, int, int] | None = None  # a scrolling M-mode/Doppler display drawn here
    extra: dict = field(default_factory=dict)


def render(clip: Clip, seed: int) -> np.ndarray:
    """(FRAMES, rows, cols, 3) uint8: speckle with depth attenuation and a beating dark cavity inside the
    fan, static text, a grey bar and an ECG outside it (a moving cursor on the ECG), a scrolling strip."""
    rng = np.random.default_rng(seed)
    rows, cols, fan = clip.rows, clip.cols, clip.fan
    inside = fan.mask(rows, cols)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    r = np.hypot(x - fan.apex_x, y - fan.apex_y) / fan.radius
    gain = 200 * (1.1 - 0.5 * r)
    overlay = np.zeros((rows, cols, 3), np.uint8)
    cv2.putText(overlay, "ST MARY ECHO  12/03/2024", (3, 12), cv2.FONT_HERSHEY_PLAIN, 0.8, (230, 230, 230), 1)
    cv2.putText(overlay, "P 2.5MHz 16cm", (cols - 110, 12), cv2.FONT_HERSHEY_PLAIN, 0.8, (200, 220, 255), 1)
    overlay[rows // 3 : rows // 3 + 64, cols - 9 : cols - 3] = np.linspace(255, 0, 64)[:, None, None].astype(np.uint8)
    ecg_y = (rows - 9 - 7 * np.exp(-0.5 * ((np.arange(cols) % 70 - 35) / 2.5) ** 2)).astype(np.int32)
    cv2.polylines(overlay, [np.stack([np.arange(cols), ecg_y], 1)], False, (60, 220, 60), 1)
    overlay[inside] = 0
    frames = np.zeros((FRAMES, rows, cols, 3), np.uint8)
    cx, cy = fan.apex_x + 0.55 * fan.radius * math.sin(math.radians(fan.tilt_deg)), fan.apex_y + 0.6 * fan.radius
    for t in range(FRAMES):
        speckle = cv2.GaussianBlur(rng.rayleigh(1.0, (rows, cols)).astype(np.float32), (5, 3), 1.0)
        tissue = gain * speckle
        squeeze = 1 + 0.15 * math.sin(2 * math.pi * t / FRAMES)
        cavity = ((x - cx) / (0.12 * fan.radius * squeeze)) ** 2 + ((y - cy) / (0.2 * fan.radius)) ** 2 <= 1
        tissue[cavity] *= 0.08  # blood: nearly black, changes little
        frame = np.where(inside[..., None], np.clip(tissue, 0, 255).astype(np.uint8)[..., None], 0).repeat(3, 2)
        frame = np.maximum(frame, overlay)
        if clip.strip is not None:  # an M-mode / spectral display scrolling right to left
            x0, y0, x1, y1 = clip.strip
            sweep = rng.integers(0, 200, (y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
            frame[y0 : y1 + 1, x0 : x1 + 1] = sweep[..., None]
        cursor = 4 + t * (cols - 8) // FRAMES
        cv2.circle(frame, (cursor, int(ecg_y[cursor])), 2, (255, 255, 255), -1)
        frames[t] = frame
    return frames


def write(path: Path, clip: Clip, seed: int = 0, jpeg: bool = False) -> Path:
    """A US Multi-frame file (explicit VR little endian RGB, or JPEG baseline) with the clip's regions."""
    items = []
    for region in clip.regions:
        item = Dataset()
        item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = region.spatial_format, region.data_type, 0
        item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1, item.RegionLocationMaxY1 = region.box
        item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3  # cm
        item.PhysicalDeltaX = item.PhysicalDeltaY = CM_PER_PIXEL
        if region.reference is not None:
            item.ReferencePixelX0, item.ReferencePixelY0 = region.reference
            item.ReferencePixelPhysicalValueX, item.ReferencePixelPhysicalValueY = region.reference_value_cm
        if region.transducer is not None:
            item.TransducerType = region.transducer
        items.append(item)
    path = write_rgb_dicom(path, render(clip, seed), items=items)
    return to_jpeg(path) if jpeg else path


def to_jpeg(path: Path, quality: int = 90) -> Path:
    """The file re-stored as JPEG baseline (YBR_FULL_422, one JPEG per frame), as most scanners export."""
    ds = pydicom.dcmread(path)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]
    frames = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), params)[1].tobytes() for f in ds.pixel_array]
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PhotometricInterpretation, ds.PixelData = "YBR_FULL_422", encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def box_of(fan: Fan, rows: int, cols: int, margin: tuple[int, int, int, int] = (0, 0, 0, 0)) -> tuple[int, ...]:
    ys, xs = np.nonzero(fan.mask(rows, cols))
    left, top, right, bottom = margin
    return (max(0, int(xs.min()) - left), max(0, int(ys.min()) - top), min(cols - 1, int(xs.max()) + right),
            min(rows - 1, int(ys.max()) + bottom))


def tissue(fan: Fan, rows: int, cols: int, margin=(0, 0, 0, 0), origin: bool = True, **kw) -> Region:
    """The 2D tissue region around ``fan``; with ``origin`` its reference pixel is the apex rounded to a
    pixel, and the reference pixel's physical value says where exactly the apex lies."""
    box = box_of(fan, rows, cols, margin)
    if not origin:
        return Region(box, **kw)
    ref = (round(fan.apex_x), round(fan.apex_y))
    value = ((ref[0] - fan.apex_x) * CM_PER_PIXEL, (ref[1] - fan.apex_y) * CM_PER_PIXEL)
    return Region(box, reference=(ref[0] - box[0], ref[1] - box[1]), reference_value_cm=value, **kw)


def geometries(k: int) -> dict[str, Clip]:
    """Clip ``k`` of each geometry (small jitter between clips)."""
    j = (k - 1) * 0.7
    rows, cols = 300, 400
    pointed = Fan(200.4 + j, 9.3, 255.0 - 3 * k, -41.0 + j, 41.0 - j)
    virtual = Fan(201.2 - j, -48.7 + 3 * k, 300.0, -38.0, 38.0 + j, 70.0 + 2 * k)
    steered = Fan(190.6 + j, -30.2, 290.0 - 2 * k, -28.0 - j, 44.0, 45.0)
    convex = Fan(320.3 - j, -380.5 + 5 * k, 930.0, -29.0 + j, 29.0, 410.0 + 4 * k)  # 600 x 640: analysed at 1/2
    cut = Fan(199.7, -35.5 - 4 * k, 300.0, -37.0 - j, 37.0, 20.0)  # the near arc lies above row 0
    offset = Fan(205.5 - j, -20.4, 280.0, -40.0, 40.0 + j, 38.0)
    origin_box = box_of(offset, rows, cols, (6, 3, 5, 4))
    return {
        "pointed": Clip("pointed", pointed, rows, cols, (tissue(pointed, rows, cols, transducer="SECTOR_PHASED"),)),
        "virtual_apex": Clip("virtual_apex", virtual, rows, cols, (tissue(virtual, rows, cols, (8, 4, 6, 10)),)),
        "virtual_apex_no_origin": Clip("virtual_apex_no_origin", virtual, rows, cols,
                                       (tissue(virtual, rows, cols, (5, 2, 9, 3), origin=False),)),
        "steered": Clip("steered", steered, rows, cols, (tissue(steered, rows, cols, (3, 5, 3, 2)),)),
        "convex": Clip("convex", convex, 600, 640, (tissue(convex, 600, 640, (4, 4, 4, 4), transducer="CURVED LINEAR"),)),
        "top_cut": Clip("top_cut", cut, rows, cols, (tissue(cut, rows, cols, (2, 0, 2, 6)),)),
        # The reference pixel is the box's top-left corner; its physical value places the origin 'above-left'.
        "reference_not_origin": Clip("reference_not_origin", offset, rows, cols, (Region(
            origin_box, reference=(0, 0),
            reference_value_cm=((origin_box[0] - offset.apex_x) * CM_PER_PIXEL, (origin_box[1] - offset.apex_y) * CM_PER_PIXEL)),)),
    }


def masked(tmp_path: Path, clip: Clip, seed: int, jpeg: bool = False):
    path = write(tmp_path / f"{clip.name}-{seed}.dcm", clip, seed, jpeg)
    return find_sector(ClipSource(path.stem, "0" * 64, "00", str(path)), mask_dir=tmp_path / "masks", data_root=tmp_path,
                       run_id="t", code_version=masking.CODE_VERSION)


def path_ious(outcome, clip: Clip) -> dict[str, float]:
    """IoU with the true sector of the region-tag path (whichever fan the tags led to, clipped to the box) and
    of the pixel path."""
    truth = clip.fan.mask(clip.rows, clip.cols)
    regions = [m for m in outcome.fans if m != PIXELS]
    result = {"pixels": iou(outcome.method_mask(PIXELS, clip.rows, clip.cols), truth)}
    if regions:
        result["regions"] = iou(outcome.method_mask(regions[0], clip.rows, clip.cols), truth)
    return result


CLIPS_PER_GEOMETRY = 3


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Every geometry, CLIPS_PER_GEOMETRY clips each (the last one JPEG): (name, clip, outcome, data root)."""
    folder = tmp_path_factory.mktemp("geometry_archive")
    return [(name, clip, masked(folder, clip, 10 * k + i, jpeg=k == CLIPS_PER_GEOMETRY), folder)
            for k in range(1, CLIPS_PER_GEOMETRY + 1) for i, (name, clip) in enumerate(geometries(k).items())]


@pytest.mark.parametrize("name", list(geometries(1)))
def test_each_geometry_is_masked_from_tags_and_from_pixels(archive, name):
    clips = [(clip, outcome, root) for got, clip, outcome, root in archive if got == name]
    assert len(clips) == CLIPS_PER_GEOMETRY
    for clip, outcome, root in clips:
        row = outcome.mask_row
        assert row is not None, outcome.quarantine_row
        ious = path_ious(outcome, clip)
        assert ious["regions"] >= 0.97 and ious["pixels"] >= 0.97, (name, ious)
        assert row["method"] == ("regions_pixels" if name == "virtual_apex_no_origin" else "regions"), (name, row)
        kept = masking.load_mask(root / row["mask_path"])
        assert iou(kept, clip.fan.mask(clip.rows, clip.cols)) >= 0.97
        x0, y0, x1, y1 = clip.regions[0].box  # never outside the tissue region
        assert (row["bbox_x0"], row["bbox_y0"]) >= (x0, y0) and row["bbox_x1"] <= x1 and row["bbox_y1"] <= y1
        assert not kept[:, :x0].any() and not kept[:y0].any() and not kept[:, x1 + 1 :].any() and not kept[y1 + 1 :].any()


def test_both_paths_meet_the_bar_and_tags_do_at_least_as_well(archive):
    per_path = {"regions": [], "pixels": []}
    for _, clip, outcome, _ in archive:
        for path, value in path_ious(outcome, clip).items():
            per_path[path].append(value)
    assert len(per_path["regions"]) == len(per_path["pixels"]) == len(archive)
    for path, values in per_path.items():
        assert np.median(values) >= 0.98 and np.percentile(values, 1) >= 0.95, (path, sorted(values)[:3])
    assert np.median(per_path["regions"]) >= np.median(per_path["pixels"]) - 1e-4
    assert np.percentile(per_path["regions"], 1) >= np.percentile(per_path["pixels"], 1) - 0.002


def test_a_truncated_fan_is_fitted_with_its_near_arc_and_virtual_apex(archive):
    for name, clip, outcome, _ in archive:
        if name in ("virtual_apex", "convex", "steered"):
            fan = outcome.fans[outcome.mask_row["method"]]
            assert abs(fan.min_radius - clip.fan.min_radius) <= 2.0, (name, fan, clip.fan)
            assert abs(fan.apex_y - clip.fan.apex_y) <= 2.0 and abs(fan.tilt_deg - clip.fan.tilt_deg) <= 0.5
            assert outcome.mask_row["min_radius"] == fan.min_radius


# --- fail closed -----------------------------------------------------------------------------------------------
def test_a_linear_probe_is_quarantined_not_masked_with_a_fan(tmp_path):
    rows, cols = 300, 400
    fan = Fan(200.0, -2000.0, 2260.0, -3.0, 3.0)  # ~ a 236-px-wide rectangle: what a linear array images
    clip = Clip("linear", fan, rows, cols, (Region(box_of(fan, rows, cols), transducer="LINEAR"),))
    outcome = masked(tmp_path, clip, 1)
    assert outcome.mask_row is None and outcome.quarantine_row["reason"] == "unsupported_region_geometry"
    assert not (tmp_path / "masks").exists() or not any((tmp_path / "masks").iterdir())
    untagged = masked(tmp_path, Clip("linear_untagged", fan, rows, cols), 2)  # no tags: the pixels refuse it too
    assert untagged.mask_row is None and untagged.quarantine_row["reason"] in masking.REASONS


def test_regions_that_are_not_2d_tissue_are_never_the_sector(tmp_path):
    rows, cols = 300, 400
    fan = Fan(200.3, 8.2, 170.0, -40.0, 40.0)
    strip = (10, 190, 389, 285)  # an M-mode / spectral strip under the 2D image
    mmode, doppler = Region(strip, spatial_format=2, data_type=1), Region(strip, spatial_format=3, data_type=3)
    only_strips = masked(tmp_path, Clip("strips", fan, rows, cols, (mmode, doppler), strip), 1)
    assert only_strips.mask_row is None and only_strips.quarantine_row["reason"] == "no_tissue_region"
    colour_only = masked(tmp_path, Clip("colour", fan, rows, cols, (Region(box_of(fan, rows, cols), data_type=2),)), 2)
    assert colour_only.quarantine_row["reason"] == "no_tissue_region"
    # The 2D image above a scrolling strip: the sector comes from the tissue region, the strip is never in it.
    both = masked(tmp_path, Clip("both", fan, rows, cols, (doppler, tissue(fan, rows, cols, (4, 4, 4, 4))), strip), 3)
    row = both.mask_row
    assert row is not None and row["method"] == "regions", both.quarantine_row
    kept = masking.load_mask(tmp_path / row["mask_path"])
    assert not kept[strip[1] :].any() and iou(kept, fan.mask(rows, cols)) >= 0.97


@pytest.mark.parametrize("wrong", ["origin_shifted", "origin_off_by_a_few_pixels", "origin_of_another_fan",
                                   "box_cuts_the_fan", "box_elsewhere"])
def test_tags_that_contradict_the_pixels_never_give_the_wrong_fan(tmp_path, wrong):
    rows, cols = 300, 400
    fan = Fan(201.2, -48.7, 300.0, -38.0, 38.0, 70.0)
    right = tissue(fan, rows, cols, (3, 3, 3, 3))
    box = right.box
    regions = {
        "origin_shifted": Region(box, reference=(right.reference[0] + 30, right.reference[1] + 25)),
        "origin_off_by_a_few_pixels": Region(box, reference=(right.reference[0] + 4, right.reference[1] + 6)),
        "origin_of_another_fan": Region(box, reference=(right.reference[0], right.reference[1] + 60)),
        "box_cuts_the_fan": Region((box[0] + 60, box[1], box[2] - 50, box[3] - 70), reference=None),
        "box_elsewhere": Region((0, 150, 180, 299)),
    }
    outcome = masked(tmp_path, Clip(wrong, fan, rows, cols, (regions[wrong],)), 4)
    truth = fan.mask(rows, cols)
    if outcome.mask_row is None:
        assert outcome.quarantine_row["reason"] in masking.REASONS
        return
    kept = masking.load_mask(tmp_path / outcome.mask_row["mask_path"])
    assert iou(kept, truth) >= 0.97, (outcome.mask_row["method"], iou(kept, truth))
    assert outcome.mask_row["method"] != "regions"  # the tags' fan was not taken as it stands
