"""FAISS indexes over normalised embeddings, saved with a sha256 manifest and loaded only when it matches.

An index directory holds:

    manifest.json          written last, atomically: kind, content, model id, n, dim, build parameters, recall,
                           and the name + sha256 of the two files below
    index-<sha16>.faiss    the serialised FAISS index (row r = the r-th vector added)
    ids-<sha16>.json       row → id (SOP Instance UID or report id), a JSON list of strings

Files are content-named and written via temp file + os.replace before the manifest that names them, so a
reader sees the old manifest with the old files or the new one with the new files, never a mixture; the
previous generation is kept for readers that opened its manifest just before the switch. FAISS does not check
its own files (a flipped byte inside the vectors loads silently), so `load_index` hashes both files first.

Kinds: "flat" (IndexFlatIP, exact inner product = cosine on unit vectors; can be extended in place) and "ivf"
(IndexIVFFlat with spherical k-means, nlist ≈ √N, nprobe configurable; rebuilt rather than extended, and its
recall@10 against exact search is measured at build time and recorded in the manifest).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from echo_pipeline import CODE_VERSION as _PACKAGE_VERSION
from echo_pipeline.errors import IndexIntegrityError, SearchIndexError
from echo_pipeline.model_variants.index_manifest import MANIFEST_FILE, read_manifest, verify_index  # noqa: F401
from echo_pipeline.storage import atomic_path

FORMAT_VERSION = 1
KINDS = ("flat", "ivf")
CODE_VERSION = f"{_PACKAGE_VERSION}+search.1"


@dataclass(frozen=True)
class IndexConfig:
    """How to build an index. ``nlist`` None means round(√N); ``nprobe`` is the default at query time."""

    kind: str = "flat"
    nlist: int | None = None
    nprobe: int = 16
    recall_queries: int = 1000  # database rows sampled to measure IVF recall@10, when no queries are given
    seed: int = 0




def _write_blob(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def normalised_rows(vectors: np.ndarray, what: str = "vectors") -> np.ndarray:
    """float32 C-contiguous (N, D) copy with unit rows; refuses non-finite or zero rows."""
    x = np.array(vectors, dtype=np.float32, ndmin=2, order="C")
    if x.ndim != 2 or x.shape[1] == 0:
        raise SearchIndexError(f"{what}: expected a (N, D) array, got shape {np.shape(vectors)}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise SearchIndexError(f"{what}: {int(np.sum(~np.isfinite(norms) | (norms == 0)))} rows are zero or "
                               "non-finite; re-embed them before indexing")
    return x / norms


def _check_ids(ids: list[str], n: int) -> list[str]:
    ids = [str(i) for i in ids]
    if len(ids) != n:
        raise SearchIndexError(f"{len(ids)} ids for {n} vectors; pass one id per row")
    if len(set(ids)) != len(ids):
        raise SearchIndexError("ids are not unique; deduplicate the embeddings before indexing")
    return ids


def recall_at_k(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each query's exact top-k (brute force over ``vectors``) that ``index`` returns."""
    k = min(k, len(vectors))
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = [len(set(t.tolist()) & set(f[f >= 0].tolist())) for t, f in zip(truth, found)]
    return float(np.mean(hits) / k)


def _build_ivf(x: np.ndarray, config: IndexConfig) -> tuple[faiss.Index, dict]:
    n, d = x.shape
    nlist = max(1, min(config.nlist or round(math.sqrt(n)), n))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True  # unit-norm centroids: clusters by cosine, like the queries
    index.cp.seed = config.seed
    rng = np.random.default_rng(config.seed)
    train_points = min(n, 256 * nlist)  # k-means gains nothing from more than ~256 points per centroid
    index.train(x[np.sort(rng.choice(n, train_points, replace=False))])
    index.add(x)
    index.nprobe = min(config.nprobe, nlist)
    return index, {"nlist": nlist, "nprobe": index.nprobe, "train_points": train_points, "seed": config.seed}


def build_index(index_dir: Path, vectors: np.ndarray, ids: list[str], *, content: str, model_id: str,
                config: IndexConfig = IndexConfig(), recall_queries: np.ndarray | None = None) -> dict:
    """Build an index of ``vectors`` (re-normalised) labelled ``ids`` into ``index_dir``; return its manifest.

    ``content`` says what the rows are ("clips" or "reports"). For "ivf", recall@10 against exact search is
    measured with ``recall_queries`` (e.g. the other modality's embeddings) or, when None, a seeded sample of
    ``config.recall_queries`` database rows.
    """
    if config.kind not in KINDS:
        raise SearchIndexError(f"unknown index kind {config.kind!r}; choose one of {KINDS}")
    x = normalised_rows(vectors)
    ids = _check_ids(list(ids), len(x))
    recall = {}
    if config.kind == "flat":
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        params = {}
    else:
        index, params = _build_ivf(x, config)
        if recall_queries is None:
            rng = np.random.default_rng(config.seed + 1)
            queries, source = x[rng.choice(len(x), min(config.recall_queries, len(x)), replace=False)], "database sample"
        else:
            queries, source = normalised_rows(recall_queries, "recall_queries"), "given"
        recall = {"recall_at_10": recall_at_k(index, x, queries, 10), "recall_queries": len(queries),
                  "recall_query_source": source}
    return write_index(index_dir, index, ids, {"kind": config.kind, "content": content, "model_id": model_id,
                                               "build_params": params, **recall})


def write_index(index_dir: Path, index: faiss.Index, ids: list[str], fields: dict) -> dict:
    """Write ``index`` + ``ids`` + manifest (``fields`` plus hashes and sizes) atomically; return the manifest."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    previous = _referenced_files(index_dir)
    index_bytes = faiss.serialize_index(index).tobytes()
    ids_bytes = json.dumps(ids).encode()
    index_sha, ids_sha = hashlib.sha256(index_bytes).hexdigest(), hashlib.sha256(ids_bytes).hexdigest()
    index_file, ids_file = f"index-{index_sha[:16]}.faiss", f"ids-{ids_sha[:16]}.json"
    for name, data in ((index_file, index_bytes), (ids_file, ids_bytes)):
        with atomic_path(index_dir / name) as tmp:
            _write_blob(tmp, data)
    manifest = {
        "format": FORMAT_VERSION, **fields, "metric": "inner_product", "n_vectors": int(index.ntotal),
        "dim": int(index.d), "index_file": index_file, "index_sha256": index_sha, "ids_file": ids_file,
        "ids_sha256": ids_sha, "faiss_version": faiss.__version__, "code_version": CODE_VERSION,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    manifest.setdefault("recall_at_10", None)
    with atomic_path(index_dir / MANIFEST_FILE) as tmp:
        _write_blob(tmp, json.dumps(manifest, indent=2, sort_keys=True).encode())
    keep = previous | {index_file, ids_file}
    for path in list(index_dir.glob("index-*.faiss")) + list(index_dir.glob("ids-*.json")):
        if path.name not in keep:
            path.unlink()
    return manifest


def _referenced_files(index_dir: Path) -> set[str]:
    try:
        manifest = json.loads((index_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        return {manifest["index_file"], manifest["ids_file"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


@dataclass
class LoadedIndex:
    """A verified index in memory: the FAISS index, its row → id list and its manifest."""

    index: faiss.Index
    ids: list[str]
    manifest: dict

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[tuple[str, float]]]:
        """Top-``k`` (id, cosine) per query row, best first; queries are normalised here."""
        q = normalised_rows(queries, "queries")
        if q.shape[1] != self.index.d:
            raise SearchIndexError(f"query dimension {q.shape[1]} differs from the index's {self.index.d}; "
                                   f"embed the query with the index's model ({self.manifest.get('model_id')})")
        k = min(int(k), self.index.ntotal)
        if k <= 0:
            return [[] for _ in range(len(q))]
        scores, rows = self.index.search(q, k)
        return [[(self.ids[r], float(s)) for r, s in zip(row_ids, row_scores) if r >= 0]
                for row_ids, row_scores in zip(rows, scores)]


def load_index(index_dir: Path, *, nprobe: int | None = None) -> LoadedIndex:
    """Load a verified index (IndexIntegrityError on any mismatch); ``nprobe`` overrides the IVF default."""
    manifest = verify_index(index_dir)
    index = faiss.read_index(str(Path(index_dir) / manifest["index_file"]))
    ids = json.loads((Path(index_dir) / manifest["ids_file"]).read_text(encoding="utf-8"))
    if index.ntotal != manifest["n_vectors"] or index.d != manifest["dim"] or len(ids) != index.ntotal:
        raise IndexIntegrityError(f"{index_dir}: index holds {index.ntotal}×{index.d} and {len(ids)} ids, the "
                                  f"manifest says {manifest['n_vectors']}×{manifest['dim']}; rebuild the index")
    if manifest["kind"] == "ivf":
        faiss.extract_index_ivf(index).nprobe = int(nprobe or manifest["build_params"]["nprobe"])
    return LoadedIndex(index, ids, manifest)


def add_to_index(index_dir: Path, vectors: np.ndarray, ids: list[str], *, model_id: str) -> dict:
    """Append the rows whose id the flat index lacks (others are skipped); return the new manifest.

    Refuses an IVF index (rebuild it so its clusters and recorded recall stay true) and a different model id.
    """
    loaded = load_index(index_dir)
    manifest = loaded.manifest
    if manifest["kind"] != "flat":
        raise SearchIndexError(f"{index_dir}: {manifest['kind']} indexes are rebuilt, not extended; "
                               "call build_index with all vectors")
    if manifest["model_id"] != model_id:
        raise SearchIndexError(f"{index_dir}: built with model {manifest['model_id']!r}, not {model_id!r}; "
                               "vectors of different models are not comparable — rebuild the index")
    x = normalised_rows(vectors) if len(vectors) else np.zeros((0, loaded.index.d), np.float32)
    ids = _check_ids(list(ids), len(x))
    if x.shape[1] != loaded.index.d:
        raise SearchIndexError(f"{index_dir}: vectors have dimension {x.shape[1]}, the index {loaded.index.d}")
    known = set(loaded.ids)
    new = [i for i, key in enumerate(ids) if key not in known]
    loaded.index.add(x[new])
    fields = {key: manifest[key] for key in ("kind", "content", "model_id", "build_params", "recall_at_10")}
    fields["added_since_build"] = manifest.get("added_since_build", 0) + len(new)
    return write_index(index_dir, loaded.index, loaded.ids + [ids[i] for i in new], fields)
