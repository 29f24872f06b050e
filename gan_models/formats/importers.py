"""Importer registry: each checkpoint format plugs in by recognising its files by content.

A format module registers an `Importer` (a name, a one-line description for messages and
docs, a cheap `recognise(probe)` test and a `read(path)` that returns a GenerativeModel).
`load_model` asks the importers in priority order and uses the first that recognises the
file, so adding a format is one module that calls `register_importer` plus one line in
`formats/__init__.py`'s import list. Nothing here ever runs code stored in a file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from . import detect

if TYPE_CHECKING:
    from ..model import GenerativeModel


@dataclass
class Probe:
    """What importers look at to recognise a file: its container kind and first bytes,
    computed once and shared by every importer's `recognise`."""

    path: Path
    head: bytes = field(init=False)

    def __post_init__(self):
        with open(self.path, "rb") as f:
            self.head = f.read(64)

    @cached_property
    def container(self) -> str:
        """detect.SAFETENSORS, TORCH_ZIP, PICKLE or UNKNOWN."""
        return detect.detect_format(self.path)


@dataclass(frozen=True)
class Importer:
    name: str                                    # e.g. "nvlabs-pkl"; recorded as source.format
    description: str                             # "NVlabs StyleGAN2-ADA / StyleGAN3 .pkl"
    recognise: Callable[[Probe], bool]           # cheap, never loads tensors
    read: Callable[[Path], GenerativeModel]
    priority: int = 0                            # higher is asked first (specific before generic)


_IMPORTERS: dict[str, Importer] = {}


def register_importer(importer: Importer) -> Importer:
    known = _IMPORTERS.get(importer.name)
    if known is not None and known != importer:
        raise ValueError(f"importer {importer.name!r} registered twice")
    _IMPORTERS[importer.name] = importer
    return importer


def importers() -> list[Importer]:
    """Every registered importer, in the order `find_importer` asks them."""
    _ensure_loaded()
    return sorted(_IMPORTERS.values(), key=lambda i: (-i.priority, i.name))


def find_importer(probe: Probe) -> Importer | None:
    for importer in importers():
        if importer.recognise(probe):
            return importer
    return None


def known_formats() -> str:
    return ", ".join(i.description for i in importers())


def _ensure_loaded() -> None:
    # The formats package imports each format module, which registers itself.
    from .. import formats  # noqa: F401
