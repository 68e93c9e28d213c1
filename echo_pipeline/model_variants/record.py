"""The record of the trained model a data root passes on, one per variant (`arrays/clip_model/<variant>/model.json`).

`clip_model` writes it atomically; embeddings, indexes, evaluation and search read it. Loading the model it
names is `echo_pipeline.training.registry`'s job (that needs torch; reading the record does not).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from echo_pipeline.errors import CheckpointError
from echo_pipeline.model_variants.layout import record_path
from echo_pipeline.storage import DataRoot, atomic_path


@dataclass(frozen=True)
class ModelRecord:
    """What identifies a trained model: every result row carries `model_id` and `checkpoint_sha256`."""

    variant: str
    model_id: str
    preset: str
    tokenizer: str
    checkpoint_dir: str
    checkpoint_sha256: str
    vocabulary_path: str | None
    best_epoch: int
    best_val_mcmrr: float
    epochs_completed: int
    train_pairs: int
    run_id: str
    code_version: str
    #: "trained" (clip_model trained it) or "pretrained" (a registered hub-layout directory, not trained here).
    source: str = "trained"
    #: Frame preprocessing before the model's normalisation (`embeddings.preprocessing`): "model" or "published_crop".
    preprocessing: str = "model"
    #: Pretrained: sha256 of every file of the directory (checkpoint_sha256 is the hash of this manifest).
    manifest: dict | None = None

    @property
    def model_source(self) -> str:
        """The eval tables' `model_source` of this model: "trained" or "pretrained:<name>"."""
        return "trained" if self.source == "trained" else f"pretrained:{self.variant}"


def write_record(store: DataRoot, record: ModelRecord) -> Path:
    target = record_path(store, record.variant)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True))
    return target


def read_record(store: DataRoot, variant: str) -> ModelRecord:
    """The variant's record; CheckpointError saying what to materialise when there is none yet."""
    path = record_path(store, variant)
    if not path.is_file():
        raise CheckpointError(f"{path}: no trained {variant!r} model yet; materialize clip_model[{variant}] first")
    return ModelRecord(**json.loads(path.read_text()))
