"""Phrase lists from the rules file compiled into one regular expression per list, matched in one pass.

Plain phrases become a word trie (prefixes shared, so hundreds of phrases cost about as much as a few) that
matches whole words in any case, with any run of spaces or hyphens between words. A phrase written in
capitals is an abbreviation and only counts when the text has it in capitals too. `re:` entries are tried
as written (case-insensitive), before the trie, so a long pattern wins over a short phrase at the same place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, Hashable, Iterable, TypeVar

Payload = TypeVar("Payload", bound=Hashable)
_SEP = r"[\s\-]+"
_WORD_SPLIT = re.compile(_SEP)


def normalise(text: str) -> str:
    """Words joined by single spaces, so "Mild-to-moderate" and "mild  to moderate" compare equal."""
    return _WORD_SPLIT.sub(" ", text.strip())


def is_abbreviation(phrase: str) -> bool:
    return any(c.isalpha() for c in phrase) and phrase == phrase.upper()


def _trie_regex(phrases: Iterable[str]) -> str:
    trie: dict = {}
    for phrase in phrases:
        node = trie
        for word in normalise(phrase).lower().split(" "):
            node = node.setdefault(word, {})
        node[""] = {}  # end of a phrase

    def build(node: dict) -> str:
        branches = [re.escape(word) + (f"(?:{_SEP}{build(child)})?" if "" in child and len(child) > 1
                                       else "" if "" in child else f"{_SEP}{build(child)}")
                    for word, child in sorted(node.items(), key=lambda kv: -len(kv[0])) if word]
        return f"(?:{'|'.join(branches)})"

    return build(trie)


@dataclass(frozen=True)
class Match(Generic[Payload]):
    start: int
    end: int
    payloads: tuple[Payload, ...]


class PhraseIndex(Generic[Payload]):
    """Finds every phrase of many lists in a text, each match tagged with what the phrase stands for."""

    def __init__(self, entries: Iterable[tuple[str, Payload]]):
        self._cased: dict[str, list[Payload]] = {}  # abbreviations, exact case
        self._any_case: dict[str, list[Payload]] = {}
        self._patterns: list[tuple[re.Pattern, Payload]] = []
        plain: list[str] = []
        for phrase, payload in entries:
            if phrase.startswith("re:"):
                self._patterns.append((re.compile(phrase[3:], re.I), payload))
                continue
            plain.append(phrase)
            if is_abbreviation(phrase):
                self._cased.setdefault(normalise(phrase), []).append(payload)
            else:
                self._any_case.setdefault(normalise(phrase).lower(), []).append(payload)
        alternatives = [f"(?:{p.pattern})" for p, _ in self._patterns]
        if plain:
            alternatives.append(rf"(?<![A-Za-z0-9]){_trie_regex(plain)}(?![A-Za-z0-9])")
        self.regex = re.compile("|".join(alternatives) or r"(?!x)x", re.I)

    def _payloads(self, text: str) -> tuple[Payload, ...]:
        key = normalise(text)
        found = list(self._cased.get(key, ())) + list(self._any_case.get(key.lower(), ()))
        if not found:
            found = [payload for pattern, payload in self._patterns if pattern.fullmatch(text)]
        return tuple(dict.fromkeys(found))

    def find(self, text: str) -> list[Match[Payload]]:
        """Non-overlapping matches, left to right; a capitals-only phrase seen in lower case is dropped."""
        out = []
        for m in self.regex.finditer(text):
            payloads = self._payloads(m.group())
            if payloads:
                out.append(Match(m.start(), m.end(), payloads))
        return out
