"""Study embeddings: one vector per study, the L2-normalised mean of its A4C clips' embeddings.

A study is usually several A4C clips; averaging their (unit) clip embeddings and normalising again gives a
study vector on the same sphere as the clips, so cosine similarities of studies read like those of clips.
Every embedded clip counts once (`n_clips` records how many). Built per model variant from the variant's
stored `clip_embeddings`; `load_study_embeddings` is how later steps (clinical change, study-level evaluation,
study reports) read them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from echo_pipeline import model_variants
from echo_pipeline.embeddings import EmbeddingStore
from echo_pipeline.errors import EmbeddingError, UpstreamNotMaterialisedError
from echo_pipeline.pooling import l2_normalise
from echo_pipeline.schemas import TABLES
from echo_pipeline.storage import DataRoot
from echo_pipeline.upstream import read_upstream

TABLE = "study_embeddings"
#: Which study each masked (A4C) clip belongs to: what a study vector averages.
CLIP_STUDIES_SQL = """
    SELECT m.sop_instance_uid, d.study_instance_uid
    FROM masked_clips AS m JOIN dicom_instances AS d USING (sop_instance_uid)
    WHERE d.study_instance_uid IS NOT NULL ORDER BY m.sop_instance_uid"""
CLIP_STUDIES_NEEDS = ("masked_clips", "dicom_instances")


@dataclass(frozen=True)
class StudyVectors:
    """``vectors[i]`` (unit float32) is study ``study_uids[i]``, the mean of ``n_clips[i]`` clip vectors."""

    study_uids: list[str]
    vectors: np.ndarray
    n_clips: np.ndarray


def mean_by_study(clip_vectors: np.ndarray, clip_studies: Sequence[str]) -> StudyVectors:
    """Study vectors from clip vectors (row i belongs to study ``clip_studies[i]``), studies sorted by UID.

    Each clip vector is normalised first, so a clip counts the same whatever its norm.
    """
    clip_vectors = np.asarray(clip_vectors, dtype=np.float64)
    if clip_vectors.ndim != 2 or len(clip_vectors) != len(clip_studies):
        raise EmbeddingError(f"mean_by_study: {clip_vectors.shape} clip vectors for {len(clip_studies)} study ids")
    if not len(clip_studies):
        return StudyVectors([], np.zeros((0, clip_vectors.shape[1]), np.float32), np.zeros(0, np.int32))
    codes, uniques = pd.factorize(pd.Series(list(clip_studies), dtype=object), sort=True)
    sums = np.zeros((len(uniques), clip_vectors.shape[1]), np.float64)
    np.add.at(sums, codes, l2_normalise(clip_vectors).astype(np.float64))
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.int32)
    return StudyVectors(list(uniques), l2_normalise(sums), counts)


def study_vectors_of_model(store: DataRoot, record: model_variants.ModelRecord) -> StudyVectors:
    """The study vectors of ``record``'s model: its stored clip embeddings grouped by the clip's study."""
    clips = read_upstream(store, CLIP_STUDIES_SQL, CLIP_STUDIES_NEEDS).to_pandas()
    partitions = model_variants.variant_partitions(store, model_variants.CLIP_TABLE, record.variant)
    if not partitions:
        raise UpstreamNotMaterialisedError(f"{store.path}: no clip_embeddings for variant {record.variant!r}; "
                                           f"materialise clip_embeddings[{record.variant}] first")
    ids, vectors = EmbeddingStore(store, model_variants.CLIP_TABLE, record.model_id).load_vectors(partitions)
    study_of = dict(zip(clips["sop_instance_uid"], clips["study_instance_uid"]))
    keep = [i for i, uid in enumerate(ids) if uid in study_of]
    return mean_by_study(vectors[keep] if keep else np.zeros((0, vectors.shape[1] if vectors.size else 1)),
                         [study_of[ids[i]] for i in keep])


def study_embeddings_table(vectors: StudyVectors, record: model_variants.ModelRecord, *, run_id: str,
                           code_version: str) -> pa.Table:
    """``vectors`` as `study_embeddings` rows of ``record``'s model and variant."""
    n = len(vectors.study_uids)
    dim = vectors.vectors.shape[1] if n else 0
    return pa.table({
        "study_instance_uid": vectors.study_uids, "model_id": [record.model_id] * n, "variant": [record.variant] * n,
        "n_clips": vectors.n_clips.astype(np.int32), "embedding_dim": np.full(n, dim, np.int32),
        "embedding": pa.array(list(vectors.vectors.astype(np.float32)), pa.list_(pa.float32())),
        "run_id": [run_id] * n, "code_version": [code_version] * n,
    }, schema=TABLES[TABLE])


def build_study_embeddings(store: DataRoot, record: model_variants.ModelRecord, *, run_id: str,
                           code_version: str) -> pa.Table:
    """The `study_embeddings` partition of ``record``'s variant (what the asset writes)."""
    return study_embeddings_table(study_vectors_of_model(store, record), record, run_id=run_id,
                                  code_version=code_version)


def load_study_embeddings(store: DataRoot, variant: str, model_id: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """(rows without the vector column, float32 (N, D) unit vectors) of ``variant``'s stored study embeddings,
    sorted by study UID; only ``model_id``'s rows when given. UpstreamNotMaterialisedError when none exist."""
    table = store.read_table(TABLE, model_variants.check_variant(variant))
    if table is None:
        raise UpstreamNotMaterialisedError(f"{store.path}: {TABLE} has no partition {variant} yet; "
                                           f"materialise {TABLE}[{variant}] first")
    rows = table.to_pandas()
    if model_id is not None:
        rows = rows[rows["model_id"] == model_id]
    rows = rows.sort_values("study_instance_uid", kind="stable").reset_index(drop=True)
    vectors = (np.stack(rows.pop("embedding").to_numpy()).astype(np.float32) if len(rows)
               else np.zeros((0, 0), np.float32))
    return rows, vectors
