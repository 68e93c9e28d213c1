"""Faults a real deployment meets, through the real command: a training run killed mid-way and run again, and
two materializations of the same data root started at the same moment.

(Ingestion killed half-way is tested in tests/test_pipeline_ingest.py.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from echo_pipeline.privacy import KEY_ENV_VAR
from echo_pipeline.model_variants import MODEL_VARIANTS
from ui_helpers import REPO_ROOT, clean_environ, pick_pseudonym_key, prepare_dagster_home, trainable_cohort

FRACTIONS = (0.6, 0.1, 0.3)
EPOCHS = 3
RUN_TIMEOUT_S = 600
#: Tables upstream of clip_model, with the key that identifies a row.
UPSTREAM = {
    "dicom_instances": "sop_instance_uid", "ingest_quarantine": "relative_path", "view_predictions": "sop_instance_uid",
    "a4c_clips": "sop_instance_uid", "sector_masks": "sop_instance_uid", "masked_clips": "sop_instance_uid",
    "reports": "report_id", "report_links": "report_id", "splits": "study_instance_uid",
}


def cli_env(key: str, **extra: str) -> dict[str, str]:
    """No inherited pipeline settings and an ephemeral Dagster instance, unless `extra` sets one."""
    return {**clean_environ(), KEY_ENV_VAR: key, "ECHO_PIPELINE_SHARDS": "2", "DAGSTER_DISABLE_TELEMETRY": "1", **extra}


def run_command(cohort: Path, data_root: Path, select: str) -> list[str]:
    return [sys.executable, "-m", "echo_pipeline_cli", "run", "--dicom-root", str(cohort / "dicom"),
            "--reports", str(cohort / "reports.csv"), "--view-labels", str(cohort / "view_labels.csv"),
            "--data-root", str(data_root), "--split-fractions", ",".join(map(str, FRACTIONS)), "--select", select]


def read_tables(data_root: Path, tables: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Each table sorted by its key, without run ids (a re-run writes the same rows under a new run id)."""
    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        return {name: con.sql(f"SELECT * EXCLUDE (run_id) FROM {name} ORDER BY {key}").df()
                for name, key in tables.items()}


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a running command and everything it started (the training subprocess shares its group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def epoch_events(run_dir: Path) -> list[int]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [event["epoch"] for event in map(json.loads, lines) if event.get("event") == "epoch"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return trainable_cohort(tmp_path_factory)


def test_training_killed_after_its_first_checkpoint_resumes_on_rerun(cohort, tmp_path):
    """SIGKILL `echo-pipeline run --select clip_model` once epoch 1 is saved; the same command again must
    continue from that checkpoint, finish both variants, and leave the upstream tables as they were."""
    data_root, log = tmp_path / "out", tmp_path / "killed-run.log"
    env = cli_env(pick_pseudonym_key(cohort, FRACTIONS), ECHO_PIPELINE_TRAIN_EPOCHS=str(EPOCHS))
    command = run_command(cohort, data_root, "clip_model")
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        first = []
        while not first and process.poll() is None and time.monotonic() < deadline:
            first = list(data_root.glob("arrays/clip_model/bpe/run-*/checkpoints/epoch-0001"))
            time.sleep(0.05)
    finally:
        kill_group(process)
    assert first, f"no epoch-0001 checkpoint before the run ended ({process.returncode}):\n{log.read_text()[-3000:]}"
    run_dir = first[0].parents[1]
    assert not (run_dir.parent / "model.json").exists(), "the kill came after training had finished"
    # The kill landed in the last batch (the model), so every upstream table is the complete output of an
    # uninterrupted run: the reference the re-run must reproduce.
    upstream_before = read_tables(data_root, UPSTREAM)
    first_card = (first[0] / "card.json").read_bytes()

    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

    assert [p.name for p in run_dir.parent.glob("run-*")] == [run_dir.name], "the re-run trained in a new folder"
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == [f"epoch-{e:04d}" for e in range(1, EPOCHS + 1)]
    assert (first[0] / "card.json").read_bytes() == first_card, "epoch 1 was trained again instead of resumed"
    assert epoch_events(run_dir) == list(range(1, EPOCHS + 1)), "each epoch must run exactly once"
    for variant in MODEL_VARIANTS:
        record = json.loads((data_root / "arrays" / "clip_model" / variant / "model.json").read_text())
        assert record["epochs_completed"] == EPOCHS and Path(record["checkpoint_dir"]).is_dir()
    upstream_after = read_tables(data_root, UPSTREAM)
    for name, key in UPSTREAM.items():
        assert upstream_after[name][key].is_unique, f"{name} has duplicated {key}"
        pd.testing.assert_frame_equal(upstream_after[name], upstream_before[name], obj=name)


def test_two_runs_at_once_on_one_data_root_both_succeed_and_leave_a_sound_catalog(small_cohort, tmp_path):
    """Two `echo-pipeline run --select splits` started together, recording into one Dagster instance: both
    exit 0 (nobody trips over the DuckDB or instance locks) and the catalog opens with whole tables."""
    data_root = tmp_path / "out"
    env = cli_env("test-key-concurrent", DAGSTER_HOME=str(prepare_dagster_home(tmp_path / "dagster_home")))
    command = run_command(small_cohort, data_root, "splits")
    logs, processes, started, ended = [], [], [], {}
    for i in range(2):
        logs.append(tmp_path / f"run-{i}.log")
        with open(logs[-1], "wb") as out:
            started.append(time.monotonic())
            processes.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True))
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(ended) < 2 and time.monotonic() < deadline:
            for i, process in enumerate(processes):
                if i not in ended and process.poll() is not None:
                    ended[i] = time.monotonic()
            time.sleep(0.05)
    finally:
        for process in processes:
            kill_group(process)
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log.read_text()[-4000:]
    assert started[1] < ended[0], "the second run started after the first had finished: nothing ran concurrently"

    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        views = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert {"dicom_instances", "ingest_quarantine", "splits"} <= views
        instances = con.sql("SELECT * FROM dicom_instances").df()
        splits = con.sql("SELECT * FROM splits").df()
        quarantine = con.sql("SELECT relative_path FROM ingest_quarantine").df()
    truth = pd.read_parquet(small_cohort / "truth" / "files.parquet")
    assert instances["sop_instance_uid"].is_unique and splits["study_instance_uid"].is_unique
    assert len(instances) + len(quarantine) == len(truth), "every file lands once in instances or quarantine"
    assert set(splits["study_instance_uid"]) == set(instances["study_instance_uid"])
