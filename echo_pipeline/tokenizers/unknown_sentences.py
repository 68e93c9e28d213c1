"""The `template_unknown_sentences` table: what the template vocabulary does not cover, as sentence shapes.

A sentence no learned template covers is encoded as UNK_SENTENCE and its content is lost to the model. A user
adapting the pipeline to a new hospital reads this table (most frequent shapes first) to see which phrasings
fall through: rare templates below the vocabulary's `min_count`, a new report section, a number format the
codec refuses. Shapes mask numbers, severity words, dates and identifiers, so one row stands for every report
that writes the same sentence with other values, and no measurement or id is published.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pyarrow as pa

from echo_pipeline.tokenizers.template import TemplateTokenizer


def unknown_sentence_rows(tokenizer: TemplateTokenizer, report_ids: Sequence[str], texts: Sequence[str], *,
                          run_id: str, code_version: str) -> pa.Table:
    """One row per unknown sentence shape: how often it occurs, in how many reports, and the smallest report_id
    holding it (an example that does not depend on the input order). Most frequent first, ties by shape."""
    from echo_pipeline.schemas import TEMPLATE_UNKNOWN_SENTENCES

    occurrences: Counter[str] = Counter()
    reports: Counter[str] = Counter()
    example: dict[str, str] = {}
    for report_id, text in zip(report_ids, texts, strict=True):
        shapes = tokenizer.unknown_shapes(text)
        occurrences.update(shapes)
        reports.update(set(shapes))
        for shape in set(shapes):
            example[shape] = min(example.get(shape, report_id), report_id)
    order = sorted(occurrences, key=lambda shape: (-occurrences[shape], shape))
    return pa.table({
        "shape": order,
        "count": [occurrences[s] for s in order],
        "n_reports": [reports[s] for s in order],
        "example_report_id": [example[s] for s in order],
        "vocabulary_id": [tokenizer.vocabulary.vocabulary_id] * len(order),
        "run_id": [run_id] * len(order),
        "code_version": [code_version] * len(order),
    }, schema=TEMPLATE_UNKNOWN_SENTENCES)
