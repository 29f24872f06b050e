"""bench/bench_gpu.py's plumbing, on the CPU with tiny models (no GPU needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_gpu.py"


def test_quick_cpu_run_writes_json_and_markdown(tmp_path):
    subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--quick", "--no-compile",
                    "--batches", "1", "--min-seconds", "0", "--max-calls", "2",
                    "--out", str(tmp_path)], check=True, capture_output=True, timeout=600)
    report = json.loads((tmp_path / "gpu_bench.json").read_text())
    rows = report["rows"]
    assert {r["model"] for r in rows} == {"sg2-32", "sg3-t-32", "sg3-r-32"}
    assert {r["precision"] for r in rows} == {"fp32", "bf16"}  # fp16 is GPU-only
    assert all(r["images_per_s"] > 0 for r in rows)
    assert 0 < report["precision_errors"]["sg3-t-32"]["bf16"]["relative_rms"] < 0.1
    table = (tmp_path / "gpu_bench.md").read_text()
    assert "| sg3-r-32 | 1 | bf16 | no |" in table


def test_time_budget_skips_cases_instead_of_overrunning(tmp_path):
    subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--quick", "--budget", "0",
                    "--out", str(tmp_path)], check=True, capture_output=True, timeout=600)
    rows = json.loads((tmp_path / "gpu_bench.json").read_text())["rows"]
    assert rows and all(r["status"] == "skipped (time budget)" for r in rows)
