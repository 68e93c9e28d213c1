"""Exact retrieval ranks: chunked matrix products vs full argsort vs FAISS IndexFlatIP with k = N.

Prints ``name: value`` lines; ``speedup_vs_*`` are ratios against the chunked method measured in the same
run (best of ``--repeats``). Usage: ``python bench/bench_ranks.py [--n 5000] [--d 512] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from echo_pipeline.metrics.ranks import retrieval_ranks


def ranks_by_argsort(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    order = np.argsort(-(queries @ candidates.T), axis=1)
    return 1 + np.argmax(order == np.arange(len(queries))[:, None], axis=1)


def ranks_by_faiss(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(candidates.shape[1])
    index.add(candidates)
    _, ids = index.search(queries, len(candidates))
    return 1 + np.argmax(ids == np.arange(len(queries))[:, None], axis=1)


def best_time(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.n, args.d)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    # Reports correlated with their images, so the true ranks spread over the whole range.
    texts = images + 1.0 * rng.normal(size=images.shape).astype(np.float32)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)

    t_chunk, r_chunk = best_time(lambda: retrieval_ranks(images, texts), args.repeats)
    t_sort, r_sort = best_time(lambda: ranks_by_argsort(images, texts), args.repeats)
    t_faiss, r_faiss = best_time(lambda: ranks_by_faiss(images, texts), args.repeats)

    print(f"n: {args.n}")
    print(f"d: {args.d}")
    print(f"mean_rank: {r_chunk.mean():.2f}")
    print(f"chunked_matmul_s: {t_chunk:.4f}")
    print(f"argsort_full_s: {t_sort:.4f}")
    print(f"faiss_flatip_k_n_s: {t_faiss:.4f}")
    print(f"speedup_vs_argsort: {t_sort / t_chunk:.2f}")
    print(f"speedup_vs_faiss: {t_faiss / t_chunk:.2f}")
    # Without exact ties all three must agree; a disagreement is a near-tie resolved differently.
    print(f"agree_with_argsort: {np.mean(r_chunk == r_sort):.4f}")
    print(f"agree_with_faiss: {np.mean(r_chunk == r_faiss):.4f}")


if __name__ == "__main__":
    main()
