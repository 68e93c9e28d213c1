"""Train the view classifier on labelled clips, split by patient into train and validation.

Training and validation score whole clips as prediction does: the softmax of a clip's frames, averaged,
against the clip's label. Deterministic per seed: weights are initialised
and batches drawn from seeded generators (the caller's global RNG state is left untouched), augmentation
uses a seeded numpy Generator, and torch runs with deterministic algorithms. Identical results assume the
same torch build and thread count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import timm
import torch
from torch import nn

from echo_pipeline.errors import DicomDecodeError, InputContractError
from echo_pipeline.lr_schedule import lr_at, warmup_length
from echo_pipeline.schemas import VIEW_TRAINING_CLIPS
from echo_pipeline.source_paths import SourcePaths
from echo_pipeline.views import metrics
from echo_pipeline.views.frames import SamplingSpec, load_clip
from echo_pipeline.views.model import PIXEL_MEAN, PIXEL_STD, ModelSpec, build_model, clip_probabilities, to_input

Progress = Callable[[str], None]
_BLACK = -PIXEL_MEAN / PIXEL_STD  # a black pixel after to_input
WARMUP_SHARE = 0.25  # the learning rate warms up over the first quarter of the steps


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults reach ≥ 98 % held-out accuracy on the synthetic cohort (docs/views.md)."""

    seed: int = 0
    epochs: int = 16
    frames_per_step: int = 3  # random sampled frames of a clip scored together each time it is trained on
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    validation_fraction: float = 0.2  # share of labelled patients held out (by a seeded hash of patient_key)
    # Small geometric jitter only: the fan's apex is always top centre, and where structures sit relative to
    # the midline is what tells A4C (septum on it) from A2C (one ventricle on it). With shifts of ±8 %, A2C
    # clips with a large pericardial effusion passed for A4C more often (docs/views.md).
    shift_fraction: float = 0.02  # random translation, as a share of the input size
    zoom: float = 0.1  # random scale in [1 - zoom, 1 + zoom]: hearts and depth settings vary in size
    class_weight_power: float = 0.5  # loss weight of a class = frequency ** -power (0: unweighted, 1: balanced)
    flip: bool = True  # random left-right flips: sites mirror apical views (LV left or right); the view is the same


@dataclass(frozen=True)
class LabelledClips:
    """Decoded labelled clips: ids, patient, label index into the spec's classes, and sampled frames."""

    sop_instance_uids: list[str]
    file_sha256: list[str]
    patient_keys: list[str]  # the clip's own UID stands in when the patient is unknown
    labels: np.ndarray  # (C,) int64
    pixels: np.ndarray  # (C, F, S, S, 3) uint8


@dataclass
class TrainingResult:
    model: nn.Module
    spec: ModelSpec
    card: dict  # training facts for the classifier card (checkpoint.save_classifier adds the identity)
    is_validation: np.ndarray  # (C,) bool, per clip of the LabelledClips
    validation_predicted: np.ndarray  # (C,) int64 predicted class of validation clips, -1 for training clips
    validation_probability: np.ndarray  # (C,) float64 probability of the predicted class, NaN for training clips


def load_labelled_clips(instances: pa.Table, labels: pa.Table, paths: SourcePaths, spec: ModelSpec,
                        progress: Progress | None = None) -> tuple[LabelledClips, dict[str, int]]:
    """Decode the labelled clips found in ``instances`` (dicom_instances rows); returns them with counts:
    labels, labelled clips found among the instances, and those skipped because they could not be decoded."""
    view_of = dict(zip(labels.column("sop_instance_uid").to_pylist(), labels.column("view").to_pylist()))
    sampling = SamplingSpec(frames=spec.frames_per_clip, size=spec.input_size)
    kept: list[dict] = []
    pixels: list[np.ndarray] = []
    undecodable = 0
    matched = [row for row in instances.to_pylist() if row["sop_instance_uid"] in view_of]
    matched.sort(key=lambda row: row["sop_instance_uid"])
    for row in matched:
        try:
            pixels.append(load_clip(paths.locate(row["relative_path"]), sampling).pixels)
            kept.append(row)
        except (DicomDecodeError, IndexError, ValueError):
            undecodable += 1
    if progress:
        progress(f"decoded {len(kept)} labelled clips ({undecodable} undecodable, "
                 f"{len(view_of) - len(matched)} labels name no ingested clip)")
    clips = LabelledClips(
        sop_instance_uids=[r["sop_instance_uid"] for r in kept],
        file_sha256=[r["file_sha256"] for r in kept],
        patient_keys=[r.get("patient_key") or r["sop_instance_uid"] for r in kept],
        labels=np.array([spec.classes.index(view_of[r["sop_instance_uid"]]) for r in kept], dtype=np.int64),
        pixels=np.stack(pixels) if pixels else np.zeros((0, spec.frames_per_clip, spec.input_size, spec.input_size, 3),
                                                        np.uint8),
    )
    return clips, {"labels": len(view_of), "labelled_clips_found": len(matched), "undecodable": undecodable}


def training_clips_table(clips: LabelledClips, result: "TrainingResult", classifier_id: str, *, run_id: str,
                         code_version: str) -> pa.Table:
    """`view_training_clips` rows: which clips trained or validated the classifier, and validation predictions."""
    classes = result.spec.classes
    rows = []
    for i, uid in enumerate(clips.sop_instance_uids):
        predicted = int(result.validation_predicted[i])
        rows.append({
            "sop_instance_uid": uid, "file_sha256": clips.file_sha256[i],
            "patient_key": None if clips.patient_keys[i] == uid else clips.patient_keys[i],
            "label": classes[int(clips.labels[i])], "split": "validation" if result.is_validation[i] else "train",
            "predicted_view": classes[predicted] if predicted >= 0 else None,
            "predicted_probability": None if predicted < 0 else float(result.validation_probability[i]),
            "classifier_id": classifier_id, "run_id": run_id, "code_version": code_version,
        })
    return pa.Table.from_pylist(rows, schema=VIEW_TRAINING_CLIPS)


def validation_patients(patient_keys: Sequence[str], fraction: float, seed: int) -> set[str]:
    """Patients held out for validation: those whose seeded hash falls below ``fraction``.

    A patient's assignment depends only on (seed, patient_key), so labelling more clips or adding patients
    never moves a patient between train and validation.
    """
    def position(key: str) -> float:
        return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2.0**64

    return {key for key in set(patient_keys) if position(key) < fraction}


def training_data_hash(clips: LabelledClips, is_validation: np.ndarray, spec: ModelSpec, config: TrainConfig) -> str:
    """sha256 over what determines the weights: every clip's (UID, file sha256, label, split), spec and config."""
    digest = hashlib.sha256(json.dumps({"spec": spec.to_dict(), "config": asdict(config)}, sort_keys=True).encode())
    rows = zip(clips.sop_instance_uids, clips.file_sha256, clips.labels.tolist(), is_validation.tolist())
    for uid, sha, label, val in sorted(rows):
        digest.update(f"{uid}|{sha}|{label}|{int(val)}\n".encode())
    return digest.hexdigest()


def train_classifier(clips: LabelledClips, spec: ModelSpec, config: TrainConfig = TrainConfig(),
                     progress: Progress | None = None) -> TrainingResult:
    """Train a fresh network on the training patients' clips and score the validation patients' clips."""
    held_out = validation_patients(clips.patient_keys, config.validation_fraction, config.seed)
    is_validation = np.array([key in held_out for key in clips.patient_keys], dtype=bool)
    train = np.flatnonzero(~is_validation)
    if len(train) == 0 or len(set(clips.labels[train].tolist())) < 2:
        raise InputContractError(
            f"view_labels: {len(train)} labelled training clip(s) covering {len(set(clips.labels[train].tolist()))} view(s) "
            "after holding out validation patients; label clips of more patients, with at least two views"
        )
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            model = build_model(spec)
            _fit(model, clips.pixels[train], clips.labels[train], config, progress)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    model.eval()

    predicted = np.full(len(clips.labels), -1, dtype=np.int64)
    probability = np.full(len(clips.labels), np.nan)
    validation = np.flatnonzero(is_validation)
    if len(validation):
        probs = clip_probabilities(model, clips.pixels[validation])
        predicted[validation], probability[validation] = probs.argmax(axis=1), probs.max(axis=1)
    matrix = metrics.confusion_matrix(clips.labels[validation], predicted[validation], len(spec.classes))
    val_patients = {clips.patient_keys[i] for i in validation}
    card = {
        "training": {
            "data_hash": training_data_hash(clips, is_validation, spec, config),
            "config": asdict(config),
            "train_clips": int(len(train)),
            "validation_clips": int(len(validation)),
            "train_patients": len({clips.patient_keys[i] for i in train}),
            "validation_patients": len(val_patients),
            "train_clips_per_view": {spec.classes[k]: int(v)
                                     for k, v in zip(*np.unique(clips.labels[train], return_counts=True))},
            "torch_version": torch.__version__,
            "timm_version": timm.__version__,
        },
        "validation": metrics.summary(matrix, spec.classes),
    }
    return TrainingResult(model, spec, card, is_validation, predicted, probability)


def _fit(model: nn.Module, pixels: np.ndarray, labels: np.ndarray, config: TrainConfig, progress: Progress | None) -> None:
    """AdamW, learning rate warmed up then cosine-decayed. Each step scores ``frames_per_step`` random sampled
    frames of each clip in the batch and applies the loss to their mean probability, as prediction does: a
    colour-Doppler clip (label OTHER) whose flow shows in only some frames is not taught that its grey frames
    are OTHER. Classes are weighted by frequency ** -class_weight_power so rare views are not ignored."""
    clips, frames_per_clip = pixels.shape[:2]
    per_clip = min(config.frames_per_step, frames_per_clip)
    clips_per_batch = max(2, config.batch_size // per_clip)  # batch norm needs two samples
    rng = np.random.default_rng(config.seed)
    counts = np.bincount(labels, minlength=model.num_classes).astype(np.float64)
    weights = np.where(counts > 0, np.maximum(counts, 1) ** -config.class_weight_power, 0.0)
    weights *= (counts > 0).sum() / weights.sum()
    loss_fn = nn.NLLLoss(weight=torch.as_tensor(weights, dtype=torch.float32))
    steps_per_epoch = -(-clips // clips_per_batch)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total_steps = config.epochs * steps_per_epoch
    warmup = warmup_length(total_steps, None, WARMUP_SHARE)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_at(step, base_lr=1.0, warmup_steps=warmup, total_steps=total_steps))
    targets = torch.as_tensor(labels)
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(clips)
        chosen = np.argsort(rng.random((clips, frames_per_clip)), axis=1)[:, :per_clip]
        total = 0.0
        for start in range(0, clips, clips_per_batch):
            batch = order[start : start + clips_per_batch]
            if len(batch) * per_clip < 2:
                continue
            inputs = _augment(to_input(pixels[batch[:, None], chosen[batch]].reshape(-1, *pixels.shape[2:])), rng, config)
            probs = torch.softmax(model(inputs), dim=1).reshape(len(batch), per_clip, -1).mean(dim=1)
            loss = loss_fn(torch.log(probs.clamp_min(1e-8)), targets[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
        if progress:
            progress(f"view classifier epoch {epoch + 1}/{config.epochs}: mean loss {total / clips:.4f}")


def _augment(inputs: torch.Tensor, rng: np.random.Generator, config: TrainConfig) -> torch.Tensor:
    """Random zoom and translation (black fill, like the background), left-right flip, and per-channel gain
    (grey-map tints, brightness), drawn per image from ``rng``."""
    n = inputs.shape[0]
    scale = rng.uniform(1 - config.zoom, 1 + config.zoom, n)
    shift = rng.uniform(-2 * config.shift_fraction, 2 * config.shift_fraction, (n, 2))  # grid units span 2
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0) if config.flip else np.ones(n)
    theta = np.zeros((n, 2, 3))
    theta[:, 0, 0], theta[:, 1, 1] = mirror / scale, 1 / scale
    theta[:, :, 2] = shift
    grid = nn.functional.affine_grid(torch.as_tensor(theta, dtype=inputs.dtype), list(inputs.shape), align_corners=False)
    moved = nn.functional.grid_sample(inputs - _BLACK, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = rng.uniform(0.75, 1.3, size=(n, 1, 1, 1)) * rng.uniform(0.92, 1.08, size=(n, 3, 1, 1))
    return moved * torch.as_tensor(gain, dtype=inputs.dtype) + _BLACK
