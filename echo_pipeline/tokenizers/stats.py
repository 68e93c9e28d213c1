"""The `tokenizer_stats` table: how long reports are under each tokenizer, per split, and what the template
vocabulary covers. Token counts exclude SOT/EOT; "fits" means count + 2 <= context length.

- sentence_coverage: covered sentences / all sentences (pooled over the split's reports); null for BPE,
  which covers any text;
- unknown_sentence_rate: share of reports with at least one UNK_SENTENCE (null for BPE);
- compression_vs_bpe: mean BPE tokens / mean tokens of this tokenizer, over the same reports (1 for BPE).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

ALL_SPLITS = "all"
UNASSIGNED = "unassigned"


def _sd(values: pd.Series) -> float | None:
    return float(values.std(ddof=1)) if len(values) > 1 else None


def tokenizer_stats(bpe_tokens: pa.Table, template_tokens: pa.Table, report_splits: pa.Table | pd.DataFrame, *,
                    template_vocab_size: int, bpe_vocab_size: int, run_id: str, code_version: str) -> pa.Table:
    """One row per (tokenizer, split) plus split "all", from the bpe_tokens and template_tokens tables and a
    (report_id, split) table; reports missing from it are counted under split "unassigned"."""
    from echo_pipeline.schemas import TOKENIZER_STATS

    splits = report_splits.to_pandas() if isinstance(report_splits, pa.Table) else pd.DataFrame(report_splits)
    split_of = dict(zip(splits["report_id"], splits["split"]))
    bpe = bpe_tokens.select(["report_id", "n_bpe_tokens", "fits_context"]).to_pandas()
    tpl_columns = ["report_id", "n_tokens", "n_sentences", "n_unknown_sentences", "fits_context"]
    tpl = template_tokens.select(tpl_columns).to_pandas()
    for frame in (bpe, tpl):
        frame["split"] = [split_of.get(r, UNASSIGNED) for r in frame["report_id"]]
    bpe_len = bpe.set_index("report_id")["n_bpe_tokens"]

    rows = []
    names = sorted(set(bpe["split"]) | set(tpl["split"]))
    for split in names + [ALL_SPLITS]:
        b = bpe if split == ALL_SPLITS else bpe[bpe["split"] == split]
        t = tpl if split == ALL_SPLITS else tpl[tpl["split"] == split]
        if len(b):
            rows.append({"tokenizer": "bpe", "split": split, "vocab_size": bpe_vocab_size, "n_reports": len(b),
                         "mean_tokens": float(b["n_bpe_tokens"].mean()), "sd_tokens": _sd(b["n_bpe_tokens"]),
                         "fit_share": float(b["fits_context"].mean()), "sentence_coverage": None,
                         "unknown_sentence_rate": None, "compression_vs_bpe": 1.0})
        if len(t):
            sentences, unknown = int(t["n_sentences"].sum()), int(t["n_unknown_sentences"].sum())
            paired = t[t["report_id"].isin(bpe_len.index)]
            paired_bpe = bpe_len.loc[paired["report_id"]]
            compression = (float(paired_bpe.mean() / paired["n_tokens"].mean())
                           if len(paired) and paired["n_tokens"].mean() > 0 else None)
            rows.append({"tokenizer": "template", "split": split, "vocab_size": template_vocab_size,
                         "n_reports": len(t), "mean_tokens": float(t["n_tokens"].mean()),
                         "sd_tokens": _sd(t["n_tokens"]),
                         "fit_share": float(t["fits_context"].mean()),
                         "sentence_coverage": 1.0 - unknown / sentences if sentences else None,
                         "unknown_sentence_rate": float(np.mean(t["n_unknown_sentences"] > 0)),
                         "compression_vs_bpe": compression})
    for row in rows:
        row.update(run_id=run_id, code_version=code_version)
    return pa.Table.from_pylist(rows, schema=TOKENIZER_STATS)
