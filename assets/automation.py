"""Automation: a sensor that starts ingestion when input files change, and a nightly re-embedding schedule.

Both are defined STOPPED; switch them on in the UI (Automation tab, docs/search.md). `definitions.py` adds
SCHEDULES and SENSORS; their jobs come with them.

- `new_input_files` (sensor, every 5 minutes): fingerprints each shard of `dicom_root` (sha256 over the sorted
  relative path, size and mtime of its files — directory entries only, no file is opened) and the reports file
  (size and mtime): `echo_pipeline.fingerprints.input_fingerprints`, the same shard fingerprint the
  `dicom_root` observation records. Changed shards get an ingestion run; a changed reports file gets a reports run. The cursor
  keeps the last fingerprints, so an unchanged archive requests nothing.
- `nightly_reembedding` (schedule, 02:00): per model variant, a run of the embeddings, the indexes and every
  asset downstream of them (the evaluation tables) when `echo_pipeline.model_variants.staleness` finds new
  clips or reports, a new model, or an index out of step; otherwise it skips and says so.
"""

import json

import dagster as dg

from assets.partitions import MODEL_VARIANTS
from echo_pipeline.errors import InputContractError
from echo_pipeline.fingerprints import input_fingerprints
from echo_pipeline.model_variants.staleness import staleness
from echo_pipeline.sharding import configured_shard_count
from resources import PipelineResource

NIGHTLY_CRON = "0 2 * * *"
SENSOR_INTERVAL_S = 300  # a fingerprint lists the whole archive: keep it off the default 30 s tick

ingestion_job = dg.define_asset_job(
    "ingestion_job", selection=dg.AssetSelection.assets("dicom_instances", "ingest_quarantine", "scan_skipped"),
    description="Ingest one shard of dicom_root (new or changed files only).",
)
reports_job = dg.define_asset_job(
    "reports_job", selection=dg.AssetSelection.assets("reports", "report_quarantine"),
    description="Read and validate the reports file again.",
)
reembedding_job = dg.define_asset_job(
    "reembedding_job",
    selection=dg.AssetSelection.assets(
        "clip_embeddings", "report_embeddings", "video_index", "report_index").downstream(),
    description="Embed new clips and reports of one model variant, refresh its indexes and everything downstream.",
)


@dg.sensor(jobs=[ingestion_job, reports_job], minimum_interval_seconds=SENSOR_INTERVAL_S,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Ingests shards whose files changed; re-reads the reports file when it changed.")
def new_input_files(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
    try:
        now = input_fingerprints(pipeline.settings, configured_shard_count())
    except InputContractError as error:
        return dg.SkipReason(str(error))
    before = json.loads(context.cursor) if context.cursor else {"shards": {}, "reports": None}
    requests = [
        dg.RunRequest(job_name=ingestion_job.name, partition_key=shard, run_key=f"ingest-{shard}-{fingerprint[:16]}")
        for shard in sorted(set(now["shards"]) | set(before["shards"]))  # a shard emptied since: drop its rows
        if (fingerprint := now["shards"].get(shard, "empty")) != before["shards"].get(shard, "empty")
    ]
    if now["reports"] is not None and now["reports"] != before["reports"]:
        requests.append(dg.RunRequest(job_name=reports_job.name, run_key=f"reports-{now['reports']}"))
    if not requests:
        return dg.SensorResult(skip_reason="no new or changed files under dicom_root or in the reports file",
                               cursor=json.dumps(now))
    context.log.info(f"{len(requests)} run(s) requested for changed inputs")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(now))


@dg.schedule(cron_schedule=NIGHTLY_CRON, target=reembedding_job, default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Nightly: re-embed and re-index each model variant whose embeddings are out of date.")
def nightly_reembedding(context: dg.ScheduleEvaluationContext, pipeline: PipelineResource):
    requests = []
    for variant in MODEL_VARIANTS.get_partition_keys():
        reasons = staleness(pipeline.store, variant)
        if reasons:
            context.log.info(f"{variant}: {'; '.join(reasons)}")
            requests.append(dg.RunRequest(partition_key=variant, tags={"echo/stale_reasons": "; ".join(reasons)[:200]}))
    return requests or dg.SkipReason("embeddings and indexes of every variant with a model are up to date")


SCHEDULES = [nightly_reembedding]
SENSORS = [new_input_files]
