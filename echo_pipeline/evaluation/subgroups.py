"""Subgroups (`eval_subgroups`): Table 2's primary metrics within each age band, sex, manufacturer and
image-quality band of the test split, with 95 % CIs and n (docs/evaluation.md).

A subgroup is scored like the whole split (`suite.evaluate_model` on the subgroup's clips, `summary_rows` for
the metrics), so its retrieval ranks a study among the subgroup's own studies: MCMRR's chance level,
(N + 1) / 2, moves with the group's size N (`n_studies`). A group with fewer than MIN_STUDIES studies is not
scored — its CIs would say little — but reported as a row per metric with ``too_small`` true and its n.

Dimensions, from `dicom_instances` and `masked_clips`: `age_band` (10-year bands from the header, never a birth
date), `sex` (PatientSex), `manufacturer`, and `image_quality`: the sector's resolution (the side of its
bounding square in source pixels, `masked_clips.crop_side`) in tertiles of the split's clips (low, middle,
high): fewer pixels across the heart, less detail. Missing values form their own `unknown` group.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import pyarrow as pa

from echo_pipeline.evaluation import suite
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.cohort import EvalCohort
from echo_pipeline.evaluation.prompts import PromptsFile
from echo_pipeline.schemas import TABLES

TABLE = "eval_subgroups"
#: Groups with fewer test studies than this are reported as too small, not scored.
MIN_STUDIES = 20
DIMENSIONS = ("age_band", "sex", "manufacturer", "image_quality")
UNKNOWN = "unknown"
QUALITY_BANDS = ("low", "middle", "high")
#: Pairs for the (unused here) patient-identification part of each subgroup's scoring: kept small.
_SUBGROUP_PAIRS = 1000
_ATTRIBUTES_SQL = """
    SELECT d.sop_instance_uid, {age} AS age_band, {sex} AS sex, d.manufacturer, m.crop_side
    FROM dicom_instances AS d JOIN masked_clips AS m USING (sop_instance_uid)"""


def read_attributes(con) -> pd.DataFrame:
    """Per clip: age_band, sex, manufacturer, crop_side. Data roots ingested before `age_band` and
    `patient_sex` existed give null (then `unknown`) for those two."""
    columns = {c[0] for c in con.execute("DESCRIBE dicom_instances").fetchall()}
    return con.execute(_ATTRIBUTES_SQL.format(age="d.age_band" if "age_band" in columns else "NULL",
                                              sex="d.patient_sex" if "patient_sex" in columns else "NULL")).df()


def subgroup_of(clips: pd.DataFrame, attributes: pd.DataFrame) -> pd.DataFrame:
    """One column per dimension, row-aligned with ``clips``: each clip's group (text)."""
    a = clips[["sop_instance_uid"]].merge(attributes, on="sop_instance_uid", how="left")
    out = pd.DataFrame({name: a[name].astype(object).where(a[name].notna(), UNKNOWN)
                        for name in ("age_band", "sex", "manufacturer")})
    side = pd.to_numeric(a["crop_side"], errors="coerce")
    quality = pd.Series(UNKNOWN, index=a.index, dtype=object)
    if side.notna().sum() >= len(QUALITY_BANDS):
        ranked = side.rank(method="first")
        quality[side.notna()] = pd.qcut(ranked[side.notna()], len(QUALITY_BANDS), labels=QUALITY_BANDS).astype(str)
    out["image_quality"] = quality
    return out


def _metric_rows(summary: dict | None, base: dict) -> list[dict]:
    rows = []
    for metric in T.SUMMARY_METRICS:
        value = summary.get(metric) if summary else None
        rows.append({**base, "metric": metric, "value": value,
                     "ci_low": summary.get(f"{metric}_ci_low") if summary else None,
                     "ci_high": summary.get(f"{metric}_ci_high") if summary else None})
    return rows


def subgroup_rows(cohort: EvalCohort, groups: pd.DataFrame, embeddings: dict[str, suite.ModelEmbeddings],
                  lineages: dict[str, T.Lineage], prompts: PromptsFile, boot: T.Bootstrap, primary: str, *,
                  sample_seed: int = 0, min_studies: int = MIN_STUDIES) -> list[dict]:
    """Rows of every (model kind, dimension, group, primary metric); ``groups`` from `subgroup_of`."""
    rows = []
    for dimension in DIMENSIONS:
        for group in sorted(groups[dimension].unique()):
            keep = (groups[dimension] == group).to_numpy()
            part = cohort.keep_clips(keep)
            counts = {"n": int(keep.sum()), "n_studies": int(part.clips["study_instance_uid"].nunique()),
                      "n_patients": int(part.clips["patient_key"].nunique())}
            too_small = counts["n_studies"] < min_studies
            for kind, emb in embeddings.items():
                base = {**asdict(lineages[kind]), "dimension": dimension, "subgroup": str(group), **counts,
                        "too_small": too_small, "min_studies": min_studies, "seed": boot.seed,
                        "n_resamples": boot.n_resamples}
                summary = None
                if not too_small:
                    sub = suite.ModelEmbeddings(emb.frames[keep], emb.n_frames[keep], emb.clips[keep], emb.reports,
                                                emb.prompts)
                    result = suite.evaluate_model(part, sub, prompts, lineages[kind], boot, sample_seed=sample_seed,
                                                  n_pairs=_SUBGROUP_PAIRS)
                    frames = {name: pd.DataFrame(r) for name, r in result.rows.items() if name != "eval_summary"}
                    summary = next(iter(T.summary_rows(frames, primary)), None)
                rows += _metric_rows(summary, base)
    return rows


def subgroup_table(rows: list[dict]) -> pa.Table:
    schema = TABLES[TABLE]
    return pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)
