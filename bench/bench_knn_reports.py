"""kNN over the training reports: the report index with a FAISS ID selector vs an exact NumPy matrix product.

What `evaluation/knn_reports.py` does (search the `report_index`, flat or IVF, restricted to the training
split's reports by an `IDSelectorBatch`) against what a user would otherwise write: gather the training
reports' vectors and take the top k of ``clips @ reports.T`` with NumPy (chunked, `argpartition`). The
database is clustered unit vectors (as in bench_search.py), ``--train-share`` of them allowed; the queries are
fresh points. Times are the best of ``--repeats`` for all queries; recall@k is against the NumPy top k;
``speedup_*`` are relative to NumPy in the same run.

Prints ``name: value`` lines. Usage:
``python bench/bench_knn_reports.py [--n 50000] [--d 512] [--queries 2000] [--k 50] [--train-share 0.7]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench_ranks import best_time  # bench/ is on the path when a bench script runs
from bench_search import clustered, recall
from echo_pipeline.evaluation.knn_reports import nearest_reports
from echo_pipeline.search import IndexConfig, build_index, load_index


def numpy_top_k(clips: np.ndarray, reports: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
    """Positions of the k most similar reports per clip, best first: the exact alternative."""
    out = np.empty((len(clips), k), np.int64)
    for start in range(0, len(clips), chunk):
        sims = clips[start:start + chunk] @ reports.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        out[start:start + chunk] = np.take_along_axis(top, order, axis=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--spread", type=float, default=1.75)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--train-share", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    database, centres = clustered(args.n, args.d, args.clusters, args.spread, rng)
    queries, _ = clustered(args.queries, args.d, args.clusters, args.spread, rng, centres)
    ids = [f"report-{i}" for i in range(args.n)]
    allowed_rows = np.sort(rng.permutation(args.n)[:int(args.train_share * args.n)])
    allowed = [ids[r] for r in allowed_rows]
    print(f"n_reports: {args.n}\ndim: {args.d}\nallowed_reports: {len(allowed)}\nqueries: {args.queries}\nk: {args.k}")
    numpy_s, truth = best_time(lambda: numpy_top_k(queries, database[allowed_rows], args.k), args.repeats)
    print(f"numpy_exact_s: {numpy_s:.3f}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-knn-"))
    try:
        for kind in ("flat", "ivf"):
            build_index(workdir / kind, database, ids, content="reports", model_id="bench",
                        config=IndexConfig(kind=kind))
            loaded = load_index(workdir / kind)
            seconds, found = best_time(lambda: nearest_reports(loaded, allowed, queries, args.k), args.repeats)
            print(f"index_{kind}_s: {seconds:.3f}")
            print(f"index_{kind}_recall_at_{args.k}: {recall(found.index, truth):.4f}")
            print(f"speedup_index_{kind}_vs_numpy: {numpy_s / seconds:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
