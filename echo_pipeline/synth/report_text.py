"""Templated transthoracic echo reports for the synthetic cohort, with the truth of what each text states.

Real reports are written from a structured template, so this module draws every sentence from a finite set of
templates whose only free parts are numbers and severity words. That keeps the corpus learnable by a template
tokenizer (EchoCLIP-R) while phrasing still varies (synonyms, "is"/"was", abbreviations, ranges, negations).
A finding can be left out entirely; the returned `stated` dict then holds None for that label, which is the
truth the report-label extractor is scored against. Some reports carry PHI-like header lines (a referring
physician's name, the patient's MRN) on purpose: real free text does, and the pipeline documents this as a
residual privacy risk rather than pretending report text is clean.
"""

from __future__ import annotations

import math

import numpy as np

LABELS = ("lvef", "pasp", "pacemaker", "tavr", "mitraclip", "lv_dilation", "la_dilation", "rv_dilation",
          "ra_dilation", "lvh", "effusion", "tamponade")
_ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}
_PHYSICIANS = ("SMITH", "GARCIA", "NGUYEN", "PATEL", "MUELLER", "KOWALSKI", "OKAFOR", "ROSSI", "TANAKA", "LEE")
_COMMENTS = ("Agitated saline contrast was not administered.", "Definity contrast was used to enhance endocardial border definition.",
             "The study was performed at the bedside.", "Limited views were obtained due to patient positioning.",
             "Findings were discussed with the ordering provider.", "Apical views are foreshortened.",
             "Doppler interrogation of the pulmonary veins shows systolic predominance.",
             "Color Doppler was used to assess valvular regurgitation.", "Suboptimal acoustic windows.")
# chamber label → (noun phrases, adjective, abbreviation)
_CHAMBERS = {
    "lv_dilation": (("left ventricle", "left ventricular cavity"), "left ventricular", "LV"),
    "la_dilation": (("left atrium",), "left atrial", "LA"),
    "rv_dilation": (("right ventricle", "right ventricular cavity"), "right ventricular", "RV"),
    "ra_dilation": (("right atrium",), "right atrial", "RA"),
}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _chamber_size(rng, label: str, severity: str) -> str:
    nouns, adj, abbr = _CHAMBERS[label]
    noun = abbr if _chance(rng, 0.15) else _pick(rng, nouns)
    verb = _pick(rng, ("is", "is", "was", "appears"))
    if severity == "none":
        return _pick(rng, (f"The {noun} {verb} normal in size.", f"{_cap(adj)} size is normal.",
                           f"The {noun} {verb} not dilated.", f"Normal {adj} size.",
                           f"The {noun} {verb} of normal size."))
    adv = _ADVERB[severity]
    return _pick(rng, (f"The {noun} {verb} {adv} dilated.", f"The {noun} {verb} {adv} enlarged.",
                       f"{_cap(severity)} {adj} dilation.", f"{_cap(severity)} {adj} enlargement.",
                       f"There is {severity} dilation of the {nouns[0]}.", f"{_cap(adj)} size is {adv} increased."))


def _lvh_sentence(rng, severity: str) -> str:
    if severity == "none":
        return _pick(rng, ("Left ventricular wall thickness is normal.", "No left ventricular hypertrophy.",
                           "There is no left ventricular hypertrophy.", "Normal LV wall thickness."))
    adv = _ADVERB[severity]
    return _pick(rng, (f"There is {severity} concentric left ventricular hypertrophy.",
                       f"{_cap(severity)} left ventricular hypertrophy.",
                       f"Left ventricular wall thickness is {adv} increased.",
                       f"{_cap(severity)} concentric LVH."))


def _ef_text(rng, lvef: float) -> tuple[str, float]:
    """The LVEF as written (exact, 5-point range or rounded estimate) and the number the text states."""
    style = _pick(rng, ("exact", "exact", "range", "round5"))
    pct = _pick(rng, ("%", "%", " %"))
    if style == "range":
        low = int(min(max(5 * math.floor(lvef / 5), 10), 80))
        dash = _pick(rng, ("-", "-", "\u2013"))
        return f"{low}{dash}{low + 5}{pct}", low + 2.5
    value = int(round(lvef / 5) * 5) if style == "round5" else int(round(lvef))
    return f"{value}{pct}", float(value)


def _lv_function_word(lvef: float) -> str:
    if lvef >= 70:
        return "hyperdynamic"
    if lvef >= 53:
        return "normal"
    if lvef >= 50:
        return "low normal"
    return "mildly reduced" if lvef >= 40 else "moderately reduced" if lvef >= 30 else "severely reduced"


def _lvef_sentence(rng, ef: str, func: str) -> str:
    return _pick(rng, (f"Left ventricular systolic function is {func} with an ejection fraction of {ef}.",
                       f"The left ventricular ejection fraction is estimated at {ef}.",
                       f"LVEF {ef}.", f"Overall left ventricular systolic function was {func}, LVEF {ef}.",
                       f"The ejection fraction by visual estimate is {ef}.",
                       f"{_cap(func)} LV systolic function (EF {ef}).",
                       f"Biplane Simpson's left ventricular ejection fraction is {ef}."))


def _pasp_sentence(rng, pasp: int, rap: int) -> str:
    return _pick(rng, (f"The estimated pulmonary artery systolic pressure is {pasp} mmHg.", f"PASP {pasp} mmHg.",
                       f"Estimated PA systolic pressure is {pasp} mmHg assuming a right atrial pressure of {rap} mmHg.",
                       f"Right ventricular systolic pressure is estimated at {pasp} mmHg.",
                       f"Pulmonary artery systolic pressure was estimated at {pasp} mmHg."))


def _device_sentences(rng, study: dict, mention: dict) -> dict[str, str]:
    out = {}
    if mention["pacemaker"]:
        out["pacemaker"] = (_pick(rng, ("A pacemaker/ICD lead is seen in the right heart.",
                                        "Pacemaker leads are noted in the right atrium and right ventricle.",
                                        "A device lead is visualized in the right ventricle.",
                                        "An ICD lead is present in the right ventricle."))
                            if study["pacemaker"] else
                            _pick(rng, ("No device leads are seen.", "No pacemaker or ICD leads are visualized.")))
    if mention["tavr"]:
        size = _pick(rng, (23, 26, 29))
        out["tavr"] = (_pick(rng, ("Status post transcatheter aortic valve replacement (TAVR).",
                                   f"A well-seated {size} mm transcatheter aortic valve prosthesis is present.",
                                   "Status post TAVR with normal prosthetic valve function."))
                       if study["tavr"] else
                       _pick(rng, ("Native aortic valve.", "The native aortic valve is trileaflet.")))
    if mention["mitraclip"]:
        out["mitraclip"] = (_pick(rng, ("MitraClip in place.",
                                        "Status post MitraClip repair with one clip in place.",
                                        "Two MitraClip devices are seen on the mitral valve.",
                                        "A well-seated MitraClip is present with mild residual mitral regurgitation."))
                            if study["mitraclip"] else
                            _pick(rng, ("Native mitral valve.", "No MitraClip is seen.")))
    return out


def _effusion_sentence(rng, size: str) -> str:
    if size == "none":
        return _pick(rng, ("No pericardial effusion.", "There is no pericardial effusion.",
                           "The pericardium is normal without effusion."))
    depth = {"small": (0.4, 0.9), "moderate": (1.0, 1.9), "large": (2.0, 3.2)}[size]
    cm = rng.uniform(*depth)
    return _pick(rng, (f"There is a {size} pericardial effusion.", f"A {size} circumferential pericardial effusion is present.",
                       f"{_cap(size)} pericardial effusion, measuring {cm:.1f} cm posteriorly."))


def _tamponade_sentence(rng, tamponade: bool) -> str:
    if tamponade:
        return _pick(rng, ("There is echocardiographic evidence of tamponade physiology.",
                           "Findings are consistent with cardiac tamponade, with right atrial systolic collapse.",
                           "Tamponade physiology is present."))
    return _pick(rng, ("There is no evidence of tamponade.", "No echocardiographic evidence of tamponade physiology.",
                       "No signs of tamponade."))


def _mentions(rng, study: dict) -> dict[str, bool]:
    """Which findings this report states at all (silence is a real and common property of reports)."""
    eff_present = study["effusion"] != "none"
    return {
        "lvef": not _missing(study["lvef"]) and _chance(rng, 0.98),
        "pasp": not _missing(study["pasp"]) and _chance(rng, 0.90),
        "pacemaker": _chance(rng, 0.97 if study["pacemaker"] else 0.30),
        "tavr": _chance(rng, 0.98 if study["tavr"] else 0.25),
        "mitraclip": _chance(rng, 0.98 if study["mitraclip"] else 0.20),
        "lv_dilation": _chance(rng, 0.97), "la_dilation": _chance(rng, 0.95),
        "rv_dilation": _chance(rng, 0.95), "ra_dilation": _chance(rng, 0.92), "lvh": _chance(rng, 0.95),
        "effusion": _chance(rng, 0.93),
        "tamponade": bool(study["tamponade"]) or _chance(rng, 0.85 if eff_present else 0.25),
    }


def _missing(value) -> bool:
    """None, NaN and pandas' NA all mean 'no value' for a numeric finding."""
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _measurements(rng, study: dict) -> list[str]:
    lvidd = {"none": (4.2, 5.5), "mild": (5.9, 6.3), "moderate": (6.4, 6.8), "severe": (6.9, 7.5)}[study["lv_dilation"]]
    ivs = {"none": (0.7, 1.0), "mild": (1.1, 1.3), "moderate": (1.4, 1.6), "severe": (1.7, 2.0)}[study["lvh"]]
    lavi = {"none": (20, 33), "mild": (35, 41), "moderate": (42, 48), "severe": (49, 62)}[study["la_dilation"]]
    d = rng.uniform(*lvidd)
    lines = [f"LVIDd {d:.1f} cm", f"LVIDs {d * rng.uniform(0.55, 0.8):.1f} cm", f"IVSd {rng.uniform(*ivs):.1f} cm",
             f"LVPWd {rng.uniform(*ivs):.1f} cm", f"LA volume index {int(rng.uniform(*lavi))} mL/m2",
             f"Aortic root {rng.uniform(2.7, 3.7):.1f} cm", f"TAPSE {rng.uniform(1.4, 2.6):.1f} cm"]
    return lines[: int(rng.integers(4, len(lines) + 1))]


def render_report(study: dict, rng: np.random.Generator) -> tuple[str, dict]:
    """Report text for one study row and what that text states per label (value, or None when not mentioned).

    Deterministic given the generator state. `study` carries the keys of truth/studies.parquet; the stated LVEF
    is the number written (a range's midpoint), the stated PASP the integer written.
    """
    mention = _mentions(rng, study)
    stated: dict = {label: None for label in LABELS}
    lvef = None if _missing(study["lvef"]) else float(study["lvef"])
    ef, ef_value = _ef_text(rng, lvef) if lvef is not None else ("", None)
    pasp = None if _missing(study["pasp"]) else int(round(float(study["pasp"])))
    rap = _pick(rng, (3, 3, 8, 15))
    devices = _device_sentences(rng, study, mention)
    paced = bool(study["pacemaker"]) and "pacemaker" in devices

    header = ["TRANSTHORACIC ECHOCARDIOGRAM REPORT", f"Study date: {study['study_date']}"]
    if _chance(rng, 0.12):
        header.append(f"Referring physician: Dr. {_pick(rng, _PHYSICIANS)}")
    if _chance(rng, 0.05):
        header.append(f"MRN: {study['patient_id']}")
    header += [f"Indication: {_pick(rng, ('Dyspnea.', 'Chest pain.', 'Heart failure.', 'Murmur.', 'Syncope.', 'Atrial fibrillation.', 'Preoperative evaluation.'))}",
               f"Height: {int(rng.integers(150, 195))} cm. Weight: {int(rng.integers(50, 120))} kg.",
               f"Blood pressure: {int(rng.integers(100, 160))}/{int(rng.integers(55, 95))} mmHg. Heart rate: {int(rng.integers(50, 105))} bpm.",
               f"Rhythm: {'Paced rhythm.' if paced else _pick(rng, ('Sinus rhythm.', 'Sinus rhythm.', 'Atrial fibrillation.', 'Sinus bradycardia.'))}",
               _pick(rng, ("Image quality: good.", "Image quality: fair.", "Technically difficult study due to body habitus.")),
               _pick(rng, ("No prior study available for comparison.", "Compared with the prior study, there is no significant change.",
                           "Compared to the prior echocardiogram, findings are similar.")),
               "Complete transthoracic echocardiogram with 2D, M-mode, color and spectral Doppler."]

    lv = []
    if mention["lv_dilation"]:
        lv.append(_chamber_size(rng, "lv_dilation", study["lv_dilation"]))
        stated["lv_dilation"] = study["lv_dilation"]
    if mention["lvh"]:
        lv.append(_lvh_sentence(rng, study["lvh"]))
        stated["lvh"] = study["lvh"]
    if mention["lvef"]:
        lv.append(_lvef_sentence(rng, ef, _lv_function_word(lvef)))
        stated["lvef"] = ef_value
    if lvef is not None and lvef < 45:
        lv.append(_pick(rng, ("There is global hypokinesis.", "Regional wall motion abnormalities with inferior and inferolateral hypokinesis.")))
    else:
        lv.append(_pick(rng, ("No regional wall motion abnormalities.", "Regional wall motion is normal.")))
    lv.append(_pick(rng, ("Diastolic function is normal.", "Grade I diastolic dysfunction (impaired relaxation).",
                          "Grade II diastolic dysfunction.", "Diastolic function is indeterminate.")))
    lv.append(f"E/A ratio {rng.uniform(0.6, 2.2):.1f}. Average E/e' {rng.uniform(5, 18):.0f}.")

    rv = []
    if mention["rv_dilation"]:
        rv.append(_chamber_size(rng, "rv_dilation", study["rv_dilation"]))
        stated["rv_dilation"] = study["rv_dilation"]
    rv.append(_pick(rng, ("Right ventricular systolic function is normal.", "RV systolic function is normal.",
                          "Right ventricular systolic function is mildly reduced."))
              if study["rv_dilation"] in ("none", "mild") else "Right ventricular systolic function is moderately reduced.")
    if "pacemaker" in devices:
        rv.append(devices["pacemaker"])
        stated["pacemaker"] = bool(study["pacemaker"])

    atria = []
    biatrial = (mention["la_dilation"] and mention["ra_dilation"] and study["la_dilation"] == study["ra_dilation"] != "none"
                and _chance(rng, 0.3))
    if biatrial:
        atria.append(f"There is {study['la_dilation']} biatrial enlargement.")
    else:
        atria += [_chamber_size(rng, k, study[k]) for k in ("la_dilation", "ra_dilation") if mention[k]]
    for k in ("la_dilation", "ra_dilation"):
        if mention[k]:
            stated[k] = study[k]
    atria.append(_pick(rng, ("The interatrial septum is intact by color Doppler.", "No atrial septal defect is seen.")))

    aortic = [devices["tavr"]] if "tavr" in devices else []
    if study["tavr"]:
        aortic.append(f"Mean transaortic gradient {int(rng.integers(6, 16))} mmHg. No paravalvular leak.")
    else:
        aortic.append(_pick(rng, ("The aortic valve is trileaflet and mildly thickened. No aortic stenosis.",
                                  "The aortic valve is sclerotic without stenosis.", "Aortic valve opening is normal.")))
        aortic.append(_pick(rng, ("No aortic regurgitation.", "Trace aortic regurgitation.", "Mild aortic regurgitation.")))
    if "tavr" in devices:
        stated["tavr"] = bool(study["tavr"])

    mitral = [devices["mitraclip"]] if "mitraclip" in devices else []
    if not study["mitraclip"]:
        mitral.append(_pick(rng, ("The mitral valve leaflets are mildly thickened.", "Mitral valve structure is normal.",
                                  "Mild mitral annular calcification.")))
    mitral.append(_pick(rng, ("Trace mitral regurgitation.", "Mild mitral regurgitation.", "Moderate mitral regurgitation.")))
    if "mitraclip" in devices:
        stated["mitraclip"] = bool(study["mitraclip"])

    tricuspid = [_pick(rng, ("The tricuspid valve is structurally normal.", "Tricuspid leaflets are normal.")),
                 _pick(rng, ("Trace tricuspid regurgitation.", "Mild tricuspid regurgitation.", "Moderate tricuspid regurgitation."))]
    if mention["pasp"]:
        tr_velocity = math.sqrt(max(pasp - rap, 4) / 4.0)
        tricuspid += [f"Peak TR velocity {tr_velocity:.1f} m/s.", _pasp_sentence(rng, pasp, rap)]
        stated["pasp"] = float(pasp)
    elif pasp is not None and _chance(rng, 0.5):
        tricuspid.append("Pulmonary artery systolic pressure could not be estimated due to an inadequate tricuspid regurgitant jet.")
    pulmonic = [_pick(rng, ("The pulmonic valve is not well visualized.", "The pulmonic valve is normal.")),
                _pick(rng, ("Trace pulmonic regurgitation.", "No pulmonic regurgitation."))]
    aorta = [_pick(rng, ("The aortic root is normal in size.", "The aortic root and ascending aorta are normal in size.",
                         "The ascending aorta is mildly dilated.")),
             "The aortic arch is not well visualized." if _chance(rng, 0.5) else "Left aortic arch."]
    ivc = ([_pick(rng, (f"The inferior vena cava is normal in size with more than 50% inspiratory collapse, consistent with a right atrial pressure of {rap} mmHg.",
                        f"Normal IVC size and collapsibility (estimated RA pressure {rap} mmHg)."))]
           if rap <= 8 else
           [_pick(rng, (f"The inferior vena cava is dilated with less than 50% inspiratory collapse, consistent with a right atrial pressure of {rap} mmHg.",
                        f"The IVC is plethoric (estimated RA pressure {rap} mmHg)."))])
    pericardium = []
    if mention["effusion"]:
        pericardium.append(_effusion_sentence(rng, study["effusion"]))
        stated["effusion"] = study["effusion"]
    if mention["tamponade"]:
        pericardium.append(_tamponade_sentence(rng, bool(study["tamponade"])))
        stated["tamponade"] = bool(study["tamponade"])
    if not pericardium:
        pericardium.append("The pericardium is not well visualized.")

    sections = [("LEFT VENTRICLE", lv), ("RIGHT VENTRICLE", rv), ("ATRIA", atria), ("AORTIC VALVE", aortic),
                ("MITRAL VALVE", mitral), ("TRICUSPID VALVE", tricuspid), ("PULMONIC VALVE", pulmonic), ("AORTA", aorta),
                ("VENOUS", ivc), ("PERICARDIUM", pericardium), ("MEASUREMENTS", _measurements(rng, study))]
    # Optional filler sections and free comments spread report length like real ones (short limited studies,
    # long detailed ones); sections carrying a stated finding are always kept.
    filler = {"PULMONIC VALVE", "AORTA", "VENOUS", "MEASUREMENTS"}
    sections = [(name, lines) for name, lines in sections if name not in filler or _chance(rng, 0.75)]
    comments = [_pick(rng, _COMMENTS) for _ in range(int(rng.integers(0, 5)))]
    if comments:
        sections.append(("COMMENTS", list(dict.fromkeys(comments))))
    impression = _impression(rng, study, stated, ef, devices)
    body = "\n".join(header) + "\n\n" + "\n\n".join(f"{name}:\n" + "\n".join(lines) for name, lines in sections)
    text = body + "\n\nIMPRESSION:\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(impression, 1))
    text += f"\n\nElectronically signed by Dr. {_pick(rng, _PHYSICIANS)}." if _chance(rng, 0.3) else ""
    return text, stated


def _impression(rng, study: dict, stated: dict, ef: str, devices: dict) -> list[str]:
    """Summary lines restating the key stated findings (never a finding the body left unstated)."""
    items = []
    if stated["lvef"] is not None:
        items.append(_pick(rng, (f"{_cap(_lv_function_word(float(study['lvef'])))} left ventricular systolic function, LVEF {ef}.",
                                 f"Left ventricular ejection fraction {ef}.", f"LVEF {ef}.")))
    for label in ("lv_dilation", "rv_dilation", "la_dilation", "ra_dilation"):
        if stated[label] not in (None, "none"):
            items.append(_chamber_size(rng, label, stated[label]))
    if stated["lvh"] not in (None, "none"):
        items.append(_lvh_sentence(rng, stated["lvh"]))
    items += [devices[k] for k in ("tavr", "mitraclip", "pacemaker") if k in devices and stated[k]]
    if stated["pasp"] is not None and _chance(rng, 0.6):
        items.append(f"Estimated PASP {int(stated['pasp'])} mmHg.")
    if stated["effusion"] is not None and (stated["effusion"] != "none" or _chance(rng, 0.5)):
        items.append(_effusion_sentence(rng, stated["effusion"]))
    if stated["tamponade"]:
        items.append(_tamponade_sentence(rng, True))
    if not items:
        items.append("Technically limited study.")
    return items
