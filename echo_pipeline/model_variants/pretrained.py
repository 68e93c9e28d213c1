"""Published (pretrained) models as model variants: `--pretrained NAME=DIR[,vocabulary=FILE][,preprocessing=P]`.

A pretrained variant is a local open_clip hub-layout directory (`open_clip_config.json` + weights) that the
pipeline embeds, indexes, searches and evaluates like a trained variant, without training: `clip_model[NAME]`
records it (`pretrained_record`) instead of training. Its tokenizer is CLIP BPE, or the published template
vocabulary when `vocabulary=FILE` names one (tokenizers/published_template.py). Its identity is the sha256 of
a manifest of every file in the directory, so a changed file is a different model.

This module only parses and hashes (no torch); loading the directory to refuse a broken one before any stage
runs is `echo_pipeline.training.pretrained.check_loads`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from echo_pipeline.errors import InputContractError
from echo_pipeline.model_variants.layout import MODEL_VARIANTS, PRETRAINED_NAME
from echo_pipeline.model_variants.record import ModelRecord
from echo_pipeline.storage import file_sha256

#: Named frame preprocessing (`embeddings.preprocessing`): the model's own resize, or the published crop.
PREPROCESSING = ("model", "published_crop")
SPEC_HELP = "NAME=DIR[,vocabulary=FILE][,preprocessing=model|published_crop]"


@dataclass(frozen=True)
class PretrainedSource:
    """One registered pretrained model."""

    name: str
    directory: Path
    vocabulary: Path | None = None  # a published template vocabulary file; None = CLIP BPE
    preprocessing: str = "model"

    @property
    def tokenizer(self) -> str:
        return "bpe" if self.vocabulary is None else "published_template"


def parse_source(spec: str, where: str = "--pretrained") -> PretrainedSource:
    """``NAME=DIR[,vocabulary=FILE][,preprocessing=P]`` → PretrainedSource (InputContractError otherwise)."""
    name, sep, rest = spec.strip().partition("=")
    directory, *options = rest.split(",")
    if not sep or not directory:
        raise InputContractError(f"{where} {spec!r}: expected {SPEC_HELP}")
    if not PRETRAINED_NAME.fullmatch(name) or name in MODEL_VARIANTS:
        raise InputContractError(f"{where} {spec!r}: name {name!r} must be lower-case letters, digits, '.', '_' "
                                 f"or '-' (at most 40) and not one of the trained variants {MODEL_VARIANTS}")
    values = {}
    for option in options:
        key, _, value = option.partition("=")
        if key not in ("vocabulary", "preprocessing") or not value:
            raise InputContractError(f"{where} {spec!r}: unknown option {option!r}; expected {SPEC_HELP}")
        values[key] = value
    preprocessing = values.get("preprocessing", "model")
    if preprocessing not in PREPROCESSING:
        raise InputContractError(f"{where} {spec!r}: preprocessing {preprocessing!r} is not one of {PREPROCESSING}")
    vocabulary = Path(values["vocabulary"]) if "vocabulary" in values else None
    return PretrainedSource(name, Path(directory), vocabulary, preprocessing)


def parse_sources(specs, where: str = "--pretrained") -> dict[str, PretrainedSource]:
    """Every spec parsed, by name; a name given twice is refused."""
    out: dict[str, PretrainedSource] = {}
    for spec in specs:
        source = parse_source(spec, where)
        if source.name in out:
            raise InputContractError(f"{where}: the name {source.name!r} is given twice")
        out[source.name] = source
    return out


def split_env(text: str) -> tuple[str, ...]:
    """An environment variable's ``A;B;C`` list (empty items dropped)."""
    return tuple(part.strip() for part in text.split(";") if part.strip())


def directory_manifest(directory: Path) -> dict[str, str]:
    """sha256 of every regular file under ``directory`` (relative POSIX path → hex), hidden files excluded."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(directory).parts))
    return {p.relative_to(directory).as_posix(): file_sha256(p) for p in files}


def manifest_sha256(manifest: dict[str, str]) -> str:
    """One hash for a whole directory: sha256 of its manifest as sorted JSON."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def pretrained_record(source: PretrainedSource, *, run_id: str, code_version: str) -> ModelRecord:
    """The record `clip_model[NAME]` writes for a pretrained variant: no training, the directory as is."""
    manifest = directory_manifest(source.directory)
    digest = manifest_sha256(manifest)
    return ModelRecord(
        variant=source.name, model_id=f"pretrained-{source.name}-{digest[:12]}", preset="pretrained",
        tokenizer=source.tokenizer, checkpoint_dir=str(Path(source.directory).resolve()), checkpoint_sha256=digest,
        vocabulary_path=str(source.vocabulary) if source.vocabulary else None, best_epoch=0,
        best_val_mcmrr=float("nan"), epochs_completed=0, train_pairs=0, run_id=run_id, code_version=code_version,
        source="pretrained", preprocessing=source.preprocessing, manifest=manifest,
    )
