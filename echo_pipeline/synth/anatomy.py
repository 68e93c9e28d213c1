"""The heart of each view as a list of drawing primitives, in sector units, for one instant of the cycle.

Coordinates are (u, v) in units of the sector radius R: v is depth from the transducer (the fan's apex, v=0
at the top, v=1 at the fan's bottom), u is lateral (positive = right of the image). Each primitive is drawn
in order onto an echogenicity map (render.py), so later primitives cover earlier ones.

How the physiology shows (see docs/synthetic-cohort.md):
- LVEF: the LV cavity is an ellipse whose area at time t is A_d * (1 - LVEF/100 * c(t)), with c = 0 at end
  diastole and 1 at end systole, so (A_d - A_s) / A_d = LVEF / 100 exactly (before pixelation).
- Dilation: each chamber's size is multiplied by CHAMBER_SCALE[severity] (the LV widens more than it lengthens).
- LVH: LV wall thickness is multiplied by WALL_SCALE[severity]; the myocardium keeps its area while the
  cavity shrinks, so walls thicken in systole.
- Effusion: a dark band of width EFFUSION_WIDTH[size] between the heart and a bright pericardium.
- Tamponade: the RV collapses in diastole and the RA in systole.
- Devices: pacemaker lead = bright line through RA and RV; MitraClip = bright blob at the mitral coaptation;
  TAVR = bright ring (stent) at the aortic position (LVOT next to the crux in apical views).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

CHAMBER_SCALE = {"none": 1.0, "mild": 1.12, "moderate": 1.25, "severe": 1.4}
WALL_SCALE = {"none": 1.0, "mild": 1.35, "moderate": 1.7, "severe": 2.1}
EFFUSION_WIDTH = {"none": 0.0, "small": 0.015, "moderate": 0.032, "large": 0.055}

# Echogenicity levels (mean pixel brightness / 255 before speckle and depth gain).
BACKGROUND, HEART, MYOCARDIUM, BLOOD, VALVE = 0.24, 0.45, 0.66, 0.05, 0.95
PERICARDIUM, EFFUSION, DEVICE, LIVER, VESSEL = 1.1, 0.02, 2.4, 0.5, 0.08
WALL = 0.024  # normal LV wall thickness, in R units


@dataclass(frozen=True)
class HeartParams:
    """What the drawing needs from a study's physiology."""

    lvef: float
    lv: float
    la: float
    rv: float
    ra: float
    wall: float
    effusion: float
    tamponade: bool
    pacemaker: bool
    tavr: bool
    mitraclip: bool

    @classmethod
    def from_study(cls, study: dict) -> "HeartParams":
        return cls(
            lvef=float(study["lvef"]), lv=CHAMBER_SCALE[study["lv_dilation"]], la=CHAMBER_SCALE[study["la_dilation"]],
            rv=CHAMBER_SCALE[study["rv_dilation"]], ra=CHAMBER_SCALE[study["ra_dilation"]],
            wall=WALL * WALL_SCALE[study["lvh"]], effusion=EFFUSION_WIDTH[study["effusion"]],
            tamponade=bool(study["tamponade"]), pacemaker=bool(study["pacemaker"]), tavr=bool(study["tavr"]),
            mitraclip=bool(study["mitraclip"]),
        )


class Prim(NamedTuple):
    """One drawing primitive. kind: "ellipse" (filled), "ring" (outline), "line" (open polyline)."""

    kind: str
    level: float
    geom: tuple  # ellipse/ring: (cu, cv, au, av, angle_deg); line: ((u, v), ...)
    width: float = 0.0  # ring/line thickness in R units
    tag: str = ""  # "lv" for the LV cavity, "blood" for other blood pools


def cardiac_state(t: float, heart_rate: float) -> tuple[float, bool, float]:
    """(contraction c in [0, 1], mitral valve open, flow velocity in [-1, 1]) at t seconds after an R wave."""
    cycle = 60.0 / heart_rate
    systole = 0.30 + 0.1 * (cycle - 0.6)  # systole shortens less than the cycle at high heart rates
    relax = 0.18
    tau = t % cycle
    if tau < systole:
        c = 0.5 * (1 - math.cos(math.pi * tau / systole))
        flow = -0.7 * math.sin(math.pi * tau / systole)
    elif tau < systole + relax:
        c = 0.5 * (1 + math.cos(math.pi * (tau - systole) / relax))
        flow = math.sin(math.pi * (tau - systole) / relax)
    else:
        c = 0.0
        a_start = cycle - 0.15
        flow = 0.6 * math.sin(math.pi * (tau - a_start) / 0.15) if tau > a_start else 0.1
    return c, systole + 0.03 < tau < cycle - 0.02, flow


def _walled(cu, cv, a, b, ang, wall, level=MYOCARDIUM):
    return Prim("ellipse", level, (cu, cv, a + wall, b + wall, ang))


def _cavity(cu, cv, a, b, ang, tag="blood"):
    return Prim("ellipse", BLOOD, (cu, cv, a, b, ang), tag=tag)


def _lv_axes(hp: HeartParams, c: float, short0: float, long0: float, short_share: float = 0.6):
    """LV semi-axes at contraction c: (ED cavity a0, b0; cavity a, b; outer wall oa, ob).

    The cavity's area is the ED area * (1 - LVEF/100 * c). The epicardial outline barely moves (5% per axis),
    so the walls thicken as the cavity shrinks and nothing from outside the heart enters the ED cavity's area.
    """
    k = 1.0 - hp.lvef / 100.0 * c
    a0, b0 = short0 * hp.lv ** 1.15, long0 * hp.lv ** 0.4
    a, b = a0 * k ** short_share, b0 * k ** (1 - short_share)
    shrink = 1.0 - 0.05 * c
    return a0, b0, a, b, (a0 + hp.wall) * shrink, (b0 + hp.wall) * shrink


def _pericardium(outers: list[Prim], hp: HeartParams) -> list[Prim]:
    """A bright pericardium around the union of the outer walls, with a dark effusion band in between."""
    layers = [(hp.effusion + 0.012, PERICARDIUM)]
    if hp.effusion > 0:
        layers.append((hp.effusion, EFFUSION))
    prims = []
    for grow, level in layers:
        for p in outers:
            cu, cv, a, b, ang = p.geom
            prims.append(Prim("ellipse", level, (cu, cv, a + grow, b + grow, ang)))
    return prims


def _leaflets(left: tuple, right: tuple, length: float, is_open: bool, toward: float) -> list[Prim]:
    """Two valve leaflets hinged at left/right annulus points; open = pointing into the ventricle (toward)."""
    (lu, lv), (ru, rv) = left, right
    if is_open:
        tips = ((lu + 0.2 * length, lv + toward * length), (ru - 0.2 * length, rv + toward * length))
    else:
        mid = ((lu + ru) / 2, (lv + rv) / 2 + toward * 0.25 * length)
        tips = (mid, mid)
    return [Prim("line", VALVE, (left, tips[0]), 0.008), Prim("line", VALVE, (right, tips[1]), 0.008)]


def _envelope(u0: float, u1: float, v0: float, v1: float) -> Prim:
    """The heart's mass (fibrous skeleton, septa, AV grooves) behind the chambers: an ellipse over their bounds."""
    return Prim("ellipse", HEART, ((u0 + u1) / 2, (v0 + v1) / 2, 0.47 * (u1 - u0), 0.47 * (v1 - v0), 0))


def apical_four(hp: HeartParams, c: float, mitral_open: bool) -> list[Prim]:
    """A4C: apex at the top, septum vertical, LV right, RV left, atria at the bottom."""
    u_sep, v_av, w_ias = -0.015, 0.68, 0.014
    a0, b0, a, b, oa, ob = _lv_axes(hp, c, 0.1, 0.23)
    v_apex = v_av - 2 * b0
    lv_u, lv_v = u_sep + hp.wall / 2 + a0, v_apex + b0
    v_mv = lv_v + b  # the cavity's base, where the leaflets hinge
    rv_a0, rv_b0, v_tv = 0.08 * hp.rv ** 1.2, 0.2 * hp.rv ** 0.5, v_av - 0.025
    rv_a = rv_a0 * (1 - 0.3 * c) * ((0.6 + 0.4 * c) if hp.tamponade else 1.0)
    rv_b = rv_b0 * (1 - 0.12 * c)
    rv_u, rv_v = u_sep - hp.wall / 2 - rv_a0, v_tv - rv_b0
    la_a0, la_b0 = 0.09 * hp.la, 0.09 * hp.la
    la_a, la_b = la_a0 * (1 + 0.06 * c), la_b0 * (1 + 0.06 * c)
    la_u, la_v = u_sep + w_ias / 2 + la_a0, v_av + 0.016 + la_b0
    ra_a0, ra_b = 0.078 * hp.ra, 0.08 * hp.ra
    ra_a = ra_a0 * ((1 - 0.45 * c) if hp.tamponade else 1.0)
    ra_u, ra_v = u_sep - w_ias / 2 - ra_a0, v_tv + 0.016 + ra_b
    rv_wall = 0.014 * (1 - 0.05 * c)
    outers = [Prim("ellipse", MYOCARDIUM, (lv_u, lv_v, oa, ob, 0)),
              Prim("ellipse", MYOCARDIUM, (rv_u, rv_v, (rv_a0 + rv_wall), (rv_b0 + rv_wall), 0)),
              _walled(la_u, la_v, la_a, la_b, 0, 0.011), _walled(ra_u, ra_v, ra_a0, ra_b, 0, 0.011)]
    bottom = max(la_v + la_b0, ra_v + ra_b)
    outers.insert(0, _envelope(rv_u - rv_a0, lv_u + a0 + hp.wall, v_apex + 0.05, bottom))
    prims = _pericardium(outers, hp) + outers + [
        Prim("line", MYOCARDIUM, ((u_sep, v_apex + 0.03), (u_sep, v_av)), hp.wall * 1.3),
        Prim("line", MYOCARDIUM, ((u_sep, v_av), (u_sep, bottom - 0.03)), w_ias),
        _cavity(lv_u, lv_v, a, b, 0, tag="lv"), _cavity(rv_u, rv_v, rv_a, rv_b, 0),
        _cavity(la_u, la_v, la_a, la_b, 0), _cavity(ra_u, ra_v, ra_a, ra_b, 0),
    ]
    if mitral_open:
        prims += [_cavity(lv_u, v_av + 0.008, 0.7 * a, 0.016, 0), _cavity(rv_u, v_tv + 0.008, 0.6 * rv_a, 0.016, 0)]
    prims += _leaflets((lv_u - 0.85 * a, v_mv), (lv_u + 0.85 * a, v_mv), 0.06 * hp.lv ** 0.5, mitral_open, -1.0)
    v_tc = rv_v + rv_b
    prims += _leaflets((rv_u - 0.8 * rv_a, v_tc), (rv_u + 0.8 * rv_a, v_tc), 0.05, mitral_open, -1.0)
    if hp.pacemaker:
        lead = ((ra_u - 0.3 * ra_a, ra_v + 0.8 * ra_b), (ra_u, ra_v), (rv_u + 0.3 * rv_a0, v_tv),
                (rv_u + 0.2 * rv_a, rv_v - 0.85 * rv_b))
        prims += [Prim("line", DEVICE, lead, 0.008), Prim("ellipse", DEVICE, (*lead[-1], 0.013, 0.011, 0))]
    if hp.mitraclip:
        prims.append(Prim("ellipse", DEVICE, (lv_u, v_mv - 0.014, 0.025, 0.015, 0)))
    if hp.tavr:
        prims.append(Prim("ring", DEVICE, (u_sep + 0.035, v_av - 0.035, 0.04, 0.022, -20), 0.011))
    return prims


def apical_two(hp: HeartParams, c: float, mitral_open: bool) -> list[Prim]:
    """A2C: one ventricle centred under the apex, the left atrium below it; no septum, no right heart."""
    v_av = 0.68
    a0, b0, a, b, oa, ob = _lv_axes(hp, c, 0.105, 0.23)
    lv_v = v_av - b0
    la_a, la_b = 0.1 * hp.la * (1 + 0.06 * c), 0.095 * hp.la * (1 + 0.06 * c)
    la_v = v_av + 0.016 + 0.095 * hp.la
    outers = [Prim("ellipse", MYOCARDIUM, (0.0, lv_v, oa, ob, 3)), _walled(0.0, la_v, la_a, la_b, 0, 0.011)]
    outers.insert(0, _envelope(-a0 - hp.wall, a0 + hp.wall, v_av - 2 * b0 + 0.08, la_v + la_b))
    prims = _pericardium(outers, hp) + outers
    prims += [_cavity(0.0, lv_v, a, b, 3, tag="lv"), _cavity(0.0, la_v, la_a, la_b, 0)]
    if mitral_open:
        prims.append(_cavity(0.0, v_av + 0.008, 0.7 * a, 0.016, 0))
    v_mv = lv_v + b
    prims += _leaflets((-0.85 * a, v_mv), (0.85 * a, v_mv), 0.06 * hp.lv ** 0.5, mitral_open, -1.0)
    if hp.mitraclip:
        prims.append(Prim("ellipse", DEVICE, (0.0, v_mv - 0.014, 0.025, 0.015, 0)))
    return prims


def parasternal_long(hp: HeartParams, c: float, mitral_open: bool) -> list[Prim]:
    """PLAX: long horizontal LV (apex left), septum and RV above, aortic root upper right, LA below it."""
    d0, l0, d, l, od, ol = _lv_axes(hp, c, 0.1, 0.24, short_share=0.7)
    cu, cv, tilt = -0.06, 0.52, -8
    rv_h = 0.05 * hp.rv
    rv_v = cv - d0 - hp.wall - rv_h - 0.012
    root_u, root_v = cu + 0.29, cv - 0.55 * d0 - 0.02
    la_a, la_b = 0.1 * hp.la * (1 + 0.06 * c), 0.09 * hp.la * (1 + 0.06 * c)
    la_u, la_v = cu + 0.31, cv + 0.04 + 0.09 * hp.la
    outers = [Prim("ellipse", MYOCARDIUM, (cu, cv, ol, od, tilt)), _walled(cu + 0.02, rv_v, 0.24, rv_h, tilt, 0.015),
              _walled(la_u, la_v, la_a, la_b, 0, 0.011)]
    mv_u = cu + l * 0.92
    prims = _pericardium(outers, hp) + outers + [
        _walled(root_u, root_v, 0.14, 0.05, -12, 0.016),
        _cavity(cu + 0.02, rv_v, 0.24, rv_h, tilt), _cavity(cu, cv, l, d, tilt, tag="lv"),
        _cavity(root_u, root_v, 0.14, 0.05, -12), _cavity(la_u, la_v, la_a, la_b, 0),
        _walled(cu + 0.23, cv + 0.25, 0.03, 0.03, 0, 0.009), _cavity(cu + 0.23, cv + 0.25, 0.03, 0.03, 0),
    ]
    cusp_u = root_u - 0.07
    if mitral_open:  # diastole: aortic valve closed, mitral valve open
        prims.append(Prim("line", VALVE, ((cusp_u, root_v - 0.042), (cusp_u, root_v + 0.042)), 0.007))
    else:
        prims += [Prim("line", VALVE, ((cusp_u, root_v - 0.042), (cusp_u + 0.06, root_v - 0.036)), 0.007),
                  Prim("line", VALVE, ((cusp_u, root_v + 0.042), (cusp_u + 0.06, root_v + 0.036)), 0.007)]
    prims += _leaflets((mv_u, cv - 0.6 * d), (mv_u + 0.02, cv + 0.9 * d), 0.06, mitral_open, 0.0)
    if hp.pacemaker:
        prims.append(Prim("line", DEVICE, ((cu - 0.16, rv_v + 0.3 * rv_h), (cu + 0.12, rv_v - 0.2 * rv_h)), 0.008))
    if hp.mitraclip:
        prims.append(Prim("ellipse", DEVICE, (mv_u + 0.01, cv + 0.1 * d, 0.018, 0.024, 0)))
    if hp.tavr:
        prims += [Prim("ring", DEVICE, (cusp_u, root_v, 0.022, 0.052, -12), 0.011),
                  Prim("line", DEVICE, ((cusp_u, root_v - 0.048), (cusp_u + 0.07, root_v - 0.058)), 0.009),
                  Prim("line", DEVICE, ((cusp_u, root_v + 0.048), (cusp_u + 0.07, root_v + 0.036)), 0.009)]
    return prims


def parasternal_short(hp: HeartParams, c: float, mitral_open: bool) -> list[Prim]:
    """PSAX (papillary level): a round LV ring in the middle, the RV a crescent wrapped on its upper left."""
    r0, _, r, _, outer, _ = _lv_axes(hp, c, 0.1, 0.1, short_share=0.5)
    cu, cv = 0.03, 0.52
    rv_geom = (cu - 0.05, cv - r0 - 0.035, 0.2 * hp.rv ** 1.1, 0.085 * hp.rv, 25)
    rv = Prim("ellipse", BLOOD, rv_geom, tag="blood")
    lv_outer = Prim("ellipse", MYOCARDIUM, (cu, cv, outer, outer * 1.04, 0))
    rv_outer = Prim("ellipse", MYOCARDIUM, rv_geom[:2] + (rv_geom[2] + 0.015, rv_geom[3] + 0.015, 25))
    prims = _pericardium([lv_outer, rv_outer], hp) + [rv_outer, rv, lv_outer, _cavity(cu, cv, r, r * 1.04, 0, tag="lv")]
    for side in (-1, 1):
        prims.append(Prim("ellipse", MYOCARDIUM, (cu + side * 0.55 * r, cv + 0.55 * r, 0.22 * r, 0.2 * r, 0)))
    if hp.pacemaker:
        prims.append(Prim("ellipse", DEVICE, (cu - 0.12, cv - r0 - 0.04, 0.014, 0.011, 0)))
    return prims


def subcostal(hp: HeartParams, c: float, mitral_open: bool) -> list[Prim]:
    """Subcostal four-chamber: liver in the near field, the heart deeper and rotated (apex to the right)."""
    liver = [Prim("ellipse", LIVER, (-0.05, 0.1, 0.62, 0.34, 10))]
    liver += [Prim("ellipse", VESSEL, (x, y, 0.03, 0.022, 20)) for x, y in ((-0.12, 0.22), (0.05, 0.28), (0.16, 0.2))]
    heart = transform(apical_four(hp, c, mitral_open), pivot=(-0.015, 0.5), rotate_deg=70, scale=0.72,
                      shift=(0.02, 0.14))
    return liver + heart


LAYOUTS = {"A4C": apical_four, "A2C": apical_two, "PLAX": parasternal_long, "PSAX": parasternal_short,
           "SUBCOSTAL": subcostal}

#: Where a colour-Doppler box is centred (sector units, before jitter): the mitral inflow.
COLOUR_TARGET = {"A4C": (0.09, 0.62), "PLAX": (0.16, 0.5), "A2C": (0.0, 0.62)}


def _move(u, v, pivot, rot, scale, shift):
    du, dv = u - pivot[0], v - pivot[1]
    return (pivot[0] + shift[0] + scale * (du * rot[0] - dv * rot[1]),
            pivot[1] + shift[1] + scale * (du * rot[1] + dv * rot[0]))


def transform(prims: list[Prim], pivot: tuple, rotate_deg: float, scale: float, shift: tuple) -> list[Prim]:
    """Rotate (clockwise on screen) and scale primitives about ``pivot``, then shift them."""
    rad = math.radians(rotate_deg)
    rot = (math.cos(rad), math.sin(rad))
    out = []
    for p in prims:
        if p.kind == "line":
            geom = tuple(_move(u, v, pivot, rot, scale, shift) for u, v in p.geom)
        else:
            cu, cv, a, b, ang = p.geom
            geom = (*_move(cu, cv, pivot, rot, scale, shift), a * scale, b * scale, ang + rotate_deg)
        out.append(Prim(p.kind, p.level, geom, p.width * scale, p.tag))
    return out


def point_transform(point: tuple, pivot: tuple, rotate_deg: float, scale: float, shift: tuple) -> np.ndarray:
    """The same map as ``transform`` for one (u, v) point."""
    rad = math.radians(rotate_deg)
    return np.array(_move(point[0], point[1], pivot, (math.cos(rad), math.sin(rad)), scale, shift))
