"""Evaluation results as rows of the `eval_*` tables (schemas in echo_pipeline/schemas/; docs/tables.md).

Every row carries the lineage of `Lineage` (which model, which checkpoint, reference or not, which variant,
dataset and split, run and code version) and, for a metric, its value with a 95 % percentile bootstrap CI
(`Bootstrap`: 1,000 resamples, seeded). Resampling units: studies for retrieval, classification and
regression (all clips of a drawn study come along); patients (of a pair's first clip) for patient
identification. Tables are long (one row per metric) except `eval_summary`, which is Table 2's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa

from echo_pipeline import CODE_VERSION as _PACKAGE_VERSION
from echo_pipeline.metrics.bootstrap import N_RESAMPLES, bootstrap_auc, bootstrap_ci
from echo_pipeline.metrics.classification import binary_metrics
from echo_pipeline.metrics.patient_identification import PAIR_DIFFERENT_PATIENT, PAIR_TYPE_NAMES
from echo_pipeline.metrics.ranks import mcmrr, recall_at_k
from echo_pipeline.metrics.regression import mean_absolute_error
from echo_pipeline.schemas import TABLES

#: Bump when a metric row of the same embeddings and prompts would change.
EVALUATION_VERSION = "3"  # 2: `primary` (an SQL keyword) renamed `is_primary`; 3: model_source and preprocessing columns
CODE_VERSION = f"{_PACKAGE_VERSION}+evaluation.{EVALUATION_VERSION}"
EVAL_TABLES = ("eval_retrieval", "eval_classification", "eval_regression", "eval_patient_identification",
               "eval_summary")
MODEL_KINDS = ("trained", "untrained", "training_mean")
#: `model_kind` of a pretrained variant's own model (its references stay "untrained" / "training_mean").
PRETRAINED_KIND = "pretrained"
RECALL_KS = (1, 5, 10)
#: eval_summary column → (source table, row filter); classification/regression rows: primary prompts only.
SUMMARY_METRICS: dict[str, tuple[str, dict[str, str]]] = {
    "mcmrr": ("eval_retrieval", {"direction": "both", "metric": "mcmrr"}),
    "lvef_mae": ("eval_regression", {"task": "lvef", "metric": "mae"}),
    "pasp_mae": ("eval_regression", {"task": "pasp", "metric": "mae"}),
    "tavr_auc": ("eval_classification", {"task": "tavr", "metric": "auc"}),
    "mitraclip_auc": ("eval_classification", {"task": "mitraclip", "metric": "auc"}),
    "pacemaker_auc": ("eval_classification", {"task": "pacemaker", "metric": "auc"}),
}
_GROUP = ["model_id", "checkpoint_sha256", "model_kind", "variant", "dataset", "split", "model_source",
          "preprocessing", "method"]
ZERO_SHOT = "zero_shot"


@dataclass(frozen=True)
class Lineage:
    """Who and what a row is about; `checkpoint_sha256` is the evaluated trained checkpoint, carried by its
    reference rows too so that a trained row and its references share it."""

    model_id: str
    checkpoint_sha256: str
    model_kind: str
    variant: str
    dataset: str
    split: str
    run_id: str
    code_version: str = CODE_VERSION
    #: trained | pretrained:<name> | untrained | training_mean: which model made the row, across variants.
    model_source: str = "trained"
    #: the frame preprocessing the clips went through (`embeddings.preprocessing`).
    preprocessing: str = "model"
    level: str = "clip"  # clip | study: what one scored row of the cohort is (eval_summary uses clip rows)

    def but(self, **changes) -> "Lineage":
        return replace(self, **changes)


@dataclass(frozen=True)
class Bootstrap:
    """CI settings: percentile bootstrap, ``n_resamples`` draws from ``numpy.random.default_rng(seed)``."""

    n_resamples: int = N_RESAMPLES
    seed: int = 0


def _metric_row(lineage: Lineage, boot: Bootstrap, metric: str, value: float, low=None, high=None, **extra) -> dict:
    return {**asdict(lineage), "metric": metric, "value": _float(value), "ci_low": _float(low),
            "ci_high": _float(high), "seed": boot.seed, "n_resamples": boot.n_resamples, **extra}


def _float(x) -> float | None:
    return None if x is None else float(x)


def _ci(metric: Callable[..., float], *arrays: np.ndarray, groups, boot: Bootstrap) -> tuple[float, float, float]:
    r = bootstrap_ci(metric, *arrays, groups=groups, n_resamples=boot.n_resamples, seed=boot.seed)
    return r.estimate, r.low, r.high


def _auc_ci(truth: np.ndarray, scores: np.ndarray, groups, boot: Bootstrap) -> tuple[float, float, float]:
    r = bootstrap_auc(truth, scores, groups=groups, n_resamples=boot.n_resamples, seed=boot.seed)
    return r.estimate, r.low, r.high


def retrieval_rows(image_to_report: np.ndarray, report_to_image: np.ndarray, lineage: Lineage,
                   boot: Bootstrap) -> list[dict]:
    """Mean/median rank and recall@1/5/10 per direction, and MCMRR (direction "both"), one row each.

    Row i of both rank vectors is one study (its sampled clip and its report); resampling rows resamples
    studies while the candidate pool stays the whole split. ``chance``: the expected value of a random
    ranking: (N + 1) / 2 for ranks and MCMRR, k / N for recall@k.
    """
    i2t, t2i = np.asarray(image_to_report), np.asarray(report_to_image)
    n = len(i2t)
    per_direction: list[tuple[str, Callable[[np.ndarray], float], float]] = [
        ("mean_rank", lambda r: float(np.mean(r)), (n + 1) / 2),
        ("median_rank", lambda r: float(np.median(r)), (n + 1) / 2),
    ] + [(f"recall_at_{k}", lambda r, k=k: recall_at_k(r, k), min(k, n) / n) for k in RECALL_KS]
    rows = []
    for direction, column in (("image_to_report", 0), ("report_to_image", 1)):
        for metric, fn, chance in per_direction:
            est, low, high = _ci(lambda a, b, fn=fn, c=column: fn((a, b)[c]), i2t, t2i, groups=None, boot=boot)
            rows.append(_metric_row(lineage, boot, metric, est, low, high, direction=direction, chance=chance, n=n))
    est, low, high = _ci(mcmrr, i2t, t2i, groups=None, boot=boot)
    rows.append(_metric_row(lineage, boot, "mcmrr", est, low, high, direction="both", chance=(n + 1) / 2, n=n))
    return rows


def classification_rows(truth: np.ndarray, scores: np.ndarray, studies: np.ndarray, lineage: Lineage,
                        boot: Bootstrap, **task_fields) -> list[dict]:
    """AUC, sensitivity and specificity at Youden's index (with CIs), the threshold and the prevalence.

    The Youden threshold is chosen once on all clips; the sensitivity/specificity CIs resample studies at that
    fixed threshold (O(n) per resample: re-choosing it per resample costs a sort each, hours on the paper's
    test set). ``task_fields``: task, label, prompt_strategy, is_primary, n_prompts, score_definition,
    prompts_version, prompts_sha256.
    """
    t = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(studies)
    counts = {"n": int(t.size), "n_studies": int(pd.unique(g).size), "n_positive": int(t.sum()), **task_fields}
    if t.size == 0:
        return []
    m = binary_metrics(t, s)
    rows = [_metric_row(lineage, boot, "auc", *_auc_ci(t, s, g, boot), **counts)]
    called = s >= m["threshold"]  # positive calls at the Youden threshold
    rates = {"sensitivity": lambda truth, call: _mean_or_nan(call[truth]),
             "specificity": lambda truth, call: _mean_or_nan(~call[~truth])}
    both_classes = 0 < t.sum() < t.size
    for metric, rate in rates.items():
        est = _ci(rate, t, called, groups=g, boot=boot) if both_classes else (float("nan"), None, None)
        rows.append(_metric_row(lineage, boot, metric, *est, **counts))
    rows.append(_metric_row(lineage, boot, "youden_threshold", m["threshold"], **counts))
    rows.append(_metric_row(lineage, boot, "prevalence", m["prevalence"], **counts))
    return rows


def regression_rows(truth: np.ndarray, predictions: np.ndarray, studies: np.ndarray, lineage: Lineage,
                    boot: Bootstrap, below_thresholds: Sequence[float] = (), **task_fields) -> list[dict]:
    """MAE and bias (mean prediction − truth) with CIs, and per threshold T the AUC of −prediction for
    ``truth < T`` (``auc_below_T``). ``task_fields``: task, label, prompt_strategy, is_primary, n_prompts,
    method, prompts_version, prompts_sha256."""
    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    g = np.asarray(studies)
    if t.size == 0:
        return []
    counts = {"n": int(t.size), "n_studies": int(pd.unique(g).size), **task_fields}
    rows = [_metric_row(lineage, boot, "mae", *_ci(mean_absolute_error, t, p, groups=g, boot=boot), **counts),
            _metric_row(lineage, boot, "bias", *_ci(lambda a, b: float(np.mean(b - a)), t, p, groups=g, boot=boot),
                        **counts)]
    for threshold in below_thresholds:
        rows.append(_metric_row(lineage, boot, f"auc_below_{threshold:g}", *_auc_ci(t < threshold, -p, g, boot),
                                **counts))
    return rows


def patient_identification_rows(similarities: np.ndarray, pair_type: np.ndarray, pair_patients: np.ndarray,
                                lineage: Lineage, boot: Bootstrap, *, n_clips: int, n_patients: int) -> list[dict]:
    """AUC of similarity for same- vs different-patient pairs, and the mean similarity per pair type.

    ``pair_patients``: the patient of each pair's first clip, the resampling unit. ``n`` counts the pairs
    behind a row.
    """
    sims = np.asarray(similarities, dtype=np.float64)
    types = np.asarray(pair_type)
    groups = np.asarray(pair_patients)
    extra = {"n_clips": int(n_clips), "n_patients": int(n_patients)}
    same = types != PAIR_DIFFERENT_PATIENT
    rows = [_metric_row(lineage, boot, "auc_same_patient", *_auc_ci(same, sims, groups, boot), n=int(sims.size),
                        **extra)]
    for code, name in PAIR_TYPE_NAMES.items():
        selected = types == code
        if not selected.any():
            rows.append(_metric_row(lineage, boot, f"mean_similarity_{name}", float("nan"), n=0, **extra))
            continue
        est, low, high = _ci(np.mean, sims[selected], groups=groups[selected], boot=boot)
        rows.append(_metric_row(lineage, boot, f"mean_similarity_{name}", est, low, high, n=int(selected.sum()),
                                **extra))
    return rows


def summary_rows(tables: dict[str, pd.DataFrame], primary_strategy: str) -> list[dict]:
    """Table 2: one row per (model, kind, variant, dataset, split, method) found in the long tables, with MCMRR, LVEF and
    PASP MAE and the TAVR, MitraClip and pacemaker AUCs (+ CIs) of the primary prompt strategy; null where
    that model/dataset has no such row (e.g. retrieval for the training-mean baseline or for EchoNet).
    ``n``: the retrieval pool (studies) when there is one, else the studies (EchoNet: videos) of the first
    metric present (LVEF MAE for the training-mean baseline)."""
    frames = []
    for name, (table, where) in SUMMARY_METRICS.items():
        df = tables.get(table)
        if df is None or df.empty:
            continue
        mask = np.ones(len(df), dtype=bool)
        for column, value in where.items():
            mask &= (df[column] == value).to_numpy()
        if "is_primary" in df.columns:
            mask &= df["is_primary"].fillna(False).to_numpy(dtype=bool)
        if "level" in df.columns:  # Table 2 is the paper's clip-level evaluation
            mask &= (df["level"] == "clip").to_numpy()
        picked = df[mask].assign(summary_column=name)
        frames.append(picked if "method" in picked.columns else picked.assign(method=ZERO_SHOT))  # retrieval
    if not frames:
        return []
    long = pd.concat(frames, ignore_index=True)
    rows = []
    for key, group in long.groupby(_GROUP, sort=True, dropna=False):
        row = dict(zip(_GROUP, key))
        strategy = primary_strategy if row["method"] == ZERO_SHOT else row["method"]
        row.update({"prompt_strategy": strategy, "run_id": group["run_id"].iloc[0],
                    "code_version": group["code_version"].iloc[0]})
        by_column = group.set_index("summary_column")
        if "mcmrr" in by_column.index:
            row["n"] = int(by_column.loc["mcmrr", "n"])  # studies in the retrieval pool
        else:  # references without retrieval, EchoNet: the studies (videos) of the first metric present
            row["n"] = int(by_column["n_studies"].iloc[0])
        for name in SUMMARY_METRICS:
            found = name in by_column.index
            for suffix, column in (("", "value"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
                row[name + suffix] = _nan_to_none(by_column.loc[name, column]) if found else None
        rows.append(row)
    return rows


def _mean_or_nan(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


def _nan_to_none(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def to_table(name: str, rows: list[dict]) -> pa.Table:
    """Rows as a table of the declared schema (an empty list gives an empty typed table)."""
    schema = TABLES[name]
    return pa.Table.from_pylist([{c: row.get(c) for c in schema.names} for row in rows], schema=schema)
