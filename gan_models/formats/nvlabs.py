"""NVlabs network pickles (StyleGAN2-ADA-pytorch, StyleGAN3) -> GenerativeModel.

The pickle is a dict {G, D, G_ema, augment_pipe, training_set_kwargs}; each network is a
persistent object read as an inert record (safe_pickle). We take G_ema (else G) and D,
recognise the family from the generator's tensor names, rebuild it from the pickled
constructor kwargs through the registry and load the weights strictly.

TensorFlow-era pickles ((G, D, Gs) tuples of dnnlib.tflib Networks) are handled at the end
of this file: StyleGAN2 generators convert, everything else is refused by name.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import registry
from ..errors import CheckpointError
from ..model import GenerativeModel
from . import budgets, detect
from .importers import Importer, Probe, register_importer
from .native import file_sha256
from .rosinality import is_legacy_torch_save
from .safe_pickle import ModuleRecord, PersistentRecord, TFNetworkRecord, safe_load

FORMAT = "nvlabs-pkl"


def load_nvlabs_pickle(path: str | Path) -> GenerativeModel:
    path = Path(path)
    data = safe_load(path)
    file_bytes = path.stat().st_size
    if _is_tf_era(data):
        return load_tf_pickle(data, path, file_bytes)
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path.name} is a pickle of {type(data).__name__}, not an NVlabs network pickle "
            "(a dict with G, D, G_ema); it is not supported")
    role = "G_ema" if isinstance(data.get("G_ema"), ModuleRecord) else "G"
    gen = data.get(role)
    if not isinstance(gen, ModuleRecord):
        raise CheckpointError(
            f"{path.name} is a pickle without a G_ema or G network (keys: "
            f"{budgets.name_list(data) or 'none'}); it is not an NVlabs network pickle")
    family, nv_class = identify_generator(gen, path.name)
    gen_kwargs = generator_kwargs(gen, f"{path.name} ({role})")
    notes: list[str] = []
    disc, disc_kwargs = data.get("D"), None
    if isinstance(disc, PersistentRecord) and disc.class_name == "Discriminator":
        disc_kwargs = budgets.plain_data(disc.init_kwargs, path.name, "D's _init_kwargs")
    elif disc is not None:
        notes.append("discriminator not imported: not an NVlabs StyleGAN2 Discriminator")

    networks, dropped = _build(family, gen_kwargs, disc_kwargs, path.name, file_bytes)
    if dropped:
        notes.append(dropped)
        disc_kwargs = None
    _load_weights(networks["generator"], gen.state_dict(f"{path.name} ({role})"),
                  f"{path.name} ({role})")
    if "discriminator" in networks:
        try:
            _load_weights(networks["discriminator"], disc.state_dict(f"{path.name} (D)"),
                          f"{path.name} (D)")
        except CheckpointError as exc:
            notes.append(f"discriminator not imported: {exc}")
            networks.pop("discriminator")
            disc_kwargs = None

    sha = file_sha256(path)
    metadata = {
        "source": {"file": path.name, "sha256": sha, "format": FORMAT, "network": nv_class,
                   "role": role},
        "provenance": {"training_set_kwargs": budgets.plain_data(
            data.get("training_set_kwargs"), path.name, "training_set_kwargs"),
                       "resolution": gen_kwargs.get("img_resolution")},
    }
    if notes:
        metadata["notes"] = "; ".join(notes)
    config = {"generator": gen_kwargs, "discriminator": disc_kwargs}
    return GenerativeModel(family, config, networks, metadata=metadata, model_id=sha[:16])


def identify_generator(gen: ModuleRecord, name: str) -> tuple[str, str]:
    """(registry family, NVlabs class path) from the record, or a clear refusal."""
    keys = {k for k, _ in gen.named_tensors(name)}
    is_generator = gen.class_name == "Generator" and isinstance(gen, PersistentRecord)
    if is_generator and "synthesis.b4.const" in keys and "mapping.fc0.weight" in keys:
        ada = "synthesis_kwargs" in gen.init_kwargs  # StyleGAN2-ADA's training.networks
        module = "training.networks" if ada else "training.networks_stylegan2"
        return "stylegan2", f"{module}.Generator"
    if is_generator and "synthesis.input.freqs" in keys and "mapping.fc0.weight" in keys:
        return "stylegan3", "training.networks_stylegan3.Generator"
    raise CheckpointError(
        f"{name} holds a generator of class {budgets.short(gen.class_name, 80)!r} that is not "
        "an NVlabs "
        f"StyleGAN2, StyleGAN2-ADA or StyleGAN3 generator ({_guess(gen)}); it is not "
        "supported")


def _guess(gen: ModuleRecord) -> str:
    src = getattr(gen, "module_src", "").lower()
    if "fastgan" in src or "projected" in src:
        return "it appears to be a Projected GAN network"
    if "superres" in src or "stylegan-xl" in src or "stylegan_xl" in src:
        return "it appears to be a StyleGAN-XL network"
    return "its tensors do not follow the StyleGAN2/StyleGAN3 layout"


def generator_kwargs(gen: PersistentRecord, source: str = "the generator") -> dict:
    """NVlabs Generator kwargs in the flat form our builders take (converted within
    budgets.MAX_PLAIN_ITEMS: never walked or repr'ed without a bound)."""
    if gen.init_args:
        raise CheckpointError("the generator was built with positional arguments; "
                              "only keyword-constructed NVlabs networks are supported")
    kwargs = budgets.plain_data(gen.init_kwargs, source, "_init_kwargs")
    # StyleGAN2-ADA passes synthesis options as one dict; StyleGAN3's code passes them flat.
    nested = kwargs.pop("synthesis_kwargs", None) or {}
    if not isinstance(nested, dict):
        raise CheckpointError(f"{source}: its synthesis_kwargs are not keyword settings")
    kwargs.update(nested)
    for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if key not in kwargs:
            raise CheckpointError(f"the generator's constructor arguments lack {key!r}")
    return kwargs


def _build(family: str, gen_kwargs: dict, disc_kwargs: dict | None, name: str,
           file_bytes: int | None = None):
    """Build the networks; a discriminator that will not build is dropped with a note."""
    config = {"generator": gen_kwargs, "discriminator": disc_kwargs}
    try:
        return registry.build(family, config, source=name, file_bytes=file_bytes), None
    except CheckpointError as exc:
        if disc_kwargs is None:
            raise
        first_error = exc
    networks = registry.build(family, {"generator": gen_kwargs, "discriminator": None},
                              source=name, file_bytes=file_bytes)
    reason = first_error.__cause__ or first_error  # the constructor's own complaint
    return networks, f"discriminator not imported: its settings do not build ({reason})"


def _load_weights(net: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    state = {k: v.detach() for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines()[:3]]
        raise CheckpointError(f"{what}: weights do not fit the rebuilt network: "
                              f"{' '.join(lines)}") from exc


# --- TensorFlow-era pickles: (G, D, Gs) tuples of dnnlib.tflib Networks --------------------
# Each network's state is {version, name, static_kwargs, components, build_module_src,
# build_func_name, variables: [(name, ndarray)]}; the build source is never run. StyleGAN2
# (and StyleGAN2-ADA TF) generators, build function G_main, convert to our StyleGAN2.
TF_IGNORED_KWARGS = ("truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure",
                     "conditioning", "fused_modconv", "randomize_noise", "is_template_graph")


def _is_tf_era(data: Any) -> bool:
    if isinstance(data, TFNetworkRecord):
        return True
    return isinstance(data, tuple) and any(isinstance(x, TFNetworkRecord) for x in data)


def load_tf_pickle(data: Any, path: Path, file_bytes: int | None = None) -> GenerativeModel:
    nets = data if isinstance(data, tuple) else (data,)
    gs = nets[-1]  # (G, D, Gs): Gs is the moving average used for sampling
    if not isinstance(gs, TFNetworkRecord) or not isinstance(gs.state.get("static_kwargs"), dict):
        raise CheckpointError(f"{path.name}: malformed TensorFlow-era network pickle")
    func = gs.state.get("build_func_name")
    func = budgets.short(func, 60) if isinstance(func, str) else "?"
    if func != "G_main":
        what = "a StyleGAN (v1) generator" if func == "G_style" else f"a {func!r} network"
        raise CheckpointError(
            f"{path.name} is a TensorFlow-era pickle of {what}; only TensorFlow StyleGAN2 "
            "generators (G_main) can be imported, so this file is not supported")
    static = budgets.plain_data(gs.state["static_kwargs"], path.name, "static_kwargs")
    kwargs = tf_generator_kwargs(static, path.name)
    params = _collect_tf_params(gs, path.name)
    lods = [k for k in params if re.fullmatch(r"ToRGB_lod\d{1,2}/.*", k)]
    if lods:
        kwargs["architecture"] = "orig"
        res = kwargs["img_resolution"]
        for k in lods:
            lod, rest = k[len("ToRGB_lod"):].split("/", 1)
            r = res // 2 ** int(lod)
            params[f"synthesis/{r}x{r}/ToRGB/{rest}"] = params[k]
    config = {"generator": kwargs, "discriminator": None}
    gen = registry.build("stylegan2", config, source=path.name,
                         file_bytes=file_bytes)["generator"]
    state = {}
    for key, current in gen.state_dict().items():
        state[key] = _tf_value(key, params, current, path.name)
    _load_weights(gen, state, path.name)
    sha = file_sha256(path)
    metadata = {
        "source": {"file": path.name, "sha256": sha, "format": FORMAT,
                   "network": "TensorFlow StyleGAN2 G_main", "role": "Gs"},
        "provenance": {"resolution": kwargs["img_resolution"]},
        "notes": "TensorFlow-era pickle: generator only (discriminators are not converted)",
    }
    return GenerativeModel("stylegan2", config, {"generator": gen}, metadata=metadata,
                           model_id=sha[:16])


def tf_generator_kwargs(tf: dict, name: str) -> dict:
    """Our (NVlabs PyTorch) Generator kwargs from a TF G_main's static kwargs."""

    def take(key, default, none=None):
        value = tf.pop(key, default)
        return none if value is None else value

    try:
        kwargs = _tf_kwargs(take)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: malformed TensorFlow generator options ({exc})") \
            from None
    for key in TF_IGNORED_KWARGS:
        tf.pop(key, None)
    if tf:
        raise CheckpointError(f"{name}: TensorFlow generator options this importer does not "
                              f"know: {budgets.name_list(tf)}; not supported")
    return kwargs


def _tf_kwargs(take) -> dict:
    return {
        "z_dim": take("latent_size", 512), "c_dim": take("label_size", 0),
        "w_dim": take("dlatent_size", 512), "img_resolution": take("resolution", 1024),
        "img_channels": take("num_channels", 3),
        # TF counts channels as fmap_base / 2**(log2(res) - 1), PyTorch as base / res
        "channel_base": take("fmap_base", 16384) * 2, "channel_max": take("fmap_max", 512),
        "num_fp16_res": take("num_fp16_res", 0), "conv_clamp": take("conv_clamp", None),
        "architecture": take("architecture", "skip"),
        "resample_filter": list(take("resample_kernel", [1, 3, 3, 1])),
        "use_noise": take("use_noise", True), "activation": take("nonlinearity", "lrelu"),
        "mapping_kwargs": {
            "num_layers": take("mapping_layers", 8), "embed_features": take("label_fmaps", None),
            "layer_features": take("mapping_fmaps", None),
            "activation": take("mapping_nonlinearity", "lrelu"),
            "lr_multiplier": take("mapping_lrmul", 0.01),
            "w_avg_beta": take("w_avg_beta", 0.995, none=1),
        },
    }


def _collect_tf_params(net: TFNetworkRecord, source: str) -> dict[str, np.ndarray]:
    """{scope/variable: numeric array} of a TF network and its components, walked within
    budgets.MAX_MODULE_ITEMS / MAX_MODULE_DEPTH (shared components counted each time)."""
    params: dict[str, np.ndarray] = {}
    left = budgets.MAX_MODULE_ITEMS
    todo = [(net, "", 0)]
    while todo:
        record, prefix, depth = todo.pop()
        if depth > budgets.MAX_MODULE_DEPTH:
            raise budgets.refuse(source, "the nesting of its TensorFlow components", depth,
                                 budgets.MAX_MODULE_DEPTH)
        variables = record.state.get("variables")
        components = record.state.get("components")
        items = [*(variables if isinstance(variables, (list, tuple)) else []),
                 *(components.items() if isinstance(components, dict) else [])]
        left -= len(items)
        if left < 0:
            raise CheckpointError(
                f"{source}: its TensorFlow networks hold more than {budgets.MAX_MODULE_ITEMS} "
                "variables and components (shared components counted each time), over the "
                f"limit of {budgets.MAX_MODULE_ITEMS}")
        for item in variables if isinstance(variables, (list, tuple)) else []:
            if (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], (np.ndarray, np.generic))
                    and item[1].dtype.kind in "biuf"):
                params[prefix + item[0]] = np.asarray(item[1])
        for comp_name, comp in (components.items() if isinstance(components, dict) else []):
            if isinstance(comp_name, str) and isinstance(comp, TFNetworkRecord):
                todo.append((comp, f"{prefix}{comp_name}/", depth + 1))
    return params


def _tf_source(key: str) -> tuple[str, str] | None:
    """(TF variable, conversion) for one of our StyleGAN2 generator tensors."""
    m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb|skip)\.(\w+)(?:\.(\w+))?", key)
    if m:
        res, layer, field, sub = m.groups()
        r = int(res)
        scope = {"conv0": f"{r}x{r}/Conv0_up", "conv1": f"{r}x{r}/Conv1",
                 "torgb": f"{r}x{r}/ToRGB", "skip": f"{r}x{r}/Skip"}[layer]
        if r == 4 and layer == "conv1":
            scope = "4x4/Conv"
        flip = layer in ("conv0", "skip")  # TF stores up-convs mirrored
        if field == "affine":
            return f"synthesis/{scope}/mod_{sub}", "mod_" + sub
        if field == "weight":
            return f"synthesis/{scope}/weight", "conv_flip" if flip else "conv"
        if field == "noise_const":
            level = 2 * int(math.log2(r)) - (4 if layer == "conv1" else 5)
            return f"synthesis/noise{level}", "noise"
        if field in ("bias", "noise_strength"):
            return f"synthesis/{scope}/{field}", "copy"
    if key == "synthesis.b4.const":
        return "synthesis/4x4/Const/const", "first"
    if key == "mapping.w_avg":
        return "dlatent_avg", "copy"
    m = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", key)
    if m:
        scope = "mapping/LabelEmbed" if m.group(1) == "embed" else f"mapping/Dense{m.group(2)}"
        return f"{scope}/{m.group(3)}", "dense" if m.group(3) == "weight" else "copy"
    return None


def _tf_value(key: str, params: dict, current: torch.Tensor, name: str) -> torch.Tensor:
    if key.endswith("resample_filter"):
        return current  # fixed filters, rebuilt from the kwargs
    source = _tf_source(key)
    if source is None or source[0] not in params:
        missing = source[0] if source else key
        raise CheckpointError(f"{name}: TensorFlow variable for {key} ({missing}) not found")
    tf_name, how = source
    v = np.asarray(params[tf_name], dtype=np.float32)
    if how == "conv":          # [kh, kw, in, out] -> [out, in, kh, kw]
        v = v.transpose(3, 2, 0, 1)
    elif how == "conv_flip":
        v = v[::-1, ::-1].transpose(3, 2, 0, 1)
    elif how in ("dense", "mod_weight"):  # [in, out] -> [out, in]
        v = v.transpose()
    elif how == "mod_bias":    # TF adds the 1 at run time; NVlabs stores it
        v = v + 1
    elif how == "noise":       # [1, 1, r, r] -> [r, r]
        v = v[0, 0]
    elif how == "first":       # [1, C, 4, 4] -> [C, 4, 4]
        v = v[0]
    t = torch.from_numpy(np.ascontiguousarray(v))
    return t.reshape(current.shape) if t.numel() == 1 == current.numel() else t


# --- registration -----------------------------------------------------------------------
def _is_network_pickle(probe: Probe) -> bool:
    # torch.save's pre-1.6 stream is a pickle too; the rosinality importer claims it.
    return probe.container == detect.PICKLE and not is_legacy_torch_save(probe.path)


register_importer(Importer(
    name=FORMAT, description="NVlabs StyleGAN2-ADA / StyleGAN3 .pkl (also TF-era StyleGAN2)",
    recognise=_is_network_pickle, read=load_nvlabs_pickle))
