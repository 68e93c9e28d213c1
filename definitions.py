"""The one place that assembles the Dagster `Definitions` (loaded by `dagster dev` via workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from assets import STAGE_MODULES, automation, observations
from assets.partitions import with_variants
from echo_pipeline.settings import PipelineSettings
from resources import PipelineResource


def build_definitions(settings: PipelineSettings | None = None) -> dg.Definitions:
    """Definitions over the given settings (default: environment variables, then the demo paths)."""
    settings = settings or PipelineSettings.from_env()
    return dg.Definitions(
        assets=with_variants(dg.load_assets_from_modules(STAGE_MODULES), settings.variant_names),
        asset_checks=dg.load_asset_checks_from_modules(STAGE_MODULES),
        resources={
            "pipeline": PipelineResource.from_settings(settings),
            # Training runs in a subprocess here; a PipesK8sClient (dagster-k8s) runs it on a GPU pod instead.
            "pipes_client": dg.PipesSubprocessClient(),
        },
        schedules=automation.SCHEDULES + observations.SCHEDULES,
        sensors=automation.SENSORS,
    )


defs = build_definitions()
