"""Generate Images throughput: the library called directly vs the node through the engine.

    .venv/bin/python bench/bench_generate.py [--repeats 5]

Prints JSON: images/s at batch 1/16/64 for a 64 px DCGAN, called
directly (gan_models.generate_in_chunks) and through the real ComfyUI engine in-process
(Load -> Sample -> Generate with a new seed each run, the loaded model cached as in a
server, executed up to Generate with no file I/O), the engine overhead in percent, and
peak RSS. Goal: engine overhead under 10 % at batch 16.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "scripts"))
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # noqa: F401  (imports the library as top-level gan_models, like the tests)
    import torch

    import gan_models

    torch.manual_seed(0)
    config = {"resolution": 64, "z_dim": 64, "num_classes": 0, "base_channels": 32}
    model = gan_models.GenerativeModel.create("dcgan", config)
    root = Path(tempfile.mkdtemp(prefix="gan_bench_"))
    (root / "models" / "gan").mkdir(parents=True)
    gan_models.save_model(model, root / "models" / "gan" / "bench.safetensors")
    model = gan_models.load_model(root / "models" / "gan" / "bench.safetensors")

    from comfy_engine import Engine

    engine = Engine.get(models_dir=root / "models", output_dir=root / "out", cache=True)
    results = {"device": "cpu", "threads": torch.get_num_threads(), "resolution": 64, "batches": {}}
    for batch in (1, 16, 64):
        def direct(batch=batch):
            # the same work as the prompt: draw the seeded latents, then generate
            with torch.inference_mode():  # as the executor runs nodes
                gan_models.generate_in_chunks(model, model.sample_latents(0, batch), 64)

        prompt = {
            "1": {"class_type": "GANStudioLoadModel", "inputs": {"ckpt_name": "bench.safetensors"}},
            "2": {"class_type": "GANStudioSampleLatents", "inputs": {
                "model": ["1", 0], "seed": 0, "batch_size": batch, "truncation_psi": 1.0,
                "truncate_normal": 0.0, "seed_mode": "torch"}},
            "3": {"class_type": "GANStudioGenerate", "inputs": {
                "model": ["1", 0], "latents": ["2", 0], "chunk_size": 64}},
            # an output node so the prompt validates; only the nodes up to "3" are executed
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        }

        def through_engine(prompt=prompt, batch=batch):
            # a new seed each run, as a user would: the loaded model stays cached
            prompt["2"]["inputs"]["seed"] += batch
            result = engine.run(prompt, outputs=["3"])  # run up to Generate, no file I/O
            assert result.success, result.describe_error()

        t_direct = best_of(direct, args.repeats)
        t_engine = best_of(through_engine, args.repeats)
        results["batches"][batch] = {
            "direct_images_per_s": round(batch / t_direct, 1),
            "engine_images_per_s": round(batch / t_engine, 1),
            "engine_overhead_percent": round(100 * (t_engine - t_direct) / t_direct, 1),
        }
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
