"""Reports: read and validate the reports file, link reports to studies, extract labels, split by patient.

See docs/reports.md for the input contract, the linking rules, the label rules and what is kept for privacy.
"""

from echo_pipeline.reports.labels import extract_labels, label_counts, label_reports, split_sentences
from echo_pipeline.reports.linking import link_coverage, link_reports, studies_without_report, study_index
from echo_pipeline.reports.reading import QUARANTINE_REASONS, derived_report_id, read_reports
from echo_pipeline.reports.splits import DEFAULT_FRACTIONS, assign_split, find_split_leaks, split_studies, split_summary

__all__ = [
    "DEFAULT_FRACTIONS",
    "QUARANTINE_REASONS",
    "assign_split",
    "derived_report_id",
    "extract_labels",
    "find_split_leaks",
    "label_counts",
    "label_reports",
    "link_coverage",
    "link_reports",
    "read_reports",
    "split_sentences",
    "split_studies",
    "split_summary",
    "studies_without_report",
    "study_index",
]

#: Recorded on every row this stage writes; bump when the stage's output for the same input changes.
CODE_VERSION = "reports-1"
