"""Patient names in folder names never leave the restricted path mapping (issue: hostile and messy archives).

An archive whose patient folders are named as hospitals name them (``DOE^JOHN_MRN12345678/``,
``ABBOTT_JOHN_12345678/``) goes through ingestion, reports and masking in real Dagster runs on a persistent
instance. No name or MRN may then appear in any Parquet table, the DuckDB catalog, a file name of the data
root, the Dagster event log (every event's message and metadata) or the log output; the restricted mapping
still answers "which file", and masking still finds the files through it. With pseudonymisation switched
off, the identifier rules refuse the shard before anything is written or published.
"""

import logging
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster._serdes import serialize_value

import echo_pipeline_cli
from definitions import build_definitions
from echo_pipeline.privacy import KEY_ENV_VAR
from echo_pipeline.settings import PipelineSettings
from echo_pipeline.sharding import configured_shard_count, shard_of
from echo_pipeline.source_paths import MAP_DIR, PSEUDONYM_PATH, SourcePaths, pseudonymise_path, scrub_path
from echo_pipeline.storage import DataRoot
from echo_pipeline.synth.cohort import generate_cohort
from truth_helpers import a4c_clips_from_truth

#: Folder names as archives write them; the synthetic cohort's patient folders are renamed to these.
PHI_FOLDERS = ["DOE^JOHN_MRN12345678", "ABBOTT_JOHN_12345678", "QUIGLEY_ZELDA_87654321"]
#: (The synthetic reports name physicians, e.g. SMITH, as real reports do: not looked for here.)
LEAKS = ["DOE^JOHN", "JOHN_", "ABBOTT", "QUIGLEY", "ZELDA", "12345678", "87654321"]


def _leaks(text: str) -> set[str]:
    return {word for word in LEAKS if word in text}


def _settings(cohort: Path, data_root: Path) -> PipelineSettings:
    return PipelineSettings(dicom_root=cohort / "dicom", reports_path=cohort / "reports.csv",
                            view_labels_path=None, data_root=data_root, split_fractions=(0.6, 0.1, 0.3))


@pytest.fixture(scope="module")
def phi_cohort(tmp_path_factory) -> Path:
    cohort = tmp_path_factory.mktemp("phi") / "cohort"
    generate_cohort(cohort, patients=3, seed=11, workers=2, progress=False)
    folders = sorted(p for p in (cohort / "dicom").iterdir() if p.is_dir())
    assert len(folders) == len(PHI_FOLDERS)
    for folder, name in zip(folders, PHI_FOLDERS):
        folder.rename(folder.parent / name)
    return cohort


@pytest.fixture(scope="module")
def phi_run(phi_cohort, tmp_path_factory):
    """(data root, Dagster home, captured log text) after ingestion, reports and masking of one shard."""
    data_root, home = tmp_path_factory.mktemp("phi_root"), tmp_path_factory.mktemp("dagster_home")
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(KEY_ENV_VAR, "test-key-not-a-secret")
            patch.setenv("DAGSTER_HOME", str(home))
            assert echo_pipeline_cli.main([
                "run", "--dicom-root", str(phi_cohort / "dicom"), "--reports", str(phi_cohort / "reports.csv"),
                "--data-root", str(data_root), "--split-fractions", "0.6,0.1,0.3", "--select", "splits,report_links",
            ]) == 0
            with dg.DagsterInstance.get() as instance:
                _mask_one_shard(phi_cohort, data_root, instance)
    finally:
        logging.getLogger().removeHandler(handler)
    return data_root, home, "\n".join(handler.lines)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _mask_one_shard(cohort: Path, data_root: Path, instance: dg.DagsterInstance) -> None:
    """a4c_clips of the shard with the most A4C clips (from the cohort's truth), then masking in Dagster."""
    store = DataRoot(data_root)
    a4c = a4c_clips_from_truth(cohort, store)
    shard = max(set(a4c.column("shard").to_pylist()), key=a4c.column("shard").to_pylist().count)
    store.write_table("a4c_clips", a4c.filter(pc.equal(a4c.column("shard"), shard)), shard)
    defs = build_definitions(_settings(cohort, data_root))
    result = dg.materialize(
        list(defs.assets) + list(defs.asset_checks), partition_key=shard, resources=defs.resources, instance=instance,
        selection=dg.AssetSelection.assets("sector_masks", "mask_quarantine", "masked_clips"),
        run_config={"ops": {"sector_mask_shard": {"config": {"workers": 1, "sample_frames": 8}},
                            "masked_clips": {"config": {"workers": 1, "size": 32}}}})
    assert result.success
    assert store.read_table("masked_clips", shard).num_rows > 0  # masking found the files through the mapping


def test_no_name_or_mrn_in_tables_catalog_or_file_names(phi_run):
    data_root, _, _ = phi_run
    tables = sorted((data_root / "tables").rglob("*.parquet"))
    assert {"dicom_instances_by_shard", "ingest_quarantine_by_shard", "a4c_clips", "masked_clips"} <= {
        t.parent.name for t in tables}
    for table in tables:
        assert not _leaks(str(pq.read_table(table).to_pylist())), table
    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        views = [row[0] for row in con.sql("SELECT table_name FROM information_schema.tables").fetchall()]
        assert "dicom_instances" in views
        for view in views:
            assert not _leaks(str(con.sql(f'SELECT * FROM "{view}"').fetchall())), view
    outside_secrets = [p for p in data_root.rglob("*") if MAP_DIR.parts[0] not in p.relative_to(data_root).parts]
    assert not _leaks("\n".join(p.name for p in outside_secrets))


def test_no_name_or_mrn_in_the_dagster_event_log_or_the_logs(phi_run):
    data_root, home, logged = phi_run
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        events = [entry for run in runs for entry in instance.all_logs(run.run_id)]
    materialized = [e for e in events if e.dagster_event and e.dagster_event.is_step_materialization]
    assert len(runs) > 3 and any("preview" in e.asset_materialization.metadata for e in materialized)
    for entry in events:
        assert not _leaks(serialize_value(entry)), entry.message
    assert logged and not _leaks(logged)


def test_the_restricted_mapping_answers_which_file(phi_run, phi_cohort):
    data_root, _, _ = phi_run
    mapping = data_root / MAP_DIR
    assert {oct(p.stat().st_mode & 0o777) for p in mapping.glob("*.parquet")} == {"0o600"}
    # The documented lineage query (docs/tables.md): pseudonymised path → the archive's own path.
    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        rows = con.sql(f"""
            SELECT d.sop_instance_uid, m.source_path
            FROM dicom_instances AS d
            JOIN read_parquet('{mapping}/*.parquet') AS m USING (relative_path)""").fetchall()
        instances = con.sql("SELECT count(*) FROM dicom_instances").fetchall()[0][0]
    assert len(rows) == instances
    assert {source.split("/")[0] for _, source in rows} == set(PHI_FOLDERS)
    paths = SourcePaths(data_root, phi_cohort / "dicom")
    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        stored = con.sql("SELECT relative_path FROM dicom_instances").fetchall()
    assert all(paths.locate(path).is_file() for (path,) in stored)


def test_the_source_path_command_answers_which_file(phi_run, capsys):
    data_root, _, _ = phi_run
    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        uid, path = con.sql("SELECT sop_instance_uid, relative_path FROM dicom_instances LIMIT 1").fetchall()[0]
    assert echo_pipeline_cli.main(["source-path", "--data-root", str(data_root), uid, path]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(asked, pseudonym) for asked, pseudonym, _ in lines] == [(uid, path), (path, path)]
    assert lines[0][2] == lines[1][2] and lines[0][2].split("/")[0] in PHI_FOLDERS
    assert echo_pipeline_cli.main(["source-path", "--data-root", str(data_root), "1.2.3.4.5"]) == 2


def test_identifier_rules_refuse_a_shard_before_it_is_published(phi_cohort, tmp_path, monkeypatch):
    """With pseudonymisation switched off, the raw folder names reach the table write and are refused there:
    the run fails and neither the shard's Parquet file nor a catalog view exists."""
    import echo_pipeline.ingest.shard as shard_module

    monkeypatch.setenv(KEY_ENV_VAR, "test-key-not-a-secret")
    monkeypatch.setattr(shard_module, "pseudonymise_path", lambda path, key: path)
    dicom = phi_cohort / "dicom"
    victim = next(p for p in sorted((dicom / PHI_FOLDERS[1]).rglob("*")) if p.is_file())
    shard = shard_of(victim.relative_to(dicom).as_posix(), configured_shard_count())
    defs = build_definitions(_settings(phi_cohort, tmp_path / "out"))
    result = dg.materialize(list(defs.assets), partition_key=shard, resources=defs.resources, raise_on_error=False,
                            selection=dg.AssetSelection.assets("dicom_instances", "ingest_quarantine"))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "RawIdentifierError" in str(failure.event_specific_data.error) and not _leaks(serialize_value(failure))
    assert not (tmp_path / "out" / "tables").exists() and not (tmp_path / "out" / "echo.duckdb").exists()
    shutil.rmtree(tmp_path / "out")


def test_path_pseudonyms_keep_structure_and_short_extensions_only():
    key = b"k"
    a, b = pseudonymise_path("ABBOTT_JOHN_12345678/s1/IM_1.dcm", key), pseudonymise_path("ABBOTT_JOHN_12345678/s2/x.DCM", key)
    assert a.split("/")[0] == b.split("/")[0] and a.endswith(".dcm") and b.endswith(".DCM")  # one folder, one pseudonym
    assert re.fullmatch(PSEUDONYM_PATH, a) and not _leaks(a + b)
    assert pseudonymise_path("DOE.12345678", key).count(".") == 0  # a digit "extension" may be an MRN: hashed
    assert pseudonymise_path("x.dcm", key) != pseudonymise_path("x.dcm", b"other key")
    message = scrub_path("cannot read /archive/ABBOTT_JOHN_12345678/s1/IM_1.dcm: a bad file",
                         "ABBOTT_JOHN_12345678/s1/IM_1.dcm", a, "/archive")
    assert message == f"cannot read {a}: a bad file"
