"""`embedding_umap`: the test clips' image embeddings in two dimensions (the paper's UMAP), with their labels.

umap-learn with the paper's settings: ``n_neighbors`` 200 (capped at n − 1: UMAP needs fewer neighbours than
points), ``min_dist`` 1.0, cosine metric (the embeddings are unit vectors), seeded (`random_state`, which
also makes UMAP single-threaded: the same seed gives the same picture). Each row is one clip, joined to the
labels of its study's report, so the figure's colours (and any SQL) come from the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from echo_pipeline import catalog, model_variants
from echo_pipeline.errors import EvaluationError
from echo_pipeline.evaluation.cohort import NEEDED_VIEWS
from echo_pipeline.evaluation.model_embeddings import stored_split_clips
from echo_pipeline.interpretation import plots
from echo_pipeline.schemas import EMBEDDING_UMAP
from echo_pipeline.storage import DataRoot, rows_to_table
from echo_pipeline.upstream import require_tables

N_NEIGHBORS = 200
MIN_DIST = 1.0
#: Fewest clips a projection is drawn for (UMAP's spectral layout needs a handful of points).
MIN_CLIPS = 5


@dataclass(frozen=True)
class UmapSettings:
    n_neighbors: int = N_NEIGHBORS
    min_dist: float = MIN_DIST
    seed: int = 0
    split: str = "test"


def project(vectors: np.ndarray, settings: UmapSettings = UmapSettings()) -> tuple[np.ndarray, int]:
    """(N, 2) UMAP coordinates of unit vectors (N, D), and the n_neighbors used (capped at N − 1)."""
    import umap

    n = len(vectors)
    if n < MIN_CLIPS:
        raise EvaluationError(f"{n} clips: a UMAP needs at least {MIN_CLIPS}; embed more test clips first")
    neighbours = min(settings.n_neighbors, n - 1)
    reducer = umap.UMAP(n_neighbors=neighbours, min_dist=settings.min_dist, metric="cosine",
                        random_state=settings.seed, init="spectral" if n > neighbours + 1 else "random")
    return np.asarray(reducer.fit_transform(np.asarray(vectors, np.float32)), np.float64), neighbours


@dataclass
class UmapOutputs:
    table: pa.Table
    figure: bytes | None  # PNG: one panel per label; None when there were too few clips to project
    note: str = ""


def embedding_umap(data_root: DataRoot, record: model_variants.ModelRecord, *, run_id: str, code_version: str,
                   settings: UmapSettings = UmapSettings()) -> UmapOutputs:
    """The `embedding_umap` rows of ``record``'s model (its stored clip embeddings of ``settings.split``)."""
    require_tables(data_root, NEEDED_VIEWS)
    clips, labels, vectors = stored_split_clips(data_root, record, catalog.open_reader(data_root), settings.split)
    if len(clips) < MIN_CLIPS:  # a tiny archive: an empty table and a note, not a failed run
        return UmapOutputs(rows_to_table([], EMBEDDING_UMAP), None,
                           f"{len(clips)} {settings.split} clips: a UMAP needs at least {MIN_CLIPS}")
    xy, neighbours = project(vectors, settings)
    frame = pd.concat([clips[["sop_instance_uid", "study_instance_uid", "report_id"]], labels], axis=1).assign(
        variant=record.variant, model_id=record.model_id, split=settings.split, umap_x=xy[:, 0], umap_y=xy[:, 1],
        n_neighbors=neighbours, min_dist=settings.min_dist, seed=settings.seed, run_id=run_id,
        code_version=code_version)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    title = f"{record.variant}: UMAP of {len(frame)} {settings.split} clip embeddings (n_neighbors {neighbours})"
    return UmapOutputs(rows_to_table(rows, EMBEDDING_UMAP), plots.umap_panels(frame, title))


__all__ = ["UmapOutputs", "UmapSettings", "embedding_umap", "project"]
