"""Write the demo checkpoint models/gan/gan_studio_demo.safetensors if it is missing.

An untrained, class-conditional DCGAN (64 px, 4 classes) with calibrated BatchNorm: it draws
colourful abstract patterns, enough to run every example workflow end to end without a
download. Deterministic: the same file content on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "models" / "gan" / "gan_studio_demo.safetensors"


def main() -> int:
    if TARGET.exists():
        print(f"{TARGET.relative_to(REPO)} exists")
        return 0
    sys.path.insert(0, str(REPO))  # the library never imports ComfyUI: safe here
    import torch

    import gan_models
    from gan_models.architectures.dcgan import calibrate_batchnorm

    torch.manual_seed(20261129)
    model = gan_models.GenerativeModel.create(
        "dcgan", {"resolution": 64, "z_dim": 64, "num_classes": 4, "base_channels": 32,
                  "embed_dim": 32},
        class_names=["ember", "ocean", "moss", "dusk"])
    torch.nn.init.normal_(model.generator.embed.weight, 0.0, 2.0)  # classes visibly differ
    calibrate_batchnorm(model.generator)
    model.metadata["provenance"] = {"data": "none (untrained demo)", "steps": 0}
    gan_models.save_model(model, TARGET, roles=("generator",))
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
