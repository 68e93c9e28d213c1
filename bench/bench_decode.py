"""Frame decoding: the project's `decode_frames` vs pydicom's default `pixel_array` vs bare cv2.imdecode.

Writes a few synthetic ultrasound clips into a temporary folder (multi-frame JPEG baseline YBR_FULL_422 made
with cv2.imencode + pydicom.encaps.encapsulate, and RLE lossless RGB made with pydicom's RLE encoder), then
prints ``name: value`` lines: frames/s of each method (best of ``--repeats``, reading the file included for
both the project and pydicom) and ratios measured in the same run.

Usage: ``python bench/bench_decode.py [--files 3] [--frames 50] [--rows 600] [--cols 800] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, UltrasoundMultiFrameImageStorage, generate_uid

from echo_pipeline.ingest import decode_frames
from echo_pipeline.ingest.decode import decode_path


def synthetic_clip(frames: int, rows: int, cols: int, seed: int) -> np.ndarray:
    """(frames, rows, cols, 3) uint8 RGB: a moving speckled fan on black with a coloured overlay, like an echo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    angle = np.arctan2(xx - cols / 2, yy + 1)
    radius = np.hypot(xx - cols / 2, yy)
    fan = (np.abs(angle) < 0.6) & (radius < rows * 0.95)
    clip = np.zeros((frames, rows, cols, 3), np.uint8)
    for t in range(frames):
        speckle = cv2.GaussianBlur(rng.random((rows, cols), np.float32), (0, 0), 2.0)
        tissue = (speckle * 255 * (0.6 + 0.4 * np.sin(radius / 25 + t / 4))).clip(0, 255).astype(np.uint8)
        clip[t][fan] = tissue[fan, None]
        cv2.putText(clip[t], f"HR 72 bpm {t:02d}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 200, 0), 2)
        cv2.circle(clip[t], (cols // 2 + int(60 * np.sin(t / 5)), rows // 2), 40, (200, 40, 40), -1)
    return clip


def us_dataset(transfer_syntax: str, rows: int, cols: int, frames: int, photometric: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = UltrasoundMultiFrameImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "US", rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime = 33.3
    return ds


def write_jpeg_clip(path: Path, clip: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]
    encoded = [cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)[1].tobytes() for frame in clip]
    ds = us_dataset(JPEGBaseline8Bit, clip.shape[1], clip.shape[2], len(clip), "YBR_FULL_422")
    ds.PixelData = encapsulate(encoded, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    ds.save_as(path, enforce_file_format=True)


def write_rle_clip(path: Path, clip: np.ndarray) -> None:
    ds = us_dataset(ExplicitVRLittleEndian, clip.shape[1], clip.shape[2], len(clip), "RGB")
    ds.compress(RLELossless, clip, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def best_fps(methods: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """Frames per CPU second of each method, best of ``repeats`` rounds.

    Every method decodes on one thread, so this process's CPU time is its cost; unlike wall time it does not
    grow when other processes share the cores. Rounds interleave the methods so that drift hits them alike.
    """
    best = {name: float("inf") for name in methods}
    frames = {}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.process_time()
            frames[name] = fn()
            best[name] = min(best[name], time.process_time() - start)
    return {name: frames[name] / best[name] for name in methods}


def jpeg_methods(paths: list[Path]) -> dict[str, Callable[[], int]]:
    datasets = [pydicom.dcmread(p) for p in paths]
    streams = [s for ds in datasets for s in generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
    buffer = decode_frames(datasets[0])
    return {
        "project": lambda: sum(len(decode_frames(p)) for p in paths),
        "project_from_dataset": lambda: sum(len(decode_frames(ds)) for ds in datasets),
        "project_reused_buffer": lambda: sum(len(decode_frames(ds, out=buffer)) for ds in datasets),
        "project_scale2": lambda: sum(len(decode_frames(p, scale=2)) for p in paths),
        "project_scale4": lambda: sum(len(decode_frames(p, scale=4)) for p in paths),
        "pydicom_default": lambda: sum(len(pydicom.dcmread(p).pixel_array) for p in paths),
        # libjpeg-turbo alone: frame bytes already extracted, BGR output discarded (no copy, no file read)
        "bare_cv2_imdecode": lambda: sum(cv2.imdecode(np.frombuffer(s, np.uint8), cv2.IMREAD_COLOR) is not None for s in streams),
        # the same, keeping the frames as one clip array (what any caller needs): adds writing fresh memory
        "bare_cv2_imdecode_stacked": lambda: len(
            np.stack([cv2.imdecode(np.frombuffer(s, np.uint8), cv2.IMREAD_COLOR) for s in streams])
        ),
    }


def rle_methods(paths: list[Path]) -> dict[str, Callable[[], int]]:
    return {
        "project": lambda: sum(len(decode_frames(p)) for p in paths),
        "pydicom_default": lambda: sum(len(pydicom.dcmread(p).pixel_array) for p in paths),
        "pydicom_native_rle": lambda: sum(len(pixel_array(pydicom.dcmread(p), decoding_plugin="pydicom")) for p in paths),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--cols", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # decoding is per-frame and single-threaded in every method compared

    with tempfile.TemporaryDirectory() as tmp:
        jpeg_paths, rle_paths = [], []
        for i in range(args.files):
            clip = synthetic_clip(args.frames, args.rows, args.cols, seed=i)
            jpeg_paths.append(Path(tmp) / f"jpeg_{i}.dcm")
            rle_paths.append(Path(tmp) / f"rle_{i}.dcm")
            write_jpeg_clip(jpeg_paths[-1], clip)
            write_rle_clip(rle_paths[-1], clip)
        print(f"clips: {args.files} x {args.frames} frames of {args.rows} x {args.cols}")
        print(f"jpeg_decode_path: {decode_path(jpeg_paths[0])}")
        print(f"rle_decode_path: {decode_path(rle_paths[0])}")

        jpeg = best_fps(jpeg_methods(jpeg_paths), args.repeats)
        for name, value in jpeg.items():
            print(f"jpeg_{name}_fps: {value:.1f}")
        print(f"jpeg_speedup_vs_pydicom_default: {jpeg['project'] / jpeg['pydicom_default']:.2f}")
        print(f"jpeg_fraction_of_bare_cv2: {jpeg['project_from_dataset'] / jpeg['bare_cv2_imdecode']:.3f}")
        print(f"jpeg_fraction_of_bare_cv2_with_file_read: {jpeg['project'] / jpeg['bare_cv2_imdecode']:.3f}")
        print(f"jpeg_fraction_of_bare_cv2_reused_buffer: {jpeg['project_reused_buffer'] / jpeg['bare_cv2_imdecode']:.3f}")
        print(f"jpeg_fraction_of_bare_cv2_stacked: {jpeg['project_from_dataset'] / jpeg['bare_cv2_imdecode_stacked']:.3f}")

        rle = best_fps(rle_methods(rle_paths), args.repeats)
        for name, value in rle.items():
            print(f"rle_{name}_fps: {value:.1f}")
        print(f"rle_speedup_vs_pydicom_default: {rle['project'] / rle['pydicom_default']:.2f}")
        print(f"rle_speedup_vs_pydicom_native_rle: {rle['project'] / rle['pydicom_native_rle']:.2f}")

if __name__ == "__main__":
    main()
