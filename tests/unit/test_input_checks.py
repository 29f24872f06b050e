"""Numbers from people and files are finite; memory estimates count the peak; latent files
and PNG frame records are checked part by part (the engine sweep runs the same through the
nodes: tests/engine/test_error_sweep.py)."""

from __future__ import annotations

import base64
import json
import math

import pytest
import torch
from helpers import tiny_dcgan
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from safetensors.torch import save_file

from gan_models import GanStudioError, LatentBatch
from gan_models.checks import is_finite_number, require_finite
from gan_models.latent_files import (
    PNG_KEY,
    frame_record,
    latents_from_records,
    load_latents,
    read_png_record,
    save_latents,
)
from gan_models.memory import (
    ACTIVATION_CHANNELS,
    LATENT_PEAK_FACTORS,
    ensure_fits,
    ensure_output_fits,
    format_bytes,
    generate_peak,
    latents_peak,
    translate_peak,
)

GIB = 2**30


# --- finite numbers ----------------------------------------------------------------------
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("1e309"), "1", None])
def test_non_finite_numbers_are_refused_naming_them(value):
    assert not is_finite_number(value)
    with pytest.raises(GanStudioError, match=r"^truncation_psi is not a finite number \("):
        require_finite(value, "truncation_psi")


def test_finite_numbers_and_tensors_pass_through():
    assert require_finite(0.5, "x") == 0.5 and require_finite(3, "x") == 3
    t = torch.randn(4)
    assert require_finite(t, "x") is t
    assert require_finite(torch.arange(3), "ints") is not None  # integers are always finite


def test_tensors_with_nan_or_inf_are_refused_counting_them():
    t = torch.zeros(2, 3)
    t[0, 1], t[1, 2] = math.nan, math.inf
    with pytest.raises(GanStudioError, match=r"^the values: 2 of 6 entries are NaN or infinite; "
                                             r"check them$"):
        require_finite(t, "the values", "check them")


# --- memory estimates --------------------------------------------------------------------
def test_the_peak_counts_inputs_activations_and_every_copy_of_the_result():
    peak = generate_peak(8, 256, 4, latent_bytes=1000)
    result = 8 * 256 * 256 * 3 * 4
    assert peak.host == 1000 + 2 * result  # chunks gathered, then joined
    assert peak.activations == 4 * 256 * 256 * ACTIVATION_CHANNELS * 4
    assert peak.total(activations_on_host=True) == peak.host + peak.activations
    assert peak.total(activations_on_host=False) == peak.host
    assert generate_peak(2, 64, 64).activations == generate_peak(2, 64, 2).activations
    assert translate_peak(2, 64, 48, 4).host == 6 * 2 * 64 * 48 * 3 * 4
    assert latents_peak(10, 512, 3, "path").host == LATENT_PEAK_FACTORS["path"] * 10 * 515 * 4


def test_a_peak_over_half_the_free_memory_is_refused_with_sizes():
    peak = generate_peak(64, 1024, 4)
    need = peak.total(True)
    assert ensure_fits(peak, "64 images of 1024x1024", free_bytes=2 * need + 1) == need
    with pytest.raises(GanStudioError) as err:
        ensure_fits(peak, "64 images of 1024x1024", free_bytes=2 * need - 1)
    message = str(err.value)
    assert message.startswith("64 images of 1024x1024 need ~") and "at peak" in message
    assert message.endswith("more than half the free memory "
                            f"({format_bytes(2 * need - 1)}); use a smaller batch")
    # on a GPU the activations live elsewhere: only what stays in main memory counts
    ensure_fits(peak, "x", free_bytes=2 * peak.host + 1, activations_on_host=False)


def test_output_guard_kept_for_the_model_module():
    from gan_models.model import ensure_output_fits as reexported

    assert reexported is ensure_output_fits
    ensure_output_fits(16, 64, free_bytes=GIB)
    with pytest.raises(GanStudioError, match="8 images of 1024x1024 need ~.* use a smaller"):
        ensure_output_fits(8, 1024, free_bytes=GIB)  # the result alone is 96 MiB: peak is not


def test_sizes_read_well():
    assert format_bytes(3 * GIB // 2) == "1.5 GiB"
    assert format_bytes(5 * 2**20) == "5 MiB"
    assert format_bytes(10) == "1 KiB"


# --- latent files ------------------------------------------------------------------------
def _latent_file(path, values, labels=None, **meta):
    body = {"format": "gan-studio-latents", "version": 1, "space": "z", "seeds": None,
            "truncation_psi": 1.0, "extra": {}, **meta}
    tensors = {"values": values} if labels is None else {"values": values, "labels": labels}
    save_file(tensors, str(path), metadata={"gan_studio_latents": json.dumps(body)})
    return path


@pytest.mark.parametrize("values, labels, meta, fragment", [
    (torch.randn(2, 8), torch.ones(2), {}, "class/text weights must be 2-D"),
    (torch.full((2, 8), math.nan), None, {}, "latent values: 16 of 16 entries are NaN"),
    (torch.randn(2, 8), torch.full((2, 3), math.inf), {}, "class/text weights: 6 of 6"),
    (torch.randn(8), None, {}, "must be 2-D"),
    (torch.randn(2, 3, 8), None, {}, "must be 2-D"),
    (torch.randn(2, 8), None, {"space": "w+"}, "must be 3-D"),
    (torch.zeros(0, 8), None, {}, "at least one latent"),
    (torch.zeros(2, 8, dtype=torch.bool), None, {}, "not numbers"),
    (torch.randn(2, 8), None, {"truncation_psi": math.nan}, "truncation_psi"),
    (torch.randn(2, 8), None, {"truncation_psi": "1"}, "truncation_psi"),
    (torch.randn(2, 8), None, {"version": "1"}, "version is not a number"),
    (torch.randn(2, 8), None, {"seeds": [1, "2"]}, "seeds"),
    (torch.randn(2, 8), None, {"seeds": [1, 2**64]}, "seeds"),
    (torch.randn(2, 8), None, {"extra": "x"}, "extra"),
    (torch.randn(2, 8), None, {"model_id": []}, "model id"),
    (torch.randn(2, 8), None, {"view": [0, 0]}, "view"),
    (torch.randn(2, 8), None, {"view": [0, 0, math.inf]}, "view"),
    (torch.randn(2, 8), None, {"truncation_cutoff": -1}, "truncation_cutoff"),
    (torch.randn(2, 8), None, {"space": "x"}, "unknown latent space"),
])
def test_damaged_latent_files_are_refused_naming_the_file(tmp_path, values, labels, meta,
                                                          fragment):
    path = _latent_file(tmp_path / "bad.safetensors", values, labels, **meta)
    with pytest.raises(GanStudioError) as err:
        load_latents(path)
    assert str(err.value).startswith("bad.safetensors"), err.value
    assert fragment in str(err.value), err.value
    assert str(tmp_path) not in str(err.value)


def test_unreadable_latent_files_say_why(tmp_path):
    good = save_latents(LatentBatch(values=torch.randn(64, 8)), tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(GanStudioError, match="cut.safetensors is corrupt or truncated"):
        load_latents(cut)
    nested = _latent_file(tmp_path / "deep.safetensors", torch.randn(1, 8))
    save_file({"values": torch.randn(1, 8)}, str(nested),
              metadata={"gan_studio_latents": "[" * 50_000 + "]" * 50_000})
    with pytest.raises(GanStudioError, match="deep.safetensors is not a GAN Studio latent file "
                                             r"\(.*nested too deeply"):
        load_latents(nested)


def test_good_latent_files_still_load(tmp_path):
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    batch = model.sample_latents(5, 3)
    back = load_latents(save_latents(batch, tmp_path / "ok.safetensors"))
    assert torch.equal(back.values, batch.values) and back.seeds == batch.seeds
    ints = _latent_file(tmp_path / "ints.safetensors", torch.arange(16).reshape(2, 8))
    assert load_latents(ints).values.dtype == torch.float32


# --- PNG frame records -------------------------------------------------------------------
def _record(**changes):
    batch = LatentBatch(values=torch.randn(1, 4), labels=torch.tensor([[1.0, 0.0]]),
                        seeds=(3,))
    return {**frame_record(batch, 0), **changes}


@pytest.mark.parametrize("changes, fragment", [
    ({"latent": base64.b64encode(torch.full((4,), math.nan).numpy().tobytes()).decode()},
     "NaN"),
    ({"label": [math.nan, 1.0]}, "label"),
    ({"label": "cat"}, "label"),
    ({"shape": [2]}, "does not match its shape"),
    ({"shape": "4"}, "shape"),
    ({"shape": [1, 1, 4]}, "shape"),
    ({"latent": "!!!"}, "base64"),
    ({"latent": 5}, "base64"),
    ({"truncation_psi": "x"}, "truncation_psi"),
    ({"seed": -1}, "seeds"),
    ({"space": "w+"}, "must be 3-D"),
])
def test_damaged_frame_records_are_refused(changes, fragment):
    with pytest.raises(GanStudioError, match=fragment):
        latents_from_records([_record(**changes)])


def test_frame_records_that_disagree_are_refused():
    with pytest.raises(GanStudioError, match="different lengths"):
        latents_from_records([_record(), _record(label=[1.0, 0.0, 0.0])])
    with pytest.raises(GanStudioError, match="different shapes"):
        latents_from_records([_record(), _record(
            shape=[2], latent=base64.b64encode(torch.zeros(2).numpy().tobytes()).decode())])
    with pytest.raises(GanStudioError, match="not a GAN Studio frame record"):
        latents_from_records([["not", "a", "dict"]])


def test_png_records_that_are_not_json_are_refused(tmp_path):
    for name, text in (("bad.png", "{nope"), ("list.png", "[1]"),
                       ("deep.png", "[" * 50_000 + "]" * 50_000)):
        info = PngInfo()
        info.add_text(PNG_KEY, text)
        Image.new("RGB", (2, 2)).save(tmp_path / name, pnginfo=info)
        with pytest.raises(GanStudioError, match=f"^{name}: its frame record"):
            read_png_record(tmp_path / name)
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(GanStudioError, match="cannot read junk.png as an image"):
        read_png_record(tmp_path / "junk.png")
