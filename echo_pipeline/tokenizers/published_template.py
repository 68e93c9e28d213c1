"""The published template-vocabulary format (EchoCLIP-R's): a text file of sentence templates, one a line,
``<#>`` where a variable stands, and the token layout a model trained on it expects.

The file is the user's (it is not ours to ship); this module reads it and lays ids out as follows
(docs/tokenizers.md has the table), for a file of T templates:

    0 .. 100              integers 0..100 (id = value; 0 doubles as padding, as in the published layout)
    101 .. 105            MILD, MODERATE, SEVERE, MILD/MODERATE, MODERATE/SEVERE
    106                   JOIN: between two variables of one template
    107                   DECIMAL: the decimal point of a number
    108                   LEADING_ZERO: a "0" digit that leads a digit group ("05" in 3.05, 105)
    109 .. 108+T          the templates, in file order (line i -> 109 + i)
    109+T                 SOT (begin), 110+T EOT (end): they follow the largest id, so EOT is the largest
                          id of every row and open_clip's default argmax pooling finds it

A number is its digit groups: a group worth at most 100 is one id; a larger group is split as its leading
digits then its last two (120 -> 1 20, 1000 -> 10 LEADING_ZERO 0); a group starting with 0 emits
LEADING_ZERO per leading zero. A decimal part follows as DECIMAL and its digits, grouped the same way
(3.5 -> 3 DECIMAL 5; 0.05 -> 0 DECIMAL LEADING_ZERO 5).

A sentence (split as `normalise.split_sentences` does, upper-cased, single-spaced, no final period) is one
template id followed by its variables, JOIN between them. A sentence that matches no template adds no id
and is counted in `n_unknown_sentences`. Rows are SOT, content (cut before the first template that would
not fit whole), EOT, zero padding to the context length (77).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

from echo_pipeline.tokenizers.normalise import split_sentences
from echo_pipeline.tokenizers.template import DEFAULT_CONTEXT_LENGTH, EncodedReport, TemplateTokenizer

VARIABLE = "<#>"
MAX_INTEGER = 100
SEVERITIES = ("MILD", "MODERATE", "SEVERE", "MILD/MODERATE", "MODERATE/SEVERE")
SEVERITY_BASE = MAX_INTEGER + 1
JOIN = SEVERITY_BASE + len(SEVERITIES)
DECIMAL = JOIN + 1
LEADING_ZERO = DECIMAL + 1
TEMPLATE_BASE = LEADING_ZERO + 1
PAD = 0

# "MILD TO MODERATE" and "MILD-MODERATE" are the same value as "MILD/MODERATE"; longest alternatives first.
_SEVERITY_TEXT = r"MILD(?:/| TO |-)MODERATE|MODERATE(?:/| TO |-)SEVERE|MILD|MODERATE|SEVERE"
_VALUE = rf"(\d+(?:\.\d+)?|{_SEVERITY_TEXT})"


class PublishedVocabularyError(ValueError):
    """A template vocabulary file that cannot be read (the message names the file and the line)."""


def _canonical(sentence: str) -> str:
    return re.sub(r"\s+", " ", sentence.upper()).strip().rstrip(".").strip()


def _digit_groups(digits: str) -> list[int]:
    """Ids of a digit string: leading zeros as LEADING_ZERO, groups above 100 split before their last two."""
    out: list[int] = []
    while len(digits) > 1 and digits[0] == "0":
        out.append(LEADING_ZERO)
        digits = digits[1:]
    if int(digits) <= MAX_INTEGER:
        return out + [int(digits)]
    return out + _digit_groups(digits[:-2]) + _digit_groups(digits[-2:])


def encode_value(text: str) -> list[int]:
    """Ids of one variable's text (a number or a severity word)."""
    word = re.sub(r" TO |-", "/", text)
    if word in SEVERITIES:
        return [SEVERITY_BASE + SEVERITIES.index(word)]
    whole, _, fraction = text.partition(".")
    return _digit_groups(whole) + ([DECIMAL] + _digit_groups(fraction) if fraction else [])


class PublishedTemplateTokenizer:
    """Reports -> ids of a published template vocabulary file; a `protocol.ReportTokenizer`."""

    kind = "published_template"
    pad_token_id = PAD
    # The same text policy as the project's template tokenizer: whole reports at evaluation, half the
    # sentences per training sample.
    training_text = TemplateTokenizer.training_text
    evaluation_texts = TemplateTokenizer.evaluation_texts

    def __init__(self, vocabulary_path: str | Path, context_length: int = DEFAULT_CONTEXT_LENGTH):
        self.path = Path(vocabulary_path)
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise PublishedVocabularyError(f"template vocabulary {self.path}: unreadable ({e})") from e
        self.templates = [_canonical(line) for line in lines if line.strip()]
        if not self.templates:
            raise PublishedVocabularyError(f"template vocabulary {self.path}: no templates (one per line expected)")
        self.context_length = context_length
        self.sot_token_id = TEMPLATE_BASE + len(self.templates)
        self.eot_token_id = self.sot_token_id + 1
        self.vocab_size = self.eot_token_id + 1
        self._literal: dict[str, int] = {}
        self._patterns: list[tuple[re.Pattern, int]] = []
        for i, template in enumerate(self.templates):
            if VARIABLE not in template:
                self._literal.setdefault(template, TEMPLATE_BASE + i)
            else:
                body = _VALUE.join(re.escape(part) for part in template.split(VARIABLE))
                self._patterns.append((re.compile(body), TEMPLATE_BASE + i))

    @property
    def text_cfg(self) -> dict:
        """EOT is the largest id: CLIP's default argmax pooling; padding is 0."""
        return {"vocab_size": self.vocab_size, "context_length": self.context_length, "pool_type": "argmax",
                "pad_id": PAD}

    def encode_sentence(self, sentence: str) -> list[int] | None:
        """Template id then its variables (JOIN between them); None when no template matches."""
        text = _canonical(sentence)
        if text in self._literal:
            return [self._literal[text]]
        for pattern, template_id in self._patterns:
            match = pattern.fullmatch(text)
            if match:
                ids = [template_id]
                for n, value in enumerate(match.groups()):
                    ids += ([JOIN] if n else []) + encode_value(value)
                return ids
        return None

    def encode_report(self, text: str) -> EncodedReport:
        sentences = [s for s in split_sentences(text) if _canonical(s)]
        encoded = [self.encode_sentence(s) for s in sentences]
        ids = [i for e in encoded if e is not None for i in e]
        return EncodedReport(ids, len(sentences), sum(e is None for e in encoded))

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """(N, context_length) ids: SOT, content cut at a template boundary, EOT, zero padding."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        length = context_length or self.context_length
        out = torch.full((len(texts), length), PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.encode_report(text).ids
            if len(ids) > length - 2:
                starts = [i for i in range(1, length - 1) if TEMPLATE_BASE <= ids[i] < self.sot_token_id]
                ids = ids[:starts[-1] if starts else length - 2]
            seq = [self.sot_token_id, *ids, self.eot_token_id]
            out[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        return out
