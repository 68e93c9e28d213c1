"""The trained model a data root currently passes on, per model variant, and how to load it.

`clip_model` writes one record per variant (`arrays/clip_model/<variant>/model.json`, atomically); embeddings,
indexes, evaluation and search read it. A variant names the tokenizer the model trains with ("bpe" =
EchoCLIP-style, "template" = EchoCLIP-R-style); the architecture comes from the preset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from echo_pipeline.errors import CheckpointError
from echo_pipeline.storage import DataRoot, atomic_path

MODEL_VARIANTS = ("bpe", "template")
RECORD_FILE = "model.json"
UNTRAINED_SEED = 0


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


def preset_for(variant: str, preset: str) -> str:
    """The preset a variant trains: the full-size template model is its own preset (EchoCLIP-R)."""
    return "echoclip-r" if (variant, preset) == ("template", "echoclip") else preset


def variant_dir(store: DataRoot, variant: str) -> Path:
    if variant not in MODEL_VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; use one of {MODEL_VARIANTS}")
    return store.array_dir("clip_model") / variant


def write_record(store: DataRoot, record: ModelRecord) -> Path:
    target = variant_dir(store, record.variant) / RECORD_FILE
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True))
    return target


def read_record(store: DataRoot, variant: str) -> ModelRecord:
    path = variant_dir(store, variant) / RECORD_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no trained {variant!r} model yet; materialize clip_model[{variant}] first")
    return ModelRecord(**json.loads(path.read_text()))


def load_tokenizer(record: ModelRecord):
    from echo_pipeline.tokenizers import make_tokenizer

    return make_tokenizer(record.tokenizer, record.vocabulary_path)


def load_model(record: ModelRecord) -> torch.nn.Module:
    """The trained model in eval mode (sha256-verified, safetensors only)."""
    from echo_pipeline.training.model_factory import load_trained_model

    return load_trained_model(record.checkpoint_dir).eval()


def untrained_model(record: ModelRecord, tokenizer) -> torch.nn.Module:
    """The same preset and text tower at random initialisation (fixed seed): the evaluation's reference."""
    from echo_pipeline.training.model_factory import build_model
    from echo_pipeline.training.presets import get_preset

    torch.manual_seed(UNTRAINED_SEED)
    model, _ = build_model(get_preset(record.preset).model_name, text_cfg=tokenizer.text_cfg)
    return model.eval()
