"""One model evaluated on a cohort: every eval_* row, from embeddings already computed.

The inputs are arrays, so the same code scores the trained model (stored embeddings), the random-init
reference (embedded on the fly) and constructed embeddings in tests. Clips with fewer than 20 embedded frames
are scored on their own frames only: frame arrays are zero past ``n_frames``, and a zero frame would otherwise
count as a similarity of 0 (classification) or as a frame whose candidates all tie (regression).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from echo_pipeline.errors import EvaluationError
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.cohort import EvalCohort, retrieval_sample, training_means
from echo_pipeline.evaluation.prompt_sets import EmbeddedPromptSet, PromptSet
from echo_pipeline.evaluation.prompts import PromptsFile, binary_truths, regression_truths
from echo_pipeline.metrics.classification import zero_shot_scores
from echo_pipeline.metrics.patient_identification import pair_similarities, sample_pairs
from echo_pipeline.metrics.ranks import retrieval_ranks
from echo_pipeline.metrics.regression import predict_from_similarities, top_fraction_count

#: Clips scored per block (bounds the float64 copies of frame embeddings: 2,048 × 20 × 512 × 8 B ≈ 168 MB,
#: and the regression similarities: 2,048 × 20 × 101 × 8 B ≈ 33 MB).
CHUNK_CLIPS = 2048
DEFAULT_N_PAIRS = 100_000


@dataclass
class ModelEmbeddings:
    """One model's view of a cohort: rows aligned with ``cohort.clips`` and ``cohort.reports``.

    ``frames`` (N, F, D) L2-normalised, zero past ``n_frames``; ``clips`` (N, D) and ``reports`` (R, D)
    L2-normalised. ``prompts``: the model's embeddings of the prompt sets (`embed_prompt_sets`).
    """

    frames: np.ndarray
    n_frames: np.ndarray
    clips: np.ndarray
    reports: np.ndarray
    prompts: list[EmbeddedPromptSet]


@dataclass
class ModelResult:
    """Rows per eval table, plus what the plots need: ranks, primary scores and predictions per task."""

    rows: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in T.EVAL_TABLES})
    ranks: tuple[np.ndarray, np.ndarray] | None = None
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # task -> (truth, score)
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # task -> (truth, pred)


def per_frame_count(frames: np.ndarray, n_frames: np.ndarray, score: Callable[[np.ndarray], np.ndarray],
                    chunk: int = CHUNK_CLIPS) -> np.ndarray:
    """``score(frames[rows, :k])`` for the clips with k embedded frames, in blocks of ``chunk`` clips.

    Returns (N,) float64 in row order. Refuses clips without any embedded frame.
    """
    n_frames = np.asarray(n_frames)
    if n_frames.size and n_frames.min() < 1:
        raise EvaluationError(f"{int((n_frames < 1).sum())} clips have no embedded frame; drop them before scoring")
    out = np.empty(len(frames), dtype=np.float64)
    for k in np.unique(n_frames):
        rows = np.flatnonzero(n_frames == k)
        for start in range(0, rows.size, chunk):
            block = rows[start:start + chunk]
            out[block] = score(np.asarray(frames[block, :k], dtype=np.float64))
    return out


def _prompt_fields(s: PromptSet, prompts: PromptsFile) -> dict:
    return {"task": s.task, "label": s.label, "prompt_strategy": s.strategy, "is_primary": s.primary,
            "n_prompts": s.n_texts, "prompts_version": prompts.version, "prompts_sha256": prompts.sha256}


def _score_definition(s: PromptSet) -> str:
    texts = "validation reports carrying the label" if s.strategy == "sampled_reports" else "prompt sentences"
    return (f"cosine similarity averaged over {s.n_texts} {texts} and over frames 0, 2, ..., 38 "
            "(the first 20 at stride 2; fewer when the clip is shorter)")


def _regression_method(e: EmbeddedPromptSet) -> str:
    k = top_fraction_count(len(e.values))
    return (f"per frame, rank {len(e.values)} candidate values by prompt similarity; keep the top {k} (20 %); "
            "average each rank position over frames 0, 2, ..., 38; median")


def score_binary(frames, n_frames, prompt: EmbeddedPromptSet) -> np.ndarray:
    """Zero-shot score of every clip for one binary prompt set."""
    return per_frame_count(frames, n_frames, lambda x: zero_shot_scores(x, prompt.embeddings))


def predict_values(frames, n_frames, prompt: EmbeddedPromptSet) -> np.ndarray:
    """Zero-shot prediction of every clip for one regression prompt set (the paper's top-20 % median rule).

    The similarities are one 2-D matrix product per block (NumPy's stacked 3-D matmul is several times
    slower), then `predict_from_similarities` applies the rule.
    """
    p_t = np.ascontiguousarray(prompt.embeddings.T)

    def predict(x: np.ndarray) -> np.ndarray:
        sims = (x.reshape(-1, x.shape[-1]) @ p_t).reshape(x.shape[0], x.shape[1], -1)
        return predict_from_similarities(sims, prompt.values)

    return per_frame_count(frames, n_frames, predict)


def regression_task_rows(result: ModelResult, frames, n_frames, truths: dict[str, tuple[np.ndarray, np.ndarray]],
                         studies: np.ndarray, embedded: list[EmbeddedPromptSet], prompts: PromptsFile,
                         lineage: T.Lineage, boot: T.Bootstrap) -> None:
    """Regression rows for every regression prompt set whose label has a truth; ``truths[label]`` is
    (row positions, values). Adds to ``result``."""
    for e in embedded:
        s = e.prompts
        if s.kind != "regression" or s.label not in truths:
            continue
        rows, truth = truths[s.label]
        pred = predict_values(frames[rows], n_frames[rows], e)
        task = prompts.regression_tasks[s.task]
        result.rows["eval_regression"] += T.regression_rows(
            truth, pred, studies[rows], lineage, boot, task.below_thresholds,
            method=_regression_method(e), **_prompt_fields(s, prompts))
        if s.primary:
            result.predictions[s.task] = (truth, pred)


def evaluate_model(cohort: EvalCohort, emb: ModelEmbeddings, prompts: PromptsFile,
                   lineage: T.Lineage, boot: T.Bootstrap, *, sample_seed: int = 0,
                   n_pairs: int = DEFAULT_N_PAIRS) -> ModelResult:
    """Retrieval, classification, regression and patient-identification rows of one model on ``cohort``."""
    result = ModelResult()
    studies = cohort.clips["study_instance_uid"].to_numpy(dtype=object)

    sample = retrieval_sample(cohort, seed=sample_seed)
    if len(sample) >= 2:
        images = emb.clips[sample["clip_row"].to_numpy()]
        texts = emb.reports[sample["report_row"].to_numpy()]
        result.ranks = (retrieval_ranks(images, texts), retrieval_ranks(texts, images))
        result.rows["eval_retrieval"] = T.retrieval_rows(*result.ranks, lineage, boot)

    binary = binary_truths(cohort.labels, prompts)
    for e in emb.prompts:
        s = e.prompts
        if s.kind != "binary":
            continue
        truth = binary[s.task]
        scores = score_binary(emb.frames[truth.rows], emb.n_frames[truth.rows], e)
        result.rows["eval_classification"] += T.classification_rows(
            truth.truth, scores, studies[truth.rows], lineage, boot, score_definition=_score_definition(s),
            **_prompt_fields(s, prompts))
        if s.primary and 0 < truth.truth.sum() < truth.truth.size:  # kept for the ROC figure: both classes
            result.scores[s.task] = (truth.truth, scores)

    regression_task_rows(result, emb.frames, emb.n_frames, cohort_regression_truths(cohort, prompts), studies,
                         emb.prompts, prompts, lineage, boot)

    patients = cohort.clips["patient_key"]
    known = patients.notna().to_numpy()
    if known.sum() >= 2:
        keys = patients[known].to_numpy(dtype=object)
        pairs = sample_pairs(keys, cohort.clips["study_date"][known].to_numpy(dtype=object), n_pairs=n_pairs,
                             seed=boot.seed)
        sims = pair_similarities(emb.clips[known], pairs)
        result.rows["eval_patient_identification"] = T.patient_identification_rows(
            sims, pairs.pair_type, keys[pairs.first], lineage, boot, n_clips=int(known.sum()),
            n_patients=int(pd.unique(keys).size))
    return result


def training_mean_rows(train_means: dict[str, float], truths: dict[str, tuple[np.ndarray, np.ndarray]],
                       studies: np.ndarray, prompts: PromptsFile, lineage: T.Lineage, boot: T.Bootstrap
                       ) -> ModelResult:
    """Regression rows of the predict-the-training-mean baseline (one constant per label)."""
    result = ModelResult()
    for name, task in prompts.regression_tasks.items():
        mean = train_means.get(task.label, float("nan"))
        if task.label not in truths or not np.isfinite(mean):
            continue
        rows, truth = truths[task.label]
        pred = np.full(truth.size, mean)
        result.rows["eval_regression"] += T.regression_rows(
            truth, pred, studies[rows], lineage, boot, task.below_thresholds,
            task=name, label=task.label, prompt_strategy="training_mean", is_primary=True, n_prompts=0,
            method=f"every prediction = the training split's mean {task.label} ({mean:.2f})",
            prompts_version=prompts.version, prompts_sha256=prompts.sha256)
        result.predictions[name] = (truth, pred)
    return result


def cohort_regression_truths(cohort: EvalCohort, prompts: PromptsFile) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label → (clip rows, values) of the regression labels known in ``cohort``."""
    return {prompts.regression_tasks[name].label: (t.rows, t.truth)
            for name, t in regression_truths(cohort.labels, prompts).items()}


def cohort_training_means(cohort: EvalCohort, prompts: PromptsFile) -> dict[str, float]:
    return training_means(cohort, [task.label for task in prompts.regression_tasks.values()])
