"""Token id layout of the template tokenizer, and how a sentence splits into a template and its variables.

Ids, in this order (docs/tokenizers.md has the table):

    0 PAD, 1 SOT, 2 EOT, 3 UNK_SENTENCE
    4 .. 304        integers 0..300, one token per value (<0> .. <300>)
    305 .. 314      one-digit decimal parts <.0> .. <.9>
    315 .. 414      two-digit decimal parts <.00> .. <.99>
    415             <DOT>, and 416 .. 425 <SPELL_2> .. <SPELL_11>: numbers outside the compact form
    426 ..          severity words, SEVERITY_WORDS order
    then            templates, in the vocabulary file's order

A number is written compactly when it is an integer 0..300 without leading zeros, optionally with a one- or
two-digit decimal part (2.5 -> <2> <.5>, 0.75 -> <0> <.75>). Anything else up to 11 characters ("07", "450",
"1.125") is spelled: <SPELL_n> then n digit/<DOT> tokens, so its exact text survives. Longer digit strings
cannot occur after normalisation (5+ digit runs become [ID]); a sentence holding one anyway is encoded as
UNK_SENTENCE rather than altered.
"""

from __future__ import annotations

import re

PAD, SOT, EOT, UNK_SENTENCE = 0, 1, 2, 3
SPECIAL_TOKENS = ("<PAD>", "<SOT>", "<EOT>", "<UNK_SENTENCE>")
MAX_INT = 300
INT_BASE = len(SPECIAL_TOKENS)
FRAC1_BASE = INT_BASE + MAX_INT + 1
FRAC2_BASE = FRAC1_BASE + 10
DOT = FRAC2_BASE + 100
MAX_SPELLED = 11
SPELL_BASE = DOT + 1 - 2  # <SPELL_n> = SPELL_BASE + n for n in 2..MAX_SPELLED
SEVERITY_WORDS = ("TRACE", "TRIVIAL", "MINIMAL", "MILD", "MILD-TO-MODERATE", "MODERATE", "MODERATE-TO-SEVERE",
                  "SEVERE", "SMALL", "SMALL-TO-MODERATE", "MODERATE-TO-LARGE", "LARGE")
SEVERITY_BASE = SPELL_BASE + MAX_SPELLED + 1
TEMPLATE_BASE = SEVERITY_BASE + len(SEVERITY_WORDS)

NUM, SEV = "<NUM>", "<SEV>"
_PLACEHOLDER = re.compile(f"({NUM}|{SEV})")
_SEVERITY_ID = {word: SEVERITY_BASE + i for i, word in enumerate(SEVERITY_WORDS)}
_COMPACT = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?")
# Longest severity first so "MILD-TO-MODERATE" wins over "MILD". A number is a digit run (optional decimal
# part) not glued to letters or other digits: "2D" and "M2" are words, not numbers. The atomic group stops
# "1.5X" from matching as "1" followed by literal ".5X".
_VARIABLE = re.compile(
    r"(?P<sev>(?<![\w-])(?:" + "|".join(map(re.escape, sorted(SEVERITY_WORDS, key=len, reverse=True))) + r")(?![\w-]))"
    r"|(?P<num>(?<![A-Z0-9.])(?>[0-9]+(?:\.[0-9]+)?)(?![0-9A-Z]))"
)


def layout() -> dict:
    """The layout facts a vocabulary file records, so a file built under another layout is refused."""
    return {"max_int": MAX_INT, "max_spelled": MAX_SPELLED, "severity_words": list(SEVERITY_WORDS),
            "template_base": TEMPLATE_BASE}


def templatise(sentence: str) -> tuple[str, list[tuple[str, str]]]:
    """(template, variables) of a normalised sentence: numbers -> <NUM>, severity words -> <SEV>, left to
    right; variables are ("num" | "sev", text as written)."""
    variables: list[tuple[str, str]] = []

    def _swap(match: re.Match) -> str:
        kind = match.lastgroup
        variables.append((kind, match.group(kind)))
        return NUM if kind == "num" else SEV

    return _VARIABLE.sub(_swap, sentence), variables


def fill(template: str, values: list[str]) -> str:
    """Inverse of `templatise`: the template with its placeholders replaced by `values` in order; a
    placeholder without a value (a truncated sequence) stays as written."""
    parts = _PLACEHOLDER.split(template)
    it = iter(values)
    return "".join(next(it, part) if part in (NUM, SEV) else part for part in parts)


def placeholders(template: str) -> list[str]:
    """The template's placeholders (<NUM> / <SEV>) in order."""
    return _PLACEHOLDER.findall(template)


def encode_number(text: str) -> list[int] | None:
    """Token ids of a number's exact text, or None when it cannot be encoded (more than MAX_SPELLED chars)."""
    compact = _COMPACT.fullmatch(text)
    if compact and int(compact.group(1)) <= MAX_INT:
        frac = compact.group(2)
        ids = [INT_BASE + int(compact.group(1))]
        if frac is not None:
            ids.append((FRAC1_BASE if len(frac) == 1 else FRAC2_BASE) + int(frac))
        return ids
    if 2 <= len(text) <= MAX_SPELLED and re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return [SPELL_BASE + len(text)] + [DOT if c == "." else INT_BASE + int(c) for c in text]
    return None


def decode_number(ids: list[int], pos: int) -> tuple[str | None, int]:
    """(number text, next position) read from ids[pos]; (None, pos) when no number starts there."""
    if pos >= len(ids):
        return None, pos
    tok = ids[pos]
    if INT_BASE <= tok < FRAC1_BASE:
        text, pos = str(tok - INT_BASE), pos + 1
        if pos < len(ids) and FRAC1_BASE <= ids[pos] < FRAC2_BASE:
            return f"{text}.{ids[pos] - FRAC1_BASE}", pos + 1
        if pos < len(ids) and FRAC2_BASE <= ids[pos] < DOT:
            return f"{text}.{ids[pos] - FRAC2_BASE:02d}", pos + 1
        return text, pos
    if SPELL_BASE + 2 <= tok <= SPELL_BASE + MAX_SPELLED:
        n = tok - SPELL_BASE
        chars = ids[pos + 1: pos + 1 + n]
        if len(chars) == n and all(c == DOT or INT_BASE <= c < INT_BASE + 10 for c in chars):
            return "".join("." if c == DOT else str(c - INT_BASE) for c in chars), pos + 1 + n
    return None, pos


def encode_severity(word: str) -> int:
    """Token id of a severity word (one of SEVERITY_WORDS)."""
    return _SEVERITY_ID[word]


def decode_severity(token: int) -> str | None:
    """The severity word of a token id, or None when it is not a severity token."""
    i = token - SEVERITY_BASE
    return SEVERITY_WORDS[i] if 0 <= i < len(SEVERITY_WORDS) else None


def token_name(token: int) -> str:
    """Readable name of a non-template token id (for docs and debugging)."""
    if token < INT_BASE:
        return SPECIAL_TOKENS[token]
    if token < FRAC1_BASE:
        return f"<{token - INT_BASE}>"
    if token < FRAC2_BASE:
        return f"<.{token - FRAC1_BASE}>"
    if token < DOT:
        return f"<.{token - FRAC2_BASE:02d}>"
    if token == DOT:
        return "<DOT>"
    if token < SEVERITY_BASE:
        return f"<SPELL_{token - SPELL_BASE}>"
    return f"<{decode_severity(token)}>" if token < TEMPLATE_BASE else f"<T{token - TEMPLATE_BASE}>"
