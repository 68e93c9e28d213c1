"""Clinical change (`eval_clinical_change`): studies around a procedure scored by their similarity to the
patient's earliest study, for the trained model and the random-init reference, and the before/after AUC per
procedure with 95 % bootstrap CIs by patient (docs/evaluation.md; the windowing rule: `studies.change`).

The AUC reads "a study after the event is less similar to the reference than a study before it": 0.5 is no
change found, 1 is perfect separation. Patients are the resampling unit (all of a patient's scored studies
come along), so a patient with many studies does not narrow the interval by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from echo_pipeline import model_variants, studies
from echo_pipeline.evaluation.change_plots import trajectory_figure
from echo_pipeline.evaluation.study_vectors import model_vectors
from echo_pipeline.metrics.bootstrap import N_RESAMPLES, bootstrap_auc
from echo_pipeline.schemas import TABLES
from echo_pipeline.storage import DataRoot
from echo_pipeline.studies import change, inputs

TABLE = "eval_clinical_change"
ALL_PROCEDURES = "all"
LEVELS = ("study", "clip")


@dataclass(frozen=True)
class ChangeSettings:
    n_resamples: int = N_RESAMPLES
    seed: int = 0
    split: str = "test"  # patients analysed; "all" = every patient (the trained model saw train patients)
    window_days: int = change.WINDOW_DAYS
    device: str = "auto"
    batch_frames: int = 64
    num_workers: int = 1


@dataclass
class ChangeOutputs:
    table: pa.Table
    figures: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    auc: pd.DataFrame = field(default_factory=pd.DataFrame)  # the AUC rows, for the UI


def auc_rows(scored: pd.DataFrame, base: dict, boot: ChangeSettings) -> list[dict]:
    """Before/after AUC rows, per procedure and pooled, of similarity rows (after_event, value, patient_key)."""
    rows = []
    for procedure, group in [*scored.groupby("procedure", sort=True), (ALL_PROCEDURES, scored)]:
        group = group[np.isfinite(group["value"].to_numpy(dtype=np.float64))]
        after = group["after_event"].to_numpy(dtype=bool)
        counts = {"n_before": int((~after).sum()), "n_after": int(after.sum()),
                  "n_patients": int(group["patient_key"].nunique())}
        value = low = high = float("nan")
        if counts["n_before"] and counts["n_after"]:
            r = bootstrap_auc(after, -group["value"].to_numpy(dtype=np.float64),
                              groups=group["patient_key"].to_numpy(dtype=object), n_resamples=boot.n_resamples,
                              seed=boot.seed)
            value, low, high = r.estimate, r.low, r.high
        rows.append({**base, "metric": "auc_before_after", "procedure": procedure, "value": value, "ci_low": low,
                     "ci_high": high, **counts})
    return rows


def similarity_rows(windows: pd.DataFrame, values: np.ndarray, base: dict) -> list[dict]:
    frame = windows.assign(value=values, metric="similarity_to_earliest", n_before=(~windows["after_event"]).astype(int),
                           n_after=windows["after_event"].astype(int), n_patients=1)
    frame = frame.drop(columns=["event_date", "study_date", "reference_days_from_event"])
    return [{**base, **row} for row in frame.to_dict("records")]


def evaluate_clinical_change(store: DataRoot, record: model_variants.ModelRecord, *, run_id: str,
                             settings: ChangeSettings = ChangeSettings(),
                             progress: Callable[[str], None] = lambda _: None) -> ChangeOutputs:
    """Every `eval_clinical_change` row of ``record``'s variant, the trajectory figures and notes."""
    events = inputs.read_events(store)
    clips = inputs.read_clips(store, settings.split)
    windows, notes = change.event_windows(events, inputs.studies_of(clips), settings.window_days)
    if events.empty:
        notes.insert(0, "no procedure events: nothing to analyse (configure --events; see procedure_events)")
    if windows.empty:
        return ChangeOutputs(pa.Table.from_pylist([], schema=TABLES[TABLE]), notes=notes + [
            f"no {settings.split!r} patient has an event with studies on both sides within {settings.window_days} days"])
    needed = set(windows["study_instance_uid"]) | set(windows["reference_study_uid"])
    vectors, model_ids = model_vectors(store, record, clips[clips["study_instance_uid"].isin(needed)],
                                       device=settings.device, batch_frames=settings.batch_frames,
                                       num_workers=settings.num_workers, progress=progress)
    rows, figures = [], {}
    for kind, kv in vectors.items():
        for level in LEVELS:
            base = {"model_id": model_ids[kind], "checkpoint_sha256": record.checkpoint_sha256, "model_kind": kind,
                    "variant": record.variant, "split": settings.split, "level": level, "seed": settings.seed,
                    "n_resamples": settings.n_resamples, "run_id": run_id, "code_version": studies.CODE_VERSION}
            values = (change.study_similarity(windows, kv.study_uids, kv.studies) if level == "study"
                      else change.clip_pair_similarity(windows, kv.clips_of_study()))
            rows += similarity_rows(windows, values, base)
            rows += auc_rows(windows.assign(value=values), base, settings)
            if level == "study":
                figures[f"clinical_change_{kind}"] = trajectory_figure(
                    windows.assign(value=values), f"{kind} model: similarity to the earliest study around the event")
    table = pa.Table.from_pylist([{c: r.get(c) for c in TABLES[TABLE].names} for r in rows], schema=TABLES[TABLE])
    frame = table.to_pandas()
    return ChangeOutputs(table, figures, notes, frame[frame["metric"] == "auc_before_after"])
