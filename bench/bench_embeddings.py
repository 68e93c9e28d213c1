"""Clip embedding throughput: the stored-embeddings code path vs the bare model forward, in one run.

The code path is what the `clip_embeddings` asset runs: masked clips as .npy files on disk → frames 0, 2, …, 38
read through a memory map → resized to the model size (INTER_AREA) → batched forward under inference_mode →
normalised frame and clip embeddings → chunk files and id table written by the EmbeddingStore. The baseline
pushes a pre-made, already normalised tensor of the same batch size through `model.encode_image` as many
times as the code path needs batches. ``ratio_*`` = code-path frames/s ÷ bare-forward frames/s (target ≥ 0.9:
loading must not be the bottleneck); ``cpu_cost_ratio_*`` compares process CPU time per frame, which other load
on a shared machine disturbs less than wall time.

Prints ``name: value`` lines. Usage:
``python bench/bench_embeddings.py [--preset echo-tiny] [--clips 48] [--frames 48] [--batch 64] [--device cpu]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from echo_pipeline.embeddings import ClipEmbedder, ClipItem, EmbeddingStore, embed_new, model_image_size
from echo_pipeline.storage import DataRoot
from echo_pipeline.training.model_factory import build_model


def write_clips(directory: Path, n_clips: int, n_frames: int, size: int) -> list[ClipItem]:
    """Masked-looking clips: a bright sector on black, with noise, so files are not trivially compressible."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    sector = ((xx - size / 2) ** 2 + yy ** 2 < (0.95 * size) ** 2) & (np.abs(xx - size / 2) < yy * 0.8)
    items = []
    for i in range(n_clips):
        clip = rng.integers(0, 200, (n_frames, size, size, 3), dtype=np.uint8) * sector[None, :, :, None]
        path = directory / f"clip-{i:04d}.npy"
        np.save(path, clip.astype(np.uint8))
        items.append(ClipItem(f"1.2.3.{i}", path))
    return items


def code_path_seconds(model, items, root: Path, *, device: str, batch: int, workers: int,
                      tag: str) -> tuple[float, float]:
    """(wall s, process CPU s) of embedding ``items`` into a fresh store."""
    store = EmbeddingStore(DataRoot(root), "clip_embeddings", f"bench-{tag}")
    embedder = ClipEmbedder(model, device=device, batch_frames=batch, num_workers=workers)
    start, cpu = time.perf_counter(), time.process_time()
    summary = embed_new(store, "00", items, embedder.embed_clips, id_of=lambda it: it.clip_id, run_id="bench",
                        code_version="bench", chunk_size=len(items))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    assert summary.embedded == len(items) and not summary.failed
    return elapsed


def bare_forward_seconds(model, *, n_batches: int, last: int, batch: int, size: int,
                         device: str) -> tuple[float, float]:
    """(wall s, process CPU s) of the same number of frames through encode_image, from a ready tensor."""
    x = torch.randn(batch, 3, size, size, device=device)
    if device.startswith("cuda"):
        x = x.contiguous(memory_format=torch.channels_last)
    start, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for i in range(n_batches):
            model.encode_image(x if (i < n_batches - 1 or not last) else x[:last])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="echo-tiny")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=44)
    parser.add_argument("--size", type=int, default=224, help="stored clip size (the masking stage writes 224)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    model, _ = build_model(args.preset)
    model = model.to(args.device).eval()
    image_size = model_image_size(model)
    total_frames = args.clips * min(20, (args.frames + 1) // 2)
    n_batches, last = -(-total_frames // args.batch), total_frames % args.batch
    print(f"device: {args.device}")
    print(f"torch_threads: {torch.get_num_threads()}")
    print(f"preset: {args.preset}")
    print(f"clip_size: {args.size}")
    print(f"model_image_size: {image_size}")
    print(f"frames_per_run: {total_frames}")
    print(f"batch_frames: {args.batch}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-embeddings-"))
    try:
        (workdir / "clips").mkdir()
        items = write_clips(workdir / "clips", args.clips, args.frames, args.size)
        bare_forward_seconds(model, n_batches=2, last=0, batch=args.batch, size=image_size, device=args.device)
        code_path_seconds(model, items, workdir / "warm", device=args.device, batch=args.batch, workers=0, tag="warm")
        # Interleaved repeats, best of each: other load on the machine hits both sides alike.
        bare, code = [], {w: [] for w in args.workers}
        for r in range(args.repeats):
            bare.append(bare_forward_seconds(model, n_batches=n_batches, last=last, batch=args.batch,
                                             size=image_size, device=args.device))
            for w in args.workers:
                code[w].append(code_path_seconds(model, items, workdir / f"data-{w}-{r}", device=args.device,
                                                 batch=args.batch, workers=w, tag=f"{w}-{r}"))
        bare_fps = total_frames / min(t for t, _ in bare)
        bare_cpu = 1000 * min(c for _, c in bare) / total_frames
        print(f"bare_forward_frames_per_s: {bare_fps:.1f}")
        print(f"bare_forward_cpu_ms_per_frame: {bare_cpu:.2f}")
        for w in args.workers:
            fps = total_frames / min(t for t, _ in code[w])
            cpu = 1000 * min(c for _, c in code[w]) / total_frames
            print(f"code_path_frames_per_s_workers_{w}: {fps:.1f}")
            print(f"ratio_code_path_vs_bare_workers_{w}: {fps / bare_fps:.3f}")
            print(f"code_path_cpu_ms_per_frame_workers_{w}: {cpu:.2f}")
            # CPU cost is less sensitive than wall time to other load on a shared machine.
            print(f"cpu_cost_ratio_bare_vs_code_path_workers_{w}: {bare_cpu / cpu:.3f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
