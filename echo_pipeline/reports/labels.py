"""Structured labels from report text, by documented sentence rules (docs/reports.md, "Label rules").

The text is cut into sentences (line breaks and sentence-final punctuation). For each label the rules are
tried sentence by sentence in reading order and the first sentence that yields a value decides; that
sentence is recorded in `<label>_source`. A finding never mentioned stays null (unknown), which is not the
same as an explicit negative ("No pericardial effusion." gives effusion = "none").
"""

from __future__ import annotations

import re
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from echo_pipeline.schemas import REPORT_LABEL_NAMES, REPORT_LABELS

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


def extract_labels(text: str) -> dict[str, tuple[object, str] | None]:
    """label → (value, source sentence) for every label the text states; None for labels never mentioned."""
    found: dict[str, tuple[object, str] | None] = {label: None for label in REPORT_LABEL_NAMES}
    for sentence in split_sentences(text):
        for label, rule in RULES.items():
            if found[label] is None:
                value = rule(sentence)
                if value is not None:
                    found[label] = (value, sentence)
    return found


def label_reports(reports: pa.Table, links: pa.Table, *, run_id: str, code_version: str) -> pa.Table:
    """The `report_labels` table: one row per linked report, wide label columns plus `<label>_source`."""
    linked = links.filter(pc.is_valid(links.column("study_instance_uid")))
    study_of = dict(zip(linked.column("report_id").to_pylist(), linked.column("study_instance_uid").to_pylist()))
    patient_of = dict(zip(linked.column("report_id").to_pylist(), linked.column("patient_key").to_pylist()))
    rows = []
    for report_id, text in zip(reports.column("report_id").to_pylist(), reports.column("report_text").to_pylist()):
        if report_id not in study_of:
            continue
        found = extract_labels(text)
        row = {"report_id": report_id, "study_instance_uid": study_of[report_id], "patient_key": patient_of[report_id],
               "run_id": run_id, "code_version": code_version}
        for label, hit in found.items():
            row[label], row[f"{label}_source"] = hit if hit is not None else (None, None)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=REPORT_LABELS)


def label_counts(labels: pa.Table) -> pd.DataFrame:
    """Per label: how many reports state it and the distribution of values (for run metadata)."""
    frame = labels.to_pandas()
    return pd.DataFrame(
        [{"label": label, "stated": int(frame[label].notna().sum()), "missing": int(frame[label].isna().sum())}
         for label in REPORT_LABEL_NAMES]
    )
