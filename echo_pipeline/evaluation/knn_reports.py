"""Retrieval-based predictions: a clip's labels read off its k nearest training reports (EchoPrime's rule).

The neighbours come from the variant's `report_index` — the FAISS index `echo-pipeline search` reads, flat
(exact) or IVF (approximate, nprobe from its manifest) — searched with a FAISS ID selector that admits only
the training split's reports, so a test report never answers for its own clip. The index's rows are mapped
to report ids and the ids to the caller's list, so labels are looked up by report id, never by row position.

A regression label is predicted as the similarity-weighted mean of the neighbours that state it; a binary
label as the similarity-weighted share of positive votes among the neighbours that state it (a score in
[0, 1], so AUCs are defined; 0.5 is the majority call). Weights are the cosine similarities clipped at zero:
a report pointing away from the clip does not vote. Neighbours that do not state a label are skipped, not
counted as negative.

A missing index is an error naming the asset to materialise, not a silent switch to an exact search over the
stored report embeddings: the predictions would then depend on which files happened to be there, and the
`report_index` asset (a dependency of the assets that call this) already holds exactly those vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from echo_pipeline import model_variants
from echo_pipeline.errors import EvaluationError
from echo_pipeline.search.index import MANIFEST_FILE, LoadedIndex, load_index, normalised_rows
from echo_pipeline.search.query import REPORTS
from echo_pipeline.storage import DataRoot

DEFAULT_K = 50


@dataclass(frozen=True)
class Neighbours:
    """``index[i]`` the positions, in the caller's report list, of the reports nearest clip i, best first;
    ``similarity[i]`` their cosines."""

    index: np.ndarray  # (N, k) int64
    similarity: np.ndarray  # (N, k) float32


def open_report_index(data_root: DataRoot, record: model_variants.ModelRecord) -> LoadedIndex:
    """The verified `report_index` of ``record``'s variant; EvaluationError when it is missing or was built
    with another model (IndexIntegrityError when its files do not match its manifest)."""
    directory = model_variants.index_dir(data_root, model_variants.REPORT_INDEX, record.variant)
    asset = f"{model_variants.REPORT_INDEX}[{record.variant}]"
    if not (directory / MANIFEST_FILE).is_file():
        raise EvaluationError(f"{directory}: no report index, which the kNN-report predictions search; "
                              f"materialise {asset} first")
    loaded = load_index(directory)
    built_with, content = loaded.manifest.get("model_id"), loaded.manifest.get("content")
    if content != REPORTS or built_with != record.model_id:
        raise EvaluationError(f"{directory}: holds {content!r} of model {built_with!r}, not the reports of the "
                              f"current {record.variant!r} model {record.model_id!r}; materialise {asset} again")
    return loaded


def describe(loaded: LoadedIndex) -> str:
    """How the index searches, for a method definition: "flat" or "ivf, nprobe N"."""
    if loaded.manifest["kind"] == "ivf":
        return f"ivf, nprobe {faiss.extract_index_ivf(loaded.index).nprobe}"
    return loaded.manifest["kind"]


def nearest_reports(loaded: LoadedIndex, allowed_ids: Sequence[str], clips: np.ndarray,
                    k: int = DEFAULT_K) -> Neighbours:
    """The ``min(k, len(allowed_ids))`` reports of ``allowed_ids`` nearest each clip in ``loaded``, by cosine.

    Only ``allowed_ids`` can be returned (a FAISS selector over their index rows); every one must be in the
    index. On an IVF index a clip whose probed lists hold fewer than k allowed reports is searched again with
    twice the lists, up to all of them (exhaustive), so every row holds k neighbours.
    """
    if k < 1:
        raise EvaluationError(f"k = {k}: ask for at least one neighbour report")
    if not allowed_ids:
        raise EvaluationError("no training report is in the report index; materialise report_embeddings and "
                              "report_index first")
    row_of = {report_id: row for row, report_id in enumerate(loaded.ids)}
    missing = [i for i in allowed_ids if i not in row_of]
    if missing:
        raise EvaluationError(f"{len(missing)} reports (e.g. {missing[0]!r}) are not in the report index; "
                              "materialise report_index again")
    rows = np.array([row_of[i] for i in allowed_ids], np.int64)
    position = np.full(loaded.index.ntotal, -1, np.int64)
    position[rows] = np.arange(len(rows))
    queries = normalised_rows(clips, "clip embeddings")
    if queries.shape[1] != loaded.index.d:
        raise EvaluationError(f"clip embeddings have dimension {queries.shape[1]}, the report index "
                              f"{loaded.index.d}; both must come from the same model")
    found, similarity = _search_selected(loaded.index, queries, rows, min(k, len(rows)))
    index = position[found]
    if (index < 0).any():  # a row outside the selector: a FAISS bug, which must not pass as a neighbour
        raise EvaluationError("the report index returned a report outside the allowed ones")
    return Neighbours(index, similarity)


def _search_selected(index: faiss.Index, queries: np.ndarray, rows: np.ndarray, k: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(FAISS rows, cosines), each (Q, k), of the top ``k`` among ``rows`` for every query."""
    selector = faiss.IDSelectorBatch(rows)
    ivf = faiss.try_extract_index_ivf(index)
    nprobe = ivf.nprobe if ivf is not None else 0
    found = np.full((len(queries), k), -1, np.int64)
    similarity = np.zeros((len(queries), k), np.float32)
    todo = np.arange(len(queries))
    while len(todo):
        # SearchParametersIVF's own nprobe (default 1) overrides the index's, so it is always passed on
        params = (faiss.SearchParametersIVF(sel=selector, nprobe=nprobe) if ivf is not None
                  else faiss.SearchParameters(sel=selector))
        similarity[todo], found[todo] = index.search(queries[todo], k, params=params)
        todo = todo[(found[todo] < 0).any(axis=1)]
        if len(todo) and (ivf is None or nprobe >= ivf.nlist):
            raise EvaluationError(f"an exhaustive search found fewer than {k} of {len(rows)} allowed reports")
        nprobe = min(2 * nprobe, ivf.nlist) if ivf is not None else nprobe
    return found, similarity


def weighted_label(neighbours: Neighbours, values: np.ndarray) -> np.ndarray:
    """Per clip, the similarity-weighted mean of ``values`` (one per report of the caller's list, NaN = not
    stated) over its neighbours that state it; NaN when none does. With every weight zero, the plain mean of
    those values.

    A binary label given as 1.0 / 0.0 gives the weighted share of positive votes.
    """
    v = np.asarray(values, np.float64)[neighbours.index]
    known = np.isfinite(v)
    w = np.where(known, np.clip(neighbours.similarity.astype(np.float64), 0.0, None), 0.0)
    total = w.sum(axis=1)
    weighted = np.where(known, v * w, 0.0).sum(axis=1)
    count = known.sum(axis=1)
    plain = np.where(known, v, 0.0).sum(axis=1) / np.maximum(count, 1)
    out = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), plain)
    return np.where(count > 0, out, np.nan)
