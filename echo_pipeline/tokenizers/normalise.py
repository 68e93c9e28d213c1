"""Sentence splitting and the text normalisation the template tokenizer matches on.

`split_sentences` works on raw text and is shared by both tokenizers (BPE snippets are sentence-aligned).
`normalise_sentence` maps spelling variants of the same statement to one string, so that a few hundred
sentence templates cover a corpus. Every rule below is listed in docs/tokenizers.md with the reason it is
safe; rules that would change what a sentence says (ENLARGED vs DILATED, APPEARS vs IS) are deliberately
absent. Bump NORMALISER_VERSION whenever a rule changes: a vocabulary learned with another version no longer
matches and is refused on load.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

NORMALISER_VERSION = 1

# A period after these words is an abbreviation, not a sentence end ("Dr. Smith", "vs. prior").
_ABBREVIATIONS = frozenset({"DR", "MRS", "VS", "E.G", "I.E", "APPROX", "CF"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
# "1. ", "2) ", "- ", "* ", "• " at the start of a line: list layout, not content.
_LIST_MARKER = re.compile(r"^\s*(?:[0-9]{1,2}[.)]|[-*\u2022])\s+")

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
_QUOTES = {ord("\u2018"): "'", ord("\u2019"): "'", ord("\u201c"): '"', ord("\u201d"): '"'}

# Ordered (pattern, replacement) rules applied to the upper-cased sentence. Why each is safe: see the docs.
_RULES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        # Comparison signs become words: keeps "<" / ">" free for the template placeholders, and merges
        # "<50%" with "LESS THAN 50%".
        (r"<=|\u2264", " LESS THAN OR EQUAL TO "),
        (r">=|\u2265", " GREATER THAN OR EQUAL TO "),
        (r"<", " LESS THAN "),
        (r">", " GREATER THAN "),
        # Dates are identifying (HIPAA Safe Harbor) and state no finding.
        (r"\b[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}\b|\b[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4}\b", "[DATE]"),
        # Identifiers (MRN, accession, phone numbers): an alphanumeric run holding 5+ digits is never a
        # measurement in an echo report; without this rule a patient's MRN seen in two reports would become a
        # template in the (human-readable, shared) vocabulary file.
        (r"(?<![A-Z0-9])(?=(?:[A-Z]*[0-9]){5})[A-Z0-9]+(?![A-Z0-9])", "[ID]"),
        # Units: one spelling each.
        (r"\bMM\s*-?\s*HG\b", "MMHG"),
        (r"\bPERCENT\b", "%"),
        (r"\b(CM|M)/SEC\b", r"\1/S"),
        (r"\bMSEC\b", "MS"),
        (r"([0-9])\s+%", r"\1%"),
        (r"([0-9])(MMHG|CM|MM|MS|ML|KG|BPM|M/S|CM/S|G)\b", r"\1 \2"),
        # Tense and adverb variants of the same finding (the paper's demo does the same).
        (r"\bWAS\b", "IS"),
        (r"\bWERE\b", "ARE"),
        (r"\bMILDLY\b", "MILD"),
        (r"\bMODERATELY\b", "MODERATE"),
        (r"\bSEVERELY\b", "SEVERE"),
        # Severity combinations: one spelling ("MILD TO MODERATE", "MILD-MODERATE" -> "MILD-TO-MODERATE").
        (r"\b(MILD|SMALL|MODERATE)\s*(?:-\s*TO\s*-|-|\s+TO\s+)\s*(MODERATE|SEVERE|LARGE)\b", r"\1-TO-\2"),
        (r"\bPULMONARY ARTERY\b", "PA"),
        # Spacing around punctuation.
        (r"\s+([,.;:)%])", r"\1"),
        (r"\(\s+", "("),
        (r"\s+", " "),
    )
)


def split_sentences(text: str) -> list[str]:
    """Sentences of raw text in order: one or more per non-blank line, split after . ! ? followed by space.

    Text is returned as written (no case or spacing change) so BPE snippets stay verbatim. A leading list
    marker ("1. ") stays attached to its sentence; a period after a known abbreviation ("Dr.") does not end
    a sentence.
    """
    out: list[str] = []
    for line in text.splitlines():
        marker = _LIST_MARKER.match(line)
        head, body = (line[: marker.end()], line[marker.end():]) if marker else ("", line)
        pieces: list[str] = []
        for piece in _SENTENCE_END.split(body.strip()):
            last_word = pieces[-1].rsplit(None, 1)[-1].rstrip(".").upper() if pieces else ""
            if pieces and last_word in _ABBREVIATIONS:
                pieces[-1] = f"{pieces[-1]} {piece}"
            elif piece:
                pieces.append(piece)
        if pieces:
            pieces[0] = head + pieces[0]
            out.extend(p.strip() for p in pieces)
        elif head.strip():
            out.append(head.strip())
    return out


@lru_cache(maxsize=1 << 16)  # templated reports repeat most sentences verbatim
def normalise_sentence(sentence: str) -> str:
    """The canonical form of one sentence: NFKC, ASCII dashes and quotes, upper case, the rules above,
    no list marker, no sentence-final period, single spaces. Total: any string gives a string."""
    text = unicodedata.normalize("NFKC", sentence).translate(_DASHES).translate(_QUOTES).upper()
    text = _LIST_MARKER.sub("", text)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text.strip().rstrip(".").strip()


def normalised_sentences(text: str) -> list[str]:
    """`normalise_sentence` of every sentence of `text`, dropping sentences that normalise to nothing."""
    return [s for s in map(normalise_sentence, split_sentences(text)) if s]
