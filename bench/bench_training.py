"""Training throughput: this project's trainer versus open_clip's own trainer, same frames, same model.

Both train the `echo-tiny` preset (registered with open_clip) at 112 px, batch 32, fp32 on CPU, for one
epoch over the same synthetic clips paired with realistic ~500-token synthetic reports. open_clip_train
reads one PNG frame per clip from a CSV data set (its supported local format; the whole report as the
caption, truncated to 77 tokens by its tokenizer); ours reads a random frame from each clip's .npy and a
sentence-aligned snippet of the report. Each trainer runs in its own subprocess, alternating, `--rounds`
times. Only the training loop is timed, from the first to the last optimizer step (both trainers call
torch.optim.AdamW.step, which each child instruments): model building, validation and checkpoint
writing are excluded on both sides. Reported: samples/s (median over rounds), and samples per CPU-second
of the trainer's process tree (main + DataLoader workers, from /proc) — the comparison that holds on a
shared machine, where other processes' load swings the wall-clock figures several-fold.

Also measured: our data path alone (frame read + resize + snippet + tokenise, no model) on one core at
112 and 224 px, the figure docs/training.md uses to size CPU workers for a GPU run.

    python bench/bench_training.py [--clips 384] [--rounds 3] [--workers 1]

Prints `name: value` lines and the ratio ours / open_clip (target >= 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEVERITIES = ("none", "mild", "moderate", "severe")


def synthetic_report(rng: np.random.Generator) -> str:
    """A realistic ~500-BPE-token report from the project's synthetic report generator."""
    from echo_pipeline.synth.report_text import render_report

    study = {"study_date": "2020-01-01", "patient_id": "P000", "lvef": float(rng.uniform(15, 70)), "pasp": float(rng.uniform(20, 70)),
             "pacemaker": bool(rng.random() < 0.1), "tavr": bool(rng.random() < 0.05),
             "mitraclip": bool(rng.random() < 0.05), "tamponade": False,
             "effusion": str(rng.choice(("none", "small", "moderate", "large"), p=(0.85, 0.1, 0.04, 0.01)))}
    for key in ("lv_dilation", "la_dilation", "rv_dilation", "ra_dilation", "lvh"):
        study[key] = str(rng.choice(SEVERITIES, p=(0.7, 0.15, 0.1, 0.05)))
    return render_report(study, rng)[0]


def write_dataset(root: Path, clips: int, size: int, frames: int = 16) -> None:
    """Synthetic clips as .npy + one PNG frame per clip with a TSV (filepath, title) for open_clip."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(0)
    npy_dir, png_dir = root / f"npy{size}", root / f"png{size}"
    npy_dir.mkdir(parents=True)
    png_dir.mkdir()
    rows, csv_rows = [], []
    for i in range(clips):
        base = rng.integers(0, 255, 3)
        clip = np.clip(base + rng.normal(0, 30, (frames, size, size, 3)), 0, 255).astype(np.uint8)
        np.save(npy_dir / f"{i}.npy", clip)
        Image.fromarray(clip[0]).save(png_dir / f"{i}.png")
        text = synthetic_report(rng)
        rows.append({"clip_id": str(i), "npy_path": str(npy_dir / f"{i}.npy"), "text": text,
                     "group_id": str(i // 3)})
        csv_rows.append({"filepath": str(png_dir / f"{i}.png"), "title": " ".join(text.split())})
    (root / f"pairs{size}.json").write_text(json.dumps(rows))
    pd.DataFrame(csv_rows).to_csv(root / f"frames{size}.csv", sep="\t", index=False)


def run_ours(pairs_file: Path, out_dir: Path, batch: int, workers: int) -> float:
    from echo_pipeline.tokenizers import make_tokenizer
    from echo_pipeline.training.data import TrainPair
    from echo_pipeline.training.presets import TrainConfig
    from echo_pipeline.training.trainer import train_clip

    pairs = [TrainPair(r["clip_id"], r["npy_path"], r["text"], r["group_id"])
             for r in json.loads(pairs_file.read_text())]
    events = []
    config = TrainConfig(preset="echo-tiny", out_dir=str(out_dir), epochs=1, batch_size=batch,
                         num_workers=workers, deterministic=False, log_every_steps=0)
    train_clip(config, pairs, pairs[:batch], make_tokenizer("bpe"), report=events.append)
    return events[0]["samples_per_s"]


def run_open_clip(csv_file: Path, logs: Path, batch: int, workers: int, clips: int) -> float:
    import open_clip_train.main as oc_main

    from echo_pipeline.training.model_factory import register_model_configs

    register_model_configs()
    timings = []
    original = oc_main.train_one_epoch

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        original(*args, **kwargs)
        timings.append(time.perf_counter() - t0)

    oc_main.train_one_epoch = timed
    oc_main.main([
        "--model", "echo-tiny", "--train-data", str(csv_file), "--dataset-type", "csv", "--csv-separator", "\t",
        "--csv-img-key", "filepath", "--csv-caption-key", "title", "--batch-size", str(batch),
        "--epochs", "1", "--workers", str(workers), "--lr", "5e-4", "--warmup", "1", "--wd", "0.1",
        "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6", "--grad-clip-norm", "1.0", "--precision", "fp32",
        "--device", "cpu", "--logs", str(logs), "--name", "bench", "--log-every-n-steps", "1000",
        "--save-frequency", "0", "--seed", "0",
    ])
    return (clips // batch) * batch / timings[0]


def data_path_rate(pairs_file: Path, image_size: int, seconds: float = 4.0) -> float:
    """Samples/s of our dataset alone on this process (one core): frame read, resize, tokenise."""
    import torch

    from echo_pipeline.tokenizers import make_tokenizer
    from echo_pipeline.training.data import ClipFrameDataset, TrainPair, default_text_sampler

    torch.set_num_threads(1)
    pairs = [TrainPair(r["clip_id"], r["npy_path"], r["text"], r["group_id"])
             for r in json.loads(pairs_file.read_text())]
    tokenizer = make_tokenizer("bpe")
    ds = ClipFrameDataset(pairs, tokenizer, default_text_sampler(tokenizer, "bpe", 77), image_size=image_size,
                          context_length=77, seed=0, train=True)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ds[(n % len(ds), n // len(ds))]
        n += 1
    return n / (time.perf_counter() - t0)


def process_tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live children (the DataLoader workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    me, total = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == me or int(fields[1]) == me:  # fields[1] = parent pid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def time_optimizer_steps() -> list[tuple[float, float]]:
    """Record (wall, CPU) at every torch.optim.AdamW.step call (both trainers use it) into the returned list."""
    import torch

    stamps: list[tuple[float, float]] = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        stamps.append((time.perf_counter(), process_tree_cpu_seconds()))
        return out

    torch.optim.AdamW.step = step
    return stamps


def child(args) -> None:
    root = Path(args.root)
    stamps = time_optimizer_steps()
    if args.child == "ours":
        rate = run_ours(root / "pairs112.json", Path(tempfile.mkdtemp(dir=root)), args.batch, args.workers)
    elif args.child == "open_clip":
        rate = run_open_clip(root / "frames112.csv", Path(tempfile.mkdtemp(dir=root)), args.batch,
                             args.workers, args.clips)
    else:
        print("RESULT", data_path_rate(root / f"pairs{args.child[4:]}.json", int(args.child[4:])), flush=True)
        return
    # From the first step on (model building and the first batch's start-up excluded).
    wall = np.array([w for w, _ in stamps])
    cpu = np.array([c for _, c in stamps])
    samples = args.batch * (len(stamps) - 1)
    print("RESULT", rate, samples / (wall[-1] - wall[0]), samples / (cpu[-1] - cpu[0]), flush=True)


def measure(which: str, args) -> tuple[float, ...]:
    cmd = [sys.executable, __file__, "--child", which, "--root", args.root, "--batch", str(args.batch),
           "--workers", str(args.workers), "--clips", str(args.clips)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{which} failed:\n{proc.stderr[-4000:]}")
    return tuple(float(x) for x in lines[-1].split()[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--child", default=None)
    parser.add_argument("--root", default=None)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as root:
        args.root = root
        write_dataset(Path(root), args.clips, 112)
        write_dataset(Path(root), min(args.clips, 128), 224)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(measure("ours", args))
            theirs.append(measure("open_clip", args))
        data112, data224 = measure("data112", args)[0], measure("data224", args)[0]
    o_cpu, t_cpu = (statistics.median(r[2] for r in runs) for runs in (ours, theirs))
    o, t = (statistics.median(r[1] for r in runs) for runs in (ours, theirs))
    print(f"clips: {args.clips}")
    print(f"batch_size: {args.batch}")
    print(f"dataloader_workers: {args.workers}")
    print(f"ours_train_samples_per_s: {o:.2f}")
    print(f"open_clip_train_samples_per_s: {t:.2f}")
    print(f"ratio_ours_over_open_clip: {o / t:.3f}")
    print(f"ours_train_samples_per_cpu_second: {o_cpu:.2f}")
    print(f"open_clip_train_samples_per_cpu_second: {t_cpu:.2f}")
    print(f"ratio_ours_over_open_clip_per_cpu_second: {o_cpu / t_cpu:.3f}")
    print(f"ours_runs_samples_per_s: {' '.join(f'{r[1]:.2f}' for r in ours)}")
    print(f"open_clip_runs_samples_per_s: {' '.join(f'{r[1]:.2f}' for r in theirs)}")
    print(f"load_average_1min: {os.getloadavg()[0]:.2f}")
    print(f"ours_data_path_samples_per_s_per_core_112px: {data112:.1f}")
    print(f"ours_data_path_samples_per_s_per_core_224px: {data224:.1f}")


if __name__ == "__main__":
    main()
