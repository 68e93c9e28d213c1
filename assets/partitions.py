"""Partitions: shards for the per-file stages (ingestion, view filtering, masking), model variants after.

A bounded number of shards, never one partition per file: a backfill of N shards spreads over N processes
or pods. The count is fixed when the code location loads (ECHO_PIPELINE_SHARDS, default 8); changing it
re-shards every file, so treat it as a deployment setting.
"""

import dagster as dg

from echo_pipeline.sharding import configured_shard_count, shard_names
from echo_pipeline.model_variants import MODEL_VARIANTS as VARIANT_NAMES

SHARDS = dg.StaticPartitionsDefinition(shard_names(configured_shard_count()))

#: The model and everything after it are per model variant (the tokenizer it trains with): "bpe", "template".
MODEL_VARIANTS = dg.StaticPartitionsDefinition(list(VARIANT_NAMES))
