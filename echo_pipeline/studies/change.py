"""Clinical change: which studies surround a procedure, and how similar each is to the patient's earliest one.

For an event (a patient's procedure on a date) the window holds the patient's studies within `WINDOW_DAYS`
before and after it. The reference is the earliest study in the window, which must come before the event;
every other study of the window is scored by its cosine similarity to the reference, at study level (study
embeddings) and over clips (the mean cosine of every pair of one clip from each study). A study on the day of
the procedure is left out: an echo that day may be either side of it. The before/after AUC then asks whether
studies after the event are less similar to the reference than studies before it (the paper's "clinical
change", AUC 0.79 after a heart transplant).

Pandas and NumPy only: the model runs and the tables sit above (`evaluation.clinical_change`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

WINDOW_DAYS = 200
#: Columns of `event_windows`' result, one row per scored study.
WINDOW_COLUMNS = ["event_id", "patient_key", "procedure", "event_date", "study_instance_uid", "study_date",
                  "days_from_event", "reference_study_uid", "reference_days_from_event", "after_event"]


def event_windows(events: pd.DataFrame, studies: pd.DataFrame, window_days: int = WINDOW_DAYS
                  ) -> tuple[pd.DataFrame, list[str]]:
    """(one row per scored study (WINDOW_COLUMNS), notes on events that could not be analysed).

    ``events``: event_id, patient_key, procedure, event_date. ``studies``: study_instance_uid, patient_key,
    study_date (one row per study). A patient with several events is analysed once per event.
    """
    studies = studies.dropna(subset=["patient_key", "study_date"])
    by_patient = {key: group.sort_values(["study_date", "study_instance_uid"])
                  for key, group in studies.groupby("patient_key", sort=False)}
    rows, skipped = [], {"no_studies": 0, "no_reference_before": 0, "nothing_to_compare": 0}
    for event in events.sort_values(["patient_key", "event_date", "event_id"]).itertuples(index=False):
        group = by_patient.get(event.patient_key)
        if group is None:
            skipped["no_studies"] += 1
            continue
        days = (pd.to_datetime(group["study_date"]) - pd.Timestamp(event.event_date)).dt.days.to_numpy()
        near = (np.abs(days) <= window_days) & (days != 0)
        inside = group[near].assign(days=days[near])
        if inside.empty or inside["days"].iloc[0] > 0:
            skipped["no_reference_before" if not inside.empty else "no_studies"] += 1
            continue
        reference, scored = inside.iloc[0], inside.iloc[1:]
        if scored.empty:
            skipped["nothing_to_compare"] += 1
            continue
        for study in scored.itertuples(index=False):
            rows.append([event.event_id, event.patient_key, event.procedure, event.event_date,
                         study.study_instance_uid, study.study_date, int(study.days),
                         reference["study_instance_uid"], int(reference["days"]), bool(study.days > 0)])
    notes = [f"{n} events left out: {_SKIP_REASONS[reason].format(days=window_days)}"
             for reason, n in skipped.items() if n]
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS), notes


_SKIP_REASONS = {
    "no_studies": "the patient has no study within {days} days of it (other than on the day itself)",
    "no_reference_before": "the patient's earliest study within {days} days comes after it",
    "nothing_to_compare": "only one study within {days} days, the reference",
}


def study_similarity(windows: pd.DataFrame, study_uids: list[str], study_vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of each window row's study to its reference (NaN where either has no vector)."""
    row_of = {uid: i for i, uid in enumerate(study_uids)}
    out = np.full(len(windows), np.nan)
    for i, (study, reference) in enumerate(zip(windows["study_instance_uid"], windows["reference_study_uid"])):
        if study in row_of and reference in row_of:
            out[i] = float(study_vectors[row_of[study]] @ study_vectors[row_of[reference]])
    return out


def clip_pair_similarity(windows: pd.DataFrame, clips_of_study: Mapping[str, np.ndarray]) -> np.ndarray:
    """Mean cosine similarity over every (clip of the study, clip of the reference) pair, from unit clip
    vectors per study (NaN where either study has no clip)."""
    out = np.full(len(windows), np.nan)
    for i, (study, reference) in enumerate(zip(windows["study_instance_uid"], windows["reference_study_uid"])):
        a, b = clips_of_study.get(study), clips_of_study.get(reference)
        if a is not None and b is not None and len(a) and len(b):
            out[i] = float((np.asarray(a, np.float64) @ np.asarray(b, np.float64).T).mean())
    return out
