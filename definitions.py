"""The one place that assembles the Dagster `Definitions` (loaded by `dagster dev` via workspace.yaml, and by
`dg dev` / `dg check defs` via `[tool.dg]` in pyproject.toml)."""

from __future__ import annotations

import dagster as dg

from assets import STAGE_MODULES, automation, observations
from assets.publishing import column_schema_checks, with_table_metadata
from echo_pipeline.settings import PipelineSettings
from resources import PipelineResource


def build_definitions(settings: PipelineSettings | None = None) -> dg.Definitions:
    """Definitions over the given settings (default: environment variables, then the demo paths)."""
    settings = settings or PipelineSettings.from_env()
    assets = automation.with_automation(with_table_metadata(dg.load_assets_from_modules(STAGE_MODULES)))
    return dg.Definitions(
        assets=assets,
        asset_checks=[*dg.load_asset_checks_from_modules(STAGE_MODULES), *column_schema_checks(assets)],
        resources={
            "pipeline": PipelineResource.from_settings(settings),
            # Training runs in a subprocess here; a PipesK8sClient (dagster-k8s) runs it on a GPU pod instead.
            "pipes_client": dg.PipesSubprocessClient(),
        },
        schedules=observations.SCHEDULES,
        sensors=automation.SENSORS,
    )


defs = build_definitions()
