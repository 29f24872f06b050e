"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data").

Every image the discriminator sees, real or fake, passes through the same differentiable
pipeline; each operation fires per image with probability p. With p < ~0.8 the
augmentations do not leak into the generated images, and D cannot memorise a small dataset.
The controller raises p while D is overconfident on reals (r_t = E[sign(D(real))] above the
target) and lowers it otherwise.

Geometric ops are folded into one inverse affine matrix per image and executed by a single
bilinear `grid_sample` with reflection padding; colour ops are folded into one 4x4 colour
matrix. Random parameters come from a BatchRandom (one row per image), so a batch split
across micro-batches or ranks is augmented exactly as in one piece, and a resumed run draws
the same numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .seeding import BatchRandom

BLIT = ("xflip", "rotate90", "xint")                  # pixel-exact moves
GEOMETRIC = ("scale", "rotate", "aniso", "xfrac")     # general affine warps
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
OPS = BLIT + GEOMETRIC + COLOR
GROUPS = {"b": BLIT, "g": GEOMETRIC, "c": COLOR}

# Strengths of the paper's 'bgc' pipeline.
XINT_MAX = 0.125        # integer translation, fraction of the image size
SCALE_STD = 0.2         # log2 std of isotropic scaling
ROTATE_MAX = 1.0        # arbitrary rotation range, 1 = full circle
ANISO_STD = 0.2         # log2 std of anisotropic scaling
XFRAC_STD = 0.125       # fractional translation, std relative to the image size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5      # log2
HUE_MAX = 1.0           # 1 = full circle
SATURATION_STD = 1.0    # log2

# Columns of the per-image random draws (all drawn every call, so enabling one op never
# changes the numbers another op sees).
_U = {name: i for i, name in enumerate((
    "xflip_p", "xflip", "rotate90_p", "rotate90", "xint_p", "xint_x", "xint_y", "scale_p",
    "rot_pre_p", "rot_pre", "aniso_p", "rot_post_p", "rot_post", "xfrac_p",
    "brightness_p", "contrast_p", "lumaflip_p", "lumaflip", "hue_p", "hue", "saturation_p"))}
_N = {name: i for i, name in enumerate((
    "scale", "aniso", "xfrac_x", "xfrac_y", "brightness", "contrast", "saturation"))}


def parse_ops(text: str) -> tuple[str, ...]:
    """'bgc' (groups: b = blit, g = geometric, c = colour) or a comma list of op names."""
    text = str(text).strip().lower()
    if text and set(text) <= set(GROUPS):
        return tuple(op for key in "bgc" if key in text for op in GROUPS[key])
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [n for n in names if n not in OPS]
    if unknown or not names:
        raise ValueError(f"ADA operations {text!r}: expected letters of 'bgc' (b: x-flip, "
                         "90° rotation, integer translation; g: scaling, rotation, "
                         "anisotropy, fractional translation; c: colour) or names from "
                         f"{', '.join(OPS)}")
    return tuple(op for op in OPS if op in names)


def augment(x: torch.Tensor, p: float, rand: BatchRandom,
            ops: tuple[str, ...] = OPS) -> torch.Tensor:
    """x: `[n, 3, H, W]` -> augmented images of the same shape, differentiable in x.

    p = 0 returns x itself and draws nothing.
    """
    if p <= 0 or not ops:
        return x
    u = rand.uniform(len(_U)).float()   # [n, 21]
    g = rand.normal(len(_N)).float()    # [n, 7]
    enabled = set(ops)

    def gate(name: str, value: torch.Tensor, identity: float) -> torch.Tensor:
        """value where op `name` fires for the image (probability p), else the identity."""
        if name not in enabled:
            return torch.full_like(value, identity)
        return torch.where(u[:, _U[f"{name}_p"]] < p, value, torch.full_like(value, identity))

    x = _geometric(x, u, g, gate, p if "rotate" in enabled else 0.0)
    return _color(x, u, g, gate)


# --- geometry ------------------------------------------------------------------------------
def _geometric(x, u, g, gate, p_rotate: float) -> torch.Tensor:
    n, _c, h, w = x.shape
    dev = u.device
    flip = gate("xflip", torch.floor(u[:, _U["xflip"]] * 2), 0.0)
    quarter = gate("rotate90", torch.floor(u[:, _U["rotate90"]] * 4), 0.0)
    tx = gate("xint", torch.round((u[:, _U["xint_x"]] * 2 - 1) * XINT_MAX * w), 0.0)
    ty = gate("xint", torch.round((u[:, _U["xint_y"]] * 2 - 1) * XINT_MAX * h), 0.0)
    scale = gate("scale", torch.exp2(g[:, _N["scale"]] * SCALE_STD), 1.0)
    # Rotation is split into a pre- and a post-rotation around the anisotropic scaling; each
    # fires with p_rot so that P(either) = p.
    p_rot = 1 - math.sqrt(max(0.0, 1 - p_rotate))
    zero = torch.zeros(n, device=dev)
    pre = torch.where(u[:, _U["rot_pre_p"]] < p_rot,
                      (u[:, _U["rot_pre"]] * 2 - 1) * math.pi * ROTATE_MAX, zero)
    post = torch.where(u[:, _U["rot_post_p"]] < p_rot,
                       (u[:, _U["rot_post"]] * 2 - 1) * math.pi * ROTATE_MAX, zero)
    aniso = gate("aniso", torch.exp2(g[:, _N["aniso"]] * ANISO_STD), 1.0)
    fx = gate("xfrac", g[:, _N["xfrac_x"]] * XFRAC_STD * w, 0.0)
    fy = gate("xfrac", g[:, _N["xfrac_y"]] * XFRAC_STD * h, 0.0)

    # Inverse transform (output pixel -> input pixel, pixel units, origin at the centre):
    # the inverses of the ops in the order they act on the image.
    inv = _scale(1 - 2 * flip, torch.ones_like(flip))
    inv = inv @ _rotate(math.pi / 2 * quarter)
    inv = inv @ _translate(-tx, -ty)
    inv = inv @ _scale(1 / scale, 1 / scale)
    inv = inv @ _rotate(pre)
    inv = inv @ _scale(1 / aniso, aniso)
    inv = inv @ _rotate(post)
    inv = inv @ _translate(-fx, -fy)
    active = (inv != torch.eye(3, device=dev)).flatten(1).any(dim=1)   # [n]
    if not bool(active.any()):
        return x
    # grid_sample works in [-1, 1] coordinates (align_corners=False: the image edges).
    to_unit = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], device=dev))
    to_pixels = torch.diag(torch.tensor([w / 2, h / 2, 1.0], device=dev))
    theta = (to_unit @ inv @ to_pixels)[:, :2]                          # [n, 2, 3]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False).to(x.dtype)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                           align_corners=False)
    # Images no op touched stay bit-exact (bilinear weights of an identity are not exactly 1).
    return torch.where(active[:, None, None, None], warped, x)


def _matrices(rows: list[list[torch.Tensor]]) -> torch.Tensor:
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    o, i = torch.zeros_like(sx), torch.ones_like(sx)
    return _matrices([[sx, o, o], [o, sy, o], [o, o, i]])


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    o, i = torch.zeros_like(tx), torch.ones_like(tx)
    return _matrices([[i, o, tx], [o, i, ty], [o, o, i]])


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    o, i = torch.zeros_like(theta), torch.ones_like(theta)
    return _matrices([[c, -s, o], [s, c, o], [o, o, i]])


# --- colour --------------------------------------------------------------------------------
def _color(x, u, g, gate) -> torch.Tensor:
    n, c, h, w = x.shape
    if c != 3:
        raise ValueError(f"ADA colour augmentation needs RGB images, got {c} channels")
    dev = u.device
    eye = torch.eye(4, device=dev).expand(n, 4, 4)
    luma = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)
    vv = torch.outer(luma, luma)                                        # projector onto luma
    b = gate("brightness", g[:, _N["brightness"]] * BRIGHTNESS_STD, 0.0)
    k = gate("contrast", torch.exp2(g[:, _N["contrast"]] * CONTRAST_STD), 1.0)
    flip = gate("lumaflip", torch.floor(u[:, _U["lumaflip"]] * 2), 0.0)
    hue = gate("hue", (u[:, _U["hue"]] * 2 - 1) * math.pi * HUE_MAX, 0.0)
    sat = gate("saturation", torch.exp2(g[:, _N["saturation"]] * SATURATION_STD), 1.0)

    # Colour matrix acting on [r, g, b, 1] (images in [-1, 1], so 0 is mid-grey).
    m = eye.clone()
    m[:, :3, 3] = b[:, None]                                            # brightness
    m = _diag3(k) @ m                                                   # contrast
    m = (eye - 2 * vv * flip[:, None, None]) @ m                        # luma flip
    m = _rotate_about_luma(hue, luma[:3]) @ m                           # hue rotation
    m = (vv + (eye - vv) * sat[:, None, None]) @ m                      # saturation
    if bool((m == torch.eye(4, device=dev)).all()):
        return x
    m = m.to(x.dtype)
    flat = x.reshape(n, 3, h * w)
    return (m[:, :3, :3] @ flat + m[:, :3, 3:]).reshape(n, 3, h, w)


def _diag3(k: torch.Tensor) -> torch.Tensor:
    i = torch.ones_like(k)
    return torch.diag_embed(torch.stack([k, k, k, i], dim=1))


def _rotate_about_luma(theta: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Rodrigues rotation by theta `[n]` about the unit axis `[3]`, as 4x4 homogeneous."""
    n = theta.shape[0]
    ax, ay, az = axis.tolist()
    cross = torch.tensor([[0.0, -az, ay], [az, 0.0, -ax], [-ay, ax, 0.0]], device=theta.device)
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    r3 = c * torch.eye(3, device=theta.device) + s * cross + (1 - c) * torch.outer(axis, axis)
    out = torch.eye(4, device=theta.device).repeat(n, 1, 1)
    out[:, :3, :3] = r3
    return out


# --- the adaptive controller ---------------------------------------------------------------
class AdaController:
    """Tunes p from the discriminator's outputs on real images.

    Every `interval` steps: r_t = E[sign(D(real))] over those steps, and
    p += sign(r_t - target) * (batch * interval) / (kimg * 1000), kept in [0, 1).
    So p can move from 0 to 1 in `kimg` thousand images.
    """

    P_MAX = math.nextafter(1.0, 0.0)

    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 100.0,
                 p: float = 0.0, adaptive: bool = True):
        self.target, self.interval, self.kimg = float(target), int(interval), float(kimg)
        self.adaptive = adaptive
        self.p = min(max(float(p), 0.0), self.P_MAX)
        self.signs: torch.Tensor | None = None   # [2]: sum of signs, count (since last update)
        self.last_update = -1                    # step of the last update check
        self.r_t: float | None = None            # r_t of the last interval (for logging)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add a batch of D's logits on (augmented) real images."""
        if not self.adaptive:
            return
        logits = real_logits.detach().float()
        stats = torch.stack([logits.sign().sum(), torch.tensor(float(logits.numel()),
                                                               device=logits.device)])
        self.signs = stats if self.signs is None else self.signs.to(stats.device) + stats

    def step(self, step: int, batch: int) -> None:
        """Call at the start of every training step (any number of times): on steps that are
        multiples of the interval, update p from the signs gathered since the last update."""
        if not self.adaptive or step == self.last_update:
            return
        self.last_update = step
        if step == 0 or step % self.interval or self.signs is None:
            return
        stats = self.signs
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            stats = stats.clone()
            torch.distributed.all_reduce(stats)   # every rank reaches this at the same step
        total, count = stats.tolist()
        self.signs = None
        if count <= 0:
            return
        self.update(total / count, batch)

    def update(self, r_t: float, batch: int) -> float:
        """Move p by one interval's worth given the measured r_t; returns the new p."""
        self.r_t = float(r_t)
        direction = (r_t > self.target) - (r_t < self.target)
        self.p += direction * batch * self.interval / (self.kimg * 1000)
        self.p = min(max(self.p, 0.0), self.P_MAX)
        return self.p

    def state_dict(self) -> dict:
        return {"p": self.p, "signs": self.signs, "last_update": self.last_update,
                "r_t": self.r_t}

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state["p"])
        signs = state.get("signs")
        self.signs = None if signs is None else signs.detach().clone().float()
        self.last_update = int(state.get("last_update", -1))
        r_t = state.get("r_t")
        self.r_t = None if r_t is None else float(r_t)
