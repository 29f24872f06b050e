"""Memory estimates: a job whose peak would not fit is refused before anything is allocated.

A job's peak is everything it holds at once, not only its result:

    peak = inputs + activations + result_copies x result

    inputs       the model-ready copies a job makes of its inputs (converted, resized, padded)
    activations  one chunk of network working memory: ACTIVATION_CHANNELS float32 values per
                 output pixel of every image of the chunk
    result       the output; batches are produced chunk by chunk and joined with torch.cat,
                 so for a moment the chunks and the joined batch both exist (2 copies), and
                 blends or grids built from the result add more

Latent animations (transitions, keyframe paths, walks) work in float64 with a few
temporaries per frame; their peaks are measured multiples of the float32 result
(LATENT_PEAK_FACTORS).

A job is refused when its peak in main memory is over FREE_FRACTION of the free memory;
activations count there only when the network runs on the CPU (on a GPU, ComfyUI's model
management makes room for them). The message says how much and what to do:
"8 images of 1024x1024 need ~2.3 GiB at peak, more than half the free memory (1.0 GiB); use
a smaller batch".
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import GanStudioError

FLOAT_BYTES = 4
ACTIVATION_CHANNELS = 64  # rough working memory per output pixel, in float32 values
FREE_FRACTION = 0.5
# peak / float32 result of the latent animations, measured (transition ~6x, path ~14x,
# walk ~6x) and rounded up
LATENT_PEAK_FACTORS = {"transition": 7, "path": 15, "walk": 7, "copy": 2}


@dataclass(frozen=True)
class Peak:
    """Bytes a job holds at once: `host` in main memory, `activations` wherever the
    network runs."""

    host: int
    activations: int = 0

    def total(self, activations_on_host: bool) -> int:
        return self.host + (self.activations if activations_on_host else 0)


def image_bytes(count: int, height: int, width: int, channels: int = 3) -> int:
    """float32 images `[count, height, width, channels]`."""
    return int(count) * int(height) * int(width) * int(channels) * FLOAT_BYTES


def activation_bytes(chunk: int, height: int, width: int) -> int:
    """Working memory of one chunk of `chunk` images of height x width."""
    return int(chunk) * int(height) * int(width) * ACTIVATION_CHANNELS * FLOAT_BYTES


def images_peak(count: int, height: int, width: int, chunk: int, input_bytes: int = 0,
                result_copies: int = 2, channels: int = 3) -> Peak:
    """A batch of `count` images made `chunk` at a time: inputs + one chunk of activations
    + result_copies x the float32 result."""
    chunk = max(1, min(int(chunk), int(count)))
    return Peak(host=int(input_bytes) + result_copies * image_bytes(count, height, width,
                                                                    channels),
                activations=activation_bytes(chunk, height, width))


def generate_peak(count: int, resolution: int, chunk: int, latent_bytes: int = 0) -> Peak:
    """Generate Images: latents in, chunks of images gathered, then joined."""
    return images_peak(count, resolution, resolution, chunk, input_bytes=latent_bytes)


def encode_peak(count: int, height: int, width: int, resolution: int, channels: int,
                chunk: int, masked: bool = False, reconstruct: bool = False) -> Peak:
    """Encode Images / Reconstruct: the images converted to the model's input (with an
    alpha copy when masked); Reconstruct adds the decoded batch (gathered and joined), the
    inputs again for the grid and the grid itself (two images per input)."""
    inputs = image_bytes(count, resolution, resolution, channels)
    if masked:
        inputs += image_bytes(count, height, width, 4)
    if not reconstruct:
        return Peak(host=inputs, activations=activation_bytes(chunk, resolution, resolution))
    result = image_bytes(count, resolution, resolution)
    return Peak(host=2 * inputs + 2 * result + 2 * result,
                activations=activation_bytes(chunk, resolution, resolution))


def translate_peak(count: int, height: int, width: int, chunk: int) -> Peak:
    """Translate Image: the input as RGB and as the network's input, the translation
    gathered and joined, and the blend with the input (strength, mask)."""
    inputs = 2 * image_bytes(count, height, width)
    return Peak(host=inputs + 4 * image_bytes(count, height, width),
                activations=activation_bytes(chunk, height, width))


def latents_peak(count: int, values_per_latent: int, labels_per_latent: int = 0,
                 kind: str = "copy") -> Peak:
    """A latent batch of `count` latents built by `kind` (LATENT_PEAK_FACTORS)."""
    result = int(count) * (int(values_per_latent) + int(labels_per_latent)) * FLOAT_BYTES
    return Peak(host=LATENT_PEAK_FACTORS[kind] * result)


def ensure_fits(peak: Peak, what: str, free_bytes: int, activations_on_host: bool = True,
                advice: str = "use a smaller batch") -> int:
    """Refuse a job whose peak is over FREE_FRACTION of `free_bytes` (main memory):
    GanStudioError "<what> need ~X GiB at peak, more than half the free memory (Y GiB);
    <advice>". Returns the peak in bytes."""
    need = peak.total(activations_on_host)
    if need > FREE_FRACTION * free_bytes:
        raise GanStudioError(
            f"{what} need ~{format_bytes(need)} at peak, more than "
            f"{_fraction_words(FREE_FRACTION)} the free memory ({format_bytes(free_bytes)}); "
            f"{advice}")
    return need


def ensure_output_fits(count: int, resolution: int, free_bytes: int, chunk: int = 0,
                       activations_on_host: bool = True) -> int:
    """Refuse a batch of generated images whose peak would not fit (see generate_peak);
    chunk 0 counts the whole batch as one chunk."""
    peak = generate_peak(count, resolution, chunk or count)
    return ensure_fits(peak, images_what(count, resolution, resolution), free_bytes,
                       activations_on_host)


def images_what(count: int, height: int, width: int) -> str:
    return f"{count} image{'s' if count != 1 else ''} of {width}x{height}"


def latents_what(count: int, shape) -> str:
    """'120 latents of 18x512'."""
    dims = "x".join(str(int(d)) for d in shape) or "1"
    return f"{count} latent{'s' if count != 1 else ''} of {dims}"


def format_bytes(n: int) -> str:
    """'2.3 GiB', '120 MiB', '12 KiB'."""
    if n >= 2**30 or n == 0:
        return f"{n / 2**30:.1f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MiB"
    return f"{max(1, -(-n // 2**10))} KiB"  # rounded up: never "0 KiB"


def _fraction_words(fraction: float) -> str:
    return "half" if fraction == 0.5 else f"{fraction:.0%} of"
