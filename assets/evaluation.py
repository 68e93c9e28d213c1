"""Stage 8: the trained model of each variant evaluated on the test split (and EchoNet-Dynamic when configured).

One multi-asset per variant writes the six `eval_*` tables (one Parquet partition per variant, so the DuckDB
views show both variants side by side), the figures under `arrays/eval_plots/<variant>/`, and the headline
numbers in the UI. What is measured and how: docs/evaluation.md.
"""

import dagster as dg
import pyarrow.compute as pc

from assets.partitions import MODEL_VARIANTS
from assets.publishing import publish_catalog, table_metadata
from echo_pipeline import model_variants
from echo_pipeline.figures import markdown_image
from echo_pipeline.evaluation import DEFAULT_PROMPTS_PATH
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.figure_files import save_figures
from echo_pipeline.evaluation.run import EvalSettings, evaluate_variant
from resources import PipelineResource

GROUP = "evaluation"
# report_index: the knn_reports rows search it (evaluation/knn_reports.py)
_DEPS = ["clip_model", "clip_embeddings", "report_embeddings", "report_index", "report_labels", "splits",
         "template_vocabulary"]
_DESCRIPTIONS = {
    "eval_retrieval": "Image↔report retrieval on the test split: mean/median rank, recall@1/5/10, MCMRR (+95 % CI).",
    "eval_classification": "Zero-shot binary tasks: AUC, sensitivity/specificity at Youden's index, prevalence.",
    "eval_regression": "Zero-shot LVEF and PASP: MAE, bias, LVEF AUCs at 50/40/30 %; training-mean baseline.",
    "eval_patient_identification": "Same-patient AUC and mean similarity by pair type (test split clips).",
    "eval_summary": "Table 2 of the paper: one row per variant, model kind and dataset.",
    "eval_subgroups": "Table 2's metrics per age band, sex, manufacturer and image-quality band (+ CI, n; "
                      "groups under the minimum n flagged too_small).",
}


class EvalConfig(dg.Config):
    n_resamples: int = 1000  # bootstrap resamples per CI
    seed: int = 0  # bootstrap draws, the retrieval clip per study, patient pairs
    n_pairs: int = 100_000  # patient-identification pairs of each kind (same / different patient)
    device: str = "auto"  # "auto" = cuda when available, else cpu
    batch_frames: int = 64
    num_workers: int = 1
    echonet_splits: list[str] = ["TEST"]  # FileList Split values to evaluate; [] = every row
    prompts_path: str = ""  # prompts YAML or published JSON; "" = --prompts, else echo_pipeline/evaluation/prompts.yaml
    knn_k: int = 50  # nearest training reports behind a kNN-report prediction (method = knn_reports)


def _md_table(table, columns) -> str:
    df = table.to_pandas()
    return df[[c for c in columns if c in df.columns]].to_markdown(index=False, floatfmt=".3g") if len(df) else "_(empty)_"


def _figure_metadata(figures: dict, paths: dict, names) -> dict:
    """Each figure's PNG file (saved by the core) and the figure shown inline."""
    out = {}
    for name in names:
        if name in figures:
            out[f"{name}_png"] = dg.MetadataValue.path(str(paths[name]))
            out[name] = dg.MetadataValue.md(markdown_image(figures[name], name))
    return out


def _settings(config: EvalConfig, pipeline: PipelineResource) -> EvalSettings:
    return EvalSettings(n_resamples=config.n_resamples, seed=config.seed, n_pairs=config.n_pairs,
                        device=config.device, batch_frames=config.batch_frames, num_workers=config.num_workers,
                        echonet_splits=tuple(config.echonet_splits) or None,
                        prompts_path=config.prompts_path or pipeline.settings.prompts_path or DEFAULT_PROMPTS_PATH,
                        knn_k=config.knn_k)


def _auc_comparison(table) -> str:
    df = table.to_pandas()
    if df.empty:
        return "_(empty)_"
    df = df[(df["metric"] == "auc") & df["is_primary"] & (df["level"] == "clip")]
    wide = df.assign(model=df["model_kind"] + " " + df["method"]).pivot_table(
        index="task", columns="model", values="value", aggfunc="first")
    return wide.to_markdown(floatfmt=".3f")


@dg.multi_asset(
    specs=[dg.AssetSpec(name, deps=_DEPS, description=text, group_name=GROUP, kinds={"parquet", "duckdb"},
                        code_version=T.CODE_VERSION) for name, text in _DESCRIPTIONS.items()],
    partitions_def=MODEL_VARIANTS,
)
def evaluation_tables(context: dg.AssetExecutionContext, config: EvalConfig, pipeline: PipelineResource):
    variant, store = context.partition_key, pipeline.store
    record = model_variants.read_record(store, variant)
    out = evaluate_variant(store, record, run_id=context.run.run_id, settings=_settings(config, pipeline),
                           echonet_root=pipeline.settings.echonet_dynamic_root, progress=context.log.info)
    for note in out.notes:
        context.log.warning(note)
    for name, table in out.tables.items():
        store.write_table(name, table, partition=variant)
    pngs = save_figures(store, variant, out.figures)
    publish_catalog(pipeline)
    yield from _results(record, out, pngs)


def _results(record: model_variants.ModelRecord, out, pngs: dict):
    """One MaterializeResult per eval_* table: row count, headline numbers, figures, readable tables."""
    common = {"model_id": record.model_id, "checkpoint_sha256": record.checkpoint_sha256,
              "notes": dg.MetadataValue.json(out.notes)}
    headline = {k: dg.MetadataValue.text(v) for k, v in out.headline.items()}
    tables = out.tables
    yield dg.MaterializeResult(asset_key="eval_summary", metadata={
        **common, **headline, **table_metadata("eval_summary", tables["eval_summary"], partitioned=True),
        "skipped_prompt_tasks": dg.MetadataValue.json(out.skipped_tasks),
        "table_2": dg.MetadataValue.md(_md_table(tables["eval_summary"], [
            "model_source", "method", "dataset", "n", "mcmrr", "lvef_mae", "pasp_mae", "tavr_auc", "mitraclip_auc",
            "pacemaker_auc"])),
    })
    yield dg.MaterializeResult(asset_key="eval_retrieval", metadata={
        **common, **{k: v for k, v in headline.items() if k.endswith("mcmrr")},
        **table_metadata("eval_retrieval", tables["eval_retrieval"], partitioned=True),
        **_figure_metadata(out.figures, pngs, ["retrieval_ranks"]),
    })
    yield dg.MaterializeResult(asset_key="eval_classification", metadata={
        **common, **table_metadata("eval_classification", tables["eval_classification"], partitioned=True),
        "auc_by_task": dg.MetadataValue.md(_auc_comparison(tables["eval_classification"])),
        **_figure_metadata(out.figures, pngs, ["roc_internal"]),
    })
    yield dg.MaterializeResult(asset_key="eval_regression", metadata={
        **common, **{k: v for k, v in headline.items() if k.endswith("lvef_mae")},
        **table_metadata("eval_regression", tables["eval_regression"], partitioned=True),
        **_figure_metadata(out.figures, pngs, ["lvef_scatter", "pasp_scatter"]),
    })
    groups = tables["eval_subgroups"]
    yield dg.MaterializeResult(asset_key="eval_subgroups", metadata={
        **common, "dagster/row_count": groups.num_rows,
        "trained": dg.MetadataValue.md(_md_table(groups.filter(pc.equal(groups["model_kind"], "trained")), [
            "dimension", "subgroup", "metric", "value", "ci_low", "ci_high", "n_studies", "too_small"])),
    })
    patients = tables["eval_patient_identification"]
    yield dg.MaterializeResult(asset_key="eval_patient_identification", metadata={
        **common, **table_metadata("eval_patient_identification", patients, partitioned=True),
        "metrics": dg.MetadataValue.md(_md_table(patients, ["model_kind", "level", "metric", "value", "ci_low",
                                                            "ci_high", "n"])),
        **_figure_metadata(out.figures, pngs, ["serial_lvef_change"]),
    })
