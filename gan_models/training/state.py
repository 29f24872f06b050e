"""Training state as (tensors, JSON): the form snapshots take on disk, with no pickle.

`flatten` walks nested dicts/lists/tuples (an optimizer's state_dict, recipe state, ...):
tensors go into a flat name -> tensor dict, everything else stays JSON with a
{"__tensor__": name} marker in place of each tensor. `unflatten` reverses it exactly.
Also captures and restores the global RNG states of torch (CPU, CUDA), python and numpy.
"""

from __future__ import annotations

import random

import numpy as np
import torch

TENSOR = "__tensor__"
TUPLE = "__tuple__"


def flatten(obj, prefix: str, tensors: dict[str, torch.Tensor]):
    """JSON-able copy of obj; its tensors are added to `tensors` under prefix-based names."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").contiguous().clone()
        return {TENSOR: prefix}
    if isinstance(obj, dict):
        # JSON keys are strings: remember int keys (optimizer state is keyed by param index).
        return {"__dict__": [[k, flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {TUPLE: items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} in a training state")


def unflatten(tree, tensors: dict[str, torch.Tensor]):
    if isinstance(tree, dict):
        if TENSOR in tree:
            return tensors[tree[TENSOR]]
        if TUPLE in tree:
            return tuple(unflatten(v, tensors) for v in tree[TUPLE])
        return {k: unflatten(v, tensors) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [unflatten(v, tensors) for v in tree]
    return tree


def capture_rng() -> dict:
    """Global RNG states (the loop draws from its own seeded generators; these are saved so
    anything else that uses global randomness also resumes where it left off)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, i)
