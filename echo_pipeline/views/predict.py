"""Predict every clip's view and colour mode: the `view_predictions` rows of one shard.

Cost per clip: a header read, ``frames_per_clip`` frames decoded at reduced scale, one colour test on those
small frames, and a share of one batched forward pass (clips are scored ``batch_clips`` at a time with
torch using every core). Rows of unchanged files scored by the same classifier and code version are reused.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa

from echo_pipeline.errors import CheckpointError, DicomDecodeError
from echo_pipeline.schemas import VIEW_CLASSES, VIEW_PREDICTIONS
from echo_pipeline.source_paths import SourcePaths, redact
from echo_pipeline.views.checkpoint import LoadedClassifier
from echo_pipeline.views.frames import ClipSample, SamplingSpec, load_clip
from echo_pipeline.views.model import VIEWS, clip_probabilities, torch_threads

Progress = Callable[[int, int], None]
_PROGRESS_REPORTS = 20


def sampling_for(classifier: LoadedClassifier) -> SamplingSpec:
    """The frame sampling the classifier was trained with."""
    return SamplingSpec(frames=classifier.spec.frames_per_clip, size=classifier.spec.input_size)


def predict_views(
    classifier: LoadedClassifier,
    instances: pa.Table,
    paths: SourcePaths,
    *,
    run_id: str,
    code_version: str,
    previous: pa.Table | None = None,
    batch_clips: int = 64,
    threads: int | None = None,
    progress: Progress | None = None,
) -> tuple[pa.Table, int]:
    """(`view_predictions` rows for every row of ``instances``, sorted by UID; number of clips newly scored).

    ``instances`` needs sop_instance_uid, file_sha256, relative_path (pseudonymised; ``paths`` finds the file)
    and shard. A clip
    that cannot be decoded gets a row with null view and probabilities and the reason in ``error``.
    """
    if sorted(classifier.spec.classes) != sorted(VIEWS):
        raise CheckpointError(f"{classifier.card_path}: classes {list(classifier.spec.classes)} differ from the "
                              f"pipeline's {list(VIEWS)}; retrain the classifier with this version")
    columns = [classifier.spec.classes.index(view) for view in VIEWS]  # network outputs → p_<class> columns
    reusable = _reusable(previous, classifier.classifier_id, code_version)
    lineage = {"classifier_id": classifier.classifier_id, "run_id": run_id, "code_version": code_version}
    sampling = sampling_for(classifier)
    rows: list[dict] = []
    pending: list[tuple[dict, ClipSample]] = []
    todo = [r for r in instances.to_pylist() if (r["sop_instance_uid"], r["file_sha256"]) not in reusable]
    rows += [reusable[(r["sop_instance_uid"], r["file_sha256"])] for r in instances.to_pylist()
             if (r["sop_instance_uid"], r["file_sha256"]) in reusable]

    def flush() -> None:
        if not pending:
            return
        probs = clip_probabilities(classifier.model, np.stack([s.pixels for _, s in pending]))[:, columns]
        for (instance, sample), p in zip(pending, probs):
            rows.append({**_ids(instance), "view": VIEWS[int(p.argmax())],
                         **{f"p_{name}": float(v) for name, v in zip(VIEW_CLASSES, p)},
                         "is_colour": sample.is_colour, "colour_fraction": sample.colour_fraction,
                         "frames_sampled": len(sample.frame_indices), "error": None, **lineage})
        pending.clear()

    with torch_threads(threads):
        for done, instance in enumerate(todo, start=1):
            source = paths.locate(instance["relative_path"])
            try:
                pending.append((instance, load_clip(source, sampling)))
            except (DicomDecodeError, IndexError, ValueError) as exc:
                error = redact(f"{type(exc).__name__}: {exc}", source, instance["relative_path"])
                rows.append({**_ids(instance), "error": error, **lineage})
            if len(pending) >= batch_clips:
                flush()
            if progress and (done == len(todo) or done % max(1, len(todo) // _PROGRESS_REPORTS) == 0):
                progress(done, len(todo))
        flush()
    rows.sort(key=lambda r: r["sop_instance_uid"])
    return pa.Table.from_pylist(rows, schema=VIEW_PREDICTIONS), len(todo)


def _ids(instance: dict) -> dict:
    return {key: instance[key] for key in ("sop_instance_uid", "file_sha256", "shard")}


def _reusable(previous: pa.Table | None, classifier_id: str, code_version: str) -> dict[tuple[str, str], dict]:
    """Previous successful rows made by the same classifier and code version, by (UID, file sha256)."""
    if previous is None:
        return {}
    return {
        (row["sop_instance_uid"], row["file_sha256"]): row
        for row in previous.to_pylist()
        if row.get("classifier_id") == classifier_id and row.get("code_version") == code_version and row.get("error") is None
    }
