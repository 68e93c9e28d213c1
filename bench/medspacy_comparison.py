"""medspaCy on the same reports, for the record in docs/reports.md ("Why not medspaCy").

medspaCy 1.3 needs spaCy < 3.8, hence numpy < 2, which the project's torch / OpenCV / FAISS builds do not
allow, so this runs in a separate environment (not from bench/run_all.sh):

    python bench/bench_labels.py --reports 300 --dump /tmp/labels.json      # the project's environment
    python -m venv /tmp/medspacy && /tmp/medspacy/bin/pip install medspacy
    /tmp/medspacy/bin/python bench/medspacy_comparison.py /tmp/labels.json

It times target matching + ConText only (no value extraction), with medspaCy's PyRuSH sentence splitter and
with spaCy's rule-based sentencizer, and spaCy's tokenizer alone as the floor of any spaCy pipeline.
"""

from __future__ import annotations

import json
import sys
import time

from loguru import logger

logger.remove()  # PyRuSH logs every token at DEBUG otherwise

import medspacy  # noqa: E402  (after silencing its logger)
from medspacy.target_matcher import TargetRule  # noqa: E402


def main(path: str) -> None:
    data = json.loads(open(path, encoding="utf-8").read())
    texts = data["texts"]
    for splitter in ("pyrush", "sentencizer"):
        nlp = medspacy.load(enable=["medspacy_pyrush", "medspacy_target_matcher", "medspacy_context"])
        if splitter == "sentencizer":
            nlp.remove_pipe("medspacy_pyrush")
            nlp.add_pipe("sentencizer", first=True)
        nlp.get_pipe("medspacy_target_matcher").add([TargetRule(p, label.upper()) for label, p in data["targets"]])
        nlp(texts[0])
        start = time.perf_counter()
        entities = sum(len(doc.ents) for doc in nlp.pipe(texts))
        print(f"medspacy_{splitter}_reports_per_s: {len(texts) / (time.perf_counter() - start):.0f}")
        print(f"medspacy_{splitter}_entities: {entities}")
    start = time.perf_counter()
    for text in texts:
        nlp.make_doc(text)
    print(f"spacy_tokenizer_only_reports_per_s: {len(texts) / (time.perf_counter() - start):.0f}")


if __name__ == "__main__":
    main(sys.argv[1])
