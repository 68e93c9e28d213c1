"""Reports: read and validate the reports file, link reports to studies, extract labels, split by patient.

See docs/reports.md for the input contract, the linking rules, the label rules and what is kept for privacy.
"""

from echo_pipeline.reports.labels import (
    LabelledReports,
    extract_labels,
    label_counts,
    label_reports,
    split_sentences,
    status_counts,
)
from echo_pipeline.reports.linking import link_coverage, link_reports, studies_without_report, study_index
from echo_pipeline.reports.reading import QUARANTINE_REASONS, derived_report_id, read_reports
from echo_pipeline.reports.rules import LabelRules, LabelRulesError, load_label_rules
from echo_pipeline.reports.splits import DEFAULT_FRACTIONS, assign_split, find_split_leaks, split_studies, split_summary

__all__ = [
    "DEFAULT_FRACTIONS",
    "LabelRules",
    "LabelRulesError",
    "LabelledReports",
    "QUARANTINE_REASONS",
    "assign_split",
    "derived_report_id",
    "extract_labels",
    "find_split_leaks",
    "label_counts",
    "label_reports",
    "labelling_code_version",
    "load_label_rules",
    "link_coverage",
    "link_reports",
    "read_reports",
    "split_sentences",
    "split_studies",
    "split_summary",
    "status_counts",
    "studies_without_report",
    "study_index",
]

#: Recorded on every row this stage writes; bump when the stage's output for the same input changes.
CODE_VERSION = "reports-1"


def labelling_code_version(rules: LabelRules) -> str:
    """The labelling assets' code version: the stage's, plus the effective label rules' hash, so that new rules
    mark exactly the labels (and what reads them) stale."""
    return f"{CODE_VERSION}+rules.{rules.sha256[:12]}"
