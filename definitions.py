"""The one place that assembles the Dagster `Definitions` (loaded by `dagster dev` via workspace.yaml, and by
`dg dev` / `dg check defs` via `[tool.dg]` in pyproject.toml)."""

from __future__ import annotations

import dagster as dg

from assets import STAGE_MODULES, automation, observations
from assets.partitions import with_variants
from assets.publishing import column_schema_checks, with_table_metadata
from echo_pipeline.settings import PipelineSettings
from resources import PipelineResource


def build_definitions(settings: PipelineSettings | None = None) -> dg.Definitions:
    """Definitions over the given settings (the command line, tests), or by default over the `ECHO_PIPELINE_*`
    environment variables as `dg.EnvVar`s, then the demo paths (`dagster dev`, which loads ./.env)."""
    pipeline = PipelineResource.from_settings(settings) if settings else PipelineResource.from_env()
    # Pretrained models (ECHO_PIPELINE_PRETRAINED) are partitions of the variant assets, fixed at load time.
    variant_names = (settings or PipelineSettings.from_env()).variant_names
    assets = with_variants(dg.load_assets_from_modules(STAGE_MODULES), variant_names)
    assets = automation.with_automation(with_table_metadata(assets))
    return dg.Definitions(
        assets=assets,
        asset_checks=[*dg.load_asset_checks_from_modules(STAGE_MODULES), *column_schema_checks(assets)],
        resources={
            "pipeline": pipeline,
            # Training runs in a subprocess here; a PipesK8sClient (dagster-k8s) runs it on a GPU pod instead.
            "pipes_client": dg.PipesSubprocessClient(),
        },
        schedules=observations.SCHEDULES,
        sensors=automation.SENSORS,
    )


defs = build_definitions()
