"""Loading published hub-layout directories: refusing a broken one up front, starting training from one.

`check_loads` is what settings validation runs for every `--pretrained` directory before any stage: the
config parses, the weights load into the architecture the config names, the tokenizer reads, and the text
tower's vocabulary fits the tokenizer; otherwise InputContractError names the file and the reason.
`init_from_weights` is what `--init-from DIR` does to a freshly built model: every tensor whose name and
shape match is copied, the rest keep their random initialisation and are listed (the checkpoint card
records them), and the directory's `preprocess_cfg` (mean/std) becomes the model's, so training normalises
as embedding does.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import open_clip
import torch
from safetensors import SafetensorError

from echo_pipeline.errors import CheckpointError, InputContractError
from echo_pipeline.model_variants.pretrained import PretrainedSource
from echo_pipeline.training import checkpoint as ckpt
from echo_pipeline.training.model_factory import weights_path, create_from_config, find_hub_weights, load_trained_model

#: What reading a damaged weights file raises (safetensors header errors, truncated pickles, zip errors).
_UNREADABLE = (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError, SafetensorError)


def hub_config(directory: Path) -> dict:
    """The directory's open_clip_config.json ({"model_cfg", "preprocess_cfg"}); InputContractError naming it."""
    path = Path(directory) / ckpt.CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        config["model_cfg"]["text_cfg"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputContractError(f"{path}: not a readable open_clip hub config ({type(e).__name__}: {e}); "
                                 "a hub-layout directory holds open_clip_config.json with model_cfg") from e
    return config


def check_hub_directory(directory: Path, where: str) -> None:
    """Cheap checks for `--init-from`: a directory with a readable config and a weights file that loads."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputContractError(f"{where} {directory}: not a directory; point it at an open_clip hub-layout folder")
    hub_config(directory)
    try:
        open_clip.factory.load_state_dict(str(weights_path(directory)), weights_only=True)
    except CheckpointError as e:
        raise InputContractError(f"{where}: {e}") from e
    except _UNREADABLE as e:
        raise InputContractError(f"{where} {find_hub_weights(directory)}: weights unreadable ({e})") from e


def check_loads(source: PretrainedSource) -> None:
    """Load the model and its tokenizer once; InputContractError naming the file and the reason otherwise."""
    from echo_pipeline.tokenizers import make_tokenizer

    where = f"--pretrained {source.name}"
    check_hub_directory(source.directory, where)
    try:
        model = load_trained_model(source.directory)
    except (CheckpointError, AssertionError, *_UNREADABLE) as e:  # open_clip asserts on mismatched shapes
        raise InputContractError(f"{where}: {find_hub_weights(source.directory)}: does not load into the "
                                 f"architecture its config names ({type(e).__name__}: {e})") from e
    try:
        tokenizer = make_tokenizer(source.tokenizer, source.vocabulary)
    except (ValueError, OSError) as e:
        raise InputContractError(f"{where}: tokenizer: {e}") from e
    vocab = model.vocab_size if hasattr(model, "vocab_size") else model.text.vocab_size
    if vocab != tokenizer.vocab_size:
        hint = "name the template vocabulary with ,vocabulary=FILE" if source.vocabulary is None else \
            "check that the vocabulary file is the one these weights were trained with"
        raise InputContractError(f"{where}: {Path(source.directory) / ckpt.CONFIG_FILE}: text vocabulary of "
                                 f"{vocab} ids, the {source.tokenizer} tokenizer has {tokenizer.vocab_size}; {hint}")


def untrained_like(directory: Path) -> torch.nn.Module:
    """The directory's architecture at random initialisation (the caller seeds), with its preprocess_cfg."""
    config = hub_config(directory)
    model = create_from_config("echoclip", config["model_cfg"])
    if config.get("preprocess_cfg"):
        open_clip.set_model_preprocess_cfg(model, config["preprocess_cfg"])
    return model


def init_from_weights(model: torch.nn.Module, init_from: str | Path) -> list[str]:
    """Copy matching tensors of ``init_from`` into ``model``; return the names left at random initialisation."""
    path = weights_path(Path(init_from))
    try:
        state = open_clip.factory.load_state_dict(str(path), weights_only=True)
    except _UNREADABLE as e:
        raise CheckpointError(f"{path}: start weights unreadable ({e})") from e
    state = open_clip.factory.convert_state_dict(model, state)
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(matching, strict=False)
    directory = path.parent
    if (directory / ckpt.CONFIG_FILE).is_file():
        preprocess = hub_config(directory).get("preprocess_cfg")
        if preprocess:
            open_clip.set_model_preprocess_cfg(model, preprocess)
    return sorted(k for k in own if k not in matching)


def register_pretrained(store, source: PretrainedSource, *, run_id: str, code_version: str):
    """`clip_model` of a pretrained variant: check the directory loads, then write its record (manifest sha256)."""
    from echo_pipeline.model_variants import write_record
    from echo_pipeline.model_variants.pretrained import pretrained_record

    check_loads(source)
    record = pretrained_record(source, run_id=run_id, code_version=code_version)
    write_record(store, record)
    return record
