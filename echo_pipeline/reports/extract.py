"""The label engine: the rules file compiled once, then applied to a report sentence by sentence.

Per sentence: one pass finds every mention (label targets, explicit-negative phrases, boundaries), one pass
the ConText cues; each target mention gets an assertion status (context.py) and, when affirmed or negated, a
value read from the words around it (its *window*: from the previous mention to the next, a modifier just
before the next mention belonging to that one). docs/reports.md ("Labels") describes each kind.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from echo_pipeline.reports.context import cue_index, mention_statuses
from echo_pipeline.reports.phrases import Match, PhraseIndex
from echo_pipeline.reports.rules import LabelRules

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z(])|\n+")
_LIST_NUMBER = re.compile(r"^\s*\d+[.)]\s+")
_HEADER = re.compile(r"^([A-Za-z][A-Za-z /&'-]{1,48}):\s*$")
_SEPARATOR = re.compile(r"[,;]|\b(?:and|with|but|while|whereas|although|however)\b", re.I)
_LIST_GAP = re.compile(r"^[\s,/&]*(?:(?:and|or|and/or)\b)?[\s,]*(?:(?:the|a)\b)?\s*$", re.I)
_NUMBER = r"\d{1,3}(?:[.,]\d+)?"
_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]*")
BOUNDARY = ("", "boundary")


def split_sentences(text: str) -> list[str]:
    """Sentences of a report, list numbering ("1. ") removed, blanks dropped."""
    pieces = (_LIST_NUMBER.sub("", p).strip() for p in _SENTENCE_END.split(text))
    return [p for p in pieces if p]


def _index(phrases) -> PhraseIndex:
    return PhraseIndex((p, True) for p in phrases)


def _spaced(word: str) -> str:
    """Lower case, hyphens and runs of spaces as one space: the key a grade word is looked up by."""
    return re.sub(r"[\s\-]+", " ", word.strip().lower())


def _value(text: str) -> float:
    return float(text.replace(",", "."))


@dataclass
class ReportResult:
    """What one report states: label -> (value, source sentence); assertion counts; sentences with no value."""

    values: dict[str, tuple[object, str]] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)  # (label, status) -> mentions
    gaps: list[tuple[str, str]] = field(default_factory=list)  # (label, sentence)


class _Grades:
    """A grade vocabulary ("mild" / "mildly" -> mild) and its ranges ("mild to moderate" -> the worse)."""

    def __init__(self, grades: dict, joiners: list[str], upper: bool):
        self.order = list(grades)
        self.of = {_spaced(w): g for g, words in grades.items() for w in words}
        words = "|".join(re.escape(w).replace(r"\ ", r"[\s\-]+") for w in sorted(self.of, key=len, reverse=True))
        join = "|".join(re.escape(j) for j in sorted(joiners, key=len, reverse=True))
        self.regex = re.compile(rf"(?<![A-Za-z])({words})(?:\s*(?:{join})\s*({words}))?(?![A-Za-z])", re.I)
        self.pick = max if upper else min

    def find(self, text: str, last: bool = False) -> str | None:
        hits = list(self.regex.finditer(text))
        if not hits:
            return None
        hit = hits[-1] if last else hits[0]
        found = [self.of[_spaced(g)] for g in hit.groups() if g]
        return self.pick(found, key=self.order.index)


class LabelExtractor:
    """Compiled rules; `extract(text)` labels one report. Build once, reuse for every report."""

    def __init__(self, rules: LabelRules):
        r = rules.rules
        self.sha256 = rules.sha256
        self.rules = r["labels"]
        entries = [(p, BOUNDARY) for p in r.get("boundaries", [])]
        for name, rule in self.rules.items():
            for key, role in (("targets", "target"), ("false_phrases", "false"), ("summary_targets", "summary"),
                              ("summary_normal", "summary_normal")):
                entries += [(p, (name, role)) for p in rule.get(key, [])]
        self.mentions = PhraseIndex(entries)
        self.cues = cue_index(r.get("context", {}))
        upper = r.get("range_policy", "upper") == "upper"
        unspecified = r.get("unspecified_grade") or {}
        self.unspecified = {name: unspecified.get(rule["grades"])
                            for name, rule in self.rules.items() if "grades" in rule}
        self.grades = {name: _Grades(r["grades"][rule["grades"]], r.get("range_joiners", []), upper)
                       for name, rule in self.rules.items() if "grades" in rule}
        self.self_findings = {n: _index(rule.get("self_findings", [])) for n, rule in self.rules.items()}
        self.findings = {n: _index(rule.get("findings", [])) for n, rule in self.rules.items()}
        self.normal = {n: _index(rule.get("normal", [])) for n, rule in self.rules.items()}
        self.numbers = {n: self._number_regex(rule) for n, rule in self.rules.items() if "units" in rule}
        self.categories = {n: [(c["value"], [_index(g) for g in c["all"]]) for c in rule["categories"]]
                           for n, rule in self.rules.items() if rule["kind"] == "category"}

    @staticmethod
    def _number_regex(rule: dict) -> tuple[re.Pattern, re.Pattern]:
        units = "|".join(re.escape(u).replace(r"\ ", r"\s*") for u in sorted(rule["units"], key=len, reverse=True))
        span = rf"(?:(?:-|\u2013|\u2014|to)\s*({_NUMBER})\s*)?"  # "55-60 %", "55 % to 60 %"
        after = re.compile(rf"(?<![\d.])({_NUMBER})\s*(?:{units})?\s*{span}(?:{units})(?![A-Za-z])", re.I)
        # "LVEF (%): 55", "EF%: 55", "PASP = 35"
        tabular = re.compile(rf"\s*\(?\s*(?:{units})?\s*\)?\s*[:=]\s*({_NUMBER})(?![\d.])", re.I)
        return after, tabular

    # --- one mention ----------------------------------------------------------------------------------------
    def _window(self, sentence: str, mentions: list[Match], i: int) -> tuple[str, str]:
        """(words before, words after) that belong to mention i."""
        m = mentions[i]
        before = sentence[mentions[i - 1].end if i else 0:m.start]
        if i:
            cuts = list(_SEPARATOR.finditer(before))
            before = before[cuts[-1].end():] if cuts else ""
        after = sentence[m.end:mentions[i + 1].start if i + 1 < len(mentions) else len(sentence)]
        if i + 1 < len(mentions):
            cuts = list(_SEPARATOR.finditer(after))
            after = after[:cuts[-1].start()] if cuts else after
        return before, after

    def _grade(self, label: str, sentence: str, mentions: list[Match], i: int) -> tuple[object, bool]:
        """(value, whether the window said anything): grade + finding, normal -> "none", finding alone."""
        before, after = self._window(sentence, mentions, i)
        grades = self.grades[label]
        target = sentence[mentions[i].start:mentions[i].end]
        grade = grades.find(before, last=True) or grades.find(target) or grades.find(after)
        finding = bool(self.self_findings[label].find(target)) or bool(self.findings[label].find(before + " " + after))
        if grade and finding:
            return grade, True
        if self.normal[label].find(before + " " + after):
            return "none", True
        if finding:
            return self.unspecified[label], True
        return None, bool(grade)

    def _shared_grade(self, label: str, sentence: str, mentions: list[Match], i: int):
        """A list shares its modifier: "normal LV and RV size", "LA and RA are moderately dilated", "mild left
        atrial and moderate right atrial enlargement" (the grade is this one's, the finding the list's)."""
        before, after = self._window(sentence, mentions, i)
        own = self.grades[label].find(before, last=True) or self.grades[label].find(after)
        vocabulary = self.rules[label]["grades"]
        for j in (i + 1, i - 1):
            if not 0 <= j < len(mentions) or not any(
                    role == "target" and self.rules[name].get("grades") == vocabulary
                    for name, role in mentions[j].payloads):
                continue
            lo, hi = sorted((i, j))
            gap = self.grades[label].regex.sub(" ", sentence[mentions[lo].end:mentions[hi].start])
            if not _LIST_GAP.match(gap):
                continue
            value, said = self._grade(label, sentence, mentions, j)
            if own and value not in (None, "none"):
                return own
            if said and value is not None:
                return value
        return self._list_head_normal(label, sentence, mentions, i)

    def _list_head_normal(self, label: str, sentence: str, mentions: list[Match], i: int):
        """ "LV: normal size and wall thickness": a normal phrase heading the list this mention ends."""
        if not i:
            return None
        gap = sentence[mentions[i - 1].end:mentions[i].start]
        cuts = list(_SEPARATOR.finditer(gap))
        if not cuts or gap[cuts[-1].end():].strip(" ,"):
            return None
        head = " ".join(_WORDS.findall(gap[:cuts[-1].start()])[-3:])
        return "none" if self.normal[label].find(head) else None

    def _number(self, label: str, sentence: str, mentions: list[Match], i: int):
        """The first number with the label's unit whose nearest mention before it is this label's."""
        rule = self.rules[label]
        after, tabular = self.numbers[label]
        low, high = rule["valid"]
        values = []
        for hit in after.finditer(sentence, mentions[i].end):
            owner = [m for m in mentions if m.end <= hit.start()]
            if owner and any(p[0] == label for p in owner[-1].payloads):
                values = [_value(g) for g in hit.groups() if g]
                break
        found = None if values else tabular.match(sentence, mentions[i].end)
        values = [_value(found.group(1))] if found else values
        if not values:
            return None
        value = sum(values) / len(values)
        return value if low <= value <= high else None

    def _category(self, label: str, sentence: str, mentions: list[Match], i: int):
        number = self._number(label, sentence, mentions, i)
        if number is not None:
            return next(value for bound, value in self.rules[label]["bins"] if number <= bound)
        own = [k for k, m in enumerate(mentions) if any(p[0] == label for p in m.payloads)]
        lo = max((mentions[k].end for k, m in enumerate(mentions) if k < i and k not in own), default=0)
        hi = min((mentions[k].start for k, m in enumerate(mentions) if k > i and k not in own), default=len(sentence))
        window = sentence[lo:hi]
        for value, groups in self.categories[label]:
            if all(group.find(window) for group in groups):
                return value
        return None

    def _mention_value(self, label: str, role: str, status: str, sentence: str, mentions: list[Match], i: int):
        kind = self.rules[label]["kind"]
        negated = status == "negated"
        if role == "false":
            return None if negated else False
        if role == "summary":  # "no significant valvular disease", "Valves: unremarkable"
            before, after = self._window(sentence, mentions, i)
            return True if negated or self.normal[label].find(f"{before} {after}") else None
        if role == "summary_normal":
            return None if negated else True
        if kind == "presence":
            return not negated
        if kind in ("grade", "valves"):
            if negated:
                return "none"
            value, _ = self._grade(label, sentence, mentions, i)
            return value if value is not None else self._shared_grade(label, sentence, mentions, i)
        if negated:
            return None
        return self._number(label, sentence, mentions, i) if kind == "number" else self._category(
            label, sentence, mentions, i)

    # --- one report -----------------------------------------------------------------------------------------
    def _sentence(self, sentence: str, result: ReportResult, lesions: list, count: bool) -> None:
        mentions = self.mentions.find(sentence)
        if not mentions:
            return
        statuses = mention_statuses(sentence, mentions, self.cues.find(sentence))
        for i, mention in enumerate(mentions):
            for label, role in mention.payloads:
                if role == "boundary":
                    continue
                status = statuses[i]
                if count:
                    result.statuses[(label, status)] += 1
                if status in ("uncertain", "hypothetical") or (
                        status == "historical" and self.rules[label].get("historical", "ignore") == "ignore"):
                    continue
                value = self._mention_value(label, role, status, sentence, mentions, i)
                if value is None:
                    if role == "target" and count:
                        result.gaps.append((label, sentence))
                elif self.rules[label]["kind"] == "valves":
                    lesions.append((label, value, role, sentence))
                elif label not in result.values:
                    result.values[label] = (value, sentence)

    def extract(self, text: str) -> ReportResult:
        """Every label the report states, with its sentence; the first sentence in reading order decides."""
        result, lesions, header = ReportResult(), [], None
        for sentence in split_sentences(text):
            heading = _HEADER.match(sentence)
            if heading:  # a section heading ("LEFT ATRIUM:") lends its subject to the sentences under it
                header = heading.group(1) if self.mentions.find(heading.group(1)) else None
                continue
            if header and not self.mentions.find(sentence):
                self._sentence(f"{header}: {sentence}", result, lesions, count=True)
            else:
                self._sentence(sentence, result, lesions, count=True)
        self._valves(result, lesions)
        self._derived(result)
        return result

    def _valves(self, result: ReportResult, lesions: list) -> None:
        """False when any valve lesion is graded significant; true when the valves as a whole are said to be
        normal; a mild lesion alone says nothing about the valves as a whole."""
        for label in {lesion[0] for lesion in lesions}:
            significant = set(self.rules[label]["significant"])
            mine = [(value, role, sentence) for name, value, role, sentence in lesions if name == label]
            worst = next((s for value, role, s in mine if role == "target" and value in significant), None)
            normal = next((s for value, role, s in mine if role != "target" and value is True), None)
            if worst or normal:
                result.values[label] = (False, worst) if worst else (True, normal)

    def _derived(self, result: ReportResult) -> None:
        for label, rule in self.rules.items():
            if rule["kind"] == "derived" and rule["from"] in result.values:
                value, sentence = result.values[rule["from"]]
                mapped = {str(k).lower(): v for k, v in rule["map"].items()}.get(str(value).lower())
                if mapped is not None:
                    result.values[label] = (mapped, sentence)
