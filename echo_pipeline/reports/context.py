"""Assertion status of each target mention in a sentence (the ConText algorithm, with its cues as data).

A cue (`context:` in the rules file) marks the mentions in its scope as negated, uncertain, hypothetical or
historical. A forward cue reaches the first mention after it (at most `FORWARD_GAP_WORDS` words on, or
`NEAR_WORDS` for a `forward_near` cue) and the mentions joined to that one by "or", "nor", "and/or" or a
comma ("no LVH, effusion or tamponade"); a backward cue reaches the one mention just before it. A
terminator word ("but", "and", "with", ...) ends every scope. A cue inside a mention (a long pattern target such
as "aortic valve: no stenosis") applies to it. When cues disagree the strongest wins:
hypothetical > uncertain > negated > historical > affirmed.
"""

from __future__ import annotations

import re

from echo_pipeline.reports.phrases import Match, PhraseIndex

STATUSES = ("affirmed", "historical", "negated", "uncertain", "hypothetical")  # weakest to strongest
FORWARD_GAP_WORDS = 6
NEAR_WORDS = 3
_RANK = {status: rank for rank, status in enumerate(STATUSES)}
_COORDINATION = re.compile(r"^[\s,/]*(?:(?:or|nor|and/or)\b)?[\s,]*(?:(?:the|a|an|any)\b)?\s*$", re.I)
_WORD = re.compile(r"[A-Za-z0-9']+")
TERMINATOR = ("terminator", "")


def cue_index(context: dict) -> PhraseIndex:
    """One index over every cue of the rules' `context:` section, payload (category, direction)."""
    entries = [(phrase, TERMINATOR) for phrase in context.get("terminators", [])]
    for category, directions in context.items():
        if category != "terminators":
            entries += [(phrase, (category, direction))
                        for direction, phrases in directions.items() for phrase in phrases]
    return PhraseIndex(entries)


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def mention_statuses(sentence: str, mentions: list[Match], cues: list[Match]) -> list[str]:
    """Status of each mention (same order as `mentions`)."""
    status = ["affirmed"] * len(mentions)
    if not cues:
        return status
    stops = [cue.start for cue in cues if TERMINATOR in cue.payloads]

    def mark(i: int, category: str) -> None:
        if _RANK[category] > _RANK[status[i]]:
            status[i] = category

    for cue in cues:
        for payload in cue.payloads:
            if payload == TERMINATOR:
                continue
            category, direction = payload
            for i, m in enumerate(mentions):  # a cue inside a long target ("aortic valve: no stenosis")
                if m.start < cue.start and cue.end <= m.end:
                    mark(i, category)
            if direction == "backward":
                before = [i for i, m in enumerate(mentions) if m.end <= cue.start]
                if before and not any(mentions[before[-1]].end <= s < cue.start for s in stops):
                    mark(before[-1], category)
                continue
            limit = min([s for s in stops if s >= cue.end] + [len(sentence)])
            after = [i for i, m in enumerate(mentions) if cue.end <= m.start < limit]
            reach = NEAR_WORDS if direction == "forward_near" else FORWARD_GAP_WORDS
            if not after or _words(sentence[cue.end:mentions[after[0]].start]) > reach:
                continue
            mark(after[0], category)
            for previous, i in zip(after, after[1:]):
                if not _COORDINATION.match(sentence[mentions[previous].end:mentions[i].start]):
                    break
                mark(i, category)
    return status
