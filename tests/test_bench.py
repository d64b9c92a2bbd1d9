"""The GPU benchmark script runs its whole code path on the CPU at tiny sizes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_qwen2vl_gpu_benchmark_smoke_run_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench/qwen2vl_gpu.py"), "--sizes", "tiny", "--device", "cpu",
         "--image-px", "112", "--batch-size", "2", "--steps", "1", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| gradient checkpointing | LoRA training samples/s |" in result.stdout
    rows = json.loads(out.read_text())
    assert [r["gradient_checkpointing"] for r in rows] == [False, True]
    assert all(r["lora_train_samples_per_s"] > 0 and r["generate_samples_per_s"] > 0 for r in rows)
