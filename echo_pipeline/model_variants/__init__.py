"""One owner for a model variant's files, names and staleness: where everything a variant writes lives.

A variant names the tokenizer a model trains with ("bpe" = EchoCLIP-style, "template" = EchoCLIP-R-style), or
a published model registered with `--pretrained NAME=DIR` (`pretrained`: parsing, the directory's sha256
manifest, its record; it is embedded and evaluated like a trained variant, without training).
Its files under a data root (the layout is unchanged since the first release; docs/tables.md, docs/search.md):

    arrays/clip_model/<variant>/model.json           the record of the model the root passes on (`record`)
    arrays/clip_model/<variant>/run-<run_key>/       one training run: config, checkpoints, history
    tables/clip_embeddings/part-<variant>-<shard>.parquet   its clip embeddings, one partition per shard
    tables/report_embeddings/part-<variant>.parquet          its report embeddings
    arrays/video_index/<variant>/, arrays/report_index/<variant>/   its FAISS indexes
    arrays/eval_plots/<variant>/                      the evaluation's figures of its model

`layout`, `record` and `index_manifest` (reading and verifying an index's sha256 manifest) sit just above
`storage` and below training, evaluation and search, which all ask them. `staleness` (whether the embeddings
and indexes are out of date) also reads the catalog, so it is imported on its own
(`echo_pipeline.model_variants.staleness`) and training never loads DuckDB views through this package.
"""

from echo_pipeline.model_variants.layout import (
    CLIP_TABLE, LINKED_REPORTS_SQL, MASKED_CLIPS_SQL, MODEL_VARIANTS, REPORT_INDEX, REPORT_TABLE, VIDEO_INDEX,
    check_variant, clip_partition, eval_plots_dir, index_dir, record_path, report_partition, run_dir, variant_dir,
    variant_partitions,
)
from echo_pipeline.model_variants.record import ModelRecord, read_record, write_record

__all__ = [
    "CLIP_TABLE", "LINKED_REPORTS_SQL", "MASKED_CLIPS_SQL", "MODEL_VARIANTS", "REPORT_INDEX", "REPORT_TABLE",
    "VIDEO_INDEX", "ModelRecord", "check_variant", "clip_partition", "eval_plots_dir", "index_dir", "read_record", "record_path",
    "report_partition", "run_dir", "variant_dir", "variant_partitions", "write_record",
]
