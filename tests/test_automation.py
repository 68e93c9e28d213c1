"""Declarative automation, evaluated by Dagster's own condition evaluator (`dg.evaluate_automation_conditions`)
over the real Definitions: real observations of real input files drive ingestion and the reports; nightly,
only what is stale is re-embedded, re-indexed and re-evaluated. Upstream materialisations the nightly tests
need are recorded as runless events (what a real run records), so no model is trained here."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from assets import automation
from definitions import build_definitions
from echo_pipeline.settings import PipelineSettings
from echo_pipeline.sharding import configured_shard_count, shard_of

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # 01:00 UTC: an hour before the nightly tick


class Evaluator:
    """Successive evaluations of the conditions, as the sensor would make them, keeping its cursor."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def at(self, when: datetime) -> dict[str, set]:
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, evaluation_time=when,
                                                   cursor=self.cursor)
        self.cursor = result.cursor
        return {key.to_user_string(): result.get_requested_partitions(key)
                for key in (r.key for r in result.results) if result.get_num_requested(key)}


@pytest.fixture
def inputs(tmp_path):
    dicom_root, reports = tmp_path / "dicom", tmp_path / "reports.csv"
    (dicom_root / "a").mkdir(parents=True)
    (dicom_root / "a" / "one.dcm").write_bytes(b"DICM" * 10)
    reports.write_text("report_id,report_text\nR1,normal\n")
    settings = PipelineSettings(dicom_root=dicom_root, reports_path=reports, view_labels_path=None,
                                data_root=tmp_path / "out")
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(settings)
    return dicom_root, reports, defs, instance


def observe(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    assert defs.resolve_job_def("observe_inputs").execute_in_process(instance=instance).success


def test_observed_input_changes_ingest_only_the_changed_shard_and_reread_reports(inputs):
    dicom_root, reports, defs, instance = inputs
    evaluator = Evaluator(defs, instance)
    observe(defs, instance)
    evaluator.at(T0)  # the first evaluation records where things stand
    assert evaluator.at(T0 + timedelta(minutes=1)) == {}

    (dicom_root / "two.dcm").write_bytes(b"DICM" * 20)
    observe(defs, instance)
    shard = shard_of("two.dcm", configured_shard_count())
    assert evaluator.at(T0 + timedelta(minutes=5)) == {
        name: {shard} for name in ("dicom_instances", "ingest_quarantine", "scan_skipped")}

    observe(defs, instance)  # observed again, unchanged: a new observation with the same version is no change
    assert evaluator.at(T0 + timedelta(minutes=10)) == {}

    reports.write_text("report_id,report_text\nR1,normal\nR2,dilated\n")
    observe(defs, instance)
    assert evaluator.at(T0 + timedelta(minutes=15)) == {"reports": {None}, "report_quarantine": {None}}


def materialized(instance: dg.DagsterInstance, names, partitions=(None,)) -> None:
    for name in names:
        for partition in partitions:
            instance.report_runless_asset_event(dg.AssetMaterialization(name, partition=partition))


NIGHTLY_BPE = {"clip_embeddings", "report_embeddings", "video_index", "report_index", "eval_retrieval",
               "eval_classification", "eval_regression", "eval_patient_identification", "eval_summary", "eval_subgroups",
               "embedding_umap", "prompt_saliency"}  # study-level tables wait: dicom_instances is missing here


def test_nightly_reembeds_and_reevaluates_only_stale_variants_at_the_nightly_tick(inputs):
    _, _, defs, instance = inputs
    shards = [f"{i:02d}" for i in range(configured_shard_count())]
    materialized(instance, ["masked_clips"], shards)
    materialized(instance, ["reports", "report_links", "report_labels", "splits", "template_vocabulary"])
    materialized(instance, ["clip_model"], ["bpe"])  # the template variant has no model: nothing to embed with
    evaluator = Evaluator(defs, instance)
    evaluator.at(T0)
    assert evaluator.at(T0 + timedelta(minutes=30)) == {}  # stale, but the nightly tick has not come

    first_night = T0 + timedelta(hours=1, seconds=30)
    requested = evaluator.at(first_night)
    assert requested == {name: {"bpe"} for name in NIGHTLY_BPE}

    materialized(instance, sorted(NIGHTLY_BPE), ["bpe"])  # the night's run
    assert evaluator.at(first_night + timedelta(minutes=10)) == {}
    assert evaluator.at(first_night + timedelta(days=1)) == {}  # nothing changed: the next night skips

    materialized(instance, ["masked_clips"], ["00"])  # new clips masked during the day
    assert evaluator.at(first_night + timedelta(days=1, hours=8)) == {}
    assert evaluator.at(first_night + timedelta(days=2)) == {
        name: {"bpe"} for name in NIGHTLY_BPE - {"report_embeddings", "report_index"}}


def test_training_is_never_automatic_and_the_sensor_is_off_by_default():
    graph = build_definitions().resolve_asset_graph()
    for name in ("view_classifier", "clip_model", "template_vocabulary"):
        assert graph.get(dg.AssetKey(name)).automation_condition is None
    assert graph.get(dg.AssetKey("dicom_instances")).automation_condition is automation.ON_INPUT_CHANGE
    assert graph.get(dg.AssetKey("eval_summary")).automation_condition is automation.NIGHTLY_WHEN_STALE
    assert automation.pipeline_automation.default_status == dg.DefaultSensorStatus.STOPPED
