"""Export a training run's latest snapshot as a shippable model file, with provenance.

    .venv/bin/python scripts/export_model.py RUN_DIR models/gan/NAME.safetensors \\
        [--data-note "Twemoji 64x64 (CC-BY-4.0 ...)"] [--command "..."]

Keeps the networks a user needs (generator, plus the encoder of a VAE; the discriminator is
dropped to keep the file small) and records the run's recipe, options, steps, images shown,
training wall time, the checkpoint a fine-tuning run started from and the data note in the
model's metadata.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--data-note", default="")
    p.add_argument("--command", default="")
    p.add_argument("--half", action="store_true", help="store weights as float16 (half size)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))  # the library never imports ComfyUI: safe here
    import gan_models
    from gan_models.errors import GanStudioError
    from gan_models.training.run_folder import RunFolder, snapshot_step

    run = RunFolder(args.run)
    try:
        snapshot = run.latest_snapshot()
        if snapshot is None:
            raise SystemExit(f"no snapshot in {run.snapshots}")
        settings = run.read_settings()
        if not settings:
            raise SystemExit(f"no {run.settings_file.name} in {run.root}")
        metrics = run.read_metrics(log=lambda msg: print(f"note: {msg}", file=sys.stderr))
    except GanStudioError as exc:
        raise SystemExit(f"error: {exc}") from None
    model_file = Path(snapshot["model"])
    model = gan_models.load_model(model_file)
    step = snapshot_step(model_file)
    metrics = [m for m in metrics if m.get("step", 0) <= step]
    last = metrics[-1] if metrics else {}
    model.metadata["provenance"] = {
        "data": args.data_note or settings.get("data"),
        "recipe": settings["recipe"], "options": settings["options"],
        "batch": settings["batch"], "seed": settings["seed"],
        "steps": step, "kimg": round(step * settings["batch"] / 1000, 2),
        "train_wall_s": last.get("elapsed_s"), "command": args.command,
        # a fine-tuned model names the checkpoint it started from
        "init": settings.get("init"), "init_sha256": settings.get("init_sha256"),
        "last_metrics": {k: v for k, v in last.items() if k not in ("time",)},
    }
    roles = tuple(r for r in model.networks if r != "discriminator")
    gan_models.save_model(model, args.target, roles=roles, half=args.half)
    size = args.target.stat().st_size
    print(json.dumps({"model": str(args.target), "from": str(model_file), "roles": roles,
                      "bytes": size, "steps": step}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
