"""The label rules file (`label_rules.yaml`): load, validate, merge a site's file over the defaults, hash.

Every refusal is a `LabelRulesError` naming the file, the line and the reason, raised before any report is
read. The effective rules (defaults with the site file merged over them) are hashed as canonical JSON, so
the hash changes exactly when the rules do; it is written on every `report_labels` row.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from echo_pipeline.errors import InputContractError
from echo_pipeline.schemas import REPORT_LABEL_NAMES

DEFAULT_RULES_PATH = Path(__file__).with_name("label_rules.yaml")
KINDS = ("number", "presence", "grade", "category", "derived", "valves")
CONTEXT_CATEGORIES = ("negated", "uncertain", "hypothetical", "historical")
CUE_DIRECTIONS = ("forward", "forward_near", "backward")
_PHRASE_KEYS = {"targets", "false_phrases", "self_findings", "findings", "normal", "units", "summary_targets",
                "summary_normal"}
_LABEL_KEYS = {
    "number": {"kind", "targets", "units", "valid", "historical"},
    "presence": {"kind", "targets", "false_phrases", "historical"},
    "grade": {"kind", "grades", "targets", "self_findings", "findings", "normal", "historical"},
    "category": {"kind", "targets", "units", "valid", "bins", "categories", "historical"},
    "derived": {"kind", "from", "map"},
    "valves": {"kind", "grades", "targets", "self_findings", "findings", "normal", "significant", "summary_targets",
               "summary_normal", "historical"},
}
_REQUIRED = {"number": {"targets", "units", "valid"}, "presence": {"targets"},
             "grade": {"grades", "targets", "findings", "normal"},
             "category": {"targets", "units", "valid", "bins", "categories"}, "derived": {"from", "map"},
             "valves": {"grades", "targets", "significant", "summary_targets", "summary_normal"}}
_TOP_KEYS = {"version", "context", "grades", "range_joiners", "range_policy", "unspecified_grade", "boundaries",
             "labels"}


class LabelRulesError(InputContractError):
    """A label rules file cannot be used: the message names the file, the line and the reason."""


@dataclass(frozen=True)
class LabelRules:
    """The effective rules (plain dicts and lists, as in the YAML) and their provenance."""

    rules: dict
    sha256: str
    sources: tuple[str, ...]  # the files merged, defaults first


class _Doc:
    """A parsed YAML file with the line of every key, so errors can point at it."""

    def __init__(self, path: Path):
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise LabelRulesError(f"label rules {path}: cannot be read ({error}); give a UTF-8 YAML file") from error
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f"line {mark.line + 1}" if mark else "somewhere"
            reason = getattr(error, "problem", None) or str(error)
            raise LabelRulesError(f"label rules {path}, {line}: not valid YAML ({reason}); fix the syntax") from error
        self.lines: dict[tuple, int] = {}
        self._scalars = yaml.SafeLoader("")  # turns scalar nodes into Python values by YAML's own rules
        self.data = self._python(node, ()) if node is not None else {}

    def _python(self, node, path: tuple):
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                out[key_node.value] = self._python(value_node, path + (key_node.value,))
                self.lines[path + (key_node.value,)] = key_node.start_mark.line + 1  # the key's line, not its value's
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._python(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalars.construct_object(node, deep=True)

    def fail(self, path: tuple, reason: str):
        line = next((self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines), 1)
        where = ".".join(str(p) for p in path) or "(top)"
        raise LabelRulesError(f"label rules {self.path}, line {line} ({where}): {reason}; fix the file and rerun")


def _check_phrases(doc: _Doc, value: Any, path: tuple) -> None:
    if not isinstance(value, list):
        doc.fail(path, f"expected a list of phrases, found {type(value).__name__}")
    for i, phrase in enumerate(value):
        if not isinstance(phrase, str) or not phrase.strip():
            doc.fail(path + (i,), f"expected a non-empty phrase (text), found {phrase!r}")
        if phrase.startswith("re:"):
            try:
                re.compile(phrase[3:])
            except re.error as error:
                doc.fail(path + (i,), f"regular expression {phrase[3:]!r} does not compile ({error})")


def _check_structure(doc: _Doc) -> None:
    """Types and known keys of one file (a site file may be partial, so required keys are checked later)."""
    data = doc.data
    if not isinstance(data, dict):
        doc.fail((), "expected a mapping at the top (version, context, grades, boundaries, labels)")
    for key, value in data.items():
        if key not in _TOP_KEYS:
            doc.fail((key,), f"unknown key '{key}' (known: {sorted(_TOP_KEYS)})")
        if key in ("boundaries", "range_joiners"):
            _check_phrases(doc, value, (key,))
    for category, directions in (data.get("context") or {}).items():
        if category == "terminators":
            _check_phrases(doc, directions, ("context", category))
            continue
        if category not in CONTEXT_CATEGORIES or not isinstance(directions, dict):
            doc.fail(("context", category), f"expected one of {list(CONTEXT_CATEGORIES)} or terminators, "
                                            "each a mapping of forward/forward_near/backward phrase lists")
        for direction, phrases in directions.items():
            if direction not in CUE_DIRECTIONS:
                doc.fail(("context", category, direction), f"direction must be one of {list(CUE_DIRECTIONS)}")
            _check_phrases(doc, phrases, ("context", category, direction))
    for vocab, grades in (data.get("grades") or {}).items():
        if not isinstance(grades, dict) or not grades:
            doc.fail(("grades", vocab), "expected a mapping of grade -> list of words")
        for grade, words in grades.items():
            _check_phrases(doc, words, ("grades", vocab, grade))
    if not isinstance(data.get("unspecified_grade") or {}, dict):
        doc.fail(("unspecified_grade",), "expected a mapping of grades vocabulary -> null or a grade")
    if data.get("range_policy", "upper") not in ("upper", "lower"):
        doc.fail(("range_policy",), "must be 'upper' or 'lower'")
    labels = data.get("labels") or {}
    if not isinstance(labels, dict):
        doc.fail(("labels",), "expected a mapping of label name -> rules")
    for name, rule in labels.items():
        _check_label(doc, name, rule)


def _check_label(doc: _Doc, name: str, rule: Any) -> None:
    path = ("labels", name)
    if name not in REPORT_LABEL_NAMES:
        doc.fail(path, f"unknown label '{name}' (the report_labels columns are {list(REPORT_LABEL_NAMES)})")
    if not isinstance(rule, dict):
        doc.fail(path, "expected a mapping (kind, targets, ...)")
    kind = rule.get("kind")
    if kind is not None and kind not in KINDS:
        doc.fail(path + ("kind",), f"kind must be one of {list(KINDS)}, found {kind!r}")
    allowed = set().union(*_LABEL_KEYS.values()) if kind is None else _LABEL_KEYS[kind]
    for key, value in rule.items():
        if key not in allowed:
            doc.fail(path + (key,), f"key '{key}' does not belong to a {kind or 'label'} rule "
                                    f"(allowed: {sorted(allowed)})")
        if key in _PHRASE_KEYS:
            _check_phrases(doc, value, path + (key,))
        elif key == "valid" and not (isinstance(value, list) and len(value) == 2
                                     and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            doc.fail(path + (key,), "expected [low, high] numbers")
        elif key == "historical" and value not in ("keep", "ignore"):
            doc.fail(path + (key,), "must be 'keep' (a past mention still states the value) or 'ignore'")
        elif key == "bins" and not (isinstance(value, list) and all(
                isinstance(b, list) and len(b) == 2 and isinstance(b[0], (int, float)) and isinstance(b[1], str)
                for b in value)):
            doc.fail(path + (key,), "expected a list of [upper bound, value] pairs")
        elif key == "categories":
            _check_categories(doc, value, path + (key,))
        elif key in ("grades", "from") and not isinstance(value, str):
            doc.fail(path + (key,), "expected a name")
        elif key in ("map",) and not isinstance(value, dict):
            doc.fail(path + (key,), "expected a mapping value -> value")
        elif key == "significant" and not isinstance(value, list):
            doc.fail(path + (key,), "expected a list of grades")


def _check_categories(doc: _Doc, value: Any, path: tuple) -> None:
    if not isinstance(value, list):
        doc.fail(path, "expected a list of {value, all: [[phrases], ...]}")
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"value", "all"} or not isinstance(entry["all"], list):
            doc.fail(path + (i,), "expected {value: NAME, all: [[phrases], [phrases], ...]}")
        for j, group in enumerate(entry["all"]):
            _check_phrases(doc, group, path + (i, "all", j))


def _merge(base: Any, site: Any) -> Any:
    """Site over base: mappings merged key by key, lists extended (without repeats), scalars replaced."""
    if isinstance(base, dict) and isinstance(site, dict):
        return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in site.items()}}
    if isinstance(base, list) and isinstance(site, list):
        return base + [item for item in site if item not in base]
    return site


def _check_effective(rules: dict, docs: list[_Doc]) -> None:
    """Required keys and cross-references, reported against the last file that touches the label."""
    vocabularies = set(rules.get("grades") or {})
    for vocabulary, grade in (rules.get("unspecified_grade") or {}).items():
        doc = next((d for d in reversed(docs) if vocabulary in (d.data.get("unspecified_grade") or {})), docs[0])
        if vocabulary not in vocabularies or (grade is not None and grade not in rules["grades"][vocabulary]):
            doc.fail(("unspecified_grade", vocabulary), f"expected a grades vocabulary ({sorted(vocabularies)}) "
                                                        "mapped to null or one of its grades")
    for name, rule in (rules.get("labels") or {}).items():
        doc = next((d for d in reversed(docs) if name in (d.data.get("labels") or {})), docs[0])
        path = ("labels", name)
        kind = rule.get("kind")
        if kind is None:
            doc.fail(path, "no 'kind' (one of number, presence, grade, category, derived, valves)")
        missing = _REQUIRED[kind] - set(rule)
        if missing:
            doc.fail(path, f"a {kind} rule needs {sorted(missing)}")
        if "grades" in rule and rule["grades"] not in vocabularies:
            doc.fail(path + ("grades",), f"no grades vocabulary '{rule['grades']}' (known: {sorted(vocabularies)})")
        if kind == "derived" and rule["from"] not in rules["labels"]:
            doc.fail(path + ("from",), f"label '{rule['from']}' has no rule")


def load_label_rules(site_path: str | Path | None = None, *, defaults: str | Path = DEFAULT_RULES_PATH) -> LabelRules:
    """The packaged rules, with a site's file merged over them when given; refused with file, line and reason."""
    docs = [_Doc(Path(defaults))]
    if site_path is not None:
        path = Path(site_path)
        if not path.is_file():
            raise LabelRulesError(f"label rules {path}: no such file; point --label-rules / ECHO_PIPELINE_LABEL_RULES "
                                  "at a YAML file (docs/reports.md, Site rules)")
        docs.append(_Doc(path))
    rules: dict = {}
    for doc in docs:
        _check_structure(doc)
        rules = _merge(rules, doc.data)
    _check_effective(rules, docs)
    canonical = json.dumps(rules, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return LabelRules(rules=rules, sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
                      sources=tuple(str(d.path) for d in docs))
