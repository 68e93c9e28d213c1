"""The gap report: sentences that name a label's target but yield no value, grouped by their shape.

A shape is the sentence in lower case with every token holding a digit replaced by `#` (numbers, dates,
ids), so "LVEF is 55 percent visually" and "LVEF is 60 percent visually" count as one shape and no
identifier leaves the report. A site reads the most frequent shapes, adds rules, re-materializes.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pyarrow as pa

from echo_pipeline.schemas import REPORT_LABEL_GAPS

_DIGIT_TOKEN = re.compile(r"\S*\d\S*")
_SPACES = re.compile(r"\s+")
MAX_SHAPE_CHARS = 300


def sentence_shape(sentence: str) -> str:
    """Lower case, tokens with a digit masked to `#` (keeping trailing punctuation), spaces collapsed."""
    masked = _DIGIT_TOKEN.sub(lambda m: "#" + (m.group()[-1] if m.group()[-1] in ".,;:)" else ""), sentence)
    return _SPACES.sub(" ", masked.lower()).strip()[:MAX_SHAPE_CHARS]


class GapCounter:
    """Accumulates (label, shape) -> sentence count, reports, and the first report seen."""

    def __init__(self):
        self._sentences: dict[tuple[str, str], int] = defaultdict(int)
        self._reports: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._example: dict[tuple[str, str], str] = {}

    def add(self, report_id: str, gaps: list[tuple[str, str]]) -> None:
        for label, sentence in gaps:
            key = (label, sentence_shape(sentence))
            self._sentences[key] += 1
            self._reports[key].add(report_id)
            self._example.setdefault(key, report_id)

    def table(self, *, label_rules_sha256: str, run_id: str, code_version: str) -> pa.Table:
        """The `report_label_gaps` table, most frequent shapes first within each label."""
        keys = sorted(self._sentences, key=lambda k: (k[0], -self._sentences[k], k[1]))
        return pa.Table.from_pylist([
            {"label": label, "sentence_shape": shape, "sentence_count": self._sentences[(label, shape)],
             "report_count": len(self._reports[(label, shape)]), "example_report_id": self._example[(label, shape)],
             "label_rules_sha256": label_rules_sha256, "run_id": run_id, "code_version": code_version}
            for label, shape in keys
        ], schema=REPORT_LABEL_GAPS)
