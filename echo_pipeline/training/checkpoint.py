"""Per-epoch training checkpoints: safetensors + JSON, sha256-verified, written atomically.

Layout of one checkpoint (`<run_dir>/checkpoints/epoch-0003/`), which is also an open_clip hub-layout
directory, so `open_clip.create_model("local-dir:<dir>")` loads its weights directly:

    open_clip_config.json        {"model_cfg": ..., "preprocess_cfg": ...}
    open_clip_model.safetensors  model weights
    training_state.safetensors   optimizer tensors ("opt.<param index>.<name>") and RNG states ("rng.*")
    training_state.json          epoch, step, optimizer param_groups and non-tensor optimizer state
    card.json                    preset, resolved config, data fingerprints, code version, metrics,
                                 best-so-far, and the sha256 of every file above

`<run_dir>/best.json` points at the checkpoint with the lowest validation MCMRR. Nothing here unpickles:
tensors come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from echo_pipeline.errors import CheckpointError
from echo_pipeline.storage import file_sha256

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "open_clip_model.safetensors"
CONFIG_FILE = "open_clip_config.json"
STATE_TENSORS_FILE = "training_state.safetensors"
STATE_JSON_FILE = "training_state.json"
CARD_FILE = "card.json"
_HASHED_FILES = (CONFIG_FILE, WEIGHTS_FILE, STATE_TENSORS_FILE, STATE_JSON_FILE)
BEST_FILE = "best.json"




def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Finished checkpoint directories of a run, oldest epoch first (quarantined ones excluded)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("epoch-") and p.name[6:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[6:]))


@dataclass
class TrainingState:
    """What a resumed run needs besides the weights."""

    epoch: int
    step: int
    optimizer_state: dict
    rng_state: dict[str, torch.Tensor]
    card: dict


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _split_optimizer_state(optimizer_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, entry in optimizer_state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": optimizer_state["param_groups"], "scalar_state": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, entry in meta["scalar_state"].items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: Path,
    epoch: int,
    *,
    model_state: dict[str, torch.Tensor],
    model_cfg: dict,
    preprocess_cfg: dict,
    optimizer_state: dict,
    step: int,
    rng_state: dict[str, torch.Tensor],
    card: dict,
) -> Path:
    """Write checkpoint `epoch` under `run_dir/checkpoints/` atomically and return its directory.

    Files go to a temporary sibling directory that is renamed into place only once complete, so a kill
    leaves either no checkpoint or a whole one. `card` gets the files' sha256 and format fields added.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(epoch)
    if final.exists():
        raise CheckpointError(
            f"{final}: a checkpoint for epoch {epoch} already exists; resume the run or use a new out_dir"
        )
    tmp = root / f".tmp-{checkpoint_name(epoch)}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model_state.items()}, str(tmp / WEIGHTS_FILE))
    opt_tensors, opt_meta = _split_optimizer_state(optimizer_state)
    rng_tensors = {f"rng.{k}": v.detach().cpu().contiguous() for k, v in rng_state.items()}
    save_file({**opt_tensors, **rng_tensors}, str(tmp / STATE_TENSORS_FILE))
    _write_json(tmp / STATE_JSON_FILE, {"epoch": epoch, "step": step, "optimizer": opt_meta})
    _write_json(tmp / CONFIG_FILE, {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})
    full_card = dict(card, format=FORMAT_VERSION, epoch=epoch, step=step,
                     files={name: file_sha256(tmp / name) for name in _HASHED_FILES})
    _write_json(tmp / CARD_FILE, full_card)
    os.replace(tmp, final)
    return final


def verify_checkpoint(ckpt_dir: Path) -> dict:
    """Return the card of `ckpt_dir` after checking every file against its recorded sha256.

    Raises CheckpointError when the card is missing or unreadable, a file is missing, or a hash differs.
    """
    ckpt_dir = Path(ckpt_dir)
    card_path = ckpt_dir / CARD_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        recorded = card["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{card_path}: checkpoint card missing or unreadable ({e}); this checkpoint cannot be trusted — "
            "use an earlier one or retrain"
        ) from e
    for name in _HASHED_FILES:
        path = ckpt_dir / name
        if name not in recorded or not path.is_file():
            raise CheckpointError(f"{path}: file missing from checkpoint; use an earlier checkpoint")
        actual = file_sha256(path)
        if actual != recorded[name]:
            raise CheckpointError(
                f"{path}: sha256 {actual[:12]}… does not match the card's {recorded[name][:12]}… "
                "(corrupt or modified); use an earlier checkpoint or retrain"
            )
    return card


def read_model_state(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    """Verified model weights of a checkpoint (CheckpointError when it does not verify)."""
    verify_checkpoint(ckpt_dir)
    return load_file(str(Path(ckpt_dir) / WEIGHTS_FILE))


def read_training_state(ckpt_dir: Path) -> TrainingState:
    """Verified optimizer, step and RNG state of a checkpoint, for resuming."""
    card = verify_checkpoint(ckpt_dir)
    tensors = load_file(str(Path(ckpt_dir) / STATE_TENSORS_FILE))
    meta = json.loads((Path(ckpt_dir) / STATE_JSON_FILE).read_text(encoding="utf-8"))
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return TrainingState(epoch=meta["epoch"], step=meta["step"],
                         optimizer_state=_join_optimizer_state(tensors, meta["optimizer"]),
                         rng_state=rng, card=card)


def _quarantine(path: Path) -> Path:
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt{n}")
    os.replace(path, target)
    return target


def select_resume_checkpoint(run_dir: Path) -> Path | None:
    """Newest checkpoint of `run_dir` that verifies, or None when there is none.

    Newer checkpoints that fail verification are renamed `<name>.corrupt` (kept for inspection, and out
    of the way of the epoch that will be rewritten); half-written temporary directories are removed.
    """
    root = Path(run_dir) / "checkpoints"
    if root.is_dir():
        for tmp in root.glob(".tmp-epoch-*"):
            shutil.rmtree(tmp, ignore_errors=True)
    for ckpt in reversed(checkpoint_dirs(run_dir)):
        try:
            verify_checkpoint(ckpt)
            return ckpt
        except CheckpointError as e:
            moved = _quarantine(ckpt)
            log.warning("skipping checkpoint that does not verify (%s); moved to %s", e, moved)
    return None


def prune_checkpoints(run_dir: Path, keep_last: int, keep: set[str]) -> list[Path]:
    """Delete finished checkpoints older than the newest `keep_last`, except the names in `keep`.

    A full EchoCLIP checkpoint is ~1.8 GB (weights + Adam state); 50 of them outgrow a 64 GiB disk.
    Keep at least 2 so a corrupt latest one still has a predecessor to fall back to.
    """
    dirs = checkpoint_dirs(run_dir)
    doomed = [d for d in dirs[: max(0, len(dirs) - keep_last)] if d.name not in keep]
    for d in doomed:
        shutil.rmtree(d)
    return doomed


def write_best(run_dir: Path, ckpt_dir: Path, epoch: int, metrics: dict) -> Path:
    """Atomically point `run_dir/best.json` at `ckpt_dir` (stored relative to run_dir)."""
    run_dir = Path(run_dir)
    path = run_dir / BEST_FILE
    tmp = run_dir / f".{BEST_FILE}.tmp-{os.getpid()}"
    _write_json(tmp, {"epoch": epoch, "checkpoint": str(Path(ckpt_dir).relative_to(run_dir)),
                      "metrics": metrics})
    os.replace(tmp, path)
    return path


def read_best(run_dir: Path) -> Path:
    """The verified best checkpoint directory of a run (CheckpointError when absent or corrupt)."""
    path = Path(run_dir) / BEST_FILE
    try:
        pointer = json.loads(path.read_text(encoding="utf-8"))
        ckpt = Path(run_dir) / pointer["checkpoint"]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: best-model pointer missing or unreadable ({e}); rerun training") from e
    verify_checkpoint(ckpt)
    return ckpt
