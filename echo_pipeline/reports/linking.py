"""Join each report to at most one study of the ingested archive.

Rules, tried in order; the first rule that finds exactly one study decides (docs/reports.md):

1. `accession`            same accession_key (keyed hash of the accession number);
2. `study_instance_uid`   same StudyInstanceUID;
3. `patient_date`         same patient_key and the same study date;
4. `patient_date_window`  same patient_key and a study date within ±`window_days` (default 1), only when
                          exactly one study of that patient fits.

A candidate study whose patient_key differs from the report's (both known) is never accepted: a mistyped
accession number must not attach a report to another patient's echo. A report no rule can place is
`orphan`; one that only ever met several equally good studies is `ambiguous` (with how many).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import pandas as pd
import pyarrow as pa

from echo_pipeline.schemas import REPORT_LINKS, STUDIES_WITHOUT_REPORT

LINK_METHODS = ("accession", "study_instance_uid", "patient_date", "patient_date_window")
STUDY_COLUMNS = ("study_instance_uid", "patient_key", "accession_key", "study_date")


def study_index(instances: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """One row per study (STUDY_COLUMNS) from the per-instance table.

    Instances of one study normally agree; where they do not (an edited header), the most frequent non-null
    value wins, so one odd file cannot move a study to another patient.
    """
    frame = instances.to_pandas() if isinstance(instances, pa.Table) else pd.DataFrame(instances)
    missing = [c for c in STUDY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"instances table lacks columns {missing}; has {list(frame.columns)}")
    frame = frame.loc[frame["study_instance_uid"].notna(), list(STUDY_COLUMNS)]

    def most_common(values: pd.Series):
        values = values.dropna()
        return Counter(values).most_common(1)[0][0] if len(values) else None

    studies = frame.groupby("study_instance_uid", sort=True).agg(most_common).reset_index()
    studies["study_date"] = [_as_date(d) for d in studies["study_date"]]
    return studies[list(STUDY_COLUMNS)]


def link_reports(reports: pa.Table | pd.DataFrame, studies: pd.DataFrame, *, run_id: str, code_version: str,
                 window_days: int = 1) -> pa.Table:
    """The `report_links` table: one row per report, linked to at most one study of ``studies``."""
    frame = reports.to_pandas() if isinstance(reports, pa.Table) else pd.DataFrame(reports)
    index = _StudyLookup(studies)
    rows = []
    for report in frame[["report_id", "accession_key", "study_instance_uid", "patient_key", "study_date"]].to_dict("records"):
        rows.append({**index.link(report, window_days), "run_id": run_id, "code_version": code_version})
    return pa.Table.from_pylist(rows, schema=REPORT_LINKS)


def studies_without_report(links: pa.Table, studies: pd.DataFrame, *, run_id: str, code_version: str) -> pa.Table:
    """Studies of the archive that no report was linked to (table `studies_without_report`)."""
    linked = set(links.column("study_instance_uid").drop_null().to_pylist())
    rows = [
        {"study_instance_uid": s["study_instance_uid"], "patient_key": s["patient_key"],
         "study_date": _as_date(s["study_date"]), "run_id": run_id, "code_version": code_version}
        for s in studies.to_dict("records") if s["study_instance_uid"] not in linked
    ]
    return pa.Table.from_pylist(rows, schema=STUDIES_WITHOUT_REPORT)


def link_coverage(links: pa.Table, studies_total: int | None = None) -> dict:
    """Counts for run metadata: reports linked per method, orphans, ambiguous, and the linked fraction."""
    methods = Counter(links.column("link_method").to_pylist())
    reasons = Counter(links.column("reason").to_pylist())
    total = links.num_rows
    linked = sum(methods[m] for m in LINK_METHODS)
    summary = {
        "reports": total,
        "linked": linked,
        "linked_fraction": round(linked / total, 4) if total else 0.0,
        **{f"linked_by_{m}": methods[m] for m in LINK_METHODS},
        "orphan": reasons["orphan"],
        "ambiguous": reasons["ambiguous"],
    }
    if studies_total is not None:
        studies_linked = len(set(links.column("study_instance_uid").drop_null().to_pylist()))
        summary["studies"] = studies_total
        summary["studies_with_report"] = studies_linked
        summary["studies_without_report"] = studies_total - studies_linked
    return summary


class _StudyLookup:
    """Hash maps from each linking key to the studies carrying it."""

    def __init__(self, studies: pd.DataFrame) -> None:
        self.studies = {s["study_instance_uid"]: {**s, "study_date": _as_date(s["study_date"])}
                        for s in studies[list(STUDY_COLUMNS)].to_dict("records")}
        self.by_accession: dict[str, list[str]] = defaultdict(list)
        self.by_patient: dict[str, list[str]] = defaultdict(list)
        for uid, study in self.studies.items():
            if _present(study["accession_key"]):
                self.by_accession[study["accession_key"]].append(uid)
            if _present(study["patient_key"]):
                self.by_patient[study["patient_key"]].append(uid)

    def link(self, report: dict, window_days: int) -> dict:
        patient = report["patient_key"] if _present(report["patient_key"]) else None
        date = _as_date(report["study_date"])
        accession = report["accession_key"] if _present(report["accession_key"]) else None
        uid = report["study_instance_uid"] if _present(report["study_instance_uid"]) else None
        same_patient = self.by_patient.get(patient, []) if patient else []
        rules = [
            ("accession", self.by_accession.get(accession, []) if accession else []),
            ("study_instance_uid", [uid] if uid in self.studies else []),
            ("patient_date", [u for u in same_patient if date and self.studies[u]["study_date"] == date]),
            ("patient_date_window", [u for u in same_patient if date and self.studies[u]["study_date"]
                                     and 0 < abs((self.studies[u]["study_date"] - date).days) <= window_days]),
        ]
        most_candidates, ambiguous_rule = 0, None
        for method, candidates in rules:
            candidates = [u for u in candidates if self._patient_agrees(u, patient)]
            if len(candidates) == 1:
                return self._linked(report, method, candidates[0], date)
            if len(candidates) > most_candidates:
                most_candidates, ambiguous_rule = len(candidates), method
        base = {"report_id": report["report_id"], "study_instance_uid": None, "patient_key": patient,
                "link_method": None, "date_offset_days": None}
        if most_candidates:
            return {**base, "reason": "ambiguous", "candidate_count": most_candidates,
                    "detail": f"{most_candidates} studies fit rule {ambiguous_rule} and no rule singled one out"}
        return {**base, "reason": "orphan", "candidate_count": 0,
                "detail": "no study matches the accession number, study UID or patient and date "
                          f"(±{window_days} day{'s' if window_days != 1 else ''})"}

    def _patient_agrees(self, uid: str, patient: str | None) -> bool:
        study_patient = self.studies[uid]["patient_key"]
        return patient is None or not _present(study_patient) or study_patient == patient

    def _linked(self, report: dict, method: str, uid: str, date: dt.date | None) -> dict:
        study = self.studies[uid]
        offset = (study["study_date"] - date).days if date and study["study_date"] else None
        return {"report_id": report["report_id"], "study_instance_uid": uid,
                "patient_key": study["patient_key"] if _present(study["patient_key"]) else report["patient_key"],
                "link_method": method, "reason": None, "candidate_count": 1, "date_offset_days": offset,
                "detail": f"linked by {method}" + (f", study date {offset:+d} day(s) from report" if offset else "")}


def _present(value) -> bool:
    """Keys are hashes or UIDs, i.e. non-empty strings; None, NaN and "" all mean absent."""
    return isinstance(value, str) and value != ""


def _as_date(value) -> dt.date | None:
    """A date from date / datetime / Timestamp / 'YYYY-MM-DD'; None for missing values."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
