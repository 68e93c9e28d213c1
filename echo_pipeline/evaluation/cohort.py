"""What an evaluation runs on: the test split's masked clips, their studies' reports and labels.

`read_cohort` reads the catalog views (`masked_clips`, `dicom_instances`, `splits`, `report_labels`, `reports`)
through any DuckDB connection that has them (`catalog.open_reader(data_root)`). Unit of analysis:

- a **clip** (a masked A4C video) for zero-shot classification, regression and patient identification;
- a **study** for retrieval (one seeded random clip per study, `retrieval_sample`) and for every bootstrap
  (studies are resampled with all their clips).

A study linked to several reports is represented by its smallest `report_id` (the labels and the text come
from that report), so the choice does not depend on read order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from echo_pipeline.errors import EvaluationError
from echo_pipeline.schemas import REPORT_LABEL_NAMES

_CLIPS_SQL = """
WITH study_report AS (
    SELECT study_instance_uid, min(report_id) AS report_id FROM report_labels GROUP BY study_instance_uid
)
SELECT m.sop_instance_uid, m.clip_path, d.study_instance_uid, d.patient_key, d.study_date,
       r.report_id, {labels}
FROM masked_clips AS m
JOIN dicom_instances AS d USING (sop_instance_uid)
JOIN splits AS s ON s.study_instance_uid = d.study_instance_uid
LEFT JOIN study_report AS r ON r.study_instance_uid = d.study_instance_uid
LEFT JOIN report_labels AS l ON l.report_id = r.report_id
WHERE s.split = $split
ORDER BY m.sop_instance_uid
"""

_SPLIT_REPORTS_SQL = """
SELECT l.report_id, p.report_text, {labels}
FROM report_labels AS l
JOIN splits AS s ON s.study_instance_uid = l.study_instance_uid
JOIN reports AS p ON p.report_id = l.report_id
WHERE s.split = $split
ORDER BY l.report_id
"""

NEEDED_VIEWS = ("masked_clips", "dicom_instances", "splits", "report_labels", "reports")


@dataclass(frozen=True)
class EvalCohort:
    """The evaluated split, as plain tables.

    ``clips``: one row per clip (sop_instance_uid, clip_path, study_instance_uid, patient_key, study_date,
    report_id — null when the study has no labelled report), sorted by sop_instance_uid.
    ``labels``: the label columns of each clip's study report, row-aligned with ``clips`` (null = unknown).
    ``reports``: report_id, report_text of the reports ``clips`` refer to, sorted by report_id.
    ``prompt_reports``: reports of the sampled-prompts source split (report_id, report_text, label columns).
    ``train_labels``: the label columns of the training split's reports (for the training-mean baseline).
    ``train_reports``: report_id and label columns of the training split's reports (kNN predictions), same rows.
    """

    split: str
    clips: pd.DataFrame
    labels: pd.DataFrame
    reports: pd.DataFrame
    prompt_reports: pd.DataFrame
    train_labels: pd.DataFrame
    train_reports: pd.DataFrame | None = None

    def keep_clips(self, keep: np.ndarray) -> "EvalCohort":
        """The cohort restricted to the clips where ``keep`` is True (reports left as they are)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self.clips),):
            raise EvaluationError(f"keep mask has shape {keep.shape}; expected ({len(self.clips)},)")
        return replace(self, clips=self.clips[keep].reset_index(drop=True),
                       labels=self.labels[keep].reset_index(drop=True))

    def keep_reports(self, report_ids) -> "EvalCohort":
        """The cohort with only these reports available for retrieval (labels are kept)."""
        return replace(self, reports=self.reports[self.reports["report_id"].isin(set(report_ids))]
                       .reset_index(drop=True))


def _label_sql(prefix: str) -> str:
    return ", ".join(f"{prefix}.{name}" for name in REPORT_LABEL_NAMES)


def read_cohort(con, *, split: str = "test", prompt_split: str = "validation") -> EvalCohort:
    """The ``split`` clips with their study report and labels, plus prompt-source and training labels.

    ``con`` is a DuckDB connection exposing the catalog views (`catalog.open_reader`). Raises
    EvaluationError when the split holds no masked clip.
    """
    clips, labels = split_clips(con, split)
    wanted = pd.DataFrame({"report_id": pd.Series(clips["report_id"].dropna().unique(), dtype=object)})
    con.register("_eval_report_ids", wanted)
    reports = con.execute("SELECT report_id, report_text FROM reports WHERE report_id IN "
                          "(SELECT report_id FROM _eval_report_ids) ORDER BY report_id").df()
    con.unregister("_eval_report_ids")
    split_reports = _SPLIT_REPORTS_SQL.format(labels=_label_sql("l"))
    prompt_reports = con.execute(split_reports, {"split": prompt_split}).df()
    train = con.execute(split_reports, {"split": "train"}).df()
    return EvalCohort(split, clips, labels, reports, prompt_reports,
                      train[list(REPORT_LABEL_NAMES)].reset_index(drop=True),
                      train[["report_id", *REPORT_LABEL_NAMES]].reset_index(drop=True))


def split_clips(con, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clips, labels) of one split, as in `EvalCohort`; EvaluationError when the split holds no masked clip."""
    clips = con.execute(_CLIPS_SQL.format(labels=_label_sql("l")), {"split": split}).df()
    if clips.empty:
        raise EvaluationError(
            f"no masked clip belongs to a {split!r} study; materialise masked_clips and splits (and check the "
            "split fractions) before evaluating"
        )
    labels = clips[list(REPORT_LABEL_NAMES)].reset_index(drop=True)
    return clips.drop(columns=list(REPORT_LABEL_NAMES)).reset_index(drop=True), labels


def retrieval_sample(cohort: EvalCohort, *, seed: int = 0) -> pd.DataFrame:
    """One random clip per study that has a report in ``cohort.reports``: columns clip_row, report_row, study.

    ``clip_row`` indexes ``cohort.clips``, ``report_row`` indexes ``cohort.reports``. Studies are sorted by
    UID and each draws one of its clips (sorted by sop_instance_uid) with a generator seeded by ``seed``, so
    the sample is a function of the cohort and the seed only (the same for every model evaluated on it).
    """
    report_row = pd.Series(np.arange(len(cohort.reports)), index=cohort.reports["report_id"])
    clips = cohort.clips.assign(clip_row=np.arange(len(cohort.clips)))
    clips = clips[clips["report_id"].isin(report_row.index)]
    clips = clips.sort_values(["study_instance_uid", "sop_instance_uid"], kind="stable")
    rng = np.random.default_rng(seed)
    picked = []
    for study, group in clips.groupby("study_instance_uid", sort=True):
        row = group.iloc[int(rng.integers(len(group)))]
        picked.append((int(row["clip_row"]), int(report_row[row["report_id"]]), study))
    return pd.DataFrame(picked, columns=["clip_row", "report_row", "study"])


def training_means(cohort: EvalCohort, label_columns) -> dict[str, float]:
    """Mean of each label over the training split's reports (NaN when no training report states it)."""
    out = {}
    for column in label_columns:
        values = pd.to_numeric(cohort.train_labels[column], errors="coerce").to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        out[column] = float(values.mean()) if values.size else float("nan")
    return out
