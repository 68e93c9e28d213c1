"""The pipeline's inputs as observable source assets, so the UI marks stale exactly what new data made stale.

Observing records a data version per input (echo_pipeline.fingerprints): `dicom_root` per shard (from
directory entries; no file is opened), `reports_file`, `events_file` and `view_labels_file` from their bytes. Ingestion
depends on `dicom_root`, the reports on `reports_file`, the procedure events on `events_file`, the view classifier on `view_labels_file`; when an
observation finds a new version, those assets (and only those, with what is downstream of them) show as
stale. Observe from the UI (select the sources, *Observe sources*) or with the `input_observation` schedule, whose
new versions the automation (assets/automation.py) acts on.

`@observable_source_asset` (beta in Dagster 1.13, not deprecated) is used rather than
`@multi_observable_source_asset` because it is the API that records one data version per partition
(`DataVersionsByPartition`): a new file in one shard makes only that shard's ingestion stale.
"""

import dagster as dg

from assets.partitions import SHARDS
from echo_pipeline import fingerprints
from echo_pipeline.errors import InputContractError
from echo_pipeline.sharding import configured_shard_count
from resources import PipelineResource

GROUP = "inputs"


@dg.observable_source_asset(
    partitions_def=SHARDS, group_name=GROUP,
    description="The DICOM archive (ECHO_PIPELINE_DICOM_ROOT). Data version per shard: sha256 over the sorted "
                "(relative path, size, mtime_ns) of its files, from directory entries only.",
)
def dicom_root(context, pipeline: PipelineResource) -> dg.DataVersionsByPartition:
    whole, per_shard, counts = fingerprints.dicom_root_fingerprints(pipeline.settings.dicom_root, configured_shard_count())
    context.log.info(f"dicom_root {pipeline.settings.dicom_root}: {sum(counts.values())} files, "
                     f"fingerprint {whole[:16]}; per shard: " + ", ".join(f"{s}={v[:8]}" for s, v in per_shard.items()))
    return dg.DataVersionsByPartition({shard: dg.DataVersion(version) for shard, version in per_shard.items()})


@dg.observable_source_asset(
    group_name=GROUP,
    description="The reports file (ECHO_PIPELINE_REPORTS). Data version: sha256 of its bytes.",
)
def reports_file(pipeline: PipelineResource) -> dg.ObserveResult:
    return _file_version(pipeline.settings.reports_path, "reports")


@dg.observable_source_asset(
    group_name=GROUP,
    description="The procedure events file (ECHO_PIPELINE_EVENTS), when configured. Data version: sha256 of its "
                f"bytes, or '{fingerprints.NOT_CONFIGURED}'.",
)
def events_file(pipeline: PipelineResource) -> dg.ObserveResult:
    return _optional_file(pipeline.settings.events_path, "events", "ECHO_PIPELINE_EVENTS")


def _optional_file(path, what: str, variable: str) -> dg.ObserveResult:
    """The data version of an optional input file: its bytes' sha256, or NOT_CONFIGURED when unset."""
    if path is None:
        return dg.ObserveResult(data_version=dg.DataVersion(fingerprints.NOT_CONFIGURED),
                                metadata={"path": "(not configured)"})
    if not path.is_file():
        raise InputContractError(f"{what} {path}: does not exist; set {variable} to the {what} file or unset it "
                                 "(docs/input-contract.md)")
    return _file_version(path, what)


def _file_version(path, what: str) -> dg.ObserveResult:
    """An input file's data version: the sha256 of its bytes."""
    return dg.ObserveResult(data_version=dg.DataVersion(fingerprints.file_fingerprint(path, what)),
                            metadata={"path": str(path), "bytes": path.stat().st_size})


@dg.observable_source_asset(
    group_name=GROUP,
    description="The view labels file (ECHO_PIPELINE_VIEW_LABELS), when configured. Data version: sha256 of "
                f"its bytes, or '{fingerprints.NOT_CONFIGURED}'.",
)
def view_labels_file(pipeline: PipelineResource) -> dg.ObserveResult:
    return _optional_file(pipeline.settings.view_labels_path, "view_labels", "ECHO_PIPELINE_VIEW_LABELS")


observe_inputs_job = dg.define_asset_job(
    "observe_inputs", selection=dg.AssetSelection.assets(dicom_root.key, reports_file.key, view_labels_file.key,
                                                          events_file.key),
    description="Record the inputs' data versions; assets that read a changed input then show as stale.",
)


#: Every 5 minutes: what the automation (assets/automation.py) reacts to is at most this old.
OBSERVATION_CRON = "*/5 * * * *"


@dg.schedule(cron_schedule=OBSERVATION_CRON, target=observe_inputs_job, default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Every 5 minutes: observe the inputs (directory entries and two small files; cheap). "
                         "A new data version is what the pipeline_automation sensor reacts to.")
def input_observation():
    return dg.RunRequest()


SCHEDULES = [input_observation]
