"""One `clip_model` training run prepared without Dagster: its pairs, its folder, its config, and its record.

`plan_run` reads the training pairs (test-split clips never reach the trainer), hashes them with the settings
and the training version into a run key, and writes `pairs.parquet` and `config.json` under
`arrays/clip_model/<variant>/run-<key>/`: the same inputs find the same folder, so a re-run resumes (or finds
the run finished) and anything else trains afresh beside it. The trainer runs from `config.json` (Dagster
Pipes launches `echo_pipeline.training.pipes_entry`); `model_record` turns what it reports into the
`ModelRecord` that embeddings, indexes, evaluation and search read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from echo_pipeline import model_variants
from echo_pipeline.errors import TrainingDataError
from echo_pipeline.model_variants.pretrained import directory_manifest, manifest_sha256
from echo_pipeline.storage import DataRoot, atomic_path
from echo_pipeline.training import registry
from echo_pipeline.training.trainer import TRAINING_VERSION
from echo_pipeline.upstream import read_upstream

# One row per training pair: every masked A4C clip of the training and validation splits with its study's
# linked report. Test-split clips never reach the trainer.
PAIRS_SQL = """
    SELECT m.sop_instance_uid AS clip_id, m.clip_path AS npy_path, r.report_text AS text,
           coalesce(s.patient_key, s.study_instance_uid) AS group_id,
           CASE s.split WHEN 'validation' THEN 'val' ELSE s.split END AS split
    FROM masked_clips m
    JOIN dicom_instances d ON d.sop_instance_uid = m.sop_instance_uid
    JOIN report_links l ON l.study_instance_uid = d.study_instance_uid
    JOIN reports r ON r.report_id = l.report_id
    JOIN splits s ON s.study_instance_uid = d.study_instance_uid
    WHERE s.split IN ('train', 'validation')
    ORDER BY m.sop_instance_uid
"""
PAIRS_INPUTS = ("masked_clips", "dicom_instances", "report_links", "reports", "splits")
# Newest two epochs (resume falls back to the previous one when the latest is corrupt) plus the best:
# an echo-tiny epoch is 230 MB, an echoclip one 2.6 GB, so keeping every epoch would fill the disk.
KEEP_LAST = 2


@dataclass(frozen=True)
class RunPlan:
    """A prepared training run: where it lives and what it trains on."""

    variant: str
    preset: str
    run_dir: Path
    config_path: Path
    pairs: pa.Table  # clip_id, npy_path (relative to the data root), text, group_id, split ("train" | "val")
    vocabulary_path: Path | None  # the template vocabulary, for the template variant

    @property
    def train_pairs(self) -> int:
        return sum(split == "train" for split in self.pairs.column("split").to_pylist())

    @property
    def validation_pairs(self) -> int:
        return self.pairs.num_rows - self.train_pairs


def read_training_pairs(data_root: DataRoot) -> pa.Table:
    """Every train/validation masked clip with its study's linked report (PAIRS_SQL); fails when there is none."""
    pairs = read_upstream(data_root, PAIRS_SQL, PAIRS_INPUTS)
    if pairs.num_rows == 0:
        raise TrainingDataError("no training pairs: masked_clips, report_links and splits yield no train/validation "
                                "clip with a linked report; check those assets' metadata")
    return pairs


def tokenizer_spec(variant: str, vocabulary_path: Path) -> str | dict:
    """The config's tokenizer entry: "bpe", or the factory call that loads the learned template vocabulary."""
    if variant == "bpe":
        return "bpe"
    return {"factory": "echo_pipeline.tokenizers:make_tokenizer",
            "kwargs": {"kind": "template", "vocabulary_path": str(vocabulary_path)}}


def run_key(config: dict, pairs: pa.Table) -> str:
    """12 hex digits over the training version, the config and every pair: same inputs, same run folder."""
    return hashlib.sha256(json.dumps([TRAINING_VERSION, config, pairs.to_pylist()],
                                     sort_keys=True).encode()).hexdigest()[:12]


def plan_run(data_root: DataRoot, variant: str, *, model_preset: str, train_epochs: int | None,
             vocabulary_path: Path, init_from: Path | None = None) -> RunPlan:
    """Read the pairs, pick the run folder and write its `pairs.parquet` (absolute clip paths) and `config.json`.

    ``init_from``: a hub-layout directory training starts from; the sha256 of its file manifest enters the
    config and so the run key (other weights in the same folder are another run)."""
    pairs = read_training_pairs(data_root)
    preset = registry.preset_for(variant, model_preset)
    train = {"preset": preset, "seed": 0, "keep_last": KEEP_LAST}
    if train_epochs is not None:
        train["epochs"] = train_epochs
    config = {"train": train, "pairs": "pairs.parquet", "tokenizer": tokenizer_spec(variant, vocabulary_path),
              "events": "events.jsonl"}
    if init_from is not None:
        train["init_from"] = str(Path(init_from).resolve())
        config["init_from_sha256"] = manifest_sha256(directory_manifest(init_from))
    run_dir = model_variants.run_dir(data_root, variant, run_key(config, pairs))
    run_dir.mkdir(parents=True, exist_ok=True)
    config["train"]["out_dir"] = str(run_dir)
    absolute = [str(data_root.path / path) for path in pairs.column("npy_path").to_pylist()]
    with atomic_path(run_dir / "pairs.parquet") as tmp:
        pq.write_table(pairs.set_column(pairs.schema.get_field_index("npy_path"), "npy_path", [absolute]), tmp)
    config_path = run_dir / "config.json"
    with atomic_path(config_path) as tmp:
        tmp.write_text(json.dumps(config, indent=2))
    return RunPlan(variant, preset, run_dir, config_path, pairs,
                   vocabulary_path if variant == "template" else None)


def model_record(plan: RunPlan, reported: dict, *, run_id: str, code_version: str) -> model_variants.ModelRecord:
    """The ModelRecord of a finished run, from the metadata the trainer reported (best checkpoint, epochs)."""
    checkpoint_sha256 = reported["checkpoint_sha256"]
    return model_variants.ModelRecord(
        variant=plan.variant, model_id=f"{plan.preset}-{plan.variant}-{checkpoint_sha256[:12]}", preset=plan.preset,
        tokenizer=plan.variant, checkpoint_dir=str(reported["best_checkpoint"]), checkpoint_sha256=checkpoint_sha256,
        vocabulary_path=str(plan.vocabulary_path) if plan.vocabulary_path is not None else None,
        best_epoch=int(reported["best_epoch"]), best_val_mcmrr=float(reported["best_val_mcmrr"]),
        epochs_completed=int(reported["epochs_completed"]), train_pairs=plan.train_pairs,
        run_id=run_id, code_version=code_version,
    )
