"""The published prompt file format (EchoCLIP's zero-shot prompts) as an evaluation prompt source.

The file is JSON: task name → ``{"mode": "binary" | "regression" | "categorical", "label_sources": [report
sentences, "<#>" where the value stands], "range": [low, high] (regression), "testers": [...] (optional,
not used: the truth comes from `report_labels`)}``. Its tasks are mapped onto `report_labels` columns by
TASK_LABELS below (docs/evaluation.md prints the same table); a task with no entry, or whose label the
labels table does not declare, is kept out and listed in ``PromptsFile.skipped`` with the reason, which the
evaluation reports in its notes and metadata, never silently dropped.

- binary: the sentences are the prompts; positive = the table's values.
- regression: ``<#>`` becomes ``{value}``; candidate values span ``range``; the task takes the name and the
  "truth < T" thresholds of the versioned prompts.yaml task of the same label (``ejection_fraction`` → ``lvef``),
  so eval_summary's LVEF / PASP columns and the training-mean baseline read it as they read prompts.yaml's.
- categorical: one binary task per non-"none" level of the label (``<task>_<level>``), its prompts the
  sentences with ``<#>`` replaced by the level in upper case.

Label levels and the sampled-prompts settings come from the versioned prompts.yaml.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from echo_pipeline.errors import InputContractError
from echo_pipeline.evaluation.prompts import (DEFAULT_PROMPTS_PATH, VALUE_PLACEHOLDER, BinaryTask, PromptsFile,
                                              RegressionTask, load_yaml_prompts)

PUBLISHED_VARIABLE = "<#>"
MODES = ("binary", "regression", "categorical")
_DILATION = {f"{grade}_{side}_{chamber}_dilation": (f"{abbr}_dilation", (grade,))
             for grade in ("moderate", "severe")
             for side, chamber_list in (("left", ("ventricle", "atrium")), ("right", ("ventricle", "atrium")))
             for chamber in chamber_list
             for abbr in [side[0] + chamber[0]]}
#: Published task → (report_labels column, positive values); regression and categorical tasks: (column, ()).
TASK_LABELS: dict[str, tuple[str, tuple]] = {
    "pacemaker": ("pacemaker", (True,)),
    "tavr": ("tavr", (True,)),
    "mitraclip": ("mitraclip", (True,)),
    "tamponade": ("tamponade", (True,)),
    **_DILATION,
    "severe_left_ventricular_hypertrophy": ("lvh", ("severe",)),
    "ejection_fraction": ("lvef", ()),
    "pulmonary_artery_pressure": ("pasp", ()),
    "pericardial_effusion": ("effusion", ()),
    "left_ventricular_hypertrophy": ("lvh", ()),
}


def _fail(path: Path, key: str, problem: str):
    raise InputContractError(f"published prompt file {path}: task '{key}': {problem}. Fix the file and reload.")


def _sentences(path: Path, name: str, node: dict) -> tuple[str, ...]:
    texts = node.get("label_sources")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        _fail(path, name, "label_sources must be a non-empty list of sentences")
    return tuple(texts)


def load_published_prompts(path: str | Path, base_path: Path = DEFAULT_PROMPTS_PATH) -> PromptsFile:
    """Read a published prompt JSON into a PromptsFile (levels and sampling from ``base_path``)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
    except (OSError, ValueError) as e:
        raise InputContractError(f"published prompt file {path}: unreadable JSON ({e}); check --prompts") from e
    if not isinstance(doc, dict):
        raise InputContractError(f"published prompt file {path}: expected an object of tasks, found {type(doc).__name__}")
    base = load_yaml_prompts(base_path)
    base_regression = {t.label: t for t in base.regression_tasks.values()}
    binary, regression, skipped = {}, {}, []
    for name, node in doc.items():
        mode = node.get("mode") if isinstance(node, dict) else None
        if mode not in MODES:
            _fail(path, name, f"mode must be one of {MODES}, found {mode!r}")
        sentences = _sentences(path, name, node)
        label, positive = TASK_LABELS.get(name, (None, ()))
        if label is None:
            skipped.append((name, "no report_labels column is mapped to this task (TASK_LABELS)"))
        elif mode == "regression":
            if label not in base_regression:
                skipped.append((name, f"label {label!r} has no regression task in {base_path.name}"))
                continue
            low, high = _range(path, name, node)
            templates = tuple(s.replace(PUBLISHED_VARIABLE, VALUE_PLACEHOLDER) for s in sentences
                              if s.count(PUBLISHED_VARIABLE) == 1)
            if not templates:
                _fail(path, name, f"no label_sources sentence holds exactly one {PUBLISHED_VARIABLE}")
            base_task = base_regression[label]  # its name ("lvef", "pasp") is what eval_summary reads
            regression[base_task.name] = RegressionTask(base_task.name, label, tuple(range(low, high + 1)), templates,
                                                        base_task.below_thresholds)
        elif label not in base.label_levels:
            skipped.append((name, f"label {label!r} has no label_levels entry in {base_path.name}"))
        elif mode == "binary":
            binary[name] = BinaryTask(name, label, positive, sentences)
        else:
            for level in (v for v in base.label_levels[label] if v not in ("none", False)):
                word = str(level).upper()
                binary[f"{name}_{level}"] = BinaryTask(f"{name}_{level}", label, (level,),
                                                       tuple(s.replace(PUBLISHED_VARIABLE, word) for s in sentences))
    return replace(base, path=path, version="published-json", sha256=hashlib.sha256(raw).hexdigest(),
                   binary_tasks=binary, regression_tasks=regression, skipped=tuple(skipped))


def _range(path: Path, name: str, node: dict) -> tuple[int, int]:
    bounds = node.get("range")
    if (not isinstance(bounds, list) or len(bounds) != 2 or not all(isinstance(b, (int, float)) for b in bounds)
            or bounds[1] < bounds[0]):
        _fail(path, name, f"regression needs range [low, high], found {bounds!r}")
    return int(bounds[0]), int(bounds[1])
