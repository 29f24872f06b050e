"""Interpolation and animation: transitions, keyframe paths, looping walks, diffusion latents."""

from __future__ import annotations

import math

import torch
from comfy_api.v0_0_2 import io

from ..gan_models.latent import MAX_SEED, parse_seeds
from ..gan_models.memory import latents_peak, latents_what
from ..gan_models.motion.animation import (
    blend_times,
    interpolate_latents,
    keyframes_from_seeds,
    path_latents,
    walk_latents,
)
from ..gan_models.motion.interpolation import METHODS, transitions
from ..gan_models.motion.paths import EASINGS, INTERPOLATIONS, TIMINGS, frame_count
from .common import (
    CATEGORY,
    GanLatent,
    GanModel,
    NodeError,
    ensure_peak_fits,
    expect_latents,
    expect_model,
    user_errors,
)

GROUP = f"{CATEGORY}/animate"
MAX_FRAMES = 100_000


def _duration_inputs() -> list:
    return [
        io.Float.Input("seconds", default=0.0, min=0.0, max=3600.0, step=0.5,
                       tooltip="Length in seconds; the animation gets fps x seconds frames. "
                               "0 = use the frame count instead."),
        io.Float.Input("fps", default=24.0, min=1.0, max=240.0, step=1.0,
                       tooltip="Frames per second the animation will play at (set the same "
                               "fps on the save node). Only used when seconds > 0."),
    ]


def _check_frames(node: str, frames: int, shape=None, labels: int = 0,
                  kind: str = "transition") -> int:
    """The frame count, refused when over MAX_FRAMES or when `frames` latents of `shape`
    (with `labels` condition values each) would not fit in memory at the job's peak."""
    if frames > MAX_FRAMES:
        raise NodeError(f"{node}: {frames} frames is more than the {MAX_FRAMES} allowed")
    if shape is not None:
        ensure_peak_fits(latents_peak(frames, math.prod(shape), labels, kind),
                         latents_what(frames, shape), "use fewer frames")
    return frames


def _latent_shape(model) -> tuple:
    return (model.z_dim,)


class InterpolateLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioInterpolateLatents",
            display_name="Interpolate Latents",
            category=GROUP,
            description="A smooth transition between two latents (morph from one image to "
                        "another). With two batches of the same size, sample i of A goes to "
                        "sample i of B, each transition's frames in a row; otherwise the first "
                        "sample of each is used.",
            inputs=[
                GanLatent.Input("latents_a", tooltip="Where the transition starts."),
                GanLatent.Input("latents_b", tooltip="Where the transition ends."),
                io.Int.Input("steps", default=16, min=1, max=MAX_FRAMES,
                             tooltip="Frames per transition."),
                io.Combo.Input("method", options=["auto", *METHODS], default="auto",
                               tooltip="slerp: along the sphere, keeps the latent's length "
                                       "(best for z). lerp: straight line (best for w/w+). "
                                       "auto: slerp for z, lerp for w and w+."),
                io.Combo.Input("easing", options=list(EASINGS), default="linear",
                               tooltip="Pace of the transition: linear = constant speed, "
                                       "ease-in-out / smoothstep = start and stop gently."),
                io.Boolean.Input("include_end", default=True,
                                 tooltip="On: the last frame is B. Off: stop one step before B, "
                                         "so transitions can be chained without a repeated "
                                         "frame."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="All frames of the transition(s), in order.")],
        )

    @classmethod
    @user_errors("Interpolate Latents")
    def execute(cls, latents_a, latents_b, steps, method, easing, include_end) -> io.NodeOutput:
        a = expect_latents(latents_a, "Interpolate Latents")
        b = expect_latents(latents_b, "Interpolate Latents")
        pairs = len(a) if len(a) == len(b) else 1
        labels = 0 if a.labels is None else a.labels.shape[-1]
        _check_frames("Interpolate Latents", pairs * steps, a.values.shape[1:], labels)
        return io.NodeOutput(interpolate_latents(a, b, steps, method, easing, include_end))


class KeyframePath(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioKeyframePath",
            display_name="Keyframe Path",
            category=GROUP,
            description="An animation that travels through keyframes (one per seed, or a "
                        "latent batch) along a smooth spline or straight segments. With loop "
                        "on, the path returns to the first keyframe and the clip repeats "
                        "seamlessly. Same inputs, same frames, on any machine.",
            inputs=[
                GanModel.Input("model", tooltip="The model the latents are for."),
                io.String.Input("seeds", default="1, 5, 42, 7",
                                tooltip="Keyframe seeds in order, e.g. '1, 5, 42' or '10-14'; "
                                        "seed s is the image Sample Latents draws for seed s. "
                                        "Ignored when keyframes are connected."),
                io.Int.Input("frames_per_segment", default=24, min=1, max=MAX_FRAMES,
                             tooltip="Frames from one keyframe to the next (used when "
                                     "seconds is 0)."),
                io.Combo.Input("interpolation", options=list(INTERPOLATIONS), default="spline",
                               tooltip="spline: one smooth curve through every keyframe (no "
                                       "corners). linear: straight (or spherical, for z) "
                                       "segments between keyframes."),
                io.Combo.Input("easing", options=list(TIMINGS), default=TIMINGS[0],
                               tooltip="constant speed: every frame moves the same distance, "
                                       "the smoothest motion (keyframes lie on the path but "
                                       "need not be exact frames). linear: keyframes on exact "
                                       "frames. ease-in-out / smoothstep: slow down at each "
                                       "keyframe."),
                io.Boolean.Input("loop", default=True,
                                 tooltip="On: return to the first keyframe; the frame after the "
                                         "last would be the first again, so the clip loops "
                                         "perfectly. Off: stop on the last keyframe."),
                io.Float.Input("truncation_psi", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Pull toward the average latent (seed keyframes only; "
                                       "connected keyframes keep their own)."),
                *_duration_inputs(),
                GanLatent.Input("keyframes", optional=True,
                                tooltip="Optional keyframe latents (from Sample Latents, Pick "
                                        "Latents, Load Latents, ...) used instead of seeds."),
            ],
            outputs=[GanLatent.Output(display_name="latents",
                                      tooltip="One latent per frame; connect to Generate "
                                              "Images.")],
        )

    @classmethod
    @user_errors("Keyframe Path")
    def execute(cls, model, seeds, frames_per_segment, interpolation, easing, loop,
                truncation_psi, seconds, fps, keyframes=None) -> io.NodeOutput:
        model = expect_model(model, "Keyframe Path")
        if keyframes is not None:
            keys = expect_latents(keyframes, "Keyframe Path")
            model.check_latents(keys)
            count, shape = len(keys), keys.values.shape[1:]
            labels = 0 if keys.labels is None else keys.labels.shape[-1]
        else:
            keys, seed_list = None, parse_seeds(seeds, MAX_FRAMES)
            count, shape, labels = len(seed_list), _latent_shape(model), model.num_classes
        segments = count if loop else count - 1
        frames = max(segments * frames_per_segment + (0 if loop else 1), 1)
        frames = _check_frames("Keyframe Path", frame_count(frames, fps, seconds), shape,
                               labels, "path")
        if keys is None:  # drawn only once the frame count is known to be allowed
            keys = keyframes_from_seeds(model, seed_list, truncation_psi)
        return io.NodeOutput(path_latents(keys, frames, interpolation, easing, loop))


class LatentWalk(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioLatentWalk",
            display_name="Latent Walk",
            category=GROUP,
            description="A smooth random journey through the model's latent space, drawn from "
                        "a seed. With loop on it closes on itself for a seamless loop; every "
                        "frame is a typical latent, so every frame looks like a real sample.",
            inputs=[
                GanModel.Input("model", tooltip="The model to walk through."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="Seed of the walk: same seed, same animation."),
                io.Int.Input("frames", default=120, min=1, max=MAX_FRAMES,
                             tooltip="Number of frames (used when seconds is 0)."),
                io.Float.Input("smoothness", default=0.75, min=0.0, max=1.0, step=0.05,
                               tooltip="1 = one slow, even sweep; lower = more and faster "
                                       "changes of direction."),
                io.Boolean.Input("loop", default=True,
                                 tooltip="On: the walk returns to its start (seamless loop). "
                                         "Off: it ends somewhere else."),
                io.Float.Input("truncation_psi", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Pull toward the average latent: lower = calmer, more "
                                       "typical images."),
                *_duration_inputs(),
            ],
            outputs=[GanLatent.Output(display_name="latents", tooltip="One latent per frame.")],
        )

    @classmethod
    @user_errors("Latent Walk")
    def execute(cls, model, seed, frames, smoothness, loop, truncation_psi, seconds,
                fps) -> io.NodeOutput:
        model = expect_model(model, "Latent Walk")
        frames = _check_frames("Latent Walk", frame_count(frames, fps, seconds),
                               _latent_shape(model), model.num_classes, "walk")
        return io.NodeOutput(walk_latents(model, seed, frames, smoothness, loop, truncation_psi))


class InterpolateDiffusionLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GANStudioInterpolateDiffusionLatents",
            display_name="Interpolate Diffusion Latents",
            category=GROUP,
            description="Transitions between two ComfyUI LATENTs (e.g. from VAE Encode or a "
                        "sampler): slerp treats each latent as one long vector. Sample i of A "
                        "goes to sample i of B when the batch sizes match, otherwise the first "
                        "of each. Feed the result to VAE Decode.",
            inputs=[
                io.Latent.Input("latent_a", tooltip="Where the transition starts."),
                io.Latent.Input("latent_b", tooltip="Where the transition ends (same shape)."),
                io.Int.Input("steps", default=16, min=1, max=4096,
                             tooltip="Frames per transition."),
                io.Combo.Input("method", options=list(METHODS), default="slerp",
                               tooltip="slerp: keeps the latent's overall magnitude (noise "
                                       "stays noise-like). lerp: straight blend."),
                io.Combo.Input("easing", options=list(EASINGS), default="linear",
                               tooltip="Pace of the transition."),
                io.Boolean.Input("include_end", default=True,
                                 tooltip="On: the last frame is B. Off: stop one step before B "
                                         "(for chaining transitions)."),
            ],
            outputs=[io.Latent.Output(display_name="latent",
                                      tooltip="LATENT batch with every frame.")],
        )

    @classmethod
    @user_errors("Interpolate Diffusion Latents")
    def execute(cls, latent_a, latent_b, steps, method, easing, include_end) -> io.NodeOutput:
        name = "Interpolate Diffusion Latents"
        a, b = latent_a["samples"], latent_b["samples"]
        if a.shape[1:] != b.shape[1:]:
            raise NodeError(f"{name}: latents of shape {tuple(a.shape[1:])} and "
                            f"{tuple(b.shape[1:])} differ; use the same size and model")
        if a.shape[0] != b.shape[0]:
            a, b = a[:1], b[:1]
        _check_frames(name, a.shape[0] * steps, a.shape[1:])
        t = blend_times(steps, easing, include_end)
        samples = transitions(a.float(), b.float(), t, method, flat=True).to(a.dtype)
        out = {k: v for k, v in latent_a.items()
               if k not in ("samples", "batch_index", "noise_mask")}
        mask = latent_a.get("noise_mask")
        if isinstance(mask, torch.Tensor) and mask.shape[0] == 1:
            out["noise_mask"] = mask  # one mask for all frames still applies
        out["samples"] = samples
        return io.NodeOutput(out)


NODES = [InterpolateLatents, KeyframePath, LatentWalk, InterpolateDiffusionLatents]
