"""Generate a synthetic echo cohort: DICOM archive, reports.csv, view_labels.csv and the truth tables.

Layout (docs/synthetic-cohort.md, contract in the project notes):

    OUT_DIR/dicom/<patient dir>/<study dir>/<file>   clips + broken files
    OUT_DIR/reports.csv, OUT_DIR/view_labels.csv, OUT_DIR/events.csv (procedure events)
    OUT_DIR/truth/{patients,studies,clips,reports,files}.parquet, OUT_DIR/truth/masks/<sop uid>.png

The same (patients, seed) writes byte-identical files whatever the number of worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from echo_pipeline.errors import InputContractError
from echo_pipeline.schemas import SYNTH_TRUTH_TABLES
from echo_pipeline.synth.broken_files import write_broken_files
from echo_pipeline.synth.dicom_writer import image_dataset, save
from echo_pipeline.synth.events import events_csv_rows
from echo_pipeline.synth.physiology import VENDORS, child_rng
from echo_pipeline.synth.plan import ClipTask, CohortPlan, plan_cohort
from echo_pipeline.synth.render import colour_box, render_clip
from echo_pipeline.synth.reports_csv import build_reports


@dataclass(frozen=True)
class CohortPaths:
    """Where a generated cohort's parts are."""

    root: Path

    @property
    def dicom_root(self) -> Path:
        return self.root / "dicom"

    @property
    def reports_csv(self) -> Path:
        return self.root / "reports.csv"

    @property
    def events_csv(self) -> Path:
        return self.root / "events.csv"

    @property
    def view_labels_csv(self) -> Path:
        return self.root / "view_labels.csv"

    @property
    def truth_dir(self) -> Path:
        return self.root / "truth"

    def truth(self, table: str) -> Path:
        """Path of a truth table: patients, studies, clips, reports or files."""
        return self.truth_dir / f"{table}.parquet"


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def write_clip(task: ClipTask, root: Path) -> str:
    """Render one clip, write its DICOM file and its truth sector mask; return its relative path."""
    d = task.drawing
    sector = d.geometry.mask()
    header = dict(task.header, sector_bbox=_bbox(sector))
    if d.is_colour:
        header["colour_bbox"] = _bbox(colour_box(d))
    save(image_dataset(header, render_clip(d), task.kind), root / "dicom" / task.relative_path)
    cv2.imwrite(str(root / task.truth["sector_mask_path"]), sector)
    return task.relative_path


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; cv2's own threads would oversubscribe


def _write_clip_star(args: tuple[ClipTask, Path]) -> str:
    return write_clip(*args)


def _render_all(plan: CohortPlan, root: Path, workers: int, progress: bool) -> None:
    jobs = [(task, root) for task in plan.tasks]
    bar = tqdm(total=len(jobs), desc="synth clips", unit="clip", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _write_clip_star(job)
            bar.update()
    else:
        # spawn: workers start clean (no inherited threads or locks from the caller, e.g. torch in a notebook)
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            for _ in pool.imap_unordered(_write_clip_star, jobs, chunksize=4):
                bar.update()
            # Let idle workers exit on their end-of-work sentinel. Leaving it to the with-block's terminate()
            # hung a test run: terminate() stops workers with SIGTERM, and a process started with SIGTERM
            # ignored (nohup-style launchers) passes that on, so a worker waiting on the queue lock never died.
            pool.close()
            pool.join()
    bar.close()


def _view_labels(seed: int, plan: CohortPlan) -> pd.DataFrame:
    """Labels for about half of the clips; colour-Doppler clips are labelled OTHER, not by their anatomy."""
    rows = []
    for task in plan.tasks:
        if child_rng(seed, "view-label", task.header["sop_instance_uid"]).random() < 0.5:
            rows.append({"sop_instance_uid": task.header["sop_instance_uid"],
                         "view": "OTHER" if task.drawing.is_colour else task.truth["view"]})
    return pd.DataFrame(rows, columns=["sop_instance_uid", "view"])


def _write_table(rows: list[dict] | pd.DataFrame, name: str, path: Path) -> None:
    schema = SYNTH_TRUTH_TABLES[name]
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    pq.write_table(table, path)


def generate_cohort(
    out_dir: Path, patients: int, seed: int, *, workers: int | None = None, progress: bool = True,
    events_change_anatomy: bool = True,
) -> CohortPaths:
    """Write a cohort of ``patients`` patients (1-3 studies each, ~5-6 clips per study) into ``out_dir``.

    ``out_dir`` must be absent or empty. ``events_change_anatomy`` False writes the null cohort: the same
    procedure events, but studies after them drawn as if nothing had happened. ``workers``: rendering processes (default: all cores; 1 = in this
    process). Deterministic: the same (patients, seed) gives byte-identical files and truth.
    """
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()):
        raise InputContractError(
            f"{root}: the synthetic cohort's output folder is not empty; choose a new folder or delete this one "
            "(the generator never overwrites, so that old and new files cannot mix)."
        )
    if patients < 1:
        raise InputContractError(f"{root}: a cohort needs at least one patient, got patients={patients}.")
    paths = CohortPaths(root)
    (paths.truth_dir / "masks").mkdir(parents=True, exist_ok=True)
    plan = plan_cohort(patients, seed, events_change_anatomy=events_change_anatomy)
    _render_all(plan, root, workers if workers is not None else (os.cpu_count() or 2), progress)

    files = [{"relative_path": t.relative_path, "expected": "ingested", "duplicate_of": None,
              "sop_instance_uid": t.header["sop_instance_uid"]} for t in plan.tasks]
    files += write_broken_files(paths.dicom_root, seed, plan)
    reports_csv, reports_truth = build_reports(seed, plan.patients, plan.studies)
    reports_csv.to_csv(paths.reports_csv, index=False)
    _view_labels(seed, plan).to_csv(paths.view_labels_csv, index=False)
    pd.DataFrame([events_csv_rows(e["patient"], e["event"]) for e in plan.events],
                 columns=["patient_id", "procedure", "event_date"]).to_csv(paths.events_csv, index=False)

    studies = [dict(s, manufacturer=VENDORS[s["vendor"]].manufacturer) for s in plan.studies]
    _write_table(plan.patients, "patients", paths.truth("patients"))
    _write_table(studies, "studies", paths.truth("studies"))
    _write_table([t.truth for t in plan.tasks], "clips", paths.truth("clips"))
    _write_table(reports_truth, "reports", paths.truth("reports"))
    _write_table(sorted(files, key=lambda r: r["relative_path"]), "files", paths.truth("files"))
    return paths
