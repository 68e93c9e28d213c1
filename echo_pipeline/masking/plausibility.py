"""When a sector mask is believable enough to train on; otherwise the clip is quarantined with a reason.

The rules (docs/masking.md lists them with their reasons):
- something moved: the activity blob is not empty (``empty``), and a fan can be fitted to it (``no_fan``);
- the fan covers AREA_FRACTION of the image (``area_too_small`` / ``area_too_large``);
- the fan explains the moving pixels: IoU(fan, convex blob of the moving pieces inside it) >= MIN_FIT_IOU
  and every twelfth of its opening angle moves (at least MIN_ANGULAR_COVERAGE of its pixels)
  (``not_fan_shaped``), and at most MAX_OUTSIDE of them lie outside it (``activity_outside_sector``: a second
  image beside the fan, a moving display element the size of an image);
- it starts at the top, roughly centred: its highest point inside the image (the apex of a pointed fan, the
  ends of the near arc of a truncated one) within APEX_Y of the image's height, its (possibly virtual) apex
  within APEX_X of the width and no more than MAX_APEX_ABOVE image heights above it (``apex_not_at_top``);
- it opens downward, roughly symmetrically: opening angle in OPENING_DEG, axis within MAX_TILT_DEG of
  vertical (``opening_out_of_range``, ``asymmetric``);
- when both the region tags and the pixels give a fan, they agree: IoU >= MIN_AGREEMENT (``methods_disagree``).
Clips that cannot be measured at all are quarantined as ``decode_failed`` or ``too_few_frames``; clips whose
region tags say the image is not a 2D tissue sector as ``no_tissue_region`` or
``unsupported_region_geometry`` (regions.py), before any fan is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echo_pipeline.masking.evidence import Sector

AREA_FRACTION = (0.10, 0.85)
MIN_FIT_IOU = 0.80
MIN_ANGULAR_COVERAGE = 0.15  # least share of moving pixels in each of 12 angular slices of the fan
MAX_OUTSIDE = 0.10  # share of moving pixels (in pieces of >= 0.2 % of the image) outside the sector
APEX_Y = (-0.25, 0.25)  # the sector's top row as a fraction of the image height
MAX_APEX_ABOVE = 1.5  # a virtual apex (convex probe: centre of curvature) at most this many heights above
APEX_X = (0.2, 0.8)  # apex column as a fraction of the image width
OPENING_DEG = (30.0, 150.0)
MAX_TILT_DEG = 15.0
MIN_AGREEMENT = 0.80

#: Reason code -> what it means; every mask_quarantine.reason is one of these.
REASONS: dict[str, str] = {
    "decode_failed": "the frames needed to find the sector could not be decoded",
    "too_few_frames": "fewer than 2 frames: nothing can be seen moving",
    "empty": "nothing in the clip changes over time, so no sector was found",
    "no_fan": "the moving region has no fan shape that can be fitted (sides do not meet above it)",
    "area_too_small": f"the sector covers less than {AREA_FRACTION[0]:.0%} of the image",
    "area_too_large": f"the sector covers more than {AREA_FRACTION[1]:.0%} of the image",
    "not_fan_shaped": f"the fitted fan and the moving pixels inside it overlap with IoU below {MIN_FIT_IOU}",
    "activity_outside_sector": f"more than {MAX_OUTSIDE:.0%} of the moving pixels lie outside the fitted fan",
    "apex_not_at_top": "the fan does not start at the top of the image, roughly centred",
    "opening_out_of_range": f"the fan's opening angle is outside {OPENING_DEG[0]:.0f}-{OPENING_DEG[1]:.0f} degrees",
    "asymmetric": f"the fan's axis leans more than {MAX_TILT_DEG:.0f} degrees from vertical",
    "methods_disagree": f"the region tags and the pixels give sectors with IoU below {MIN_AGREEMENT}",
    # Written by the masked_clips asset (masking/clips.py), in mask_quarantine's partition <shard>-masked_clips.
    "clip_not_written": "the sector mask was kept but the masked clip could not be written (decode or write error)",
    "no_tissue_region": "the region tags declare regions, none of them 2D tissue (M-mode, Doppler, traces only)",
    "unsupported_region_geometry": "the region tags declare a probe geometry the fan model does not cover (linear)",
}


@dataclass(frozen=True)
class Finding:
    """One failed rule: its reason code and a message with the measured value."""

    reason: str
    message: str


def check_sector(found: Sector, mask: np.ndarray, moved: bool) -> list[Finding]:
    """Every rule that the sector ``found`` (rasterised as ``mask``) breaks; an empty list means plausible.
    ``moved``: whether anything in the clip changes at all."""
    fan, fit_iou = found.fan, found.fit_iou
    if not moved:
        return [Finding("empty", REASONS["empty"])]
    if fan is None:
        return [Finding("no_fan", REASONS["no_fan"])]
    rows, cols = mask.shape
    findings = []
    area = float(np.count_nonzero(mask)) / mask.size
    if area < AREA_FRACTION[0]:
        findings.append(Finding("area_too_small", f"sector area fraction {area:.3f} < {AREA_FRACTION[0]}"))
    elif area > AREA_FRACTION[1]:
        findings.append(Finding("area_too_large", f"sector area fraction {area:.3f} > {AREA_FRACTION[1]}"))
    if fit_iou < MIN_FIT_IOU:
        findings.append(Finding("not_fan_shaped", f"IoU(fitted fan, moving pixels inside it) {fit_iou:.3f} < {MIN_FIT_IOU}"))
    if found.angular_coverage < MIN_ANGULAR_COVERAGE:
        findings.append(Finding("not_fan_shaped", f"a slice of the fan barely moves: angular coverage "
                                                  f"{found.angular_coverage:.3f} < {MIN_ANGULAR_COVERAGE}"))
    if found.outside_fraction > MAX_OUTSIDE:
        findings.append(Finding("activity_outside_sector",
                                f"{found.outside_fraction:.1%} of the moving pixels lie outside the sector"))
    top, ax = max(fan.top_y, 0.0) / rows, fan.apex_x / cols
    if not (APEX_Y[0] <= top <= APEX_Y[1] and APEX_X[0] <= ax <= APEX_X[1] and fan.apex_y >= -MAX_APEX_ABOVE * rows):
        findings.append(Finding("apex_not_at_top", f"apex at ({fan.apex_x:.1f}, {fan.apex_y:.1f}) in a {cols}x{rows} image"))
    if not OPENING_DEG[0] <= fan.opening_deg <= OPENING_DEG[1]:
        findings.append(Finding("opening_out_of_range", f"opening angle {fan.opening_deg:.1f} deg"))
    if abs(fan.tilt_deg) > MAX_TILT_DEG:
        findings.append(Finding("asymmetric", f"axis tilted {fan.tilt_deg:.1f} deg from vertical"))
    return findings


def check_agreement(agreement: float) -> list[Finding]:
    """The methods_disagree rule, for a clip where both methods gave a plausible fan."""
    if agreement < MIN_AGREEMENT:
        return [Finding("methods_disagree", f"IoU(regions mask, pixels mask) {agreement:.3f} < {MIN_AGREEMENT}")]
    return []
