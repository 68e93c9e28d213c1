"""Zero-shot prompts as versioned data (`prompts.yaml`), and the truth vectors their tasks are scored against.

`load_prompts` validates the whole file up front; every refusal names the file and the offending key.
`binary_truths` / `regression_truths` turn a labels table (one row per evaluated study or clip; nulls =
unknown) into per-task truth vectors with the unknown rows left out, plus the positions of the kept rows so
that scores can be aligned with them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import yaml

from echo_pipeline.errors import InputContractError

DEFAULT_PROMPTS_PATH = Path(__file__).with_name("prompts.yaml")
VALUE_PLACEHOLDER = "{value}"


@dataclass(frozen=True)
class BinaryTask:
    """Positive when ``labels[label]`` is in ``positive``; any other known value is negative."""

    name: str
    label: str
    positive: tuple[Any, ...]
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class RegressionTask:
    """Templates filled with every candidate value; ``below_thresholds`` drive the "truth < T" AUCs."""

    name: str
    label: str
    values: tuple[int, ...]
    templates: tuple[str, ...]
    below_thresholds: tuple[float, ...]

    def prompt_texts(self) -> list[list[str]]:
        """``texts[v][k]``: template k filled with ``values[v]`` (embed, then shape as (V, K, D))."""
        return [[t.replace(VALUE_PLACEHOLDER, str(v)) for t in self.templates] for v in self.values]


@dataclass(frozen=True)
class SampledPrompts:
    """Sampled-prompts strategy for template-tokenizer models: real reports carrying the label."""

    source_split: str
    per_regression_value: int
    per_binary_task: int
    seed: int


@dataclass(frozen=True)
class PromptsFile:
    path: Path
    version: str
    sha256: str
    label_levels: dict[str, tuple[Any, ...]]
    binary_tasks: dict[str, BinaryTask]
    regression_tasks: dict[str, RegressionTask]
    sampled: SampledPrompts
    #: Tasks of the source file left out, with the reason (published prompt files: tasks with no label).
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TaskTruth:
    """``truth[i]`` belongs to row position ``rows[i]`` of the labels table (unknown rows left out)."""

    rows: np.ndarray
    truth: np.ndarray


class _Reader:
    """Typed access to the parsed YAML with errors that name the file and the dotted key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str) -> NoReturn:
        raise InputContractError(
            f"prompts file {self.path}: key '{key}': {problem}. Fix the file and reload."
        )

    def get(self, node: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
        full = f"{where}.{key}" if where else key
        if not isinstance(node, dict):
            self.fail(full, f"cannot be read because its parent is {type(node).__name__}, not a mapping")
        if key not in node:
            self.fail(full, "missing")
        value = node[key]
        # YAML true/false are bools, which Python also counts as ints: refuse them where a number is due.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            self.fail(full, f"expected {_kind_name(kind)}, found {type(value).__name__} {value!r}")
        return value

    def texts(self, node: Any, key: str, where: str) -> tuple[str, ...]:
        items = self.get(node, key, where, list)
        if not items or not all(isinstance(t, str) and t.strip() for t in items):
            self.fail(f"{where}.{key}", "expected a non-empty list of non-empty strings")
        return tuple(items)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def load_prompts(path: str | Path = DEFAULT_PROMPTS_PATH) -> PromptsFile:
    """A prompts YAML, or a published prompt JSON (``.json``: `published_prompts`), validated."""
    if Path(path).suffix.lower() == ".json":
        from echo_pipeline.evaluation.published_prompts import load_published_prompts

        return load_published_prompts(path)
    return load_yaml_prompts(path)


def load_yaml_prompts(path: str | Path = DEFAULT_PROMPTS_PATH) -> PromptsFile:
    """Read and validate a prompts YAML; raises InputContractError naming the file and key on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputContractError(
            f"prompts file {path}: cannot be read ({exc}); check the configured path."
        ) from exc
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputContractError(
            f"prompts file {path}: invalid YAML ({exc}); fix the syntax and reload."
        ) from exc
    r = _Reader(path)
    version = r.get(doc, "version", "", (int, str))
    level_node = r.get(doc, "label_levels", "", dict)
    levels = {column: tuple(r.get(level_node, column, "label_levels", list)) for column in level_node}
    binary = {
        name: _binary_task(r, name, node, levels)
        for name, node in r.get(doc, "binary_tasks", "", dict).items()
    }
    regression = {
        name: _regression_task(r, name, node)
        for name, node in r.get(doc, "regression_tasks", "", dict).items()
    }
    s = r.get(doc, "sampled_prompts", "", dict)
    sampled = SampledPrompts(
        source_split=r.get(s, "source_split", "sampled_prompts", str),
        per_regression_value=r.get(s, "per_regression_value", "sampled_prompts", int),
        per_binary_task=r.get(s, "per_binary_task", "sampled_prompts", int),
        seed=r.get(s, "seed", "sampled_prompts", int),
    )
    return PromptsFile(
        path, str(version), hashlib.sha256(raw).hexdigest(), levels, binary, regression, sampled
    )


def _binary_task(r: _Reader, name: str, node: Any, levels: dict[str, tuple[Any, ...]]) -> BinaryTask:
    where = f"binary_tasks.{name}"
    label = r.get(node, "label", where, str)
    if label not in levels:
        r.fail(f"{where}.label", f"'{label}' has no entry under label_levels (known: {sorted(levels)})")
    positive = tuple(r.get(node, "positive", where, list))
    unknown = [v for v in positive if v not in levels[label]]
    if not positive or unknown:
        r.fail(
            f"{where}.positive",
            f"needs values from label_levels.{label} {list(levels[label])}, got {unknown}",
        )
    return BinaryTask(name, label, positive, r.texts(node, "prompts", where))


def _regression_task(r: _Reader, name: str, node: Any) -> RegressionTask:
    where = f"regression_tasks.{name}"
    bounds = r.get(node, "values", where, dict)
    low = r.get(bounds, "min", f"{where}.values", int)
    high = r.get(bounds, "max", f"{where}.values", int)
    if high < low:
        r.fail(f"{where}.values", f"max {high} is below min {low}")
    templates = r.texts(node, "templates", where)
    for i, template in enumerate(templates):
        if template.count(VALUE_PLACEHOLDER) != 1:
            r.fail(
                f"{where}.templates[{i}]", f"must contain '{VALUE_PLACEHOLDER}' exactly once: {template!r}"
            )
    thresholds = r.get(node, "below_thresholds", where, list)
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in thresholds):
        r.fail(f"{where}.below_thresholds", f"expected a list of numbers, got {thresholds!r}")
    return RegressionTask(
        name,
        r.get(node, "label", where, str),
        tuple(range(low, high + 1)),
        templates,
        tuple(float(t) for t in thresholds),
    )


def _column(labels: pd.DataFrame, column: str, task: str) -> pd.Series:
    if column not in labels.columns:
        raise InputContractError(
            f"labels table: column '{column}' (needed by task '{task}') is missing; "
            f"columns present: {list(labels.columns)}."
        )
    return labels[column].reset_index(drop=True)


def binary_truths(labels: pd.DataFrame, prompts: PromptsFile) -> dict[str, TaskTruth]:
    """Per binary task, the bool truth of every row whose label is known.

    Raises InputContractError when a column is missing or holds a value outside its ``label_levels``.
    """
    out = {}
    for name, task in prompts.binary_tasks.items():
        series = _column(labels, task.label, name)
        known = series.notna().to_numpy()
        codes, uniques = pd.factorize(series[known])
        allowed = prompts.label_levels[task.label]
        strange = [u for u in uniques.tolist() if u not in allowed]
        if strange:
            raise InputContractError(
                f"labels table: column '{task.label}' holds {strange[:5]} outside the levels {list(allowed)} "
                f"declared in {prompts.path}; map them to a declared level or to null (unknown)."
            )
        is_positive = np.array([u in task.positive for u in uniques.tolist()], dtype=bool)
        out[name] = TaskTruth(np.flatnonzero(known), is_positive[codes])
    return out


def regression_truths(labels: pd.DataFrame, prompts: PromptsFile) -> dict[str, TaskTruth]:
    """Per regression task, the float truth of every row whose value is known."""
    out = {}
    for name, task in prompts.regression_tasks.items():
        series = _column(labels, task.label, name)
        try:
            values = pd.to_numeric(series).astype("float64").to_numpy()
        except (TypeError, ValueError) as exc:
            raise InputContractError(
                f"labels table: column '{task.label}' must be numeric (null = unknown): {exc}."
            ) from exc
        known = np.isfinite(values)
        out[name] = TaskTruth(np.flatnonzero(known), values[known])
    return out


def sample_prompt_rows(labels: pd.DataFrame, prompts: PromptsFile) -> dict[str, np.ndarray]:
    """Row positions whose reports serve as sampled prompts (labels of the ``source_split`` rows only).

    Binary task: up to ``per_binary_task`` positive rows. Regression task: up to ``per_regression_value``
    rows for each candidate value (truth rounded to the nearest integer). Seeded by ``sampled.seed``;
    returned positions are sorted.
    """
    cfg = prompts.sampled
    rng = np.random.default_rng(cfg.seed)
    out = {}
    for name, truth in binary_truths(labels, prompts).items():
        positives = truth.rows[truth.truth]
        out[name] = np.sort(rng.permutation(positives)[: cfg.per_binary_task])
    for name, truth in regression_truths(labels, prompts).items():
        rounded = np.floor(truth.truth + 0.5)
        chosen = [
            rng.permutation(truth.rows[rounded == v])[: cfg.per_regression_value]
            for v in prompts.regression_tasks[name].values
        ]
        out[name] = np.sort(np.concatenate(chosen)).astype(np.int64)
    return out
