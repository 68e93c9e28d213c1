"""View prediction throughput: the pipeline's path vs a naive baseline, on synthetic clips.

- views: `predict_views` — header read, 6 evenly spaced frames decoded at reduced scale (inside libjpeg for
  JPEG), colour test on those frames, batched inference of the default classifier (48 px, torch threads =
  cores).
- naive: pydicom `pixel_array` of every frame at full resolution, every frame resized to the input size with
  cv2, then the same frames and the same batched inference.
- sampled: what a user would write: pydicom decodes only the 6 sampled frames (`pixel_array(ds, index=i)`,
  full resolution, pydicom's default decoder per transfer syntax), cv2 resizes them, same inference.
- RLE clips alone: ours against `sampled` with pydicom's default RLE decoder (pylibjpeg-rle, when installed)
  and with pydicom's native RLE decoder (``decoding_plugin="pydicom"``).

The classifier has random weights: throughput does not depend on what it learned. Writes a small synthetic
cohort (``--patients``) into a temporary folder unless ``--cohort`` names an existing one, then prints
``name: value`` lines (best of ``--repeats`` interleaved rounds) and the ratios measured in the same run.

Usage: ``python bench/bench_views.py [--patients 4] [--repeats 2] [--threads 0] [--cohort DIR]``.
"""

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
import torch
from pydicom.pixels import pixel_array
from pydicom.uid import RLELossless

from echo_pipeline.source_paths import SourcePaths
from echo_pipeline.views import ModelSpec, load_classifier, predict_views, save_classifier
from echo_pipeline.views.frames import sample_indices
from echo_pipeline.views.model import build_model, clip_probabilities, torch_threads


def instances_of(cohort: Path) -> pa.Table:
    """The rows predict_views needs, from the synthetic cohort's truth (ids are placeholders for the file hash)."""
    clips = pq.read_table(cohort / "truth" / "clips.parquet", columns=["sop_instance_uid", "relative_path"]).to_pylist()
    return pa.Table.from_pylist([{**c, "file_sha256": c["sop_instance_uid"], "shard": "00"} for c in clips])


def naive(model: torch.nn.Module, spec: ModelSpec, paths: list[Path], batch_clips: int = 64) -> None:
    batch = []
    for path in paths:
        pixels = pydicom.dcmread(path).pixel_array  # every frame, full resolution, RGB (pydicom converts YBR)
        if pixels.ndim == 3 and pixels.shape[-1] != 3:  # grey: (frames, rows, cols)
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        small = np.stack([cv2.resize(f, (spec.input_size, spec.input_size), interpolation=cv2.INTER_AREA) for f in pixels])
        batch.append(small[sample_indices(len(small), spec.frames_per_clip)])
        if len(batch) == batch_clips:
            clip_probabilities(model, np.stack(batch))
            batch = []
    if batch:
        clip_probabilities(model, np.stack(batch))


def sampled(model: torch.nn.Module, spec: ModelSpec, paths: list[Path], plugin: str = "", batch_clips: int = 64) -> None:
    """Decode only the sampled frames with pydicom (``plugin`` "" = pydicom's default), resize, classify."""
    batch = []
    for path in paths:
        ds = pydicom.dcmread(path)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        picked = []
        for index in sample_indices(frames, spec.frames_per_clip):
            frame = pixel_array(ds, index=index, decoding_plugin=plugin)  # RGB: pydicom converts YBR
            frame = np.repeat(frame[..., None], 3, axis=-1) if frame.ndim == 2 else frame
            picked.append(cv2.resize(frame, (spec.input_size, spec.input_size), interpolation=cv2.INTER_AREA))
        batch.append(np.stack(picked))
        if len(batch) == batch_clips:
            clip_probabilities(model, np.stack(batch))
            batch = []
    if batch:
        clip_probabilities(model, np.stack(batch))


def best_times(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each method over ``repeats`` rounds; rounds interleave the methods, so that load from
    other processes on the machine drifts over all of them alike."""
    best = {name: float("inf") for name in methods}
    for _ in range(repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = every core)")
    parser.add_argument("--cohort", type=Path, default=None, help="an existing synthetic cohort folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cohort = args.cohort
        if cohort is None:
            from echo_pipeline.synth.cohort import generate_cohort

            cohort = generate_cohort(Path(tmp) / "cohort", patients=args.patients, seed=0, progress=False).root
        spec = ModelSpec()
        torch.manual_seed(0)
        classifier = load_classifier(save_classifier(Path(tmp) / "clf", build_model(spec), spec, {}))
        instances = instances_of(cohort)
        paths = [cohort / "dicom" / p for p in instances.column("relative_path").to_pylist()]
        is_rle = [pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID == RLELossless for p in paths]
        rle_instances = instances.filter(pa.array(is_rle))
        rle_paths = [p for p, rle in zip(paths, is_rle) if rle]
        sources = SourcePaths.unmapped(cohort / "dicom")

        def ours_on(table: pa.Table):
            return lambda: predict_views(classifier, table, sources, run_id="bench", code_version="bench",
                                         threads=args.threads or None)  # the baselines' thread count

        methods = {"ours": ours_on(instances), "naive": lambda: naive(classifier.model, spec, paths),
                   "sampled": lambda: sampled(classifier.model, spec, paths)}
        if rle_paths:
            methods |= {"rle_ours": ours_on(rle_instances),
                        "rle_sampled_default": lambda: sampled(classifier.model, spec, rle_paths),
                        "rle_sampled_native": lambda: sampled(classifier.model, spec, rle_paths, plugin="pydicom")}
        with torch_threads(args.threads or None) as threads:
            best = best_times(methods, args.repeats)
    ours, baseline, sampled_default = best["ours"], best["naive"], best["sampled"]
    clips = len(paths)
    print(f"clips: {clips}")
    print(f"torch_threads: {threads}")
    print(f"frames_per_clip_sampled: {spec.frames_per_clip}")
    print(f"input_size: {spec.input_size}")
    print(f"views_clips_per_s: {clips / ours:.1f}")
    print(f"views_ms_per_clip: {1000 * ours / clips:.2f}")
    print(f"naive_clips_per_s: {clips / baseline:.1f}")
    print(f"naive_ms_per_clip: {1000 * baseline / clips:.2f}")
    print(f"speedup_vs_naive: {baseline / ours:.1f}")
    print(f"sampled_clips_per_s: {clips / sampled_default:.1f}")
    print(f"speedup_vs_sampled: {sampled_default / ours:.2f}")
    print(f"rle_clips: {len(rle_paths)}")
    if rle_paths:
        print(f"rle_views_ms_per_clip: {1000 * best['rle_ours'] / len(rle_paths):.2f}")
        print(f"rle_speedup_vs_sampled_pydicom_default: {best['rle_sampled_default'] / best['rle_ours']:.2f}")
        print(f"rle_speedup_vs_sampled_pydicom_native: {best['rle_sampled_native'] / best['rle_ours']:.2f}")


if __name__ == "__main__":
    main()
