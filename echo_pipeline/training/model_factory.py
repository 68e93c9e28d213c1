"""Build CLIP models through open_clip's own factory, offline, from the presets shipped here.

The architectures live as JSON in `model_configs/` and are registered with open_clip, so
`open_clip.create_model("echoclip")` builds the published EchoCLIP shape (ConvNeXt-Base + CLIP text
tower) and an open_clip hub-layout directory of EchoCLIP weights loads into it. Nothing downloads:
timm towers are built with pretrained=False and weights come only from local files.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from echo_pipeline.errors import CheckpointError, InputContractError
from echo_pipeline.storage import file_sha256
from echo_pipeline.training import checkpoint as ckpt

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "model_configs"
#: Weight file names an open_clip hub-layout directory may hold, preferred first (safetensors first).
HUB_WEIGHT_FILES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin",
)


def register_model_configs() -> list[str]:
    """Register the shipped architectures with open_clip (idempotent); return their names."""
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
    if any(open_clip.get_model_config(n) is None for n in names):
        open_clip.add_model_config(CONFIG_DIR)
    return names


def model_config(model_name: str, *, text_cfg: dict | None = None, vocab_size: int | None = None,
                 image_size: int | None = None) -> dict:
    """open_clip model config for `model_name` with text-tower entries / vocabulary / image size overridden.

    `text_cfg` is typically a tokenizer's `text_cfg` (vocab_size, context_length, pool_type, eos_id, pad_id).
    """
    register_model_configs()
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise InputContractError(
            f"model config {model_name!r} is not registered with open_clip; ship it as "
            f"{CONFIG_DIR}/{model_name}.json"
        )
    cfg = copy.deepcopy(cfg)
    cfg["text_cfg"].update(text_cfg or {})
    if vocab_size is not None:
        cfg["text_cfg"]["vocab_size"] = int(vocab_size)
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = int(image_size)
    # timm must never fetch weights: start from random init or from a local file only.
    if "timm_model_name" in cfg["vision_cfg"]:
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    return cfg


def create_from_config(model_name: str, model_cfg: dict) -> torch.nn.Module:
    """Randomly initialised CLIP: `open_clip.create_model(model_name)` with `model_cfg`'s towers.

    The config's top-level keys override the registered config of the same name, so open_clip's own
    factory (tower classes, preprocess config, casting) does the building; no weights are fetched.
    """
    register_model_configs()
    return open_clip.create_model(model_name, pretrained=None, pretrained_image=False, **copy.deepcopy(model_cfg))


def find_hub_weights(directory: Path) -> Path:
    """The weights file of an open_clip hub-layout directory (CheckpointError when there is none)."""
    for name in HUB_WEIGHT_FILES:
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    raise CheckpointError(
        f"{directory}: no weights file found (expected one of {', '.join(HUB_WEIGHT_FILES)}); "
        "point init_from at an open_clip hub-layout directory, a checkpoint or a weights file"
    )


def weights_path(init_from: Path) -> Path:
    """Resolve `init_from` to a weights file, verifying our own checkpoints and sha256 side-cars."""
    if init_from.is_dir():
        if (init_from / ckpt.CARD_FILE).is_file():
            ckpt.verify_checkpoint(init_from)
        return find_hub_weights(init_from)
    if not init_from.is_file():
        raise CheckpointError(f"{init_from}: start weights not found; check init_from")
    sidecar = init_from.with_name(init_from.name + ".sha256")
    if sidecar.is_file():
        expected = sidecar.read_text().split()[0]
        if file_sha256(init_from) != expected:
            raise CheckpointError(f"{init_from}: sha256 differs from {sidecar.name}; the file is corrupt or modified")
    return init_from


def load_weights(model: torch.nn.Module, init_from: str | Path) -> None:
    """Load local weights into `model` strictly: safetensors, or torch.load(weights_only=True) for .bin/.pt.

    Raises CheckpointError when the file is unreadable or its tensors do not fit the architecture.
    """
    path = weights_path(Path(init_from))
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except (RuntimeError, OSError, ValueError, KeyError, pickle.UnpicklingError) as e:
        raise CheckpointError(
            f"{path}: weights could not be loaded into this architecture ({e}); check the preset, "
            "vocab_size and image_size match the ones the weights were trained with"
        ) from e


def build_model(
    model_name: str,
    *,
    text_cfg: dict | None = None,
    vocab_size: int | None = None,
    image_size: int | None = None,
    init_from: str | Path | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Return `(model, model_cfg)`: the registered architecture, random or loaded from `init_from`.

    `init_from` may be an open_clip hub-layout directory (open_clip_config.json + weights), one of our
    checkpoint directories (sha256-verified first), or a weights file. `model_cfg` is the exact config
    to store next to the weights.
    """
    cfg = model_config(model_name, text_cfg=text_cfg, vocab_size=vocab_size, image_size=image_size)
    model = create_from_config(model_name, cfg)
    if init_from is not None:
        load_weights(model, init_from)
    return model, cfg


def load_trained_model(directory: str | Path) -> torch.nn.Module:
    """Load a hub-layout directory or one of our checkpoints with its own stored config, offline.

    Goes through `open_clip.create_model("local-dir:<directory>")` (safetensors preferred, .bin read
    with weights_only=True). Checkpoints (directories with a card) are sha256-verified first; this is
    what downstream embedding code should call on the path `best.json` names.
    """
    directory = Path(directory).resolve()
    if (directory / ckpt.CARD_FILE).is_file():
        ckpt.verify_checkpoint(directory)
    if not (directory / ckpt.CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{directory / ckpt.CONFIG_FILE}: missing; a hub-layout directory needs open_clip_config.json")
    find_hub_weights(directory)
    register_model_configs()
    try:
        return open_clip.create_model(f"local-dir:{directory}", pretrained_image=False, weights_only=True)
    except (RuntimeError, OSError, ValueError, KeyError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"{directory}: could not load the model it holds ({e})") from e


def save_hub_layout(model: torch.nn.Module, model_cfg: dict, out_dir: str | Path) -> Path:
    """Write `model` as an open_clip hub-layout directory (config JSON + safetensors weights)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    preprocess = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    (out_dir / ckpt.CONFIG_FILE).write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess}, indent=2), encoding="utf-8")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / ckpt.WEIGHTS_FILE))
    return out_dir
