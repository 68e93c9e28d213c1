"""A hospital's report house style as data: the phrase bank of one synthetic site (house_styles/<name>.yaml).

Real hospitals each write reports from their own template. The generator keeps the *structure* of a report
(which findings are stated, in which section, which numbers) in code and every *phrasing* in a YAML file per
house style, so a new style is a new file with the same keys. Picking stays a plain uniform draw over a list, so
the same seed and style give the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import yaml

from echo_pipeline.errors import EchoPipelineError

#: House styles shipped with the generator; the first is the default (render_report's and most sites').
HOUSE_STYLES = ("narrative", "block_capitals")


class HouseStyleError(EchoPipelineError):
    """An unknown house style, or a house-style YAML file that is not a mapping or lacks a key."""


def pick(rng: np.random.Generator, options):
    """One element of ``options``, uniformly (the draw every phrase choice uses)."""
    return options[int(rng.integers(len(options)))]


def chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def capitalise(text: str) -> str:
    """First letter upper-cased, the rest untouched ("left atrial" -> "Left atrial")."""
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class HouseStyle:
    """The phrase bank of one style: ``phrases[key]`` is a template string, a list of them, or a word map."""

    name: str
    phrases: dict

    def __getitem__(self, key: str):
        try:
            return self.phrases[key]
        except KeyError:
            raise HouseStyleError(f"house style {self.name!r} (house_styles/{self.name}.yaml) has no key {key!r}; "
                                  "add it with the same placeholders as narrative.yaml") from None

    def say(self, rng: np.random.Generator, key: str, **values) -> str:
        """One phrasing of ``key`` (a list is drawn from, a single string used as is), placeholders filled."""
        return self.template(rng, key).format(**values)

    def template(self, rng: np.random.Generator, key: str) -> str:
        """The unfilled template drawn for ``key`` (callers check which placeholders it names)."""
        options = self[key]
        return pick(rng, options) if isinstance(options, list) else options


@cache
def load_house_style(name: str) -> HouseStyle:
    """The packaged style ``name`` (one of HOUSE_STYLES), parsed once per process."""
    if name not in HOUSE_STYLES:
        raise HouseStyleError(f"unknown house style {name!r}; use one of {HOUSE_STYLES}")
    text = resources.files("echo_pipeline.synth").joinpath("house_styles", f"{name}.yaml").read_text("utf-8")
    phrases = yaml.safe_load(text)
    if not isinstance(phrases, dict):
        raise HouseStyleError(f"house_styles/{name}.yaml: expected a mapping of phrase keys, got {type(phrases)}")
    return HouseStyle(name, phrases)
