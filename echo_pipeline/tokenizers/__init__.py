"""Report tokenizers: CLIP BPE (EchoCLIP) and the learned template tokenizer (EchoCLIP-R), behind one interface.

Both tokenizers returned by `make_tokenizer` satisfy `protocol.ReportTokenizer`:

- `tokenizer(texts, context_length=None) -> LongTensor (N, context_length)`: SOT first, EOT last, zero padding;
- `vocab_size`, `context_length`, `sot_token_id`, `eot_token_id`, `pad_token_id`, `kind` ("bpe" | "template");
- `text_cfg`: the open_clip text_cfg entries the text tower needs (vocab_size, context_length, pool_type, ...);
- `training_text(report_text, rng)`: the text of one training sample of this report, drawn from `rng`;
- `evaluation_texts(report_text)`: the texts whose embeddings (pooled by `echo_pipeline.pooling.pool_texts`)
  represent it.

See docs/tokenizers.md.
"""

from __future__ import annotations

from pathlib import Path

from echo_pipeline.tokenizers.bpe import (
    BpeTokenizer,
    bpe_length,
    bpe_snippets,
    bpe_token_rows,
    evaluation_texts,
    training_snippet,
)
from echo_pipeline.tokenizers.normalise import normalise_sentence, normalised_sentences, split_sentences
from echo_pipeline.tokenizers.published_template import PublishedTemplateTokenizer
from echo_pipeline.tokenizers.protocol import EvaluationTexts, ReportTokenizer, TextPolicy
from echo_pipeline.tokenizers.stats import tokenizer_stats
from echo_pipeline.tokenizers.template import EncodedReport, TemplateTokenizer, template_token_rows
from echo_pipeline.tokenizers.unknown_sentences import unknown_sentence_rows
from echo_pipeline.tokenizers.vocabulary import TemplateVocabulary, learn_vocabulary, load_vocabulary, save_vocabulary

TOKENIZER_KINDS = ("bpe", "template", "published_template")


def make_tokenizer(kind: str, vocabulary_path: Path | None = None, context_length: int = 77) -> ReportTokenizer:
    """A BpeTokenizer ("bpe"), a TemplateTokenizer ("template", reading `vocabulary_path`), or a
    PublishedTemplateTokenizer ("published_template": `vocabulary_path` is a published template file)."""
    if kind == "bpe":
        return BpeTokenizer(context_length)
    if kind == "published_template":
        if vocabulary_path is None:
            raise ValueError("the published template tokenizer needs vocabulary_path (a file of templates)")
        return PublishedTemplateTokenizer(vocabulary_path, context_length)
    if kind == "template":
        if vocabulary_path is None:
            raise ValueError("the template tokenizer needs vocabulary_path (a file written by save_vocabulary)")
        return TemplateTokenizer(load_vocabulary(vocabulary_path), context_length)
    raise ValueError(f"unknown tokenizer kind {kind!r}; use one of {TOKENIZER_KINDS}")


__all__ = [
    "TOKENIZER_KINDS", "BpeTokenizer", "EncodedReport", "EvaluationTexts", "PublishedTemplateTokenizer", "ReportTokenizer", "TemplateTokenizer",
    "TemplateVocabulary", "TextPolicy", "bpe_length",
    "bpe_snippets", "bpe_token_rows", "evaluation_texts", "learn_vocabulary", "load_vocabulary", "make_tokenizer",
    "normalise_sentence", "normalised_sentences", "save_vocabulary", "split_sentences",
    "template_token_rows", "tokenizer_stats", "training_snippet", "unknown_sentence_rows",
]

#: Recorded on every row this stage writes; bump when the stage's output for the same input changes.
CODE_VERSION = "tokenizers-1"
