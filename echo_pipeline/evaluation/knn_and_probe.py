"""The trained model's embeddings scored two more ways beside zero-shot: kNN over training reports, linear probe.

Both give rows of `eval_classification` / `eval_regression` for the same test clips, with the same bootstrap
(studies resampled, the same seed), told apart by ``method``: ``knn_reports`` (`knn_reports`: labels of the
k nearest training reports in the variant's `report_index`, no training beyond CLIP's) and ``linear_probe``
(`linear_probe`: a linear model fitted on the training split's frozen clip embeddings, the supervised
reference). Their ``model_kind`` is
``trained``: they read the trained model's stored embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from echo_pipeline import model_variants
from echo_pipeline.errors import EvaluationError
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.cohort import EvalCohort
from echo_pipeline.evaluation.knn_reports import (Neighbours, describe, nearest_reports, open_report_index,
                                                  weighted_label)
from echo_pipeline.evaluation.linear_probe import probe_binary, probe_regression
from echo_pipeline.evaluation.model_embeddings import stored_split_clips
from echo_pipeline.evaluation.prompts import PromptsFile, binary_truths, regression_truths
from echo_pipeline.evaluation.suite import ModelResult
from echo_pipeline.search.index import LoadedIndex
from echo_pipeline.storage import DataRoot

KNN = "knn_reports"
PROBE = "linear_probe"


@dataclass(frozen=True)
class LabelledVectors:
    """Unit vectors with the labels of their (study) report, row-aligned: ``ids``, ``vectors`` (N, D), ``labels``."""

    ids: list[str]
    vectors: np.ndarray
    labels: pd.DataFrame


@dataclass(frozen=True)
class TrainingReports:
    """The training split's reports that the variant's report index holds: ``ids`` row-aligned with their
    ``labels``, and the ``index`` the neighbours are searched in (restricted to ``ids``)."""

    ids: list[str]
    labels: pd.DataFrame
    index: LoadedIndex

    def nearest(self, clip_vectors: np.ndarray, k: int) -> Neighbours:
        """Each clip's ``k`` nearest training reports (positions in ``ids``), best first."""
        return nearest_reports(self.index, self.ids, clip_vectors, k)


def training_reports(data_root: DataRoot, record: model_variants.ModelRecord, train_reports: pd.DataFrame
                     ) -> TrainingReports:
    """The training split's reports in ``record``'s `report_index`, with their labels (EvaluationError when the
    index is missing or stale: it names the asset to materialise)."""
    index = open_report_index(data_root, record)
    kept = train_reports[train_reports["report_id"].isin(set(index.ids))].reset_index(drop=True)
    return TrainingReports(kept["report_id"].tolist(), kept.drop(columns=["report_id"]), index)


def split_clip_vectors(data_root: DataRoot, record: model_variants.ModelRecord, con, split: str) -> LabelledVectors:
    """One split's clips that the trained model embedded, each with its study report's labels."""
    clips, labels, vectors = stored_split_clips(data_root, record, con, split)
    return LabelledVectors(clips["sop_instance_uid"].tolist(), vectors, labels)


def label_values(labels: pd.DataFrame, prompts: PromptsFile) -> dict[str, np.ndarray]:
    """task → one float per row: the value (regression) or 1.0 / 0.0 (binary); NaN where not stated."""
    out = {}
    for truths in (binary_truths(labels, prompts), regression_truths(labels, prompts)):
        for task, t in truths.items():
            values = np.full(len(labels), np.nan)
            values[t.rows] = t.truth
            out[task] = values
    return out


def knn_predictions(clip_vectors: np.ndarray, reports: TrainingReports, prompts: PromptsFile, k: int
                    ) -> tuple[dict[str, np.ndarray], Neighbours]:
    """task → per-clip kNN prediction (NaN where no neighbour states the label), and the neighbours."""
    neighbours = reports.nearest(clip_vectors, k)
    return {task: weighted_label(neighbours, values)
            for task, values in label_values(reports.labels, prompts).items()}, neighbours


def probe_predictions(train: LabelledVectors, clip_vectors: np.ndarray, prompts: PromptsFile) -> dict[str, np.ndarray]:
    """task → per-clip linear-probe prediction, for the tasks the training clips can fit."""
    out = {}
    for task, values in label_values(train.labels, prompts).items():
        known = np.isfinite(values)
        fit = probe_regression if task in prompts.regression_tasks else probe_binary
        pred = fit(train.vectors[known], values[known], clip_vectors)
        if pred is not None:
            out[task] = pred
    return out


def method_rows(method: str, predictions: dict[str, np.ndarray], cohort: EvalCohort, prompts: PromptsFile,
                lineage: T.Lineage, boot: T.Bootstrap, definition: str) -> ModelResult:
    """eval_classification / eval_regression rows of one method's per-clip predictions on ``cohort``."""
    result = ModelResult()
    studies = cohort.clips["study_instance_uid"].to_numpy(dtype=object)
    fields = dict(prompt_strategy=method, method=method, is_primary=True, n_prompts=0,
                  prompts_version=prompts.version, prompts_sha256=prompts.sha256)
    for task, t in binary_truths(cohort.labels, prompts).items():
        if task not in predictions:
            continue
        score = predictions[task][t.rows]
        scored = np.isfinite(score)
        result.rows["eval_classification"] += T.classification_rows(
            t.truth[scored], score[scored], studies[t.rows][scored], lineage, boot, task=task,
            label=prompts.binary_tasks[task].label, score_definition=definition, **fields)
    for task, t in regression_truths(cohort.labels, prompts).items():
        if task not in predictions:
            continue
        pred = predictions[task][t.rows]
        scored = np.isfinite(pred)
        spec = prompts.regression_tasks[task]
        result.rows["eval_regression"] += T.regression_rows(
            t.truth[scored], pred[scored], studies[t.rows][scored], lineage, boot, spec.below_thresholds,
            task=task, label=spec.label, method_definition=definition, **fields)
        result.predictions[task] = (t.truth[scored], pred[scored])
    return result


def knn_and_probe_results(data_root: DataRoot, record: model_variants.ModelRecord, con, cohort: EvalCohort,
                          clip_vectors: np.ndarray, prompts: PromptsFile, lineage: T.Lineage, boot: T.Bootstrap,
                          *, k: int, notes: list[str]) -> dict[str, ModelResult]:
    """method → rows of the kNN-report predictions and of the linear probe for the test clips of ``cohort``
    (``clip_vectors`` row-aligned with ``cohort.clips``). A method without training data is left out, with a
    line in ``notes``."""
    reports = training_reports(data_root, record, cohort.train_reports)
    if not reports.ids:
        notes.append(f"no training report is in report_index[{record.variant}]: no knn_reports rows")
        knn = {}
    else:
        knn, _ = knn_predictions(clip_vectors, reports, prompts, k)
    try:
        probe = probe_predictions(split_clip_vectors(data_root, record, con, "train"), clip_vectors, prompts)
    except EvaluationError as error:
        notes.append(f"no linear_probe rows: {error}")
        probe = {}
    knn_text = (f"similarity-weighted mean (regression) or positive-vote share (binary) of the labels of the "
                f"{min(k, len(reports.ids))} training reports nearest the clip embedding in the report index "
                f"({describe(reports.index)})")
    probe_text = "linear model (logistic / ridge regression) fitted on the training split's clip embeddings"
    return {KNN: method_rows(KNN, knn, cohort, prompts, lineage, boot, knn_text),
            PROBE: method_rows(PROBE, probe, cohort, prompts, lineage, boot, probe_text)}
