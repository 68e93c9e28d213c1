"""The report tokenizer interface, as types: what training, embedding, evaluation and search may rely on.

`BpeTokenizer` and `TemplateTokenizer` both satisfy `ReportTokenizer`. Callers that also accept a bare
open_clip tokenizer (training does) ask `isinstance(x, TextPolicy)` / `isinstance(x, EvaluationTexts)` to
learn whether it brings its own text policy, instead of probing attribute names one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch


@runtime_checkable
class EvaluationTexts(Protocol):
    """Knows which texts represent a report at evaluation (pooled by `echo_pipeline.pooling.pool_texts`)."""

    def evaluation_texts(self, report_text: str) -> list[str]:
        """The texts whose pooled embeddings represent the report (all BPE windows, or the whole report)."""
        ...


@runtime_checkable
class TextPolicy(EvaluationTexts, Protocol):
    """A report's texts for training (one random draw per sample) and for evaluation."""

    def training_text(self, report_text: str, rng: np.random.Generator) -> str:
        """The text of one training sample of this report, drawn from `rng` only."""
        ...


@runtime_checkable
class ReportTokenizer(TextPolicy, Protocol):
    """A project tokenizer (`make_tokenizer`): ids for the text tower plus its own text policy."""

    kind: str  # "bpe" | "template" | "published_template"
    vocab_size: int
    context_length: int
    sot_token_id: int
    eot_token_id: int
    pad_token_id: int

    @property
    def text_cfg(self) -> dict:
        """The open_clip text_cfg entries the text tower needs (vocab_size, context_length, pool_type, ...)."""
        ...

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """(N, context_length) int64 ids: SOT first, EOT last, zero padding."""
        ...
