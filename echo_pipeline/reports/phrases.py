"""Phrase lists from the rules file, compiled once and matched in one left-to-right pass over a sentence.

Plain phrases become a word trie (prefixes shared, so hundreds of phrases cost about as much as a few) that
matches whole words in any case, with any run of spaces or hyphens between words. A phrase written in
capitals is an abbreviation and only counts when the text has it in capitals too. `re:` entries are matched
as written (case-insensitive). At one place the longer match wins. The pass only stops where a match can
begin — a phrase's first word or a pattern's literal beginning, found by one more trie — which is what keeps
labelling fast (docs/reports.md, "Measured").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from re import _parser  # the pattern parser, to learn which characters a rules-file regex can start with
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
    """One phrase found: its span in the text and what it stands for (several lists may share a phrase)."""

    start: int
    end: int
    payloads: tuple[Payload, ...]


class PhraseIndex(Generic[Payload]):
    """Finds every phrase of many lists in a text, each match tagged with what the phrase stands for.

    Matching runs on the lower-cased text, only where a word begins, and only with the patterns that can
    begin with that character.
    """

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
        self._first_words = {normalise(p).lower().split(" ")[0] for p in plain}
        self._trie = re.compile(f"{_trie_regex(plain)}(?![a-z0-9])") if plain else None
        self._by_first_char, starts = _patterns_by_first_char([p for p, _ in self._patterns])
        # Where a match can begin: a phrase's first word, or a pattern's literal beginning. When some pattern
        # can begin anywhere, every token is a candidate.
        alternatives = [rf"\b{_char_trie(self._first_words)}(?![a-z0-9])"] if plain else []
        alternatives += [_char_trie(starts)] if starts else []
        self._candidates = (_TOKEN if starts is None else
                            re.compile("|".join(f"(?:{a})" for a in alternatives) or r"(?!x)x"))

    def _payloads(self, text: str) -> tuple[Payload, ...]:
        key = text if _PLAIN.fullmatch(text) else normalise(text)
        found = list(self._cased.get(key, ())) + list(self._any_case.get(key.lower(), ()))
        if not found:
            found = [payload for pattern, payload in self._patterns if pattern.fullmatch(text)]
        return tuple(dict.fromkeys(found))

    def find(self, text: str) -> list[Match[Payload]]:
        """Non-overlapping matches, left to right, the longest at each place; a capitals-only phrase seen in
        lower case is dropped."""
        low = _lower(text)
        out: list[Match[Payload]] = []
        taken = 0
        for candidate in self._candidates.finditer(low):
            start = candidate.start()
            if start < taken or (start and low[start - 1].isalnum() and low[start].isalnum()):
                continue  # inside a match already taken, or not where a word begins
            pattern = self._by_first_char.get(low[start]) or self._by_first_char.get("")
            by_pattern = pattern.match(low, start) if pattern else None
            by_phrase = self._trie.match(low, start) if self._trie is not None else None
            longer_pattern = by_pattern is not None and (by_phrase is None or by_pattern.end() >= by_phrase.end())
            found = by_pattern if longer_pattern else by_phrase
            if found is None or found.end() == start:
                continue
            payloads = self._payloads(text[start:found.end()])
            if payloads:
                out.append(Match(start, found.end(), payloads))
                taken = found.end()
        return out


_PLAIN = re.compile(r"[^\s\-]+(?: [^\s\-]+)*")  # already normalised: single spaces, no hyphens
_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def _lower(text: str) -> str:
    """Lower case with the same length (a few characters lengthen under str.lower; those are kept as they are)."""
    low = text.lower()
    return low if len(low) == len(text) else "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _prefixes(items: list, limit: int = 8) -> set[str]:
    """Literal beginnings (lower case, at most `limit` characters) that every match of a parsed pattern has one
    of; "" among them means the pattern can begin with anything."""
    if not items or limit == 0:
        return {""}
    (op, av), rest = items[0], items[1:]
    if op is _parser.LITERAL:
        return {chr(av).lower() + tail for tail in _prefixes(rest, limit - 1)}
    if op is _parser.AT:  # \b and the like take no character
        return _prefixes(rest, limit)
    if op is _parser.SUBPATTERN:
        return _prefixes(list(av[-1]) + rest, limit)
    if op is _parser.BRANCH:
        return set().union(*(_prefixes(list(branch) + rest, limit) for branch in av[1]))
    if op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT):
        low, _, sub = av
        return _prefixes(list(sub), limit) | (_prefixes(rest, limit) if low == 0 else set())
    return {""}


def _char_trie(words: Iterable[str]) -> str:
    """One regex matching any of the words, their common beginnings shared (so `re` rejects a position fast)."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [re.escape(c) + build(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


def _patterns_by_first_char(patterns: list[re.Pattern]) -> tuple[dict[str, re.Pattern], set[str] | None]:
    """First character -> one regex of the patterns that can start with it, and the literal beginnings of all
    of them (None when one can begin with anything, so every token must be tried)."""
    buckets: dict[str, list[str]] = {}
    starts: set[str] | None = set()
    for pattern in patterns:
        prefixes = _prefixes(list(_parser.parse(pattern.pattern)))
        if "" in prefixes:
            starts = None
            buckets.setdefault("", []).append(pattern.pattern)
            continue
        if starts is not None:
            starts |= prefixes
        for char in {p[0] for p in prefixes}:
            buckets.setdefault(char, []).append(pattern.pattern)
    anywhere = buckets.get("", [])
    compiled = {char: re.compile("|".join(f"(?:{p})" for p in dict.fromkeys(ps + anywhere)), re.I)
                for char, ps in buckets.items()}
    return compiled, starts
