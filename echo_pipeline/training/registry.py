"""How to load the trained model a data root passes on, per model variant, from its record.

The record itself, and where every file of a variant lives, belong to `echo_pipeline.model_variants`.
A variant names the tokenizer the model trains with
("bpe" = EchoCLIP-style, "template" = EchoCLIP-R-style); the architecture comes from the preset.
"""

from __future__ import annotations

import torch

from echo_pipeline.errors import CheckpointError
from echo_pipeline.model_variants import ModelRecord

__all__ = ["load_model", "load_tokenizer", "preset_for", "untrained_model"]

UNTRAINED_SEED = 0


def preset_for(variant: str, preset: str) -> str:
    """The preset a variant trains: the full-size template model is its own preset (EchoCLIP-R)."""
    return "echoclip-r" if (variant, preset) == ("template", "echoclip") else preset


def load_tokenizer(record: ModelRecord):
    from echo_pipeline.tokenizers import make_tokenizer

    return make_tokenizer(record.tokenizer, record.vocabulary_path)


def load_model(record: ModelRecord) -> torch.nn.Module:
    """The variant's model in eval mode: a trained checkpoint (sha256-verified, safetensors only), or a
    pretrained directory whose files still hash to the manifest recorded when it was registered."""
    from echo_pipeline.training.model_factory import load_trained_model

    if record.source == "pretrained":
        from echo_pipeline.model_variants.pretrained import directory_manifest, manifest_sha256

        if manifest_sha256(directory_manifest(record.checkpoint_dir)) != record.checkpoint_sha256:
            raise CheckpointError(f"{record.checkpoint_dir}: files changed since clip_model[{record.variant}] "
                                  "registered them (sha256 manifest differs); materialize clip_model again")
    return load_trained_model(record.checkpoint_dir).eval()


def untrained_model(record: ModelRecord, tokenizer) -> torch.nn.Module:
    """The same preset and text tower at random initialisation (fixed seed): the evaluation's reference."""
    from echo_pipeline.training.model_factory import build_model
    from echo_pipeline.training.presets import get_preset

    torch.manual_seed(UNTRAINED_SEED)
    if record.source == "pretrained":
        from echo_pipeline.training.pretrained import untrained_like

        return untrained_like(record.checkpoint_dir).eval()
    model, _ = build_model(get_preset(record.preset).model_name, text_cfg=tokenizer.text_cfg)
    return model.eval()
