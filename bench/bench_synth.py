"""Synthetic cohort generation speed: wall and CPU seconds for a small and a demo-sized cohort.

Prints ``name: value`` lines: seconds, clips and frames per second of `generate_cohort` for each size, the
CPU seconds per clip, and, as the same-run baseline, bare cv2 JPEG encoding of the same number of frames
(the floor any JPEG-writing generator pays), so ``ratio_to_bare_jpeg_encode`` says what rendering, the
other storage kinds and file writing cost on top. CPU seconds include the worker processes, so they do not
depend on how busy the machine is; wall seconds do.

Usage: ``python bench/bench_synth.py [--sizes 20 120] [--workers 2] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from echo_pipeline.synth.cohort import generate_cohort


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _bare_jpeg_seconds(frames: int, rows: int = 272, cols: int = 352) -> float:
    """Seconds to JPEG-encode ``frames`` speckled frames with cv2 in one process."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8), (5, 3), 1.0)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90]
    start = time.perf_counter()
    for _ in range(frames):
        cv2.imencode(".jpg", image, params)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 120])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for patients in args.sizes:
            cpu, start = _cpu_seconds(), time.perf_counter()
            paths = generate_cohort(Path(tmp) / f"p{patients}", patients, args.seed, workers=args.workers, progress=False)
            wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
            clips = pd.read_parquet(paths.truth("clips"))
            frames = int(clips.frames.sum())
            size = sum(p.stat().st_size for p in paths.dicom_root.rglob("*") if p.is_file())
            print(f"patients_{patients}_clips: {len(clips)}")
            print(f"patients_{patients}_wall_s: {wall:.1f}")
            print(f"patients_{patients}_cpu_s: {cpu:.1f}")
            print(f"patients_{patients}_clips_per_s: {len(clips) / wall:.1f}")
            print(f"patients_{patients}_frames_per_s: {frames / wall:.0f}")
            print(f"patients_{patients}_cpu_ms_per_clip: {1000 * cpu / len(clips):.0f}")
            print(f"patients_{patients}_dicom_mib: {size / 2**20:.0f}")
            bare = _bare_jpeg_seconds(frames)
            print(f"patients_{patients}_bare_jpeg_encode_s: {bare:.1f}")
            print(f"patients_{patients}_ratio_to_bare_jpeg_encode: {cpu / bare:.2f}")


if __name__ == "__main__":
    main()
