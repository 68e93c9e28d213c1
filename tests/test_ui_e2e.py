"""The Dagster UI as a user drives it: `dagster dev` over a synthetic cohort, the whole graph materialized
through the webserver's GraphQL API (what the UI's buttons call), the DuckDB catalog checked with SQL, and
headless-Chromium screenshots of the asset graph and of an asset's metadata page.

One server serves the whole module. Runs are launched as a user would click through the graph: one run per
partition of each set of assets sharing a partitions definition (ingestion shards, then the unpartitioned
assets, then view/masking shards, then model variants), in dependency order. Each run uses the in-process
executor (a launchpad setting) so the 2-core CI machine does not start one Python process per step, and the
evaluation's bootstrap is shortened through its run config; both only change how much work a run does, not
which code runs.

Screenshots land in tests/artifacts/ui/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest

from echo_pipeline.evaluation.tables import MODEL_KINDS
from echo_pipeline.privacy import KEY_ENV_VAR
from echo_pipeline.model_variants import MODEL_VARIANTS
from ui_helpers import (
    ASSET_NODES_QUERY, CHROMIUM, DagsterDev, artifacts_dir, launch_run, pick_pseudonym_key, plan_batches,
    prepare_dagster_home, run_errors, screenshot, trainable_cohort, wait_for_runs,
)

FRACTIONS = (0.6, 0.1, 0.3)
MATERIALIZE_TIMEOUT_S = 600
TABLES_WITH_ROWS = ["dicom_instances", "view_predictions", "a4c_clips", "masked_clips", "report_links", "splits",
                    "clip_embeddings", "eval_summary"]
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
QUICK_EVALUATION = {"ops": {"evaluation_tables": {"config": {"n_resamples": 100, "n_pairs": 2000}}}}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """The smallest cohort that trains (ui_helpers.trainable_cohort), shared with tests/test_faults.py."""
    return trainable_cohort(tmp_path_factory)


@pytest.fixture(scope="module")
def server(cohort, tmp_path_factory):
    """`dagster dev` on a free 127.0.0.1 port, its code location pointed at the cohort; stopped at the end."""
    root = tmp_path_factory.mktemp("ui")
    data_root = root / "out"
    env = {
        "ECHO_PIPELINE_DICOM_ROOT": str(cohort / "dicom"),
        "ECHO_PIPELINE_REPORTS": str(cohort / "reports.csv"),
        "ECHO_PIPELINE_VIEW_LABELS": str(cohort / "view_labels.csv"),
        "ECHO_PIPELINE_DATA_ROOT": str(data_root),
        "ECHO_PIPELINE_SPLIT_FRACTIONS": ",".join(map(str, FRACTIONS)),
        "ECHO_PIPELINE_TRAIN_EPOCHS": "1",
        "ECHO_PIPELINE_SHARDS": "2",
        KEY_ENV_VAR: pick_pseudonym_key(cohort, FRACTIONS),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    dev = DagsterDev(prepare_dagster_home(root / "dagster_home"), env, root / "dagster-dev.log")
    try:
        dev.wait_until_loaded()
        yield dev, data_root
    finally:
        dev.stop()
        shutil.copyfile(root / "dagster-dev.log", artifacts_dir("ui") / "dagster-dev.log")


@pytest.fixture(scope="module")
def materialized(server):
    """Every materializable asset, batch by batch; fails with the failed run's error events."""
    dev, data_root = server
    batches = plan_batches(dev.graphql(ASSET_NODES_QUERY)["assetNodes"])
    deadline = time.monotonic() + MATERIALIZE_TIMEOUT_S
    runs = []
    for batch in batches:
        config = IN_PROCESS | (QUICK_EVALUATION if "evaluation_tables" in batch.op_names else {})
        launched = {launch_run(dev, batch.assets, partition, config): partition
                    for partition in batch.partitions or (None,)}
        status = wait_for_runs(dev, list(launched), deadline)
        for run_id, state in status.items():
            where = f"{', '.join(batch.assets)} [{launched[run_id] or 'unpartitioned'}]"
            assert state == "SUCCESS", f"run {run_id} of {where} ended {state}:\n{run_errors(dev, run_id)}"
        runs += list(status)
    return dev, data_root, batches, runs


def test_batches_cover_every_materializable_asset_once_in_dependency_order(server):
    dev, _ = server
    nodes = dev.graphql(ASSET_NODES_QUERY)["assetNodes"]
    batches = plan_batches(nodes)
    order = [key for batch in batches for key in batch.assets]
    materializable = {"/".join(n["assetKey"]["path"]) for n in nodes if n["isMaterializable"]}
    assert sorted(order) == sorted(materializable)
    position = {key: i for i, batch in enumerate(batches) for key in batch.assets}
    for node in nodes:
        key = "/".join(node["assetKey"]["path"])
        for parent in ("/".join(d["path"]) for d in node["dependencyKeys"]):
            if key in position and parent in position:
                assert position[parent] <= position[key], f"{key} would run before its parent {parent}"
    # the three partitions definitions the graph mixes: shards, none, model variants
    assert {b.partitions for b in batches} == {("00", "01"), (), tuple(MODEL_VARIANTS)}


def test_whole_graph_materializes_through_the_ui_and_fills_the_catalog(materialized):
    dev, data_root, batches, runs = materialized
    assert len(runs) == sum(max(1, len(b.partitions)) for b in batches)
    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        for table in TABLES_WITH_ROWS:
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, f"{table} is empty"
        summary = set(con.execute("SELECT variant, model_kind FROM eval_summary WHERE dataset = 'internal'").fetchall())
        assert summary == {(v, k) for v in MODEL_VARIANTS for k in MODEL_KINDS}
        duplicated = con.execute("""SELECT count(*) FROM (SELECT variant, model_kind, dataset, method FROM eval_summary
                                    GROUP BY ALL HAVING count(*) > 1)""").fetchone()[0]
        assert duplicated == 0
        # every embedded clip traces back to an ingested DICOM file
        orphans = con.execute("""SELECT count(*) FROM clip_embeddings e LEFT JOIN dicom_instances d
                                 USING (sop_instance_uid) WHERE d.relative_path IS NULL""").fetchone()[0]
        assert orphans == 0


def test_every_privacy_check_passed_in_the_ui(materialized):
    dev, *_ = materialized
    statuses = {}
    for node in dev.graphql(ASSET_NODES_QUERY)["assetNodes"]:
        for check in (node.get("assetChecksOrError") or {}).get("checks", []):
            execution = check["executionForLatestMaterialization"]
            statuses["/".join(node["assetKey"]["path"]) + ":" + check["name"]] = execution and execution["status"]
    privacy = {name: status for name, status in statuses.items() if name.endswith(":no_raw_identifiers")}
    assert privacy and set(privacy.values()) == {"SUCCEEDED"}, privacy
    assert "EXECUTION_FAILED" not in statuses.values(), statuses


def _assert_real_screenshot(png: Path, result) -> np.ndarray:
    assert png.is_file(), f"chromium wrote no {png.name}: rc={result.returncode} {result.stderr[-2000:]}"
    assert png.stat().st_size > 20_000, f"{png.name} is only {png.stat().st_size} bytes"
    image = cv2.imread(str(png))
    assert image is not None and image.shape[:2] == (1000, 1600)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    # a blank or error page is (nearly) one colour; the UI has text, nodes and edges
    assert grey.std() > 5 and len(np.unique(grey)) > 50, f"{png.name} looks uniform (std {grey.std():.1f})"
    return grey


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing; scripts/ci_system_deps.sh installs it")
@pytest.mark.parametrize("name, path", [
    ("asset_graph", "/asset-groups"),
    ("eval_summary_lineage", "/assets/eval_summary?view=lineage&lineageScope=upstream&lineageDepth=20"),
    ("eval_summary_metadata", "/assets/eval_summary?view=events&partition=bpe"),
    ("clip_model_metadata", "/assets/clip_model?view=events&partition=bpe"),
    ("embedding_umap_metadata", "/assets/embedding_umap?view=events&partition=bpe"),
    ("prompt_saliency_metadata", "/assets/prompt_saliency?view=events&partition=bpe"),
])
def test_screenshot_of_the_ui(materialized, tmp_path, name, path):
    dev, *_ = materialized
    png = tmp_path / f"{name}.png"
    result = screenshot(dev.url + path, png, tmp_path / "chromium-profile")
    _assert_real_screenshot(png, result)
    shutil.copyfile(png, artifacts_dir("ui") / png.name)
