"""reports.csv with the linking defects of a real reporting system, and the truth of every row.

Defects (per report of a cohort study): ~7% blank accession number (study UID and patient + date present),
~5% only patient id + study date, ~3% only patient id + a study date one day off (the patient's other studies
are months away, so a +-1 day window finds exactly one study). About 5% of the rows are orphans: reports of
studies that are not in the archive (known or unknown patients, dates far from any of their studies). Studies
with ``has_report`` False (~5%) get no row. The report text comes from report_text.render_report, in the house
style of the study's site.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from echo_pipeline.schemas import REPORT_LABEL_NAMES
from echo_pipeline.synth.physiology import child_rng, sample_patient, sample_study
from echo_pipeline.synth.report_text import render_report

CSV_COLUMNS = ("report_id", "accession_number", "study_instance_uid", "patient_id", "study_date", "report_text")
_ORPHAN_PATIENT_OFFSET = 1_000_000  # fake patient indices for orphans: never a cohort patient


def _row(study: dict, text: str, defect: str, rng) -> dict:
    """The CSV keys a report row carries for a given defect ("none" keeps accession, often the UID)."""
    date = study["study_date"]
    row = {"accession_number": study["accession_number"], "study_instance_uid": study["study_instance_uid"],
           "patient_id": study["patient_id"], "study_date": date.isoformat(), "report_text": text}
    if defect == "none":
        if rng.random() < 0.6:
            row["study_instance_uid"] = ""
        if rng.random() < 0.1:
            row["patient_id"] = ""
    elif defect == "no_accession":
        row["accession_number"] = ""
    elif defect in ("patient_date_only", "date_off"):
        row["accession_number"] = row["study_instance_uid"] = ""
        if defect == "date_off":
            row["study_date"] = (date + dt.timedelta(days=int(rng.choice([-1, 1])))).isoformat()
    elif defect == "orphan":
        row["study_instance_uid"] = ""
        if rng.random() < 0.3:
            row["accession_number"] = ""
    return row


def _orphan_studies(seed: int, patients: list[dict], count: int) -> list[dict]:
    """Studies that exist only in the reporting system: half for cohort patients before their first study."""
    rng = child_rng(seed, "orphans")
    studies = []
    for k in range(count):
        fake = sample_patient(seed, _ORPHAN_PATIENT_OFFSET + k)
        if patients and rng.random() < 0.5:
            known = patients[int(rng.integers(len(patients)))]
            fake = {**fake, "patient_id": known["patient_id"], "first_study": known["first_study"]}
        date = fake["first_study"] - dt.timedelta(days=int(rng.integers(200, 600)))
        studies.append(sample_study(seed, fake, 0, date))
    return studies


def build_reports(seed: int, patients: list[dict], studies: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reports.csv rows, truth/reports.parquet rows), both in the CSV's (shuffled) row order."""
    rng = child_rng(seed, "reports")
    reported = [s for s in studies if s["has_report"]]
    orphans = _orphan_studies(seed, patients, max(1, round(0.05 * len(reported))))
    rows, truth = [], []
    for study, is_orphan in [(s, False) for s in reported] + [(s, True) for s in orphans]:
        text, stated = render_report(study, child_rng(seed, "report", study["study_instance_uid"]),
                                     study["house_style"])
        draw = rng.random()
        defect = ("orphan" if is_orphan else "no_accession" if draw < 0.07 else "patient_date_only" if draw < 0.12
                  else "date_off" if draw < 0.15 else "none")
        rows.append(_row(study, text, defect, rng))
        truth.append({"study_instance_uid": None if is_orphan else study["study_instance_uid"],
                      "is_orphan": is_orphan, "link_defect": defect, "house_style": study["house_style"],
                      **{name: stated.get(name) for name in REPORT_LABEL_NAMES}})
    order = rng.permutation(len(rows))
    ids = rng.choice(9_000_000, size=len(rows), replace=False) + 1_000_000
    csv = pd.DataFrame([{"report_id": f"RPT{ids[n]:07d}", **rows[i]} for n, i in enumerate(order)],
                       columns=list(CSV_COLUMNS))
    truth_frame = pd.DataFrame([{"report_id": f"RPT{ids[n]:07d}", **truth[i]} for n, i in enumerate(order)])
    return csv, truth_frame
