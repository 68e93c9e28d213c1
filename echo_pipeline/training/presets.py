"""Training presets as data, and the typed configuration of one training run.

A preset names an open_clip architecture (a JSON file in `model_configs/`) plus the optimisation
defaults that go with it. `TrainConfig` holds what a caller may override; `resolve_config` merges the
two into a `ResolvedConfig` whose every field is concrete, so a checkpoint can record exactly what ran.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from echo_pipeline.errors import InputContractError

#: Learning rates above this diverged in the project's research runs (2e-3 collapsed); refuse them.
MAX_SAFE_LR = 1e-3


@dataclass(frozen=True)
class TrainPreset:
    """Architecture and optimisation defaults of one named model."""

    name: str
    #: open_clip config name (stem of a JSON file in `model_configs/`).
    model_name: str
    image_size: int
    context_length: int
    #: "bpe" (CLIP BPE, reports cut into sentence-aligned snippets) or "template" (whole reports).
    tokenizer: str
    batch_size: int
    epochs: int
    lr: float
    #: Fixed warm-up length in optimizer steps; when None, `warmup_fraction` of all steps is used.
    warmup_steps: int | None
    warmup_fraction: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    grad_clip_norm: float
    #: Whether the preset's text tower needs its vocabulary size from the caller (template tokenizer).
    needs_vocab_size: bool = False


PRESETS: dict[str, TrainPreset] = {
    # Laptop-sized: trains on 2 CPU cores at ~65 samples/s; scaled-down schedule. With a width-256 text
    # tower, 5e-4 left both towers' embeddings collapsed on the demo cohort (mean pairwise cosine 0.995, loss
    # stuck at ln 32); with width 128, 3e-4 for 20 epochs gave the best validation MCMRR (docs/training.md).
    "echo-tiny": TrainPreset(
        name="echo-tiny", model_name="echo-tiny", image_size=112, context_length=77, tokenizer="bpe",
        batch_size=32, epochs=20, lr=3e-4, warmup_steps=None, warmup_fraction=0.05,
        weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6, grad_clip_norm=1.0,
    ),
    # The published EchoCLIP architecture and the paper's schedule (batch 1,024, 50 epochs,
    # 2,000 warm-up steps to 5e-5, cosine to zero).
    "echoclip": TrainPreset(
        name="echoclip", model_name="echoclip", image_size=224, context_length=77, tokenizer="bpe",
        batch_size=1024, epochs=50, lr=5e-5, warmup_steps=2000, warmup_fraction=0.0,
        weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6, grad_clip_norm=1.0,
    ),
    # EchoCLIP-R: same towers, template tokenizer whose vocabulary size the caller supplies.
    "echoclip-r": TrainPreset(
        name="echoclip-r", model_name="echoclip-r", image_size=224, context_length=77, tokenizer="template",
        batch_size=1024, epochs=50, lr=5e-5, warmup_steps=2000, warmup_fraction=0.0,
        weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6, grad_clip_norm=1.0, needs_vocab_size=True,
    ),
}


def get_preset(name: str) -> TrainPreset:
    """Return the preset called `name`, or raise InputContractError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputContractError(
            f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}"
        ) from None


@dataclass
class TrainConfig:
    """What a caller may set for one run. None means "the preset's default"."""

    preset: str = "echo-tiny"
    #: Run directory: checkpoints/, best.json. Reusing it resumes the run.
    out_dir: str = "data/clip_model"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    warmup_steps: int | None = None
    weight_decay: float | None = None
    grad_clip_norm: float | None = None
    #: Training resolution; frames stored at another size are resized on the fly.
    image_size: int | None = None
    #: Text vocabulary size; normally taken from the tokenizer's `text_cfg`.
    vocab_size: int | None = None
    #: Start weights: an open_clip hub-layout directory, one of our checkpoints, or a weights file.
    init_from: str | None = None
    seed: int = 0
    #: DataLoader worker processes per rank; None picks from the cores available.
    num_workers: int | None = None
    #: "auto" (CUDA when present), "cpu" or "cuda".
    device: str = "auto"
    deterministic: bool = True
    #: Continue from the newest verified checkpoint in out_dir when there is one.
    resume: bool = True
    #: Stop this invocation after this epoch (the schedule still spans `epochs`): time-sliced jobs.
    stop_after_epoch: int | None = None
    #: Keep only the newest N checkpoints (plus the best); None keeps every epoch's. Use >= 2.
    keep_last: int | None = None
    #: Recompute activations in the backward pass: less GPU memory for batch 1,024, ~30 % more compute.
    grad_checkpointing: bool = False
    log_every_steps: int = 50
    #: The model passed on is the epoch with the lowest mean validation MCMRR over the `selection_window`
    #: epochs ending at it (1 = the plain lowest epoch). On a small validation set single-epoch MCMRR is
    #: noisy and the plain minimum picks noise dips (docs/training.md, "Validation and the model passed on").
    selection_window: int = 3


@dataclass(frozen=True)
class ResolvedConfig:
    """Every setting of a run, concrete. `run_key()` fields decide whether a checkpoint may resume it."""

    preset: str
    model_name: str
    tokenizer: str
    epochs: int
    batch_size: int
    lr: float
    warmup_steps: int | None
    warmup_fraction: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    grad_clip_norm: float
    image_size: int
    context_length: int
    #: open_clip text_cfg entries over the preset's: the tokenizer's own (vocab_size, pool_type, eos_id, ...).
    text_cfg: dict
    init_from: str | None
    seed: int

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def resolve_config(config: TrainConfig, tokenizer_text_cfg: dict | None = None) -> ResolvedConfig:
    """Merge `config` over its preset; raise InputContractError for values that cannot train.

    `tokenizer_text_cfg` is the tokenizer's `text_cfg` (echo_pipeline.tokenizers): its vocabulary size,
    context and pooling go into the text tower; `config.vocab_size`, when set, wins over it.
    """
    p = get_preset(config.preset)
    text_cfg = dict(tokenizer_text_cfg or {})
    if config.vocab_size is not None:
        text_cfg["vocab_size"] = int(config.vocab_size)

    def pick(value, default):
        return default if value is None else value

    resolved = ResolvedConfig(
        preset=p.name, model_name=p.model_name, tokenizer=p.tokenizer,
        epochs=pick(config.epochs, p.epochs), batch_size=pick(config.batch_size, p.batch_size),
        lr=pick(config.lr, p.lr),
        warmup_steps=pick(config.warmup_steps, p.warmup_steps), warmup_fraction=p.warmup_fraction,
        weight_decay=pick(config.weight_decay, p.weight_decay), betas=p.betas, eps=p.eps,
        grad_clip_norm=pick(config.grad_clip_norm, p.grad_clip_norm),
        image_size=pick(config.image_size, p.image_size),
        context_length=int(text_cfg.get("context_length", p.context_length)),
        text_cfg=text_cfg, init_from=config.init_from, seed=config.seed,
    )
    if not 0 < resolved.lr <= MAX_SAFE_LR:
        raise InputContractError(
            f"training config: lr={resolved.lr} is outside (0, {MAX_SAFE_LR}]; higher rates collapsed "
            "in earlier runs — lower lr"
        )
    if config.selection_window < 1:
        raise InputContractError(f"training config: selection_window={config.selection_window} must be >= 1")
    if resolved.epochs < 1 or resolved.batch_size < 1:
        raise InputContractError(
            f"training config: epochs={resolved.epochs} and batch_size={resolved.batch_size} must be >= 1"
        )
    if p.needs_vocab_size and "vocab_size" not in text_cfg and resolved.init_from is None:
        raise InputContractError(
            f"training config: preset {p.name!r} uses the template tokenizer; pass that tokenizer (its "
            "text_cfg carries vocab_size and pooling) or set vocab_size"
        )
    return resolved
