"""Stage 5 tables (echo_pipeline/tokenizers; docs/tokenizers.md): token rows and tokenizer statistics."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID

BPE_TOKENS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("n_bpe_tokens", pa.int32(), nullable=False),  # CLIP BPE tokens of the whole report, no SOT/EOT
        pa.field("n_snippets", pa.int32(), nullable=False),  # sentence-aligned evaluation windows (bpe_snippets)
        pa.field("fits_context", pa.bool_(), nullable=False),  # n_bpe_tokens + 2 <= context length (77)
        RUN_ID,
        CODE_VERSION,
    ]
)

TEMPLATE_TOKENS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("vocabulary_id", pa.string(), nullable=False),  # TemplateVocabulary.vocabulary_id of the file used
        pa.field("n_tokens", pa.int32(), nullable=False),  # len(token_ids)
        pa.field("n_sentences", pa.int32(), nullable=False),
        pa.field("n_unknown_sentences", pa.int32(), nullable=False),  # encoded as UNK_SENTENCE
        pa.field("fits_context", pa.bool_(), nullable=False),  # n_tokens + 2 <= context length (77)
        pa.field("token_ids", pa.list_(pa.int32()), nullable=False),  # whole report, no SOT/EOT/padding
        RUN_ID,
        CODE_VERSION,
    ]
)

TEMPLATE_UNKNOWN_SENTENCES = pa.schema(
    [
        pa.field("shape", pa.string(), nullable=False),  # normalised sentence, <NUM> <SEV> [DATE] [ID] masked
        pa.field("count", pa.int64(), nullable=False),  # sentences of this shape encoded as UNK_SENTENCE
        pa.field("n_reports", pa.int64(), nullable=False),  # reports holding at least one
        pa.field("example_report_id", pa.string(), nullable=False),  # the smallest such report_id
        pa.field("vocabulary_id", pa.string(), nullable=False),  # the vocabulary that does not cover it
        RUN_ID,
        CODE_VERSION,
    ]
)

TOKENIZER_STATS = pa.schema(
    [
        pa.field("tokenizer", pa.string(), nullable=False),  # bpe | template
        pa.field("split", pa.string(), nullable=False),  # train | validation | test | unassigned | all
        pa.field("vocab_size", pa.int32(), nullable=False),
        pa.field("n_reports", pa.int64(), nullable=False),
        pa.field("mean_tokens", pa.float64(), nullable=False),  # per report, no SOT/EOT
        pa.field("sd_tokens", pa.float64()),  # null for a single report
        pa.field("fit_share", pa.float64(), nullable=False),  # share of reports whose tokens + 2 <= 77
        pa.field("sentence_coverage", pa.float64()),  # covered / all sentences; null for bpe
        pa.field("unknown_sentence_rate", pa.float64()),  # share of reports with an UNK_SENTENCE; null for bpe
        pa.field("compression_vs_bpe", pa.float64()),  # mean BPE tokens / mean tokens, same reports
        RUN_ID,
        CODE_VERSION,
    ]
)
