"""The one text grammar for lists people type into nodes and commands.

    seeds     '1, 5, 42'   '0-7'   '7-0' (descending)          each within 0..MAX_SEED
    indices   '0, 2-4'   '4-2'   '-1' (the last)   '-3--1'     negative counts from the end
    mixes     'cat'   'cat:0.7, dog:0.3'   'cat:0.7 + dog:0.3, bird'
    numbers   '-3, -1.5, 0, 1.5, 3'  (finite floats, no ranges)

Items are separated by commas, semicolons or new lines; ranges are inclusive and run either
way. In a mix each comma-separated entry is one weighted mix of names joined by '+'; the
caller decides whether all entries make one mix or are cycled over a batch. A weight follows
the last colon ('cat:0.7') and defaults to 1; when what follows the last colon is not a
number the colon belongs to the name ('ns:thing' is one name, 'ns:thing:2' the same name
with weight 2, '12:30:1' the name '12:30'). Weights are finite and not negative.

Every parser counts before it expands: a text longer than MAX_TEXT_CHARS, or a list whose
ranges would make more than `limit` items, is refused before any list is built, with the
limit in the message. Errors are GanStudioError.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from ..errors import GanStudioError
from .sampling import MAX_SEED

MAX_TEXT_CHARS = 64 * 1024
MAX_LIST_ITEMS = 100_000
_SEPARATORS = re.compile(r"[,;\n]")
_INT_OR_RANGE = re.compile(r"(-?[0-9]+)\s*(?:-\s*(-?[0-9]+))?")
_MAX_DIGITS = 40  # far above any seed (20 digits); longer numbers are typing accidents


class Weighted(NamedTuple):
    """One name of a mix and its weight."""

    name: str
    weight: float


class _Span(NamedTuple):
    token: str
    start: int
    stop: int  # inclusive

    @property
    def size(self) -> int:
        return abs(self.stop - self.start) + 1


# --- integer lists ------------------------------------------------------------------------
def parse_int_list(text: str, what: str = "value", plural: str = "values",
                   minimum: int | None = None, maximum: int | None = None,
                   limit: int = MAX_LIST_ITEMS, example: str = "0, 2-4") -> list[int]:
    """'1, 5, 42' or '0,2-4' -> [0, 2, 3, 4]. Ranges are inclusive and may run downwards
    ('4-2' -> 4, 3, 2); a lone negative number ('-1') is kept as is. Bounds and the total
    count are checked on the ranges' ends before anything is expanded."""
    spans = [_span(token, what, example) for token in _tokens(text, plural)]
    if not spans:
        raise GanStudioError(f"no {plural} given; write e.g. {example}")
    for span in spans:
        for value in (span.start, span.stop):  # a range's ends are its extremes
            if minimum is not None and value < minimum:
                raise GanStudioError(f"{what} {value} is below {minimum}")
            if maximum is not None and value > maximum:
                raise GanStudioError(f"{what} {value} is above the largest {what} ({maximum})")
    total = sum(span.size for span in spans)
    if total > limit:
        biggest = max(spans, key=lambda s: s.size)
        if biggest.size > limit:
            raise GanStudioError(f"{plural} {_show(biggest.token)} would make "
                                 f"{biggest.size:,} {plural}; the limit is {limit:,}")
        raise GanStudioError(f"these {plural} would make {total:,} {plural}; the limit is "
                             f"{limit:,}")
    out: list[int] = []
    for span in spans:
        step = 1 if span.stop >= span.start else -1
        out.extend(range(span.start, span.stop + step, step))
    return out


def parse_seeds(text: str, limit: int = MAX_LIST_ITEMS) -> list[int]:
    """Seeds in 0..MAX_SEED: '1, 5, 42', '0-7', '7-0' (descending)."""
    return parse_int_list(text, "seed", "seeds", minimum=0, maximum=MAX_SEED, limit=limit,
                          example="1, 5, 42 or 0-7")


def parse_indices(text: str, limit: int = MAX_LIST_ITEMS) -> list[int]:
    """Positions in a batch: '0, 2-4', '7-0' (reversed), '-1' (the last)."""
    return parse_int_list(text, "index", "indices", limit=limit, example="0, 2-4 or -1")


def parse_float_list(text: str, what: str = "value", plural: str = "values",
                     minimum: float | None = None, maximum: float | None = None,
                     limit: int = 256, example: str = "-2, 0, 2") -> list[float]:
    """'-3, -1.5, 0, 1.5, 3' -> finite floats in order (no ranges), at most `limit`."""
    tokens = _tokens(text, plural)
    if not tokens:
        raise GanStudioError(f"no {plural} given; write e.g. {example}")
    if len(tokens) > limit:
        raise GanStudioError(f"{len(tokens):,} {plural} is more than the limit of {limit:,}")
    out = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise GanStudioError(f"{_show(token)} is not a number; write e.g. {example}") \
                from None
        if not math.isfinite(value):
            raise GanStudioError(f"{what} {_show(token)} is not a finite number")
        if (minimum is not None and value < minimum) or (maximum is not None
                                                           and value > maximum):
            lo = -math.inf if minimum is None else minimum
            hi = math.inf if maximum is None else maximum
            raise GanStudioError(f"{what} {value:g} is outside {lo:g}..{hi:g}")
        out.append(value)
    return out


def _span(token: str, what: str, example: str) -> _Span:
    match = _INT_OR_RANGE.fullmatch(token)
    if match is None:
        raise GanStudioError(f"{_show(token)} is not {_a(what)} or range; write e.g. "
                             f"{example}")
    ends = [match.group(1), match.group(2) or match.group(1)]
    if any(len(end.lstrip("-")) > _MAX_DIGITS for end in ends):
        raise GanStudioError(f"{_show(token)} is too large for {_a(what)}")
    return _Span(token, int(ends[0]), int(ends[1]))


# --- weighted name mixes -----------------------------------------------------------------
def parse_mix(text: str, what: str = "class", limit: int = MAX_LIST_ITEMS,
              allow_empty: bool = False) -> list[list[Weighted]]:
    """'cat:0.7 + dog:0.3, bird' -> [[cat 0.7, dog 0.3], [bird 1.0]]: one list of weighted
    names per comma-separated entry. An empty text is an error unless allow_empty."""
    tokens = _tokens(text, f"{what} list")
    total = sum(token.count("+") + 1 for token in tokens)
    if total > limit:
        raise GanStudioError(f"{total:,} {what} names is more than the limit of {limit:,}")
    entries = []
    for token in tokens:
        parts = [piece.strip() for piece in token.split("+")]
        if not all(parts):
            raise GanStudioError(f"{_show(token)} has an empty part; join names with '+', "
                                 "e.g. 'cat:0.7 + dog:0.3'")
        entries.append([_weighted(part, what) for part in parts])
    if not entries and not allow_empty:
        raise GanStudioError(f"no {what} given; write a name or index, e.g. 'cat' or "
                             "'cat:0.7, dog:0.3'")
    return entries


def _weighted(part: str, what: str) -> Weighted:
    name, sep, raw = part.rpartition(":")
    weight = 1.0
    if not sep:
        name = part
    else:
        try:
            weight = float(raw)
        except ValueError:
            name = part  # no number after the last colon: the colon is part of the name
    name = name.strip()
    if not name:
        raise GanStudioError(f"{_show(part)} has a weight but no {what} name")
    if not math.isfinite(weight):
        raise GanStudioError(f"weight of {_show(name)} is not a finite number ({raw.strip()})")
    if weight < 0:
        raise GanStudioError(f"weight of {_show(name)} is negative ({weight:g})")
    return Weighted(name, weight)


# --- shared -------------------------------------------------------------------------------
def _tokens(text: str, what: str) -> list[str]:
    text = str(text)
    if len(text) > MAX_TEXT_CHARS:
        raise GanStudioError(f"the {what} text is {len(text):,} characters long; the limit is "
                             f"{MAX_TEXT_CHARS:,}")
    return [token.strip() for token in _SEPARATORS.split(text) if token.strip()]


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _show(text: str, width: int = 40) -> str:
    """Quote a piece of user text for a message, cut short when long."""
    return repr(text if len(text) <= width else text[:width] + "...")
