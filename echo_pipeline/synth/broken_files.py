"""The files every real archive export contains and ingestion must quarantine, each with its expected reason.

- ``empty``: a zero-byte file;
- ``truncated``: a JPEG-baseline clip cut in the middle of its encapsulated pixel data;
- ``not_dicom``: a text export log and a PNG;
- ``no_pixel_data``: a US Multi-frame header without (7FE0,0010) Pixel Data;
- ``duplicate``: a byte-identical copy of a clip under a name that sorts after the original (ingestion keeps
  the lexicographically smallest path, so ``duplicate_of`` is the original);
- ``non_image_object``: a Basic Text SR object of the same study.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import cv2

from echo_pipeline.synth.dicom_writer import image_dataset, save, text_sr_dataset
from echo_pipeline.synth.physiology import child_rng, uid
from echo_pipeline.synth.plan import CohortPlan, ClipTask
from echo_pipeline.synth.render import render_clip


def _extra_header(task: ClipTask, seed: int, name: str, instance: int) -> dict:
    header = dict(task.header, sop_instance_uid=uid(seed, "broken", name), instance_number=instance)
    header["sector_bbox"] = task.drawing.geometry.bbox()
    return header


def _row(path: str, expected: str, sop_uid: str | None = None, duplicate_of: str | None = None) -> dict:
    return {"relative_path": path, "expected": expected, "duplicate_of": duplicate_of, "sop_instance_uid": sop_uid}


def write_broken_files(dicom_dir: Path, seed: int, plan: CohortPlan) -> list[dict]:
    """Write the broken files next to real clips of a few studies; return their rows of truth/files.parquet."""
    rng = child_rng(seed, "broken")
    tasks = plan.tasks
    pick = lambda: tasks[int(rng.integers(len(tasks)))]  # noqa: E731
    folder = lambda task: task.relative_path.rsplit("/", 1)[0]  # noqa: E731
    rows = []

    empty = f"{folder(pick())}/00000000"
    (dicom_dir / empty).parent.mkdir(parents=True, exist_ok=True)
    (dicom_dir / empty).write_bytes(b"")
    rows.append(_row(empty, "empty"))

    source = pick()
    short = replace(source.drawing, frames=40, monochrome=False, is_colour=False)
    header = _extra_header(source, seed, "truncated", 97)
    buffer = io.BytesIO()
    image_dataset(header, render_clip(short), "jpeg").save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    truncated = f"{folder(source)}/IM_0097"
    (dicom_dir / truncated).write_bytes(data[: int(len(data) * 0.6)])  # pixel data is ~all of the file
    rows.append(_row(truncated, "truncated", header["sop_instance_uid"]))

    log = f"{folder(pick())}/export_log.txt"
    job = int(rng.integers(1000, 9999))
    (dicom_dir / log).write_text(f"Export job {job} finished\nimages: {len(tasks)}\nwarnings: 0\n")
    rows.append(_row(log, "not_dicom"))
    png_task = pick()
    png = f"{folder(png_task)}/preview"  # no extension, as some PACS exports name thumbnails
    (dicom_dir / png).write_bytes(cv2.imencode(".png", png_task.drawing.geometry.mask())[1].tobytes())
    rows.append(_row(png, "not_dicom"))

    source = pick()
    header = _extra_header(source, seed, "no-pixels", 98)
    ds = image_dataset(header, render_clip(replace(source.drawing, frames=1, monochrome=False, is_colour=False)), "rgb")
    del ds.PixelData
    ds.NumberOfFrames = 40
    no_pixels = f"{folder(source)}/IM_0098.dcm"
    save(ds, dicom_dir / no_pixels)
    rows.append(_row(no_pixels, "no_pixel_data", header["sop_instance_uid"]))

    original = pick()
    duplicate = f"{original.relative_path}.bak"
    shutil.copyfile(dicom_dir / original.relative_path, dicom_dir / duplicate)
    rows.append(_row(duplicate, "duplicate", original.header["sop_instance_uid"], original.relative_path))

    source = pick()
    header = dict(source.header, sop_instance_uid=uid(seed, "broken", "sr"), instance_number=99,
                  series_instance_uid=uid(seed, "broken", "sr-series"), series_number=99)
    sr = f"{folder(source)}/SR_0099.dcm"
    save(text_sr_dataset(header, "Measurements exported to the reporting system."), dicom_dir / sr)
    rows.append(_row(sr, "non_image_object", header["sop_instance_uid"]))
    return rows
