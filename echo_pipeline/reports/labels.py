"""Structured labels from report text, by the rules in `label_rules.yaml` (docs/reports.md, "Label rules").

The text is cut into sentences (line breaks and sentence-final punctuation). For each label the first
sentence in reading order that yields a value decides; that sentence is recorded in `<label>_source`. A
finding never mentioned stays null (unknown), which is not the same as an explicit negative ("No pericardial
effusion." gives effusion = "none"); a mention that is uncertain, hypothetical or a recommendation gives no
value and is counted per label and status.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from echo_pipeline.reports.context import STATUSES
from echo_pipeline.reports.extract import LabelExtractor, split_sentences
from echo_pipeline.reports.gaps import GapCounter
from echo_pipeline.reports.rules import LabelRules, load_label_rules
from echo_pipeline.schemas import REPORT_LABEL_NAMES, REPORT_LABELS

__all__ = ["LabelledReports", "default_extractor", "extract_labels", "label_counts", "label_reports",
           "split_sentences", "status_counts"]


@lru_cache(maxsize=1)
def default_extractor() -> LabelExtractor:
    """The packaged rules, compiled once per process."""
    return LabelExtractor(load_label_rules())


def extract_labels(text: str, extractor: LabelExtractor | None = None) -> dict[str, tuple[object, str] | None]:
    """label → (value, source sentence) for every label the text states; None for labels never stated."""
    values = (extractor or default_extractor()).extract(text).values
    return {label: values.get(label) for label in REPORT_LABEL_NAMES}


@dataclass(frozen=True)
class LabelledReports:
    labels: pa.Table  # report_labels
    gaps: pa.Table  # report_label_gaps
    statuses: Counter  # (label, status) -> mentions, over all linked reports


def label_reports(reports: pa.Table, links: pa.Table, *, run_id: str, code_version: str,
                  rules: LabelRules | None = None) -> LabelledReports:
    """`report_labels` (one row per linked report, wide label columns plus `<label>_source`) and the gaps."""
    extractor = LabelExtractor(rules) if rules is not None else default_extractor()
    linked = links.filter(pc.is_valid(links.column("study_instance_uid")))
    study_of = dict(zip(linked.column("report_id").to_pylist(), linked.column("study_instance_uid").to_pylist()))
    patient_of = dict(zip(linked.column("report_id").to_pylist(), linked.column("patient_key").to_pylist()))
    rows, gaps, statuses = [], GapCounter(), Counter()
    for report_id, text in zip(reports.column("report_id").to_pylist(), reports.column("report_text").to_pylist()):
        if report_id not in study_of:
            continue
        result = extractor.extract(text)
        gaps.add(report_id, result.gaps)
        statuses.update(result.statuses)
        row = {"report_id": report_id, "study_instance_uid": study_of[report_id], "patient_key": patient_of[report_id],
               "label_rules_sha256": extractor.sha256, "run_id": run_id, "code_version": code_version}
        for label in REPORT_LABEL_NAMES:
            row[label], row[f"{label}_source"] = result.values.get(label, (None, None))
        rows.append(row)
    return LabelledReports(
        labels=pa.Table.from_pylist(rows, schema=REPORT_LABELS),
        gaps=gaps.table(label_rules_sha256=extractor.sha256, run_id=run_id, code_version=code_version),
        statuses=statuses,
    )


def label_counts(labels: pa.Table) -> pd.DataFrame:
    """Per label: how many reports state it and how many do not (for run metadata)."""
    frame = labels.to_pandas()
    return pd.DataFrame(
        [{"label": label, "stated": int(frame[label].notna().sum()), "missing": int(frame[label].isna().sum())}
         for label in REPORT_LABEL_NAMES]
    )


def status_counts(statuses: Counter) -> pd.DataFrame:
    """Per label: target mentions by assertion status (uncertain and hypothetical ones gave no value)."""
    return pd.DataFrame([{"label": label, **{s: int(statuses.get((label, s), 0)) for s in STATUSES}}
                         for label in REPORT_LABEL_NAMES])
