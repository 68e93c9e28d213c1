"""Search latency and recall: exact (flat) vs approximate (IVF) indexes on a clustered database.

The database is N random-but-clustered unit vectors (D = 512 by default): cluster centres on the sphere, each
point a centre plus noise — closer to real embeddings than uniform noise, on which IVF looks worse than it is.
Queries are fresh points from the same clusters (not database rows). Both indexes are built and loaded through
the project's code path (`build_index` → files + manifest → `load_index`). Latency is ms per query for a batch
of queries (best of ``--repeats``); recall@10 is against the exact index's top 10; ``speedup_*`` and
``recall_*`` are relative to exact search in the same run.

Prints ``name: value`` lines. Usage:
``python bench/bench_search.py [--n 100000] [--d 512] [--queries 1000] [--nprobe 4 16 64]``
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from echo_pipeline.search import IndexConfig, build_index, load_index
from echo_pipeline.search.index import LoadedIndex


def clustered(n: int, d: int, clusters: int, spread: float, rng: np.random.Generator,
              centres: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if centres is None:
        centres = rng.standard_normal((clusters, d)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, len(centres), n)] + spread / math.sqrt(d) * rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), centres


def timed_search(loaded: LoadedIndex, queries: np.ndarray, k: int, repeats: int) -> tuple[float, np.ndarray]:
    best, rows = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        _, rows = loaded.index.search(queries, k)
        best = min(best, time.perf_counter() - start)
    return best, rows


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=1.75,
                        help="noise norm relative to the unit centres (1.5: IVF nearly exact; 2: IVF struggles)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    database, centres = clustered(args.n, args.d, args.clusters, args.spread, rng)
    queries, _ = clustered(args.queries, args.d, args.clusters, args.spread, rng, centres)
    ids = [f"clip-{i}" for i in range(args.n)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        print(f"n_vectors: {args.n}")
        print(f"dim: {args.d}")
        print(f"queries_per_batch: {args.queries}")

        start = time.perf_counter()
        build_index(workdir / "flat", database, ids, content="clips", model_id="bench")
        print(f"flat_build_s: {time.perf_counter() - start:.2f}")
        exact = load_index(workdir / "flat")
        exact_s, truth = timed_search(exact, queries, args.k, args.repeats)
        exact_ms = 1000 * exact_s / args.queries
        print(f"exact_ms_per_query: {exact_ms:.4f}")

        start = time.perf_counter()
        manifest = build_index(workdir / "ivf", database, ids, content="clips", model_id="bench",
                               config=IndexConfig(kind="ivf"))
        print(f"ivf_build_s: {time.perf_counter() - start:.2f}")
        print(f"ivf_nlist: {manifest['build_params']['nlist']}")
        print(f"ivf_manifest_recall_at_10_nprobe_{manifest['build_params']['nprobe']}: {manifest['recall_at_10']:.4f}")
        for nprobe in args.nprobe:
            approx = load_index(workdir / "ivf", nprobe=nprobe)
            approx_s, found = timed_search(approx, queries, args.k, args.repeats)
            approx_ms = 1000 * approx_s / args.queries
            print(f"ivf_nprobe_{nprobe}_ms_per_query: {approx_ms:.4f}")
            print(f"ivf_nprobe_{nprobe}_recall_at_10: {recall(found, truth):.4f}")
            print(f"speedup_ivf_nprobe_{nprobe}_vs_exact: {exact_ms / approx_ms:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
