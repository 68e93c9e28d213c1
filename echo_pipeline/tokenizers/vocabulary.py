"""The learned template vocabulary: which sentence templates (and runs of them) get a token, and its file.

Learning, from the training split only:
1. every report is normalised and split into sentences; each sentence becomes a template (numbers -> <NUM>,
   severity words -> <SEV>, see layout.templatise);
2. a template is kept when it occurs in at least `min_count` distinct groups (patients when `groups` is given,
   else reports), so no phrase private to one patient (a name, a rare remark) enters the shared file;
3. optionally, runs of templates that recur in the same order (a section header and its usual first line, the
   measurement block) are merged like BPE merges: the adjacent pair present in the most reports becomes one
   unit, repeatedly, while it is present in at least `merge_min_count` reports, up to `max_merges` times.
   A merged unit is one token followed by the variables of all its sentences. Merging changes nothing about
   coverage: every single template keeps its own token.

The file is JSON, one template or merge per line, so a reviewer can read and diff it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from echo_pipeline.errors import VocabularyError
from echo_pipeline.tokenizers.layout import layout, templatise
from echo_pipeline.tokenizers.normalise import NORMALISER_VERSION, normalised_sentences

FORMAT_VERSION = 1
FILE_KIND = "echo-pipeline template vocabulary"
DEFAULT_MIN_COUNT = 2
DEFAULT_MAX_MERGES = 256
_UNKNOWN = -1  # a sentence without a template: never part of a merge


@dataclass(frozen=True)
class TemplateVocabulary:
    """Templates (unit i < len(templates)) and merges (unit len(templates) + j = pair merges[j])."""

    templates: tuple[str, ...]
    counts: tuple[int, ...]  # occurrences in the training corpus
    support: tuple[int, ...]  # distinct groups holding the template
    merges: tuple[tuple[int, int], ...] = ()
    merge_support: tuple[int, ...] = ()  # reports holding the pair when it was merged
    min_count: int = DEFAULT_MIN_COUNT
    merge_min_count: int = 0
    source_split: str = "train"
    corpus_sha256: str = ""
    n_reports: int = 0
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "index", {t: i for i, t in enumerate(self.templates)})

    @property
    def n_units(self) -> int:
        return len(self.templates) + len(self.merges)

    def unit_sentences(self, unit: int) -> list[str]:
        """The sentence templates a unit stands for, in order."""
        if unit < len(self.templates):
            return [self.templates[unit]]
        left, right = self.merges[unit - len(self.templates)]
        return self.unit_sentences(left) + self.unit_sentences(right)

    @property
    def vocabulary_id(self) -> str:
        """sha256 (16 hex) of what decides token ids: layout, normaliser, templates, merges."""
        payload = json.dumps([layout(), NORMALISER_VERSION, self.templates, self.merges], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def corpus_sha256(texts: Iterable[str]) -> str:
    """Order-independent hash of a corpus (sorted per-text hashes), recorded in the vocabulary file."""
    digests = sorted(hashlib.sha256(t.encode()).hexdigest() for t in texts)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def report_templates(text: str) -> list[str]:
    """The sentence templates of one report, in order."""
    return [templatise(s)[0] for s in normalised_sentences(text)]


def learn_vocabulary(texts: Sequence[str], *, min_count: int = DEFAULT_MIN_COUNT,
                     groups: Sequence[Hashable] | None = None, max_merges: int = DEFAULT_MAX_MERGES,
                     merge_min_count: int | None = None, source_split: str = "train") -> TemplateVocabulary:
    """Learn the vocabulary from training-split report texts (see the module docstring).

    `groups[i]` is the patient of `texts[i]` (support counts distinct patients); `merge_min_count` defaults to
    max(min_count, 1 % of the reports). Deterministic: ties break on the template text.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if groups is not None and len(groups) != len(texts):
        raise ValueError(f"groups ({len(groups)}) and texts ({len(texts)}) differ in length")
    per_report = [report_templates(t) for t in texts]
    counts: Counter[str] = Counter(t for seq in per_report for t in seq)
    holders: dict[str, set] = defaultdict(set)
    for i, seq in enumerate(per_report):
        for t in seq:
            holders[t].add(groups[i] if groups is not None else i)
    kept = sorted((t for t in counts if len(holders[t]) >= min_count), key=lambda t: (-counts[t], t))
    index = {t: i for i, t in enumerate(kept)}
    if merge_min_count is None:
        merge_min_count = max(min_count, -(-len(texts) // 100))
    sequences = [[index.get(t, _UNKNOWN) for t in seq] for seq in per_report]
    merges, merge_support = _learn_merges(sequences, kept, max_merges, merge_min_count)
    return TemplateVocabulary(
        templates=tuple(kept), counts=tuple(counts[t] for t in kept), support=tuple(len(holders[t]) for t in kept),
        merges=tuple(merges), merge_support=tuple(merge_support), min_count=min_count,
        merge_min_count=merge_min_count, source_split=source_split, corpus_sha256=corpus_sha256(texts),
        n_reports=len(texts))


def _pairs(seq: list[int]) -> set[tuple[int, int]]:
    return {(a, b) for a, b in zip(seq, seq[1:]) if a != _UNKNOWN and b != _UNKNOWN}


def merge_pair(seq: list[int], pair: tuple[int, int], new_unit: int) -> list[int]:
    """`seq` with every non-overlapping occurrence of `pair` (left to right) replaced by `new_unit`."""
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(new_unit)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def _learn_merges(sequences: list[list[int]], templates: list[str], max_merges: int, min_support: int):
    """BPE over template sequences, counting a pair once per report; incremental pair bookkeeping."""
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for r, seq in enumerate(sequences):
        for p in _pairs(seq):
            where[p].add(r)
    texts = list(templates)  # unit -> readable text, for deterministic tie-breaks
    merges, support = [], []
    while len(merges) < max_merges:
        best_n = max((len(rs) for rs in where.values()), default=0)
        if best_n < max(min_support, 1):
            break
        best = min((p for p, rs in where.items() if len(rs) == best_n), key=lambda p: (texts[p[0]], texts[p[1]]))
        new_unit = len(texts)
        texts.append(f"{texts[best[0]]} | {texts[best[1]]}")
        merges.append(best)
        support.append(best_n)
        for r in list(where[best]):
            old = _pairs(sequences[r])
            sequences[r] = merge_pair(sequences[r], best, new_unit)
            new = _pairs(sequences[r])
            for p in old - new:
                where[p].discard(r)
                if not where[p]:
                    del where[p]
            for p in new - old:
                where[p].add(r)
    return merges, support


def save_vocabulary(vocabulary: TemplateVocabulary, path: Path) -> Path:
    """Write the vocabulary as versioned, line-per-entry JSON; returns the path."""
    header = {"format_version": FORMAT_VERSION, "kind": FILE_KIND, "vocabulary_id": vocabulary.vocabulary_id,
              "normaliser_version": NORMALISER_VERSION, "layout": layout(), "min_count": vocabulary.min_count,
              "support_unit": "distinct groups (patients when given, else reports)",
              "merge_min_count": vocabulary.merge_min_count, "source_split": vocabulary.source_split,
              "corpus_sha256": vocabulary.corpus_sha256, "n_reports": vocabulary.n_reports}
    templates = [json.dumps({"template": t, "count": c, "support": s})
                 for t, c, s in zip(vocabulary.templates, vocabulary.counts, vocabulary.support)]
    first_merge = len(vocabulary.templates)
    merges = [json.dumps({"pair": list(p), "support": s, "sentences": vocabulary.unit_sentences(first_merge + j)})
              for j, (p, s) in enumerate(zip(vocabulary.merges, vocabulary.merge_support))]
    body = json.dumps(header, indent=1)[:-2]
    body += ',\n "templates": [\n  ' + ",\n  ".join(templates) + "\n ],"
    body += '\n "merges": [\n  ' + ",\n  ".join(merges) + "\n ]\n}\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(path)
    return path


def load_vocabulary(path: Path) -> TemplateVocabulary:
    """Read and validate a vocabulary file; raise VocabularyError naming the file, the problem and the fix."""
    path = Path(path)
    relearn = "relearn it from the training split (learn_vocabulary + save_vocabulary)"

    def fail(problem: str) -> VocabularyError:
        return VocabularyError(f"{path}: {problem}; {relearn}.")

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VocabularyError(f"{path}: no such vocabulary file; check the path or {relearn}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"not a readable JSON vocabulary ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != FILE_KIND:
        raise fail(f"not a template vocabulary (kind should be {FILE_KIND!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise fail(f"format_version {data.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    if data.get("normaliser_version") != NORMALISER_VERSION or data.get("layout") != layout():
        raise fail("built with another normaliser or token layout, so its templates would not match")
    try:
        entries, merge_entries = data["templates"], data["merges"]
        templates = tuple(str(e["template"]) for e in entries)
        counts, support = tuple(int(e["count"]) for e in entries), tuple(int(e["support"]) for e in entries)
        merges = tuple((int(e["pair"][0]), int(e["pair"][1])) for e in merge_entries)
        vocabulary = TemplateVocabulary(
            templates=templates, counts=counts, support=support, merges=merges,
            merge_support=tuple(int(e["support"]) for e in merge_entries), min_count=int(data["min_count"]),
            merge_min_count=int(data["merge_min_count"]), source_split=str(data["source_split"]),
            corpus_sha256=str(data["corpus_sha256"]), n_reports=int(data["n_reports"]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise fail(f"malformed entry ({type(exc).__name__}: {exc})") from None
    if len(set(templates)) != len(templates) or not all(templates):
        raise fail("templates must be unique non-empty strings")
    if any(s < vocabulary.min_count for s in support):
        raise fail(f"a template has support below min_count {vocabulary.min_count}")
    for j, (a, b) in enumerate(merges):
        if not (0 <= a < len(templates) + j and 0 <= b < len(templates) + j):
            raise fail(f"merge {j} refers to unit {a} or {b}, which is not defined before it")
    if data.get("vocabulary_id") != vocabulary.vocabulary_id:
        raise fail("vocabulary_id does not match its content (the file was edited by hand)")
    for j, entry in enumerate(merge_entries):
        if entry.get("sentences") != vocabulary.unit_sentences(len(templates) + j):
            raise fail(f"merge {j}: its sentences do not match the templates its pair points to")
    return vocabulary
