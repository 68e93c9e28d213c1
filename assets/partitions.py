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


def with_variants(assets: list, variant_names) -> list:
    """``assets`` with every MODEL_VARIANTS-partitioned one re-partitioned over ``variant_names`` (the trained
    variants plus the `--pretrained` names of this deployment's settings).

    Static, fixed when the definitions are built, like SHARDS: a pretrained model is a deployment setting
    (ECHO_PIPELINE_PRETRAINED) whose directory is validated before anything runs, so its partition exists
    exactly when it is configured, with no instance state to add or clean up (a DynamicPartitionsDefinition
    would need every run, test and UI session to add the keys to its instance first). docs/training.md.
    """
    names = list(variant_names)
    if names == list(VARIANT_NAMES):
        return assets
    partitions = dg.StaticPartitionsDefinition(names)
    return [a.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=partitions))
            if isinstance(a, dg.AssetsDefinition) and a.partitions_def == MODEL_VARIANTS else a for a in assets]
