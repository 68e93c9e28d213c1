"""The view classifier a data root uses: trained on the configured view labels, or a saved one installed.

`provide_classifier` is the whole `view_classifier` step without Dagster: it picks the source from the
settings, trains (or installs), saves the classifier under ``directory/<classifier_id>/``, points
``directory``'s current-classifier file at it and returns what the step reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa

from echo_pipeline.errors import InputContractError
from echo_pipeline.source_paths import SourcePaths
from echo_pipeline.views.checkpoint import install_classifier, load_classifier, save_classifier, set_current
from echo_pipeline.views.labels import read_view_labels
from echo_pipeline.views.model import ModelSpec, torch_threads
from echo_pipeline.views.train import TrainConfig, load_labelled_clips, train_classifier, training_clips_table


@dataclass(frozen=True)
class ProvidedClassifier:
    """The classifier now current, and (when trained here) its `view_training_clips` rows and figures."""

    card_path: Path
    card: dict
    source: str | None = None  # "saved classifier <path>" when installed rather than trained
    training_clips: pa.Table | None = None
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)  # labels / labelled clips found / skipped (load_labelled_clips)


def provide_classifier(directory: Path, *, labels_path: Path | None, saved_card: Path | None,
                       read_instances: Callable[[], pa.Table], paths: SourcePaths, spec: ModelSpec,
                       train_config: TrainConfig, threads: int | None, run_id: str, code_version: str,
                       progress: Callable[[str], None] | None = None) -> ProvidedClassifier:
    """Train a classifier on ``labels_path`` (the instances read only then), else install ``saved_card``."""
    if labels_path is None:
        if saved_card is None:
            raise InputContractError(
                "view_classifier: no view labels and no saved classifier are configured; provide either labels to train "
                "one (--view-labels / ECHO_PIPELINE_VIEW_LABELS: CSV or Parquet with sop_instance_uid, view) or a saved "
                "classifier (ECHO_PIPELINE_VIEW_CLASSIFIER: the card.json of a classifier from an earlier run, "
                "DATA_ROOT/arrays/view_classifier/<classifier_id>/card.json)"
            )
        card_path = install_classifier(saved_card, directory)
        set_current(directory, card_path)
        return ProvidedClassifier(card_path, load_classifier(card_path).card, source=f"saved classifier {saved_card}")

    labels = read_view_labels(labels_path)
    clips, counts = load_labelled_clips(read_instances(), labels, paths, spec, progress=progress)
    started = time.perf_counter()
    with torch_threads(threads):
        result = train_classifier(clips, spec, train_config, progress=progress)
    seconds = time.perf_counter() - started
    card_path = save_classifier(directory, result.model, spec, {
        **result.card, "labels_file": Path(labels_path).name, "code_version": code_version})
    set_current(directory, card_path)
    card = load_classifier(card_path).card
    table = training_clips_table(clips, result, card["classifier_id"], run_id=run_id, code_version=code_version)
    return ProvidedClassifier(card_path, card, training_clips=table, seconds=seconds, counts=counts)
