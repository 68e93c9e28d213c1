"""The sections of a synthetic report: which sentences each holds and what they state (phrasing: house style).

Each builder takes the report's Draft (report_text.py), draws from its generator in a fixed order, records what
its sentences state in ``draft.stated`` and returns the section's lines. The order of SECTION_BUILDERS is the
order of the draws, whatever order the house style prints the sections in.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from echo_pipeline.synth.house_style import capitalise, chance, pick

if TYPE_CHECKING:
    from echo_pipeline.synth.report_text import Draft

#: Sections a report may leave out (each kept with probability 0.75); the others carry stated findings.
FILLER_SECTIONS = frozenset({"pulmonic", "aorta", "venous", "measurements"})
_LVIDD = {"none": (4.2, 5.5), "mild": (5.9, 6.3), "moderate": (6.4, 6.8), "severe": (6.9, 7.5)}  # cm
_IVS = {"none": (0.7, 1.0), "mild": (1.1, 1.3), "moderate": (1.4, 1.6), "severe": (1.7, 2.0)}  # cm
_LAVI = {"none": (20, 33), "mild": (35, 41), "moderate": (42, 48), "severe": (49, 62)}  # mL/m2
_EFFUSION_DEPTH = {"small": (0.4, 0.9), "moderate": (1.0, 1.9), "large": (2.0, 3.2)}  # cm


def chamber_size(d: Draft, label: str, severity: str) -> str:
    """A sentence on one chamber's size ("none" = normal size)."""
    chamber = d.style["chambers"][label]
    noun = chamber["abbreviation"] if chance(d.rng, d.style["abbreviation_chance"]) else pick(d.rng, chamber["nouns"])
    verb = pick(d.rng, d.style["chamber_verbs"])
    words = {"noun": noun, "verb": verb, "adj": chamber["adjective"], "Adj": capitalise(chamber["adjective"]),
             "first_noun": chamber["nouns"][0], "abbreviation": chamber["abbreviation"]}
    if severity == "none":
        return d.say("chamber_normal", **words)
    return d.say("chamber_dilated", **words, **_severity_words(d, severity))


def _severity_words(d: Draft, severity: str) -> dict[str, str]:
    word = d.style["severity_words"][severity]
    return {"severity": word, "Severity": capitalise(word), "adverb": d.style["severity_adverbs"][severity]}


def lvh_sentence(d: Draft, severity: str) -> str:
    if severity == "none":
        return d.say("lvh_normal")
    return d.say("lvh_present", **_severity_words(d, severity))


def lv_function_word(d: Draft, lvef: float) -> str:
    if lvef >= 70:
        key = "hyperdynamic"
    elif lvef >= 53:
        key = "normal"
    elif lvef >= 50:
        key = "low_normal"
    else:
        key = "mildly_reduced" if lvef >= 40 else "moderately_reduced" if lvef >= 30 else "severely_reduced"
    return d.style["lv_function_words"][key]


def effusion_sentence(d: Draft, size: str) -> str:
    if size == "none":
        return d.say("effusion_none")
    cm = d.rng.uniform(*_EFFUSION_DEPTH[size])
    word = d.style["effusion_words"][size]
    return d.say("effusion_present", size=word, Size=capitalise(word), cm=cm)


def _lv(d: Draft) -> list[str]:
    lines = []
    if d.mention["lv_dilation"]:
        lines.append(chamber_size(d, "lv_dilation", d.study["lv_dilation"]))
        d.stated["lv_dilation"] = d.study["lv_dilation"]
    if d.mention["lvh"]:
        lines.append(lvh_sentence(d, d.study["lvh"]))
        d.stated["lvh"] = d.study["lvh"]
        d.stated["normal_lv_wall_thickness"] = d.study["lvh"] == "none"  # "no LVH" / "LVH" say it too
    if d.mention["lvef"]:
        function = lv_function_word(d, d.lvef)
        lines.append(d.say("lvef", ef=d.ef, function=function, Function=capitalise(function)))
        d.stated["lvef"] = d.ef_value
    abnormal = d.lvef is not None and d.lvef < 45
    lines.append(d.say("wall_motion_abnormal" if abnormal else "wall_motion_normal"))
    lines.append(d.say("diastolic"))
    lines.append(d.say("mitral_inflow", e_a=d.rng.uniform(0.6, 2.2), e_e=d.rng.uniform(5, 18)))
    return lines


def _rv(d: Draft) -> list[str]:
    lines = []
    if d.mention["rv_dilation"]:
        lines.append(chamber_size(d, "rv_dilation", d.study["rv_dilation"]))
        d.stated["rv_dilation"] = d.study["rv_dilation"]
    preserved = d.study["rv_dilation"] in ("none", "mild")
    lines.append(d.say("rv_function_preserved" if preserved else "rv_function_reduced"))
    return lines + _device(d, "pacemaker")


def _atria(d: Draft) -> list[str]:
    la, ra = d.study["la_dilation"], d.study["ra_dilation"]
    both = d.mention["la_dilation"] and d.mention["ra_dilation"] and la == ra != "none" and chance(d.rng, 0.3)
    if both:
        lines = [d.say("biatrial", **_severity_words(d, la))]
    else:
        lines = [chamber_size(d, k, d.study[k]) for k in ("la_dilation", "ra_dilation") if d.mention[k]]
    for k in ("la_dilation", "ra_dilation"):
        if d.mention[k]:
            d.stated[k] = d.study[k]
    lines.append(d.say("atrial_septum"))
    return lines


def _valve_finding(d: Draft, lesion: str) -> str:
    """The sentence on one valve lesion: moderate or severe when it is the study's lesion (which states
    significant valve disease), else one of the style's insignificant grades (none, trace, mild)."""
    name, severity = d.lesion
    if name != lesion:
        return d.say(lesion)
    d.stated["no_significant_valvular_disease"] = False
    return d.say(f"{lesion}_significant", **_severity_words(d, severity))


def _device(d: Draft, device: str) -> list[str]:
    """The device's sentence, if the report mentions it, and what it states."""
    if device not in d.devices:
        return []
    d.stated[device] = bool(d.study[device])
    return [d.devices[device]]


def _aortic(d: Draft) -> list[str]:
    lines = _device(d, "tavr")
    if d.study["tavr"]:
        lines.append(d.say("prosthesis_gradient", gradient=int(d.rng.integers(6, 16))))
    else:
        stenosis = d.lesion[0] == "aortic_stenosis"
        lines += [_valve_finding(d, "aortic_stenosis") if stenosis else d.say("aortic_valve_native"),
                  _valve_finding(d, "aortic_regurgitation")]
    return lines + _device(d, "impella")


def _mitral(d: Draft) -> list[str]:
    lines = _device(d, "mitraclip")
    if not d.study["mitraclip"]:
        lines.append(d.say("mitral_valve_native"))
    return lines + [_valve_finding(d, "mitral_regurgitation")]


def _tricuspid(d: Draft) -> list[str]:
    lines = [d.say("tricuspid_valve"), _valve_finding(d, "tricuspid_regurgitation")]
    if d.mention["pasp"]:
        velocity = math.sqrt(max(d.pasp - d.rap, 4) / 4.0)  # simplified Bernoulli: PASP = 4 v^2 + RAP
        lines += [d.say("tr_velocity", velocity=velocity), d.say_rap("pasp", pasp=d.pasp)]
        d.stated["pasp"] = float(d.pasp)
    elif d.pasp is not None and chance(d.rng, 0.5):
        lines.append(d.say("pasp_not_estimated"))
    return lines


def _pulmonic(d: Draft) -> list[str]:
    return [d.say("pulmonic_valve"), d.say("pulmonic_regurgitation")]


def _aorta(d: Draft) -> list[str]:
    return [d.say("aortic_root"), d.style["aortic_arch"][0 if chance(d.rng, 0.5) else 1]]


def _venous(d: Draft) -> list[str]:
    """The IVC's size and collapse, which is how an echo estimates the right atrial pressure."""
    d.stated["right_atrial_pressure"] = d.study["right_atrial_pressure"]
    return [d.say_rap(f"ivc_{d.study['right_atrial_pressure']}")]


def _pericardium(d: Draft) -> list[str]:
    lines = []
    if d.mention["effusion"]:
        lines.append(effusion_sentence(d, d.study["effusion"]))
        d.stated["effusion"] = d.study["effusion"]
    if d.mention["tamponade"]:
        lines.append(d.say("tamponade_present" if d.study["tamponade"] else "tamponade_absent"))
        d.stated["tamponade"] = bool(d.study["tamponade"])
    return lines or [d.style["pericardium_unseen"]]


def _measurements(d: Draft) -> list[str]:
    rng, study = d.rng, d.study
    lvidd = rng.uniform(*_LVIDD[study["lv_dilation"]])
    values = {"lvidd": lvidd, "lvids": lvidd * rng.uniform(0.55, 0.8), "ivsd": rng.uniform(*_IVS[study["lvh"]]),
              "lvpwd": rng.uniform(*_IVS[study["lvh"]]), "lavi": int(rng.uniform(*_LAVI[study["la_dilation"]])),
              "aortic_root": rng.uniform(2.7, 3.7), "tapse": rng.uniform(1.4, 2.6)}
    lines = [template.format(**values) for template in d.style["measurements"]]
    return lines[: int(rng.integers(4, len(lines) + 1))]


#: (section key, builder) in drawing order; the house style decides the printed order and titles.
SECTION_BUILDERS = (("lv", _lv), ("rv", _rv), ("atria", _atria), ("aortic", _aortic), ("mitral", _mitral),
                    ("tricuspid", _tricuspid), ("pulmonic", _pulmonic), ("aorta", _aorta), ("venous", _venous),
                    ("pericardium", _pericardium), ("measurements", _measurements))


def impression(d: Draft) -> list[str]:
    """Summary lines restating the key stated findings (never a finding the body left unstated)."""
    stated, items = d.stated, []
    if stated["lvef"] is not None:
        function = lv_function_word(d, float(d.study["lvef"]))
        items.append(d.say("impression_lvef", ef=d.ef, function=function, Function=capitalise(function)))
    for label in ("lv_dilation", "rv_dilation", "la_dilation", "ra_dilation"):
        if stated[label] not in (None, "none"):
            items.append(chamber_size(d, label, stated[label]))
    if stated["lvh"] not in (None, "none"):
        items.append(lvh_sentence(d, stated["lvh"]))
    items += [d.devices[k] for k in ("tavr", "mitraclip", "pacemaker", "impella") if k in d.devices and stated[k]]
    if d.study["no_significant_valvular_disease"] and chance(d.rng, 0.6):
        items.append(d.say("no_significant_valvular_disease"))
        stated["no_significant_valvular_disease"] = True
    if stated["pasp"] is not None and chance(d.rng, 0.6):
        items.append(d.say("impression_pasp", pasp=int(stated["pasp"])))
    if stated["effusion"] is not None and (stated["effusion"] != "none" or chance(d.rng, 0.5)):
        items.append(effusion_sentence(d, stated["effusion"]))
    if stated["tamponade"]:
        items.append(d.say("tamponade_present"))
    return items or [d.style["impression_empty"]]
