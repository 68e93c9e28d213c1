"""Report labelling throughput: the rules-as-data engine vs the hand-written regexes it replaced.

Same reports, one run, one core (one Python process): synthetic reports (echo_pipeline.synth.report_text,
the only realistic report text available offline) labelled by the pre-issue-18 regex rules, copied below as
the baseline, and by `LabelExtractor` over the packaged label_rules.yaml. Prints ``name: value`` lines:
reports per second for both, their ratio, and how often the two agree on the twelve labels they share.
Usage: ``python bench/bench_labels.py [--reports 3000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from bench_ranks import best_time  # bench/ is on the path when a bench script runs
from echo_pipeline.reports.extract import LabelExtractor
from echo_pipeline.reports.rules import load_label_rules
from echo_pipeline.synth.report_text import render_report

# --- the baseline: echo_pipeline/reports/labels.py as of 4c5b509 (the regexes written with the generator) ---
SEVERITIES = ("none", "mild", "moderate", "severe")
EFFUSION_SIZES = ("none", "small", "moderate", "large")

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z(])|\n+")
_LIST_NUMBER = re.compile(r"^\s*\d+[.)]\s+")
_NEGATION = re.compile(r"\b(no|not|without|negative for|absence of)\b", re.I)
_SEVERITY = r"(mild|moderate|severe)(?:ly)?"
_VERB = r"(?:is|was|appears|are|were)"


def split_sentences(text: str) -> list[str]:
    """Sentences of a report, list numbering ("1. ") removed, blanks dropped."""
    pieces = (_LIST_NUMBER.sub("", p).strip() for p in _SENTENCE_END.split(text))
    return [p for p in pieces if p]


def _severity(word: str) -> str:
    return word.lower().removesuffix("ly")


def _lvef(sentence: str):
    match = re.search(r"\b(?:LVEF|EF)\b|ejection fraction", sentence, re.I)
    if not match or re.search(r"right ventricular ejection fraction|\bRVEF\b", sentence, re.I):
        return None
    rest = sentence[match.end():]
    span = re.search(r"(\d{1,2}(?:\.\d+)?)\s*(?:-|\u2013|\u2014|to)\s*(\d{1,2}(?:\.\d+)?)\s*%", rest)
    if span:
        low, high = float(span.group(1)), float(span.group(2))
        value = (low + high) / 2
    else:
        single = re.search(r"(\d{1,2}(?:\.\d+)?)\s*%", rest)
        value = float(single.group(1)) if single else None
    return value if value is not None and 5 <= value <= 95 else None


def _pasp(sentence: str):
    match = re.search(r"pulmonary artery systolic pressure|\bPA systolic pressure|\bPASP\b|\bRVSP\b|"
                      r"right ventricular systolic pressure", sentence, re.I)
    if not match:
        return None
    number = re.search(r"(\d{2,3})\s*mm\s?Hg", sentence[match.end():], re.I)
    return float(number.group(1)) if number else None


def _device(positive: str, explicit_negative: str | None = None) -> Callable[[str], bool | None]:
    """Mention of the device → True, negated mention → False; an explicit 'native valve' phrase → False."""

    def rule(sentence: str):
        if explicit_negative and re.search(explicit_negative, sentence, re.I):
            return False
        if re.search(positive, sentence, re.I):
            return not _NEGATION.search(sentence)
        return None

    return rule


_pacemaker = _device(r"\b(?:pacemaker|pacer|ICD|pacing|device)\b[^.]*\bleads?\b|\bleads?\b[^.]*\b(?:pacemaker|ICD)\b")
_tavr = _device(r"\bTAVR\b|\bTAVI\b|transcatheter aortic valve", r"\bnative aortic valve\b")
_mitraclip = _device(r"\bmitra-?\s?clips?\b", r"\bnative mitral valve\b")

# chamber label → (noun phrase pattern, adjective pattern)
_CHAMBERS = {
    "lv_dilation": (r"(?:left ventricle|left ventricular cavity|\bLV\b)", r"(?:left ventricular|\bLV\b)"),
    "la_dilation": (r"(?:left atrium|\bLA\b)", r"(?:left atrial|\bLA\b)"),
    "rv_dilation": (r"(?:right ventricle|right ventricular cavity|\bRV\b)", r"(?:right ventricular|\bRV\b)"),
    "ra_dilation": (r"(?:right atrium|\bRA\b)", r"(?:right atrial|\bRA\b)"),
}


def _chamber(label: str) -> Callable[[str], str | None]:
    noun, adj = _CHAMBERS[label]
    abnormal = [
        rf"{noun}\s+{_VERB}\s+{_SEVERITY}\s+(?:dilated|enlarged)",
        rf"\b{_SEVERITY}\s+{adj}\s+(?:dilation|dilatation|enlargement)",
        rf"\b{_SEVERITY}\s+(?:dilation|dilatation|enlargement) of the {noun}",
        rf"{adj} (?:size|volume) {_VERB} {_SEVERITY}\s+increased",
    ]
    if label in ("la_dilation", "ra_dilation"):
        abnormal.append(rf"\b{_SEVERITY}\s+bi-?atrial (?:dilation|dilatation|enlargement)")
    normal = [
        rf"{noun}\s+{_VERB}\s+(?:normal in size|of normal size|not dilated|not enlarged)",
        rf"{adj} (?:size|cavity size|volume) {_VERB} normal",
        rf"\bnormal {adj} (?:size|cavity size)",
        rf"\bno {adj} (?:dilation|dilatation|enlargement)",
    ]

    def rule(sentence: str):
        for pattern in abnormal:
            match = re.search(pattern, sentence, re.I)
            if match:
                return _severity(match.group(1))
        if any(re.search(p, sentence, re.I) for p in normal):
            return "none"
        return None

    return rule


def _lvh(sentence: str):
    abnormal = re.search(rf"\b{_SEVERITY}\s+(?:concentric\s+|eccentric\s+|asymmetric\s+)?(?:left ventricular hypertrophy|LVH)\b"
                         rf"|(?:left ventricular|LV) wall thickness {_VERB} {_SEVERITY} increased", sentence, re.I)
    if abnormal:
        return _severity(abnormal.group(1) or abnormal.group(2))
    if re.search(r"\bno (?:left ventricular hypertrophy|LVH)\b|(?:left ventricular|LV) wall thickness is normal"
                 r"|normal (?:left ventricular|LV) wall thickness", sentence, re.I):
        return "none"
    return None


def _effusion(sentence: str):
    if not re.search(r"pericardial effusion|pericardium[^.]*effusion", sentence, re.I):
        return None
    if re.search(r"\b(?:no|without)\b[^.]*effusion", sentence, re.I):
        return "none"
    size = re.search(r"\b(small|moderate|large)\b", sentence, re.I)
    return size.group(1).lower() if size else None


def _tamponade(sentence: str):
    if not re.search(r"tamponade", sentence, re.I):
        return None
    return not _NEGATION.search(sentence)


RULES: dict[str, Callable[[str], object]] = {
    "lvef": _lvef, "pasp": _pasp, "pacemaker": _pacemaker, "tavr": _tavr, "mitraclip": _mitraclip,
    **{label: _chamber(label) for label in _CHAMBERS}, "lvh": _lvh, "effusion": _effusion, "tamponade": _tamponade,
}


def old_extract_labels(text: str) -> dict[str, tuple[object, str] | None]:
    """label → (value, source sentence) for every label the text states; None for labels never mentioned."""
    found: dict[str, tuple[object, str] | None] = {label: None for label in RULES}
    for sentence in split_sentences(text):
        for label, rule in RULES.items():
            if found[label] is None:
                value = rule(sentence)
                if value is not None:
                    found[label] = (value, sentence)
    return found


# --- the measurement ----------------------------------------------------------------------------------------
SEV = ("none", "mild", "moderate", "severe")


def _study(rng: np.random.Generator) -> dict:
    effusion = ("none", "small", "moderate", "large")[int(rng.choice(4, p=[0.6, 0.2, 0.12, 0.08]))]
    return {"study_instance_uid": "", "accession_number": "", "patient_id": "x", "study_date": "2020-01-01",
            "lvef": float(rng.uniform(12, 78)), "pasp": float(rng.uniform(18, 85)),
            "pacemaker": bool(rng.random() < 0.25), "tavr": bool(rng.random() < 0.2), "mitraclip": bool(rng.random() < 0.2),
            **{k: SEV[int(rng.integers(4))] for k in ("lv_dilation", "la_dilation", "rv_dilation", "ra_dilation", "lvh")},
            "effusion": effusion, "tamponade": bool(effusion in ("moderate", "large") and rng.random() < 0.4)}


def _cpu_seconds(fn: Callable[[], list]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dump", type=Path, default=None,
                        help="also write the reports and the rules' target phrases to this JSON file, the input of "
                             "bench/medspacy_comparison.py (run in a separate environment)")
    args = parser.parse_args()
    texts = []
    for i in range(args.reports):
        study = _study(np.random.default_rng(i))
        texts.append(render_report(study, np.random.default_rng(10_000 + i))[0])
    rules = load_label_rules()
    extractor = LabelExtractor(rules)
    if args.dump:
        targets = [(name, phrase) for name, rule in rules.rules["labels"].items()
                   for key in ("targets", "false_phrases", "summary_targets") for phrase in rule.get(key, [])
                   if not phrase.startswith("re:")]
        args.dump.write_text(json.dumps({"texts": texts, "targets": targets}))
    t_old, old = best_time(lambda: [old_extract_labels(t) for t in texts], args.repeats)
    t_new, new = best_time(lambda: [extractor.extract(t).values for t in texts], args.repeats)
    # CPU seconds of this process: the one-core figure even when other processes share the machine.
    cpu_old = _cpu_seconds(lambda: [old_extract_labels(t) for t in texts])
    cpu_new = _cpu_seconds(lambda: [extractor.extract(t).values for t in texts])
    shared = list(RULES)
    agree = np.mean([(o[k][0] if o[k] else None) == (n[k][0] if k in n else None)
                     for o, n in zip(old, new) for k in shared])
    print(f"reports: {len(texts)}")
    print(f"mean_report_chars: {np.mean([len(t) for t in texts]):.0f}")
    print(f"old_regex_reports_per_s: {len(texts) / t_old:.0f}")
    print(f"rules_engine_reports_per_s: {len(texts) / t_new:.0f}")
    print(f"rules_engine_speed_vs_old: {t_old / t_new:.2f}")
    print(f"old_regex_reports_per_cpu_s: {len(texts) / cpu_old:.0f}")
    print(f"rules_engine_reports_per_cpu_s: {len(texts) / cpu_new:.0f}")
    print(f"labels_old_has: {len(shared)}")
    print(f"labels_rules_engine_has: {len(extractor.rules)}")
    print(f"agreement_on_shared_labels: {agree:.4f}")
    print(f"cpu_minutes_for_225k_reports: {225_000 / (len(texts) / cpu_new) / 60:.1f}")


if __name__ == "__main__":
    main()
