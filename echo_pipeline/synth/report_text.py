"""Templated transthoracic echo reports for the synthetic cohort, with the truth of what each text states.

Real reports are written from a structured template, so every sentence comes from a finite set of templates
whose only free parts are numbers and severity words. That keeps the corpus learnable by a template tokenizer
(EchoCLIP-R) while phrasing still varies (synonyms, "is"/"was", abbreviations, ranges, negations). The phrasings
live in a house style (house_styles/*.yaml, see house_style.py); this module holds the report's structure: which
finding is stated, in which section, with which numbers. A finding can be left out entirely; the returned
`stated` dict then holds None for that label, which is the truth the report-label extractor is scored against.
Some reports carry PHI-like header lines (a referring physician's name, the patient's MRN) on purpose: real free
text does, and the pipeline documents this as a residual privacy risk rather than pretending report text is clean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from echo_pipeline.schemas import REPORT_LABEL_NAMES as LABELS
from echo_pipeline.synth.house_style import HOUSE_STYLES, HouseStyle, capitalise, chance, load_house_style, pick
from echo_pipeline.synth.physiology import FINDING_KEYS, RIGHT_ATRIAL_PRESSURES, sample_findings
from echo_pipeline.synth.report_sections import FILLER_SECTIONS, SECTION_BUILDERS, impression

DEFAULT_HOUSE_STYLE = HOUSE_STYLES[0]
_DEVICES = ("pacemaker", "tavr", "mitraclip", "impella")


@dataclass
class Draft:
    """One report being written: the study, the style, the draws shared by several sections, what is stated."""

    study: dict
    rng: np.random.Generator
    style: HouseStyle
    mention: dict
    lvef: float | None
    ef: str
    ef_value: float | None
    pasp: int | None
    devices: dict
    stated: dict = field(default_factory=lambda: {label: None for label in LABELS})

    @property
    def rap(self) -> int:
        """The right atrial pressure in mmHg that the IVC sentences and the PASP estimate use."""
        return RIGHT_ATRIAL_PRESSURES[self.study["right_atrial_pressure"]]

    @property
    def lesion(self) -> tuple[str | None, str | None]:
        """(valve lesion, its severity), or (None, None) when no valve has a moderate or severe lesion."""
        lesion = self.study["valve_lesion"]
        return tuple(lesion.split(":")) if lesion else (None, None)

    def say(self, key: str, **values) -> str:
        return self.style.say(self.rng, key, **values)

    def say_rap(self, key: str, **values) -> str:
        """A phrasing of ``key`` filled with the RA pressure; one that names it states the RA pressure level."""
        template = self.style.template(self.rng, key)
        if "{rap}" in template:
            self.stated["right_atrial_pressure"] = self.study["right_atrial_pressure"]
        return template.format(rap=self.rap, **values)


def render_report(study: dict, rng: np.random.Generator, style: str = DEFAULT_HOUSE_STYLE) -> tuple[str, dict]:
    """Report text for one study row and what that text states per label (value, or None when not mentioned).

    Deterministic given the generator state and the house style (one of HOUSE_STYLES). `study` carries the keys
    of truth/studies.parquet; the stated LVEF is the number written (a range's midpoint), the stated PASP the
    integer written.
    """
    draft = _draft(study, rng, load_house_style(style))
    header = _header(draft)
    # Optional filler sections and free comments spread report length like real ones (short limited studies,
    # long detailed ones); sections carrying a stated finding are always kept.
    kept = [(key, builder) for key, builder in SECTION_BUILDERS if key not in FILLER_SECTIONS or chance(rng, 0.75)]
    built = [(key, builder(draft)) for key, builder in kept]
    comments = [pick(rng, draft.style["comments"]) for _ in range(int(rng.integers(0, 5)))]
    if comments:
        built.append(("comments", list(dict.fromkeys(comments))))
    text = _assemble(draft.style, header, dict(built), impression(draft))
    text += "\n\n" + draft.say("signature", physician=pick(rng, draft.style["physicians"])) if chance(rng, 0.3) else ""
    return text, draft.stated


def _draft(study: dict, rng: np.random.Generator, style: HouseStyle) -> Draft:
    if any(key not in study for key in FINDING_KEYS):  # a hand-made study: draw the later findings here
        study = {**sample_findings(rng, _physiology_defaults(study)), **study}
    mention = _mentions(rng, study)
    lvef = None if _missing(study["lvef"]) else float(study["lvef"])
    ef, ef_value = _ef_text(rng, style, lvef) if lvef is not None else ("", None)
    pasp = None if _missing(study["pasp"]) else int(round(float(study["pasp"])))
    draft = Draft(study, rng, style, mention, lvef, ef, ef_value, pasp, {})
    draft.devices.update(_device_sentences(draft))
    return draft


def _assemble(style: HouseStyle, header: list[str], sections: dict[str, list[str]], summary: list[str]) -> str:
    """Header, sections in the style's order and the numbered impression, blank lines between blocks."""
    blocks = [f"{title}:\n" + "\n".join(sections[key]) for key, title in style["sections"].items() if key in sections]
    items = [style["impression_item"].format(number=i, sentence=s) for i, s in enumerate(summary, 1)]
    summary_block = f"{style['impression_title']}:\n" + "\n".join(items)
    blocks = [summary_block] + blocks if style["impression_first"] else blocks + [summary_block]
    return "\n".join(header) + "\n\n" + "\n\n".join(blocks)


def _header(d: Draft) -> list[str]:
    """Title, date, optional PHI-like lines, indication, vitals, rhythm, quality, comparison, protocol."""
    rng, study, lines = d.rng, d.study, d.style["header"]
    out = {"title": lines["title"], "study_date": lines["study_date"].format(date=study["study_date"])}
    if chance(rng, 0.12):
        out["physician"] = lines["physician"].format(physician=pick(rng, d.style["physicians"]))
    if chance(rng, 0.05):
        out["mrn"] = lines["mrn"].format(patient_id=study["patient_id"])
    out["indication"] = lines["indication"].format(indication=pick(rng, d.style["indications"]))
    out["body"] = lines["body"].format(height=int(rng.integers(150, 195)), weight=int(rng.integers(50, 120)))
    out["vitals"] = lines["vitals"].format(systolic=int(rng.integers(100, 160)), diastolic=int(rng.integers(55, 95)),
                                           heart_rate=int(rng.integers(50, 105)))
    out["rhythm"] = lines["rhythm"].format(rhythm=_rhythm(d))
    out["image_quality"] = pick(rng, d.style["image_quality"])
    out["comparison"] = pick(rng, d.style["comparisons"])
    out["protocol"] = lines["protocol"]
    return [out[key] for key in d.style["header_order"] if key in out]


def _rhythm(d: Draft) -> str:
    """The rhythm line: paced (says nothing of atrial fibrillation), atrial fibrillation, or a sinus rhythm."""
    if bool(d.study["pacemaker"]) and "pacemaker" in d.devices:
        return d.style["paced_rhythm"]
    fibrillating = bool(d.study["atrial_fibrillation"])
    d.stated["atrial_fibrillation"] = fibrillating
    return d.say("rhythm_atrial_fibrillation" if fibrillating else "rhythm_sinus")


def _ef_text(rng: np.random.Generator, style: HouseStyle, lvef: float) -> tuple[str, float]:
    """The LVEF as written (exact, 5-point range or rounded estimate) and the number the text states."""
    kind = pick(rng, style["ef_formats"])
    pct = pick(rng, style["percent_signs"])
    if kind == "range":
        low = int(min(max(5 * math.floor(lvef / 5), 10), 80))
        dash = pick(rng, style["range_dashes"])
        return f"{low}{dash}{low + 5}{pct}", low + 2.5
    value = int(round(lvef / 5) * 5) if kind == "round5" else int(round(lvef))
    return f"{value}{pct}", float(value)


def _device_sentences(d: Draft) -> dict[str, str]:
    """The sentence for each device the report mentions (present, or explicitly absent)."""
    out = {}
    for device in _DEVICES:
        if not d.mention[device]:
            continue
        size = pick(d.rng, d.style["tavr_sizes"]) if device == "tavr" else None  # drawn even when absent
        out[device] = d.say(f"{device}_present", size=size) if d.study[device] else d.say(f"{device}_absent")
    return out


def _mentions(rng: np.random.Generator, study: dict) -> dict[str, bool]:
    """Which findings this report states at all (silence is a real and common property of reports)."""
    eff_present = study["effusion"] != "none"
    return {
        "lvef": not _missing(study["lvef"]) and chance(rng, 0.98),
        "pasp": not _missing(study["pasp"]) and chance(rng, 0.90),
        "pacemaker": chance(rng, 0.97 if study["pacemaker"] else 0.30),
        "tavr": chance(rng, 0.98 if study["tavr"] else 0.25),
        "mitraclip": chance(rng, 0.98 if study["mitraclip"] else 0.20),
        "impella": chance(rng, 0.98 if study["impella"] else 0.10),
        "lv_dilation": chance(rng, 0.97), "la_dilation": chance(rng, 0.95),
        "rv_dilation": chance(rng, 0.95), "ra_dilation": chance(rng, 0.92), "lvh": chance(rng, 0.95),
        "effusion": chance(rng, 0.93),
        "tamponade": bool(study["tamponade"]) or chance(rng, 0.85 if eff_present else 0.25),
    }


def _physiology_defaults(study: dict) -> dict:
    """A hand-made study with the fields sample_findings reads (an unknown LVEF or PASP counts as normal)."""
    return {**study, "lvef": 60.0 if _missing(study["lvef"]) else float(study["lvef"]),
            "pasp": 30.0 if _missing(study["pasp"]) else float(study["pasp"])}


def _missing(value) -> bool:
    """None, NaN and pandas' NA all mean 'no value' for a numeric finding."""
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


__all__ = ["DEFAULT_HOUSE_STYLE", "HOUSE_STYLES", "LABELS", "Draft", "capitalise", "render_report"]
