"""Evaluate one model variant end to end: every eval_* table, the figures, and the headline numbers.

For the variant's trained model (`training.registry`), on the test split: the trained model (stored
embeddings), the random-init model of the same preset (embedded here, same prompts, same clips), and for
regression the training-split mean. With an EchoNet-Dynamic folder, LVEF regression on it too, as
``dataset = "echonet_dynamic"``. The assets call `evaluate_variant` and write what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from echo_pipeline import catalog, model_variants
from echo_pipeline.embeddings import model_fingerprint
from echo_pipeline.errors import EvaluationError
from echo_pipeline.evaluation import echonet, knn_reports, plots, subgroups, suite
from echo_pipeline.evaluation import tables as T
from echo_pipeline.evaluation.cohort import NEEDED_VIEWS, EvalCohort, read_cohort
from echo_pipeline.evaluation.knn_and_probe import knn_and_probe_results
from echo_pipeline.evaluation.model_embeddings import (ModelEncoder, stored_clip_embeddings,
                                                       stored_report_embeddings)
from echo_pipeline.evaluation.prompt_sets import embed_prompt_sets, primary_strategy, prompt_sets
from echo_pipeline.evaluation.prompts import DEFAULT_PROMPTS_PATH, PromptsFile, load_prompts
from echo_pipeline.evaluation.change_plots import serial_change_scatter
from echo_pipeline.evaluation.study_level import add_study_level
from echo_pipeline.storage import DataRoot
from echo_pipeline.training import registry
from echo_pipeline.upstream import require_tables

log = logging.getLogger(__name__)
INTERNAL = "internal"
#: Binary tasks drawn in the ROC figure (Table 2's, then the rest in prompts-file order).
ROC_FIRST = ("tavr", "mitraclip", "pacemaker")


@dataclass(frozen=True)
class EvalSettings:
    n_resamples: int = T.Bootstrap.n_resamples
    seed: int = 0  # bootstrap draws, the retrieval clip per study, patient pairs
    n_pairs: int = suite.DEFAULT_N_PAIRS
    device: str = "auto"
    batch_frames: int = 64
    num_workers: int = 1
    echonet_splits: tuple[str, ...] | None = echonet.DEFAULT_SPLITS  # None = every FileList row
    prompts_path: Path = DEFAULT_PROMPTS_PATH
    knn_k: int = knn_reports.DEFAULT_K  # training reports a kNN prediction reads


@dataclass
class EvalOutputs:
    tables: dict[str, pa.Table]
    figures: dict[str, bytes] = field(default_factory=dict)  # file stem → PNG
    notes: list[str] = field(default_factory=list)  # what was left out, and why
    skipped_tasks: list[str] = field(default_factory=list)  # prompt-file tasks not evaluated: "task: reason"
    headline: dict[str, str] = field(default_factory=dict)


def _aligned_cohort(data_root: DataRoot, record: model_variants.ModelRecord, cohort: EvalCohort, notes: list[str]):
    """The cohort reduced to clips/reports the trained model has stored embeddings for, and those arrays."""
    clip_parts = model_variants.variant_partitions(data_root, model_variants.CLIP_TABLE, record.variant) or None
    found, frames, n_frames, vectors = stored_clip_embeddings(
        data_root, record.model_id, clip_parts, cohort.clips["sop_instance_uid"].tolist())
    if not found.any():
        raise EvaluationError(f"no stored clip embedding of model {record.model_id} for the {cohort.split} clips; "
                              f"materialise clip_embeddings[{record.variant}] first")
    if not found.all():
        notes.append(f"{int((~found).sum())} {cohort.split} clips have no stored embedding and are left out")
    cohort = cohort.keep_clips(found)
    report_parts = model_variants.variant_partitions(data_root, model_variants.REPORT_TABLE, record.variant) or None
    r_found, reports = stored_report_embeddings(data_root, record.model_id, report_parts,
                                                cohort.reports["report_id"].tolist())
    if not r_found.all():
        notes.append(f"{int((~r_found).sum())} {cohort.split} reports have no stored embedding: "
                     "their studies are left out of retrieval")
    cohort = cohort.keep_reports(cohort.reports["report_id"][r_found])
    return cohort, (frames, n_frames, vectors, reports)


def _embed_untrained(encoder: ModelEncoder, data_root: DataRoot, cohort: EvalCohort, notes: list[str],
                     progress: Callable[[str], None]):
    clips = encoder.clips(data_root, cohort.clips,
                          progress=lambda done, total: progress(f"untrained model: {done}/{total} clips embedded"))
    if clips.failed:
        notes.append(f"{len(clips.failed)} clips could not be re-read for the untrained model and are left out "
                     f"(first: {clips.failed[0][0]}: {clips.failed[0][1]})")
    reports = encoder.reports(cohort.reports["report_text"].tolist()) if len(cohort.reports) else np.zeros((0, 0))
    return clips, reports


def _echonet_rows(files: pd.DataFrame, encoder: ModelEncoder, prompt_embeddings, prompts: PromptsFile,
                  lineage: T.Lineage, boot: T.Bootstrap, notes: list[str],
                  progress: Callable[[int, int], None] | None) -> tuple[suite.ModelResult, list[str]]:
    videos = echonet.embed_videos(files, encoder.video_frames, progress=progress)
    if videos.failed:
        notes.append(f"{lineage.model_kind}: {len(videos.failed)} EchoNet videos unreadable "
                     f"(first: {videos.failed[0][0]}: {videos.failed[0][1]})")
    ef = files.set_index("FileName").loc[videos.names, "EF"].to_numpy(dtype=np.float64)
    names = np.asarray(videos.names, dtype=object)
    result = suite.ModelResult()
    sets = [e for e in prompt_embeddings if e.prompts.label == "lvef"]
    suite.regression_task_rows(result, videos.frames, videos.n_frames, {"lvef": (np.arange(len(names)), ef)},
                               names, sets, prompts, lineage, boot)
    return result, videos.names


def evaluate_variant(data_root: DataRoot, record: model_variants.ModelRecord, *, run_id: str,
                     settings: EvalSettings = EvalSettings(), echonet_root: str | Path | None = None,
                     progress: Callable[[str], None] = log.info) -> EvalOutputs:
    """All eval_* tables (one partition's worth: this variant) plus figures, headline and notes."""
    require_tables(data_root, NEEDED_VIEWS)
    prompts = load_prompts(settings.prompts_path)
    boot = T.Bootstrap(settings.n_resamples, settings.seed)
    notes: list[str] = []
    con = catalog.open_reader(data_root)
    cohort = read_cohort(con)
    cohort, (frames, n_frames, vectors, reports) = _aligned_cohort(data_root, record, cohort, notes)

    tokenizer = registry.load_tokenizer(record)
    kwargs = dict(device=settings.device, batch_frames=settings.batch_frames, num_workers=settings.num_workers,
                  preprocessing=record.preprocessing)
    trained = ModelEncoder(registry.load_model(record), tokenizer, **kwargs)
    untrained = ModelEncoder(registry.untrained_model(record, tokenizer), tokenizer, **kwargs)
    progress(f"embedding {len(cohort.clips)} test clips and {len(cohort.reports)} reports with the untrained model")
    u_clips, u_reports = _embed_untrained(untrained, data_root, cohort, notes, progress)
    keep = cohort.clips["sop_instance_uid"].isin(set(u_clips.ids)).to_numpy()
    cohort = cohort.keep_clips(keep)
    frames, n_frames, vectors = frames[keep], n_frames[keep], vectors[keep]

    sets = prompt_sets(prompts, record.tokenizer, cohort.prompt_reports)
    base = T.Lineage(record.model_id, record.checkpoint_sha256, main_kind(record), record.variant, INTERNAL,
                     cohort.split, run_id, model_source=record.model_source, preprocessing=record.preprocessing)
    lineages = {"trained": base,
                "untrained": base.but(model_id=f"untrained:{record.preset}:{model_fingerprint(untrained.model)}",
                                      model_kind="untrained", model_source="untrained")}
    embedded = {"trained": embed_prompt_sets(sets, *trained.encoders()),
                "untrained": embed_prompt_sets(sets, *untrained.encoders())}
    model_embeddings = {
        "trained": suite.ModelEmbeddings(frames, n_frames, vectors, reports, embedded["trained"]),
        "untrained": suite.ModelEmbeddings(u_clips.frames, u_clips.n_frames, u_clips.clips, u_reports,
                                           embedded["untrained"]),
    }
    results: dict[tuple[str, str], suite.ModelResult] = {}
    serial = {}
    for kind, emb in model_embeddings.items():
        progress(f"scoring the {kind} model on {len(cohort.clips)} clips and their studies")
        results[(kind, INTERNAL)] = suite.evaluate_model(cohort, emb, prompts, lineages[kind], boot,
                                                         sample_seed=settings.seed, n_pairs=settings.n_pairs)
        serial[kind] = add_study_level(results[(kind, INTERNAL)], cohort, emb, prompts, lineages[kind], boot,
                                       sample_seed=settings.seed, n_pairs=settings.n_pairs)
    progress(f"kNN over training reports (k = {settings.knn_k}) and the linear probe")
    for method, result in knn_and_probe_results(data_root, record, con, cohort, vectors, prompts, base, boot,
                                                k=settings.knn_k, notes=notes).items():
        results[(method, INTERNAL)] = result
    studies = cohort.clips["study_instance_uid"].to_numpy(dtype=object)
    means = suite.cohort_training_means(cohort, prompts)
    mean_lineage = base.but(model_id="training_mean", model_kind="training_mean", model_source="training_mean")
    results[("training_mean", INTERNAL)] = suite.training_mean_rows(
        means, suite.cohort_regression_truths(cohort, prompts), studies, prompts, mean_lineage, boot)

    if echonet_root is not None:
        files = echonet.read_file_list(echonet_root, settings.echonet_splits)
        split = ",".join(s.lower() for s in settings.echonet_splits) if settings.echonet_splits else "all"
        readable = {}
        for kind, encoder in (("trained", trained), ("untrained", untrained)):
            progress(f"EchoNet-Dynamic: {len(files)} videos with the {kind} model")
            results[(kind, echonet.DATASET)], readable[kind] = _echonet_rows(
                files, encoder, embedded[kind], prompts, lineages[kind].but(dataset=echonet.DATASET, split=split),
                boot, notes, lambda done, total: progress(f"EchoNet {kind}: {done}/{total} videos"))
        scored = files[files["FileName"].isin(set(readable["trained"]))]  # the baseline on the same videos
        results[("training_mean", echonet.DATASET)] = suite.training_mean_rows(
            {"lvef": means.get("lvef", float("nan"))}, {"lvef": (np.arange(len(scored)), scored["EF"].to_numpy())},
            scored["FileName"].to_numpy(dtype=object), prompts,
            mean_lineage.but(dataset=echonet.DATASET, split=split), boot)

    outputs = _assemble(results, primary_strategy(record.tokenizer), notes)
    outputs.skipped_tasks = [f"{task}: {reason}" for task, reason in prompts.skipped]
    notes += [f"prompt task {line} (skipped)" for line in outputs.skipped_tasks]
    progress("scoring the subgroups (age band, sex, manufacturer, image quality)")
    groups = subgroups.subgroup_of(cohort.clips, subgroups.read_attributes(con))
    outputs.tables[subgroups.TABLE] = subgroups.subgroup_table(subgroups.subgroup_rows(
        cohort, groups, model_embeddings, lineages, prompts, boot, primary_strategy(record.tokenizer),
        sample_seed=settings.seed))
    outputs.figures = _figures(results, main_kind(record))
    outputs.figures["serial_lvef_change"] = serial_change_scatter(serial)
    return outputs


def _assemble(results, primary: str, notes: list[str]) -> EvalOutputs:
    rows = {name: [row for r in results.values() for row in r.rows[name]] for name in T.EVAL_TABLES}
    frames = {name: pd.DataFrame(rows[name]) for name in T.EVAL_TABLES if name != "eval_summary"}
    rows["eval_summary"] = T.summary_rows(frames, primary)
    tables = {name: T.to_table(name, rows[name]) for name in T.EVAL_TABLES}
    return EvalOutputs(tables, notes=notes, headline=headline(rows["eval_summary"]))


def main_kind(record: model_variants.ModelRecord) -> str:
    """`model_kind` of the variant's own model: "trained", or "pretrained" for a registered published model.
    Results are keyed "trained" internally either way (the model evaluated, against its references)."""
    return T.PRETRAINED_KIND if record.source == "pretrained" else "trained"


def _fmt(row: dict | None, column: str) -> str:
    if row is None or row.get(column) is None:
        return "n/a"
    low, high = row.get(column + "_ci_low"), row.get(column + "_ci_high")
    interval = f" [{low:.3g}, {high:.3g}]" if low is not None and high is not None else ""
    return f"{row[column]:.3g}{interval}"


def headline(summary: list[dict]) -> dict[str, str]:
    """"MCMRR: trained vs untrained" and "LVEF MAE: trained vs training mean" per dataset, as text (zero-shot
    rows; the kNN-report LVEF MAE too where there is one)."""
    by = {(r["model_kind"].replace(T.PRETRAINED_KIND, "trained"), r["dataset"]): r for r in summary if r.get("method") in (T.ZERO_SHOT, "training_mean")}
    knn = {r["dataset"]: r for r in summary if r.get("method") == "knn_reports"}
    out = {}
    for dataset in sorted({r["dataset"] for r in summary}):
        trained = by.get(("trained", dataset))
        if trained and trained.get("mcmrr") is not None:
            out[f"{dataset}_mcmrr"] = (f"{trained['model_kind']} {_fmt(trained, 'mcmrr')} vs untrained "
                                       f"{_fmt(by.get(('untrained', dataset)), 'mcmrr')} (lower is better)")
        if trained and trained.get("lvef_mae") is not None:
            out[f"{dataset}_lvef_mae"] = (f"{trained['model_kind']} {_fmt(trained, 'lvef_mae')} vs training mean "
                                          f"{_fmt(by.get(('training_mean', dataset)), 'lvef_mae')} vs untrained "
                                          f"{_fmt(by.get(('untrained', dataset)), 'lvef_mae')}")
        if knn.get(dataset, {}).get("lvef_mae") is not None:
            out[f"{dataset}_knn_lvef_mae"] = (f"kNN reports {_fmt(knn[dataset], 'lvef_mae')} vs training mean "
                                              f"{_fmt(by.get(('training_mean', dataset)), 'lvef_mae')}")
    return out


def _figures(results: dict[tuple[str, str], suite.ModelResult], label: str = "trained") -> dict[str, bytes]:
    """ROC, regression scatter and rank figures; the evaluated model is drawn as ``label`` (trained | pretrained)."""
    figures = {}
    trained, untrained = results[("trained", INTERNAL)], results[("untrained", INTERNAL)]
    tasks = [t for t in ROC_FIRST if t in trained.scores] + [t for t in trained.scores if t not in ROC_FIRST]
    if tasks:
        curves = {t: {label: trained.scores[t], **({"untrained": untrained.scores[t]}
                                                       if t in untrained.scores else {})} for t in tasks}
        figures["roc_internal"] = plots.roc_figure(curves, "zero-shot classification, test split")
    for task, quantity in (("lvef", "LVEF (%)"), ("pasp", "PASP (mmHg)")):
        panels = {f"{label if kind == 'trained' else kind}, {dataset}": r.predictions[task]
                  for (kind, dataset), r in results.items()
                  if task in r.predictions and kind != "training_mean"}
        if panels:
            figures[f"{task}_scatter"] = plots.regression_scatter(panels, quantity)
    if trained.ranks is not None:
        ranks = {label: trained.ranks, **({"untrained": untrained.ranks} if untrained.ranks else {})}
        figures["retrieval_ranks"] = plots.rank_histogram(ranks, len(trained.ranks[0]))
    return figures
