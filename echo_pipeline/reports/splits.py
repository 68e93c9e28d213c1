"""Train / validation / test assignment by patient, so no patient's echoes sit on both sides of an evaluation.

Each patient's split is a pure function of (seed, patient_key): a hash mapped to [0, 1) and cut at the
cumulative fractions. Adding patients therefore never moves an existing patient, and the same seed and the
same pseudonymisation key (patient_key is a keyed hash, echo_pipeline.privacy) give the same split on any
machine; a data root that creates a new random key gets another split. Studies without a patient key are
grouped by their own UID (their patient is unknown, so no leak can be detected for them either way).
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd
import pyarrow as pa

from echo_pipeline.schemas import SPLITS

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.89, "validation": 0.01, "test": 0.10}
SPLIT_NAMES = ("train", "validation", "test")


def check_fractions(fractions: dict[str, float]) -> dict[str, float]:
    """Return the fractions in canonical order; raise ValueError unless they are train/validation/test,
    non-negative, and sum to 1."""
    unknown = set(fractions) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"split fractions: unknown split names {sorted(unknown)}; use {list(SPLIT_NAMES)}")
    ordered = {name: float(fractions.get(name, 0.0)) for name in SPLIT_NAMES}
    if any(v < 0 for v in ordered.values()) or not math.isclose(sum(ordered.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions {ordered}: must be non-negative and sum to 1")
    return ordered


def assign_split(group_key: str, seed: int, fractions: dict[str, float] = DEFAULT_FRACTIONS) -> str:
    """The split of one patient (or other grouping key): deterministic in (seed, group_key)."""
    ordered = check_fractions(fractions)
    digest = hashlib.sha256(f"split:{seed}:{group_key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    cumulative = 0.0
    for name, fraction in ordered.items():
        cumulative += fraction
        if position < cumulative:
            return name
    return next(name for name in reversed(SPLIT_NAMES) if ordered[name] > 0)  # rounding at the top edge


def split_studies(studies: pa.Table | pd.DataFrame, *, seed: int = 0, fractions: dict[str, float] = DEFAULT_FRACTIONS,
                  run_id: str, code_version: str) -> pa.Table:
    """The `splits` table: one row per study (study_instance_uid, patient_key, split), split chosen per patient."""
    frame = studies.to_pandas() if isinstance(studies, pa.Table) else pd.DataFrame(studies)
    check_fractions(fractions)
    frame = frame.drop_duplicates("study_instance_uid").sort_values("study_instance_uid")
    cache: dict[str, str] = {}
    rows = []
    for uid, patient in zip(frame["study_instance_uid"], frame["patient_key"]):
        patient = patient if isinstance(patient, str) and patient else None
        group = patient or f"study:{uid}"
        if group not in cache:
            cache[group] = assign_split(group, seed, fractions)
        rows.append({"study_instance_uid": uid, "patient_key": patient, "split": cache[group],
                     "run_id": run_id, "code_version": code_version})
    return pa.Table.from_pylist(rows, schema=SPLITS)


def find_split_leaks(splits: pa.Table | pd.DataFrame) -> list[dict]:
    """Patients whose studies fall in more than one split: [{"patient_key", "splits", "studies"}], empty if none.

    This backs the blocking asset check: a non-empty list means evaluation would see training patients.
    """
    frame = splits.to_pandas() if isinstance(splits, pa.Table) else pd.DataFrame(splits)
    frame = frame[frame["patient_key"].notna()]
    leaks = []
    for patient, group in frame.groupby("patient_key", sort=True):
        names = sorted(set(group["split"]))
        if len(names) > 1:
            leaks.append({"patient_key": patient, "splits": names, "studies": int(len(group))})
    return leaks


def split_summary(splits: pa.Table) -> dict[str, dict[str, int]]:
    """Studies and patients per split (for run metadata)."""
    frame = splits.to_pandas()
    return {name: {"studies": int((frame["split"] == name).sum()),
                   "patients": int(frame.loc[frame["split"] == name, "patient_key"].nunique())}
            for name in SPLIT_NAMES}
