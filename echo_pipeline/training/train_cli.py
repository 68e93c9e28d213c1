"""Command-line entry for one training run: `python -m echo_pipeline.training.train_cli --config run.json`.

Works alone, under `torchrun --nproc_per_node N -m echo_pipeline.training.train_cli ...`, and as the
external process of a Dagster Pipes asset (call `main(argv, report=...)` to route events elsewhere).
Rank 0 prints one JSON object per line on stdout: an "epoch" event per epoch, then a "done" event.

Config file (JSON):

    {
      "train": {...TrainConfig fields...},
      "pairs": "pairs.jsonl",            # or .parquet; relative paths resolve against the config file
      "tokenizer": "bpe",                # or {"kind": "template", "vocabulary_path": "templates.json"}
                                         # or {"factory": "package.module:function", "kwargs": {...}}
      "text_sampler": null,              # optional factory; default: the tokenizer's own snippet policy
      "events": "events.jsonl"           # optional: also append every event to this file
    }

Pairs rows: clip_id, npy_path (relative to the pairs file or absolute), text (string) or snippets
(list of strings), group_id, split ("train" or "val"; other splits are ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from echo_pipeline.errors import InputContractError
from echo_pipeline.training.data import TrainPair
from echo_pipeline.training.presets import TrainConfig
from echo_pipeline.training.trainer import train_clip


def load_tokenizer(spec: dict | str):
    """"bpe" or {"kind": "template", "vocabulary_path": ...} via echo_pipeline.tokenizers; else a factory."""
    from echo_pipeline.tokenizers import make_tokenizer
    if spec == "bpe":
        return make_tokenizer("bpe")
    if isinstance(spec, dict) and "kind" in spec:
        path = spec.get("vocabulary_path")
        return make_tokenizer(spec["kind"], Path(path) if path else None, spec.get("context_length", 77))
    return load_factory(spec)


def load_factory(spec: dict):
    """Call {"factory": "module:function", "kwargs": {...}} and return what it builds."""
    try:
        module_name, func_name = spec["factory"].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
    except (KeyError, TypeError, ValueError, ImportError, AttributeError) as e:
        raise InputContractError(
            f"training config: {spec!r} is not {{'factory': 'module:function', 'kwargs': {{...}}}} ({e})") from e
    return func(**spec.get("kwargs", {}))


def read_pairs(path: Path) -> tuple[list[TrainPair], list[TrainPair]]:
    """Train and validation pairs from a .jsonl or .parquet pairs file."""
    if not path.is_file():
        raise InputContractError(f"{path}: pairs file not found; write it before training")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        rows = pq.read_table(path).to_pylist()
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out: dict[str, list[TrainPair]] = {"train": [], "val": []}
    for i, row in enumerate(rows):
        try:
            text = row["snippets"] if row.get("snippets") else row["text"]
            npy = Path(row["npy_path"])
            pair = TrainPair(str(row["clip_id"]), str(npy if npy.is_absolute() else path.parent / npy),
                             text if isinstance(text, str) else tuple(text), str(row["group_id"]))
        except KeyError as e:
            raise InputContractError(f"{path}: row {i} lacks column {e}; see train_cli's docstring") from e
        if row.get("split") in out:
            out[row["split"]].append(pair)
    return out["train"], out["val"]


def _stdout_report(event: dict) -> None:
    print(json.dumps(event, sort_keys=True), flush=True)


def main(argv: list[str] | None = None, report: Callable[[dict], None] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="run configuration JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("echo_pipeline").setLevel(logging.INFO)
    spec = json.loads(args.config.read_text(encoding="utf-8"))
    base = args.config.parent

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(spec.get("train", {})) - known
    if unknown:
        raise InputContractError(f"{args.config}: unknown train settings {sorted(unknown)}; known: {sorted(known)}")
    config = TrainConfig(**spec.get("train", {}))
    if not Path(config.out_dir).is_absolute():
        config.out_dir = str(base / config.out_dir)
    train_pairs, val_pairs = read_pairs(base / spec["pairs"])
    tokenizer = load_tokenizer(spec.get("tokenizer", "bpe"))
    sampler = load_factory(spec["text_sampler"]) if spec.get("text_sampler") else None

    sinks = [report or _stdout_report]
    if spec.get("events"):
        events_path = base / spec["events"]

        def _append(event: dict) -> None:
            with open(events_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event, sort_keys=True) + "\n")
        sinks.append(_append)

    def emit(event: dict) -> None:
        for sink in sinks:
            sink(event)

    result = train_clip(config, train_pairs, val_pairs, tokenizer, text_sampler=sampler, report=emit)
    if int(os.environ.get("RANK", "0")) == 0:
        emit({"event": "done", "run_dir": str(result.run_dir), "best_checkpoint": str(result.best_checkpoint),
              "best_epoch": result.best_epoch, "best_mcmrr": result.best_mcmrr,
              "last_checkpoint": str(result.last_checkpoint), "epochs_completed": result.epochs_completed,
              "step": result.step})
    return 0


if __name__ == "__main__":
    sys.exit(main())
