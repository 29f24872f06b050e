"""Architecture registry: families plug in by name, checkpoints name the family they need.

A family registers a builder `build(config: dict) -> dict[str, nn.Module]` returning its
networks by role ("generator" is required; "discriminator", "encoder", ... are optional).
The builder must be deterministic in the config alone, so a native checkpoint (config +
weights) rebuilds the exact model without any code from the file.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .errors import CheckpointError

Builder = Callable[[dict], "dict[str, nn.Module]"]

_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(builder: Builder) -> Builder:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"architecture {name!r} registered twice")
        _BUILDERS[name] = builder
        return builder

    return deco


def build(name: str, config: dict) -> dict[str, nn.Module]:
    _ensure_loaded()
    if name not in _BUILDERS:
        known = ", ".join(sorted(_BUILDERS)) or "none"
        raise CheckpointError(f"unknown architecture {name!r} (this version knows: {known})")
    try:
        return _BUILDERS[name](dict(config))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot build {name!r} from config {config}: {exc}") from exc


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_BUILDERS)


def _ensure_loaded() -> None:
    # Importing the package registers every family; done lazily so `registry` has no cycle.
    from . import architectures  # noqa: F401
