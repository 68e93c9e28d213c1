"""Study-level evaluation: the cohort seen one study at a time, and the serial change between a patient's studies.

`study_level` turns a clip cohort and a model's clip embeddings into a cohort of studies whose single
"clip" is the study embedding (the normalised mean of its clips, the rule of `study_embeddings`), with the
study's report and labels; `suite.evaluate_model` then scores it unchanged and the rows carry
``level = "study"``. A study embedding has no frames, so zero-shot scores use it as a single frame.
`serial_change_rows` adds, at study level, the Spearman ρ of |reported LVEF difference| against study
similarity over pairs of one patient's studies (bootstrap by patient).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.cohort import EvalCohort
from echo_pipeline.evaluation.prompts import PromptsFile
from echo_pipeline.evaluation.suite import ModelEmbeddings, ModelResult, evaluate_model
from echo_pipeline.metrics.bootstrap import bootstrap_ci
from echo_pipeline.metrics.serial_change import same_patient_pairs, spearman_rho
from echo_pipeline.studies.embeddings import mean_by_study

STUDY = "study"
LVEF_LABEL = "lvef"


def study_level(cohort: EvalCohort, emb: ModelEmbeddings) -> tuple[EvalCohort, ModelEmbeddings]:
    """(one row per study, sorted by UID; its embeddings) from a clip cohort and its clip embeddings."""
    pooled = mean_by_study(emb.clips, cohort.clips["study_instance_uid"].tolist())
    first = (cohort.clips.assign(_row=np.arange(len(cohort.clips)))
             .drop_duplicates("study_instance_uid").set_index("study_instance_uid").loc[pooled.study_uids])
    clips = first.reset_index()[["study_instance_uid", "patient_key", "study_date", "report_id"]]
    clips.insert(0, "sop_instance_uid", clips["study_instance_uid"])  # a study stands for its one "clip"
    labels = cohort.labels.iloc[first["_row"].to_numpy()].reset_index(drop=True)
    vectors = pooled.vectors
    studies = ModelEmbeddings(vectors[:, None, :], np.ones(len(vectors), np.int32), vectors, emb.reports,
                              emb.prompts)
    return replace(cohort, clips=clips, labels=labels), studies


def serial_change(cohort: EvalCohort, emb: ModelEmbeddings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(|LVEF difference|, study similarity, patient) per pair of one patient's studies with a reported LVEF;
    ``cohort``/``emb`` at study level."""
    lvef = np.asarray(cohort.labels[LVEF_LABEL], dtype=np.float64) if LVEF_LABEL in cohort.labels else np.zeros(0)
    known = np.flatnonzero(np.isfinite(lvef))
    patients = cohort.clips["patient_key"].to_numpy(dtype=object)[known]
    first, second = same_patient_pairs(patients)
    a, b = known[first], known[second]
    similarity = np.einsum("ij,ij->i", emb.clips[a].astype(np.float64), emb.clips[b].astype(np.float64))
    return np.abs(lvef[a] - lvef[b]), similarity, patients[first]


def serial_change_rows(difference: np.ndarray, similarity: np.ndarray, patients: np.ndarray, lineage: T.Lineage,
                       boot: T.Bootstrap, *, n_clips: int, n_patients: int) -> list[dict]:
    """The eval_patient_identification row of Spearman ρ(|LVEF difference|, similarity), CI by patient."""
    if difference.size < 3:
        return [T._metric_row(lineage, boot, "spearman_lvef_difference_similarity", float("nan"), n=int(difference.size),
                              n_clips=n_clips, n_patients=n_patients)]
    r = bootstrap_ci(spearman_rho, difference, similarity, groups=patients, n_resamples=boot.n_resamples, seed=boot.seed)
    return [T._metric_row(lineage, boot, "spearman_lvef_difference_similarity", r.estimate, r.low, r.high,
                          n=int(difference.size), n_clips=n_clips, n_patients=n_patients)]


def add_study_level(result: ModelResult, cohort: EvalCohort, emb: ModelEmbeddings, prompts: PromptsFile,
                    lineage: T.Lineage, boot: T.Bootstrap, *, sample_seed: int, n_pairs: int
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """Add the study-level rows of every eval table (and the serial-change row) to ``result``; returns
    (|LVEF difference|, similarity, Spearman ρ) of the serial-change pairs for the scatter plot."""
    studies, study_emb = study_level(cohort, emb)
    lineage = lineage.but(level=STUDY)
    scored = evaluate_model(studies, study_emb, prompts, lineage, boot, sample_seed=sample_seed, n_pairs=n_pairs)
    difference, similarity, patients = serial_change(studies, study_emb)
    scored.rows["eval_patient_identification"] += serial_change_rows(
        difference, similarity, patients, lineage, boot, n_clips=len(studies.clips),
        n_patients=int(studies.clips["patient_key"].nunique()))
    for name, rows in scored.rows.items():
        result.rows[name] += rows
    return difference, similarity, spearman_rho(difference, similarity)
