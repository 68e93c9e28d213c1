"""CLIP BPE (EchoCLIP) and how a report several times longer than 77 tokens becomes text-tower inputs.

The tokenizer is open_clip's `SimpleTokenizer` with the BPE merges bundled in the open_clip wheel: nothing is
downloaded. A report (~500 BPE tokens) is cut into sentence-aligned windows of at most context_length - 2
tokens (SOT and EOT take the other two):

- training: `training_snippet` draws, for each training sample, a random set of the report's sentences that
  fits the context, kept in report order: every snippet mixes sentences from all sections instead of being
  one contiguous window, most of which (header, valves, comments) say nothing an A4C frame shows. The draw
  is a function of the generator passed in (the trainer's, per seed, epoch and clip); measured in
  docs/training.md;
- evaluation: `evaluation_texts` lists the windows that partition the report in order; a report's embedding
  is the mean of their L2-normalised embeddings, normalised again (`echo_pipeline.pooling.pool_texts`, the
  one place that rule lives), so every sentence of the report counts, not only the first 75 tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import torch
from open_clip.tokenizer import SimpleTokenizer

from echo_pipeline.tokenizers.normalise import split_sentences

DEFAULT_CONTEXT_LENGTH = 77


@lru_cache(maxsize=1)
def simple_tokenizer() -> SimpleTokenizer:
    """open_clip's CLIP BPE tokenizer (bundled vocabulary, offline), loaded once per process."""
    return SimpleTokenizer(context_length=DEFAULT_CONTEXT_LENGTH)


@lru_cache(maxsize=1 << 16)  # report sentences repeat across reports; ftfy cleaning dominates the cost
def bpe_length(text: str) -> int:
    """BPE tokens of `text`, without SOT/EOT."""
    return len(simple_tokenizer().encode(text))


def _pieces(report_text: str, budget: int) -> list[tuple[str, int]]:
    """(sentence, BPE length) in order; a sentence over `budget` is split at word boundaries. BPE never
    merges across whitespace, so the length of pieces joined by spaces is the sum of their lengths."""
    out: list[tuple[str, int]] = []
    for sentence in split_sentences(report_text):
        n = bpe_length(sentence)
        if n <= budget:
            out.append((sentence, n))
            continue
        words, current, used = sentence.split(), [], 0
        for word in words:
            w = bpe_length(word)
            if current and used + w > budget:
                out.append((" ".join(current), used))
                current, used = [], 0
            current.append(word)
            used += w
        if current:
            out.append((" ".join(current), used))  # a single word over budget is cut by the tokenizer
    return out


def bpe_snippets(report_text: str, context_length: int = DEFAULT_CONTEXT_LENGTH) -> list[str]:
    """Sentence-aligned windows that partition the report in order, each of at most context_length - 2 BPE
    tokens (greedy: a window takes sentences until the next one would not fit)."""
    budget = context_length - 2
    windows: list[list[str]] = []
    used = budget + 1
    for sentence, n in _pieces(report_text, budget):
        if used + n > budget:
            windows.append([])
            used = 0
        windows[-1].append(sentence)
        used += n
    return [" ".join(w) for w in windows]


def training_snippet(report_text: str, rng: np.random.Generator,
                     context_length: int = DEFAULT_CONTEXT_LENGTH) -> str:
    """One training text: the report's sentences in a random order drawn from `rng`, each taken while it
    still fits in context_length - 2 BPE tokens (one that does not is skipped, later shorter ones may still
    fit), joined in report order. Empty report -> ""."""
    budget = context_length - 2
    pieces = _pieces(report_text, budget)
    order = rng.permutation(len(pieces))
    chosen, used = [], 0
    for index in order:
        if used + pieces[index][1] <= budget:
            chosen.append(int(index))
            used += pieces[index][1]
    if pieces and not chosen:  # only a single word longer than the context: the tokenizer cuts it
        chosen = [int(order[0])]
    return " ".join(pieces[i][0] for i in sorted(chosen))


def evaluation_texts(report_text: str, context_length: int = DEFAULT_CONTEXT_LENGTH) -> list[str]:
    """All windows of the report (`bpe_snippets`), to be embedded and pooled with `pooling.pool_texts`."""
    return bpe_snippets(report_text, context_length) or [""]


class BpeTokenizer:
    """CLIP BPE behind the same interface as TemplateTokenizer (see echo_pipeline.tokenizers.make_tokenizer)."""

    kind = "bpe"
    pad_token_id = 0

    def __init__(self, context_length: int = DEFAULT_CONTEXT_LENGTH):
        self.context_length = context_length
        self._tok = simple_tokenizer()
        self.vocab_size = self._tok.vocab_size
        self.sot_token_id, self.eot_token_id = self._tok.sot_token_id, self._tok.eot_token_id

    @property
    def text_cfg(self) -> dict:
        """open_clip text_cfg entries: CLIP's own (EOT is the largest id, so argmax pooling finds it)."""
        return {"vocab_size": self.vocab_size, "context_length": self.context_length, "pool_type": "argmax"}

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.LongTensor:
        """(N, context_length) ids: SOT, BPE tokens truncated keeping EOT last, zero padding."""
        return self._tok(texts if isinstance(texts, str) else list(texts), context_length or self.context_length)

    def training_text(self, report_text: str, rng: np.random.Generator) -> str:
        return training_snippet(report_text, rng, self.context_length)

    def evaluation_texts(self, report_text: str) -> list[str]:
        return evaluation_texts(report_text, self.context_length)


def bpe_token_rows(report_ids: Sequence[str], texts: Sequence[str], *, run_id: str, code_version: str,
                   context_length: int = DEFAULT_CONTEXT_LENGTH) -> pa.Table:
    """The `bpe_tokens` table: per report, BPE tokens of the whole text, its evaluation windows, and whether
    the whole report would fit one context."""
    from echo_pipeline.schemas import BPE_TOKENS

    lengths = [bpe_length(t) for t in texts]
    return pa.table({
        "report_id": list(report_ids),
        "n_bpe_tokens": lengths,
        "n_snippets": [len(bpe_snippets(t, context_length)) for t in texts],
        "fits_context": [n + 2 <= context_length for n in lengths],
        "run_id": [run_id] * len(lengths),
        "code_version": [code_version] * len(lengths),
    }, schema=BPE_TOKENS)
