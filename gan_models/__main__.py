"""Headless command line: python -m gan_models <command> ...

Each command lives in gan_models/commands/<name>.py with `add_arguments(parser)` and
`run(args) -> int`; list it in COMMANDS to make it available.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import GanStudioError

COMMANDS = {
    "convert": "Convert an NVlabs .pkl or rosinality .pt checkpoint to .safetensors.",
    "generate": "Generate images from a checkpoint and a seed range.",
    "train": "Train a GAN on a folder of images (resumable; multi-GPU with torchrun).",
    "evaluate": "Measure a checkpoint against real images: Fréchet distance, KID, class accuracy.",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan_models",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f".commands.{name}", __package__)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
        modules[name] = module
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except GanStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
