"""pytorch-pretrained-BigGAN weights: `pytorch_model.bin` (a plain state dict) + `config.json`.

The release ships the pair per model (biggan-deep-128/256/512). Point Load GAN Model or the
CLI at the `.bin` (or `.pth`/`.pt`) with its config beside it, named either
    config.json                              (the folder layout of the release), or
    <name>.json, or <name with pytorch_model -> config>.json
                                             (biggan-deep-128-pytorch_model.bin +
                                              biggan-deep-128-config.json, the download names).
Parameter names are ours as they are (architectures/biggan.py), so nothing is renamed: the
file is recognised by its tensor names (`embeddings.weight`, `generator.gen_z.weight_orig`)
without unpickling, read with `weights_only=True`, and loaded strictly. Models with 1,000
classes get the ImageNet class names shipped in gan_models/data/imagenet_classes.txt, so
Class Condition takes "golden retriever:0.6, volcano:0.4". Convert once to a native
.safetensors with `python -m gan_models convert` or Save GAN Model.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from .. import registry
from ..errors import CheckpointError
from ..model import GenerativeModel
from . import budgets, detect
from .importers import Importer, Probe, register_importer
from .native import file_sha256
from .torch_state import load_strict, read_state, state_keys

FORMAT = "biggan-pretrained"
MARKERS = {"embeddings.weight", "generator.gen_z.weight_orig"}
CONFIG_KEYS = ("output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes",
               "layers", "attention_layer_position", "eps", "n_stats")
MAX_CONFIG_BYTES = 64 * 1024  # the release's config.json is under 1 KB
IMAGENET_CLASSES = Path(__file__).resolve().parent.parent / "data" / "imagenet_classes.txt"


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet class names in class-index order."""
    names = IMAGENET_CLASSES.read_text(encoding="utf-8").splitlines()
    if len(names) != 1000:
        raise CheckpointError(f"{IMAGENET_CLASSES.name} holds {len(names)} names, not 1,000")
    return tuple(names)


def config_path(weights: Path) -> Path:
    """The config.json that belongs to a weights file, or a CheckpointError saying where it
    was looked for."""
    candidates = [weights.with_suffix(".json")]
    if "pytorch_model" in weights.stem:
        candidates.append(weights.with_name(
            weights.stem.replace("pytorch_model", "config") + ".json"))
    candidates.append(weights.with_name("config.json"))
    for path in candidates:
        if path.is_file():
            return path
    names = ", ".join(dict.fromkeys(p.name for p in candidates))
    raise CheckpointError(
        f"{weights.name} holds BigGAN weights, but its config.json is missing: put the "
        f"release's config file beside it as one of {names}")


def read_config(path: Path, source: str) -> dict:
    """The architecture config from the release's config.json, checked for every key and
    within the loader budgets."""
    size = path.stat().st_size
    budgets.check_max(source, f"the size of {path.name}", size, MAX_CONFIG_BYTES, " bytes")
    raw = budgets.load_json(path.read_bytes(), source, path.name, MAX_CONFIG_BYTES)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: {path.name} is not a JSON object of settings")
    missing = [k for k in CONFIG_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{source}: {path.name} lacks {', '.join(missing)} (a BigGAN "
                              f"config has {', '.join(CONFIG_KEYS)})")
    config = {k: raw[k] for k in CONFIG_KEYS}
    budgets.check_config(config, source, path.name)
    # JSON has no tuples: layers arrive as lists of [up_sample, in, out]
    if isinstance(config["layers"], list):
        config["layers"] = [list(e) if isinstance(e, (list, tuple)) else e
                            for e in config["layers"]]
    return config


def load_biggan(path: str | Path) -> GenerativeModel:
    path = Path(path)
    source = path.name
    config = read_config(config_path(path), source)
    net = registry.build("biggan", config, source=source,
                         file_bytes=path.stat().st_size)["generator"]
    load_strict(net, read_state(path), source)
    names = list(imagenet_class_names()) if config["num_classes"] == 1000 else None
    model = GenerativeModel("biggan", config, {"generator": net}, class_names=names,
                            metadata={"source": {"format": FORMAT, "file": path.name,
                                                 "sha256": file_sha256(path)}})
    model.name = path.stem
    return model


def _recognise(probe: Probe) -> bool:
    if probe.container not in (detect.TORCH_ZIP, detect.PICKLE):
        return False
    return MARKERS <= state_keys(probe.path)


register_importer(Importer(
    name=FORMAT, description="pytorch-pretrained-BigGAN pytorch_model.bin + config.json",
    recognise=_recognise, read=load_biggan, priority=10))
