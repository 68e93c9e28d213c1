"""Plan a cohort: patients, studies and one ClipTask per clip (what to draw, the header, where to write it).

Planning is cheap and serial; rendering and writing happen in worker processes from the tasks alone. Every
random choice comes from a Generator keyed by (seed, patient, study, clip), so the plan of patient ``i`` does
not depend on the cohort size, except for the coverage rule below which only touches small cohorts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field, replace

from echo_pipeline.synth.anatomy import HeartParams
from echo_pipeline.synth.dicom_writer import PHOTOMETRIC, TRANSFER_SYNTAX
from echo_pipeline.synth.events import patient_with_event, sample_event, study_after_event
from echo_pipeline.synth.physiology import (
    STORAGE_KINDS,
    VENDORS,
    Vendor,
    child_rng,
    clip_timing,
    sample_patient,
    sample_study,
    storage_kind,
    study_dates,
    study_views,
    uid,
)
from echo_pipeline.synth.render import ClipDrawing, SectorGeometry

_ECG_BAND = 26  # rows kept below the fan for the ECG trace
#: Shares of clips drawn with a virtual apex above the image (the image starts at a near arc), with a steered
#: (asymmetric) sector, with a region box wider than the sector, and with the transducer origin in the tags.
VIRTUAL_APEX_SHARE, STEERED_SHARE, BOX_MARGIN_SHARE, ORIGIN_TAG_SHARE = 0.5, 0.3, 0.5, 0.7
#: How far above the image a virtual apex lies, as shares of the image height. A real phased array's apex lies
#: only a few centimetres behind its face; 5-30 % (the first version) made the fan up to a third wider than the
#: heart drawn in it, so the heart's size in the cropped frame varied at random with the geometry, and the demo's
#: model stopped learning retrieval (docs/synthetic-cohort.md, "Geometry and learning").
VIRTUAL_APEX_HEIGHT = (0.03, 0.10)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # not locale-bound


@dataclass(frozen=True)
class ClipTask:
    """One clip to render and write; ``truth`` is its row of truth/clips.parquet."""

    drawing: ClipDrawing
    header: dict
    kind: str
    relative_path: str
    truth: dict


@dataclass
class CohortPlan:
    patients: list[dict] = field(default_factory=list)
    studies: list[dict] = field(default_factory=list)  # rows of studies.parquet plus drawing-only keys
    tasks: list[ClipTask] = field(default_factory=list)
    study_dirs: dict[str, str] = field(default_factory=dict)  # study uid -> its folder under dicom/
    events: list[dict] = field(default_factory=list)  # (patient, event) of patients with a procedure


def _hex(seed: int, *keys) -> str:
    return hashlib.sha1(":".join(map(str, (seed, *keys))).encode()).hexdigest()[:8].upper()


def _file_name(vendor: Vendor, rng, instance: int) -> str:
    """Vendor-style file names; some without extension, some odd (spaces, upper-case extension)."""
    if vendor.name_style == "IM":
        return f"IM_{instance:04d}"
    if vendor.name_style == "US":
        return f"US{int(rng.integers(100, 1000))}{instance:03d}.dcm"
    return (f"{instance:08d}", f"IMG {instance:03d}.DCM", f"clip-{instance}.dcm", f"I{instance:07d}")[
        int(rng.integers(4))]


def _overlay_text(vendor: Vendor, patient: dict, study: dict, fps: int, depth: float) -> tuple[tuple, tuple]:
    last, first = patient["patient_name"].split("^")
    date, time = study["study_date"], study["study_time"]
    clock = f"{time[:2]}:{time[2:4]}:{time[4:]}"
    if vendor.name_style == "IM":
        return (f"{last}, {first}", f"ID {patient['patient_id']}"), (
            f"{date.day:02d}-{_MONTHS[date.month - 1]}-{date.year}", clock, vendor.model, f"FR {fps}Hz")
    if vendor.name_style == "US":
        return (patient["patient_name"], patient["patient_id"], f"DOB {patient['birth_date']:%Y-%m-%d}"), (
            date.strftime("%Y/%m/%d"), clock, f"HR {int(study['heart_rate'])} bpm", f"{depth:.0f} cm")
    return (patient["patient_id"], f"{first} {last}"), (date.strftime("%m/%d/%Y"), vendor.model)


def _sector_geometry(vendor: Vendor, rng, geo) -> SectorGeometry:
    """The clip's fan: the vendor's pointed fan (jittered by ``rng``, as before), or, by ``geo``, one with a
    virtual apex above the image and a near arc a few rows down, and/or steered up to 8 degrees. The far arc
    stays above the ECG band and the sides inside the image (the outer side angle is cut when needed)."""
    apex_x = vendor.cols / 2 + float(rng.uniform(-3, 3))
    apex_y = vendor.apex_y + float(rng.uniform(-2, 2))
    bottom = vendor.rows - _ECG_BAND - float(rng.uniform(0, 6))  # row of the far arc on the axis
    half = vendor.half_angle_deg + float(rng.uniform(-1.5, 1.5))
    tilt = float(geo.uniform(-8, 8)) if geo.random() < STEERED_SHARE else 0.0
    virtual = geo.random() < VIRTUAL_APEX_SHARE
    if virtual:  # a phased array's footprint, 1.5-2.5 cm wide at 15-18 cm depth, puts it 3-10 % of the height up
        apex_y = -float(geo.uniform(*VIRTUAL_APEX_HEIGHT)) * vendor.rows
    radius = (bottom - apex_y) / math.cos(math.radians(tilt))
    left = max(tilt - half, -math.degrees(math.asin(min(1.0, (apex_x - 3) / radius))))
    right = min(tilt + half, math.degrees(math.asin(min(1.0, (vendor.cols - 4 - apex_x) / radius))))
    # The near arc meets the sides a few rows below the image's top (its higher end, on the wider side).
    top = float(geo.uniform(3, 12))
    min_radius = (top - apex_y) / math.cos(math.radians(max(-left, right))) if virtual else 0.0
    return SectorGeometry(vendor.rows, vendor.cols, apex_x, apex_y, radius, left, right, min_radius)


def _plan_clip(seed, patient, study, j, k, view, is_colour, series_uid, study_dir) -> ClipTask:
    rng = child_rng(seed, "clip", patient["index"], j, k)
    vendor = VENDORS[study["vendor"]]
    kind = storage_kind(rng, is_colour)
    heart_rate = float(study["heart_rate"] + rng.integers(-3, 4))
    frames, fps = clip_timing(rng, heart_rate)
    geo = child_rng(seed, "sector", patient["index"], j, k)  # its own stream: the other draws stay as they were
    geometry = _sector_geometry(vendor, rng, geo)
    depth = float(rng.choice([15.0, 16.0, 17.0, 18.0]))
    left, right = _overlay_text(vendor, patient, study, fps, depth)
    drawing = ClipDrawing(
        geometry=geometry, view=view, is_colour=is_colour, monochrome=kind.startswith("mono"),
        heart=HeartParams.from_study(study), frames=frames, fps=fps, heart_rate=heart_rate,
        phase0=float(rng.uniform(0, 60.0 / heart_rate)),
        placement=(float(rng.uniform(-0.02, 0.02)), float(rng.uniform(-0.02, 0.02)), float(rng.uniform(-4, 4)),
                   float(rng.uniform(0.96, 1.04))),
        tint=vendor.tint, text_left=left, text_right=right, noise_seed=int(rng.integers(2**63)),
    )
    sop_uid = uid(seed, "clip", patient["index"], j, k)
    relative_path = f"{study_dir}/{_file_name(vendor, rng, k + 1)}"
    hhmmss = study["study_time"]
    start = dt.datetime.combine(study["study_date"], dt.time(int(hhmmss[:2]), int(hhmmss[2:4])))
    start += dt.timedelta(seconds=53 * (k + 1))  # clips follow each other through the study
    header = {
        "sop_instance_uid": sop_uid, "study_instance_uid": study["study_instance_uid"],
        "series_instance_uid": series_uid, "series_number": k + 1 if vendor.series_per_clip else 1,
        "instance_number": k + 1, "study_date": study["study_date"], "study_time": study["study_time"],
        "content_time": start.strftime("%H%M%S"), "accession_number": study["accession_number"],
        "manufacturer": vendor.manufacturer, "model": vendor.model,
        "institution_name": study["institution_name"], "station_name": f"ECHO{study['vendor'] + 1}",
        "software": f"{study['vendor'] + 2}.{int(rng.integers(0, 4))}.1",
        "device_serial": _hex(seed, "serial", study["vendor"]),
        "patient_name": patient["patient_name"], "patient_id": patient["patient_id"],
        "birth_date": patient["birth_date"], "sex": patient["sex"],
        "frame_rate_tag": str(rng.choice(vendor.frame_rate_tags)), "fps": fps, "heart_rate": heart_rate,
        "write_heart_rate": vendor.name_style == "US", "colour_flag_tag": vendor.colour_flag_tag,
        "is_colour": is_colour, "has_regions": bool(rng.random() < vendor.region_probability),
        "depth_cm": depth, "sector_radius": geometry.radius, "apex_x": geometry.apex_x, "apex_y": geometry.apex_y,
        "jpeg_quality": vendor.jpeg_quality, "region_origin_tags": bool(geo.random() < ORIGIN_TAG_SHARE),
        "region_margin": tuple(int(m) for m in geo.integers(1, 15, 4)) if geo.random() < BOX_MARGIN_SHARE else (0, 0, 0, 0),
    }
    return ClipTask(drawing, header, kind, relative_path, _truth_row(header, drawing, kind, view, relative_path))


def _truth_row(header: dict, d: ClipDrawing, kind: str, view: str, relative_path: str) -> dict:
    g = d.geometry
    return {
        "sop_instance_uid": header["sop_instance_uid"], "series_instance_uid": header["series_instance_uid"],
        "study_instance_uid": header["study_instance_uid"], "relative_path": relative_path, "view": view,
        "is_colour": d.is_colour, "storage_kind": kind, "transfer_syntax_uid": str(TRANSFER_SYNTAX[kind]),
        "photometric_interpretation": PHOTOMETRIC[kind], "rows": g.rows, "columns": g.cols, "frames": d.frames,
        "frame_rate": float(d.fps), "frame_rate_tag": header["frame_rate_tag"], "has_regions": header["has_regions"],
        "sector_apex_x": g.apex_x, "sector_apex_y": g.apex_y, "sector_radius": g.radius,
        "sector_half_angle_deg": g.half_angle_deg, "sector_angle_left_deg": g.angle_left_deg,
        "sector_angle_right_deg": g.angle_right_deg, "sector_min_radius": g.min_radius,
        "region_origin_tags": header["has_regions"] and header["region_origin_tags"], "sector_mask_path": f"truth/masks/{header['sop_instance_uid']}.png",
        "heart_rate": d.heart_rate, "manufacturer": header["manufacturer"],
    }


def _with(task: ClipTask, kind: str | None = None, has_regions: bool | None = None,
          origin_tags: bool | None = None) -> ClipTask:
    """The same clip stored as ``kind`` and/or with or without the regions sequence or its origin tags."""
    kind = kind or task.kind
    header = dict(task.header)
    if has_regions is not None:
        header["has_regions"] = has_regions
    if origin_tags is not None:
        header["region_origin_tags"] = origin_tags
    drawing = replace(task.drawing, monochrome=kind.startswith("mono"))
    truth = _truth_row(header, drawing, kind, task.truth["view"], task.relative_path)
    return ClipTask(drawing, header, kind, task.relative_path, truth)


def _ensure_coverage(tasks: list[ClipTask]) -> list[ClipTask]:
    """Small cohorts still get every storage kind and clips with and without the regions sequence."""
    tasks = list(tasks)
    grey = [i for i, t in enumerate(tasks) if not t.drawing.is_colour]
    for kind in STORAGE_KINDS:
        counts = {k: sum(t.kind == k for t in tasks) for k in STORAGE_KINDS}
        if counts[kind] == 0 and grey:
            donor = max(counts, key=counts.get)
            i = next(i for i in grey if tasks[i].kind == donor)
            tasks[i] = _with(tasks[i], kind=kind)
    for wanted in (True, False):
        if tasks and not any(t.header["has_regions"] == wanted for t in tasks):
            tasks[-1 if wanted else 0] = _with(tasks[-1 if wanted else 0], has_regions=wanted)
    tagged = [i for i, t in enumerate(tasks) if t.header["has_regions"]]
    for wanted in (True, False):  # tagged clips with and without the transducer origin
        if len(tagged) > 1 and not any(tasks[i].header["region_origin_tags"] == wanted for i in tagged):
            i = tagged[0 if wanted else -1]
            tasks[i] = _with(tasks[i], origin_tags=wanted)
    return tasks


def plan_cohort(patients: int, seed: int, *, events_change_anatomy: bool = True) -> CohortPlan:
    """Sample ``patients`` patients with 1-3 studies each and plan every clip. Patients with a procedure event
    (synth.events) have three studies around it, changed by it unless ``events_change_anatomy`` is False."""
    plan = CohortPlan()
    for i in range(patients):
        patient = sample_patient(seed, i)
        event = sample_event(seed, patient)
        if event is not None:
            patient = patient_with_event(patient, event, events_change_anatomy)
            plan.events.append({"patient": patient, "event": event})
        plan.patients.append(patient)
        patient_dir = _hex(seed, "patient-dir", i)
        for j, date in enumerate(event["study_dates"] if event else study_dates(seed, patient)):
            study = sample_study(seed, patient, j, date)
            if event is not None:
                study = study_after_event(seed, patient, j, study, event, events_change_anatomy)
            plan.studies.append(study)
            study_dir = f"{patient_dir}/{_hex(seed, 'study-dir', i, j)[:6]}"
            plan.study_dirs[study["study_instance_uid"]] = study_dir
            vendor = VENDORS[study["vendor"]]
            for k, (view, is_colour) in enumerate(study_views(seed, (i, j))):
                series_uid = uid(seed, "series", i, j, k if vendor.series_per_clip else 0)
                plan.tasks.append(_plan_clip(seed, patient, study, j, k, view, is_colour, series_uid, study_dir))
    plan.tasks = _ensure_coverage(plan.tasks)
    return plan
