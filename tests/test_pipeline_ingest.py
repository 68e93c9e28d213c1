"""Ingestion through the real command and a real Dagster run, checked in the DuckDB catalog it leaves.

Every file of the synthetic cohort must end in exactly one of `dicom_instances` / `ingest_quarantine` with
the reason its ground truth names; re-running changes nothing; a run killed half-way and re-run gives the
same tables as an uninterrupted run.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import echo_pipeline_cli
from echo_pipeline.privacy import KEY_ENV_VAR
from echo_pipeline.sharding import configured_shard_count
from echo_pipeline.source_paths import SourcePaths, pseudonymise_path

SELECT = "ingest_quarantine"
KEY = "test-key-not-a-secret"


def pseudonymised(path: str) -> str:
    return pseudonymise_path(path, KEY.encode())


def run_ingestion(cohort: Path, data_root: Path) -> int:
    return echo_pipeline_cli.main([
        "run", "--dicom-root", str(cohort / "dicom"), "--reports", str(cohort / "reports.csv"),
        "--data-root", str(data_root), "--select", SELECT,
    ])


def catalog_tables(data_root: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        return {
            "instances": con.sql("SELECT * FROM dicom_instances ORDER BY relative_path").df(),
            "quarantine": con.sql("SELECT * FROM ingest_quarantine ORDER BY relative_path").df(),
        }


@pytest.fixture(scope="module", autouse=True)
def shared_pseudonym_key():
    """One key for every data root of this module, so pseudonyms compare equal across runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV_VAR, KEY)
        yield


@pytest.fixture(scope="module")
def ingested(small_cohort, tmp_path_factory) -> Path:
    data_root = tmp_path_factory.mktemp("ingested")
    assert run_ingestion(small_cohort, data_root) == 0
    return data_root


def test_every_file_lands_in_exactly_one_table_with_the_true_reason(small_cohort, ingested):
    truth = pd.read_parquet(small_cohort / "truth" / "files.parquet")
    truth = truth.set_index(truth["relative_path"].map(pseudonymised))
    tables = catalog_tables(ingested)
    ingested_paths = set(tables["instances"]["relative_path"])
    quarantined = dict(zip(tables["quarantine"]["relative_path"], tables["quarantine"]["reason"]))
    assert not ingested_paths & set(quarantined)
    assert ingested_paths | set(quarantined) == set(truth.index)
    outcome = {path: "ingested" for path in ingested_paths} | quarantined
    assert {path: outcome[path] for path in truth.index} == truth["expected"].to_dict()


def test_duplicate_is_kept_once_and_points_at_the_kept_copy(small_cohort, ingested):
    """Of each pair of copies the smallest pseudonymised path is kept; the other names it in duplicate_of."""
    truth = pd.read_parquet(small_cohort / "truth" / "files.parquet")
    quarantine = catalog_tables(ingested)["quarantine"].set_index("relative_path")
    instances = catalog_tables(ingested)["instances"]
    pairs = truth[truth["expected"] == "duplicate"]
    assert len(pairs)
    for row in pairs.itertuples():
        kept, dropped = sorted([pseudonymised(row.relative_path), pseudonymised(row.duplicate_of)])
        assert kept in set(instances["relative_path"])
        assert quarantine.loc[dropped, "duplicate_of"] == kept
    assert instances["sop_instance_uid"].is_unique and instances["file_sha256"].is_unique


def test_no_raw_identifier_reaches_the_catalog(small_cohort, ingested):
    patients = pd.read_parquet(small_cohort / "truth" / "patients.parquet")
    studies = pd.read_parquet(small_cohort / "truth" / "studies.parquet")
    raw = set(patients["patient_id"]) | set(patients["patient_name"]) | set(studies["accession_number"])
    for table in catalog_tables(ingested).values():
        cells = {str(value) for value in table.astype(str).to_numpy().ravel()}
        assert not {value for value in raw if any(value in cell for cell in cells)}


def test_tables_hold_pseudonymised_paths_that_the_restricted_mapping_resolves(small_cohort, ingested):
    truth = pd.read_parquet(small_cohort / "truth" / "files.parquet")
    tables = catalog_tables(ingested)
    stored = set(tables["instances"]["relative_path"]) | set(tables["quarantine"]["relative_path"])
    assert not stored & set(truth["relative_path"])  # no raw path in a table
    paths = SourcePaths(ingested, small_cohort / "dicom")
    assert {paths.source_path(p) for p in stored} == set(truth["relative_path"])
    assert all(paths.locate(p).is_file() for p in tables["instances"]["relative_path"])
    maps = sorted((ingested / "secrets" / "source_paths").glob("part-*.parquet"))
    assert maps and {oct(m.stat().st_mode & 0o777) for m in maps} == {"0o600"}
    assert oct((ingested / "secrets" / "source_paths").stat().st_mode & 0o777) == "0o700"


def test_rerun_with_no_new_files_changes_nothing(small_cohort, ingested):
    before = catalog_tables(ingested)
    assert run_ingestion(small_cohort, ingested) == 0
    after = catalog_tables(ingested)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name])


def test_killed_run_then_rerun_equals_uninterrupted_run(small_cohort, ingested, tmp_path):
    """SIGKILL the command after its first shard is written; the re-run must lose and duplicate nothing."""
    command = [sys.executable, "-m", "echo_pipeline_cli", "run", "--dicom-root", str(small_cohort / "dicom"),
               "--reports", str(small_cohort / "reports.csv"), "--data-root", str(tmp_path), "--select", SELECT]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    shard_files = tmp_path / "tables" / "dicom_instances_by_shard"
    deadline = time.monotonic() + 120
    while not list(shard_files.glob("part-*.parquet")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    # The kill must have interrupted the ingestion: the process died of it, with shards still unwritten.
    assert process.returncode == -signal.SIGKILL, f"the run ended by itself ({process.returncode}) before the kill"
    written = len(list(shard_files.glob("part-*.parquet")))
    assert 1 <= written < configured_shard_count(), f"{written} shards written: the kill came too early or too late"
    assert run_ingestion(small_cohort, tmp_path) == 0
    lineage_free = lambda frame: frame.drop(columns=["run_id"]).reset_index(drop=True)  # noqa: E731
    expected, got = catalog_tables(ingested), catalog_tables(tmp_path)
    for name in expected:
        pd.testing.assert_frame_equal(lineage_free(expected[name]), lineage_free(got[name]))



def test_run_observes_inputs_so_a_new_file_makes_only_its_shard_stale(small_cohort, tmp_path, monkeypatch):
    """The UI's stale marks, computed as the UI computes them, after a run with a persistent instance."""
    import shutil

    import dagster as dg
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    from definitions import build_definitions
    from echo_pipeline.settings import PipelineSettings
    from echo_pipeline.sharding import configured_shard_count, shard_of

    cohort = tmp_path / "cohort"
    shutil.copytree(small_cohort / "dicom", cohort / "dicom")
    shutil.copy(small_cohort / "reports.csv", cohort / "reports.csv")
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert run_ingestion(cohort, tmp_path / "out") == 0

    settings = PipelineSettings(dicom_root=cohort / "dicom", reports_path=cohort / "reports.csv",
                                view_labels_path=None, data_root=tmp_path / "out")
    defs = build_definitions(settings)
    key, shards = dg.AssetKey("dicom_instances"), defs.resolve_asset_graph().get(dg.AssetKey("dicom_instances"))
    partition_keys = shards.partitions_def.get_partition_keys()

    def statuses(instance) -> dict[str, StaleStatus]:
        resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        return {partition: resolver.get_status(key, partition) for partition in partition_keys}

    with dg.DagsterInstance.get() as instance:
        assert set(statuses(instance).values()) == {StaleStatus.FRESH}
        source = next(path for path in sorted((cohort / "dicom").rglob("*")) if path.is_file())
        new_file = source.parent / "copied-later"
        shutil.copy(source, new_file)
        changed_shard = shard_of(new_file.relative_to(cohort / "dicom").as_posix(), configured_shard_count())
        assert defs.resolve_job_def("observe_inputs").execute_in_process(instance=instance).success
        stale = {partition for partition, status in statuses(instance).items() if status == StaleStatus.STALE}
    assert stale == {changed_shard}
