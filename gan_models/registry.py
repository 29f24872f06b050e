"""Architecture registry: families plug in by name, checkpoints name the family they need.

A family registers a builder `build(config: dict) -> dict[str, nn.Module]` returning its
networks by role ("generator" is required; "discriminator", "encoder", ... are optional).
The builder must be deterministic in the config alone, so a native checkpoint (config +
weights) rebuilds the exact model without any code from the file.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
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


def build(name: str, config: dict, *, source: str = "",
          file_bytes: int | None = None) -> dict[str, nn.Module]:
    """The networks of architecture `name` built from `config`, within the budgets of
    formats/budgets.py: the config's declared sizes are checked first, then the networks are
    built on the meta device (nothing allocated) to count their parameter and buffer bytes
    against MAX_NETWORK_BYTES and, for a file of `file_bytes` bytes, against what such a
    file can hold. Only then are they built for real. `source` (a file name) starts every
    message."""
    from .formats import budgets

    _ensure_loaded()
    where = f"{source}: " if source else ""
    if not isinstance(name, str) or name not in _BUILDERS:
        known = ", ".join(sorted(_BUILDERS)) or "none"
        shown = repr(budgets.short(name, 60)) if isinstance(name, str) else budgets.describe(name)
        raise CheckpointError(f"{where}unknown architecture {shown} (this version knows: {known})")
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}the config of {name!r} is not an object of settings")
    budgets.check_config(config, source)
    builder = _BUILDERS[name]
    try:
        with torch.device("meta"):
            planned = builder(dict(config))
    except CheckpointError:
        raise
    except _CONFIG_ERRORS as exc:
        raise _cannot_build(where, name, config, exc) from exc
    except Exception:  # noqa: BLE001  a builder the meta device cannot run: real build below
        planned = None
    if planned is not None:
        budgets.check_network_bytes(budgets.network_bytes(planned), source or "config",
                                    f"architecture {name!r}", file_bytes)
    try:
        return builder(dict(config))
    except _CONFIG_ERRORS as exc:
        raise _cannot_build(where, name, config, exc) from exc


# What a builder raises for settings it cannot build (bad types, values, combinations).
_CONFIG_ERRORS = (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError)


def _cannot_build(where: str, name: str, config: dict, exc: Exception) -> CheckpointError:
    from .formats.budgets import describe, short

    return CheckpointError(f"{where}cannot build {name!r} from config {describe(config)}: "
                           f"{short(str(exc), 300)}")


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_BUILDERS)


def _ensure_loaded() -> None:
    # Importing the package registers every family; done lazily so `registry` has no cycle.
    from . import architectures  # noqa: F401
