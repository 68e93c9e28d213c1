"""Declarative automation: which assets follow their inputs at once, which catch up nightly, and the one
sensor that evaluates it all.

One change-detection path: the inputs' observations (`assets/observations.py`, the `input_observation`
schedule) record a data version per input, and Dagster's automation conditions read those versions, the
assets' materialisations and their code versions. Nothing here fingerprints files again.

- `ON_INPUT_CHANGE` (`eager`, plus a new code version): the per-file stages (groups ingestion, views,
  masking) and the reports group run as soon as what they read changed: a new version of an observed input
  (only the changed shards of `dicom_root`), a new materialisation upstream, or their own code version.
  Each is incremental, so a run reuses everything unchanged.
- `NIGHTLY_WHEN_STALE` (at `NIGHTLY_CRON`, 02:00 UTC): the embeddings, the indexes and the evaluation tables,
  per model variant, when they are missing or something they read (a new model, new masked clips or reports,
  new labels or splits) or their code version changed since they last ran; a variant without a model waits.
- Never automatic (`MANUAL`): training a model (`view_classifier`; `clip_model` and the tokenizer's
  vocabulary have no condition either) is a decision made from the UI or `echo-pipeline run`.

`pipeline_automation` evaluates the conditions every 30 s; it is defined STOPPED (switch it on under
*Automation*, docs/search.md). `with_automation` attaches the conditions by group in definitions.py, so an asset
added to one of these groups is automated like its neighbours.
"""

from collections.abc import Sequence

import dagster as dg

NIGHTLY_CRON = "0 2 * * *"
ON_CHANGE_GROUPS = {"ingestion", "views", "masking", "reports"}
NIGHTLY_GROUPS = {"embeddings", "evaluation"}
MANUAL = {"view_classifier", "view_training_clips"}  # one multi-asset: training the view classifier

_AC = dg.AutomationCondition
_READY = ~_AC.any_deps_missing() & ~_AC.any_deps_in_progress() & ~_AC.in_progress()

ON_INPUT_CHANGE = (_AC.eager() | (_AC.code_version_changed() & _READY)).with_label("on input or code change")

_CHANGED_SINCE_LAST_RUN = (_AC.any_deps_updated() | _AC.code_version_changed()).since(
    _AC.newly_requested() | _AC.newly_updated()).with_label("inputs or code changed since last run")
NIGHTLY_WHEN_STALE = (
    _AC.cron_tick_passed(NIGHTLY_CRON) & (_AC.missing() | _CHANGED_SINCE_LAST_RUN)
    & ~_AC.any_deps_missing() & ~_AC.in_progress()
).with_label(f"nightly ({NIGHTLY_CRON} UTC) when stale")


def condition_for(spec: dg.AssetSpec) -> dg.AutomationCondition | None:
    """The automation condition of an asset, from its group (None: never automatic)."""
    if spec.key.to_user_string() in MANUAL:
        return None
    if spec.group_name in ON_CHANGE_GROUPS:
        return ON_INPUT_CHANGE
    return NIGHTLY_WHEN_STALE if spec.group_name in NIGHTLY_GROUPS else None


def with_automation(definitions: Sequence) -> list:
    """The asset definitions with each one's automation condition attached (source assets pass through)."""
    return [d.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=condition_for(spec)))
            if isinstance(d, dg.AssetsDefinition) else d for d in definitions]


pipeline_automation = dg.AutomationConditionSensorDefinition(
    "pipeline_automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs what changed inputs made stale (ingestion, views, masking, reports) and, nightly, the "
                "embeddings, indexes and evaluation tables of each variant whose inputs or model changed.",
)

SENSORS = [pipeline_automation]
