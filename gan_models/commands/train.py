"""python -m gan_models train --data DIR --recipe dcgan --kimg N --out RUN_DIR [--resume]

Fine-tuning: --init CHECKPOINT starts from a model (GAN Studio .safetensors, NVlabs .pkl,
rosinality .pt); the run takes its architecture and weights, and the recipe follows the
model when --recipe is left out, e.g.
  --init network-snapshot.pkl --option freeze_d=2 --kimg 50

Any recipe option can be set with --option KEY=VALUE (repeatable), e.g.
  --recipe vae --option beta=2 --option kl_warmup_steps=500 --option recon_loss=l1
The common ones also have their own flags (--lr-g, --z-dim, ...). Multi-GPU / multi-node:
torchrun --nproc_per_node N -m gan_models train ... (the global --batch is split across the
processes; only rank 0 writes files).
"""

from __future__ import annotations

import argparse
import signal
import sys

from ..training.decode import FIT_MODES
from ..training.losses import LOSSES

# argparse destinations that are recipe options (None = not given: recipe default).
RECIPE_OPTIONS = ("resolution", "z_dim", "base_channels", "max_channels", "loss", "lr_g", "lr_d",
                  "beta1", "beta2", "gp_weight", "diffaugment", "ema_kimg", "amp")
RUN_OPTIONS = ("data", "recipe", "batch", "batch_gpu", "kimg", "minutes", "cpu_minutes", "seed",
               "xflip", "fit", "background", "snap_every", "log_every", "keep", "init")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..training.recipes import recipe_names

    p.add_argument("--data", help="image folder (class = subfolder name; images directly "
                                  "inside = unconditional); image-to-image recipes: pix2pix "
                                  "A/ and B/ with matching names (or side-by-side images), "
                                  "cyclegan A/ and B/, fast-style content/ + style.png; "
                                  "optional with --resume")
    p.add_argument("--out", required=True,
                   help="run folder (snapshots, samples, metrics, model); one process at a "
                        "time may write it")
    p.add_argument("--recipe", choices=recipe_names(), default=None,
                   help="what to train (default: dcgan, or with --init the model's own); "
                        "stylegan2-ada trains StyleGAN2 with adaptive augmentation; vae, "
                        "beta_vae, cvae and vqvae train autoencoders; pix2pix, cyclegan "
                        "and fast-style train image-to-image models")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from this model (GAN Studio .safetensors, NVlabs "
                        ".pkl, rosinality .pt; read without running code from the file). Its "
                        "architecture (sizes, classes, resolution) replaces the size options; "
                        "without --recipe the recipe follows the model (stylegan2 -> "
                        "stylegan2-ada). run.json records the file and its sha256; with "
                        "--resume it may be left out, and if given must be the same file.")
    p.add_argument("--option", action="append", default=None, metavar="KEY=VALUE",
                   help="a recipe option, repeatable: beta=4, lr=5e-4, kl_schedule=cyclical, "
                        "free_bits=0.5, capacity_max=25, codebook_size=512, ... (values are "
                        "JSON when they parse, else text; an unknown key lists the recipe's "
                        "options). On --resume only learning rates may change.")
    p.add_argument("--resolution", type=int, help="training resolution (default 64)")
    p.add_argument("--batch", type=int, default=None,
                   help="global batch size, split across processes (default 32)")
    p.add_argument("--batch-gpu", type=int, default=None,
                   help="micro-batch per process; smaller values accumulate gradients")
    p.add_argument("--kimg", type=float, default=None,
                   help="train until this many thousand images have been shown (default 100)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop (with a snapshot and the exported model) once the run has "
                        "trained this long, resumes included and snapshot writing excluded; "
                        "whichever of --kimg and --minutes comes first ends the run "
                        "(default 0: no time limit)")
    p.add_argument("--cpu-minutes", type=float, default=None,
                   help="like --minutes, but counting this process's CPU time: runs that share "
                        "a machine get the same amount of work however busy it is (use with "
                        "OMP_NUM_THREADS=1 for an equal-time comparison; default 0: no limit)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest snapshot (starts fresh "
                        "when there is none)")
    p.add_argument("--snap-every", type=int, default=None,
                   help="write a snapshot and a sample grid every K steps (default 1000)")
    p.add_argument("--log-every", type=int, default=None,
                   help="append a line to metrics.jsonl every K steps (default 50)")
    p.add_argument("--keep", type=int, default=None,
                   help="keep only the newest K snapshots (default 0: all)")
    p.add_argument("--seed", type=int, default=None, help="run seed (default 0)")
    p.add_argument("--loss", choices=LOSSES, default=None, help="adversarial loss (default ns)")
    p.add_argument("--lr-g", type=float, default=None,
                   help="generator learning rate (default: the recipe's; dcgan 2e-4, "
                        "stylegan2-ada 0.0025)")
    p.add_argument("--lr-d", type=float, default=None,
                   help="discriminator learning rate (default: the recipe's; dcgan 2e-4, "
                        "stylegan2-ada 0.0025)")
    p.add_argument("--beta1", type=float, default=None,
                   help="Adam beta1 (default: the recipe's; dcgan 0.5, stylegan2-ada 0)")
    p.add_argument("--beta2", type=float, default=None,
                   help="Adam beta2 (default: the recipe's; dcgan 0.999, stylegan2-ada 0.99)")
    p.add_argument("--gp-weight", type=float, default=None, help="WGAN-GP penalty weight (10)")
    p.add_argument("--diffaugment", default=None,
                   help="DiffAugment policy, e.g. 'color,translation,cutout' (default off)")
    p.add_argument("--ema-kimg", type=float, default=None,
                   help="half-life of the generator average in kimg (10)")
    p.add_argument("--z-dim", type=int, default=None, help="latent size (128)")
    p.add_argument("--base-channels", type=int, default=None,
                   help="network width at the top resolution (64)")
    p.add_argument("--max-channels", type=int, default=None, help="widest layer (512)")
    p.add_argument("--amp", choices=("auto", "off", "bf16"), default=None,
                   help="mixed precision (CUDA only; auto = bf16 where supported)")
    p.add_argument("--xflip", action="store_true", default=None,
                   help="also train on mirrored images")
    p.add_argument("--fit", choices=FIT_MODES, default=None,
                   help="non-square images: crop (default), pad or stretch")
    p.add_argument("--background", default=None,
                   help="colour behind transparent pixels and padding (default #ffffff)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from ..errors import GanStudioError
    from ..training.distributed import init_from_env, shutdown
    from ..training.options import parse_options
    from ..training.run import Run, RunSettings

    given = {k: getattr(args, k) for k in RUN_OPTIONS if getattr(args, k) is not None}
    options = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k) is not None}
    extra = parse_options(args.option or [])
    both = sorted(set(options) & set(extra))
    if both:
        raise GanStudioError(f"{both[0]} is given both as --{both[0].replace('_', '-')} and "
                             "as --option: give it once")
    options.update(extra)
    if options:
        given["options"] = options
    if args.data is None and not args.resume:
        raise GanStudioError("--data is required to start a run")
    for key in ("minutes", "cpu_minutes"):
        if given.get(key, 0) < 0:
            raise GanStudioError(f"--{key.replace('_', '-')} must not be negative "
                                 "(0 = no time limit)")
    for key in ("snap_every", "log_every", "batch", "kimg"):
        if key in given and given[key] <= 0:
            raise GanStudioError(f"--{key.replace('_', '-')} must be positive")
    settings = RunSettings(out=args.out, **{"data": "", **given})
    dist, device = init_from_env(args.device)
    stop = _StopFlag()
    try:
        with Run(settings, dist, device) as run_:
            trainer = run_.start(args.resume, set(given))
            return run_.train(trainer, stop)
    finally:
        stop.restore()
        shutdown()


class _StopFlag:
    """First Ctrl+C / SIGTERM: finish the step, snapshot, exit. A second Ctrl+C: stop now."""

    def __init__(self):
        self.requested = False
        self._old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print("stopping after this step (a snapshot is written first)...", file=sys.stderr)

    def __call__(self) -> bool:
        return self.requested

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
