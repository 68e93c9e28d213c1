"""Names and paths of a model variant's files under a data root (see the package docstring for the tree).

Both variants write the same `clip_embeddings` / `report_embeddings` tables, so each owns its own partitions —
`<variant>-<shard>` for clips (one per shard of `masked_clips`, so a commit rewrites one shard's id table, not
the whole archive's) and `<variant>` for reports — and its own index directories. A partition holds one
model's rows, so the two variants never evict each other's vectors.
"""

from __future__ import annotations

import re
from pathlib import Path

from echo_pipeline.storage import DataRoot

MODEL_VARIANTS = ("bpe", "template")
#: What a pretrained variant's name may be (`--pretrained NAME=DIR`): it becomes a folder and a partition key.
PRETRAINED_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
MODEL_STAGE = "clip_model"  # arrays/clip_model/<variant>/: the record and the training runs
RECORD_FILE = "model.json"
EVAL_PLOTS_STAGE = "eval_plots"

VIDEO_INDEX = "video_index"
REPORT_INDEX = "report_index"
CLIP_TABLE = "clip_embeddings"
REPORT_TABLE = "report_embeddings"

#: masked A4C clips a variant embeds: id, shard, .npy path relative to the data root.
MASKED_CLIPS_SQL = "SELECT sop_instance_uid, shard, clip_path FROM masked_clips ORDER BY shard, sop_instance_uid"
#: reports linked to a study, with their text: what a variant embeds on the report side.
LINKED_REPORTS_SQL = """
    SELECT r.report_id, r.report_text FROM reports AS r JOIN report_links AS l USING (report_id)
    WHERE l.study_instance_uid IS NOT NULL ORDER BY r.report_id"""


def check_variant(variant: str) -> str:
    """``variant`` itself: a trained variant or a pretrained one's name (PRETRAINED_NAME); ValueError for any
    other name (it becomes a path)."""
    if variant not in MODEL_VARIANTS and not PRETRAINED_NAME.fullmatch(variant or ""):
        raise ValueError(f"unknown model variant {variant!r}; use one of {MODEL_VARIANTS} or a pretrained "
                         "model's name (lower-case letters, digits, '.', '_', '-')")
    return variant


def variant_dir(store: DataRoot, variant: str) -> Path:
    """arrays/clip_model/<variant>/: the variant's model record and training runs."""
    return store.array_dir(MODEL_STAGE) / check_variant(variant)


def record_path(store: DataRoot, variant: str) -> Path:
    """The record of the model ``variant`` passes on (written by `clip_model`)."""
    return variant_dir(store, variant) / RECORD_FILE


def run_dir(store: DataRoot, variant: str, run_key: str) -> Path:
    """The folder of one training run of ``variant`` (config, checkpoints, history), keyed by its inputs."""
    return variant_dir(store, variant) / f"run-{run_key}"


def eval_plots_dir(store: DataRoot, variant: str) -> Path:
    """arrays/eval_plots/<variant>/: the evaluation's figures of ``variant``'s model, as PNG files."""
    return store.array_dir(EVAL_PLOTS_STAGE) / check_variant(variant)


def index_dir(store: DataRoot, index: str, variant: str) -> Path:
    """Directory of ``index`` (VIDEO_INDEX or REPORT_INDEX) for ``variant``."""
    return store.array_dir(index) / check_variant(variant)


def clip_partition(variant: str, shard: str) -> str:
    """Store partition of ``variant``'s embeddings of the clips of ``shard``."""
    return f"{variant}-{shard}"


def report_partition(variant: str) -> str:
    """Store partition of ``variant``'s report embeddings."""
    return variant


def variant_partitions(store: DataRoot, table: str, variant: str) -> list[str]:
    """Partitions of ``table`` written for ``variant`` (read from the files, so removed shards are found too)."""
    return [store.partition_of(path) for path in store.partition_files(table, variant)]
