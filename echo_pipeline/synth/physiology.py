"""Sample the synthetic cohort's truth: patients, their studies (physiology, devices) and the clips to draw.

Everything is drawn from numpy Generators keyed by (seed, what, index), so patient ``i`` is the same whether
the cohort has 20 or 120 patients, and clips can be rendered in any order or process with identical bytes.
Clinical distributions are rough but realistic in shape: mostly normal LVEF with a reduced tail, low LVEF
pulls LV dilation and PASP up, high PASP pulls the right heart up, devices are rare, tamponade only occurs
with a moderate or large effusion. Each patient is seen at one site (`SITES`), whose house style writes the
reports.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np

SEVERITIES = ("none", "mild", "moderate", "severe")
EFFUSIONS = ("none", "small", "moderate", "large")
VIEWS = ("A4C", "A2C", "PLAX", "PSAX", "SUBCOSTAL")

#: Storage kinds a clip can be written in: transfer syntax + photometric interpretation (see dicom_writer).
STORAGE_KINDS = ("jpeg", "rgb", "rle_rgb", "mono", "mono_rle")
_STORAGE_WEIGHTS = {"jpeg": 0.68, "rgb": 0.04, "rle_rgb": 0.1, "mono": 0.06, "mono_rle": 0.12}
_COLOUR_STORAGE_WEIGHTS = {"jpeg": 0.7, "rgb": 0.1, "rle_rgb": 0.2}  # colour needs three samples


@dataclass(frozen=True)
class Vendor:
    """A fake scanner model: frame size, sector shape, and how it writes its headers and files."""

    manufacturer: str
    model: str
    rows: int
    cols: int
    half_angle_deg: float
    apex_y: int
    region_probability: float  # share of its files carrying SequenceOfUltrasoundRegions
    frame_rate_tags: tuple[str, ...]  # which frame-rate tag styles it uses (picked per file)
    series_per_clip: bool  # one series per clip, or one series per study
    name_style: str  # file naming style, see cohort._file_name
    jpeg_quality: int
    tint: tuple[float, float, float]  # grey-map tint of the B-mode image (R, G, B gains)
    colour_flag_tag: bool  # writes UltrasoundColorDataPresent


VENDORS = (
    Vendor("Sonavera Medical", "SV Cardio 7", 272, 352, 40.0, 20, 1.0, ("FrameTime", "FrameTime+CineRate"),
           False, "IM", 90, (1.0, 1.0, 1.0), True),
    Vendor("Kardiowave Systems", "KW-E9", 300, 400, 44.0, 22, 0.0, ("CineRate", "RecommendedDisplayFrameRate"),
           True, "US", 88, (1.0, 0.94, 0.82), True),
    Vendor("Echolux", "EL-5c", 256, 320, 37.0, 18, 0.5, ("FrameTime", "RecommendedDisplayFrameRate"),
           False, "ODD", 92, (0.95, 1.0, 1.0), False),
)

@dataclass(frozen=True)
class Site:
    """A fake hospital: the InstitutionName its files carry and the house style its reports are written in."""

    institution_name: str
    house_style: str  # a file stem under synth/house_styles/


SITES = (Site("Synthetic Heart Institute", "narrative"), Site("Northfield Cardiac Centre", "block_capitals"))
_SITE_WEIGHTS = (0.6, 0.4)  # the default (narrative) style stays the majority of reports
RIGHT_ATRIAL_PRESSURES = {"normal": 3, "elevated": 8, "significantly_elevated": 15}  # level -> mmHg (ASE)
VALVE_LESIONS = ("mitral_regurgitation", "tricuspid_regurgitation", "aortic_regurgitation", "aortic_stenosis")
#: Study keys drawn by `sample_findings` (the five later labels plus the drawing-only valve lesion).
FINDING_KEYS = ("impella", "atrial_fibrillation", "right_atrial_pressure", "normal_lv_wall_thickness",
                "no_significant_valvular_disease", "valve_lesion")

_FIRST_NAMES = {
    "F": ("ANNA", "MARIA", "JANE", "LINDA", "SOFIA", "EMMA", "GRACE", "HELEN", "NORA", "RUTH", "ELENA", "MEI"),
    "M": ("JOHN", "PETER", "DAVID", "OMAR", "LUCAS", "HENRY", "IVAN", "KARL", "SAMUEL", "RAJ", "PAUL", "TOM"),
}
_LAST_NAMES = ("DOE", "SMITH", "GARCIA", "NGUYEN", "MULLER", "ROSSI", "KOWALSKI", "TANAKA", "OKAFOR", "SILVA",
               "JENSEN", "HUGHES", "PATEL", "NOVAK", "BERG", "COHEN", "LARSEN", "MORENO", "WEBER", "FISCHER")


def child_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A Generator that depends only on the seed and the keys (strings are hashed stably with CRC32)."""
    entropy = [int(seed)] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_patient(seed: int, index: int) -> dict:
    """Patient ``index``: identity (fake, unique id), sex, birth date, and a baseline condition for the studies."""
    rng = child_rng(seed, "patient", index)
    sex = "F" if rng.random() < 0.48 else "M"
    first = _FIRST_NAMES[sex][int(rng.integers(len(_FIRST_NAMES[sex])))]
    last = _LAST_NAMES[int(rng.integers(len(_LAST_NAMES)))]
    # 102947 = 13 * 7919 is coprime to 9e6, so the map index -> id is one-to-one for any seed.
    mrn = ((index + 17) * 102_947 + seed * 104_729) % 9_000_000 + 1_000_000
    first_study = dt.date(2012, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 10)))
    age = int(rng.integers(25, 90))
    birth = first_study - dt.timedelta(days=age * 365 + int(rng.integers(0, 365)))
    reduced = rng.random() < 0.25
    n_studies = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    devices = {}
    for name, per_study_rate in (("pacemaker", 0.15), ("tavr", 0.08), ("mitraclip", 0.08)):
        # Devices persist: installed before study j, present from j on (per-study rate ~ target).
        has = rng.random() < per_study_rate / 0.75
        devices[name] = int(rng.integers(0, n_studies)) if has else n_studies
    return {
        "index": index,
        "patient_id": f"MRN{mrn:07d}",
        "patient_name": f"{last}^{first}",
        "birth_date": birth,
        "sex": sex,
        "n_studies": n_studies,
        "first_study": first_study,
        "base_lvef": float(rng.uniform(20, 50) if reduced else np.clip(rng.normal(61, 4), 53, 72)),
        "pulmonary_hypertension": bool(rng.random() < 0.1),
        "lvh_index": int(rng.choice(4, p=[0.6, 0.22, 0.12, 0.06])),
        "device_from": devices,
    }


def _graded(rng: np.random.Generator, p: list[float]) -> str:
    return SEVERITIES[int(rng.choice(4, p=np.asarray(p) / np.sum(p)))]


def sample_study(seed: int, patient: dict, j: int, study_date: dt.date) -> dict:
    """Study ``j`` of a patient: a row of studies.parquet plus drawing-only fields (vendor, study_time,
    valve_lesion)."""
    rng = child_rng(seed, "study", patient["index"], j)
    global_index = patient["index"] * 3 + j  # at most three studies per patient
    lvef = float(np.clip(patient["base_lvef"] + rng.normal(0, 3), 15, 75))
    device = {name: j >= start for name, start in patient["device_from"].items()}
    if lvef < 35:
        lv_dil = _graded(rng, [0.05, 0.2, 0.4, 0.35])
    elif lvef < 50:
        lv_dil = _graded(rng, [0.3, 0.4, 0.25, 0.05])
    else:
        lv_dil = _graded(rng, [0.85, 0.12, 0.03, 0.0])
    pasp = rng.normal(29, 6) + (12 if lvef < 40 else 0)
    pasp = float(np.clip(pasp + (rng.uniform(18, 35) if patient["pulmonary_hypertension"] else 0), 20, 70))
    rv_dil = _graded(rng, [0.05, 0.25, 0.4, 0.3] if pasp > 50 else [0.4, 0.4, 0.2, 0.0] if pasp > 40
                     else [0.88, 0.1, 0.02, 0.0])
    ra_dil = _graded(rng, [0.2, 0.4, 0.3, 0.1] if rv_dil in ("moderate", "severe") else [0.85, 0.12, 0.03, 0.0])
    la_risk = (lvef < 45) + device["mitraclip"] + (patient["lvh_index"] >= 2)
    la_dil = _graded(rng, [[0.75, 0.17, 0.06, 0.02], [0.35, 0.35, 0.2, 0.1], [0.1, 0.3, 0.35, 0.25],
                           [0.05, 0.2, 0.35, 0.4]][la_risk])
    lvh_index = min(3, patient["lvh_index"] + int(device["tavr"] and rng.random() < 0.5))
    effusion = EFFUSIONS[int(rng.choice(4, p=[0.78, 0.12, 0.06, 0.04]))]
    tamponade = bool(effusion in ("moderate", "large") and rng.random() < (0.12 if effusion == "moderate" else 0.35))
    study = {
        "study_instance_uid": uid(seed, "study", patient["index"], j),
        "accession_number": accession_number(seed, global_index),
        "patient_id": patient["patient_id"],
        "study_date": study_date,
        "has_report": bool(rng.random() >= 0.05),
        "lvef": round(lvef, 1),
        "pasp": round(pasp, 1),
        "pacemaker": device["pacemaker"],
        "tavr": device["tavr"],
        "mitraclip": device["mitraclip"],
        "lv_dilation": lv_dil,
        "la_dilation": la_dil,
        "rv_dilation": rv_dil,
        "ra_dilation": ra_dil,
        "lvh": SEVERITIES[lvh_index],
        "effusion": effusion,
        "tamponade": tamponade,
        "heart_rate": float(rng.integers(55, 101)),
        "vendor": int(rng.choice(len(VENDORS), p=[0.45, 0.3, 0.25])),
        "study_time": f"{int(rng.integers(7, 18)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
    }
    site = patient_site(seed, patient["index"])
    study |= {"institution_name": site.institution_name, "house_style": site.house_style}
    # Later findings come from their own generator, so the draws above (and every pixel) stay as they were.
    return study | sample_findings(child_rng(seed, "findings", patient["index"], j), study)


def patient_site(seed: int, index: int) -> Site:
    """The site a patient is scanned and reported at. Patients 0 and 1 go to the first two sites, so every
    cohort of two or more patients has both house styles; the others draw 60 / 40."""
    if index < len(SITES):
        return SITES[index]
    return SITES[int(child_rng(seed, "site", index).choice(len(SITES), p=_SITE_WEIGHTS))]


def sample_findings(rng: np.random.Generator, study: dict) -> dict:
    """The findings of the paper's later tasks, consistent with the study's anatomy and physiology: Impella only
    with a poor LVEF; atrial fibrillation likelier with a dilated LA; the right atrial pressure (its IVC) rising
    with tamponade, a dilated right heart or a high PASP; normal wall thickness = no LVH; significant valve
    disease = a moderate or severe lesion or a valve device."""
    impella = bool(study["lvef"] < 35 and rng.random() < 0.25)
    la_index = SEVERITIES.index(study["la_dilation"])
    atrial_fibrillation = bool(rng.random() < 0.06 + 0.08 * la_index + 0.05 * study["mitraclip"])
    congested = study["ra_dilation"] in ("moderate", "severe") or study["rv_dilation"] in ("moderate", "severe")
    weights = [0.25, 0.45, 0.3] if congested or study["pasp"] > 50 else [0.8, 0.17, 0.03]
    rap = "significantly_elevated" if study["tamponade"] else _weighted(rng, dict(zip(RIGHT_ATRIAL_PRESSURES, weights)))
    lesion = None
    if rng.random() < 0.12 + 0.15 * (la_index >= 2) + 0.1 * (study["lvef"] < 40):
        candidates = [v for v in VALVE_LESIONS if not (study["tavr"] and v.startswith("aortic"))
                      and not (study["mitraclip"] and v.startswith("mitral"))]
        lesion = f"{candidates[int(rng.integers(len(candidates)))]}:{'severe' if rng.random() < 0.25 else 'moderate'}"
    return {"impella": impella, "atrial_fibrillation": atrial_fibrillation, "right_atrial_pressure": rap,
            "normal_lv_wall_thickness": study["lvh"] == "none",
            "no_significant_valvular_disease": lesion is None and not study["tavr"] and not study["mitraclip"],
            "valve_lesion": lesion}


def accession_number(seed: int, global_index: int) -> str:
    """An 8-digit accession number, one-to-one in ``global_index`` (104723 is prime and coprime to 9e7)."""
    return f"{((global_index + 11) * 104_723 + seed * 31) % 90_000_000 + 10_000_000:08d}"


def study_dates(seed: int, patient: dict) -> list[dt.date]:
    """The patient's study dates: the first one, then 2 months to 2.5 years apart."""
    rng = child_rng(seed, "dates", patient["index"])
    dates = [patient["first_study"]]
    for _ in range(patient["n_studies"] - 1):
        dates.append(dates[-1] + dt.timedelta(days=int(rng.integers(60, 900))))
    return dates


def uid(seed: int, *keys: int | str) -> str:
    """A DICOM UID that depends only on (seed, keys)."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["echo-pipeline-synth", str(seed), *map(str, keys)])


def study_views(seed: int, study_key: tuple[int, int]) -> list[tuple[str, bool]]:
    """The (view, is_colour) clips acquired in a study: two A4C, usually a PLAX, two or three of the others,
    and most often one colour-Doppler clip on A4C (sometimes PLAX) anatomy. Mean ~5.7 clips."""
    rng = child_rng(seed, "views", *study_key)
    views = [("A4C", False), ("A4C", False)]
    if rng.random() < 0.9:
        views.append(("PLAX", False))
    others = ["A2C", "PSAX", "SUBCOSTAL"]
    count = 3 if rng.random() < 0.2 else 2
    views += [(v, False) for v in sorted(rng.choice(others, size=count, replace=False), key=others.index)]
    if rng.random() < 0.75:
        views.append(("PLAX" if rng.random() < 0.2 else "A4C", True))
    order = rng.permutation(len(views))  # acquisition order is not the same in every study
    return [views[i] for i in order]


def storage_kind(rng: np.random.Generator, is_colour: bool) -> str:
    """How a clip is stored (see STORAGE_KINDS); colour clips are never monochrome."""
    return _weighted(rng, _COLOUR_STORAGE_WEIGHTS if is_colour else _STORAGE_WEIGHTS)


def clip_timing(rng: np.random.Generator, heart_rate: float) -> tuple[int, int]:
    """(frames, fps): 30-50 fps, 40-64 frames, and always at least 1.15 cardiac cycles so ED and ES are seen."""
    fps = int(rng.integers(30, 51))
    cycle = 60.0 / heart_rate
    needed = int(np.ceil(fps * cycle * 1.15)) + 1
    if needed > 64:
        fps = int(np.floor(63 / (cycle * 1.15)))
        needed = int(np.ceil(fps * cycle * 1.15)) + 1
    frames = max(40, needed) + int(rng.integers(0, 6))
    return min(frames, 64), fps
