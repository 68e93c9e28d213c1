"""Data-quality rules behind the asset checks (assets/checks.py), as pure functions over tables.

Blocking rules (a failure stops what is downstream in the run; docs/checks.md):
- `masked_clip_problems`: every masked clip has a plausible sector mask;
- `link_coverage`: enough reports are linked to a study (ECHO_PIPELINE_MIN_LINK_COVERAGE, default 0.8);
- `identifier_findings`: no column of a catalog table holds a raw identifier (echo_pipeline.identifiers, which
  storage also runs on every table before it is written).
Drift rules (warnings): `drift_findings` compares a drop share (files quarantined, clips not kept by the view
filter, clips lost in masking) with an expected maximum and with the share the previous check recorded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pyarrow as pa

from echo_pipeline.errors import InputContractError
from echo_pipeline.masking.plausibility import AREA_FRACTION
from echo_pipeline.masking.regions import BOX_FAN, BOX_PIXELS
from echo_pipeline.masking.sectors import PIXELS
from echo_pipeline.identifiers import identifier_findings  # noqa: F401  (re-exported for the checks)

MASK_METHODS = frozenset({BOX_FAN, BOX_PIXELS, PIXELS})
MIN_LINK_COVERAGE_ENV_VAR = "ECHO_PIPELINE_MIN_LINK_COVERAGE"
DEFAULT_MIN_LINK_COVERAGE = 0.8

# --- sector masks ------------------------------------------------------------------------------------------


def masked_clip_problems(masked: pa.Table, masks: pa.Table, quarantine: pa.Table | None = None) -> list[dict]:
    """Masked clips without a plausible mask: [{"sop_instance_uid", "problem", "detail"}], empty when all are fine.

    A clip is fine when `sector_masks` has a row for the same clip and file bytes (sop_instance_uid,
    file_sha256) whose method is one of MASK_METHODS and whose area_fraction lies in
    masking.plausibility.AREA_FRACTION, and `mask_quarantine` (when given) holds no row for those bytes.
    """
    by_clip = {(r["sop_instance_uid"], r["file_sha256"]): r
               for r in masks.select(["sop_instance_uid", "file_sha256", "method", "area_fraction"]).to_pylist()}
    quarantined = set() if quarantine is None else set(
        zip(quarantine.column("sop_instance_uid").to_pylist(), quarantine.column("file_sha256").to_pylist()))
    low, high = AREA_FRACTION
    problems = []
    for uid, sha in zip(masked.column("sop_instance_uid").to_pylist(), masked.column("file_sha256").to_pylist()):
        mask = by_clip.get((uid, sha))
        if mask is None:
            problems.append({"sop_instance_uid": uid, "problem": "no_sector_mask",
                             "detail": "no sector_masks row for this clip and file"})
        elif mask["method"] not in MASK_METHODS:
            problems.append({"sop_instance_uid": uid, "problem": "unknown_method",
                             "detail": f"method {mask['method']!r} is not one of {sorted(MASK_METHODS)}"})
        elif not (mask["area_fraction"] is not None and low <= mask["area_fraction"] <= high):
            problems.append({"sop_instance_uid": uid, "problem": "area_out_of_range",
                             "detail": f"area fraction {mask['area_fraction']} outside [{low}, {high}]"})
        elif (uid, sha) in quarantined:
            problems.append({"sop_instance_uid": uid, "problem": "quarantined",
                             "detail": "the clip is also in mask_quarantine"})
    return problems


# --- report linking ----------------------------------------------------------------------------------------


def link_coverage(links: pa.Table) -> tuple[int, int, float]:
    """(reports linked to a study, reports, linked share); the share of no reports is 0."""
    total = links.num_rows
    linked = total - links.column("study_instance_uid").null_count
    return linked, total, linked / total if total else 0.0


# --- thresholds --------------------------------------------------------------------------------------------


def threshold(variable: str, default: float) -> float:
    """A share in [0, 1] from the environment variable ``variable``, else ``default``."""
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise InputContractError(f"{variable}={text!r}: expected a share between 0 and 1 (e.g. {default}); "
                                 "fix or unset the variable")
    return value


# --- drift -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftLimits:
    """When a drop share is suspicious: above ``max_share``, or up by more than ``max_jump`` since last time."""

    max_share: float
    max_jump: float


#: Drift check → its default limits. Files quarantined by ingestion and A4C clips lost in masking should be
#: rare; most clips are not A4C, so view filtering drops most of them and only a near-total drop is suspicious.
DRIFT_DEFAULTS = {
    "quarantine": DriftLimits(max_share=0.10, max_jump=0.05),
    "view_filter": DriftLimits(max_share=0.95, max_jump=0.10),
    "masking": DriftLimits(max_share=0.10, max_jump=0.05),
}


def drift_limits(name: str) -> DriftLimits:
    """DRIFT_DEFAULTS[name], each limit overridable by ECHO_PIPELINE_MAX_<NAME>_SHARE / _JUMP."""
    default = DRIFT_DEFAULTS[name]
    prefix = f"ECHO_PIPELINE_MAX_{name.upper()}"
    return DriftLimits(threshold(f"{prefix}_SHARE", default.max_share), threshold(f"{prefix}_JUMP", default.max_jump))


def share(dropped: int, total: int) -> float:
    return dropped / total if total else 0.0


def above_max(current: float, limits: DriftLimits, what: str) -> list[str]:
    """A finding when ``current`` (a share of ``what``) exceeds the expected maximum."""
    if current > limits.max_share:
        return [f"{what}: {current:.1%} is above the expected maximum {limits.max_share:.1%}"]
    return []


def jumped(current: float, previous: float | None, limits: DriftLimits, what: str) -> list[str]:
    """A finding when ``current`` rose more than ``max_jump`` above ``previous`` (None: no earlier value)."""
    if previous is not None and current - previous > limits.max_jump:
        return [f"{what}: {current:.1%}, up from {previous:.1%} at the previous check "
                f"(more than {limits.max_jump:.1%} points)"]
    return []


def drift_findings(current: float, previous: float | None, limits: DriftLimits, what: str) -> list[str]:
    """Why ``current`` looks like drift (above the maximum, or jumped since ``previous``); empty when it does not."""
    return above_max(current, limits, what) + jumped(current, previous, limits, what)
