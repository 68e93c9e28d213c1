"""The `echo-pipeline` command: synth, run, search, explain (PromptCAM), report (a study's read), sql and source-path.

This module sits on top of everything (core ← assets ← definitions ← here), which is why it, and not
`echo_pipeline/`, may start Dagster runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from echo_pipeline.errors import EchoPipelineError
from echo_pipeline.settings import ENV_VAR_HELP, PRESET_NAMES

EXAMPLE_SQL = [
    "SELECT view, count(*) FROM view_predictions GROUP BY view ORDER BY 2 DESC;",
    "SELECT reason, count(*) FROM ingest_quarantine GROUP BY reason;",
    "SELECT transfer_syntax_uid, photometric_interpretation, count(*) FROM dicom_instances GROUP BY ALL;",
    "SELECT link_method, count(*) FROM report_links GROUP BY link_method;",
    "SELECT * FROM eval_summary;",
]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _environment_epilog() -> str:
    lines = ["environment variables (a flag wins over its variable):"]
    lines += [f"  {name:<34} {meaning}" for name, meaning in ENV_VAR_HELP.items()]
    return "\n".join(lines)


def _package_version() -> str:
    try:
        return version("echo-pipeline")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="echo-pipeline", description=__doc__.splitlines()[0],
                                     epilog=_environment_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a synthetic echo cohort (DICOM, reports, labels, truth)")
    synth.add_argument("out_dir", type=Path, help="folder to create; dicom/, reports.csv, events.csv, view_labels.csv, truth/")
    synth.add_argument("--patients", type=int, default=160, help="number of patients (default 160: the demo)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes identical files")
    synth.add_argument("--workers", type=int, default=None, help="processes for rendering (default: all cores)")
    synth.add_argument("--events-change-nothing", action="store_true",
                       help="null cohort: write the procedure events but draw every study as if none happened")

    run = commands.add_parser("run", help="materialize the asset graph in-process and fill DATA_ROOT/echo.duckdb",
                              epilog=_environment_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--dicom-root", type=Path, required=True, help="folder scanned recursively for DICOM files")
    run.add_argument("--reports", type=Path, required=True, help="reports CSV or Parquet (see docs/input-contract.md)")
    run.add_argument("--events", type=Path, default=None,
                     help="optional procedure events CSV/Parquet: patient_id, procedure, event_date "
                          "(docs/input-contract.md); without it the clinical-change tables stay empty")
    run.add_argument("--view-labels", type=Path, default=None, help="optional CSV/Parquet: sop_instance_uid, view")
    run.add_argument("--view-classifier", type=Path, default=None, metavar="CARD_JSON",
                     help="a saved view classifier's card.json (DATA_ROOT/arrays/view_classifier/<id>/card.json of "
                          "an earlier run); used when --view-labels is not given")
    run.add_argument("--echonet-root", type=Path, default=None, help="optional EchoNet-Dynamic folder (external test)")
    run.add_argument("--data-root", type=Path, default=Path("data/out"), help="output folder (default data/out)")
    run.add_argument("--split-fractions", default=None, metavar="TRAIN,VAL,TEST",
                     help="patient split fractions (default 0.89,0.01,0.10; the demo uses 0.6,0.1,0.3)")
    run.add_argument("--preset", default=None, choices=PRESET_NAMES,
                     help="model preset: echo-tiny (default, 2 CPU cores), echoclip (the paper's, GPU)")
    run.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (default: the preset's)")
    run.add_argument("--label-rules", type=Path, default=None, metavar="FILE",
                     help="a site's report label rules (YAML) merged over the packaged ones (docs/reports.md)")
    run.add_argument("--pretrained", action="append", default=None, metavar="NAME=DIR",
                     help="a published open_clip hub-layout directory as model variant NAME: embedded, indexed and "
                          "evaluated without training; options: NAME=DIR,vocabulary=FILE (published template "
                          "vocabulary),preprocessing=published_crop (repeatable; docs/training.md)")
    run.add_argument("--init-from", action="append", default=None, metavar="[VARIANT=]DIR",
                     help="clip_model starts from this hub-layout directory's weights (every trained variant, or "
                          "VARIANT=DIR for one; repeatable)")
    run.add_argument("--prompts", type=Path, default=None, metavar="FILE",
                     help="evaluation prompts: a prompts YAML or a published prompt JSON (docs/evaluation.md)")
    run.add_argument("--select", default=None, help="comma-separated asset names; their upstream assets run too")

    search = commands.add_parser("search", help="top-k reports for a clip, or top-k clips for a text")
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--clip", metavar="SOP_UID", help="a clip the pipeline embedded (its SOP Instance UID)")
    query.add_argument("--dicom", type=Path, metavar="PATH", help="a DICOM clip, masked and embedded on the fly")
    query.add_argument("--text", help="free text; finds the clips nearest to it")
    search.add_argument("--data-root", type=Path, default=Path("data/out"), help="the pipeline's output folder")
    search.add_argument("--variant", default="bpe",
                        help="model variant: bpe (default), template, or a --pretrained model's NAME")
    search.add_argument("-k", type=int, default=10, help="results to show (default 10)")
    search.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")

    explain = commands.add_parser("explain", help="PromptCAM: the regions of a clip's frame that raise its "
                                  "similarity to a prompt, as a PNG")
    source = explain.add_mutually_exclusive_group(required=True)
    source.add_argument("--clip", metavar="SOP_UID", help="a clip of masked_clips (its SOP Instance UID)")
    source.add_argument("--dicom", type=Path, metavar="PATH", help="a DICOM clip, masked on the fly")
    explain.add_argument("--prompt", required=True, help='e.g. "A PACEMAKER LEAD IS SEEN IN THE RIGHT HEART."')
    explain.add_argument("--variant", choices=("bpe", "template"), default="bpe", help="model variant (default bpe)")
    explain.add_argument("--data-root", type=Path, default=Path("data/out"), help="the pipeline's output folder")
    explain.add_argument("--frame", type=int, default=None,
                         help="frame to explain (default: the embedded frame most similar to the prompt)")
    explain.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    explain.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.png", help="the PNG to write")

    report = commands.add_parser("report", help="a study's preliminary read (study_reports) as text")
    report.add_argument("--study", required=True, metavar="UID", help="the study's Study Instance UID")
    report.add_argument("--variant", choices=("bpe", "template"), default="bpe", help="model variant (default bpe)")
    report.add_argument("--data-root", type=Path, default=Path("data/out"), help="the pipeline's output folder")

    sql = commands.add_parser("sql", help="run a read-only SQL query over the catalog's tables and print the result")
    sql.add_argument("query", help='e.g. "SELECT reason, count(*) FROM ingest_quarantine GROUP BY reason"')
    sql.add_argument("--data-root", type=Path, default=Path("data/out"), help="the pipeline's output folder")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    sql.add_argument("--max-rows", type=_positive_int, default=1000,
                     help="rows to print at most in table format (default 1000; csv and json print all)")

    source = commands.add_parser(
        "source-path", help="the archive path behind a pseudonymised relative_path or a SOP instance UID (reads "
                            "the owner-only mapping DATA_ROOT/secrets/source_paths/; docs/input-contract.md)")
    source.add_argument("items", nargs="+", metavar="RELATIVE_PATH_OR_UID")
    source.add_argument("--data-root", type=Path, default=Path("data/out"), help="the pipeline's output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "synth":
            return _synth(args)
        if args.command == "run":
            return _run(args)
        if args.command == "search":
            return _search(args)
        if args.command == "sql":
            return _sql(args)
        if args.command == "source-path":
            return _source_path(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "report":
            return _report(args)
    except EchoPipelineError as error:
        print(f"echo-pipeline {args.command}: {error}", file=sys.stderr)
        return 2
    return 1


def _synth(args: argparse.Namespace) -> int:
    from echo_pipeline.synth.cohort import generate_cohort

    if args.patients < 2:
        raise SystemExit("echo-pipeline synth: --patients must be at least 2")
    paths = generate_cohort(args.out_dir, patients=args.patients, seed=args.seed, workers=args.workers,
                            events_change_anatomy=not args.events_change_nothing)
    print(f"cohort written to {args.out_dir} (ground truth in {paths.truth_dir})")
    return 0


def _search(args: argparse.Namespace) -> int:
    from echo_pipeline.search.searcher import run_search

    print(run_search(args.data_root, variant=args.variant, k=args.k, clip=args.clip, dicom=args.dicom,
                     text=args.text, device=args.device))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from echo_pipeline.interpretation.saliency_panels import explain

    print(explain(args.data_root, prompt=args.prompt, out=args.out, variant=args.variant, clip=args.clip,
                  dicom=args.dicom, frame=args.frame, device=args.device))
    return 0


def _report(args: argparse.Namespace) -> int:
    from echo_pipeline.interpretation.study_reports import report_text
    from echo_pipeline.storage import DataRoot

    print(report_text(DataRoot(args.data_root), args.study, args.variant))
    return 0


def _sql(args: argparse.Namespace) -> int:
    from echo_pipeline.sql_console import format_result, run_read_only

    frame = run_read_only(args.data_root, args.query)
    print(format_result(frame, args.format, max_rows=args.max_rows))
    return 0


def _source_path(args: argparse.Namespace) -> int:
    from echo_pipeline import catalog
    from echo_pipeline.source_paths import SourcePaths
    from echo_pipeline.storage import DataRoot

    store = DataRoot(args.data_root)
    with catalog.open_reader(store) as con:
        views = set(catalog.available_views(store))
        sql = " UNION ALL ".join(f"SELECT sop_instance_uid, relative_path FROM {view}"
                                 for view in ("dicom_instances", "ingest_quarantine") if view in views)
        by_uid: dict[str, list[str]] = {}
        for uid, path in con.execute(sql).fetchall() if sql else []:
            by_uid.setdefault(uid, []).append(path)
    for item, pseudonym, raw in SourcePaths(store.path).lookup(by_uid, args.items):
        print(f"{item}\t{pseudonym}\t{raw}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from echo_pipeline.settings import ENV_VARS, PipelineSettings, parse_split_fractions

    # Flags win; settings without a flag (shard count, preset, epochs...) still come from the environment.
    settings = dataclasses.replace(
        PipelineSettings.from_env(),
        dicom_root=args.dicom_root,
        reports_path=args.reports,
        **({"events_path": args.events} if args.events else {}),
        view_labels_path=args.view_labels,
        **({"view_classifier_path": args.view_classifier} if args.view_classifier else {}),
        echonet_dynamic_root=args.echonet_root,
        data_root=args.data_root,
        **({"split_fractions": parse_split_fractions(args.split_fractions)} if args.split_fractions else {}),
        **({"model_preset": args.preset} if args.preset else {}),
        **({"train_epochs": args.epochs} if args.epochs else {}),
        **({"label_rules_path": args.label_rules} if args.label_rules else {}),
        **({"pretrained": tuple(args.pretrained)} if args.pretrained else {}),
        **({"init_from": tuple(args.init_from)} if args.init_from else {}),
        **({"prompts_path": args.prompts} if args.prompts else {}),
    )
    settings.validate()
    if settings.label_rules_path is not None:  # the report assets' code version is read from it when they load
        os.environ[ENV_VARS["label_rules_path"]] = str(settings.label_rules_path)
    selection = [name.strip() for name in args.select.split(",") if name.strip()] if args.select else None
    ok = materialize_graph(settings, selection)
    print(summarise_catalog(settings, EXAMPLE_SQL))
    return 0 if ok else 1


# Dagster's in-process default is DEBUG (every engine event); INFO keeps step starts, asset logs and failures.
_CONSOLE_LOG_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


#: What .dagster_home/dagster.yaml sets too: the `echo_pipeline` loggers' records go into the run's log.
INSTANCE_LOG_SETTINGS = {"python_logs": {"managed_python_loggers": ["echo_pipeline"], "python_log_level": "INFO"}}


def _open_instance():
    """The DAGSTER_HOME instance, or an ephemeral one without DAGSTER_HOME. Opening a new home creates its
    SQLite tables; two runs started together on one would both create them and one fails ("table runs
    already exists"), so the opening happens under a lock file in the home folder."""
    import dagster as dg

    from echo_pipeline.locks import exclusive_lock
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.ephemeral(settings=INSTANCE_LOG_SETTINGS)
    with exclusive_lock(Path(home) / ".echo-pipeline-instance.lock"):
        return dg.DagsterInstance.get()


def materialize_graph(settings, selection: list[str] | None) -> bool:
    """Materialize the selected assets (and everything upstream of them) in dependency order.

    Assets with different partitions alternate along the graph (ingestion per shard, the view classifier
    over all shards, view predictions per shard, ..., the model and evaluation per model variant), so the
    graph runs as a sequence of batches: each batch is the largest set of ready assets sharing one
    partitions definition, run once per partition key.
    """
    import dagster as dg

    from definitions import build_definitions

    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    wanted = (dg.AssetSelection.assets(*selection).upstream().required_multi_asset_neighbors()
              if selection else dg.AssetSelection.all())
    try:
        remaining = set(wanted.resolve(graph))
    except dg.DagsterInvalidSubsetError as error:
        raise SystemExit(f"echo-pipeline run: --select names an unknown asset ({error})") from error
    instance = _open_instance()
    # Observing first records the inputs' data versions that this run consumes, so the UI later marks as
    # stale exactly what a changed input or code version affects (not everything, for lack of a baseline).
    print("==> observing inputs (dicom_root, reports_file, view_labels_file, events_file)", flush=True)
    observed = defs.resolve_job_def("observe_inputs").execute_in_process(
        instance=instance, raise_on_error=False, run_config=_CONSOLE_LOG_INFO)
    if not observed.success:
        print(f"echo-pipeline run: observing the inputs failed: {failure_reason(observed)}", file=sys.stderr)
        return False
    assets = list(defs.assets or []) + list(defs.asset_checks or [])  # checks of selected assets run too
    resources = defs.resources or {}
    while remaining:
        batch = _next_batch(graph, remaining)
        partitions_def = graph.get(next(iter(batch))).partitions_def
        names = ", ".join(sorted(key.to_user_string() for key in batch))
        for partition in partitions_def.get_partition_keys() if partitions_def else [None]:
            where = f" [{partition}]" if partition else ""
            print(f"==> materializing {names}{where}", flush=True)
            result = dg.materialize(
                assets, selection=dg.AssetSelection.assets(*batch), partition_key=partition,
                resources=resources, instance=instance, raise_on_error=False, run_config=_CONSOLE_LOG_INFO,
            )
            if not result.success:
                print(f"echo-pipeline run: materialization of {names}{where} failed: {failure_reason(result)}",
                      file=sys.stderr)
                return False
        remaining -= batch
    return True


def failure_reason(result) -> str:
    """The failing step's own error in one line (the innermost cause: the user-code exception, not Dagster's
    wrapper), e.g. "clip_model: InputContractError: reports ...: no such file"."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            message = " ".join(error.message.split())
            qualified, _, text = message.partition(": ")  # "echo_pipeline.errors.InputContractError: ..."
            if text and qualified.rsplit(".", 1)[-1] == error.cls_name:
                message = f"{error.cls_name}: {text}"
            return f"{event.step_key}: {message}"
    return "no step reported an error (see the log above)"


def _next_batch(graph, remaining: set) -> set:
    """Ready assets sharing one partitions definition, grown by such descendants as they become ready."""
    def is_ready(key, done_in_batch: set) -> bool:
        return all(parent not in remaining or parent in done_in_batch for parent in graph.get(key).parent_keys)

    first = next(key for key in sorted(remaining) if is_ready(key, set()))
    partitions_def = graph.get(first).partitions_def
    batch: set = set()
    grew = True
    while grew:
        grew = False
        for key in sorted(remaining - batch):
            same_kind = graph.get(key).partitions_def == partitions_def
            if same_kind and is_ready(key, batch):
                batch.add(key)
                grew = True
    return batch


def summarise_catalog(settings, example_sql: list[str]) -> str:
    """Where the results are, what each table holds, and queries to paste into `duckdb`."""
    from echo_pipeline import catalog
    from echo_pipeline.storage import DataRoot

    store = DataRoot(settings.data_root)
    views = catalog.publish(store)
    con = catalog.open_reader(store)
    lines = [f"\nResults: {store.catalog_path}", "Tables:"]
    lines += [f"  {view:<32} {con.execute(f'SELECT count(*) FROM {view}').fetchone()[0]:>8} rows" for view in views]
    lines += ["", f"Query them:  duckdb {store.catalog_path}"]
    lines += [f"  {sql}" for sql in example_sql if sql.split(" FROM ")[1].split()[0].rstrip(";") in views]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
