"""Small builders shared by the test layers (tiny models, prompts)."""

from __future__ import annotations

from pathlib import Path

import gan_models
from gan_models.architectures.dcgan import calibrate_batchnorm

SHAPE_CLASSES = ["circle", "square", "triangle"]  # class names of the tiny conditional models
TINY_DCGAN = {"resolution": 32, "z_dim": 16, "base_channels": 8, "max_channels": 32,
              "embed_dim": 8}


def tiny_dcgan(num_classes: int = 0, class_names=None, seed: int = 0) -> gan_models.GenerativeModel:
    import torch

    torch.manual_seed(seed)
    model = gan_models.GenerativeModel.create(
        "dcgan", {**TINY_DCGAN, "num_classes": num_classes}, class_names=class_names)
    if num_classes:  # a class should visibly change a random-init model's images
        torch.nn.init.normal_(model.generator.embed.weight, 0.0, 2.0)
    calibrate_batchnorm(model.generator)
    return model


def save_tiny(folder: Path, name: str, **kwargs) -> Path:
    path = Path(folder) / name
    gan_models.save_model(tiny_dcgan(**kwargs), path)
    return path


TINY_SG2 = {"z_dim": 16, "c_dim": 0, "w_dim": 16, "img_resolution": 32, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2}, "channel_base": 256, "channel_max": 32}
TINY_SG3 = {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 32, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2}, "channel_base": 256, "channel_max": 32,
            "num_layers": 4, "num_critical": 2, "margin_size": 2}


def tiny_style_model(family: str = "stylegan2", num_classes: int = 0, seed: int = 0):
    """A random-init StyleGAN2/3 generator small enough for engine tests (32 px)."""
    import torch

    torch.manual_seed(seed)
    base = TINY_SG2 if family == "stylegan2" else TINY_SG3
    config = {"generator": {**base, "c_dim": num_classes}, "discriminator": None}
    model = gan_models.GenerativeModel.create(family, config)
    with torch.no_grad():  # noise strengths start at 0; make noise modes visibly differ
        for name, p in model.generator.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    return model


# Stand-ins for the NVlabs checkpoints the gallery's StyleGAN workflows name: same file names,
# resolution and pickle format (written by tests/fixtures_foreign.py), but tiny random
# networks (a few channels), so CI runs those workflows through the real safe importer
# without downloading anything.
NVLABS_STANDINS = {"stylegan2-ffhq-256x256.pkl": "stylegan2",
                   "stylegan3-t-ffhqu-256x256.pkl": "stylegan3"}
_STANDIN_G = {
    "stylegan2": {"z_dim": 16, "c_dim": 0, "w_dim": 16, "img_resolution": 256,
                  "img_channels": 3, "mapping_kwargs": {"num_layers": 2}, "channel_base": 1024,
                  "channel_max": 16},
    "stylegan3": {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 256, "img_channels": 3,
                  "mapping_kwargs": {"num_layers": 2}, "channel_base": 1024, "channel_max": 8,
                  "num_layers": 4, "num_critical": 2, "margin_size": 2},
}
_STANDIN_D = {"block_kwargs": {"freeze_layers": 0}, "mapping_kwargs": {},
              "epilogue_kwargs": {"mbstd_group_size": 4}, "channel_base": 1024,
              "channel_max": 16, "num_fp16_res": 0, "conv_clamp": 256, "c_dim": 0,
              "img_resolution": 256, "img_channels": 3}


def write_nvlabs_standins(folder: Path) -> None:
    import torch
    from fixtures_foreign import STYLEGAN2_SRC, nvlabs_network_dict, write_nvlabs_pickle

    for name, family in NVLABS_STANDINS.items():
        torch.manual_seed(len(name))
        kwargs = _STANDIN_G[family]
        d_kwargs = _STANDIN_D if family == "stylegan2" else None  # SG2 with D: fine-tunable
        model = gan_models.GenerativeModel.create(
            family, {"generator": kwargs, "discriminator": d_kwargs})
        data = nvlabs_network_dict(model.generator, kwargs, model.networks.get("discriminator"),
                                   d_kwargs, module_src=STYLEGAN2_SRC if family == "stylegan2"
                                   else "class Generator: pass\n")
        write_nvlabs_pickle(Path(folder) / name, data)


def assert_resume_is_bit_exact(make_trainer, dataset, folder: Path, before: int, after: int):
    """Train before + after steps straight, and before steps, a snapshot, a resume as `--resume`
    does it, then after steps: weights, optimisers, EMA and samples must be identical. Returns
    the resumed trainer."""
    import torch

    from gan_models.training import Trainer, read_state, write_snapshot

    straight = make_trainer()
    straight.train_steps(before + after)
    first = make_trainer()
    first.train_steps(before)
    paths = write_snapshot(Path(folder), first)
    del first
    tensors, meta = read_state(paths["state"])
    torch.manual_seed(999)  # training randomness must not depend on the global RNG
    resumed = Trainer.from_state(tensors, meta, dataset, restore_global_rng=True)
    resumed.train_steps(after)
    a, b = straight.state_dict(include_rng=False)[0], resumed.state_dict(include_rng=False)[0]
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]
    assert torch.equal(straight.sample_grid(), resumed.sample_grid())
    return resumed
