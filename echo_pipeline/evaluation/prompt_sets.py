"""Which texts serve as zero-shot prompts for a model, and their embeddings.

Strategies (the ``prompt_strategy`` column of the evaluation tables):

- ``base_prompts``: the sentences of the prompts file (binary tasks) and its templates filled with every
  candidate value (regression). The strategy for CLIP-BPE models.
- ``sampled_reports``: for template-tokenizer models, short sentences are out of distribution, so the prompts
  are whole reports of the prompts file's source split (validation) that carry the label
  (`prompts.sample_prompt_rows`): up to ``per_binary_task`` positive reports per binary task, up to
  ``per_regression_value`` reports per candidate value (the candidates are then the values that have at least
  one report).
- ``base_prompts_fallback``: a template-model task with no such report falls back to its base prompts.

A template model is evaluated both ways: the sampled strategy is its **primary** result (Table 2's
"full-report prompts"), the base prompts a secondary one (Table 2's "base prompts"). Trained and untrained
models always get the same texts; nothing is chosen on the test split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from echo_pipeline.evaluation.prompts import PromptsFile, sample_prompt_rows

BASE = "base_prompts"
SAMPLED = "sampled_reports"
FALLBACK = "base_prompts_fallback"
#: Text kinds: short prompt sentences, or whole reports (embedded like stored report embeddings).
PROMPT, REPORT = "prompt", "report"

Encoder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class PromptSet:
    """Prompts of one task. ``groups[i]`` are the texts behind candidate ``values[i]`` (regression) or, for a
    binary task, ``groups`` has one entry holding all prompts and ``values`` is empty."""

    task: str
    label: str
    kind: str  # "binary" | "regression"
    strategy: str
    text_kind: str  # PROMPT | REPORT
    groups: tuple[tuple[str, ...], ...]
    values: tuple[float, ...]
    primary: bool

    @property
    def n_texts(self) -> int:
        return sum(len(g) for g in self.groups)


def primary_strategy(tokenizer_kind: str) -> str:
    """``sampled_reports`` for the template tokenizers (learned or published), ``base_prompts`` otherwise."""
    return SAMPLED if tokenizer_kind in ("template", "published_template") else BASE


def _base_sets(prompts: PromptsFile, primary: bool, strategy: str = BASE, tasks=None) -> list[PromptSet]:
    out = []
    for name, task in prompts.binary_tasks.items():
        if tasks is None or name in tasks:
            out.append(PromptSet(name, task.label, "binary", strategy, PROMPT, (task.prompts,), (), primary))
    for name, task in prompts.regression_tasks.items():
        if tasks is None or name in tasks:
            groups = tuple(tuple(texts) for texts in task.prompt_texts())
            out.append(PromptSet(name, task.label, "regression", strategy, PROMPT, groups,
                                 tuple(float(v) for v in task.values), primary))
    return out


def _sampled_sets(prompts: PromptsFile, reports: pd.DataFrame) -> tuple[list[PromptSet], set[str]]:
    """Sampled-report sets for every task that has source reports, and the names of those that have none."""
    if reports.empty:
        return [], set(prompts.binary_tasks) | set(prompts.regression_tasks)
    rows = sample_prompt_rows(reports, prompts)
    texts = reports["report_text"].to_numpy(dtype=object)
    out, missing = [], set()
    for name, task in prompts.binary_tasks.items():
        chosen = rows[name]
        if chosen.size == 0:
            missing.add(name)
            continue
        out.append(PromptSet(name, task.label, "binary", SAMPLED, REPORT, (tuple(texts[chosen]),), (), True))
    for name, task in prompts.regression_tasks.items():
        chosen = rows[name]
        if chosen.size == 0:
            missing.add(name)
            continue
        values = np.floor(pd.to_numeric(reports[task.label]).to_numpy(dtype=np.float64)[chosen] + 0.5)
        present = [v for v in task.values if np.any(values == v)]
        groups = tuple(tuple(texts[chosen[values == v]]) for v in present)
        out.append(PromptSet(name, task.label, "regression", SAMPLED, REPORT, groups,
                             tuple(float(v) for v in present), True))
    return out, missing


def prompt_sets(prompts: PromptsFile, tokenizer_kind: str, prompt_reports: pd.DataFrame) -> list[PromptSet]:
    """Every prompt set to evaluate a model of ``tokenizer_kind`` with (see the module docstring).

    ``prompt_reports``: the source split's reports (report_id, report_text, label columns), in a fixed order.
    """
    if primary_strategy(tokenizer_kind) == BASE:
        return _base_sets(prompts, primary=True)
    sampled, missing = _sampled_sets(prompts, prompt_reports)
    fallback = _base_sets(prompts, primary=True, strategy=FALLBACK, tasks=missing) if missing else []
    return sampled + fallback + _base_sets(prompts, primary=False)


@dataclass(frozen=True)
class EmbeddedPromptSet:
    """A prompt set with its embeddings: (P, D) prompts of a binary task, (V, D) per-value means for
    regression (the mean of a value's text embeddings; scoring with it equals averaging the similarities)."""

    prompts: PromptSet
    embeddings: np.ndarray
    values: np.ndarray


def embed_prompt_sets(sets: Sequence[PromptSet], encode_prompts: Encoder, encode_reports: Encoder
                      ) -> list[EmbeddedPromptSet]:
    """Embed every distinct text once (prompts with ``encode_prompts``, reports with ``encode_reports``)."""
    encoders = {PROMPT: encode_prompts, REPORT: encode_reports}
    lookup: dict[tuple[str, str], np.ndarray] = {}
    for text_kind, encode in encoders.items():
        unique = sorted({t for s in sets if s.text_kind == text_kind for g in s.groups for t in g})
        if unique:
            vectors = np.asarray(encode(unique), dtype=np.float64)
            lookup.update({(text_kind, t): v for t, v in zip(unique, vectors)})
    out = []
    for s in sets:
        if s.kind == "binary":
            emb = np.stack([lookup[(s.text_kind, t)] for t in s.groups[0]])
        else:
            emb = np.stack([np.mean([lookup[(s.text_kind, t)] for t in g], axis=0) for g in s.groups])
        out.append(EmbeddedPromptSet(s, emb, np.asarray(s.values, dtype=np.float64)))
    return out
