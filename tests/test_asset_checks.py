"""Asset checks and observed inputs, in real Dagster runs over a data root built from a tiny synthetic cohort.

The good data root comes from the real pipeline: ingestion, reports, links and splits through the command
line (which runs their checks too), `a4c_clips` from the cohort's truth, then masking per shard. Each check
passes there, and fails on a copy broken on purpose. The observed inputs get a new data version when a file
is added or changed and keep it when nothing changed.
"""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import echo_pipeline_cli
from definitions import build_definitions
from echo_pipeline import check_rules, identifiers
from echo_pipeline.identifiers import RawIdentifierError
from echo_pipeline.privacy import pseudonymise_path
from echo_pipeline.errors import InputContractError
from echo_pipeline.masking.plausibility import AREA_FRACTION
from echo_pipeline.privacy import KEY_ENV_VAR
from echo_pipeline.settings import PipelineSettings
from echo_pipeline.sharding import configured_shard_count, shard_of
from echo_pipeline.storage import DataRoot
from echo_pipeline.studies.events import event_id
from echo_pipeline.synth.cohort import generate_cohort
from truth_helpers import a4c_clips_from_truth

KEY = "test-key-not-a-secret"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV_VAR, KEY)


def settings_for(cohort: Path, data_root: Path, **changes) -> PipelineSettings:
    return PipelineSettings(**{"dicom_root": cohort / "dicom", "reports_path": cohort / "reports.csv",
                               "view_labels_path": cohort / "view_labels.csv", "data_root": data_root,
                               "split_fractions": (0.6, 0.1, 0.3), **changes})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(cohort, good data root, shards holding masked clips), built once by the real pipeline."""
    cohort = tmp_path_factory.mktemp("checks_cohort") / "cohort"
    generate_cohort(cohort, patients=3, seed=11, workers=2, progress=False)
    data_root = tmp_path_factory.mktemp("checks_root")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV_VAR, KEY)
        assert echo_pipeline_cli.main([
            "run", "--dicom-root", str(cohort / "dicom"), "--reports", str(cohort / "reports.csv"),
            "--data-root", str(data_root), "--split-fractions", "0.6,0.1,0.3", "--select", "splits,report_links",
        ]) == 0
        shards = _mask_a4c_clips_from_truth(cohort, data_root)
    return cohort, data_root, shards


def _mask_a4c_clips_from_truth(cohort: Path, data_root: Path) -> list[str]:
    store = DataRoot(data_root)
    a4c = a4c_clips_from_truth(cohort, store)
    shards = sorted(set(a4c.column("shard").to_pylist()))[:2]  # two shards are enough and keep the test fast
    defs = build_definitions(settings_for(cohort, data_root))
    for shard in shards:
        store.write_table("a4c_clips", a4c.filter(pc.equal(a4c.column("shard"), shard)), shard)
        result = dg.materialize(
            list(defs.assets) + list(defs.asset_checks), partition_key=shard, resources=defs.resources,
            selection=dg.AssetSelection.assets("sector_masks", "mask_quarantine", "masked_clips"),
            run_config={"ops": {"sector_mask_shard": {"config": {"workers": 1, "sample_frames": 8}},
                                "masked_clips": {"config": {"workers": 1, "size": 32}}}})
        assert result.success  # the masking checks (blocking) passed in the run that wrote the clips
    assert DataRoot(data_root).read_table("masked_clips").num_rows > 0
    return shards


def copy_root(data_root: Path, tmp_path: Path) -> Path:
    """A copy of the data root's tables (the checks read nothing else) to break on purpose."""
    target = tmp_path / "root"
    shutil.copytree(data_root / "tables", target / "tables")
    return target


def run_checks(settings: PipelineSettings, checks: list[tuple[str, str]], partition: str | None = None,
               instance: dg.DagsterInstance | None = None) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """Execute only the named checks (asset, check name), for one partition, as Dagster would."""
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), name) for asset, name in checks]
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(
        jobs=[dg.define_asset_job("only_checks", selection=dg.AssetSelection.checks(*keys))]))
    # Partitioned checks alone cannot take partition_key (Dagster requires a selected asset); the tag is what
    # a partitioned run carries, and the checks read their partition from it.
    result = defs.resolve_job_def("only_checks").execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False,
        tags={"dagster/partition": partition} if partition else None)
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def biggest_shard(root: Path, dataset: str) -> str:
    """The shard whose partition of ``dataset`` has the most rows."""
    files = DataRoot(root).dataset_dir(dataset).glob("part-*.parquet")
    return max(files, key=lambda f: pq.read_metadata(f).num_rows).stem.removeprefix("part-")


def rewrite(root: Path, dataset: str, partition: str, change) -> None:
    path = DataRoot(root).partition_file(dataset, partition)
    pq.write_table(change(pq.read_table(path)), path)


def set_column(table: pa.Table, column: str, values: list) -> pa.Table:
    index = table.schema.get_field_index(column)
    return table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))


# --- the checks ------------------------------------------------------------------------------------------------


def test_every_asset_has_a_code_version_and_reads_its_observed_input():
    graph = build_definitions().resolve_asset_graph()
    missing = [key.to_user_string() for key in graph.materializable_asset_keys if graph.get(key).code_version is None]
    assert missing == []
    parents = {name: {p.to_user_string() for p in graph.get(dg.AssetKey(name)).parent_keys}
               for name in ("dicom_instances", "ingest_quarantine", "reports", "report_quarantine")}
    assert parents == {"dicom_instances": {"dicom_root"}, "ingest_quarantine": {"dicom_root"},
                       "reports": {"reports_file"}, "report_quarantine": {"reports_file"}}


def test_checks_pass_on_the_good_data_root(built, monkeypatch):
    cohort, data_root, shards = built
    # The synthetic cohort plants the same few broken files whatever its size: ~15 % of a 3-patient archive.
    monkeypatch.setenv("ECHO_PIPELINE_MAX_QUARANTINE_SHARE", "0.5")
    settings = settings_for(cohort, data_root)
    unpartitioned = run_checks(settings, [
        ("splits", "no_patient_in_two_splits"), ("report_links", "report_links_cover_enough_reports"),
        ("reports", "no_raw_identifiers"), ("splits", "no_raw_identifiers")])
    per_shard = run_checks(settings, [
        ("masked_clips", "masked_clips_have_plausible_masks"), ("masked_clips", "masking_drop_drift"),
        ("dicom_instances", "no_raw_identifiers"), ("ingest_quarantine", "quarantine_share_drift")], partition=shards[0])
    assert len(unpartitioned) == 4 and len(per_shard) == 4
    assert {key: e.passed for key, e in {**unpartitioned, **per_shard}.items() if not e.passed} == {}
    scanned = per_shard[("dicom_instances", "no_raw_identifiers")].metadata
    assert scanned["partition"].value == shards[0] and scanned["rows_scanned"].value > 0
    assert per_shard[("masked_clips", "masked_clips_have_plausible_masks")].metadata["masked_clips"].value > 0


def test_split_leak_fails_the_blocking_check(built, tmp_path):
    cohort, data_root, _ = built
    root = copy_root(data_root, tmp_path)
    splits = DataRoot(root).read_table("splits")
    row = splits.slice(0, 1).to_pylist()[0]
    other = next(s for s in ("train", "validation", "test") if s != row["split"])
    # The same patient again, in another split, with a study of their own.
    again = pa.Table.from_pylist([{**row, "study_instance_uid": "1.2.3.4.5", "split": other}], schema=splits.schema)
    leaked = pa.concat_tables([splits, again])
    DataRoot(root).write_table("splits", leaked)
    result = run_checks(settings_for(cohort, root), [("splits", "no_patient_in_two_splits")])
    check = result[("splits", "no_patient_in_two_splits")]
    assert not check.passed and check.metadata["leaking_patients"].value == 1


def test_implausible_or_missing_mask_fails_the_blocking_check(built, tmp_path):
    cohort, data_root, shards = built
    root = copy_root(data_root, tmp_path)
    masks = DataRoot(root).read_table("sector_masks", shards[0])
    too_large = AREA_FRACTION[1] + 0.05
    rewrite(root, "sector_masks", shards[0],
            lambda t: set_column(t, "area_fraction", [too_large] + t.column("area_fraction").to_pylist()[1:]))
    check = run_checks(settings_for(cohort, root), [("masked_clips", "masked_clips_have_plausible_masks")], shards[0])[
        ("masked_clips", "masked_clips_have_plausible_masks")]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert [p["problem"] for p in check.metadata["examples"].value] == ["area_out_of_range"]
    assert check.metadata["examples"].value[0]["sop_instance_uid"] == masks.column("sop_instance_uid")[0].as_py()

    rewrite(root, "sector_masks", shards[0], lambda t: t.slice(1))  # the first clip's mask row disappears
    problems = check_rules.masked_clip_problems(DataRoot(root).read_table("masked_clips", shards[0]),
                                            DataRoot(root).read_table("sector_masks", shards[0]))
    assert [p["problem"] for p in problems] == ["no_sector_mask"]


def test_low_link_coverage_fails_and_blocks_what_follows(built, tmp_path, monkeypatch):
    cohort, data_root, _ = built
    assert run_checks(settings_for(cohort, data_root), [("report_links", "report_links_cover_enough_reports")])[
        ("report_links", "report_links_cover_enough_reports")].passed
    monkeypatch.setenv(check_rules.MIN_LINK_COVERAGE_ENV_VAR, "1.01")
    with pytest.raises(InputContractError, match="ECHO_PIPELINE_MIN_LINK_COVERAGE"):  # refused, not ignored
        check_rules.threshold(check_rules.MIN_LINK_COVERAGE_ENV_VAR, 0.8)
    monkeypatch.delenv(check_rules.MIN_LINK_COVERAGE_ENV_VAR)

    # Reports whose keys match no study: linking runs, the check fails, report_labels never runs.
    reports = pd.read_csv(cohort / "reports.csv", dtype=str)
    reports["accession_number"] = [f"X{i}" for i in range(len(reports))]
    reports["study_instance_uid"] = [f"1.2.999.{i}" for i in range(len(reports))]
    reports["patient_id"] = [f"NOBODY{i}" for i in range(len(reports))]
    unlinkable = tmp_path / "reports.csv"
    reports.to_csv(unlinkable, index=False)
    root = copy_root(data_root, tmp_path)
    defs = build_definitions(settings_for(cohort, root, reports_path=unlinkable))
    result = dg.materialize(list(defs.assets) + list(defs.asset_checks), resources=defs.resources, raise_on_error=False,
                            selection=dg.AssetSelection.assets("reports", "report_quarantine", "report_links",
                                                               "studies_without_report", "report_labels"))
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "report_links_cover_enough_reports")
    assert not check.passed and check.metadata["coverage"].value < check_rules.DEFAULT_MIN_LINK_COVERAGE
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "report_links" in materialized and "report_labels" not in materialized


def test_identifier_check_fails_on_phi_looking_values_without_showing_them(built, tmp_path):
    cohort, data_root, _ = built
    root = copy_root(data_root, tmp_path)
    truth = pq.read_table(cohort / "truth" / "patients.parquet").to_pylist()[0]
    name, raw_id = truth["patient_name"], truth["patient_id"]  # what a leak would look like
    rewrite(root, "reports", "all",
            lambda t: set_column(t, "report_text", [f"Patient {name} seen."] + t.column("report_text").to_pylist()[1:]))
    rewrite(root, "splits", "all",
            lambda t: set_column(t, "patient_key", [raw_id] + t.column("patient_key").to_pylist()[1:]))
    shard = biggest_shard(root, "dicom_instances_by_shard")
    rewrite(root, "dicom_instances_by_shard", shard,
            lambda t: set_column(t, "manufacturer", [None, "12345678"] + t.column("manufacturer").to_pylist()[2:]))
    settings = settings_for(cohort, root)
    results = {**run_checks(settings, [("reports", "no_raw_identifiers"), ("splits", "no_raw_identifiers"),
                                       ("report_links", "no_raw_identifiers")]),
               **run_checks(settings, [("dicom_instances", "no_raw_identifiers")], shard)}
    assert results[("report_links", "no_raw_identifiers")].passed
    columns = {asset: {finding.split(":")[0] for finding in e.metadata["findings"].value}
               for (asset, _), e in results.items() if not e.passed}
    assert columns == {"reports": {"reports.report_text"}, "splits": {"splits.patient_key"},
                       "dicom_instances": {"dicom_instances.manufacturer"}}
    shown = str([e.metadata for e in results.values()])
    assert name not in shown and raw_id not in shown and "12345678" not in shown


def test_identifier_rules_on_raw_input_values(built):
    cohort, _, _ = built
    studies = pq.read_table(cohort / "truth" / "studies.parquet")
    patients = pq.read_table(cohort / "truth" / "patients.parquet")
    raw = pa.table({"patient_key": patients.column("patient_id"), "note": patients.column("patient_name"),
                    "accession_key": pa.array(studies.column("accession_number").to_pylist()[:patients.num_rows]),
                    "report_text": pa.array(["MRN: 1234567 seen today"] * patients.num_rows),
                    "patient_id": pa.array(["x"] * patients.num_rows)})
    found = {(f.column, f.rule) for f in check_rules.identifier_findings(raw, "raw")}
    assert {("patient_key", "pseudonym_format"), ("accession_key", "pseudonym_format"), ("note", "person_name"),
            ("report_text", "mrn_token"), ("patient_id", "forbidden_column")} <= found
    redacted = pa.table({"report_text": ["MRN: [REDACTED] seen today"],
                         "relative_path": [pseudonymise_path("B5F9CF5F/757358/US127002.dcm", b"k")],
                         "photometric_interpretation": ["YBR_FULL_422"], "run_id": ["12345678-1234-1234-1234-123456789012"],
                         "message": ["expected a file of at most 2147483648 bytes; found 3000000"],
                         "sop_instance_uid": ["1.2.826.0.1.3680043.8.498.123456789012345678"], "patient_key": [None]})
    assert check_rules.identifier_findings(redacted, "clean") == []


def test_the_pipelines_own_hash_ids_are_not_names_with_numbers():
    """A hex digest can read as WORD_WORD<digits> (evt_fedcba123456…): the demo's procedure_events was refused for
    one such event id. Every event id of 20,000 events passes; a name or an MRN in the same shape does not."""
    ids = [event_id(f"pat_{i:020x}", "cardiac_surgery", "2020-01-01") for i in range(20_000)]
    assert check_rules.identifier_findings(pa.table({"event_id": ids}), "events") == []
    crafted = pa.table({"event_id": ["evt_fedcba1234567890abcd", "evt_21630573481942455119"]})  # as refused ids
    assert check_rules.identifier_findings(crafted, "events") == []
    leaked = pa.table({"event_id": ["mrn_12345678901234567890", "ABBOTT_JOHN_12345678", "doe_jane_12345678"]})
    found = {(f.rule, f.rows) for f in check_rules.identifier_findings(leaked, "events")}
    assert ("digit_run", 3) in found and ("name_with_number", 2) in found


def test_identifier_rules_catch_names_and_mrns_without_markers():
    """Patient folders as archives name them: caught in paths, messages and path-like columns, no marker needed."""
    folders = ["DOE^JOHN_MRN12345678/IM_0001.dcm", "ABBOTT_JOHN_12345678/study/IM_0001.dcm"]
    leaked = pa.table({"relative_path": folders, "message": [f"cannot read {f}" for f in folders],
                       "mask_path": ["x/ABBOTT_JOHN/a.png", "x/y/12345678.png"]})
    found = {(f.column, f.rule) for f in check_rules.identifier_findings(leaked, "t")}
    assert {("relative_path", "path_format"), ("message", "person_name"), ("message", "name_with_number"),
            ("message", "digit_run"), ("mask_path", "name_pair"), ("mask_path", "digit_run")} <= found
    with pytest.raises(RawIdentifierError) as refused:
        identifiers.guard(leaked, "t")
    assert not any(part in str(refused.value) for part in ("DOE^JOHN", "ABBOTT", "JOHN", "12345678"))


def test_quarantine_drift_warns_when_the_share_jumps(built, tmp_path, monkeypatch):
    cohort, data_root, _ = built
    monkeypatch.setenv("ECHO_PIPELINE_MAX_QUARANTINE_SHARE", "0.5")  # see test_checks_pass_on_the_good_data_root
    root = copy_root(data_root, tmp_path)
    settings, instance = settings_for(cohort, root), dg.DagsterInstance.ephemeral()
    shard = biggest_shard(root, "dicom_instances_by_shard")
    check = ("ingest_quarantine", "quarantine_share_drift")
    first = run_checks(settings, [check], shard, instance)[check]
    assert first.passed and first.metadata["previous_share"].value is None

    # Most of the shard's files now fail to ingest (as if a new scanner wrote truncated files).
    store = DataRoot(root)
    instances = store.read_table("dicom_instances_by_shard", shard)
    assert instances.num_rows >= 2
    keep = instances.num_rows // 4 or 1
    quarantined = store.read_table("ingest_quarantine_by_shard", shard).to_pylist() + [
        {"file_sha256": r["file_sha256"], "relative_path": r["relative_path"], "file_size": r["file_size"],
         "file_mtime_ns": r["file_mtime_ns"], "shard": shard, "reason": "truncated", "exception_type": None,
         "message": "cut short", "sop_instance_uid": None, "duplicate_of": None, "run_id": "t", "code_version": "t"}
        for r in instances.slice(keep).to_pylist()]
    store.write_table("dicom_instances_by_shard", instances.slice(0, keep), shard, schema_name="dicom_instances")
    store.write_table("ingest_quarantine_by_shard", pa.Table.from_pylist(quarantined), shard,
                      schema_name="ingest_quarantine")
    second = run_checks(settings, [check], shard, instance)[check]
    assert not second.passed and second.severity == dg.AssetCheckSeverity.WARN
    assert second.metadata["previous_share"].value == pytest.approx(first.metadata["share"].value)
    assert second.metadata["share"].value > first.metadata["share"].value and "up from" in second.description


def test_drift_rules():
    limits = check_rules.DriftLimits(max_share=0.1, max_jump=0.05)
    assert check_rules.drift_findings(0.04, 0.02, limits, "x") == []
    assert len(check_rules.drift_findings(0.09, 0.02, limits, "x")) == 1  # jumped 7 points
    assert len(check_rules.drift_findings(0.2, 0.19, limits, "x")) == 1  # above the maximum
    assert check_rules.drift_findings(0.09, None, limits, "x") == []  # nothing to compare with yet


# --- observed inputs ----------------------------------------------------------------------------------------


def observe(settings: PipelineSettings, instance: dg.DagsterInstance) -> dict[tuple[str, str | None], str]:
    result = build_definitions(settings).resolve_job_def("observe_inputs").execute_in_process(instance=instance)
    assert result.success
    observations = [e.event_specific_data.asset_observation for e in result.all_events
                    if e.event_type_value == "ASSET_OBSERVATION"]
    return {(o.asset_key.to_user_string(), o.partition): o.tags["dagster/data_version"] for o in observations}


def test_observed_inputs_change_version_exactly_when_their_content_changes(built, tmp_path):
    cohort, _, _ = built
    copy = tmp_path / "cohort"
    shutil.copytree(cohort / "dicom", copy / "dicom")
    shutil.copy(cohort / "reports.csv", copy / "reports.csv")
    settings, instance = settings_for(copy, tmp_path / "out", view_labels_path=None), dg.DagsterInstance.ephemeral()
    before = observe(settings, instance)
    assert len({key for key in before if key[0] == "dicom_root"}) == configured_shard_count()
    assert before[("view_labels_file", None)] == "not-configured"
    assert observe(settings, instance) == before  # nothing changed: the same versions

    added = next(name for name in (f"incoming/new{i}.dcm" for i in range(1000))
                 if shard_of(name, configured_shard_count()) == "00")
    (copy / "dicom" / "incoming").mkdir()
    (copy / "dicom" / added).write_bytes(b"not a dicom file")
    reports = copy / "reports.csv"
    reports.touch()  # a new mtime, the same bytes: not a new version
    after = observe(settings, instance)
    assert {key for key in before if before[key] != after[key]} == {("dicom_root", "00")}

    reports.write_bytes(reports.read_bytes() + b"\n")
    assert {key for key in after if after[key] != observe(settings, instance)[key]} == {("reports_file", None)}
