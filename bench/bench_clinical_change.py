"""The clinical-change bars of issue 21, measured on two synthetic cohorts through the real asset graph.

Two cohorts of the same patients and events: in one the studies after an event show it (a new heart, a
shifted one, a device), in the other nothing changes. The bars: the trained model finds the change clearly
better than the untrained one (non-overlapping 95 % CIs), and finds none where there is none (0.5 inside
every CI). This trains two models (about 30 minutes on 2 cores), so it is a measurement here, not a CI test;
the clinical-change rows, their lineage and the empty table without events are tested in tests/test_studies.py.

    python bench/bench_clinical_change.py [--patients 80] [--seed 0] [--epochs 12]

Prints `name: value` lines like the other benchmarks (docs/evaluation.md, "Clinical change", has the figures).
"""

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import dagster as dg
import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from echo_pipeline.model_variants import MODEL_VARIANTS  # noqa: E402
from echo_pipeline.settings import PipelineSettings  # noqa: E402
from echo_pipeline.synth.cohort import generate_cohort  # noqa: E402

PATIENTS, SEED, VARIANT = 80, 0, "bpe"
#: CLIP epochs and view-classifier epochs: fewer than the presets', so the two cohorts train in minutes on CPU.
EPOCHS, VIEW_EPOCHS = 12, 4
#: Every patient is analysed: the bar is about finding change, and a small cohort's test split holds few events.
CHANGE_CONFIG = {"split": "all", "n_resamples": 1000}


def run_to_clinical_change(cohort, data_root, variant: str = VARIANT, epochs: int | None = EPOCHS,
                           op_config: dict | None = None, skip: frozenset = frozenset()) -> None:
    """Materialise `eval_clinical_change[variant]` and everything upstream of it, one variant only; ``epochs``
    of CLIP training, ``op_config``: extra run config per asset name, ``skip``: assets already materialised
    in ``data_root`` not to run again."""
    op_config = {"eval_clinical_change": CHANGE_CONFIG, **(op_config or {})}
    from definitions import build_definitions
    from echo_pipeline_cli import _next_batch

    settings = dataclasses.replace(
        PipelineSettings.from_env(), dicom_root=cohort / "dicom", reports_path=cohort / "reports.csv",
        events_path=cohort / "events.csv", view_labels_path=cohort / "view_labels.csv", data_root=data_root,
        split_fractions=(0.6, 0.1, 0.3), train_epochs=epochs)
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    remaining = set(dg.AssetSelection.assets("eval_clinical_change").upstream()
                    .required_multi_asset_neighbors().resolve(graph))
    assets = list(defs.assets) + list(defs.asset_checks)
    while remaining:
        batch = _next_batch(graph, remaining)
        remaining -= batch
        batch = {k for k in batch if k.to_user_string() not in skip}
        if not batch:
            continue
        partitions_def = graph.get(next(iter(batch))).partitions_def
        keys = [None] if partitions_def is None else [
            k for k in partitions_def.get_partition_keys() if k == variant or k not in MODEL_VARIANTS]
        for key in keys:
            names = {k.to_user_string() for k in batch}
            run_config = {"ops": {name: {"config": op_config[name]} for name in op_config if name in names}}
            result = dg.materialize(assets, selection=dg.AssetSelection.assets(*batch), partition_key=key,
                                    resources=defs.resources, run_config=run_config, raise_on_error=False)
            if not result.success:
                raise RuntimeError(f"{sorted(k.to_user_string() for k in batch)}[{key}] failed")


def auc_rows(data_root) -> dict:
    con = duckdb.connect(str(data_root / "echo.duckdb"), read_only=True)
    rows = con.execute("SELECT model_kind, level, value, ci_low, ci_high, n_patients FROM eval_clinical_change "
                       "WHERE metric = 'auc_before_after' AND procedure = 'all'").fetchall()
    return {(kind, level): (value, low, high, n) for kind, level, value, low, high, n in rows}



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=PATIENTS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="CLIP training epochs (the demo's: 20)")
    args = parser.parse_args()
    measured = {}
    with tempfile.TemporaryDirectory(prefix="bench-clinical-change-") as tmp:
        for kind, change in (("change", True), ("null", False)):
            root = Path(tmp) / kind
            generate_cohort(root / "cohort", args.patients, args.seed, workers=2, progress=False,
                            events_change_anatomy=change)
            run_to_clinical_change(root / "cohort", root / "out", epochs=args.epochs,
                                   op_config={"view_classifier": {"epochs": VIEW_EPOCHS}})
            measured[kind] = auc_rows(root / "out")
            for (model_kind, level), (value, low, high, n) in sorted(measured[kind].items()):
                print(f"{kind}_{model_kind}_{level}_auc: {value:.2f} [{low:.2f}, {high:.2f}] n_patients={n}")
    trained, untrained = measured["change"][("trained", "study")], measured["change"][("untrained", "study")]
    print(f"bar_trained_above_untrained_met: {trained[1] > untrained[2]}")
    print(f"bar_no_change_found_where_none_met: {all(low < 0.5 < high for _, low, high, _ in measured['null'].values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
