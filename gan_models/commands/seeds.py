"""Seed list parsing shared by commands ('0-3,7' -> [0, 1, 2, 3, 7])."""

from __future__ import annotations

from ..errors import GanStudioError


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise GanStudioError(f"seed range {part!r} runs backwards")
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise GanStudioError(f"cannot read seed {part!r}; use e.g. '0-7' or '1,5,42'") from None
    if not seeds:
        raise GanStudioError("no seeds given")
    return seeds
