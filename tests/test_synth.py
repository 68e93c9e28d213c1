"""The synthetic cohort generator: determinism, readable DICOM as declared, truth that matches the files,
physiology that shows in the pixels, broken files that are broken the stated way, report linking defects."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from echo_pipeline.masking.geometry import Fan
from echo_pipeline.synth.cohort import generate_cohort
from echo_pipeline.schemas import REPORT_LABEL_NAMES
from echo_pipeline.synth.dicom_writer import US_MULTIFRAME, image_dataset
from echo_pipeline.synth.house_style import HOUSE_STYLES, HouseStyleError, load_house_style
from echo_pipeline.synth.physiology import SITES
from echo_pipeline.synth.plan import plan_cohort
from echo_pipeline.synth.render import lv_cavity_mask, render_clip
from echo_pipeline.synth.report_text import render_report
from echo_pipeline.synth.reports_csv import build_reports

from conftest import SMALL_COHORT_PATIENTS, SMALL_COHORT_SEED

VIEW_WORDS = ("A4C", "A2C", "PLAX", "PSAX", "SUBCOSTAL", "APICAL", "PARASTERNAL", "CHAMBER", "COLOR", "COLOUR")
NEW_LABELS = ("impella", "atrial_fibrillation", "right_atrial_pressure", "normal_lv_wall_thickness",
              "no_significant_valvular_disease")
BROKEN = {"empty", "truncated", "not_dicom", "no_pixel_data", "duplicate", "non_image_object"}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(small_cohort) -> dict:
    """The shared small cohort plus its truth tables and plan (the plan rebuilds each clip's drawing)."""
    truth = {name: pd.read_parquet(small_cohort / "truth" / f"{name}.parquet")
             for name in ("patients", "studies", "clips", "reports", "files")}
    plan = plan_cohort(SMALL_COHORT_PATIENTS, SMALL_COHORT_SEED)
    return {"root": small_cohort, "plan": plan, **truth}


@pytest.fixture(scope="module")
def decoded(cohort):
    """Pixel arrays decoded by pydicom, on demand, cached for the module."""
    cache: dict[str, np.ndarray] = {}
    paths = dict(zip(cohort["clips"].sop_instance_uid, cohort["clips"].relative_path))

    def get(sop_uid: str) -> np.ndarray:
        if sop_uid not in cache:
            cache[sop_uid] = pydicom.dcmread(cohort["root"] / "dicom" / paths[sop_uid]).pixel_array
        return cache[sop_uid]

    return get


def _sample(clips: pd.DataFrame) -> pd.DataFrame:
    """Two clips of each storage kind and colour flag: every code path, a fraction of the decoding time."""
    return clips.groupby(["storage_kind", "is_colour"]).head(2)


def test_same_seed_gives_identical_bytes_whatever_the_workers(cohort, tmp_path):
    again = generate_cohort(tmp_path / "again", SMALL_COHORT_PATIENTS, SMALL_COHORT_SEED, workers=1, progress=False)
    assert _digests(again.root) == _digests(cohort["root"])


def test_different_seed_gives_different_cohort(cohort, tmp_path):
    other = generate_cohort(tmp_path / "other", 2, SMALL_COHORT_SEED + 1, workers=1, progress=False)
    empty = hashlib.sha256(b"").hexdigest()
    theirs = set(_digests(other.dicom_root).values()) - {empty}
    assert theirs and not theirs & set(_digests(cohort["root"] / "dicom").values())
    other_ids = set(pd.read_parquet(other.truth("patients")).patient_id)
    assert not other_ids & set(cohort["patients"].patient_id)


def test_generator_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(Exception, match="not empty"):
        generate_cohort(tmp_path, 1, 0, workers=1, progress=False)


def test_clips_decode_as_declared(cohort):
    clips = cohort["clips"]
    assert set(clips.storage_kind) == {"jpeg", "rgb", "rle_rgb", "mono", "mono_rle"}
    assert clips.has_regions.any() and not clips.has_regions.all()
    assert set(clips.view) == {"A4C", "A2C", "PLAX", "PSAX", "SUBCOSTAL"} and clips.is_colour.any()
    for row in clips.itertuples():
        ds = pydicom.dcmread(cohort["root"] / "dicom" / row.relative_path)
        assert ds.file_meta.TransferSyntaxUID == row.transfer_syntax_uid
        assert ds.SOPClassUID == US_MULTIFRAME and ds.SOPInstanceUID == row.sop_instance_uid
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == (row.study_instance_uid, row.series_instance_uid)
        assert ds.PhotometricInterpretation == row.photometric_interpretation
        assert (ds.NumberOfFrames, ds.Rows, ds.Columns) == (row.frames, row.rows, row.columns)
        assert ds.BurnedInAnnotation == "YES" and 40 <= row.frames <= 64 and 30 <= row.frame_rate <= 50
        shape = (row.frames, row.rows, row.columns) + (() if row.storage_kind.startswith("mono") else (3,))
        ds.pixel_array_options(as_rgb=False)  # decoding is the check; YBR to RGB conversion only costs time
        assert ds.pixel_array.shape == shape
        rate = (1000.0 / float(ds.FrameTime) if "FrameTime" in ds else ds.get("CineRate")
                or ds.get("RecommendedDisplayFrameRate"))
        assert rate == pytest.approx(row.frame_rate, rel=1e-3)
        assert ("SequenceOfUltrasoundRegions" in ds) == row.has_regions
        texts = [str(e.value).upper() for e in ds.iterall() if e.VR in ("LO", "SH", "CS", "ST", "LT", "PN", "UT")]
        assert not [t for t in texts if any(w in t for w in VIEW_WORDS)], row.relative_path


def test_regions_bound_the_sector(cohort):
    clips = cohort["clips"]
    widened = 0
    for row in clips[clips.has_regions].itertuples():
        ds = pydicom.dcmread(cohort["root"] / "dicom" / row.relative_path, stop_before_pixels=True)
        region = ds.SequenceOfUltrasoundRegions[0]
        ys, xs = np.nonzero(cv2.imread(str(cohort["root"] / row.sector_mask_path), cv2.IMREAD_GRAYSCALE))
        assert (region.RegionSpatialFormat, region.RegionDataType) == (1, 1)
        box = (region.RegionLocationMinX0, region.RegionLocationMinY0, region.RegionLocationMaxX1, region.RegionLocationMaxY1)
        assert box[0] <= xs.min() and box[1] <= ys.min() and box[2] >= xs.max() and box[3] >= ys.max()  # holds the fan
        assert box[0] >= xs.min() - 14 and box[2] <= min(xs.max() + 14, row.columns - 1) and box[3] < row.rows
        widened += box != (xs.min(), ys.min(), xs.max(), ys.max())
        # PS3.3 C.8.5.5.1: physical (0, 0) = reference pixel (relative to the box) - its value / pixel size.
        has_origin = "ReferencePixelPhysicalValueX" in region
        assert has_origin == row.region_origin_tags
        if has_origin:
            origin_x = box[0] + region.ReferencePixelX0 - region.ReferencePixelPhysicalValueX / region.PhysicalDeltaX
            origin_y = box[1] + region.ReferencePixelY0 - region.ReferencePixelPhysicalValueY / region.PhysicalDeltaY
            assert (origin_x, origin_y) == pytest.approx((row.sector_apex_x, row.sector_apex_y), abs=1e-6)
    assert 0 < widened < clips.has_regions.sum()
    assert clips[clips.has_regions].region_origin_tags.nunique() == 2


def test_truth_records_the_drawn_sector_geometry(cohort):
    clips = cohort["clips"]
    for row in clips.itertuples():
        fan = Fan(row.sector_apex_x, row.sector_apex_y, row.sector_radius, row.sector_angle_left_deg,
                  row.sector_angle_right_deg, row.sector_min_radius)
        truth = cv2.imread(str(cohort["root"] / row.sector_mask_path), cv2.IMREAD_GRAYSCALE) > 0
        assert (fan.mask(row.rows, row.columns) != truth).mean() < 1e-3
        assert row.sector_half_angle_deg == pytest.approx((row.sector_angle_right_deg - row.sector_angle_left_deg) / 2)
    virtual = clips[clips.sector_min_radius > 0]
    assert len(virtual) and (virtual.sector_apex_y < 0).all()  # a virtual apex above the image, a near arc below
    assert ((clips.sector_angle_left_deg + clips.sector_angle_right_deg).abs() > 1).any()  # steered sectors
    assert (clips.sector_min_radius == 0).any()


def test_sector_moves_outside_is_dark_and_text_is_static(cohort, decoded):
    for row in _sample(cohort["clips"]).itertuples():
        frames = decoded(row.sop_instance_uid).astype(np.int16)
        grey = frames if frames.ndim == 3 else frames.max(axis=3)
        mask = cv2.imread(str(cohort["root"] / row.sector_mask_path), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == (row.rows, row.columns) and set(np.unique(mask)) == {0, 255}
        inside = mask > 0
        assert grey[:, inside].std(axis=0).mean() > 5, "sector content must change between frames"
        assert grey[:, inside].mean() > 20, "sector must show tissue"
        # Outside the fan (JPEG ringing aside), below the text lines and above the ECG band: black.
        band = np.zeros_like(inside)
        band[50 : row.rows - 24, : row.columns - 20] = True
        outside = band & (cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0)
        assert (grey[:, outside] > 40).mean() < 1e-3
        corner = grey[:, :40, :90]  # top-left burned-in text, far from the fan
        assert (corner[0] > 100).sum() > 30 and (corner == corner[0]).all()
        assert (grey[:, row.rows - 22 :, :] > 60).any(axis=(1, 2)).all(), "ECG trace in every frame"


def test_colour_doppler_is_saturated_inside_the_sector(cohort, decoded):
    colour = cohort["clips"][cohort["clips"].is_colour]
    for row in colour.itertuples():
        rgb = decoded(row.sop_instance_uid).astype(np.int16)
        mask = cv2.imread(str(cohort["root"] / row.sector_mask_path), cv2.IMREAD_GRAYSCALE) > 0
        saturated = (np.abs(rgb[..., 0] - rgb[..., 2]) > 100)[:, mask]
        assert saturated.sum() > 200
    grey = _sample(cohort["clips"][~cohort["clips"].is_colour & ~cohort["clips"].storage_kind.str.startswith("mono")])
    for row in grey.itertuples():
        rgb = decoded(row.sop_instance_uid).astype(np.int16)
        assert (np.abs(rgb[..., 0] - rgb[..., 2]) > 100).mean() < 1e-3


def test_truth_lists_exactly_the_files(cohort):
    files, clips = cohort["files"], cohort["clips"]
    dicom = cohort["root"] / "dicom"
    on_disk = {str(p.relative_to(dicom)) for p in dicom.rglob("*") if p.is_file()}
    assert on_disk == set(files.relative_path)
    assert set(files[files.expected == "ingested"].relative_path) == set(clips.relative_path)
    assert set(files.expected) == BROKEN | {"ingested"}
    assert clips.sop_instance_uid.is_unique
    assert set(clips.study_instance_uid) <= set(cohort["studies"].study_instance_uid)
    assert set(cohort["studies"].patient_id) == set(cohort["patients"].patient_id)
    for row in clips.itertuples():
        assert (cohort["root"] / row.sector_mask_path).is_file()
    for text in ("MRN", "^"):  # raw identifiers never appear in paths
        assert not any(text in p for p in on_disk)


def test_broken_files_are_broken_as_stated(cohort):
    root = cohort["root"] / "dicom"
    for row in cohort["files"][cohort["files"].expected != "ingested"].itertuples():
        path = root / row.relative_path
        if row.expected == "empty":
            assert path.stat().st_size == 0
        elif row.expected == "not_dicom":
            with pytest.raises(InvalidDicomError):
                pydicom.dcmread(path)
        elif row.expected == "truncated":
            with pytest.raises(Exception):
                pydicom.dcmread(path).pixel_array
        elif row.expected == "no_pixel_data":
            ds = pydicom.dcmread(path)
            assert ds.SOPClassUID == US_MULTIFRAME and "PixelData" not in ds
        elif row.expected == "duplicate":
            assert path.read_bytes() == (root / row.duplicate_of).read_bytes() and row.relative_path > row.duplicate_of
        elif row.expected == "non_image_object":
            ds = pydicom.dcmread(path)
            assert "PixelData" not in ds and ds.Modality == "SR"


def _lv_area_change(frames: np.ndarray, drawing) -> float:
    """1 - A_s/A_d measured from decoded pixels: dark (blood) pixels inside the largest drawn LV cavity."""
    region = np.logical_or.reduce([lv_cavity_mask(drawing, i) for i in range(drawing.frames)])
    areas = []
    for frame in frames:
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        areas.append(((cv2.GaussianBlur(grey, (7, 7), 0) < 40) & region).sum())
    return 1 - min(areas) / max(areas)


def test_lvef_is_the_lv_cavity_area_change_in_the_pixels(cohort, decoded):
    plan_tasks = {t.header["sop_instance_uid"]: t for t in cohort["plan"].tasks}
    lvef = cohort["studies"].set_index("study_instance_uid").lvef
    a4c = cohort["clips"][(cohort["clips"].view == "A4C") & ~cohort["clips"].is_colour].head(12)
    measured = pd.Series({r.sop_instance_uid: _lv_area_change(decoded(r.sop_instance_uid),
                                                               plan_tasks[r.sop_instance_uid].drawing)
                          for r in a4c.itertuples()})
    truth = a4c.set_index("sop_instance_uid").study_instance_uid.map(lvef) / 100
    assert (measured - truth).abs().mean() < 0.06
    # A sweep over the whole LVEF range through a JPEG DICOM round trip.
    task = plan_tasks[a4c.sop_instance_uid.iloc[0]]
    swept, values = [], np.arange(15, 80, 10.0)
    for ef in values:
        drawing = replace(task.drawing, heart=replace(task.drawing.heart, lvef=ef), monochrome=False, is_colour=False)
        ds = image_dataset(dict(task.header, sector_bbox=(0, 0, 1, 1)), render_clip(drawing), "jpeg")
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        buffer.seek(0)
        ds = pydicom.dcmread(buffer)
        swept.append(_lv_area_change(ds.pixel_array, drawing))
    assert pd.Series(swept).rank().corr(pd.Series(values).rank()) > 0.95  # Spearman


def test_lossless_clips_hold_exactly_the_rendered_frames(cohort, decoded):
    tasks = {t.header["sop_instance_uid"]: t for t in cohort["plan"].tasks}
    lossless = cohort["clips"][cohort["clips"].storage_kind != "jpeg"].groupby("storage_kind").head(1)
    assert len(lossless) == 4
    for row in lossless.itertuples():
        assert np.array_equal(decoded(row.sop_instance_uid), render_clip(tasks[row.sop_instance_uid].drawing))


def test_view_labels_cover_about_half_and_label_colour_as_other(cohort):
    labels = pd.read_csv(cohort["root"] / "view_labels.csv").merge(cohort["clips"], on="sop_instance_uid")
    assert 0.2 < len(labels) / len(cohort["clips"]) < 0.8
    assert (labels.view_x == np.where(labels.is_colour, "OTHER", labels.view_y)).all()


def test_report_rows_link_as_their_truth_says(cohort):
    csv = pd.read_csv(cohort["root"] / "reports.csv", dtype=str, keep_default_na=False)
    truth = cohort["reports"].set_index("report_id").loc[csv.report_id]
    studies = cohort["studies"].set_index("study_instance_uid")
    assert list(csv.columns) == ["report_id", "accession_number", "study_instance_uid", "patient_id", "study_date",
                                 "report_text"]
    assert set(truth[~truth.is_orphan].study_instance_uid) == set(studies.index[studies.has_report])
    for row, t in zip(csv.itertuples(), truth.itertuples()):
        assert row.accession_number or row.study_instance_uid or (row.patient_id and row.study_date)
        if t.is_orphan:
            assert row.accession_number not in set(studies.accession_number) and not row.study_instance_uid
            continue
        study = studies.loc[t.study_instance_uid]
        assert row.accession_number in ("", study.accession_number)
        offset = (pd.Timestamp(row.study_date) - pd.Timestamp(study.study_date)).days
        assert offset == 0 if t.link_defect != "date_off" else abs(offset) == 1


def test_report_defects_and_physiology_have_realistic_rates():
    plan = plan_cohort(150, 3)  # planning only: no pixels
    studies = pd.DataFrame(plan.studies)
    csv, truth = build_reports(3, plan.patients, plan.studies)
    assert set(truth.link_defect) == {"none", "no_accession", "patient_date_only", "date_off", "orphan"}
    assert 0.08 < (csv.accession_number == "").mean() < 0.25 and 0.02 < truth.is_orphan.mean() < 0.1
    assert 0.01 < (~studies.has_report).mean() < 0.12
    assert 0.6 < studies.lvef.between(53, 75).mean() < 0.9 and (studies.lvef < 40).mean() > 0.05
    assert studies.pasp.between(20, 70).all() and studies.heart_rate.between(52, 103).all()
    for device, rate in (("pacemaker", 0.15), ("tavr", 0.08), ("mitraclip", 0.08)):
        assert rate / 3 < studies[device].mean() < rate * 2
    assert not studies.tamponade[studies.effusion.isin(["none", "small"])].any()
    dilated = studies.lv_dilation != "none"
    assert dilated[studies.lvef < 40].mean() > dilated[studies.lvef >= 55].mean() + 0.4
    assert 1.7 < len(plan.studies) / 150 < 2.3 and 5 <= len(plan.tasks) / len(plan.studies) <= 6.5


def test_each_site_writes_its_own_house_style(cohort):
    """Both house styles occur in a small cohort; a patient stays at one site; a study's files name its site
    (InstitutionName) and its report is written in that site's style."""
    style_of = {site.institution_name: site.house_style for site in SITES}
    studies = cohort["studies"].set_index("study_instance_uid")
    assert (studies.house_style == studies.institution_name.map(style_of)).all()
    assert (studies.groupby("patient_id").institution_name.nunique() == 1).all()
    for row in cohort["clips"].groupby("study_instance_uid").head(1).itertuples():
        ds = pydicom.dcmread(cohort["root"] / "dicom" / row.relative_path, stop_before_pixels=True)
        assert ds.InstitutionName == studies.loc[row.study_instance_uid, "institution_name"]
    csv = pd.read_csv(cohort["root"] / "reports.csv", dtype=str, keep_default_na=False).set_index("report_id")
    truth = cohort["reports"].set_index("report_id")
    assert set(truth.house_style) == set(HOUSE_STYLES)
    linked = truth[~truth.is_orphan]
    assert (linked.house_style == studies.loc[linked.study_instance_uid, "house_style"].to_numpy()).all()
    for report_id, style in truth.house_style.items():
        text = csv.loc[report_id, "report_text"]
        words = re.sub(r"(?<=[0-9])(mmHg|mm|cm|mL/m2|m/s|kg|bpm)\b", "", text)  # glued units keep their case
        capitals = style == "block_capitals"
        assert (words == words.upper()) == capitals, report_id
        summary, first_finding = ("CONCLUSIONS:", "\nLV:") if capitals else ("IMPRESSION:", "LEFT VENTRICLE:")
        assert (text.index(summary) < text.index(first_finding)) == load_house_style(style)["impression_first"]


def test_house_styles_share_every_phrase_key():
    keys = {name: set(load_house_style(name).phrases) for name in HOUSE_STYLES}
    assert all(k == keys[HOUSE_STYLES[0]] for k in keys.values()), keys
    with pytest.raises(HouseStyleError, match="unknown house style 'gothic'"):
        load_house_style("gothic")
    with pytest.raises(HouseStyleError, match="no key 'sonnet'"):
        load_house_style(HOUSE_STYLES[1])["sonnet"]


@pytest.fixture(scope="module")
def planned():
    """A planned (not rendered) cohort of 150 patients and its reports: rates need more studies than pixels."""
    plan = plan_cohort(150, 3)
    csv, truth = build_reports(3, plan.patients, plan.studies)
    return pd.DataFrame(plan.studies), csv, truth


def test_later_findings_follow_the_anatomy(planned):
    studies, _, truth = planned
    assert 0.4 <= (truth.house_style == HOUSE_STYLES[0]).mean() <= 0.8  # the default style stays the majority
    assert studies.impella.any() and studies.impella.mean() < 0.06 and (studies.lvef[studies.impella] < 35).all()
    assert (studies.normal_lv_wall_thickness == (studies.lvh == "none")).all()
    assert not studies.no_significant_valvular_disease[studies.tavr | studies.mitraclip].any()
    assert 0.4 < studies.no_significant_valvular_disease.mean() < 0.9
    assert (studies.right_atrial_pressure[studies.tamponade] == "significantly_elevated").all()
    assert set(studies.right_atrial_pressure) == {"normal", "elevated", "significantly_elevated"}
    high = studies.right_atrial_pressure != "normal"
    assert high[studies.pasp > 50].mean() > high[studies.pasp < 35].mean() + 0.3
    af = studies.atrial_fibrillation
    assert 0.03 < af.mean() < 0.3 and af[studies.la_dilation.isin(["moderate", "severe"])].mean() > af[
        studies.la_dilation == "none"].mean()


def test_reports_state_only_the_truth_in_both_styles(planned):
    """Every stated finding (other than the written LVEF/PASP numbers) is the study's truth; each new label is
    stated in both styles, with both values of each boolean occurring."""
    studies, _, truth = planned
    merged = truth[~truth.is_orphan].merge(studies, on="study_instance_uid", suffixes=("_stated", ""))
    for label in REPORT_LABEL_NAMES:
        stated = merged[f"{label}_stated"]
        if label not in ("lvef", "pasp"):
            said = stated.notna()
            assert (stated[said].astype(str) == merged.loc[said, label].astype(str)).all(), label
    for style in HOUSE_STYLES:
        mine = merged[merged.house_style_stated == style]
        for label in NEW_LABELS:
            assert mine[f"{label}_stated"].nunique() >= 2, (style, label)


def test_hand_made_studies_get_the_later_findings_drawn_consistently():
    study = {"study_instance_uid": "1.2.3", "accession_number": "1", "patient_id": "P1", "study_date": "2020-01-01",
             "lvef": 25.0, "pasp": 60.0, "pacemaker": False, "tavr": True, "mitraclip": False,
             "lv_dilation": "severe", "la_dilation": "none", "rv_dilation": "severe", "ra_dilation": "none",
             "lvh": "mild", "effusion": "none", "tamponade": False}
    for seed in range(30):
        for style in HOUSE_STYLES:
            text, stated = render_report(study, np.random.default_rng(seed), style)
            assert (text, stated) == render_report(study, np.random.default_rng(seed), style)
            assert stated["normal_lv_wall_thickness"] in (None, False)
            assert stated["no_significant_valvular_disease"] in (None, False)  # a TAVR is valve disease
    assert render_report(study, np.random.default_rng(1)) == render_report(study, np.random.default_rng(1),
                                                                            HOUSE_STYLES[0])
