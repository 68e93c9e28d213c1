"""`study_reports`: a preliminary read of every study, each number traceable to the files and model behind it.

Per study (its `study_embeddings` vector: the normalised mean of its A4C clip embeddings) and per task of the
prompts file:

- **zero-shot**: the evaluation's own scoring with the study vector as the one "frame" (`suite.score_binary`,
  `suite.predict_values`: mean cosine over the primary prompts; the top-20 % median rule over values);
- **kNN reports**: the labels of the ``k`` nearest training reports in the variant's `report_index`
  (`knn_reports`), the study's own reports left out (a training study would otherwise read its own report back);
- **calibrated probabilities** for binary tasks: Platt scaling (a one-feature logistic regression of the
  truth on the score) fitted per task and method on the **validation** split's studies; null when the
  validation studies hold one class only;
- **evidence**: the 3 nearest training reports (ids and cosine similarities), the same for every task row.

One row per (study, task); `model_id` + `study_instance_uid` join the `lineage` view, the evidence ids the
`reports` table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from echo_pipeline import catalog, model_variants
from echo_pipeline.errors import EvaluationError, InputContractError
from echo_pipeline.evaluation import suite
from echo_pipeline.evaluation.cohort import NEEDED_VIEWS, read_cohort
from echo_pipeline.evaluation.knn_and_probe import label_values, training_reports
from echo_pipeline.evaluation.knn_reports import DEFAULT_K, Neighbours, weighted_label
from echo_pipeline.evaluation.model_embeddings import ModelEncoder
from echo_pipeline.evaluation.prompt_sets import embed_prompt_sets, prompt_sets
from echo_pipeline.evaluation.prompts import DEFAULT_PROMPTS_PATH, PromptsFile, load_prompts
from echo_pipeline.schemas import REPORT_LABEL_NAMES, STUDY_REPORTS
from echo_pipeline.storage import DataRoot, rows_to_table
from echo_pipeline.studies import load_study_embeddings
from echo_pipeline.training import registry
from echo_pipeline.upstream import read_partition, read_upstream, require_tables

N_EVIDENCE = 3
#: Each study's split, its report's labels (the smallest report_id, as in the evaluation) and all its reports.
STUDIES_SQL = """
SELECT s.study_instance_uid, s.split, r.report_id, r.own_reports, {labels}
FROM splits AS s
LEFT JOIN (SELECT study_instance_uid, min(report_id) AS report_id, list(report_id ORDER BY report_id) AS own_reports
           FROM report_labels GROUP BY study_instance_uid) AS r USING (study_instance_uid)
LEFT JOIN report_labels AS l ON l.report_id = r.report_id
ORDER BY s.study_instance_uid
"""


def without_own_reports(neighbours: Neighbours, report_ids: list[str], own: list, k: int) -> Neighbours:
    """The first ``k`` neighbours of each row that are not one of that row's own reports (``own[i]``)."""
    index = np.zeros((len(own), k), np.int64)
    similarity = np.zeros((len(own), k), np.float32)
    for i, mine in enumerate(own):
        mine = set(mine) if mine is not None else set()
        keep = [j for j, r in enumerate(neighbours.index[i]) if report_ids[r] not in mine][:k]
        if len(keep) < k:
            raise EvaluationError(f"only {len(keep)} training reports besides the study's own: too few for k = {k}")
        index[i], similarity[i] = neighbours.index[i, keep], neighbours.similarity[i, keep]
    return Neighbours(index, similarity)


def platt(scores: np.ndarray, truth: np.ndarray):
    """A score → probability map fitted on (score, truth) pairs; None when the pairs hold one class only."""
    from sklearn.linear_model import LogisticRegression

    known = np.isfinite(scores) & np.isfinite(truth)
    y = truth[known] > 0.5
    if y.all() or not y.any():
        return None
    model = LogisticRegression(C=1e4).fit(scores[known, None], y)
    return lambda s: np.where(np.isfinite(s), model.predict_proba(np.nan_to_num(s)[:, None])[:, 1], np.nan)


@dataclass
class StudyReports:
    table: pa.Table


@dataclass
class StudyPredictions:
    """Per task: zero-shot and kNN predictions of every study (row-aligned with the studies frame)."""

    zero_shot: dict[str, np.ndarray]
    knn: dict[str, np.ndarray]
    evidence: Neighbours


def predict_studies(vectors: np.ndarray, encoder: ModelEncoder, prompts: PromptsFile, tokenizer_kind: str,
                    cohort, reports, own: list, k: int) -> StudyPredictions:
    sets = [s for s in prompt_sets(prompts, tokenizer_kind, cohort.prompt_reports) if s.primary]
    frames, n_frames = vectors[:, None, :], np.ones(len(vectors), np.int32)
    zero_shot = {}
    for e in embed_prompt_sets(sets, *encoder.encoders()):
        score = suite.score_binary if e.prompts.kind == "binary" else suite.predict_values
        zero_shot[e.prompts.task] = score(frames, n_frames, e)
    extra = max((len(o) for o in own if o is not None), default=0)  # room to drop a study's own reports
    wide = reports.nearest(vectors, k + extra)
    neighbours = without_own_reports(wide, reports.ids, own, min(k, wide.index.shape[1] - extra))
    knn = {task: weighted_label(neighbours, values) for task, values in label_values(reports.labels, prompts).items()}
    evidence = Neighbours(neighbours.index[:, :N_EVIDENCE], neighbours.similarity[:, :N_EVIDENCE])
    return StudyPredictions(zero_shot, knn, evidence)


def study_reports(data_root: DataRoot, record: model_variants.ModelRecord, *, run_id: str, code_version: str,
                  prompts_path=DEFAULT_PROMPTS_PATH, k: int = DEFAULT_K, device: str = "auto") -> StudyReports:
    """The `study_reports` partition of ``record``'s variant."""
    require_tables(data_root, NEEDED_VIEWS)
    prompts = load_prompts(prompts_path)
    rows, vectors = load_study_embeddings(data_root, record.variant, record.model_id)
    labels_sql = ", ".join(f"l.{name}" for name in REPORT_LABEL_NAMES)
    studies = read_upstream(data_root, STUDIES_SQL.format(labels=labels_sql), ["splits", "report_labels"]).to_pandas()
    studies = rows[["study_instance_uid", "n_clips"]].merge(studies, on="study_instance_uid", how="left")
    cohort = read_cohort(catalog.open_reader(data_root))
    reports = training_reports(data_root, record, cohort.train_reports)
    tokenizer = registry.load_tokenizer(record)
    encoder = ModelEncoder(registry.load_model(record), tokenizer, device=device)
    own = [list(o) if isinstance(o, (list, np.ndarray)) else None for o in studies["own_reports"]]
    predicted = predict_studies(vectors, encoder, prompts, record.tokenizer, cohort, reports, own, k)
    truth = label_values(studies[list(REPORT_LABEL_NAMES)], prompts)
    return StudyReports(rows_to_table(_rows(studies, predicted, truth, reports.ids, prompts, record, run_id,
                                            code_version), STUDY_REPORTS))


def _rows(studies: pd.DataFrame, p: StudyPredictions, truth: dict[str, np.ndarray], report_ids: list[str],
          prompts: PromptsFile, record, run_id: str, code_version: str) -> list[dict]:
    validation = (studies["split"] == "validation").to_numpy()
    evidence_ids = [[report_ids[j] for j in row] for row in p.evidence.index]
    out = []
    for task in [t for t in (*prompts.binary_tasks, *prompts.regression_tasks) if t in p.zero_shot or t in p.knn]:
        binary = task in prompts.binary_tasks
        label = (prompts.binary_tasks[task] if binary else prompts.regression_tasks[task]).label
        zs = p.zero_shot.get(task, np.full(len(studies), np.nan))
        knn = p.knn.get(task, np.full(len(studies), np.nan))
        calibrate = {m: platt(s[validation], truth[task][validation]) if binary else None
                     for m, s in (("zero_shot", zs), ("knn", knn))}
        probs = {m: f(s) if f is not None else np.full(len(s), np.nan)
                 for (m, f), s in zip(calibrate.items(), (zs, knn))}
        for i, study in enumerate(studies.itertuples(index=False)):
            out.append({
                "variant": record.variant, "model_id": record.model_id, "study_instance_uid": study.study_instance_uid,
                "split": _text(study.split), "n_clips": int(study.n_clips), "report_id": _text(study.report_id),
                "task": task,
                "label": label, "kind": "binary" if binary else "regression", "reported": _num(truth[task][i]),
                "zero_shot_score": _num(zs[i]), "zero_shot_probability": _num(probs["zero_shot"][i]),
                "knn_score": _num(knn[i]), "knn_probability": _num(probs["knn"][i]),
                "evidence_report_ids": evidence_ids[i], "evidence_similarities": p.evidence.similarity[i].tolist(),
                "run_id": run_id, "code_version": code_version})
    return out


def _text(x) -> str | None:
    """A study without a split or a report has NaN there after the left join: null in the table."""
    return None if x is None or pd.isna(x) else str(x)


def _num(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def format_study_report(rows: pd.DataFrame) -> str:
    """One study's `study_reports` rows as the text `echo-pipeline report` prints."""
    first = rows.iloc[0]
    lines = [f"Preliminary read of study {first['study_instance_uid']} ({_text(first['split']) or 'no split'}; "
             f"{first['n_clips']} A4C clips), variant {first['variant']}, model {first['model_id']}",
             "Machine-generated from the image embedding; not a diagnosis. Probabilities: Platt scaling fitted on "
             "the validation split.", "",
             f"{'task':<24} {'zero-shot':>10} {'p(zs)':>6} {'kNN':>8} {'p(kNN)':>7} {'report says':>11}"]
    for row in rows.itertuples(index=False):
        fmt = "{:.3f}" if row.kind == "binary" else "{:.1f}"
        cells = [fmt.format(v) if v is not None and np.isfinite(v) else "-"
                 for v in (row.zero_shot_score, row.zero_shot_probability, row.knn_score, row.knn_probability,
                           row.reported)]
        cells[1] = cells[1] if row.kind == "binary" else ""
        cells[3] = cells[3] if row.kind == "binary" else ""
        lines.append(f"{row.task:<24} {cells[0]:>10} {cells[1]:>6} {cells[2]:>8} {cells[3]:>7} {cells[4]:>11}")
    lines += ["", "Evidence: the nearest training reports"]
    lines += [f"  {report_id}  cosine {similarity:.4f}"
              for report_id, similarity in zip(first["evidence_report_ids"], first["evidence_similarities"])]
    return "\n".join(lines)


def report_text(data_root: DataRoot, study: str, variant: str = "bpe") -> str:
    """What `echo-pipeline report --study UID` prints, from the stored `study_reports` partition."""
    table = read_partition(data_root, "study_reports", model_variants.check_variant(variant)).to_pandas()
    rows = table[table["study_instance_uid"] == study]
    if rows.empty:
        raise InputContractError(f"study {study!r} has no {variant} study report; check the Study Instance UID "
                                 "(SELECT DISTINCT study_instance_uid FROM study_reports)")
    return format_study_report(rows.reset_index(drop=True))
