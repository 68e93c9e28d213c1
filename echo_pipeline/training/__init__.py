"""CLIP training core: presets, model factory, data, checkpoints, trainer (no Dagster).

Below it: `echo_pipeline.metrics` (validation MCMRR), `echo_pipeline.lr_schedule` (warm-up + cosine),
`echo_pipeline.devices`, `echo_pipeline.tokenizers`; nothing here imports evaluation or search.

Entry points: `train_clip(TrainConfig(...), train_pairs, val_pairs, tokenizer, report=...)` in a
process, or `python -m echo_pipeline.training.train_cli --config run.json` (also under torchrun).
"""

from echo_pipeline.training.checkpoint import read_best, select_resume_checkpoint, verify_checkpoint
from echo_pipeline.training.data import TrainPair, default_text_sampler
from echo_pipeline.training.model_factory import build_model, load_trained_model, save_hub_layout
from echo_pipeline.training.presets import PRESETS, TrainConfig, get_preset
from echo_pipeline.training.trainer import TrainResult, mcmrr, train_clip

__all__ = [
    "PRESETS", "TrainConfig", "TrainPair", "TrainResult", "build_model", "default_text_sampler", "get_preset",
    "load_trained_model", "mcmrr", "read_best", "save_hub_layout", "select_resume_checkpoint", "train_clip",
    "verify_checkpoint",
]
