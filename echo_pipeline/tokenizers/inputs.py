"""What the tokenizer steps read from upstream tables: reports with their split, and those with unknown sentences."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.storage import DataRoot
from echo_pipeline.upstream import read_upstream

_REPORTS_WITH_SPLIT_SQL = """
    SELECT r.report_id, r.report_text, l.patient_key, coalesce(s.split, 'unassigned') AS split
    FROM reports r LEFT JOIN report_links l ON l.report_id = r.report_id
    LEFT JOIN splits s ON s.study_instance_uid = l.study_instance_uid
    ORDER BY r.report_id
"""


def read_reports_with_split(data_root: DataRoot) -> pa.Table:
    """report_id, report_text, patient_key and the split of the linked study ("unassigned" when unlinked)."""
    return read_upstream(data_root, _REPORTS_WITH_SPLIT_SQL, ["reports", "report_links", "splits"])


_REPORTS_WITH_UNKNOWN_SENTENCES_SQL = """
    SELECT r.report_id, r.report_text FROM reports r JOIN template_tokens t ON t.report_id = r.report_id
    WHERE t.n_unknown_sentences > 0 ORDER BY r.report_id
"""


def read_reports_with_unknown_sentences(data_root: DataRoot) -> pa.Table:
    """report_id, report_text of the reports whose template tokens hold an UNK_SENTENCE (only they can hold one)."""
    return read_upstream(data_root, _REPORTS_WITH_UNKNOWN_SENTENCES_SQL, ["reports", "template_tokens"])
