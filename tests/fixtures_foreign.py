"""Builders that write foreign checkpoint files for tests, without any foreign code.

NVlabs pickles: each network is pickled, as torch_utils.persistence does it, as a call to
`torch_utils.persistence._reconstruct_persistent_obj(meta)` where meta holds version,
module_src, class_name and the module's `__dict__` state (`_parameters`, `_buffers`,
`_modules` as OrderedDicts, `_init_args`, `_init_kwargs`). Stand-in modules are put in
sys.modules only while pickling, so the file names NVlabs' globals exactly.

rosinality checkpoints: our NVlabs-named StyleGAN2 weights renamed back to rosinality's
names and shapes, written with torch.save.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

STYLEGAN2_SRC = '''"""Network architectures (stand-in source for tests)."""
import torch
class MappingNetwork(torch.nn.Module): pass
class SynthesisBlock(torch.nn.Module): pass
class Generator(torch.nn.Module): pass
'''


class EasyDict(dict):
    """Pickles as dnnlib.util.EasyDict (names set below)."""


EasyDict.__module__ = "dnnlib.util"
EasyDict.__qualname__ = "EasyDict"


def _reconstruct_persistent_obj(meta):  # pragma: no cover - only its name is pickled
    raise RuntimeError("stand-in; never called")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class TFNetwork:
    """Pickles as a TensorFlow-era dnnlib.tflib.network.Network with the given state."""

    def __init__(self, state: dict):
        self._state = state

    def __getstate__(self):
        return self._state


TFNetwork.__module__ = "dnnlib.tflib.network"
TFNetwork.__qualname__ = "Network"


@contextlib.contextmanager
def nvlabs_names():
    """Make `dnnlib.util.EasyDict`, `dnnlib.tflib.network.Network` and
    `torch_utils.persistence._reconstruct_persistent_obj` resolvable while pickling, then
    remove them again."""
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = EasyDict
    tf_network = types.ModuleType("dnnlib.tflib.network")
    tf_network.Network = TFNetwork
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    fakes = {"dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util,
             "dnnlib.tflib": types.ModuleType("dnnlib.tflib"), "dnnlib.tflib.network": tf_network,
             "torch_utils": types.ModuleType("torch_utils"),
             "torch_utils.persistence": persistence}
    saved = {name: sys.modules.get(name) for name in fakes}
    sys.modules.update(fakes)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


class Persistent:
    """Pickles exactly like an NVlabs persistent object with the given meta."""

    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self):
        return _reconstruct_persistent_obj, (self.meta,), None


def persistent_tree(module: nn.Module, class_name: str | None = None,
                    init_kwargs: dict | None = None, module_src: str = STYLEGAN2_SRC,
                    extra_state: dict | None = None) -> Persistent:
    """The persistent-object form of `module` and all its submodules."""
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(
            (n, nn.Parameter(p.detach().clone(), requires_grad=False))
            for n, p in module._parameters.items() if p is not None),
        "_buffers": collections.OrderedDict(
            (n, b.detach().clone()) for n, b in module._buffers.items() if b is not None),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(
            (n, persistent_tree(m, module_src=module_src))
            for n, m in module._modules.items() if m is not None),
        "_init_args": (),
        "_init_kwargs": _easy(init_kwargs or {}),
    }
    for key, value in vars(module).items():  # plain attributes NVlabs modules carry
        if not key.startswith("_") and isinstance(value, (bool, int, float, str, np.ndarray,
                                                          np.generic)):
            state[key] = value
    state.update(extra_state or {})
    meta = dict(type="class", version=6, module_src=module_src,
                class_name=class_name or type(module).__name__, state=state)
    return Persistent(meta)


def _easy(value):
    """Nested dicts as EasyDicts, as NVlabs' train.py builds its kwargs."""
    if isinstance(value, dict):
        return EasyDict({k: _easy(v) for k, v in value.items()})
    return value


# NVlabs train.py-style kwargs of a tiny 16 px StyleGAN2 (channels 16 -> 8), G and D.
TINY_G_KW = {"z_dim": 8, "w_dim": 8, "mapping_kwargs": {"num_layers": 2}, "channel_base": 128,
             "channel_max": 16, "num_fp16_res": 0, "conv_clamp": 256, "c_dim": 0,
             "img_resolution": 16, "img_channels": 3}
TINY_D_KW = {"block_kwargs": {"freeze_layers": 0}, "mapping_kwargs": {},
             "epilogue_kwargs": {"mbstd_group_size": 4}, "channel_base": 128, "channel_max": 16,
             "num_fp16_res": 0, "conv_clamp": 256, "c_dim": 0, "img_resolution": 16,
             "img_channels": 3}


def nvlabs_network_dict(generator: nn.Module, generator_kwargs: dict,
                        discriminator: nn.Module | None = None,
                        discriminator_kwargs: dict | None = None,
                        training_generator: nn.Module | None = None,
                        module_src: str = STYLEGAN2_SRC) -> dict:
    """{G, D, G_ema, augment_pipe, training_set_kwargs} as a network pickle holds them."""
    g_ema = persistent_tree(generator, "Generator", generator_kwargs, module_src)
    g = persistent_tree(training_generator or generator, "Generator", generator_kwargs,
                        module_src)
    d = None
    if discriminator is not None:
        d = persistent_tree(discriminator, "Discriminator", discriminator_kwargs, module_src)
    pipe = nn.Module()
    pipe.register_buffer("p", torch.tensor(0.25))
    pipe.register_buffer("Hz_geom", torch.ones(12))
    return {
        "G": g, "D": d, "G_ema": g_ema,
        "augment_pipe": persistent_tree(pipe, "AugmentPipe", {"xflip": 1, "rotate90": 1},
                                        module_src),
        "training_set_kwargs": EasyDict(
            class_name="training.dataset.ImageFolderDataset", path="datasets/shapes.zip",
            use_labels=bool(getattr(generator, "c_dim", 0)), max_size=np.int64(1000),
            xflip=False, resolution=np.int64(generator.img_resolution),
            mean=np.array([0.5, 0.5, 0.5], dtype=np.float32)),
    }


def write_nvlabs_pickle(path: Path, data) -> Path:
    """Pickle `data` with protocol 4, as NVlabs' training loop does."""
    with nvlabs_names():
        payload = pickle.dumps(data, protocol=4)
    Path(path).write_bytes(payload)
    return Path(path)


def tf_stylegan2_networks(generator: nn.Module, static_kwargs: dict) -> tuple:
    """(G, D, Gs) as a TensorFlow StyleGAN2 pickle holds them, from our generator's weights
    (TF layouts: conv [kh, kw, in, out], up-convs mirrored, dense [in, out], mod_bias - 1)."""
    sd = {k: v.detach().numpy().copy() for k, v in generator.state_dict().items()}
    top = {"lod": np.float32(0), "dlatent_avg": sd["mapping.w_avg"]}
    mapping, synthesis = {}, {"4x4/Const/const": sd["synthesis.b4.const"][None]}
    for i in range(generator.mapping.num_layers):
        mapping[f"Dense{i}/weight"] = sd[f"mapping.fc{i}.weight"].T.copy()
        mapping[f"Dense{i}/bias"] = sd[f"mapping.fc{i}.bias"]
    if generator.c_dim:
        mapping["LabelEmbed/weight"] = sd["mapping.embed.weight"].T.copy()
        mapping["LabelEmbed/bias"] = sd["mapping.embed.bias"]

    def modulated(scope: str, src: str, flip: bool = False, noise: int | None = None) -> None:
        w = sd[f"{src}.weight"].transpose(2, 3, 1, 0)
        synthesis[f"{scope}/weight"] = (w[::-1, ::-1] if flip else w).copy()
        synthesis[f"{scope}/bias"] = sd[f"{src}.bias"]
        synthesis[f"{scope}/mod_weight"] = sd[f"{src}.affine.weight"].T.copy()
        synthesis[f"{scope}/mod_bias"] = sd[f"{src}.affine.bias"] - 1
        if noise is not None:
            synthesis[f"{scope}/noise_strength"] = sd[f"{src}.noise_strength"]
            synthesis[f"noise{noise}"] = sd[f"{src}.noise_const"][None, None]

    modulated("4x4/Conv", "synthesis.b4.conv1", noise=0)
    modulated("4x4/ToRGB", "synthesis.b4.torgb")
    for res in generator.synthesis.block_resolutions[1:]:
        level = 2 * int(np.log2(res))
        modulated(f"{res}x{res}/Conv0_up", f"synthesis.b{res}.conv0", flip=True, noise=level - 5)
        modulated(f"{res}x{res}/Conv1", f"synthesis.b{res}.conv1", noise=level - 4)
        modulated(f"{res}x{res}/ToRGB", f"synthesis.b{res}.torgb")

    def net(name, func, kwargs, variables, components=None):
        return TFNetwork({"version": 4, "name": name, "static_kwargs": dict(kwargs),
                          "components": components or {}, "build_func_name": func,
                          "build_module_src": "import os\nos.system('never run')\n",
                          "variables": list(variables.items())})

    def generator_net(name):
        return net(name, "G_main", static_kwargs, top, {
            "mapping": net("G_mapping", "G_mapping", static_kwargs, mapping),
            "synthesis": net("G_synthesis", "G_synthesis_stylegan2", static_kwargs, synthesis)})

    return generator_net("G"), net("D", "D_stylegan2", {}, {}), generator_net("Gs")


# --- hostile files ----------------------------------------------------------------------
def call_pickle(module: str, name: str, *args) -> bytes:
    """A pickle that would call module.name(*args) when loaded by a plain unpickler."""
    body = pickle.dumps(args, protocol=2)[2:-1]  # the args tuple without PROTO/STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + body + b"R."


class Call:
    """Pickles as a call of `func(*args)` (for hostile objects nested in real structures)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def legacy_torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


# --- rosinality ---------------------------------------------------------------------------
def rosinality_kernel(k=(1, 3, 3, 1), factor: int = 2) -> torch.Tensor:
    """rosinality's 2-D blur buffer for an upsampling layer (outer product, sum = factor**2)."""
    k = torch.tensor(k, dtype=torch.float32)
    k2 = k[None, :] * k[:, None]
    return k2 / k2.sum() * factor ** 2


def rosinality_state(generator: nn.Module) -> dict[str, torch.Tensor]:
    """Our StyleGAN2 generator's weights under rosinality's names, shapes and order."""
    sd = {k: v.detach().clone() for k, v in generator.state_dict().items()}
    syn = generator.synthesis
    out: dict[str, torch.Tensor] = {}
    n_mlp = generator.mapping.num_layers
    for i in range(n_mlp):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]

    def styled(dst: str, src: str, up: bool) -> None:
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        if up:
            out[f"{dst}.conv.blur.kernel"] = rosinality_kernel()
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]

    def torgb(dst: str, src: str, up: bool) -> None:
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)
        if up:
            out[f"{dst}.upsample.kernel"] = rosinality_kernel()
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]

    styled("conv1", "synthesis.b4.conv1", False)
    torgb("to_rgb1", "synthesis.b4.torgb", False)
    resolutions = syn.block_resolutions[1:]
    for k, res in enumerate(resolutions):
        styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0", True)
        styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", False)
    for k, res in enumerate(resolutions):
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb", True)
    noises = [sd["synthesis.b4.conv1.noise_const"]]
    for res in resolutions:
        noises += [sd[f"synthesis.b{res}.conv0.noise_const"],
                   sd[f"synthesis.b{res}.conv1.noise_const"]]
    for j, noise in enumerate(noises):
        out[f"noises.noise_{j}"] = noise[None, None]
    return out


def write_rosinality_checkpoint(path: Path, generator: nn.Module, *, latent_avg: bool = True,
                                with_args: bool = True, with_g: bool = True,
                                legacy: bool = False, extra: dict | None = None) -> Path:
    """torch.save a checkpoint laid out like rosinality's train.py / convert_weight.py."""
    g_ema = rosinality_state(generator)
    ckpt: dict = {"g_ema": g_ema}
    if with_g:  # the training generator (train.py also stores it)
        ckpt["g"] = {k: v.clone() for k, v in g_ema.items()}
    if latent_avg:
        ckpt["latent_avg"] = generator.mapping.w_avg.detach().clone()
    if with_args:
        size = generator.img_resolution
        ckpt["args"] = argparse.Namespace(
            size=size, latent=generator.w_dim, n_mlp=generator.mapping.num_layers,
            channel_multiplier=2, iter=800000, batch=16, r1=10.0, path="lmdb/ffhq",
            augment=False, ada_target=0.6)
        ckpt["ada_aug_p"] = 0.0
    ckpt.update(extra or {})
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return Path(path)
