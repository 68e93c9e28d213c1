"""CLIP training core: presets, model factory, data, checkpoints, trainer (no Dagster).

Below it: `echo_pipeline.metrics` (validation MCMRR), `echo_pipeline.lr_schedule` (warm-up + cosine),
`echo_pipeline.devices`, `echo_pipeline.tokenizers`; nothing here imports evaluation or search.

Entry points: `train_clip(TrainConfig(...), train_pairs, val_pairs, tokenizer, report=...)` in a
process, or `python -m echo_pipeline.training.train_cli --config run.json` (also under torchrun).

The names below load on first use (PEP 562), so `echo_pipeline.training.presets` — which the command line
reads to validate `--preset` — does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "read_best": "checkpoint", "select_resume_checkpoint": "checkpoint", "verify_checkpoint": "checkpoint",
    "TrainPair": "data", "default_text_sampler": "data",
    "build_model": "model_factory", "load_trained_model": "model_factory", "save_hub_layout": "model_factory",
    "PRESETS": "presets", "TrainConfig": "presets", "get_preset": "presets",
    "TrainResult": "trainer", "mcmrr": "trainer", "train_clip": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
