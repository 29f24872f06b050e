"""The restricted unpickler: what NVlabs-style pickles need loads, everything else is refused
before it runs."""

import collections
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_foreign import (
    Call,
    TFNetwork,
    call_pickle,
    legacy_torch_bytes,
    nvlabs_names,
    persistent_tree,
    write_nvlabs_pickle,
)
from torch import nn

import gan_models
from gan_models import CheckpointError
from gan_models.formats.safe_pickle import (
    EasyDict,
    ModuleRecord,
    PersistentRecord,
    TFNetworkRecord,
    safe_load,
)


def test_tensors_arrays_and_dicts_load(tmp_path):
    src = {
        "param": nn.Parameter(torch.randn(3, 2)),
        "half": torch.arange(6, dtype=torch.float16).reshape(2, 3),
        "view": torch.arange(10.0)[2:8:2],  # storage offset + stride
        "ints": torch.tensor([1, 2, 3]),
        "array": np.linspace(0, 1, 5, dtype=np.float32),
        "scalar": np.float64(2.5),
        "ordered": collections.OrderedDict(a=1, b=[1, 2]),
        "set": {1, 2},
    }
    path = write_nvlabs_pickle(tmp_path / "plain.pkl", src)
    out = safe_load(path)
    assert isinstance(out["param"], nn.Parameter) and torch.equal(out["param"], src["param"])
    assert out["half"].dtype == torch.float16 and torch.equal(out["half"], src["half"])
    assert torch.equal(out["view"], src["view"]) and torch.equal(out["ints"], src["ints"])
    np.testing.assert_array_equal(out["array"], src["array"])
    assert out["scalar"] == 2.5 and out["ordered"] == src["ordered"] and out["set"] == {1, 2}


@pytest.mark.parametrize("protocol", [0, 2])
def test_old_protocols_load(tmp_path, protocol):
    # protocol 2 writes bytes via _codecs.encode; protocol 0 objects via copyreg._reconstructor
    src = {"t": torch.randn(4), "a": np.arange(4), "m": nn.Linear(2, 3)}
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps(src, protocol=protocol))
    out = safe_load(path)
    assert torch.equal(out["t"], src["t"]) and list(out["a"]) == [0, 1, 2, 3]
    assert isinstance(out["m"], ModuleRecord) and not isinstance(out["m"], nn.Module)
    assert torch.equal(out["m"].state_dict()["weight"], src["m"].weight)


def test_easydict_and_persistent_objects_become_inert_records(tmp_path):
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    net.register_buffer("running", torch.ones(2))
    net.register_buffer("scratch", torch.zeros(2), persistent=False)
    tree = persistent_tree(net, "Critic", {"width": 4, "inner": {"depth": 2}},
                           module_src="class Critic: pass\n")
    path = write_nvlabs_pickle(tmp_path / "net.pkl", {"net": tree, "kw": {"a": 1}})
    out = safe_load(path)
    rec = out["net"]
    assert isinstance(rec, PersistentRecord) and rec.class_name == "Critic"
    assert rec.module_src == "class Critic: pass\n" and rec.version == 6
    assert isinstance(rec.init_kwargs["inner"], EasyDict) and rec.init_kwargs["inner"].depth == 2
    expected = net.state_dict()
    got = rec.state_dict()
    assert list(got) == list(expected)  # non-persistent buffer left out, order kept
    assert all(torch.equal(got[k], expected[k]) for k in expected)


HOSTILE = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
           ("subprocess", "Popen")]


def _hostile_args(module, name, sentinel: Path):
    if name == "Popen":
        return (["touch", str(sentinel)],)
    if module == "builtins":
        return (f"open({str(sentinel)!r}, 'w').close()",)
    return (f"touch {sentinel}",)


@pytest.mark.parametrize("module,name", HOSTILE)
def test_hostile_globals_are_refused_and_never_run(tmp_path, module, name):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(call_pickle(module, name, *_hostile_args(module, name, sentinel)))
    # check the file really is hostile: a plain unpickler would run it
    assert f"{module}\n{name}".encode() in path.read_bytes()
    with pytest.raises(CheckpointError,
                       match=rf"refused to load {module}\.{name} from evil\.pkl: not allowed"):
        safe_load(path)
    with pytest.raises(CheckpointError, match="refused to load"):
        gan_models.load_model(path)
    assert not sentinel.exists()


def test_hostile_object_deep_inside_a_network_is_refused(tmp_path):
    sentinel = tmp_path / "pwned"
    net = nn.Linear(2, 2)
    tree = persistent_tree(net, "Generator",
                           extra_state={"hook": Call(os.system, f"touch {sentinel}")})
    path = write_nvlabs_pickle(tmp_path / "deep.pkl", {"G_ema": tree})
    with pytest.raises(CheckpointError, match=r"refused to load (posix|nt)\.system"):
        gan_models.load_model(path)
    assert not sentinel.exists()


def test_module_source_is_kept_as_text_and_never_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    src = f"open({str(sentinel)!r}, 'w').write('ran')\nclass Exploit: pass\n"
    tree = persistent_tree(nn.Linear(2, 2), "Exploit", module_src=src)
    path = write_nvlabs_pickle(tmp_path / "src.pkl", {"G_ema": tree})
    assert safe_load(path)["G_ema"].module_src == src
    with pytest.raises(CheckpointError, match="'Exploit' that is not an NVlabs StyleGAN2"):
        gan_models.load_model(path)
    assert not sentinel.exists()


def test_hostile_tensor_payload_is_refused(tmp_path):
    # storages are nested torch.save payloads; a hostile one must not run either
    sentinel = tmp_path / "pwned"
    payload = legacy_torch_bytes(Call(subprocess.Popen, ["touch", str(sentinel)]))
    path = tmp_path / "payload.pkl"
    path.write_bytes(call_pickle("torch.storage", "_load_from_bytes", payload))
    with pytest.raises(CheckpointError, match="tensor inside the pickle was refused"):
        safe_load(path)
    assert not sentinel.exists()


def test_foreign_framework_globals_get_a_hint(tmp_path):
    path = tmp_path / "xl.pkl"
    path.write_bytes(call_pickle("timm.models.efficientnet", "EfficientNet"))
    with pytest.raises(CheckpointError, match="Projected GAN or StyleGAN-XL"):
        safe_load(path)


def test_tf_era_networks_become_records(tmp_path):
    state = {"version": 4, "name": "Gs", "static_kwargs": {"resolution": 8},
             "components": {}, "variables": [("dlatent_avg", np.zeros(4, np.float32))]}
    path = write_nvlabs_pickle(tmp_path / "tf.pkl", (TFNetwork(state),))
    (out,) = safe_load(path)
    assert isinstance(out, TFNetworkRecord) and out.state["name"] == "Gs"
    assert out.class_name == "dnnlib.tflib.network.Network"


def test_corrupt_and_truncated_pickles(tmp_path):
    good = write_nvlabs_pickle(tmp_path / "good.pkl", {"t": torch.randn(64)})
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        safe_load(cut)
    with pytest.raises(CheckpointError, match="corrupt"):
        gan_models.load_model(cut)


def test_fixture_names_do_not_leak_into_sys_modules():
    with nvlabs_names():
        assert "torch_utils.persistence" in sys.modules
    assert "torch_utils.persistence" not in sys.modules and "dnnlib" not in sys.modules


# --- budgets (formats/budgets.py): counted while unpickling, never walked without a bound ---
def test_opcode_budget(tmp_path, monkeypatch):
    from gan_models.formats import budgets

    monkeypatch.setattr(budgets, "MAX_PICKLE_OPS", 1000)
    path = tmp_path / "ops.pkl"
    path.write_bytes(b"\x80\x02" + b"N0" * 600 + b"N.")
    with pytest.raises(CheckpointError, match=r"^ops\.pkl: its pickle has more than 1000 "
                                              r"opcodes, over the limit of 1000$"):
        safe_load(path)


def test_memo_reuse_of_a_tuple_costs_its_full_size(tmp_path, monkeypatch):
    from gan_models.formats import budgets

    monkeypatch.setattr(budgets, "MAX_PICKLE_REFS", 50_000)
    big = tuple(range(1000))
    path = tmp_path / "reuse.pkl"
    path.write_bytes(pickle.dumps([big] * 100, protocol=2))  # one tuple, 99 memo fetches
    with pytest.raises(CheckpointError, match=r"reuse\.pkl: its pickle reaches more than "
                                              r"50000 objects"):
        safe_load(path)
    path.write_bytes(pickle.dumps([big] * 10, protocol=2))
    assert len(safe_load(path)) == 10


def test_a_reused_storage_payload_is_decoded_once(tmp_path):
    payload = legacy_torch_bytes(torch.arange(4.0))
    load = torch.storage._load_from_bytes
    path = tmp_path / "twice.pkl"
    path.write_bytes(pickle.dumps([Call(load, payload), Call(load, payload)], protocol=2))
    first, second = safe_load(path)
    assert first is second and torch.equal(first, torch.arange(4.0))


def test_declared_sizes_are_refused_before_allocation(tmp_path):
    cases = {
        "bytearray.pkl": (b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b"x.",
                          r"uses BYTEARRAY8"),
        "array.pkl": (call_pickle("numpy.core.multiarray", "_reconstruct", np.ndarray,
                                  (1 << 40,), b"b"), "declares its size before its data"),
        "frame.pkl": (b"\x80\x04\x95" + (1 << 40).to_bytes(8, "little") + b"N.",
                      r"declares 1099511627776 bytes of data at byte 11, but only 2 remain"),
    }
    data = legacy_torch_bytes(torch.zeros(4))
    numel = b"K\x04N"
    assert data.count(numel) == 1
    huge = data.replace(numel, b"\x8a\x05" + (3 << 30).to_bytes(5, "little") + b"N")
    cases["storage.pkl"] = (call_pickle("torch.storage", "_load_from_bytes", huge),
                            r"storage\.pkl \(a tensor storage\): its tensors declare "
                            r"12884901896 bytes of storage, but only 24 bytes follow")
    for name, (raw, message) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(CheckpointError, match=message):
            safe_load(tmp_path / name)


def test_shared_tensorflow_components_are_walked_within_budget(tmp_path):
    comp = TFNetwork({"variables": [], "components": {}})
    for _ in range(30):  # 2**30 paths through 30 records
        comp = TFNetwork({"variables": [], "components": {"a": comp, "b": comp}})
    gs = TFNetwork({"version": 4, "name": "Gs", "static_kwargs": {"resolution": 8},
                    "components": {"a": comp, "b": comp}, "build_func_name": "G_main",
                    "variables": []})
    path = write_nvlabs_pickle(tmp_path / "tf_shared.pkl", (gs,))
    with pytest.raises(CheckpointError, match=r"tf_shared\.pkl: its TensorFlow networks hold "
                                              r"more than 100000 variables and components"):
        gan_models.load_model(path)


def test_untrusted_names_are_never_printed_whole(tmp_path):
    nested: list = []
    for _ in range(30):
        nested = [nested, nested]
    gs = TFNetwork({"version": 4, "name": "Gs", "static_kwargs": {}, "components": {},
                    "build_func_name": nested, "variables": []})
    path = write_nvlabs_pickle(tmp_path / "tf_name.pkl", (gs,))
    with pytest.raises(CheckpointError, match=r"TensorFlow-era pickle of a '\?' network"):
        gan_models.load_model(path)
    path = write_nvlabs_pickle(tmp_path / "keys.pkl", {(1, 2): 1, "x" * 500: 2})
    with pytest.raises(CheckpointError, match=r"keys: <tuple>, x{37}\.\.\.\)"):
        gan_models.load_model(path)
