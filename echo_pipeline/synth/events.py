"""Procedure events of the synthetic cohort: who has one, when, and how the studies after it change.

About one patient in five (`EVENT_SHARE`) has a procedure. Such a patient has three studies: the earliest and
a second one before the event, the third after it, all within 200 days of it (the clinical-change window), so
the before/after analysis has one study on each side besides the reference. With ``change_anatomy`` (the
default) the studies after the event show it: a transplanted heart is a normal one after a failing one;
cardiac surgery leaves a lower LVEF, a larger left atrium and right ventricle and a small effusion; a TAVR,
MitraClip or pacemaker appears as a device. Without it (the null cohort, "events change nothing") the same
events are written but every study is drawn as if none had happened, so an analysis must find no change.

Every draw comes from a Generator keyed by (seed, "event", patient), so patients without an event are exactly
the patients of a cohort without events.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from echo_pipeline.synth.physiology import SEVERITIES, child_rng, sample_findings

#: Procedures drawn, with weights (the events file's `procedure` values; docs/input-contract.md).
PROCEDURE_WEIGHTS = {"heart_transplant": 0.2, "cardiac_surgery": 0.3, "tavr": 0.2, "mitraclip": 0.15,
                     "pacemaker": 0.15}
DEVICE_PROCEDURES = ("tavr", "mitraclip", "pacemaker")
EVENT_SHARE = 0.2
#: Studies of a patient with an event: the reference and one more before it, one after.
STUDIES_WITH_EVENT = 3
FIRST_AFTER = 2  # index of the first study after the event


def sample_event(seed: int, patient: dict, share: float = EVENT_SHARE) -> dict | None:
    """The patient's event (procedure, date, the study dates around it) or None; dates within 200 days."""
    rng = child_rng(seed, "event", patient["index"])
    if rng.random() >= share:
        return None
    names = list(PROCEDURE_WEIGHTS)
    p = np.array([PROCEDURE_WEIGHTS[n] for n in names])
    procedure = names[int(rng.choice(len(names), p=p / p.sum()))]
    first = patient["first_study"]
    second = first + dt.timedelta(days=int(rng.integers(20, 91)))
    event_date = second + dt.timedelta(days=int(rng.integers(5, 31)))
    after = event_date + dt.timedelta(days=int(rng.integers(14, 121)))
    return {"procedure": procedure, "event_date": event_date, "study_dates": [first, second, after],
            "new_lvef": float(np.clip(rng.normal(62, 3), 55, 70))}


def patient_with_event(patient: dict, event: dict, change_anatomy: bool) -> dict:
    """The patient re-planned around ``event``: three studies; a failing heart before a transplant (the
    reason for it) and, with ``change_anatomy``, the procedure's device present from the first study after."""
    old_n = patient["n_studies"]
    devices = {name: (start if start < old_n else STUDIES_WITH_EVENT) for name, start in patient["device_from"].items()}
    if change_anatomy and event["procedure"] in DEVICE_PROCEDURES:
        devices[event["procedure"]] = FIRST_AFTER
    changed = dict(patient, n_studies=STUDIES_WITH_EVENT, device_from=devices)
    if event["procedure"] == "heart_transplant":
        changed["base_lvef"] = min(patient["base_lvef"], 28.0)
    return changed


def _grade_up(grade: str, steps: int = 1) -> str:
    return SEVERITIES[min(len(SEVERITIES) - 1, SEVERITIES.index(grade) + steps)]


def study_after_event(seed: int, patient: dict, j: int, study: dict, event: dict, change_anatomy: bool) -> dict:
    """Study ``j`` as the event left it (unchanged before it, or without ``change_anatomy``)."""
    if not change_anatomy or j < FIRST_AFTER:
        return study
    changed = dict(study)
    if event["procedure"] == "heart_transplant":
        changed.update(lvef=round(event["new_lvef"], 1), lv_dilation="none", la_dilation="none", rv_dilation="none",
                       ra_dilation="none", lvh="none", effusion="small", tamponade=False)
    elif event["procedure"] == "cardiac_surgery":
        changed.update(lvef=round(max(15.0, study["lvef"] - 10.0), 1), la_dilation=_grade_up(study["la_dilation"]),
                       rv_dilation=_grade_up(study["rv_dilation"]),
                       effusion="small" if study["effusion"] == "none" else study["effusion"])
    # Device procedures: the device is already present through `device_from`; findings follow the new anatomy.
    return changed | sample_findings(child_rng(seed, "findings", patient["index"], j), changed)


def events_csv_rows(patient: dict, event: dict) -> dict:
    """The patient's row of events.csv: the raw patient id, as a hospital would export it."""
    return {"patient_id": patient["patient_id"], "procedure": event["procedure"],
            "event_date": event["event_date"].isoformat()}
