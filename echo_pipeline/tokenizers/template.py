"""The template tokenizer (EchoCLIP-R style): a report becomes one token per sentence template (or learned run
of templates) followed by that template's number and severity tokens.

It plugs into open_clip's text tower like the BPE tokenizer: `tokenizer(texts)` gives a (N, context_length)
LongTensor with SOT first, EOT after the last token, zero padding. EOT is id 2, not the largest id, so the
text tower must pool at the EOS token: `text_cfg` carries pool_type="eos", eos_id=2 (open_clip's
`text_global_pool`), which the model config must use instead of CLIP's default pool_type="argmax".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from echo_pipeline.tokenizers import layout as L
from echo_pipeline.tokenizers.normalise import normalised_sentences, split_sentences
from echo_pipeline.tokenizers.vocabulary import TemplateVocabulary, merge_pair

DEFAULT_CONTEXT_LENGTH = 77
UNKNOWN_SENTENCE_TEXT = "<UNK_SENTENCE>"
#: Share of a report's sentences a training text keeps (`TemplateTokenizer.training_text`).
TRAINING_SENTENCE_KEEP = 0.5


@dataclass(frozen=True)
class EncodedReport:
    """Content token ids of one report (no SOT/EOT/padding) and its sentence counts."""

    ids: list[int]
    n_sentences: int
    n_unknown_sentences: int


class TemplateTokenizer:
    """Encode / decode reports with a TemplateVocabulary; see docs/tokenizers.md for the id layout."""

    kind = "template"
    pad_token_id, sot_token_id, eot_token_id, unknown_sentence_id = L.PAD, L.SOT, L.EOT, L.UNK_SENTENCE

    def __init__(self, vocabulary: TemplateVocabulary, context_length: int = DEFAULT_CONTEXT_LENGTH):
        if context_length < 3:
            raise ValueError(f"context_length must be >= 3 (SOT, one token, EOT), got {context_length}")
        self.vocabulary = vocabulary
        self.context_length = context_length
        self.vocab_size = L.TEMPLATE_BASE + vocabulary.n_units
        n = len(vocabulary.templates)
        # Merge priority = learning order, as in BPE.
        self._merge_rank = {pair: (rank, n + rank) for rank, pair in enumerate(vocabulary.merges)}
        self._unit_sentences = [vocabulary.unit_sentences(u) for u in range(vocabulary.n_units)]

    @property
    def text_cfg(self) -> dict:
        """open_clip text_cfg entries this tokenizer needs (pool at EOT, id 2; pad id 0)."""
        return {"vocab_size": self.vocab_size, "context_length": self.context_length, "pool_type": "eos",
                "eos_id": self.eot_token_id, "pad_id": self.pad_token_id}

    def encode_report(self, text: str) -> EncodedReport:
        """Content ids of a report; a sentence without a template (or with an unencodable number) becomes
        UNK_SENTENCE and is counted. Never raises on any string."""
        units: list[int] = []
        variables: list[list[int]] = []
        unknown = 0
        sentences = normalised_sentences(text)
        for sentence in sentences:
            encoded = self._encode_sentence(sentence)
            unknown += encoded is None
            units.append(-1 if encoded is None else encoded[0])
            variables.append([] if encoded is None else encoded[1])
        units, variables = self._apply_merges(units, variables)
        out: list[int] = []
        for unit, var_ids in zip(units, variables):
            out.append(L.UNK_SENTENCE if unit < 0 else L.TEMPLATE_BASE + unit)
            out.extend(var_ids)
        return EncodedReport(out, len(sentences), unknown)

    def _encode_sentence(self, sentence: str) -> tuple[int, list[int]] | None:
        """(template unit, variable ids) of one normalised sentence; None when no template covers it or one of
        its numbers cannot be encoded (it then becomes UNK_SENTENCE)."""
        template, values = L.templatise(sentence)
        unit = self.vocabulary.index.get(template)
        ids = [L.encode_number(v) if k == "num" else [L.encode_severity(v)] for k, v in values]
        if unit is None or any(i is None for i in ids):
            return None
        return unit, [t for part in ids for t in part]

    def unknown_shapes(self, text: str) -> list[str]:
        """The shape of every sentence of `text` that encodes as UNK_SENTENCE, in order: the normalised sentence
        with numbers as <NUM>, severity words as <SEV>, dates as [DATE] and identifiers as [ID]."""
        return [L.templatise(s)[0] for s in normalised_sentences(text) if self._encode_sentence(s) is None]

    def _apply_merges(self, units: list[int], variables: list[list[int]]):
        """BPE-style: merge the lowest-rank adjacent pair everywhere until no learned pair is left."""
        while len(units) > 1:
            ranked = [self._merge_rank[p] for p in zip(units, units[1:]) if p in self._merge_rank]
            if not ranked:
                break
            rank, new_unit = min(ranked)
            pair = self.vocabulary.merges[rank]
            merged_vars, i = [], 0
            while i < len(units):
                if i + 1 < len(units) and (units[i], units[i + 1]) == pair:
                    merged_vars.append(variables[i] + variables[i + 1])
                    i += 2
                else:
                    merged_vars.append(variables[i])
                    i += 1
            units, variables = merge_pair(units, pair, new_unit), merged_vars
        return units, variables

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.LongTensor:
        """(N, context_length) ids: SOT, content truncated at a unit boundary, EOT, zero padding."""
        if isinstance(texts, str):
            texts = [texts]
        return self.pack([self.encode_report(t).ids for t in texts], context_length)

    def pack(self, token_ids: Sequence[Sequence[int]], context_length: int | None = None) -> torch.LongTensor:
        """Like __call__ for content ids already encoded (e.g. read from the template_tokens table).

        Too-long content is cut before the first unit (template or UNK token) that would not fit whole, so no
        template loses part of its variables; EOT always stays."""
        length = context_length or self.context_length
        if length < 3:
            raise ValueError(f"context_length must be >= 3 (SOT, one token, EOT), got {length}")
        out = torch.zeros((len(token_ids), length), dtype=torch.long)
        for row, ids in enumerate(token_ids):
            ids = list(ids)
            keep = truncation_point(ids, length - 2)
            seq = [L.SOT] + ids[:keep] + [L.EOT]
            out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return out

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Normalised sentences of a token sequence (SOT/PAD skipped, stops at EOT); UNK_SENTENCE gives
        "<UNK_SENTENCE>"; a variable missing after truncation stays as its placeholder."""
        ids = [int(i) for i in ids]
        sentences: list[str] = []
        pos = 0
        while pos < len(ids):
            tok = ids[pos]
            pos += 1
            if tok == L.EOT:
                break
            if tok == L.UNK_SENTENCE:
                sentences.append(UNKNOWN_SENTENCE_TEXT)
            elif L.TEMPLATE_BASE <= tok < self.vocab_size:
                for template in self._unit_sentences[tok - L.TEMPLATE_BASE]:
                    values, pos = self._read_values(template, ids, pos)
                    sentences.append(L.fill(template, values))
            # any other token here (PAD, SOT, a stray variable) carries no sentence and is skipped
        return sentences

    @staticmethod
    def _read_values(template: str, ids: list[int], pos: int) -> tuple[list[str], int]:
        values: list[str] = []
        for placeholder in L.placeholders(template):
            if placeholder == L.NUM:
                value, pos = L.decode_number(ids, pos)
            else:
                value = L.decode_severity(ids[pos]) if pos < len(ids) else None
                pos += value is not None
            if value is None:
                break
            values.append(value)
        return values, pos

    def training_text(self, report_text: str, rng: np.random.Generator) -> str:
        """One training text: each sentence of the report kept with probability `TRAINING_SENTENCE_KEEP`
        (at least one), in report order, one per line. The whole report fits the context, but on a small
        cohort the model then memorises each report's unique header numbers (height, weight, blood pressure)
        instead of the findings; dropping sentences makes that lookup unreliable (docs/training.md)."""
        sentences = split_sentences(report_text)
        kept = [s for s in sentences if rng.random() < TRAINING_SENTENCE_KEEP]
        return "\n".join(kept or sentences[:1])

    def evaluation_texts(self, report_text: str) -> list[str]:
        """Texts whose embeddings represent a report at evaluation: the whole report, once."""
        return [report_text]


def truncation_point(ids: Sequence[int], limit: int) -> int:
    """How many content ids to keep under `limit`: all when they fit, else up to the last unit start that
    leaves every kept unit whole (a hard cut only when the first unit alone is longer than `limit`)."""
    if len(ids) <= limit:
        return len(ids)
    starts = [i for i in range(1, limit + 1) if ids[i] == L.UNK_SENTENCE or ids[i] >= L.TEMPLATE_BASE]
    return starts[-1] if starts else limit


def template_token_rows(tokenizer: TemplateTokenizer, report_ids: Sequence[str], texts: Sequence[str], *,
                        run_id: str, code_version: str) -> pa.Table:
    """The `template_tokens` table: one row per report with its full (untruncated) content ids."""
    from echo_pipeline.schemas import TEMPLATE_TOKENS

    encoded = [tokenizer.encode_report(t) for t in texts]
    return pa.table({
        "report_id": list(report_ids),
        "vocabulary_id": [tokenizer.vocabulary.vocabulary_id] * len(encoded),
        "n_tokens": [len(e.ids) for e in encoded],
        "n_sentences": [e.n_sentences for e in encoded],
        "n_unknown_sentences": [e.n_unknown_sentences for e in encoded],
        "fits_context": [len(e.ids) + 2 <= tokenizer.context_length for e in encoded],
        "token_ids": [e.ids for e in encoded],
        "run_id": [run_id] * len(encoded),
        "code_version": [code_version] * len(encoded),
    }, schema=TEMPLATE_TOKENS)
