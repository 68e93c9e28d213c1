"""Header values of one readable image instance, as `dicom_instances` stores them.

Direct identifiers are read only to be pseudonymised (PatientID, AccessionNumber) or to be scrubbed from
messages; pydicom's value validation is switched off while they are read so that no warning or log line can
quote them.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import Any, Iterator

from pydicom import config
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from echo_pipeline.privacy import pseudonymise

#: Attributes whose raw values must never reach a table, a message or a log.
IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs")
FRAME_RATE_SOURCES = ("FrameTime", "CineRate", "RecommendedDisplayFrameRate")
_REGION_2D = 1  # RegionSpatialFormat 1 = 2D (tissue or colour flow)
_TISSUE = 1  # RegionDataType 1 = tissue (2 = colour flow, 3/4 = PW/CW Doppler, ...)
_REGION_BOUNDS = ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")


@contextmanager
def quiet_values() -> Iterator[None]:
    """Convert element values without pydicom's validation, whose warnings quote the offending value."""
    previous = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode = previous


def text(ds: Dataset, keyword: str) -> str | None:
    """A string attribute stripped, or None when absent, empty or unreadable."""
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed value must not sink the whole row
        return None
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def identifying_values(ds: Dataset) -> list[str]:
    """The raw identifying strings in ``ds`` (and their name components), longest first, for scrubbing."""
    found: set[str] = set()
    with quiet_values():
        for keyword in IDENTIFYING_KEYWORDS:
            try:
                value = ds.get(keyword)
            except Exception:  # unreadable: it cannot be quoted either
                continue
            for item in value if isinstance(value, MultiValue) else [value]:
                item = str(item or "").strip()
                found.add(item)
                found.update(part.strip() for part in item.replace("\\", "^").split("^"))
    # Very short fragments would blank out unrelated characters of a message, and are not identifying alone.
    return sorted((v for v in found if len(v) >= 3), key=len, reverse=True)


def scrub(message: str, identifiers: list[str]) -> str:
    """``message`` with every identifying value replaced by a placeholder."""
    for value in identifiers:
        message = message.replace(value, "<redacted>")
    return message


def _study_date(ds: Dataset) -> dt.date | None:
    value = text(ds, "StudyDate")
    try:
        return dt.datetime.strptime(value[:8], "%Y%m%d").date() if value else None
    except ValueError:
        return None


#: PatientAge units (DICOM AS value representation: "nnnD", "nnnW", "nnnM", "nnnY") in years.
_AGE_UNITS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}
#: Ages at or above this fall in one open band: a rarer exact age would narrow down who the patient is.
OLDEST_BAND = 90


def _age_years(ds: Dataset, study_date: dt.date | None) -> float | None:
    """The patient's age at the study: PatientAge, else StudyDate − PatientBirthDate (the birth date is read
    here only and never returned or stored)."""
    value = text(ds, "PatientAge")
    if value and len(value) >= 2 and value[:-1].isdigit() and value[-1].upper() in _AGE_UNITS:
        return int(value[:-1]) * _AGE_UNITS[value[-1].upper()]
    birth = text(ds, "PatientBirthDate")
    try:
        born = dt.datetime.strptime(birth[:8], "%Y%m%d").date() if birth else None
    except ValueError:
        return None
    if born is None or study_date is None or born > study_date:
        return None
    return (study_date - born).days / 365.25


def age_band(years: float | None) -> str | None:
    """10-year band of an age ("60-69"); "90+" from OLDEST_BAND; None when unknown."""
    if years is None:
        return None
    if years >= OLDEST_BAND:
        return f"{OLDEST_BAND}+"
    low = int(years // 10) * 10
    return f"{low}-{low + 9}"


def _sex(ds: Dataset) -> str | None:
    value = (text(ds, "PatientSex") or "").upper()
    return value if value in ("M", "F", "O") else None


def _positive_float(ds: Dataset, keyword: str) -> float | None:
    try:
        value = float(ds.get(keyword))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def frame_rate(ds: Dataset) -> tuple[float | None, str | None]:
    """Frames per second and the attribute it came from: FrameTime (ms per frame), CineRate, then
    RecommendedDisplayFrameRate; (None, None) when none holds a positive number."""
    for keyword in FRAME_RATE_SOURCES:
        value = _positive_float(ds, keyword)
        if value is not None:
            return (1000.0 / value if keyword == "FrameTime" else value), keyword
    return None, None


def region_bounds(ds: Dataset) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the largest 2D tissue region in SequenceOfUltrasoundRegions; None without one.

    Bounds are inclusive pixel coordinates as DICOM stores them. M-mode and Doppler strips and colour-flow
    boxes are ignored: the 2D image area is what the sector lies in (masking/regions.py reads the full tags).
    """
    best, best_area = None, -1
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        try:
            tissue_2d = (int(item.get("RegionSpatialFormat", -1)), int(item.get("RegionDataType", _TISSUE)))
            if tissue_2d != (_REGION_2D, _TISSUE):
                continue
            box = tuple(int(item[keyword].value) for keyword in _REGION_BOUNDS)
        except (KeyError, TypeError, ValueError):
            continue
        area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
        if area > best_area:  # strict: the first of equal regions wins, so the choice is stable
            best, best_area = box, area
    return best


def instance_fields(ds: Dataset, key: bytes) -> dict[str, Any]:
    """The `dicom_instances` columns that come from the header (ids, tags, frame rate, region bounds)."""
    with quiet_values():
        patient_key = pseudonymise(text(ds, "PatientID"), key, "patient")
        accession_key = pseudonymise(text(ds, "AccessionNumber"), key, "accession")
    rate, rate_source = frame_rate(ds)
    region = region_bounds(ds) or (None, None, None, None)
    study_date = _study_date(ds)
    with quiet_values():
        band = age_band(_age_years(ds, study_date))
    return {
        "sop_instance_uid": text(ds, "SOPInstanceUID"),
        "series_instance_uid": text(ds, "SeriesInstanceUID"),
        "study_instance_uid": text(ds, "StudyInstanceUID"),
        "patient_key": patient_key,
        "accession_key": accession_key,
        "study_date": study_date,
        "age_band": band,
        "patient_sex": _sex(ds),
        "modality": text(ds, "Modality"),
        "sop_class_uid": text(ds, "SOPClassUID"),
        "manufacturer": text(ds, "Manufacturer"),
        "manufacturer_model": text(ds, "ManufacturerModelName"),
        "frame_rate": rate,
        "frame_rate_source": rate_source,
        "region_x0": region[0],
        "region_y0": region[1],
        "region_x1": region[2],
        "region_y1": region[3],
        "burned_in_annotation": text(ds, "BurnedInAnnotation"),
    }
